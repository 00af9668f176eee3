"""A guest on a bridge of its own, watched: a fresh migration core probing a
:class:`~conformance.guest_watch.bridge.BridgeVariant` (:func:`probe_variant`), or driven through two
migrations and a group reset (:func:`run_handshake`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance.checks import Checks
from conformance.guest_watch.bridge import BridgeVariant, WatchedBridge
from conformance.guest_watch.watch import REACT_NS, GuestWatch
from reference_impl.clock import SimClock
from reference_impl.events import EventBus
from reference_impl.guest import Guest
from reference_impl.memory import GuestMemory
from vfmig_proto.codec import find_field, read_field, store_field
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.states import DevState, DriverReport, MigReason, MigState
from vfmig_proto.transitions import ACKNOWLEDGED_BY


@dataclass
class _Platform:
    bridge: WatchedBridge
    memory: GuestMemory

    def function_at(self, devfn: int) -> object | None:
        return None


@dataclass
class StubFunction:
    """A function in a slot: it only needs to be there (its resets are recorded)."""

    name: str
    bus_master: bool = False
    resets: list[str] = field(default_factory=list)

    def function_level_reset(self, how: str) -> None:
        self.resets.append(how)


def watched_guest(name: str, bridge: WatchedBridge, watch: GuestWatch) -> Guest:
    """A guest booted on ``bridge`` alone (the host shows it no function), its interrupts wired, ``watch`` on it."""
    guest = Guest(name, bridge.bus.clock, bridge.bus, _Platform(bridge, GuestMemory(16 * 4096, 12, boot=True)))
    bridge.interrupt_sink = guest.inject_bridge_interrupt
    watch.attach(guest, bridge.bus)
    return guest


@dataclass
class ProbeResult:
    """What a migration core did on a bridge of its own."""

    took_part: bool
    enabled: bool
    """Whether ``CONTROL.ENABLE`` of the real capability is set after the probe."""
    writes: list[tuple[int, int, int]]
    cap_writes: int
    """Writes that reached the capability."""


def probe_variant(
    make_core: Callable[[Guest], Any], checks: Checks, variant: BridgeVariant, params: CapabilityParams
) -> ProbeResult:
    """A guest boots on a bridge presenting ``variant`` and its migration core probes it, watched."""
    clock = SimClock()
    bus = EventBus(clock)
    watch = GuestWatch(checks, clock)
    watch.writes = []
    bridge = WatchedBridge(bus, params, name="probe.bridge", watch=watch, variant=variant)
    bridge.hot_add(0, StubFunction("probe.vf0"))
    guest = watched_guest("probe", bridge, watch)
    took_part = bool(make_core(guest).probe())
    watch.wrap_handler()
    clock.advance(REACT_NS)
    watch.settle()
    enabled = bool(read_field(bridge.config, find_field(bridge.num_slots, "control.enable"), bridge.cap))
    return ProbeResult(took_part, enabled, watch.writes, len(watch.writes))


class _Answering:
    """A VF driver that answers every request at once (its interface is down) and records being unbound."""

    def __init__(self, core: Any, slot: int) -> None:
        self.core = core
        self.slot = slot
        self.busy = False
        self.look_again = False
        self.loaded = True
        self.up = False
        self.unbound = 0

    def act_on(self, state: DevState | int) -> None:
        answer = ACKNOWLEDGED_BY.get(state) if isinstance(state, DevState) else None
        if answer is not None:
            self.core.report(self.slot, answer)

    def load(self, *, up: bool = True) -> bool:
        self.loaded = True
        return True

    def unload(self) -> None:
        self.unbound += 1
        self.loaded = False

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class HandshakeResult:
    """What a migration core did for a driver that answers at once, through migrations started by hand."""

    answered: tuple[bool, ...]
    """Per START: whether the slot got to DIRTYING (the core passed the request on and reported)."""
    reinitialised: bool
    """Whether the slot got back to READY after a group reset."""
    unbound: int
    """How often the core unbound the driver."""


def run_handshake(
    make_core: Callable[[Guest], Any], checks: Checks, params: CapabilityParams, generation: int
) -> HandshakeResult:
    """Two migrations (started, answered, cancelled) and a group reset, with ``GENERATION`` at ``generation`` first.

    With ``generation`` 0xFFFFFFFE, the second START wraps it to 0.
    """
    clock = SimClock()
    bus = EventBus(clock)
    watch = GuestWatch(checks, clock)
    bridge = WatchedBridge(bus, params, name="handshake.bridge", watch=watch)
    bridge.hot_add(0, StubFunction("handshake.vf0"))
    guest = watched_guest("handshake", bridge, watch)
    core = make_core(guest)
    if not core.probe():
        return HandshakeResult((), False, 0)
    driver = _Answering(core, 0)
    watch.drivers = [driver]
    core.register(0, driver)
    core.report(0, DriverReport.READY)
    core.look_at(0)
    watch.wrap_handler()
    store_field(bridge.config, find_field(bridge.num_slots, "generation"), generation, bridge.cap)
    answered = []
    for _ in range(2):
        bridge.start()
        clock.advance(REACT_NS)
        answered.append(bridge.dev_state(0) is DevState.DIRTYING)
        if bridge.mig_state is not MigState.IDLE:
            bridge.cancel(MigReason.CANCELLED)
        clock.advance(REACT_NS)
    bridge.group_reset()
    clock.advance(REACT_NS)
    watch.settle()
    return HandshakeResult(tuple(answered), bridge.dev_state(0) is DevState.READY, driver.unbound)
