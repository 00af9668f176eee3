"""The event bus: everything that happens in a simulation, observable with its simulated time.

Every role publishes what it does (transitions, config accesses, interrupts,
DMA, dirtying, pauses, resets, page sends) as an :class:`Event`.  Tests, the
invariant monitors, the ``--trace`` writer and the conformance suite subscribe
to the kinds they care about.  Publishing a kind nobody listens to costs one
dictionary lookup, so a 64 GiB simulation pays nothing for events it does not
record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, unique
from typing import Any

from reference_impl.clock import SimClock


@unique
class EventKind(Enum):
    """What happened.  The event's ``data`` fields are listed per kind."""

    MIG_TRANSITION = "mig_transition"
    """The bridge's migration machine moved: ``event``, ``old``, ``new``, ``reason``, ``generation``."""
    DEV_TRANSITION = "dev_transition"
    """A slot's device machine moved (or ignored a report): ``slot``, ``event``, ``old``, ``new``, ``action``."""
    REPORT_REJECTED = "report_rejected"
    """The bridge rejected a driver report: ``slot``, ``report``, ``state``, ``why``."""
    CONFIG_READ = "config_read"
    """A guest config read: ``target`` (bridge or devfn), ``offset``, ``width``, ``value``."""
    CONFIG_WRITE = "config_write"
    """A guest config write: ``target``, ``offset``, ``width``, ``value``."""
    BRIDGE_INTERRUPT = "bridge_interrupt"
    """The bridge signalled its event interrupt: ``mode`` (msi or intx)."""
    DEVICE_INTERRUPT = "device_interrupt"
    """A function sent an interrupt message: ``function``, ``vector``."""
    DMA_WRITE = "dma_write"
    """A function wrote guest memory: ``function``, ``pages`` (count), ``first``, ``last``."""
    DMA_READ = "dma_read"
    """A function read guest memory: ``function``, ``pages``."""
    CPU_WRITE = "cpu_write"
    """The guest's CPUs wrote memory (workload): ``pages``."""
    DIRTY = "dirty"
    """A driver dirtied pages: ``function``, ``pages``, ``why`` (completion, pause, unbind, close)."""
    BUS_MASTER = "bus_master"
    """A function's Bus Master Enable changed: ``function``, ``enabled``."""
    FUNCTION_RESET = "function_reset"
    """A function was reset: ``function``, ``how`` (flr, group)."""
    DRIVER = "driver"
    """Driver lifecycle: ``slot``, ``action`` (bind, unbind, open, close, dirtying_on, dirtying_off,
    pause, resume, reinit)."""
    VCPU = "vcpu"
    """The guest's vCPUs stopped or run: ``host``, ``running``."""
    PRECOPY_ROUND = "precopy_round"
    """A pre-copy round began: ``round``, ``pages`` (to send), ``dirty_rate``."""
    PAGE_SEND = "page_send"
    """Pages went on the wire: ``pages``, ``bytes``, ``phase``."""
    MIGRATION = "migration"
    """A migration's milestones: ``what`` (start, switchover, stopped, handover, arrived, end), and details."""
    FAULT = "fault"
    """A fault was injected: ``fault``, and details."""
    HOT_PLUG = "hot_plug"
    """A function was added to or removed from a slot: ``slot``, ``action`` (add, remove)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, at simulated time ``time`` (ns)."""

    time: int
    kind: EventKind
    source: str
    data: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (enums by name)."""
        return {
            "time_ns": self.time,
            "kind": self.kind.value,
            "source": self.source,
            **{key: _jsonable(value) for key, value in self.data.items()},
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


Listener = Callable[[Event], None]


class EventBus:
    """Publish/subscribe by :class:`EventKind`, with timestamps from the simulated clock."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._listeners: dict[EventKind, list[Listener]] = {kind: [] for kind in EventKind}

    def subscribe(self, listener: Listener, kinds: Iterable[EventKind] | None = None) -> Callable[[], None]:
        """Call ``listener`` for every event of ``kinds`` (all kinds if None); returns an unsubscribe function."""
        chosen = tuple(EventKind) if kinds is None else tuple(kinds)
        for kind in chosen:
            self._listeners[kind].append(listener)

        def unsubscribe() -> None:
            for kind in chosen:
                if listener in self._listeners[kind]:
                    self._listeners[kind].remove(listener)

        return unsubscribe

    def wants(self, kind: EventKind) -> bool:
        """Whether anybody listens for ``kind`` (lets a publisher skip building costly data)."""
        return bool(self._listeners[kind])

    def publish(self, kind: EventKind | str, source: str, /, **data: Any) -> None:
        """Deliver an event of ``kind`` (a kind or its value) to its listeners, stamped with the clock's time."""
        if not isinstance(kind, EventKind):  # an implementation written against conformance.interfaces
            kind = EventKind(kind)
        listeners = self._listeners[kind]
        if not listeners:
            return
        event = Event(self.clock.now, kind, source, data)
        for listener in tuple(listeners):
            listener(event)


class EventLog:
    """A listener that keeps events in a list (for tests and small traces)."""

    def __init__(self, bus: EventBus, kinds: Iterable[EventKind] | None = None) -> None:
        self.events: list[Event] = []
        self.unsubscribe = bus.subscribe(self.events.append, kinds)

    def of(self, kind: EventKind) -> list[Event]:
        """The recorded events of ``kind``, in order."""
        return [event for event in self.events if event.kind is kind]
