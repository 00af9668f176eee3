"""A virtual function (VF): its configuration-space essentials and a receive/transmit DMA engine.

What the protocol needs of a device (spec §4.6, the device role) and nothing
vendor-specific beyond a plausible NIC queue:

* the Command register's Bus Master Enable gates every DMA and every MSI-X
  message (VFM-FN-001); clearing it keeps the queue state (VFM-FN-002) and
  lets Transactions Pending clear after a drain time (VFM-FN-003);
* a function-level reset, started through the PCI Express Device Control
  register or by the bridge's group reset, forgets everything the driver
  programmed (VFM-FN-006) and completes at once (well inside VFM-FN-007);
* the DMA engine writes received data only into the buffers its driver posted
  (VFM-FN-004) and a completion entry into the driver's ring; it interrupts
  through MSI-X only while enabled and unmasked (VFM-FN-005).

The driver talks to the engine through the ``mmio_*`` methods, which stand for
the function's BAR registers.  Host-side traffic arrives through
:meth:`VirtualFunction.receive`.  Every DMA and interrupt is an event on the bus.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from reference_impl.clock import NS_PER_US, SimClock
from reference_impl.events import EventBus, EventKind
from reference_impl.memory import MemoryView
from vfmig_proto import headers
from vfmig_proto.headers import function_masks, function_reset_config
from vfmig_proto.pci import (
    PCI_COMMAND,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCI_CONFIG_SIZE,
    PCI_EXP_DEVCTL,
    PCI_EXP_DEVCTL_BCR_FLR,
    PCI_EXP_DEVSTA,
    PCI_EXP_DEVSTA_TRPND,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
)

PCI_CLASS_NETWORK_ETHERNET = headers.PCI_CLASS_NETWORK_ETHERNET
PCIE_CAP_OFFSET = headers.FUNCTION_PCIE_CAP_OFFSET
MSIX_CAP_OFFSET = headers.FUNCTION_MSIX_CAP_OFFSET
DESCRIPTOR_BYTES = 16
"""Bytes of one receive descriptor (write-back format), so 256 descriptors per 4 KiB ring page."""


@dataclass(frozen=True)
class FunctionIdentity:
    """What the guest sees of a function's identity; the destination's function must match (VFM-MIG-004)."""

    vendor_id: int = 0x8086
    device_id: int = 0x154C
    revision: int = 0x01
    subsystem_vendor_id: int = 0x8086
    subsystem_id: int = 0x0000


@dataclass(frozen=True)
class DeviceTiming:
    """How long the function's own operations take."""

    drain_ns: int = 50 * NS_PER_US
    """From clearing BME to Transactions Pending clear: in-flight reads complete (VFM-FN-003: at most 50 ms)."""
    posted_write_ns: int = 2 * NS_PER_US
    """From issuing a DMA write to its landing in guest memory.  A write issued before BME was cleared may
    still land after; a read of one of the function's registers makes every earlier write land first
    (PCI ordering), which is why the driver reads one before it dirties (spec VFM-DIRTY-003)."""


POSTED_WRITE_GRACE_NS = 1_000_000
"""How late a DMA write issued just before BME was cleared may still land: a millisecond later, it is a write
issued with BME clear (VFM-FN-001).  Not a number of the spec, which only says writes may be in flight: a bound
of this model, far above :attr:`DeviceTiming.posted_write_ns`, shared by the invariant monitor and the suite."""


@dataclass
class RxQueue:
    """A receive queue the driver programmed: a descriptor ring and a pool of one-page buffers."""

    ring_start: int
    ring_pages: int
    buffer_start: int
    buffer_count: int
    head: int = 0
    """Index of the next buffer the device fills."""
    posted: int = 0
    """Buffers the driver has posted and the device has not filled yet."""
    completed: list[tuple[int, int]] = field(default_factory=list)
    """Buffer-index ranges ``[start, stop)`` filled and not yet taken by the driver."""


BAR0_SIZE = 64 * 1024
"""The function's register BAR: 64-bit memory, 64 KiB."""
_WMASK, _W1CMASK = function_masks(BAR0_SIZE)


class VirtualFunction:
    """One SR-IOV virtual function on one host."""

    def __init__(
        self,
        name: str,
        clock: SimClock,
        bus: EventBus,
        identity: FunctionIdentity | None = None,
        timing: DeviceTiming | None = None,
    ) -> None:
        self.name = name
        self.clock = clock
        self.bus = bus
        self.identity = identity or FunctionIdentity()
        self.timing = timing or DeviceTiming()
        self.config = function_reset_config(self.identity)
        self.memory: MemoryView | None = None
        """The guest memory this function's DMA reaches through the IOMMU (VFM-SEC-007); None if unassigned."""
        self.interrupt_sink: Callable[[str], None] | None = None
        """Called with the function's name for each MSI-X message it sends."""
        self.bme_listener: Callable[[object], None] | None = None
        """Called after every change of BME (the hypervisor traps Command writes through VFIO)."""
        self.rx: RxQueue | None = None
        self.queues_enabled = False
        self.failed = False
        self._bme_cleared_at = -(1 << 62)
        self._in_flight: deque[Callable[[], None]] = deque()
        self._msix_pending = False
        self.resets = 0

    # ------------------------------------------------------------------ configuration space

    @property
    def bus_master(self) -> bool:
        """Bus Master Enable in the Command register."""
        return bool(self.config[PCI_COMMAND] & PCI_COMMAND_MASTER)

    @property
    def transactions_pending(self) -> bool:
        """PCI Express Device Status.Transactions Pending: reads issued before BME was cleared still in flight."""
        return not self.bus_master and self.clock.now < self._bme_cleared_at + self.timing.drain_ns

    @property
    def msix_enabled(self) -> bool:
        """MSI-X Enable set and Function Mask clear."""
        flags = int.from_bytes(self.config[MSIX_CAP_OFFSET + 2 : MSIX_CAP_OFFSET + 4], "little")
        return bool(flags & PCI_MSIX_FLAGS_ENABLE) and not flags & PCI_MSIX_FLAGS_MASKALL

    def config_read(self, offset: int, width: int) -> int:
        """A configuration read; Device Status shows Transactions Pending live."""
        if width not in (1, 2, 4) or offset < 0 or offset + width > PCI_CONFIG_SIZE:
            raise ValueError(f"{self.name}: a {width}-byte config read at 0x{offset:x} is not a PCI access")
        data = bytearray(self.config[offset : offset + width])
        devsta = PCIE_CAP_OFFSET + PCI_EXP_DEVSTA
        if offset <= devsta < offset + width and self.transactions_pending:
            data[devsta - offset] |= PCI_EXP_DEVSTA_TRPND
        return int.from_bytes(data, "little")

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A configuration write through the function's masks; Initiate FLR starts a reset."""
        if width not in (1, 2, 4) or offset < 0 or offset % width or offset + width > PCI_CONFIG_SIZE:
            raise ValueError(f"{self.name}: a {width}-byte config write at 0x{offset:x} is not a PCI access")
        was_master = self.bus_master
        data = value.to_bytes(width, "little")
        for index, byte in enumerate(data):
            position = offset + index
            current = self.config[position]
            stored = (current & ~_WMASK[position]) | (byte & _WMASK[position])
            self.config[position] = stored & ~(byte & _W1CMASK[position]) & 0xFF
        devctl = PCIE_CAP_OFFSET + PCI_EXP_DEVCTL
        if offset <= devctl + 1 < offset + width and value >> (8 * (devctl + 1 - offset)) & (
            PCI_EXP_DEVCTL_BCR_FLR >> 8
        ):
            self.config[devctl + 1] &= ~(PCI_EXP_DEVCTL_BCR_FLR >> 8) & 0xFF
            self.function_level_reset("flr")
            return
        if was_master != self.bus_master:
            self._bus_master_changed()
        if offset <= MSIX_CAP_OFFSET + PCI_MSIX_FLAGS + 1 and offset + width > MSIX_CAP_OFFSET + PCI_MSIX_FLAGS:
            self._msix_control_written()

    def set_bus_master(self, enabled: bool) -> None:
        """Set or clear BME with a read-modify-write of the Command register, as a driver does."""
        command = self.config_read(PCI_COMMAND, 2)
        command = command | PCI_COMMAND_MASTER if enabled else command & ~PCI_COMMAND_MASTER
        self.config_write(PCI_COMMAND, 2, command | PCI_COMMAND_MEMORY)

    def set_msix(self, enabled: bool) -> None:
        """Enable or disable MSI-X (and clear the function mask)."""
        self.config_write(MSIX_CAP_OFFSET + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE if enabled else 0)

    def mask_msix(self, masked: bool) -> None:
        """Set or clear the MSI-X Function Mask, keeping MSI-X Enable as it is."""
        offset = MSIX_CAP_OFFSET + PCI_MSIX_FLAGS
        flags = self.config_read(offset, 2)
        flags = flags | PCI_MSIX_FLAGS_MASKALL if masked else flags & ~PCI_MSIX_FLAGS_MASKALL
        self.config_write(offset, 2, flags)

    def _bus_master_changed(self) -> None:
        if not self.bus_master:
            self._bme_cleared_at = self.clock.now
        self.bus.publish(EventKind.BUS_MASTER, self.name, function=self.name, enabled=self.bus_master)
        if self.bme_listener is not None:
            self.bme_listener(self)

    def function_level_reset(self, how: str) -> None:
        """Reset the function: BME clear, MSI-X off, queues forgotten (VFM-FN-006)."""
        was_master = self.bus_master
        self.config = function_reset_config(self.identity)
        self.rx = None
        self.queues_enabled = False
        self.failed = False
        self._in_flight.clear()
        self._msix_pending = False
        self.resets += 1
        self._bme_cleared_at = -(1 << 62)  # nothing is in flight after a reset
        if was_master:
            self.bus.publish(EventKind.BUS_MASTER, self.name, function=self.name, enabled=False)
        self.bus.publish(EventKind.FUNCTION_RESET, self.name, function=self.name, how=how)

    @property
    def in_reset_state(self) -> bool:
        """Whether the function holds nothing a driver programmed: as after a reset."""
        return not self.bus_master and self.rx is None and not self.queues_enabled and not self.msix_enabled

    # ------------------------------------------------------------------ the driver's registers (BAR)

    def mmio_setup_rx(self, ring_start: int, ring_pages: int, buffer_start: int, buffer_count: int) -> None:
        """Program the receive ring and its buffer pool (page numbers in guest memory)."""
        self.rx = RxQueue(ring_start, ring_pages, buffer_start, buffer_count)

    def mmio_post(self, count: int) -> None:
        """The driver posted ``count`` more buffers (it wrote their descriptors itself)."""
        if self.rx is None:
            raise RuntimeError(f"{self.name}: buffers posted before the receive ring was programmed")
        self.rx.posted = min(self.rx.buffer_count, self.rx.posted + count)

    def mmio_enable_queues(self, enabled: bool) -> None:
        """Start or stop the queues (stopping keeps their state, as clearing BME does)."""
        self.queues_enabled = enabled

    def mmio_read_status(self) -> int:
        """A read of a status register: its completion orders every earlier DMA write before it."""
        self._flush_posted_writes()
        return 0xFFFFFFFF if self.failed else int(self.queues_enabled)

    def mmio_take_completions(self) -> list[tuple[int, int]]:
        """The buffer-index ranges filled since the last call."""
        if self.rx is None:
            return []
        done, self.rx.completed = self.rx.completed, []
        return done

    # ------------------------------------------------------------------ traffic

    def can_dma(self) -> bool:
        """Whether the function may and can write guest memory now."""
        return self.bus_master and self.queues_enabled and not self.failed and self.memory is not None

    def receive(self, nbytes: int) -> int:
        """Frames of ``nbytes`` arrive from the network; returns the buffers filled (the rest is dropped)."""
        rx = self.rx
        if rx is None or not self.can_dma() or rx.posted == 0:
            return 0
        page_size = 1 << self.memory.page_shift if self.memory is not None else 4096
        count = min(rx.posted, max(1, -(-nbytes // page_size)))
        start = rx.head
        rx.head = (start + count) % rx.buffer_count
        rx.posted -= count
        self._issue(lambda: self.land(rx, start, count))
        return count

    def _issue(self, write: Callable[[], None]) -> None:
        """Issue posted writes: they land ``posted_write_ns`` later, in order, unless a read flushes them."""
        latency = self.timing.posted_write_ns
        if latency <= 0:
            write()
            return
        self._in_flight.append(write)
        self.clock.schedule(latency, self._land_oldest, f"{self.name} posted write")

    def _land_oldest(self) -> None:
        if self._in_flight:
            self._in_flight.popleft()()

    def _flush_posted_writes(self) -> None:
        while self._in_flight:
            self._in_flight.popleft()()

    def land(self, rx: RxQueue, start: int, count: int) -> None:
        """A receive's posted writes land: the data, then the completion entries, then the MSI-X message."""
        if self.rx is not rx or self.memory is None:
            return  # the function was reset or unassigned meanwhile: nothing of it remains
        self._write_buffers(rx, start, count)
        rx.completed.append((start, start + count))
        self.raise_interrupt(0)

    def _write_buffers(self, rx: RxQueue, start: int, count: int) -> None:
        memory = self.memory
        assert memory is not None  # can_dma() checked it
        per_page = (1 << memory.page_shift) // DESCRIPTOR_BYTES
        for first, stop in _wrapped(start, count, rx.buffer_count):
            memory.dma_write_range(rx.buffer_start + first, rx.buffer_start + stop)
            ring_first = rx.ring_start + (first // per_page) % rx.ring_pages
            ring_stop = rx.ring_start + ((stop - 1) // per_page) % rx.ring_pages + 1
            memory.dma_write_range(ring_first, max(ring_stop, ring_first + 1))
            self.bus.publish(
                EventKind.DMA_WRITE,
                self.name,
                function=self.name,
                pages=stop - first,
                first=rx.buffer_start + first,
                last=rx.buffer_start + stop - 1,
            )

    def transmit(self, pages: int) -> int:
        """Read ``pages`` of transmit buffers from guest memory by DMA; returns the pages read."""
        if not self.can_dma() or pages <= 0:
            return 0
        self.bus.publish(EventKind.DMA_READ, self.name, function=self.name, pages=pages)
        return pages

    def raise_interrupt(self, vector: int) -> None:
        """Signal ``vector`` by MSI-X, as PCIe gates it: not without BME and MSI-X Enable, held while masked."""
        flags = int.from_bytes(self.config[MSIX_CAP_OFFSET + 2 : MSIX_CAP_OFFSET + 4], "little")
        if not (self.bus_master and flags & PCI_MSIX_FLAGS_ENABLE):
            return
        if flags & PCI_MSIX_FLAGS_MASKALL:
            self._msix_pending = True  # held, and sent when the function is unmasked (PCIe, MSI-X)
            return
        self._send_msix(vector)

    def _send_msix(self, vector: int) -> None:
        self.bus.publish(EventKind.DEVICE_INTERRUPT, self.name, function=self.name, vector=vector)
        if self.interrupt_sink is not None:
            self.interrupt_sink(self.name)

    def _msix_control_written(self) -> None:
        if self._msix_pending and self.msix_enabled and self.bus_master:
            self._msix_pending = False
            self._send_msix(0)

    def fail(self) -> None:
        """The function hits an uncorrectable error: it stops working until it is reset."""
        self.failed = True


def _wrapped(start: int, count: int, size: int) -> list[tuple[int, int]]:
    """``count`` ring indices from ``start`` as at most two ``[first, stop)`` ranges."""
    end = start + count
    if end <= size:
        return [(start, end)]
    return [(start, size), (0, end - size)]


def buffer_pages(rx: RxQueue, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Guest page ranges of the buffers in ``ranges`` (buffer-index ranges, possibly wrapping)."""
    pages: list[tuple[int, int]] = []
    for start, stop in ranges:
        for first, end in _wrapped(start % rx.buffer_count, stop - start, rx.buffer_count):
            pages.append((rx.buffer_start + first, rx.buffer_start + end))
    return pages
