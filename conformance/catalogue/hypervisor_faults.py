"""Deliberately faulty hypervisors: each a small variation of the reference that breaks one requirement.

The conformance suite must find every one of them and name the requirement it
breaks (``tests/test_conformance_hypervisor.py``, ``tox -e detection``).  Each
fault changes one method of the reference
:class:`~reference_impl.hypervisor.Hypervisor`,
:class:`~reference_impl.hypervisor.SourceMigration` or
:class:`~reference_impl.hypervisor.DestinationMigration`;
:class:`FaultyHypervisor` puts them together as a ``hypervisor`` implementation.
A fault overrides one of the reference's public extension points (its phases),
or leaves one out (``@fault(..., leaves_out=PHASE)``), never a private member,
and is registered once, with ``@fault``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from conformance.catalogue import Fault
from conformance.catalogue.registry import builds_by_keyword, fault, faults_in
from conformance.verdicts import Target, Verdict
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.factories import ReferenceHypervisor
from reference_impl.guest import Guest
from reference_impl.hypervisor import (
    DestinationMigration,
    Hypervisor,
    SourceMigration,
)
from reference_impl.memory import DirtyLogReadError, GuestMemory, Pages
from vfmig_proto.codec import find_field, store_field
from vfmig_proto.states import DevState, MigReason, MigState


class FaultyHost(Hypervisor):
    """The reference host, with the classes of its two sides of a migration open to substitution."""

    # source_class and destination_class come from the reference Hypervisor; each fault substitutes one.


@dataclass(frozen=True)
class FaultyHypervisor(ReferenceHypervisor):
    """A ``hypervisor`` implementation whose hosts are ``host_class``."""

    host_class: type[Hypervisor] = FaultyHost


def _host(
    source: type[SourceMigration] = SourceMigration, destination: type[DestinationMigration] = DestinationMigration
) -> FaultyHypervisor:
    host = type("Host", (FaultyHost,), {"source_class": source, "destination_class": destination})
    return FaultyHypervisor(cast("type[Hypervisor]", host))


builds_by_keyword(_host, source=SourceMigration, destination=DestinationMigration)
builds_by_keyword(FaultyHypervisor, host_class=Hypervisor)


# ---------------------------------------------------------------------------------------------- the source: start


@fault(Target.HYPERVISOR, breaks="VFM-MIG-001")
class StartsWithAFailedSlot(SourceMigration):
    """Counts a slot in ERROR among those a migration may start with."""

    def check_slot_may_start(self, slot: int, state: DevState, *, guest_enabled: bool) -> None:
        if state is not DevState.ERROR:
            super().check_slot_may_start(slot, state, guest_enabled=guest_enabled)


@fault(Target.HYPERVISOR, breaks="VFM-DIRTY-005")
class EnablesTheDirtyLogLate(SourceMigration):
    """Issues START first and turns the CPU dirty log on afterwards."""

    def enable_dirty_log(self) -> None:
        return  # not before START ...

    def issue_start(self) -> None:
        super().issue_start()
        super().enable_dirty_log()  # ... but after it


@fault(Target.HYPERVISOR, breaks="VFM-DIRTY-006")
class SendsBeforePrecopy(SourceMigration):
    """Begins the first round, the one that sends every page, as soon as the bridge is in PREPARE."""

    def enter_phase(self, old: MigState, new: MigState) -> None:
        super().enter_phase(old, new)
        if new is MigState.PREPARE:
            sender = self.stream()
            sender.enqueue_all()
            sender.send_for(self.config.quantum_ns)


@fault(Target.HYPERVISOR, breaks="VFM-VER-007", leaves_out="check_tracking")
class AcceptsAFineTrackingDestination(FaultyHost):
    """Takes a guest whatever the granularity of its own dirty tracking."""


# ---------------------------------------------------------------------------------------------- the source: deadlines


@fault(Target.HYPERVISOR, breaks="VFM-TMO-004")
class HalvesTheDeadlines(SourceMigration):
    """Measures ACK_TIMEOUT_MS as half of what the capability says."""

    def __init__(self, host: Hypervisor, destination: Hypervisor, number: int) -> None:
        super().__init__(host, destination, number)
        self.ack_timeout_ns //= 2


@fault(Target.HYPERVISOR, breaks="VFM-TMO-003", leaves_out="pausing_deadline")
class NeverTimesOutAPause(SourceMigration):
    """Waits for every PAUSED report however long it takes."""


@fault(Target.HYPERVISOR, breaks="VFM-TMO-005", leaves_out="resuming_deadline")
class NeverResetsOnResumeDeadline(SourceMigration):
    """Waits for every resume however long it takes."""


@fault(Target.HYPERVISOR, breaks="VFM-TIME-001", leaves_out="start_precopy_limit")
class IgnoresThePrecopyLimit(SourceMigration):
    """Keeps pre-copying until the dirty pages fit the downtime budget, however long that takes."""


@fault(Target.HYPERVISOR, breaks="VFM-TIME-002", verdict=Verdict.WARN)
class SwitchesOverAfterTheFirstRound(SourceMigration):
    """Requests the pause after round 1, whatever is left to send."""

    def converged(self) -> bool:
        return True


@fault(Target.HYPERVISOR, breaks="VFM-TIME-003", verdict=Verdict.WARN)
class StopsSendingWhenPausing(SourceMigration):
    """Stops the migration stream at REQUEST_PAUSE until the vCPUs stop."""

    def send_quantum(self) -> int:
        return 0 if self.phase() is MigState.PAUSING else super().send_quantum()


@fault(Target.HYPERVISOR, breaks="VFM-DEST-005", leaves_out="stop_copy_limit_passed")
class NoStopCopyLimit(SourceMigration):
    """Waits for the destination's confirmation for ever."""


# ---------------------------------------------------------------------------------------------- the source: causes


@fault(Target.HYPERVISOR, breaks="VFM-CANCEL-001")
class CancelsADeviceErrorAsCancelled(SourceMigration):
    """Cancels with CANCELLED, not DEVICE_ERROR, when a slot enters ERROR."""

    def cancel(self, reason: MigReason, note: str | None = None) -> None:
        super().cancel(MigReason.CANCELLED if reason is MigReason.DEVICE_ERROR else reason, note)


@fault(Target.HYPERVISOR, breaks="VFM-ERR-002", leaves_out="reset_failed_functions")
class NoGroupResetAfterDeviceError(SourceMigration):
    """Cancels for a failed function but leaves the group reset to the guest."""


@fault(Target.HYPERVISOR, breaks="VFM-MIG-011", leaves_out="check_guest_consent")
class IgnoresConsentWithdrawal(SourceMigration):
    """Goes on when the guest clears CONTROL.ENABLE or a feature it had accepted."""


@fault(Target.HYPERVISOR, breaks="VFM-DEST-001", leaves_out="destination_failed")
class IgnoresDestinationFailure(SourceMigration):
    """Does not listen to a destination that reports it cannot take the guest (the stop-and-copy limit still acts)."""


# ------------------------------------------------------------------------------------------ the source: stop-and-copy


@fault(Target.HYPERVISOR, breaks="VFM-MIG-003", leaves_out="stop_vcpus")
class KeepsTheVcpusRunning(SourceMigration):
    """Does not stop the guest's vCPUs in STOPPED."""


@fault(Target.HYPERVISOR, breaks="VFM-CANCEL-005")
class UnmapsTheFunctionsInStopped(SourceMigration):
    """Takes the guest's memory out of the functions' IOMMU mappings as soon as the vCPUs stop."""

    def enter_stopped(self) -> None:
        super().enter_stopped()
        for function in self.host.slot_functions.values():
            function.memory = None


@fault(Target.HYPERVISOR, breaks="VFM-MIG-012")
class NoBusMasterCheckInStopped(SourceMigration):
    """Skips the read of every function's Command register before the final read of the dirty log."""

    def bus_masters_clear(self) -> bool:
        return True


@fault(Target.HYPERVISOR, breaks="VFM-FLOW-001")
class DropsTheFinalDirtyRead(SourceMigration):
    """Reads the dirty log a last time in STOPPED and drops what it held."""

    def final_dirty_pages(self) -> Pages:
        super().final_dirty_pages()
        return np.empty(0, dtype=np.int64)


@fault(Target.HYPERVISOR, breaks="VFM-DEST-002")
class ResumesTheSourceAfterHandover(SourceMigration):
    """Runs the guest's vCPUs on the source again once the destination has taken it over."""

    def destination_confirmed(self) -> None:
        guest: Guest | None = self.host.guest
        super().destination_confirmed()
        if guest is not None and self.record.ended:
            guest.run(self.host.name)


@fault(Target.HYPERVISOR, breaks="VFM-CANCEL-002")
class HotPlugsDuringMigration(FaultyHost):
    """Hot-adds a function behind the bridge whenever the management layer asks, migration or not."""

    def assign_function(self, slot: int, identity: FunctionIdentity | None = None) -> VirtualFunction:
        outgoing, self.outgoing = self.outgoing, None
        try:
            return super().assign_function(slot, identity)
        finally:
            self.outgoing = outgoing


@fault(Target.HYPERVISOR, breaks="VFM-SEC-006", leaves_out="reset_before_release")
class KeepsTheSourceFunctions(FaultyHost):
    """Frees the guest's memory after the handover without resetting the functions that could reach it."""


# ---------------------------------------------------------------------------------------------- the destination


@fault(Target.HYPERVISOR, breaks="VFM-MIG-005")
class EnablesTheFreshFunctions(DestinationMigration):
    """Sets Bus Master Enable on the functions it placed as soon as the guest runs, before the driver's READY."""

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        super().go(guest, source_memory)
        for function in self.host.slot_functions.values():
            function.set_bus_master(True)


@fault(Target.HYPERVISOR, breaks="VFM-FLOW-003")
class RunsBeforeArrive(DestinationMigration):
    """Runs the guest's vCPUs first and issues ARRIVE just after."""

    def arrive_and_run(self, guest: Guest) -> None:
        self.run_guest(guest)
        self.arrive()


@fault(Target.HYPERVISOR, breaks="VFM-REP-001")
class RestoresItsOwnGeneration(DestinationMigration):
    """Restores the capability from the stream but keeps its own bridge's GENERATION."""

    def receive_state(self, config: bytes, bars: dict[int, tuple[int, ...]] | None = None) -> None:
        super().receive_state(config, bars)
        bridge = self.bridge
        if bridge is not None:
            store_field(bridge.config, find_field(bridge.num_slots, "generation"), 0, bridge.cap)


# ---------------------------------------------------------------------------------------------- the host

_LAST_GUEST_SLOT = 2
"""The suite asks for functions in slots 0 to 2 for the guest's drivers; a slot beyond is a spare function."""


@fault(Target.HYPERVISOR, breaks="VFM-DISC-002")
class AssignsBesideTheBridge(FaultyHost):
    """Puts a function asked for beyond slot 2 on the guest's root bus, not behind the migration bridge.

    It is the guest's all the same (its DMA reaches the guest's memory, its interrupts the guest), and the host
    still migrates the guest.
    """

    def assign_function(self, slot: int, identity: FunctionIdentity | None = None) -> VirtualFunction:
        if slot <= _LAST_GUEST_SLOT:
            return super().assign_function(slot, identity)
        function = self.new_function(identity)
        function.memory = self.memory
        if self.guest is not None:
            function.interrupt_sink = self.guest.inject_device_interrupt
        return function


@fault(Target.HYPERVISOR, breaks="VFM-DISC-003")
class PlacesFunctionsAtTheirSlotNumber(FaultyHost):
    """Puts the function of slot N at device number N of the secondary bus, whatever DEV_DEVFN says."""

    def function_at(self, devfn: int) -> VirtualFunction | None:
        return self.slot_functions.get(devfn >> 3) if devfn & 0x7 == 0 else None


@fault(Target.HYPERVISOR, breaks="VFM-CAP-008", leaves_out="cancel_migration_for_reset")
class ResetsTheBridgeMidMigration(FaultyHost):
    """Carries out a conventional reset of the bridge at once, migration or not."""


# ---------------------------------------------------------------------------------------------- more of the source


@fault(Target.HYPERVISOR, breaks="VFM-DIRTY-008")
class IgnoresALostDirtyLog(SourceMigration):
    """Reads the dirty log's bits only: when the log says it lost entries (every page dirty), it sends nothing."""

    def read_dirty_log(self) -> Pages:
        pages = super().read_dirty_log()
        return pages[:0] if pages.size == self.host.memory.log.num_pages else pages  # (the overflow, taken for noise)


@fault(Target.HYPERVISOR, breaks="VFM-DIRTY-008")
class ShrugsOffAFailedLogRead(SourceMigration):
    """Takes a dirty log read that failed for an empty one, and carries on."""

    def read_dirty_log(self) -> Pages:
        try:
            return self.host.memory.log.harvest()
        except DirtyLogReadError:
            return np.empty(0, dtype=np.int64)


@fault(Target.HYPERVISOR, breaks="VFM-SEC-004")
class ForgetsTheLogOnPausedReports(SourceMigration):
    """Takes a driver's report in PAUSING for the end of its dirtying, and forgets what the log held."""

    def bridge_stepped(self, cause: str) -> None:
        if cause == "guest" and not self.record.ended and self.phase() is MigState.PAUSING:
            self.host.memory.log.harvest()
        super().bridge_stepped(cause)


@fault(Target.HYPERVISOR, breaks="VFM-SEC-005")
class CompletesOnTheLastPausedReport(SourceMigration):
    """Takes the guest's last PAUSED report for the end of the migration: no wait for the destination."""

    def stop_and_copy(self) -> None:
        if not self.record.ended and self.phase() is MigState.STOPPED:
            self.destination_confirmed()


@fault(Target.HYPERVISOR, breaks="VFM-NOTIF-005")
class AnnouncesTheMigrationThroughTheFunctions(SourceMigration):
    """Injects each function's interrupt at START, so that the drivers look at the bridge at once."""

    def start(self) -> None:
        super().start()
        guest = self.host.guest
        if guest is not None:
            for function in self.host.slot_functions.values():
                guest.inject_device_interrupt(function.name)


@fault(Target.HYPERVISOR, breaks="VFM-DEV-012")
class CancelsWhileResuming(SourceMigration):
    """Passes the management layer's CANCEL to the bridge in RESUMING too, where the migration table has no row."""

    def cancel(self, reason: MigReason, note: str | None = None) -> None:
        if not self.record.ended and self.phase() is MigState.RESUMING:
            self.bridge.cancel(reason)
            return
        super().cancel(reason, note)


# ---------------------------------------------------------------------------------------------- more of the destination


@fault(Target.HYPERVISOR, breaks="VFM-GEN-002")
class MeasuresDowntimeOnTheGuestClock(DestinationMigration):
    """Times the downtime with the guest's clock, which stood still while the vCPUs were stopped."""

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        super().go(guest, source_memory)
        record = self.source.record
        if record.resumed_ns is not None and record.stopped_ns is not None:
            record.resumed_ns = record.stopped_ns


@fault(Target.HYPERVISOR, breaks="VFM-MIG-013")
class KicksTheArrivedFunctions(DestinationMigration):
    """Injects an interrupt of each function it placed as the guest arrives, before any driver's READY."""

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        super().go(guest, source_memory)
        if guest is not None and self.bridge is not None:
            for function in self.host.slot_functions.values():
                guest.inject_device_interrupt(function.name)


@fault(Target.HYPERVISOR, breaks="VFM-DIRTY-007")
class TracksInHalfPages(DestinationMigration):
    """Makes its copy of the arriving guest's memory, and so its dirty log of it, in half the bridge's pages."""

    def __init__(self, host: Hypervisor, source: SourceMigration) -> None:
        super().__init__(host, source)
        memory = source.host.memory
        self.memory = host.make_memory(memory.size_bytes, memory.page_shift - 1, False)


@fault(Target.HYPERVISOR, breaks="VFM-SEC-007")
class MapsTheSourceCopy(DestinationMigration):
    """Maps the functions it placed to the source's copy of the guest's memory, not to its own."""

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        super().go(guest, source_memory)
        for function in self.host.slot_functions.values():
            function.memory = source_memory


CATALOGUE: list[Fault] = faults_in(__name__)
"""The faulty ``hypervisor`` implementations and the requirement each breaks."""
