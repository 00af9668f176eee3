"""Wiring: two hosts, one guest with its functions, a workload, faults; run migrations and report them.

A :class:`Simulation` builds the whole world from a :class:`SimulationConfig`:
a source and a destination :class:`~reference_impl.hypervisor.Hypervisor`,
the guest with its migration core and one VF driver per function, the
guest's CPU workload and the network traffic that the functions receive and
send.  :meth:`Simulation.run` performs ``migrations`` migrations back and
forth and returns one :class:`~reference_impl.hypervisor.MigrationRecord`
each.  A :class:`ScenarioFault` injects one failure into the first migration.

Everything is driven by the simulated clock; the same code runs a 64-page
toy guest for the conformance suite and a 64 GiB guest for a benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Protocol

import numpy as np

from reference_impl.clock import NS_PER_MS, NS_PER_S, SimClock, ms
from reference_impl.device import BAR0_SIZE, DeviceTiming, FunctionIdentity, VirtualFunction
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import EventBus, EventKind
from reference_impl.factories import ReferenceDevice, ReferenceHypervisor
from reference_impl.guest import DmaRegionAllocator, Guest, firmware_setup
from reference_impl.hypervisor import (
    BridgeFactory,
    DeviceRecord,
    FunctionFactory,
    GiB,
    Hypervisor,
    MemoryFactory,
    MiB,
    MigrationConfig,
    MigrationOutcome,
    MigrationRecord,
)
from reference_impl.invariants import InvariantMonitor, Violation
from vfmig_proto.layout import VFM_DEFAULT_ACK_TIMEOUT_MS, VFM_MAX_SLOTS, VFM_MIN_PAGE_SHIFT, CapabilityParams
from vfmig_proto.states import MigReason, MigState

FUNCTION_BAR_BASE = 0xFE600000
"""Start of the bridge's memory window (as QEMU's firmware sets it): the functions' BARs go here."""


class ScenarioFault(Enum):
    """One failure to inject into the first migration (``vfmig simulate --fault NAME``)."""

    CANCEL_PRECOPY = "cancel-precopy"
    """The management layer cancels during pre-copy (spec §7.7)."""
    CANCEL_AFTER_PAUSE = "cancel-after-pause"
    """The management layer cancels once every function is paused and the vCPUs are stopped (§7.7)."""
    ACK_TIMEOUT = "ack-timeout"
    """Slot 0's function takes twice ACK_TIMEOUT_MS to drain its DMA, so its pause is late (§7.6)."""
    DESTINATION_FAILURE = "destination-failure"
    """The destination cannot take the guest over when the final state arrives (§7.8)."""
    SURPRISE_REMOVAL = "surprise-removal"
    """Slot 0's function disappears during pre-copy (§7.9)."""
    DEVICE_ERROR = "device-error"
    """Slot 0's function fails during pre-copy: cancel, then a group reset (§7.9)."""
    DRIVER_UNLOADED = "driver-unloaded"
    """Slot 0's driver is unloaded during pre-copy; the function migrates unbound (§7.4)."""
    INTERFACE_DOWN = "interface-down"
    """Slot 0's interface is down during the migration and opened on the destination (§7.3, §7.5)."""
    NO_DIRTYING = "no-dirtying"
    """A broken driver that never dirties what its function writes: the run must report lost pages."""

    @property
    def expected(self) -> tuple[MigrationOutcome, MigReason]:
        """How the spec says a migration with this fault ends."""
        return _EXPECTED[self]


_EXPECTED: dict[ScenarioFault, tuple[MigrationOutcome, MigReason]] = {
    ScenarioFault.CANCEL_PRECOPY: (MigrationOutcome.CANCELLED, MigReason.CANCELLED),
    ScenarioFault.CANCEL_AFTER_PAUSE: (MigrationOutcome.CANCELLED, MigReason.CANCELLED),
    ScenarioFault.ACK_TIMEOUT: (MigrationOutcome.FAILED, MigReason.ACK_TIMEOUT),
    ScenarioFault.DESTINATION_FAILURE: (MigrationOutcome.FAILED, MigReason.DESTINATION_FAILURE),
    ScenarioFault.SURPRISE_REMOVAL: (MigrationOutcome.FAILED, MigReason.SURPRISE_REMOVAL),
    ScenarioFault.DEVICE_ERROR: (MigrationOutcome.FAILED, MigReason.DEVICE_ERROR),
    ScenarioFault.DRIVER_UNLOADED: (MigrationOutcome.COMPLETED, MigReason.COMPLETED),
    ScenarioFault.INTERFACE_DOWN: (MigrationOutcome.COMPLETED, MigReason.COMPLETED),
    ScenarioFault.NO_DIRTYING: (MigrationOutcome.COMPLETED, MigReason.COMPLETED),
}


@dataclass(frozen=True)
class SimulationConfig:
    """Everything ``vfmig simulate`` lets a user choose."""

    memory_bytes: int = 4 * GiB
    vfs: int = 2
    dma_rate: float = 125_000_000.0
    """Bytes per second each function receives (and writes by DMA): 1 Gb/s."""
    dma_read_rate: float = 0.0
    """Bytes per second each function transmits (reads by DMA)."""
    cpu_dirty_rate: float = 64 * MiB
    """Bytes per second the guest's CPUs write, spread over ``cpu_working_set`` of its memory."""
    cpu_working_set: float = 1.0
    """Fraction of guest memory (from page 0) the CPU writes land in."""
    migration: MigrationConfig = field(default_factory=MigrationConfig)
    migrations: int = 1
    seed: int = 0
    fault: ScenarioFault | None = None
    page_shift: int = VFM_MIN_PAGE_SHIFT
    num_slots: int | None = None
    """NUM_SLOTS of the bridge's capability (at least ``vfs``; None: ``max(8, vfs)``)."""
    ack_timeout_ms: int = VFM_DEFAULT_ACK_TIMEOUT_MS
    buffers: int = 1024
    """Receive buffers (pages) per function."""
    settle_ns: int = ms(50)
    """How long to keep running after a migration ends, so drivers finish reinitialising."""
    gap_ns: int = ms(100)
    """Time between the end of one migration and the start of the next."""

    def __post_init__(self) -> None:
        if not 1 <= self.vfs <= VFM_MAX_SLOTS:
            raise ValueError(f"--vfs must be 1..{VFM_MAX_SLOTS}, not {self.vfs}")
        if not self.vfs <= self.slots <= VFM_MAX_SLOTS:
            raise ValueError(
                f"NUM_SLOTS must be {self.vfs}..{VFM_MAX_SLOTS} to hold {self.vfs} functions, not {self.slots}"
            )
        if self.migrations < 1:
            raise ValueError(f"--migrations must be at least 1, not {self.migrations}")
        if not 0 < self.cpu_working_set <= 1:
            raise ValueError(f"the CPU working set must be in (0, 1], not {self.cpu_working_set}")
        for name in ("dma_rate", "dma_read_rate", "cpu_dirty_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def slots(self) -> int:
        """The NUM_SLOTS this configuration gives the bridge."""
        return self.num_slots if self.num_slots is not None else max(8, self.vfs)


@dataclass
class SimulationResult:
    """What :meth:`Simulation.run` returns."""

    config: SimulationConfig
    migrations: list[MigrationRecord]
    simulated_ns: int
    violations: list[Violation] = field(default_factory=list)
    """Invariants the run broke (see :mod:`reference_impl.invariants`); empty for the reference."""

    @property
    def last(self) -> MigrationRecord:
        """The last migration."""
        return self.migrations[-1]


class DeviceModel(Protocol):
    """What a simulation needs of a device model: its functions and their drivers."""

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        """A fresh function."""

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        """The driver of the function in ``slot``."""


class HypervisorModel(Protocol):
    """What a simulation needs of a hypervisor implementation: its hosts."""

    def create_hypervisor(
        self,
        name: str,
        clock: SimClock,
        bus: EventBus,
        config: MigrationConfig,
        *,
        functions: FunctionFactory,
        bridges: BridgeFactory | None,
    ) -> Hypervisor:
        """A host (``bridges`` None: the reference bridge)."""


class Simulation:
    """The world of one ``vfmig simulate`` run.

    ``devices``, ``bridges`` and ``hypervisors`` choose the implementation of
    each role; the reference implementation by default.  The conformance suite
    puts the implementation under test in one of them.  ``cores`` makes the
    guest's migration core from the guest (the reference
    :class:`~reference_impl.driver.MigrationCore` by default).
    """

    def __init__(
        self,
        config: SimulationConfig,
        bus: EventBus | None = None,
        *,
        monitor: bool = True,
        devices: DeviceModel | None = None,
        bridges: BridgeFactory | None = None,
        hypervisors: HypervisorModel | None = None,
        memories: MemoryFactory | None = None,
        allocator: Callable[[int], DmaRegionAllocator] | None = None,
        cores: Callable[[Guest], MigrationCore] | None = None,
    ) -> None:
        self.config = config
        self.clock = SimClock() if bus is None else bus.clock
        self.bus = bus or EventBus(self.clock)
        self.rng = np.random.default_rng(config.seed)
        self.devices = devices or _reference_devices(config)
        if devices is not None and config.fault in (ScenarioFault.NO_DIRTYING, ScenarioFault.ACK_TIMEOUT):
            raise ValueError(f"fault {config.fault.value} bends the reference device; it needs devices=None")
        host_model = hypervisors or ReferenceHypervisor()
        self.hosts = tuple(
            host_model.create_hypervisor(
                name, self.clock, self.bus, config.migration, functions=self.devices.create_function, bridges=bridges
            )
            for name in ("hostA", "hostB")
        )
        if memories is not None:
            for host in self.hosts:
                host.make_memory = memories
        self.monitor = InvariantMonitor(self.bus, self.hosts) if monitor else None
        source = self.hosts[0]
        params = CapabilityParams(
            num_slots=config.slots, page_shift=config.page_shift, ack_timeout_ms=config.ack_timeout_ms
        )
        source.create_bridge(params)
        memory = source.make_memory(config.memory_bytes, config.page_shift, True)
        self.guest = Guest("guest", self.clock, self.bus, source)
        source.host_guest(self.guest, memory)
        self.core = (cores or MigrationCore)(self.guest)
        allocator_for = DmaRegionAllocator(memory.num_pages) if allocator is None else allocator(memory.num_pages)
        self.drivers: list[VfDriver] = []
        for slot in range(config.vfs):
            function = source.assign_function(slot)
            if config.fault is ScenarioFault.ACK_TIMEOUT and slot == 0:
                function.timing = DeviceTiming(drain_ns=2 * config.ack_timeout_ms * NS_PER_MS)
            devfn = source.bridge.devfn(slot)
            self.drivers.append(self.devices.create_driver(self.guest, self.core, slot, devfn, allocator_for))
        self._timing_fault_pending = config.fault is ScenarioFault.ACK_TIMEOUT
        self._carry_cpu = 0.0
        self._carry_rx = [0.0] * config.vfs
        self._carry_tx = [0.0] * config.vfs
        self._working_pages = max(1, int(memory.num_pages * config.cpu_working_set))
        self._world_timer_running = False
        self.records: list[MigrationRecord] = []
        self.boot()

    # ------------------------------------------------------------------ the guest boots

    def boot(self) -> None:
        """The firmware sets the bridge up; the OS finds the capability, loads its drivers, opens interfaces."""
        firmware_setup(self.guest.platform.bridge)
        for index, driver in enumerate(self.drivers):
            function = driver.function
            if function is not None:  # the firmware places each function's BAR in the bridge's memory window
                function.config_write(0x10, 4, FUNCTION_BAR_BASE + index * BAR0_SIZE)
                function.config_write(0x14, 4, 0)
        if not self.core.probe():
            raise RuntimeError("the guest did not find a usable migration capability")
        for driver in self.drivers:
            driver.load(up=True)
        if self.config.fault is ScenarioFault.INTERFACE_DOWN:
            self.drivers[0].close()
        self._start_world()

    # ------------------------------------------------------------------ the workload and the traffic

    def _start_world(self) -> None:
        if not self._world_timer_running:
            self._world_timer_running = True
            self.clock.schedule(self.config.migration.quantum_ns, self._world_tick, "world")

    def _world_tick(self) -> None:
        quantum = self.config.migration.quantum_ns
        self._cpu_writes(quantum)
        self._traffic(quantum)
        self.clock.schedule(quantum, self._world_tick, "world")

    def _cpu_writes(self, quantum: int) -> None:
        guest = self.guest
        if not guest.running or self.config.cpu_dirty_rate == 0:
            return
        wanted = self.config.cpu_dirty_rate * quantum / NS_PER_S / guest.memory.page_size + self._carry_cpu
        count = int(wanted)
        self._carry_cpu = wanted - count
        if count:
            guest.cpu_write(self.rng.integers(0, self._working_pages, size=count, dtype=np.int64))

    def _traffic(self, quantum: int) -> None:
        for index, driver in enumerate(self.drivers):
            function = driver.function
            if function is None:
                continue
            if self.config.dma_rate:
                wanted = self.config.dma_rate * quantum / NS_PER_S + self._carry_rx[index]
                nbytes = int(wanted)
                self._carry_rx[index] = wanted - nbytes
                if nbytes:
                    function.receive(nbytes)
            if self.config.dma_read_rate and self.guest.running:
                wanted = self.config.dma_read_rate * quantum / NS_PER_S / self.guest.memory.page_size
                wanted += self._carry_tx[index]
                pages = int(wanted)
                self._carry_tx[index] = wanted - pages
                driver.transmit(pages)

    # ------------------------------------------------------------------ migrations

    def run(self, progress: Callable[[MigrationRecord], None] | None = None) -> SimulationResult:
        """Run every migration to its end; return their records."""
        for number in range(1, self.config.migrations + 1):
            source, destination = self._hosts_for(number)
            self.clock.advance(self.config.gap_ns)
            record = self._migrate(number, source, destination)
            self.records.append(record)
            if self.monitor is not None:
                self.monitor.check_record(record)
            if progress is not None:
                progress(record)
            if record.outcome is not MigrationOutcome.COMPLETED and number < self.config.migrations:
                self._wait_for_idle(source)
        violations = list(self.monitor.violations) if self.monitor is not None else []
        return SimulationResult(self.config, self.records, self.clock.now, violations)

    def _hosts_for(self, number: int) -> tuple[Hypervisor, Hypervisor]:
        where = next(host for host in self.hosts if host.guest is self.guest)
        other = self.hosts[1] if where is self.hosts[0] else self.hosts[0]
        return where, other

    def _migrate(self, number: int, source: Hypervisor, destination: Hypervisor) -> MigrationRecord:
        self._wait_for_idle(source)
        fault = self.config.fault if number == 1 else None
        migration = source.migrate_to(destination, number)
        record = migration.record
        if fault is not None:
            self._arm(fault, source, destination)
        limit = record.start_ns + record.bound_ns + ms(1)
        self.clock.run_while(lambda: not record.ended, limit)
        if not record.ended:
            raise RuntimeError(f"migration {number} did not end within its bound of {record.bound_ns} ns")
        host = destination if record.outcome is MigrationOutcome.COMPLETED else source
        self.clock.run_while(lambda: host.guest is None, self.clock.now + ms(10))
        self._after_end(fault, host)
        self.clock.advance(self.config.settle_ns)
        self.clock.run_while(lambda: not self._settled(host), self.clock.now + 10 * NS_PER_S)
        record.devices = self._device_records(
            host, destination if record.outcome is MigrationOutcome.COMPLETED else None
        )
        return record

    def _wait_for_idle(self, host: Hypervisor) -> None:
        self.clock.run_while(lambda: not self._settled(host), self.clock.now + 10 * NS_PER_S)

    def _settled(self, host: Hypervisor) -> bool:
        bridge = host.bridge_or_none
        return bridge is not None and bridge.mig_state is MigState.IDLE and not any(d.busy for d in self.drivers)

    # ------------------------------------------------------------------ faults

    def _arm(self, fault: ScenarioFault, source: Hypervisor, destination: Hypervisor) -> None:
        """Make ``fault`` happen at its moment in the migration that just started."""

        def on_transition(event: object) -> None:
            new = getattr(event, "data", {}).get("new")
            if new is MigState.PRECOPY and fault in _PRECOPY_FAULTS:
                unsubscribe()
                self.clock.schedule(ms(20), lambda: self._precopy_fault(fault, source), fault.value)
            elif new is MigState.STOPPED and fault is ScenarioFault.CANCEL_AFTER_PAUSE:
                unsubscribe()
                outgoing = source.outgoing
                if outgoing is not None:
                    self.clock.schedule(0, lambda: outgoing.cancel(MigReason.CANCELLED), fault.value)

        unsubscribe = self.bus.subscribe(on_transition, [EventKind.MIG_TRANSITION])
        if fault is ScenarioFault.DESTINATION_FAILURE and destination.incoming is not None:
            destination.incoming.fail_on_state = "the destination could not restore the guest (injected)"
        self.bus.publish(EventKind.FAULT, "simulation", fault=fault.value)

    def _precopy_fault(self, fault: ScenarioFault, source: Hypervisor) -> None:
        outgoing = source.outgoing
        if outgoing is None:
            return
        if fault is ScenarioFault.CANCEL_PRECOPY:
            outgoing.cancel(MigReason.CANCELLED)
        elif fault is ScenarioFault.SURPRISE_REMOVAL:
            source.surprise_remove(0)
        elif fault is ScenarioFault.DEVICE_ERROR:
            source.function_failed(0)
        elif fault is ScenarioFault.DRIVER_UNLOADED:
            self.guest.after(0, self.drivers[0].unload, "unload driver")

    def _after_end(self, fault: ScenarioFault | None, host: Hypervisor) -> None:
        if fault is ScenarioFault.ACK_TIMEOUT:
            for function in host.slot_functions.values():
                function.timing = DeviceTiming()  # the slow drain was this migration's fault only
        if fault is ScenarioFault.INTERFACE_DOWN and host.guest is self.guest:
            self.guest.after(ms(1), self.drivers[0].open, "open interface")

    # ------------------------------------------------------------------ reporting

    def _device_records(self, host: Hypervisor, destination: Hypervisor | None) -> list[DeviceRecord]:
        bridge = host.bridge_or_none
        records = []
        for driver in self.drivers:
            slot = driver.slot
            function = host.slot_functions.get(slot)
            placed = None
            if destination is not None and destination.last_placed is not None:
                placed = destination.last_placed.get(slot)
            state = bridge.dev_state(slot) if bridge is not None else None
            migrated = bridge.dev_status(slot)[0] if bridge is not None else False
            records.append(
                DeviceRecord(
                    slot=slot,
                    function=function.name if function is not None else None,
                    state=state,  # type: ignore[arg-type]
                    reset_on_destination=placed,
                    migrated_flag=migrated,
                    driver=_driver_state(driver),
                )
            )
        return records


def _reference_devices(config: SimulationConfig) -> DeviceModel:
    driver_config = DriverConfig(buffers=config.buffers)
    if config.fault is ScenarioFault.NO_DIRTYING:
        driver_config = replace(driver_config, dirty_completions=False, dirty_on_pause=False)
    return ReferenceDevice(driver_config=driver_config)


_PRECOPY_FAULTS = frozenset(
    {
        ScenarioFault.CANCEL_PRECOPY,
        ScenarioFault.SURPRISE_REMOVAL,
        ScenarioFault.DEVICE_ERROR,
        ScenarioFault.DRIVER_UNLOADED,
    }
)


def _driver_state(driver: VfDriver) -> str:
    if not driver.loaded:
        return "unloaded"
    if not driver.up:
        return "down"
    return "running" if driver.configured and not driver.paused else "up, not running"
