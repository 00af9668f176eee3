"""A virtual function and its guest driver, written from the specification, :mod:`vfmig_proto` and
:mod:`conformance.interfaces` only.

The function is a small NIC: a type-0 configuration space with a PCI Express capability (function-level
reset, Transactions Pending) and an MSI-X capability (both laid out by :mod:`vfmig_proto.headers`), and one
receive queue (a descriptor ring and one-page buffers) that the driver programs through the function's
registers, here the methods of :class:`_Registers`.  What the driver programmed lives in one
:class:`_Engine`, which a reset replaces whole.  The function writes nothing before its driver gave it the
pages and set Bus Master Enable (VFM-FN-001, VFM-FN-004) and holds its interrupt while MSI-X is masked.

The driver follows the slot's ``DEV_STATE`` (spec §4.2), one sequence per state (:data:`_SEQUENCES`):
dirtying mode on a dirtying request, a pause that stops the function's DMA, makes it land and dirties every
page the function may have written (§5.4), a resume from the kept hardware state on a cancellation, and a
reinitialisation from reset after a migration or a group reset.  How far it has taken its function is one
:class:`_Binding`.  Every page the function writes while dirtying mode is on is dirtied when the driver
takes the completion (§5.3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import NamedTuple, Protocol, cast

from conformance.interfaces.common import Clock, DmaAllocator, EventSink, FunctionIds, GuestMemoryView, ResetKind
from conformance.interfaces.device import DriverUnderTest, FunctionUnderTest, GuestView, MigrationCore
from vfmig_proto import headers, pci
from vfmig_proto.access import WRITE_WIDTHS, apply_write_byte
from vfmig_proto.states import DevState, DriverReport

MSIX_CONTROL = headers.FUNCTION_MSIX_CAP_OFFSET + pci.PCI_MSIX_FLAGS
DEVICE_CONTROL = headers.FUNCTION_PCIE_CAP_OFFSET + pci.PCI_EXP_DEVCTL
BAR0_SIZE = 0x4000
DESCRIPTOR_BYTES = 16
RECEIVE_BUFFERS = 16
"""One-page receive buffers per driver: enough for the suite's traffic, cheap to dirty."""

WRITABLE, CLEARABLE = headers.function_masks(BAR0_SIZE)


class ScratchIds(NamedTuple):
    """The registers that identify a function (what :class:`~conformance.interfaces.common.FunctionIds` reads)."""

    vendor_id: int
    device_id: int
    revision: int
    subsystem_vendor_id: int
    subsystem_id: int


OWN_IDS = ScratchIds(vendor_id=0x8086, device_id=0x1515, revision=0x01, subsystem_vendor_id=0x8086, subsystem_id=1)
"""What a function of this implementation presents when the suite asks for no particular identity."""


# ---------------------------------------------------------------------------------------------------------------
# The function


@dataclass
class _ReceiveQueue:
    """A receive queue as the driver programmed it (guest pages) and the engine's progress through it."""

    ring: range
    buffers: range
    next_buffer: int = 0
    posted: int = 0
    completed: list[tuple[int, int]] = field(default_factory=list)
    """Guest page ranges filled and not yet taken by the driver."""

    def claim(self, count: int, per_ring_page: int) -> list[tuple[range, range]]:
        """Claim the next ``count`` posted buffers, completed: for each stretch of them (a wrap splits them in
        two), the buffer pages and the ring pages their descriptors are in."""
        stretches = []
        for first, stop in _ring_ranges(self.next_buffer, count, len(self.buffers)):
            pages = self.buffers[first:stop]
            ring_first = self.ring[(first // per_ring_page) % len(self.ring)]
            ring_last = self.ring[((stop - 1) // per_ring_page) % len(self.ring)]
            stretches.append((pages, range(ring_first, max(ring_last, ring_first) + 1)))
            self.completed.append((pages.start, pages.stop))
        self.next_buffer = (self.next_buffer + count) % len(self.buffers)
        self.posted -= count
        return stretches

    def take_completed(self) -> list[tuple[int, int]]:
        """The page ranges filled since the last call."""
        taken = list(self.completed)
        self.completed.clear()
        return taken


@dataclass
class _Engine:
    """Everything a function-level reset forgets (VFM-FN-006), apart from the configuration space."""

    queue: _ReceiveQueue | None = None
    running: bool = False
    failed: bool = False
    interrupt_held: bool = False


class _Registers(Protocol):
    """The function's BAR registers, as its own driver uses them (not part of any interface)."""

    def program_receive(self, ring: range, buffers: range) -> None: ...
    def post(self, count: int) -> None: ...
    def enable_queues(self, enabled: bool) -> None: ...
    def take_completions(self) -> list[tuple[int, int]]: ...
    def read_status(self) -> int: ...
    def transmit(self, pages: int) -> int: ...


class ScratchFunction:
    """One virtual function."""

    def __init__(self, name: str, ids: FunctionIds) -> None:
        self.name = name
        self.memory: GuestMemoryView | None = None
        self.interrupt_sink: Callable[[str], None] | None = None
        self.bme_listener: Callable[[object], None] | None = None
        self._ids = ids
        self._config = headers.function_reset_config(ids)
        self._engine = _Engine()

    # ------------------------------------------------------------------ what the interface reads

    @property
    def identity(self) -> FunctionIds:
        """The IDs this function presents."""
        return self._ids

    def _word(self, offset: int) -> int:
        return int.from_bytes(self._config[offset : offset + 2], "little")

    @property
    def bus_master(self) -> bool:
        """Bus Master Enable."""
        return bool(self._word(pci.PCI_COMMAND) & pci.PCI_COMMAND_MASTER)

    @property
    def msix_enabled(self) -> bool:
        """MSI-X enabled and not masked as a whole."""
        control = self._word(MSIX_CONTROL)
        return bool(control & pci.PCI_MSIX_FLAGS_ENABLE) and not control & pci.PCI_MSIX_FLAGS_MASKALL

    @property
    def in_reset_state(self) -> bool:
        """Nothing a driver programmed is left."""
        engine = self._engine
        return not (self.bus_master or self.msix_enabled or engine.running or engine.queue is not None)

    @property
    def failed(self) -> bool:
        """Whether the function failed (until a reset)."""
        return self._engine.failed

    def config_read(self, offset: int, width: int) -> int:
        """A configuration read; nothing is ever in flight, so Transactions Pending reads 0."""
        _check_access(offset, width)
        return int.from_bytes(self._config[offset : offset + width], "little")

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A configuration write through the masks; Initiate FLR resets the function."""
        _check_access(offset, width)
        was_master = self.bus_master
        for position, byte in zip(range(offset, offset + width), value.to_bytes(width, "little"), strict=True):
            self._config[position] = apply_write_byte(
                self._config[position], byte, WRITABLE[position], CLEARABLE[position]
            )
        written = range(offset, offset + width)
        flr_byte = DEVICE_CONTROL + 1  # Initiate FLR is bit 15 of Device Control
        if flr_byte in written and self._config[flr_byte] & (pci.PCI_EXP_DEVCTL_BCR_FLR >> 8):
            self.function_level_reset("flr")
            return
        if was_master != self.bus_master and self.bme_listener is not None:
            self.bme_listener(self)
        if MSIX_CONTROL in written or MSIX_CONTROL + 1 in written:
            self._deliver_held_interrupt()

    def function_level_reset(self, how: ResetKind) -> None:
        """Forget everything the driver programmed (VFM-FN-006); the reset completes at once."""
        tell_host = how == "flr" and self.bus_master
        self._config = headers.function_reset_config(self._ids)
        self._engine = _Engine()
        if tell_host and self.bme_listener is not None:
            self.bme_listener(self)

    def fail(self) -> None:
        """An uncorrectable error: the function stops working until it is reset."""
        self._engine.failed = True

    # ------------------------------------------------------------------ traffic

    def _may_write(self) -> bool:
        engine = self._engine
        return self.bus_master and engine.running and not engine.failed and self.memory is not None

    def receive(self, nbytes: int) -> int:
        """Fill posted buffers with ``nbytes`` of frames (whole pages), write their descriptors, interrupt."""
        queue, memory = self._engine.queue, self.memory
        if queue is None or memory is None or not self._may_write() or queue.posted == 0:
            return 0
        page_size = 1 << memory.page_shift
        count = min(queue.posted, max(1, -(-nbytes // page_size)))
        for buffers, descriptors in queue.claim(count, page_size // DESCRIPTOR_BYTES):
            memory.dma_write_range(buffers.start, buffers.stop)
            memory.dma_write_range(descriptors.start, descriptors.stop)
        self._signal()
        return count

    def _signal(self) -> None:
        """One MSI-X message: none without Bus Master Enable and MSI-X Enable, held while masked."""
        if self.bus_master and self._word(MSIX_CONTROL) & pci.PCI_MSIX_FLAGS_ENABLE:
            self._engine.interrupt_held = True
            self._deliver_held_interrupt()

    def _deliver_held_interrupt(self) -> None:
        if self._engine.interrupt_held and self.msix_enabled and self.bus_master:
            self._engine.interrupt_held = False
            if self.interrupt_sink is not None:
                self.interrupt_sink(self.name)

    # ------------------------------------------------------------------ the registers its driver uses

    def program_receive(self, ring: range, buffers: range) -> None:
        """The receive ring and buffer pool (guest pages)."""
        self._engine.queue = _ReceiveQueue(ring, buffers)

    def post(self, count: int) -> None:
        """``count`` more buffers are ready for the engine."""
        queue = self._engine.queue
        if queue is not None:
            queue.posted = min(len(queue.buffers), queue.posted + count)

    def enable_queues(self, enabled: bool) -> None:
        """Start or stop the queues (stopping keeps their state)."""
        self._engine.running = enabled

    def take_completions(self) -> list[tuple[int, int]]:
        """The page ranges filled since the last call."""
        queue = self._engine.queue
        return [] if queue is None else queue.take_completed()

    def read_status(self) -> int:
        """A status read: every DMA write issued before it has landed (they land at once here)."""
        return 0xFFFFFFFF if self._engine.failed else int(self._engine.running)

    def transmit(self, pages: int) -> int:
        """Read ``pages`` of transmit buffers by DMA."""
        return pages if self._may_write() and pages > 0 else 0


def _ring_ranges(start: int, count: int, size: int) -> list[tuple[int, int]]:
    """``count`` ring positions from ``start``, as at most two ``[first, stop)`` ranges."""
    end = start + count
    return [(start, end)] if end <= size else [(start, size), (0, end - size)]


def _check_access(offset: int, width: int) -> None:
    if width not in WRITE_WIDTHS or offset < 0 or offset % width or offset + width > pci.PCI_CONFIG_SIZE:
        raise ConfigAccessError(f"a {width}-byte configuration access at 0x{offset:x} is not a PCI access")


class ConfigAccessError(ValueError):
    """A configuration access no PCI transaction can make."""


# ---------------------------------------------------------------------------------------------------------------
# The driver


class _DrivenFunction(FunctionUnderTest, _Registers, Protocol):
    """The function as this driver reaches it: the interface plus its own registers."""


class _Binding(Enum):
    """How far the driver has taken its function."""

    NONE = auto()
    """Not bound."""
    BOUND = auto()
    """Bound; the function is not programmed."""
    RUNNING = auto()
    """The function is programmed and does DMA."""
    PAUSED = auto()
    """The function is programmed and quiesced for a migration, its hardware state kept."""


_PROGRAMMED = frozenset({_Binding.RUNNING, _Binding.PAUSED})


def _modify(device: _DrivenFunction, offset: int, *, set_bits: int = 0, clear_bits: int = 0) -> None:
    """A read-modify-write of a 16-bit configuration register, as a driver changes one."""
    device.config_write(offset, 2, (device.config_read(offset, 2) | set_bits) & ~clear_bits)


def _bus_master(device: _DrivenFunction, *, on: bool) -> None:
    """Set or clear Bus Master Enable; Memory Space stays enabled for the registers."""
    master, memory_space = pci.PCI_COMMAND_MASTER, pci.PCI_COMMAND_MEMORY
    if on:
        _modify(device, pci.PCI_COMMAND, set_bits=master | memory_space)
    else:
        _modify(device, pci.PCI_COMMAND, set_bits=memory_space, clear_bits=master)


@dataclass(frozen=True)
class _DmaPages:
    """The guest pages a driver gives its function: the descriptor ring, then one page per receive buffer."""

    ring: range
    buffers: range

    @classmethod
    def allocate(cls, allocator: DmaAllocator, page_size: int) -> _DmaPages:
        ring_pages = max(1, -(-RECEIVE_BUFFERS * DESCRIPTOR_BYTES // page_size))
        first = allocator.allocate(ring_pages + RECEIVE_BUFFERS)
        buffers_at = first + ring_pages
        return cls(range(first, buffers_at), range(buffers_at, buffers_at + RECEIVE_BUFFERS))


@dataclass(eq=False)
class ScratchDriver:
    """The guest driver of one function: bound to whatever function the guest finds at ``devfn``."""

    guest: GuestView
    core: MigrationCore
    slot: int
    devfn: int
    pages: _DmaPages
    busy: bool = False
    look_again: bool = False
    up: bool = False
    """The interface is administratively up."""
    _binding: _Binding = field(default=_Binding.NONE, init=False)
    _dirtying: bool = field(default=False, init=False)

    # ------------------------------------------------------------------ what the interface reads

    @property
    def loaded(self) -> bool:
        """Bound to the function."""
        return self._binding is not _Binding.NONE

    @property
    def configured(self) -> bool:
        """The function is programmed (and may be paused)."""
        return self._binding in _PROGRAMMED

    @property
    def paused(self) -> bool:
        """The function is quiesced for a migration, its hardware state kept."""
        return self._binding is _Binding.PAUSED

    @property
    def function(self) -> FunctionUnderTest | None:
        """The function at this driver's device number where the guest runs now."""
        return self._device()

    def _device(self) -> _DrivenFunction | None:
        return cast("_DrivenFunction | None", self.guest.platform.function_at(self.devfn))

    # ------------------------------------------------------------------ lifecycle

    def load(self, *, up: bool = True) -> bool:
        """Probe: reset the function, clear stale flags, report READY (VFM-DEV-007)."""
        device = self._device()
        if device is None or not self._may_bind():
            return False
        self._binding = _Binding.BOUND
        self.up = up
        device.config_write(DEVICE_CONTROL, 2, pci.PCI_EXP_DEVCTL_BCR_FLR)  # a probe starts from a reset function
        self._clear_flags()
        self.core.register(self.slot, self)
        self.core.report(self.slot, DriverReport.READY)
        self.core.look_at(self.slot)
        return True

    def _may_bind(self) -> bool:
        """Not bound yet, in a guest that takes part, to a slot that waits for a driver."""
        return (
            self._binding is _Binding.NONE
            and self.core.cap is not None
            and self.core.dev_state(self.slot) is DevState.UNBOUND
        )

    def unload(self) -> None:
        """Unbind: stop the function, dirty what it may have written if dirtying, report NONE."""
        if not self.loaded or self.busy:
            return
        self.up = False
        self._stop_function()
        if self.core.dev_state(self.slot) is not DevState.EMPTY:
            self.core.report(self.slot, DriverReport.NONE)
        self.core.unregister(self.slot)
        self._binding = _Binding.NONE
        self._dirtying = False

    def open(self) -> None:
        """Bring the interface up; the next sequence programs the function if the state allows."""
        if self.loaded and not self.up:
            self.up = True
            self.core.look_at(self.slot)

    def close(self) -> None:
        """Bring the interface down: stop and forget the function's configuration."""
        if not (self.loaded and self.up):
            return
        self.up = False
        if self.paused:
            self._binding = _Binding.BOUND  # a paused function is stopped already
        else:
            self._stop_function()

    def transmit(self, pages: int) -> int:
        """Send ``pages`` of data."""
        device = self._device()
        if self._binding is not _Binding.RUNNING or device is None:
            return 0
        return device.transmit(pages)

    # ------------------------------------------------------------------ one sequence per DEV_STATE

    def act_on(self, state: DevState | int) -> None:
        """Do what ``state`` asks; a state this driver does not know is left alone (VFM-VER-005)."""
        if isinstance(state, DevState):
            _SEQUENCES[state](self)

    def _let_go(self) -> None:
        """The function was removed or replaced: the binding is gone (no report)."""
        self._binding = _Binding.NONE
        self._dirtying = self.up = False
        self.core.unregister(self.slot)

    def _run_normally(self) -> None:
        self._dirtying = False  # a cancellation before the pause needs no answer (VFM-CANCEL-004)
        if self.configured and self.core.dev_status(self.slot)[1]:
            self.core.clear_dev_status(self.slot, False, True)  # a group reset took the function (VFM-ERR-007)
            self._forget_programming()
        self._program_if_up()

    def _start_dirtying(self) -> None:
        self._dirtying = True
        self.core.report(self.slot, DriverReport.DIRTYING)

    def _keep_dirtying(self) -> None:
        self._dirtying = True
        self._program_if_up()

    def _pause(self) -> None:
        """Stop DMA and interrupts at the function, let it land, dirty, acknowledge (spec §5.4)."""
        self._dirtying = True
        device = self._device()
        if self._binding is _Binding.RUNNING and device is not None:
            _modify(device, MSIX_CONTROL, set_bits=pci.PCI_MSIX_FLAGS_MASKALL)
            _bus_master(device, on=False)
            device.read_status()  # its completion orders every earlier DMA write
            self._dirty_all_pages()
            self._binding = _Binding.PAUSED
        self.core.report(self.slot, DriverReport.PAUSED)

    def _resume(self) -> None:
        """A cancelled migration: restart the function from the state it kept (VFM-CANCEL-003)."""
        device = self._device()
        if self.paused and device is not None:
            _bus_master(device, on=True)
            _modify(device, MSIX_CONTROL, clear_bits=pci.PCI_MSIX_FLAGS_MASKALL)
            device.enable_queues(True)
            self._binding = _Binding.RUNNING
        else:
            self._program_if_up()
        self._dirtying = False
        self.core.report(self.slot, DriverReport.READY)

    def _reinitialise(self) -> None:
        """After a migration or a group reset: program the function from reset (down: leave it to open)."""
        self._dirtying = False
        self._forget_programming()
        self._program_if_up()
        self.core.report(self.slot, DriverReport.READY)

    def _recover(self) -> None:
        """The function failed: stop using it and ask for a group reset (spec §7.9)."""
        device = self._device()
        if device is not None and device.bus_master:
            _bus_master(device, on=False)
        self._forget_programming()
        self.core.request_group_reset()

    def _wait(self) -> None:
        """A paused slot: the driver waits for the host's next request."""

    # ------------------------------------------------------------------ the function

    def _clear_flags(self) -> None:
        migrated, reset = self.core.dev_status(self.slot)
        self.core.clear_dev_status(self.slot, migrated, reset)

    def _forget_programming(self) -> None:
        """The function holds nothing of this driver's any more (it is still bound)."""
        if self.configured:
            self._binding = _Binding.BOUND

    def _program_if_up(self) -> None:
        """An interface that is up gets a programmed function, with the flags of the last binding cleared."""
        if self.up and not self.configured:
            self._clear_flags()
            self._program()

    def _program(self) -> None:
        device = self._device()
        if device is None:
            return
        ring, buffers = self.pages.ring, self.pages.buffers
        device.program_receive(ring, buffers)
        self.guest.memory.cpu_write_range(ring.start, ring.stop)  # the descriptors
        device.post(len(buffers))
        device.config_write(MSIX_CONTROL, 2, pci.PCI_MSIX_FLAGS_ENABLE)
        _bus_master(device, on=True)
        device.enable_queues(True)
        self.guest.device_interrupt_handlers[device.name] = self._take_completions
        self._binding = _Binding.RUNNING

    def _stop_function(self) -> None:
        device = self._device()
        if self._binding is _Binding.RUNNING and device is not None:
            device.enable_queues(False)
            _bus_master(device, on=False)
            device.read_status()
            if self._dirtying:
                self._dirty_all_pages()
        self._forget_programming()

    def _take_completions(self) -> None:
        """After an interrupt: dirty what the function wrote while dirtying (spec §5.3), then repost."""
        device = self._device()
        if not self.configured or device is None:
            return
        filled = device.take_completions()
        if not filled:
            return
        memory, ring = self.guest.memory, self.pages.ring
        if self._dirtying:
            for start, stop in filled:
                memory.dirty_range(start, stop)
            memory.dirty_range(ring.start, ring.stop)
        memory.cpu_write_range(ring.start, ring.stop)
        device.post(sum(stop - start for start, stop in filled))

    def _dirty_all_pages(self) -> None:
        self.guest.memory.dirty_range(self.pages.ring.start, self.pages.buffers.stop)


_SEQUENCES: dict[DevState, Callable[[ScratchDriver], None]] = {
    DevState.EMPTY: ScratchDriver._let_go,
    DevState.UNBOUND: ScratchDriver._let_go,
    DevState.READY: ScratchDriver._run_normally,
    DevState.DIRTY_REQ: ScratchDriver._start_dirtying,
    DevState.DIRTYING: ScratchDriver._keep_dirtying,
    DevState.PAUSE_REQ: ScratchDriver._pause,
    DevState.PAUSED: ScratchDriver._wait,
    DevState.RESUME_REQ: ScratchDriver._resume,
    DevState.REINIT_REQ: ScratchDriver._reinitialise,
    DevState.ERROR: ScratchDriver._recover,
}
"""The driver's sequence for each ``DEV_STATE`` (spec §4.2)."""


class ScratchDevice:
    """The ``device`` target's implementation object."""

    def create_function(
        self, name: str, clock: Clock, bus: EventSink, identity: FunctionIds | None
    ) -> FunctionUnderTest:
        """A fresh function, as after a function-level reset."""
        return ScratchFunction(name, identity or OWN_IDS)

    def create_driver(
        self, guest: GuestView, core: MigrationCore, slot: int, devfn: int, allocator: DmaAllocator
    ) -> DriverUnderTest:
        """The driver of the function at ``devfn`` in ``slot``, not yet loaded."""
        return ScratchDriver(guest, core, slot, devfn, _DmaPages.allocate(allocator, 1 << guest.memory.page_shift))


def make() -> ScratchDevice:
    """``tests.from_scratch.device:make``."""
    return ScratchDevice()
