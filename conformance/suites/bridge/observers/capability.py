"""The capability's registers after every step, judged field by field against the model.

After every step the suite reads the capability as a guest does (1- and 4-byte configuration reads) and through
``capability_bytes()``, and judges every field that differs from the model
(:class:`~conformance.suites.bridge.model.CapabilityModel`).  Each field is judged by the most specific
requirement that speaks of it in that step, and a field once judged is not judged again in the same step, so
that one fault is reported once, under the requirement it breaks.

When a requirement has already been judged (its checks are off for the rest of the run) and the bridge differs
from the model because of it, the model takes the bridge's state over after the step, so that one known fault
does not turn later steps into findings against other requirements.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from conformance import spec_coverage
from conformance.suites.bridge.model import SETTLED_EVENTS, drv_path, flag_path, state_path
from conformance.suites.bridge.observers.hypervisor_seat import HypervisorSeat
from conformance.suites.bridge.observers.interrupts import InterruptObserver
from conformance.suites.bridge.observers.reports import ReportObserver
from conformance.suites.bridge.observers.versions import extension_paths
from conformance.suites.bridge.world import Expectation, Judge, describe_value
from vfmig_proto.codec import read_field
from vfmig_proto.states import SlotFlag
from vfmig_proto.transitions import MIGRATION_TRANSITIONS

SLOT_EVENTS = ("hot_add", "surprise_removal", "device_error")
"""The host events of one slot."""
_HEADER_PARAMS = (
    "cap_next",
    "cap_len",
    "version_major",
    "version_minor",
    "num_slots",
    "page_shift",
    "host_features.dma_dirty",
    "host_features.pause_resume",
    "host_features.reset_domain",
    "host_features.migrated_flag",
    "host_features.reserved",
    "ack_timeout_ms",
)
"""Fields VFM-CAP-007 fixes between conventional resets (with each slot's DEV_DEVFN)."""
_CONSTANTS = ("cap_id", "cfg_type", "signature")
"""Fields VFM-CAP-004 fixes."""


class CapabilityObserver(ReportObserver, InterruptObserver, HypervisorSeat):
    """Reads the capability after a step and judges it, with the step's interrupts and what the hypervisor was told."""

    def _observe(self, *, full: bool = False) -> tuple[bytes, bytes, bool]:
        """The capability as the guest reads it, ``capability_bytes()`` after the reads, and whether reading changed it.

        DWORD reads first; when they show what the model expects, that is the guest's view.  Otherwise (or with
        ``full``) the suite reads every byte too, takes the bytes for the guest's view and judges VFM-GEN-001 on
        the DWORDs.
        """
        bridge = self.bridge
        before = bytes(bridge.capability_bytes())
        dwords = self._read_capability(4)
        packed = b"".join(value.to_bytes(4, "little") for value in dwords)
        singles = dwords if not full and packed == before == self.model.data else self._read_capability(1)
        after = bytes(bridge.capability_bytes())
        mutated = after != before
        self._that(
            "VFM-ACC-006",
            not mutated,
            lambda: f"reading the capability changed it: {before.hex()} before the guest's reads, {after.hex()} after",
        )
        if singles is dwords:
            return packed, after, mutated
        guest = bytes(singles)
        if not mutated:
            for index, value in enumerate(dwords):
                little = int.from_bytes(guest[4 * index : 4 * index + 4], "little")
                self._that("VFM-GEN-001", value == little, partial(_endianness_message, 4 * index, value, little))
        return guest, after, mutated

    def _read_capability(self, width: int) -> list[int]:
        """The whole capability in guest reads of ``width`` bytes (VFM-ACC-005: each completes normally)."""
        cap, length = self.cap, self.model.length
        try:
            values = [self.bridge.config_read(cap + offset, width) for offset in range(0, length, width)]
        except Exception as error:
            self._that(
                "VFM-ACC-005",
                False,
                f"guest reads of the capability complete normally; a {width}-byte read raised "
                f"{type(error).__name__}: {error}",
            )
            raise
        self._that(
            "VFM-ACC-005",
            all(isinstance(value, int) and 0 <= value < 1 << (8 * width) for value in values),
            lambda: f"{width}-byte guest reads of the capability returned values out of range: {values}",
        )
        return values

    def _verify(self, expectation: Expectation) -> None:
        self.checks.raise_pending()
        guest, host, mutated = self._observe()
        spec_coverage.bridge_step(self.model, expectation.before, expectation.covered, guest)
        if mutated:
            self._diverged = True  # our own reads changed the bridge: its interrupts and events are its own now
        self._judge(expectation, guest, "config reads")
        if host != guest and not mutated:
            self._judge(expectation, host, "capability_bytes()")
        self._judge_interrupts(expectation)
        self._judge_observer(expectation)
        self._judge_shpc(expectation)
        self._sync(host if mutated else guest)

    def _judge(self, expectation: Expectation, actual: bytes, view: str) -> None:
        model = self.model
        expected = bytes(model.data)
        differing = (
            frozenset()
            if actual == expected
            else frozenset(p.path for p in model.fields if read_field(actual, p) != read_field(expected, p))
        )
        explained: set[str] = set()

        def judge(requirement: str | None, paths: Iterable[str], what: str) -> None:
            if not differing:  # nothing to explain: the check passes
                if requirement is not None:
                    self.checks.that(requirement, True, "")
                return
            fresh = [path for path in paths if path not in explained]
            explained.update(fresh)
            if requirement is None:
                return
            bad = [path for path in fresh if path in differing]
            self._that(
                requirement,
                not bad,
                lambda: (
                    f"{expectation.what}: {what}; "
                    + "; ".join(self._difference(path, expected, actual) for path in bad)
                    + f" ({view})"
                ),
            )

        judge("VFM-CAP-004", _CONSTANTS, "CAP_ID, CFG_TYPE and SIGNATURE are constants")
        judge(
            "VFM-CAP-007",
            (*_HEADER_PARAMS, *(f"device[{slot}].dev_devfn" for slot in range(model.num_slots))),
            "CAP_NEXT, CAP_LEN, the version, NUM_SLOTS, PAGE_SHIFT, HOST_FEATURES, ACK_TIMEOUT_MS and DEV_DEVFN "
            "never change",
        )
        accepted = model.get("guest_features.reserved")  # the later features the guest accepted (none, here)
        judge(
            "VFM-VER-006",
            extension_paths(model.num_slots) if self.version_minor and not accepted else (),
            f"a bridge of version 1.{self.version_minor} that offers later features 0x{self.later_features:x} "
            "(HOST_FEATURES[31:4]) behaves as a version 1.0 bridge while GUEST_FEATURES[31:4] is 0: the reserved "
            "bits of version 1.0, where later minor versions put their control and status bits, keep their 1.0 "
            "values",
        )
        if not expectation.legal:
            judge(
                "VFM-ACC-003",
                model.paths,
                f"a {expectation.width}-byte write at 0x{expectation.offset:02x} is no legal PCI write and changes "
                "nothing",
            )
        elif expectation.is_guest_write:
            self._judge_guest_write(expectation, actual, judge)
        elif expectation.host_event == "restore":
            self._judge_restore(expectation, actual, judge)
        elif expectation.host_event == "conventional_reset":
            judge(
                "VFM-CAP-006",
                model.paths,
                "after a conventional reset the bridge presents the reset value of every field, with DEV_STATE "
                "UNBOUND in every slot that holds a function",
            )
        else:
            self._judge_host_event(expectation, actual, judge)

    def _judge_restore(self, expectation: Expectation, actual: bytes, judge: Judge) -> None:
        """The destination bridge, right after the restore and before ARRIVE: it presents what it was restored with.

        Of the restored fields, those a requirement of the bridge speaks of are judged (CAP_NEXT to
        ACK_TIMEOUT_MS and DEV_DEVFN above, under VFM-CAP-007); the RW fields (CONTROL, GUEST_FEATURES,
        DRV_STATE), STATUS.EVENT and the RESET and PROTOCOL_ERROR flags are not: no requirement of the bridge role
        says that the restore keeps them (VFM-REP-001 binds the hypervisor).  The model takes the bridge's values
        of those over, so that a later step is not blamed for them.
        """
        slots = range(self.model.num_slots)
        judge(
            "VFM-MIG-002",
            ("generation",),
            "GENERATION counts migrations across hosts: the destination presents the value restored from the "
            "source, which only the next START increments",
        )
        judge("VFM-MIG-009", ("mig_reason",), "the destination presents the MIG_REASON restored from the source")
        judge(
            "VFM-SEC-001",
            ("mig_state", *(state_path(slot) for slot in slots)),
            "MIG_STATE and every DEV_STATE are the ones restored from the source: no event or report changed them",
        )
        self._judge_migrated_kept(actual, judge)

    def _judge_guest_write(self, expectation: Expectation, actual: bytes, judge: Judge) -> None:
        model = self.model
        slots = range(model.num_slots)
        states = [state_path(slot) for slot in slots]
        if self._judge_reset_request(expectation):
            judge(None, model.paths, "")
            return
        if expectation.report is not None:
            self._judge_report(expectation, expectation.report, actual, judge)
        if expectation.sbr_edge:
            judge(
                "VFM-ERR-004",
                ("mig_state", *states),
                "the write sets Secondary Bus Reset (0 -> 1): the GROUP_RESET transitions complete before it does",
            )
            judge(
                "VFM-ERR-005",
                (flag_path(slot, SlotFlag.RESET) for slot in slots),
                "GROUP_RESET sets DEV_STATUS.RESET in every slot that is not EMPTY",
            )
        judge("VFM-MIG-009", ("mig_reason",), "MIG_REASON changes only on START, CANCEL and ARRIVE")
        judge(
            "VFM-SEC-001",
            ("mig_state", "generation", *states),
            f"a guest write ({self._data_text(expectation)}) changes MIG_STATE, GENERATION and DEV_STATE only "
            "through a report the device table accepts, never to a value of the written data",
        )
        if expectation.covered and not expectation.covers_rw:
            judge(
                "VFM-ACC-004",
                ("status.event",),
                "a write that covers no RW or RW1C bit of the capability sets no STATUS.EVENT",
            )
        self._judge_migrated_kept(actual, judge)
        if not expectation.covers(model.by_path["status.event"]):  # if it does, the access rules say what happens
            self._judge_event(expectation, judge)
        judge(
            "VFM-ACC-001",
            model.paths,
            "the write follows the mask model cfg = (cfg & ~wmask) | (val & wmask); cfg &= ~(val & w1cmask), "
            "and changes nothing it does not cover",
        )

    def _judge_host_event(self, expectation: Expectation, actual: bytes, judge: Judge) -> None:
        model = self.model
        event = expectation.host_event or ""
        name = event.upper()
        slots = range(model.num_slots)
        if event in SLOT_EVENTS:
            slot = expectation.slot
            assert slot is not None
            judge("VFM-DEV-002", (state_path(slot),), f"{name} takes the device table's row")
            if event != "device_error":
                judge(
                    "VFM-DEV-013",
                    (drv_path(slot), *(flag_path(slot, flag) for flag in SlotFlag)),
                    f"{name} returns DRV_STATE to NONE and clears MIGRATED, RESET and PROTOCOL_ERROR",
                )
        else:
            if event == "start":
                judge(
                    "VFM-MIG-002",
                    ("generation", "mig_reason"),
                    "START increments GENERATION modulo 2^32 and sets MIG_REASON to NONE",
                )
            judge(
                "VFM-MIG-006",
                (state_path(slot) for slot in slots),
                f"{name} reaches every slot whose DEV_STATE has a row for its device event, and no other",
            )
            if event == "arrive":
                judge(
                    "VFM-FLAG-001",
                    (flag_path(slot, SlotFlag.MIGRATED) for slot in slots),
                    "ARRIVE sets DEV_STATUS.MIGRATED in every slot that is not EMPTY",
                )
            if event == "group_reset":
                judge(
                    "VFM-ERR-005",
                    (flag_path(slot, SlotFlag.RESET) for slot in slots),
                    "GROUP_RESET sets DEV_STATUS.RESET in every slot that is not EMPTY",
                )
        pre_settle = expectation.outcomes[-1].pre_settle
        actual_mig = model.get("mig_state", actual)
        settling = pre_settle is not model.mig_state or any(
            MIGRATION_TRANSITIONS.get((pre_settle, settled)) == actual_mig for settled in SETTLED_EVENTS
        )
        if settling or event in SLOT_EVENTS:
            settled = None if self._diverged else "VFM-MIG-007"  # not when a judged difference decided the states
            judge(settled, ("mig_state",), "a settled event is raised exactly when every slot has settled")
        else:
            judge("VFM-MIG-002" if event == "start" else "VFM-MIG-006", ("mig_state",), f"{name} moves MIG_STATE")
        judge("VFM-MIG-009", ("mig_reason",), "MIG_REASON changes only on START, CANCEL and ARRIVE, as they say")
        self._judge_migrated_kept(actual, judge)
        self._judge_event(expectation, judge)
        rest = {"hot_add": "VFM-DEV-013", "surprise_removal": "VFM-DEV-013", "device_error": "VFM-DEV-002"}
        requirement = rest.get(event, "VFM-MIG-002" if event == "start" else "VFM-MIG-006")
        judge(requirement, model.paths, f"{name} changes nothing the tables do not make it change")

    def _judge_migrated_kept(self, actual: bytes, judge: Judge) -> None:
        model = self.model
        judge(
            "VFM-FLAG-002",
            [
                path
                for path in (flag_path(slot, SlotFlag.MIGRATED) for slot in range(model.num_slots))
                if model.get(path) and not model.get(path, actual)
            ],
            "DEV_STATUS.MIGRATED is cleared only by a guest write of 1, when the slot enters EMPTY or on HOT_ADD",
        )

    def _judge_event(self, expectation: Expectation, judge: Judge) -> None:
        if self._diverged:  # the finding already made decides the event: no second finding from it
            judge(None, ("status.event",), "")
            return
        sets = any(outcome.sets_event for outcome in expectation.outcomes)
        judge(
            "VFM-NOTIF-001",
            ("status.event",),
            "STATUS.EVENT is set in a step that changes MIG_STATE, in which a host event changes a DEV_STATE, or "
            f"which sets MIGRATED or RESET, and in no other step (this step {'does' if sets else 'does not'})",
        )

    def _difference(self, path: str, expected: bytes, actual: bytes) -> str:
        placed = self.model.by_path[path]
        want, got = read_field(expected, placed), read_field(actual, placed)
        return f"{path.upper()} expected {describe_value(placed, want)}, the bridge has {describe_value(placed, got)}"

    @staticmethod
    def _data_text(expectation: Expectation) -> str:
        value = int.from_bytes(expectation.data, "little")
        return f"{expectation.width}-byte write of 0x{value:0{2 * expectation.width}x} at 0x{expectation.offset:02x}"


def _endianness_message(offset: int, value: int, little: int) -> str:
    return (
        f"a 4-byte read at capability offset 0x{offset:02x} returned 0x{value:08x}, but the 1-byte reads of its "
        f"bytes make 0x{little:08x} in little-endian order"
    )
