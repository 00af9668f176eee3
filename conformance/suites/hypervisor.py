"""The ``hypervisor`` target: the migration orchestration on the source and on the destination.

The world: two hosts of the implementation under test, a third one whose dirty
tracking is finer than the guest's pages (a destination it must refuse), the
reference bridge, reference functions and drivers, and a 256-page guest whose
functions receive traffic all the time.  The suite plays everyone but the
hypervisor:

* the guest: a storm of CPU writes that keeps pre-copy from converging, driver
  binding and interface changes, a Secondary Bus Reset, the withdrawal of its
  consent, a report the bridge rejects, a Bus Master Enable it must not set
  (on an UNBOUND or PAUSED function, or one under way while the vCPUs stop),
  values written to the bridge that claim the migration completed;
* the devices: a driver that stops answering (at once, or from its next
  PAUSE_REQ), a function whose drain outlasts ``ACK_TIMEOUT_MS``, device
  errors, surprise removal;
* the management layer: migrations (to the other host, or to the one that
  must be refused), cancellations, hot-plug, a conventional reset of the
  bridge (a platform reset, after which the guest sets everything up again);
* the host: a dirty log that loses its entries;
* the destination: a refusal when the final state arrives, or a crash.

Most of these can happen now or be armed for a phase of the migration
(``at``); the ``*_scenario`` rules, and the finale that :meth:`build` draws,
run a whole migration with one known-tricky twist, so that 40 random examples
meet each twist several times.

The hypervisor is watched from outside.  The bridge is the reference's,
subclassed so that the suite sees every host event before it takes effect and
every guest access once it has completed, with the hypervisor's reaction (the
suite's observer runs first, before the hypervisor's); the functions report
their resets and accesses; the guest's memory reports every page a
destination receives and every read of the dirty log; the guest reports its
vCPUs and every interrupt of a function injected into it (the function's own
MSI-X message, or one the hypervisor made up); guest code is marked as such,
so that the hypervisor's own accesses to a function stand out.  A function's
DMA mapping (its ``memory``) is the IOMMU's translation, and the memory a
host asks ``make_memory`` for is the granularity of its dirty log.  The guest
finds its functions through the host (``function_at``), as it would on the
secondary bus.  Deadlines are measured on the simulated clock
from the phase start that spec 7.6 defines: an action is due within the
reaction time e (``MigrationConfig.reaction_ns``) and never before its
deadline.

The suite uses what :class:`~conformance.adapters.HypervisorUnderTest` declares (with the migration handle,
:class:`~conformance.adapters.MigrationHandle`, and the destination's side,
:class:`~conformance.adapters.IncomingMigration`); the time a hypervisor measured is read from the handle's
``record`` (``downtime_ns``, ``total_ns``).  What it cannot see is not judged: a function the hypervisor made
other than with the function factory it was given, or a dirty log other than the one of the memory
``make_memory`` made.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from conformance.checks import ConformanceMachine, RequirementViolation, step
from reference_impl.bridge import MigrationBridge, restore_problem
from reference_impl.clock import NS_PER_MS, NS_PER_S, SimClock, ms
from reference_impl.device import PCIE_CAP_OFFSET, DeviceTiming, FunctionIdentity, VirtualFunction
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import Event, EventBus, EventKind
from reference_impl.guest import DmaRegionAllocator, Guest, firmware_setup
from reference_impl.hypervisor import Hypervisor, MigrationConfig, MigrationError, MigrationOutcome, PrecopyLimitAction
from reference_impl.memory import DirtyLog, DirtyLogReadError, GuestMemory, Pages
from reference_impl.scenario import Simulation, SimulationConfig
from vfmig_proto.codec import find_field
from vfmig_proto.errors import ProtocolError
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.pci import (
    PCI_BRIDGE_CONTROL,
    PCI_BRIDGE_CTL_BUS_RESET,
    PCI_EXP_DEVCTL,
    PCI_EXP_DEVCTL_BCR_FLR,
)
from vfmig_proto.states import DevEvent, DevState, MigEvent, MigReason, MigState
from vfmig_proto.transitions import DEVICE_TRANSITIONS, MIGRATION_TRANSITIONS, Action

CHECKED = frozenset(
    {
        *("VFM-MIG-001", "VFM-MIG-003", "VFM-MIG-004", "VFM-MIG-005", "VFM-MIG-010", "VFM-MIG-011", "VFM-MIG-012"),
        *("VFM-TMO-001", "VFM-TMO-002", "VFM-TMO-003", "VFM-TMO-004", "VFM-TMO-005"),
        *("VFM-TIME-001", "VFM-TIME-002", "VFM-TIME-003", "VFM-TIME-004", "VFM-TIME-005"),
        *("VFM-DIRTY-005", "VFM-DIRTY-006", "VFM-FLOW-001", "VFM-FLOW-002", "VFM-FLOW-003"),
        *("VFM-DEST-001", "VFM-DEST-002", "VFM-DEST-003", "VFM-DEST-004", "VFM-DEST-005"),
        *("VFM-ERR-001", "VFM-ERR-002", "VFM-ERR-003", "VFM-CANCEL-001", "VFM-CANCEL-002", "VFM-CANCEL-005"),
        *("VFM-SEC-006", "VFM-SEC-008", "VFM-REP-001", "VFM-VER-007", "VFM-ABS-004", "VFM-GEN-003", "VFM-DEV-012"),
        *("VFM-GEN-002", "VFM-DISC-002", "VFM-DISC-003", "VFM-CAP-008", "VFM-MIG-013", "VFM-DIRTY-007"),
        *("VFM-DIRTY-008", "VFM-NOTIF-005", "VFM-SEC-004", "VFM-SEC-005", "VFM-SEC-007"),
    }
)
"""The requirements this suite checks; every other requirement of the hypervisor role stays not-covered."""

WATCHED_THROUGHOUT = (
    *("VFM-GEN-002", "VFM-SEC-004", "VFM-SEC-005", "VFM-SEC-007"),
    *("VFM-MIG-013", "VFM-NOTIF-005", "VFM-DIRTY-008", "VFM-DEV-012"),
)
"""Requirements whose checks watch every migration from start to end: each step that runs a whole migration
exercises them (a hang or an exception in it is attributed to them too)."""

PAGE = 4096
PAGE_SHIFT = 12
MEMORY_PAGES = 256
"""A 1 MiB guest: a first pre-copy round of 32 ms at 32 MiB/s."""
ACK_TIMEOUT_MS = 20
BACKGROUND_DMA = 2 * PAGE * 1000
"""Bytes per second each function receives all the time: two pages a millisecond."""
BUFFERS = 8
"""Receive buffers per driver: every function's pages fit the downtime budget, so pre-copy converges."""
STORM_PAGES = 16
"""Pages the CPU storm writes per millisecond: twice what the link sends, so pre-copy never converges."""
MIGRATION = MigrationConfig(
    bandwidth=32 * 1024 * 1024,  # eight pages per millisecond
    downtime_limit_ns=ms(5),
    link_latency_ns=ms(0.2),
    precopy_limit_ns=ms(80),
    stop_copy_limit_ns=ms(50),
    reaction_ns=ms(1),
    group_reset_ns=ms(100),
    quantum_ns=ms(1),
)
"""The management layer's settings: P = 80 ms, S = 50 ms, e = 1 ms, L = 5 ms (R x L = 40 pages)."""
RUN_LIMIT_NS = ms(300)
IN_PROGRESS = frozenset({MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED})
"""MIG_STATE while a migration is in progress on the source (spec 7)."""
GUEST_HELP = frozenset({MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING})
"""MIG_STATE while the migration needs the guest's help (VFM-MIG-011)."""
CONSENT = ("control.enable", "guest_features.dma_dirty", "guest_features.pause_resume")
SETTLED_AT_START = frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.READY})
QUIET_SLOTS = frozenset({DevState.UNBOUND, DevState.PAUSED})
"""Slots whose function must keep BME clear during a migration (VFM-MIG-011)."""
_BAR_OFFSETS = tuple(range(0x10, 0x28, 4))
_FLR_BYTE = PCIE_CAP_OFFSET + PCI_EXP_DEVCTL + 1
"""The config-space byte whose Initiate Function Level Reset bit a reset by config write sets."""
PHASES = ("PRECOPY", "PAUSING", "STOPPED", "RESUMING", "ARRIVED", "end")
PHASE_LIMITS: dict[MigState, tuple[str, int]] = {
    MigState.PREPARE: ("VFM-TMO-001", ACK_TIMEOUT_MS * NS_PER_MS),
    MigState.PRECOPY: ("VFM-TIME-001", MIGRATION.precopy_limit_ns),
    MigState.PAUSING: ("VFM-TMO-003", ACK_TIMEOUT_MS * NS_PER_MS),
    MigState.STOPPED: ("VFM-DEST-005", MIGRATION.stop_copy_limit_ns),
    MigState.RESUMING: ("VFM-TMO-005", ACK_TIMEOUT_MS * NS_PER_MS),
}
"""Each phase on the source, the requirement that bounds it and its length (spec 7.6, chapter 8)."""
GUEST_AT = ("now", "PREPARE", "PRECOPY", "PAUSING", "RESUMING")
"""When a guest action happens: now, or as the migration enters that MIG_STATE (the vCPUs run in each)."""
HOST_AT = (*GUEST_AT, "STOPPED")
"""When a host event happens: now, or as the migration enters that MIG_STATE."""
DRIVER_SCENARIOS = (
    "driver-hangs-at-pause",
    "silent-driver",
    "silent-late-binder",
    "bus-master-as-vcpus-stop",
    "bus-master-on-unbound",
)
FUNCTION_SCENARIOS = ("device-error-driver-hangs", "device-error-then-start", "surprise-removal", "hot-add")
GUEST_SCENARIOS = ("consent-withdrawn", "guest-group-reset", "rejected-report")
MANAGEMENT_SCENARIOS = (
    "cancel",
    "destination-refuses",
    "destination-crashes",
    "far-destination",
    "cpu-storm",
    "platform-reset",
    "dirty-log-loss",
)
"""Known-tricky sequences, each a whole migration in one step, so that random runs meet them often."""
GUEST_TWISTS = frozenset((*GUEST_SCENARIOS, "dirty-log-loss"))
"""Twists that need the vCPUs running (the guest's, and a dirty log's loss, which matters while they write)."""
SCENARIO_KINDS = (*DRIVER_SCENARIOS, *FUNCTION_SCENARIOS, *GUEST_SCENARIOS, *MANAGEMENT_SCENARIOS)
FINALES = ("", "migrate", *SCENARIO_KINDS)
"""What happens after the last step: nothing, one more migration, or one of the scenarios."""
TWIST_PHASES = ("PREPARE", "PRECOPY", "PAUSING", "STOPPED")
DURATIONS_US = (50, 500, 2_000, 5_000, 10_000, 21_000, 45_000)
"""How long time passes in one step: around the deadlines (A = 20 ms, e = 1 ms) and the limits."""


def _ms(ns: int) -> str:
    return f"{ns / NS_PER_MS:.3f} ms"


@dataclass(frozen=True)
class Cause:
    """Something that calls for a cancellation, with the MIG_REASON Table 7-7 gives it."""

    time_ns: int
    reason: MigReason
    what: str

    def __str__(self) -> str:
        return f"{self.what} ({self.reason.name}) at {_ms(self.time_ns)}"


@dataclass
class Armed:
    """Faults armed for the next migration."""

    destination: str = ""
    """``"refuse"`` or ``"crash"``: the destination fails when the final state arrives."""
    rogue_at_stop: int | None = None


@dataclass
class Watch:
    """What the suite knows about one migration."""

    number: int
    source: Hypervisor
    destination: Hypervisor
    bridge: MigrationBridge | None = None
    """The source's bridge."""
    memory: GuestMemory | None = None
    """The source's copy of the guest's memory."""
    handle: Any = None
    incoming: Any = None
    start_ns: int | None = None
    phases: dict[MigState, int] = field(default_factory=dict)
    """When the source's bridge first entered each MIG_STATE."""
    consent: tuple[str, ...] = ()
    consent_withdrawn: bool = False
    causes: list[Cause] = field(default_factory=list)
    dirty_req: dict[int, int] = field(default_factory=dict)
    """Slots in DIRTY_REQ during PRECOPY, with the time they entered it (VFM-TMO-002)."""
    cancel_ns: int | None = None
    cancel_reason: MigReason | None = None
    cancel_from: MigState | None = None
    resuming_start: int | None = None
    group_resets: list[int] = field(default_factory=list)
    ended_ns: int | None = None
    handover_ns: int | None = None
    handover_checked: bool = False
    dest_bridge: ObservedBridge | None = None
    arrived_ns: int | None = None
    stopped_capability: bytes | None = None
    capability_touched: bool = False
    """A host event changed the source's capability after the vCPUs stopped: REP-001 cannot be judged."""
    stopped_functions: dict[int, WatchedFunction] = field(default_factory=dict)
    stopped_bars: dict[int, tuple[int, ...]] = field(default_factory=dict)
    rogue: bool = False
    """A function the protocol keeps quiet had BME set, or the vCPUs ran in STOPPED: lost pages are not
    VFM-FLOW-001's to judge (the guest's doing, or VFM-MIG-003's)."""
    rogue_at_stop: int | None = None
    bme_at_stop_ns: int | None = None
    """When a function got BME set after the vCPUs stopped in STOPPED."""
    final_read_bme: bool | None = None
    """Whether a function had BME set when the hypervisor last read the dirty log in STOPPED (None: no read)."""
    crash: bool = False
    refuse: bool = False
    state_arrived_ns: int | None = None
    dest_memory: GuestMemory | None = None
    """The destination's copy of the guest's memory (the one that receives the pages)."""
    lost_checked: bool = False
    dirty_at_pause: int = 0
    """Pages the CPU dirty log held when the bridge entered PAUSING."""
    sent_in_pausing: int = 0
    intercepted: bool = False
    """The suite sees the final state arrive at the destination (its ``receive_state``)."""
    lost_at: int | None = None
    """When the suite made the source's dirty log lose its entries, or fail a read (VFM-DIRTY-008)."""
    lost_how: str = "lost its entries"
    resent: npt.NDArray[np.bool_] | None = None
    """Pages sent to the destination since the dirty log lost its entries."""
    unsignalled: int = 0
    """Interrupts of functions behind the bridge injected during the migration without the function's signal."""
    vcpus_stopped_ns: int | None = None
    vcpus_resumed_ns: int | None = None
    """When the guest's vCPUs stopped for the migration and ran again (the downtime, on the host's clock)."""

    @property
    def started(self) -> bool:
        return self.start_ns is not None

    @property
    def in_progress(self) -> bool:
        return self.start_ns is not None and self.ended_ns is None


# ---------------------------------------------------------------------------------------------------- the world


class WatchedLog(DirtyLog):
    """A host's CPU dirty log that tells the suite when the hypervisor reads it.

    While a migration of the guest is in progress, ``unsent`` holds the pages the log marked dirty that no page
    send has carried to the destination since (VFM-SEC-004).
    """

    def __init__(self, memory: WatchedMemory) -> None:
        super().__init__(memory.num_pages)
        self.memory = memory
        self.unsent: npt.NDArray[np.bool_] | None = None
        self.fail_next_read: Watch | None = None
        """The migration during which the next read of the log fails (VFM-DIRTY-008), if any."""

    def harvest(self) -> Pages:
        self.memory.suite.on_harvest(self.memory)
        failing, self.fail_next_read = self.fail_next_read, None
        if failing is not None and self.memory.suite.read_fails(failing, self.memory):
            raise DirtyLogReadError("the suite made this read of the dirty log fail")
        return super().harvest()

    def mark(self, pages: Pages) -> None:
        super().mark(pages)
        if self.unsent is not None and self.enabled:
            self.unsent[pages] = True

    def mark_range(self, start: int, stop: int) -> None:
        super().mark_range(start, stop)
        if self.unsent is not None and self.enabled:
            self.unsent[start:stop] = True

    def lose(self) -> None:
        """The log loses what it holds and says so (VFM-DIRTY-008): the entries are gone, every page counts."""
        self._clear()
        self.lose_entries()


class WatchedMemory(GuestMemory):
    """A host's copy of the guest's memory that tells the suite of every page it receives and every log read."""

    def __init__(self, size_bytes: int, page_shift: int, *, boot: bool, suite: HypervisorSuite) -> None:
        super().__init__(size_bytes, page_shift, boot=boot)
        self.suite = suite
        self.log = WatchedLog(self)

    def receive_from(self, source: GuestMemory, pages: Pages) -> None:
        self.suite.on_receive(self, int(pages.size), pages)
        super().receive_from(source, pages)

    def receive_range_from(self, source: GuestMemory, start: int, stop: int) -> None:
        self.suite.on_receive(self, stop - start, slice(start, stop))
        super().receive_range_from(source, start, stop)


class WatchedFunction(VirtualFunction):
    """The reference function, telling the suite of its resets and of every access to it."""

    def __init__(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None, suite: HypervisorSuite
    ) -> None:
        super().__init__(name, clock, bus, identity)
        self.suite = suite
        self.arrival: Watch | None = None
        """The migration for whose ARRIVE a destination placed this function (None: not such a function)."""
        self.slot_ready = False
        """The guest wrote READY for the slot this function was placed in."""
        self.last_reset_ns: int | None = None
        self.signals = 0
        """MSI-X messages the function sent and no injection has delivered yet (forwarding may come later)."""
        self.unsignalled = 0
        """Interrupts of this function injected without its signal, between ARRIVE and its slot's READY."""

    def _send_msix(self, vector: int) -> None:
        self.signals += 1
        super()._send_msix(vector)

    def _write_buffers(self, rx: Any, start: int, count: int) -> None:
        self.suite.function_dma(self)
        super()._write_buffers(rx, start, count)

    def config_write(self, offset: int, width: int, value: int) -> None:
        flr = offset <= _FLR_BYTE < offset + width and value >> (8 * (_FLR_BYTE - offset)) & (
            PCI_EXP_DEVCTL_BCR_FLR >> 8
        )
        what = f"a config write of 0x{value:x} at 0x{offset:02x}"
        self.suite.function_access(self, what, mailbox=not flr)  # (an Initiate FLR is a reset, not a message)
        with self.suite.scope():
            super().config_write(offset, width, value)
        self.suite.function_written(self)

    def function_level_reset(self, how: str) -> None:
        if not self.failed:
            self.suite.function_access(self, f"a reset ({how})")
        self.suite.on_function_reset(self, how)
        super().function_level_reset(how)
        self.last_reset_ns = self.clock.now

    def mmio_setup_rx(self, ring_start: int, ring_pages: int, buffer_start: int, buffer_count: int) -> None:
        self.suite.function_access(self, "a write of its receive ring registers", mailbox=True)
        super().mmio_setup_rx(ring_start, ring_pages, buffer_start, buffer_count)

    def mmio_post(self, count: int) -> None:
        self.suite.function_access(self, "a write of its buffer tail register", mailbox=True)
        super().mmio_post(count)

    def mmio_enable_queues(self, enabled: bool) -> None:
        self.suite.function_access(self, "a write of its queue enable register", mailbox=True)
        super().mmio_enable_queues(enabled)


@dataclass(frozen=True)
class WatchedDevices:
    """The reference functions (watched) and drivers."""

    suite: HypervisorSuite

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        function = WatchedFunction(name, clock, bus, identity, self.suite)
        self.suite.on_function_created(function)
        return function

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return VfDriver(guest, core, slot, devfn, allocator, config=DriverConfig(buffers=BUFFERS))


class BridgeWatcher:
    """The suite's observer of a bridge: first in the list, so it runs before the hypervisor reacts."""

    def __init__(self, suite: HypervisorSuite) -> None:
        self.suite = suite

    def bridge_stepped(self, bridge: MigrationBridge, cause: str) -> None:
        self.suite.on_bridge_stepped(bridge, cause)

    def report_rejected(self, bridge: MigrationBridge, slot: int, report: int, why: str) -> None:
        self.suite.on_protocol_condition(bridge, f"the bridge rejected slot {slot}'s report {report} ({why})")

    def secondary_bus_reset_requested(self, bridge: MigrationBridge) -> None:
        if isinstance(bridge, ObservedBridge):
            bridge.guest_sbr = True
        self.suite.on_protocol_condition(bridge, "the guest set Secondary Bus Reset")


class ObservedBridge(MigrationBridge):
    """The reference bridge; every host event is checked before it takes effect, every access after."""

    def __init__(self, bus: EventBus, params: CapabilityParams, name: str, suite: HypervisorSuite) -> None:
        super().__init__(bus, params, name=name)
        self.suite = suite
        self.own = self.capability_bytes()
        """The capability as created: what a restored one is checked against (spec 10.6)."""
        self.guest_sbr = False
        self.observers.append(BridgeWatcher(suite))

    def config_write(self, offset: int, width: int, value: int) -> None:
        self.suite.guest_access(self, f"a config write of 0x{value:x} at 0x{offset:02x}")
        try:
            with self.suite.scope():
                super().config_write(offset, width, value)
        except ProtocolError as error:
            if self.guest_sbr:
                self.suite.group_reset_refused(self, error)
            raise
        finally:
            self.guest_sbr = False

    def config_read(self, offset: int, width: int) -> int:
        self.suite.guest_access(self, f"a config read at 0x{offset:02x}")
        return super().config_read(offset, width)

    def start(self) -> None:
        self.suite.host_event(self, MigEvent.START)
        self.suite.before_start(self)
        with self.suite.scope():
            super().start()

    def request_pause(self) -> None:
        self.suite.host_event(self, MigEvent.REQUEST_PAUSE)
        self.suite.before_request_pause(self)
        with self.suite.scope():
            super().request_pause()

    def cancel(self, reason: MigReason) -> None:
        self.suite.host_event(self, MigEvent.CANCEL)
        self.suite.before_cancel(self, reason)
        with self.suite.scope():
            super().cancel(reason)

    def arrive(self) -> None:
        self.suite.host_event(self, MigEvent.ARRIVE)
        self.suite.before_arrive(self)
        with self.suite.scope():
            super().arrive()

    def group_reset(self) -> None:
        self.suite.host_event(self, MigEvent.GROUP_RESET)
        self.suite.before_group_reset(self)
        with self.suite.scope():
            super().group_reset()

    def hot_add(self, slot: int, function: Any) -> None:
        self.suite.slot_event(self, slot, DevEvent.HOT_ADD)
        self.suite.before_hot_add(self, slot)
        with self.suite.scope():
            super().hot_add(slot, function)

    def surprise_removal(self, slot: int) -> None:
        self.suite.slot_event(self, slot, DevEvent.SURPRISE_REMOVAL)
        self.suite.before_capability_change(self)
        with self.suite.scope():
            super().surprise_removal(slot)

    def device_error(self, slot: int) -> None:
        self.suite.slot_event(self, slot, DevEvent.DEVICE_ERROR)
        self.suite.before_capability_change(self)
        with self.suite.scope():
            super().device_error(slot)

    def conventional_reset(self) -> None:
        self.suite.before_conventional_reset(self)
        self.suite.before_capability_change(self)
        with self.suite.scope():
            super().conventional_reset()
            self.suite.after_conventional_reset(self)  # (inside: the step is judged with the migration ended)


def _ignore_requests(state: object) -> None:
    """A driver's ``act_on`` that never answers."""


def _hang_at_pause(driver: VfDriver, state: DevState | int) -> None:
    """A driver's ``act_on`` that works until its slot reads PAUSE_REQ, and never answers anything after."""
    if state is DevState.PAUSE_REQ:
        setattr(driver, "act_on", _ignore_requests)  # noqa: B010 - this driver instance only
        return
    VfDriver.act_on(driver, state)


def _probe(driver: VfDriver) -> None:
    """The guest's OS binds the driver (a probe)."""
    driver.load(up=True)


# ---------------------------------------------------------------------------------------------------- the suite


class HypervisorSuite(ConformanceMachine):
    """Random interleavings around one guest's migrations; checks of the hypervisor requirements."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        self.far: Hypervisor | None = None
        """A host that tracks dirty memory in 2 KiB pieces: it cannot take a guest with 4 KiB pages."""
        self.watches: list[Watch] = []
        self.pending: Watch | None = None
        self.bridges: dict[str, ObservedBridge] = {}
        self.functions: dict[str, WatchedFunction] = {}
        self.depth = 0
        self.guest_depth = 0
        self.protocol_pending: list[tuple[Watch, str, int]] = []
        self.storm = False
        self.storm_tick = 0
        self.saved_consent: dict[str, int] = {}
        self.armed = Armed()
        self.triggers: list[tuple[MigState, str, Callable[[], None]]] = []
        self.finale = ""
        self.finale_phase = "PRECOPY"
        self.dead = False
        """A bridge refused a host event: the world is broken and the finding already reported."""
        self.resetting: MigrationBridge | None = None
        """The bridge whose conventional reset the suite asked for, while the hypervisor carries it out."""
        self.reset_state = MigState.IDLE
        """The bridge's MIG_STATE when the suite asked for the conventional reset."""
        self.reset_cancel: MigReason | None = None
        """The MIG_REASON of the first CANCEL between the request of a conventional reset and its effect."""

    # ------------------------------------------------------------------ the world

    @initialize(
        vfs=st.integers(1, 3),
        storm=st.booleans(),
        start=st.booleans(),
        finale=st.sampled_from(FINALES),
        phase=st.sampled_from(TWIST_PHASES),
    )
    @step("VFM-GEN-003", "VFM-DIRTY-007", "VFM-DISC-002", "VFM-DEV-012")
    def build(self, vfs: int, storm: bool, start: bool, finale: str, phase: str) -> None:
        """The world.

        ``storm``: the guest's CPUs dirty memory faster than the link sends; ``start``: a migration starts at
        once; ``finale``: after the last step, once every migration has ended, the guest is migrated once more
        (``"migrate"``), or a scenario runs (with slot 0 and its twist in ``phase``), or nothing more happens.
        """
        config = SimulationConfig(
            memory_bytes=MEMORY_PAGES * PAGE,
            vfs=vfs,
            dma_rate=BACKGROUND_DMA,
            cpu_dirty_rate=0,
            migration=MIGRATION,
            buffers=BUFFERS,
            ack_timeout_ms=ACK_TIMEOUT_MS,
            page_shift=PAGE_SHIFT,
        )
        if self.checks.known <= self.checks.disabled:
            self.dead = True  # every requirement is judged already: nothing left to check, no world to build
            return
        implementation = self.factory()
        devices = WatchedDevices(self)
        self.sim = Simulation(
            config,
            monitor=False,
            devices=devices,
            bridges=self._make_bridge,
            hypervisors=implementation,
            memories=self._make_memory,
        )
        fine = replace(MIGRATION, dirty_tracking_shift=PAGE_SHIFT - 1)
        far = implementation.create_hypervisor(
            "hostC", self.sim.clock, self.sim.bus, fine, functions=devices.create_function, bridges=self._make_bridge
        )
        far.make_memory = self._make_memory
        self.far = cast("Hypervisor", far)
        bus = self.sim.bus
        bus.subscribe(self.on_mig_transition, [EventKind.MIG_TRANSITION])
        bus.subscribe(self.on_dev_transition, [EventKind.DEV_TRANSITION])
        bus.subscribe(self.on_bus_master, [EventKind.BUS_MASTER])
        bus.subscribe(self.on_vcpu, [EventKind.VCPU])
        bus.subscribe(self.on_milestone, [EventKind.MIGRATION])
        self._guest_context(self.sim.guest)
        self._watch_device_interrupts(self.sim.guest)
        self.storm = storm
        self.finale = finale
        self.finale_phase = phase
        self.sim.clock.schedule(MIGRATION.quantum_ns, self._storm, "suite: CPU storm")
        if start:
            self._start(to_far=False)

    def _make_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        bridge = ObservedBridge(bus, params, name, self)
        self.bridges[name] = bridge
        watch = self.pending or self.current
        if watch is not None and (watch is self.pending or watch.in_progress):
            watch.dest_bridge = bridge
        return bridge

    def _make_memory(self, size_bytes: int, page_shift: int, boot: bool) -> GuestMemory:
        """A host makes its copy of the guest's RAM: its dirty log of that copy tracks pages of 2^page_shift bytes."""
        self.checks.record(
            "VFM-DIRTY-007",
            page_shift >= PAGE_SHIFT,
            f"a host made its copy of the guest's memory at {_ms(self.clock.now) if self.sim else 'start-up'} with "
            f"pages of 2^{page_shift} bytes: its dirty log would track the guest finer than the bridge's PAGE_SHIFT "
            f"{PAGE_SHIFT}",
        )
        return WatchedMemory(size_bytes, page_shift, boot=boot, suite=self)

    def _guest_context(self, guest: Guest) -> None:
        """Mark guest code: every task the guest runs, so that the hypervisor's own accesses stand out."""
        original = guest._guarded  # the one place where guest code is scheduled

        def guarded(task: Callable[[], None], label: str) -> Callable[[], None]:
            def as_guest() -> None:
                self.guest_depth += 1
                try:
                    task()
                finally:
                    self.guest_depth -= 1

            return original(as_guest, label)

        setattr(guest, "_guarded", guarded)  # noqa: B010 - an instance attribute shadowing the method

    def _watch_device_interrupts(self, guest: Guest) -> None:
        """See every interrupt of a function the hypervisor injects into the guest (VFM-MIG-013, VFM-NOTIF-005)."""
        original = guest.inject_device_interrupt

        def inject(function: str) -> None:
            self.on_device_interrupt(function)
            original(function)

        setattr(guest, "inject_device_interrupt", inject)  # noqa: B010 - an instance attribute shadowing the method

    def _guest_memory(self) -> GuestMemory | None:
        """The guest's memory on the host where it runs now (None while it is between hosts)."""
        try:
            return self.world.guest.memory
        except RuntimeError:
            return None

    def _as_guest(self, action: Callable[[], None]) -> None:
        self.guest_depth += 1
        try:
            action()
        finally:
            self.guest_depth -= 1

    @property
    def world(self) -> Simulation:
        assert self.sim is not None, "the world is built first"
        return self.sim

    @property
    def clock(self) -> SimClock:
        return self.world.clock

    @property
    def current(self) -> Watch | None:
        return self.watches[-1] if self.watches else None

    @property
    def ack_ns(self) -> int:
        return ACK_TIMEOUT_MS * NS_PER_MS

    @property
    def e(self) -> int:
        return MIGRATION.reaction_ns

    def guest_host(self) -> Hypervisor | None:
        return next((host for host in self.world.hosts if host.guest is self.world.guest), None)

    def other(self, host: Hypervisor) -> Hypervisor:
        first, second = self.world.hosts
        return second if host is first else first

    def in_progress(self) -> Watch | None:
        watch = self.current
        return watch if watch is not None and watch.in_progress else None

    def watch_of(self, bridge: MigrationBridge) -> Watch | None:
        watch = self.current
        return watch if watch is not None and watch.bridge is bridge else None

    def _schedule(self, at_ns: int, check: Callable[[], None], label: str) -> None:
        self.clock.schedule_at(max(at_ns, self.clock.now), check, f"suite: {label}")

    def _storm(self) -> None:
        """The CPU storm: more dirty pages per millisecond than the link sends."""
        clock = self.clock
        clock.schedule(MIGRATION.quantum_ns, self._storm, "suite: CPU storm")
        guest = self.world.guest
        if not self.storm or not guest.running or self.guest_host() is None:
            return
        self.storm_tick += 1
        first = self.storm_tick * STORM_PAGES
        pages = (np.arange(first, first + STORM_PAGES, dtype=np.int64) * 97) % MEMORY_PAGES
        self._as_guest(partial(guest.cpu_write, pages))

    def _world(self, action: Callable[[], object]) -> None:
        """Run ``action``; a finding recorded inside the implementation's stack comes out first."""
        if self.dead:
            return
        try:
            action()
        except RequirementViolation:
            raise
        except ProtocolError as error:
            self.checks.raise_pending()
            if not self.dead:  # (dead already: the guest's write that the bridge refused is judged)
                message = f"the bridge refused a host event the hypervisor caused: {error}"
                self.checks.that("VFM-DEV-012", False, message)
            self.dead = True  # the requirement is already judged; nothing more can be checked in this world
        except Exception:
            self.checks.raise_pending()
            if not self.dead:
                raise  # (in a dead world the error is a consequence of what killed it, reported already)

    # ------------------------------------------------------------------ scopes: a step is judged once it completes

    @contextmanager
    def scope(self) -> Iterator[None]:
        """One access or host event; checks that need the hypervisor's reaction run when the outermost ends."""
        self.depth += 1
        saved = self.guest_depth
        try:
            yield
        finally:
            self.depth -= 1
            self.guest_depth = saved
        if self.depth == 0:
            self.after_step()

    def after_step(self) -> None:
        watch = self.in_progress()
        pending, self.protocol_pending = self.protocol_pending, []
        for owner, what, since in pending:
            if owner.handover_ns is None:
                self.checks.record(
                    "VFM-MIG-011", owner.cancel_ns is not None, partial(_uncancelled, owner, what, since)
                )
        if watch is None or watch.bridge is None or self.handed_over(watch):
            return
        bridge = watch.bridge
        guest = self.world.guest
        if bridge.mig_state is MigState.STOPPED:
            watch.rogue = watch.rogue or guest.running  # (pages the guest writes then are VFM-MIG-003's to judge)
            self.checks.record(
                "VFM-MIG-003",
                not guest.running,
                lambda: (
                    f"migration {watch.number}: the bridge entered STOPPED at "
                    f"{_ms(watch.phases.get(MigState.STOPPED, 0))} and the guest's vCPUs still run once that step "
                    "completed"
                ),
            )
            if watch.stopped_capability is None:
                self._snapshot_at_stop(watch, bridge)
        memory = watch.memory
        if memory is not None:
            self.checks.record(
                "VFM-DIRTY-005",
                memory.log.enabled,
                lambda: f"migration {watch.number}: the CPU dirty log is off at {_ms(self.clock.now)}, before the end",
            )
            self._check_memory_kept(watch, bridge, memory)

    def _snapshot_at_stop(self, watch: Watch, bridge: MigrationBridge) -> None:
        watch.stopped_capability = bridge.capability_bytes()
        for slot, function in enumerate(bridge.functions):
            if isinstance(function, WatchedFunction):
                watch.stopped_functions[slot] = function
                watch.stopped_bars[slot] = tuple(function.config_read(offset, 4) for offset in _BAR_OFFSETS)
        armed = watch.rogue_at_stop
        watch.rogue_at_stop = None
        if armed is None:
            return
        slot = armed % len(self.world.drivers)
        rogue = bridge.functions[slot]
        if isinstance(rogue, WatchedFunction) and bridge.dev_state(slot) in QUIET_SLOTS:
            # A guest write to the Command register that was under way on another vCPU when they stopped.
            self._as_guest(partial(rogue.set_bus_master, True))

    def _check_memory_kept(self, watch: Watch, bridge: MigrationBridge, memory: GuestMemory) -> None:
        source = watch.source
        try:
            held = source.memory
        except RuntimeError:
            held = None
        self.checks.record(
            "VFM-CANCEL-005",
            held is memory,
            lambda: f"migration {watch.number}: {source.name} released the guest's memory at {_ms(self.clock.now)}",
        )
        for slot, function in enumerate(bridge.functions):
            if isinstance(function, WatchedFunction):
                mapped = function.memory is memory
                self.checks.record(
                    "VFM-CANCEL-005",
                    mapped,
                    ""
                    if mapped
                    else f"migration {watch.number}: slot {slot}'s function lost its IOMMU mapping of the guest's "
                    f"memory at {_ms(self.clock.now)}, before the end",
                )

    # ------------------------------------------------------------------ host events the hypervisor causes

    def guest_access(self, bridge: MigrationBridge, what: str) -> None:
        """VFM-MIG-003: the vCPUs are stopped in STOPPED, so the bridge receives no guest configuration access."""
        watch = self.watch_of(bridge)
        if watch is None or not watch.in_progress or bridge.mig_state is not MigState.STOPPED or self.depth:
            return
        if not self.handed_over(watch):
            watch.capability_touched = True  # (what the capability was when the vCPUs stopped is moot now)
            watch.rogue = True
            self.checks.record(
                "VFM-MIG-003",
                False,
                f"migration {watch.number}: the guest made {what} to the bridge at {_ms(self.clock.now)}, in STOPPED "
                f"(entered at {_ms(watch.phases.get(MigState.STOPPED, 0))})",
            )

    def host_event(self, bridge: MigrationBridge, event: MigEvent) -> None:
        state = bridge.mig_state
        self.checks.record(
            "VFM-DEV-012",
            (state, event) in MIGRATION_TRANSITIONS,
            f"{bridge.name}: {event.name} caused in MIG_STATE {state.name}, which has no row for it",
        )
        if event is MigEvent.GROUP_RESET:
            for slot, dev_state in enumerate(bridge.dev_states()):
                self.checks.record(
                    "VFM-DEV-012",
                    (dev_state, DevEvent.GROUP_RESET) in DEVICE_TRANSITIONS,
                    f"{bridge.name}: GROUP_RESET with slot {slot} in {dev_state.name}, which has no row for it",
                )

    def slot_event(self, bridge: MigrationBridge, slot: int, event: DevEvent) -> None:
        if not 0 <= slot < bridge.num_slots:
            return
        state = bridge.dev_state(slot)
        self.checks.record(
            "VFM-DEV-012",
            (state, event) in DEVICE_TRANSITIONS,
            f"{bridge.name}: {event.name} caused for slot {slot} in {state.name}, which has no row for it",
        )

    def _start_problem(self, bridge: MigrationBridge) -> str | None:
        """Which start condition of VFM-MIG-001 fails, or None."""
        if bridge.mig_state is not MigState.IDLE:
            return f"MIG_STATE is {bridge.mig_state.name}, not IDLE"
        if bridge.secondary_bus_reset:
            return "the bridge's Secondary Bus Reset bit is 1"
        states = bridge.dev_states()
        for slot, state in enumerate(states):
            if state not in SETTLED_AT_START:
                return f"slot {slot} is {state.name}, not EMPTY, UNBOUND or READY"
            function = bridge.functions[slot]
            if state is DevState.UNBOUND and function is not None and function.bus_master:
                return f"slot {slot} is UNBOUND and its function has BME set"
        missing = [path.upper() for path in CONSENT if not bridge.field(path)]
        if DevState.READY in states and missing:
            return f"a slot is READY but {', '.join(missing)} is 0"
        return None

    def before_start(self, bridge: MigrationBridge) -> None:
        now = self.clock.now
        watch = self.pending
        if watch is None:
            host = self.guest_host()
            source = host if host is not None else self.world.hosts[0]
            watch = Watch(len(self.watches) + 1, source, self.other(source))
        problem = self._start_problem(bridge)
        self.checks.record(
            "VFM-MIG-001", problem is None, f"migration {watch.number}: START at {_ms(now)} although {problem}"
        )
        far = watch.destination is self.far
        self.checks.record(
            "VFM-VER-007",
            not far,
            f"migration {watch.number}: START at {_ms(now)} towards {watch.destination.name}, which tracks dirty "
            f"memory in pieces of 2^{PAGE_SHIFT - 1} bytes, finer than the guest's PAGE_SHIFT {PAGE_SHIFT}",
        )
        for slot, function in enumerate(bridge.functions):
            if isinstance(function, VirtualFunction) and bridge.dev_state(slot) is DevState.UNBOUND:
                self.checks.record(
                    "VFM-ABS-004",
                    not function.failed,
                    f"migration {watch.number}: START at {_ms(now)} with slot {slot}'s function failed and UNBOUND, "
                    "never reset by a Function Level Reset",
                )
        memory = self.world.guest.memory
        self.checks.record(
            "VFM-DIRTY-005",
            memory.log.enabled,
            f"migration {watch.number}: START at {_ms(now)} with the CPU dirty log off",
        )
        self._check_start_placement(watch, bridge, memory)
        if isinstance(memory.log, WatchedLog):
            memory.log.unsent = np.zeros(memory.num_pages, dtype=np.bool_)
        watch.bridge = bridge
        watch.memory = memory
        watch.start_ns = now
        watch.consent = tuple(path for path in CONSENT if bridge.field(path))
        watch.causes.extend(  # (a start that VFM-MIG-001 forbids: the slot is a cause from the outset)
            Cause(now, MigReason.DEVICE_ERROR, f"slot {slot} in ERROR at START")
            for slot, state in enumerate(bridge.dev_states())
            if state is DevState.ERROR
        )
        watch.rogue = any(
            function is not None and function.bus_master and state in QUIET_SLOTS
            for function, state in zip(bridge.functions, bridge.dev_states(), strict=False)
        )
        self.watches.append(watch)
        bound = MIGRATION.bound_ns(ACK_TIMEOUT_MS)
        self._schedule(now + bound + 1, partial(self._check_bound, watch, bound), "T_max")

    def _check_start_placement(self, watch: Watch, bridge: MigrationBridge, memory: GuestMemory) -> None:
        """VFM-DISC-002 and VFM-DIRTY-007 at START: one bridge for every assigned function, pages tracked whole."""
        now = self.clock.now
        behind = [function for function in bridge.functions if function is not None]
        # A function is assigned to the guest when the IOMMU maps the guest's memory for its DMA.
        beside = sorted(
            function.name
            for function in self.functions.values()
            if function.memory is memory and not any(function is placed for placed in behind)
        )
        self.checks.record(
            "VFM-DISC-002",
            not beside,
            lambda: (
                f"migration {watch.number}: START at {_ms(now)} on {bridge.name} although the guest's memory is "
                f"mapped for the DMA of {', '.join(beside)}, which does not sit behind that bridge"
            ),
        )
        shift = bridge.field("page_shift")
        self.checks.record(
            "VFM-DIRTY-007",
            memory.page_shift >= shift,
            f"migration {watch.number}: START at {_ms(now)} with the dirty log of the guest's memory tracking pages "
            f"of 2^{memory.page_shift} bytes, finer than the bridge's PAGE_SHIFT {shift}",
        )

    def _check_bound(self, watch: Watch, bound: int) -> None:
        if watch.ended_ns is not None or self.handed_over(watch):
            return
        bridge = watch.bridge
        self.checks.record(
            "VFM-TIME-004",
            False,
            f"migration {watch.number} started at {_ms(watch.start_ns or 0)}: neither the handover point nor IDLE "
            f"within T_max = {_ms(bound)} (MIG_STATE {bridge.mig_state.name if bridge else '?'} at "
            f"{_ms(self.clock.now)})",
        )

    def before_request_pause(self, bridge: MigrationBridge) -> None:
        watch = self.watch_of(bridge)
        precopy = None if watch is None else watch.phases.get(MigState.PRECOPY)
        if watch is None or precopy is None or self.clock.now >= precopy + MIGRATION.precopy_limit_ns:
            return
        memory = watch.memory
        assert memory is not None
        left = memory.log.count * memory.page_size
        budget = MIGRATION.bandwidth * MIGRATION.downtime_limit_ns / NS_PER_S
        self.checks.record(
            "VFM-TIME-002",
            left <= budget,
            lambda: (
                f"migration {watch.number}: REQUEST_PAUSE at {_ms(self.clock.now)}, before P, with "
                f"{memory.log.count} dirty pages ({left} bytes) left, more than R x L = {budget:.0f} bytes"
            ),
        )

    def _implicit_causes(self, watch: Watch, state: MigState, now: int, reason: MigReason) -> list[Cause]:
        """The causes that ``state`` and the time give: deadlines and limits passed (Table 7-6, chapter 8) and BME.

        The pre-copy limit P is a cause of cancellation only for a hypervisor whose policy is to cancel then
        (chapter 8): one configured to switch over counts it only if it does cancel, with CANCELLED.  A BME set
        after the vCPUs stopped is one only if it is still set when the hypervisor checks (VFM-MIG-012), at its
        last read of the dirty log.
        """
        causes: list[Cause] = []
        phase = watch.phases.get(state)
        if state in (MigState.PREPARE, MigState.PAUSING) and phase is not None and phase + self.ack_ns <= now:
            causes.append(Cause(phase + self.ack_ns, MigReason.ACK_TIMEOUT, f"the {state.name} deadline"))
        if state is MigState.PRECOPY:
            for slot, since in watch.dirty_req.items():
                if since + self.ack_ns <= now:
                    causes.append(
                        Cause(since + self.ack_ns, MigReason.ACK_TIMEOUT, f"slot {slot}'s DIRTY_REQ deadline")
                    )
        if state is MigState.STOPPED and watch.bme_at_stop_ns is not None:
            bme = self._bme_in_stopped(watch) if watch.final_read_bme is None else watch.final_read_bme
            if bme:
                what = "a function with BME set when the vCPUs had stopped in STOPPED"
                causes.append(Cause(watch.bme_at_stop_ns, MigReason.PROTOCOL_ERROR, what))
        cancels_at_p = MIGRATION.on_precopy_limit is PrecopyLimitAction.CANCEL or reason is MigReason.CANCELLED
        if (
            state is MigState.PRECOPY
            and phase is not None
            and phase + MIGRATION.precopy_limit_ns <= now
            and cancels_at_p
        ):
            causes.append(Cause(phase + MIGRATION.precopy_limit_ns, MigReason.CANCELLED, "the pre-copy limit P"))
        if state is MigState.STOPPED and phase is not None and phase + MIGRATION.stop_copy_limit_ns <= now:
            causes.append(
                Cause(phase + MIGRATION.stop_copy_limit_ns, MigReason.DESTINATION_FAILURE, "the stop-and-copy limit S")
            )
        return causes

    @staticmethod
    def _bme_in_stopped(watch: Watch) -> bool:
        """Whether a function behind the source's bridge has BME set now."""
        bridge = watch.bridge
        return bridge is not None and any(
            isinstance(function, VirtualFunction) and function.bus_master for function in bridge.functions
        )

    def before_cancel(self, bridge: MigrationBridge, reason: MigReason) -> None:
        if self.resetting is bridge and self.reset_cancel is None:
            self.reset_cancel = reason
        watch = self.watch_of(bridge)
        if watch is None:
            return
        now = self.clock.now
        state = bridge.mig_state
        if self.handed_over(watch):
            self.checks.record(
                "VFM-DEST-002",
                False,
                f"migration {watch.number}: CANCEL ({reason.name}) at {_ms(now)}, after the handover point at "
                f"{_ms(watch.handover_ns or 0)}",
            )
        explicit = [cause for cause in watch.causes if cause.time_ns <= now]
        deadlines = self._implicit_causes(watch, state, now, reason)
        causes = explicit + deadlines
        reasons = {cause.reason for cause in causes}
        listed = "; ".join(str(cause) for cause in causes) or "none"
        ack_deadlines = [cause.time_ns for cause in causes if cause.reason is MigReason.ACK_TIMEOUT]
        self.checks.record(
            "VFM-TMO-004",
            reason is not MigReason.ACK_TIMEOUT or bool(ack_deadlines),
            lambda: (
                f"migration {watch.number}: CANCEL with ACK_TIMEOUT at {_ms(now)} in {state.name}, before any "
                f"deadline passed ({self._deadlines(watch, state)})"
            ),
        )
        if reason in (MigReason.NONE, MigReason.COMPLETED):
            self.checks.record(
                "VFM-MIG-010", False, f"migration {watch.number}: CANCEL at {_ms(now)} with reason {reason.name}"
            )
        elif reason is not MigReason.ACK_TIMEOUT or ack_deadlines:
            self.checks.record(
                "VFM-CANCEL-001",
                reason in reasons,
                lambda: (
                    f"migration {watch.number}: CANCEL at {_ms(now)} in {state.name} with MIG_REASON {reason.name}, "
                    f"which Table 7-7 gives none of the causes that arose (causes: {listed})"
                ),
            )
            if reason in reasons:
                # The first cause, or one within e of it; a hypervisor that let the first cause pass unanswered for
                # longer than e is judged by that cause's requirement (VFM-MIG-011, -ERR-001, ...), not here.
                first = min(cause.time_ns for cause in causes)
                ignored = now > first + self.e
                acceptable = {cause.reason for cause in causes if ignored or cause.time_ns <= first + self.e}
                self.checks.record(
                    "VFM-MIG-010",
                    reason in acceptable,
                    lambda: (
                        f"migration {watch.number}: CANCEL at {_ms(now)} with MIG_REASON {reason.name}, not the "
                        f"reason of the first cause (causes: {listed})"
                    ),
                )
        passed = [cause for cause in deadlines if cause.reason is reason]
        if passed and not any(cause.reason is reason for cause in explicit):  # the action a deadline calls for
            first_deadline = min(passed, key=lambda cause: cause.time_ns)
            self.checks.record(
                "VFM-TIME-005",
                now <= first_deadline.time_ns + self.e,
                f"migration {watch.number}: CANCEL with {reason.name} at {_ms(now)}, later than e = {_ms(self.e)} "
                f"after {first_deadline}",
            )
        if watch.cancel_ns is None:
            watch.cancel_ns = now
            watch.cancel_reason = reason
            watch.cancel_from = state
            if reason is MigReason.DEVICE_ERROR:
                self._schedule(now + self.e + 1, partial(self._check_group_reset_after_error, watch), "ERR-002")

    def _deadlines(self, watch: Watch, state: MigState) -> str:
        phase = watch.phases.get(state)
        if state is MigState.PRECOPY:
            entries = ", ".join(f"slot {slot} DIRTY_REQ since {_ms(since)}" for slot, since in watch.dirty_req.items())
            return f"no slot overdue in DIRTY_REQ: {entries or 'none in DIRTY_REQ'}"
        if phase is None:
            return f"{state.name} has no ACK_TIMEOUT_MS deadline"
        return f"{state.name} entered at {_ms(phase)}, deadline {_ms(phase + self.ack_ns)}"

    def before_group_reset(self, bridge: MigrationBridge) -> None:
        watch = self.watch_of(bridge)
        if watch is None or not watch.in_progress:
            return
        now = self.clock.now
        state = bridge.mig_state
        error = DevState.ERROR in bridge.dev_states()
        start = watch.resuming_start
        deadline_passed = state is MigState.RESUMING and start is not None and now >= start + self.ack_ns
        justified = deadline_passed or (error and state in (MigState.IDLE, MigState.RESUMING))
        self.checks.record(
            "VFM-CANCEL-002",
            justified,
            lambda: (
                f"migration {watch.number}: a group reset by the hypervisor at {_ms(now)} in {state.name}, which "
                "no rule calls for (no slot in ERROR"
                + (f", RESUMING deadline {_ms(start + self.ack_ns)})" if start is not None else ")")
            ),
        )
        if deadline_passed and start is not None and not error:
            self.checks.record(
                "VFM-TIME-005",
                now <= start + self.ack_ns + self.e,
                f"migration {watch.number}: the group reset for the RESUMING deadline at {_ms(now)}, later than "
                f"e = {_ms(self.e)} after the deadline at {_ms(start + self.ack_ns)}",
            )

    def before_hot_add(self, bridge: MigrationBridge, slot: int) -> None:
        self.before_capability_change(bridge)
        watch = self.watch_of(bridge)
        if watch is not None and watch.in_progress and not self.handed_over(watch):
            self.checks.record(
                "VFM-CANCEL-002",
                False,
                f"migration {watch.number}: a function hot-added into slot {slot} at {_ms(self.clock.now)}, "
                f"during {bridge.mig_state.name}",
            )

    def before_capability_change(self, bridge: MigrationBridge) -> None:
        watch = self.watch_of(bridge)
        if watch is not None and watch.stopped_capability is not None:
            watch.capability_touched = True

    def before_conventional_reset(self, bridge: MigrationBridge) -> None:
        """VFM-CAP-008: a conventional reset takes effect only once no migration is in progress on the bridge."""
        state = bridge.mig_state
        now = self.clock.now
        self.checks.record(
            "VFM-CAP-008",
            state not in IN_PROGRESS,
            f"{bridge.name}: a conventional reset took effect at {_ms(now)} in MIG_STATE {state.name}, with no "
            "CANCEL first",
        )
        if self.resetting is bridge and self.reset_state in IN_PROGRESS:
            reason = self.reset_cancel
            self.checks.record(
                "VFM-CAP-008",
                reason is MigReason.CANCELLED,
                f"{bridge.name}: the conventional reset asked for in {self.reset_state.name} took effect at "
                f"{_ms(now)} after "
                + ("no CANCEL" if reason is None else f"a CANCEL with MIG_REASON {reason.name}, not CANCELLED"),
            )

    def after_conventional_reset(self, bridge: MigrationBridge) -> None:
        """The reset returned the bridge to IDLE without a transition: the migration, if any, has ended."""
        watch = self.watch_of(bridge)
        if watch is not None and watch.in_progress and not self.handed_over(watch):
            self._ended(watch, self.clock.now)

    def before_arrive(self, bridge: ObservedBridge) -> None:
        watch = self.current
        if watch is None or watch.dest_bridge is not bridge:
            return
        self.handed_over(watch)
        self._handover_checks(watch)
        now = self.clock.now
        capability = bridge.capability_bytes()
        stopped = watch.stopped_capability
        if stopped is not None and not watch.capability_touched:
            self.checks.record(
                "VFM-REP-001",
                capability == stopped,
                lambda: (
                    f"migration {watch.number}: ARRIVE at {_ms(now)} with a capability that differs from the "
                    f"source's when the vCPUs stopped (bytes {_differing(capability, stopped)})"
                ),
            )
        tracking = PAGE_SHIFT - 1 if watch.destination is self.far else PAGE_SHIFT
        problem = restore_problem(bridge.own, capability, tracking)
        self.checks.record(
            "VFM-SEC-008",
            problem is None,
            f"migration {watch.number}: ARRIVE at {_ms(now)} on {watch.destination.name} for a restored "
            f"capability that fails a check of 10.6: {problem}",
        )
        for slot, state in enumerate(bridge.dev_states()):
            if state is not DevState.EMPTY:
                self._check_placed(watch, bridge, slot)

    def _check_placed(self, watch: Watch, bridge: MigrationBridge, slot: int) -> None:
        function = bridge.functions[slot]
        where = f"migration {watch.number}: at ARRIVE ({_ms(self.clock.now)}) slot {slot}"
        self.checks.record("VFM-MIG-004", function is not None, f"{where} holds no function")
        if not isinstance(function, WatchedFunction):
            return
        source = watch.stopped_functions.get(slot)
        fresh = function is not source and function.resets > 0 and function.in_reset_state
        self.checks.record(
            "VFM-MIG-004",
            fresh and not function.bus_master,
            f"{where}: {function.name} is not a fresh function after a Function Level Reset with BME clear "
            f"(resets {function.resets}, in reset {function.in_reset_state}, BME {int(function.bus_master)})",
        )
        if source is not None:
            self.checks.record(
                "VFM-MIG-004",
                function.identity == source.identity,
                f"{where}: {function.name} is {function.identity}, the source's function was {source.identity}",
            )
            bars = tuple(function.config_read(offset, 4) for offset in _BAR_OFFSETS)
            expected = watch.stopped_bars.get(slot, bars)
            self.checks.record(
                "VFM-FLOW-002",
                bars == expected,
                f"{where}: BARs {[hex(bar) for bar in bars]}, the source's were {[hex(bar) for bar in expected]}",
            )
        self.checks.record(
            "VFM-FLOW-002",
            not function.bus_master and not function.msix_enabled,
            f"{where}: {function.name} has BME {int(function.bus_master)} and MSI-X enabled and unmasked "
            f"{int(function.msix_enabled)}",
        )

    # ------------------------------------------------------------------ what the bridge and the functions tell

    def on_mig_transition(self, event: Event) -> None:
        bridge = self.bridges.get(event.source)
        watch = self.current
        new, old, cause = event.data.get("new"), event.data.get("old"), event.data.get("event")
        if bridge is None or watch is None or not isinstance(new, MigState):
            return
        now = event.time
        if bridge is watch.dest_bridge and cause is MigEvent.ARRIVE:
            watch.arrived_ns = now
            return
        if bridge is watch.bridge and cause is MigEvent.GROUP_RESET:
            watch.group_resets.append(now)
        if bridge is not watch.bridge or not watch.in_progress:
            return
        watch.phases.setdefault(new, now)
        if old is MigState.PRECOPY and new is not MigState.PRECOPY:
            self._check_dirty_requests(watch, now)
        if isinstance(old, MigState) and old is not new:
            self._phase_left(watch, old, now)
        if old is MigState.PAUSING and new is not MigState.PAUSING:
            self._check_sent_in_pausing(watch, now)
        if new is MigState.PAUSING and watch.memory is not None:
            watch.dirty_at_pause = watch.memory.log.count
        self._phase_entered(watch, old, new, now)

    def _check_sent_in_pausing(self, watch: Watch, now: int) -> None:
        """VFM-TIME-003: while PAUSING lasts, what the dirty log held goes on being sent (a batch per quantum)."""
        start = watch.phases.get(MigState.PAUSING)
        if start is None or watch.dirty_at_pause == 0 or now - start < 3 * MIGRATION.quantum_ns:
            return
        self.checks.record(
            "VFM-TIME-003",
            watch.sent_in_pausing > 0,
            f"migration {watch.number}: PAUSING lasted from {_ms(start)} to {_ms(now)} and the dirty log held "
            f"{watch.dirty_at_pause} pages at its start, but no page was sent meanwhile",
        )

    def _phase_entered(self, watch: Watch, old: object, new: MigState, now: int) -> None:
        """Arm the check of the deadline or limit that ends the phase ``new`` (spec 7.6, chapter 8)."""
        self._fire(new)
        if new is MigState.RESUMING and old is MigState.STOPPED and not self.world.guest.running:
            # After a CANCEL from STOPPED the phase starts when the vCPUs run again, at the latest e later.
            self._schedule(now + self.e + 1, partial(self._resuming_late, watch, now), "RESUMING start")
        elif new is MigState.RESUMING:
            self._resuming_from(watch, now)
        elif new in PHASE_LIMITS:
            self._due(watch, new, now)
        elif new is MigState.IDLE and old is not MigState.IDLE:
            self._ended(watch, now)

    def _ended(self, watch: Watch, now: int) -> None:
        if watch.ended_ns is not None:
            return
        watch.ended_ns = now
        # Resets and hot-plug that no rule calls for were recorded as they happened; none came for this one.
        self.checks.record("VFM-CANCEL-002", True, "")
        self.checks.record(
            "VFM-NOTIF-005",
            watch.unsignalled == 0,
            f"migration {watch.number}: {watch.unsignalled} interrupts of functions behind the bridge were injected "
            "into the guest during the migration without the function signalling them",
        )
        if watch.handover_ns is None:
            self._schedule(now + 1, partial(self._check_measured_total, watch, now), "GEN-002")
        memory = watch.memory
        if memory is not None and isinstance(memory.log, WatchedLog) and watch.handover_ns is None:
            memory.log.unsent = None
        bound = MIGRATION.bound_ns(ACK_TIMEOUT_MS)
        start = watch.start_ns or 0
        self.checks.record(
            "VFM-TIME-004",
            now - start <= bound,
            f"migration {watch.number} started at {_ms(start)} and reached "
            f"{'the handover point' if watch.handover_ns is not None else 'IDLE'} only at {_ms(now)}, later than "
            f"T_max = {_ms(bound)}",
        )

    def _phase_start(self, watch: Watch, state: MigState) -> int | None:
        return watch.resuming_start if state is MigState.RESUMING else watch.phases.get(state)

    def _limit(self, state: MigState) -> tuple[str, int, int]:
        """The requirement that bounds ``state``, the phase's length and the grace after it (e, or 0 for P)."""
        requirement, length = PHASE_LIMITS[state]
        return requirement, length, 0 if state is MigState.PRECOPY else self.e

    def _phase_left(self, watch: Watch, state: MigState, now: int) -> None:
        """The phase ``state`` ended at ``now``: within its deadline or limit, plus e for a deadline's action."""
        start = self._phase_start(watch, state)
        if state not in PHASE_LIMITS or start is None:
            return
        requirement, length, grace = self._limit(state)
        self.checks.record(
            requirement,
            now <= start + length + grace,
            lambda: (
                f"migration {watch.number}: {state.name} began at {_ms(start)} and lasted until {_ms(now)}; its "
                f"{'limit' if state is MigState.PRECOPY else 'deadline'} was {_ms(start + length)}"
                + (f" (+ e = {_ms(grace)})" if grace else "")
            ),
        )

    def _due(self, watch: Watch, state: MigState, start: int) -> None:
        """Check, once the phase ``state`` should have ended, that it did (VFM-TMO-00x, -TIME-001, -DEST-005)."""
        requirement, length, grace = self._limit(state)
        deadline = start + length

        def check() -> None:
            bridge = watch.bridge
            assert bridge is not None
            if self.handed_over(watch) or watch.ended_ns is not None or bridge.mig_state is not state:
                return
            self.checks.record(
                requirement,
                False,
                f"migration {watch.number}: still {state.name} at {_ms(self.clock.now)}; the phase began at "
                f"{_ms(start)}, so the {'limit' if state is MigState.PRECOPY else 'deadline'} was {_ms(deadline)}"
                + (f" (+ e = {_ms(grace)})" if grace else ""),
            )

        self._schedule(deadline + grace + 1, check, requirement)

    def _resuming_from(self, watch: Watch, start: int) -> None:
        if watch.resuming_start is None:
            watch.resuming_start = start
            self._due(watch, MigState.RESUMING, start)

    def _resuming_late(self, watch: Watch, cancel_ns: int) -> None:
        """The vCPUs did not run within e of the CANCEL from STOPPED: the phase started at the latest then."""
        self._resuming_from(watch, cancel_ns + self.e)

    def _check_dirty_requests(self, watch: Watch, now: int) -> None:
        for slot, since in watch.dirty_req.items():
            self.checks.record(
                "VFM-TMO-002",
                now <= since + self.ack_ns + self.e,
                f"migration {watch.number}: PRECOPY ended at {_ms(now)} without ACK_TIMEOUT although slot {slot} "
                f"had been in DIRTY_REQ since {_ms(since)} (deadline {_ms(since + self.ack_ns)})",
            )
        if not watch.dirty_req:
            self.checks.record("VFM-TMO-002", True, "")
        watch.dirty_req.clear()

    def on_dev_transition(self, event: Event) -> None:
        bridge = self.bridges.get(event.source)
        watch = self.current
        if bridge is None or watch is None or event.data.get("action") is not Action.ACCEPT:
            return
        slot = int(event.data["slot"])
        old, new, cause = event.data["old"], event.data["new"], event.data["event"]
        now = event.time
        if bridge is watch.dest_bridge and new is DevState.READY:
            function = bridge.functions[slot]
            if isinstance(function, WatchedFunction) and not function.slot_ready:
                function.slot_ready = True
                self.checks.record(
                    "VFM-MIG-013",
                    function.unsignalled == 0,
                    f"migration {watch.number}: between ARRIVE and the READY of slot {slot} ({_ms(now)}) the "
                    f"hypervisor injected {function.unsignalled} interrupts of {function.name} that it never signalled",
                )
            return
        if bridge is not watch.bridge or not watch.in_progress:
            return
        state = bridge.mig_state
        if old is DevState.DIRTY_REQ:
            watch.dirty_req.pop(slot, None)
        if new is DevState.DIRTY_REQ and state is MigState.PRECOPY:
            watch.dirty_req[slot] = now
            self._schedule(now + self.ack_ns + self.e + 1, partial(self._check_dirty_request, watch, slot, now), "")
        if state not in IN_PROGRESS or self.handed_over(watch):
            return
        if new is DevState.ERROR and old is not DevState.ERROR:
            self._must_cancel(watch, Cause(now, MigReason.DEVICE_ERROR, f"slot {slot} entered ERROR"), "VFM-ERR-001")
        elif cause is DevEvent.DEVICE_ERROR and new is DevState.ERROR:  # it failed again: a cause all the same
            watch.causes.append(Cause(now, MigReason.DEVICE_ERROR, f"slot {slot}'s function failed again in ERROR"))
        elif cause is DevEvent.SURPRISE_REMOVAL and old not in (DevState.EMPTY, DevState.UNBOUND):
            what = f"slot {slot}'s function ({old.name}) was surprise-removed"
            self._must_cancel(watch, Cause(now, MigReason.SURPRISE_REMOVAL, what), "VFM-ERR-003")

    def _check_dirty_request(self, watch: Watch, slot: int, since: int) -> None:
        bridge = watch.bridge
        assert bridge is not None
        stuck = watch.ended_ns is None and watch.dirty_req.get(slot) == since and bridge.mig_state is MigState.PRECOPY
        self.checks.record(
            "VFM-TMO-002",
            not stuck,
            lambda: (
                f"migration {watch.number}: slot {slot} in DIRTY_REQ since {_ms(since)} during PRECOPY and no "
                f"ACK_TIMEOUT by {_ms(self.clock.now)} (deadline {_ms(since + self.ack_ns)} + e = {_ms(self.e)})"
            ),
        )

    def _must_cancel(self, watch: Watch, cause: Cause, requirement: str) -> None:
        watch.causes.append(cause)

        def check() -> None:
            done = watch.cancel_ns is not None or watch.ended_ns is not None
            self.checks.record(
                requirement,
                done,
                lambda: f"migration {watch.number}: {cause}, and no CANCEL by {_ms(self.clock.now)}",
            )

        self._schedule(cause.time_ns + self.e + 1, check, requirement)

    def _check_group_reset_after_error(self, watch: Watch) -> None:
        bridge = watch.bridge
        cancel = watch.cancel_ns
        assert bridge is not None
        assert cancel is not None
        reset = any(time >= cancel for time in watch.group_resets)
        errors = [slot for slot, state in enumerate(bridge.dev_states()) if state is DevState.ERROR]
        self.checks.record(
            "VFM-ERR-002",
            reset or not errors,
            lambda: (
                f"migration {watch.number}: cancelled with DEVICE_ERROR at {_ms(cancel)}, MIG_STATE "
                f"{bridge.mig_state.name}, slots {errors} still in ERROR and no group reset by {_ms(self.clock.now)}"
            ),
        )

    def on_bridge_stepped(self, bridge: MigrationBridge, cause: str) -> None:
        """Called first among the bridge's observers: the hypervisor reacts to this step next."""
        if self.depth > 0:
            self.guest_depth = 0  # restored when the step's scope ends
        watch = self.watch_of(bridge)
        if watch is None or not watch.in_progress or watch.consent_withdrawn or cause != "guest":
            return
        withdrawn = [path.upper() for path in watch.consent if not bridge.field(path)]
        if withdrawn:
            watch.consent_withdrawn = True
            self.on_protocol_condition(bridge, f"the guest cleared {', '.join(withdrawn)}")

    def on_protocol_condition(self, bridge: MigrationBridge, what: str) -> None:
        """A condition of VFM-MIG-011: PROTOCOL_ERROR, before the guest's write completes."""
        watch = self.watch_of(bridge)
        if watch is None or not watch.in_progress or bridge.mig_state not in GUEST_HELP or self.handed_over(watch):
            return
        now = self.clock.now
        watch.causes.append(Cause(now, MigReason.PROTOCOL_ERROR, what))
        if watch.cancel_ns is None:
            self.protocol_pending.append((watch, what, now))

    def group_reset_refused(self, bridge: MigrationBridge, error: ProtocolError) -> None:
        """The guest's Secondary Bus Reset reached the bridge while a migration is in progress: who is to blame."""
        watch = self.watch_of(bridge)
        number = watch.number if watch is not None else "?"
        if bridge.mig_state is MigState.STOPPED:  # the guest could only write because its vCPUs ran
            requirement, why = "VFM-MIG-003", "with its vCPUs running in STOPPED"
        else:
            requirement, why = "VFM-MIG-011", "and the group reset reached the bridge before any CANCEL"
        self.checks.record(
            requirement,
            False,
            f"migration {number}: the guest set Secondary Bus Reset at {_ms(self.clock.now)} {why} ({error})",
        )
        self.dead = True  # the bridge refused the reset half-way: nothing more in this world means anything

    def on_bus_master(self, event: Event) -> None:
        if not event.data.get("enabled"):
            return
        watch = self.in_progress()
        function = self.functions.get(str(event.data.get("function")))
        if function is not None:
            self._check_confined(function, "got Bus Master Enable set")
        if self.depth > 0:
            self.guest_depth = 0  # the hypervisor's BME listener runs next; restored when the write's scope ends
        if watch is None or watch.bridge is None or function is None or self.handed_over(watch):
            return
        bridge = watch.bridge
        slot = next((index for index, placed in enumerate(bridge.functions) if placed is function), None)
        if slot is None or bridge.dev_state(slot) not in QUIET_SLOTS:
            return
        watch.rogue = True
        what = f"slot {slot}'s function got BME set while {bridge.dev_state(slot).name}"
        if bridge.mig_state in GUEST_HELP:
            self.on_protocol_condition(bridge, what)
        elif bridge.mig_state is MigState.STOPPED:
            # A cause only if BME is still set when the hypervisor checks (VFM-MIG-012): see _implicit_causes.
            watch.bme_at_stop_ns = self.clock.now

    def on_vcpu(self, event: Event) -> None:
        watch = self.current
        if watch is None or not watch.started:
            return
        host = str(event.data.get("host"))
        now = event.time
        if not event.data.get("running"):
            if host == watch.source.name and watch.in_progress and watch.vcpus_stopped_ns is None:
                watch.vcpus_stopped_ns = now
            return
        if watch.vcpus_stopped_ns is not None and watch.vcpus_resumed_ns is None:
            watch.vcpus_resumed_ns = now
            self._schedule(now + 1, partial(self._check_measured_downtime, watch), "GEN-002")
        if host == watch.source.name:
            if self.handed_over(watch):
                self.checks.record(
                    "VFM-DEST-002",
                    False,
                    f"migration {watch.number}: the guest's vCPUs ran on the source {host} at {_ms(now)}, after the "
                    f"handover point at {_ms(watch.handover_ns or 0)}",
                )
                self.dead = True  # the guest runs on both hosts: nothing more in this world means anything
            elif watch.bridge is not None and watch.bridge.mig_state is MigState.STOPPED and watch.in_progress:
                watch.rogue = True
                self.checks.record(
                    "VFM-MIG-003",
                    False,
                    f"migration {watch.number}: the guest's vCPUs ran on {host} at {_ms(now)} while the bridge is "
                    "STOPPED and no CANCEL came",
                )
            elif watch.cancel_from is MigState.STOPPED:
                self._resuming_from(watch, now)
        elif host == watch.destination.name:
            self._arrived_and_running(watch, now)

    def _check_measured_downtime(self, watch: Watch) -> None:
        """VFM-GEN-002: the downtime the hypervisor measured is the one its host's clock (the suite's) shows."""
        record = getattr(watch.handle, "record", None)
        stopped, resumed = watch.vcpus_stopped_ns, watch.vcpus_resumed_ns
        measured = getattr(record, "downtime_ns", None)
        if stopped is None or resumed is None or not isinstance(measured, int):
            return
        self.checks.record(
            "VFM-GEN-002",
            measured == resumed - stopped,
            f"migration {watch.number}: the guest's vCPUs stopped at {_ms(stopped)} and ran again at {_ms(resumed)} "
            f"on the host's clock, a downtime of {_ms(resumed - stopped)}; the hypervisor measured {_ms(measured)}",
        )

    def _check_measured_total(self, watch: Watch, end: int) -> None:
        """VFM-GEN-002: the duration from START to IDLE that the hypervisor measured is the host clock's."""
        record = getattr(watch.handle, "record", None)
        measured = getattr(record, "total_ns", None)
        start = watch.start_ns
        if start is None or not isinstance(measured, int):
            return
        self.checks.record(
            "VFM-GEN-002",
            measured == end - start,
            f"migration {watch.number} went from START at {_ms(start)} to IDLE at {_ms(end)} on the host's clock, "
            f"{_ms(end - start)}; the hypervisor measured {_ms(measured)}",
        )

    def _arrived_and_running(self, watch: Watch, now: int) -> None:
        handed = self.handed_over(watch)
        self.checks.record(
            "VFM-DEST-003",
            handed,
            f"migration {watch.number}: the guest's vCPUs ran on {watch.destination.name} at {_ms(now)}, before the "
            "source reached the handover point",
        )
        self.checks.record(
            "VFM-FLOW-003",
            watch.arrived_ns is not None,
            f"migration {watch.number}: the guest's vCPUs ran on {watch.destination.name} at {_ms(now)} before ARRIVE",
        )
        if handed:
            self._check_no_lost_write(watch, self.world.guest.memory, f"when the guest ran on {watch.destination.name}")
            self._check_placement(watch.destination, f"when the guest ran on {watch.destination.name}", every=True)

    def _check_no_lost_write(self, watch: Watch, copy: GuestMemory, when: str) -> None:
        """VFM-FLOW-001, no lost write: the destination's copy equals the source's final contents."""
        if watch.lost_checked or watch.rogue or watch.memory is None:
            return  # (with a rogue BME the guest wrote pages nobody could dirty: not the hypervisor's doing)
        watch.lost_checked = True
        lost = copy.differing_pages(watch.memory)
        self.checks.record(
            "VFM-FLOW-001",
            lost == 0,
            f"migration {watch.number}: {when} ({_ms(self.clock.now)}), {lost} of the guest's pages on "
            f"{watch.destination.name} differed from the source's final contents",
        )

    def on_milestone(self, event: Event) -> None:
        watch = self.current
        if watch is None or watch.handover_ns is not None or event.source != watch.source.name:
            return
        if event.data.get("what") == "end" and event.data.get("outcome") == MigrationOutcome.COMPLETED.value:
            watch.handover_ns = event.time
            self._handover_checks(watch)

    def handed_over(self, watch: Watch) -> bool:
        """Whether the source has reached the handover point (its record says so, or it announced it)."""
        if watch.handover_ns is None and watch.handle is not None:
            record = getattr(watch.handle, "record", None)
            if record is not None and record.outcome is MigrationOutcome.COMPLETED:
                watch.handover_ns = self.clock.now
                self._handover_checks(watch)
        return watch.handover_ns is not None

    def _handover_checks(self, watch: Watch) -> None:
        if watch.handover_checked or watch.handover_ns is None:
            return
        watch.handover_checked = True
        at = _ms(watch.handover_ns)
        if watch.dest_memory is not None:
            self._check_no_lost_write(watch, watch.dest_memory, "at the handover point")
        self._phase_left(watch, MigState.STOPPED, watch.handover_ns)
        self._check_nothing_left_out(watch)
        self._ended(watch, watch.handover_ns)
        bme = self._bme_in_stopped(watch) if watch.final_read_bme is None else watch.final_read_bme
        self.checks.record(
            "VFM-MIG-012",
            not bme,
            f"migration {watch.number}: completed (handover at {at}) although a function had BME set after the "
            "vCPUs stopped in STOPPED, when the hypervisor read the dirty log for the last time (PROTOCOL_ERROR "
            "expected)",
        )
        failures = [cause for cause in watch.causes if cause.reason is MigReason.DESTINATION_FAILURE]
        self.checks.record(
            "VFM-DEST-001",
            not failures,
            lambda: f"migration {watch.number}: completed (handover at {at}) after {failures[0]}",
        )
        bridge = watch.dest_bridge
        if bridge is None:
            return
        placed = all(
            isinstance(function, VirtualFunction) and function.in_reset_state
            for function, state in zip(bridge.functions, bridge.dev_states(), strict=False)
            if state is not DevState.EMPTY
        )
        self.checks.record(
            "VFM-DEST-004",
            placed and bridge.mig_state is MigState.STOPPED,
            f"migration {watch.number}: the destination confirmed (handover at {at}) before it had restored the "
            f"bridge (MIG_STATE {bridge.mig_state.name}, STOPPED expected) and placed a function in reset in every "
            f"slot that is not EMPTY (placed: {placed})",
        )

    def _check_nothing_left_out(self, watch: Watch) -> None:
        """At the handover point: every page the log marked was sent since; the destination had the state."""
        at = _ms(watch.handover_ns or 0)
        if watch.intercepted:
            self.checks.record(
                "VFM-SEC-005",
                watch.state_arrived_ns is not None and not watch.crash,
                f"migration {watch.number}: the source reached the handover point at {at} although the destination "
                + ("crashed" if watch.crash else "never received the final state")
                + ": nothing but the guest's own reports can have told it the migration completed",
            )
        memory = watch.memory
        log = None if memory is None else memory.log
        if isinstance(log, WatchedLog) and log.unsent is not None:
            unsent = log.unsent
            log.unsent = None
            if not watch.rogue:  # (the vCPUs ran in STOPPED: the pages they dirtied are VFM-MIG-003's to judge)
                left = np.flatnonzero(unsent)
                self.checks.record(
                    "VFM-SEC-004",
                    left.size == 0,
                    lambda: (
                        f"migration {watch.number}: at the handover point ({at}) {left.size} pages the dirty log had "
                        f"marked (e.g. {left[:8].tolist()}) were never sent after they were marked; the guest wrote "
                        "the bridge's config space during the migration (its reports, and any value it likes)"
                    ),
                )
        if watch.resent is not None:
            missing = np.flatnonzero(~watch.resent)
            self.checks.record(
                "VFM-DIRTY-008",
                missing.size == 0,
                lambda: (
                    f"migration {watch.number}: the dirty log {watch.lost_how} at {_ms(watch.lost_at or 0)} and the "
                    f"migration completed at {at} without {missing.size} pages (e.g. {missing[:8].tolist()}) being "
                    "sent again: neither every page treated as dirty nor a CANCEL with CANCELLED"
                ),
            )

    def on_receive(self, memory: GuestMemory, pages: int, which: Pages | slice | None = None) -> None:
        watch = self.pending or self.current
        if watch is None or (watch.started and not watch.in_progress) or pages == 0:
            return
        if which is not None and watch.memory is not None and memory is not watch.memory:
            log = watch.memory.log
            if isinstance(log, WatchedLog) and log.unsent is not None:
                log.unsent[which] = False
            if watch.resent is not None:
                watch.resent[which] = True
        watch.dest_memory = memory
        precopy = watch.phases.get(MigState.PRECOPY)
        if watch.bridge is not None and watch.bridge.mig_state is MigState.PAUSING:
            watch.sent_in_pausing += pages
        self.checks.record(
            "VFM-DIRTY-006",
            precopy is not None,
            lambda: (
                f"migration {watch.number}: {pages} pages sent to the destination at {_ms(self.clock.now)}, "
                + (
                    f"in {watch.bridge.mig_state.name}, before the bridge entered PRECOPY"
                    if watch.bridge is not None
                    else "before START"
                )
            ),
        )

    def on_harvest(self, memory: GuestMemory) -> None:
        """The hypervisor reads the dirty log; in STOPPED, its last read is the one VFM-MIG-012 checks BME before."""
        watch = self.in_progress()
        if watch is None or watch.bridge is None or memory is not watch.memory or self.world.guest.running:
            return
        if watch.bridge.mig_state is MigState.STOPPED and not self.handed_over(watch):
            watch.final_read_bme = any(
                isinstance(function, VirtualFunction) and function.bus_master for function in watch.bridge.functions
            )

    def on_function_created(self, function: WatchedFunction) -> None:
        self.functions[function.name] = function
        watch = self.pending or self.current
        fresh = watch is not None and (watch is self.pending or watch.in_progress)
        if fresh and watch is not None and not function.name.startswith(f"{watch.source.name}."):
            function.arrival = watch

    def function_access(self, function: WatchedFunction, what: str, *, mailbox: bool = False) -> None:
        """VFM-MIG-005: nobody but the guest touches a fresh function after ARRIVE, before its READY.

        VFM-NOTIF-005: during a migration the hypervisor writes nothing to a function behind the source's bridge
        (no device-specific mailbox); resets are judged elsewhere (VFM-CANCEL-002, VFM-SEC-006).
        """
        if self.resetting is not None:
            return  # (the conventional reset of the bridge the suite asked for resets what is behind it)
        if mailbox and self.guest_depth == 0:
            self._check_no_mailbox(function, what)
        watch = function.arrival
        if watch is None or watch is not self.current or function.slot_ready or self.guest_depth > 0:
            return
        if watch.arrived_ns is None:
            return
        self.checks.record(
            "VFM-MIG-005",
            False,
            f"migration {watch.number}: the hypervisor made {what} to {function.name} at {_ms(self.clock.now)}, "
            f"after ARRIVE ({_ms(watch.arrived_ns)}) and before the guest wrote READY for its slot",
        )

    def function_written(self, function: WatchedFunction) -> None:
        """Before ARRIVE the destination may reset and restore a fresh function, never enable it."""
        watch = function.arrival
        if watch is None or watch is not self.current or function.slot_ready or self.guest_depth > 0:
            return
        if watch.arrived_ns is not None:
            return
        self.checks.record(
            "VFM-MIG-005",
            not function.bus_master and not function.msix_enabled,
            f"migration {watch.number}: the destination left {function.name}, placed for ARRIVE, with BME "
            f"{int(function.bus_master)} and MSI-X enabled and unmasked {int(function.msix_enabled)} at "
            f"{_ms(self.clock.now)}",
        )

    def _check_no_mailbox(self, function: WatchedFunction, what: str) -> None:
        watch = self.in_progress()
        if watch is None or watch.bridge is None or self.handed_over(watch):
            return
        if any(function is placed for placed in watch.bridge.functions):
            self.checks.record(
                "VFM-NOTIF-005",
                False,
                f"migration {watch.number}: the hypervisor made {what} to {function.name}, behind the source's "
                f"bridge, at {_ms(self.clock.now)} during {watch.bridge.mig_state.name}: the guest learns of a "
                "migration through its bridge, never through a function",
            )

    def on_device_interrupt(self, name: str) -> None:
        """An interrupt of a function reaches the guest: the function's own MSI-X message, or the hypervisor's."""
        function = self.functions.get(name)
        if function is None:
            return
        signalled = function.signals > 0
        function.signals -= 1 if signalled else 0
        now = self.clock.now
        arrival = function.arrival
        if (
            arrival is not None
            and arrival is self.current
            and arrival.arrived_ns is not None
            and not function.slot_ready
        ):
            function.unsignalled += 0 if signalled else 1
            self.checks.record(
                "VFM-MIG-013",
                signalled,
                f"migration {arrival.number}: the hypervisor injected an interrupt of {function.name}, placed for "
                f"ARRIVE ({_ms(arrival.arrived_ns)}), at {_ms(now)}, before the guest wrote READY for its slot and "
                "without the function signalling it",
            )
        watch = self.in_progress()
        behind = (
            watch is not None
            and watch.bridge is not None
            and not self.handed_over(watch)
            and any(function is placed for placed in watch.bridge.functions)
        )
        if watch is not None and (behind or (arrival is watch and not function.slot_ready)):
            watch.unsignalled += 0 if signalled else 1
            self.checks.record(
                "VFM-NOTIF-005",
                signalled,
                f"migration {watch.number}: the hypervisor injected an interrupt of {function.name} at {_ms(now)}, "
                "during the migration, that the function never signalled",
            )

    def function_dma(self, function: WatchedFunction) -> None:
        """VFM-SEC-007: a function's DMA lands in the memory of the guest it is assigned to, nowhere else."""
        if function.memory is not self._guest_memory():
            self._check_confined(function, "wrote by DMA")

    def _check_confined(self, function: WatchedFunction, what: str) -> None:
        """VFM-SEC-007: a function that can DMA reaches the memory of the guest where it runs, and only that."""
        guest = self._guest_memory()
        holder = next(
            (
                host
                for host in (*self.world.hosts, self.far)
                if host is not None
                and host.bridge_or_none is not None
                and any(function is placed for placed in host.bridge.functions)
            ),
            None,
        )
        if holder is None:
            return  # (behind no bridge: unassigned, or VFM-DISC-002's to judge at START)
        if holder.guest is self.world.guest:
            allowed = guest
            whose = "the guest's memory"
        else:
            incoming = getattr(holder, "incoming", None)
            allowed = getattr(incoming, "memory", None)  # (a destination's copy, before the guest arrives)
            whose = f"{holder.name}'s copy of the guest's memory"
        mapped = function.memory
        self.checks.record(
            "VFM-SEC-007",
            mapped is not None and mapped is allowed,
            lambda: (
                f"{function.name}, behind {holder.name}'s bridge, {what} at {_ms(self.clock.now)} with its DMA "
                + ("reaching no memory" if mapped is None else "reaching memory that is not " + whose)
                + (" (the memory of another host's copy of the guest)" if mapped is not None else "")
            ),
        )

    def _check_placement(self, host: Hypervisor, when: str, *, every: bool = False) -> None:
        """VFM-DISC-003: the guest finds each function at its slot's DEV_DEVFN (``every``: and at no other device)."""
        bridge = host.bridge_or_none
        if bridge is None:
            return
        devfns = {bridge.devfn(slot): slot for slot in range(bridge.num_slots)}
        for devfn, slot in devfns.items():
            function = bridge.functions[slot]
            if function is None:
                continue
            found = host.function_at(devfn)
            where = "nothing" if found is None else getattr(found, "name", repr(found))
            self.checks.record(
                "VFM-DISC-003",
                found is function,
                ""
                if found is function
                else f"{host.name} {when} ({_ms(self.clock.now)}): slot {slot} holds {getattr(function, 'name', '?')} "
                f"and its DEV_DEVFN is 0x{devfn:02x}, but the guest finds {where} there",
            )
            if function.bus_master and isinstance(function, WatchedFunction):
                self._check_confined(function, "has Bus Master Enable set")
        if every:
            # (function 0 of every device number: where a function the hypervisor put elsewhere shows up first)
            devices = range(0, 256, 8)
            elsewhere = [devfn for devfn in devices if devfn not in devfns and host.function_at(devfn) is not None]
            self.checks.record(
                "VFM-DISC-003",
                not elsewhere,
                lambda: (
                    f"{host.name} {when} ({_ms(self.clock.now)}): the guest finds functions at devfn "
                    f"{', '.join(hex(devfn) for devfn in elsewhere)}, which no slot's DEV_DEVFN holds"
                ),
            )

    def on_function_reset(self, function: WatchedFunction, how: str) -> None:
        """VFM-CANCEL-002: no reset of a source function during the migration but those chapter 7 calls for."""
        watch = self.in_progress()
        if self.resetting is not None:
            return  # (a conventional reset of the bridge resets whatever is behind it: VFM-CAP-008 judges it)
        if watch is None or watch.bridge is None or how != "flr" or self.guest_depth > 0 or function.failed:
            return
        if function in watch.bridge.functions and not self.handed_over(watch):
            self.checks.record(
                "VFM-CANCEL-002",
                False,
                f"migration {watch.number}: {function.name}, behind the source's bridge, reset by the hypervisor at "
                f"{_ms(self.clock.now)} during {watch.bridge.mig_state.name} although it had not failed",
            )

    # ------------------------------------------------------------------ rules: time, the guest and its drivers

    @rule(duration_us=st.sampled_from(DURATIONS_US) | st.integers(1, 60_000), start=st.booleans())
    @step(
        *("VFM-TMO-001", "VFM-TMO-002", "VFM-TMO-003", "VFM-TMO-005", "VFM-TIME-001", "VFM-TIME-004", "VFM-DEST-005"),
        *WATCHED_THROUGHOUT,
    )
    def time_passes(self, duration_us: int, start: bool) -> None:
        """Time passes (after the management layer starts a migration, if ``start`` and none is under way)."""
        if self.dead:
            return
        if start and self.in_progress() is None:
            self._start(to_far=False)
        self._world(partial(self.clock.advance, duration_us * 1000))

    @rule(phase=st.sampled_from(PHASES))
    @step(
        *("VFM-TMO-001", "VFM-TMO-003", "VFM-TMO-005", "VFM-TIME-001", "VFM-MIG-003", "VFM-FLOW-001"),
        *WATCHED_THROUGHOUT,
    )
    def run_until(self, phase: str) -> None:
        """Let time pass until the migration reaches ``phase`` (starting one if none is under way)."""
        if self.dead:
            return
        if self.in_progress() is None:
            self._start(to_far=False)
        self._run_until(phase)

    def _run_until(self, phase: str) -> None:
        watch = self.current
        if watch is None or not watch.in_progress:
            return
        target = None if phase == "end" else MigState[phase]

        def waiting() -> bool:
            if watch.ended_ns is not None and (target is not MigState.ARRIVED or watch.handover_ns is None):
                return False
            if target is MigState.ARRIVED:
                return watch.arrived_ns is None
            return target is None or target not in watch.phases

        self._world(lambda: self.clock.run_while(waiting, self.clock.now + RUN_LIMIT_NS))

    @rule(slot=st.integers(0, 2), up=st.booleans())
    @step()
    def interface(self, slot: int, up: bool) -> None:
        if self.dead:
            return
        driver = self.world.drivers[slot % len(self.world.drivers)]
        if self.world.guest.running:
            self.world.guest.after(0, driver.open if up else driver.close, "interface")

    @rule(slot=st.integers(0, 2), load=st.booleans())
    @step("VFM-TMO-002")
    def binding(self, slot: int, load: bool) -> None:
        if self.dead:
            return
        driver = self.world.drivers[slot % len(self.world.drivers)]
        if not self.world.guest.running:
            return
        if load:
            self.world.guest.after(0, partial(_probe, driver), "driver load")
        else:
            self.world.guest.after(0, driver.unload, "driver unload")

    def _when(self, at: str, label: str, action: Callable[[], None]) -> None:
        """Do ``action`` now, or when the migration (this one, or the next) enters the MIG_STATE ``at``."""
        if at == "now":
            self._world(action)
            self.checks.raise_pending()
        else:
            self.triggers.append((MigState[at], label, action))

    def _fire(self, state: MigState) -> None:
        """The migration entered ``state``: the actions armed for it happen just after that step."""
        armed = [trigger for trigger in self.triggers if trigger[0] is state]
        self.triggers = [trigger for trigger in self.triggers if trigger[0] is not state]
        for _, label, action in armed:
            self.clock.schedule(0, partial(self._fired, action), f"suite: {label}")

    def _fired(self, action: Callable[[], None]) -> None:
        if not self.dead:
            action()

    def _guest_bridge(self) -> MigrationBridge | None:
        """The bridge as the guest reaches it, if the guest runs (guest code needs running vCPUs)."""
        host = self.guest_host()
        if host is None or not self.world.guest.running:
            return None
        return host.bridge_or_none

    @rule(hold=st.booleans(), at=st.sampled_from(GUEST_AT))
    @step("VFM-MIG-011", "VFM-CANCEL-002")
    def guest_group_reset(self, hold: bool, at: str) -> None:
        """The guest sets Secondary Bus Reset (and clears it, unless it holds the bus in reset until next time)."""
        if self.dead:
            return
        self._when(at, "the guest sets Secondary Bus Reset", partial(self._group_reset_by_guest, hold))

    def _group_reset_by_guest(self, hold: bool) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        control = bridge.config_read(PCI_BRIDGE_CONTROL, 2)

        def toggle() -> None:
            if control & PCI_BRIDGE_CTL_BUS_RESET:
                bridge.config_write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)
                return
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control | PCI_BRIDGE_CTL_BUS_RESET)
            if not hold:
                bridge.config_write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)

        self._as_guest(toggle)

    @rule(which=st.sampled_from(CONSENT), withdraw=st.booleans(), at=st.sampled_from(GUEST_AT))
    @step("VFM-MIG-011", "VFM-MIG-001")
    def consent(self, which: str, withdraw: bool, at: str) -> None:
        """The guest clears one of the fields that say it takes part, or sets it again."""
        if self.dead:
            return
        label = f"the guest {'clears' if withdraw else 'sets'} {which.upper()}"
        self._when(at, label, partial(self._consent, which, withdraw))

    def _consent(self, which: str, withdraw: bool) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        placed = find_field(bridge.num_slots, which)
        offset, width, mask = bridge.cap + placed.offset, placed.register.size, placed.field.mask
        value = bridge.config_read(offset, width)
        if withdraw and value & mask:
            self.saved_consent[which] = value & mask
            self._as_guest(partial(bridge.config_write, offset, width, value & ~mask))
        elif not withdraw and which in self.saved_consent:
            restored = value | self.saved_consent.pop(which)
            self._as_guest(partial(bridge.config_write, offset, width, restored))
            self.world.guest.after(0, self.world.core.interrupt, "the migration core looks again")

    @rule(at=st.sampled_from(GUEST_AT))
    @step("VFM-SEC-004", "VFM-SEC-005", "VFM-MIG-011")
    def guest_claims_completion(self, at: str) -> None:
        """The guest writes values that say the migration completed: ARRIVED, COMPLETED, READY, a new GENERATION.

        The registers are read-only to the guest, so the bridge keeps its own values; a hypervisor that took any
        guest-written value for the destination's word would end the migration or skip pages on it.
        """
        if self.dead:
            return
        self._when(at, "the guest claims the migration completed", self._claim_completion)

    def _claim_completion(self) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        values = {
            "mig_state": MigState.ARRIVED,
            "mig_reason": MigReason.COMPLETED,
            "generation": bridge.generation + 1,
            **{f"device[{slot}].dev_state": DevState.READY for slot in range(bridge.num_slots)},
        }
        for path, value in values.items():
            placed = find_field(bridge.num_slots, path)
            offset, width = bridge.cap + placed.offset, placed.register.size
            self._as_guest(partial(bridge.config_write, offset, width, int(value) & placed.field.mask))

    @rule(at=st.sampled_from(("PREPARE", "PRECOPY", "PAUSING")), read_fails=st.booleans())
    @step("VFM-DIRTY-008", "VFM-CANCEL-001", "VFM-MIG-010", "VFM-MIG-001", "VFM-GEN-003", "VFM-DISC-002")
    def dirty_log_loses(self, at: str, read_fails: bool) -> None:
        """The host's dirty log of the guest's memory loses its entries (an overflow) during a migration, or
        (``read_fails``) the hypervisor's next read of it fails.

        The loss comes as the migration under way (or one the management layer starts now) enters ``at``, or at
        once if it is past that; the migration then runs to its end, so that the handover shows whether every page
        went again.
        """
        if self.dead:
            return
        watch = self.in_progress()
        if watch is None:
            self._start(to_far=False)
            watch = self.in_progress()
        if watch is None:
            return
        twist = self._fail_dirty_log_read if read_fails else self._lose_dirty_log
        if MigState[at] in watch.phases:
            self._world(twist)
        else:
            what = "the next read of the dirty log fails" if read_fails else "the dirty log loses its entries"
            self.triggers.append((MigState[at], what, twist))
        self._run_until("end")
        self.checks.raise_pending()

    def _watched_log(self) -> tuple[Watch, WatchedLog] | None:
        """The migration under way and its source's dirty log, while the guest still helps it."""
        watch = self.in_progress()
        memory = None if watch is None else watch.memory
        if watch is None or memory is None or self.handed_over(watch) or watch.bridge is None:
            return None
        log = memory.log
        if not isinstance(log, WatchedLog) or not log.enabled or watch.bridge.mig_state not in GUEST_HELP:
            return None
        return watch, log

    def _every_page_due(self, watch: Watch, memory: GuestMemory, how: str) -> None:
        """From now on, every page must go to the destination again before the handover (VFM-DIRTY-008)."""
        now = self.clock.now
        if watch.resent is None:
            watch.lost_at, watch.lost_how = now, how
            watch.resent = np.zeros(memory.num_pages, dtype=np.bool_)
        else:
            watch.resent[:] = False  # (lost again: every page is due again)
        watch.causes.append(Cause(now, MigReason.CANCELLED, f"the dirty log {how}"))

    def _lose_dirty_log(self) -> None:
        if (found := self._watched_log()) is None:
            return
        watch, log = found
        self._every_page_due(watch, log.memory, "lost its entries")
        log.lose()

    def _fail_dirty_log_read(self) -> None:
        if (found := self._watched_log()) is not None:
            watch, log = found
            log.fail_next_read = watch

    def read_fails(self, watch: Watch, memory: GuestMemory) -> bool:
        """The hypervisor reads the log the suite set to fail: it fails if ``watch`` is still under way."""
        if watch is not self.in_progress() or self.handed_over(watch):
            return False
        self._every_page_due(watch, memory, "failed a read")
        return True

    @rule(slot=st.integers(0, 2), at=st.sampled_from(GUEST_AT))
    @step("VFM-MIG-011")
    def bogus_report(self, slot: int, at: str) -> None:
        """A driver writes a DRV_STATE value no version defines: the bridge rejects it."""
        if self.dead:
            return
        self._when(at, "a report the bridge rejects", partial(self._bogus_report, slot % len(self.world.drivers)))

    def _bogus_report(self, slot: int) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        offset = bridge.cap + find_field(bridge.num_slots, f"device[{slot}].dev_ctrl.drv_state").offset
        reserved = bridge.config_read(offset, 1) & ~0x7
        self._as_guest(partial(bridge.config_write, offset, 1, reserved | 5))

    @rule(slot=st.integers(0, 2), at=st.sampled_from((*GUEST_AT, "STOPPED")))
    @step("VFM-MIG-011", "VFM-MIG-001", "VFM-MIG-012")
    def rogue_bus_master(self, slot: int, at: str) -> None:
        """Something in the guest sets BME on a function whose slot is UNBOUND or PAUSED.

        ``STOPPED``: a write under way on another vCPU lands just as the vCPUs stop.
        """
        if self.dead:
            return
        slot %= len(self.world.drivers)
        if at != "STOPPED":
            self._when(at, "the guest sets BME where it must not", partial(self._rogue_bus_master, slot))
            return
        watch = self.in_progress()
        if watch is None:
            self.armed.rogue_at_stop = slot
        elif MigState.STOPPED not in watch.phases:
            watch.rogue_at_stop = slot

    def _rogue_bus_master(self, slot: int) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        function = bridge.functions[slot]
        if isinstance(function, VirtualFunction) and bridge.dev_state(slot) in QUIET_SLOTS:
            self._as_guest(partial(function.set_bus_master, True))

    # ------------------------------------------------------------------ rules: the devices

    @rule(slot=st.integers(0, 2), hang=st.sampled_from(("now", "at-pause", "no")))
    @step("VFM-TMO-001", "VFM-TMO-002", "VFM-TMO-003", "VFM-TMO-005")
    def driver_silence(self, slot: int, hang: str) -> None:
        """A driver stops answering any request, now or from its next PAUSE_REQ on (or answers again, at once)."""
        if self.dead:
            return
        driver = self.world.drivers[slot % len(self.world.drivers)]
        if hang == "now":
            setattr(driver, "act_on", _ignore_requests)  # noqa: B010 - this driver instance only
        elif hang == "at-pause":
            setattr(driver, "act_on", partial(_hang_at_pause, driver))  # noqa: B010 - this driver instance only
        elif "act_on" in vars(driver):
            delattr(driver, "act_on")
            self.world.guest.after(0, partial(self.world.core.look_at, driver.slot), "the driver answers again")

    @rule(slot=st.integers(0, 2), drain=st.sampled_from([0.0, 0.5, 6.0]))
    @step("VFM-TMO-003", "VFM-TMO-004", "VFM-TMO-005")
    def slow_drain(self, slot: int, drain: float) -> None:
        """A function whose DMA drains in ``drain`` x ACK_TIMEOUT_MS (0: its usual 50 us)."""
        if self.dead:
            return
        function = self.world.drivers[slot % len(self.world.drivers)].function
        if isinstance(function, VirtualFunction):
            function.timing = DeviceTiming(drain_ns=int(drain * self.ack_ns)) if drain else DeviceTiming()

    @rule(slot=st.integers(0, 2), driver_hangs=st.booleans(), at=st.sampled_from(HOST_AT))
    @step("VFM-ERR-001", "VFM-ERR-002", "VFM-ABS-004", "VFM-CANCEL-001", "VFM-DEV-012")
    def device_error(self, slot: int, driver_hangs: bool, at: str) -> None:
        """A function fails (and its driver, stuck in its error handling, answers nothing until told)."""
        if self.dead:
            return
        action = partial(self._device_error, slot % len(self.world.drivers), driver_hangs)
        self._when(at, "a function fails", action)

    def _device_error(self, slot: int, driver_hangs: bool) -> None:
        host = self.guest_host()
        if host is None or host.bridge_or_none is None or host.bridge.functions[slot] is None:
            return
        if driver_hangs:
            setattr(self.world.drivers[slot], "act_on", _ignore_requests)  # noqa: B010 - this driver instance only
        host.function_failed(slot)

    @rule(slot=st.integers(0, 2), at=st.sampled_from(HOST_AT))
    @step("VFM-ERR-003", "VFM-CANCEL-001", "VFM-DEV-012")
    def surprise_removal(self, slot: int, at: str) -> None:
        if self.dead:
            return
        self._when(at, "a function disappears", partial(self._surprise_removal, slot % len(self.world.drivers)))

    def _surprise_removal(self, slot: int) -> None:
        host = self.guest_host()
        if host is not None and host.bridge_or_none is not None and host.bridge.functions[slot] is not None:
            host.surprise_remove(slot)

    @rule(slot=st.integers(0, 4), at=st.sampled_from(HOST_AT))
    @step("VFM-CANCEL-002", "VFM-DISC-002", "VFM-DISC-003", "VFM-DEV-012")
    def hot_add(self, slot: int, at: str) -> None:
        """The management layer asks for a function in an empty slot (refused during a migration)."""
        if self.dead:
            return
        self._when(at, "the management layer hot-adds a function", partial(self._hot_add, slot))

    def _hot_add(self, slot: int) -> None:
        host = self.guest_host()
        if host is None or host.bridge_or_none is None or host.bridge.dev_state(slot) is not DevState.EMPTY:
            return
        try:
            host.assign_function(slot)
        except MigrationError:
            return
        drivers = self.world.drivers
        if slot < len(drivers):  # slots beyond the guest's drivers keep an UNBOUND function
            self.world.guest.after(ms(1), partial(_probe, drivers[slot]), "the OS probes the new function")

    # ------------------------------------------------------------------ rule: scenarios

    @rule(kind=st.sampled_from(DRIVER_SCENARIOS), slot=st.integers(0, 2))
    @step(
        *("VFM-TMO-001", "VFM-TMO-002", "VFM-TMO-003", "VFM-TMO-005", "VFM-MIG-001", "VFM-MIG-012"),
        *WATCHED_THROUGHOUT,
    )
    def driver_scenario(self, kind: str, slot: int) -> None:
        """A migration with a driver that hangs, binds late and silent, or leaves BME set where it must not."""
        if not self.dead:
            self._scenario(kind, slot, "PRECOPY")

    @rule(kind=st.sampled_from(FUNCTION_SCENARIOS), slot=st.integers(0, 2), phase=st.sampled_from(TWIST_PHASES))
    @step(
        *("VFM-ERR-001", "VFM-ERR-002", "VFM-ERR-003", "VFM-MIG-001", "VFM-CANCEL-001", "VFM-CANCEL-002"),
        *("VFM-DISC-002", "VFM-DISC-003", "VFM-DEV-012", "VFM-GEN-002"),
    )
    def function_scenario(self, kind: str, slot: int, phase: str) -> None:
        """A migration during which (or just before which) a function fails, disappears or is hot-added."""
        if not self.dead:
            self._scenario(kind, slot, phase)

    @rule(kind=st.sampled_from(GUEST_SCENARIOS), slot=st.integers(0, 2), phase=st.sampled_from(TWIST_PHASES))
    @step("VFM-MIG-011", "VFM-MIG-010", "VFM-CANCEL-001", "VFM-SEC-004", "VFM-SEC-005", "VFM-GEN-002")
    def guest_scenario(self, kind: str, slot: int, phase: str) -> None:
        """A migration during which the guest withdraws its consent, resets the bridge or writes a bad report."""
        if not self.dead:
            self._scenario(kind, slot, phase)

    @rule(kind=st.sampled_from(MANAGEMENT_SCENARIOS), phase=st.sampled_from(TWIST_PHASES))
    @step(
        *("VFM-DEST-001", "VFM-DEST-005", "VFM-VER-007", "VFM-TIME-001", "VFM-TIME-002", "VFM-CANCEL-001"),
        *("VFM-CAP-008", "VFM-DIRTY-007"),
        *WATCHED_THROUGHOUT,
    )
    def management_scenario(self, kind: str, phase: str) -> None:
        """A migration that the management layer cancels, whose destination fails, or that cannot converge."""
        if not self.dead:
            self._scenario(kind, 0, phase)

    def _scenario(self, kind: str, slot: int, phase: str) -> None:
        """Once the migration under way (if any) has ended: a migration with one known-tricky twist.

        ``slot`` is the function or driver concerned, ``phase`` the MIG_STATE in which the twist comes, for the
        kinds with a twist during the migration (in STOPPED the vCPUs are stopped: guest twists come in PAUSING).
        """
        self._world(self._settle)
        slot %= len(self.world.drivers)
        driver = self.world.drivers[slot]
        if kind == "silent-late-binder":
            self._late_binder(driver)
            return
        setup: dict[str, Callable[[], None]] = {
            "driver-hangs-at-pause": partial(setattr, driver, "act_on", partial(_hang_at_pause, driver)),
            "silent-driver": partial(setattr, driver, "act_on", _ignore_requests),
            "device-error-then-start": partial(self._world, partial(self._device_error, slot, False)),
            "destination-refuses": partial(setattr, self.armed, "destination", "refuse"),
            "destination-crashes": partial(setattr, self.armed, "destination", "crash"),
            "bus-master-as-vcpus-stop": partial(setattr, self.armed, "rogue_at_stop", slot),
            "bus-master-on-unbound": partial(self._unbound_bus_master, driver),
        }
        twists: dict[str, Callable[[], None]] = {
            "device-error-driver-hangs": partial(self._device_error, slot, True),
            "surprise-removal": partial(self._surprise_removal, slot),
            "consent-withdrawn": partial(self._consent, CONSENT[slot], True),
            "guest-group-reset": partial(self._group_reset_by_guest, False),
            "rejected-report": partial(self._bogus_report, slot),
            "hot-add": partial(self._hot_add, len(self.world.drivers)),
            "cancel": self._cancel,
            "platform-reset": self._platform_reset,
            "dirty-log-loss": self._lose_dirty_log,
        }
        if kind in setup:
            setup[kind]()
        if kind in twists:
            at = "PAUSING" if kind in GUEST_TWISTS and phase == "STOPPED" else phase  # guest code needs vCPUs
            self.triggers.append((MigState[at], kind, twists[kind]))
        storm, self.storm = self.storm, self.storm or kind == "cpu-storm"
        self._start(to_far=kind == "far-destination")
        self._run_until("end")
        self._world(partial(self.clock.advance, ms(5)))
        self._recover(driver)
        if kind == "consent-withdrawn":
            self._world(partial(self._consent, CONSENT[slot], False))
        elif kind == "bus-master-on-unbound":  # the driver binds again: its probe resets the function
            self.world.guest.after(0, partial(_probe, driver), "driver load")
            self._world(partial(self.clock.advance, ms(1)))
        self.storm = storm
        self.checks.raise_pending()

    def _settle(self) -> None:
        """Let the migration under way end, and the bridge return to IDLE with the bus out of reset."""
        clock = self.clock
        watch = self.in_progress()
        if watch is not None and watch.start_ns is not None:
            bound = MIGRATION.bound_ns(ACK_TIMEOUT_MS)
            clock.run_while(partial(_running, watch), watch.start_ns + bound + self.e + 2)
        clock.advance(ms(1))
        host = self.guest_host()
        if host is not None and host.bridge_or_none is not None:
            clock.run_while(partial(_settling, host.bridge), clock.now + RUN_LIMIT_NS)

    def _recover(self, driver: VfDriver) -> None:
        """A silenced driver answers again, looking at its slot at once."""
        if "act_on" in vars(driver):
            delattr(driver, "act_on")
            self.world.guest.after(0, partial(self.world.core.look_at, driver.slot), "the driver answers again")
            self._world(partial(self.clock.advance, ms(1)))

    def _late_binder(self, driver: VfDriver) -> None:
        """A driver binds during PRECOPY and never answers the DIRTY_REQ that catch-up gives it (VFM-TMO-002)."""
        guest = self.world.guest
        guest.after(0, driver.unload, "driver unload")
        self._world(partial(self.clock.advance, ms(1)))
        self._start(to_far=False)
        self._run_until("PRECOPY")
        setattr(driver, "act_on", _ignore_requests)  # noqa: B010 - this driver instance only
        guest.after(0, partial(_probe, driver), "driver load")
        self._run_until("end")
        self._world(partial(self.clock.advance, ms(5)))
        self._recover(driver)
        self.checks.raise_pending()

    def _unbound_bus_master(self, driver: VfDriver) -> None:
        """A driver unbinds and something else in the guest sets BME on the function (VFM-MIG-001 refuses it)."""
        guest = self.world.guest
        guest.after(0, driver.unload, "driver unload")
        self._world(partial(self.clock.advance, ms(1)))
        self._world(partial(self._rogue_bus_master, driver.slot))

    # ------------------------------------------------------------------ rules: the management layer and the destination

    @rule(
        far=st.booleans(),
        destination=st.sampled_from(("works", "refuses", "crashes")),
        until=st.sampled_from(("", "PRECOPY", "PAUSING", "STOPPED")),
    )
    @step(
        *("VFM-MIG-001", "VFM-GEN-003", "VFM-VER-007", "VFM-DIRTY-005", "VFM-DIRTY-006", "VFM-ABS-004"),
        *("VFM-DISC-002", "VFM-DIRTY-007", "VFM-DEV-012"),
    )
    def start_migration(self, far: bool, destination: str, until: str) -> None:
        """The management layer starts a migration, to the other host or to the one that must refuse it.

        ``destination``: whether the destination works, or refuses the final state, or crashes before it confirms.
        """
        if self.dead:
            return
        if destination != "works" and self.in_progress() is None:
            self.armed.destination = "crash" if destination == "crashes" else "refuse"
        self._start(far)
        if until:
            self._run_until(until)
        self.checks.raise_pending()

    def _start(self, to_far: bool) -> None:
        host = self.guest_host()
        if host is None or self.dead or self.in_progress() is not None or host.bridge_or_none is None:
            return
        if to_far and "VFM-VER-007" in self.checks.disabled:
            return  # found already: in this world it would carry the guest away
        destination = self.far if to_far else self.other(host)
        assert destination is not None
        problem = self._start_problem(host.bridge)
        if destination.guest is not None or destination.incoming is not None:
            problem = problem or f"the destination {destination.name} is busy"
        if to_far:
            problem = problem or f"{destination.name} tracks dirty memory finer than 2^{PAGE_SHIFT} bytes"
        watch = Watch(len(self.watches) + 1, host, destination)
        self.pending = watch
        handles: list[Any] = []
        try:
            self._world(lambda: handles.append(host.migrate_to(destination, watch.number)))
        except MigrationError as error:
            refused = str(error)
        else:
            refused = ""
        finally:
            self.pending = None
        received = any(other.destination is host and other.handover_ns is not None for other in self.watches)
        if problem is None:
            guest = "the guest it had received" if received else "the guest"
            self.checks.that(
                "VFM-GEN-003",
                not refused,
                f"{host.name} refused to migrate {guest} to {destination.name} at {_ms(self.clock.now)} although "
                f"every start condition holds: {refused}",
            )
        if not handles or not watch.started:
            return
        watch.handle = handles[0]
        watch.incoming = getattr(destination, "incoming", None)
        self._intercept_destination(watch)
        armed, self.armed = self.armed, Armed()
        if armed.destination:
            self._destination_fails(watch, crash=armed.destination == "crash")
        watch.rogue_at_stop = armed.rogue_at_stop

    def _finish_migrations(self) -> None:
        clock = self.clock
        bound = MIGRATION.bound_ns(ACK_TIMEOUT_MS)
        for watch in self.watches:
            if watch.start_ns is not None and watch.in_progress:
                self._world(partial(clock.run_while, partial(_running, watch), watch.start_ns + bound + self.e + 2))
        self._world(partial(clock.advance, ms(5)))  # the handover message, and the checks due meanwhile

    def _intercept_destination(self, watch: Watch) -> None:
        """Watch the destination receive the final state: it may refuse it (armed) or crash (armed)."""
        incoming = watch.incoming
        receive = getattr(incoming, "receive_state", None)
        if incoming is None or receive is None:
            return

        watch.intercepted = True

        def receive_state(*args: Any, **kwargs: Any) -> None:
            watch.state_arrived_ns = self.clock.now
            if watch.crash:
                return  # the destination host crashed: nothing answers
            if watch.refuse or watch.destination is self.far:
                what = "the destination refused the final state"
                self._must_cancel_later(watch, Cause(self.clock.now, MigReason.DESTINATION_FAILURE, what))
            receive(*args, **kwargs)

        setattr(incoming, "receive_state", receive_state)  # noqa: B010 - this migration's destination only

    def _must_cancel_later(self, watch: Watch, cause: Cause) -> None:
        watch.causes.append(cause)
        due = cause.time_ns + MIGRATION.link_latency_ns + self.e

        def check() -> None:
            self.checks.record(
                "VFM-DEST-001",
                watch.cancel_ns is not None or watch.ended_ns is not None,
                lambda: (
                    f"migration {watch.number}: {cause}; no CANCEL by {_ms(self.clock.now)} (the report takes "
                    f"{_ms(MIGRATION.link_latency_ns)}, + e = {_ms(self.e)})"
                ),
            )

        self._schedule(due + 1, check, "VFM-DEST-001")

    @rule(at=st.sampled_from(HOST_AT))
    @step("VFM-CANCEL-001", "VFM-MIG-010", "VFM-TMO-005", "VFM-GEN-002", "VFM-DEV-012")
    def cancel(self, at: str) -> None:
        """The management layer cancels the migration."""
        if self.dead:
            return
        self._when(at, "the management layer cancels", self._cancel)

    def _cancel(self) -> None:
        watch = self.in_progress()
        if watch is None or watch.handle is None or watch.bridge is None:
            return
        if watch.bridge.mig_state in IN_PROGRESS and not self.handed_over(watch):
            watch.causes.append(Cause(self.clock.now, MigReason.CANCELLED, "the management layer cancelled"))
        watch.handle.cancel(MigReason.CANCELLED)

    @rule(at=st.sampled_from(HOST_AT))
    @step("VFM-CAP-008", "VFM-CANCEL-001", "VFM-MIG-010", "VFM-DEV-012")
    def platform_reset(self, at: str) -> None:
        """The management layer resets the guest's platform: a conventional reset of the bridge."""
        if self.dead:
            return
        self._when(at, "a conventional reset of the bridge", self._platform_reset)

    def _platform_reset(self) -> None:
        host = self.guest_host()
        if host is None or host.bridge_or_none is None:
            return
        bridge = host.bridge
        watch = self.watch_of(bridge)
        state = bridge.mig_state
        if watch is not None and watch.in_progress and state in IN_PROGRESS and not self.handed_over(watch):
            watch.causes.append(Cause(self.clock.now, MigReason.CANCELLED, "a conventional reset of the bridge"))
        self.resetting, self.reset_state, self.reset_cancel = bridge, state, None
        try:
            host.reset_bridge()
        finally:
            self.resetting = None
        self._reboot_guest()

    def _reboot_guest(self) -> None:
        """After the reset the guest's OS sets the bridge up again and binds its drivers afresh."""
        guest = self.world.guest
        core = self.world.core

        def setup() -> None:
            bridge = self._guest_bridge()
            if bridge is None:
                return
            firmware_setup(bridge)
            core.probe()
            for driver in self.world.drivers:
                driver.unload()

        guest.after(0, setup, "the guest after a platform reset")
        for driver in self.world.drivers:
            guest.after(ms(1), partial(_probe, driver), "driver load")

    @rule(crash=st.booleans())
    @step("VFM-DEST-001", "VFM-DEST-005")
    def destination_fails(self, crash: bool) -> None:
        """The destination (of this migration, or of the next) will refuse the final state, or crash."""
        if self.dead:
            return
        watch = self.in_progress()
        if watch is None:
            self.armed.destination = "crash" if crash else "refuse"
        elif watch.state_arrived_ns is None:
            self._destination_fails(watch, crash=crash)

    def _destination_fails(self, watch: Watch, *, crash: bool) -> None:
        if crash:
            watch.crash = True
        elif watch.incoming is not None and hasattr(watch.incoming, "fail_on_state"):
            watch.incoming.fail_on_state = "injected by the conformance suite"
            watch.refuse = True

    # ------------------------------------------------------------------ invariants and the end

    @invariant()
    @step()
    def findings(self) -> None:
        if self.sim is not None:
            self.checks.raise_pending()

    @invariant()
    @step("VFM-DISC-003", "VFM-SEC-007")
    def placement(self) -> None:
        """Where the guest runs, it finds each function at its slot's DEV_DEVFN, confined to the guest's memory."""
        if self.sim is None or self.dead:
            return
        host = self.guest_host()
        if host is not None:
            self._check_placement(host, "after a step")
        self.checks.raise_pending()

    def teardown(self) -> None:
        if self.sim is not None and not self.dead and sys.exc_info()[0] is None:
            self.final_checks()  # (after a finding the example is over: Hypothesis wants that finding, not another)

    @step(
        *("VFM-TIME-004", "VFM-SEC-006", "VFM-DEST-005", "VFM-TMO-005", "VFM-CAP-008", "VFM-DISC-002"),
        *WATCHED_THROUGHOUT,
    )
    def final_checks(self) -> None:
        """Every migration runs to its end; then the finale (one more migration, faults and all, or a scenario)."""
        clock = self.clock
        self._finish_migrations()
        if self.finale in SCENARIO_KINDS and not self.dead:
            self._scenario(self.finale, 0, self.finale_phase)
        elif self.finale == "migrate" and not self.dead:
            self._world(self._settle)
            self._start(to_far=False)
        self._finish_migrations()
        self.checks.raise_pending()
        for watch in self.watches:
            if watch.handover_ns is None:
                continue
            # Violations were recorded as they happened; this one passes for the whole run.
            self.checks.record("VFM-DEST-002", True, "")
            source = watch.bridge
            assert source is not None
            for slot, function in enumerate(source.functions):  # (a function surprise-removed since is gone)
                if not isinstance(function, WatchedFunction):
                    continue
                reset = function.last_reset_ns
                self.checks.that(
                    "VFM-SEC-006",
                    reset is not None and reset >= watch.handover_ns,
                    f"migration {watch.number}: slot {slot}'s source function {function.name} was never reset "
                    f"after the handover point at {_ms(watch.handover_ns)} (last reset: "
                    f"{'never' if reset is None else _ms(reset)}; now {_ms(clock.now)})",
                )


def _running(watch: Watch) -> bool:
    return watch.in_progress


def _settling(bridge: MigrationBridge) -> bool:
    return bridge.mig_state is not MigState.IDLE or bridge.secondary_bus_reset


def _uncancelled(watch: Watch, what: str, since: int) -> str:
    state = watch.bridge.mig_state.name if watch.bridge is not None else "?"
    return (
        f"migration {watch.number}: {what} at {_ms(since)}; the guest's write completed in {state} without a "
        "CANCEL (PROTOCOL_ERROR is due before the write completes)"
    )


def _differing(one: bytes, other: bytes) -> str:
    offsets = [hex(index) for index, (a, b) in enumerate(zip(one, other, strict=False)) if a != b]
    return ", ".join(offsets[:8]) or f"lengths {len(one)} and {len(other)}"
