"""Coverage of the spec's space: which cells of the protocol a run exercised on the implementation.

Theory of operation
-------------------

A verdict says what the checks found; it does not say where they looked.  This module says where: per
target, the share of a *universe* of cells that the run exercised on the implementation under test, in seven
dimensions:

* **device table**: every ``(DEV_STATE, event)`` row of :data:`vfmig_proto.transitions.DEVICE_TRANSITIONS`,
  and every ``(DEV_STATE, report)`` pair without a row (a guest may write any report in any state; the
  table's answer to a pair without a row is a rejection, spec §4.5).  A host event without a row is not a
  cell: the spec forbids it (VFM-DEV-012), so there is no behaviour of it to exercise;
* **migration table**: every ``(MIG_STATE, event)`` row of :data:`~vfmig_proto.transitions.MIGRATION_TRANSITIONS`
  (a pair without a row is one the hypervisor must not cause, and the bridge does not raise);
* **slot positions**: the first, a middle and the last slot of the bridge that held them;
* **slot numbers**: every slot of a bridge of the layout's default size
  (:class:`vfmig_proto.layout.CapabilityParams`);
* **byte lanes**: per register of :mod:`vfmig_proto.layout`, each byte within it written by a legal write of
  each width of :data:`vfmig_proto.access.WRITE_WIDTHS`, labelled with the access types of that byte;
* **phases x perturbations**: each ``MIG_STATE`` of a migration crossed with a cancellation, an unbinding, a
  stale report, a fault (device error or surprise removal) and an acknowledgement just before and after
  its deadline;
* **sides**: the source and the destination.

Everything is derived from :mod:`vfmig_proto`'s data (:func:`universe`); nothing is retyped, so a change of
a table changes the universe.  A cell the target's suite cannot reach is listed with its reason
(:func:`unreachable`): either the spec forbids what would reach it, or the input that would reach it is the
implementation's own and a conformant implementation never gives it; each reason names the spec text or
the table row that makes it true.  A dimension that is no input of a target is *not applicable* there, with
the reason.

Where observations come from: what the implementation actually did, never what the suite meant to do.

* In the ``device`` and ``hypervisor`` worlds the bridges are the reference's, built by the suite; it
  publishes every transition it takes and every report it rejects on the event bus, whatever the
  implementation under test made it do.  :func:`watched` subscribes a :class:`BridgeTracker` to a bridge's
  events as the world builds it;
* in the ``bridge`` world the bridge is the implementation.  Its published events are its own word, so they
  are not used: :func:`bridge_step` takes the model's effects of a step (the transitions the spec calls
  for, :mod:`vfmig_proto.engine`) only when the protocol state the bridge presents after the step (its
  ``MIG_STATE``, every ``DEV_STATE`` and ``DRV_STATE``, as the guest reads them) is the one those effects
  lead to.  A bridge that does not take a row never gets it counted.  The byte lanes are the guest writes
  the bridge completed.

A run has one :class:`CoverageRecorder` (:func:`activate`, from :func:`conformance.runner.execute`); its
cells are a set of strings, so that the worker process sends them to its supervisor in its state messages
and parallel shards merge by union (:meth:`SpecCoverage.merged`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, unique
from functools import cache
from typing import Any, Protocol

from vfmig_proto.access import WRITE_WIDTHS
from vfmig_proto.engine import (
    DeviceTransition,
    Effects,
    MigrationTransition,
    ProtocolState,
    ReportRejected,
    read_protocol_state,
)
from vfmig_proto.layout import (
    DEVICE_REGISTERS,
    HEADER_REGISTERS,
    VFM_HEADER_SIZE,
    VFM_SLOT_ENTRY_SIZE,
    CapabilityParams,
    Register,
)
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigState, Origin, Target
from vfmig_proto.transitions import (
    ACKNOWLEDGED_BY,
    DEVICE_TRANSITIONS,
    MIGRATION_TRANSITIONS,
    PENDING_REQUEST_STATES,
    REPORT_EVENTS,
    Action,
)

# ---------------------------------------------------------------------------------------------- dimensions


@unique
class Dimension(Enum):
    """One axis of the spec's space; the value is how reports name it."""

    DEVICE_TABLE = "device table"
    MIGRATION_TABLE = "migration table"
    SLOT_POSITIONS = "slot positions"
    SLOT_NUMBERS = "slot numbers"
    BYTE_LANES = "byte lanes"
    PHASE_PERTURBATIONS = "phases x perturbations"
    SIDES = "sides"


@unique
class Perturbation(Enum):
    """What can happen to a migration phase besides its normal course; the value is how reports name it."""

    CANCEL = "cancel"
    """The hypervisor cancels the migration (a CANCEL row of the migration table)."""
    UNBIND = "unbind"
    """A driver unbinds (DRV_STATE NONE accepted)."""
    STALE_REPORT = "stale report"
    """A report the device table ignores that is not a repeat: an answer to a request already withdrawn."""
    FAULT = "fault"
    """A function fails or disappears (DEVICE_ERROR or SURPRISE_REMOVAL)."""
    ACK_JUST_BEFORE_DEADLINE = "ack just before deadline"
    """A request answered in the last :data:`JUST_BEFORE_SHARE` of its deadline."""
    ACK_AFTER_DEADLINE = "ack after deadline"
    """A request answered after its deadline passed (accepted, or ignored once the hypervisor cancelled)."""


ACK_PERTURBATIONS = (Perturbation.ACK_JUST_BEFORE_DEADLINE, Perturbation.ACK_AFTER_DEADLINE)
GUEST_PERTURBATIONS = (Perturbation.UNBIND, Perturbation.STALE_REPORT, *ACK_PERTURBATIONS)
"""The perturbations a guest write makes."""

FAULT_EVENTS = frozenset({DevEvent.DEVICE_ERROR, DevEvent.SURPRISE_REMOVAL})

JUST_BEFORE_SHARE = 0.25
"""An answer in the last quarter of its deadline is "just before" it: late enough that a hypervisor that
measures the deadline from a later moment than the spec's, or rounds it down, acts on it too early."""


@unique
class Side(Enum):
    """Which end of a migration a bridge is."""

    SOURCE = "source"
    DESTINATION = "destination"


@unique
class DeadlineStart(Enum):
    """From when a phase's deadline for an answer runs (spec §8.3)."""

    PHASE = "the start of the phase"
    SLOT_REQUEST = "the slot's entry into its request state"


PHASE_DEADLINES: Mapping[MigState, DeadlineStart] = {
    MigState.PREPARE: DeadlineStart.PHASE,
    MigState.PRECOPY: DeadlineStart.SLOT_REQUEST,
    MigState.PAUSING: DeadlineStart.PHASE,
    MigState.RESUMING: DeadlineStart.PHASE,
}
"""The phases whose requests have a deadline of ``ACK_TIMEOUT_MS``, and from when it runs (spec §8.3,
VFM-TMO-001, -002, -003, -005): PREPARE, PAUSING and RESUMING from the phase's start, a late binder's
DIRTY_REQ in PRECOPY from the slot's entry.  REINIT_REQ on the destination has no deadline (spec §8.3).
For RESUMING after a CANCEL from STOPPED the spec starts the deadline when the vCPUs run again, at most e
later; the tracker starts it at the CANCEL, so such an answer counts as later than it was by at most e."""


Cell = tuple[str, str]
"""``(dimension, key)``: one cell, in the strings reports carry (the dimension's value, the cell's name)."""


def device_key(state: DevState, event: DevEvent) -> str:
    """The name of a device-table cell."""
    return f"{state.name} x {event.name}"


def migration_key(state: MigState, event: MigEvent) -> str:
    """The name of a migration-table cell."""
    return f"{state.name} x {event.name}"


def phase_key(phase: MigState, perturbation: Perturbation) -> str:
    """The name of a phase x perturbation cell."""
    return f"{phase.name} x {perturbation.value}"


def lane_key(register: Register, lane: int, width: int) -> str:
    """The name of a byte-lane cell: the register, the byte within it, the write's width and the byte's access."""
    return f"{register.name} byte {lane} by {width}-byte write ({lane_access(register, lane)})"


def lane_access(register: Register, lane: int) -> str:
    """The access types of the fields in byte ``lane`` of ``register``, e.g. ``RW+RsvdP``."""
    byte_mask = 0xFF << (8 * lane)
    kinds = dict.fromkeys(fld.access.value for fld in register.fields if fld.mask & byte_mask)
    return "+".join(kinds)


# ---------------------------------------------------------------------------------------------- the universe


@cache
def _guest_events() -> tuple[DevEvent, ...]:
    return tuple(REPORT_EVENTS[report] for report in DriverReport)


@cache
def device_cells() -> tuple[tuple[DevState, DevEvent], ...]:
    """Every row of the device table, then every (state, guest event) pair without a row (a rejection)."""
    rows = list(DEVICE_TRANSITIONS)
    rejections = [
        (state, event) for state in DevState for event in _guest_events() if (state, event) not in DEVICE_TRANSITIONS
    ]
    return (*rows, *rejections)


def migration_cells() -> tuple[tuple[MigState, MigEvent], ...]:
    """Every row of the migration table."""
    return tuple(MIGRATION_TRANSITIONS)


def idle_state() -> MigState:
    """The migration state of a bridge out of reset: the state between migrations, not a phase of one."""
    return ProtocolState.after_reset(1).mig_state


def phases() -> tuple[MigState, ...]:
    """The migration states of a migration under way."""
    idle = idle_state()
    return tuple(state for state in MigState if state is not idle)


@cache
def destination_phases() -> frozenset[MigState]:
    """The phases a destination runs: those ARRIVE leads to, and what follows them before the bridge is idle."""
    idle = idle_state()
    found = {new for (_, event), new in MIGRATION_TRANSITIONS.items() if event is MigEvent.ARRIVE}
    frontier = list(found)
    while frontier:
        state = frontier.pop()
        for (old, _), new in MIGRATION_TRANSITIONS.items():
            if old is state and new is not idle and new not in found:
                found.add(new)
                frontier.append(new)
    return frozenset(found)


def side_of(phase: MigState) -> Side | None:
    """The side a bridge in ``phase`` is on (None: idle, no side)."""
    if phase is idle_state():
        return None
    return Side.DESTINATION if phase in destination_phases() else Side.SOURCE


def default_slots() -> int:
    """The number of slots of a bridge of the layout's default parameters."""
    return CapabilityParams().num_slots


def lane_cells() -> tuple[tuple[Register, int, int], ...]:
    """Every ``(register, byte, width)``: each byte of each register, written by a legal write of each width.

    A capability starts on a DWORD boundary (PCI), so every byte lies in an aligned write of every width.
    """
    registers = (*HEADER_REGISTERS, *DEVICE_REGISTERS)
    return tuple(
        (register, lane, width) for register in registers for lane in range(register.size) for width in WRITE_WIDTHS
    )


@unique
class Position(Enum):
    """Where a slot lies in its bridge."""

    FIRST = "first"
    MIDDLE = "middle"
    LAST = "last"


def positions_of(slot: int, num_slots: int) -> tuple[Position, ...]:
    """The positions ``slot`` holds in a bridge of ``num_slots`` slots (a 1-slot bridge's slot is first and last)."""
    found = []
    if slot == 0:
        found.append(Position.FIRST)
    if slot == num_slots - 1:
        found.append(Position.LAST)
    if 0 < slot < num_slots - 1:
        found.append(Position.MIDDLE)
    return tuple(found)


@cache
def universe() -> dict[Dimension, tuple[str, ...]]:
    """Every cell of every dimension, in a stable order (the same for every target)."""
    return {
        Dimension.DEVICE_TABLE: tuple(device_key(state, event) for state, event in device_cells()),
        Dimension.MIGRATION_TABLE: tuple(migration_key(state, event) for state, event in migration_cells()),
        Dimension.SLOT_POSITIONS: tuple(position.value for position in Position),
        Dimension.SLOT_NUMBERS: tuple(str(slot) for slot in range(default_slots())),
        Dimension.BYTE_LANES: tuple(lane_key(register, lane, width) for register, lane, width in lane_cells()),
        Dimension.PHASE_PERTURBATIONS: tuple(
            phase_key(phase, perturbation) for phase in phases() for perturbation in Perturbation
        ),
        Dimension.SIDES: tuple(side.value for side in Side),
    }


def forget_derived() -> None:
    """Forget everything derived from the tables so far, so that it is derived again (after a test changes them)."""
    for derived in (
        _guest_events,
        device_cells,
        destination_phases,
        universe,
        _host_closure,
        conformant_read_states,
        unreachable,
        _repeats,
    ):
        derived.cache_clear()


# ---------------------------------------------------------------------------------------------- unreachable cells


@cache
def _host_closure(start: frozenset[DevState]) -> frozenset[DevState]:
    """The states host events can move a slot to from ``start``, by the device table's host rows."""
    found = set(start)
    frontier = list(start)
    while frontier:
        state = frontier.pop()
        for (old, event), outcome in DEVICE_TRANSITIONS.items():
            if old is state and event.origin is Origin.HOST and outcome.next_state not in found:
                found.add(outcome.next_state)
                frontier.append(outcome.next_state)
    return frozenset(found)


@cache
def conformant_read_states(event: DevEvent) -> frozenset[DevState]:
    """The states after whose reading a conformant driver writes the report ``event`` (VFM-DEV-005).

    VFM-DEV-005 lets a driver write READY for a slot it read as UNBOUND, NONE at any time, and the answer to
    the request state it read: exactly the states whose row accepts the report (NONE: every state).
    """
    if event is REPORT_EVENTS[DriverReport.NONE]:
        return frozenset(DevState)
    return frozenset(
        state
        for (state, row_event), outcome in DEVICE_TRANSITIONS.items()
        if row_event is event and outcome.action is Action.ACCEPT
    )


def _driver_reason(state: DevState, event: DevEvent, writer: str) -> str | None:
    """Why a conformant driver never writes ``event`` while its slot is in ``state`` (None: it may, in a race)."""
    read = conformant_read_states(event)
    if state in _host_closure(read):
        return None
    names = ", ".join(sorted(s.name for s in read))
    return (
        f"the reports are {writer}: by VFM-DEV-005 a driver writes {event.name} only after reading {names}, and no "
        f"host event moves a slot from there to {state.name} before the write lands (device table)"
    )


_NO_GUEST_IN_STOPPED = "no guest code runs in STOPPED, so no report is written there (spec §4.3.5)"
_BRIDGE_KEEPS_NO_TIME = (
    "the bridge keeps no deadline: the hypervisor acts on ACK_TIMEOUT_MS (VFM-TMO-001, -002, -003, -005), and the "
    "bridge's answer to a report does not depend on when it comes"
)
_DRIVER_TIMES_ITS_ANSWER = (
    "when a request is answered is the driver's own behaviour (VFM-TMO-006 binds the driver under test): the suite "
    "cannot hold a driver's answer back to the edge of its deadline"
)


def _phase_reasons(target: Target) -> dict[str, str]:
    reasons: dict[str, str] = {}
    for phase in phases():
        if (phase, MigEvent.CANCEL) not in MIGRATION_TRANSITIONS:
            reasons[phase_key(phase, Perturbation.CANCEL)] = (
                f"the migration table has no CANCEL row in {phase.name}: the hypervisor must not cancel there"
            )
        for perturbation in ACK_PERTURBATIONS:
            key = phase_key(phase, perturbation)
            if target is Target.BRIDGE:
                reasons[key] = _BRIDGE_KEEPS_NO_TIME
            elif phase not in PHASE_DEADLINES:
                reasons[key] = f"no request has a deadline in {phase.name} (spec §8.3)"
            elif target is Target.DEVICE:
                reasons[key] = _DRIVER_TIMES_ITS_ANSWER
        if target is not Target.BRIDGE and phase is MigState.STOPPED:
            for perturbation in GUEST_PERTURBATIONS:
                reasons.setdefault(phase_key(phase, perturbation), _NO_GUEST_IN_STOPPED)
    return reasons


_REPORT_WRITERS: Mapping[Target, str] = {
    Target.DEVICE: "the driver's under test (the device suite writes no DRV_STATE itself)",
}
"""The targets whose suite never writes a report of its own.  (The hypervisor suite's guest writes stale reports
on purpose, ``stale_report``, so every report cell is reachable there.)"""


@cache
def unreachable(target: Target) -> dict[Cell, str]:
    """The cells ``target``'s suite cannot reach, each with the reason (the spec's, or the role boundary's)."""
    reasons: dict[Cell, str] = {}
    writer = _REPORT_WRITERS.get(target)
    if writer is not None:
        for state, event in device_cells():
            why = _driver_reason(state, event, writer) if event.origin is Origin.GUEST else None
            if why is not None:
                reasons[(Dimension.DEVICE_TABLE.value, device_key(state, event))] = why
    for key, why in _phase_reasons(target).items():
        reasons[(Dimension.PHASE_PERTURBATIONS.value, key)] = why
    return reasons


NOT_APPLICABLE: Mapping[Target, Mapping[Dimension, str]] = {
    Target.DEVICE: {
        Dimension.BYTE_LANES: "the guest's writes to the capability are the driver's and migration core's under "
        "test, not inputs the suite chooses",
    },
    Target.HYPERVISOR: {
        Dimension.BYTE_LANES: "the hypervisor writes no capability register as a guest; the guest's writes are the "
        "reference driver's",
    },
    Target.BRIDGE: {},
}
"""Dimensions that are no input of a target, with the reason."""


# ---------------------------------------------------------------------------------------------- recording


class CoverageRecorder:
    """The cells one run exercised (fed by the trackers; merged from workers and shards)."""

    def __init__(self, target: Target, cells: Iterable[Cell] = ()) -> None:
        self.target = target
        self.cells: set[Cell] = set(cells)

    def add(self, dimension: Dimension, key: str) -> None:
        self.cells.add((dimension.value, key))

    def merge(self, cells: Iterable[Cell]) -> None:
        """Take cells another process (a worker, a shard) exercised."""
        self.cells.update(cells)

    def snapshot(self) -> frozenset[Cell]:
        return frozenset(self.cells)

    def coverage(self) -> SpecCoverage:
        return SpecCoverage(self.target, frozenset(self.cells))


_ACTIVE: list[CoverageRecorder] = []
"""The recorder of the run in progress in this process (one run at a time, as one machine at a time)."""


def activate(recorder: CoverageRecorder | None) -> None:
    """Make ``recorder`` the one the trackers feed (None: record nothing)."""
    _ACTIVE[:] = [] if recorder is None else [recorder]


def active() -> CoverageRecorder | None:
    """The recorder of the run in progress, if any."""
    return _ACTIVE[0] if _ACTIVE else None


@dataclass
class PendingRequest:
    """A request a slot was put in, and from when its deadline runs."""

    state: DevState
    phase: MigState
    deadline_from: int | None
    """Simulated ns (None: no deadline, or no clock)."""


@dataclass
class BridgeTracker:
    """Follows one bridge's transitions and turns them into cells."""

    recorder: CoverageRecorder
    num_slots: int
    ack_timeout_ns: int | None = None
    """None: no clock (the bridge world), so no answer is timed."""
    mig_state: MigState = field(default_factory=idle_state)
    phase_started: int = 0
    requests: dict[int, PendingRequest] = field(default_factory=dict)
    restored_here: bool = False
    """The bridge took a source's saved state over: a destination until it is idle again (it is restored in a
    state, STOPPED, that the source runs too)."""

    def _side(self, phase: MigState) -> None:
        side = Side.DESTINATION if self.restored_here and phase is not idle_state() else side_of(phase)
        if side is not None:
            self.recorder.add(Dimension.SIDES, side.value)

    def _phase(self, phase: MigState, perturbation: Perturbation) -> None:
        if phase is not idle_state():
            self.recorder.add(Dimension.PHASE_PERTURBATIONS, phase_key(phase, perturbation))

    def restored(self, state: MigState, now: int = 0) -> None:
        """The bridge took a saved state over (the destination's restore)."""
        self.mig_state, self.phase_started = state, now
        self.requests.clear()
        self.restored_here = True

    def migration(self, event: MigEvent, old: MigState, new: MigState, now: int = 0) -> None:
        """The bridge took a row of the migration table."""
        self.recorder.add(Dimension.MIGRATION_TABLE, migration_key(old, event))
        if event is MigEvent.CANCEL:
            self._phase(old, Perturbation.CANCEL)
        if new is not old:
            self.phase_started = now
        if new is idle_state():
            self.restored_here = False
        self.mig_state = new
        self._side(new if new is not idle_state() else old)

    def device(self, change: DeviceTransition, now: int = 0) -> None:
        """A slot took a row of the device table."""
        slot, event, old, new, action = change.slot, change.event, change.old, change.new, change.action
        self.recorder.add(Dimension.DEVICE_TABLE, device_key(old, event))
        if not (old is DevState.EMPTY and new is DevState.EMPTY and event.origin is Origin.HOST):
            self._slot(slot)  # a host event fanned out to an empty slot exercises no function
        phase = self.mig_state
        self._side(phase)
        if event in FAULT_EVENTS:
            self._phase(phase, Perturbation.FAULT)
        if event.origin is Origin.GUEST:
            self._report(slot, event, old, action, now)
        if new is not old and new in PENDING_REQUEST_STATES:
            self.requests[slot] = PendingRequest(new, phase, self._deadline_from(phase, now))

    def rejected(self, slot: int, report: int, state: DevState) -> None:
        """The bridge rejected a report; a defined report without a row is a cell of the table."""
        if report not in DriverReport._value2member_map_:
            return
        event = REPORT_EVENTS[DriverReport(report)]
        if (state, event) not in DEVICE_TRANSITIONS:
            self.recorder.add(Dimension.DEVICE_TABLE, device_key(state, event))
            self._slot(slot)

    def _slot(self, slot: int) -> None:
        self.recorder.add(Dimension.SLOT_NUMBERS, str(slot))
        for position in positions_of(slot, self.num_slots):
            self.recorder.add(Dimension.SLOT_POSITIONS, position.value)

    def _deadline_from(self, phase: MigState, now: int) -> int | None:
        start = PHASE_DEADLINES.get(phase)
        if start is None or self.ack_timeout_ns is None:
            return None
        return self.phase_started if start is DeadlineStart.PHASE else now

    def _report(self, slot: int, event: DevEvent, old: DevState, action: Action, now: int) -> None:
        request = self.requests.get(slot)
        answers = request is not None and REPORT_EVENTS[ACKNOWLEDGED_BY[request.state]] is event
        phase = request.phase if request is not None and answers else self.mig_state
        if event is REPORT_EVENTS[DriverReport.NONE] and action is Action.ACCEPT:
            self._phase(self.mig_state, Perturbation.UNBIND)
        if action is Action.IGNORE and not _repeats(old, event):
            self._phase(phase, Perturbation.STALE_REPORT)
        if request is not None and answers:
            del self.requests[slot]
            self._time_answer(request, action is Action.ACCEPT, now)

    def _time_answer(self, request: PendingRequest, accepted: bool, now: int) -> None:
        if request.deadline_from is None or self.ack_timeout_ns is None:
            return
        elapsed = now - request.deadline_from
        if elapsed > self.ack_timeout_ns:
            self._phase(request.phase, Perturbation.ACK_AFTER_DEADLINE)
        elif accepted and elapsed >= (1 - JUST_BEFORE_SHARE) * self.ack_timeout_ns:
            self._phase(request.phase, Perturbation.ACK_JUST_BEFORE_DEADLINE)


@cache
def _repeats(state: DevState, event: DevEvent) -> bool:
    """Whether ``event`` ignored in ``state`` repeats the report that brought the slot there (not stale)."""
    return any(
        row_event is event and outcome.action is Action.ACCEPT and outcome.next_state is state
        for (_, row_event), outcome in DEVICE_TRANSITIONS.items()
    )


# ---------------------------------------------------------------------------------------------- the sources


class PublishingBridge(Protocol):
    """What :func:`watched` needs of a bridge the suite built: where it publishes, its name, its parameters."""

    @property
    def bus(self) -> Any: ...

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> CapabilityParams: ...


_BUS_TRACKERS: weakref.WeakKeyDictionary[Any, dict[str, BridgeTracker]] = weakref.WeakKeyDictionary()
"""Per event bus, the tracker of each bridge publishing on it, by the bridge's name (the events' source)."""
_NS_PER_MS = 1_000_000


def watched(bridge: PublishingBridge) -> None:
    """Record what ``bridge``, a bridge the suite built (the reference's), publishes.

    A later bridge of the same name on the same bus replaces this one's tracker: it starts from reset.
    """
    recorder = active()
    if recorder is None:
        return
    bus = bridge.bus
    trackers = _BUS_TRACKERS.get(bus)
    if trackers is None:
        trackers = _BUS_TRACKERS[bus] = {}
        _subscribe(bus, trackers)
    params = bridge.params
    trackers[bridge.name] = BridgeTracker(recorder, params.num_slots, params.ack_timeout_ms * _NS_PER_MS)


def _subscribe(bus: Any, trackers: dict[str, BridgeTracker]) -> None:
    from reference_impl.events import Event, EventKind  # noqa: PLC0415 - only the simulated worlds need it

    def on_event(event: Event) -> None:
        # Only the suite's bridge publishes under its name; anything else of that name is not a transition of its
        # and is left alone (a listener that raised would raise inside the publisher's step).
        tracker = trackers.get(event.source)
        if tracker is not None:
            _feed_event(tracker, event)

    bus.subscribe(on_event, (EventKind.MIG_TRANSITION, EventKind.DEV_TRANSITION, EventKind.REPORT_REJECTED))


def _feed_event(tracker: BridgeTracker, event: Any) -> None:
    """One event a watched bridge published; events whose fields are not what the reference publishes are not
    counted."""
    kind = event.kind.value
    if kind == "dev_transition":
        _feed_device(tracker, event.data, event.time)
    elif kind == "report_rejected":
        _feed_rejection(tracker, event.data)
    else:
        _feed_migration(tracker, event.data, event.time)


def _feed_device(tracker: BridgeTracker, data: Mapping[str, Any], now: int) -> None:
    old, new = data.get("old"), data.get("new")
    if not (isinstance(old, DevState) and isinstance(new, DevState)):
        return
    slot, what, action = data.get("slot"), data.get("event"), data.get("action")
    if isinstance(slot, int) and isinstance(what, DevEvent) and isinstance(action, Action):
        tracker.device(DeviceTransition(slot, what, old, new, action), now)


def _feed_rejection(tracker: BridgeTracker, data: Mapping[str, Any]) -> None:
    slot, report, state = data.get("slot"), data.get("report"), data.get("state")
    if isinstance(slot, int) and isinstance(report, int) and isinstance(state, DevState):
        tracker.rejected(slot, report, state)


def _feed_migration(tracker: BridgeTracker, data: Mapping[str, Any], now: int) -> None:
    what, old, new = data.get("event"), data.get("old"), data.get("new")
    if isinstance(what, MigEvent) and isinstance(old, MigState) and isinstance(new, MigState):
        tracker.migration(what, old, new, now)
    elif what == "restore" and isinstance(new, MigState):
        tracker.restored(new, now)


class SteppedModel(Protocol):
    """What :func:`bridge_step` needs of the bridge suite's model of the capability."""

    num_slots: int
    data: bytearray
    step_effects: Effects


_MODEL_TRACKERS: weakref.WeakKeyDictionary[Any, BridgeTracker] = weakref.WeakKeyDictionary()


def bridge_step(model: SteppedModel, before: bytes, written: range, presented: bytes) -> None:
    """One step of the bridge world: count the model's effects if the bridge presents the state they lead to.

    ``before``: the capability before the step (the bridge's, as the model holds it); ``written``: the
    capability offsets a legal guest write covered (empty for a host event); ``presented``: the capability as
    the guest reads it after the step.
    """
    recorder = active()
    if recorder is None:
        return
    record_write(recorder, written)
    if not _same_protocol_state(model.data, presented, model.num_slots):
        return
    tracker = _MODEL_TRACKERS.get(model)
    if tracker is None:
        tracker = _MODEL_TRACKERS[model] = BridgeTracker(recorder, model.num_slots)
    tracker.recorder = recorder
    tracker.mig_state = read_protocol_state(before, model.num_slots).mig_state
    feed_effects(tracker, model.step_effects)


def feed_effects(tracker: BridgeTracker, effects: Effects) -> None:
    """Turn an engine's effects into the tracker's cells, in order."""
    for change in effects.changes:
        if isinstance(change, MigrationTransition):
            tracker.migration(change.event, change.old, change.new)
        elif isinstance(change, DeviceTransition):
            tracker.device(change)
        elif isinstance(change, ReportRejected):
            verdict = change.verdict
            tracker.rejected(verdict.slot, verdict.written, verdict.state)


def _same_protocol_state(expected: bytes | bytearray, presented: bytes, num_slots: int) -> bool:
    """Whether ``presented`` holds the ``MIG_STATE``, ``DEV_STATE`` and ``DRV_STATE`` values ``expected`` does."""
    try:
        want = read_protocol_state(expected, num_slots)
        got = read_protocol_state(presented, num_slots)
    except (ValueError, IndexError):  # a value no enum has, or a capability cut short: not the model's state
        return False
    return got.mig_state is want.mig_state and all(
        (mine.dev_state, mine.drv_state) == (theirs.dev_state, theirs.drv_state)
        for mine, theirs in zip(want.slots, got.slots, strict=True)
    )


def record_write(recorder: CoverageRecorder, written: range) -> None:
    """A legal guest write covered the capability offsets ``written``: its byte lanes."""
    width = len(written)
    for offset in written:
        register, lane = register_at(offset)
        recorder.add(Dimension.BYTE_LANES, lane_key(register, lane, width))


def register_at(offset: int) -> tuple[Register, int]:
    """The register holding capability byte ``offset``, and the byte's place within it."""
    if offset < VFM_HEADER_SIZE:
        registers, within = HEADER_REGISTERS, offset
    else:
        registers, within = DEVICE_REGISTERS, (offset - VFM_HEADER_SIZE) % VFM_SLOT_ENTRY_SIZE
    register = next(r for r in registers if r.offset <= within < r.offset + r.size)
    return register, within - register.offset


# ---------------------------------------------------------------------------------------------- the summary


@dataclass(frozen=True)
class DimensionSummary:
    """One dimension of a run's coverage."""

    dimension: Dimension
    covered: tuple[str, ...]
    """Reachable cells the run exercised."""
    missing: tuple[str, ...]
    """Reachable cells the run did not exercise."""
    unreachable: tuple[tuple[str, str], ...]
    """``(cell, reason)`` for the cells the target's suite cannot reach."""
    contradicted: tuple[str, ...] = ()
    """Cells listed unreachable that the run exercised all the same: their reason is wrong."""
    not_applicable: str | None = None
    """Why the dimension is no input of the target (then every other field is empty)."""

    @property
    def reachable(self) -> int:
        return len(self.covered) + len(self.missing)

    @property
    def complete(self) -> bool:
        """Every reachable cell was exercised."""
        return not self.missing


@dataclass(frozen=True)
class SpecCoverage:
    """The cells a run exercised on the implementation, for ``target``."""

    target: Target
    cells: frozenset[Cell] = frozenset()

    def merged(self, other: SpecCoverage) -> SpecCoverage:
        """The coverage of both runs (shards of one run, say)."""
        if other.target is not self.target:
            raise ValueError(f"coverage of target {other.target.value} merged into {self.target.value}'s")
        return SpecCoverage(self.target, self.cells | other.cells)

    def summary(self) -> list[DimensionSummary]:
        """Every dimension, in the order of :class:`Dimension`."""
        return [self.dimension(dimension) for dimension in Dimension]

    def dimension(self, dimension: Dimension) -> DimensionSummary:
        why_not = NOT_APPLICABLE[self.target].get(dimension)
        if why_not is not None:
            return DimensionSummary(dimension, (), (), (), not_applicable=why_not)
        reasons = unreachable(self.target)
        seen = {key for name, key in self.cells if name == dimension.value}
        covered, missing, listed, contradicted = [], [], [], []
        for key in universe()[dimension]:
            reason = reasons.get((dimension.value, key))
            if reason is not None:
                listed.append((key, reason))
                if key in seen:
                    contradicted.append(key)
            elif key in seen:
                covered.append(key)
            else:
                missing.append(key)
        return DimensionSummary(dimension, tuple(covered), tuple(missing), tuple(listed), tuple(contradicted))


def merge_all(coverages: Iterable[SpecCoverage | None]) -> SpecCoverage | None:
    """The union of the coverages given (None if none was recorded)."""
    merged: SpecCoverage | None = None
    for coverage in coverages:
        if coverage is not None:
            merged = coverage if merged is None else merged.merged(coverage)
    return merged
