"""``device`` variants the specification allows: eager dirtying, a slow pause, another re-post order, other lanes."""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.clock import NS_PER_MS, SimClock
from reference_impl.device import FunctionIdentity, RxQueue, VirtualFunction
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.factories import CONFORMANCE_BUFFERS
from reference_impl.guest import DmaRegionAllocator, Guest
from vfmig_proto.states import DevState, DriverReport

_STATUS_EVENT = 0x01
_DWORD = 4


@dataclass(frozen=True)
class VariantDevice:
    """A ``device`` implementation: the reference function with a driver (and optionally a core) of the variant's."""

    driver_class: type[VfDriver] = VfDriver
    core_class: type[MigrationCore] | None = None

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        return VirtualFunction(name, clock, bus, identity)

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return self.driver_class(guest, core, slot, devfn, allocator, config=DriverConfig(buffers=CONFORMANCE_BUFFERS))


@dataclass(frozen=True)
class VariantDeviceWithCore(VariantDevice):
    """A variant that brings the guest's migration core as well."""

    def create_migration_core(self, guest: Guest) -> MigrationCore:
        core_class = self.core_class or MigrationCore
        return core_class(guest)


class EagerDirtier(VfDriver):
    """Dirties every page the function may write at every opportunity: as dirtying mode turns on (before any
    DMA), in every receive poll whatever completed, and at pause.  Dirtying more than written is allowed: a
    dirtying write leaves memory as it was (VFM-DIRTY-002), it only costs pages sent."""

    def set_dirtying(self, on: bool) -> None:
        super().set_dirtying(on)
        if on:
            self.dirty_pages(self.mapped_ranges(), "eager")

    def on_dirtying(self) -> None:
        super().on_dirtying()
        self.dirty_pages(self.mapped_ranges(), "eager")

    def completion_ranges(self, rx: RxQueue, completed: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return self.mapped_ranges()

    def poll(self) -> None:
        super().poll()
        if self.dirtying:
            self.dirty_pages(self.mapped_ranges(), "eager")


class SlowPauser(VfDriver):
    """Answers PAUSE_REQ after half of ACK_TIMEOUT_MS: the function is stopped, drained and dirtied at once,
    then the driver waits (a slow firmware handshake) before it reports PAUSED, well within the deadline
    (VFM-TMO-006).  It reads the slot again before it reports, and answers only what it reads then."""

    def before_migration_pause(self) -> None:
        function = self.function
        if function is None:
            return
        self.publish_action("pause")
        function.mask_msix(True)
        function.set_bus_master(False)
        function.mmio_read_status()
        self.busy = True
        delay = self.core.field("ack_timeout_ms") * NS_PER_MS // 2

        def report_late() -> None:
            self.busy = False
            if function.transactions_pending:
                self._wait_for_drain(function, report_late)
                return
            self.dirty_pages(self.mapped_ranges(), "pause")
            self.paused = True
            if self.core.dev_state(self.slot) is DevState.PAUSE_REQ:
                self.core.report(self.slot, DriverReport.PAUSED)
            self.core.sequence_done(self.slot)

        self.guest.after(delay, report_late, f"{self.name} slow pause")


class OneByOneReposter(VfDriver):
    """Gives buffers back to the function one at a time, each with its own descriptor write and doorbell, and
    keeps the last of each batch for the next poll: another order and batching of re-posts, which the
    protocol leaves to the driver."""

    def repost(self, function: VirtualFunction, count: int) -> None:
        held = self.__dict__.get("_held", 0) + count
        keep = 1 if held > 1 else 0
        for _ in range(held - keep):
            self.guest.memory.cpu_write_range(self.ring_start, self.buffer_start)
            function.mmio_post(1)
        self.__dict__["_held"] = keep

    def program_function(self) -> None:
        self.__dict__["_held"] = 0
        super().program_function()


class DwordLaneCore(MigrationCore):
    """Reads every register of the capability with an aligned 4-byte read and takes its field out of the DWORD,
    and clears STATUS.EVENT with a 1-byte write: other byte lanes, all of them legal (VFM-ACC-002)."""

    def config_read(self, offset: int, width: int) -> int:
        cap = self.cap
        if cap is None or offset < cap or width == _DWORD:
            return super().config_read(offset, width)
        base = offset - offset % _DWORD
        if offset + width > base + _DWORD:
            return super().config_read(offset, width)
        word = super().config_read(base, _DWORD)
        return (word >> (8 * (offset - base))) & ((1 << (8 * width)) - 1)

    def clear_event(self) -> None:
        self.config_write(self.register_offset("status.event"), 1, _STATUS_EVENT)


def eager_dirtier() -> VariantDevice:
    """The reference function with :class:`EagerDirtier`."""
    return VariantDevice(EagerDirtier)


def slow_pauser() -> VariantDevice:
    """The reference function with :class:`SlowPauser`."""
    return VariantDevice(SlowPauser)


def one_by_one_reposter() -> VariantDevice:
    """The reference function with :class:`OneByOneReposter`."""
    return VariantDevice(OneByOneReposter)


def dword_lane_core() -> VariantDeviceWithCore:
    """The reference function and driver with the guest core :class:`DwordLaneCore`."""
    return VariantDeviceWithCore(VfDriver, DwordLaneCore)
