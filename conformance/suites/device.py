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
from conformance.observe import FunctionProxy, Ledger, RecordingAllocator, find_capability, memory_factory
from reference_impl.clock import ms
from reference_impl.device import FunctionIdentity
from reference_impl.events import Event, EventKind
from reference_impl.hypervisor import Hypervisor, MigrationConfig, MigrationError, MigrationRecord, Outcome
from reference_impl.memory import Pages
from reference_impl.scenario import Simulation, SimulationConfig
from vfmig_proto.pci import PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET, PCI_COMMAND, PCI_COMMAND_MASTER
from vfmig_proto.states import DevEvent, DevState, MigReason, MigState
from vfmig_proto.transitions import Action

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
POSTED_WRITE_GRACE_NS = ms(1)
"""A DMA write issued just before BME was cleared may land just after; a millisecond later it is a new one."""
"""VFM-FN-003: Transactions Pending clear within 50 ms of clearing BME."""


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


class _Observed:
    """The implementation under test, wrapped so that the suite sees its functions."""

    def __init__(self, implementation: Any, suite: DeviceSuite) -> None:
        self.implementation = implementation
        self.suite = suite

    def create_function(self, name: str, clock: Any, bus: Any, identity: FunctionIdentity | None) -> Any:
        inner = self.implementation.create_function(name, clock, bus, identity)
        return FunctionProxy(inner, self.suite.on_bus_master, self.suite.on_interrupt)

    def create_driver(self, guest: Any, core: Any, slot: int, devfn: int, allocator: Any) -> Any:
        assert isinstance(allocator, RecordingAllocator)
        return self.implementation.create_driver(guest, core, slot, devfn, allocator.for_slot(slot))


class DeviceSuite(ConformanceMachine):
    """Random interleavings around one guest's functions; checks of the device and driver requirements."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        self.ledger = Ledger()
        self.allocator: RecordingAllocator | None = None
        self.watch: dict[int, SlotWatch] = {}
        self.records: list[MigrationRecord] = []

    # ------------------------------------------------------------------ the world

    @initialize(vfs=st.integers(1, 3))
    @step("VFM-GEN-004")
    def build(self, vfs: int) -> None:
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
        self.sim = Simulation(
            config,
            monitor=False,
            devices=_Observed(self.factory(), self),
            memories=memory_factory(self.ledger),
            allocator=self._allocator,
        )
        bus = self.sim.bus
        bus.subscribe(self.on_dev_transition, [EventKind.DEV_TRANSITION])
        bus.subscribe(self.on_rejected, [EventKind.REPORT_REJECTED])
        bus.subscribe(self.on_bridge_read, [EventKind.CONFIG_READ])
        for proxy in self.functions():
            self.checks.record("VFM-GEN-004", proxy.config_read(0, 2) != 0xFFFF, "config read with BME clear failed")

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
        for slot, watch in self.watch.items():
            status = host.bridge.cap + 0x20 + 4 * slot + 2
            if offset <= status < offset + width:
                watch.status_read = True

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
        if new is DevState.DIRTYING:
            watch.window = True
        elif new is DevState.PAUSE_REQ:
            function = self._function(slot)
            watch.running_at_pause = function is not None and function.bus_master
            watch.early_pass = False
            watch.window = True
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
    @step("VFM-TMO-006", "VFM-DIRTY-003", "VFM-DIRTY-004", "VFM-FN-003")
    def time_passes(self, duration_us: int) -> None:
        self.world.clock.advance(duration_us * 1000)

    @rule(
        state=st.sampled_from([MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED, MigState.ARRIVED, MigState.IDLE])
    )
    @step("VFM-TMO-006", "VFM-DIRTY-003", "VFM-DIRTY-004", "VFM-DEV-009", "VFM-FLAG-005")
    def run_until(self, state: MigState) -> None:
        """Let time pass until a bridge reaches ``state`` (or half a second has passed)."""
        self._run_until(state)

    def _run_until(self, state: MigState) -> None:
        world = self.world

        def reached() -> bool:
            return any(host.bridge_or_none is not None and host.bridge.mig_state is state for host in world.hosts)

        world.clock.run_while(lambda: not reached(), world.clock.now + ms(500))

    @rule(kind=st.sampled_from(SCENARIOS), slot=st.integers(0, 2))
    @step("VFM-ABS-001", "VFM-ABS-002", "VFM-ABS-003", "VFM-DOWN-003", "VFM-FLAG-003", "VFM-FLAG-005", "VFM-DEV-007")
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
    @step("VFM-DOWN-003", "VFM-FLAG-003", "VFM-FLAG-005")
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
    @step("VFM-FN-006", "VFM-ERR-006")
    def guest_group_reset(self, dice: int) -> None:
        host = self.where()
        if dice == 0 and host is not None and self.world.guest.running:
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

    # ------------------------------------------------------------------ invariants

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
            if record.outcome is Outcome.COMPLETED:
                self.checks.that(
                    "VFM-DIRTY-001",
                    record.lost_pages == 0,
                    f"migration {record.number} lost {record.lost_pages} pages written by DMA and never dirtied",
                )

    def teardown(self) -> None:
        if self.sim is not None:
            self.final_checks()

    @step("VFM-DEV-009", "VFM-FN-002", "VFM-ABS-001", "VFM-DIRTY-001")
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
