"""The reference objects the hypervisor suite hands to the hypervisor, subclassed so that they report to it:
the dirty log and the memory, the functions, and the bridge (every host event before it takes effect, every
guest access once it has completed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from conformance.suites.hypervisor.settings import BUFFERS, FLR_BYTE
from reference_impl.bridge import MigrationBridge
from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.guest import DmaRegionAllocator, Guest
from reference_impl.memory import DirtyLog, DirtyLogReadError, GuestMemory, MemoryView, Pages
from vfmig_proto.errors import ProtocolError
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.pci import PCI_EXP_DEVCTL_BCR_FLR
from vfmig_proto.states import DevEvent, MigEvent, MigReason

if TYPE_CHECKING:
    from conformance.suites.hypervisor.assembly import AssembledSuite
    from conformance.suites.hypervisor.watch import Watch


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

    def __init__(self, size_bytes: int, page_shift: int, *, boot: bool, suite: AssembledSuite) -> None:
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
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None, suite: AssembledSuite
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

    @property
    def memory(self) -> MemoryView | None:
        """The function's DMA mapping; the suite hears when the host takes it away (VFM-SEC-006)."""
        return self._mapping

    @memory.setter
    def memory(self, mapping: MemoryView | None) -> None:
        previous = getattr(self, "_mapping", None)
        self._mapping = mapping
        if previous is not None and mapping is not previous:
            self.suite.function_unmapped(self)

    def _send_msix(self, vector: int) -> None:
        self.signals += 1
        super()._send_msix(vector)

    def _write_buffers(self, rx: Any, start: int, count: int) -> None:
        self.suite.function_dma(self)
        super()._write_buffers(rx, start, count)

    def config_write(self, offset: int, width: int, value: int) -> None:
        flr = offset <= FLR_BYTE < offset + width and value >> (8 * (FLR_BYTE - offset)) & (PCI_EXP_DEVCTL_BCR_FLR >> 8)
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

    suite: AssembledSuite

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

    def __init__(self, suite: AssembledSuite) -> None:
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

    def __init__(self, bus: EventBus, params: CapabilityParams, name: str, suite: AssembledSuite) -> None:
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

    def _host_event(self, event: MigEvent, before: Callable[[], None], effect: Callable[[], None]) -> None:
        """A host event: the suite hears of it and checks what it must before it takes effect, then sees its
        effect (with the hypervisor's reaction) as one scope."""
        self.suite.host_event(self, event)
        before()
        with self.suite.scope():
            effect()

    def _slot_event(self, slot: int, event: DevEvent, effect: Callable[[], None]) -> None:
        """A device event in ``slot``: it changes the capability (a hot-add is checked on its own too)."""
        self.suite.slot_event(self, slot, event)
        self.suite.before_capability_change(self)
        if event is DevEvent.HOT_ADD:
            self.suite.before_hot_add(self, slot)
        with self.suite.scope():
            effect()

    def start(self) -> None:
        self._host_event(MigEvent.START, partial(self.suite.before_start, self), super().start)

    def request_pause(self) -> None:
        self._host_event(MigEvent.REQUEST_PAUSE, partial(self.suite.before_request_pause, self), super().request_pause)

    def cancel(self, reason: MigReason) -> None:
        before = partial(self.suite.before_cancel, self, reason)
        self._host_event(MigEvent.CANCEL, before, partial(super().cancel, reason))

    def arrive(self) -> None:
        self._host_event(MigEvent.ARRIVE, partial(self.suite.before_arrive, self), super().arrive)

    def group_reset(self) -> None:
        self._host_event(MigEvent.GROUP_RESET, partial(self.suite.before_group_reset, self), super().group_reset)

    def hot_add(self, slot: int, function: Any) -> None:
        if isinstance(function, WatchedFunction):
            self.suite.function_reassigned(function, f"hot-added into slot {slot} of {self.name}")
        self._slot_event(slot, DevEvent.HOT_ADD, partial(super().hot_add, slot, function))

    def surprise_removal(self, slot: int) -> None:
        self._slot_event(slot, DevEvent.SURPRISE_REMOVAL, partial(super().surprise_removal, slot))

    def device_error(self, slot: int) -> None:
        self._slot_event(slot, DevEvent.DEVICE_ERROR, partial(super().device_error, slot))

    def conventional_reset(self) -> None:
        self.suite.before_conventional_reset(self)
        self.suite.before_capability_change(self)
        with self.suite.scope():
            super().conventional_reset()
            self.suite.after_conventional_reset(self)  # (inside: the step is judged with the migration ended)
