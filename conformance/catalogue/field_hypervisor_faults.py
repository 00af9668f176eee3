"""Field faults of the ``hypervisor`` target: the mistakes a hypervisor author makes orchestrating migrations.

Written from ``spec/`` (chapters 4, 5, 7, 8 and 10), :mod:`conformance.interfaces.hypervisor` and the
reference :mod:`reference_impl.hypervisor` only (issue 12, item 4), not from the suite: deadlines (units,
reaction time, timers restarted or armed once), the last look before the handover (BME, the final dirty-log
read), dirty-log failures, repeated migrations, resets and the destination's restore.  Each class
overrides one phase of :class:`~reference_impl.hypervisor.SourceMigration`,
:class:`~reference_impl.hypervisor.DestinationMigration` or :class:`~reference_impl.hypervisor.Hypervisor`
and breaks one requirement; the builders are those of :mod:`conformance.catalogue.hypervisor_faults`.
This module is in :data:`conformance.catalogue.PENDING_MODULES` until the suite detects every fault in it.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from conformance.catalogue import Fault
from conformance.catalogue import hypervisor_faults as _hypervisor_builders  # registers the host builders
from conformance.catalogue.registry import fault, faults_in
from conformance.verdicts import Target
from reference_impl.device import VirtualFunction
from reference_impl.guest import Guest
from reference_impl.hypervisor import DestinationMigration, Hypervisor, SourceMigration
from reference_impl.memory import DirtyLogReadError, Pages
from vfmig_proto.layout import slot_offset
from vfmig_proto.states import DevState, MigReason, MigState

_BUILDERS_USED = (_hypervisor_builders,)
"""Imported for its ``builds_by_keyword`` registrations, which the faults below resolve at decoration."""

_US_PER_MS = 1_000
_BAR_OFFSETS = range(0x10, 0x28, 4)
"""The six BAR registers of a type-0 header."""
_DEV_STATUS_IN_ENTRY = 2
"""DEV_STATUS is byte 2 of a slot entry (spec 3.3)."""


# ------------------------------------------------------------------------------------------------ deadlines


@fault(Target.HYPERVISOR, breaks="VFM-TMO-004")
class CountsTheAckTimeoutInMicroseconds(SourceMigration):
    """Converts ACK_TIMEOUT_MS to the clock's nanoseconds with the microsecond factor: every acknowledgement
    deadline passes a thousand times too early."""

    def __init__(self, host: Hypervisor, destination: Hypervisor, number: int) -> None:
        super().__init__(host, destination, number)
        self.ack_timeout_ns = self.bridge.field("ack_timeout_ms") * _US_PER_MS


@fault(Target.HYPERVISOR, breaks="VFM-TIME-005")
class GivesPrepareTwiceTheReactionTime(SourceMigration):
    """Arms the PREPARE deadline at ACK_TIMEOUT_MS plus twice its reaction time e ("a little grace for slow
    guests"), so it acts 2e after the deadline, where it must act within e."""

    def enter_phase(self, old: MigState, new: MigState) -> None:
        super().enter_phase(old, new)
        if new is MigState.PREPARE:
            self.clock.cancel(self._phase_timer)
            delay = self.ack_timeout_ns + 2 * self.config.reaction_ns
            self._phase_timer = self.clock.schedule(delay, self.prepare_deadline, "PREPARE deadline")


@fault(Target.HYPERVISOR, breaks="VFM-TMO-003")
class RestartsThePausingDeadlineOnGuestWrites(SourceMigration):
    """Treats every guest write to the bridge during PAUSING as progress and restarts the PAUSING deadline
    from it, so a guest that keeps writing (a PAUSED report that is ignored, a STATUS write) is never timed out."""

    def bridge_stepped(self, cause: str) -> None:
        before = self.phase()
        super().bridge_stepped(cause)
        if before is MigState.PAUSING and self.phase() is MigState.PAUSING and cause.startswith("guest"):
            self.clock.cancel(self._phase_timer)
            self._phase_timer = self.clock.schedule(self.ack_timeout_ns, self.pausing_deadline, "PAUSING deadline")


@fault(Target.HYPERVISOR, breaks="VFM-TMO-002")
class ArmsEachLateBindersTimerOnce(SourceMigration):
    """Arms a slot's DIRTY_REQ deadline the first time the slot enters DIRTY_REQ in PRECOPY and never again in
    that migration: a driver that unbinds and binds again leaves DIRTY_REQ with no deadline."""

    def _watch_late_binders(self) -> None:
        if self.phase() is not MigState.PRECOPY:
            return
        armed: set[int] = self.__dict__.setdefault("_armed_once", set())
        for slot, state in enumerate(self.bridge.dev_states()):
            timer = self._dirty_req_timers.get(slot)
            if state is DevState.DIRTY_REQ and timer is None and slot not in armed:
                armed.add(slot)
                self._dirty_req_timers[slot] = self.clock.schedule(
                    self.ack_timeout_ns, partial(self.dirty_req_deadline, slot), f"slot {slot} DIRTY_REQ"
                )
            elif state is not DevState.DIRTY_REQ and timer is not None:
                self.clock.cancel(timer)
                del self._dirty_req_timers[slot]


# ------------------------------------------------------------------------------------------------ stop-and-copy


@fault(Target.HYPERVISOR, breaks="VFM-MIG-012")
class ChecksBusMasterOfBoundSlotsOnly(SourceMigration):
    """Before the final dirty-log read, checks BME only of the functions whose slot a driver is bound to; a
    function in an UNBOUND slot that still has BME set goes unnoticed."""

    def bus_masters_clear(self) -> bool:
        for slot, function in self.host.slot_functions.items():
            if self.bridge.dev_state(slot) is DevState.UNBOUND:
                continue
            if function.bus_master:
                self.cancel(MigReason.PROTOCOL_ERROR, note=f"slot {slot}'s function still has BME set in STOPPED")
                return False
        return True


@fault(Target.HYPERVISOR, breaks="VFM-FLOW-001")
class TakesTheLastRoundForTheFinalRead(SourceMigration):
    """Sends, after the vCPUs stop, what the pre-copy rounds still queue but reads the dirty log no more: the
    pages dirtied since the last round's read (the drivers' pause dirtying among them) stay behind."""

    def final_dirty_pages(self) -> Pages:
        return np.empty(0, dtype=np.int64)


@fault(Target.HYPERVISOR, breaks="VFM-DIRTY-008")
class RetriesAFailedDirtyLogRead(SourceMigration):
    """When reading the dirty log fails, reads it again and sends what the second read returns, as for a
    transient error: the entries the failed read lost are never sent."""

    def read_dirty_log(self) -> Pages:
        try:
            return self.host.memory.log.harvest()
        except DirtyLogReadError:
            return super().read_dirty_log()


@fault(Target.HYPERVISOR, breaks="VFM-DIRTY-005")
class EnablesTheDirtyLogOnTheFirstMigrationOnly(SourceMigration):
    """Enables the CPU dirty log once per host, as a set-up step, and not again for a later migration from
    the same host (the log was disabled when the previous migration was cancelled)."""

    def enable_dirty_log(self) -> None:
        if not self.host.__dict__.get("_dirty_log_set_up", False):
            self.host.__dict__["_dirty_log_set_up"] = True
            super().enable_dirty_log()


@fault(Target.HYPERVISOR, breaks="VFM-MIG-001")
class StartsWithABusMasteringUnboundFunction(SourceMigration):
    """Checks the start conditions of bound slots only: a function in an UNBOUND slot with BME set (its
    driver was unloaded without clearing it) does not stop START."""

    def check_slot_may_start(self, slot: int, state: DevState, *, guest_enabled: bool) -> None:
        if state is DevState.UNBOUND:
            return
        super().check_slot_may_start(slot, state, guest_enabled=guest_enabled)


# ------------------------------------------------------------------------------------------------ the destination


@fault(Target.HYPERVISOR, breaks="VFM-REP-001")
class DestinationClearsTheSlotStatusBits(DestinationMigration):
    """Restores the source's capability with every slot's DEV_STATUS cleared, taking MIGRATED, RESET and
    PROTOCOL_ERROR for host-local state: a RESET the guest had not yet handled on the source is lost."""

    def receive_state(self, config: bytes, bars: dict[int, tuple[int, ...]] | None = None) -> None:
        cap = self.host.create_bridge(self.params).cap
        num_slots = self.params.num_slots
        cleared = bytearray(config)
        for slot in range(num_slots):
            cleared[cap + slot_offset(slot) + _DEV_STATUS_IN_ENTRY] = 0
        super().receive_state(bytes(cleared), bars)


@fault(Target.HYPERVISOR, breaks="VFM-MIG-004")
class DestinationPlacesDefaultFunctions(DestinationMigration):
    """Places, for ARRIVE, functions of its pool's default model (Vendor, Device, Subsystem IDs) rather than
    functions equal to the source's."""

    def _equal_function(self, slot: int, bars: dict[int, tuple[int, ...]]) -> VirtualFunction:
        host = self.host
        function = host.new_function()  # the pool's default model, whatever the source's was
        function.function_level_reset("flr")
        for offset, value in zip(_BAR_OFFSETS, bars.get(slot, ()), strict=False):
            function.config_write(offset, 4, value)
        host.slot_functions[slot] = function
        host.identities[slot] = function.identity
        self.placed_in_reset[slot] = function.in_reset_state
        return function


@fault(Target.HYPERVISOR, breaks="VFM-FLOW-003")
class RunsTheGuestBeforeArrive(DestinationMigration):
    """Starts the guest's vCPUs on the destination first and issues ARRIVE after ("the guest must not wait")."""

    def arrive_and_run(self, guest: Guest) -> None:
        self.run_guest(guest)
        self.arrive()


# ------------------------------------------------------------------------------------------------ the host


@fault(Target.HYPERVISOR, breaks="VFM-ERR-002")
class GroupResetsOnlyTheFailedFunction(SourceMigration):
    """After a cancellation for DEVICE_ERROR, resets the failed function alone by FLR instead of performing
    a group reset of the bridge."""

    def reset_failed_functions(self) -> None:
        for slot, state in enumerate(self.bridge.dev_states()):
            function = self.host.slot_functions.get(slot)
            if state is DevState.ERROR and function is not None:
                function.function_level_reset("flr")


CATALOGUE: list[Fault] = faults_in(__name__)
