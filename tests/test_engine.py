"""The protocol engine: every (state, input) pair, and the flows of chapter 4 and 7 as examples.

The properties are the spec's sentences, checked on whatever state and input
Hypothesis draws: a report moves only its own slot (§4.1); a rejected or
ignored report changes nothing but ``DRV_STATE`` and ``PROTOCOL_ERROR``
(VFM-DEV-003, VFM-DEV-010); a fan-out reaches exactly the slots with a row
(VFM-MIG-006); no settled event is left due after a step (VFM-MIG-007); a
step sets ``STATUS.EVENT`` exactly as §4.1 says; and the rule methods change
nothing until their effects are applied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vfmig_proto.codec import reset_value, with_field
from vfmig_proto.engine import (
    DeviceTransition,
    Effects,
    FieldWrite,
    Judgement,
    MigrationTransition,
    ProtocolEngine,
    ProtocolState,
    ReportRejected,
    SlotState,
    StateField,
    read_protocol_state,
    slot_states,
)
from vfmig_proto.errors import ProtocolError
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState, Origin, SlotFlag
from vfmig_proto.transitions import (
    BUS_MASTER_REJECTIONS,
    CANCEL_REASONS,
    DEVICE_TRANSITIONS,
    FANOUT,
    FLAGS_SET_BY,
    MIGRATION_TRANSITIONS,
    REPORT_EVENTS,
    Action,
)

_SLOTS = 4
_HOST_MIGRATION_EVENTS = sorted(FANOUT, key=lambda event: event.value)
_SLOT_EVENTS = (DevEvent.HOT_ADD, DevEvent.SURPRISE_REMOVAL, DevEvent.DEVICE_ERROR)


def _engine(mig: MigState, states: list[DevState]) -> ProtocolEngine:
    return ProtocolEngine(len(states), ProtocolState(slot_states(states), mig))


def _mig(engine: ProtocolEngine) -> MigState:
    """MIG_STATE, read anew (a step changes it behind mypy's back)."""
    return engine.mig_state


@st.composite
def _quiet_states(draw: st.DrawFn) -> ProtocolState:
    """Any protocol state in which no settled event is due (a bridge raises them in the step that makes them due)."""
    slots = tuple(
        SlotState(
            draw(st.sampled_from(list(DevState))),
            draw(st.integers(0, 7)),
            draw(st.booleans()),
            draw(st.booleans()),
            draw(st.booleans()),
        )
        for _ in range(_SLOTS)
    )
    state = ProtocolState(
        slots, draw(st.sampled_from(list(MigState))), draw(st.sampled_from(list(MigReason))), draw(st.integers(0, 7))
    )
    assume(not ProtocolEngine(_SLOTS, state).due_settled_events())
    return state


@dataclass(frozen=True)
class _Report:
    slot: int
    written: int
    bus_master: bool


@dataclass(frozen=True)
class _Migration:
    event: MigEvent
    reason: MigReason | None


@dataclass(frozen=True)
class _SlotEvent:
    slot: int
    event: DevEvent


_Input = _Report | _Migration | _SlotEvent

_INPUTS: st.SearchStrategy[_Input] = st.one_of(
    st.builds(_Report, st.integers(0, _SLOTS - 1), st.integers(0, 7), st.booleans()),
    st.builds(
        _Migration,
        st.sampled_from(_HOST_MIGRATION_EVENTS),
        st.sampled_from([None, *MigReason]),
    ),
    st.builds(_SlotEvent, st.integers(0, _SLOTS - 1), st.sampled_from(_SLOT_EVENTS)),
)


def _rule_effects(engine: ProtocolEngine, given_input: _Input) -> Effects:
    """What the input does, asked without applying it (ProtocolError / ValueError if it is not allowed)."""
    if isinstance(given_input, _Report):
        verdict = engine.judge_report(given_input.slot, given_input.written, bus_master=given_input.bus_master)
        return engine.report(verdict)
    if isinstance(given_input, _Migration):
        return engine.migration_event(given_input.event, reason=given_input.reason)
    return engine.slot_event(given_input.slot, given_input.event)


def _allowed(state: ProtocolState, given_input: _Input) -> bool:
    """Whether the tables allow the input: reports always are (they are judged); host events need a row."""
    if isinstance(given_input, _Report):
        return True
    if isinstance(given_input, _Migration):
        event, reason = given_input.event, given_input.reason
        reason_ok = reason in CANCEL_REASONS if event is MigEvent.CANCEL else reason is None
        return reason_ok and (state.mig_state, event) in MIGRATION_TRANSITIONS
    return (state.slots[given_input.slot].dev_state, given_input.event) in DEVICE_TRANSITIONS


def _process(engine: ProtocolEngine, given_input: _Input) -> Effects:
    if isinstance(given_input, _Report):
        _, effects = engine.process_report(given_input.slot, given_input.written, bus_master=given_input.bus_master)
        return effects
    if isinstance(given_input, _Migration):
        return engine.process_migration_event(given_input.event, reason=given_input.reason)
    return engine.process_slot_event(given_input.slot, given_input.event)


class TestEveryStateAndInput:
    @settings(max_examples=300)
    @given(state=_quiet_states(), given_input=_INPUTS)
    def test_rules_ask_and_apply_changes(self, state: ProtocolState, given_input: _Input) -> None:
        engine = ProtocolEngine(_SLOTS, state)
        if not _allowed(state, given_input):
            with pytest.raises((ProtocolError, ValueError)):
                _rule_effects(engine, given_input)
            assert engine.state == state, "a refused input changes nothing"
            return
        effects = _rule_effects(engine, given_input)
        assert engine.state == state, "a rule method is a question: it changes nothing"
        engine.apply(effects)
        replayed = ProtocolEngine(_SLOTS, state)
        for write in effects.writes:
            replayed.apply(Effects((write,)))
        assert engine.state == replayed.state, "applying effects is applying their writes, in order"

    @settings(max_examples=300)
    @given(state=_quiet_states(), given_input=_INPUTS)
    def test_a_step_leaves_no_settled_event_due(self, state: ProtocolState, given_input: _Input) -> None:
        assume(_allowed(state, given_input))
        engine = ProtocolEngine(_SLOTS, state)
        _process(engine, given_input)
        assert engine.due_settled_events() == [], "VFM-MIG-007: raised in the step that made it due"

    @settings(max_examples=300)
    @given(state=_quiet_states(), given_input=_INPUTS)
    def test_status_event_as_section_4_1_says(self, state: ProtocolState, given_input: _Input) -> None:
        assume(_allowed(state, given_input))
        engine = ProtocolEngine(_SLOTS, state)
        effects = _process(engine, given_input)
        after = engine.state
        host_moved = any(
            isinstance(change, DeviceTransition) and change.event.origin is Origin.HOST and change.old is not change.new
            for change in effects.changes
        )
        flagged = any(
            isinstance(given_input, _Migration)
            and given_input.event in FLAGS_SET_BY
            and slot.dev_state is not DevState.EMPTY
            for slot in state.slots
        )
        # No step leaves MIG_STATE and comes back to it, so "changes MIG_STATE" compares before and after.
        expected = after.mig_state is not state.mig_state or host_moved or flagged
        assert effects.sets_event is expected, f"VFM-NOTIF-001: {given_input} from {state}"


def _every_input() -> list[_Input]:
    reports: list[_Input] = [_Report(0, written, bme) for written in range(8) for bme in (False, True)]
    reasons = [None, MigReason.CANCELLED, MigReason.COMPLETED]
    migrations: list[_Input] = [_Migration(event, reason) for event in _HOST_MIGRATION_EVENTS for reason in reasons]
    return reports + migrations + [_SlotEvent(0, event) for event in _SLOT_EVENTS]


@pytest.mark.parametrize("mig", list(MigState), ids=lambda m: m.name)
def test_every_pair_of_state_and_input_is_answered_or_refused(mig: MigState) -> None:
    """Exhaustively: every slot state and every input, in this MIG_STATE (h2's test of every pair)."""
    for dev_state in DevState:
        state = ProtocolState(slot_states([dev_state, DevState.ERROR]), mig)  # ERROR: no settled event due
        for given_input in _every_input():
            engine = ProtocolEngine(2, state)
            if _allowed(state, given_input):
                effects = _rule_effects(engine, given_input)
                assert engine.state == state
                assert engine.apply(effects) is effects
            else:
                with pytest.raises((ProtocolError, ValueError)):
                    _rule_effects(engine, given_input)


class TestReports:
    @settings(max_examples=400)
    @given(
        state=_quiet_states(),
        slot=st.integers(0, _SLOTS - 1),
        written=st.integers(0, 7),
        bus_master=st.booleans(),
        old=st.integers(0, 7),
    )
    def test_a_report_is_judged_by_the_table_and_the_bme_rule(
        self, state: ProtocolState, slot: int, written: int, bus_master: bool, old: int
    ) -> None:
        engine = ProtocolEngine(_SLOTS, state)
        here = state.slots[slot]
        verdict = engine.judge_report(slot, written, bus_master=bus_master, old=old)
        defined = written in {int(report) for report in DriverReport}
        row = DEVICE_TRANSITIONS.get((here.dev_state, REPORT_EVENTS[DriverReport(written)])) if defined else None
        assert verdict.table == (None if row is None else row.action)
        bme_rule = defined and bus_master and state.mig_state in BUS_MASTER_REJECTIONS.get(DriverReport(written), ())
        if bme_rule:
            assert verdict.judgement is Judgement.REJECT_BUS_MASTER, "VFM-DEV-011: whatever the table says"
        elif row is None:
            assert verdict.judgement is Judgement.REJECT, "VFM-DEV-010: no row, or an undefined value"
        else:
            assert verdict.judgement.value == {Action.ACCEPT: "accepted", Action.IGNORE: "ignored"}[row.action]

    @settings(max_examples=400)
    @given(state=_quiet_states(), slot=st.integers(0, _SLOTS - 1), written=st.integers(0, 7), bus_master=st.booleans())
    def test_a_report_moves_only_its_own_slot(
        self, state: ProtocolState, slot: int, written: int, bus_master: bool
    ) -> None:
        engine = ProtocolEngine(_SLOTS, state)
        verdict, effects = engine.process_report(slot, written, bus_master=bus_master)
        after = engine.state
        others = [index for index in range(_SLOTS) if index != slot]
        assert [after.slots[i] for i in others] == [state.slots[i] for i in others], "spec §4.1: slots independent"
        here, now = state.slots[slot], after.slots[slot]
        if verdict.judgement.rejected:
            assert now == replace(here, protocol_error=True), "VFM-DEV-010: DRV_STATE restored, PROTOCOL_ERROR set"
            assert effects.rejections == (ReportRejected(verdict),)
            assert after.mig_state is state.mig_state
            assert not effects.sets_event, "VFM-SEC-003: a rejected report raises no interrupt"
        elif verdict.judgement is Judgement.IGNORE:
            assert after == state, "VFM-DEV-003: an ignored report changes nothing"
            assert not effects.sets_event
        else:
            assert now.drv_state == written, "VFM-DEV-002: the accepted value stays in DRV_STATE"
            assert (now.migrated, now.reset, now.protocol_error) == (here.migrated, here.reset, here.protocol_error)


class TestMigrationEvents:
    @settings(max_examples=200)
    @given(
        event=st.sampled_from(_HOST_MIGRATION_EVENTS),
        states=st.lists(st.sampled_from(list(DevState)), min_size=_SLOTS, max_size=_SLOTS),
        data=st.data(),
    )
    def test_fan_out_reaches_the_slots_with_a_row(
        self, event: MigEvent, states: list[DevState], data: st.DataObject
    ) -> None:
        mig = data.draw(st.sampled_from([m for m, e in MIGRATION_TRANSITIONS if e is event]), label="mig")
        engine = _engine(mig, states)
        reason = MigReason.CANCELLED if event is MigEvent.CANCEL else None
        effects = engine.migration_event(event, reason=reason)
        device_event = FANOUT[event]
        reached = {c.slot for c in effects.changes if isinstance(c, DeviceTransition)}
        assert reached == {slot for slot, s in enumerate(states) if (s, device_event) in DEVICE_TRANSITIONS}
        engine.apply(effects)
        for slot, state in enumerate(states):
            row = DEVICE_TRANSITIONS.get((state, device_event))
            assert engine.dev_state(slot) is (state if row is None else row.next_state), "VFM-MIG-006"
        flag = FLAGS_SET_BY.get(event)
        if flag is not None:
            flagged = [engine.state.slots[slot].flag(flag) for slot in range(_SLOTS)]
            assert flagged == [s is not DevState.EMPTY for s in states], "VFM-FLAG-001 / VFM-ERR-005"

    def test_start_advances_generation_modulo_2_32_and_clears_the_reason(self) -> None:
        state = ProtocolState(slot_states([DevState.READY]), MigState.IDLE, MigReason.CANCELLED, 0xFFFFFFFF)
        engine = ProtocolEngine(1, state)
        engine.process_migration_event(MigEvent.START)
        assert (engine.state.generation, engine.state.mig_reason) == (0, MigReason.NONE), "VFM-MIG-002"
        assert engine.mig_state is MigState.PREPARE
        assert engine.dev_state(0) is DevState.DIRTY_REQ

    @pytest.mark.parametrize("reason", [None, MigReason.NONE, MigReason.COMPLETED], ids=str)
    def test_cancel_needs_a_cancellation_reason(self, reason: MigReason | None) -> None:
        engine = _engine(MigState.PRECOPY, [DevState.DIRTYING])
        with pytest.raises(ProtocolError):
            engine.migration_event(MigEvent.CANCEL, reason=reason)

    def test_only_cancel_carries_a_reason_and_settled_events_are_the_engines(self) -> None:
        engine = _engine(MigState.PRECOPY, [DevState.DIRTYING])
        with pytest.raises(ValueError, match="only CANCEL"):
            engine.migration_event(MigEvent.REQUEST_PAUSE, reason=MigReason.CANCELLED)
        with pytest.raises(ValueError, match="settled event"):
            _engine(MigState.PAUSING, [DevState.PAUSED]).migration_event(MigEvent.ALL_PAUSED)

    def test_passing_through_states_with_no_bound_slot(self) -> None:
        engine = _engine(MigState.IDLE, [DevState.UNBOUND, DevState.EMPTY])
        effects = engine.process_migration_event(MigEvent.START)
        events = [c.event for c in effects.changes if isinstance(c, MigrationTransition)]
        assert events == [MigEvent.START, MigEvent.ALL_DIRTYING], "spec §4.3.9: one step through PREPARE"
        assert engine.mig_state is MigState.PRECOPY


class TestSlotEvents:
    @pytest.mark.parametrize("event", [DevEvent.HOT_ADD, DevEvent.SURPRISE_REMOVAL], ids=str)
    def test_hot_plug_leaves_a_clean_entry(self, event: DevEvent) -> None:
        dirty = SlotState(DevState.EMPTY if event is DevEvent.HOT_ADD else DevState.PAUSED, 3, True, True, True)
        engine = ProtocolEngine(1, ProtocolState((dirty,), MigState.IDLE))
        engine.process_slot_event(0, event)
        assert engine.state.slots[0] == SlotState(DEVICE_TRANSITIONS[(dirty.dev_state, event)].next_state)

    def test_a_report_cannot_pose_as_a_slot_event(self) -> None:
        with pytest.raises(ValueError, match="judge_report"):
            _engine(MigState.IDLE, [DevState.UNBOUND]).slot_event(0, DevEvent.DRIVER_READY)

    def test_removing_the_last_unanswered_slot_settles(self) -> None:
        engine = _engine(MigState.PAUSING, [DevState.PAUSED, DevState.PAUSE_REQ])
        engine.process_slot_event(1, DevEvent.SURPRISE_REMOVAL)
        assert engine.mig_state is MigState.STOPPED, "spec §4.3.9: a host event can settle"


class TestExamples:
    def test_a_whole_migration_of_one_bound_slot(self) -> None:
        """The sequence of spec §4.1, source then destination."""
        source = _engine(MigState.IDLE, [DevState.READY, DevState.UNBOUND])
        assert source.process_migration_event(MigEvent.START).sets_event
        _, effects = source.process_report(0, DriverReport.DIRTYING, bus_master=True)
        assert _mig(source) is MigState.PRECOPY, "ALL_DIRTYING with the last answer"
        assert effects.sets_event
        source.process_migration_event(MigEvent.REQUEST_PAUSE)
        verdict, _ = source.process_report(0, DriverReport.PAUSED, bus_master=True)
        assert verdict.judgement is Judgement.REJECT_BUS_MASTER, "VFM-DEV-011: BME still set"
        verdict, _ = source.process_report(0, DriverReport.PAUSED, bus_master=False)
        assert verdict.judgement is Judgement.ACCEPT
        assert _mig(source) is MigState.STOPPED
        destination = ProtocolEngine(2, source.state)
        destination.process_migration_event(MigEvent.ARRIVE)
        assert destination.dev_states() == [DevState.REINIT_REQ, DevState.UNBOUND]
        assert destination.state.mig_reason is MigReason.COMPLETED
        assert [slot.migrated for slot in destination.state.slots] == [True, True], "VFM-FLAG-001"
        _, effects = destination.process_report(0, DriverReport.READY, bus_master=False)
        assert _mig(destination) is MigState.IDLE, "ALL_REINITIALISED"
        assert effects.sets_event

    @pytest.mark.parametrize(
        ("phase", "lands_in"),
        [
            (MigState.PREPARE, DevState.DIRTY_REQ),
            (MigState.PRECOPY, DevState.DIRTY_REQ),
            (MigState.PAUSING, DevState.PAUSE_REQ),
        ],
        ids=lambda value: value.name,
    )
    def test_catch_up_of_a_late_binder(self, phase: MigState, lands_in: DevState) -> None:
        engine = _engine(phase, [DevState.UNBOUND, DevState.ERROR])
        verdict, effects = engine.process_report(0, DriverReport.READY, bus_master=False)
        assert verdict.next_state is DevState.READY
        assert engine.dev_state(0) is lands_in, "VFM-MIG-008"
        assert effects.sets_event, "VFM-NOTIF-001: catch-up requests are host events"

    def test_none_with_bus_master_is_rejected_only_outside_idle(self) -> None:
        for mig in MigState:
            verdict = _engine(mig, [DevState.READY]).judge_report(0, DriverReport.NONE, bus_master=True)
            expected = Judgement.ACCEPT if mig is MigState.IDLE else Judgement.REJECT_BUS_MASTER
            assert verdict.judgement is expected, f"VFM-DEV-011 in {mig.name}"
        empty = _engine(MigState.PRECOPY, [DevState.EMPTY]).judge_report(0, DriverReport.NONE, bus_master=False)
        assert empty.judgement is Judgement.IGNORE, "spec §4.5: NONE for an EMPTY slot stays ignored"

    def test_settle_skips_what_it_is_told_to(self) -> None:
        engine = _engine(MigState.PAUSING, [DevState.PAUSED])
        assert engine.due_settled_events() == [MigEvent.ALL_PAUSED]
        assert engine.settle(skip={(MigState.PAUSING, MigEvent.ALL_PAUSED)}) == Effects()
        assert engine.settle().transitions == (
            MigrationTransition(MigEvent.ALL_PAUSED, MigState.PAUSING, MigState.STOPPED),
        )

    def test_bent_effects_keep_the_engine_and_the_event_consistent(self) -> None:
        engine = _engine(MigState.IDLE, [DevState.UNBOUND, DevState.EMPTY])
        effects = engine.migration_event(MigEvent.GROUP_RESET)
        assert effects.sets_event, "spec §4.1: a group reset that only sets RESET sets STATUS.EVENT"
        bent = effects.filter(lambda change: not (isinstance(change, FieldWrite) and change.field is StateField.RESET))
        assert not bent.sets_event
        engine.apply(bent)
        assert not engine.state.slots[0].reset

    def test_protocol_error_does_not_set_the_event(self) -> None:
        assert not FieldWrite(StateField.PROTOCOL_ERROR, 1, 0).sets_event_flag, "VFM-SEC-003"
        assert FieldWrite(StateField.of_flag(SlotFlag.MIGRATED), 1, 0).path == "device[0].dev_status.migrated"

    def test_load_refuses_a_state_of_another_size(self) -> None:
        with pytest.raises(ValueError, match="slots"):
            ProtocolEngine(2).load(ProtocolState.after_reset(3))


def test_the_state_a_capability_holds_is_read_field_by_field() -> None:
    data = reset_value(CapabilityParams(num_slots=2))
    writes = (
        FieldWrite(StateField.MIG_STATE, MigState.PAUSING),
        FieldWrite(StateField.MIG_REASON, MigReason.ACK_TIMEOUT),
        FieldWrite(StateField.GENERATION, 7),
        FieldWrite(StateField.DEV_STATE, DevState.PAUSE_REQ, 1),
        FieldWrite(StateField.DRV_STATE, DriverReport.DIRTYING, 1),
        FieldWrite(StateField.RESET, 1, 1),
    )
    for write in writes:
        data = with_field(data, write.path, write.value)
    engine = ProtocolEngine(2)
    engine.apply(Effects(writes))
    assert read_protocol_state(data, 2) == engine.state
    assert read_protocol_state(bytes(3) + data, 2, base=3) == engine.state
