"""State diagrams of the handshake state machines, as Graphviz DOT source.

The diagrams are drawn from the transition tables of
:mod:`vfmig_proto.transitions` and from nothing else, so they cannot drift
from the tables.  This module only produces text: the docs render it with
Graphviz's ``dot`` at build time (``spec/generated/*-state-diagram.rst``,
written by :mod:`vfmig_proto.spec_generation`).

Drawing rules:

* one node per state, in the enum's order, and a small dot that points at the
  state a machine starts in after reset;
* one edge per (state, next state, kind of event), labelled with the names of
  every event that takes it, one per line, in the enum's order.  Several
  events between the same two states share one edge.  Every edge also
  carries its events as a tooltip, which an SVG viewer shows on hover;
* device machine: only ``ACCEPT`` rows are drawn.  ``IGNORE`` rows change
  nothing and are left to the table.  Host events are solid edges, guest
  reports (writes of ``DEV_CTRL.DRV_STATE``) dashed.  An event that leads to
  the same state from :data:`COMMON_EVENT_SOURCES` states or more (removal,
  error, unbinding) is drawn as thin grey edges without a label, which do not
  shape the layout: :func:`common_device_events` names them for a legend;
* migration machine: every row is drawn.  Events of the hypervisor are solid
  edges, the settled events that the bridge raises itself (``ALL_*``) dashed.

Output is deterministic: the same tables give the same text, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from vfmig_proto.states import DevEvent, DevState, MigEvent, MigState, Origin
from vfmig_proto.transitions import (
    DEVICE_TRANSITIONS,
    MIGRATION_TRANSITIONS,
    PENDING_REQUEST_STATES,
    SETTLED_STATES,
    Action,
)


class EdgeKind(Enum):
    """How an edge is drawn, by who causes its events."""

    HOST = "host"
    """Caused by the hypervisor or the bridge: a solid edge."""
    GUEST = "guest"
    """A report written by the guest's driver: a dashed edge."""
    COMMON = "common"
    """A host event that leads to one state from many states (removal, error): a grey edge, no label."""
    COMMON_GUEST = "common_guest"
    """A report that leads to one state from many states (unbinding): a grey dashed edge, no label."""
    SETTLED = "settled"
    """A settled event that the bridge raises itself (``ALL_*``): a dashed edge."""


@dataclass(frozen=True)
class Edge:
    """One drawn edge: every event of ``events`` takes ``source`` to ``target``."""

    source: str
    target: str
    kind: EdgeKind
    events: tuple[str, ...]


COMMON_EVENT_SOURCES = 5
"""From how many states an event must lead to one state for its edges to be drawn as common (grey)."""

START_NODE = "__start"
"""The node that points at a machine's initial state; not a state."""

_COMMON_KINDS = frozenset({EdgeKind.COMMON, EdgeKind.COMMON_GUEST})

_EDGE_ATTRIBUTES: Mapping[EdgeKind, str] = {
    EdgeKind.HOST: "",
    EdgeKind.GUEST: 'style="dashed"',
    EdgeKind.COMMON: 'color="gray65", constraint="false"',
    EdgeKind.COMMON_GUEST: 'style="dashed", color="gray65", constraint="false"',
    EdgeKind.SETTLED: 'style="dashed"',
}

_FONT = "Helvetica"

_LINE_BREAK = "\\n"
"""DOT's escape for a centred line break inside a label."""


def _quote(text: str) -> str:
    """A DOT double-quoted string; a ``\\n`` already in ``text`` stays a line break."""
    return '"' + text.replace('"', r"\"") + '"'


def _merge(
    rows: Iterable[tuple[str, str, EdgeKind, str]], state_order: Mapping[str, int], event_order: Mapping[str, int]
) -> list[Edge]:
    """Group ``(source, target, kind, event)`` rows into edges, sorted for a stable output."""
    grouped: dict[tuple[str, str, EdgeKind], list[str]] = {}
    for source, target, kind, event in rows:
        grouped.setdefault((source, target, kind), []).append(event)
    kind_order = {kind: index for index, kind in enumerate(EdgeKind)}
    edges = [
        Edge(source, target, kind, tuple(sorted(events, key=event_order.__getitem__)))
        for (source, target, kind), events in grouped.items()
    ]
    return sorted(edges, key=lambda e: (state_order[e.source], state_order[e.target], kind_order[e.kind]))


def _order(members: Iterable[Enum]) -> dict[str, int]:
    return {member.name: index for index, member in enumerate(members)}


def device_edges() -> list[Edge]:
    """The edges of the device machine: every ``ACCEPT`` row of ``DEVICE_TRANSITIONS``, merged."""
    accepted = [
        (state, event, outcome.next_state)
        for (state, event), outcome in DEVICE_TRANSITIONS.items()
        if outcome.action is Action.ACCEPT
    ]
    sources: dict[tuple[DevEvent, DevState], int] = {}
    for _, event, target in accepted:
        sources[(event, target)] = sources.get((event, target), 0) + 1
    rows = []
    for state, event, target in accepted:
        guest = event.origin is Origin.GUEST
        if sources[(event, target)] >= COMMON_EVENT_SOURCES:
            kind = EdgeKind.COMMON_GUEST if guest else EdgeKind.COMMON
        else:
            kind = EdgeKind.GUEST if guest else EdgeKind.HOST
        rows.append((state.name, target.name, kind, event.name))
    return _merge(rows, _order(DevState), _order(DevEvent))


def common_device_events() -> list[tuple[str, str, EdgeKind]]:
    """``(event, next state, kind)`` of each group of unlabelled grey edges of the device diagram, sorted."""
    groups = {(edge.events, edge.target, edge.kind) for edge in device_edges() if edge.kind in _COMMON_KINDS}
    found = {(event, target, kind) for events, target, kind in groups for event in events}
    event_order, state_order = _order(DevEvent), _order(DevState)
    return sorted(found, key=lambda item: (event_order[item[0]], state_order[item[1]]))


def migration_edges() -> list[Edge]:
    """The edges of the migration machine: every row of ``MIGRATION_TRANSITIONS``, merged."""
    rows = [
        (state.name, target.name, EdgeKind.SETTLED if event in SETTLED_STATES else EdgeKind.HOST, event.name)
        for (state, event), target in MIGRATION_TRANSITIONS.items()
    ]
    return _merge(rows, _order(MigState), _order(MigEvent))


def _digraph(name: str, nodes: Iterable[tuple[str, str]], initial: str, edges: Iterable[Edge]) -> str:
    """DOT source of a digraph; ``nodes`` are ``(name, extra attributes)`` pairs."""
    lines = [
        f"digraph {_quote(name)} {{",
        f'  graph [rankdir="TB", bgcolor="transparent", fontname="{_FONT}", nodesep="0.35", ranksep="0.45"];',
        f'  node [shape="box", style="rounded,filled", fillcolor="white", fontname="{_FONT}", fontsize="11"];',
        f'  edge [fontname="{_FONT}", fontsize="9", arrowsize="0.7"];',
        f'  {_quote(START_NODE)} [shape="point", width="0.12", label=""];',
    ]
    lines.extend(f"  {_quote(node)}{f' [{attributes}]' if attributes else ''};" for node, attributes in nodes)
    lines.append(f"  {_quote(START_NODE)} -> {_quote(initial)};")
    for edge in edges:
        events = _quote(_LINE_BREAK.join(edge.events))
        label = "" if edge.kind in _COMMON_KINDS else f"label={events}"
        attributes = ", ".join(part for part in (label, f"tooltip={events}", _EDGE_ATTRIBUTES[edge.kind]) if part)
        lines.append(f"  {_quote(edge.source)} -> {_quote(edge.target)} [{attributes}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _device_node_attributes(state: DevState) -> str:
    if state in PENDING_REQUEST_STATES:
        return 'fillcolor="#fff4d6"'
    if state is DevState.ERROR:
        return 'fillcolor="#fde2e1"'
    if state in (DevState.EMPTY, DevState.UNBOUND):
        return 'fillcolor="#eeeeee"'
    return ""


def device_state_diagram() -> str:
    """DOT source of the device state machine (spec §4.2).

    Request states (the bridge waits for the driver's answer) are filled
    yellow, ``ERROR`` red, and the states without a bound driver grey.
    """
    nodes = [(state.name, _device_node_attributes(state)) for state in DevState]
    return _digraph("device_state_machine", nodes, DevState.EMPTY.name, device_edges())


def migration_state_diagram() -> str:
    """DOT source of the migration state machine (spec §4.3).

    The states in which the bridge waits for every slot to settle are filled yellow.
    """
    waiting = {state for (state, event) in MIGRATION_TRANSITIONS if event in SETTLED_STATES}
    nodes = [(state.name, 'fillcolor="#fff4d6"' if state in waiting else "") for state in MigState]
    return _digraph("migration_state_machine", nodes, MigState.IDLE.name, migration_edges())
