"""A hypervisor host written from the specification, :mod:`vfmig_proto` and :mod:`conformance.interfaces` only.

A host runs the guest on its copy of the guest's RAM, with a migration bridge and the functions behind it.
It reads the bridge's registers from :meth:`~conformance.interfaces.bridge.BridgeUnderTest.capability_bytes`
(decoded with :mod:`vfmig_proto.codec`), never through the guest's configuration accesses.

A migration (spec §7) is driven by the bridge's steps, which the host observes: START after the start
conditions (§4.3.1); pre-copy rounds from the dirty log at the link's rate until what is left fits the downtime
limit; REQUEST_PAUSE; in STOPPED the vCPUs stop, the last pages and the saved configuration space go to the
destination, which restores the bridge on equal functions fresh from a reset and confirms; at the
confirmation (the handover point) the source lets the guest go and the destination issues ARRIVE and runs it.
Every deadline of §7.6 cancels; a device error cancels and is followed by a group reset (§7.9).

Each MIG_STATE the source enters has one entry action (:data:`_ON_ENTRY`).  The simulated clock offers no
way to cancel a timer: each timer carries the *epoch* (the count of MIG_STATE changes) it was armed in, and
does nothing once the migration has moved on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import count, groupby
from typing import TypeVar

from conformance.interfaces.bridge import BridgeUnderTest, RestoreRefusedError
from conformance.interfaces.common import Clock, EventSink, FunctionIds
from conformance.interfaces.hypervisor import (
    HostedGuest,
    HostFunction,
    HostMemory,
    MigrationOutcome,
    MigrationRefusedError,
    MigrationSettings,
)
from vfmig_proto import pci
from vfmig_proto.codec import Capability, decode_capability
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.states import DevState, MigReason, MigState

from .bridge import ScratchBridge

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
BARS = range(pci.PCI_BASE_ADDRESS_0, pci.PCI_BASE_ADDRESS_0 + 6 * 4, 4)
"""The offsets of a type-0 function's six Base Address Registers."""
CANCELLABLE = frozenset({MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED})
NEEDS_THE_GUEST = frozenset({MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING})
"""States in which the migration needs the guest's help: a guest's protocol error cancels (VFM-MIG-011)."""
SENDING = frozenset({MigState.PRECOPY, MigState.PAUSING})
"""States in which pages go out while the vCPUs run (VFM-TIME-003)."""
STARTABLE_SLOTS = frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.READY})
WITHOUT_DRIVER = frozenset({DevState.EMPTY, DevState.UNBOUND})
DRIVER_GAVE_UP = (DevState.ERROR, DevState.UNBOUND)
"""A slot's change when its driver gives up a failed function."""
CONSENTS = frozenset({"control.enable", "guest_features.dma_dirty", "guest_features.pause_resume"})
"""What a guest switches on to take part in migrations; clearing one mid-migration withdraws its consent."""

_T = TypeVar("_T")

FunctionFactory = Callable[[str, Clock, EventSink, FunctionIds | None], HostFunction]
BridgeFactory = Callable[[EventSink, CapabilityParams, str], BridgeUnderTest]
MemoryFactory = Callable[[int, int, bool], HostMemory]


class HostEmptyError(RuntimeError):
    """The host holds no guest memory or no bridge now."""


def _registers(bridge: BridgeUnderTest) -> Capability:
    return _decoded(bridge.capability_bytes())


@lru_cache(maxsize=256)
def _decoded(capability: bytes) -> Capability:
    """The capability's registers (decoding is slow and the same bytes come back step after step)."""
    return decode_capability(capability)


def _consents(cap: Capability) -> frozenset[str]:
    """Which of :data:`CONSENTS` the guest has set."""
    switches = {
        "control.enable": cap.control.enable,
        "guest_features.dma_dirty": cap.guest_features.dma_dirty,
        "guest_features.pause_resume": cap.guest_features.pause_resume,
    }
    return frozenset(name for name, on in switches.items() if on)


def _params_of(cap: Capability) -> CapabilityParams:
    return CapabilityParams(
        num_slots=cap.num_slots,
        page_shift=cap.page_shift,
        ack_timeout_ms=cap.ack_timeout_ms,
        first_device=cap.devices[0].dev_devfn >> 3,
    )


def _unplug(function: HostFunction) -> None:
    """Take the guest's memory and interrupts away from ``function`` (VFM-SEC-007)."""
    function.memory = None
    function.interrupt_sink = None


@dataclass
class ScratchRecord:
    """How one migration went, on the host's clock: its outcome and the moments that measure it."""

    start_ns: int
    outcome: MigrationOutcome | None = None
    reason: MigReason = MigReason.NONE
    moments: dict[str, int] = field(default_factory=dict)
    """When the vCPUs ``"stopped"`` and were ``"resumed"``, and when the migration ``"ended"``."""

    def mark(self, moment: str, now: int) -> None:
        self.moments[moment] = now

    @property
    def downtime_ns(self) -> int:
        """From the vCPUs' stop to their running again (0 if they never stopped)."""
        stopped, resumed = self.moments.get("stopped"), self.moments.get("resumed")
        return 0 if stopped is None or resumed is None else resumed - stopped

    @property
    def total_ns(self) -> int:
        """From START to the end."""
        return self.moments.get("ended", self.start_ns) - self.start_ns


class _Stream:
    """The migration stream: runs of pages waiting to be sent, sent at the link's rate."""

    def __init__(self, source: HostMemory, target: HostMemory, bandwidth: float) -> None:
        self.source = source
        self.target = target
        self._pages_per_ns = bandwidth / NS_PER_S / source.page_size
        self._waiting: deque[range] = deque()
        self._budget = 0.0
        self.queued = 0
        """Pages waiting to be sent."""

    def enqueue(self, pages: range) -> None:
        if pages:
            self._waiting.append(pages)
            self.queued += len(pages)

    def enqueue_pages(self, pages: Iterable[int]) -> None:
        """Queue ``pages`` as runs of consecutive page numbers."""
        numbered = enumerate(sorted({int(page) for page in pages}))
        for _, run in groupby(numbered, key=lambda pair: pair[1] - pair[0]):
            numbers = [page for _, page in run]
            self.enqueue(range(numbers[0], numbers[-1] + 1))

    def send_for(self, duration_ns: int) -> None:
        """Send what the link carries in ``duration_ns`` (a fraction of a page waits for the next call)."""
        self._budget += self._pages_per_ns * duration_ns
        whole = int(self._budget)
        self._budget -= whole
        self.send(whole)

    def send(self, pages: int) -> None:
        """Send up to ``pages`` pages, oldest first."""
        while pages > 0 and self._waiting:
            run = self._waiting.popleft()
            now, later = run[:pages], run[pages:]
            self.target.receive_range_from(self.source, now.start, now.stop)
            if later:
                self._waiting.appendleft(later)
            pages -= len(now)
            self.queued -= len(now)

    def transfer_ns(self) -> int:
        """How long what waits takes to send."""
        return int(-(-self.queued // self._pages_per_ns)) if self.queued else 0


class ScratchHost:
    """One host: the guest's platform, its bridge's observer, either end of a migration."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        bus: EventSink,
        config: MigrationSettings,
        *,
        functions: FunctionFactory,
        bridges: BridgeFactory | None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.config = config
        self.guest: HostedGuest | None = None
        self.make_memory: MemoryFactory = _no_memory
        self.slot_functions: dict[int, HostFunction] = {}
        self.outgoing: Outgoing | None = None
        self._bus = bus
        self._function_factory = functions
        self._bridge_factory: BridgeFactory = bridges or _own_bridge
        self._serial_numbers = count()
        self._memory: HostMemory | None = None
        self._bridge: BridgeUnderTest | None = None
        self._incoming: Incoming | None = None
        self._last_states: tuple[DevState, ...] = ()

    # ------------------------------------------------------------------ the platform

    @property
    def incoming(self) -> Incoming | None:
        """The migration this host receives."""
        return self._incoming

    @property
    def memory(self) -> HostMemory:
        """This host's copy of the guest's RAM."""
        return _held(self._memory, f"{self.name} holds no guest memory")

    @property
    def bridge(self) -> BridgeUnderTest:
        """The guest's bridge on this host."""
        return _held(self._bridge, f"{self.name} has no migration bridge")

    @property
    def bridge_or_none(self) -> BridgeUnderTest | None:
        """The bridge, or None."""
        return self._bridge

    def tracking_shift(self, page_shift: int) -> int:
        """log2 of this host's dirty-tracking granularity for a guest of ``page_shift``."""
        configured = self.config.dirty_tracking_shift
        return page_shift if configured is None else configured

    # ------------------------------------------------------------------ what the bridge's registers say

    def function_at(self, devfn: int) -> object | None:
        """The function in the slot whose ``DEV_DEVFN`` is ``devfn`` (None without a bridge or a function)."""
        devices = () if self._bridge is None else _registers(self._bridge).devices
        slot = next((slot for slot, entry in enumerate(devices) if entry.dev_devfn == devfn), None)
        return None if slot is None else self.slot_functions.get(slot)

    def _slot_state(self, slot: int) -> DevState:
        return _registers(self.bridge).devices[slot].dev_state

    def identity_in(self, slot: int) -> FunctionIds | None:
        """The identity of the function in ``slot``, which the destination's must match (VFM-MIG-004)."""
        function = self.slot_functions.get(slot)
        return None if function is None else function.identity

    # ------------------------------------------------------------------ building the guest

    def new_function(self, identity: FunctionIds | None) -> HostFunction:
        """A function from this host's pool; the host hears of each change of its Bus Master Enable."""
        name = f"{self.name}.vf{next(self._serial_numbers)}"
        function = self._function_factory(name, self.clock, self._bus, identity)
        function.bme_listener = self._bus_master_changed
        return function

    def create_bridge(self, params: CapabilityParams) -> BridgeUnderTest:
        """The guest's bridge on this host; the host observes it."""
        self._bridge = self._bridge_factory(self._bus, params, f"{self.name}.bridge")
        self._bridge.observers.append(self)
        self._last_states = ()
        return self._bridge

    def host_guest(self, guest: HostedGuest, memory: HostMemory) -> None:
        """Run ``guest`` here with ``memory``: the bridge and every function interrupt it, and DMA into it."""
        self.guest = guest
        self._memory = memory
        self.bridge.interrupt_sink = guest.inject_bridge_interrupt
        self._wire(*self.slot_functions.values())

    def _wire(self, *functions: HostFunction) -> None:
        """Give ``functions`` the guest's memory for their DMA and, once a guest runs here, its interrupts (what
        VFIO maps and routes)."""
        guest = self.guest
        for function in functions:
            function.memory = self._memory
            if guest is not None:
                function.interrupt_sink = guest.inject_device_interrupt

    def assign_function(self, slot: int, identity: FunctionIds | None = None) -> HostFunction:
        """HOT_ADD of a fresh function (never during a migration, VFM-CANCEL-002)."""
        self._refuse_while_migrating(f"no hot-plug during a migration (slot {slot})")
        function = self.new_function(identity)
        self.slot_functions[slot] = function
        self._wire(function)
        self.bridge.hot_add(slot, function)
        return function

    def _refuse_while_migrating(self, why: str) -> None:
        if self.outgoing is not None:
            raise MigrationRefusedError(why)

    def release_guest(self) -> None:
        """After the handover: reset every function (VFM-SEC-006) and let the guest's memory go."""
        for function in self.slot_functions.values():
            function.function_level_reset("flr")
            _unplug(function)
        self.slot_functions = {}
        self.guest = None
        self._memory = None
        self._bridge = None

    # ------------------------------------------------------------------ faults

    def surprise_remove(self, slot: int) -> None:
        """The function in ``slot`` is gone; one a driver held cancels a migration (VFM-ERR-003)."""
        had_driver = self._slot_state(slot) not in WITHOUT_DRIVER
        function = self.slot_functions.pop(slot, None)
        if function is not None:
            _unplug(function)
        self.bridge.surprise_removal(slot)
        if had_driver and self.outgoing is not None:
            self.outgoing.cancel(MigReason.SURPRISE_REMOVAL)

    def function_failed(self, slot: int) -> None:
        """An uncorrectable error (AER) in the function in ``slot``: DEVICE_ERROR, unless the slot is empty."""
        function = self.slot_functions.get(slot)
        if function is not None:
            function.fail()
        before = self._slot_state(slot)
        if before is not DevState.EMPTY:
            self.bridge.device_error(slot)
            self._after_device_error(slot, function, driverless=before is DevState.UNBOUND)

    def _after_device_error(self, slot: int, function: HostFunction | None, *, driverless: bool) -> None:
        """A function no driver holds is reset here and now (VFM-ABS-004); a bound one's ERROR cancels a
        migration, which a group reset follows (VFM-ERR-001/002)."""
        if driverless:
            if function is not None:
                function.function_level_reset("flr")
        elif self.outgoing is not None and self._slot_state(slot) is DevState.ERROR:
            self.outgoing.device_error()

    def reset_bridge(self) -> None:
        """A conventional reset: a migration is cancelled first (VFM-CAP-008)."""
        if self.outgoing is not None:
            self.outgoing.cancel(MigReason.CANCELLED)
        for function in self.slot_functions.values():
            function.function_level_reset("flr")
        self.bridge.conventional_reset()

    def group_reset(self) -> None:
        """Reset every function behind the bridge (spec §7.9)."""
        self.bridge.group_reset()

    # ------------------------------------------------------------------ observing the bridge

    def bridge_stepped(self, bridge: BridgeUnderTest, cause: str) -> None:
        """A step of the bridge, before the access that caused it completes."""
        states = tuple(entry.dev_state for entry in _registers(bridge).devices)
        changes = enumerate(zip(self._last_states, states, strict=False))
        for slot in (slot for slot, change in changes if change == DRIVER_GAVE_UP):
            function = self.slot_functions.get(slot)
            if function is not None:
                function.function_level_reset("flr")  # the host resets what no driver will (VFM-ABS-004)
        self._last_states = states
        if self.outgoing is not None and bridge is self._bridge:
            self.outgoing.stepped()

    def report_rejected(self, bridge: BridgeUnderTest, slot: int, report: int, why: str) -> None:
        """A rejected report during a migration cancels it (VFM-MIG-011)."""
        self._guest_broke_protocol()

    def secondary_bus_reset_requested(self, bridge: BridgeUnderTest) -> None:
        """The guest resets the group itself: a migration that needs the guest is cancelled first."""
        self._guest_broke_protocol()

    def _guest_broke_protocol(self) -> None:
        if self.outgoing is not None:
            self.outgoing.protocol_error()

    def _bus_master_changed(self, function: object) -> None:
        """BME set on an UNBOUND or PAUSED slot during a migration (VFM-MIG-011)."""
        if self.outgoing is None or self._bridge is None:
            return
        slot = next((slot for slot, mine in self.slot_functions.items() if mine is function), None)
        if slot is None or not self.slot_functions[slot].bus_master:
            return
        if self._slot_state(slot) in (DevState.UNBOUND, DevState.PAUSED):
            self.outgoing.protocol_error()

    # ------------------------------------------------------------------ migrating

    def migrate_to(self, destination: ScratchHost, number: int = 1) -> Outgoing:
        """START a migration of this host's guest to ``destination``."""
        self._refuse_while_migrating(f"{self.name} is already migrating its guest")
        migration = Outgoing(self, destination)
        migration.prepare()  # refuses before anything changes
        self.outgoing = migration  # the host follows the bridge's steps from START on
        migration.start()
        return migration

    def prepare_incoming(self, source: Outgoing, params: CapabilityParams) -> Incoming:
        if self.guest is not None or self._incoming is not None:
            raise MigrationRefusedError(f"destination {self.name} is busy")
        if params.page_shift > self.tracking_shift(params.page_shift):  # VFM-DIRTY-007
            raise MigrationRefusedError(f"{self.name} tracks dirty memory finer than 2^{params.page_shift} bytes")
        self._incoming = Incoming(self, source, params)
        return self._incoming

    def adopt_incoming(self, bridge: BridgeUnderTest) -> None:
        """The handover: the restored bridge (and the functions placed behind it) are the guest's here now."""
        self._bridge = bridge
        self._incoming = None

    def forget_incoming(self, incoming: Incoming) -> None:
        if self._incoming is incoming:
            self._incoming = None
        if incoming.bridge is not None and self.guest is None and self._bridge is incoming.bridge:
            self._bridge = None
            self.slot_functions = {}


def _held(value: _T | None, missing: str) -> _T:
    if value is None:
        raise HostEmptyError(missing)
    return value


def _no_memory(size_bytes: int, page_shift: int, boot: bool) -> HostMemory:
    raise HostEmptyError("this host was given no way to make guest memory")


def _own_bridge(bus: EventSink, params: CapabilityParams, name: str) -> BridgeUnderTest:
    return ScratchBridge(bus, params, name)


class Outgoing:
    """The source's side of one migration."""

    def __init__(self, host: ScratchHost, destination: ScratchHost) -> None:
        self.host = host
        self.destination = destination
        self.clock = host.clock
        self.config = host.config
        self.bridge = host.bridge
        self.record = ScratchRecord(start_ns=self.clock.now)
        cap = _registers(self.bridge)
        self.params = _params_of(cap)
        self.ack_ns = cap.ack_timeout_ms * NS_PER_MS
        self.state = MigState.IDLE
        self.previous_state = MigState.IDLE
        self.epoch = 0
        """Advances with each change of MIG_STATE: a timer armed in an older epoch does nothing."""
        self.consent: frozenset[str] = frozenset()
        self.incoming: Incoming | None = None
        self.stream: _Stream | None = None
        self.pending_reason: MigReason | None = None
        self.group_reset_due = False
        self.dirty_req_since: dict[int, int] = {}
        self.rounds = 0

    def has_ended(self) -> bool:
        """A call, not a property: a step taken since the last look may have ended the migration."""
        return self.record.outcome is not None

    def phase(self) -> MigState:
        """The MIG_STATE this migration last saw (a call, for the same reason)."""
        return self.state

    def _later(self, delay: int, action: Callable[[], None], label: str) -> None:
        epoch = self.epoch

        def if_still_current() -> None:
            if self.epoch == epoch and not self.has_ended():
                action()

        self.clock.schedule(delay, if_still_current, label)

    # ------------------------------------------------------------------ start (§4.3.1)

    def _start_refusals(self, cap: Capability) -> Iterator[str]:
        """Every start condition that fails, first found first."""
        if cap.mig_state is not MigState.IDLE:
            yield f"MIG_STATE is {cap.mig_state.name}, not IDLE"
        if self.bridge.config_space()[pci.PCI_BRIDGE_CONTROL] & pci.PCI_BRIDGE_CTL_BUS_RESET:
            yield "Secondary Bus Reset is set"
        guest_takes_part = _consents(cap) == CONSENTS
        for slot, entry in enumerate(cap.devices):
            function = self.host.slot_functions.get(slot)
            if entry.dev_state not in STARTABLE_SLOTS:
                yield f"slot {slot} is {entry.dev_state.name}"
            elif entry.dev_state is DevState.UNBOUND and function is not None and function.bus_master:
                yield f"slot {slot} is UNBOUND with Bus Master Enable set"
            elif entry.dev_state is DevState.READY and not guest_takes_part:
                yield f"slot {slot} is READY but the guest has not enabled the protocol"

    def prepare(self) -> None:
        """Check the start conditions and have the destination get ready; refuse if either fails."""
        refusal = next(self._start_refusals(_registers(self.bridge)), None)
        if refusal is not None:
            raise MigrationRefusedError(refusal)
        self.incoming = self.destination.prepare_incoming(self, self.params)

    def start(self) -> None:
        """Log dirty pages from now on (VFM-DIRTY-005: before START), then START."""
        if self.incoming is None:
            raise MigrationRefusedError("the destination was not prepared")
        memory = self.host.memory
        memory.log.enable()
        self.stream = _Stream(memory, self.incoming.memory, self.config.bandwidth)
        self.consent = _consents(_registers(self.bridge))
        self.bridge.start()

    # ------------------------------------------------------------------ the bridge's steps

    def stepped(self) -> None:
        if self.has_ended():
            return
        cap = _registers(self.bridge)
        if cap.mig_state is not self.state:
            self.previous_state, self.state = self.state, cap.mig_state
            self.epoch += 1
            self._enter()
        if self.has_ended():
            return
        if self.state in NEEDS_THE_GUEST and self.consent - _consents(cap):
            self.protocol_error()  # the guest withdrew its consent (VFM-MIG-011)
            return
        self._watch_dirty_requests(cap)

    def _enter(self) -> None:
        """The entry action of the state just entered; leaving STOPPED other than by ARRIVE restarts the vCPUs."""
        if self.previous_state is MigState.STOPPED and self.state is not MigState.ARRIVED:
            self._run_vcpus_again()
        entry = _ON_ENTRY.get(self.state)
        if entry is not None:
            entry(self)

    def _await_acknowledgements(self) -> None:
        """PREPARE and PAUSING: every driver answers within ACK_TIMEOUT_MS (VFM-TMO-001, VFM-TMO-003)."""
        self._later(self.ack_ns, partial(self.cancel, MigReason.ACK_TIMEOUT), f"{self.state.name} deadline")

    def _resuming(self) -> None:
        """RESUMING: the drivers have ACK_TIMEOUT_MS before a group reset (VFM-TMO-005)."""
        self._later(self.ack_ns, self.host.group_reset, "RESUMING deadline")
        if self.previous_state is not MigState.STOPPED:
            self.clock.schedule(0, self._group_reset_if_due, "group reset after cancel")

    def _watch_dirty_requests(self, cap: Capability) -> None:
        """VFM-TMO-002: a DIRTY_REQ in PRECOPY must be answered within ACK_TIMEOUT_MS."""
        if self.state is not MigState.PRECOPY:
            self.dirty_req_since.clear()
            return
        for slot, entry in enumerate(cap.devices):
            if entry.dev_state is not DevState.DIRTY_REQ:
                self.dirty_req_since.pop(slot, None)
            elif slot not in self.dirty_req_since:
                since = self.dirty_req_since[slot] = self.clock.now
                self._later(self.ack_ns, partial(self._dirty_request_deadline, slot, since), f"slot {slot} DIRTY_REQ")

    def _dirty_request_deadline(self, slot: int, since: int) -> None:
        if self.dirty_req_since.get(slot) == since:
            self.cancel(MigReason.ACK_TIMEOUT)

    # ------------------------------------------------------------------ pre-copy

    def _begin_precopy(self) -> None:
        """Round 1 sends every page; the log starts afresh.  P bounds the time in PRECOPY (VFM-TIME-001)."""
        self._dirty_pages()
        self._stream().enqueue(range(self.host.memory.num_pages))
        self.rounds = 1
        self._later(self.config.precopy_limit_ns, self._precopy_limit, "pre-copy limit")
        self._tick()

    def _stream(self) -> _Stream:
        if self.stream is None:
            raise MigrationRefusedError("the migration has no stream")
        return self.stream

    def _tick(self) -> None:
        """One quantum of sending, then the next, while the vCPUs run."""
        if self.has_ended() or self.state not in SENDING:
            return
        stream = self._stream()
        stream.send_for(self.config.quantum_ns)
        if stream.queued == 0:
            self._round_done()
        if not self.has_ended() and self.state in SENDING:
            self._later(self.config.quantum_ns, self._tick, "send")

    def _round_done(self) -> None:
        if self.state is MigState.PRECOPY:
            if self._fits_downtime():
                self.bridge.request_pause()
                return
            if self._out_of_rounds():
                self._precopy_limit()
                if self.phase() is not MigState.PRECOPY:
                    return
        self._stream().enqueue_pages(self._dirty_pages())
        self.rounds += 1

    def _fits_downtime(self) -> bool:
        """VFM-TIME-002: what the dirty log holds goes out within the downtime limit."""
        memory = self.host.memory
        return memory.log.count * memory.page_size <= self.config.bandwidth * self.config.downtime_limit_ns / NS_PER_S

    def _out_of_rounds(self) -> bool:
        limit = self.config.max_precopy_rounds
        return bool(limit) and self.rounds >= limit

    def _dirty_pages(self) -> Iterable[int]:
        """Read and clear the dirty log; if the read fails, every page counts as dirty (VFM-DIRTY-008)."""
        memory = self.host.memory
        try:
            return memory.log.harvest()
        except RuntimeError:
            return range(memory.num_pages)

    def _precopy_limit(self) -> None:
        """VFM-TIME-001: switch over when pre-copy takes too long."""
        if self.state is MigState.PRECOPY:
            self.bridge.request_pause()

    # ------------------------------------------------------------------ stop-and-copy, handover

    def _stopped(self) -> None:
        guest = self.host.guest
        if guest is not None:
            guest.stop(self.host.name)  # VFM-MIG-003: in the step that entered STOPPED
        self.record.mark("stopped", self.clock.now)
        self._later(0, self._stop_and_copy, "stop-and-copy")

    def _stop_and_copy(self) -> None:
        if any(function.bus_master for function in self.host.slot_functions.values()):
            self.cancel(MigReason.PROTOCOL_ERROR)  # VFM-MIG-012
            return
        stream = self._stream()
        stream.enqueue_pages(self._dirty_pages())  # VFM-FLOW-001
        transfer = stream.transfer_ns()
        stream.send(stream.queued)
        self._later(self.config.stop_copy_limit_ns, partial(self.cancel, MigReason.DESTINATION_FAILURE), "S")
        if self.incoming is not None:
            self._send_device_state(self.incoming, transfer + self.config.link_latency_ns)

    def _send_device_state(self, incoming: Incoming, after_ns: int) -> None:
        """The bridge's saved configuration space and every function's BARs, behind the last pages."""
        config = self.bridge.config_space()
        bars = {
            slot: tuple(function.config_read(offset, 4) for offset in BARS)
            for slot, function in self.host.slot_functions.items()
        }
        # Looked up on arrival, not now: the suite may replace ``receive_state`` on the incoming migration.
        self.clock.schedule(after_ns, lambda: incoming.receive_state(config, bars), "state arrives")

    def destination_confirmed(self) -> None:
        """The handover point (spec §7.8)."""
        incoming = self.incoming
        if self.has_ended() or self.state is not MigState.STOPPED or incoming is None:
            return
        self._end(MigrationOutcome.COMPLETED, MigReason.COMPLETED)
        guest, source_memory = self.host.guest, self.host.memory
        self.host.release_guest()
        self.host.outgoing = None
        self.clock.schedule(
            self.config.link_latency_ns, lambda: incoming.take_over(guest, source_memory), "handover message"
        )

    def destination_failed(self) -> None:
        """VFM-DEST-001: the destination cannot take the guest over."""
        self.cancel(MigReason.DESTINATION_FAILURE)

    # ------------------------------------------------------------------ the bad path

    def cancel(self, reason: MigReason) -> None:
        """CANCEL with ``reason``, if the migration can still be cancelled."""
        if self.has_ended() or self.state not in CANCELLABLE:
            return
        self.pending_reason = reason
        self.dirty_req_since.clear()
        if self.incoming is not None:
            self.incoming.abandon()
        self.bridge.cancel(reason)

    def protocol_error(self) -> None:
        if self.state in NEEDS_THE_GUEST:
            self.cancel(MigReason.PROTOCOL_ERROR)

    def device_error(self) -> None:
        """VFM-ERR-001/002: cancel, then a group reset once MIG_STATE is IDLE or RESUMING."""
        self.group_reset_due = True
        self.cancel(MigReason.DEVICE_ERROR)
        self._group_reset_if_due()

    def _group_reset_if_due(self) -> None:
        if not self.group_reset_due:
            return
        cap = _registers(self.bridge)
        if cap.mig_state not in (MigState.IDLE, MigState.RESUMING):
            return
        self.group_reset_due = False
        if any(entry.dev_state is DevState.ERROR for entry in cap.devices):
            self.host.group_reset()

    def _run_vcpus_again(self) -> None:
        guest = self.host.guest
        if guest is not None and not guest.running:
            guest.run(self.host.name)
            self.record.mark("resumed", self.clock.now)
            self.clock.schedule(0, self._group_reset_if_due, "group reset after cancel")

    def _idle(self) -> None:
        reason = self.pending_reason or _registers(self.bridge).mig_reason
        self._group_reset_if_due()
        self._end(MigrationOutcome.CANCELLED if reason is MigReason.CANCELLED else MigrationOutcome.FAILED, reason)
        self.host.memory.log.disable()
        self.host.outgoing = None

    def _end(self, outcome: MigrationOutcome, reason: MigReason) -> None:
        self.record.outcome = outcome
        self.record.reason = reason
        self.record.mark("ended", self.clock.now)


_ON_ENTRY: dict[MigState, Callable[[Outgoing], None]] = {
    MigState.PREPARE: Outgoing._await_acknowledgements,
    MigState.PRECOPY: Outgoing._begin_precopy,
    MigState.PAUSING: Outgoing._await_acknowledgements,
    MigState.STOPPED: Outgoing._stopped,
    MigState.RESUMING: Outgoing._resuming,
    MigState.IDLE: Outgoing._idle,
}
"""What the source does on entering each MIG_STATE (ARRIVED is the destination's)."""


class Incoming:
    """The destination's side of one migration."""

    def __init__(self, host: ScratchHost, source: Outgoing, params: CapabilityParams) -> None:
        self.host = host
        self.source = source
        self.params = params
        source_memory = source.host.memory
        self.memory = host.make_memory(source_memory.size_bytes, source_memory.page_shift, False)
        self.fail_on_state: str | None = None
        self.bridge: BridgeUnderTest | None = None
        self.abandoned = False

    def receive_state(self, config: bytes, bars: dict[int, tuple[int, ...]] | None = None) -> None:
        """Restore the bridge on fresh, equal functions and confirm (VFM-REP-001, VFM-SEC-008)."""
        if self.abandoned:
            return
        if self.fail_on_state is None and self._restore(config, bars or {}):
            self.host.clock.schedule(self._latency, self.source.destination_confirmed, "confirmation")
        else:
            self.host.clock.schedule(self._latency, self.source.destination_failed, "failure")
            self.abandon()

    @property
    def _latency(self) -> int:
        return self.host.config.link_latency_ns

    def _restore(self, config: bytes, bars: dict[int, tuple[int, ...]]) -> bool:
        """A bridge that presents ``config``, with equal functions where the source had them; False if the
        bridge refuses the saved state."""
        bridge = self.host.create_bridge(self.params)
        saved = decode_capability(config[bridge.cap : bridge.cap + len(bridge.capability_bytes())])
        placed = [
            None if entry.dev_state is DevState.EMPTY else self._fresh_function(slot, bars.get(slot, ()))
            for slot, entry in enumerate(saved.devices)
        ]
        try:
            bridge.restore(config, placed, dirty_page_shift=self.host.tracking_shift(self.params.page_shift))
        except RestoreRefusedError:
            return False
        self.bridge = bridge
        self.host.slot_functions = {slot: function for slot, function in enumerate(placed) if function is not None}
        return True

    def _fresh_function(self, slot: int, bars: tuple[int, ...]) -> HostFunction:
        """An equal function (VFM-MIG-004), after a reset, at the source's BAR addresses (VFM-FLOW-002)."""
        function = self.host.new_function(self.source.host.identity_in(slot))
        function.function_level_reset("flr")
        for offset, value in zip(BARS, bars, strict=False):
            function.config_write(offset, 4, value)
        return function

    def take_over(self, guest: HostedGuest | None, source_memory: HostMemory) -> None:
        """The handover message: ARRIVE, then run the vCPUs here (VFM-FLOW-003)."""
        host, bridge = self.host, self.bridge
        if guest is None or bridge is None:
            host.forget_incoming(self)
            return
        host.adopt_incoming(bridge)
        self.memory.continue_stamps_from(source_memory)
        guest.move_to(host)
        host.host_guest(guest, self.memory)
        bridge.arrive()
        guest.run(host.name)
        self.source.record.mark("resumed", host.clock.now)

    def abandon(self) -> None:
        """Forget everything received."""
        self.abandoned = True
        self.host.forget_incoming(self)


class ScratchHypervisor:
    """The ``hypervisor`` target's implementation object."""

    create_hypervisor = ScratchHost
    """A host that makes its functions and bridges with the given factories: creating one is constructing it."""


def make() -> ScratchHypervisor:
    """``tests.from_scratch.hypervisor:make``."""
    return ScratchHypervisor()
