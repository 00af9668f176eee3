"""Deliberately faulty migration bridges: each a small variation of the reference that breaks one rule.

The ``bridge`` suite (:mod:`conformance.suites.bridge`) must find every one of
them and name the requirement it breaks (``tests/test_conformance_bridge.py``,
``python -m conformance.detection --target bridge``).  Each fault is a
subclass of the reference :class:`~reference_impl.bridge.MigrationBridge`
that changes one method or one mask; :class:`FaultyBridge` makes it a
``bridge`` implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from conformance.catalogue import Fault
from conformance.catalogue.registry import builds, fault, faults_in
from conformance.verdicts import Target
from reference_impl.bridge import MSI_OFFSET, SHPC_OFFSET, MigrationBridge, _Step
from reference_impl.events import EventBus, EventKind
from vfmig_proto.codec import read_field
from vfmig_proto.layout import CapabilityParams, capability_length
from vfmig_proto.pci import PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET, PCI_CAPABILITY_LIST, PCI_SHPC_DWORD_DATA
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState
from vfmig_proto.transitions import (
    DEVICE_TRANSITIONS,
    FANOUT,
    MIGRATION_TRANSITIONS,
    REPORT_EVENTS,
    SETTLED_STATES,
    Action,
)

# Capability offsets of the registers the faults bend (spec §3.2).
_CONTROL = 0x14
_STATUS = 0x16
_MIG_STATE = 0x18
_ACK_TIMEOUT_MS = 0x1A


@dataclass(frozen=True)
class FaultyBridge:
    """A ``bridge`` implementation that makes bridges of a (faulty) :class:`MigrationBridge` subclass."""

    bridge_class: type[MigrationBridge] = MigrationBridge

    def create_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        return self.bridge_class(bus, params, name=name)


@builds(MigrationBridge)
def _with_bridge(bridge_class: type[MigrationBridge]) -> FaultyBridge:
    return FaultyBridge(bridge_class)


class _MaskedBridge(MigrationBridge):
    """A bridge whose per-byte write masks differ from the layout's at some capability offsets."""

    wmask_changes: tuple[tuple[int, int], ...] = ()
    """``(capability offset, bits)`` to add to the write mask."""
    w1cmask_changes: tuple[tuple[int, int], ...] = ()
    """``(capability offset, bits)`` to take out of the write-1-to-clear mask."""

    def __init__(self, bus: EventBus, params: CapabilityParams | None = None, *, name: str = "bridge") -> None:
        super().__init__(bus, params, name=name)
        wmask, w1cmask = bytearray(self._wmask), bytearray(self._w1cmask)
        for offset, bits in self.wmask_changes:
            wmask[self.cap + offset] |= bits
        for offset, bits in self.w1cmask_changes:
            w1cmask[self.cap + offset] &= ~bits & 0xFF
        self._wmask, self._w1cmask = bytes(wmask), bytes(w1cmask)


# ---------------------------------------------------------------------------------------------- access rules


@fault(Target.BRIDGE, breaks="VFM-SEC-001")
class MigStateWritable(_MaskedBridge):
    """MIG_STATE takes whatever the guest writes to it."""

    wmask_changes = ((_MIG_STATE, 0x03),)  # two bits: every value written is a state that exists


@fault(Target.BRIDGE, breaks="VFM-ACC-001")
class EventWrittenNotCleared(_MaskedBridge):
    """STATUS.EVENT is read-write: a written 1 sets it and a written 0 clears it."""

    wmask_changes = ((_STATUS, 0x01),)
    w1cmask_changes = ((_STATUS, 0x01),)


@fault(Target.BRIDGE, breaks="VFM-ACC-001")
class ReservedBitsStored(_MaskedBridge):
    """The RsvdP bits of CONTROL store what the guest writes instead of keeping their value."""

    wmask_changes = (
        (_CONTROL, 0xFC),
        (_CONTROL + 1, 0xFF),
    )


@fault(Target.BRIDGE, breaks="VFM-CAP-007")
class AckTimeoutWritable(_MaskedBridge):
    """ACK_TIMEOUT_MS takes whatever the guest writes to it."""

    wmask_changes = (
        (_ACK_TIMEOUT_MS, 0xFF),
        (_ACK_TIMEOUT_MS + 1, 0xFF),
    )


@fault(Target.BRIDGE, breaks="VFM-ACC-003")
class AppliesIllegalWrites(MigrationBridge):
    """An unaligned or odd-sized write is carried out byte by byte instead of being dropped."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        if width in (1, 2, 4) and offset % width == 0:
            super().config_write(offset, width, value)
            return
        for index, byte in enumerate(value.to_bytes(width, "little")):
            super().config_write(offset + index, 1, byte)


@fault(Target.BRIDGE, breaks="VFM-ACC-007")
class SplitsWideWrites(MigrationBridge):
    """A 2- or 4-byte write is carried out as that many 1-byte writes, each a step of its own."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        if width not in (2, 4) or offset % width:
            super().config_write(offset, width, value)
            return
        for index, byte in enumerate(value.to_bytes(width, "little")):
            super().config_write(offset + index, 1, byte)


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

    _writes = 0

    def config_write(self, offset: int, width: int, value: int) -> None:
        self._writes += 1
        for _ in range(self._writes):  # a scan over everything written so far, as an audit pass would make
            pass
        super().config_write(offset, width, value)


@fault(Target.BRIDGE, breaks="VFM-ACC-006")
class ReadClearsEvent(MigrationBridge):
    """A read that covers STATUS clears STATUS.EVENT, as if reading acknowledged the event."""

    def config_read(self, offset: int, width: int) -> int:
        value = super().config_read(offset, width)
        status = self.cap + _STATUS
        if offset <= status < offset + width:
            self.config[status] &= 0xFE
            self._update_intx()
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

    def _driver_report(self, slot: int, old_report: int, step: _Step) -> None:
        written = read_field(self.config, self._f.drv_state[slot], self.cap)
        state = self.dev_state(slot)
        if written in DriverReport._value2member_map_:
            outcome = DEVICE_TRANSITIONS.get((state, REPORT_EVENTS[DriverReport(written)]))
            if outcome is not None and outcome.action is Action.IGNORE:
                self._reject(slot, old_report, written, state, "a stale report taken for an error")
                return
        super()._driver_report(slot, old_report, step)


@fault(Target.BRIDGE, breaks="VFM-DEV-010")
class RejectionKeepsDrvState(MigrationBridge):
    """A rejected report sets PROTOCOL_ERROR but leaves the rejected value in DRV_STATE."""

    def _reject(self, slot: int, old_report: int, written: int, state: DevState, why: str) -> None:
        super()._reject(slot, old_report, written, state, why)
        self._set(self._f.drv_state[slot], written)


@fault(Target.BRIDGE, breaks="VFM-SEC-003")
class RejectionRaisesEvent(MigrationBridge):
    """A rejected report sets STATUS.EVENT and signals the event interrupt."""

    def _reject(self, slot: int, old_report: int, written: int, state: DevState, why: str) -> None:
        super()._reject(slot, old_report, written, state, why)
        self._set(self._f.event, 1)
        self._signal()


@fault(Target.BRIDGE, breaks="VFM-DEV-011")
class PausedAcceptedWithBusMaster(MigrationBridge):
    """A PAUSED report is judged by the table alone, even while the function's BME is set."""

    def _driver_report(self, slot: int, old_report: int, step: _Step) -> None:
        written = read_field(self.config, self._f.drv_state[slot], self.cap)
        function = self.functions[slot]
        if written != DriverReport.PAUSED or function is None:
            super()._driver_report(slot, old_report, step)
            return
        self.functions[slot] = None  # out of sight: its BME is not looked at
        try:
            super()._driver_report(slot, old_report, step)
        finally:
            self.functions[slot] = function


@fault(Target.BRIDGE, breaks="VFM-DEV-001")
class RepeatedReportIgnored(MigrationBridge):
    """A write that repeats the value DRV_STATE already holds is not taken for a report."""

    def _driver_report(self, slot: int, old_report: int, step: _Step) -> None:
        if read_field(self.config, self._f.drv_state[slot], self.cap) == old_report:
            return
        super()._driver_report(slot, old_report, step)


@fault(Target.BRIDGE, breaks="VFM-MIG-008")
class NoCatchUp(MigrationBridge):
    """A driver that binds during a migration stays READY: no catch-up requests."""

    _reporting = False

    def _driver_report(self, slot: int, old_report: int, step: _Step) -> None:
        self._reporting = True
        try:
            super()._driver_report(slot, old_report, step)
        finally:
            self._reporting = False

    def _host_device_event(self, slot: int, event: DevEvent, step: _Step) -> None:
        if self._reporting and event in (DevEvent.REQUEST_DIRTYING, DevEvent.REQUEST_PAUSE):
            return
        super()._host_device_event(slot, event, step)


@fault(Target.BRIDGE, breaks="VFM-DEV-004")
class SettlesAtNextAccess(MigrationBridge):
    """A settled event that a report causes is raised at the guest's next configuration access, not in the write."""

    _in_write = False
    _owed = False

    def config_read(self, offset: int, width: int) -> int:
        self._pay()
        return super().config_read(offset, width)

    def config_write(self, offset: int, width: int, value: int) -> None:
        self._pay()
        self._in_write = True
        try:
            super().config_write(offset, width, value)
        finally:
            self._in_write = False

    def _settle(self, step: _Step) -> None:
        if self._in_write and any(
            (self.mig_state, event) in MIGRATION_TRANSITIONS and all(state in allowed for state in self.dev_states())
            for event, allowed in SETTLED_STATES.items()
        ):
            self._owed = True  # left for later, as a deferred handler would
            return
        super()._settle(step)

    def _pay(self) -> None:
        if self._owed:
            self._owed = False
            self._finish(_Step(causes=["deferred"]))


@fault(Target.BRIDGE, breaks="VFM-FLAG-002")
class ReadyClearsMigrated(MigrationBridge):
    """An accepted READY report clears DEV_STATUS.MIGRATED, as if the driver had acknowledged it."""

    def _set_dev_state(self, slot: int, new: DevState, event: DevEvent, old: DevState) -> None:
        super()._set_dev_state(slot, new, event, old)
        if event is DevEvent.DRIVER_READY:
            self._set(self._f.migrated[slot], 0)


# ---------------------------------------------------------------------------------------------- migration events


@fault(Target.BRIDGE, breaks="VFM-MIG-007")
class NoAllPaused(MigrationBridge):
    """The bridge never raises ALL_PAUSED: PAUSING never becomes STOPPED."""

    def _settle(self, step: _Step) -> None:
        if self.mig_state is MigState.PAUSING:
            return
        super()._settle(step)


@fault(Target.BRIDGE, breaks="VFM-DEV-012")
class ResumesWithoutRow(MigrationBridge):
    """ALL_RESUMED is raised whenever every slot is READY, EMPTY or UNBOUND, also where MIG_STATE has no row for it."""

    def _settle(self, step: _Step) -> None:
        super()._settle(step)
        old = self.mig_state
        if old is MigState.IDLE or not all(
            state in SETTLED_STATES[MigEvent.ALL_RESUMED] for state in self.dev_states()
        ):
            return
        self._set(self._f.mig_state, MigState.IDLE)  # what ALL_RESUMED leads to where it has a row
        step.mig_state_changed = True
        self.bus.publish(EventKind.MIG_TRANSITION, self.name, event=MigEvent.ALL_RESUMED, old=old, new=MigState.IDLE)


@fault(Target.BRIDGE, breaks="VFM-MIG-002")
class GenerationFrozen(MigrationBridge):
    """START leaves GENERATION as it was."""

    def start(self) -> None:
        generation = self.generation
        super().start()
        self._set(self._f.generation, generation)


@fault(Target.BRIDGE, breaks="VFM-MIG-009")
class CancelKeepsReason(MigrationBridge):
    """CANCEL leaves MIG_REASON as it was instead of setting the hypervisor's reason."""

    def cancel(self, reason: MigReason) -> None:
        kept = self.mig_reason
        super().cancel(reason)
        self._set(self._f.mig_reason, kept)


@fault(Target.BRIDGE, breaks="VFM-FLAG-001")
class UnboundNotFlaggedOnArrive(MigrationBridge):
    """ARRIVE sets DEV_STATUS.MIGRATED only in slots that have a driver, not in UNBOUND ones."""

    def arrive(self) -> None:
        step = _Step(causes=["arrive"])
        self._migration_event(MigEvent.ARRIVE, step)
        self._set(self._f.mig_reason, MigReason.COMPLETED)
        for slot, state in enumerate(self.dev_states()):
            if state not in (DevState.EMPTY, DevState.UNBOUND):
                self._set(self._f.migrated[slot], 1)
                step.flag_set = True
        self._finish(step)


@fault(Target.BRIDGE, breaks="VFM-MIG-006")
class FanOutSkipsOddSlots(MigrationBridge):
    """The fan-out of a migration event reaches only the even-numbered slots."""

    _fanning = False

    def _migration_event(self, event: MigEvent, step: _Step) -> None:
        self._fanning = True
        try:
            super()._migration_event(event, step)
        finally:
            self._fanning = False

    def _host_device_event(self, slot: int, event: DevEvent, step: _Step) -> None:
        if self._fanning and slot % 2 == 1 and event in FANOUT.values():
            return
        super()._host_device_event(slot, event, step)


@fault(Target.BRIDGE, breaks="VFM-DEV-013")
class HotAddKeepsStatus(MigrationBridge):
    """HOT_ADD and SURPRISE_REMOVAL reset DRV_STATE but leave the slot's DEV_STATUS flags set."""

    def _clear_slot_registers(self, slot: int) -> None:
        self._set(self._f.drv_state[slot], 0)


# ---------------------------------------------------------------------------------------------- group reset


@fault(Target.BRIDGE, breaks="VFM-ERR-004")
class ResetOnFallingEdge(MigrationBridge):
    """The group reset happens when the guest clears Secondary Bus Reset (1 -> 0), not when it sets it."""

    def _after_guest_write(self, offset: int, width: int, before: bytes, step: _Step) -> None:
        if not offset <= PCI_BRIDGE_CONTROL < offset + width:
            super()._after_guest_write(offset, width, before, step)
            return
        # The reference resets on a 0 -> 1 edge; show it the bit inverted on both sides of the write.
        flipped = bytearray(before)
        flipped[PCI_BRIDGE_CONTROL - offset] ^= PCI_BRIDGE_CTL_BUS_RESET
        self.config[PCI_BRIDGE_CONTROL] ^= PCI_BRIDGE_CTL_BUS_RESET
        try:
            super()._after_guest_write(offset, width, bytes(flipped), step)
        finally:
            self.config[PCI_BRIDGE_CONTROL] ^= PCI_BRIDGE_CTL_BUS_RESET


@fault(Target.BRIDGE, breaks="VFM-ERR-005")
class NoResetFlag(MigrationBridge):
    """A group reset resets the functions and moves the states, but never sets DEV_STATUS.RESET."""

    def _group_reset(self, step: _Step) -> None:
        self._migration_event(MigEvent.GROUP_RESET, step)
        for function in self.functions:
            if function is not None:
                function.function_level_reset("group")


# ---------------------------------------------------------------------------------------------- notification


@fault(Target.BRIDGE, breaks="VFM-NOTIF-001")
class NoEventOnArrive(MigrationBridge):
    """The ARRIVE step forgets to set STATUS.EVENT (and so to interrupt)."""

    _arriving = False

    def arrive(self) -> None:
        self._arriving = True
        try:
            super().arrive()
        finally:
            self._arriving = False

    def _finish(self, step: _Step) -> None:
        super()._finish(_Step(causes=step.causes) if self._arriving else step)


@fault(Target.BRIDGE, breaks="VFM-NOTIF-002")
class InterruptsWithoutEventIe(MigrationBridge):
    """The event interrupt is gated by CONTROL.ENABLE alone: EVENT_IE is not looked at."""

    @property
    def _enabled_for_events(self) -> bool:
        return bool(self.field("control.enable"))


@fault(Target.BRIDGE, breaks="VFM-NOTIF-002")
class TwoMessagesPerStep(MigrationBridge):
    """Every MSI message is sent twice."""

    def _send_msi(self) -> None:
        super()._send_msi()
        super()._send_msi()


@fault(Target.BRIDGE, breaks="VFM-NOTIF-003")
class IntxPulsesPerStep(MigrationBridge):
    """INTx is treated as an edge per step: every step that sets STATUS.EVENT asserts the pin anew."""

    def _finish(self, step: _Step) -> None:
        if step.sets_event:
            self._intx_asserted = False
        super()._finish(step)


@fault(Target.BRIDGE, breaks="VFM-NOTIF-004")
class ShpcShowsMigrationEvents(MigrationBridge):
    """Every step that sets STATUS.EVENT also advances a count in the SHPC's DWORD Data window."""

    def _finish(self, step: _Step) -> None:
        super()._finish(step)
        if step.sets_event:
            data = SHPC_OFFSET + PCI_SHPC_DWORD_DATA
            self.config[data] = (self.config[data] + 1) & 0xFF


# ---------------------------------------------------------------------------------------------- versioning

_VERSION_MINOR = 0x09
_HOST_FEATURES = 0x0C
_GUEST_FEATURES = 0x10
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
        wmask, w1cmask = bytearray(self._wmask), bytearray(self._w1cmask)
        wmask[self.cap + _GUEST_FEATURES] |= _OVERRUN_FEATURE
        w1cmask[self.cap + _STATUS] |= _OVERRUN_STATUS
        self._wmask, self._w1cmask = bytes(wmask), bytes(w1cmask)
        self._present_version()

    def conventional_reset(self) -> None:
        super().conventional_reset()
        self._present_version()

    def _present_version(self) -> None:
        self.config[self.cap + _VERSION_MINOR] = 1
        self.config[self.cap + _HOST_FEATURES] |= _OVERRUN_FEATURE

    def _overrun_accepted(self) -> bool:
        return bool(self.config[self.cap + _GUEST_FEATURES] & _OVERRUN_FEATURE)

    def _finish(self, step: _Step) -> None:
        if step.sets_event and self.field("status.event") and self._overrun_accepted():
            self.config[self.cap + _STATUS] |= _OVERRUN_STATUS
        super()._finish(step)


@fault(Target.BRIDGE, breaks="VFM-VER-006")
class LaterMinorUngated(LaterMinorBridge):
    """A version 1.1 bridge whose event overrun bit works even while the guest has not accepted the feature."""

    def _overrun_accepted(self) -> bool:
        return True


# ---------------------------------------------------------------------------------------------- factories


def later_minor_bridge() -> FaultyBridge:
    """The conformant version 1.1 bridge (for the suite's own tests; not in :data:`CATALOGUE`)."""
    return FaultyBridge(LaterMinorBridge)


CATALOGUE: list[Fault] = faults_in(__name__)
"""The faulty bridges the ``bridge`` suite must catch, with the requirement each breaks."""
