"""A hypervisor host written from the specification, :mod:`vfmig_proto` and :mod:`conformance.interfaces` only.

A host runs the guest on its copy of the guest's RAM, with a migration bridge and the functions behind it.
It reads the bridge's registers from :meth:`~conformance.interfaces.bridge.BridgeUnderTest.config_space`
(decoded with :mod:`vfmig_proto`), never through the guest's configuration accesses.

A migration (spec §7) is driven by the bridge's steps, which the host observes: START after the start
conditions (§4.3.1); pre-copy rounds from the dirty log at the link's rate until what is left fits the downtime
limit; REQUEST_PAUSE; in STOPPED the vCPUs stop, the last pages and the saved configuration space go to the
destination, which restores the bridge on equal functions fresh from a reset and confirms; at the
confirmation (the handover point) the source lets the guest go and the destination issues ARRIVE and runs it.
Every deadline of §7.6 cancels; a device error cancels and is followed by a group reset (§7.9).

The simulated clock offers no way to cancel a timer: each timer carries the *epoch* it was armed in, and
does nothing once the migration has moved on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache, partial

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
from vfmig_proto.codec import Capability, decode_capability
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.pci import PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET
from vfmig_proto.states import DevState, MigReason, MigState

from .bridge import ScratchBridge

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
BAR_OFFSETS = tuple(range(0x10, 0x28, 4))
CANCELLABLE = frozenset({MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED})
NEEDS_THE_GUEST = frozenset({MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING})
"""States in which the migration needs the guest's help: a guest's protocol error cancels (VFM-MIG-011)."""
STARTABLE_SLOTS = frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.READY})

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


def _guest_consents(cap: Capability) -> bool:
    return cap.control.enable and cap.guest_features.dma_dirty and cap.guest_features.pause_resume


def _consent_bits(cap: Capability) -> tuple[bool, bool, bool]:
    return (cap.control.enable, cap.guest_features.dma_dirty, cap.guest_features.pause_resume)


def _params_of(cap: Capability) -> CapabilityParams:
    return CapabilityParams(
        num_slots=cap.num_slots,
        page_shift=cap.page_shift,
        ack_timeout_ms=cap.ack_timeout_ms,
        first_device=cap.devices[0].dev_devfn >> 3,
    )


@dataclass
class ScratchRecord:
    """How one migration went, on the host's clock."""

    start_ns: int
    generation: int = 0
    outcome: MigrationOutcome | None = None
    reason: MigReason = MigReason.NONE
    end_ns: int | None = None
    stopped_ns: int | None = None
    resumed_ns: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def downtime_ns(self) -> int:
        """From the vCPUs' stop to their running again (0 if they never stopped)."""
        if self.stopped_ns is None or self.resumed_ns is None:
            return 0
        return self.resumed_ns - self.stopped_ns

    @property
    def total_ns(self) -> int:
        """From START to the end."""
        return (self.end_ns or self.start_ns) - self.start_ns


class _Stream:
    """The migration stream: page ranges queued, sent at the link's rate."""

    def __init__(self, source: HostMemory, target: HostMemory, bandwidth: float) -> None:
        self.source = source
        self.target = target
        self._pages_per_ns = bandwidth / NS_PER_S / source.page_size
        self._queue: deque[tuple[int, int]] = deque()
        self.queued = 0
        self._carry = 0.0

    def enqueue_range(self, start: int, stop: int) -> None:
        if stop > start:
            self._queue.append((start, stop))
            self.queued += stop - start

    def enqueue_pages(self, pages: Iterable[int]) -> None:
        for page in sorted(int(page) for page in pages):
            last = self._queue[-1] if self._queue else None
            if last is not None and last[1] == page:
                self._queue[-1] = (last[0], page + 1)
                self.queued += 1
            else:
                self.enqueue_range(page, page + 1)

    def send_for(self, duration_ns: int) -> None:
        budget = self._pages_per_ns * duration_ns + self._carry
        whole = int(budget)
        self._carry = budget - whole
        self.send(whole)

    def send(self, budget: int) -> None:
        while budget > 0 and self._queue:
            start, stop = self._queue[0]
            take = min(budget, stop - start)
            self.target.receive_range_from(self.source, start, start + take)
            if start + take == stop:
                self._queue.popleft()
            else:
                self._queue[0] = (start + take, stop)
            self.queued -= take
            budget -= take

    def transfer_ns(self) -> int:
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
        self.guest: HostedGuest | None = None
        self.make_memory: MemoryFactory = _no_memory
        self.clock = clock
        self.config = config
        self._bus = bus
        self._make_function = functions
        self._make_bridge: BridgeFactory = bridges or _own_bridge
        self._memory: HostMemory | None = None
        self._bridge: BridgeUnderTest | None = None
        self.slot_functions: dict[int, HostFunction] = {}
        self.identities: dict[int, FunctionIds] = {}
        self.outgoing: Outgoing | None = None
        self._incoming: Incoming | None = None
        self._made = 0
        self._last_states: list[DevState] = []

    # ------------------------------------------------------------------ the platform

    @property
    def incoming(self) -> Incoming | None:
        """The migration this host receives."""
        return self._incoming

    @property
    def memory(self) -> HostMemory:
        """This host's copy of the guest's RAM."""
        if self._memory is None:
            raise HostEmptyError(f"{self.name} holds no guest memory")
        return self._memory

    @property
    def bridge(self) -> BridgeUnderTest:
        """The guest's bridge on this host."""
        if self._bridge is None:
            raise HostEmptyError(f"{self.name} has no migration bridge")
        return self._bridge

    @property
    def bridge_or_none(self) -> BridgeUnderTest | None:
        """The bridge, or None."""
        return self._bridge

    def function_at(self, devfn: int) -> object | None:
        """The function at ``devfn`` behind the bridge."""
        if self._bridge is None:
            return None
        for slot, entry in enumerate(_registers(self._bridge).devices):
            if entry.dev_devfn == devfn:
                return self.slot_functions.get(slot)
        return None

    def tracking_shift(self, page_shift: int) -> int:
        """log2 of this host's dirty-tracking granularity for a guest of ``page_shift``."""
        configured = self.config.dirty_tracking_shift
        return page_shift if configured is None else configured

    # ------------------------------------------------------------------ building the guest

    def new_function(self, identity: FunctionIds | None) -> HostFunction:
        function = self._make_function(f"{self.name}.vf{self._made}", self.clock, self._bus, identity)
        self._made += 1
        function.bme_listener = self._bus_master_changed
        return function

    def create_bridge(self, params: CapabilityParams) -> BridgeUnderTest:
        """The guest's bridge on this host; the host observes it."""
        bridge = self._make_bridge(self._bus, params, f"{self.name}.bridge")
        bridge.observers.append(self)
        self._bridge = bridge
        self._last_states = []
        return bridge

    def host_guest(self, guest: HostedGuest, memory: HostMemory) -> None:
        """Run ``guest`` here with ``memory``."""
        self.guest = guest
        self._memory = memory
        self.bridge.interrupt_sink = guest.inject_bridge_interrupt
        for function in self.slot_functions.values():
            self._connect(function)

    def _connect(self, function: HostFunction) -> None:
        function.memory = self._memory
        if self.guest is not None:
            function.interrupt_sink = self.guest.inject_device_interrupt

    def assign_function(self, slot: int, identity: FunctionIds | None = None) -> HostFunction:
        """HOT_ADD of a fresh function (never during a migration, VFM-CANCEL-002)."""
        if self.outgoing is not None:
            raise MigrationRefusedError(f"no hot-plug during a migration (slot {slot})")
        function = self.new_function(identity)
        self.slot_functions[slot] = function
        self.identities[slot] = function.identity
        self._connect(function)
        self.bridge.hot_add(slot, function)
        return function

    def release_guest(self) -> None:
        """After the handover: reset every function (VFM-SEC-006) and let the guest's memory go."""
        for function in self.slot_functions.values():
            function.function_level_reset("flr")
            function.memory = None
            function.interrupt_sink = None
        self.slot_functions = {}
        self._memory = None
        self._bridge = None
        self.guest = None

    # ------------------------------------------------------------------ faults

    def surprise_remove(self, slot: int) -> None:
        """The function in ``slot`` is gone; a bound one cancels a migration (VFM-ERR-003)."""
        bound = _registers(self.bridge).devices[slot].dev_state not in (DevState.EMPTY, DevState.UNBOUND)
        function = self.slot_functions.pop(slot, None)
        if function is not None:
            function.memory = None
            function.interrupt_sink = None
        self.bridge.surprise_removal(slot)
        if bound and self.outgoing is not None:
            self.outgoing.cancel(MigReason.SURPRISE_REMOVAL)

    def function_failed(self, slot: int) -> None:
        """An uncorrectable error (VFM-ABS-004, VFM-ERR-001/002)."""
        function = self.slot_functions.get(slot)
        state = _registers(self.bridge).devices[slot].dev_state
        if function is not None:
            function.fail()
        if state is DevState.EMPTY:
            return
        self.bridge.device_error(slot)
        if state is DevState.UNBOUND:
            if function is not None:
                function.function_level_reset("flr")
            return
        if self.outgoing is not None and _registers(self.bridge).devices[slot].dev_state is DevState.ERROR:
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
        states = [entry.dev_state for entry in _registers(bridge).devices]
        for slot, (before, now) in enumerate(zip(self._last_states, states, strict=False)):
            if before is DevState.ERROR and now is DevState.UNBOUND and slot in self.slot_functions:
                self.slot_functions[slot].function_level_reset("flr")  # the driver gave it up (VFM-ABS-004)
        self._last_states = states
        if self.outgoing is not None and bridge is self._bridge:
            self.outgoing.stepped()

    def report_rejected(self, bridge: BridgeUnderTest, slot: int, report: int, why: str) -> None:
        """A rejected report during a migration cancels it (VFM-MIG-011)."""
        if self.outgoing is not None:
            self.outgoing.protocol_error()

    def secondary_bus_reset_requested(self, bridge: BridgeUnderTest) -> None:
        """The guest resets the group itself: a migration that needs the guest is cancelled first."""
        if self.outgoing is not None:
            self.outgoing.protocol_error()

    def _bus_master_changed(self, function: object) -> None:
        """BME set on an UNBOUND or PAUSED slot during a migration (VFM-MIG-011)."""
        if self.outgoing is None or self._bridge is None:
            return
        devices = _registers(self._bridge).devices
        for slot, candidate in self.slot_functions.items():
            paused_or_unbound = devices[slot].dev_state in (DevState.UNBOUND, DevState.PAUSED)
            if candidate is function and candidate.bus_master and paused_or_unbound:
                self.outgoing.protocol_error()

    # ------------------------------------------------------------------ migrating

    def migrate_to(self, destination: ScratchHost, number: int = 1) -> Outgoing:
        """START a migration of this host's guest to ``destination``."""
        if self.outgoing is not None:
            raise MigrationRefusedError(f"{self.name} is already migrating its guest")
        migration = Outgoing(self, destination)
        self.outgoing = migration
        try:
            migration.start()
        except MigrationRefusedError:
            self.outgoing = None
            raise
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
        self.epoch = 0
        """Advances with each change of MIG_STATE: a timer armed in an older epoch does nothing."""
        self.consent = (False, False, False)
        self.incoming: Incoming | None = None
        self.stream: _Stream | None = None
        self.pending_reason: MigReason | None = None
        self.group_reset_due = False
        self.dirty_req_since: dict[int, int] = {}
        self.precopy_epoch = -1

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

    def _check_start(self, cap: Capability) -> None:
        if cap.mig_state is not MigState.IDLE:
            raise MigrationRefusedError(f"MIG_STATE is {cap.mig_state.name}, not IDLE")
        if self.bridge.config_space()[PCI_BRIDGE_CONTROL] & PCI_BRIDGE_CTL_BUS_RESET:
            raise MigrationRefusedError("Secondary Bus Reset is set")
        for slot, entry in enumerate(cap.devices):
            if entry.dev_state not in STARTABLE_SLOTS:
                raise MigrationRefusedError(f"slot {slot} is {entry.dev_state.name}")
            function = self.host.slot_functions.get(slot)
            if entry.dev_state is DevState.UNBOUND and function is not None and function.bus_master:
                raise MigrationRefusedError(f"slot {slot} is UNBOUND with Bus Master Enable set")
            if entry.dev_state is DevState.READY and not _guest_consents(cap):
                raise MigrationRefusedError(f"slot {slot} is READY but the guest has not enabled the protocol")

    def start(self) -> None:
        cap = _registers(self.bridge)
        self._check_start(cap)
        self.incoming = self.destination.prepare_incoming(self, self.params)
        memory = self.host.memory
        memory.log.enable()  # VFM-DIRTY-005: before START
        self.stream = _Stream(memory, self.incoming.memory, self.config.bandwidth)
        self.consent = _consent_bits(cap)
        self.bridge.start()
        self.record.generation = self.bridge.generation

    # ------------------------------------------------------------------ the bridge's steps

    def stepped(self) -> None:
        if self.has_ended():
            return
        cap = _registers(self.bridge)
        if cap.mig_state is not self.state:
            old, self.state = self.state, cap.mig_state
            self.epoch += 1
            self._enter(old, cap.mig_state)
        if self.has_ended():
            return
        if self.state in NEEDS_THE_GUEST and any(
            had and not has for had, has in zip(self.consent, _consent_bits(cap), strict=True)
        ):
            self.protocol_error()  # the guest withdrew its consent (VFM-MIG-011)
            return
        self._watch_dirty_requests(cap)

    def _enter(self, old: MigState, new: MigState) -> None:
        if old is MigState.STOPPED and new is not MigState.ARRIVED:
            self._run_vcpus_again()
        if new is MigState.PREPARE:
            self._later(self.ack_ns, partial(self.cancel, MigReason.ACK_TIMEOUT), "PREPARE deadline")
        elif new is MigState.PRECOPY:
            self._begin_precopy()
        elif new is MigState.PAUSING:
            self._later(self.ack_ns, partial(self.cancel, MigReason.ACK_TIMEOUT), "PAUSING deadline")
        elif new is MigState.STOPPED:
            self._stopped()
        elif new is MigState.RESUMING:
            self._later(self.ack_ns, self.host.group_reset, "RESUMING deadline")
            if old is not MigState.STOPPED:
                self.clock.schedule(0, self._group_reset_if_due, "group reset after cancel")
        elif new is MigState.IDLE:
            self._idle()

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
        self.precopy_epoch = self.epoch
        stream = self._stream()
        self._dirty_pages()  # round 1 sends every page; the log starts afresh
        stream.enqueue_range(0, self.host.memory.num_pages)
        self.rounds = 1
        self._later(self.config.precopy_limit_ns, self._precopy_limit, "pre-copy limit")
        self._tick()

    def _stream(self) -> _Stream:
        if self.stream is None:
            raise MigrationRefusedError("the migration has no stream")
        return self.stream

    def _tick(self) -> None:
        if self.has_ended() or self.state not in (MigState.PRECOPY, MigState.PAUSING):
            return
        stream = self._stream()
        stream.send_for(self.config.quantum_ns)
        if stream.queued == 0:
            self._round_done()
        if not self.has_ended() and self.state in (MigState.PRECOPY, MigState.PAUSING):
            epoch = self.epoch
            self.clock.schedule(self.config.quantum_ns, partial(self._tick_in, epoch), "send")

    def _tick_in(self, epoch: int) -> None:
        if epoch == self.epoch:
            self._tick()

    def _round_done(self) -> None:
        memory = self.host.memory
        if self.state is MigState.PRECOPY:
            left = memory.log.count * memory.page_size
            if left <= self.config.bandwidth * self.config.downtime_limit_ns / NS_PER_S:  # VFM-TIME-002
                self.bridge.request_pause()
                return
            limit = self.config.max_precopy_rounds
            if limit and self.rounds >= limit:
                self._precopy_limit()
                if self.phase() is not MigState.PRECOPY:
                    return
        self._stream().enqueue_pages(self._dirty_pages())
        self.rounds += 1

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
        self.record.stopped_ns = self.clock.now
        self._later(0, self._stop_and_copy, "stop-and-copy")

    def _stop_and_copy(self) -> None:
        for function in self.host.slot_functions.values():
            if function.bus_master:  # VFM-MIG-012
                self.cancel(MigReason.PROTOCOL_ERROR)
                return
        stream = self._stream()
        stream.enqueue_pages(self._dirty_pages())  # VFM-FLOW-001
        transfer = stream.transfer_ns()
        stream.send(stream.queued)
        self._later(self.config.stop_copy_limit_ns, partial(self.cancel, MigReason.DESTINATION_FAILURE), "S")
        incoming = self.incoming
        if incoming is None:
            return
        config = self.bridge.config_space()
        bars = {
            slot: tuple(function.config_read(offset, 4) for offset in BAR_OFFSETS)
            for slot, function in self.host.slot_functions.items()
        }
        self.clock.schedule(
            transfer + self.config.link_latency_ns, lambda: incoming.receive_state(config, bars), "state arrives"
        )

    def destination_confirmed(self) -> None:
        """The handover point (spec §7.8)."""
        if self.has_ended() or self.state is not MigState.STOPPED:
            return
        incoming = self.incoming
        if incoming is None:
            return
        self._end(MigrationOutcome.COMPLETED, MigReason.COMPLETED)
        guest = self.host.guest
        source_memory = self.host.memory
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
            self.record.resumed_ns = self.clock.now
            self.clock.schedule(0, self._group_reset_if_due, "group reset after cancel")

    def _idle(self) -> None:
        reason = self.pending_reason or _registers(self.bridge).mig_reason
        self._group_reset_if_due()
        outcome = MigrationOutcome.CANCELLED if reason is MigReason.CANCELLED else MigrationOutcome.FAILED
        self._end(outcome, reason)
        self.host.memory.log.disable()
        self.host.outgoing = None

    def _end(self, outcome: MigrationOutcome, reason: MigReason) -> None:
        self.record.outcome = outcome
        self.record.reason = reason
        self.record.end_ns = self.clock.now


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
        if self.fail_on_state is not None:
            self._fail()
            return
        host = self.host
        bridge = host.create_bridge(self.params)
        sent = decode_capability(config[bridge.cap : bridge.cap + len(bridge.capability_bytes())])
        placed: list[HostFunction | None] = []
        for slot, entry in enumerate(sent.devices):
            placed.append(None if entry.dev_state is DevState.EMPTY else self._fresh_function(slot, bars or {}))
        try:
            bridge.restore(config, placed, dirty_page_shift=host.tracking_shift(self.params.page_shift))
        except RestoreRefusedError:
            self._fail()
            return
        self.bridge = bridge
        host.slot_functions = {slot: function for slot, function in enumerate(placed) if function is not None}
        host.clock.schedule(host.config.link_latency_ns, self.source.destination_confirmed, "confirmation")

    def _fresh_function(self, slot: int, bars: dict[int, tuple[int, ...]]) -> HostFunction:
        """An equal function (VFM-MIG-004), after a reset, with the source's BARs (VFM-FLOW-002)."""
        function = self.host.new_function(self.source.host.identities.get(slot))
        function.function_level_reset("flr")
        for offset, value in zip(BAR_OFFSETS, bars.get(slot, ()), strict=False):
            function.config_write(offset, 4, value)
        self.host.identities[slot] = function.identity
        return function

    def _fail(self) -> None:
        self.host.clock.schedule(self.host.config.link_latency_ns, self.source.destination_failed, "failure")
        self.abandon()

    def take_over(self, guest: HostedGuest | None, source_memory: HostMemory) -> None:
        """The handover message: ARRIVE, then run the vCPUs here (VFM-FLOW-003)."""
        host = self.host
        if guest is None or self.bridge is None:
            host.forget_incoming(self)
            return
        host.adopt_incoming(self.bridge)
        self.memory.continue_stamps_from(source_memory)
        guest.move_to(host)
        host.host_guest(guest, self.memory)
        self.bridge.arrive()
        guest.run(host.name)
        self.source.record.resumed_ns = host.clock.now

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
