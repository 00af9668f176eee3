"""The transition tables: every (state, event) pair, and the properties the spec relies on."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import vfmig_proto as vfm
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState, Origin, SlotFlag
from vfmig_proto.transitions import (
    ACKNOWLEDGED_BY,
    BUS_MASTER_REJECTIONS,
    CANCEL_REASONS,
    CATCH_UP,
    CLEAN_ENTRY_EVENTS,
    DEVICE_TRANSITIONS,
    EVENT_STATUS_FLAGS,
    FANOUT,
    FLAGS_SET_BY,
    MIGRATION_TRANSITIONS,
    PENDING_REQUEST_STATES,
    REASON_SET_BY,
    REPORT_EVENTS,
    SETTLED_STATES,
    Action,
    fanout_targets,
    rejected_for_bus_master,
    settled,
)

ALL_DEVICE_PAIRS = [(state, event) for state in DevState for event in DevEvent]
ALL_MIGRATION_PAIRS = [(state, event) for state in MigState for event in MigEvent]


@pytest.mark.parametrize(("state", "event"), ALL_DEVICE_PAIRS, ids=lambda x: x.name)
def test_every_device_pair_transitions_as_the_table_says_or_is_rejected(state: DevState, event: DevEvent) -> None:
    row = DEVICE_TRANSITIONS.get((state, event))
    if row is None:
        assert not vfm.device_event_allowed(state, event)
        with pytest.raises(vfm.ProtocolError) as caught:
            vfm.device_transition(state, event)
        assert (caught.value.machine, caught.value.state, caught.value.event) == ("device", state, event)
        assert state.name in str(caught.value)
        assert event.name in str(caught.value)
    else:
        assert vfm.device_event_allowed(state, event)
        outcome = vfm.device_transition(state, event)
        assert outcome == row
        if outcome.action is Action.IGNORE:
            assert outcome.next_state is state, "an ignored event never changes the state"


@pytest.mark.parametrize(("state", "event"), ALL_MIGRATION_PAIRS, ids=lambda x: x.name)
def test_every_migration_pair_transitions_as_the_table_says_or_is_rejected(state: MigState, event: MigEvent) -> None:
    expected = MIGRATION_TRANSITIONS.get((state, event))
    if expected is None:
        assert not vfm.migration_event_allowed(state, event)
        with pytest.raises(vfm.ProtocolError, match=f"{event.name}.*{state.name}"):
            vfm.migration_transition(state, event)
    else:
        assert vfm.migration_transition(state, event) is expected


@given(st.lists(st.sampled_from(list(DevEvent)), max_size=60))
def test_any_event_sequence_follows_the_device_table(events: list[DevEvent]) -> None:
    state = DevState.EMPTY
    for event in events:
        row = DEVICE_TRANSITIONS.get((state, event))
        try:
            outcome = vfm.device_transition(state, event)
        except vfm.ProtocolError:
            assert row is None
            continue
        assert outcome == row
        state = outcome.next_state
    assert isinstance(state, DevState)


def _reachable(start: Hashable, edges: Callable[[Hashable], Iterable[Hashable]]) -> set[Hashable]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in edges(queue.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _device_successors(state: Hashable) -> list[DevState]:
    return [o.next_state for (s, _), o in DEVICE_TRANSITIONS.items() if s is state and o.action is Action.ACCEPT]


def _migration_successors(state: Hashable) -> list[MigState]:
    return [n for (s, _), n in MIGRATION_TRANSITIONS.items() if s is state]


class TestDeviceMachineShape:
    def test_every_state_is_reachable_from_empty(self) -> None:
        assert _reachable(DevState.EMPTY, _device_successors) == set(DevState)

    def test_every_state_can_get_back_to_ready_or_empty(self) -> None:
        for state in DevState:
            assert {DevState.READY, DevState.EMPTY} & _reachable(state, _device_successors), state

    def test_every_present_function_can_vanish_or_fail_at_any_time(self) -> None:
        for state in DevState:
            if state is DevState.EMPTY:
                continue
            assert vfm.device_transition(state, DevEvent.SURPRISE_REMOVAL).next_state is DevState.EMPTY
            # A failed function with a driver waits for the group reset; without one the hypervisor resets it.
            expected = DevState.UNBOUND if state is DevState.UNBOUND else DevState.ERROR
            assert vfm.device_transition(state, DevEvent.DEVICE_ERROR).next_state is expected

    def test_group_reset_reaches_the_states_left_after_a_cancellation(self) -> None:
        reached = {s for s in DevState if (s, DevEvent.GROUP_RESET) in DEVICE_TRANSITIONS}
        in_flight = {DevState.DIRTY_REQ, DevState.DIRTYING, DevState.PAUSE_REQ, DevState.PAUSED}
        assert reached == set(DevState) - in_flight
        for state in reached:
            after = vfm.device_transition(state, DevEvent.GROUP_RESET).next_state
            assert after is {DevState.EMPTY: DevState.EMPTY, DevState.UNBOUND: DevState.UNBOUND}.get(
                state, DevState.REINIT_REQ
            )

    def test_only_a_driver_is_ever_asked_to_reinitialise(self) -> None:
        # REINIT_REQ waits for a driver's READY: a slot without a driver never enters it.
        for (state, _event), outcome in DEVICE_TRANSITIONS.items():
            if outcome.next_state is DevState.REINIT_REQ:
                assert state not in {DevState.EMPTY, DevState.UNBOUND}

    def test_error_is_left_by_removal_group_reset_or_unbinding(self) -> None:
        exits = {e for (s, e), o in DEVICE_TRANSITIONS.items() if s is DevState.ERROR and o.next_state is not s}
        assert exits == {DevEvent.SURPRISE_REMOVAL, DevEvent.GROUP_RESET, DevEvent.DRIVER_DETACHED}

    def test_the_guest_cannot_put_a_slot_into_a_host_owned_state(self) -> None:
        # Requests, errors and resets are the host's; a guest report only answers them (spec chapter 10).
        host_owned = PENDING_REQUEST_STATES | {DevState.ERROR, DevState.EMPTY}
        for (state, event), outcome in DEVICE_TRANSITIONS.items():
            if event.origin is Origin.GUEST and outcome.next_state is not state:
                assert outcome.next_state not in host_owned, (state, event)

    def test_guest_events_are_exactly_the_report_events(self) -> None:
        assert {e for e in DevEvent if e.origin is Origin.GUEST} == set(REPORT_EVENTS.values())
        assert set(REPORT_EVENTS) == set(DriverReport)

    def test_each_pending_request_has_one_answer(self) -> None:
        assert set(ACKNOWLEDGED_BY) == PENDING_REQUEST_STATES
        for state, report in ACKNOWLEDGED_BY.items():
            outcome = vfm.device_transition(state, REPORT_EVENTS[report])
            assert outcome.action is Action.ACCEPT
            assert outcome.next_state not in PENDING_REQUEST_STATES

    def test_only_guest_reports_are_ignored(self) -> None:
        for (state, event), outcome in DEVICE_TRANSITIONS.items():
            if outcome.action is Action.IGNORE:
                assert event.origin is Origin.GUEST, (state, event)


class TestMigrationMachineShape:
    def test_every_state_is_reachable(self) -> None:
        assert _reachable(MigState.IDLE, _migration_successors) == set(MigState)

    def test_every_state_can_end(self) -> None:
        # "Always ends": from anywhere, IDLE is reachable (STOPPED through ARRIVED or RESUMING).
        for state in MigState:
            assert MigState.IDLE in _reachable(state, _migration_successors), state

    def test_cancel_is_allowed_in_every_state_of_a_running_source_migration(self) -> None:
        running = {MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED}
        assert {s for s in MigState if vfm.migration_event_allowed(s, MigEvent.CANCEL)} == running

    def test_fanned_out_events_are_host_events_with_rows(self) -> None:
        for mig_event, dev_event in FANOUT.items():
            assert dev_event.origin is Origin.HOST
            assert any((s, dev_event) in DEVICE_TRANSITIONS for s in DevState), mig_event
            assert any(e is mig_event for (_, e) in MIGRATION_TRANSITIONS), mig_event

    def test_settled_sets_hold_no_pending_request(self) -> None:
        for event, states in SETTLED_STATES.items():
            assert not states & PENDING_REQUEST_STATES, event
            assert not states & {DevState.ERROR}, event

    def test_fanout_reaches_exactly_the_slots_with_a_row(self) -> None:
        slots = list(DevState)
        for mig_event, dev_event in FANOUT.items():
            expected = [i for i, s in enumerate(slots) if (s, dev_event) in DEVICE_TRANSITIONS]
            assert fanout_targets(mig_event, slots) == expected
        assert fanout_targets(MigEvent.ALL_PAUSED, slots) == []

    def test_settled_is_all_slots(self) -> None:
        assert settled(MigEvent.ALL_PAUSED, [DevState.PAUSED, DevState.EMPTY, DevState.UNBOUND])
        assert not settled(MigEvent.ALL_PAUSED, [DevState.PAUSED, DevState.PAUSE_REQ])
        assert settled(MigEvent.ALL_DIRTYING, [])

    @pytest.mark.parametrize("mig_state", list(CATCH_UP))
    def test_catch_up_requests_apply_in_order_from_ready(self, mig_state: MigState) -> None:
        state = DevState.READY
        for event in CATCH_UP[mig_state]:
            outcome = vfm.device_transition(state, event)
            assert outcome.action is Action.ACCEPT
            state = outcome.next_state
        assert state in PENDING_REQUEST_STATES


def _run_bridge(events: list[tuple[str, int]], slots: int) -> tuple[MigState, list[DevState]]:
    """A tiny composition of the two tables, as a bridge would drive them; used to test their interplay."""
    mig = MigState.IDLE
    devs = [DevState.UNBOUND] * slots
    for kind, index in events:
        slot = index % slots
        if kind == "host" and vfm.migration_event_allowed(mig, MigEvent.CANCEL):
            mig = vfm.migration_transition(mig, MigEvent.CANCEL)
            for target in fanout_targets(MigEvent.CANCEL, devs):
                devs[target] = vfm.device_transition(devs[target], DevEvent.CANCEL).next_state
        elif kind == "start" and mig is MigState.IDLE:
            mig = vfm.migration_transition(mig, MigEvent.START)
            for target in fanout_targets(MigEvent.START, devs):
                devs[target] = vfm.device_transition(devs[target], DevEvent.REQUEST_DIRTYING).next_state
        elif kind == "pause" and mig is MigState.PRECOPY:
            mig = vfm.migration_transition(mig, MigEvent.REQUEST_PAUSE)
            for target in fanout_targets(MigEvent.REQUEST_PAUSE, devs):
                devs[target] = vfm.device_transition(devs[target], DevEvent.REQUEST_PAUSE).next_state
        elif kind in ("bind", "answer"):
            report = DriverReport.READY if kind == "bind" else ACKNOWLEDGED_BY.get(devs[slot], DriverReport.READY)
            event = REPORT_EVENTS[report]
            if vfm.device_event_allowed(devs[slot], event):
                was = devs[slot]
                devs[slot] = vfm.device_transition(devs[slot], event).next_state
                if was is not DevState.READY and devs[slot] is DevState.READY:
                    for catch_up in CATCH_UP.get(mig, ()):
                        devs[slot] = vfm.device_transition(devs[slot], catch_up).next_state
        for settle in (MigEvent.ALL_DIRTYING, MigEvent.ALL_PAUSED, MigEvent.ALL_RESUMED):
            if vfm.migration_event_allowed(mig, settle) and settled(settle, devs):
                mig = vfm.migration_transition(mig, settle)
    return mig, devs


_STEPS = st.lists(
    st.tuples(st.sampled_from(["start", "pause", "bind", "answer", "host"]), st.integers(0, 3)), max_size=40
)


@given(_STEPS, st.integers(1, 4))
def test_tables_compose_without_a_dead_end(steps: list[tuple[str, int]], slots: int) -> None:
    """Whatever a guest and hypervisor did, answering every request and cancelling ends in IDLE."""
    mig, devs = _run_bridge(steps, slots)
    # Finish: the hypervisor cancels whatever runs, the drivers answer everything.
    finish = [("host", 0)] + [("answer", i) for i in range(slots)] * 3
    mig, devs = _run_bridge(steps + finish, slots)
    assert mig is MigState.IDLE
    assert all(state in {DevState.UNBOUND, DevState.READY} for state in devs)


class TestRulesBesideTheDeviceTable:
    def test_bus_master_rejections_are_those_of_vfm_dev_011(self) -> None:
        assert vfm.requirement("VFM-DEV-011").id == "VFM-DEV-011"
        assert BUS_MASTER_REJECTIONS[DriverReport.PAUSED] == frozenset(MigState), "PAUSED: whatever MIG_STATE"
        assert BUS_MASTER_REJECTIONS[DriverReport.NONE] == frozenset(MigState) - {MigState.IDLE}, "NONE: not IDLE"
        assert set(BUS_MASTER_REJECTIONS) == {DriverReport.PAUSED, DriverReport.NONE}
        assert rejected_for_bus_master(DriverReport.NONE, MigState.RESUMING)
        assert not rejected_for_bus_master(DriverReport.READY, MigState.PRECOPY)

    def test_mig_reason_is_set_by_start_cancel_and_arrive_only(self) -> None:
        # Spec §4.4 / VFM-MIG-009, VFM-MIG-010.
        assert REASON_SET_BY == {MigEvent.START: MigReason.NONE, MigEvent.ARRIVE: MigReason.COMPLETED}
        assert MigReason.NONE not in CANCEL_REASONS
        assert MigReason.COMPLETED not in CANCEL_REASONS
        assert CANCEL_REASONS | {MigReason.NONE, MigReason.COMPLETED} == set(MigReason)

    def test_flags_follow_fanned_out_events(self) -> None:
        assert set(FLAGS_SET_BY) <= set(FANOUT), "flags are set in the step of a migration event with a fan-out"
        assert set(EVENT_STATUS_FLAGS) == set(FLAGS_SET_BY.values()), "VFM-NOTIF-001: the flags host events set"
        assert SlotFlag.PROTOCOL_ERROR not in EVENT_STATUS_FLAGS, "VFM-SEC-003"

    def test_clean_entry_events_are_the_hot_plug_events(self) -> None:
        assert {DEVICE_TRANSITIONS[(DevState.EMPTY, DevEvent.HOT_ADD)].next_state} == {DevState.UNBOUND}
        assert all(event.origin is Origin.HOST for event in CLEAN_ENTRY_EVENTS)
        assert frozenset({DevEvent.HOT_ADD, DevEvent.SURPRISE_REMOVAL}) == CLEAN_ENTRY_EVENTS
