"""The world the ``device`` suite builds, the state its observers share, and the helpers every part uses.

:class:`DeviceWorld` is the one base of the suite's parts: the observers
(:mod:`conformance.suites.device.observers`), the rules and the scenarios are
mixins derived from it, composed into :class:`~conformance.suites.device.DeviceSuite`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize

from conformance import spec_coverage
from conformance.checks import step
from conformance.guest_watch import PLAIN, BridgeVariant, GuestWatch, WatchedBridge
from conformance.observe import FunctionProxy, Ledger, RecordingAllocator, memory_factory
from conformance.suites.common import SimulatedWorld, brisk_migration, small_world_config
from reference_impl.clock import ms
from reference_impl.device import FunctionIdentity
from reference_impl.events import EventBus
from reference_impl.hypervisor import Hypervisor, MigrationError, MigrationRecord
from reference_impl.scenario import Simulation
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.pci import PCI_VENDOR_ID, PCI_VENDOR_ID_NONE
from vfmig_proto.states import DevState, MigState

PAGE = 4096
MEMORY_PAGES = 256
"""A 1 MiB guest: room for three drivers' rings and buffers, and a pre-copy round of about 64 ms."""
ACK_TIMEOUT_MS = 20
BACKGROUND_DMA = 2 * PAGE * 1000
"""Bytes per second each function receives all the time: two pages a millisecond, so every pause races DMA."""
RUNNING_STATES = (DevState.READY, DevState.DIRTY_REQ, DevState.DIRTYING)
"""Slot states in which a driver that is up has its function working."""
RESERVED_ONES_BRIDGE = BridgeVariant("reserved-ones", rsvdp_fill=0x2AAAAAA5)
"""A bridge whose RsvdP bits read 1s, as control bits of a later minor version may: a guest writes them back."""


@dataclass
class SlotWatch:
    """What the suite knows about one slot's function and driver."""

    window: bool = False
    """Dirtying is owed for this slot's DMA (from its DIRTYING acknowledgement to the end of the migration)."""
    undirtied: set[int] = field(default_factory=set)
    """Pages the function wrote by DMA in the window and the driver has not dirtied since."""
    running_at_pause: bool = False
    """The function's BME was set when the slot entered PAUSE_REQ."""
    bme_cleared_ns: int | None = None
    """When the function's BME was last cleared."""
    last_dirty_ns: int | None = None
    """When the guest last dirtied a page."""
    early_pass: bool = False
    """The driver dirtied in PAUSE_REQ while the function's BME was still set."""
    status_read: bool = True
    """DEV_STATUS read since the last probe, open or REINIT_REQ (VFM-FLAG-003)."""
    last_entry: tuple[DevState, DevState] | None = None
    """The slot's last ``(old, new)`` DEV_STATE change."""
    bme_at_ready: bool | None = None
    """Whether the function's BME was set when the slot entered READY from RESUME_REQ."""
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

    def __init__(self, implementation: Any, suite: DeviceWorld) -> None:
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


class DeviceWorld(SimulatedWorld):
    """One guest's functions and drivers on two reference hosts, and what the suite knows of each slot."""

    ledger: Ledger
    """What happened to guest pages (DMA, CPU writes, dirtying)."""
    allocator: RecordingAllocator | None
    """Which guest pages each driver took (made by the world as it builds)."""
    watch: dict[int, SlotWatch]
    """Per slot, what the suite knows about its function and driver."""
    records: list[MigrationRecord]
    """Every migration started so far, in order."""
    reset_started: dict[FunctionProxy, int]
    """When each function's last reset was initiated (VFM-FN-007)."""
    reset_race: bool
    """Armed: the next time a driver sets BME answering REINIT_REQ or RESUME_REQ, a group reset comes."""
    guest_watch: GuestWatch
    """The guest's accesses to the bridge (:mod:`conformance.guest_watch`)."""
    implementation: Any
    """What the implementation's factory made."""
    variant: BridgeVariant
    """What the guest's bridges present."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger()
        self.allocator = None
        self.watch = {}
        self.records = []
        self.reset_started = {}
        self.reset_race = False
        self.guest_watch = GuestWatch(self.checks)
        self.implementation = None
        self.variant = PLAIN

    @initialize(vfs=st.integers(1, 3), reserved_ones=st.booleans())
    @step("VFM-GEN-004")
    def build(self, vfs: int, reserved_ones: bool) -> None:
        migration = brisk_migration(16)  # four pages per millisecond
        config = small_world_config(
            MEMORY_PAGES, vfs, migration, dma_rate=BACKGROUND_DMA, buffers=4, ack_timeout_ms=ACK_TIMEOUT_MS
        )
        self.watch = {slot: SlotWatch() for slot in range(vfs)}
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
        self.observe(bus)
        for proxy in self.functions():
            self.checks.record(
                "VFM-GEN-004",
                proxy.config_read(PCI_VENDOR_ID, 2) != PCI_VENDOR_ID_NONE,
                "config read with BME clear failed",
            )

    def _bridge(self, bus: Any, params: CapabilityParams, name: str) -> WatchedBridge:
        """The guest's bridge on a host: the reference bridge, watched (the core's accesses, VFM-ACC-002 ...)."""
        self.guest_watch.clock = bus.clock
        bridge = WatchedBridge(bus, params, name=name, watch=self.guest_watch, variant=self.variant)
        spec_coverage.watched(bridge)
        return bridge

    def _allocator(self, num_pages: int) -> RecordingAllocator:
        self.allocator = RecordingAllocator(num_pages)
        return self.allocator

    # ------------------------------------------------------------------ what the observers provide

    def observe(self, bus: EventBus) -> None:
        """Subscribe to what the world reports, once it is built (the guest has booted).

        Each observer that listens to the ledger or the bus extends this, calling ``super().observe(bus)``.
        """

    def on_bus_master(self, function: FunctionProxy, enabled: bool) -> None:
        """A function's Bus Master Enable changed (the BME observer overrides this)."""
        raise NotImplementedError

    def on_interrupt(self, function: FunctionProxy) -> None:
        """A function sent an MSI-X message (the interrupt observer overrides this)."""
        raise NotImplementedError

    def on_reset(self, function: FunctionProxy) -> None:
        """A function-level reset was initiated (the reset observer overrides this)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ where things are

    def migrating(self) -> bool:
        return any(host.outgoing is not None for host in self.world.hosts)

    def guest_running(self) -> bool:
        """Whether the world is built and its guest runs (a precondition of the rules that act in the guest)."""
        return self.sim is not None and self.sim.guest.running

    def at_rest(self) -> bool:
        """Whether the world is built, the guest is on a host and no migration is under way."""
        return self.sim is not None and self.guest_host() is not None and not self.migrating()

    def functions_host(self) -> Hypervisor | None:
        """The host whose functions the guest's drivers drive: the guest's, or the one it is leaving."""
        return self.guest_host() or next((h for h in self.world.hosts if h.outgoing is not None), None)

    @staticmethod
    def proxies(host: Hypervisor) -> dict[int, FunctionProxy]:
        """The host's functions: in this world every one is a proxy around the implementation's."""
        placed: dict[int, object] = dict(host.slot_functions)
        return {slot: function for slot, function in placed.items() if isinstance(function, FunctionProxy)}

    def functions(self) -> list[FunctionProxy]:
        host = self.guest_host()
        return [] if host is None else list(self.proxies(host).values())

    def slot_of(self, function: FunctionProxy) -> int | None:
        for host in self.world.hosts:
            for slot, candidate in self.proxies(host).items():
                if candidate is function:
                    return slot
        return None

    def dev_state(self, slot: int) -> DevState | None:
        host = self.functions_host()
        if host is None or host.bridge_or_none is None:
            return None
        return host.bridge.dev_state(slot)

    def _function(self, slot: int) -> FunctionProxy | None:
        for host in self.world.hosts:
            function = self.proxies(host).get(slot)
            if function is not None and (host.guest is not None or host.outgoing is not None):
                return function
        return None

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

    def _check_receives(self, requirement: str, slot: int, function: FunctionProxy, failure: str) -> None:
        """The slot's function, which should be receiving, takes a page sent to it (else ``failure`` is found)."""
        self.checks.record(requirement, function.receive(PAGE) > 0, f"slot {slot}: {failure}")

    # ------------------------------------------------------------------ what the rules and observers do

    def _in_flight(self, slot: int) -> None:
        """A frame arrives just as the guest acts: its DMA is in flight when the driver stops the function."""
        function = self._function(slot)
        if function is not None:
            function.receive(PAGE)

    def _prober(self, driver: Any) -> Callable[[], None]:
        """The guest's probe of ``driver``, to run in the guest: DEV_STATUS is read before BME (VFM-FLAG-003)."""
        watch = self.watch[driver.slot]

        def probe() -> None:
            if not driver.loaded:
                watch.status_read = False
            driver.load(up=True)

        return probe

    def _start_migration(self) -> None:
        host = self.guest_host()
        if host is None or self.migrating():
            return
        destination = next(other for other in self.world.hosts if other is not host)
        if destination.incoming is not None or destination.guest is not None:
            return
        try:
            self.records.append(host.migrate_to(destination, len(self.records) + 1).record)
        except MigrationError:
            return

    def _run_until(self, state: MigState) -> None:
        world = self.world

        def reached() -> bool:
            return any(host.bridge_or_none is not None and host.bridge.mig_state is state for host in world.hosts)

        world.clock.run_while(lambda: not reached(), world.clock.now + ms(500))
