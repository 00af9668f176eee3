"""Deliberately faulty hypervisors: each a small variation of the reference that breaks one requirement.

The conformance suite must find every one of them and name the requirement it
breaks (``tests/test_conformance_hypervisor.py``, ``tox -e detection``).  Each
fault changes one method of the reference
:class:`~reference_impl.hypervisor.Hypervisor`,
:class:`~reference_impl.hypervisor.SourceMigration` or
:class:`~reference_impl.hypervisor.DestinationMigration`;
:class:`FaultyHypervisor` puts them together as a ``hypervisor`` implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import cast

import numpy as np

from conformance.catalogue import Fault
from conformance.verdicts import Target, Verdict
from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.events import EventBus, EventKind
from reference_impl.guest import Guest
from reference_impl.hypervisor import (
    BridgeFactory,
    DestinationMigration,
    FunctionFactory,
    Hypervisor,
    MigrationConfig,
    MigrationError,
    SourceMigration,
)
from reference_impl.memory import DirtyLogReadError, GuestMemory, Pages
from vfmig_proto.codec import find_field, store_field
from vfmig_proto.states import DevState, MigReason, MigState

_MODULE = "conformance.catalogue.hypervisor_faults"


class FaultyHost(Hypervisor):
    """The reference host, with the classes of its two sides of a migration open to substitution."""

    # source_class and destination_class come from the reference Hypervisor; each fault substitutes one.


@dataclass(frozen=True)
class FaultyHypervisor:
    """A ``hypervisor`` implementation whose hosts are ``host_class``."""

    host_class: type[Hypervisor] = FaultyHost

    def create_hypervisor(
        self,
        name: str,
        clock: SimClock,
        bus: EventBus,
        config: MigrationConfig,
        *,
        functions: FunctionFactory,
        bridges: BridgeFactory | None,
    ) -> Hypervisor:
        return self.host_class(name, clock, bus, config, functions=functions, bridges=bridges)


def _host(
    source: type[SourceMigration] = SourceMigration, destination: type[DestinationMigration] = DestinationMigration
) -> FaultyHypervisor:
    host = type("Host", (FaultyHost,), {"source_class": source, "destination_class": destination})
    return FaultyHypervisor(cast("type[Hypervisor]", host))


def _nothing() -> None:
    return


def _bars(function: VirtualFunction) -> tuple[int, ...]:
    return tuple(function.config_read(offset, 4) for offset in range(0x10, 0x28, 4))


# ---------------------------------------------------------------------------------------------- the source: start


class StartsWithAFailedSlot(SourceMigration):
    """Counts a slot in ERROR among those a migration may start with."""

    def _check_start(self) -> None:
        bridge = self.bridge
        if bridge.mig_state is not MigState.IDLE:
            raise MigrationError(f"MIG_STATE is {bridge.mig_state.name}, not IDLE")
        if bridge.secondary_bus_reset:
            raise MigrationError("the bridge's Secondary Bus Reset bit is set")
        consent = ("control.enable", "guest_features.dma_dirty", "guest_features.pause_resume")
        enabled = all(bridge.field(path) for path in consent)
        for slot, state in enumerate(bridge.dev_states()):
            if state not in (DevState.EMPTY, DevState.UNBOUND, DevState.READY, DevState.ERROR):  # (ERROR: the fault)
                raise MigrationError(f"slot {slot} is {state.name}")
            function = self.host.slot_functions.get(slot)
            if state is DevState.UNBOUND and function is not None and function.bus_master:
                raise MigrationError(f"slot {slot} is UNBOUND and its function has Bus Master Enable set")
            if state is DevState.READY and not enabled:
                raise MigrationError(f"slot {slot} is READY but the guest has not enabled the protocol")


class EnablesTheDirtyLogLate(SourceMigration):
    """Issues START first and turns the CPU dirty log on afterwards."""

    def start(self) -> None:
        log = self.host.memory.log
        enable = log.enable
        setattr(log, "enable", _nothing)  # noqa: B010 - the reference's start() would turn it on before START ...
        try:
            super().start()
        finally:
            delattr(log, "enable")
        enable()  # ... and this one turns it on only now, after START


class SendsBeforePrecopy(SourceMigration):
    """Begins the first round, the one that sends every page, as soon as the bridge is in PREPARE."""

    def _enter(self, old: MigState, new: MigState) -> None:
        super()._enter(old, new)
        if new is MigState.PREPARE:
            sender = self._sender()
            sender.enqueue_all()
            sender.send_for(self.config.quantum_ns)


class AcceptsAFineTrackingDestination(FaultyHost):
    """Takes a guest whatever the granularity of its own dirty tracking."""

    def prepare_incoming(self, source: SourceMigration) -> DestinationMigration:
        if self.guest is not None or self.incoming is not None:
            raise MigrationError(f"destination {self.name} is busy")
        incoming = self.destination_class(self, source)
        self.incoming = incoming
        return incoming


# ---------------------------------------------------------------------------------------------- the source: deadlines


class HalvesTheDeadlines(SourceMigration):
    """Measures ACK_TIMEOUT_MS as half of what the capability says."""

    def __init__(self, host: Hypervisor, destination: Hypervisor, number: int) -> None:
        super().__init__(host, destination, number)
        self.ack_timeout_ns //= 2


class NeverTimesOutAPause(SourceMigration):
    """Waits for every PAUSED report however long it takes."""

    def _pausing_deadline(self) -> None:
        return


class NeverResetsOnResumeDeadline(SourceMigration):
    """Waits for every resume however long it takes."""

    def _resuming_deadline(self) -> None:
        return


class IgnoresThePrecopyLimit(SourceMigration):
    """Keeps pre-copying until the dirty pages fit the downtime budget, however long that takes."""

    def _begin_precopy(self) -> None:
        super()._begin_precopy()
        self.clock.cancel(self._precopy_timer)


class SwitchesOverAfterTheFirstRound(SourceMigration):
    """Requests the pause after round 1, whatever is left to send."""

    def _converged(self) -> bool:
        return True


class StopsSendingWhenPausing(SourceMigration):
    """Stops the migration stream at REQUEST_PAUSE until the vCPUs stop."""

    def _tick(self) -> None:
        if self._state is MigState.PAUSING:
            self._tick_timer = None
            self._schedule_tick()
            return
        super()._tick()


class NoStopCopyLimit(SourceMigration):
    """Waits for the destination's confirmation for ever."""

    def _stop_copy_limit(self) -> None:
        return


# ---------------------------------------------------------------------------------------------- the source: causes


class CancelsADeviceErrorAsCancelled(SourceMigration):
    """Cancels with CANCELLED, not DEVICE_ERROR, when a slot enters ERROR."""

    def device_error(self) -> None:
        self._group_reset_due = True
        if self._state in (MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED):
            self.cancel(MigReason.CANCELLED)
        self._group_reset_if_due()


class NoGroupResetAfterDeviceError(SourceMigration):
    """Cancels for a failed function but leaves the group reset to the guest."""

    def _group_reset_if_due(self) -> None:
        self._group_reset_due = False


class IgnoresConsentWithdrawal(SourceMigration):
    """Goes on when the guest clears CONTROL.ENABLE or a feature it had accepted."""

    def _check_guest_conditions(self) -> None:
        return


class IgnoresDestinationFailure(SourceMigration):
    """Does not listen to a destination that reports it cannot take the guest (the stop-and-copy limit still acts)."""

    def destination_failed(self, why: str) -> None:
        return


# ------------------------------------------------------------------------------------------ the source: stop-and-copy


class KeepsTheVcpusRunning(SourceMigration):
    """Does not stop the guest's vCPUs in STOPPED."""

    def _stopped(self) -> None:
        self.record.stopped_ns = self.clock.now
        self.clock.cancel(self._tick_timer)
        self.host.bus.publish(EventKind.MIGRATION, self.host.name, what="stopped")
        self.clock.schedule(0, self._stop_and_copy, "stop-and-copy")


class UnmapsTheFunctionsInStopped(SourceMigration):
    """Takes the guest's memory out of the functions' IOMMU mappings as soon as the vCPUs stop."""

    def _stopped(self) -> None:
        super()._stopped()
        for function in self.host.slot_functions.values():
            function.memory = None


class NoBusMasterCheckInStopped(SourceMigration):
    """Skips the read of every function's Command register before the final read of the dirty log."""

    def _stop_and_copy(self) -> None:  # the reference's, without the check of VFM-MIG-012
        if self.record.ended or self._state is not MigState.STOPPED:
            return
        sender = self._sender()
        sender.enqueue(self.host.memory.log.harvest())
        pages = sender.queued
        transfer = sender.drain_time_ns()
        sender.send_pages(pages)
        if pages:
            page_bytes = pages * sender.source.page_size
            self.host.bus.publish(EventKind.PAGE_SEND, self.host.name, pages=pages, bytes=page_bytes, phase="STOPPED")
        self._handover_timer = self.clock.schedule(self.config.stop_copy_limit_ns, self._stop_copy_limit, "S")
        incoming = self.incoming
        assert incoming is not None
        config = bytes(self.bridge.config)
        bars = {slot: _bars(function) for slot, function in self.host.slot_functions.items()}
        self.clock.schedule(
            transfer + self.config.link_latency_ns, partial(incoming.receive_state, config, bars), "device state"
        )


class DropsTheFinalDirtyRead(SourceMigration):
    """Reads the dirty log a last time in STOPPED and drops what it held."""

    def _stop_and_copy(self) -> None:
        if not self.record.ended and self._state is MigState.STOPPED:
            self.host.memory.log.harvest()
        super()._stop_and_copy()


class ResumesTheSourceAfterHandover(SourceMigration):
    """Runs the guest's vCPUs on the source again once the destination has taken it over."""

    def destination_confirmed(self) -> None:
        guest: Guest | None = self.host.guest
        super().destination_confirmed()
        if guest is not None and self.record.ended:
            guest.run(self.host.name)


class HotPlugsDuringMigration(FaultyHost):
    """Hot-adds a function behind the bridge whenever the management layer asks, migration or not."""

    def assign_function(self, slot: int, identity: FunctionIdentity | None = None) -> VirtualFunction:
        outgoing, self.outgoing = self.outgoing, None
        try:
            return super().assign_function(slot, identity)
        finally:
            self.outgoing = outgoing


class KeepsTheSourceFunctions(FaultyHost):
    """Frees the guest's memory after the handover without resetting the functions that could reach it."""

    def release_guest(self) -> None:
        for function in self.slot_functions.values():
            function.memory = None
            function.interrupt_sink = None
            self.freed_functions.append(function)
        self.slot_functions = {}
        self._memory = None
        self._bridge = None
        self.guest = None


# ---------------------------------------------------------------------------------------------- the destination


class EnablesTheFreshFunctions(DestinationMigration):
    """Sets Bus Master Enable on the functions it placed as soon as the guest runs, before the driver's READY."""

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        super().go(guest, source_memory)
        for function in self.host.slot_functions.values():
            function.set_bus_master(True)


class RunsBeforeArrive(DestinationMigration):
    """Runs the guest's vCPUs first and issues ARRIVE just after."""

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        host = self.host
        host.incoming = None
        if guest is None or self.bridge is None:
            return
        self.memory.continue_stamps_from(source_memory)
        guest.move_to(host)
        host.host_guest(guest, self.memory)
        guest.run(host.name)
        self.source.record.resumed_ns = self.clock.now
        self.bridge.arrive()
        host.bus.publish(EventKind.MIGRATION, host.name, what="arrived")


class RestoresItsOwnGeneration(DestinationMigration):
    """Restores the capability from the stream but keeps its own bridge's GENERATION."""

    def receive_state(self, config: bytes, bars: dict[int, tuple[int, ...]] | None = None) -> None:
        super().receive_state(config, bars)
        bridge = self.bridge
        if bridge is not None:
            store_field(bridge.config, find_field(bridge.num_slots, "generation"), 0, bridge.cap)


# ---------------------------------------------------------------------------------------------- the host


class AssignsBesideTheBridge(FaultyHost):
    """Puts a function asked for beyond slot 2 on the guest's root bus, not behind the migration bridge.

    It is the guest's all the same (its DMA reaches the guest's memory, its interrupts the guest), and the host
    still migrates the guest.
    """

    def assign_function(self, slot: int, identity: FunctionIdentity | None = None) -> VirtualFunction:
        if slot <= 2:  # (slots 0 to 2: the guest's drivers; beyond: the root bus)
            return super().assign_function(slot, identity)
        function = self.new_function(identity)
        function.memory = self.memory
        if self.guest is not None:
            function.interrupt_sink = self.guest.inject_device_interrupt
        return function


class PlacesFunctionsAtTheirSlotNumber(FaultyHost):
    """Puts the function of slot N at device number N of the secondary bus, whatever DEV_DEVFN says."""

    def function_at(self, devfn: int) -> VirtualFunction | None:
        return self.slot_functions.get(devfn >> 3) if devfn & 0x7 == 0 else None


class ResetsTheBridgeMidMigration(FaultyHost):
    """Carries out a conventional reset of the bridge at once, migration or not."""

    def reset_bridge(self) -> None:
        for function in self.slot_functions.values():
            function.function_level_reset("flr")
        self.bridge.conventional_reset()


# ---------------------------------------------------------------------------------------------- more of the source


class IgnoresALostDirtyLog(SourceMigration):
    """Reads the dirty log's bits only: when the log says it lost entries (every page dirty), it sends nothing."""

    def start(self) -> None:
        super().start()
        log = self.host.memory.log
        read = log.harvest

        def bits_only() -> Pages:
            pages = read()
            return pages[:0] if pages.size == log.num_pages else pages  # (the overflow, taken for noise)

        setattr(log, "harvest", bits_only)  # noqa: B010 - this host's log only


class ShrugsOffAFailedLogRead(SourceMigration):
    """Takes a dirty log read that failed for an empty one, and carries on."""

    def _read_dirty_log(self) -> Pages:
        try:
            return self.host.memory.log.harvest()
        except DirtyLogReadError:
            return np.empty(0, dtype=np.int64)


class ForgetsTheLogOnPausedReports(SourceMigration):
    """Takes a driver's report in PAUSING for the end of its dirtying, and forgets what the log held."""

    def bridge_stepped(self, cause: str) -> None:
        if cause == "guest" and not self.record.ended and self._state is MigState.PAUSING:
            self.host.memory.log.harvest()
        super().bridge_stepped(cause)


class CompletesOnTheLastPausedReport(SourceMigration):
    """Takes the guest's last PAUSED report for the end of the migration: no wait for the destination."""

    def _stop_and_copy(self) -> None:
        if not self.record.ended and self._state is MigState.STOPPED:
            self.destination_confirmed()


class AnnouncesTheMigrationThroughTheFunctions(SourceMigration):
    """Injects each function's interrupt at START, so that the drivers look at the bridge at once."""

    def start(self) -> None:
        super().start()
        guest = self.host.guest
        if guest is not None:
            for function in self.host.slot_functions.values():
                guest.inject_device_interrupt(function.name)


class CancelsWhileResuming(SourceMigration):
    """Passes the management layer's CANCEL to the bridge in RESUMING too, where the migration table has no row."""

    def cancel(self, reason: MigReason, note: str | None = None) -> None:
        if not self.record.ended and self._state is MigState.RESUMING:
            self.bridge.cancel(reason)
            return
        super().cancel(reason, note)


# ---------------------------------------------------------------------------------------------- more of the destination


class MeasuresDowntimeOnTheGuestClock(DestinationMigration):
    """Times the downtime with the guest's clock, which stood still while the vCPUs were stopped."""

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        super().go(guest, source_memory)
        record = self.source.record
        if record.resumed_ns is not None and record.stopped_ns is not None:
            record.resumed_ns = record.stopped_ns


class KicksTheArrivedFunctions(DestinationMigration):
    """Injects an interrupt of each function it placed as the guest arrives, before any driver's READY."""

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        super().go(guest, source_memory)
        if guest is not None and self.bridge is not None:
            for function in self.host.slot_functions.values():
                guest.inject_device_interrupt(function.name)


class TracksInHalfPages(DestinationMigration):
    """Makes its copy of the arriving guest's memory, and so its dirty log of it, in half the bridge's pages."""

    def __init__(self, host: Hypervisor, source: SourceMigration) -> None:
        super().__init__(host, source)
        memory = source.host.memory
        self.memory = host.make_memory(memory.size_bytes, memory.page_shift - 1, False)


class MapsTheSourceCopy(DestinationMigration):
    """Maps the functions it placed to the source's copy of the guest's memory, not to its own."""

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        super().go(guest, source_memory)
        for function in self.host.slot_functions.values():
            function.memory = source_memory


# ---------------------------------------------------------------------------------------------- the catalogue


def starts_with_a_failed_slot() -> FaultyHypervisor:
    return _host(source=StartsWithAFailedSlot)


def enables_the_dirty_log_late() -> FaultyHypervisor:
    return _host(source=EnablesTheDirtyLogLate)


def sends_before_precopy() -> FaultyHypervisor:
    return _host(source=SendsBeforePrecopy)


def accepts_a_fine_tracking_destination() -> FaultyHypervisor:
    return FaultyHypervisor(AcceptsAFineTrackingDestination)


def halves_the_deadlines() -> FaultyHypervisor:
    return _host(source=HalvesTheDeadlines)


def never_times_out_a_pause() -> FaultyHypervisor:
    return _host(source=NeverTimesOutAPause)


def never_resets_on_resume_deadline() -> FaultyHypervisor:
    return _host(source=NeverResetsOnResumeDeadline)


def ignores_the_precopy_limit() -> FaultyHypervisor:
    return _host(source=IgnoresThePrecopyLimit)


def switches_over_after_the_first_round() -> FaultyHypervisor:
    return _host(source=SwitchesOverAfterTheFirstRound)


def stops_sending_when_pausing() -> FaultyHypervisor:
    return _host(source=StopsSendingWhenPausing)


def no_stop_copy_limit() -> FaultyHypervisor:
    return _host(source=NoStopCopyLimit)


def cancels_a_device_error_as_cancelled() -> FaultyHypervisor:
    return _host(source=CancelsADeviceErrorAsCancelled)


def no_group_reset_after_device_error() -> FaultyHypervisor:
    return _host(source=NoGroupResetAfterDeviceError)


def ignores_consent_withdrawal() -> FaultyHypervisor:
    return _host(source=IgnoresConsentWithdrawal)


def ignores_destination_failure() -> FaultyHypervisor:
    return _host(source=IgnoresDestinationFailure)


def keeps_the_vcpus_running() -> FaultyHypervisor:
    return _host(source=KeepsTheVcpusRunning)


def unmaps_the_functions_in_stopped() -> FaultyHypervisor:
    return _host(source=UnmapsTheFunctionsInStopped)


def no_bus_master_check_in_stopped() -> FaultyHypervisor:
    return _host(source=NoBusMasterCheckInStopped)


def drops_the_final_dirty_read() -> FaultyHypervisor:
    return _host(source=DropsTheFinalDirtyRead)


def resumes_the_source_after_handover() -> FaultyHypervisor:
    return _host(source=ResumesTheSourceAfterHandover)


def hot_plugs_during_migration() -> FaultyHypervisor:
    return FaultyHypervisor(HotPlugsDuringMigration)


def keeps_the_source_functions() -> FaultyHypervisor:
    return FaultyHypervisor(KeepsTheSourceFunctions)


def enables_the_fresh_functions() -> FaultyHypervisor:
    return _host(destination=EnablesTheFreshFunctions)


def runs_before_arrive() -> FaultyHypervisor:
    return _host(destination=RunsBeforeArrive)


def restores_its_own_generation() -> FaultyHypervisor:
    return _host(destination=RestoresItsOwnGeneration)


def assigns_beside_the_bridge() -> FaultyHypervisor:
    return FaultyHypervisor(AssignsBesideTheBridge)


def places_functions_at_their_slot_number() -> FaultyHypervisor:
    return FaultyHypervisor(PlacesFunctionsAtTheirSlotNumber)


def resets_the_bridge_mid_migration() -> FaultyHypervisor:
    return FaultyHypervisor(ResetsTheBridgeMidMigration)


def ignores_a_lost_dirty_log() -> FaultyHypervisor:
    return _host(source=IgnoresALostDirtyLog)


def shrugs_off_a_failed_log_read() -> FaultyHypervisor:
    return _host(source=ShrugsOffAFailedLogRead)


def forgets_the_log_on_paused_reports() -> FaultyHypervisor:
    return _host(source=ForgetsTheLogOnPausedReports)


def completes_on_the_last_paused_report() -> FaultyHypervisor:
    return _host(source=CompletesOnTheLastPausedReport)


def announces_the_migration_through_the_functions() -> FaultyHypervisor:
    return _host(source=AnnouncesTheMigrationThroughTheFunctions)


def cancels_while_resuming() -> FaultyHypervisor:
    return _host(source=CancelsWhileResuming)


def measures_downtime_on_the_guest_clock() -> FaultyHypervisor:
    return _host(destination=MeasuresDowntimeOnTheGuestClock)


def kicks_the_arrived_functions() -> FaultyHypervisor:
    return _host(destination=KicksTheArrivedFunctions)


def tracks_in_half_pages() -> FaultyHypervisor:
    return _host(destination=TracksInHalfPages)


def maps_the_source_copy() -> FaultyHypervisor:
    return _host(destination=MapsTheSourceCopy)


def _entry(name: str, breaks: str, description: str, verdict: Verdict = Verdict.FAIL) -> Fault:
    return Fault(
        name=name,
        target=Target.HYPERVISOR,
        factory=f"{_MODULE}:{name.replace('-', '_')}",
        breaks=breaks,
        description=description,
        verdict=verdict,
    )


CATALOGUE: list[Fault] = [
    _entry("starts-with-a-failed-slot", "VFM-MIG-001", "START while a slot is in ERROR."),
    _entry("enables-the-dirty-log-late", "VFM-DIRTY-005", "The CPU dirty log is turned on after START."),
    _entry("sends-before-precopy", "VFM-DIRTY-006", "The first pre-copy round begins in PREPARE."),
    _entry(
        "accepts-a-fine-tracking-destination",
        "VFM-VER-007",
        "A migration starts towards a host whose dirty tracking is finer than the guest's pages.",
    ),
    _entry("halves-the-deadlines", "VFM-TMO-004", "ACK_TIMEOUT after half of ACK_TIMEOUT_MS."),
    _entry("never-times-out-a-pause", "VFM-TMO-003", "PAUSING waits for ever for a driver that does not pause."),
    _entry("never-resets-on-resume-deadline", "VFM-TMO-005", "RESUMING waits for ever: no group reset."),
    _entry("ignores-the-precopy-limit", "VFM-TIME-001", "Pre-copy goes on past P while it does not converge."),
    _entry(
        "switches-over-after-the-first-round",
        "VFM-TIME-002",
        "REQUEST_PAUSE after round 1 whatever is left to send.",
        Verdict.WARN,
    ),
    _entry(
        "stops-sending-when-pausing",
        "VFM-TIME-003",
        "Nothing is sent while the drivers pause their functions.",
        Verdict.WARN,
    ),
    _entry("no-stop-copy-limit", "VFM-DEST-005", "STOPPED waits for ever for a destination that crashed."),
    _entry("cancels-a-device-error-as-cancelled", "VFM-CANCEL-001", "A slot in ERROR cancels with CANCELLED."),
    _entry(
        "no-group-reset-after-device-error",
        "VFM-ERR-002",
        "After a DEVICE_ERROR cancellation the slot in ERROR is left for the guest to reset.",
    ),
    _entry("ignores-consent-withdrawal", "VFM-MIG-011", "The guest clears CONTROL.ENABLE and the migration goes on."),
    _entry(
        "ignores-destination-failure",
        "VFM-DEST-001",
        "A destination that refuses the guest is ignored until the stop-and-copy limit.",
    ),
    _entry("keeps-the-vcpus-running", "VFM-MIG-003", "The vCPUs keep running in STOPPED."),
    _entry(
        "unmaps-the-functions-in-stopped",
        "VFM-CANCEL-005",
        "The functions' IOMMU mappings of guest memory go away in STOPPED, before the handover point.",
    ),
    _entry(
        "no-bus-master-check-in-stopped",
        "VFM-MIG-012",
        "No check of the functions' BME before the final read of the dirty log.",
    ),
    _entry("drops-the-final-dirty-read", "VFM-FLOW-001", "What the final read of the dirty log holds is not sent."),
    _entry("resumes-the-source-after-handover", "VFM-DEST-002", "The source runs the guest after the handover."),
    _entry("hot-plugs-during-migration", "VFM-CANCEL-002", "A function is hot-added behind the bridge mid-migration."),
    _entry(
        "keeps-the-source-functions",
        "VFM-SEC-006",
        "The source frees the guest after the handover without resetting its functions.",
    ),
    _entry(
        "enables-the-fresh-functions",
        "VFM-MIG-005",
        "The destination sets BME on the functions it placed before the driver's READY.",
    ),
    _entry("runs-before-arrive", "VFM-FLOW-003", "The destination runs the guest before ARRIVE."),
    _entry(
        "restores-its-own-generation",
        "VFM-REP-001",
        "The destination restores the capability but keeps its own GENERATION.",
    ),
    _entry(
        "assigns-beside-the-bridge",
        "VFM-DISC-002",
        "A function is assigned to the guest on the root bus, and the guest still migrates.",
    ),
    _entry(
        "places-functions-at-their-slot-number",
        "VFM-DISC-003",
        "Slot N's function sits at device N, not at the devfn its DEV_DEVFN names.",
    ),
    _entry(
        "resets-the-bridge-mid-migration",
        "VFM-CAP-008",
        "A conventional reset of the bridge takes effect during a migration without a CANCEL first.",
    ),
    _entry(
        "ignores-a-lost-dirty-log",
        "VFM-DIRTY-008",
        "A dirty log that lost its entries is read as empty: the migration completes without resending every page.",
    ),
    _entry(
        "shrugs-off-a-failed-log-read",
        "VFM-DIRTY-008",
        "A read of the dirty log that fails counts as an empty log: pages dirtied before it are never sent again.",
    ),
    _entry(
        "forgets-the-log-on-paused-reports",
        "VFM-SEC-004",
        "A driver's report in PAUSING makes the source drop what the dirty log held.",
    ),
    _entry(
        "completes-on-the-last-paused-report",
        "VFM-SEC-005",
        "The guest's last PAUSED report is taken for the end: the source hands over with no word from the destination.",
    ),
    _entry(
        "announces-the-migration-through-the-functions",
        "VFM-NOTIF-005",
        "START is announced by injecting each function's interrupt.",
    ),
    _entry("cancels-while-resuming", "VFM-DEV-012", "CANCEL in RESUMING, which the migration table has no row for."),
    _entry(
        "measures-downtime-on-the-guest-clock",
        "VFM-GEN-002",
        "The downtime is timed with the guest's clock, which stands still while the vCPUs are stopped.",
    ),
    _entry(
        "kicks-the-arrived-functions",
        "VFM-MIG-013",
        "The destination injects an interrupt of each function it placed before the driver's READY.",
    ),
    _entry(
        "tracks-in-half-pages",
        "VFM-DIRTY-007",
        "The destination tracks the arriving guest's memory in pages of 2^(PAGE_SHIFT - 1) bytes.",
    ),
    _entry(
        "maps-the-source-copy",
        "VFM-SEC-007",
        "The destination maps its functions' DMA to the source's copy of the guest's memory.",
    ),
]
