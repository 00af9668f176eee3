"""The protocol engine: the rules of spec chapter 4 applied to one bridge's protocol state, with no I/O.

Theory of operation
-------------------

A migration bridge keeps, in its capability, the state of the handshake:
``MIG_STATE``, ``MIG_REASON`` and ``GENERATION`` for the bridge as a whole,
and for each slot its ``DEV_STATE``, the last accepted report in
``DEV_CTRL.DRV_STATE`` and the ``DEV_STATUS`` flags.  :class:`ProtocolEngine`
holds exactly that (:class:`ProtocolState`) and knows what every input does
to it.  It has no clock, no bus and no configuration space: whoever embeds it
(the reference bridge, a conformance model, a test) feeds it inputs and
carries out what it answers.

The inputs are the events of chapter 4:

* a **report** (a guest write of ``DRV_STATE``) is first *judged*
  (:meth:`ProtocolEngine.judge_report`): accepted, ignored, or rejected, by
  the device table or by the Bus Master Enable rule of §4.5.  The verdict
  is a plain value, so that a caller may inspect it before acting on it;
* a **migration event** the hypervisor causes (START, REQUEST_PAUSE, CANCEL,
  ARRIVE, GROUP_RESET), with its fan-out to the slots (§4.3.8);
* a **slot event** the hardware causes (HOT_ADD, SURPRISE_REMOVAL,
  DEVICE_ERROR);
* and the two things the bridge does by itself: **catch-up** of a driver that
  bound mid-migration (§4.3.10) and the **settled events** (§4.3.9).

Every rule method is a question: it returns the :class:`Effects` the input
would have (the state changes, in order, and the notices to publish) and
changes nothing.  :meth:`ProtocolEngine.apply` makes effects true.  The split
lets an embedder commit the effects change by change (a bridge writes each
register and publishes each transition as it goes) and lets a deliberately
faulty bridge bend the effects before they are committed, with the engine
still agreeing with the registers.  The ``process_*`` methods do a whole
*step* (spec §4.1) at once: the input, its catch-up, its settled events.

Whether a step sets ``STATUS.EVENT`` (and so signals the event interrupt) is
derived from its effects (:attr:`Effects.sets_event`, VFM-NOTIF-001): a
change of ``MIG_STATE``, a change of a ``DEV_STATE`` by a host event, or the
setting of a flag in :data:`~vfmig_proto.transitions.EVENT_STATUS_FLAGS`.

Every rule that is data lives in :mod:`vfmig_proto.transitions`; this module
only applies the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from enum import Enum, unique
from functools import partial

from vfmig_proto import transitions
from vfmig_proto.codec import find_field, read_field
from vfmig_proto.errors import ProtocolError
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState, Origin, SlotFlag
from vfmig_proto.transitions import Action

GENERATION_MODULUS = 1 << 32
"""``GENERATION`` counts STARTs modulo 2^32 (VFM-MIG-002)."""

_SETTLED_EVENTS: tuple[MigEvent, ...] = tuple(transitions.SETTLED_STATES)


# ---------------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class SlotState:
    """The protocol fields of one slot entry (spec §3.5, §4.2)."""

    dev_state: DevState = DevState.EMPTY
    drv_state: int = DriverReport.NONE
    """``DEV_CTRL.DRV_STATE``: the last accepted report (a raw 3-bit value: a restored capability may hold any)."""
    migrated: bool = False
    reset: bool = False
    protocol_error: bool = False

    def flag(self, flag: SlotFlag) -> bool:
        """The value of one ``DEV_STATUS`` flag."""
        return bool(getattr(self, flag.value))


@dataclass(frozen=True)
class ProtocolState:
    """The bridge's protocol state: the registers of chapter 4, as the capability holds them."""

    slots: tuple[SlotState, ...]
    mig_state: MigState = MigState.IDLE
    mig_reason: MigReason = MigReason.NONE
    generation: int = 0

    @classmethod
    def after_reset(cls, num_slots: int) -> ProtocolState:
        """The state after a conventional reset of a bridge with no functions (spec §3.4)."""
        return cls(tuple(SlotState() for _ in range(num_slots)))

    @property
    def dev_states(self) -> list[DevState]:
        """Every slot's ``DEV_STATE``, in slot order."""
        return [slot.dev_state for slot in self.slots]


@unique
class StateField(Enum):
    """A capability field the engine writes (spec §3.2); the value is its path, per slot for slot fields.

    The paths are those of :func:`vfmig_proto.codec.find_field`, so that an embedder stores a write with one
    lookup.
    """

    MIG_STATE = "mig_state"
    """The migration machine's state (§4.3)."""
    MIG_REASON = "mig_reason"
    """How the last migration ended (§4.4)."""
    GENERATION = "generation"
    """START's counter (§4.3.1, VFM-MIG-002)."""
    DEV_STATE = "dev_state"
    """A slot's device machine state (§4.2)."""
    DRV_STATE = "dev_ctrl.drv_state"
    """A slot's last accepted report (§4.2, VFM-DEV-002, VFM-DEV-010)."""
    MIGRATED = "dev_status.migrated"
    """Set by ARRIVE (§7.5, VFM-FLAG-001)."""
    RESET = "dev_status.reset"
    """Set by GROUP_RESET (§7.9, VFM-ERR-005)."""
    PROTOCOL_ERROR = "dev_status.protocol_error"
    """Set by a rejected report (§4.5, VFM-DEV-010)."""

    @property
    def per_slot(self) -> bool:
        """Whether the field is one of a slot entry's."""
        return self not in (StateField.MIG_STATE, StateField.MIG_REASON, StateField.GENERATION)

    @classmethod
    def of_flag(cls, flag: SlotFlag) -> StateField:
        """The field that holds ``flag``."""
        return cls(f"dev_status.{flag.value}")


# ---------------------------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class FieldWrite:
    """A field gets a value (no access rules: the bridge writes it)."""

    field: StateField
    value: int
    slot: int | None = None

    @property
    def path(self) -> str:
        """The field's path in the capability, e.g. ``"device[2].dev_status.reset"``."""
        return f"device[{self.slot}].{self.field.value}" if self.field.per_slot else self.field.value

    @property
    def sets_event_flag(self) -> bool:
        """Whether this write sets a flag whose setting sets ``STATUS.EVENT`` (VFM-NOTIF-001)."""
        return self.value == 1 and any(
            self.field is StateField.of_flag(flag) for flag in transitions.EVENT_STATUS_FLAGS
        )


@dataclass(frozen=True)
class MigrationTransition:
    """The migration machine took a row of the migration table (spec §4.3)."""

    event: MigEvent
    old: MigState
    new: MigState


@dataclass(frozen=True)
class DeviceTransition:
    """A slot's device machine took a row of the device table (spec §4.2); an IGNORE row changes nothing."""

    slot: int
    event: DevEvent
    old: DevState
    new: DevState
    action: Action = Action.ACCEPT

    @property
    def by_host(self) -> bool:
        """Whether a host event caused it (catch-up requests and fan-out included, spec §4.1)."""
        return self.event.origin is Origin.HOST


@dataclass(frozen=True)
class ReportRejected:
    """The bridge rejected a report (VFM-DEV-010); to be told to the hypervisor, never to the guest's interrupt."""

    verdict: ReportVerdict


Change = FieldWrite | MigrationTransition | DeviceTransition | ReportRejected
"""One effect: a field written, a transition taken (which writes its state field), a rejection to tell."""


def writes_of(change: Change) -> tuple[FieldWrite, ...]:
    """The field writes a change makes: a transition writes its machine's state, a rejection nothing."""
    if isinstance(change, FieldWrite):
        return (change,)
    if isinstance(change, MigrationTransition):
        return (FieldWrite(StateField.MIG_STATE, change.new),)
    if isinstance(change, DeviceTransition) and change.action is Action.ACCEPT:
        return (FieldWrite(StateField.DEV_STATE, change.new, change.slot),)
    return ()


def _sets_event(change: Change) -> bool:
    """Spec §4.1: a step sets ``STATUS.EVENT`` when it makes one of these changes (VFM-NOTIF-001)."""
    if isinstance(change, MigrationTransition):
        return change.new is not change.old
    if isinstance(change, DeviceTransition):
        return change.by_host and change.new is not change.old
    if isinstance(change, FieldWrite):
        return change.sets_event_flag
    return False


@dataclass(frozen=True)
class Effects:
    """What an input does: the changes in the order they happen."""

    changes: tuple[Change, ...] = ()

    def __add__(self, other: Effects) -> Effects:
        return Effects(self.changes + other.changes)

    def filter(self, keep: Callable[[Change], bool]) -> Effects:
        """The effects without the changes ``keep`` refuses (for bridges that bend a rule on purpose)."""
        return Effects(tuple(change for change in self.changes if keep(change)))

    @property
    def writes(self) -> tuple[FieldWrite, ...]:
        """Every field write, in order."""
        return tuple(write for change in self.changes for write in writes_of(change))

    @property
    def transitions(self) -> tuple[MigrationTransition | DeviceTransition, ...]:
        """The transitions to publish, in order."""
        return tuple(c for c in self.changes if isinstance(c, MigrationTransition | DeviceTransition))

    @property
    def rejections(self) -> tuple[ReportRejected, ...]:
        """The rejected reports to tell the hypervisor of."""
        return tuple(c for c in self.changes if isinstance(c, ReportRejected))

    @property
    def sets_event(self) -> bool:
        """Whether these effects set ``STATUS.EVENT`` and so signal the event interrupt (VFM-NOTIF-001)."""
        return any(_sets_event(change) for change in self.changes)


# ---------------------------------------------------------------------------------------------- verdicts


@unique
class Judgement(Enum):
    """What the spec makes of a report (spec §4.2, §4.5)."""

    ACCEPT = "accepted"
    """The device table accepts the report: the slot takes the row (VFM-DEV-002)."""
    IGNORE = "ignored"
    """A stale or repeated report: nothing changes (VFM-DEV-003)."""
    REJECT = "rejected"
    """No row in the device table, or an undefined value (VFM-DEV-010)."""
    REJECT_BUS_MASTER = "rejected because of Bus Master Enable"
    """Rejected on top of the table while the function's BME is set (VFM-DEV-011)."""

    @property
    def rejected(self) -> bool:
        """Whether the report is rejected, for whichever reason."""
        return self in (Judgement.REJECT, Judgement.REJECT_BUS_MASTER)


@dataclass(frozen=True)
class ReportVerdict:
    """The verdict on one report, and everything it was judged on."""

    slot: int
    old: int
    """``DRV_STATE`` before the write (restored if the report is not accepted)."""
    written: int
    """``DRV_STATE`` as the write left it."""
    state: DevState
    """``DEV_STATE`` before the report."""
    mig_state: MigState
    bus_master: bool
    judgement: Judgement
    reason: str
    table: Action | None = None
    """The device table's action for the report, BME aside (None: no row, or no such value)."""

    @property
    def report(self) -> DriverReport | None:
        """The report written, or None for an undefined value."""
        return DriverReport(self.written) if self.written in _DEFINED_REPORTS else None

    @property
    def event(self) -> DevEvent | None:
        """The guest event the report is (spec §4.1), or None for an undefined value."""
        report = self.report
        return None if report is None else transitions.REPORT_EVENTS[report]

    @property
    def next_state(self) -> DevState:
        """``DEV_STATE`` after the report itself (before any catch-up)."""
        event = self.event
        if self.judgement is not Judgement.ACCEPT or event is None:
            return self.state
        return transitions.device_transition(self.state, event).next_state

    def describe(self) -> str:
        """One line for a finding or a log."""
        name = self.report.name if self.report is not None else f"undefined value {self.written}"
        return (
            f"slot {self.slot} reports DRV_STATE {name} (was {self.old}) in {self.state.name}, "
            f"MIG_STATE {self.mig_state.name}, BME {int(self.bus_master)}: {self.judgement.value} ({self.reason})"
        )


_DEFINED_REPORTS = frozenset(int(report) for report in DriverReport)


# ---------------------------------------------------------------------------------------------- the engine


class ProtocolEngine:
    """One bridge's protocol state and the rules of chapter 4 that move it."""

    def __init__(self, num_slots: int, state: ProtocolState | None = None) -> None:
        self.num_slots = num_slots
        self._state = state or ProtocolState.after_reset(num_slots)
        self._check(self._state)

    # ---- state

    @property
    def state(self) -> ProtocolState:
        """The current state (an immutable snapshot)."""
        return self._state

    def load(self, state: ProtocolState) -> None:
        """Take ``state`` over: after a restore, a conventional reset, or writes the engine did not make."""
        self._check(state)
        self._state = state

    def _check(self, state: ProtocolState) -> None:
        if len(state.slots) != self.num_slots:
            raise ValueError(f"a state of {len(state.slots)} slots for an engine of {self.num_slots}")

    @property
    def mig_state(self) -> MigState:
        """``MIG_STATE``."""
        return self._state.mig_state

    def dev_state(self, slot: int) -> DevState:
        """``DEV_STATE`` of ``slot``."""
        return self._state.slots[slot].dev_state

    def dev_states(self) -> list[DevState]:
        """Every slot's ``DEV_STATE``."""
        return self._state.dev_states

    def apply(self, effects: Effects) -> Effects:
        """Make ``effects`` true in the engine's state; returns them, for chaining."""
        for change in effects.changes:
            self.apply_change(change)
        return effects

    def apply_change(self, change: Change) -> None:
        """Make one change true."""
        for write in writes_of(change):
            self._state = _written(self._state, write)

    # ---- reports (spec §4.2, §4.5)

    def judge_report(self, slot: int, written: int, *, bus_master: bool, old: int | None = None) -> ReportVerdict:
        """The spec's verdict on ``written`` reported for ``slot`` (VFM-DEV-001..003, VFM-DEV-010, VFM-DEV-011).

        ``bus_master`` is the BME of the slot's function (False if it holds none); ``old`` the ``DRV_STATE``
        before the write (by default the one the engine holds).
        """
        here = self._state.slots[slot]
        mig = self._state.mig_state
        # The facts the report is judged on; each outcome below adds the judgement, its reason and the table's action.
        verdict = partial(
            ReportVerdict, slot, here.drv_state if old is None else old, written, here.dev_state, mig, bus_master
        )
        if written not in _DEFINED_REPORTS:
            return verdict(Judgement.REJECT, "undefined DRV_STATE value")
        report = DriverReport(written)
        event = transitions.REPORT_EVENTS[report]
        outcome = transitions.DEVICE_TRANSITIONS.get((here.dev_state, event))
        table = None if outcome is None else outcome.action
        if bus_master and transitions.rejected_for_bus_master(report, mig):
            why = f"{report.name} reported while Bus Master Enable is set in MIG_STATE {mig.name}, VFM-DEV-011"
            return verdict(Judgement.REJECT_BUS_MASTER, why, table)
        if outcome is None:
            return verdict(Judgement.REJECT, f"no row for {event.name} in {here.dev_state.name}")
        if outcome.action is Action.IGNORE:
            return verdict(Judgement.IGNORE, f"the device table ignores {event.name} in {here.dev_state.name}", table)
        return verdict(Judgement.ACCEPT, f"{here.dev_state.name} -> {outcome.next_state.name}", table)

    def report(self, verdict: ReportVerdict) -> Effects:
        """What a judged report does: the row, or ``DRV_STATE`` restored (and ``PROTOCOL_ERROR`` if rejected)."""
        slot = verdict.slot
        if verdict.judgement.rejected:
            return Effects(
                (
                    FieldWrite(StateField.DRV_STATE, verdict.old, slot),
                    FieldWrite(StateField.PROTOCOL_ERROR, 1, slot),
                    ReportRejected(verdict),
                )
            )
        event = verdict.event
        if event is None:  # pragma: no cover - an undefined value is always rejected
            raise ValueError(f"{verdict.describe()}: no event to apply")
        if verdict.judgement is Judgement.IGNORE:
            ignored = DeviceTransition(slot, event, verdict.state, verdict.state, Action.IGNORE)
            return Effects((FieldWrite(StateField.DRV_STATE, verdict.old, slot), ignored))
        accepted = DeviceTransition(slot, event, verdict.state, verdict.next_state)
        return Effects((FieldWrite(StateField.DRV_STATE, verdict.written, slot), accepted))

    def catch_up(self, verdict: ReportVerdict) -> Effects:
        """The requests that bring a slot a report moved to READY up to the migration's phase (VFM-MIG-008)."""
        if verdict.judgement is not Judgement.ACCEPT or verdict.next_state is not DevState.READY:
            return Effects()
        state: DevState = verdict.next_state
        changes: list[Change] = []
        for event in transitions.CATCH_UP.get(self._state.mig_state, ()):
            new = transitions.device_transition(state, event).next_state
            changes.append(DeviceTransition(verdict.slot, event, state, new))
            state = new
        return Effects(tuple(changes))

    # ---- host events (spec §4.3, §4.4, §7.9)

    def migration_event(self, event: MigEvent, *, reason: MigReason | None = None) -> Effects:
        """What a migration event the hypervisor causes does, with its fan-out (spec §4.3.8) and side fields.

        START advances ``GENERATION`` (VFM-MIG-002); START, CANCEL and ARRIVE set ``MIG_REASON``
        (VFM-MIG-009), CANCEL to ``reason``, which must be one of
        :data:`~vfmig_proto.transitions.CANCEL_REASONS`; ARRIVE and GROUP_RESET flag every slot that holds a
        function.  :class:`ProtocolError` if the event is not allowed now (or a CANCEL lacks a reason).
        """
        if event is MigEvent.CANCEL and reason not in transitions.CANCEL_REASONS:
            raise ProtocolError("migration", self._state.mig_state, event)
        if event is not MigEvent.CANCEL and reason is not None:
            raise ValueError(f"only CANCEL carries a reason, not {event.name}")
        if event in transitions.SETTLED_STATES:
            raise ValueError(f"{event.name} is a settled event: the bridge raises it itself (settle)")
        effects = self._transition(event, self._state.dev_states)
        if event is MigEvent.START:
            generation = (self._state.generation + 1) % GENERATION_MODULUS
            effects += Effects((FieldWrite(StateField.GENERATION, generation),))
        new_reason = reason if event is MigEvent.CANCEL else transitions.REASON_SET_BY.get(event)
        if new_reason is not None:
            effects += Effects((FieldWrite(StateField.MIG_REASON, new_reason),))
        flag = transitions.FLAGS_SET_BY.get(event)
        if flag is not None:
            # Fan-out never moves a slot into or out of EMPTY, so the slots before it hold the same functions.
            effects += Effects(
                tuple(
                    FieldWrite(StateField.of_flag(flag), 1, slot)
                    for slot, state in enumerate(self._state.dev_states)
                    if state is not DevState.EMPTY
                )
            )
        return effects

    def slot_event(self, slot: int, event: DevEvent) -> Effects:
        """What a host event for one slot does (HOT_ADD, SURPRISE_REMOVAL, DEVICE_ERROR; VFM-DEV-013).

        :class:`ProtocolError` if the device table has no row for it.
        """
        if event.origin is not Origin.HOST:
            raise ValueError(f"{event.name} is a report: judge it with judge_report")
        old = self.dev_state(slot)
        effects = Effects((DeviceTransition(slot, event, old, transitions.device_transition(old, event).next_state),))
        if event in transitions.CLEAN_ENTRY_EVENTS:
            cleared = (StateField.DRV_STATE, *(StateField.of_flag(flag) for flag in SlotFlag))
            effects += Effects(tuple(FieldWrite(field, 0, slot) for field in cleared))
        return effects

    def _transition(self, event: MigEvent, dev_states: list[DevState]) -> Effects:
        """One row of the migration table and its fan-out to the slots whose state has a row (VFM-MIG-006)."""
        old = self._state.mig_state
        changes: list[Change] = [MigrationTransition(event, old, transitions.migration_transition(old, event))]
        device_event = transitions.FANOUT.get(event)
        if device_event is not None:
            for slot in transitions.fanout_targets(event, dev_states):
                state = dev_states[slot]
                changes.append(
                    DeviceTransition(
                        slot, device_event, state, transitions.device_transition(state, device_event).next_state
                    )
                )
        return Effects(tuple(changes))

    # ---- settled events (spec §4.3.9)

    def due_settled_events(self) -> list[MigEvent]:
        """The settled events ``MIG_STATE`` has a row for and every slot has settled for (VFM-MIG-007)."""
        mig, states = self._state.mig_state, self._state.dev_states
        return [
            event
            for event in _SETTLED_EVENTS
            if (mig, event) in transitions.MIGRATION_TRANSITIONS and transitions.settled(event, states)
        ]

    def settle(self, *, skip: Collection[tuple[MigState, MigEvent]] = ()) -> Effects:
        """The settled events to raise now, one after the other, each with its effects (VFM-MIG-007).

        ``skip`` names ``(MIG_STATE, settled event)`` pairs not to raise: a model that took over a bridge's
        state in which a settled event was already overdue must not raise it later.
        """
        scratch = ProtocolEngine(self.num_slots, self._state)
        effects = Effects()
        while due := [event for event in scratch.due_settled_events() if (scratch.mig_state, event) not in skip]:
            effects += scratch.apply(scratch._transition(due[0], scratch.dev_states()))
        return effects

    # ---- whole steps (spec §4.1)

    def process_report(
        self, slot: int, written: int, *, bus_master: bool, old: int | None = None
    ) -> tuple[ReportVerdict, Effects]:
        """Judge a report and apply it with its catch-up and settled events: one step."""
        verdict = self.judge_report(slot, written, bus_master=bus_master, old=old)
        effects = self.apply(self.report(verdict))
        effects += self.apply(self.catch_up(verdict))
        return verdict, effects + self.apply(self.settle())

    def process_migration_event(self, event: MigEvent, *, reason: MigReason | None = None) -> Effects:
        """Apply a migration event with its fan-out and settled events: one step."""
        effects = self.apply(self.migration_event(event, reason=reason))
        return effects + self.apply(self.settle())

    def process_slot_event(self, slot: int, event: DevEvent) -> Effects:
        """Apply a slot event and the settled events that follow: one step."""
        effects = self.apply(self.slot_event(slot, event))
        return effects + self.apply(self.settle())


def _written(state: ProtocolState, write: FieldWrite) -> ProtocolState:
    """``state`` with one field written."""
    if write.field is StateField.MIG_STATE:
        return replace(state, mig_state=MigState(write.value))
    if write.field is StateField.MIG_REASON:
        return replace(state, mig_reason=MigReason(write.value))
    if write.field is StateField.GENERATION:
        return replace(state, generation=write.value)
    if write.slot is None:  # pragma: no cover - FieldWrite of a slot field always names the slot
        raise ValueError(f"{write.field.name} needs a slot")
    slots = list(state.slots)
    slots[write.slot] = _slot_written(slots[write.slot], write.field, write.value)
    return replace(state, slots=tuple(slots))


def _slot_written(slot: SlotState, field: StateField, value: int) -> SlotState:
    if field is StateField.DEV_STATE:
        return replace(slot, dev_state=DevState(value))
    if field is StateField.DRV_STATE:
        return replace(slot, drv_state=value)
    if field is StateField.MIGRATED:
        return replace(slot, migrated=bool(value))
    if field is StateField.RESET:
        return replace(slot, reset=bool(value))
    return replace(slot, protocol_error=bool(value))


def slot_states(dev_states: Iterable[DevState]) -> tuple[SlotState, ...]:
    """Slot states with the given ``DEV_STATE`` values and every other field at its reset value (for tests, models)."""
    return tuple(SlotState(dev_state=state) for state in dev_states)


def read_protocol_state(data: bytes | bytearray, num_slots: int, base: int = 0) -> ProtocolState:
    """The protocol state a capability holds; ``base`` is its offset in ``data`` (a bridge's config space)."""

    def get(path: str) -> int:
        return read_field(data, find_field(num_slots, path), base)

    slots = tuple(
        SlotState(
            dev_state=DevState(get(f"device[{slot}].dev_state")),
            drv_state=get(f"device[{slot}].dev_ctrl.drv_state"),
            migrated=bool(get(f"device[{slot}].dev_status.migrated")),
            reset=bool(get(f"device[{slot}].dev_status.reset")),
            protocol_error=bool(get(f"device[{slot}].dev_status.protocol_error")),
        )
        for slot in range(num_slots)
    )
    return ProtocolState(slots, MigState(get("mig_state")), MigReason(get("mig_reason")), get("generation"))
