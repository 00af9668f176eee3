"""Timing and deadlines: when each phase of the migration began and ended, against its deadline or limit
(spec 7.6, chapter 8), and the durations the hypervisor measured.
"""

from __future__ import annotations

from functools import partial

from conformance.suites.hypervisor.observers.dirtying import DirtyingObserver
from conformance.suites.hypervisor.observers.watched import WatchedLog
from conformance.suites.hypervisor.settings import ACK_TIMEOUT_MS, DEADLINE_ACTIONS, MIGRATION, PHASE_LIMITS
from conformance.suites.hypervisor.watch import PhaseExit, Watch, in_ms
from reference_impl.events import Event
from vfmig_proto.states import MigEvent, MigState


class TimingObserver(DirtyingObserver):
    """Checks of the phases' deadlines and limits, the bound T_max and the measured durations."""

    def on_mig_transition(self, event: Event) -> None:
        bridge = self.bridges.get(event.source)
        watch = self.current
        new, old, cause = event.data.get("new"), event.data.get("old"), event.data.get("event")
        if bridge is None or watch is None or not isinstance(new, MigState):
            return
        now = event.time
        if bridge is watch.dest_bridge and cause is MigEvent.ARRIVE:
            watch.arrived_ns = now
            return
        if bridge is watch.bridge and cause is MigEvent.GROUP_RESET:
            watch.group_resets.append(now)
        if bridge is not watch.bridge or not watch.in_progress:
            return
        watch.phases.setdefault(new, now)
        if old is MigState.PRECOPY and new is not MigState.PRECOPY:
            self._check_dirty_requests(watch, now)
        if isinstance(old, MigState) and old is not new:
            self._phase_left(watch, old, now, cause)
        if old is MigState.PAUSING and new is not MigState.PAUSING:
            self._check_sent_in_pausing(watch, now)
        if new is MigState.PAUSING and watch.memory is not None:
            watch.dirty_at_pause = watch.memory.log.count
        self._phase_entered(watch, old, new, now)

    def _phase_entered(self, watch: Watch, old: object, new: MigState, now: int) -> None:
        """Arm the check of the deadline or limit that ends the phase ``new`` (spec 7.6, chapter 8)."""
        self._fire(new)
        if new is MigState.RESUMING and old is MigState.STOPPED and not self.world.guest.running:
            # After a CANCEL from STOPPED the phase starts when the vCPUs run again, at the latest e later.
            self._schedule(now + self.e + 1, partial(self._resuming_late, watch, now), "RESUMING start")
        elif new is MigState.RESUMING:
            self._resuming_from(watch, now)
        elif new in PHASE_LIMITS:
            self._due(watch, new, now)
        elif new is MigState.IDLE and old is not MigState.IDLE:
            self._ended(watch, now)

    def _ended(self, watch: Watch, now: int) -> None:
        if watch.ended_ns is not None:
            return
        watch.ended_ns = now
        # Resets and hot-plug that no rule calls for were recorded as they happened; none came for this one.
        self.checks.record("VFM-CANCEL-002", True, "")
        self.checks.record(
            "VFM-NOTIF-005",
            watch.unsignalled == 0,
            f"migration {watch.number}: {watch.unsignalled} interrupts of functions behind the bridge were injected "
            "into the guest during the migration without the function signalling them",
        )
        if watch.handover_ns is None:
            self._schedule(now + 1, partial(self._check_measured_total, watch, now), "GEN-002")
        memory = watch.memory
        if memory is not None and isinstance(memory.log, WatchedLog) and watch.handover_ns is None:
            memory.log.unsent = None
        bound = MIGRATION.bound_ns(ACK_TIMEOUT_MS)
        start = watch.start_ns or 0
        self.checks.record(
            "VFM-TIME-004",
            now - start <= bound,
            f"migration {watch.number} started at {in_ms(start)} and reached "
            f"{'the handover point' if watch.handover_ns is not None else 'IDLE'} only at {in_ms(now)}, later than "
            f"T_max = {in_ms(bound)}",
        )

    def _phase_start(self, watch: Watch, state: MigState) -> int | None:
        return watch.resuming_start if state is MigState.RESUMING else watch.phases.get(state)

    def _limit(self, state: MigState) -> tuple[str, int, int]:
        """The requirement that bounds ``state``, the phase's length and the grace after it (e, or 0 for P)."""
        requirement, length = PHASE_LIMITS[state]
        return requirement, length, 0 if state is MigState.PRECOPY else self.e

    def _phase_left(self, watch: Watch, state: MigState, now: int, how: object = None) -> None:
        """The phase ``state`` ended at ``now`` (``how``: the MigEvent that ended it, or the handover point).

        PRECOPY's limit P is judged at once (it has no grace).  A deadline is judged when it passes
        (:meth:`_due`): a phase that ended later than its deadline other than by the action the deadline calls for
        (a late acknowledgement, the handover) is a phase the hypervisor let run past it.
        """
        start = self._phase_start(watch, state)
        if state not in PHASE_LIMITS or start is None:
            return
        requirement, length, _ = self._limit(state)
        if state is MigState.PRECOPY:
            self.checks.record(
                requirement,
                now <= start + length,
                lambda: (
                    f"migration {watch.number}: PRECOPY began at {in_ms(start)} and lasted until {in_ms(now)}; its "
                    f"limit was {in_ms(start + length)}"
                ),
            )
            return
        action = DEADLINE_ACTIONS[state]
        label = how.name if isinstance(how, MigEvent) else str(how or "the handover point")
        watch.left.setdefault(state, PhaseExit(now, how is action, label))
        if now <= start + length:
            self.checks.record(requirement, True, "")

    def _due(self, watch: Watch, state: MigState, start: int) -> None:
        """Judge the phase ``state`` at its deadline (VFM-TMO-00x, -TIME-001, -DEST-005), and e on its own.

        A phase still under way when its deadline passes must end by the action the deadline calls for: a phase
        that ended otherwise after it (a late acknowledgement, even one within e) breaks the deadline's
        requirement.  An action that comes, but later than e after the deadline, breaks VFM-TIME-005 (judged where
        the action is seen); one that never comes breaks the deadline's requirement.
        """
        requirement, length, grace = self._limit(state)
        deadline = start + length

        def check(final: bool) -> None:
            bridge = watch.bridge
            assert bridge is not None
            if state is MigState.PRECOPY:
                if self.handed_over(watch) or watch.ended_ns is not None or bridge.mig_state is not state:
                    return
                self.checks.record(requirement, False, self._overran(watch, state, deadline, f"still {state.name}"))
                return
            left = watch.left.get(state)
            if (left is not None and left.time_ns <= deadline) or self._deadline_acted(watch, state, deadline):
                return
            if left is not None:
                how = f"{state.name} ended by {left.how} at {in_ms(left.time_ns)}"
                self.checks.record(requirement, False, self._overran(watch, state, deadline, how))
            elif final:
                self.checks.record(requirement, False, self._overran(watch, state, deadline, f"still {state.name}"))
            elif watch.ended_ns is None:
                # Still in the phase, e after the deadline: the action may yet come (late: VFM-TIME-005) or never.
                self._schedule(deadline + grace + self.ack_ns, partial(check, True), requirement)

        self._schedule(deadline + grace + 1, partial(check, False), requirement)

    def _deadline_acted(self, watch: Watch, state: MigState, deadline: int) -> bool:
        """Whether the action the deadline of ``state`` calls for has come since it passed."""
        if DEADLINE_ACTIONS[state] is MigEvent.GROUP_RESET:
            return any(time >= deadline for time in watch.group_resets)
        return watch.cancel_ns is not None and watch.cancel_ns >= deadline

    def _overran(self, watch: Watch, state: MigState, deadline: int, what: str) -> str:
        """The message of a phase that was still under way at its deadline or limit and did not end by its action."""
        action = "limit" if state is MigState.PRECOPY else "deadline"
        return (
            f"migration {watch.number}: {state.name} was still under way at its {action} {in_ms(deadline)} "
            f"(phase entered at {in_ms(self._phase_start(watch, state) or 0)}); {what}, and no "
            f"{DEADLINE_ACTIONS.get(state, MigEvent.CANCEL).name} by {in_ms(self.clock.now)}"
        )

    def _resuming_from(self, watch: Watch, start: int) -> None:
        if watch.resuming_start is None:
            watch.resuming_start = start
            self._due(watch, MigState.RESUMING, start)

    def _resuming_late(self, watch: Watch, cancel_ns: int) -> None:
        """The vCPUs did not run within e of the CANCEL from STOPPED: the phase started at the latest then."""
        self._resuming_from(watch, cancel_ns + self.e)

    def _check_dirty_requests(self, watch: Watch, now: int) -> None:
        """PRECOPY ended: each DIRTY_REQ still open ends with it (judged at its deadline, _check_dirty_request)."""
        for slot, since in watch.dirty_req.items():
            watch.dirty_req_ended.setdefault((slot, since), now)
        watch.dirty_req.clear()

    def _check_dirty_request(self, watch: Watch, slot: int, since: int, final: bool = False) -> None:
        """VFM-TMO-002 at the deadline of slot ``slot``'s DIRTY_REQ entered at ``since``, in PRECOPY.

        A DIRTY_REQ that outlived its deadline in PRECOPY calls for a CANCEL: one that ended otherwise after the
        deadline (a late DIRTYING, REQUEST_PAUSE) breaks VFM-TMO-002; a CANCEL later than e is VFM-TIME-005's.
        """
        deadline = since + self.ack_ns
        ended = watch.dirty_req_ended.get((slot, since))
        acted = watch.cancel_ns is not None and watch.cancel_ns >= deadline
        if (ended is not None and ended <= deadline) or acted:
            self.checks.record("VFM-TMO-002", True, "")
            return
        if ended is None and not final and watch.ended_ns is None:
            self._schedule(
                deadline + self.e + self.ack_ns, partial(self._check_dirty_request, watch, slot, since, True), ""
            )
            return
        how = "still open" if ended is None else f"it ended at {in_ms(ended)} otherwise than by a CANCEL"
        self.checks.record(
            "VFM-TMO-002",
            False,
            lambda: (
                f"migration {watch.number}: slot {slot} in DIRTY_REQ since {in_ms(since)} during PRECOPY, still so at "
                f"its deadline {in_ms(deadline)}; {how}, and no ACK_TIMEOUT by {in_ms(self.clock.now)}"
            ),
        )

    def _check_bound(self, watch: Watch, bound: int) -> None:
        if watch.ended_ns is not None or self.handed_over(watch):
            return
        bridge = watch.bridge
        self.checks.record(
            "VFM-TIME-004",
            False,
            f"migration {watch.number} started at {in_ms(watch.start_ns or 0)}: neither the handover point nor IDLE "
            f"within T_max = {in_ms(bound)} (MIG_STATE {bridge.mig_state.name if bridge else '?'} at "
            f"{in_ms(self.clock.now)})",
        )

    def _check_measured_downtime(self, watch: Watch) -> None:
        """VFM-GEN-002: the downtime the hypervisor measured is the one its host's clock (the suite's) shows."""
        record = getattr(watch.handle, "record", None)
        stopped, resumed = watch.vcpus_stopped_ns, watch.vcpus_resumed_ns
        measured = getattr(record, "downtime_ns", None)
        if stopped is None or resumed is None or not isinstance(measured, int):
            return
        self.checks.record(
            "VFM-GEN-002",
            measured == resumed - stopped,
            f"migration {watch.number}: the guest's vCPUs stopped at {in_ms(stopped)} and ran again at "
            f"{in_ms(resumed)} on the host's clock, a downtime of {in_ms(resumed - stopped)}; the hypervisor measured "
            f"{in_ms(measured)}",
        )

    def _check_measured_total(self, watch: Watch, end: int) -> None:
        """VFM-GEN-002: the duration from START to IDLE that the hypervisor measured is the host clock's."""
        record = getattr(watch.handle, "record", None)
        measured = getattr(record, "total_ns", None)
        start = watch.start_ns
        if start is None or not isinstance(measured, int):
            return
        self.checks.record(
            "VFM-GEN-002",
            measured == end - start,
            f"migration {watch.number} went from START at {in_ms(start)} to IDLE at {in_ms(end)} on the host's clock, "
            f"{in_ms(end - start)}; the hypervisor measured {in_ms(measured)}",
        )
