"""Deliberately faulty device models and drivers: each a small variation of the reference that breaks one rule.

The conformance suite must find every one of them and name the requirement it
breaks (``tests/test_conformance_catalogue.py``, ``tox -e detection``).  Each
fault is a subclass of the reference :class:`~reference_impl.driver.VfDriver`
or :class:`~reference_impl.device.VirtualFunction` that changes one method;
:class:`FaultyDevice` puts them together as a ``device`` implementation.
A fault overrides one of the reference's public extension points (the driver's
phases, such as :meth:`~reference_impl.driver.VfDriver.reinitialise` or
:meth:`~reference_impl.driver.VfDriver.completion_ranges`), never a private
member, and is registered once, with ``@fault``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.catalogue import Fault
from conformance.catalogue.registry import builds_by_keyword, fault, faults_in
from conformance.verdicts import Target, Verdict
from reference_impl.clock import SimClock, ms
from reference_impl.device import (
    MSIX_CAP_OFFSET,
    DeviceTiming,
    FunctionIdentity,
    RxQueue,
    VirtualFunction,
    buffer_pages,
)
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.factories import CONFORMANCE_BUFFERS
from reference_impl.guest import DmaRegionAllocator, Guest
from vfmig_proto.pci import PCI_MSIX_FLAGS
from vfmig_proto.states import DevState, DriverReport


@dataclass(frozen=True)
class FaultyDevice:
    """A ``device`` implementation built from a (possibly faulty) function class and driver class."""

    function_class: type[VirtualFunction] = VirtualFunction
    driver_class: type[VfDriver] = VfDriver
    driver_config: DriverConfig = field(default_factory=lambda: DriverConfig(buffers=CONFORMANCE_BUFFERS))
    timing: DeviceTiming = field(default_factory=DeviceTiming)

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        return self.function_class(name, clock, bus, identity, self.timing)

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return self.driver_class(guest, core, slot, devfn, allocator, config=self.driver_config)


def _device(
    function_class: type[VirtualFunction] = VirtualFunction, driver_class: type[VfDriver] = VfDriver, **config: bool
) -> FaultyDevice:
    return FaultyDevice(function_class, driver_class, DriverConfig(buffers=CONFORMANCE_BUFFERS, **config))


builds_by_keyword(_device, function_class=VirtualFunction, driver_class=VfDriver)


def _set_bus_master(driver: VfDriver, on: bool) -> None:
    """Set or clear Bus Master Enable of the driver's function, if it has one: what faulty drivers do out of turn."""
    function = driver.function
    if function is not None:
        function.set_bus_master(on)


# ---------------------------------------------------------------------------------------------- drivers


@fault(Target.DEVICE, breaks="VFM-DIRTY-004")
class DirtiesBeforeStopping(VfDriver):
    """Dirties its pages first, then stops DMA and acknowledges at once."""

    def before_migration_pause(self) -> None:
        function = self.function
        if function is None:
            return
        self.dirty_pages(self.mapped_ranges(), "pause")
        function.set_bus_master(False)
        self.paused = True
        self.core.report(self.slot, DriverReport.PAUSED)


@fault(Target.DEVICE, breaks="VFM-DIRTY-004")
class AcknowledgesBeforeQuiescing(VfDriver):
    """Reports PAUSED while its function still has Bus Master Enable set."""

    def before_migration_pause(self) -> None:
        self.dirty_pages(self.mapped_ranges(), "pause")
        self.paused = True
        self.core.report(self.slot, DriverReport.PAUSED)


@fault(Target.DEVICE, breaks="VFM-DIRTY-004")
class ForgetsTheRing(VfDriver):
    """Its pause pass dirties the buffers but forgets the descriptor ring the function writes back into."""

    def mapped_ranges(self) -> list[tuple[int, int]]:
        return [(self.buffer_start, self.buffer_start + self.buffer_count)]

    def completion_ranges(self, rx: RxQueue, completed: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return buffer_pages(rx, completed)  # completions are dirtied without the ring as well

    def repost(self, function: VirtualFunction, count: int) -> None:
        function.mmio_post(count)  # nor does the CPU write the ring: it reposts without new descriptors


@fault(Target.DEVICE, breaks="VFM-DEV-007")
class EnablesBeforeReady(VfDriver):
    """At probe it sets Bus Master Enable before it reports READY."""

    def load(self, *, up: bool = True) -> bool:
        function = self.function
        if function is not None and not self.loaded and self.core.dev_state(self.slot) is DevState.UNBOUND:
            function.set_bus_master(True)
        return super().load(up=up)


@fault(Target.DEVICE, breaks="VFM-DOWN-004")
class OpensDuringDirtyRequest(VfDriver):
    """Restarts its function (BME off, then on) on DIRTY_REQ before acknowledging it."""

    def on_dirty_req(self) -> None:
        if self.configured:
            _set_bus_master(self, False)
            _set_bus_master(self, True)
        super().on_dirty_req()


@fault(Target.DEVICE, breaks="VFM-FLAG-003")
class NeverReadsTheFlags(VfDriver):
    """Brings the function up without reading DEV_STATUS first (and never clears the flags)."""

    def bring_up(self) -> None:
        self.program_function()


@fault(Target.DEVICE, breaks="VFM-FLAG-005")
class ReinitialisesBeforeClearing(VfDriver):
    """Reads the flags on REINIT_REQ but clears them only after reprogramming the function."""

    def reinitialise(self) -> None:
        migrated, reset = self.core.dev_status(self.slot)
        self.program_function()
        self.core.clear_dev_status(self.slot, migrated, reset)


@fault(Target.DEVICE, breaks="VFM-DEV-009")
class TrustsOldState(VfDriver):
    """Answers REINIT_REQ as if the function kept its state: it clears the flags but programs nothing."""

    def after_migration_reinit(self) -> None:
        self.set_dirtying(False)
        migrated, reset = self.core.dev_status(self.slot)
        self.core.clear_dev_status(self.slot, migrated, reset)
        self.core.report(self.slot, DriverReport.READY)


@fault(Target.DEVICE, breaks="VFM-CANCEL-003")
class ResumesWithoutRestarting(VfDriver):
    """On the bad path it reports READY but leaves its function stopped."""

    def bad_path_resume(self) -> None:
        self.paused = False
        self.set_dirtying(False)
        self.core.report(self.slot, DriverReport.READY)


@fault(Target.DEVICE, breaks="VFM-ABS-001")
class UnbindsSilently(VfDriver):
    """Unbinds without writing DRV_STATE = NONE."""

    def unload(self) -> None:
        if not self.loaded or self.busy:
            return
        function = self.function
        if function is not None:
            function.set_bus_master(False)
        self.core.unregister(self.slot)
        self.loaded = False
        self.up = False
        self.configured = False


@fault(Target.DEVICE, breaks="VFM-ABS-002")
class UnbindsRunning(VfDriver):
    """Writes NONE while its function still has Bus Master Enable set, and quiesces afterwards."""

    def unload(self) -> None:
        if not self.loaded or self.busy:
            return
        if self.core.dev_state(self.slot) is not DevState.EMPTY:
            self.core.report(self.slot, DriverReport.NONE)
        super().unload()


@fault(Target.DEVICE, breaks="VFM-ABS-003")
class UnbindsWithoutDirtying(VfDriver):
    """Unbinds during a migration without dirtying what its function wrote."""

    def quiesce(self, then: object, why: str) -> None:
        if why == "unbind":
            self.dirtying = False  # it forgets it was dirtying
        super().quiesce(then, why)


@fault(Target.DEVICE, breaks="VFM-TMO-006")
class NeverAnswersPause(VfDriver):
    """Never acknowledges PAUSE_REQ."""

    def on_pause_req(self) -> None:
        self.set_dirtying(True)


@fault(Target.DEVICE, breaks="VFM-DOWN-003")
class TouchesWhileDown(VfDriver):
    """Answers REINIT_REQ while its interface is down by enabling the function anyway."""

    def after_migration_reinit(self) -> None:
        if not self.up:
            _set_bus_master(self, True)
        super().after_migration_reinit()


@fault(Target.DEVICE, breaks="VFM-DEV-008")
class RestartsWhilePaused(VfDriver):
    """Re-enables bus mastering on the next interrupt it handles while PAUSED (a watchdog gone wrong)."""

    def on_paused(self) -> None:
        function = self.function
        if function is not None and self.configured:
            function.set_bus_master(True)


@fault(Target.DEVICE, breaks="VFM-DEV-005")
class ReportsReadyAtOpen(VfDriver):
    """Reports READY at every open of its interface, whatever DEV_STATE it read (readiness "in open()")."""

    def open(self) -> None:
        opening = self.loaded and not self.up
        super().open()
        if opening and self.loaded:
            self.core.report(self.slot, DriverReport.READY)


@fault(Target.DEVICE, breaks="VFM-DIRTY-002")
class DirtiesWithLoadAndStore(VfDriver):
    """Dirties a completed receive by loading the page and storing the value back later, not atomically.

    The store comes from deferred work, a while after the load: a DMA write that lands in between is
    overwritten with the data from before it (the pause pass, with DMA stopped, is done right).
    """

    STORE_DELAY_NS = ms(1.5)

    def dirty_pages(self, ranges: list[tuple[int, int]], why: str) -> None:
        if why != "completion":
            super().dirty_pages(ranges, why)
            return
        memory = self.guest.memory
        loaded = [(start, stop, memory.versions[start:stop].copy()) for start, stop in ranges]

        def store() -> None:
            for start, stop, old in loaded:
                memory.versions[start:stop] = old  # the store writes back what the load read ...
                memory.dirty_range(start, stop)  # ... and the CPU dirty log records it

        self.guest.after(self.STORE_DELAY_NS, store, f"{self.name} deferred dirtying store")


@fault(Target.DEVICE, breaks="VFM-DOWN-001")
class PausesAsIfDown(VfDriver):
    """Closing only stops its queues (BME stays set); while down it answers PAUSE_REQ at once, stopping nothing."""

    def close(self) -> None:
        if not self.loaded or not self.up:
            return
        self.up = False
        self.publish_action("close")
        function = self.function
        if self.configured and not self.paused and not self.busy and function is not None:
            function.mmio_enable_queues(False)

    def open(self) -> None:
        function = self.function
        if self.loaded and not self.up and self.configured and not self.paused and function is not None:
            function.mmio_enable_queues(True)
        super().open()

    def on_pause_req(self) -> None:
        if not self.up:
            self.set_dirtying(True)
            self.core.report(self.slot, DriverReport.PAUSED)  # the interface-down answer, for a running function
            return
        super().on_pause_req()


@fault(Target.DEVICE, breaks="VFM-DOWN-002")
class WaitsForOpen(VfDriver):
    """While its interface is down it leaves every migration request unanswered until the interface is opened."""

    def act_on(self, state: DevState | int) -> None:
        waiting = (DevState.DIRTY_REQ, DevState.PAUSE_REQ, DevState.RESUME_REQ, DevState.REINIT_REQ)
        if self.loaded and not self.up and state in waiting:
            return  # open() looks at the slot again
        super().act_on(state)


@fault(Target.DEVICE, breaks="VFM-FLAG-004")
class ReopensFromOldState(VfDriver):
    """Opens its interface by re-enabling the function it programmed before, even after MIGRATED or RESET.

    It reads and clears the flags, but relies on the rings it programmed into the function before the
    migration or the reset instead of bringing the function up from its reset state.
    """

    programmed = False

    def load(self, *, up: bool = True) -> bool:
        self.programmed = False
        return super().load(up=up)

    def program_function(self) -> None:
        super().program_function()
        self.programmed = True

    def bring_up(self) -> None:
        function = self.function
        if not self.programmed or function is None:
            super().bring_up()
            return
        migrated, reset = self.core.dev_status(self.slot)
        self.core.clear_dev_status(self.slot, migrated, reset)
        self.start_function(function)  # without programming its rings again


@fault(Target.DEVICE, breaks="VFM-ERR-007")
class IgnoresResetAfterReady(VfDriver):
    """Never reads DEV_STATUS.RESET after a READY report: a reset under it while it brought the function up is lost."""

    def on_ready(self) -> None:
        self.set_dirtying(False)
        if self.up and not self.configured:
            self.bring_up()


@fault(Target.DEVICE, breaks="VFM-ERR-007")
class ClearsResetAndCarriesOn(VfDriver):
    """Reads DEV_STATUS.RESET after a READY report and clears it, but goes on with the function as it was."""

    def on_ready(self) -> None:
        self.set_dirtying(False)
        if self.configured:
            _, reset = self.core.dev_status(self.slot)
            self.core.clear_dev_status(self.slot, False, reset)
        if self.up and not self.configured:
            self.bring_up()


@fault(Target.DEVICE, breaks="VFM-REP-003")
class RemembersDirtiedPages(VfDriver):
    """Skips the pages it dirtied in an earlier migration (GENERATION), as if the hypervisor now sent them anyway.

    Within the first migration it dirties as the reference does.
    """

    # Frozen sets, replaced rather than changed: the class's empty ones are every new driver's start.
    dirtied_earlier: frozenset[int] = frozenset()
    dirtied_now: frozenset[int] = frozenset()

    def set_dirtying(self, on: bool) -> None:
        if on and not self.dirtying:  # a new migration: what the last one dirtied counts as known
            self.dirtied_earlier |= self.dirtied_now
            self.dirtied_now = frozenset()
        super().set_dirtying(on)

    def dirty_pages(self, ranges: list[tuple[int, int]], why: str) -> None:
        pages = [page for start, stop in ranges for page in range(start, stop) if page not in self.dirtied_earlier]
        self.dirtied_now |= frozenset(pages)
        super().dirty_pages([(page, page + 1) for page in pages], why)


@fault(Target.DEVICE, breaks="VFM-TMO-006", verdict=Verdict.ERROR)
class RaisesOnPause(VfDriver):
    """Raises an exception when asked to pause."""

    def on_pause_req(self) -> None:
        raise RuntimeError("driver bug: pause callback not implemented")


@fault(Target.DEVICE, breaks="VFM-TMO-006", verdict=Verdict.TIMEOUT)
class HangsOnPause(VfDriver):
    """Never returns when asked to pause."""

    def on_pause_req(self) -> None:
        while True:
            pass


# ---------------------------------------------------------------------------------------------- functions


@fault(Target.DEVICE, breaks="VFM-FN-001")
class IgnoresBusMaster(VirtualFunction):
    """Keeps receiving (and writing guest memory) with Bus Master Enable clear."""

    def can_dma(self) -> bool:
        return self.queues_enabled and not self.failed and self.memory is not None


@fault(Target.DEVICE, breaks="VFM-FN-005")
class InterruptsWhenMasked(VirtualFunction):
    """Sends MSI-X messages with the MSI-X Function Mask set."""

    def raise_interrupt(self, vector: int) -> None:
        flags = self.config_read(MSIX_CAP_OFFSET + PCI_MSIX_FLAGS, 2)
        if self.bus_master and flags & 0x8000 and self.interrupt_sink is not None:
            self.interrupt_sink(self.name)


@fault(Target.DEVICE, breaks="VFM-FN-006")
class KeepsStateAcrossReset(VirtualFunction):
    """A function-level reset leaves Bus Master Enable and the queues as they were."""

    def function_level_reset(self, how: str) -> None:
        self.resets += 1


@fault(Target.DEVICE, breaks="VFM-FN-004")
class WritesPastItsBuffers(VirtualFunction):
    """Writes one page past the end of the buffer pool its driver gave it."""

    def land(self, rx: RxQueue, start: int, count: int) -> None:
        super().land(rx, start, count)
        memory = self.memory
        if self.rx is rx and memory is not None and rx.buffer_start + rx.buffer_count < memory.num_pages:
            memory.dma_write_range(rx.buffer_start - rx.ring_pages - 1, rx.buffer_start - rx.ring_pages)


@fault(Target.DEVICE, breaks="VFM-ERR-006")
class ReceivesThroughReset(VirtualFunction):
    """A reset clears its configuration space, but its receive queue goes on filling the buffers posted before."""

    def function_level_reset(self, how: str) -> None:
        rx, enabled = self.rx, self.queues_enabled
        super().function_level_reset(how)
        self.rx, self.queues_enabled = rx, enabled

    def can_dma(self) -> bool:
        return self.queues_enabled and not self.failed and self.memory is not None


@fault(Target.DEVICE, breaks="VFM-FN-007")
class SlowToReset(VirtualFunction):
    """Takes 150 ms to complete a function-level reset: until then its config reads return all ones."""

    RESET_NS = ms(150)
    reset_until = -1

    def function_level_reset(self, how: str) -> None:
        super().function_level_reset(how)
        self.reset_until = self.clock.now + self.RESET_NS

    def config_read(self, offset: int, width: int) -> int:
        if self.clock.now < self.reset_until:
            return (1 << (8 * width)) - 1
        return super().config_read(offset, width)


@fault(Target.DEVICE, breaks="VFM-FN-003")
class NeverDrains(VirtualFunction):
    """Transactions Pending never clears after Bus Master Enable is cleared."""

    @property
    def transactions_pending(self) -> bool:
        return not self.bus_master and self.rx is not None


# ---------------------------------------------------------------------------------------------- the catalogue


@fault(Target.DEVICE, breaks="VFM-DIRTY-004")
def never_dirties() -> FaultyDevice:
    """The driver never dirties what its function writes by DMA (the reference's driver, configured so)."""
    return _device(dirty_completions=False, dirty_on_pause=False)


CATALOGUE: list[Fault] = faults_in(__name__)
"""The faulty ``device`` implementations and the requirement each breaks."""
