"""The guest: its RAM, its vCPUs, the tasks its kernel runs, and what it sees of the PCI topology.

The guest moves between hosts; its software state (drivers, migration core,
pending work) moves with it, because it lives in guest RAM.  What changes at
a migration is the :class:`GuestPlatform` behind it: the host's copy of the
guest's memory, the host's emulated bridge and the host's functions.

Guest code runs only while the vCPUs run (spec §4.3.5, VFM-MIG-003): a task
whose time comes while the vCPUs are stopped waits and runs as soon as they
run again, on whichever host that is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from reference_impl.clock import NS_PER_US, SimClock
from reference_impl.events import EventBus, EventKind
from reference_impl.memory import GuestMemory, Pages


class BridgeAccess(Protocol):
    """The guest's configuration access to the migration bridge."""

    def config_read(self, offset: int, width: int) -> int:
        """Read ``width`` bytes at ``offset``."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        """Write ``width`` bytes at ``offset``."""


class GuestPlatform(Protocol):
    """What the host in which the guest currently runs presents to it."""

    @property
    def memory(self) -> GuestMemory:
        """This host's copy of the guest's RAM."""

    @property
    def bridge(self) -> BridgeAccess:
        """The migration bridge, as the guest reaches it."""

    def function_at(self, devfn: int) -> object | None:
        """The function at ``devfn`` on the bridge's secondary bus, or None."""


@dataclass(frozen=True)
class GuestTiming:
    """How fast the guest reacts."""

    interrupt_latency_ns: int = 5 * NS_PER_US
    """From an interrupt to its handler running."""


TaskRunner = Callable[[Callable[[], None]], None]
"""Runs one task of guest code: calls it exactly once, with whatever must surround guest code."""


def run_task(task: Callable[[], None]) -> None:
    """The default :data:`TaskRunner`: the task runs as it is."""
    task()


class Guest:
    """One virtual machine."""

    def __init__(
        self,
        name: str,
        clock: SimClock,
        bus: EventBus,
        platform: GuestPlatform,
        timing: GuestTiming | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.bus = bus
        self.platform = platform
        self.timing = timing or GuestTiming()
        self.running = True
        self._waiting: deque[tuple[Callable[[], None], str]] = deque()
        self.bridge_interrupt_handler: Callable[[], None] | None = None
        self.device_interrupt_handlers: dict[str, Callable[[], None]] = {}
        self.task_runner: TaskRunner = run_task
        """Runs every task of guest code once its time comes and the vCPUs run: the one place where guest code
        runs.  An extension point for whoever watches the guest from outside and must tell guest code from the
        host's own work (the conformance suite marks guest code, so that a hypervisor's own accesses to a
        function stand out); a replacement calls the task exactly once."""

    # ------------------------------------------------------------------ where the guest runs

    @property
    def memory(self) -> GuestMemory:
        """The guest's RAM on the host where it runs now."""
        return self.platform.memory

    def move_to(self, platform: GuestPlatform) -> None:
        """The guest now runs on ``platform`` (the handover of a completed migration)."""
        self.platform = platform

    # ------------------------------------------------------------------ vCPUs and tasks

    def stop(self, host: str) -> None:
        """Stop every vCPU: no guest code runs until :meth:`run`."""
        if self.running:
            self.running = False
            self.bus.publish(EventKind.VCPU, self.name, host=host, running=False)

    def run(self, host: str) -> None:
        """Run the vCPUs again; tasks that came due meanwhile run now, in order."""
        if self.running:
            return
        self.running = True
        self.bus.publish(EventKind.VCPU, self.name, host=host, running=True)
        while self._waiting and self.running:
            task, label = self._waiting.popleft()
            self.clock.schedule(0, self._guarded(task, label), label)

    def after(self, delay: int, task: Callable[[], None], label: str = "") -> None:
        """Run guest code ``task`` after ``delay`` ns of guest execution time."""
        self.clock.schedule(delay, self._guarded(task, label), label)

    def _guarded(self, task: Callable[[], None], label: str) -> Callable[[], None]:
        def run_if_vcpus_run() -> None:
            if self.running:
                self.task_runner(task)
            else:
                self._waiting.append((task, label))

        return run_if_vcpus_run

    # ------------------------------------------------------------------ interrupts

    def inject_bridge_interrupt(self) -> None:
        """The hypervisor injects the bridge's event interrupt."""
        handler = self.bridge_interrupt_handler
        if handler is not None:
            self.after(self.timing.interrupt_latency_ns, handler, "bridge interrupt")

    def inject_device_interrupt(self, function: str) -> None:
        """The hypervisor injects a function's MSI-X message."""
        handler = self.device_interrupt_handlers.get(function)
        if handler is not None:
            self.after(self.timing.interrupt_latency_ns, handler, f"{function} interrupt")

    # ------------------------------------------------------------------ the workload's CPU writes

    def cpu_write(self, pages: Pages) -> None:
        """The guest's CPUs write ``pages`` (only while they run)."""
        if not self.running:
            raise RuntimeError(f"{self.name}: CPU writes while the vCPUs are stopped")
        memory = self.memory
        memory.check(pages)
        memory.cpu_write(pages)
        self.bus.publish(EventKind.CPU_WRITE, self.name, pages=int(pages.size))


class DmaRegionAllocator:
    """Hands out page ranges of guest RAM for drivers' rings and buffers, from the top down.

    The ranges are guest-physical and part of the guest's software state: a
    driver keeps its ranges across a migration and programs them into the
    fresh function on the destination.
    """

    def __init__(self, num_pages: int, reserve_low: int = 0) -> None:
        self._top = num_pages
        self._floor = reserve_low

    def allocate(self, pages: int) -> int:
        """The first page of ``pages`` consecutive pages."""
        if pages <= 0 or self._top - pages < self._floor:
            raise ValueError(f"cannot allocate {pages} pages for DMA: only {self._top - self._floor} left")
        self._top -= pages
        return self._top


SEABIOS_BRIDGE_SETUP: tuple[tuple[int, int, int], ...] = (
    (0x18, 4, 0x00010100),  # primary 0, secondary 1, subordinate 1, secondary latency 0
    (0x1C, 2, 0xC0C0),  # I/O window 0xc000-0xcfff
    (0x20, 4, 0xFE70FE60),  # memory window 0xfe600000-0xfe7fffff
    (0x24, 4, 0xFEB0FEA0),  # prefetchable window 0xfea00000-0xfebfffff (64-bit)
    (0x28, 4, 0x00000000),
    (0x2C, 4, 0x00000000),
    (0x10, 4, 0xFE800000),  # BAR 0: the SHPC registers
    (0x14, 4, 0x00000000),
    (0x3C, 1, 0x0B),  # interrupt line 11
    (0x3E, 2, 0x0002),  # Bridge Control: SERR# enable
    (0x04, 2, 0x0103),  # Command: I/O, memory, SERR#
)
"""The config writes with which QEMU 7.2's firmware (SeaBIOS, machine q35) set up the bridge.

Read back from the dump in ``spec/data/qemu-7.2-pci-bridge.lspci``; a test
checks that the bridge's header after these writes equals that dump.
"""


def firmware_setup(bridge: BridgeAccess) -> None:
    """What the guest's firmware does to the bridge before the OS runs: bus numbers, windows, BAR."""
    for offset, width, value in SEABIOS_BRIDGE_SETUP:
        bridge.config_write(offset, width, value)
