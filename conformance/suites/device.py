"""The ``device`` target: a VF device model together with its guest driver.

The world: the reference hypervisor on two hosts, the reference bridge and
migration core, a 64-page guest, and 1 to 3 functions and drivers from the
implementation under test.  The rules do everything the spec lets happen to a
function: traffic, interface and driver changes, migrations, cancellations,
destination failures, surprise removal, device errors, group resets.  The
checks watch the function and its driver from outside (see
:mod:`conformance.observe`): DMA and dirtying page by page, Bus Master Enable,
interrupts, and the reports the bridge receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule

from conformance.checks import ConformanceMachine, step
from conformance.guest_watch import (
    PLAIN,
    BridgeVariant,
    GuestWatch,
    ProbeResult,
    WatchedBridge,
    probe_variant,
    run_handshake,
)
from conformance.observe import (
    FunctionProxy,
    Ledger,
    ObservedMemory,
    RecordingAllocator,
    find_capability,
    memory_factory,
)
from reference_impl.bridge import MIGRATION_CAP_OFFSET
from reference_impl.clock import ms
from reference_impl.device import POSTED_WRITE_GRACE_NS, FunctionIdentity
from reference_impl.driver import MigrationCore
from reference_impl.events import Event, EventKind
from reference_impl.hypervisor import Hypervisor, MigrationConfig, MigrationError, MigrationOutcome, MigrationRecord
from reference_impl.memory import Pages
from reference_impl.scenario import Simulation, SimulationConfig
from vfmig_proto.codec import find_field
from vfmig_proto.layout import CapabilityParams, capability_length
from vfmig_proto.pci import (
    PCI_BRIDGE_CONTROL,
    PCI_BRIDGE_CTL_BUS_RESET,
    PCI_COMMAND,
    PCI_COMMAND_MASTER,
    PCI_CONFIG_SIZE,
)
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigReason, MigState
from vfmig_proto.transitions import ACKNOWLEDGED_BY, Action

PAGE = 4096
MEMORY_PAGES = 256
"""A 1 MiB guest: room for three drivers' rings and buffers, and a pre-copy round of about 64 ms."""
ACK_TIMEOUT_MS = 20
PCI_CAP_ID_MSIX = 0x11
PCI_CAP_ID_EXP = 0x10
PCI_EXP_DEVSTA = 0x0A
PCI_EXP_DEVSTA_TRPND = 0x20
BACKGROUND_DMA = 2 * PAGE * 1000
"""Bytes per second each function receives all the time: two pages a millisecond, so every pause races DMA."""
SCENARIOS = ("down-through-migration", "unbind-mid-migration", "close-mid-migration", "rebind")
BURST_FRAMES = 12
BURST_SPACING_NS = 1_000
"""When a running function is asked to pause, a frame arrives every microsecond for a while."""
DRAIN_LIMIT_NS = ms(50)
"""VFM-FN-003: Transactions Pending clear within 50 ms of clearing BME."""
FLR_LIMIT_NS = ms(100)
"""VFM-FN-007: a function-level reset completes within 100 ms; config requests then complete normally."""
ANSWER_LIMIT_NS = ms(ACK_TIMEOUT_MS) // 2
"""How long a driver may take to answer a request while its interface is down (VFM-DOWN-002), and to read
DEV_STATUS after a READY report (VFM-ERR-007): half ACK_TIMEOUT_MS, a hundred times an interrupt's latency."""
SETTLE_NS = ms(1)
"""After a driver brought its function up, when the suite sends it a frame to see that it works (VFM-FLAG-004)."""
REQUESTS = (DevState.DIRTY_REQ, DevState.PAUSE_REQ, DevState.RESUME_REQ, DevState.REINIT_REQ)
"""The requests a driver answers whether or not its interface is up (VFM-DOWN-002)."""
RUNNING_STATES = (DevState.READY, DevState.DIRTY_REQ, DevState.DIRTYING)
"""Slot states in which a driver that is up has its function working."""
ANSWERS: dict[int, DriverReport] = {
    **{int(state): report for state, report in ACKNOWLEDGED_BY.items()},
    int(DevState.UNBOUND): DriverReport.READY,
}
"""The report a driver may write for the DEV_STATE it read last, besides NONE (VFM-DEV-005): the answer the
device table accepts for each request, and READY (binding) for UNBOUND."""
RESERVED_ONES_BRIDGE = BridgeVariant("reserved-ones", rsvdp_fill=0x2AAAAAA5)
"""A bridge whose RsvdP bits read 1s, as control bits of a later minor version may: a guest writes them back."""
DISCOVERY_CASES: dict[str, tuple[str, ...]] = {
    "decoy": ("decoy-cfg_type", "decoy-signature", "decoy-cap_id"),
    "relocated": ("relocated", "relocated-last"),
    "newer": ("newer-minor", "longer"),
    "unknown-bits": ("unknown-bits",),
    "handshake": ("generation-wrap",),
    "refused": (
        "bad-major",
        "bad-slots",
        "bad-length",
        "past-the-end",
        "bad-page-shift",
        "no-timeout",
        "duplicate-devfn",
    ),
}
"""What the bridges of :meth:`DeviceSuite.discovery` present to a guest that boots on them, by kind."""


GENERATION_BEFORE_WRAP = 0xFFFFFFFE
"""GENERATION before two STARTs: the second wraps it to 0 (VFM-REP-004)."""
GENERATION_FAR_FROM_WRAP = 0x10


def _discovery_variant(case: str, slots: int, where: int, noise: int) -> BridgeVariant:
    length = capability_length(slots)
    room = (PCI_CONFIG_SIZE - MIGRATION_CAP_OFFSET - length) // 4
    if case.startswith("decoy-"):
        return BridgeVariant(case, decoy=case.removeprefix("decoy-"))
    if case.startswith("relocated"):
        places = range(MIGRATION_CAP_OFFSET, PCI_CONFIG_SIZE - length + 1, 4)
        return BridgeVariant(case, relocate=places[where % len(places)], cap_last=case.endswith("last"))
    bad: dict[str, BridgeVariant] = {
        "newer-minor": BridgeVariant(case, version_minor=1 + noise % 255),
        "longer": BridgeVariant(case, cap_len_extra=4 * (1 + where % room), trailer=noise & 0xFF),
        "unknown-bits": BridgeVariant(
            case,
            host_features_extra=noise,
            rsvdp_fill=noise * 7,
            rsvdz_fill=noise * 13,
            cap_len_extra=4,
            trailer=noise & 0xFF,
        ),
        "bad-major": BridgeVariant(case, version_major=(0, 2, 0xFF)[where % 3]),
        "bad-slots": BridgeVariant(case, fields=(("num_slots", (0, 32, 0xFF)[where % 3]),)),
        "bad-length": BridgeVariant(case, cap_len=length - 4 * (1 + where % slots)),
        "past-the-end": BridgeVariant(case, cap_len=PCI_CONFIG_SIZE - MIGRATION_CAP_OFFSET + 4 * (1 + where % 4)),
        "bad-page-shift": BridgeVariant(case, fields=(("page_shift", (0, 11, 31, 0xFF)[where % 4]),)),
        "no-timeout": BridgeVariant(case, fields=(("ack_timeout_ms", 0),)),
        "duplicate-devfn": BridgeVariant(case, duplicate_devfn=True),
    }
    return bad[case]


def _differs(result: ProbeResult, plain: ProbeResult) -> str:
    def writes(probe: ProbeResult) -> str:
        return ", ".join(f"{width}@0x{offset:02x}=0x{value:x}" for offset, width, value in probe.writes) or "none"

    return (
        "the guest behaved differently on a capability with undefined bits set "
        f"(took part: {result.took_part}, writes: {writes(result)}) than on one with them clear "
        f"(took part: {plain.took_part}, writes: {writes(plain)}); RsvdP bits aside"
    )


def _named(kind: type[DevState] | type[DriverReport], value: int | None) -> str:
    """The name of ``value`` in ``kind``, or the value itself if ``kind`` has no member with it."""
    return next((member.name for member in kind if member.value == value), str(value))


def _field_mask(num_slots: int, slot: int, name: str) -> int:
    """The bits of ``DEV_STATUS.<name>`` of ``slot`` (one byte register)."""
    return find_field(num_slots, f"device[{slot}].dev_status.{name}").field.mask


def _running(record: MigrationRecord) -> bool:
    return not record.ended


@dataclass
class SlotWatch:
    """What the suite knows about one slot's function and driver."""

    window: bool = False
    """Dirtying is owed for this slot's DMA (from its DIRTYING acknowledgement to the end of the migration)."""
    undirtied: set[int] = field(default_factory=set)
    """Pages the function wrote by DMA in the window and the driver has not dirtied since."""
    running_at_pause: bool = False
    bme_cleared_ns: int | None = None
    last_dirty_ns: int | None = None
    early_pass: bool = False
    """The driver dirtied in PAUSE_REQ while the function's BME was still set."""
    status_read: bool = True
    """DEV_STATUS read since the last probe, open or REINIT_REQ (VFM-FLAG-003)."""
    last_entry: tuple[DevState, DevState] | None = None
    """The slot's last ``(old, new)`` DEV_STATE change."""
    bme_at_ready: bool | None = None
    entries: int = 0
    """Accepted DEV_STATE changes of the slot so far (a request still pending has the same count)."""
    dirtied_since_request: bool = False
    """The driver dirtied one of its pages since the slot entered PAUSE_REQ (VFM-DOWN-001)."""
    window_migration: int = 0
    """The migration (number) of the last dirtying window."""
    dirtied_window: set[int] = field(default_factory=set)
    """Pages the driver dirtied in that migration's windows."""
    dirtied_earlier: set[int] = field(default_factory=set)
    """Pages the driver dirtied in the windows of earlier migrations (VFM-REP-003)."""
    dev_state_read: int | None = None
    """The slot's DEV_STATE as the guest read it last (VFM-DEV-005)."""
    status_reads: int = 0
    """Reads of the slot's DEV_STATUS so far."""
    reset_read_at: int = 0
    """The number (in :attr:`status_reads`) of the last read that showed DEV_STATUS.RESET set."""
    flags_found: bool = False
    """A read showed MIGRATED or RESET set, and the driver has not set BME since (VFM-FLAG-004)."""
    bme_set_in_request: bool = False
    """The driver set BME since the slot entered REINIT_REQ or RESUME_REQ: it configured the function."""


class _Observed:
    """The implementation under test, wrapped so that the suite sees its functions."""

    def __init__(self, implementation: Any, suite: DeviceSuite) -> None:
        self.implementation = implementation
        self.suite = suite

    def create_function(self, name: str, clock: Any, bus: Any, identity: FunctionIdentity | None) -> Any:
        inner = self.implementation.create_function(name, clock, bus, identity)
        return FunctionProxy(inner, self.suite.on_bus_master, self.suite.on_interrupt, self.suite.on_reset)

    def create_driver(self, guest: Any, core: Any, slot: int, devfn: int, allocator: Any) -> Any:
        assert isinstance(allocator, RecordingAllocator)
        driver = self.implementation.create_driver(guest, core, slot, devfn, allocator.for_slot(slot))
        self.suite.guest_watch.drivers.append(driver)
        return driver


class DeviceSuite(ConformanceMachine):
    """Random interleavings around one guest's functions; checks of the device and driver requirements."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        self.ledger = Ledger()
        self.allocator: RecordingAllocator | None = None
        self.watch: dict[int, SlotWatch] = {}
        self.records: list[MigrationRecord] = []
        self.reset_started: dict[FunctionProxy, int] = {}
        self.reset_race = False
        """Armed: the next time a driver sets BME answering REINIT_REQ or RESUME_REQ, a group reset comes."""
        self.guest_watch = GuestWatch(self.checks)
        self.implementation: Any = None
        self.variant = PLAIN

    # ------------------------------------------------------------------ the world

    @initialize(vfs=st.integers(1, 3), reserved_ones=st.booleans())
    @step("VFM-GEN-004")
    def build(self, vfs: int, reserved_ones: bool) -> None:
        migration = MigrationConfig(
            bandwidth=16 * 1024 * 1024,  # four pages per millisecond
            downtime_limit_ns=ms(5),
            link_latency_ns=ms(0.2),
            precopy_limit_ns=ms(300),
            stop_copy_limit_ns=ms(200),
            quantum_ns=ms(1),
        )
        config = SimulationConfig(
            memory_bytes=MEMORY_PAGES * PAGE,
            vfs=vfs,
            dma_rate=BACKGROUND_DMA,
            cpu_dirty_rate=0,
            migration=migration,
            buffers=4,
            ack_timeout_ms=ACK_TIMEOUT_MS,
        )
        self.watch = {slot: SlotWatch() for slot in range(vfs)}
        self.ledger.dma_listeners.append(self.on_dma)
        self.ledger.dirty_listeners.append(self.on_dirty)
        self.ledger.dirtying_listeners.append(self.on_dirtying)
        self.implementation = self.factory()
        self.variant = RESERVED_ONES_BRIDGE if reserved_ones else PLAIN
        self.sim = Simulation(
            config,
            monitor=False,
            devices=_Observed(self.implementation, self),
            memories=memory_factory(self.ledger),
            allocator=self._allocator,
            bridges=self._bridge,
            cores=getattr(self.implementation, "create_migration_core", None),
        )
        bus = self.sim.bus
        self.guest_watch.attach(self.sim.guest, bus)
        bus.subscribe(self.on_dev_transition, [EventKind.DEV_TRANSITION])
        bus.subscribe(self.on_rejected, [EventKind.REPORT_REJECTED])
        bus.subscribe(self.on_bridge_read, [EventKind.CONFIG_READ])
        bus.subscribe(self.on_bridge_write, [EventKind.CONFIG_WRITE])
        for proxy in self.functions():
            self.checks.record("VFM-GEN-004", proxy.config_read(0, 2) != 0xFFFF, "config read with BME clear failed")

    def _bridge(self, bus: Any, params: CapabilityParams, name: str) -> WatchedBridge:
        """The guest's bridge on a host: the reference bridge, watched (the core's accesses, VFM-ACC-002 ...)."""
        self.guest_watch.clock = bus.clock
        return WatchedBridge(bus, params, name=name, watch=self.guest_watch, variant=self.variant)

    def _allocator(self, num_pages: int) -> RecordingAllocator:
        self.allocator = RecordingAllocator(num_pages)
        return self.allocator

    @property
    def world(self) -> Simulation:
        assert self.sim is not None, "the world is built first"
        return self.sim

    def where(self) -> Hypervisor | None:
        return next((host for host in self.world.hosts if host.guest is self.world.guest), None)

    def migrating(self) -> bool:
        return any(host.outgoing is not None for host in self.world.hosts)

    @staticmethod
    def proxies(host: Hypervisor) -> dict[int, FunctionProxy]:
        """The host's functions: in this world every one is a proxy around the implementation's."""
        placed: dict[int, object] = dict(host.slot_functions)
        return {slot: function for slot, function in placed.items() if isinstance(function, FunctionProxy)}

    def functions(self) -> list[FunctionProxy]:
        host = self.where()
        return [] if host is None else list(self.proxies(host).values())

    def slot_of(self, function: FunctionProxy) -> int | None:
        for host in self.world.hosts:
            for slot, candidate in self.proxies(host).items():
                if candidate is function:
                    return slot
        return None

    def dev_state(self, slot: int) -> DevState | None:
        host = self.where() or next((h for h in self.world.hosts if h.outgoing is not None), None)
        if host is None or host.bridge_or_none is None:
            return None
        return host.bridge.dev_state(slot)

    # ------------------------------------------------------------------ what the suite observes

    def on_dma(self, pages: Pages) -> None:
        if self.sim is None:
            return  # the world is still being built (the guest boots)
        allocator = self.allocator
        if allocator is None or pages.size == 0:
            return
        owners = allocator.owner[pages]
        self.checks.record(
            "VFM-FN-004",
            bool((owners >= 0).all()),
            lambda: f"DMA write to guest pages {sorted(set(pages[owners < 0].tolist()))} that no driver gave out",
        )
        for slot in set(owners[owners >= 0].tolist()):
            self._dma_by(int(slot), pages[owners == slot])

    def _dma_by(self, slot: int, pages: Pages) -> None:
        host = self.where() or next((h for h in self.world.hosts if h.outgoing is not None), None)
        if host is None:
            return
        function = host.slot_functions.get(slot)
        bme = function is not None and function.bus_master
        cleared = self.watch[slot].bme_cleared_ns
        in_flight = cleared is not None and self.world.clock.now - cleared <= POSTED_WRITE_GRACE_NS
        self.checks.record(
            "VFM-FN-001", bme or in_flight, f"slot {slot}'s function wrote guest memory with BME clear (not in flight)"
        )
        state = self.dev_state(slot)
        self.checks.record(
            "VFM-DIRTY-004",
            state is not DevState.PAUSED,
            f"slot {slot}'s function wrote guest memory by DMA after its driver reported PAUSED",
        )
        watch = self.watch[slot]
        if watch.window:
            watch.undirtied.update(int(page) for page in pages)

    def on_dirty(self, pages: Pages) -> None:
        if self.sim is None:
            return  # the world is still being built (the guest boots)
        self._dirtied_by(pages)
        touched = set(pages.tolist())
        now = self.world.clock.now
        for slot, watch in self.watch.items():
            if watch.undirtied:
                watch.undirtied -= touched
            watch.last_dirty_ns = now
            if self.dev_state(slot) is DevState.PAUSE_REQ:
                function = self._function(slot)
                if function is not None and function.bus_master:
                    watch.early_pass = True

    def _dirtied_by(self, pages: Pages) -> None:
        """Which slot's driver dirtied which of its pages (VFM-DOWN-001, VFM-REP-003)."""
        allocator = self.allocator
        if allocator is None or pages.size == 0:
            return
        owners = allocator.owner[pages]
        for slot in set(owners[owners >= 0].tolist()):
            watch = self.watch.get(int(slot))
            if watch is not None:
                watch.dirtied_since_request = True
                if watch.window:
                    watch.dirtied_window.update(pages[owners == slot].tolist())

    def on_dirtying(self, memory: ObservedMemory, pages: Pages) -> None:
        """A dirtying write leaves every byte as it was, DMA data included (VFM-DIRTY-002)."""
        if self.sim is None or pages.size == 0:
            return
        stale = memory.stale_pages(pages)
        self.checks.record(
            "VFM-DIRTY-002",
            stale.size == 0,
            lambda: (
                f"after a dirtying write, guest pages {sorted(set(stale.tolist()))} hold older content than the "
                "function's last DMA write to them: the dirtying stored back a value read before that write"
            ),
        )

    def on_reset(self, function: FunctionProxy) -> None:
        """A reset: nothing set up before it runs (VFM-ERR-006); 100 ms on, config requests work (VFM-FN-007)."""
        if self.sim is None:
            return  # the world is still being built (the guest boots)
        clock = self.world.clock
        started = clock.now
        self.reset_started[function] = started
        # Right after the reset, before anyone set the function up again, a frame finds no buffer (VFM-ERR-006).
        self.checks.record(
            "VFM-ERR-006",
            function.receive(PAGE) == 0,
            f"{function.name}: right after a reset, a frame that arrived was written by DMA into a buffer "
            "posted before the reset",
        )

        def completed() -> None:
            if self.reset_started.get(function) != started:
                return  # reset again since: that reset has its own 100 ms
            identity = function.identity
            expected = identity.vendor_id | identity.device_id << 16
            try:
                answer = f"0x{function.config_read(0, 4):08x}"
            except Exception as error:  # a config request that fails is what this checks
                answer = f"{type(error).__name__}: {error}"
            self.checks.record(
                "VFM-FN-007",
                answer == f"0x{expected:08x}",
                f"{function.name}: 100 ms after a function-level reset was initiated, a config read of the "
                f"Vendor and Device ID registers gave {answer}, not 0x{expected:08x}",
            )

        clock.schedule(FLR_LIMIT_NS, completed, "FN-007 reset completion check")

    def on_interrupt(self, function: FunctionProxy) -> None:
        if self.sim is None:
            return  # the world is still being built (the guest boots)
        slot = self.slot_of(function)
        self.checks.record("VFM-FN-001", function.bus_master, f"{function.name} sent an MSI-X message with BME clear")
        capability = find_capability(function.config_read, PCI_CAP_ID_MSIX)
        if capability is not None:
            flags = function.config_read(capability + 2, 2)
            self.checks.record(
                "VFM-FN-005",
                bool(flags & 0x8000) and not flags & 0x4000,
                f"{function.name} sent an MSI-X message while MSI-X is disabled or masked",
            )
        if slot is not None:
            self.checks.record(
                "VFM-DIRTY-004",
                self.dev_state(slot) is not DevState.PAUSED,
                f"slot {slot}'s function interrupted after its driver reported PAUSED",
            )

    def on_bus_master(self, function: FunctionProxy, enabled: bool) -> None:
        if self.sim is None:
            return  # the world is still being built (the guest boots)
        slot = self.slot_of(function)
        if slot is None:
            return
        watch = self.watch[slot]
        if not enabled:
            watch.bme_cleared_ns = self.world.clock.now
            self._check_drain_later(function)
            return
        state = self.dev_state(slot)
        self.checks.record("VFM-DEV-007", state is not DevState.UNBOUND, f"slot {slot}: BME set before READY")
        self.checks.record(
            "VFM-DEV-008", state not in (DevState.PAUSED, DevState.ERROR), f"slot {slot}: BME set while {state}"
        )
        self.checks.record(
            "VFM-DOWN-004",
            state not in (DevState.DIRTY_REQ, DevState.PAUSE_REQ),
            f"slot {slot}: BME set while {state}",
        )
        driver = self.world.drivers[slot]
        if state is DevState.REINIT_REQ:
            self.checks.record("VFM-DOWN-003", driver.up, f"slot {slot}: BME set answering REINIT_REQ while down")
        self.checks.record("VFM-FLAG-003", watch.status_read, f"slot {slot}: BME set before DEV_STATUS was read")
        host = self.where()
        if host is not None and host.bridge_or_none is not None:
            migrated, reset, _ = host.bridge.dev_status(slot)
            self.checks.record(
                "VFM-FLAG-005",
                not (migrated or reset),
                f"slot {slot}: reinitialised (BME set) with DEV_STATUS MIGRATED={int(migrated)} RESET={int(reset)}",
            )
        if watch.flags_found:
            watch.flags_found = False
            self._check_works_later(slot, function)
        if state in (DevState.REINIT_REQ, DevState.RESUME_REQ):
            watch.bme_set_in_request = True
            if self.reset_race and host is not None and host.bridge_or_none is not None:
                # The function is reset under the driver that is bringing it up (spec §7.5.1, §7.9): its READY
                # is taken as "reinitialised" and only DEV_STATUS.RESET tells it (VFM-ERR-007).
                self.reset_race = False
                host.group_reset()

    def _check_works_later(self, slot: int, function: FunctionProxy) -> None:
        """The driver found MIGRATED or RESET and set BME: once settled, the function works (VFM-FLAG-004)."""

        def works() -> None:
            if self._running_normally(slot, function):
                self.checks.record(
                    "VFM-FLAG-004",
                    function.receive(PAGE) > 0,
                    f"slot {slot}: brought up after DEV_STATUS showed MIGRATED or RESET, with the interface up and "
                    "BME set, its function receives nothing: the driver relied on state the function no longer has",
                )

        self.world.clock.schedule(SETTLE_NS, works, "FLAG-004 bring-up check")

    def _running_normally(self, slot: int, function: FunctionProxy | None, *, bme: bool = True) -> bool:
        """Whether the slot's function should be receiving now: its driver up, BME set, no migration pause."""
        driver = self.world.drivers[slot]
        return (
            function is not None
            and self._function(slot) is function
            and self.world.guest.running
            and driver.loaded
            and driver.up
            and (function.bus_master or not bme)
            and not getattr(function.inner, "failed", False)
            and self.dev_state(slot) in RUNNING_STATES
        )

    def _check_drain_later(self, function: FunctionProxy) -> None:
        capability = find_capability(function.config_read, PCI_CAP_ID_EXP)
        if capability is None:
            return

        def drained() -> None:
            if function.bus_master or self.slot_of(function) is None:
                return
            pending = function.config_read(capability + PCI_EXP_DEVSTA, 2) & PCI_EXP_DEVSTA_TRPND
            self.checks.record("VFM-FN-003", not pending, f"{function.name}: Transactions Pending 50 ms after BME")

        self.world.clock.schedule(DRAIN_LIMIT_NS, drained, "FN-003 drain check")

    def on_bridge_read(self, event: Event) -> None:
        host = self.where()
        if host is None or host.bridge_or_none is None or event.source != host.bridge.name:
            return
        offset, width = int(event.data["offset"]), int(event.data["width"])
        bridge = host.bridge
        for slot, watch in self.watch.items():
            entry = bridge.cap + find_field(bridge.num_slots, f"device[{slot}].dev_state").offset
            if offset <= entry < offset + width:
                watch.dev_state_read = int(event.data["value"]) >> (8 * (entry - offset)) & 0xFF
            status = bridge.cap + find_field(bridge.num_slots, f"device[{slot}].dev_status.migrated").offset
            if offset <= status < offset + width:
                watch.status_read = True
                watch.status_reads += 1
                bits = int(event.data["value"]) >> (8 * (status - offset))
                if bits & (
                    _field_mask(bridge.num_slots, slot, "migrated") | _field_mask(bridge.num_slots, slot, "reset")
                ):
                    watch.flags_found = True
                if bits & _field_mask(bridge.num_slots, slot, "reset"):
                    watch.reset_read_at = watch.status_reads

    def on_bridge_write(self, event: Event) -> None:
        """A driver's report, as it writes it (before the bridge judges it)."""
        host = self.where()
        if host is None or host.bridge_or_none is None or event.source != host.bridge.name:
            return
        offset, width = int(event.data["offset"]), int(event.data["width"])
        bridge = host.bridge
        for slot, watch in self.watch.items():
            drv_state = find_field(bridge.num_slots, f"device[{slot}].dev_ctrl.drv_state")
            control = bridge.cap + drv_state.offset
            if not offset <= control < offset + width:
                continue
            report = int(event.data["value"]) >> (8 * (control - offset)) & drv_state.field.mask
            read = watch.dev_state_read
            answer = ANSWERS.get(read) if read is not None else None
            self.checks.record(
                "VFM-DEV-005",
                report in (DriverReport.NONE, answer),
                f"slot {slot}: DRV_STATE {_named(DriverReport, report)} written while the DEV_STATE read last "
                f"was {_named(DevState, read)}: neither NONE nor the answer to that state",
            )
            if report == DriverReport.PAUSED and host.bridge.dev_state(slot) is DevState.PAUSE_REQ:
                function = self._function(slot)
                running = function is not None and function.bus_master
                self.checks.record(
                    "VFM-DOWN-001",
                    not running or watch.dirtied_since_request,
                    f"slot {slot}: PAUSED written for a function whose BME is set, with nothing dirtied since "
                    "PAUSE_REQ: the interface-down answer, for a function that runs",
                )

    def on_rejected(self, event: Event) -> None:
        slot = int(event.data["slot"])
        why = str(event.data["why"])
        requirement = "VFM-DIRTY-004" if "PAUSED" in why else "VFM-ABS-002" if "NONE" in why else "VFM-DEV-005"
        self.checks.record(requirement, False, f"slot {slot}: the bridge rejected a report: {why}")

    def on_dev_transition(self, event: Event) -> None:
        slot = int(event.data["slot"])
        old, new, dev_event = event.data["old"], event.data["new"], event.data["event"]
        watch = self.watch.get(slot)
        if watch is None or event.data["action"] is not Action.ACCEPT:
            return
        watch.last_entry = (old, new)
        watch.entries += 1
        self._requests(slot, watch, old, new, dev_event)
        if new is DevState.DIRTYING:
            self._open_window(watch)
        elif new is DevState.PAUSE_REQ:
            function = self._function(slot)
            watch.running_at_pause = function is not None and function.bus_master
            watch.early_pass = False
            self._open_window(watch)
            if function is not None and watch.running_at_pause:
                self._burst(function)
        elif new is DevState.PAUSED:
            self._paused(slot, watch)
        elif new is DevState.UNBOUND and dev_event is DevEvent.DRIVER_DETACHED:
            self._unbound(slot, watch, old)
        elif new in (DevState.READY, DevState.RESUME_REQ, DevState.REINIT_REQ, DevState.EMPTY, DevState.ERROR):
            if new is DevState.READY and old is DevState.RESUME_REQ:
                function = self._function(slot)
                watch.bme_at_ready = function is not None and function.bus_master
                driver = self.world.drivers[slot]
                # An interface closed meanwhile is not restarted: the administrator asked for it down.
                owed = watch.running_at_pause and driver.loaded and driver.up
                self.checks.record(
                    "VFM-CANCEL-003",
                    not owed or bool(watch.bme_at_ready),
                    f"slot {slot}: READY answering RESUME_REQ with the function's BME clear",
                )
            watch.window = False
            watch.undirtied.clear()
        if new is DevState.REINIT_REQ:
            watch.status_read = False

    def _open_window(self, watch: SlotWatch) -> None:
        """Dirtying is owed from now on; what the driver dirtied in an earlier migration is kept apart."""
        number = len(self.records)
        if watch.window_migration != number:
            watch.dirtied_earlier |= watch.dirtied_window
            watch.dirtied_window = set()
            watch.window_migration = number
        watch.window = True

    def _requests(self, slot: int, watch: SlotWatch, old: DevState, new: DevState, dev_event: DevEvent) -> None:
        """The requests a driver answers: while its interface is down (VFM-DOWN-002), and READY (VFM-ERR-007)."""
        driver = self.world.drivers[slot]
        answering = (DevState.REINIT_REQ, DevState.RESUME_REQ)
        if new in answering and old not in answering:
            watch.bme_set_in_request = False
        if new is DevState.PAUSE_REQ:
            watch.dirtied_since_request = False
        if new in REQUESTS and driver.loaded and not driver.up:
            self._check_answered_while_down(slot, watch, new)
        if new is DevState.READY and dev_event is DevEvent.DRIVER_READY and old in answering:
            function = self._function(slot)
            configured = watch.bme_set_in_request or (function is not None and function.bus_master)
            if driver.loaded and driver.up and configured:
                self._check_reset_read_later(slot, watch)

    def _check_answered_while_down(self, slot: int, watch: SlotWatch, request: DevState) -> None:
        """A driver whose interface is down answers without waiting for it to be opened (VFM-DOWN-002)."""
        entry = watch.entries
        driver = self.world.drivers[slot]

        def answered() -> None:
            if not driver.loaded or not self.world.guest.running:
                return
            waiting = watch.entries == entry and not driver.up
            self.checks.record(
                "VFM-DOWN-002",
                not waiting,
                f"slot {slot}: {request.name} still unanswered {ANSWER_LIMIT_NS / 1e6:g} ms after it came to a driver "
                "whose interface is down: the driver waits for the interface to be opened",
            )

        self.world.clock.schedule(ANSWER_LIMIT_NS, answered, "DOWN-002 answer check")

    def _check_reset_read_later(self, slot: int, watch: SlotWatch) -> None:
        """After READY for a configured function: DEV_STATUS.RESET read, and acted on if set (VFM-ERR-007)."""
        reads = watch.status_reads
        driver = self.world.drivers[slot]

        def read_after_ready() -> None:
            if not driver.loaded or not self.world.guest.running:
                return
            self.checks.record(
                "VFM-ERR-007",
                watch.status_reads > reads,
                f"slot {slot}: no read of DEV_STATUS in the {ANSWER_LIMIT_NS / 1e6:g} ms after the driver's READY "
                "report for a function it had configured",
            )
            function = self._function(slot)
            if watch.reset_read_at > reads and self._running_normally(slot, function, bme=False):
                assert function is not None
                self.checks.record(
                    "VFM-ERR-007",
                    function.receive(PAGE) > 0,
                    f"slot {slot}: the driver read DEV_STATUS.RESET set after its READY report, but did not "
                    "reinitialise the function: with the interface up, it receives nothing",
                )

        self.world.clock.schedule(ANSWER_LIMIT_NS, read_after_ready, "ERR-007 READY check")

    def _in_flight(self, slot: int) -> None:
        """A frame arrives just as the guest acts: its DMA is in flight when the driver stops the function."""
        function = self._function(slot)
        if function is not None:
            function.receive(PAGE)

    def _burst(self, function: FunctionProxy) -> None:
        """Frames keep arriving while the driver pauses: whatever it does out of order, DMA lands in the gap."""
        clock = self.world.clock

        def frame() -> None:
            function.receive(PAGE)

        for index in range(1, BURST_FRAMES + 1):
            clock.schedule(index * BURST_SPACING_NS, frame, "suite: traffic during pause")

    def _function(self, slot: int) -> FunctionProxy | None:
        for host in self.world.hosts:
            function = self.proxies(host).get(slot)
            if function is not None and (host.guest is not None or host.outgoing is not None):
                return function
        return None

    def _paused(self, slot: int, watch: SlotWatch) -> None:
        function = self._function(slot)
        cleared, dirtied = watch.bme_cleared_ns, watch.last_dirty_ns
        late_pass = cleared is not None and dirtied is not None and dirtied >= cleared
        early = watch.running_at_pause and watch.early_pass and not late_pass
        # Pages left undirtied by a pass that ran before BME was cleared break VFM-DIRTY-003; otherwise -004.
        self.checks.record(
            "VFM-DIRTY-003",
            not (early and watch.undirtied),
            lambda: (
                f"slot {slot}: the dirtying pass ran before BME was cleared; DMA then wrote {sorted(watch.undirtied)}"
            ),
        )
        self.checks.record(
            "VFM-DIRTY-004",
            early or not watch.undirtied,
            lambda: f"slot {slot}: PAUSED with pages written by DMA and not dirtied: {sorted(watch.undirtied)}",
        )
        self.checks.record(
            "VFM-FN-001", function is None or not function.bus_master, f"slot {slot}: PAUSED with BME set"
        )
        if watch.dirtied_earlier:
            self.checks.record(
                "VFM-REP-003",
                early or not watch.undirtied & watch.dirtied_earlier,
                lambda: (
                    f"slot {slot}: PAUSED with pages written by DMA in this migration and not dirtied, each dirtied "
                    f"in an earlier migration: {sorted(watch.undirtied & watch.dirtied_earlier)}"
                ),
            )

    def _unbound(self, slot: int, watch: SlotWatch, old: DevState) -> None:
        function = self._function(slot)
        self.checks.record(
            "VFM-ABS-002", function is None or not function.bus_master, f"slot {slot}: NONE with BME set"
        )
        if watch.window:
            self.checks.record(
                "VFM-ABS-003",
                not watch.undirtied,
                lambda: f"slot {slot}: unbound with pages written by DMA and not dirtied: {sorted(watch.undirtied)}",
            )
            if watch.dirtied_earlier:
                self.checks.record(
                    "VFM-REP-003",
                    not watch.undirtied & watch.dirtied_earlier,
                    lambda: (
                        f"slot {slot}: unbound with pages written by DMA in this migration and not dirtied, each "
                        f"dirtied in an earlier migration: {sorted(watch.undirtied & watch.dirtied_earlier)}"
                    ),
                )
        watch.window = False
        watch.undirtied.clear()

    # ------------------------------------------------------------------ rules: the guest and the traffic

    @rule(pages=st.lists(st.integers(0, MEMORY_PAGES // 2), min_size=1, max_size=6))
    @step()
    def cpu_write(self, pages: list[int]) -> None:
        if self.world.guest.running:
            self.world.guest.cpu_write(np.array(pages, dtype=np.int64))

    @rule(slot=st.integers(0, 2), frames=st.integers(1, 6))
    @step("VFM-FN-001", "VFM-FN-004", "VFM-DIRTY-004")
    def traffic(self, slot: int, frames: int) -> None:
        drivers = self.world.drivers
        function = drivers[slot % len(drivers)].function
        if function is not None:
            function.receive(frames * PAGE)

    @rule(duration_us=st.integers(1, 60_000))
    @step(
        "VFM-TMO-006",
        "VFM-DIRTY-003",
        "VFM-DIRTY-004",
        "VFM-FN-003",
        "VFM-FN-007",
        "VFM-DIRTY-002",
        "VFM-DOWN-001",
        "VFM-DOWN-002",
        "VFM-FLAG-004",
        "VFM-ERR-007",
        "VFM-REP-003",
    )
    def time_passes(self, duration_us: int) -> None:
        self.world.clock.advance(duration_us * 1000)

    @rule(
        state=st.sampled_from([MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED, MigState.ARRIVED, MigState.IDLE])
    )
    @step(
        "VFM-TMO-006",
        "VFM-DIRTY-003",
        "VFM-DIRTY-004",
        "VFM-DEV-009",
        "VFM-FLAG-005",
        "VFM-FN-007",
        "VFM-DIRTY-002",
        "VFM-DOWN-001",
        "VFM-DOWN-002",
        "VFM-FLAG-004",
        "VFM-ERR-007",
        "VFM-REP-003",
    )
    def run_until(self, state: MigState) -> None:
        """Let time pass until a bridge reaches ``state`` (or half a second has passed)."""
        self._run_until(state)

    def _run_until(self, state: MigState) -> None:
        world = self.world

        def reached() -> bool:
            return any(host.bridge_or_none is not None and host.bridge.mig_state is state for host in world.hosts)

        world.clock.run_while(lambda: not reached(), world.clock.now + ms(500))

    @rule(kind=st.sampled_from(SCENARIOS), slot=st.integers(0, 2))
    @step(
        "VFM-ABS-001",
        "VFM-ABS-002",
        "VFM-ABS-003",
        "VFM-DOWN-001",
        "VFM-DOWN-002",
        "VFM-DOWN-003",
        "VFM-FLAG-003",
        "VFM-FLAG-004",
        "VFM-FLAG-005",
        "VFM-DEV-007",
    )
    def scenario(self, kind: str, slot: int) -> None:
        """A known-tricky sequence in one step, so that random runs meet it often (the other rules still interleave)."""
        world = self.world
        driver = world.drivers[slot % len(world.drivers)]
        if not world.guest.running:
            return
        if kind == "down-through-migration":
            self._in_flight(driver.slot)
            world.guest.after(0, driver.close, "interface down")
            world.clock.advance(ms(1))
            self._start_migration()
            self._run_until(MigState.ARRIVED)
        elif kind == "unbind-mid-migration":
            self._start_migration()
            self._run_until(MigState.PRECOPY)
            self._in_flight(driver.slot)
            world.guest.after(0, driver.unload, "driver unload")
        elif kind == "rebind":
            watch = self.watch[driver.slot]
            world.guest.after(0, driver.unload, "driver unload")
            world.clock.advance(ms(1))

            def probe() -> None:
                if not driver.loaded:
                    watch.status_read = False
                driver.load(up=True)

            world.guest.after(0, probe, "driver load")
        elif kind == "close-mid-migration":
            self._start_migration()
            self._run_until(MigState.PRECOPY)
            self._in_flight(driver.slot)
            world.guest.after(0, driver.close, "interface down")
        world.clock.advance(ms(2))

    @rule(slot=st.integers(0, 2))
    @step("VFM-FN-005")
    def guest_masks_interrupts(self, slot: int) -> None:
        """The guest's interrupt code masks the function's MSI-X for a moment while a frame arrives."""
        function = self._function(slot % len(self.world.drivers))
        if function is None or not self.world.guest.running:
            return
        capability = find_capability(function.config_read, PCI_CAP_ID_MSIX)
        if capability is None:
            return
        flags = function.config_read(capability + 2, 2)
        if not flags & 0x8000:
            return
        function.config_write(capability + 2, 2, flags | 0x4000)
        function.receive(PAGE)
        self.world.clock.advance(ms(0.05))
        function.config_write(capability + 2, 2, flags)

    @rule(slot=st.integers(0, 2), up=st.booleans())
    @step("VFM-DOWN-003", "VFM-FLAG-003", "VFM-FLAG-004", "VFM-FLAG-005")
    def interface(self, slot: int, up: bool) -> None:
        driver = self.world.drivers[slot % len(self.world.drivers)]
        if not self.world.guest.running:
            return
        watch = self.watch[driver.slot]

        def change() -> None:
            if up:
                if driver.loaded and not driver.up:
                    watch.status_read = False  # an open: DEV_STATUS is read before BME (VFM-FLAG-003)
                driver.open()
            else:
                driver.close()

        if not up:
            self._in_flight(driver.slot)
        self.world.guest.after(0, change, "interface")

    @rule(slot=st.integers(0, 2), load=st.booleans())
    @step("VFM-DEV-007", "VFM-ABS-001", "VFM-ABS-002", "VFM-ABS-003")
    def binding(self, slot: int, load: bool) -> None:
        driver = self.world.drivers[slot % len(self.world.drivers)]
        if not self.world.guest.running:
            return
        if load:
            watch = self.watch[driver.slot]

            def probe() -> None:
                if not driver.loaded:
                    watch.status_read = False  # a probe: DEV_STATUS is read before BME (VFM-FLAG-003)
                driver.load(up=True)

            self.world.guest.after(0, probe, "driver load")
        else:
            self._in_flight(driver.slot)
            self.world.guest.after(0, driver.unload, "driver unload")

    @rule(dice=st.integers(0, 1))
    @step("VFM-FN-006", "VFM-ERR-006", "VFM-ERR-007", "VFM-FLAG-004")
    def guest_group_reset(self, dice: int) -> None:
        """The guest resets the group now (0), or the hypervisor will, while a driver brings its function up (1).

        The second is a race: the next time a driver sets BME answering REINIT_REQ or RESUME_REQ, the
        hypervisor resets the group, the READY that follows is taken as "reinitialised", and only
        DEV_STATUS.RESET tells the driver (spec §7.5.1, §7.9, VFM-ERR-007).
        """
        host = self.where()
        if dice == 1:
            self.reset_race = True
        elif host is not None and self.world.guest.running:
            bridge = host.bridge
            control = bridge.config_read(PCI_BRIDGE_CONTROL, 2)
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control | PCI_BRIDGE_CTL_BUS_RESET)
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)
            self._check_reset_functions(host)

    def _check_reset_functions(self, host: Hypervisor) -> None:
        """Right after the reset, before any driver had a chance to act (VFM-FN-006)."""
        for slot, function in host.slot_functions.items():
            command = function.config_read(PCI_COMMAND, 2)
            self.checks.record(
                "VFM-FN-006", not command & PCI_COMMAND_MASTER, f"slot {slot}: BME still set after a group reset"
            )
            self.checks.record(
                "VFM-FN-006", function.in_reset_state, f"slot {slot}: the function kept state across a group reset"
            )

    # ------------------------------------------------------------------ rules: migrations and faults

    @rule()
    @step("VFM-DIRTY-001", "VFM-DIRTY-004", "VFM-TMO-006")
    def start_migration(self) -> None:
        self._start_migration()

    def _start_migration(self) -> None:
        host = self.where()
        if host is None or self.migrating():
            return
        destination = next(other for other in self.world.hosts if other is not host)
        if destination.incoming is not None or destination.guest is not None:
            return
        try:
            self.records.append(host.migrate_to(destination, len(self.records) + 1).record)
        except MigrationError:
            return

    @precondition(lambda self: self.sim is not None and self.migrating())
    @rule(dice=st.integers(0, 2))
    @step("VFM-CANCEL-003", "VFM-FN-002")
    def cancel(self, dice: int) -> None:
        host = self.where()
        if dice == 0 and host is not None and host.outgoing is not None:
            host.outgoing.cancel(MigReason.CANCELLED)

    @precondition(lambda self: self.sim is not None and self.migrating())
    @rule()
    @step("VFM-CANCEL-003")
    def destination_fails(self) -> None:
        for host in self.world.hosts:
            if host.incoming is not None:
                host.incoming.fail_on_state = "injected by the suite"

    @rule(slot=st.integers(0, 2), dice=st.integers(0, 3))
    @step()
    def device_error(self, slot: int, dice: int) -> None:
        host = self.where()
        slot %= len(self.world.drivers)
        if dice == 0 and host is not None and slot in host.slot_functions:
            host.function_failed(slot)

    # ------------------------------------------------------------------ rules: the migration core's bridge

    @rule(
        kind=st.sampled_from(sorted(DISCOVERY_CASES)),
        slots=st.integers(2, 4),
        where=st.integers(0, 31),
        noise=st.integers(1, (1 << 28) - 1),
    )
    @step("VFM-DISC-004", "VFM-DISC-005", "VFM-DISC-006", "VFM-VER-001", "VFM-VER-002", "VFM-REP-004", "VFM-NOTIF-008")
    def discovery(self, kind: str, slots: int, where: int, noise: int) -> None:
        """Guests with the implementation's migration core boot on bridges of their own that present ``kind``.

        Each is a world of its own (a bridge, a guest, the core; no hypervisor): the discovery and versioning
        rules need bridges that the main world's well-formed one is not, and ``handshake`` needs GENERATION to
        wrap, which takes four billion migrations in the main world.
        """
        make_core = getattr(self.implementation, "create_migration_core", None) or MigrationCore
        params = CapabilityParams(num_slots=slots, ack_timeout_ms=ACK_TIMEOUT_MS)
        if kind == "handshake":
            self._handshake(make_core, params)
            return
        for case in DISCOVERY_CASES[kind]:
            variant = _discovery_variant(case, slots, where, noise)
            result = probe_variant(make_core, self.checks, variant, params)
            self.checks.raise_pending()
            if kind == "decoy":
                self.checks.that(
                    "VFM-DISC-004",
                    result.enabled,
                    f"with a vendor-specific capability that differs in {variant.decoy} ahead of the migration "
                    "capability, the guest did not enable the migration capability",
                )
            elif kind == "relocated":
                self.checks.that(
                    "VFM-DISC-005",
                    result.enabled,
                    f"the guest did not find and enable the migration capability linked at 0x{variant.relocate:02x}"
                    + (" (last in the list)" if variant.cap_last else ""),
                )
            elif kind == "newer":
                self.checks.that(
                    "VFM-VER-001",
                    result.enabled,
                    f"the guest refused a capability with VERSION_MINOR {variant.version_minor} and "
                    f"{variant.cap_len_extra} bytes after the last slot entry",
                )
            elif kind == "unknown-bits":
                plain = probe_variant(make_core, self.checks, BridgeVariant(cap_len_extra=4), params)
                self.checks.raise_pending()
                same = (result.took_part, result.writes) == (plain.took_part, plain.writes)
                self.checks.that(
                    "VFM-VER-002",
                    same,
                    "" if same else _differs(result, plain),
                )
            else:
                self.checks.that(
                    "VFM-DISC-006",
                    result.cap_writes == 0,
                    f"the guest wrote {result.cap_writes} times to a migration capability it must leave alone ({case})",
                )

    def _handshake(self, make_core: Any, params: CapabilityParams) -> None:
        """A driver that answers at once, two migrations and a group reset: GENERATION wraps in the second."""
        plain = run_handshake(make_core, self.checks, params, GENERATION_FAR_FROM_WRAP)
        wrap = run_handshake(make_core, self.checks, params, GENERATION_BEFORE_WRAP)
        self.checks.raise_pending()
        self.checks.that(
            "VFM-REP-004",
            wrap.answered == plain.answered,
            f"the guest answered the requests of two migrations {plain.answered} with GENERATION far from "
            f"0xFFFFFFFF, but {wrap.answered} when GENERATION wrapped to 0 at the second START",
        )
        self.checks.that(
            "VFM-NOTIF-008",
            plain.unbound == wrap.unbound == 0,
            f"the migration core unbound a VF driver {plain.unbound + wrap.unbound} times on a change of MIG_STATE "
            "or DEV_STATE",
        )

    @rule(slot=st.integers(0, 2), value=st.integers(max(DevState) + 1, 0xFF))
    @step("VFM-VER-005")
    def undefined_dev_state(self, slot: int, value: int) -> None:
        """For one event, the guest reads a DEV_STATE value the spec does not define (a faulty bridge)."""
        host = self.where()
        if host is None or self.migrating() or not self.world.guest.running:
            return
        bridge = host.bridge
        assert isinstance(bridge, WatchedBridge)
        bridge.glitch[slot % len(self.world.drivers)] = value
        bridge.spurious_event()
        self.world.clock.advance(ms(0.2))
        bridge.glitch.clear()
        bridge.spurious_event()
        self.world.clock.advance(ms(0.2))

    # ------------------------------------------------------------------ invariants

    @invariant()
    @step(
        "VFM-ACC-002",
        "VFM-ACC-008",
        "VFM-DEV-006",
        "VFM-DISC-004",
        "VFM-DISC-005",
        "VFM-DISC-007",
        "VFM-DISC-008",
        "VFM-DISC-009",
        "VFM-NOTIF-006",
        "VFM-NOTIF-007",
        "VFM-NOTIF-009",
        "VFM-NOTIF-010",
        "VFM-FLOW-004",
        "VFM-VER-003",
        "VFM-VER-004",
        "VFM-VER-005",
    )
    def migration_core(self) -> None:
        """What the guest watch found in the core's accesses to the bridge (:mod:`conformance.guest_watch`)."""
        if self.sim is not None:
            self.guest_watch.wrap_handler()
            self.guest_watch.settle()
            self.checks.raise_pending()

    @invariant()
    @step("VFM-DIRTY-002")
    def dma_data_kept(self) -> None:
        """No page holds older content than the last DMA write to it left (VFM-DIRTY-002)."""
        if self.sim is None:
            return
        memory = self.world.guest.memory
        if isinstance(memory, ObservedMemory):
            stale = memory.stale_pages()
            self.checks.that(
                "VFM-DIRTY-002",
                stale.size == 0,
                lambda: (
                    f"guest pages {stale.tolist()} hold older content than the last DMA write to them left: a write "
                    "stored back a value read before the DMA (a dirtying write that is not an atomic no-op)"
                ),
            )

    @invariant()
    @step()
    def findings(self) -> None:
        if self.sim is not None:
            self.checks.raise_pending()

    @invariant()
    @step("VFM-TMO-006")
    def answers_in_time(self) -> None:
        for record in self.records:
            if record.ended:
                self.checks.that(
                    "VFM-TMO-006",
                    record.reason is not MigReason.ACK_TIMEOUT,
                    f"migration {record.number}: a driver did not answer within ACK_TIMEOUT_MS (ACK_TIMEOUT)",
                )
                self.checks.that(
                    "VFM-TMO-006",
                    "RESUMING deadline passed: group reset" not in record.notes,
                    f"migration {record.number}: a driver did not answer RESUME_REQ within ACK_TIMEOUT_MS",
                )

    @invariant()
    @step("VFM-DIRTY-001")
    def no_lost_write(self) -> None:
        for record in self.records:
            if record.outcome is MigrationOutcome.COMPLETED:
                self.checks.that(
                    "VFM-DIRTY-001",
                    record.lost_pages == 0,
                    f"migration {record.number} lost {record.lost_pages} pages written by DMA and never dirtied",
                )

    def teardown(self) -> None:
        if self.sim is not None:
            self.final_checks()

    @step(
        "VFM-DEV-009",
        "VFM-FN-002",
        "VFM-ABS-001",
        "VFM-DIRTY-001",
        "VFM-FN-007",
        "VFM-DOWN-002",
        "VFM-FLAG-004",
        "VFM-ERR-007",
    )
    def final_checks(self) -> None:
        world = self.world
        for record in self.records:
            world.clock.run_while(partial(_running, record), record.start_ns + record.bound_ns)
        world.clock.advance(ms(200))
        self.checks.raise_pending()
        self.no_lost_write()
        host = self.where()
        if host is None:
            return
        for driver in world.drivers:
            self._check_works(host, driver)

    def _check_works(self, host: Hypervisor, driver: Any) -> None:
        slot = driver.slot
        function = self.proxies(host).get(slot)
        state = host.bridge.dev_state(slot)
        if not driver.loaded:
            self.checks.that("VFM-ABS-001", state in (DevState.UNBOUND, DevState.EMPTY), f"slot {slot}: {state}")
            return
        if not driver.up or function is None or state is not DevState.READY or getattr(function.inner, "failed", False):
            return
        entry = self.watch[slot].last_entry
        requirement = "VFM-DEV-009" if entry == (DevState.REINIT_REQ, DevState.READY) else "VFM-FN-002"
        self.checks.that(
            requirement, function.receive(PAGE) > 0, f"slot {slot}: READY with the driver up, but it receives nothing"
        )
