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
* device machine: only the main path is drawn, from the ``ACCEPT`` rows.
  ``IGNORE`` rows change nothing and are left to the table.  Host events are
  solid edges, guest reports (writes of ``DEV_CTRL.DRV_STATE``) dashed.  An
  event that leads to the same state from :data:`COMMON_EVENT_SOURCES` states
  or more (removal, error, unbinding, group reset) and an event that leaves
  the state as it is are not drawn: :func:`off_path_device_events` lists them
  for a table beside the diagram, so that no edge goes without a label;
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
    """A host event that leads to one state from many states (removal, error): listed beside the diagram."""
    COMMON_GUEST = "common_guest"
    """A report that leads to one state from many states (unbinding): listed beside the diagram."""
    STAY = "stay"
    """An accepted event that leaves the state as it is: listed beside the diagram."""
    SETTLED = "settled"
    """A settled event that the bridge raises itself (``ALL_*``): a dashed edge."""


@dataclass(frozen=True)
class Edge:
    """One drawn edge: every event of ``events`` takes ``source`` to ``target``."""

    source: str
    target: str
    kind: EdgeKind
    events: tuple[str, ...]


COMMON_EVENT_SOURCES = 4
"""From how many states an event must lead to one state to be listed beside the diagram rather than drawn."""

START_NODE = "__start"
"""The node that points at a machine's initial state; not a state."""

_OFF_PATH_KINDS = frozenset({EdgeKind.COMMON, EdgeKind.COMMON_GUEST, EdgeKind.STAY})

_EDGE_ATTRIBUTES: Mapping[EdgeKind, str] = {
    EdgeKind.HOST: "",
    EdgeKind.GUEST: 'style="dashed"',
    EdgeKind.COMMON: "",
    EdgeKind.COMMON_GUEST: 'style="dashed"',
    EdgeKind.STAY: "",
    EdgeKind.SETTLED: 'style="dashed"',
}

_FONT = "Helvetica"

NODE_FONT_SIZE = 14
"""Points of a state's name: the site shows a diagram at its natural size, 1 pt = 4/3 CSS px."""
EDGE_FONT_SIZE = 12
"""Points of an event's name on an edge (16 CSS px at the natural size)."""

_APART = 'style="rounded,filled,dashed"'
"""A state that no drawn edge joins (it is entered and left only by the listed events): a dashed border."""

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
        elif state is target:
            kind = EdgeKind.STAY
        else:
            kind = EdgeKind.GUEST if guest else EdgeKind.HOST
        rows.append((state.name, target.name, kind, event.name))
    return _merge(rows, _order(DevState), _order(DevEvent))


@dataclass(frozen=True)
class OffPathEvent:
    """An event of the device machine that the diagram does not draw: it takes each of ``sources`` to ``target``.

    ``target`` is None when the event leaves each of its states as it is.
    """

    event: str
    sources: tuple[str, ...]
    target: str | None
    kind: EdgeKind


def off_path_device_events() -> list[OffPathEvent]:
    """The accepted events of the device machine left out of its diagram, by event and next state, sorted."""
    grouped: dict[tuple[str, str | None, EdgeKind], list[str]] = {}
    for edge in device_edges():
        if edge.kind not in _OFF_PATH_KINDS:
            continue
        target = None if edge.kind is EdgeKind.STAY else edge.target
        for event in edge.events:
            grouped.setdefault((event, target, edge.kind), []).append(edge.source)
    event_order, state_order = _order(DevEvent), _order(DevState)
    found = [
        OffPathEvent(event, tuple(sorted(sources, key=state_order.__getitem__)), target, kind)
        for (event, target, kind), sources in grouped.items()
    ]
    return sorted(found, key=lambda item: (event_order[item.event], item.target is None, item.kind.value))


def drawn_device_edges() -> list[Edge]:
    """The edges the device diagram draws: its main path, every edge labelled."""
    return [edge for edge in device_edges() if edge.kind not in _OFF_PATH_KINDS]


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
        f'  node [shape="box", style="rounded,filled", fillcolor="white", fontname="{_FONT}", '
        f'fontsize="{NODE_FONT_SIZE}"];',
        f'  edge [fontname="{_FONT}", fontsize="{EDGE_FONT_SIZE}", arrowsize="0.7"];',
        f'  {_quote(START_NODE)} [shape="point", width="0.12", label=""];',
    ]
    edges = list(edges)
    joined = {initial} | {edge.source for edge in edges} | {edge.target for edge in edges}
    apart = [node for node, _ in nodes if node not in joined]
    for node, attributes in nodes:
        shown = ", ".join(part for part in (attributes, _APART if node in apart else "") if part)
        lines.append(f"  {_quote(node)}{f' [{shown}]' if shown else ''};")
    if apart:
        # A state that no drawn edge joins goes to the bottom, not to the top beside the initial state.
        lines.append(f'  {{rank="sink"; {" ".join(_quote(node) + ";" for node in apart)}}}')
    lines.append(f"  {_quote(START_NODE)} -> {_quote(initial)};")
    for edge in edges:
        events = _quote(_LINE_BREAK.join(edge.events))
        attributes = ", ".join(
            part for part in (f"label={events}", f"tooltip={events}", _EDGE_ATTRIBUTES[edge.kind]) if part
        )
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

    Its main path only (:func:`drawn_device_edges`).  Request states (the
    bridge waits for the driver's answer) are filled yellow, ``ERROR`` red,
    and the states without a bound driver grey.
    """
    nodes = [(state.name, _device_node_attributes(state)) for state in DevState]
    return _digraph("device_state_machine", nodes, DevState.EMPTY.name, drawn_device_edges())


def migration_state_diagram() -> str:
    """DOT source of the migration state machine (spec §4.3).

    The states in which the bridge waits for every slot to settle are filled yellow.
    """
    waiting = {state for (state, event) in MIGRATION_TRANSITIONS if event in SETTLED_STATES}
    nodes = [(state.name, 'fillcolor="#fff4d6"' if state in waiting else "") for state in MigState]
    return _digraph("migration_state_machine", nodes, MigState.IDLE.name, migration_edges())
