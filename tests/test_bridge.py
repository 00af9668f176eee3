"""The reference migration bridge, driven through its guest config space and its host events.

Every expectation comes from :mod:`vfmig_proto`: the write masks from
:mod:`vfmig_proto.access`, what each report and host event does to the
protocol state (transitions, fan-out, settled events, catch-up, the BME rule,
STATUS.EVENT) from :class:`vfmig_proto.engine.ProtocolEngine`, loaded with
the state the capability shows and read through the codec, and the reset
value from the codec.  The bridge is judged on how it carries the engine's
answer out: its registers, its interrupts and what it tells its observer.  The
functions behind the bridge are fakes that record their resets; the observer
stands in for the hypervisor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reference_impl.bridge import BridgeError, MigrationBridge
from reference_impl.clock import SimClock
from reference_impl.events import EventBus
from vfmig_proto import pci
from vfmig_proto.access import WRITE_WIDTHS, write_masks
from vfmig_proto.access import config_write as masked_write
from vfmig_proto.codec import decode_capability, find_field, reset_value, store_field, with_field
from vfmig_proto.config_space import capabilities
from vfmig_proto.engine import Effects, Judgement, ProtocolEngine, ProtocolState, read_protocol_state, slot_states
from vfmig_proto.errors import ProtocolError
from vfmig_proto.layout import Access, CapabilityParams, capability_length, placed_fields, slot_offset
from vfmig_proto.restore import restore_problem
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState
from vfmig_proto.transitions import (
    CATCH_UP,
    DEVICE_TRANSITIONS,
    FANOUT,
    MIGRATION_TRANSITIONS,
    device_transition,
    migration_transition,
)

CAP_OFFSET = 0x64
"""Where VFM-CAP-003 places the capability in a bridge derived from QEMU's pci-bridge."""
CAP_NEXT = 0x4C
"""VFM-CAP-003: CAP_NEXT of that capability (QEMU's MSI capability)."""

# ---------------------------------------------------------------------------------------------------------------
# Fakes and a rig around the bridge


@dataclass
class FakeFunction:
    """A function behind the bridge: a settable BME and a record of its resets."""

    name: str
    log: list[str]
    bus_master: bool = False
    resets: list[str] = field(default_factory=list)

    def function_level_reset(self, how: str) -> None:
        self.resets.append(how)
        self.log.append(f"reset {self.name}")
        self.bus_master = False


@dataclass
class FakeObserver:
    """The hypervisor's seat: records every step, rejection and secondary bus reset request."""

    log: list[str]
    causes: list[str] = field(default_factory=list)
    rejected: list[tuple[int, int]] = field(default_factory=list)

    def bridge_stepped(self, bridge: MigrationBridge, cause: str) -> None:
        self.causes.append(cause)

    def report_rejected(self, bridge: MigrationBridge, slot: int, report: int, why: str) -> None:
        self.rejected.append((slot, report))

    def secondary_bus_reset_requested(self, bridge: MigrationBridge) -> None:
        self.log.append("secondary bus reset requested")


class CancellingObserver(FakeObserver):
    """Does what VFM-MIG-011 asks of the hypervisor: cancel before the group reset a guest requests."""

    def secondary_bus_reset_requested(self, bridge: MigrationBridge) -> None:
        super().secondary_bus_reset_requested(bridge)
        if bridge.mig_state in (MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING):
            bridge.cancel(MigReason.PROTOCOL_ERROR)


class Rig:
    """A bridge with fake functions, an observer and an interrupt counter."""

    def __init__(
        self, num_slots: int = 4, *, observer: FakeObserver | None = None, params: CapabilityParams | None = None
    ) -> None:
        self.log: list[str] = []
        self.params = params or CapabilityParams(num_slots=num_slots)
        self.bridge = MigrationBridge(EventBus(SimClock()), self.params)
        self.observer = observer or FakeObserver(self.log)
        self.observer.log = self.log
        self.bridge.observers.append(self.observer)
        self.interrupts = 0
        self.bridge.interrupt_sink = self._interrupt
        self.functions: dict[int, FakeFunction] = {}

    def _interrupt(self) -> None:
        self.interrupts += 1

    @property
    def num_slots(self) -> int:
        return self.params.num_slots

    # ---- host side

    def new_function(self, slot: int) -> FakeFunction:
        function = FakeFunction(f"vf{slot}", self.log)
        self.functions[slot] = function
        return function

    def hot_add(self, slot: int) -> FakeFunction:
        function = self.new_function(slot)
        self.bridge.hot_add(slot, function)
        return function

    def place(self, path: str, value: int) -> None:
        """Set a capability field directly (host side, no access rules, no state machine)."""
        store_field(self.bridge.config, find_field(self.num_slots, path), value, self.bridge.cap)

    def setup(self, mig_state: MigState, states: list[DevState]) -> None:
        """Put the bridge directly into ``mig_state`` with ``states``; a function sits in every non-EMPTY slot."""
        self.place("mig_state", mig_state)
        for slot, state in enumerate(states):
            self.place(f"device[{slot}].dev_state", state)
            if state is not DevState.EMPTY:
                self.bridge.functions[slot] = self.new_function(slot)

    def value(self, path: str) -> int:
        return self.bridge.field(path)

    def offset(self, path: str) -> int:
        """Config-space offset of the register that holds ``path``."""
        return self.bridge.cap + find_field(self.num_slots, path).offset

    def mask(self, path: str) -> int:
        return find_field(self.num_slots, path).field.mask

    # ---- guest side

    def write(self, offset: int, width: int, value: int) -> None:
        self.bridge.config_write(offset, width, value)

    def report(self, slot: int, value: int) -> None:
        """A 1-byte write of DEV_CTRL, as VFM-DEV-006 asks a driver to make it."""
        self.write(self.offset(f"device[{slot}].dev_ctrl.drv_state"), 1, value)

    def clear_event(self) -> None:
        self.write(self.offset("status.event"), 2, self.mask("status.event"))

    def set_control(self, enable: bool = True, event_ie: bool = True) -> None:
        value = (self.mask("control.enable") if enable else 0) | (self.mask("control.event_ie") if event_ie else 0)
        self.write(self.offset("control.enable"), 2, value)

    @property
    def msi(self) -> int:
        listed = capabilities(bytes(self.bridge.config))
        return next(offset for offset, cap_id in listed if cap_id == pci.PCI_CAP_ID_MSI)

    def set_msi(self, enabled: bool) -> None:
        flags = self.bridge.config_read(self.msi + pci.PCI_MSI_FLAGS, 2)
        flags = flags | pci.PCI_MSI_FLAGS_ENABLE if enabled else flags & ~pci.PCI_MSI_FLAGS_ENABLE
        self.write(self.msi + pci.PCI_MSI_FLAGS, 2, flags)

    def events_by_msi(self) -> None:
        """The migration core's set-up: MSI on, CONTROL.ENABLE and EVENT_IE on, no event pending."""
        self.set_msi(True)
        self.set_control()
        self.clear_event()
        self.interrupts = 0

    def set_command(self, bits: int, on: bool) -> None:
        command = self.bridge.config_read(pci.PCI_COMMAND, 2)
        self.write(pci.PCI_COMMAND, 2, command | bits if on else command & ~bits)

    def set_bus_reset(self, on: bool) -> None:
        control = self.bridge.config_read(pci.PCI_BRIDGE_CONTROL, 2)
        reset = pci.PCI_BRIDGE_CTL_BUS_RESET
        self.write(pci.PCI_BRIDGE_CONTROL, 2, control | reset if on else control & ~reset)

    # ---- driving a bound slot through a migration by its reports

    def bind(self, slot: int) -> FakeFunction:
        """Hot-add a function and report READY for it (IDLE: no catch-up)."""
        function = self.hot_add(slot)
        self.report(slot, DriverReport.READY)
        return function


def event_set(rig: Rig) -> bool:
    return bool(rig.value("status.event"))


def mig_state(rig: Rig) -> MigState:
    return rig.bridge.mig_state


def intx(rig: Rig) -> bool:
    return rig.bridge.intx_asserted


def settle_model(mig: MigState, states: list[DevState]) -> MigState:
    """MIG_STATE once the engine has raised every settled event due (spec §4.3.9)."""
    engine = ProtocolEngine(len(states), ProtocolState(slot_states(states), mig))
    engine.apply(engine.settle())
    return engine.mig_state


def _reason(event: MigEvent) -> MigReason | None:
    """The reason the tests' hypervisor gives a migration event: CANCELLED for CANCEL, none for the others."""
    return MigReason.CANCELLED if event is MigEvent.CANCEL else None


def migration_model(mig: MigState, states: list[DevState], event: MigEvent) -> tuple[MigState, list[DevState]]:
    """MIG_STATE and DEV_STATEs after a migration event with its fan-out and settled events (spec §4.3.8, §4.3.9)."""
    engine = ProtocolEngine(len(states), ProtocolState(slot_states(states), mig))
    engine.process_migration_event(event, reason=_reason(event))
    return engine.mig_state, engine.dev_states()


def engine_of(rig: Rig) -> ProtocolEngine:
    """An engine in the protocol state the rig's capability shows."""
    return ProtocolEngine(rig.num_slots, read_protocol_state(rig.bridge.capability_bytes(), rig.num_slots))


def expected_capability(before: bytes, effects: Effects) -> bytes:
    """The capability after a step with ``effects``: every field written, and STATUS.EVENT if the step sets it."""
    for write in effects.writes:
        before = with_field(before, write.path, write.value)
    return with_field(before, "status.event", 1) if effects.sets_event else before


# ---------------------------------------------------------------------------------------------------------------
# Reset values (VFM-CAP-003, VFM-CAP-006)


class TestResetValue:
    @pytest.mark.parametrize("num_slots", [1, 4, 8, 31])
    def test_capability_after_construction_is_the_reset_value(self, num_slots: int) -> None:
        rig = Rig(num_slots)
        expected = reset_value(replace(rig.params, next_pointer=CAP_NEXT))
        assert rig.bridge.config[pci.PCI_CAPABILITY_LIST] == CAP_OFFSET, "VFM-CAP-003: Capabilities Pointer reads 0x64"
        assert rig.bridge.cap == CAP_OFFSET
        raw = bytes(rig.bridge.config[CAP_OFFSET : CAP_OFFSET + capability_length(num_slots)])
        assert decode_capability(raw) == decode_capability(expected), "VFM-CAP-006: reset value after creation"
        assert raw == expected, "VFM-CAP-006: reset value after creation"

    def test_conventional_reset_presents_reset_values_and_unbound_occupied_slots(self) -> None:
        rig = Rig(4)
        rig.bind(0)
        rig.hot_add(2)
        rig.set_control()
        rig.bridge.start()  # PREPARE, slot 0 DIRTY_REQ, GENERATION 1, STATUS.EVENT
        rig.bridge.cancel(MigReason.CANCELLED)
        rig.place("device[2].dev_status.migrated", 1)
        rig.bridge.conventional_reset()
        expected = reset_value(replace(rig.params, next_pointer=CAP_NEXT))
        for slot in (0, 2):
            expected = with_field(expected, f"device[{slot}].dev_state", DevState.UNBOUND)
        assert rig.bridge.capability_bytes() == expected, (
            "VFM-CAP-006: after a conventional reset every field has its reset value, occupied slots UNBOUND"
        )


# ---------------------------------------------------------------------------------------------------------------
# Access rules (VFM-ACC-001..006, VFM-CAP-009)


def _covers_dev_ctrl(offset: int, width: int, num_slots: int) -> bool:
    dev_ctrl = [find_field(num_slots, f"device[{slot}].dev_ctrl.drv_state").offset for slot in range(num_slots)]
    return any(offset <= byte < offset + width for byte in dev_ctrl)


_ACCESS_SLOTS = 4
_WRITES_WITHOUT_REPORT = [
    (offset, width)
    for width in WRITE_WIDTHS
    for offset in range(0, capability_length(_ACCESS_SLOTS), width)
    if not _covers_dev_ctrl(offset, width, _ACCESS_SLOTS)
]
_MUTABLE_FIELDS = [
    placed.path
    for placed in placed_fields(_ACCESS_SLOTS)
    if placed.field.access in (Access.RW, Access.RW1C) and placed.register.name != "dev_ctrl"
]


@st.composite
def _busy_bridge(draw: st.DrawFn) -> Rig:
    """A bridge in an arbitrary state: RW and RW1C bits, MIG_STATE, DEV_STATEs, MIG_REASON, GENERATION."""
    rig = Rig(_ACCESS_SLOTS)
    rig.set_msi(True)  # MSI: interrupts only for steps that set STATUS.EVENT, none for plain writes
    states = draw(st.lists(st.sampled_from(list(DevState)), min_size=_ACCESS_SLOTS, max_size=_ACCESS_SLOTS))
    # No settled event pending: the step that settled the slots would have raised it (VFM-MIG-007).
    rig.setup(settle_model(draw(st.sampled_from(list(MigState))), states), states)
    rig.place("mig_reason", draw(st.sampled_from(list(MigReason))))
    rig.place("generation", draw(st.integers(0, 0xFFFFFFFF)))
    for path in _MUTABLE_FIELDS:
        placed = find_field(_ACCESS_SLOTS, path)
        rig.place(path, draw(st.integers(0, (1 << placed.field.width) - 1)))
    rig.interrupts = 0
    return rig


class TestAccessRules:
    @settings(max_examples=150)
    @given(rig=_busy_bridge(), write=st.sampled_from(_WRITES_WITHOUT_REPORT), data=st.data())
    def test_writes_follow_the_write_mask_model(self, rig: Rig, write: tuple[int, int], data: st.DataObject) -> None:
        offset, width = write
        value = data.draw(st.integers(0, (1 << (8 * width)) - 1), label="value")
        before = bytes(rig.bridge.config)
        cap_before = rig.bridge.capability_bytes()
        rig.write(rig.bridge.cap + offset, width, value)
        expected = masked_write(cap_before, offset, value.to_bytes(width, "little"))
        assert rig.bridge.capability_bytes() == expected, (
            f"VFM-ACC-001: a {width}-byte write of 0x{value:x} at capability offset 0x{offset:02x}"
        )
        end = rig.bridge.cap + len(cap_before)
        assert rig.bridge.config[: rig.bridge.cap] == before[: rig.bridge.cap]
        assert rig.bridge.config[end:] == before[end:]
        assert rig.observer.rejected == [], "VFM-DEV-001: a write that leaves DEV_CTRL out is no report"
        assert rig.interrupts == 0, "VFM-ACC-004/VFM-NOTIF-002: a write that carries no report raises no interrupt"

    def test_writes_to_read_only_registers_change_nothing(self) -> None:
        rig = Rig(4)
        rig.bind(0)
        rig.events_by_msi()
        rig.bridge.start()
        rig.clear_event()
        rig.interrupts = 0
        masks = write_masks(rig.num_slots)
        before = rig.bridge.capability_bytes()
        read_only = [o for o in range(0, len(before), 4) if not any(masks.wmask[o : o + 4] + masks.w1cmask[o : o + 4])]
        assert read_only, "the layout has read-only DWORDs"
        for offset in read_only:
            rig.write(rig.bridge.cap + offset, 4, 0xFFFFFFFF)
        assert rig.bridge.capability_bytes() == before, "VFM-ACC-004: writes to RO registers change nothing"
        assert rig.interrupts == 0, "VFM-ACC-004: writes to RO registers raise no interrupt"

    @pytest.mark.parametrize("width", [2, 4, 3, 8], ids=["misaligned-2", "misaligned-4", "3-bytes", "8-bytes"])
    def test_illegal_writes_change_nothing(self, width: int) -> None:
        rig = Rig(4)
        rig.bind(0)
        rig.events_by_msi()
        rig.bridge.start()  # slot 0 in DIRTY_REQ: a DIRTYING report would be accepted
        for path in ("status.event", "device[0].dev_status.migrated", "device[0].dev_status.reset"):
            rig.place(path, 1)
        rig.interrupts = 0
        before = bytes(rig.bridge.config)
        end = rig.bridge.cap + capability_length(rig.num_slots)
        offsets = [o for o in range(rig.bridge.cap, end - width + 1) if width in (3, 8) or o % width]
        assert offsets
        for offset in offsets:
            for byte in (DriverReport.DIRTYING, 0xFF):  # a report DIRTY_REQ accepts; 1s in every RW1C bit
                rig.write(offset, width, int.from_bytes(bytes([byte] * width), "little"))
                assert bytes(rig.bridge.config) == before, (
                    f"VFM-ACC-003: a {width}-byte write of 0x{byte:02x} bytes at 0x{offset:02x} must change nothing"
                )
        assert rig.observer.rejected == []
        assert rig.interrupts == 0, "VFM-ACC-003: an illegal write takes no action"

    @settings(max_examples=100)
    @given(rig=_busy_bridge(), offset=st.integers(0, pci.PCI_CONFIG_SIZE - 1), width=st.sampled_from(WRITE_WIDTHS))
    def test_reads_change_nothing(self, rig: Rig, offset: int, width: int) -> None:
        offset = min(offset, pci.PCI_CONFIG_SIZE - width)
        before = bytes(rig.bridge.config)
        steps = len(rig.observer.causes)
        for _ in range(2):
            value = rig.bridge.config_read(offset, width)
            assert value == int.from_bytes(before[offset : offset + width], "little")
        assert bytes(rig.bridge.config) == before, f"VFM-ACC-006: a {width}-byte read at 0x{offset:02x} changed bytes"
        assert len(rig.observer.causes) == steps, "VFM-ACC-006: a read is no step"
        assert rig.interrupts == 0

    def test_mask_model_applies_before_the_report(self) -> None:
        # Spec §3.3.5 / §3.5: a 4-byte write of a slot entry that rewrites DRV_STATE and DEV_STATUS at once.
        rig = Rig(2)
        rig.bind(0)
        rig.set_control()
        rig.bridge.start()  # DIRTY_REQ: the rewritten READY has no row
        rig.place("device[0].dev_status.migrated", 1)
        entry = rig.offset("device[0].dev_state")
        word = rig.bridge.config_read(entry, 4)
        status_byte = find_field(rig.num_slots, "device[0].dev_status.migrated").offset - slot_offset(0)
        all_flags = (
            rig.mask("device[0].dev_status.migrated")
            | rig.mask("device[0].dev_status.reset")
            | rig.mask("device[0].dev_status.protocol_error")
        )
        rig.write(entry, 4, word | all_flags << (8 * status_byte))
        assert rig.bridge.dev_state(0) is DevState.DIRTY_REQ
        assert rig.value("device[0].dev_ctrl.drv_state") == DriverReport.READY
        assert rig.bridge.dev_status(0) == (False, False, True), (
            "VFM-CAP-009: the W1C bits clear first, then the rejected report sets PROTOCOL_ERROR, which stays visible"
        )
        assert rig.observer.rejected == [(0, DriverReport.READY)]


# ---------------------------------------------------------------------------------------------------------------
# Reports (VFM-DEV-001..011, VFM-MIG-008, VFM-SEC-003)


def _report_rig(mig: MigState, state: DevState, old: int, *, bme: bool = False) -> Rig:
    """Slot 0 in ``state`` with DRV_STATE ``old``; slot 1 in ERROR, which keeps every settled event away."""
    rig = Rig(2)
    rig.setup(mig, [state, DevState.ERROR])
    rig.place("device[0].dev_ctrl.drv_state", old)
    if 0 in rig.functions:
        rig.functions[0].bus_master = bme
    rig.events_by_msi()
    return rig


def _check_report(rig: Rig, written: int, *, expect: set[Judgement] | None = None) -> list[str]:
    """Write DRV_STATE = ``written`` to slot 0 and compare the bridge with the engine; the problems found."""
    engine = engine_of(rig)
    bus_master = rig.bridge.functions[0] is not None and rig.functions[0].bus_master
    verdict, effects = engine.process_report(0, written, bus_master=bus_master)
    before = rig.bridge.capability_bytes()
    rig.report(0, written)
    after = rig.bridge.capability_bytes()
    where = verdict.describe()
    seen = (
        f"DEV_STATE {rig.bridge.dev_state(0).name}, DRV_STATE {rig.value('device[0].dev_ctrl.drv_state')}, "
        f"DEV_STATUS {rig.bridge.dev_status(0)}, STATUS.EVENT {rig.value('status.event')}, "
        f"MIG_STATE {rig.bridge.mig_state.name}"
    )
    problems = []
    if expect is not None and verdict.judgement not in expect:
        problems.append(f"VFM-DEV-011: {where}: expected {sorted(j.name for j in expect)}")
    if after != expected_capability(before, effects):
        problems.append(f"VFM-DEV-002/003/010, VFM-MIG-008, VFM-NOTIF-001: {where}: {seen}")
    if verdict.judgement is Judgement.IGNORE and after != before:
        problems.append(f"VFM-DEV-003: {where} changed the capability: {seen}")
    told = [(0, written)] if verdict.judgement.rejected else []
    if rig.observer.rejected != told:
        problems.append(f"VFM-DEV-010: {where}: the observer was told {rig.observer.rejected}")
    if rig.interrupts != int(effects.sets_event):
        problems.append(f"VFM-SEC-003/VFM-NOTIF-002: {where} raised {rig.interrupts} interrupt(s)")
    return problems


class TestReports:
    @pytest.mark.parametrize("written", range(8), ids=lambda v: f"drv{v}")
    @pytest.mark.parametrize("state", list(DevState), ids=lambda s: s.name)
    def test_report_is_judged_by_the_device_table(self, state: DevState, written: int) -> None:
        problems: list[str] = []
        for mig in MigState:
            # The same value again is a report too (VFM-DEV-001), and so is a different one.
            for old in {written % 4, (written + 1) % 4}:
                problems += _check_report(_report_rig(mig, state, old), written)
        assert problems == []

    @pytest.mark.parametrize("state", [s for s in DevState if s is not DevState.EMPTY], ids=lambda s: s.name)
    def test_paused_with_bus_master_set_is_rejected(self, state: DevState) -> None:
        problems: list[str] = []
        for mig in MigState:
            rig = _report_rig(mig, state, DriverReport.DIRTYING, bme=True)
            problems += _check_report(rig, DriverReport.PAUSED, expect={Judgement.REJECT_BUS_MASTER})
        assert problems == [], "VFM-DEV-011: PAUSED while BME is set is rejected whatever the table says"

    @pytest.mark.parametrize("state", [s for s in DevState if s is not DevState.EMPTY], ids=lambda s: s.name)
    def test_none_with_bus_master_set_is_rejected_outside_idle(self, state: DevState) -> None:
        problems: list[str] = []
        for mig in MigState:
            rig = _report_rig(mig, state, DriverReport.READY, bme=True)
            allowed = {Judgement.ACCEPT, Judgement.IGNORE, Judgement.REJECT}  # in IDLE the table alone decides
            expect = allowed if mig is MigState.IDLE else {Judgement.REJECT_BUS_MASTER}
            problems += _check_report(rig, DriverReport.NONE, expect=expect)
        assert problems == [], "VFM-DEV-011: NONE while BME is set and MIG_STATE is not IDLE is rejected"

    def test_reserved_bits_of_dev_ctrl_do_not_change_the_report(self) -> None:
        rig = Rig(2)
        rig.hot_add(0)
        rig.report(0, 0xF8 | DriverReport.READY)
        assert rig.bridge.dev_state(0) is DevState.READY, "VFM-DEV-001: the event follows DRV_STATE alone"
        ctrl = rig.bridge.config[rig.offset("device[0].dev_ctrl.drv_state")]
        assert ctrl == DriverReport.READY, "RsvdP bits of DEV_CTRL keep their value (0)"

    @pytest.mark.parametrize("phase", [m for m in MigState if m in CATCH_UP], ids=lambda m: m.name)
    def test_catch_up_of_a_late_binder(self, phase: MigState) -> None:
        rig = Rig(2)
        rig.bind(0)
        rig.hot_add(1)  # no driver yet
        rig.events_by_msi()
        rig.bridge.start()
        if phase is not MigState.PREPARE:
            rig.report(0, DriverReport.DIRTYING)  # ALL_DIRTYING: PRECOPY
        if phase is MigState.PAUSING:
            rig.bridge.request_pause()
        assert mig_state(rig) is phase
        rig.clear_event()
        rig.interrupts = 0
        engine = engine_of(rig)
        engine.process_report(1, DriverReport.READY, bus_master=False)
        expected = engine.dev_state(1)
        rig.report(1, DriverReport.READY)
        assert rig.bridge.dev_state(1) is expected, (
            f"VFM-MIG-008: READY from UNBOUND in {phase.name} lands in {expected.name}"
        )
        assert rig.value("device[1].dev_ctrl.drv_state") == DriverReport.READY
        assert event_set(rig), "VFM-NOTIF-001: catch-up requests are host events and set STATUS.EVENT"
        assert rig.interrupts == 1, "VFM-NOTIF-002: one message for the step"
        assert mig_state(rig) is phase


# ---------------------------------------------------------------------------------------------------------------
# STATUS.EVENT and the event interrupt (VFM-NOTIF-001..003)


class TestEventsAndInterrupts:
    def test_status_event_follows_host_changes_only(self) -> None:
        rig = Rig(3)
        rig.hot_add(0)
        assert event_set(rig), "VFM-NOTIF-001: HOT_ADD changed a DEV_STATE"
        rig.set_msi(True)
        rig.set_control()
        assert rig.interrupts == 0, "VFM-NOTIF-002: enabling after the step sends no message"
        rig.clear_event()
        assert not event_set(rig)

        def step(action: str, expect_event: bool, expect_interrupts: int) -> None:
            assert event_set(rig) is expect_event, f"VFM-NOTIF-001: STATUS.EVENT after {action}"
            assert rig.interrupts == expect_interrupts, f"VFM-NOTIF-002: interrupts after {action}"

        rig.report(0, DriverReport.READY)
        step("a READY report in IDLE", False, 0)
        rig.bridge.start()
        step("START", True, 1)
        rig.clear_event()
        rig.report(0, DriverReport.READY)
        step("a rejected report", False, 1)
        rig.report(0, DriverReport.DIRTYING)
        step("the last DIRTYING report (ALL_DIRTYING)", True, 2)
        rig.clear_event()
        rig.report(0, DriverReport.DIRTYING)
        step("an ignored report", False, 2)
        rig.hot_add(1)
        step("HOT_ADD", True, 3)
        rig.hot_add(2)
        step("a second host step while STATUS.EVENT is still set", True, 4)
        rig.clear_event()
        rig.bridge.device_error(1)
        step("DEVICE_ERROR in UNBOUND (no change)", False, 4)
        rig.bridge.request_pause()
        step("REQUEST_PAUSE", True, 5)

    def test_one_message_per_step(self) -> None:
        rig = Rig(4)
        rig.bind(0)
        rig.bind(1)
        rig.events_by_msi()
        rig.bridge.start()
        assert rig.interrupts == 1, "VFM-NOTIF-002: START with its fan-out to two slots is one step"
        bare = Rig(4)
        bare.events_by_msi()
        bare.bridge.start()
        assert bare.bridge.mig_state is MigState.PRECOPY
        assert bare.interrupts == 1, "VFM-NOTIF-002: START and ALL_DIRTYING in one step send one message"

    def test_no_message_while_the_enables_are_clear(self) -> None:
        for enable, event_ie in ((False, True), (True, False), (False, False)):
            rig = Rig(2)
            rig.set_msi(True)
            rig.set_control(enable, event_ie)
            rig.hot_add(0)
            assert event_set(rig), "VFM-NOTIF-001: STATUS.EVENT is set whatever CONTROL says"
            assert rig.interrupts == 0, f"VFM-NOTIF-002: no message with ENABLE={enable} EVENT_IE={event_ie}"

    def test_masked_msi_is_held_pending_and_sent_on_unmask(self) -> None:
        rig = Rig(2)
        rig.events_by_msi()
        mask = rig.msi + pci.PCI_MSI_MASK_64
        rig.write(mask, 4, 1)
        rig.hot_add(0)
        assert rig.interrupts == 0, "VFM-NOTIF-002: no message while the vector is masked"
        assert rig.bridge.config[rig.msi + pci.PCI_MSI_PENDING_64] & 1, "spec §6.2: the message is held pending"
        rig.write(mask, 4, 0)
        assert rig.interrupts == 1, (
            "VFM-NOTIF-002 / spec §6.2: a message held pending while the vector is masked is sent when it is unmasked"
        )
        assert not rig.bridge.config[rig.msi + pci.PCI_MSI_PENDING_64] & 1
        rig.write(mask, 4, 1)
        rig.write(mask, 4, 0)
        assert rig.interrupts == 1, "one held message is sent once"

    def test_intx_is_a_level(self) -> None:
        rig = Rig(3)
        rig.set_control()
        assert not rig.bridge.msi_enabled
        rig.hot_add(0)
        assert intx(rig), "VFM-NOTIF-003: asserted while EVENT, ENABLE and EVENT_IE are 1"
        assert rig.interrupts == 1, "one interrupt on the rising edge"
        rig.hot_add(1)
        assert intx(rig)
        assert rig.interrupts == 1, "VFM-NOTIF-003: no second edge while the pin stays asserted"
        rig.clear_event()
        assert not intx(rig), "VFM-NOTIF-003: released when the guest clears STATUS.EVENT"
        rig.hot_add(2)
        assert intx(rig)
        assert rig.interrupts == 2
        rig.set_command(pci.PCI_COMMAND_INTX_DISABLE, True)
        assert not intx(rig), "VFM-NOTIF-003: released by Command.Interrupt Disable"
        rig.set_command(pci.PCI_COMMAND_INTX_DISABLE, False)
        assert intx(rig), "VFM-NOTIF-003: asserted again when Interrupt Disable clears"
        assert rig.interrupts == 3
        rig.set_control(enable=True, event_ie=False)
        assert not intx(rig), "VFM-NOTIF-003: released when EVENT_IE clears"
        rig.set_control()
        rig.set_msi(True)
        assert not intx(rig), "VFM-NOTIF-003: no INTx while MSI is enabled"
        assert rig.interrupts == 4

    def test_no_intx_for_a_step_that_sets_no_event(self) -> None:
        rig = Rig(2)
        rig.hot_add(0)
        rig.clear_event()
        rig.set_control()
        rig.report(0, DriverReport.READY)
        rig.report(0, DriverReport.PAUSED)  # rejected
        assert not intx(rig)
        assert rig.interrupts == 0, "VFM-SEC-003: reports that change nothing for the host raise no interrupt"


# ---------------------------------------------------------------------------------------------------------------
# Migration events: fan-out, settled events, START, CANCEL, ARRIVE (VFM-MIG-002, 006, 007, 009, VFM-FLAG-001)

_FANNED_OUT = sorted(FANOUT, key=lambda event: event.value)


def _host_event(rig: Rig, event: MigEvent) -> None:
    bridge = rig.bridge
    actions = {
        MigEvent.START: bridge.start,
        MigEvent.REQUEST_PAUSE: bridge.request_pause,
        MigEvent.CANCEL: lambda: bridge.cancel(MigReason.CANCELLED),  # as _reason gives it
        MigEvent.ARRIVE: bridge.arrive,
        MigEvent.GROUP_RESET: bridge.group_reset,
    }
    actions[event]()


@st.composite
def _migration_situations(draw: st.DrawFn) -> tuple[MigEvent, MigState, list[DevState]]:
    event = draw(st.sampled_from(_FANNED_OUT))
    mig = draw(st.sampled_from([state for state, evt in MIGRATION_TRANSITIONS if evt is event]))
    states = draw(st.lists(st.sampled_from(list(DevState)), min_size=4, max_size=4))
    # No settled event pending before the event: the step that settled the slots would have raised it.
    assume(settle_model(mig, states) is mig)
    return event, mig, states


class TestMigrationEvents:
    @settings(max_examples=150)
    @given(situation=_migration_situations())
    def test_fan_out_and_settled_events_follow_the_tables(
        self, situation: tuple[MigEvent, MigState, list[DevState]]
    ) -> None:
        event, mig, states = situation
        rig = Rig(4)
        rig.setup(mig, states)
        rig.events_by_msi()
        engine = engine_of(rig)
        effects = engine.process_migration_event(event, reason=_reason(event))
        before = rig.bridge.capability_bytes()
        _host_event(rig, event)
        assert rig.bridge.dev_states() == engine.dev_states(), f"VFM-MIG-006: fan-out of {event.name} in {mig.name}"
        assert mig_state(rig) is engine.mig_state, f"VFM-MIG-007: {event.name} in {mig.name} with {states}"
        assert rig.bridge.capability_bytes() == expected_capability(before, effects), (
            f"VFM-MIG-002/009, VFM-FLAG-001, VFM-ERR-005: the fields {event.name} sets in {mig.name}"
        )
        assert event_set(rig) is effects.sets_event, f"VFM-NOTIF-001: STATUS.EVENT after {event.name} in {mig.name}"
        assert rig.interrupts == int(effects.sets_event), "VFM-NOTIF-002: one message per step that sets STATUS.EVENT"

    def test_passing_through_states_with_no_bound_slot(self) -> None:
        rig = Rig(3)
        rig.hot_add(0)  # UNBOUND: settled for every settled event
        rig.bridge.start()
        assert mig_state(rig) is settle_model(MigState.PREPARE, rig.bridge.dev_states()) is MigState.PRECOPY
        rig.bridge.request_pause()
        assert mig_state(rig) is MigState.STOPPED, "VFM-MIG-007: REQUEST_PAUSE with no bound slot -> STOPPED"
        rig.bridge.cancel(MigReason.CANCELLED)
        assert mig_state(rig) is MigState.IDLE, "VFM-MIG-007: CANCEL from STOPPED with no bound slot -> IDLE"
        rig.bridge.start()
        rig.bridge.request_pause()
        rig.bridge.arrive()
        assert mig_state(rig) is MigState.IDLE, "VFM-MIG-007: ARRIVE with no bound slot -> IDLE"

    def test_all_paused_waits_for_the_last_slot(self) -> None:
        rig = Rig(3)
        rig.bind(0)
        rig.bind(1)
        rig.hot_add(2)
        rig.bridge.start()
        rig.report(0, DriverReport.DIRTYING)
        assert mig_state(rig) is MigState.PREPARE, "VFM-MIG-007: slot 1 has not answered"
        rig.report(1, DriverReport.DIRTYING)
        assert mig_state(rig) is MigState.PRECOPY, "VFM-MIG-007: ALL_DIRTYING with the last answer"
        rig.bridge.request_pause()
        assert rig.bridge.dev_states()[:2] == [DevState.PAUSE_REQ] * 2
        rig.report(1, DriverReport.PAUSED)
        assert mig_state(rig) is MigState.PAUSING
        rig.report(0, DriverReport.PAUSED)
        assert mig_state(rig) is MigState.STOPPED, "VFM-MIG-007: ALL_PAUSED when the last slot is PAUSED"

    def test_a_slot_in_error_keeps_resuming_unsettled(self) -> None:
        rig = Rig(2)
        rig.bind(0)
        rig.bind(1)
        rig.bridge.start()
        rig.report(0, DriverReport.DIRTYING)
        rig.report(1, DriverReport.DIRTYING)
        rig.bridge.request_pause()
        rig.bridge.device_error(1)
        rig.bridge.cancel(MigReason.DEVICE_ERROR)
        rig.report(0, DriverReport.READY)
        assert rig.bridge.dev_states() == [DevState.READY, DevState.ERROR]
        assert mig_state(rig) is MigState.RESUMING, "VFM-MIG-007: ERROR is settled for no event"
        rig.bridge.group_reset()
        assert mig_state(rig) is MigState.IDLE
        assert rig.bridge.mig_reason is MigReason.DEVICE_ERROR, "VFM-MIG-009: GROUP_RESET leaves MIG_REASON"

    def test_start_increments_generation_and_clears_the_reason(self) -> None:
        rig = Rig(2)
        rig.bind(0)
        rig.events_by_msi()
        rig.place("generation", 0xFFFFFFFF)
        rig.place("mig_reason", MigReason.CANCELLED)
        rig.bridge.start()
        assert rig.bridge.generation == 0, "VFM-MIG-002: GENERATION wraps from 0xFFFFFFFF to 0"
        assert rig.bridge.mig_reason is MigReason.NONE, "VFM-MIG-002: START sets MIG_REASON to NONE"
        assert mig_state(rig) is migration_transition(MigState.IDLE, MigEvent.START)
        assert rig.bridge.dev_state(0) is device_transition(DevState.READY, DevEvent.REQUEST_DIRTYING).next_state
        assert rig.interrupts == 1, "VFM-MIG-002: one step"
        rig.bridge.cancel(MigReason.CANCELLED)
        rig.bridge.start()
        assert rig.bridge.generation == 1

    @pytest.mark.parametrize("reason", [MigReason.NONE, MigReason.COMPLETED], ids=lambda r: r.name)
    def test_cancel_needs_a_real_reason(self, reason: MigReason) -> None:
        rig = Rig(2)
        rig.bind(0)
        rig.events_by_msi()
        rig.bridge.start()
        rig.report(0, DriverReport.DIRTYING)
        rig.interrupts = 0
        before = rig.bridge.capability_bytes()
        with pytest.raises(ProtocolError):
            rig.bridge.cancel(reason)
        assert rig.bridge.capability_bytes() == before, "VFM-MIG-010: a refused CANCEL changes nothing"
        assert rig.interrupts == 0

    @pytest.mark.parametrize("reason", [r for r in MigReason if r not in (MigReason.NONE, MigReason.COMPLETED)])
    def test_cancel_sets_the_reason_given(self, reason: MigReason) -> None:
        rig = Rig(2)
        rig.bind(0)
        rig.bridge.start()
        rig.bridge.cancel(reason)
        assert rig.bridge.mig_reason is reason, "VFM-MIG-009: CANCEL sets the reason the hypervisor gives"
        assert mig_state(rig) is migration_transition(MigState.PREPARE, MigEvent.CANCEL)

    def test_arrive_completes_and_flags_every_present_slot(self) -> None:
        rig = Rig(4)
        rig.setup(MigState.STOPPED, [DevState.PAUSED, DevState.UNBOUND, DevState.EMPTY, DevState.PAUSED])
        expected_mig, expected_states = migration_model(MigState.STOPPED, rig.bridge.dev_states(), MigEvent.ARRIVE)
        rig.bridge.arrive()  # CONTROL is 0: MIGRATED is set all the same (VFM-FLAG-001)
        assert rig.bridge.mig_reason is MigReason.COMPLETED, "VFM-MIG-009: ARRIVE sets MIG_REASON COMPLETED"
        assert mig_state(rig) is expected_mig is MigState.ARRIVED
        assert rig.bridge.dev_states() == expected_states
        migrated = [rig.bridge.dev_status(slot)[0] for slot in range(4)]
        assert migrated == [True, True, False, True], "VFM-FLAG-001: MIGRATED in every non-EMPTY slot"
        assert event_set(rig)


# ---------------------------------------------------------------------------------------------------------------
# The group reset (VFM-ERR-004, VFM-ERR-005)

_GROUP_RESET_SETUPS = {
    MigState.IDLE: [DevState.READY, DevState.UNBOUND, DevState.EMPTY, DevState.ERROR],
    MigState.RESUMING: [DevState.RESUME_REQ, DevState.READY, DevState.EMPTY, DevState.ERROR],
    MigState.ARRIVED: [DevState.REINIT_REQ, DevState.UNBOUND, DevState.EMPTY, DevState.READY],
}


class TestGroupReset:
    def test_setups_cover_every_state_that_allows_a_group_reset(self) -> None:
        assert set(_GROUP_RESET_SETUPS) == {m for m, e in MIGRATION_TRANSITIONS if e is MigEvent.GROUP_RESET}

    @pytest.mark.parametrize("mig", list(_GROUP_RESET_SETUPS), ids=lambda m: m.name)
    def test_secondary_bus_reset_edge_resets_the_group(self, mig: MigState) -> None:
        states = _GROUP_RESET_SETUPS[mig]
        rig = Rig(4)
        rig.setup(mig, states)
        rig.events_by_msi()
        rig.set_bus_reset(True)
        present = [slot for slot, state in enumerate(states) if state is not DevState.EMPTY]
        assert rig.log[0] == "secondary bus reset requested", (
            "VFM-MIG-011: the hypervisor hears of the request before the reset"
        )
        assert sorted(rig.log[1:]) == sorted(f"reset vf{slot}" for slot in present), (
            "VFM-ERR-004: every function behind the bridge is reset before the write completes"
        )
        assert all(rig.functions[slot].resets == ["group"] for slot in present)
        expected_mig, expected_states = migration_model(mig, states, MigEvent.GROUP_RESET)
        assert rig.bridge.dev_states() == expected_states, "VFM-ERR-004: the GROUP_RESET transitions"
        assert mig_state(rig) is expected_mig
        resets = [rig.bridge.dev_status(slot)[1] for slot in range(4)]
        assert resets == [state is not DevState.EMPTY for state in states], "VFM-ERR-005: RESET in non-EMPTY slots"
        assert event_set(rig)
        assert rig.interrupts == 1

        rig.clear_event()
        rig.interrupts = 0
        before = rig.bridge.capability_bytes()
        rig.set_bus_reset(True)  # already 1: no edge
        rig.write(pci.PCI_BRIDGE_CONTROL, 1, rig.bridge.config[pci.PCI_BRIDGE_CONTROL])
        assert len(rig.log) == 1 + len(present), "a write that leaves Secondary Bus Reset at 1 resets nothing"
        assert rig.bridge.capability_bytes() == before
        assert rig.interrupts == 0
        rig.set_bus_reset(False)
        assert len(rig.log) == 1 + len(present), "clearing Secondary Bus Reset resets nothing"
        rig.set_bus_reset(True)
        assert len(rig.log) == 2 * (1 + len(present)), "a new 0 -> 1 edge is a new group reset"

    def test_secondary_bus_reset_during_a_migration_after_the_hypervisor_cancels(self) -> None:
        rig = Rig(2, observer=CancellingObserver([]))
        rig.bind(0)
        rig.bridge.start()
        rig.report(0, DriverReport.DIRTYING)
        assert mig_state(rig) is MigState.PRECOPY
        rig.set_bus_reset(True)
        assert mig_state(rig) is MigState.IDLE
        assert rig.bridge.mig_reason is MigReason.PROTOCOL_ERROR, "VFM-MIG-009: the reset keeps the reason"
        assert rig.bridge.dev_state(0) is DevState.REINIT_REQ
        assert rig.functions[0].resets == ["group"]
        assert rig.bridge.dev_status(0)[1], "VFM-ERR-005"

    def test_a_group_reset_that_only_sets_flags_sets_the_event(self) -> None:
        rig = Rig(2)
        rig.hot_add(0)
        rig.events_by_msi()
        rig.bridge.group_reset()
        assert rig.bridge.dev_states() == [DevState.UNBOUND, DevState.EMPTY]
        assert rig.bridge.dev_status(0) == (False, True, False), "VFM-ERR-005"
        assert event_set(rig), "VFM-NOTIF-001: a step that sets DEV_STATUS.RESET sets STATUS.EVENT"
        assert rig.interrupts == 1

    def test_host_group_reset_in_idle_with_only_empty_slots_sets_no_event(self) -> None:
        rig = Rig(2)
        rig.events_by_msi()
        rig.bridge.group_reset()
        assert not event_set(rig), "VFM-NOTIF-001: nothing changed and no flag was set"
        assert rig.interrupts == 0


# ---------------------------------------------------------------------------------------------------------------
# Hot-plug (VFM-DEV-013)


class TestHotPlug:
    _DIRTY_ENTRY = (
        ("dev_ctrl.drv_state", DriverReport.PAUSED),
        ("dev_status.migrated", 1),
        ("dev_status.reset", 1),
        ("dev_status.protocol_error", 1),
    )

    def test_hot_add_clears_the_entry(self) -> None:
        rig = Rig(2)
        for name, value in self._DIRTY_ENTRY:
            rig.place(f"device[1].{name}", value)
        rig.hot_add(1)
        assert rig.bridge.dev_state(1) is device_transition(DevState.EMPTY, DevEvent.HOT_ADD).next_state
        assert rig.value("device[1].dev_ctrl.drv_state") == DriverReport.NONE, "VFM-DEV-013: DRV_STATE NONE"
        assert rig.bridge.dev_status(1) == (False, False, False), "VFM-DEV-013: flags cleared on HOT_ADD"

    @pytest.mark.parametrize(
        "state",
        [s for s in DevState if (s, DevEvent.SURPRISE_REMOVAL) in DEVICE_TRANSITIONS],
        ids=lambda s: s.name,
    )
    def test_surprise_removal_clears_the_entry(self, state: DevState) -> None:
        rig = Rig(2)
        rig.setup(MigState.IDLE, [DevState.EMPTY, state])
        for name, value in self._DIRTY_ENTRY:
            rig.place(f"device[1].{name}", value)
        rig.bridge.surprise_removal(1)
        assert rig.bridge.dev_state(1) is DevState.EMPTY
        assert rig.value("device[1].dev_ctrl.drv_state") == DriverReport.NONE, "VFM-DEV-013: DRV_STATE NONE"
        assert rig.bridge.dev_status(1) == (False, False, False), "VFM-DEV-013: flags cleared on SURPRISE_REMOVAL"
        assert rig.bridge.functions[1] is None

    def test_hot_add_into_an_occupied_slot_is_refused(self) -> None:
        rig = Rig(2)
        rig.hot_add(0)
        with pytest.raises(BridgeError):
            rig.hot_add(0)


# ---------------------------------------------------------------------------------------------------------------
# The destination's checks of a restored capability (spec §10.6, VFM-SEC-008)


def _stopped_source(num_slots: int = 2, **params: int) -> Rig:
    """A source bridge in STOPPED: slot 0 paused, slot 1 UNBOUND, the rest EMPTY."""
    rig = Rig(params=CapabilityParams(num_slots=num_slots, **params))
    rig.bind(0)
    if num_slots > 1:
        rig.hot_add(1)
    rig.set_control()
    rig.bridge.start()
    rig.report(0, DriverReport.DIRTYING)
    rig.bridge.request_pause()
    rig.report(0, DriverReport.PAUSED)
    assert mig_state(rig) is MigState.STOPPED
    return rig


def _destination(num_slots: int = 2, **params: int) -> MigrationBridge:
    return MigrationBridge(EventBus(SimClock()), CapabilityParams(num_slots=num_slots, **params))


def _source_bytes(**params: int) -> bytes:
    return _stopped_source(**params).bridge.capability_bytes()


def _good_with(path: str, value: int) -> bytes:
    return with_field(_source_bytes(), path, value)


_TAMPERED: dict[str, Callable[[], bytes]] = {
    "a slot in DIRTYING": partial(_good_with, "device[0].dev_state", DevState.DIRTYING),
    **{
        f"MIG_STATE {state.name}": partial(_good_with, "mig_state", state)
        for state in MigState
        if state is not MigState.STOPPED
    },
    "STATUS RsvdZ bits set": partial(_good_with, "status.reserved", 1),
    "DEV_STATUS RsvdZ bits set": partial(_good_with, "device[1].dev_status.reserved", 0x10),
    "an undefined DRV_STATE": partial(_good_with, "device[0].dev_ctrl.drv_state", 5),
    "a wrong SIGNATURE": partial(_good_with, "signature", 0x12345678),
    "VERSION_MAJOR 2": partial(_good_with, "version_major", 2),
    "different HOST_FEATURES": partial(_good_with, "host_features.migrated_flag", 0),
    "a different DEV_DEVFN": partial(_source_bytes, first_device=2),
    "a different ACK_TIMEOUT_MS": partial(_source_bytes, ack_timeout_ms=100),
    "a different PAGE_SHIFT": partial(_source_bytes, page_shift=13),
}
"""Capabilities that fail one check of spec §10.6 each."""


class TestRestore:
    def test_the_source_capability_in_stopped_is_accepted(self) -> None:
        capability = _source_bytes()
        destination = _destination()
        assert restore_problem(destination.capability_bytes(), capability, 12) is None
        destination.restore_capability(capability, dirty_page_shift=12)
        assert destination.capability_bytes() == capability, "VFM-REP-001: every byte restored"
        destination.arrive()
        assert destination.dev_states()[:2] == [DevState.REINIT_REQ, DevState.UNBOUND]

    @pytest.mark.parametrize("num_slots", [1, 3, 31])
    def test_a_different_num_slots_is_refused(self, num_slots: int) -> None:
        capability = _source_bytes(num_slots=num_slots)
        problem = restore_problem(_destination().capability_bytes(), capability, 12)
        assert problem is not None, "spec §10.6: NUM_SLOTS equals the destination's"
        assert "NUM_SLOTS" in problem

    @pytest.mark.parametrize("what", list(_TAMPERED))
    def test_each_failed_check_is_refused(self, what: str) -> None:
        capability = _TAMPERED[what]()
        destination = _destination()
        own = destination.capability_bytes()
        assert restore_problem(own, capability, 12) is not None, f"spec §10.6 / VFM-SEC-008: {what} must be refused"
        with pytest.raises(BridgeError):
            destination.restore_capability(capability, dirty_page_shift=12)
        assert destination.capability_bytes() == own, "a refused restore leaves the bridge unchanged"

    @pytest.mark.parametrize(
        ("page_shift", "dirty_page_shift"),
        [(12, 12), (12, 13), (12, 21), (13, 12), (21, 12)],
        ids=["4K-pages-4K-log", "4K-pages-8K-log", "4K-pages-2M-log", "8K-pages-4K-log", "2M-pages-4K-log"],
    )
    def test_page_shift_against_the_dirty_tracking_granularity(self, page_shift: int, dirty_page_shift: int) -> None:
        # Spec §10.6: "PAGE_SHIFT is no larger than the base-2 logarithm of the granularity at which the destination
        # tracks dirty memory" (VFM-DIRTY-007: track at 2^PAGE_SHIFT bytes or coarser).
        capability = _source_bytes(page_shift=page_shift)
        own = _destination(page_shift=page_shift).capability_bytes()
        problem = restore_problem(own, capability, dirty_page_shift)
        if page_shift <= dirty_page_shift:
            assert problem is None, (
                f"spec §10.6/VFM-DIRTY-007: PAGE_SHIFT {page_shift} with a 2^{dirty_page_shift}-byte dirty log "
                f"passes the check, but was refused: {problem}"
            )
        else:
            assert problem is not None, (
                f"spec §10.6/VFM-SEC-008: PAGE_SHIFT {page_shift} is larger than the destination's dirty tracking "
                f"granularity (2^{dirty_page_shift} bytes): the restore must be refused"
            )
