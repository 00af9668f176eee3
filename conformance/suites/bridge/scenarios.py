"""Multi-step scenarios: a cooperative guest and hypervisor that move migrations along.

The ``advance`` rule plays a migration as a guest whose drivers follow the protocol and a hypervisor that steps
on when they have answered: the migration core acknowledges the event, each driver answers its slot's pending
request, the hypervisor causes the next host event (START, REQUEST_PAUSE, ARRIVE, a group reset, or a CANCEL for
a slot that never settles).  So every state is reached in a few steps, and the random rules
(:mod:`conformance.suites.bridge.rules`) act in all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from hypothesis import strategies as st
from hypothesis import target
from hypothesis.stateful import precondition, rule

from conformance.checks import step
from conformance.suites.bridge.actions import Actions
from conformance.suites.bridge.world import SLOT_PICKS, swarmed
from vfmig_proto.states import DevState, DriverReport, MigReason, MigState
from vfmig_proto.transitions import ACKNOWLEDGED_BY, CATCH_UP

STALE_ANSWERS = tuple(sorted(set(ACKNOWLEDGED_BY.values())))
"""The answers a driver gives to a request (DIRTYING, PAUSED, READY): sent stale when the request is gone."""


class Scenarios(Actions):
    """A driver that binds, and a whole migration played by a cooperative guest and hypervisor."""

    def _answer(self, slot: int) -> None:
        """What a driver that follows the protocol does about its slot's pending request (or to bind)."""
        state = self.model.dev_state(slot)
        answer = ACKNOWLEDGED_BY.get(state, DriverReport.READY)
        function = self.functions[slot]
        if answer is DriverReport.PAUSED and function is not None:
            function.bus_master = False  # stop DMA before acknowledging the pause
        self._report(slot, answer, f"slot {slot}'s driver answers {state.name} with {answer.name}")
        if answer is DriverReport.READY and function is not None and self.model.dev_state(slot) is DevState.READY:
            function.bus_master = True  # running again

    def _bindable(self) -> list[int]:
        return [slot for slot, state in enumerate(self.model.dev_states()) if state is DevState.UNBOUND]

    def _progress(self, late_binder: bool) -> Callable[[], None]:
        """The next thing that moves the migration on, as a cooperative guest and hypervisor do it.

        With ``late_binder``, a driver that binds while a migration is in progress goes first (spec §4.3.10).
        """
        model = self.model
        if late_binder and model.mig_state in CATCH_UP and self._bindable():
            return partial(self._answer, self._bindable()[0])
        pending = [slot for slot, state in enumerate(model.dev_states()) if state in ACKNOWLEDGED_BY]
        if pending:
            return partial(self._answer, pending[0])
        stuck = partial(self._cancel, MigReason.ACK_TIMEOUT)  # a slot in ERROR never settles
        actions: dict[MigState, Callable[[], None]] = {
            MigState.IDLE: self._start,
            MigState.PRECOPY: self._request_pause,
            MigState.STOPPED: self._migrate,
            MigState.PREPARE: stuck,
            MigState.PAUSING: stuck,
            MigState.RESUMING: self._group_reset,
            MigState.ARRIVED: self._group_reset,
        }
        return actions[model.mig_state]

    def _bound(self) -> list[int]:
        """The slots whose function has a driver: neither EMPTY nor UNBOUND."""
        return [
            slot
            for slot, state in enumerate(self.model.dev_states())
            if state not in {DevState.EMPTY, DevState.UNBOUND}
        ]

    # ------------------------------------------------------------------ rules: both, cooperating

    @swarmed
    @precondition(lambda self: self._live() and bool(self._bound()))
    @rule(pick=SLOT_PICKS)
    @step("VFM-DEV-002", "VFM-DEV-004", "VFM-DEV-011", "VFM-MIG-007", "VFM-SEC-003")
    def unbind(self, pick: int) -> None:
        """A driver unbinds in whatever phase the migration is in: it stops its function's DMA (Bus Master Enable
        clear), then reports NONE (spec §7.4)."""
        slots = self._bound()
        slot = slots[pick % len(slots)]
        function = self.functions[slot]
        if function is not None:
            function.bus_master = False
        state = self.model.dev_state(slot).name
        self._report(slot, DriverReport.NONE, f"slot {slot}'s driver unbinds in {state} ({self.model.mig_state.name})")

    @swarmed
    @precondition(lambda self: self._live() and bool(self._bound()))
    @rule(pick=SLOT_PICKS, answer=st.sampled_from(STALE_ANSWERS))
    @step("VFM-DEV-002", "VFM-DEV-003", "VFM-DEV-004", "VFM-DEV-010", "VFM-MIG-007", "VFM-SEC-003")
    def stale_answer(self, pick: int, answer: DriverReport) -> None:
        """A driver answers a request it is no longer asked: the acknowledgement of a request that a CANCEL, a
        group reset or a catch-up overtook, as it was in flight (spec §4.2, the late answers of the table)."""
        slots = self._bound()
        slot = slots[pick % len(slots)]
        state = self.model.dev_state(slot)
        if ACKNOWLEDGED_BY.get(state) is answer:
            return  # not stale: the slot is asked for exactly this answer
        function = self.functions[slot]
        if answer is DriverReport.PAUSED and function is not None:
            function.bus_master = False  # it had paused its function for the withdrawn request
        self._report(slot, answer, f"slot {slot}'s driver sends a stale {answer.name} in {state.name}")

    def teardown(self) -> None:
        """Steer Hypothesis (``target``) towards examples that visit more protocol states and migrate more often, so
        that faults that show only in rare states or on a later migration are reached."""
        if self._model is not None:
            target(float(len(self.explored.visited)), label="(MIG_STATE, DEV_STATE) pairs visited")
            target(float(self.explored.migrations), label="migrations handed over")
        super().teardown()

    @precondition(lambda self: self._live() and bool(self._bindable()))
    @rule(pick=SLOT_PICKS)
    @step("VFM-DEV-002", "VFM-DEV-004", "VFM-MIG-008", "VFM-NOTIF-001")
    def bind(self, pick: int) -> None:
        """A driver binds to an UNBOUND slot's function: READY, then Bus Master Enable."""
        slots = self._bindable()
        self._answer(slots[pick % len(slots)])

    @precondition(lambda self: self._live())
    @rule(times=st.integers(1, 8), late_binder=st.booleans())
    @step(
        "VFM-MIG-002",
        "VFM-MIG-006",
        "VFM-MIG-007",
        "VFM-MIG-008",
        "VFM-DEV-002",
        "VFM-DEV-004",
        "VFM-DEV-012",
        "VFM-FLAG-001",
        "VFM-NOTIF-001",
        "VFM-NOTIF-002",
        "VFM-NOTIF-003",
    )
    def advance(self, times: int, late_binder: bool) -> None:
        """The migration moves on: the core acknowledges the event, drivers answer, the hypervisor steps on."""
        for _ in range(times):  # any step may stall the bridge: each is taken only while there is one to judge
            if self._live() and self.model.event:
                self._clear_event()
            if self._live():
                self._progress(late_binder)()
