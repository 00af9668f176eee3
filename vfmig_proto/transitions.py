"""The handshake state machines as plain tables.

Theory of operation
-------------------

Two kinds of state machine run inside the migration bridge (spec §4):

* one **device machine** per slot behind the bridge, whose state the guest
  reads in that slot's ``DEV_STATE`` register.  Host events (requests from the
  hypervisor, hot-plug, errors, resets) and guest events (each write of the
  slot's ``DEV_CTRL.DRV_STATE`` field) drive it;
* one **migration machine** for the bridge as a whole, whose state the guest
  reads in ``MIG_STATE``.  The hypervisor drives it; the bridge itself raises
  the ``ALL_*`` events when every slot has settled (``SETTLED_STATES``).

A bridge-wide event fans out to the device machines (``FANOUT``): it is
delivered to every slot whose current state has a row for the device event,
and leaves the other slots alone.  A driver that binds while a migration is
in progress is brought up to the migration's phase by ``CATCH_UP``.

Two conditions on a report depend on the function rather than on the slot's
state: ``BUS_MASTER_REJECTIONS`` rejects them on top of the device table
(spec §4.5).  What a migration event writes besides the states is data too:
``REASON_SET_BY`` and ``CANCEL_REASONS`` for ``MIG_REASON`` (§4.4),
``FLAGS_SET_BY`` for the ``DEV_STATUS`` flags, ``CLEAN_ENTRY_EVENTS`` for the
slot entries that hot-plug clears (§4.2.1), and ``EVENT_STATUS_FLAGS`` for the
flags whose setting sets ``STATUS.EVENT`` (§4.1).

Guest writes race with host requests: a driver may acknowledge a request that
the hypervisor has just withdrawn.  The device table therefore has three
outcomes: ``ACCEPT`` (take the transition), ``IGNORE`` (a stale or repeated
report: nothing changes and it is not an error) and, for every pair that has
no row, rejection: for a guest event the bridge keeps the state, restores the
previous ``DRV_STATE`` and sets ``DEV_STATUS.PROTOCOL_ERROR``; a host event
without a row is a bug in the hypervisor or bridge.

The tables are the truth.  Code asks :func:`device_transition` and
:func:`migration_transition`, or runs them all through
:class:`vfmig_proto.engine.ProtocolEngine`; it never keeps a private copy of a rule.  The
spec's transition tables and diagrams are generated from these tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import NamedTuple

from vfmig_proto.errors import ProtocolError
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState, SlotFlag


class Action(Enum):
    """What a device machine does with an event that has a row in the table."""

    ACCEPT = "accept"
    """Take the transition to the row's next state."""
    IGNORE = "ignore"
    """A stale or repeated guest report: no change, no error (spec §4.5). Only guest events are ignored."""


class Outcome(NamedTuple):
    """One row of the device table: the action and the state that follows."""

    action: Action
    next_state: DevState


_ACCEPT = Action.ACCEPT
_IGNORE = Action.IGNORE

_S = DevState
_E = DevEvent

# Rows every function with a bound driver shares: it can vanish or fail at any time, and its
# driver may unbind at any time, after quiescing it (spec §7.4, §7.9).  A group reset reaches
# only the states a slot can be in once a migration has been cancelled (spec §4.3.8).
_BOUND_COMMON: dict[DevEvent, Outcome] = {
    _E.SURPRISE_REMOVAL: Outcome(_ACCEPT, _S.EMPTY),
    _E.DEVICE_ERROR: Outcome(_ACCEPT, _S.ERROR),
    _E.DRIVER_DETACHED: Outcome(_ACCEPT, _S.UNBOUND),
}
_RESETTABLE = {_E.GROUP_RESET: Outcome(_ACCEPT, _S.REINIT_REQ)}


def _late_answers(state: DevState, *events: DevEvent) -> dict[DevEvent, Outcome]:
    """Answers to a request that a host event overtook: the driver could not have seen it in time."""
    return {event: Outcome(_IGNORE, state) for event in events}


def _rows(state: DevState, rows: Mapping[DevEvent, Outcome]) -> dict[tuple[DevState, DevEvent], Outcome]:
    return {(state, event): outcome for event, outcome in rows.items()}


DEVICE_TRANSITIONS: Mapping[tuple[DevState, DevEvent], Outcome] = {
    **_rows(
        _S.EMPTY,
        {
            _E.HOT_ADD: Outcome(_ACCEPT, _S.UNBOUND),
            _E.GROUP_RESET: Outcome(_ACCEPT, _S.EMPTY),
            _E.ARRIVE: Outcome(_ACCEPT, _S.EMPTY),
            # A driver unbinding from a function that was just surprise-removed.
            _E.DRIVER_DETACHED: Outcome(_IGNORE, _S.EMPTY),
        },
    ),
    **_rows(
        _S.UNBOUND,
        {
            _E.SURPRISE_REMOVAL: Outcome(_ACCEPT, _S.EMPTY),
            # No driver to recover it: the hypervisor resets the function on its own (spec §7.9).
            _E.DEVICE_ERROR: Outcome(_ACCEPT, _S.UNBOUND),
            _E.GROUP_RESET: Outcome(_ACCEPT, _S.UNBOUND),
            _E.ARRIVE: Outcome(_ACCEPT, _S.UNBOUND),
            _E.DRIVER_READY: Outcome(_ACCEPT, _S.READY),
            _E.DRIVER_DETACHED: Outcome(_IGNORE, _S.UNBOUND),
        },
    ),
    **_rows(
        _S.READY,
        {
            **_BOUND_COMMON,
            **_RESETTABLE,
            _E.REQUEST_DIRTYING: Outcome(_ACCEPT, _S.DIRTY_REQ),
            _E.DRIVER_READY: Outcome(_IGNORE, _S.READY),
            # A dirtying acknowledgement that crossed a cancellation in flight.
            **_late_answers(_S.READY, _E.DRIVER_DIRTYING),
        },
    ),
    **_rows(
        _S.DIRTY_REQ,
        {
            **_BOUND_COMMON,
            _E.DRIVER_DIRTYING: Outcome(_ACCEPT, _S.DIRTYING),
            # A driver that bound late while the others were being paused.
            _E.REQUEST_PAUSE: Outcome(_ACCEPT, _S.PAUSE_REQ),
            _E.CANCEL: Outcome(_ACCEPT, _S.READY),
        },
    ),
    **_rows(
        _S.DIRTYING,
        {
            **_BOUND_COMMON,
            _E.REQUEST_PAUSE: Outcome(_ACCEPT, _S.PAUSE_REQ),
            _E.CANCEL: Outcome(_ACCEPT, _S.READY),
            _E.DRIVER_DIRTYING: Outcome(_IGNORE, _S.DIRTYING),
        },
    ),
    **_rows(
        _S.PAUSE_REQ,
        {
            **_BOUND_COMMON,
            _E.DRIVER_PAUSED: Outcome(_ACCEPT, _S.PAUSED),
            _E.CANCEL: Outcome(_ACCEPT, _S.RESUME_REQ),
            **_late_answers(_S.PAUSE_REQ, _E.DRIVER_DIRTYING),
        },
    ),
    **_rows(
        _S.PAUSED,
        {
            **_BOUND_COMMON,
            _E.CANCEL: Outcome(_ACCEPT, _S.RESUME_REQ),
            _E.ARRIVE: Outcome(_ACCEPT, _S.REINIT_REQ),
            _E.DRIVER_PAUSED: Outcome(_IGNORE, _S.PAUSED),
        },
    ),
    **_rows(
        _S.RESUME_REQ,
        {
            **_BOUND_COMMON,
            **_RESETTABLE,
            _E.DRIVER_READY: Outcome(_ACCEPT, _S.READY),
            # Acknowledgements of the withdrawn requests, still in flight.
            **_late_answers(_S.RESUME_REQ, _E.DRIVER_PAUSED, _E.DRIVER_DIRTYING),
        },
    ),
    **_rows(
        _S.REINIT_REQ,
        {
            **_BOUND_COMMON,
            **_RESETTABLE,
            _E.DRIVER_READY: Outcome(_ACCEPT, _S.READY),
            # Answers to requests that the reset overtook.
            **_late_answers(_S.REINIT_REQ, _E.DRIVER_PAUSED, _E.DRIVER_DIRTYING),
        },
    ),
    **_rows(
        _S.ERROR,
        {
            _E.SURPRISE_REMOVAL: Outcome(_ACCEPT, _S.EMPTY),
            _E.GROUP_RESET: Outcome(_ACCEPT, _S.REINIT_REQ),
            _E.DEVICE_ERROR: Outcome(_ACCEPT, _S.ERROR),
            # The driver gives the failed function up; the hypervisor resets it on its own.
            _E.DRIVER_DETACHED: Outcome(_ACCEPT, _S.UNBOUND),
            # Answers that crossed the error report.
            **_late_answers(_S.ERROR, _E.DRIVER_READY, _E.DRIVER_DIRTYING, _E.DRIVER_PAUSED),
        },
    ),
}
"""``(state, event) -> Outcome`` for the per-device machine (spec §4.2)."""


MIGRATION_TRANSITIONS: Mapping[tuple[MigState, MigEvent], MigState] = {
    (MigState.IDLE, MigEvent.START): MigState.PREPARE,
    (MigState.IDLE, MigEvent.GROUP_RESET): MigState.IDLE,
    (MigState.PREPARE, MigEvent.ALL_DIRTYING): MigState.PRECOPY,
    (MigState.PREPARE, MigEvent.CANCEL): MigState.IDLE,
    (MigState.PRECOPY, MigEvent.REQUEST_PAUSE): MigState.PAUSING,
    (MigState.PRECOPY, MigEvent.CANCEL): MigState.IDLE,
    (MigState.PAUSING, MigEvent.ALL_PAUSED): MigState.STOPPED,
    (MigState.PAUSING, MigEvent.CANCEL): MigState.RESUMING,
    (MigState.STOPPED, MigEvent.ARRIVE): MigState.ARRIVED,
    (MigState.STOPPED, MigEvent.CANCEL): MigState.RESUMING,
    (MigState.RESUMING, MigEvent.ALL_RESUMED): MigState.IDLE,
    (MigState.RESUMING, MigEvent.GROUP_RESET): MigState.IDLE,
    (MigState.ARRIVED, MigEvent.ALL_REINITIALISED): MigState.IDLE,
    (MigState.ARRIVED, MigEvent.GROUP_RESET): MigState.ARRIVED,
}
"""``(state, event) -> next state`` for the bridge-wide machine (spec §4.3).

Every pair without a row is forbidden: the hypervisor must not cause it.
"""


FANOUT: Mapping[MigEvent, DevEvent] = {
    MigEvent.START: DevEvent.REQUEST_DIRTYING,
    MigEvent.REQUEST_PAUSE: DevEvent.REQUEST_PAUSE,
    MigEvent.CANCEL: DevEvent.CANCEL,
    MigEvent.ARRIVE: DevEvent.ARRIVE,
    MigEvent.GROUP_RESET: DevEvent.GROUP_RESET,
}
"""The device event each bridge-wide event delivers to the slots (spec §4.3.8)."""


SETTLED_STATES: Mapping[MigEvent, frozenset[DevState]] = {
    MigEvent.ALL_DIRTYING: frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.DIRTYING}),
    MigEvent.ALL_PAUSED: frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.PAUSED}),
    MigEvent.ALL_RESUMED: frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.READY}),
    MigEvent.ALL_REINITIALISED: frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.READY}),
}
"""The bridge raises an ``ALL_*`` event when every slot is in its set (spec §4.3.9)."""


CATCH_UP: Mapping[MigState, tuple[DevEvent, ...]] = {
    MigState.PREPARE: (DevEvent.REQUEST_DIRTYING,),
    MigState.PRECOPY: (DevEvent.REQUEST_DIRTYING,),
    MigState.PAUSING: (DevEvent.REQUEST_DIRTYING, DevEvent.REQUEST_PAUSE),
}
"""Requests the bridge issues to a slot that enters ``READY`` mid-migration (spec §4.3.10)."""


REPORT_EVENTS: Mapping[DriverReport, DevEvent] = {
    DriverReport.NONE: DevEvent.DRIVER_DETACHED,
    DriverReport.READY: DevEvent.DRIVER_READY,
    DriverReport.DIRTYING: DevEvent.DRIVER_DIRTYING,
    DriverReport.PAUSED: DevEvent.DRIVER_PAUSED,
}
"""The device event that a write of each ``DEV_CTRL.DRV_STATE`` value causes."""


BUS_MASTER_REJECTIONS: Mapping[DriverReport, frozenset[MigState]] = {
    DriverReport.PAUSED: frozenset(MigState),
    DriverReport.NONE: frozenset(MigState) - {MigState.IDLE},
}
"""Reports rejected while the function's Bus Master Enable is set, in the ``MIG_STATE`` values listed (VFM-DEV-011).

Spec §4.5: whatever the device table's row, PAUSED is rejected while BME is set (a function with bus
mastering on is not paused), and NONE while BME is set and ``MIG_STATE`` is not IDLE (a driver leaves the
protocol only after stopping its function).  A NONE report for an EMPTY slot concerns no function, so no
BME is set and it stays ignored.
"""


REASON_SET_BY: Mapping[MigEvent, MigReason] = {
    MigEvent.START: MigReason.NONE,
    MigEvent.ARRIVE: MigReason.COMPLETED,
}
"""The ``MIG_REASON`` each migration event sets (VFM-MIG-009); CANCEL sets the hypervisor's reason."""


CANCEL_REASONS: frozenset[MigReason] = frozenset(MigReason) - {MigReason.NONE, MigReason.COMPLETED}
"""The reasons a CANCEL may carry (VFM-MIG-010)."""


FLAGS_SET_BY: Mapping[MigEvent, SlotFlag] = {
    MigEvent.ARRIVE: SlotFlag.MIGRATED,
    MigEvent.GROUP_RESET: SlotFlag.RESET,
}
"""The ``DEV_STATUS`` flag a migration event sets in every slot that holds a function (VFM-FLAG-001, VFM-ERR-005)."""


CLEAN_ENTRY_EVENTS: frozenset[DevEvent] = frozenset({DevEvent.HOT_ADD, DevEvent.SURPRISE_REMOVAL})
"""Events after which the slot's ``DRV_STATE`` is NONE and its ``DEV_STATUS`` flags clear (VFM-DEV-013)."""


EVENT_STATUS_FLAGS: frozenset[SlotFlag] = frozenset({SlotFlag.MIGRATED, SlotFlag.RESET})
"""Flags whose setting sets ``STATUS.EVENT`` even where no state changes (spec §4.1, VFM-NOTIF-001).

``PROTOCOL_ERROR`` is not among them: a rejected report raises no interrupt (VFM-SEC-003).
"""


PENDING_REQUEST_STATES: frozenset[DevState] = frozenset(
    {DevState.DIRTY_REQ, DevState.PAUSE_REQ, DevState.RESUME_REQ, DevState.REINIT_REQ}
)
"""States in which the bridge waits for the driver to answer a request (spec §4.2, §8)."""


def _answering_report(state: DevState) -> DriverReport:
    """The one report other than NONE that moves ``state`` on, read from the table."""
    answers = [
        report
        for report, event in REPORT_EVENTS.items()
        if report is not DriverReport.NONE
        and (outcome := DEVICE_TRANSITIONS.get((state, event))) is not None
        and outcome.action is Action.ACCEPT
    ]
    if len(answers) != 1:  # pragma: no cover - guards the table itself at import
        raise AssertionError(f"request state {state.name} must have exactly one answering report, has {answers}")
    return answers[0]


ACKNOWLEDGED_BY: Mapping[DevState, DriverReport] = {state: _answering_report(state) for state in PENDING_REQUEST_STATES}
"""The report that answers each pending request, derived from ``DEVICE_TRANSITIONS``."""


def device_transition(state: DevState, event: DevEvent) -> Outcome:
    """The table's row for ``event`` in ``state``.

    Raises :class:`ProtocolError` when the table has no row: the event is not
    allowed in that state.
    """
    try:
        return DEVICE_TRANSITIONS[(state, event)]
    except KeyError:
        raise ProtocolError("device", state, event) from None


def migration_transition(state: MigState, event: MigEvent) -> MigState:
    """The state that follows ``event`` in ``state``; :class:`ProtocolError` if not allowed."""
    try:
        return MIGRATION_TRANSITIONS[(state, event)]
    except KeyError:
        raise ProtocolError("migration", state, event) from None


def device_event_allowed(state: DevState, event: DevEvent) -> bool:
    """Whether the device table has a row (accept or ignore) for ``event`` in ``state``."""
    return (state, event) in DEVICE_TRANSITIONS


def migration_event_allowed(state: MigState, event: MigEvent) -> bool:
    """Whether the migration table allows ``event`` in ``state``."""
    return (state, event) in MIGRATION_TRANSITIONS


def fanout_targets(event: MigEvent, slot_states: Iterable[DevState]) -> list[int]:
    """Indices of the slots that a bridge-wide ``event`` reaches (spec §4.3.8).

    A slot is reached when its state has a row for the fanned-out device event.
    """
    device_event = FANOUT.get(event)
    if device_event is None:
        return []
    return [index for index, state in enumerate(slot_states) if device_event_allowed(state, device_event)]


def settled(event: MigEvent, slot_states: Iterable[DevState]) -> bool:
    """Whether every slot is in a state that lets the bridge raise ``event`` (an ``ALL_*`` event)."""
    allowed = SETTLED_STATES[event]
    return all(state in allowed for state in slot_states)


def rejected_for_bus_master(report: DriverReport, mig_state: MigState) -> bool:
    """Whether ``report`` is rejected in ``mig_state`` while its function's BME is set (VFM-DEV-011)."""
    return mig_state in BUS_MASTER_REJECTIONS.get(report, frozenset())
