"""A virtual function and its guest driver, written from the specification, :mod:`vfmig_proto` and
:mod:`conformance.interfaces` only.

The function is a small NIC: a type-0 configuration space with a PCI Express capability (function-level
reset, Transactions Pending) and an MSI-X capability, and one receive queue (a descriptor ring and one-page
buffers) that the driver programs through the function's registers, here the methods of
:class:`_Registers`.  It writes nothing before its driver gave it the pages and set Bus Master Enable
(VFM-FN-001, VFM-FN-004) and holds its interrupt while MSI-X is masked.

The driver follows the slot's ``DEV_STATE`` (spec §4.2): dirtying mode on a dirtying request, a pause that
stops the function's DMA, makes it land and dirties every page the function may have written (§5.4), a
resume from the kept hardware state on a cancellation, and a reinitialisation from reset after a migration or
a group reset.  Every page the function writes while dirtying mode is on is dirtied when the driver takes
the completion (§5.3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from conformance.interfaces.common import Clock, DmaAllocator, EventSink, FunctionIds, GuestMemoryView, ResetKind
from conformance.interfaces.device import DriverUnderTest, FunctionUnderTest, GuestView, MigrationCore
from vfmig_proto.headers import (
    FUNCTION_MSIX_CAP_OFFSET,
    FUNCTION_PCIE_CAP_OFFSET,
    function_masks,
    function_reset_config,
)
from vfmig_proto.pci import (
    PCI_COMMAND,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCI_CONFIG_SIZE,
    PCI_EXP_DEVCTL,
    PCI_EXP_DEVCTL_BCR_FLR,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
)
from vfmig_proto.states import DevState, DriverReport

PCIE_AT = FUNCTION_PCIE_CAP_OFFSET
MSIX_AT = FUNCTION_MSIX_CAP_OFFSET
MSIX_CONTROL = MSIX_AT + PCI_MSIX_FLAGS
MSIX_ENABLE = PCI_MSIX_FLAGS_ENABLE
MSIX_MASK_ALL = PCI_MSIX_FLAGS_MASKALL
BAR0_SIZE = 0x4000
DESCRIPTOR_BYTES = 16
RECEIVE_BUFFERS = 16
"""One-page receive buffers per driver: enough for the suite's traffic, cheap to dirty."""


@dataclass(frozen=True)
class ScratchIds:
    """This implementation's own IDs (an Intel-like VF)."""

    vendor_id: int = 0x8086
    device_id: int = 0x1515
    revision: int = 0x01
    subsystem_vendor_id: int = 0x8086
    subsystem_id: int = 0x0001


WRITABLE, CLEARABLE = function_masks(BAR0_SIZE)


@dataclass
class _ReceiveQueue:
    """What the driver programmed: a ring and its buffers (page numbers), and the engine's progress."""

    ring_start: int
    ring_pages: int
    buffer_start: int
    buffer_count: int
    next_buffer: int = 0
    posted: int = 0
    completed: list[tuple[int, int]] = field(default_factory=list)
    """Guest page ranges filled and not yet taken by the driver."""


class _Registers(Protocol):
    """The function's BAR registers, as its own driver uses them (not part of any interface)."""

    def program_receive(self, ring_start: int, ring_pages: int, buffer_start: int, buffer_count: int) -> None: ...
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
        self._config = function_reset_config(ids)
        self._queue: _ReceiveQueue | None = None
        self._queues_on = False
        self._failed = False
        self._interrupt_held = False

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
        return bool(self._word(PCI_COMMAND) & PCI_COMMAND_MASTER)

    @property
    def msix_enabled(self) -> bool:
        """MSI-X enabled and not masked as a whole."""
        control = self._word(MSIX_CONTROL)
        return bool(control & MSIX_ENABLE) and not control & MSIX_MASK_ALL

    @property
    def in_reset_state(self) -> bool:
        """Nothing a driver programmed is left."""
        return not self.bus_master and self._queue is None and not self._queues_on and not self.msix_enabled

    @property
    def failed(self) -> bool:
        """Whether the function failed (until a reset)."""
        return self._failed

    def config_read(self, offset: int, width: int) -> int:
        """A configuration read; nothing is ever in flight, so Transactions Pending reads 0."""
        _check_access(offset, width)
        return int.from_bytes(self._config[offset : offset + width], "little")

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A configuration write through the masks; Initiate FLR resets the function."""
        _check_access(offset, width)
        was_master = self.bus_master
        for index, byte in enumerate(value.to_bytes(width, "little")):
            position = offset + index
            kept = self._config[position] & ~WRITABLE[position]
            written = byte & WRITABLE[position]
            self._config[position] = (kept | written) & ~(byte & CLEARABLE[position]) & 0xFF
        devctl_high = PCIE_AT + PCI_EXP_DEVCTL + 1
        if offset <= devctl_high < offset + width and self._config[devctl_high] & (PCI_EXP_DEVCTL_BCR_FLR >> 8):
            self.function_level_reset("flr")
            return
        if was_master != self.bus_master and self.bme_listener is not None:
            self.bme_listener(self)
        if offset < MSIX_CONTROL + 2 and offset + width > MSIX_CONTROL:
            self._release_held_interrupt()

    def function_level_reset(self, how: ResetKind) -> None:
        """Forget everything the driver programmed (VFM-FN-006); the reset completes at once."""
        was_master = self.bus_master
        self._config = function_reset_config(self._ids)
        self._queue = None
        self._queues_on = False
        self._failed = False
        self._interrupt_held = False
        if was_master and how == "flr" and self.bme_listener is not None:
            self.bme_listener(self)

    def fail(self) -> None:
        """An uncorrectable error: the function stops working until it is reset."""
        self._failed = True

    # ------------------------------------------------------------------ traffic

    def _may_write(self) -> bool:
        return self.bus_master and self._queues_on and not self._failed and self.memory is not None

    def receive(self, nbytes: int) -> int:
        """Fill posted buffers with ``nbytes`` of frames (whole pages), write their descriptors, interrupt."""
        queue, memory = self._queue, self.memory
        if queue is None or memory is None or not self._may_write() or queue.posted == 0:
            return 0
        page_size = 1 << memory.page_shift
        count = min(queue.posted, max(1, -(-nbytes // page_size)))
        per_ring_page = page_size // DESCRIPTOR_BYTES
        for first, stop in _ring_ranges(queue.next_buffer, count, queue.buffer_count):
            memory.dma_write_range(queue.buffer_start + first, queue.buffer_start + stop)
            ring_first = queue.ring_start + (first // per_ring_page) % queue.ring_pages
            ring_last = queue.ring_start + ((stop - 1) // per_ring_page) % queue.ring_pages
            memory.dma_write_range(ring_first, max(ring_last, ring_first) + 1)
            queue.completed.append((queue.buffer_start + first, queue.buffer_start + stop))
        queue.next_buffer = (queue.next_buffer + count) % queue.buffer_count
        queue.posted -= count
        self._interrupt()
        return count

    def _interrupt(self) -> None:
        control = self._word(MSIX_CONTROL)
        if not (self.bus_master and control & MSIX_ENABLE):
            return
        if control & MSIX_MASK_ALL:
            self._interrupt_held = True
            return
        self._send_interrupt()

    def _release_held_interrupt(self) -> None:
        if self._interrupt_held and self.msix_enabled and self.bus_master:
            self._interrupt_held = False
            self._send_interrupt()

    def _send_interrupt(self) -> None:
        if self.interrupt_sink is not None:
            self.interrupt_sink(self.name)

    # ------------------------------------------------------------------ the registers its driver uses

    def program_receive(self, ring_start: int, ring_pages: int, buffer_start: int, buffer_count: int) -> None:
        """The receive ring and buffer pool (guest page numbers)."""
        self._queue = _ReceiveQueue(ring_start, ring_pages, buffer_start, buffer_count)

    def post(self, count: int) -> None:
        """``count`` more buffers are ready for the engine."""
        if self._queue is not None:
            self._queue.posted = min(self._queue.buffer_count, self._queue.posted + count)

    def enable_queues(self, enabled: bool) -> None:
        """Start or stop the queues (stopping keeps their state)."""
        self._queues_on = enabled

    def take_completions(self) -> list[tuple[int, int]]:
        """The page ranges filled since the last call."""
        if self._queue is None:
            return []
        taken, self._queue.completed = self._queue.completed, []
        return taken

    def read_status(self) -> int:
        """A status read: every DMA write issued before it has landed (they land at once here)."""
        return 0xFFFFFFFF if self._failed else int(self._queues_on)

    def transmit(self, pages: int) -> int:
        """Read ``pages`` of transmit buffers by DMA."""
        return pages if self._may_write() and pages > 0 else 0


def _ring_ranges(start: int, count: int, size: int) -> list[tuple[int, int]]:
    """``count`` ring positions from ``start``, as at most two ``[first, stop)`` ranges."""
    end = start + count
    return [(start, end)] if end <= size else [(start, size), (0, end - size)]


def _check_access(offset: int, width: int) -> None:
    if width not in (1, 2, 4) or offset < 0 or offset % width or offset + width > PCI_CONFIG_SIZE:
        raise ConfigAccessError(f"a {width}-byte configuration access at 0x{offset:x} is not a PCI access")


class ConfigAccessError(ValueError):
    """A configuration access no PCI transaction can make."""


class _DrivenFunction(FunctionUnderTest, _Registers, Protocol):
    """The function as this driver reaches it: the interface plus its own registers."""


class ScratchDriver:
    """The guest driver of one function."""

    def __init__(self, guest: GuestView, core: MigrationCore, slot: int, devfn: int, allocator: DmaAllocator) -> None:
        self.slot = slot
        self.busy = False
        self.look_again = False
        self._guest = guest
        self._core = core
        self._devfn = devfn
        page_size = 1 << guest.memory.page_shift
        self._ring_pages = max(1, -(-RECEIVE_BUFFERS * DESCRIPTOR_BYTES // page_size))
        self._ring_start = allocator.allocate(self._ring_pages + RECEIVE_BUFFERS)
        self._buffer_start = self._ring_start + self._ring_pages
        self._loaded = False
        self._up = False
        self._configured = False
        self._paused = False
        self._dirtying = False

    # ------------------------------------------------------------------ what the interface reads

    @property
    def loaded(self) -> bool:
        """Bound to the function."""
        return self._loaded

    @property
    def up(self) -> bool:
        """The interface is administratively up."""
        return self._up

    @property
    def configured(self) -> bool:
        """The function is programmed (and may be paused)."""
        return self._configured

    @property
    def paused(self) -> bool:
        """The function is quiesced for a migration, its hardware state kept."""
        return self._paused

    @property
    def function(self) -> FunctionUnderTest | None:
        """The function at this driver's device number where the guest runs now."""
        return self._device()

    def _device(self) -> _DrivenFunction | None:
        return cast("_DrivenFunction | None", self._guest.platform.function_at(self._devfn))

    # ------------------------------------------------------------------ lifecycle

    def load(self, *, up: bool = True) -> bool:
        """Probe: reset the function, clear stale flags, report READY (VFM-DEV-007)."""
        device = self._device()
        if self._loaded or device is None or self._core.cap is None:
            return False
        if self._core.dev_state(self.slot) is not DevState.UNBOUND:
            return False
        self._loaded = True
        self._up = up
        device.config_write(PCIE_AT + PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR)
        self._clear_flags()
        self._core.register(self.slot, self)
        self._core.report(self.slot, DriverReport.READY)
        self._core.look_at(self.slot)
        return True

    def unload(self) -> None:
        """Unbind: stop the function, dirty what it may have written if dirtying, report NONE."""
        if not self._loaded or self.busy:
            return
        self._up = False
        self._stop_function("unbind")
        if self._core.dev_state(self.slot) is not DevState.EMPTY:
            self._core.report(self.slot, DriverReport.NONE)
        self._core.unregister(self.slot)
        self._loaded = False
        self._dirtying = False

    def open(self) -> None:
        """Bring the interface up; the next sequence programs the function if the state allows."""
        if self._loaded and not self._up:
            self._up = True
            self._core.look_at(self.slot)

    def close(self) -> None:
        """Bring the interface down: stop and forget the function's configuration."""
        if not self._loaded or not self._up:
            return
        self._up = False
        if self._paused:
            self._configured = False
            self._paused = False
            return
        self._stop_function("close")

    def transmit(self, pages: int) -> int:
        """Send ``pages`` of data."""
        device = self._device()
        if not self._configured or self._paused or device is None:
            return 0
        return device.transmit(pages)

    # ------------------------------------------------------------------ one sequence per DEV_STATE

    def act_on(self, state: DevState | int) -> None:
        """Do what ``state`` asks; a state this driver does not know is left alone (VFM-VER-005)."""
        if isinstance(state, DevState):
            self._actions()[state]()

    def _actions(self) -> dict[DevState, Callable[[], None]]:
        return {
            DevState.EMPTY: self._let_go,
            DevState.UNBOUND: self._let_go,
            DevState.READY: self._run_normally,
            DevState.DIRTY_REQ: self._start_dirtying,
            DevState.DIRTYING: self._keep_dirtying,
            DevState.PAUSE_REQ: self._pause,
            DevState.PAUSED: _nothing,
            DevState.RESUME_REQ: self._resume,
            DevState.REINIT_REQ: self._reinitialise,
            DevState.ERROR: self._recover,
        }

    def _let_go(self) -> None:
        """The function was removed or replaced: the binding is gone (no report)."""
        self._configured = self._paused = self._dirtying = False
        self._loaded = self._up = False
        self._core.unregister(self.slot)

    def _run_normally(self) -> None:
        self._dirtying = False  # a cancellation before the pause needs no answer (VFM-CANCEL-004)
        if self._configured and self._core.dev_status(self.slot)[1]:
            self._core.clear_dev_status(self.slot, False, True)  # a group reset took the function (VFM-ERR-007)
            self._configured = self._paused = False
        if self._up and not self._configured:
            self._clear_flags()
            self._program()

    def _start_dirtying(self) -> None:
        self._dirtying = True
        self._core.report(self.slot, DriverReport.DIRTYING)

    def _keep_dirtying(self) -> None:
        self._dirtying = True
        if self._up and not self._configured:
            self._clear_flags()
            self._program()

    def _pause(self) -> None:
        """Stop DMA and interrupts at the function, let it land, dirty, acknowledge (spec §5.4)."""
        self._dirtying = True
        device = self._device()
        if self._configured and not self._paused and device is not None:
            self._set_msix_mask(device, masked=True)
            self._set_bus_master(device, enabled=False)
            device.read_status()  # its completion orders every earlier DMA write
            self._dirty_everything_mapped()
            self._paused = True
        self._core.report(self.slot, DriverReport.PAUSED)

    def _resume(self) -> None:
        """A cancelled migration: restart the function from the state it kept (VFM-CANCEL-003)."""
        device = self._device()
        if self._configured and self._paused and device is not None:
            self._set_bus_master(device, enabled=True)
            self._set_msix_mask(device, masked=False)
            device.enable_queues(True)
            self._paused = False
        elif self._up and not self._configured:
            self._clear_flags()
            self._program()
        self._dirtying = False
        self._core.report(self.slot, DriverReport.READY)

    def _reinitialise(self) -> None:
        """After a migration or a group reset: program the function from reset (down: leave it to open)."""
        self._dirtying = False
        self._configured = self._paused = False
        if self._up:
            self._clear_flags()
            self._program()
        self._core.report(self.slot, DriverReport.READY)

    def _recover(self) -> None:
        """The function failed: stop using it and ask for a group reset (spec §7.9)."""
        device = self._device()
        if device is not None and device.bus_master:
            self._set_bus_master(device, enabled=False)
        self._configured = self._paused = False
        self._core.request_group_reset()

    # ------------------------------------------------------------------ the function

    def _clear_flags(self) -> None:
        migrated, reset = self._core.dev_status(self.slot)
        self._core.clear_dev_status(self.slot, migrated, reset)

    def _program(self) -> None:
        device = self._device()
        if device is None:
            return
        device.program_receive(self._ring_start, self._ring_pages, self._buffer_start, RECEIVE_BUFFERS)
        self._guest.memory.cpu_write_range(self._ring_start, self._buffer_start)  # the descriptors
        device.post(RECEIVE_BUFFERS)
        device.config_write(MSIX_CONTROL, 2, MSIX_ENABLE)
        self._set_bus_master(device, enabled=True)
        device.enable_queues(True)
        self._guest.device_interrupt_handlers[device.name] = self._take_completions
        self._configured = True
        self._paused = False

    def _stop_function(self, why: str) -> None:
        device = self._device()
        if self._configured and not self._paused and device is not None:
            device.enable_queues(False)
            self._set_bus_master(device, enabled=False)
            device.read_status()
            if self._dirtying:
                self._dirty_everything_mapped()
        self._configured = self._paused = False

    def _take_completions(self) -> None:
        """After an interrupt: dirty what the function wrote while dirtying (spec §5.3), then repost."""
        device = self._device()
        if not self._configured or device is None:
            return
        filled = device.take_completions()
        if not filled:
            return
        memory = self._guest.memory
        if self._dirtying:
            for start, stop in filled:
                memory.dirty_range(start, stop)
            memory.dirty_range(self._ring_start, self._buffer_start)
        memory.cpu_write_range(self._ring_start, self._buffer_start)
        device.post(sum(stop - start for start, stop in filled))

    def _dirty_everything_mapped(self) -> None:
        self._guest.memory.dirty_range(self._ring_start, self._buffer_start + RECEIVE_BUFFERS)

    @staticmethod
    def _set_bus_master(device: _DrivenFunction, *, enabled: bool) -> None:
        command = device.config_read(PCI_COMMAND, 2)
        command = command | PCI_COMMAND_MASTER if enabled else command & ~PCI_COMMAND_MASTER
        device.config_write(PCI_COMMAND, 2, command | PCI_COMMAND_MEMORY)

    @staticmethod
    def _set_msix_mask(device: _DrivenFunction, *, masked: bool) -> None:
        control = device.config_read(MSIX_CONTROL, 2)
        control = control | MSIX_MASK_ALL if masked else control & ~MSIX_MASK_ALL
        device.config_write(MSIX_CONTROL, 2, control)


def _nothing() -> None:
    """A paused slot: the driver waits for the host's next request."""


class ScratchDevice:
    """The ``device`` target's implementation object."""

    def create_function(
        self, name: str, clock: Clock, bus: EventSink, identity: FunctionIds | None
    ) -> FunctionUnderTest:
        """A fresh function, as after a function-level reset."""
        return ScratchFunction(name, identity or ScratchIds())

    def create_driver(
        self, guest: GuestView, core: MigrationCore, slot: int, devfn: int, allocator: DmaAllocator
    ) -> DriverUnderTest:
        """The driver of the function at ``devfn`` in ``slot``, not yet loaded."""
        return ScratchDriver(guest, core, slot, devfn, allocator)


def make() -> ScratchDevice:
    """``tests.from_scratch.device:make``."""
    return ScratchDevice()
