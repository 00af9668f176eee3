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

import numpy as np

from conformance.catalogue import Fault
from conformance.catalogue import hypervisor_faults as _hypervisor_builders  # registers the host builders
from conformance.catalogue.registry import fault, faults_in
from conformance.verdicts import Target
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.guest import Guest
from reference_impl.hypervisor import DestinationMigration, Hypervisor, SourceMigration
from reference_impl.memory import DirtyLogReadError, Pages
from vfmig_proto.layout import slot_offset
from vfmig_proto.states import DevState, MigReason, MigState

_BUILDERS_USED = (_hypervisor_builders,)
"""Imported for its ``builds_by_keyword`` registrations, which the faults below resolve at decoration."""

_US_PER_MS = 1_000
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
    """When the PREPARE deadline passes, waits twice its reaction time e more before it cancels ("a little
    grace for slow guests"), where it must act within e."""

    def prepare_deadline(self) -> None:
        grace = 2 * self.config.reaction_ns
        self.clock.schedule(grace, super().prepare_deadline, "PREPARE deadline, with grace")


@fault(Target.HYPERVISOR, breaks="VFM-TMO-003")
class RestartsThePausingDeadlineOnGuestWrites(SourceMigration):
    """Treats every guest write to the bridge during PAUSING as progress and counts the PAUSING deadline from
    the last one, so a guest that keeps writing (a PAUSED report that is ignored, a STATUS write) is never
    timed out."""

    last_guest_write_ns: int | None = None
    """When the guest last wrote the bridge in PAUSING."""

    def bridge_stepped(self, cause: str) -> None:
        if self.phase() is MigState.PAUSING and cause.startswith("guest"):
            self.last_guest_write_ns = self.clock.now
        super().bridge_stepped(cause)

    def pausing_deadline(self) -> None:
        last = self.last_guest_write_ns
        if last is not None and self.phase() is MigState.PAUSING and last + self.ack_timeout_ns > self.clock.now:
            self.clock.schedule(last + self.ack_timeout_ns - self.clock.now, self.pausing_deadline, "PAUSING")
            return
        super().pausing_deadline()


@fault(Target.HYPERVISOR, breaks="VFM-TMO-002")
class ArmsEachLateBindersTimerOnce(SourceMigration):
    """Keeps a slot's DIRTY_REQ deadline only for the first time the slot enters DIRTY_REQ in PRECOPY: a
    driver that unbinds and binds again (so that its slot enters DIRTY_REQ a second time) has no deadline."""

    entries_into_dirty_req: dict[int, int] = {}  # noqa: RUF012 (replaced, never mutated: one dict per migration)
    """How many times each slot entered DIRTY_REQ in PRECOPY."""
    last_states: tuple[DevState, ...] = ()

    def bridge_stepped(self, cause: str) -> None:
        states = tuple(self.bridge.dev_states())
        if self.phase() is MigState.PRECOPY or self.bridge.mig_state is MigState.PRECOPY:
            entries = dict(self.entries_into_dirty_req)
            for slot, state in enumerate(states):
                before = self.last_states[slot] if slot < len(self.last_states) else None
                if state is DevState.DIRTY_REQ and before is not DevState.DIRTY_REQ:
                    entries[slot] = entries.get(slot, 0) + 1
            self.entries_into_dirty_req = entries
        self.last_states = states
        super().bridge_stepped(cause)

    def dirty_req_deadline(self, slot: int) -> None:
        if self.entries_into_dirty_req.get(slot, 0) > 1:
            return  # the timer of a second entry, which this hypervisor never arms
        super().dirty_req_deadline(slot)


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
class DestinationPlacesDefaultFunctions(Hypervisor):
    """Takes the functions it places for an incoming guest from its pool's default model (its own Vendor,
    Device and Subsystem IDs), whatever identity the source's functions had."""

    def new_function(self, identity: FunctionIdentity | None = None) -> VirtualFunction:
        return super().new_function(None if self.incoming is not None else identity)


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
