"""Deliberately faulty device models and drivers: each a small variation of the reference that breaks one rule.

The conformance suite must find every one of them and name the requirement it
breaks (``tests/test_conformance_catalogue.py``, ``tox -e detection``).  Each
fault is a subclass of the reference :class:`~reference_impl.driver.VfDriver`
or :class:`~reference_impl.device.VirtualFunction` that changes one method;
:class:`FaultyDevice` puts them together as a ``device`` implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.catalogue import Fault
from conformance.verdicts import Target, Verdict
from reference_impl.clock import SimClock, ms
from reference_impl.device import (
    MSIX_CAP_OFFSET,
    PCI_MSIX_FLAGS,
    DeviceTiming,
    FunctionIdentity,
    RxQueue,
    VirtualFunction,
)
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.factories import CONFORMANCE_BUFFERS
from reference_impl.guest import DmaRegionAllocator, Guest
from vfmig_proto.states import DevState, DriverReport

_MODULE = "conformance.catalogue.device_faults"


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


# ---------------------------------------------------------------------------------------------- drivers


class DirtiesBeforeStopping(VfDriver):
    """Dirties its pages first, then stops DMA and acknowledges at once."""

    def _before_migration_pause(self) -> None:
        function = self.function
        if function is None:
            return
        self._dirty(self._mapped_ranges(), "pause")
        function.set_bus_master(False)
        self.paused = True
        self.core.report(self.slot, DriverReport.PAUSED)


class AcknowledgesBeforeQuiescing(VfDriver):
    """Reports PAUSED while its function still has Bus Master Enable set."""

    def _before_migration_pause(self) -> None:
        self._dirty(self._mapped_ranges(), "pause")
        self.paused = True
        self.core.report(self.slot, DriverReport.PAUSED)


class ForgetsTheRing(VfDriver):
    """Its pause pass dirties the buffers but forgets the descriptor ring the function writes back into."""

    def _mapped_ranges(self) -> list[tuple[int, int]]:
        return [(self.buffer_start, self.buffer_start + self.buffer_count)]

    def poll(self) -> None:
        # Completions are dirtied without the ring as well.
        function = self.function
        if not self.configured or function is None or function.rx is None:
            return
        completed = function.mmio_take_completions()
        if not completed:
            return
        if self.dirtying:
            from reference_impl.device import buffer_pages  # noqa: PLC0415 - keeps the fault self-contained

            self._dirty(buffer_pages(function.rx, completed), "completion")
        function.mmio_post(sum(stop - start for start, stop in completed))


class EnablesBeforeReady(VfDriver):
    """At probe it sets Bus Master Enable before it reports READY."""

    def load(self, *, up: bool = True) -> bool:
        function = self.function
        if function is not None and not self.loaded and self.core.dev_state(self.slot) is DevState.UNBOUND:
            function.set_bus_master(True)
        return super().load(up=up)


class OpensDuringDirtyRequest(VfDriver):
    """Restarts its function (BME off, then on) on DIRTY_REQ before acknowledging it."""

    def _on_dirty_req(self) -> None:
        function = self.function
        if function is not None and self.configured:
            function.set_bus_master(False)
            function.set_bus_master(True)
        super()._on_dirty_req()


class NeverReadsTheFlags(VfDriver):
    """Brings the function up without reading DEV_STATUS first (and never clears the flags)."""

    def _bring_up(self) -> None:
        self._program_function()


class ReinitialisesBeforeClearing(VfDriver):
    """Reads the flags on REINIT_REQ but clears them only after reprogramming the function."""

    def _after_migration_reinit(self) -> None:
        self._set_dirtying(False)
        self.configured = False
        self.paused = False
        if self.up:
            migrated, reset = self.core.dev_status(self.slot)
            self._program_function()
            self.core.clear_dev_status(self.slot, migrated, reset)
        self.core.report(self.slot, DriverReport.READY)


class TrustsOldState(VfDriver):
    """Answers REINIT_REQ as if the function kept its state: it clears the flags but programs nothing."""

    def _after_migration_reinit(self) -> None:
        self._set_dirtying(False)
        migrated, reset = self.core.dev_status(self.slot)
        self.core.clear_dev_status(self.slot, migrated, reset)
        self.core.report(self.slot, DriverReport.READY)


class ResumesWithoutRestarting(VfDriver):
    """On the bad path it reports READY but leaves its function stopped."""

    def _bad_path_resume(self) -> None:
        self.paused = False
        self._set_dirtying(False)
        self.core.report(self.slot, DriverReport.READY)


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


class UnbindsRunning(VfDriver):
    """Writes NONE while its function still has Bus Master Enable set, and quiesces afterwards."""

    def unload(self) -> None:
        if not self.loaded or self.busy:
            return
        if self.core.dev_state(self.slot) is not DevState.EMPTY:
            self.core.report(self.slot, DriverReport.NONE)
        super().unload()


class UnbindsWithoutDirtying(VfDriver):
    """Unbinds during a migration without dirtying what its function wrote."""

    def _quiesce(self, then: object, why: str) -> None:
        if why == "unbind":
            self.dirtying = False  # it forgets it was dirtying
        super()._quiesce(then, why)


class NeverAnswersPause(VfDriver):
    """Never acknowledges PAUSE_REQ."""

    def _on_pause_req(self) -> None:
        self._set_dirtying(True)


class TouchesWhileDown(VfDriver):
    """Answers REINIT_REQ while its interface is down by enabling the function anyway."""

    def _after_migration_reinit(self) -> None:
        if not self.up:
            function = self.function
            if function is not None:
                function.set_bus_master(True)
        super()._after_migration_reinit()


class RestartsWhilePaused(VfDriver):
    """Re-enables bus mastering on the next interrupt it handles while PAUSED (a watchdog gone wrong)."""

    def _on_paused(self) -> None:
        function = self.function
        if function is not None and self.configured:
            function.set_bus_master(True)


class ReportsReadyAtOpen(VfDriver):
    """Reports READY at every open of its interface, whatever DEV_STATE it read (readiness "in open()")."""

    def open(self) -> None:
        opening = self.loaded and not self.up
        super().open()
        if opening and self.loaded:
            self.core.report(self.slot, DriverReport.READY)


class DirtiesWithLoadAndStore(VfDriver):
    """Dirties a completed receive by loading the page and storing the value back later, not atomically.

    The store comes from deferred work, a while after the load: a DMA write that lands in between is
    overwritten with the data from before it (the pause pass, with DMA stopped, is done right).
    """

    STORE_DELAY_NS = ms(1.5)

    def _dirty(self, ranges: list[tuple[int, int]], why: str) -> None:
        if why != "completion":
            super()._dirty(ranges, why)
            return
        memory = self.guest.memory
        loaded = [(start, stop, memory.versions[start:stop].copy()) for start, stop in ranges]

        def store() -> None:
            for start, stop, old in loaded:
                memory.versions[start:stop] = old  # the store writes back what the load read ...
                memory.dirty_range(start, stop)  # ... and the CPU dirty log records it

        self.guest.after(self.STORE_DELAY_NS, store, f"{self.name} deferred dirtying store")


class PausesAsIfDown(VfDriver):
    """Closing only stops its queues (BME stays set); while down it answers PAUSE_REQ at once, stopping nothing."""

    def close(self) -> None:
        if not self.loaded or not self.up:
            return
        self.up = False
        self._event("close")
        function = self.function
        if self.configured and not self.paused and not self.busy and function is not None:
            function.mmio_enable_queues(False)

    def open(self) -> None:
        function = self.function
        if self.loaded and not self.up and self.configured and not self.paused and function is not None:
            function.mmio_enable_queues(True)
        super().open()

    def _on_pause_req(self) -> None:
        if not self.up:
            self._set_dirtying(True)
            self.core.report(self.slot, DriverReport.PAUSED)  # the interface-down answer, for a running function
            return
        super()._on_pause_req()


class WaitsForOpen(VfDriver):
    """While its interface is down it leaves every migration request unanswered until the interface is opened."""

    def act_on(self, state: DevState | int) -> None:
        waiting = (DevState.DIRTY_REQ, DevState.PAUSE_REQ, DevState.RESUME_REQ, DevState.REINIT_REQ)
        if self.loaded and not self.up and state in waiting:
            return  # open() looks at the slot again
        super().act_on(state)


class ReopensFromOldState(VfDriver):
    """Opens its interface by re-enabling the function it programmed before, even after MIGRATED or RESET.

    It reads and clears the flags, but relies on the rings it programmed into the function before the
    migration or the reset instead of bringing the function up from its reset state.
    """

    _programmed = False

    def load(self, *, up: bool = True) -> bool:
        self._programmed = False
        return super().load(up=up)

    def _program_function(self) -> None:
        super()._program_function()
        self._programmed = True

    def _bring_up(self) -> None:
        function = self.function
        if not self._programmed or function is None:
            super()._bring_up()
            return
        migrated, reset = self.core.dev_status(self.slot)
        self.core.clear_dev_status(self.slot, migrated, reset)
        function.set_msix(True)
        function.set_bus_master(True)
        function.mmio_enable_queues(True)
        self.guest.device_interrupt_handlers[function.name] = self.poll
        self.configured = True
        self.paused = False


class IgnoresResetAfterReady(VfDriver):
    """Never reads DEV_STATUS.RESET after a READY report: a reset under it while it brought the function up is lost."""

    def _on_ready(self) -> None:
        self._set_dirtying(False)
        if self.up and not self.configured:
            self._bring_up()


class ClearsResetAndCarriesOn(VfDriver):
    """Reads DEV_STATUS.RESET after a READY report and clears it, but goes on with the function as it was."""

    def _on_ready(self) -> None:
        self._set_dirtying(False)
        if self.configured:
            _, reset = self.core.dev_status(self.slot)
            self.core.clear_dev_status(self.slot, False, reset)
        if self.up and not self.configured:
            self._bring_up()


class RemembersDirtiedPages(VfDriver):
    """Skips the pages it dirtied in an earlier migration (GENERATION), as if the hypervisor now sent them anyway.

    Within the first migration it dirties as the reference does.
    """

    def __init__(
        self,
        guest: Guest,
        core: MigrationCore,
        slot: int,
        devfn: int,
        allocator: DmaRegionAllocator,
        *,
        config: DriverConfig | None = None,
    ) -> None:
        super().__init__(guest, core, slot, devfn, allocator, config=config)
        self.dirtied_earlier: set[int] = set()
        self.dirtied_now: set[int] = set()

    def _set_dirtying(self, on: bool) -> None:
        if on and not self.dirtying:  # a new migration: what the last one dirtied counts as known
            self.dirtied_earlier |= self.dirtied_now
            self.dirtied_now = set()
        super()._set_dirtying(on)

    def _dirty(self, ranges: list[tuple[int, int]], why: str) -> None:
        pages = [page for start, stop in ranges for page in range(start, stop) if page not in self.dirtied_earlier]
        self.dirtied_now.update(pages)
        super()._dirty([(page, page + 1) for page in pages], why)


class RaisesOnPause(VfDriver):
    """Raises an exception when asked to pause."""

    def _on_pause_req(self) -> None:
        raise RuntimeError("driver bug: pause callback not implemented")


class HangsOnPause(VfDriver):
    """Never returns when asked to pause."""

    def _on_pause_req(self) -> None:
        while True:
            pass


# ---------------------------------------------------------------------------------------------- functions


class IgnoresBusMaster(VirtualFunction):
    """Keeps receiving (and writing guest memory) with Bus Master Enable clear."""

    def can_dma(self) -> bool:
        return self.queues_enabled and not self.failed and self.memory is not None

    def _land(self, rx: RxQueue, start: int, count: int) -> None:
        if self.memory is not None and self.rx is rx:
            self._write_buffers(rx, start, count)
            rx.completed.append((start, start + count))
            self._interrupt(0)


class InterruptsWhenMasked(VirtualFunction):
    """Sends MSI-X messages with the MSI-X Function Mask set."""

    def _interrupt(self, vector: int) -> None:
        flags = self.config_read(MSIX_CAP_OFFSET + PCI_MSIX_FLAGS, 2)
        if self.bus_master and flags & 0x8000 and self.interrupt_sink is not None:
            self.interrupt_sink(self.name)


class KeepsStateAcrossReset(VirtualFunction):
    """A function-level reset leaves Bus Master Enable and the queues as they were."""

    def function_level_reset(self, how: str) -> None:
        self.resets += 1


class WritesPastItsBuffers(VirtualFunction):
    """Writes one page past the end of the buffer pool its driver gave it."""

    def _write_buffers(self, rx: RxQueue, start: int, count: int) -> None:
        super()._write_buffers(rx, start, count)
        memory = self.memory
        if memory is not None and rx.buffer_start + rx.buffer_count < memory.num_pages:
            memory.dma_write_range(rx.buffer_start - rx.ring_pages - 1, rx.buffer_start - rx.ring_pages)


class ReceivesThroughReset(VirtualFunction):
    """A reset clears its configuration space, but its receive queue goes on filling the buffers posted before."""

    def function_level_reset(self, how: str) -> None:
        rx, enabled = self.rx, self.queues_enabled
        super().function_level_reset(how)
        self.rx, self.queues_enabled = rx, enabled

    def can_dma(self) -> bool:
        return self.queues_enabled and not self.failed and self.memory is not None


class SlowToReset(VirtualFunction):
    """Takes 150 ms to complete a function-level reset: until then its config reads return all ones."""

    RESET_NS = ms(150)
    _reset_until = -1

    def function_level_reset(self, how: str) -> None:
        super().function_level_reset(how)
        self._reset_until = self.clock.now + self.RESET_NS

    def config_read(self, offset: int, width: int) -> int:
        if self.clock.now < self._reset_until:
            return (1 << (8 * width)) - 1
        return super().config_read(offset, width)


class NeverDrains(VirtualFunction):
    """Transactions Pending never clears after Bus Master Enable is cleared."""

    @property
    def transactions_pending(self) -> bool:
        return not self.bus_master and self.rx is not None


# ---------------------------------------------------------------------------------------------- the catalogue


def _device(
    function_class: type[VirtualFunction] = VirtualFunction, driver_class: type[VfDriver] = VfDriver, **config: bool
) -> FaultyDevice:
    return FaultyDevice(function_class, driver_class, DriverConfig(buffers=CONFORMANCE_BUFFERS, **config))


def never_dirties() -> FaultyDevice:
    return _device(dirty_completions=False, dirty_on_pause=False)


def dirties_before_stopping() -> FaultyDevice:
    return _device(driver_class=DirtiesBeforeStopping)


def acknowledges_before_quiescing() -> FaultyDevice:
    return _device(driver_class=AcknowledgesBeforeQuiescing)


def forgets_the_ring() -> FaultyDevice:
    return _device(driver_class=ForgetsTheRing)


def enables_before_ready() -> FaultyDevice:
    return _device(driver_class=EnablesBeforeReady)


def opens_during_dirty_request() -> FaultyDevice:
    return _device(driver_class=OpensDuringDirtyRequest)


def never_reads_the_flags() -> FaultyDevice:
    return _device(driver_class=NeverReadsTheFlags)


def reinitialises_before_clearing() -> FaultyDevice:
    return _device(driver_class=ReinitialisesBeforeClearing)


def trusts_old_state() -> FaultyDevice:
    return _device(driver_class=TrustsOldState)


def resumes_without_restarting() -> FaultyDevice:
    return _device(driver_class=ResumesWithoutRestarting)


def unbinds_silently() -> FaultyDevice:
    return _device(driver_class=UnbindsSilently)


def unbinds_running() -> FaultyDevice:
    return _device(driver_class=UnbindsRunning)


def unbinds_without_dirtying() -> FaultyDevice:
    return _device(driver_class=UnbindsWithoutDirtying)


def never_answers_pause() -> FaultyDevice:
    return _device(driver_class=NeverAnswersPause)


def touches_while_down() -> FaultyDevice:
    return _device(driver_class=TouchesWhileDown)


def restarts_while_paused() -> FaultyDevice:
    return _device(driver_class=RestartsWhilePaused)


def reports_ready_at_open() -> FaultyDevice:
    return _device(driver_class=ReportsReadyAtOpen)


def dirties_with_load_and_store() -> FaultyDevice:
    return _device(driver_class=DirtiesWithLoadAndStore)


def pauses_as_if_down() -> FaultyDevice:
    return _device(driver_class=PausesAsIfDown)


def waits_for_open() -> FaultyDevice:
    return _device(driver_class=WaitsForOpen)


def reopens_from_old_state() -> FaultyDevice:
    return _device(driver_class=ReopensFromOldState)


def ignores_reset_after_ready() -> FaultyDevice:
    return _device(driver_class=IgnoresResetAfterReady)


def clears_reset_and_carries_on() -> FaultyDevice:
    return _device(driver_class=ClearsResetAndCarriesOn)


def remembers_dirtied_pages() -> FaultyDevice:
    return _device(driver_class=RemembersDirtiedPages)


def receives_through_reset() -> FaultyDevice:
    return _device(function_class=ReceivesThroughReset)


def slow_to_reset() -> FaultyDevice:
    return _device(function_class=SlowToReset)


def raises_on_pause() -> FaultyDevice:
    return _device(driver_class=RaisesOnPause)


def hangs_on_pause() -> FaultyDevice:
    return _device(driver_class=HangsOnPause)


def ignores_bus_master() -> FaultyDevice:
    return _device(function_class=IgnoresBusMaster)


def interrupts_when_masked() -> FaultyDevice:
    return _device(function_class=InterruptsWhenMasked)


def keeps_state_across_reset() -> FaultyDevice:
    return _device(function_class=KeepsStateAcrossReset)


def writes_past_its_buffers() -> FaultyDevice:
    return _device(function_class=WritesPastItsBuffers)


def never_drains() -> FaultyDevice:
    return _device(function_class=NeverDrains)


def _entry(name: str, breaks: str, description: str, verdict: Verdict = Verdict.FAIL) -> Fault:
    return Fault(
        name=name,
        target=Target.DEVICE,
        factory=f"{_MODULE}:{name.replace('-', '_')}",
        breaks=breaks,
        description=description,
        verdict=verdict,
    )


CATALOGUE: list[Fault] = [
    _entry("never-dirties", "VFM-DIRTY-004", "The driver never dirties what its function writes by DMA."),
    _entry("dirties-before-stopping", "VFM-DIRTY-004", "The pause dirties first and stops DMA after."),
    _entry("acknowledges-before-quiescing", "VFM-DIRTY-004", "PAUSED is reported with Bus Master Enable set."),
    _entry("forgets-the-ring", "VFM-DIRTY-004", "The descriptor ring the function writes back into is never dirtied."),
    _entry("enables-before-ready", "VFM-DEV-007", "At probe, BME is set before the READY report."),
    _entry("opens-during-dirty-request", "VFM-DOWN-004", "The function is started while DIRTY_REQ is pending."),
    _entry("never-reads-the-flags", "VFM-FLAG-003", "The interface comes up without DEV_STATUS being read."),
    _entry("reinitialises-before-clearing", "VFM-FLAG-005", "MIGRATED/RESET are cleared after reprogramming."),
    _entry("trusts-old-state", "VFM-DEV-009", "REINIT_REQ is answered without reprogramming the fresh function."),
    _entry("resumes-without-restarting", "VFM-CANCEL-003", "RESUME_REQ is answered with the function still stopped."),
    _entry("unbinds-silently", "VFM-ABS-001", "Unbinding writes no NONE report."),
    _entry("unbinds-running", "VFM-ABS-002", "NONE is written before Bus Master Enable is cleared."),
    _entry("unbinds-without-dirtying", "VFM-ABS-003", "Unbinding during a migration dirties nothing."),
    _entry("never-answers-pause", "VFM-TMO-006", "PAUSE_REQ is never acknowledged."),
    _entry(
        "touches-while-down", "VFM-DOWN-003", "REINIT_REQ is answered by enabling a function whose interface is down."
    ),
    _entry("restarts-while-paused", "VFM-DEV-008", "Bus Master Enable is set again while the slot is PAUSED."),
    _entry("reports-ready-at-open", "VFM-DEV-005", "READY is written at every open, whatever DEV_STATE says."),
    _entry(
        "dirties-with-load-and-store",
        "VFM-DIRTY-002",
        "Dirtying stores back a value loaded earlier, over DMA data that landed in between.",
    ),
    _entry("pauses-as-if-down", "VFM-DOWN-001", "PAUSE_REQ is answered at once for a running function when down."),
    _entry("waits-for-open", "VFM-DOWN-002", "While the interface is down, requests wait for it to be opened."),
    _entry(
        "reopens-from-old-state",
        "VFM-FLAG-004",
        "At open it clears MIGRATED/RESET but re-enables the rings it programmed before.",
    ),
    _entry("ignores-reset-after-ready", "VFM-ERR-007", "DEV_STATUS.RESET is never read after a READY report."),
    _entry(
        "clears-reset-and-carries-on",
        "VFM-ERR-007",
        "RESET read set after a READY report is cleared, and the function is not reinitialised.",
    ),
    _entry(
        "remembers-dirtied-pages",
        "VFM-REP-003",
        "Pages the driver dirtied in an earlier migration are never dirtied again.",
    ),
    _entry("receives-through-reset", "VFM-ERR-006", "After a reset the function still DMAs into the old buffers."),
    _entry("slow-to-reset", "VFM-FN-007", "A function-level reset takes 150 ms; config reads return all ones."),
    _entry("raises-on-pause", "VFM-TMO-006", "The pause callback raises an exception.", Verdict.ERROR),
    _entry("hangs-on-pause", "VFM-TMO-006", "The pause callback never returns.", Verdict.TIMEOUT),
    _entry("ignores-bus-master", "VFM-FN-001", "The function writes guest memory with Bus Master Enable clear."),
    _entry("interrupts-when-masked", "VFM-FN-005", "The function signals MSI-X with the Function Mask set."),
    _entry("keeps-state-across-reset", "VFM-FN-006", "A function-level reset leaves BME and the queues in place."),
    _entry("writes-past-its-buffers", "VFM-FN-004", "The function writes a page its driver never gave it."),
    _entry("never-drains", "VFM-FN-003", "Transactions Pending never clears after BME is cleared."),
]
"""The faulty ``device`` implementations and the requirement each breaks."""
