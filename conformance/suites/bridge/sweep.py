"""The deterministic sweep of the protocol's tables: every (state, report) and (state, host event) pair of a bridge.

The random rules reach some pairs rarely (a driver that unbinds in PAUSING, a stale PAUSED after a CANCEL, a report
of an undefined value in ARRIVED), so the suite also *enumerates* them.  The pairs and the way to each come from
:mod:`vfmig_proto` alone: a breadth-first search over the protocol engine's states (:class:`Plan`) finds every
``(MIG_STATE, DEV_STATE)`` a slot can be in, and a covering walk (:func:`next_move`) takes one bridge through all of
them, trying in each every ``DRV_STATE`` value (with Bus Master Enable set and clear where the spec's BME rule
speaks of the report) and every host event with a row.  Each move is one ordinary action of the suite, judged as
every action is; the walk only chooses them.

The search is over an abstract state (``MIG_STATE`` and each slot's ``DEV_STATE``) of a bridge of
:data:`SWEEP_SLOTS` slots: two, so that one slot can answer while the other keeps the phase open (PREPARE with a slot
in DIRTYING, PAUSING with one PAUSED).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from vfmig_proto.codec import find_field
from vfmig_proto.engine import ProtocolEngine, ProtocolState, slot_states
from vfmig_proto.layout import VFM_MIN_SLOTS
from vfmig_proto.states import DevEvent, DevState, MigEvent, MigReason, MigState
from vfmig_proto.transitions import (
    BUS_MASTER_REJECTIONS,
    SETTLED_STATES,
    device_event_allowed,
    migration_event_allowed,
)

SWEEP_SLOTS = 2
"""Slots of the bridge the sweep walks: one to act, one to hold a phase open."""
RESTORABLE = frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.PAUSED})
"""The slot states a destination takes over (spec §10.6): ARRIVE is planned only from these."""
HOST_MIGRATION_EVENTS = tuple(event for event in MigEvent if event not in SETTLED_STATES)
"""The migration events the hypervisor causes (the settled ones the bridge raises itself)."""
DRV_STATE_VALUES = tuple(range(1 << find_field(VFM_MIN_SLOTS, "device[0].dev_ctrl.drv_state").field.width))
"""Every value a driver can write into ``DRV_STATE``, the defined reports and the undefined ones."""
HOST_SLOT_EVENTS = (DevEvent.HOT_ADD, DevEvent.SURPRISE_REMOVAL, DevEvent.DEVICE_ERROR)
"""The host events of one slot."""

Abstract = tuple[MigState, tuple[DevState, ...]]
"""``MIG_STATE`` and every slot's ``DEV_STATE``: what the walk plans on."""


@dataclass(frozen=True)
class Move:
    """One action of the suite: a report (``value`` with ``bme``) into ``slot``, or a host event."""

    kind: str
    """``report``, ``migration`` or ``slot``."""
    slot: int | None = None
    value: int = 0
    bme: bool = False
    event: MigEvent | DevEvent | None = None

    def key(self, state: Abstract) -> tuple[object, ...]:
        """The table pair this move exercises in ``state``: what the sweep covers once."""
        if self.kind == "report":
            assert self.slot is not None
            return ("report", state[0], state[1][self.slot], self.value, self.bme)
        if self.kind == "slot":
            assert self.slot is not None
            return ("slot", state[1][self.slot], self.event)
        return ("migration", state[0], self.event)


def _reports(slot: int, state: DevState) -> Iterator[Move]:
    """Every ``DRV_STATE`` value for ``slot``: BME clear, and set too where the BME rule speaks of the report."""
    for value in DRV_STATE_VALUES:
        yield Move("report", slot, value, False)
        if state is not DevState.EMPTY and value in BUS_MASTER_REJECTIONS:
            yield Move("report", slot, value, True)


def moves(state: Abstract) -> list[Move]:
    """Every move the suite may make in ``state`` (the hypervisor's only where the tables have a row)."""
    mig, devs = state
    found: list[Move] = []
    for slot, dev in enumerate(devs):
        found.extend(_reports(slot, dev))
        found.extend(Move("slot", slot, event=event) for event in HOST_SLOT_EVENTS if device_event_allowed(dev, event))
    for event in HOST_MIGRATION_EVENTS:
        if migration_event_allowed(mig, event) and (event is not MigEvent.ARRIVE or set(devs) <= RESTORABLE):
            found.append(Move("migration", event=event))
    return found


def after(state: Abstract, move: Move) -> Abstract:
    """The abstract state ``move`` leads to, by the protocol engine."""
    mig, devs = state
    engine = ProtocolEngine(len(devs), ProtocolState(slot_states(devs), mig))
    if move.kind == "report":
        assert move.slot is not None
        engine.process_report(move.slot, move.value, bus_master=move.bme)
    elif move.kind == "slot":
        assert move.slot is not None
        assert isinstance(move.event, DevEvent)
        engine.process_slot_event(move.slot, move.event)
    else:
        assert isinstance(move.event, MigEvent)
        reason = MigReason.ACK_TIMEOUT if move.event is MigEvent.CANCEL else None
        engine.process_migration_event(move.event, reason=reason)
    return engine.mig_state, tuple(engine.dev_states())


@dataclass(frozen=True)
class Plan:
    """Every abstract state reachable from a bridge of ``SWEEP_SLOTS`` empty slots, and every pair to cover."""

    edges: dict[Abstract, tuple[tuple[Move, Abstract], ...]]
    keys: frozenset[tuple[object, ...]]


@cache
def plan(num_slots: int = SWEEP_SLOTS) -> Plan:
    """The graph of abstract states by breadth-first search, and the keys of every move made anywhere in it."""
    start: Abstract = (MigState.IDLE, (DevState.EMPTY,) * num_slots)
    edges: dict[Abstract, tuple[tuple[Move, Abstract], ...]] = {}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state in edges:
            continue
        edges[state] = tuple((move, after(state, move)) for move in moves(state))
        queue.extend(target for _, target in edges[state] if target not in edges)
    keys = frozenset(move.key(state) for state, out in edges.items() for move, _ in out)
    return Plan(edges, keys)


def next_move(state: Abstract, covered: set[tuple[object, ...]], the_plan: Plan) -> Move | None:
    """The first move of a shortest path from ``state`` to a move that covers a new pair (None: all covered).

    Among the uncovered moves available now, one that leaves the state as it is comes first, so that the
    reports a state ignores or rejects are all tried before one that moves on.
    """
    here = the_plan.edges.get(state, ())
    fresh = [(move, target) for move, target in here if move.key(state) not in covered]
    if fresh:
        return min(fresh, key=lambda pair: pair[1] != state)[0]
    first: dict[Abstract, Move] = {}
    queue = deque([state])
    seen = {state}
    while queue:
        current = queue.popleft()
        for move, target in the_plan.edges.get(current, ()):
            if move.key(current) not in covered:
                return first.get(current, move)
            if target not in seen:
                seen.add(target)
                first[target] = first.get(current, move)
                queue.append(target)
    return None
