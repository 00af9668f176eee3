"""Scenarios: known-tricky sequences in one step, and worlds of their own for discovery and the handshake.

:meth:`Scenarios.scenario` plays a sequence that random runs would meet only
rarely (the other rules still interleave with it).  :meth:`Scenarios.discovery`
boots guests with the implementation's migration core on bridges of their own
that present what the main world's well-formed bridge does not: decoys, a
relocated or newer capability, undefined bits, headers to refuse, and
GENERATION about to wrap.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.checks import step
from conformance.guest_watch import BridgeVariant, ProbeResult, probe_variant, run_handshake
from conformance.suites.device.world import ACK_TIMEOUT_MS, DeviceWorld
from reference_impl.bridge import MIGRATION_CAP_OFFSET
from reference_impl.clock import ms
from reference_impl.driver import MigrationCore
from vfmig_proto.layout import CapabilityParams, capability_length
from vfmig_proto.pci import PCI_CONFIG_SIZE
from vfmig_proto.states import MigState

SCENARIOS = ("down-through-migration", "unbind-mid-migration", "close-mid-migration", "rebind")
DISCOVERY_CASES: dict[str, tuple[str, ...]] = {
    "decoy": ("decoy-cfg_type", "decoy-signature", "decoy-cap_id"),
    "relocated": ("relocated", "relocated-last"),
    "newer": ("newer-minor", "longer"),
    "unknown-bits": ("unknown-bits",),
    "handshake": ("generation-wrap",),
    "refused": (
        "bad-major",
        "bad-slots",
        "bad-length",
        "past-the-end",
        "bad-page-shift",
        "no-timeout",
        "duplicate-devfn",
    ),
}
"""What the bridges of :meth:`Scenarios.discovery` present to a guest that boots on them, by kind."""
GENERATION_BEFORE_WRAP = 0xFFFFFFFE
"""GENERATION before two STARTs: the second wraps it to 0 (VFM-REP-004)."""
GENERATION_FAR_FROM_WRAP = 0x10
"""GENERATION before two STARTs that do not wrap it: what the guest does then is the reference."""


def _discovery_variant(case: str, slots: int, where: int, noise: int) -> BridgeVariant:
    length = capability_length(slots)
    room = (PCI_CONFIG_SIZE - MIGRATION_CAP_OFFSET - length) // 4
    if case.startswith("decoy-"):
        return BridgeVariant(case, decoy=case.removeprefix("decoy-"))
    if case.startswith("relocated"):
        places = range(MIGRATION_CAP_OFFSET, PCI_CONFIG_SIZE - length + 1, 4)
        return BridgeVariant(case, relocate=places[where % len(places)], cap_last=case.endswith("last"))
    bad: dict[str, BridgeVariant] = {
        "newer-minor": BridgeVariant(case, version_minor=1 + noise % 255),
        "longer": BridgeVariant(case, cap_len_extra=4 * (1 + where % room), trailer=noise & 0xFF),
        "unknown-bits": BridgeVariant(
            case,
            host_features_extra=noise,
            rsvdp_fill=noise * 7,
            rsvdz_fill=noise * 13,
            cap_len_extra=4,
            trailer=noise & 0xFF,
        ),
        "bad-major": BridgeVariant(case, version_major=(0, 2, 0xFF)[where % 3]),
        "bad-slots": BridgeVariant(case, fields=(("num_slots", (0, 32, 0xFF)[where % 3]),)),
        "bad-length": BridgeVariant(case, cap_len=length - 4 * (1 + where % slots)),
        "past-the-end": BridgeVariant(case, cap_len=PCI_CONFIG_SIZE - MIGRATION_CAP_OFFSET + 4 * (1 + where % 4)),
        "bad-page-shift": BridgeVariant(case, fields=(("page_shift", (0, 11, 31, 0xFF)[where % 4]),)),
        "no-timeout": BridgeVariant(case, fields=(("ack_timeout_ms", 0),)),
        "duplicate-devfn": BridgeVariant(case, duplicate_devfn=True),
    }
    return bad[case]


def _differs(result: ProbeResult, plain: ProbeResult) -> str:
    def writes(probe: ProbeResult) -> str:
        return ", ".join(f"{width}@0x{offset:02x}=0x{value:x}" for offset, width, value in probe.writes) or "none"

    return (
        "the guest behaved differently on a capability with undefined bits set "
        f"(took part: {result.took_part}, writes: {writes(result)}) than on one with them clear "
        f"(took part: {plain.took_part}, writes: {writes(plain)}); RsvdP bits aside"
    )


class Scenarios(DeviceWorld):
    """Sequences in one step, and discovery on bridges of their own."""

    @precondition(DeviceWorld.guest_running)
    @rule(kind=st.sampled_from(SCENARIOS), slot=st.integers(0, 2))
    @step(
        "VFM-ABS-001",
        "VFM-ABS-002",
        "VFM-ABS-003",
        "VFM-DOWN-001",
        "VFM-DOWN-002",
        "VFM-DOWN-003",
        "VFM-FLAG-003",
        "VFM-FLAG-004",
        "VFM-FLAG-005",
        "VFM-DEV-007",
    )
    def scenario(self, kind: str, slot: int) -> None:
        """A known-tricky sequence in one step, so that random runs meet it often (the other rules still interleave)."""
        world = self.world
        driver = world.drivers[slot % len(world.drivers)]
        if kind == "down-through-migration":
            self._in_flight(driver.slot)
            world.guest.after(0, driver.close, "interface down")
            world.clock.advance(ms(1))
            self._start_migration()
            self._run_until(MigState.ARRIVED)
        elif kind == "unbind-mid-migration":
            self._start_migration()
            self._run_until(MigState.PRECOPY)
            self._in_flight(driver.slot)
            world.guest.after(0, driver.unload, "driver unload")
        elif kind == "rebind":
            world.guest.after(0, driver.unload, "driver unload")
            world.clock.advance(ms(1))
            world.guest.after(0, self._prober(driver), "driver load")
        elif kind == "close-mid-migration":
            self._start_migration()
            self._run_until(MigState.PRECOPY)
            self._in_flight(driver.slot)
            world.guest.after(0, driver.close, "interface down")
        world.clock.advance(ms(2))

    @rule(
        kind=st.sampled_from(sorted(DISCOVERY_CASES)),
        slots=st.integers(2, 4),
        where=st.integers(0, 31),
        noise=st.integers(1, (1 << 28) - 1),
    )
    @step("VFM-DISC-004", "VFM-DISC-005", "VFM-DISC-006", "VFM-VER-001", "VFM-VER-002", "VFM-REP-004", "VFM-NOTIF-008")
    def discovery(self, kind: str, slots: int, where: int, noise: int) -> None:
        """Guests with the implementation's migration core boot on bridges of their own that present ``kind``.

        Each is a world of its own (a bridge, a guest, the core; no hypervisor): the discovery and versioning
        rules need bridges that the main world's well-formed one is not, and ``handshake`` needs GENERATION to
        wrap, which takes four billion migrations in the main world.
        """
        make_core = getattr(self.implementation, "create_migration_core", None) or MigrationCore
        params = CapabilityParams(num_slots=slots, ack_timeout_ms=ACK_TIMEOUT_MS)
        if kind == "handshake":
            self._handshake(make_core, params)
            return
        for case in DISCOVERY_CASES[kind]:
            variant = _discovery_variant(case, slots, where, noise)
            result = probe_variant(make_core, self.checks, variant, params)
            self.checks.raise_pending()
            if kind == "decoy":
                self.checks.that(
                    "VFM-DISC-004",
                    result.enabled,
                    f"with a vendor-specific capability that differs in {variant.decoy} ahead of the migration "
                    "capability, the guest did not enable the migration capability",
                )
            elif kind == "relocated":
                self.checks.that(
                    "VFM-DISC-005",
                    result.enabled,
                    f"the guest did not find and enable the migration capability linked at 0x{variant.relocate:02x}"
                    + (" (last in the list)" if variant.cap_last else ""),
                )
            elif kind == "newer":
                self.checks.that(
                    "VFM-VER-001",
                    result.enabled,
                    f"the guest refused a capability with VERSION_MINOR {variant.version_minor} and "
                    f"{variant.cap_len_extra} bytes after the last slot entry",
                )
            elif kind == "unknown-bits":
                plain = probe_variant(make_core, self.checks, BridgeVariant(cap_len_extra=4), params)
                self.checks.raise_pending()
                same = (result.took_part, result.writes) == (plain.took_part, plain.writes)
                self.checks.that("VFM-VER-002", same, "" if same else _differs(result, plain))
            else:
                self.checks.that(
                    "VFM-DISC-006",
                    result.cap_writes == 0,
                    f"the guest wrote {result.cap_writes} times to a migration capability it must leave alone ({case})",
                )

    def _handshake(self, make_core: Any, params: CapabilityParams) -> None:
        """A driver that answers at once, two migrations and a group reset: GENERATION wraps in the second."""
        plain = run_handshake(make_core, self.checks, params, GENERATION_FAR_FROM_WRAP)
        wrap = run_handshake(make_core, self.checks, params, GENERATION_BEFORE_WRAP)
        self.checks.raise_pending()
        self.checks.that(
            "VFM-REP-004",
            wrap.answered == plain.answered,
            f"the guest answered the requests of two migrations {plain.answered} with GENERATION far from "
            f"0xFFFFFFFF, but {wrap.answered} when GENERATION wrapped to 0 at the second START",
        )
        self.checks.that(
            "VFM-NOTIF-008",
            plain.unbound == wrap.unbound == 0,
            f"the migration core unbound a VF driver {plain.unbound + wrap.unbound} times on a change of MIG_STATE "
            "or DEV_STATE",
        )
