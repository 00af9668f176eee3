"""The guest watch: the checks of the migration core's accesses to the bridge, and the bridge variants."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from conformance.checks import Checks
from conformance.guest_watch import (
    PLAIN,
    REACT_NS,
    BridgeVariant,
    GuestWatch,
    StubFunction,
    WatchedBridge,
    byte_roles,
    probe_variant,
    run_handshake,
    watched_guest,
)
from conformance.runner import target_requirements
from conformance.verdicts import Target
from reference_impl.bridge import MIGRATION_CAP_OFFSET
from reference_impl.clock import SimClock
from reference_impl.driver import MigrationCore
from reference_impl.events import EventBus
from vfmig_proto.codec import find_field, read_field
from vfmig_proto.layout import CapabilityParams, capability_length
from vfmig_proto.pci import PCI_CAPABILITY_LIST
from vfmig_proto.states import DevState, DriverReport, MigState

SLOTS = 2
PARAMS = CapabilityParams(num_slots=SLOTS, ack_timeout_ms=20)


def _checks() -> Checks:
    return Checks(req.id for req in target_requirements(Target.DEVICE))


def _at(path: str) -> int:
    return find_field(SLOTS, path).offset


@dataclass
class _Driver:
    slot: int
    loaded: bool = True
    busy: bool = False


class World:
    """A watched bridge with two functions, a guest, and the reference migration core enabled on it."""

    def __init__(self, variant: BridgeVariant = PLAIN, *, drivers: int = SLOTS) -> None:
        self.checks = _checks()
        self.clock = SimClock()
        self.bus = EventBus(self.clock)
        self.watch = GuestWatch(self.checks, self.clock)
        self.bridge = WatchedBridge(self.bus, PARAMS, watch=self.watch, variant=variant)
        for slot in range(SLOTS):
            self.bridge.hot_add(slot, StubFunction(f"vf{slot}"))
        self.guest = watched_guest("guest", self.bridge, self.watch)
        self.core = MigrationCore(self.guest)
        assert self.core.probe()
        self.drivers = [_Driver(slot) for slot in range(drivers)]
        self.watch.drivers = list(self.drivers)  # they bind after the core enabled the protocol
        self.watch.wrap_handler()
        self.cap = self.bridge.cap

    def failures(self) -> list[str]:
        return [requirement for requirement, _ in self.checks.pending]

    def read(self, rel: int, width: int) -> int:
        return self.bridge.config_read(self.cap + rel, width)

    def write(self, rel: int, width: int, value: int) -> None:
        self.bridge.config_write(self.cap + rel, width, value)


def test_byte_roles_come_from_the_layout() -> None:
    roles = byte_roles(SLOTS)
    assert roles.length == capability_length(SLOTS)
    control = find_field(SLOTS, "control.reserved")
    assert roles.rsvdp[control.offset] == control.field.mask & 0xFF
    status = find_field(SLOTS, "status.reserved")
    assert roles.rsvdz[status.offset] == status.field.mask & 0xFF
    assert roles.w1c[status.offset] == find_field(SLOTS, "status.event").field.mask
    assert roles.dev_ctrl == {_at(f"device[{slot}].dev_ctrl.drv_state"): slot for slot in range(SLOTS)}
    assert roles.slot[_at("device[1].dev_devfn")] == 1
    assert roles.slot[_at("mig_state")] == -1


def test_the_reference_core_passes_every_check_it_meets() -> None:
    world = World()
    world.clock.advance(REACT_NS)
    world.watch.settle()
    assert world.failures() == []
    for requirement in ("VFM-ACC-002", "VFM-DISC-005", "VFM-DISC-007", "VFM-DISC-008", "VFM-DISC-009"):
        assert world.checks.counts[requirement] > 0, requirement


@pytest.mark.parametrize(
    ("variant", "usable"),
    [
        (PLAIN, True),
        (BridgeVariant(decoy="cfg_type"), True),
        (BridgeVariant(decoy="signature"), True),
        (BridgeVariant(decoy="cap_id"), True),
        (BridgeVariant(relocate=0xA0), True),
        (BridgeVariant(relocate=0xC0, cap_last=True), True),
        (BridgeVariant(version_minor=3, cap_len_extra=8, trailer=0x5A), True),
        (BridgeVariant(host_features_extra=0xABCDEF, rsvdp_fill=0x12345, rsvdz_fill=0x7FFF), True),
        (BridgeVariant(version_major=2), False),
        (BridgeVariant(fields=(("num_slots", 0),)), False),
        (BridgeVariant(fields=(("page_shift", 31),)), False),
        (BridgeVariant(fields=(("ack_timeout_ms", 0),)), False),
        (BridgeVariant(cap_len=capability_length(SLOTS) - 4), False),
        (BridgeVariant(cap_len=0x100 - MIGRATION_CAP_OFFSET + 4), False),
        (BridgeVariant(duplicate_devfn=True), False),
    ],
)
def test_the_reference_core_on_each_variant(variant: BridgeVariant, usable: bool) -> None:
    checks = _checks()
    result = probe_variant(MigrationCore, checks, variant, PARAMS)
    assert variant.usable is usable
    assert result.took_part is usable
    assert result.enabled is usable
    assert (result.cap_writes > 0) is usable
    assert checks.pending == []


def test_a_relocated_capability_is_linked_where_the_variant_says() -> None:
    bridge = WatchedBridge(EventBus(SimClock()), PARAMS, variant=BridgeVariant(relocate=0xB0, cap_last=True))
    assert bridge.cap == 0xB0
    chain = bridge._chain()
    assert chain[-1] == 0xB0
    assert len(chain) == 4
    assert bridge.config[MIGRATION_CAP_OFFSET : MIGRATION_CAP_OFFSET + 4] == bytes(4)
    assert bridge.mig_state is MigState.IDLE
    enable = find_field(SLOTS, "control.enable")
    bridge.config_write(0xB0 + enable.offset, 2, 0x3)
    assert read_field(bridge.config, enable, 0xB0) == 1


def test_a_decoy_comes_first_in_the_list() -> None:
    bridge = WatchedBridge(EventBus(SimClock()), PARAMS, variant=BridgeVariant(decoy="signature"))
    start, stop = bridge.decoys[0]
    assert bridge.config[PCI_CAPABILITY_LIST] == start
    assert bridge.config[start + 1] == bridge.cap
    assert stop - start == capability_length(SLOTS)


def test_a_core_that_does_not_walk_the_list_is_found() -> None:
    checks = _checks()
    watch = GuestWatch(checks)
    bridge = WatchedBridge(EventBus(SimClock()), PARAMS, watch=watch)
    bridge.config_read(bridge.cap + _at("signature"), 4)
    assert [req for req, _ in checks.pending] == ["VFM-DISC-005"]


def test_a_write_into_a_decoy_is_found() -> None:
    world = World(BridgeVariant(decoy="cfg_type"))
    start, _ = world.bridge.decoys[0]
    world.bridge.config_write(start + _at("control.enable"), 2, 0x3)
    assert world.failures() == ["VFM-DISC-004"]


def test_unaligned_and_odd_width_accesses_are_found() -> None:
    world = World()
    world.read(_at("device[0].dev_ctrl.drv_state"), 2)
    world.read(_at("mig_state"), 3)
    assert world.failures() == ["VFM-ACC-002", "VFM-ACC-002"]


def test_a_write_of_dev_ctrl_with_other_entry_registers_is_found() -> None:
    world = World()
    entry = _at("device[0].dev_state")
    world.write(entry, 2, int(DriverReport.READY) << 8)
    assert "VFM-DEV-006" in world.failures()
    world.checks.pending.clear()
    world.write(_at("device[0].dev_status.migrated"), 1, 0x1)
    assert world.failures() == []


def test_a_written_back_status_dword_is_found() -> None:
    world = World()
    world.bridge.spurious_event()
    control = _at("control.enable")
    word = world.read(control, 4)
    assert word >> 16 & 0x1
    world.write(control, 4, word)
    assert world.failures() == ["VFM-ACC-008"]


def test_reserved_bits_are_checked() -> None:
    world = World(BridgeVariant(rsvdp_fill=0xFFFFFFFF))
    ctrl = _at("device[0].dev_ctrl.drv_state")
    world.read(ctrl, 1)
    world.write(ctrl, 1, int(DriverReport.READY))  # RsvdP read as ones, written as zeros
    world.write(_at("status.event"), 2, 0xFFFF)  # RsvdZ written as ones
    assert world.failures()[:2] == ["VFM-VER-003", "VFM-VER-004"]


def test_enable_before_features_and_clearing_it_mid_migration_are_found() -> None:
    world = World()
    control = _at("control.enable")
    world.bridge.start()
    world.read(_at("mig_state"), 1)
    world.write(control, 2, 0x2)
    assert world.failures() == ["VFM-DISC-008"]
    fresh = World()
    fresh.watch.features_written = False
    fresh.write(control, 2, 0x2)
    fresh.write(control, 2, 0x3)
    assert fresh.failures() == ["VFM-DISC-007"]


def test_enabling_without_looking_is_found() -> None:
    world = World()
    control = _at("control.enable")
    world.write(control, 2, 0x0)
    world.write(control, 2, 0x3)
    world.clock.advance(REACT_NS)
    world.watch.settle()
    assert world.failures() == ["VFM-DISC-009"]


def test_the_handler_must_clear_before_it_reads() -> None:
    world = World()

    def careless() -> None:
        world.read(_at("mig_state"), 1)
        world.write(_at("status.event"), 2, 0x1)

    world.guest.bridge_interrupt_handler = careless
    world.watch.wrap_handler()
    world.bridge.spurious_event()
    world.clock.advance(REACT_NS)
    assert world.failures() == ["VFM-NOTIF-006"]


def test_an_event_processing_must_read_every_slot_with_a_driver() -> None:
    world = World()
    event = _at("status.event")
    world.write(event, 2, 0x1)
    world.read(_at("device[0].dev_state"), 1)
    world.write(event, 2, 0x1)
    assert world.failures() == ["VFM-FLOW-004"]


def test_reports_are_checked() -> None:
    world = World(drivers=1)
    slot1 = _at("device[1].dev_ctrl.drv_state")
    world.write(slot1, 1, int(DriverReport.READY))
    assert "VFM-NOTIF-009" in world.failures()
    world.checks.pending.clear()
    slot0 = _at("device[0].dev_ctrl.drv_state")
    world.read(_at("device[0].dev_state"), 1)
    world.write(slot0, 1, int(DriverReport.READY))
    world.write(slot0, 1, int(DriverReport.READY))
    assert world.failures() == ["VFM-NOTIF-010"]
    world.checks.pending.clear()
    world.clock.advance(REACT_NS)
    world.watch.settle()
    assert world.failures() == ["VFM-NOTIF-007"]


def test_a_report_after_an_undefined_state_is_found() -> None:
    world = World()
    world.bridge.glitch[0] = 0x42
    state = _at("device[0].dev_state")
    assert world.read(state, 1) == 0x42
    world.write(_at("device[0].dev_ctrl.drv_state"), 1, int(DriverReport.READY))
    assert "VFM-VER-005" in world.failures()
    world.bridge.glitch.clear()
    assert world.read(state, 1) == DevState.READY  # the bridge took the report: it never saw the glitch


def test_the_handshake_world_sees_a_wrap_and_an_unbinding() -> None:
    from conformance.catalogue.device_core_faults import DropsStaleGenerations, UnbindsOnReinit

    checks = _checks()
    for generation in (0x10, 0xFFFFFFFE):
        result = run_handshake(MigrationCore, checks, PARAMS, generation)
        assert result.answered == (True, True)
        assert result.reinitialised
        assert result.unbound == 0
    assert run_handshake(DropsStaleGenerations, checks, PARAMS, 0x10).answered == (True, True)
    assert run_handshake(DropsStaleGenerations, checks, PARAMS, 0xFFFFFFFE).answered == (True, False)
    assert run_handshake(UnbindsOnReinit, checks, PARAMS, 0x10).unbound == 1
