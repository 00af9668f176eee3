"""The hypervisor on the source and on the destination: orchestration of one migration.

Theory of operation
-------------------

A :class:`Hypervisor` is one host.  It runs at most one guest, owns that
guest's copy of RAM (with the CPU dirty log), the guest's migration bridge and
the functions assigned to the guest, and it is the bridge's observer: every
step of the bridge reaches :meth:`Hypervisor.bridge_stepped` before the guest
access that caused it completes.

A migration is a :class:`SourceMigration` on the source and a
:class:`DestinationMigration` on the destination.  The source drives the
bridge's migration machine (spec §4.3) through its phases:

``PREPARE``
    START issued; the drivers turn dirtying on.  Deadline ``A`` (VFM-TMO-001).
``PRECOPY``
    Round 1 sends every page (never before PRECOPY, VFM-DIRTY-006); each later
    round reads-and-clears the dirty log and sends what it held.  After each
    round the switch-over rule (VFM-TIME-002) or the pre-copy limit P
    (VFM-TIME-001) decides.  A late binder's ``DIRTY_REQ`` has its own
    deadline (VFM-TMO-002).
``PAUSING``
    REQUEST_PAUSE issued; sending goes on (VFM-TIME-003).  Deadline ``A``.
``STOPPED``
    The vCPUs stop in the same step (VFM-MIG-003).  The source checks every
    function's BME (VFM-MIG-012), reads the dirty log a last time, sends the
    rest and the bridge's config space, and waits for the destination's
    confirmation: that is the handover point.  Limit S (VFM-DEST-005).
``RESUMING``
    After a cancellation from PAUSING or STOPPED: drivers resume their
    functions; deadline ``A`` from the phase start, then a group reset
    (VFM-TMO-005).

Whatever happens, the migration ends: every phase has a timer, and every timer
cancels or resets.  The :class:`MigrationRecord` says how it ended.

Messages between the hosts take the link's latency; page data takes
``bytes / bandwidth`` on top.

Extension points
----------------

Each phase's work is a public method a variant may override alone (the
fault catalogue, ``conformance.catalogue.hypervisor_faults``, changes one
each): on the source :meth:`SourceMigration.check_slot_may_start`,
:meth:`~SourceMigration.enable_dirty_log`, :meth:`~SourceMigration.issue_start`,
:meth:`~SourceMigration.enter_phase`, :meth:`~SourceMigration.begin_precopy`,
:meth:`~SourceMigration.start_precopy_limit`, :meth:`~SourceMigration.send_quantum`,
:meth:`~SourceMigration.converged`, :meth:`~SourceMigration.read_dirty_log`,
:meth:`~SourceMigration.stop_vcpus`, :meth:`~SourceMigration.stop_and_copy` (itself
:meth:`~SourceMigration.bus_masters_clear`, :meth:`~SourceMigration.final_dirty_pages`,
:meth:`~SourceMigration.send_device_state`), the deadlines and
:meth:`~SourceMigration.reset_failed_functions`; on the destination
:meth:`DestinationMigration.arrive_and_run`; on the host
:meth:`Hypervisor.check_tracking`, :meth:`~Hypervisor.reset_before_release` and
:meth:`~Hypervisor.cancel_migration_for_reset`.  :meth:`SourceMigration.phase`
is the MIG_STATE the migration last saw.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import ClassVar

import numpy as np

from reference_impl.bridge import MigrationBridge
from reference_impl.clock import NS_PER_MS, NS_PER_S, SimClock, Timer, ms, seconds
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.events import EventBus, EventKind
from reference_impl.guest import Guest
from reference_impl.memory import DirtyLogReadError, GuestMemory, Pages
from reference_impl.units import format_size
from vfmig_proto import outcomes
from vfmig_proto.codec import decode_capability
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.restore import restore_problem
from vfmig_proto.states import DevState, MigReason, MigState

MiB = 1 << 20
GiB = 1 << 30


class PrecopyLimitAction(Enum):
    """What the hypervisor does when the pre-copy limit P passes before convergence (spec §8.2)."""

    SWITCH_OVER = "switch-over"
    """Request the pause anyway, accepting a downtime above the limit."""
    CANCEL = "cancel"
    """Cancel the migration with MIG_REASON = CANCELLED."""


@dataclass(frozen=True)
class MigrationConfig:
    """The management layer's settings for migrations (spec §8.1 names in brackets)."""

    bandwidth: float = 128 * MiB
    """Bytes per second the migration stream may use [R]; QEMU's default maximum is 128 MiB/s."""
    downtime_limit_ns: int = ms(300)
    """The downtime the switch-over rule aims at [L]; QEMU's default is 300 ms."""
    link_latency_ns: int = ms(0.1)
    """One-way latency of the link between the hosts."""
    precopy_limit_ns: int = seconds(600)
    """The longest time in PRECOPY [P]."""
    max_precopy_rounds: int = 0
    """A limit on pre-copy rounds (0: none); P still bounds the time."""
    on_precopy_limit: PrecopyLimitAction = PrecopyLimitAction.SWITCH_OVER
    stop_copy_limit_ns: int = seconds(120)
    """The longest time from STOPPED to the handover point [S]."""
    reaction_ns: int = ms(10)
    """The hypervisor's reaction time [e]: it acts on deadlines at once, so this only enters the bound."""
    group_reset_ns: int = ms(100)
    """The longest group reset [G]: one function-level reset (VFM-FN-007)."""
    quantum_ns: int = ms(5)
    """How often the sender puts a batch of pages on the wire."""
    dirty_tracking_shift: int | None = None
    """log2 of the granularity in bytes of the host's dirty tracking; None: it tracks at any guest's PAGE_SHIFT.

    A host whose tracking is finer than a guest's 2^PAGE_SHIFT cannot take that guest (VFM-DIRTY-007)."""

    def __post_init__(self) -> None:
        if self.bandwidth <= 0:
            raise ValueError(f"bandwidth must be positive, not {self.bandwidth}")
        for name in ("downtime_limit_ns", "precopy_limit_ns", "stop_copy_limit_ns", "quantum_ns"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")

    def bound_ns(self, ack_timeout_ms: int) -> int:
        """T_max = 3A + P + S + G + 5e (VFM-TIME-004)."""
        return (
            3 * ack_timeout_ms * NS_PER_MS
            + self.precopy_limit_ns
            + self.stop_copy_limit_ns
            + self.group_reset_ns
            + 5 * self.reaction_ns
        )


MigrationOutcome = outcomes.MigrationOutcome
"""How a migration ended: the protocol's :class:`~vfmig_proto.outcomes.MigrationOutcome`, under the reference's
name."""


@dataclass
class RoundRecord:
    """One pre-copy round."""

    number: int
    start_ns: int
    pages: int
    """Pages the round set out to send (every page in round 1, the dirty log's content after)."""
    end_ns: int | None = None
    dirty_at_end: int | None = None
    """Pages in the dirty log when the round ended: the next round's size."""
    sent: int = 0
    """Pages of this round sent so far: ``pages`` once it ended, fewer in a round cut short by a cancel."""


@dataclass
class DeviceRecord:
    """How one slot ended a migration."""

    slot: int
    function: str | None
    state: DevState
    reset_on_destination: bool | None
    """For a completed migration: whether the function was in its reset state when the guest arrived."""
    migrated_flag: bool
    driver: str


@dataclass
class MigrationRecord:
    """Everything a tool author asks of one migration."""

    number: int
    source: str
    destination: str
    generation: int
    start_ns: int
    outcome: MigrationOutcome | None = None
    reason: MigReason = MigReason.NONE
    end_ns: int | None = None
    """The handover point (completed) or the return of MIG_STATE to IDLE (otherwise)."""
    pause_requested_ns: int | None = None
    """When the hypervisor switched over: REQUEST_PAUSE (None if it never did)."""
    stopped_ns: int | None = None
    resumed_ns: int | None = None
    """When the guest's vCPUs ran again (on the destination, or on the source after a cancel from STOPPED)."""
    lost_pages: int = 0
    pages_sent: int = 0
    bytes_sent: int = 0
    rounds: list[RoundRecord] = field(default_factory=list)
    devices: list[DeviceRecord] = field(default_factory=list)
    bound_ns: int = 0
    group_resets: int = 0
    notes: list[str] = field(default_factory=list)
    explanation: str | None = None
    """Why it ended, in words, where MIG_REASON alone misleads: the stop-and-copy limit passing is reported
    as DESTINATION_FAILURE (VFM-DEST-005) although the destination did nothing wrong."""

    @property
    def ended(self) -> bool:
        """Whether the migration has ended."""
        return self.outcome is not None

    @property
    def downtime_ns(self) -> int:
        """From the vCPUs' stop to their next instruction (0 if they never stopped)."""
        if self.stopped_ns is None or self.resumed_ns is None:
            return 0
        return self.resumed_ns - self.stopped_ns

    @property
    def total_ns(self) -> int:
        """From START to the end."""
        return (self.end_ns or self.start_ns) - self.start_ns

    @property
    def precopy_rounds(self) -> int:
        """Pre-copy rounds begun."""
        return len(self.rounds)


MigrationError = outcomes.MigrationRefusedError
"""A migration cannot start, or a hot-plug is refused during one: the message names the condition that fails
(VFM-MIG-001, VFM-CANCEL-002).  The protocol's own :class:`~vfmig_proto.outcomes.MigrationRefusedError`, under
the name the reference has always used."""


# ---------------------------------------------------------------------------------------------------------------


FunctionFactory = Callable[[str, SimClock, EventBus, FunctionIdentity | None], VirtualFunction]
"""Makes a host's functions: ``(name, clock, bus, identity) -> function`` (a device model under test, say)."""
BridgeFactory = Callable[[EventBus, CapabilityParams, str], MigrationBridge]
"""Makes a guest's migration bridge: ``(bus, params, name) -> bridge``."""
MemoryFactory = Callable[[int, int, bool], GuestMemory]
"""Makes a host's copy of a guest's RAM: ``(size_bytes, page_shift, boot) -> memory``."""


def _reference_memory(size_bytes: int, page_shift: int, boot: bool) -> GuestMemory:
    return GuestMemory(size_bytes, page_shift, boot=boot)


def _reference_bridge(bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
    return MigrationBridge(bus, params, name=name)


class Hypervisor:
    """One host: runs a guest, its bridge and its functions, and migrates it.

    ``functions`` and ``bridges`` make the peers the hypervisor drives; they
    default to the reference :class:`VirtualFunction` and
    :class:`MigrationBridge`, and the conformance suite passes the
    implementation under test instead.
    """

    source_class: ClassVar[type[SourceMigration]]
    """The source's side of a migration (set below; a variant host may substitute its own)."""
    destination_class: ClassVar[type[DestinationMigration]]
    """The destination's side of a migration."""

    def __init__(
        self,
        name: str,
        clock: SimClock,
        bus: EventBus,
        config: MigrationConfig | None = None,
        *,
        functions: FunctionFactory | None = None,
        bridges: BridgeFactory | None = None,
        memories: MemoryFactory | None = None,
    ) -> None:
        self.name = name
        self.make_memory: MemoryFactory = memories or _reference_memory
        self._make_function: FunctionFactory = functions or VirtualFunction
        self._make_bridge: BridgeFactory = bridges or _reference_bridge
        self.clock = clock
        self.bus = bus
        self.config = config or MigrationConfig()
        self._memory: GuestMemory | None = None
        self._bridge: MigrationBridge | None = None
        self.guest: Guest | None = None
        self.slot_functions: dict[int, VirtualFunction] = {}
        self._pool_count = 0
        self.identities: dict[int, FunctionIdentity] = {}
        self.outgoing: SourceMigration | None = None
        self.incoming: DestinationMigration | None = None
        self.group_resets = 0
        self.freed_functions: list[VirtualFunction] = []
        self._last_states: list[DevState] = []
        self.last_placed: dict[int, bool] | None = None
        """Per slot of the last guest received: whether its fresh function was in its reset state."""

    # ------------------------------------------------------------------ the platform the guest sees here

    @property
    def memory(self) -> GuestMemory:
        """This host's copy of the guest's RAM."""
        if self._memory is None:
            raise RuntimeError(f"{self.name} holds no guest memory")
        return self._memory

    @property
    def bridge(self) -> MigrationBridge:
        """The guest's migration bridge on this host."""
        if self._bridge is None:
            raise RuntimeError(f"{self.name} has no migration bridge")
        return self._bridge

    @property
    def bridge_or_none(self) -> MigrationBridge | None:
        """The bridge, or None while this host holds no guest (and receives none)."""
        return self._bridge

    def function_at(self, devfn: int) -> VirtualFunction | None:
        """The function at ``devfn`` behind this host's bridge."""
        if self._bridge is None:
            return None
        slot = self._bridge.slot_of_devfn(devfn)
        return None if slot is None else self.slot_functions.get(slot)

    def tracking_shift(self, page_shift: int) -> int:
        """log2 of the granularity at which this host tracks the dirty memory of a guest with ``page_shift``."""
        configured = self.config.dirty_tracking_shift
        return page_shift if configured is None else configured

    # ------------------------------------------------------------------ creating a guest

    def new_function(self, identity: FunctionIdentity | None = None) -> VirtualFunction:
        """A function from this host's pool, fresh from a function-level reset."""
        function = self._make_function(f"{self.name}.vf{self._pool_count}", self.clock, self.bus, identity)
        self._pool_count += 1
        function.bme_listener = self._function_bme_changed
        return function

    def create_bridge(self, params: CapabilityParams) -> MigrationBridge:
        """The emulated migration bridge for a guest on this host."""
        bridge = self._make_bridge(self.bus, params, f"{self.name}.bridge")
        bridge.observers.append(self)
        self._bridge = bridge
        return bridge

    def host_guest(self, guest: Guest, memory: GuestMemory) -> None:
        """This host now runs ``guest`` with ``memory``."""
        self.guest = guest
        self._memory = memory
        self.bridge.interrupt_sink = guest.inject_bridge_interrupt
        for function in self.slot_functions.values():
            self._connect(function)

    def _connect(self, function: VirtualFunction) -> None:
        function.memory = self._memory
        if self.guest is not None:
            function.interrupt_sink = self.guest.inject_device_interrupt

    def assign_function(self, slot: int, identity: FunctionIdentity | None = None) -> VirtualFunction:
        """Assign a fresh function to ``slot`` of the bridge (HOT_ADD; at start-up or by hot-plug)."""
        if self.outgoing is not None:
            raise MigrationError(f"no hot-plug behind the bridge during a migration (VFM-CANCEL-002), slot {slot}")
        function = self.new_function(identity)
        self.slot_functions[slot] = function
        self.identities[slot] = function.identity
        self._connect(function)
        self.bridge.hot_add(slot, function)
        return function

    # ------------------------------------------------------------------ faults the host sees

    def surprise_remove(self, slot: int) -> None:
        """The function in ``slot`` disappears (spec §7.9)."""
        bound = self.bridge.dev_state(slot) not in (DevState.EMPTY, DevState.UNBOUND)
        function = self.slot_functions.pop(slot, None)
        if function is not None:
            function.memory = None
            function.interrupt_sink = None
        self.bridge.surprise_removal(slot)
        if bound and self.outgoing is not None:
            self.outgoing.cancel(MigReason.SURPRISE_REMOVAL)  # VFM-ERR-003

    def function_failed(self, slot: int) -> None:
        """The function in ``slot`` reported an uncorrectable error (AER).

        A function without a driver is reset here and now, and is no reason to
        cancel (spec §4.2.2, VFM-ABS-004).  A bound one enters ERROR: during a
        migration that cancels it and a group reset follows (VFM-ERR-001/002);
        outside one, recovery is the guest's (spec §7.9).
        """
        function = self.slot_functions.get(slot)
        state = self.bridge.dev_state(slot)
        if function is not None:
            function.fail()
        if state is DevState.EMPTY:
            return
        self.bridge.device_error(slot)
        if state is DevState.UNBOUND:
            if function is not None:
                function.function_level_reset("flr")
            return
        if self.outgoing is not None and self.bridge.dev_state(slot) is DevState.ERROR:
            self.outgoing.device_error()

    def reset_bridge(self) -> None:
        """A conventional reset of the bridge (a platform reset): a migration is cancelled first (VFM-CAP-008)."""
        self.cancel_migration_for_reset()
        for function in self.slot_functions.values():
            function.function_level_reset("flr")
        self.bridge.conventional_reset()

    def cancel_migration_for_reset(self) -> None:
        """Cancel a migration in progress before a conventional reset of the bridge (VFM-CAP-008)."""
        if self.outgoing is not None:
            self.outgoing.cancel(MigReason.CANCELLED, note="conventional reset of the bridge")

    def group_reset(self) -> None:
        """Reset every function behind the bridge as one group (spec §7.9)."""
        self.group_resets += 1
        if self.outgoing is not None:
            self.outgoing.record.group_resets += 1
        self.bridge.group_reset()

    # ------------------------------------------------------------------ BridgeObserver

    def bridge_stepped(self, bridge: MigrationBridge, cause: str) -> None:
        """React to a step of the bridge (before the access that caused it completes)."""
        states = bridge.dev_states()
        for slot, (before, now) in enumerate(zip(self._last_states, states, strict=False)):
            if before is DevState.ERROR and now is DevState.UNBOUND and slot in self.slot_functions:
                self.slot_functions[slot].function_level_reset("flr")  # VFM-ABS-004: the driver gave it up
        self._last_states = states
        if self.outgoing is not None:
            self.outgoing.bridge_stepped(cause)

    def report_rejected(self, bridge: MigrationBridge, slot: int, report: int, why: str) -> None:
        """A rejected report during a migration cancels it (VFM-MIG-011)."""
        if self.outgoing is not None:
            self.outgoing.protocol_error(f"slot {slot}: report {report} rejected: {why}")

    def secondary_bus_reset_requested(self, bridge: MigrationBridge) -> None:
        """The guest requests a group reset: cancel first, if a migration needs the guest (VFM-MIG-011)."""
        if self.outgoing is not None:
            self.outgoing.protocol_error("the guest set Secondary Bus Reset")
        self.group_resets += 1

    def _function_bme_changed(self, changed: object) -> None:
        """VFIO traps the guest's Command writes: BME set on an UNBOUND or PAUSED slot (VFM-MIG-011).

        (``changed`` is whatever function called; the host looks it up among its own.)"""
        if self.outgoing is None or self._bridge is None:
            return
        for slot, function in self.slot_functions.items():
            if function is not changed or not function.bus_master:
                continue
            if self._bridge.dev_state(slot) in (DevState.UNBOUND, DevState.PAUSED):
                self.outgoing.protocol_error(f"slot {slot}: BME set while {self._bridge.dev_state(slot).name}")

    # ------------------------------------------------------------------ migrating

    def migrate_to(self, destination: Hypervisor, number: int = 1) -> SourceMigration:
        """Start migrating this host's guest to ``destination`` (START)."""
        if self.outgoing is not None:
            raise MigrationError(f"{self.name} is already migrating its guest")
        migration = self.source_class(self, destination, number)
        self.outgoing = migration
        try:
            migration.start()
        except MigrationError:
            self.outgoing = None
            raise
        return migration

    def prepare_incoming(self, source: SourceMigration) -> DestinationMigration:
        """Get ready to receive a guest (VFM-VER-007: this host can present an equal bridge)."""
        if self.guest is not None or self.incoming is not None:
            raise MigrationError(f"destination {self.name} is busy")
        self.check_tracking(source.bridge.params.page_shift)
        incoming = self.destination_class(self, source)
        self.incoming = incoming
        return incoming

    def check_tracking(self, page_shift: int) -> None:
        """VFM-DIRTY-007, VFM-VER-007: this host must track dirty memory no finer than the guest's pages."""
        if page_shift > self.tracking_shift(page_shift):
            raise MigrationError(f"destination {self.name} tracks dirty memory finer than 2^{page_shift} bytes")

    def release_guest(self) -> None:
        """After the handover point: reset every function (VFM-SEC-006), then free the guest's memory."""
        for function in self.slot_functions.values():
            self.reset_before_release(function)
            function.memory = None
            function.interrupt_sink = None
            self.freed_functions.append(function)
        self.slot_functions = {}
        self._memory = None
        self._bridge = None
        self.guest = None

    def reset_before_release(self, function: VirtualFunction) -> None:
        """A function-level reset, so that nothing of the guest's survives in a function it no longer has."""
        function.function_level_reset("flr")


# ---------------------------------------------------------------------------------------------------------------


class MigrationStream:
    """The migration stream: pages queued for sending, sent at the link's rate, one quantum at a time.

    ``enqueue_all`` and ``enqueue`` queue pages; ``send_for`` and ``send_pages`` copy them into the
    destination's memory; ``queued`` and ``sent`` count them.
    """

    def __init__(self, source: GuestMemory, target: GuestMemory, bandwidth: float) -> None:
        self.source = source
        self.target = target
        self.bandwidth = bandwidth
        self.queue: deque[Pages | tuple[int, int]] = deque()
        self.queued = 0
        self.sent = 0
        self._carry = 0.0

    def enqueue_all(self) -> None:
        """Queue every page of the guest (round 1)."""
        self.queue.append((0, self.source.num_pages))
        self.queued += self.source.num_pages

    def enqueue(self, pages: Pages) -> None:
        """Queue ``pages`` (what a read of the dirty log held)."""
        if pages.size:
            self.queue.append(pages)
            self.queued += int(pages.size)

    def send_for(self, duration_ns: int) -> int:
        """Send what ``duration_ns`` of bandwidth carries; returns the pages sent."""
        budget_f = self.bandwidth * duration_ns / NS_PER_S / self.source.page_size + self._carry
        budget = int(budget_f)
        self._carry = budget_f - budget
        return self.send_pages(budget)

    def send_pages(self, budget: int) -> int:
        """Send up to ``budget`` queued pages, oldest first; returns the pages sent."""
        sent = 0
        while budget > 0 and self.queue:
            head = self.queue[0]
            if isinstance(head, tuple):
                start, stop = head
                take = min(budget, stop - start)
                self.target.receive_range_from(self.source, start, start + take)
                if start + take == stop:
                    self.queue.popleft()
                else:
                    self.queue[0] = (start + take, stop)
            else:
                take = min(budget, int(head.size))
                self.target.receive_from(self.source, head[:take])
                if take == head.size:
                    self.queue.popleft()
                else:
                    self.queue[0] = head[take:]
            sent += take
            budget -= take
        self.queued -= sent
        self.sent += sent
        return sent

    def drain_time_ns(self) -> int:
        """How long the queue takes to send."""
        return math.ceil(self.queued * self.source.page_size / self.bandwidth * NS_PER_S)


_CONSENT_FIELDS = ("control.enable", "guest_features.dma_dirty", "guest_features.pause_resume")
"""What a guest sets to take part; clearing one it had set at START withdraws its consent (VFM-MIG-011)."""


class SourceMigration:
    """The source's side of one migration."""

    def __init__(self, host: Hypervisor, destination: Hypervisor, number: int) -> None:
        self.host = host
        self.destination = destination
        self.clock = host.clock
        self.config = host.config
        self.bridge = host.bridge
        self.record = MigrationRecord(
            number=number,
            source=host.name,
            destination=destination.name,
            generation=0,
            start_ns=self.clock.now,
            bound_ns=self.config.bound_ns(self.bridge.params.ack_timeout_ms),
        )
        self.ack_timeout_ns = self.bridge.field("ack_timeout_ms") * NS_PER_MS
        self._state = MigState.IDLE
        self._phase_timer: Timer | None = None
        self._precopy_timer: Timer | None = None
        self._dirty_req_timers: dict[int, Timer] = {}
        self._tick_timer: Timer | None = None
        self._handover_timer: Timer | None = None
        self._round: RoundRecord | None = None
        self._pending_reason: MigReason | None = None
        self._stop_copy_bytes = 0
        self._group_reset_due = False
        self._consent: tuple[str, ...] = ()
        self.incoming: DestinationMigration | None = None
        self.sender: MigrationStream | None = None
        self.on_end: list[Callable[[MigrationRecord], None]] = []

    # ------------------------------------------------------------------ start (VFM-MIG-001)

    def check_start(self) -> None:
        """Raise :class:`MigrationError` unless the bridge and every slot may start a migration."""
        bridge = self.bridge
        if bridge.mig_state is not MigState.IDLE:
            raise MigrationError(f"MIG_STATE is {bridge.mig_state.name}, not IDLE")
        if bridge.secondary_bus_reset:
            raise MigrationError("the bridge's Secondary Bus Reset bit is set")
        enabled = all(bridge.field(path) for path in _CONSENT_FIELDS)
        for slot, state in enumerate(bridge.dev_states()):
            self.check_slot_may_start(slot, state, guest_enabled=enabled)

    def check_slot_may_start(self, slot: int, state: DevState, *, guest_enabled: bool) -> None:
        """One slot's start conditions: EMPTY, UNBOUND with BME clear, or READY in a guest that took part."""
        if state not in (DevState.EMPTY, DevState.UNBOUND, DevState.READY):
            raise MigrationError(f"slot {slot} is {state.name}, not EMPTY, UNBOUND or READY")
        function = self.host.slot_functions.get(slot)
        if state is DevState.UNBOUND and function is not None and function.bus_master:
            raise MigrationError(f"slot {slot} is UNBOUND and its function has Bus Master Enable set")
        if state is DevState.READY and not guest_enabled:
            raise MigrationError(f"slot {slot} is READY but the guest has not enabled the protocol")

    def start(self) -> None:
        """Check the start conditions, prepare the destination, enable the dirty log, then START."""
        self.check_start()
        self.incoming = self.destination.prepare_incoming(self)
        self.enable_dirty_log()  # VFM-DIRTY-005: before START
        self.sender = MigrationStream(self.host.memory, self.incoming.memory, self.config.bandwidth)
        self.host.bus.publish(EventKind.MIGRATION, self.host.name, what="start", destination=self.destination.name)
        self.issue_start()

    def enable_dirty_log(self) -> None:
        """Turn the CPU dirty log of the guest's memory on."""
        self.host.memory.log.enable()

    def issue_start(self) -> None:
        """Note what the guest consented to (VFM-MIG-011), then START the bridge."""
        bridge = self.bridge
        self._consent = tuple(path for path in _CONSENT_FIELDS if bridge.field(path))
        bridge.start()  # may settle to PRECOPY at once if no slot is bound
        self.record.generation = bridge.generation

    # ------------------------------------------------------------------ the bridge's steps drive the phases

    def bridge_stepped(self, cause: str) -> None:
        if self.record.ended:
            return
        new = self.bridge.mig_state
        if new is not self._state:
            old, self._state = self._state, new
            self.enter_phase(old, new)
        if self._over():
            return
        self.check_guest_consent()
        self._watch_late_binders()

    def _over(self) -> bool:
        """Whether the migration has ended (a call: the step just taken may have ended it)."""
        return self.record.ended

    def phase(self) -> MigState:
        """The MIG_STATE this migration last saw (a call, so that a check after a step reads it afresh)."""
        return self._state

    def enter_phase(self, old: MigState, new: MigState) -> None:
        """The bridge's MIG_STATE went from ``old`` to ``new``: start the new phase's work and deadline."""
        self.clock.cancel(self._phase_timer)
        self._phase_timer = None
        if old is MigState.STOPPED and new is not MigState.ARRIVED:
            self._restart_vcpus()  # CANCEL from STOPPED, even when every slot settles in the same step
        if new is MigState.PREPARE:
            self._phase_timer = self.clock.schedule(self.ack_timeout_ns, self.prepare_deadline, "PREPARE deadline")
        elif new is MigState.PRECOPY:
            self.begin_precopy()
        elif new is MigState.PAUSING:
            self._phase_timer = self.clock.schedule(self.ack_timeout_ns, self.pausing_deadline, "PAUSING deadline")
        elif new is MigState.STOPPED:
            self.enter_stopped()
        elif new is MigState.RESUMING:
            self._resuming(from_stopped=old is MigState.STOPPED)
        elif new is MigState.IDLE:
            self._idle_again()

    def check_guest_consent(self) -> None:
        """VFM-MIG-011: the guest withdrew its consent."""
        if self._state not in (MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING):
            return
        bridge = self.bridge
        for path in self._consent:
            if not bridge.field(path):
                self.protocol_error(f"{path.upper()} cleared during the migration")
                return

    def _watch_late_binders(self) -> None:
        """VFM-TMO-002: a DIRTY_REQ in PRECOPY has A from the slot's entry into DIRTY_REQ."""
        if self._state is not MigState.PRECOPY:
            return
        for slot, state in enumerate(self.bridge.dev_states()):
            timer = self._dirty_req_timers.get(slot)
            if state is DevState.DIRTY_REQ and timer is None:
                self._dirty_req_timers[slot] = self.clock.schedule(
                    self.ack_timeout_ns, partial(self.dirty_req_deadline, slot), f"slot {slot} DIRTY_REQ"
                )
            elif state is not DevState.DIRTY_REQ and timer is not None:
                self.clock.cancel(timer)
                del self._dirty_req_timers[slot]

    # ------------------------------------------------------------------ deadlines (spec §7.6)

    def prepare_deadline(self) -> None:
        """Deadline A of PREPARE passed (VFM-TMO-001): cancel with ACK_TIMEOUT."""
        if self._state is MigState.PREPARE:
            self.cancel(MigReason.ACK_TIMEOUT)

    def pausing_deadline(self) -> None:
        """Deadline A of PAUSING passed (VFM-TMO-003): cancel with ACK_TIMEOUT."""
        if self._state is MigState.PAUSING:
            self.cancel(MigReason.ACK_TIMEOUT)

    def dirty_req_deadline(self, slot: int) -> None:
        """Deadline A of a late binder's DIRTY_REQ passed (VFM-TMO-002): cancel with ACK_TIMEOUT."""
        self._dirty_req_timers.pop(slot, None)
        if self._state is MigState.PRECOPY and self.bridge.dev_state(slot) is DevState.DIRTY_REQ:
            self.cancel(MigReason.ACK_TIMEOUT)

    def resuming_deadline(self) -> None:
        """Deadline A of RESUMING passed (VFM-TMO-005): a group reset."""
        if self._state is MigState.RESUMING:
            self.record.notes.append("RESUMING deadline passed: group reset")
            self.host.group_reset()

    # ------------------------------------------------------------------ pre-copy

    def begin_precopy(self) -> None:
        """PRECOPY: start the pre-copy limit, then round 1, which sends every page."""
        self.start_precopy_limit()
        sender = self.stream()
        self.read_dirty_log()  # round 1 sends every page; the log starts afresh
        sender.enqueue_all()
        self._new_round(sender.queued)
        self._schedule_tick()

    def start_precopy_limit(self) -> None:
        """Limit P on the time in PRECOPY (VFM-TIME-001)."""
        self._precopy_timer = self.clock.schedule(self.config.precopy_limit_ns, self._precopy_limit, "P")

    def stream(self) -> MigrationStream:
        """The migration stream to the destination."""
        if self.sender is None:
            raise RuntimeError("the migration has no stream")
        return self.sender

    def _new_round(self, pages: int) -> None:
        self._round = RoundRecord(len(self.record.rounds) + 1, self.clock.now, pages)
        self.record.rounds.append(self._round)
        self.host.bus.publish(EventKind.PRECOPY_ROUND, self.host.name, round=self._round.number, pages=pages)

    def _schedule_tick(self) -> None:
        self._tick_timer = self.clock.schedule(self.config.quantum_ns, self._tick, "send")

    def _tick(self) -> None:
        self._tick_timer = None
        if self.record.ended or self._state not in (MigState.PRECOPY, MigState.PAUSING):
            return
        sender = self.stream()
        sent = self.send_quantum()
        if self._round is not None and self._round.end_ns is None:
            self._round.sent += sent  # the queue holds only this round's pages until it ends
        if sent:
            self.host.bus.publish(
                EventKind.PAGE_SEND,
                self.host.name,
                pages=sent,
                bytes=sent * sender.source.page_size,
                phase=self._state.name,
            )
        if sender.queued == 0:
            self._round_done()
        if not self.record.ended and self._state in (MigState.PRECOPY, MigState.PAUSING):
            self._schedule_tick()

    def send_quantum(self) -> int:
        """Send one quantum's worth of the stream (in PRECOPY and PAUSING, VFM-TIME-003); returns the pages sent."""
        return self.stream().send_for(self.config.quantum_ns)

    def _round_done(self) -> None:
        log = self.host.memory.log
        if self._round is not None and self._round.end_ns is None:
            self._round.end_ns = self.clock.now
            self._round.dirty_at_end = log.count
        if self._state is MigState.PRECOPY and self.converged():
            self.request_pause()
            return
        limit = self.config.max_precopy_rounds
        if self._state is MigState.PRECOPY and limit and len(self.record.rounds) >= limit:
            self._precopy_limit()
            if self.phase() is not MigState.PRECOPY:
                return
        pages = self.read_dirty_log()
        self.stream().enqueue(pages)
        if self.phase() is MigState.PRECOPY:
            self._new_round(int(pages.size))

    def read_dirty_log(self) -> Pages:
        """Read and clear the CPU dirty log; when the read fails, every page counts as dirty (VFM-DIRTY-008)."""
        log = self.host.memory.log
        try:
            return log.harvest()
        except DirtyLogReadError as error:
            self.record.notes.append(f"reading the dirty log failed ({error}): every page is sent again")
            self.host.bus.publish(EventKind.MIGRATION, self.host.name, what="dirty log read failed")
            return np.arange(log.num_pages, dtype=np.int64)

    def converged(self) -> bool:
        """VFM-TIME-002: what is left fits in bandwidth x downtime limit."""
        left = self.host.memory.log.count * self.host.memory.page_size
        return left <= self.config.bandwidth * self.config.downtime_limit_ns / NS_PER_S

    def _precopy_limit(self) -> None:
        """VFM-TIME-001: P passed (or the round limit): switch over or cancel."""
        if self._state is not MigState.PRECOPY:
            return
        self.record.notes.append(self._precopy_limit_note())
        if self.config.on_precopy_limit is PrecopyLimitAction.CANCEL:
            self.cancel(MigReason.CANCELLED)
        else:
            self.request_pause()

    def _precopy_limit_note(self) -> str:
        """Which pre-copy limit passed, and how far from converged pre-copy was."""
        memory = self.host.memory
        left = (self.stream().queued + memory.log.count) * memory.page_size
        fits = self.config.bandwidth * self.config.downtime_limit_ns / NS_PER_S
        limit = f"P = {self.config.precopy_limit_ns / NS_PER_S:g} s"
        if self.config.max_precopy_rounds and len(self.record.rounds) >= self.config.max_precopy_rounds:
            limit = f"round limit {self.config.max_precopy_rounds}"
        return (
            f"pre-copy limit reached ({limit}) before convergence: {format_size(left)} left to send, "
            f"{format_size(fits)} would fit the downtime limit at {format_size(self.config.bandwidth)}/s"
        )

    def request_pause(self) -> None:
        """Switch over: REQUEST_PAUSE (the vCPUs keep running until STOPPED)."""
        self.clock.cancel(self._precopy_timer)
        self.record.pause_requested_ns = self.clock.now
        self.host.bus.publish(EventKind.MIGRATION, self.host.name, what="switchover", left=self.host.memory.log.count)
        self.bridge.request_pause()

    # ------------------------------------------------------------------ stop-and-copy and handover

    def enter_stopped(self) -> None:
        """STOPPED: stop the vCPUs in this step, then stop-and-copy once the bridge's step is complete."""
        self.stop_vcpus()  # VFM-MIG-003: in the step that entered STOPPED
        self.record.stopped_ns = self.clock.now
        self.clock.cancel(self._tick_timer)
        self.host.bus.publish(EventKind.MIGRATION, self.host.name, what="stopped")
        # The rest happens just after this step, once the bridge's step is complete.
        self.clock.schedule(0, self.stop_and_copy, "stop-and-copy")

    def stop_vcpus(self) -> None:
        """Stop the guest's vCPUs on this host."""
        guest = self.host.guest
        if guest is not None:
            guest.stop(self.host.name)

    def stop_and_copy(self) -> None:
        """Check BME, send what is left and the device state, and wait for the destination (limit S)."""
        if self.record.ended or self._state is not MigState.STOPPED:
            return
        if not self.bus_masters_clear():
            return
        sender = self.stream()
        sender.enqueue(self.final_dirty_pages())  # VFM-FLOW-001
        pages = sender.queued
        transfer = sender.drain_time_ns()
        self._stop_copy_bytes = pages * sender.source.page_size
        sender.send_pages(pages)
        if pages:
            self.host.bus.publish(
                EventKind.PAGE_SEND, self.host.name, pages=pages, bytes=pages * sender.source.page_size, phase="STOPPED"
            )
        self._handover_timer = self.clock.schedule(
            self.config.stop_copy_limit_ns, self.stop_copy_limit_passed, "S"
        )  # VFM-DEST-005
        self.send_device_state(transfer)

    def bus_masters_clear(self) -> bool:
        """VFM-MIG-012: every function has BME clear before the final read of the dirty log; else cancel."""
        for slot, function in self.host.slot_functions.items():
            if function.bus_master:
                self.cancel(MigReason.PROTOCOL_ERROR, note=f"slot {slot}'s function still has BME set in STOPPED")
                return False
        return True

    def final_dirty_pages(self) -> Pages:
        """The last read of the dirty log, with the vCPUs stopped and DMA quiesced: what is left to send."""
        return self.read_dirty_log()

    def send_device_state(self, after_ns: int) -> None:
        """The bridge's config space and the functions' BARs, behind the last pages (``after_ns`` of transfer)."""
        incoming = self.incoming
        assert incoming is not None
        config = self.bridge.config_space()
        bars = {slot: _read_bars(function) for slot, function in self.host.slot_functions.items()}
        self.clock.schedule(
            after_ns + self.config.link_latency_ns, lambda: incoming.receive_state(config, bars), "device state arrives"
        )

    def stop_copy_limit_passed(self) -> None:
        """Limit S passed in STOPPED with no word from the destination (VFM-DEST-005): cancel."""
        if not self.record.ended and self._state is MigState.STOPPED:
            limit_s = self.config.stop_copy_limit_ns / NS_PER_S
            needed_s = self._stop_copy_bytes / self.config.bandwidth
            self.record.explanation = (
                f"no handover within the stop-and-copy limit S = {limit_s:g} s: the last "
                f"{format_size(self._stop_copy_bytes)} take {needed_s:.0f} s at {format_size(self.config.bandwidth)}/s"
            )
            self.cancel(MigReason.DESTINATION_FAILURE, note="stop-and-copy limit passed")

    def destination_confirmed(self) -> None:
        """The destination's confirmation arrived: the handover point (spec §7.8)."""
        if self.record.ended or self._state is not MigState.STOPPED:
            return
        self.clock.cancel(self._handover_timer)
        incoming = self.incoming
        assert incoming is not None
        self.record.lost_pages = incoming.memory.differing_pages(self.host.memory)
        self.record.pages_sent = self.stream().sent
        self.record.bytes_sent = self.record.pages_sent * self.host.memory.page_size
        self.host.bus.publish(EventKind.MIGRATION, self.host.name, what="handover", lost_pages=self.record.lost_pages)
        self._end(MigrationOutcome.COMPLETED, MigReason.COMPLETED)
        guest = self.host.guest
        source_memory = self.host.memory
        self.host.release_guest()
        self.host.outgoing = None
        self.clock.schedule(self.config.link_latency_ns, lambda: incoming.go(guest, source_memory), "handover message")

    def destination_failed(self, why: str) -> None:
        """The destination reports that it cannot take the guest over (VFM-DEST-001)."""
        if not self.record.ended and self._state in (
            MigState.PREPARE,
            MigState.PRECOPY,
            MigState.PAUSING,
            MigState.STOPPED,
        ):
            self.cancel(MigReason.DESTINATION_FAILURE, note=why)

    # ------------------------------------------------------------------ the bad path

    def cancel(self, reason: MigReason, note: str | None = None) -> None:
        """CANCEL with ``reason`` (VFM-CANCEL-001), if the migration can still be cancelled."""
        if self.record.ended or self._state not in (
            MigState.PREPARE,
            MigState.PRECOPY,
            MigState.PAUSING,
            MigState.STOPPED,
        ):
            return
        if note:
            self.record.notes.append(note)
        self._pending_reason = reason
        self.clock.cancel(self._tick_timer)
        self.clock.cancel(self._precopy_timer)
        self.clock.cancel(self._handover_timer)
        for timer in self._dirty_req_timers.values():
            self.clock.cancel(timer)
        self._dirty_req_timers.clear()
        self.host.bus.publish(EventKind.MIGRATION, self.host.name, what="cancel", reason=reason)
        if self.incoming is not None:
            self.incoming.abandon()
        self.bridge.cancel(reason)

    def protocol_error(self, why: str) -> None:
        """VFM-MIG-011: cancel with PROTOCOL_ERROR while the guest's help is needed."""
        if self._state in (MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING):
            self.cancel(MigReason.PROTOCOL_ERROR, note=why)

    def device_error(self) -> None:
        """VFM-ERR-001/002: cancel, then a group reset once MIG_STATE is IDLE or RESUMING."""
        self._group_reset_due = True
        if self._state in (MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED):
            self.cancel(MigReason.DEVICE_ERROR)
        self.group_reset_if_due()

    def group_reset_if_due(self) -> None:
        """After a device error, once MIG_STATE is IDLE or RESUMING: reset the failed functions (VFM-ERR-002)."""
        if not self._group_reset_due or self.bridge.mig_state not in (MigState.IDLE, MigState.RESUMING):
            return
        self._group_reset_due = False
        self.reset_failed_functions()

    def reset_failed_functions(self) -> None:
        """A group reset, if a slot is still in ERROR."""
        if DevState.ERROR in self.bridge.dev_states():
            self.host.group_reset()

    def _resuming(self, *, from_stopped: bool) -> None:
        """RESUMING's deadline runs from the bridge's entry, or from the vCPUs' restart (VFM-TMO-005)."""
        self._phase_timer = self.clock.schedule(self.ack_timeout_ns, self.resuming_deadline, "RESUMING deadline")
        if not from_stopped:
            self.clock.schedule(0, self.group_reset_if_due, "group reset after cancel")

    def _restart_vcpus(self) -> None:
        """A cancellation from STOPPED: the guest's vCPUs run again here, at once (well within e)."""
        guest = self.host.guest
        if guest is not None and not guest.running:
            guest.run(self.host.name)
            self.record.resumed_ns = self.clock.now
            self.clock.schedule(0, self.group_reset_if_due, "group reset after cancel")

    def _idle_again(self) -> None:
        reason = self._pending_reason or self.bridge.mig_reason
        self.group_reset_if_due()
        outcome = MigrationOutcome.CANCELLED if reason is MigReason.CANCELLED else MigrationOutcome.FAILED
        self.record.pages_sent = self.stream().sent if self.sender is not None else 0
        self.record.bytes_sent = self.record.pages_sent * self.host.memory.page_size
        # Bad path is safe: the guest still runs on this host's memory, which never stopped being its own.
        guest = self.host.guest
        self.record.lost_pages = 0 if guest is None else guest.memory.differing_pages(self.host.memory)
        self._end(outcome, reason)
        self.host.memory.log.disable()
        self.host.outgoing = None

    def _end(self, outcome: MigrationOutcome, reason: MigReason) -> None:
        self.record.outcome = outcome
        self.record.reason = reason
        self.record.end_ns = self.clock.now
        self.clock.cancel(self._phase_timer)
        self.host.bus.publish(
            EventKind.MIGRATION,
            self.host.name,
            what="end",
            outcome=outcome.value,
            reason=reason,
            number=self.record.number,
        )
        for callback in tuple(self.on_end):
            callback(self.record)


# ---------------------------------------------------------------------------------------------------------------


_BAR_OFFSETS = tuple(range(0x10, 0x28, 4))


def _read_bars(function: VirtualFunction) -> tuple[int, ...]:
    """The six BAR registers of a function, as the guest programmed them."""
    return tuple(function.config_read(offset, 4) for offset in _BAR_OFFSETS)


def _write_bars(function: VirtualFunction, bars: tuple[int, ...]) -> None:
    for offset, value in zip(_BAR_OFFSETS, bars, strict=False):
        function.config_write(offset, 4, value)


class DestinationMigration:
    """The destination's side: receive pages and state, check, place fresh functions, confirm, ARRIVE."""

    def __init__(self, host: Hypervisor, source: SourceMigration) -> None:
        self.host = host
        self.source = source
        self.clock = host.clock
        source_bridge = source.bridge
        self.params = source_bridge.params
        self.memory = host.make_memory(source.host.memory.size_bytes, source.host.memory.page_shift, False)
        self.bridge: MigrationBridge | None = None
        self.abandoned = False
        self.fail_on_state: str | None = None
        """Set by fault injection: the destination reports this failure when the device state arrives."""
        self.placed_in_reset: dict[int, bool] = {}

    def receive_state(self, config: bytes, bars: dict[int, tuple[int, ...]] | None = None) -> None:
        """The last pages, the bridge's config space and the functions' BARs arrived: check, place, confirm."""
        if self.abandoned:
            return
        if self.fail_on_state is not None:
            self._report_failure(self.fail_on_state)
            return
        host = self.host
        bridge = host.create_bridge(self.params)
        tracking = host.tracking_shift(self.params.page_shift)
        capability = config[bridge.cap : bridge.cap + len(bridge.capability_bytes())]
        problem = restore_problem(bridge.capability_bytes(), capability, tracking)
        if problem is not None:  # VFM-SEC-008, checked before a function is placed for a state that is refused
            self._report_failure(f"restored capability refused: {problem}")
            return
        host.slot_functions = {}
        placed: list[VirtualFunction | None] = []
        for slot, entry in enumerate(decode_capability(capability).devices):
            placed.append(None if entry.dev_state is DevState.EMPTY else self._equal_function(slot, bars or {}))
        bridge.restore(config, placed, dirty_page_shift=tracking)
        self.bridge = bridge
        host.last_placed = self.placed_in_reset
        self.clock.schedule(self.host.config.link_latency_ns, self.source.destination_confirmed, "confirmation")

    def _equal_function(self, slot: int, bars: dict[int, tuple[int, ...]]) -> VirtualFunction:
        """A function equal to the source's in ``slot`` (VFM-MIG-004), after FLR, with its BARs (VFM-FLOW-002)."""
        host = self.host
        function = host.new_function(self.source.host.identities.get(slot))
        function.function_level_reset("flr")
        _write_bars(function, bars.get(slot, ()))  # same BAR addresses, BME clear
        host.slot_functions[slot] = function
        host.identities[slot] = function.identity
        self.placed_in_reset[slot] = function.in_reset_state
        return function

    def _report_failure(self, why: str) -> None:
        self.host.bus.publish(EventKind.MIGRATION, self.host.name, what="destination_failure", why=why)
        self.clock.schedule(self.host.config.link_latency_ns, lambda: self.source.destination_failed(why), "failure")
        self.abandon()

    def go(self, guest: Guest | None, source_memory: GuestMemory) -> None:
        """The source reached the handover point: ARRIVE, then run the vCPUs here (VFM-FLOW-003)."""
        host = self.host
        host.incoming = None
        if guest is None or self.bridge is None:
            return
        self.memory.continue_stamps_from(source_memory)
        guest.move_to(host)
        host.host_guest(guest, self.memory)
        self.arrive_and_run(guest)

    def arrive_and_run(self, guest: Guest) -> None:
        """ARRIVE first, then the guest's vCPUs run here (VFM-FLOW-003)."""
        self.arrive()
        self.run_guest(guest)

    def arrive(self) -> None:
        """ARRIVE: the bridge tells the drivers their functions are fresh."""
        if self.bridge is not None:
            self.bridge.arrive()
            self.host.bus.publish(EventKind.MIGRATION, self.host.name, what="arrived")

    def run_guest(self, guest: Guest) -> None:
        """The guest's vCPUs run on this host: the end of the downtime."""
        guest.run(self.host.name)
        self.source.record.resumed_ns = self.clock.now

    def abandon(self) -> None:
        """The migration was cancelled or failed: forget everything received."""
        self.abandoned = True
        if self.host.incoming is self:
            self.host.incoming = None
        if self.bridge is not None and self.host.guest is None:
            self.host._bridge = None
            self.host.slot_functions = {}


Hypervisor.source_class = SourceMigration
Hypervisor.destination_class = DestinationMigration
