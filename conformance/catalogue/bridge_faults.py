"""Deliberately faulty migration bridges: each a small variation of the reference that breaks one rule.

The ``bridge`` suite (:mod:`conformance.suites.bridge`) must find every one of
them and name the requirement it breaks (``tests/test_conformance_bridge.py``,
``python -m conformance.detection --target bridge``).  Each fault is a
subclass of the reference :class:`~reference_impl.bridge.MigrationBridge`
that overrides one of its public phases (or bends one mask); a phase that
commits the protocol engine's effects may bend them first
(:meth:`~vfmig_proto.engine.Effects.filter`).  :class:`FaultyBridge` makes it
a ``bridge`` implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass, replace

from conformance.catalogue import Fault
from conformance.catalogue.registry import builds_by_keyword, fault, faults_in
from conformance.verdicts import Target
from reference_impl.bridge import MSI_OFFSET, SHPC_OFFSET, BridgeStep, MigrationBridge
from reference_impl.events import EventBus
from vfmig_proto import engine, registers
from vfmig_proto.engine import Judgement, ReportVerdict, StateField
from vfmig_proto.layout import CapabilityParams, capability_length
from vfmig_proto.pci import PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET, PCI_CAPABILITY_LIST, PCI_SHPC_DWORD_DATA
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState
from vfmig_proto.transitions import FANOUT, settled


@dataclass(frozen=True)
class FaultyBridge:
    """A ``bridge`` implementation that makes bridges of a (faulty) :class:`MigrationBridge` subclass."""

    bridge_class: type[MigrationBridge] = MigrationBridge

    def create_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        return self.bridge_class(bus, params, name=name)


builds_by_keyword(FaultyBridge, bridge_class=MigrationBridge)


class _MaskedBridge(MigrationBridge):
    """A bridge whose per-byte write masks differ from the layout's at some capability offsets."""

    wmask_changes: tuple[tuple[int, int], ...] = ()
    """``(capability offset, bits)`` to add to the write mask."""
    w1cmask_changes: tuple[tuple[int, int], ...] = ()
    """``(capability offset, bits)`` to take out of the write-1-to-clear mask."""

    def __init__(self, bus: EventBus, params: CapabilityParams | None = None, *, name: str = "bridge") -> None:
        super().__init__(bus, params, name=name)
        wmask, w1cmask = bytearray(self.wmask), bytearray(self.w1cmask)
        for offset, bits in self.wmask_changes:
            wmask[self.cap + offset] |= bits
        for offset, bits in self.w1cmask_changes:
            w1cmask[self.cap + offset] &= ~bits & 0xFF
        self.wmask, self.w1cmask = bytes(wmask), bytes(w1cmask)


# ---------------------------------------------------------------------------------------------- access rules


@fault(Target.BRIDGE, breaks="VFM-SEC-001")
class MigStateWritable(_MaskedBridge):
    """MIG_STATE takes whatever the guest writes to it."""

    wmask_changes = ((registers.VFM_MIG_STATE, 0x03),)  # two bits: every value written is a state that exists


@fault(Target.BRIDGE, breaks="VFM-ACC-001")
class EventWrittenNotCleared(_MaskedBridge):
    """STATUS.EVENT is read-write: a written 1 sets it and a written 0 clears it."""

    wmask_changes = ((registers.VFM_STATUS, 0x01),)
    w1cmask_changes = ((registers.VFM_STATUS, 0x01),)


@fault(Target.BRIDGE, breaks="VFM-ACC-001")
class ReservedBitsStored(_MaskedBridge):
    """The RsvdP bits of CONTROL store what the guest writes instead of keeping their value."""

    wmask_changes = (
        (registers.VFM_CONTROL, 0xFC),
        (registers.VFM_CONTROL + 1, 0xFF),
    )


@fault(Target.BRIDGE, breaks="VFM-CAP-007")
class AckTimeoutWritable(_MaskedBridge):
    """ACK_TIMEOUT_MS takes whatever the guest writes to it."""

    wmask_changes = (
        (registers.VFM_ACK_TIMEOUT_MS, 0xFF),
        (registers.VFM_ACK_TIMEOUT_MS + 1, 0xFF),
    )


class _BytewiseBridge(MigrationBridge):
    """A bridge that carries out some of the guest's writes as one 1-byte write per byte."""

    def splits(self, offset: int, width: int) -> bool:
        """Whether the write of ``width`` bytes at ``offset`` is carried out byte by byte."""
        return False

    def config_write(self, offset: int, width: int, value: int) -> None:
        if not self.splits(offset, width):
            super().config_write(offset, width, value)
            return
        for index, byte in enumerate(value.to_bytes(width, "little")):
            super().config_write(offset + index, 1, byte)


@fault(Target.BRIDGE, breaks="VFM-ACC-003")
class AppliesIllegalWrites(_BytewiseBridge):
    """An unaligned or odd-sized write is carried out byte by byte instead of being dropped."""

    def splits(self, offset: int, width: int) -> bool:
        return width not in (1, 2, 4) or offset % width != 0


@fault(Target.BRIDGE, breaks="VFM-ACC-007")
class SplitsWideWrites(_BytewiseBridge):
    """A 2- or 4-byte write is carried out as that many 1-byte writes, each a step of its own."""

    def splits(self, offset: int, width: int) -> bool:
        return width in (2, 4) and offset % width == 0


@fault(Target.BRIDGE, breaks="VFM-SEC-002")
class RemembersWrites(MigrationBridge):
    """Every guest configuration write is kept in a log that nothing ever empties."""

    def __init__(self, bus: EventBus, params: CapabilityParams | None = None, *, name: str = "bridge") -> None:
        super().__init__(bus, params, name=name)
        self.history: list[tuple[int, int, int]] = []

    def config_write(self, offset: int, width: int, value: int) -> None:
        self.history.append((offset, width, value))
        super().config_write(offset, width, value)


@fault(Target.BRIDGE, breaks="VFM-SEC-002")
class SlowsWithWrites(MigrationBridge):
    """Each guest configuration write does work in proportion to the number of writes before it."""

    writes_so_far = 0

    def config_write(self, offset: int, width: int, value: int) -> None:
        self.writes_so_far += 1
        for _ in range(self.writes_so_far):  # a scan over everything written so far, as an audit pass would make
            pass
        super().config_write(offset, width, value)


@fault(Target.BRIDGE, breaks="VFM-ACC-006")
class ReadClearsEvent(MigrationBridge):
    """A read that covers STATUS clears STATUS.EVENT, as if reading acknowledged the event."""

    def config_read(self, offset: int, width: int) -> int:
        value = super().config_read(offset, width)
        status = self.cap + registers.VFM_STATUS
        if offset <= status < offset + width:
            self.config[status] &= 0xFE
            self.update_intx()
        return value


@fault(Target.BRIDGE, breaks="VFM-GEN-001")
class BigEndianReads(MigrationBridge):
    """Multi-byte reads of the capability return its bytes in big-endian order."""

    def config_read(self, offset: int, width: int) -> int:
        value = super().config_read(offset, width)
        if width > 1 and self.cap <= offset < self.cap + capability_length(self.num_slots):
            return int.from_bytes(value.to_bytes(width, "little"), "big")
        return value


@fault(Target.BRIDGE, breaks="VFM-CAP-001")
class CapabilityNotLinked(MigrationBridge):
    """The Capabilities Pointer skips the migration capability: a guest walking the list never finds it."""

    def __init__(self, bus: EventBus, params: CapabilityParams | None = None, *, name: str = "bridge") -> None:
        super().__init__(bus, params, name=name)
        self.config[PCI_CAPABILITY_LIST] = MSI_OFFSET


@fault(Target.BRIDGE, breaks="VFM-CAP-006")
class IgnoresAckTimeoutParameter(MigrationBridge):
    """ACK_TIMEOUT_MS always reads 500, whatever the hypervisor configured."""

    def __init__(self, bus: EventBus, params: CapabilityParams | None = None, *, name: str = "bridge") -> None:
        super().__init__(bus, replace(params or CapabilityParams(), ack_timeout_ms=500), name=name)


# ---------------------------------------------------------------------------------------------- reports


@fault(Target.BRIDGE, breaks="VFM-DEV-003")
class RejectsIgnoredReports(MigrationBridge):
    """A report the device table ignores (a stale answer) is rejected and sets PROTOCOL_ERROR."""

    def judge_report(self, slot: int, old_report: int, written: int, bus_master: bool) -> ReportVerdict:
        verdict = super().judge_report(slot, old_report, written, bus_master)
        if verdict.judgement is Judgement.IGNORE:
            return replace(verdict, judgement=Judgement.REJECT, reason="a stale report taken for an error")
        return verdict


@fault(Target.BRIDGE, breaks="VFM-DEV-010")
class RejectionKeepsDrvState(MigrationBridge):
    """A rejected report sets PROTOCOL_ERROR but leaves the rejected value in DRV_STATE."""

    def report_rejected(self, verdict: ReportVerdict) -> None:
        super().report_rejected(verdict)
        self.set_field(f"device[{verdict.slot}].dev_ctrl.drv_state", verdict.written)


@fault(Target.BRIDGE, breaks="VFM-SEC-003")
class RejectionRaisesEvent(MigrationBridge):
    """A rejected report sets STATUS.EVENT and signals the event interrupt."""

    def report_rejected(self, verdict: ReportVerdict) -> None:
        super().report_rejected(verdict)
        self.set_field("status.event", 1)
        self.signal_event()


@fault(Target.BRIDGE, breaks="VFM-DEV-011")
class PausedAcceptedWithBusMaster(MigrationBridge):
    """A PAUSED report is judged by the table alone, even while the function's BME is set."""

    def judge_report(self, slot: int, old_report: int, written: int, bus_master: bool) -> ReportVerdict:
        bus_master_seen = bus_master and written != DriverReport.PAUSED  # out of sight for PAUSED
        return super().judge_report(slot, old_report, written, bus_master_seen)


@fault(Target.BRIDGE, breaks="VFM-DEV-001")
class RepeatedReportIgnored(MigrationBridge):
    """A write that repeats the value DRV_STATE already holds is not taken for a report."""

    def on_driver_report(self, slot: int, old_report: int, step: BridgeStep) -> None:
        if self.field(f"device[{slot}].dev_ctrl.drv_state") == old_report:
            return
        super().on_driver_report(slot, old_report, step)


@fault(Target.BRIDGE, breaks="VFM-MIG-008", leaves_out="catch_up")
class NoCatchUp(MigrationBridge):
    """A driver that binds during a migration stays READY: no catch-up requests."""


@fault(Target.BRIDGE, breaks="VFM-DEV-004")
class SettlesAtNextAccess(MigrationBridge):
    """A settled event that a report causes is raised at the guest's next configuration access, not in the write."""

    in_write = False
    owed = False

    def config_read(self, offset: int, width: int) -> int:
        self.pay_owed()
        return super().config_read(offset, width)

    def config_write(self, offset: int, width: int, value: int) -> None:
        self.pay_owed()
        self.in_write = True
        try:
            super().config_write(offset, width, value)
        finally:
            self.in_write = False

    def settle(self, step: BridgeStep) -> None:
        if self.in_write and self.engine.due_settled_events():
            self.owed = True  # left for later, as a deferred handler would
            return
        super().settle(step)

    def pay_owed(self) -> None:
        if self.owed:
            self.owed = False
            self.finish_step(self.begin_step("deferred"))


@fault(Target.BRIDGE, breaks="VFM-FLAG-002")
class ReadyClearsMigrated(MigrationBridge):
    """An accepted READY report clears DEV_STATUS.MIGRATED, as if the driver had acknowledged it."""

    def apply_report(self, verdict: ReportVerdict, step: BridgeStep) -> None:
        super().apply_report(verdict, step)
        if verdict.judgement is Judgement.ACCEPT and verdict.event is DevEvent.DRIVER_READY:
            self.set_field(f"device[{verdict.slot}].dev_status.migrated", 0)


# ---------------------------------------------------------------------------------------------- migration events


def _without_writes_of(*fields: StateField, slots: Container[int] | None = None) -> Callable[[engine.Change], bool]:
    """An :meth:`~vfmig_proto.engine.Effects.filter` predicate that keeps every change but the writes of ``fields``.

    With ``slots``, only the writes in those slots are left out.
    """

    def keep(change: engine.Change) -> bool:
        if not isinstance(change, engine.FieldWrite) or change.field not in fields:
            return True
        return slots is not None and change.slot not in slots

    return keep


@fault(Target.BRIDGE, breaks="VFM-MIG-007")
class NoAllPaused(MigrationBridge):
    """The bridge never raises ALL_PAUSED: PAUSING never becomes STOPPED."""

    def settle(self, step: BridgeStep) -> None:
        if self.mig_state is MigState.PAUSING:
            return
        super().settle(step)


@fault(Target.BRIDGE, breaks="VFM-DEV-012")
class ResumesWithoutRow(MigrationBridge):
    """ALL_RESUMED is raised whenever every slot is READY, EMPTY or UNBOUND, also where MIG_STATE has no row for it."""

    def settle(self, step: BridgeStep) -> None:
        super().settle(step)
        old = self.mig_state
        if old is MigState.IDLE or not settled(MigEvent.ALL_RESUMED, self.dev_states()):
            return
        # What ALL_RESUMED leads to where it has a row, committed as if the table had one here.
        self.commit(engine.Effects((engine.MigrationTransition(MigEvent.ALL_RESUMED, old, MigState.IDLE),)), step)


@fault(Target.BRIDGE, breaks="VFM-MIG-002")
class GenerationFrozen(MigrationBridge):
    """START leaves GENERATION as it was."""

    def start(self) -> None:
        generation = self.generation
        super().start()
        self.set_field("generation", generation)


@fault(Target.BRIDGE, breaks="VFM-MIG-009")
class CancelKeepsReason(MigrationBridge):
    """CANCEL leaves MIG_REASON as it was instead of setting the hypervisor's reason."""

    def cancel(self, reason: MigReason) -> None:
        kept = self.mig_reason
        super().cancel(reason)
        self.set_field("mig_reason", kept)


@fault(Target.BRIDGE, breaks="VFM-FLAG-001")
class UnboundNotFlaggedOnArrive(MigrationBridge):
    """ARRIVE sets DEV_STATUS.MIGRATED only in slots that have a driver, not in UNBOUND ones."""

    def migration_event(self, event: MigEvent, step: BridgeStep, reason: MigReason | None = None) -> None:
        if event is not MigEvent.ARRIVE:
            super().migration_event(event, step, reason)
            return
        unbound = {slot for slot, state in enumerate(self.dev_states()) if state is DevState.UNBOUND}
        keep = _without_writes_of(StateField.MIGRATED, slots=unbound)
        self.commit(self.engine.migration_event(event).filter(keep), step)


@fault(Target.BRIDGE, breaks="VFM-MIG-006")
class FanOutSkipsOddSlots(MigrationBridge):
    """The fan-out of a migration event reaches only the even-numbered slots."""

    def migration_event(self, event: MigEvent, step: BridgeStep, reason: MigReason | None = None) -> None:
        def keep(change: engine.Change) -> bool:
            return not (
                isinstance(change, engine.DeviceTransition) and change.slot % 2 == 1 and change.event in FANOUT.values()
            )

        self.commit(self.engine.migration_event(event, reason=reason).filter(keep), step)


@fault(Target.BRIDGE, breaks="VFM-DEV-013")
class HotAddKeepsStatus(MigrationBridge):
    """HOT_ADD and SURPRISE_REMOVAL reset DRV_STATE but leave the slot's DEV_STATUS flags set."""

    def slot_event(self, slot: int, event: DevEvent, step: BridgeStep) -> None:
        keep = _without_writes_of(StateField.MIGRATED, StateField.RESET, StateField.PROTOCOL_ERROR)
        self.commit(self.engine.slot_event(slot, event).filter(keep), step)


# ---------------------------------------------------------------------------------------------- group reset


@fault(Target.BRIDGE, breaks="VFM-ERR-004")
class ResetOnFallingEdge(MigrationBridge):
    """The group reset happens when the guest clears Secondary Bus Reset (1 -> 0), not when it sets it."""

    def on_guest_write(self, offset: int, width: int, before: bytes, step: BridgeStep) -> None:
        if not offset <= PCI_BRIDGE_CONTROL < offset + width:
            super().on_guest_write(offset, width, before, step)
            return
        # The reference resets on a 0 -> 1 edge; show it the bit inverted on both sides of the write.
        flipped = bytearray(before)
        flipped[PCI_BRIDGE_CONTROL - offset] ^= PCI_BRIDGE_CTL_BUS_RESET
        self.config[PCI_BRIDGE_CONTROL] ^= PCI_BRIDGE_CTL_BUS_RESET
        try:
            super().on_guest_write(offset, width, bytes(flipped), step)
        finally:
            self.config[PCI_BRIDGE_CONTROL] ^= PCI_BRIDGE_CTL_BUS_RESET


@fault(Target.BRIDGE, breaks="VFM-ERR-005")
class NoResetFlag(MigrationBridge):
    """A group reset resets the functions and moves the states, but never sets DEV_STATUS.RESET."""

    def reset_group(self, step: BridgeStep) -> None:
        keep = _without_writes_of(StateField.RESET)
        self.commit(self.engine.migration_event(MigEvent.GROUP_RESET).filter(keep), step)
        for function in self.functions:
            if function is not None:
                function.function_level_reset("group")


# ---------------------------------------------------------------------------------------------- notification


@fault(Target.BRIDGE, breaks="VFM-NOTIF-001")
class NoEventOnArrive(MigrationBridge):
    """The ARRIVE step forgets to set STATUS.EVENT (and so to interrupt)."""

    arriving = False

    def arrive(self) -> None:
        self.arriving = True
        try:
            super().arrive()
        finally:
            self.arriving = False

    def finish_step(self, step: BridgeStep) -> None:
        super().finish_step(BridgeStep(step.causes) if self.arriving else step)


@fault(Target.BRIDGE, breaks="VFM-NOTIF-002")
class InterruptsWithoutEventIe(MigrationBridge):
    """The event interrupt is gated by CONTROL.ENABLE alone: EVENT_IE is not looked at."""

    @property
    def events_enabled(self) -> bool:
        return bool(self.field("control.enable"))


@fault(Target.BRIDGE, breaks="VFM-NOTIF-002")
class TwoMessagesPerStep(MigrationBridge):
    """Every MSI message is sent twice."""

    def send_msi(self) -> None:
        super().send_msi()
        super().send_msi()


@fault(Target.BRIDGE, breaks="VFM-NOTIF-003")
class IntxPulsesPerStep(MigrationBridge):
    """INTx is treated as an edge per step: every step that sets STATUS.EVENT asserts the pin anew."""

    def finish_step(self, step: BridgeStep) -> None:
        if step.sets_event:
            self.intx_asserted = False
        super().finish_step(step)


@fault(Target.BRIDGE, breaks="VFM-NOTIF-004")
class ShpcShowsMigrationEvents(MigrationBridge):
    """Every step that sets STATUS.EVENT also advances a count in the SHPC's DWORD Data window."""

    def finish_step(self, step: BridgeStep) -> None:
        super().finish_step(step)
        if step.sets_event:
            data = SHPC_OFFSET + PCI_SHPC_DWORD_DATA
            self.config[data] = (self.config[data] + 1) & 0xFF


# ---------------------------------------------------------------------------------------------- versioning

_OVERRUN_FEATURE = 0x10
"""Byte 0 of HOST_FEATURES and GUEST_FEATURES: feature bit 4, the event overrun of an imagined version 1.1."""
_OVERRUN_STATUS = 0x02
"""STATUS bit 1 (RsvdZ in version 1.0): version 1.1's RW1C EVENT_OVERRUN."""


class LaterMinorBridge(MigrationBridge):
    """A conformant bridge of an imagined version 1.1 (not a fault): the suite judges it as a 1.0 bridge.

    Version 1.1 offers feature bit 4, event overrun: while the guest accepts it, a step that sets STATUS.EVENT
    while it is still 1 also sets STATUS bit 1 (RW1C), so that the guest learns it missed an event.  Towards a
    guest that leaves GUEST_FEATURES bit 4 clear, the bridge behaves as a version 1.0 bridge (spec §9.4).
    """

    def __init__(self, bus: EventBus, params: CapabilityParams | None = None, *, name: str = "bridge") -> None:
        super().__init__(bus, params, name=name)
        wmask, w1cmask = bytearray(self.wmask), bytearray(self.w1cmask)
        wmask[self.cap + registers.VFM_GUEST_FEATURES] |= _OVERRUN_FEATURE
        w1cmask[self.cap + registers.VFM_STATUS] |= _OVERRUN_STATUS
        self.wmask, self.w1cmask = bytes(wmask), bytes(w1cmask)
        self.present_version()

    def conventional_reset(self) -> None:
        super().conventional_reset()
        self.present_version()

    def present_version(self) -> None:
        self.config[self.cap + registers.VFM_VERSION_MINOR] = 1
        self.config[self.cap + registers.VFM_HOST_FEATURES] |= _OVERRUN_FEATURE

    def overrun_accepted(self) -> bool:
        return bool(self.config[self.cap + registers.VFM_GUEST_FEATURES] & _OVERRUN_FEATURE)

    def finish_step(self, step: BridgeStep) -> None:
        if step.sets_event and self.field("status.event") and self.overrun_accepted():
            self.config[self.cap + registers.VFM_STATUS] |= _OVERRUN_STATUS
        super().finish_step(step)


@fault(Target.BRIDGE, breaks="VFM-VER-006")
class LaterMinorUngated(LaterMinorBridge):
    """A version 1.1 bridge whose event overrun bit works even while the guest has not accepted the feature."""

    def overrun_accepted(self) -> bool:
        return True


# ---------------------------------------------------------------------------------------------- factories


def later_minor_bridge() -> FaultyBridge:
    """The conformant version 1.1 bridge (for the suite's own tests; not in :data:`CATALOGUE`)."""
    return FaultyBridge(LaterMinorBridge)


CATALOGUE: list[Fault] = faults_in(__name__)
"""The faulty bridges the ``bridge`` suite must catch, with the requirement each breaks."""
