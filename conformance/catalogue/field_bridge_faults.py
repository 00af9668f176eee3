"""Field faults of the ``bridge`` target: the mistakes an author of an emulated migration bridge makes.

Written from ``spec/`` (chapters 3, 4, 6 and 7.9), :mod:`conformance.interfaces.bridge` and the reference
:class:`~reference_impl.bridge.MigrationBridge` only (issue 12, item 4), not from the suite: byte lanes and
access types, an off-by-one at the end of the slot range, status bits over hot-plug, resets and arrival,
interrupts and GENERATION.  Each class overrides one phase of the
reference bridge and breaks one requirement; the builder is that of
:mod:`conformance.catalogue.bridge_faults`.  This module is in
:data:`conformance.catalogue.PENDING_MODULES` until the suite detects every fault in it.
"""

from __future__ import annotations

from conformance.catalogue import Fault
from conformance.catalogue import bridge_faults as _bridge_builders  # registers the MigrationBridge builder
from conformance.catalogue.registry import fault, faults_in
from conformance.verdicts import Target
from reference_impl.bridge import BridgeStep, MigrationBridge, SlotFunction
from vfmig_proto.codec import find_field
from vfmig_proto.engine import Judgement, ReportVerdict
from vfmig_proto.layout import VFM_HEADER_SIZE, slot_offset
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason

_BUILDERS_USED = (_bridge_builders,)
"""Imported for its ``builds_by_keyword`` registration, which the faults below resolve at decoration."""

_DWORD = 4
_GENERATION_MAX = 0xFFFF_FFFF
_STATUS = find_field(1, "status.event").offset
"""STATUS's offset from the capability's start (the header does not depend on NUM_SLOTS)."""


def _covers(offset: int, width: int, position: int) -> bool:
    return offset <= position < offset + width


# ------------------------------------------------------------------------------------------------ byte lanes


@fault(Target.BRIDGE, breaks="VFM-ACC-001")
class WidensHeaderWritesToADword(MigrationBridge):
    """Models the capability header's registers as DWORDs: a 1- or 2-byte write to one of them is carried out
    as a 4-byte write with zeros in the lanes the guest did not enable (so clearing STATUS.EVENT with a 2-byte
    write also writes 0 to CONTROL)."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        in_header = self.cap <= offset < self.cap + VFM_HEADER_SIZE
        if in_header and width < _DWORD and width in (1, 2) and offset % width == 0:
            lane = offset % _DWORD
            super().config_write(offset - lane, _DWORD, (value << (8 * lane)) & 0xFFFF_FFFF)
            return
        super().config_write(offset, width, value)


@fault(Target.BRIDGE, breaks="VFM-ACC-001")
class ClearsTheEventOnAnyStatusWrite(MigrationBridge):
    """Treats STATUS.EVENT as clear-on-write rather than write-1-to-clear: any legal write whose byte enables
    include STATUS's low byte clears EVENT, a 0 written there included."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        super().config_write(offset, width, value)
        if width in (1, 2, 4) and offset % width == 0 and _covers(offset, width, self.cap + _STATUS):
            self.set_field("status.event", 0)
            self.update_intx()


@fault(Target.BRIDGE, breaks="VFM-ACC-003")
class AppliesUnalignedWrites(MigrationBridge):
    """Splits a write whose offset is not a multiple of its width into 1-byte writes and applies them,
    instead of ignoring it (no such PCI transaction exists)."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        if width in (1, 2, 4) and offset % width:
            for index in range(width):
                super().config_write(offset + index, 1, (value >> (8 * index)) & 0xFF)
            return
        super().config_write(offset, width, value)


@fault(Target.BRIDGE, breaks="VFM-ACC-006")
class ClearsTheEventWhenStatusIsRead(MigrationBridge):
    """Clears STATUS.EVENT when the guest reads STATUS (clear-on-read, as some UART status registers do)."""

    def config_read(self, offset: int, width: int) -> int:
        value = super().config_read(offset, width)
        if _covers(offset, width, self.cap + _STATUS) and self.field("status.event"):
            self.set_field("status.event", 0)
            self.update_intx()
        return value


# ------------------------------------------------------------------------------------------------ reports and slots


@fault(Target.BRIDGE, breaks="VFM-DEV-001")
class IgnoresReportsInTheLastSlot(MigrationBridge):
    """Looks for the DEV_CTRL bytes a write covers in slots 0 .. NUM_SLOTS - 2 (a loop bound written as
    ``num_slots - 1`` for an exclusive range): reports written to the last slot are not processed."""

    def on_driver_report(self, slot: int, old_report: int, step: BridgeStep) -> None:
        if slot < self.num_slots - 1:
            super().on_driver_report(slot, old_report, step)


@fault(Target.BRIDGE, breaks="VFM-DEV-011")
class SamplesBusMasterAtHotAdd(MigrationBridge):
    """Caches each function's Bus Master Enable when it is hot-added (always clear then) instead of reading
    the function's Command register when a report arrives: PAUSED is accepted while BME is set."""

    bme_at_hot_add: dict[int, bool] = {}  # noqa: RUF012 (replaced, never mutated: one dict per bridge)
    """Each slot's BME as sampled when its function was hot-added."""

    def hot_add(self, slot: int, function: SlotFunction) -> None:
        self.bme_at_hot_add = {**self.bme_at_hot_add, slot: function.bus_master}
        super().hot_add(slot, function)

    def bus_master(self, slot: int) -> bool:
        return self.functions[slot] is not None and self.bme_at_hot_add.get(slot, False)


# ------------------------------------------------------------------------------------------------ migration events


@fault(Target.BRIDGE, breaks="VFM-MIG-002")
class SaturatesGeneration(MigrationBridge):
    """Increments GENERATION on START with a saturating add: at 0xFFFFFFFF it stays there instead of
    wrapping to 0."""

    def migration_event(self, event: MigEvent, step: BridgeStep, reason: MigReason | None = None) -> None:
        saturated = event is MigEvent.START and self.generation == _GENERATION_MAX
        super().migration_event(event, step, reason)
        if saturated:
            self.set_field("generation", _GENERATION_MAX)


@fault(Target.BRIDGE, breaks="VFM-FLAG-001")
class MarksOnlyBoundSlotsMigrated(MigrationBridge):
    """On ARRIVE sets DEV_STATUS.MIGRATED only in slots that a driver is bound to, not in UNBOUND ones (whose
    driver, loaded later, would need it)."""

    def migration_event(self, event: MigEvent, step: BridgeStep, reason: MigReason | None = None) -> None:
        super().migration_event(event, step, reason)
        if event is MigEvent.ARRIVE:
            for slot in range(self.num_slots):
                if self.dev_state(slot) is DevState.UNBOUND:
                    self.set_field(f"device[{slot}].dev_status.migrated", 0)


@fault(Target.BRIDGE, breaks="VFM-FLAG-002")
class ClearsMigratedOnReady(MigrationBridge):
    """Clears DEV_STATUS.MIGRATED when it accepts a READY report, taking the report as the driver's
    acknowledgement of the migration."""

    def apply_report(self, verdict: ReportVerdict, step: BridgeStep) -> None:
        super().apply_report(verdict, step)
        if verdict.judgement is Judgement.ACCEPT and verdict.written == DriverReport.READY:
            self.set_field(f"device[{verdict.slot}].dev_status.migrated", 0)


@fault(Target.BRIDGE, breaks="VFM-DEV-013")
class KeepsTheSlotStatusOverHotPlug(MigrationBridge):
    """Leaves DEV_STATUS and DEV_CTRL as they were when a function is surprise-removed or hot-added: the
    next function in the slot starts with its predecessor's PROTOCOL_ERROR, MIGRATED and RESET."""

    def slot_event(self, slot: int, event: DevEvent, step: BridgeStep) -> None:
        if event not in (DevEvent.SURPRISE_REMOVAL, DevEvent.HOT_ADD):
            super().slot_event(slot, event, step)
            return
        entry = self.cap + slot_offset(slot)
        kept = bytes(self.config[entry + 1 : entry + 3])
        super().slot_event(slot, event, step)
        self.config[entry + 1 : entry + 3] = kept


# ------------------------------------------------------------------------------------------------ resets


@fault(Target.BRIDGE, breaks="VFM-ERR-004")
class HostGroupResetSkipsUnboundFunctions(MigrationBridge):
    """A group reset the host initiates resets the functions of the slots it moves to REINIT_REQ, not the
    functions of UNBOUND slots (those have no driver to reinitialise them)."""

    def group_reset(self) -> None:
        step = self.begin_step("group_reset")
        unbound = [slot for slot in range(self.num_slots) if self.dev_state(slot) is DevState.UNBOUND]
        self.migration_event(MigEvent.GROUP_RESET, step)
        for slot, function in enumerate(self.functions):
            if function is not None and slot not in unbound:
                function.function_level_reset("group")
        self.finish_step(step)


@fault(Target.BRIDGE, breaks="VFM-ERR-005")
class FlagsResetOnlyWhereADriverIsBound(MigrationBridge):
    """On GROUP_RESET sets DEV_STATUS.RESET only in the slots it moves to REINIT_REQ, not in UNBOUND slots."""

    def reset_group(self, step: BridgeStep) -> None:
        unbound = [slot for slot in range(self.num_slots) if self.dev_state(slot) is DevState.UNBOUND]
        super().reset_group(step)
        for slot in unbound:
            self.set_field(f"device[{slot}].dev_status.reset", 0)


# ------------------------------------------------------------------------------------------------ interrupts


@fault(Target.BRIDGE, breaks="VFM-NOTIF-002")
class SendsMsiOnlyOnTheEventsRisingEdge(MigrationBridge):
    """Sends an MSI message only when STATUS.EVENT goes from 0 to 1, as for a level: a step that sets EVENT
    while the guest has not cleared it yet sends none."""

    event_before_step = False
    """STATUS.EVENT as the step found it."""

    def finish_step(self, step: BridgeStep) -> None:
        self.event_before_step = bool(self.field("status.event"))
        super().finish_step(step)

    def signal_event(self) -> None:
        if not self.event_before_step:
            super().signal_event()


CATALOGUE: list[Fault] = faults_in(__name__)
