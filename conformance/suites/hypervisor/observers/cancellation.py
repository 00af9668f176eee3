"""Causes and cancellation: what calls for a CANCEL (a device error, a surprise removal, a deadline passed, the
guest's help failing), whether one came in time and with the right MIG_REASON.
"""

from __future__ import annotations

from functools import partial

from conformance.suites.hypervisor.observers.config_space import ConfigSpaceObserver
from conformance.suites.hypervisor.observers.watched import WatchedFunction
from conformance.suites.hypervisor.settings import GUEST_HELP, IN_PROGRESS, MIGRATION, QUIET_SLOTS
from conformance.suites.hypervisor.watch import Cause, Watch, in_ms
from reference_impl.bridge import MigrationBridge
from reference_impl.device import VirtualFunction
from reference_impl.events import Event
from reference_impl.hypervisor import PrecopyLimitAction
from vfmig_proto.errors import ProtocolError
from vfmig_proto.states import DevEvent, DevState, MigReason, MigState
from vfmig_proto.transitions import Action


class CancellationObserver(ConfigSpaceObserver):
    """Checks of every CANCEL and of what calls for one (Table 7-6, Table 7-7, VFM-MIG-011, chapter 8)."""

    def after_step(self) -> None:
        watch = self.in_progress()
        pending, self.protocol_pending = self.protocol_pending, []
        for owner, what, since in pending:
            if owner.handover_ns is None:
                self.checks.record(
                    "VFM-MIG-011", owner.cancel_ns is not None, partial(_uncancelled, owner, what, since)
                )
        if watch is None or watch.bridge is None or self.handed_over(watch):
            return
        bridge = watch.bridge
        guest = self.world.guest
        if bridge.mig_state is MigState.STOPPED:
            watch.rogue = watch.rogue or guest.running  # (pages the guest writes then are VFM-MIG-003's to judge)
            self.checks.record(
                "VFM-MIG-003",
                not guest.running,
                lambda: (
                    f"migration {watch.number}: the bridge entered STOPPED at "
                    f"{in_ms(watch.phases.get(MigState.STOPPED, 0))} and the guest's vCPUs still run once that step "
                    "completed"
                ),
            )
            if watch.stopped_capability is None:
                self._snapshot_at_stop(watch, bridge)
        memory = watch.memory
        if memory is not None:
            self.checks.record(
                "VFM-DIRTY-005",
                memory.log.enabled,
                lambda: (
                    f"migration {watch.number}: the CPU dirty log is off at {in_ms(self.clock.now)}, before the end"
                ),
            )
            self._check_memory_kept(watch, bridge, memory)

    def before_cancel(self, bridge: MigrationBridge, reason: MigReason) -> None:
        if self.resetting is bridge and self.reset_cancel is None:
            self.reset_cancel = reason
        watch = self.watch_of(bridge)
        if watch is None:
            return
        now = self.clock.now
        state = bridge.mig_state
        if self.handed_over(watch):
            self._violation(
                "VFM-DEST-002",
                watch,
                f"CANCEL ({reason.name}) at {in_ms(now)}, after the handover point at {in_ms(watch.handover_ns or 0)}",
            )
        explicit = [cause for cause in watch.causes if cause.time_ns <= now]
        deadlines = self._implicit_causes(watch, state, now, reason)
        causes = explicit + deadlines
        reasons = {cause.reason for cause in causes}
        listed = "; ".join(str(cause) for cause in causes) or "none"
        ack_deadlines = [cause.time_ns for cause in causes if cause.reason is MigReason.ACK_TIMEOUT]
        self.checks.record(
            "VFM-TMO-004",
            reason is not MigReason.ACK_TIMEOUT or bool(ack_deadlines),
            lambda: (
                f"migration {watch.number}: CANCEL with ACK_TIMEOUT at {in_ms(now)} in {state.name}, before any "
                f"deadline passed ({self._deadlines(watch, state)})"
            ),
        )
        if reason in (MigReason.NONE, MigReason.COMPLETED):
            self.checks.record(
                "VFM-MIG-010", False, f"migration {watch.number}: CANCEL at {in_ms(now)} with reason {reason.name}"
            )
        elif reason is not MigReason.ACK_TIMEOUT or ack_deadlines:
            self.checks.record(
                "VFM-CANCEL-001",
                reason in reasons,
                lambda: (
                    f"migration {watch.number}: CANCEL at {in_ms(now)} in {state.name} with MIG_REASON {reason.name}, "
                    f"which Table 7-7 gives none of the causes that arose (causes: {listed})"
                ),
            )
            if reason in reasons:
                # The first cause, or one within e of it; a hypervisor that let the first cause pass unanswered for
                # longer than e is judged by that cause's requirement (VFM-MIG-011, -ERR-001, ...), not here.
                first = min(cause.time_ns for cause in causes)
                ignored = now > first + self.e
                acceptable = {cause.reason for cause in causes if ignored or cause.time_ns <= first + self.e}
                self.checks.record(
                    "VFM-MIG-010",
                    reason in acceptable,
                    lambda: (
                        f"migration {watch.number}: CANCEL at {in_ms(now)} with MIG_REASON {reason.name}, not the "
                        f"reason of the first cause (causes: {listed})"
                    ),
                )
        passed = [cause for cause in deadlines if cause.reason is reason]
        if passed and not any(cause.reason is reason for cause in explicit):  # the action a deadline calls for
            first_deadline = min(passed, key=lambda cause: cause.time_ns)
            self.checks.record(
                "VFM-TIME-005",
                now <= first_deadline.time_ns + self.e,
                f"migration {watch.number}: CANCEL with {reason.name} at {in_ms(now)}, later than e = {in_ms(self.e)} "
                f"after {first_deadline}",
            )
        if watch.cancel_ns is None:
            watch.cancel_ns = now
            watch.cancel_reason = reason
            watch.cancel_from = state
            if reason is MigReason.DEVICE_ERROR:
                self._schedule(now + self.e + 1, partial(self._check_group_reset_after_error, watch), "ERR-002")

    def _implicit_causes(self, watch: Watch, state: MigState, now: int, reason: MigReason) -> list[Cause]:
        """The causes that ``state`` and the time give: deadlines and limits passed (Table 7-6, chapter 8) and BME.

        The pre-copy limit P is a cause of cancellation only for a hypervisor whose policy is to cancel then
        (chapter 8): one configured to switch over counts it only if it does cancel, with CANCELLED.  A BME set
        after the vCPUs stopped is one only if it is still set when the hypervisor checks (VFM-MIG-012), at its
        last read of the dirty log.
        """
        causes: list[Cause] = []
        phase = watch.phases.get(state)
        for timed in (MigState.PREPARE, MigState.PAUSING):
            entered = watch.phases.get(timed)
            if entered is None or entered + self.ack_ns > now:
                continue
            left = watch.left.get(timed)
            # The phase under way, or one that outlived its deadline (a late acknowledgement ended it after).
            if timed is state or (left is not None and left.time_ns > entered + self.ack_ns):
                causes.append(Cause(entered + self.ack_ns, MigReason.ACK_TIMEOUT, f"the {timed.name} deadline"))
        requests = [*watch.dirty_req.items()] if state is MigState.PRECOPY else []
        requests += [key for key, ended in watch.dirty_req_ended.items() if ended > key[1] + self.ack_ns]
        for slot, since in requests:
            if since + self.ack_ns <= now:
                causes.append(Cause(since + self.ack_ns, MigReason.ACK_TIMEOUT, f"slot {slot}'s DIRTY_REQ deadline"))
        if state is MigState.STOPPED and watch.bme_at_stop_ns is not None:
            bme = self._bme_in_stopped(watch) if watch.final_read_bme is None else watch.final_read_bme
            if bme:
                what = "a function with BME set when the vCPUs had stopped in STOPPED"
                causes.append(Cause(watch.bme_at_stop_ns, MigReason.PROTOCOL_ERROR, what))
        cancels_at_p = MIGRATION.on_precopy_limit is PrecopyLimitAction.CANCEL or reason is MigReason.CANCELLED
        if (
            state is MigState.PRECOPY
            and phase is not None
            and phase + MIGRATION.precopy_limit_ns <= now
            and cancels_at_p
        ):
            causes.append(Cause(phase + MIGRATION.precopy_limit_ns, MigReason.CANCELLED, "the pre-copy limit P"))
        if state is MigState.STOPPED and phase is not None and phase + MIGRATION.stop_copy_limit_ns <= now:
            causes.append(
                Cause(phase + MIGRATION.stop_copy_limit_ns, MigReason.DESTINATION_FAILURE, "the stop-and-copy limit S")
            )
        return causes

    @staticmethod
    def _bme_in_stopped(watch: Watch) -> bool:
        """Whether a function behind the source's bridge has BME set now."""
        bridge = watch.bridge
        return bridge is not None and any(
            isinstance(function, VirtualFunction) and function.bus_master for function in bridge.functions
        )

    def _deadlines(self, watch: Watch, state: MigState) -> str:
        phase = watch.phases.get(state)
        if state is MigState.PRECOPY:
            entries = ", ".join(
                f"slot {slot} DIRTY_REQ since {in_ms(since)}" for slot, since in watch.dirty_req.items()
            )
            return f"no slot overdue in DIRTY_REQ: {entries or 'none in DIRTY_REQ'}"
        if phase is None:
            return f"{state.name} has no ACK_TIMEOUT_MS deadline"
        return f"{state.name} entered at {in_ms(phase)}, deadline {in_ms(phase + self.ack_ns)}"

    def _must_cancel(self, watch: Watch, cause: Cause, requirement: str) -> None:
        watch.causes.append(cause)

        def check() -> None:
            done = watch.cancel_ns is not None or watch.ended_ns is not None
            self.checks.record(
                requirement,
                done,
                lambda: f"migration {watch.number}: {cause}, and no CANCEL by {in_ms(self.clock.now)}",
            )

        self._schedule(cause.time_ns + self.e + 1, check, requirement)

    def _check_group_reset_after_error(self, watch: Watch) -> None:
        bridge = watch.bridge
        cancel = watch.cancel_ns
        assert bridge is not None
        assert cancel is not None
        reset = any(time >= cancel for time in watch.group_resets)
        errors = [slot for slot, state in enumerate(bridge.dev_states()) if state is DevState.ERROR]
        self.checks.record(
            "VFM-ERR-002",
            reset or not errors,
            lambda: (
                f"migration {watch.number}: cancelled with DEVICE_ERROR at {in_ms(cancel)}, MIG_STATE "
                f"{bridge.mig_state.name}, slots {errors} still in ERROR and no group reset by {in_ms(self.clock.now)}"
            ),
        )

    def on_dev_transition(self, event: Event) -> None:
        bridge = self.bridges.get(event.source)
        watch = self.current
        if bridge is None or watch is None or event.data.get("action") is not Action.ACCEPT:
            return
        slot = int(event.data["slot"])
        old, new, cause = event.data["old"], event.data["new"], event.data["event"]
        now = event.time
        if bridge is watch.dest_bridge and new is DevState.READY:
            function = bridge.functions[slot]
            if isinstance(function, WatchedFunction) and not function.slot_ready:
                function.slot_ready = True
                self.checks.record(
                    "VFM-MIG-013",
                    function.unsignalled == 0,
                    f"migration {watch.number}: between ARRIVE and the READY of slot {slot} ({in_ms(now)}) the "
                    f"hypervisor injected {function.unsignalled} interrupts of {function.name} that it never signalled",
                )
            return
        if bridge is not watch.bridge or not watch.in_progress:
            return
        state = bridge.mig_state
        if old is DevState.DIRTY_REQ and (since := watch.dirty_req.pop(slot, None)) is not None:
            watch.dirty_req_ended.setdefault((slot, since), now)
        if new is DevState.DIRTY_REQ and state is MigState.PRECOPY:
            watch.dirty_req[slot] = now
            self._schedule(now + self.ack_ns + self.e + 1, partial(self._check_dirty_request, watch, slot, now), "")
        if state not in IN_PROGRESS or self.handed_over(watch):
            return
        if new is DevState.ERROR and old is not DevState.ERROR:
            self._must_cancel(watch, Cause(now, MigReason.DEVICE_ERROR, f"slot {slot} entered ERROR"), "VFM-ERR-001")
        elif cause is DevEvent.DEVICE_ERROR and new is DevState.ERROR:  # it failed again: a cause all the same
            watch.causes.append(Cause(now, MigReason.DEVICE_ERROR, f"slot {slot}'s function failed again in ERROR"))
        elif cause is DevEvent.SURPRISE_REMOVAL and old not in (DevState.EMPTY, DevState.UNBOUND):
            what = f"slot {slot}'s function ({old.name}) was surprise-removed"
            self._must_cancel(watch, Cause(now, MigReason.SURPRISE_REMOVAL, what), "VFM-ERR-003")

    def on_protocol_condition(self, bridge: MigrationBridge, what: str) -> None:
        """A condition of VFM-MIG-011: PROTOCOL_ERROR, before the guest's write completes."""
        watch = self.watch_of(bridge)
        if watch is None or not watch.in_progress or bridge.mig_state not in GUEST_HELP or self.handed_over(watch):
            return
        now = self.clock.now
        watch.causes.append(Cause(now, MigReason.PROTOCOL_ERROR, what))
        if watch.cancel_ns is None:
            self.protocol_pending.append((watch, what, now))

    def on_bridge_stepped(self, bridge: MigrationBridge, cause: str) -> None:
        """Called first among the bridge's observers: the hypervisor reacts to this step next."""
        if self.depth > 0:
            self.guest_depth = 0  # restored when the step's scope ends
        watch = self.watch_of(bridge)
        if watch is None or not watch.in_progress or watch.consent_withdrawn or cause != "guest":
            return
        withdrawn = [path.upper() for path in watch.consent if not bridge.field(path)]
        if withdrawn:
            watch.consent_withdrawn = True
            self.on_protocol_condition(bridge, f"the guest cleared {', '.join(withdrawn)}")

    def group_reset_refused(self, bridge: MigrationBridge, error: ProtocolError) -> None:
        """The guest's Secondary Bus Reset reached the bridge while a migration is in progress: who is to blame."""
        watch = self.watch_of(bridge)
        number = watch.number if watch is not None else "?"
        if bridge.mig_state is MigState.STOPPED:  # the guest could only write because its vCPUs ran
            requirement, why = "VFM-MIG-003", "with its vCPUs running in STOPPED"
        else:
            requirement, why = "VFM-MIG-011", "and the group reset reached the bridge before any CANCEL"
        self.checks.record(
            requirement,
            False,
            f"migration {number}: the guest set Secondary Bus Reset at {in_ms(self.clock.now)} {why} ({error})",
        )
        self.dead = True  # the bridge refused the reset half-way: nothing more in this world means anything

    def on_bus_master(self, event: Event) -> None:
        if not event.data.get("enabled"):
            return
        watch = self.in_progress()
        function = self.functions.get(str(event.data.get("function")))
        if function is not None:
            self._check_confined(function, "got Bus Master Enable set")
        if self.depth > 0:
            self.guest_depth = 0  # the hypervisor's BME listener runs next; restored when the write's scope ends
        if watch is None or watch.bridge is None or function is None or self.handed_over(watch):
            return
        bridge = watch.bridge
        slot = next((index for index, placed in enumerate(bridge.functions) if placed is function), None)
        if slot is None or bridge.dev_state(slot) not in QUIET_SLOTS:
            return
        watch.rogue = True
        what = f"slot {slot}'s function got BME set while {bridge.dev_state(slot).name}"
        if bridge.mig_state in GUEST_HELP:
            self.on_protocol_condition(bridge, what)
        elif bridge.mig_state is MigState.STOPPED:
            # A cause only if BME is still set when the hypervisor checks (VFM-MIG-012): see _implicit_causes.
            watch.bme_at_stop_ns = self.clock.now


def _uncancelled(watch: Watch, what: str, since: int) -> str:
    state = watch.bridge.mig_state.name if watch.bridge is not None else "?"
    return (
        f"migration {watch.number}: {what} at {in_ms(since)}; the guest's write completed in {state} without a "
        "CANCEL (PROTOCOL_ERROR is due before the write completes)"
    )
