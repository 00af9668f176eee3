"""Field faults of the ``device`` target: the mistakes a NIC vendor makes in a VF model, its driver and its core.

Written from ``spec/`` and the reference implementation only (issue 12, item 4), not from the suite: each
class is a small variation of :class:`~reference_impl.driver.VfDriver`,
:class:`~reference_impl.device.VirtualFunction` or :class:`~reference_impl.driver.MigrationCore` that makes
one realistic mistake (an off-by-one in a page range, a byte lane, an ordering, a repeated migration, a
reset) and so breaks one requirement.  The builders are those of :mod:`conformance.catalogue.device_faults`
and :mod:`conformance.catalogue.device_core_faults`; this module is in
:data:`conformance.catalogue.PENDING_MODULES` until the suite detects every fault in it.
"""

from __future__ import annotations

from conformance.catalogue import Fault
from conformance.catalogue import device_core_faults as _core_builders  # registers the MigrationCore builder
from conformance.catalogue import device_faults as _device_builders  # registers the VfDriver/VirtualFunction builders
from conformance.catalogue.registry import fault, faults_in
from conformance.verdicts import Target
from reference_impl.device import RxQueue, VirtualFunction, buffer_pages
from reference_impl.driver import MigrationCore, VfDriver
from vfmig_proto.states import DevState, DriverReport

_BUILDERS_USED = (_core_builders, _device_builders)
"""Imported for their ``builds_by_keyword`` registrations, which the faults below resolve at decoration."""

_SLOT_ENTRY_WIDTH = 4
"""DEV_STATE, DEV_CTRL, DEV_STATUS and DEV_DEVFN: one DWORD per slot entry (spec 3.3)."""
_FEATURES_WANTED = 0xF
"""The GUEST_FEATURES bits of version 1.x that this core knows (the rest is RsvdP)."""


# ------------------------------------------------------------------------------------------------ dirtying


@fault(Target.DEVICE, breaks="VFM-DIRTY-004")
class DirtiesOneBufferPageShortAtPause(VfDriver):
    """At pause, dirties the ring and the buffers up to but not including the last buffer page (an end
    computed as ``buffer_start + buffer_count - 1`` used as an exclusive bound)."""

    def mapped_ranges(self) -> list[tuple[int, int]]:
        return [(self.ring_start, self.buffer_start + self.buffer_count - 1)]


@fault(Target.DEVICE, breaks="VFM-DIRTY-001")
class DirtiesCompletionsOnePageShort(VfDriver):
    """Dirties a completed receive's buffer pages with an inclusive end used as exclusive: a batch of one
    buffer dirties only the ring, so the guest may read the data before any dirtying (the pause repairs it)."""

    def completion_ranges(self, rx: RxQueue, completed: list[tuple[int, int]]) -> list[tuple[int, int]]:
        short = [(start, stop - 1) for start, stop in completed if stop - 1 > start]
        return [*buffer_pages(rx, short), (self.ring_start, self.buffer_start)]


@fault(Target.DEVICE, breaks="VFM-DIRTY-003")
class DirtiesWithoutTheFlushingRead(VfDriver):
    """Pauses by clearing BME and waiting for Transactions Pending, but never reads a register of the
    function before its dirtying pass: posted writes are assumed flushed by the drain wait."""

    def before_migration_pause(self) -> None:
        function = self.function
        if function is None:
            return
        self.publish_action("pause")
        function.mask_msix(True)
        function.set_bus_master(False)
        self.busy = True

        def poll() -> None:
            if function.transactions_pending:
                self.guest.after(self.config.drain_poll_ns, poll, f"{self.name} drain")
                return
            self.busy = False
            self.dirty_pages(self.mapped_ranges(), "pause")  # no register read since BME was cleared
            self.paused = True
            self.core.report(self.slot, DriverReport.PAUSED)
            self.core.sequence_done(self.slot)

        poll()


@fault(Target.DEVICE, breaks="VFM-REP-003")
class SkipsThePauseSweepItDidBefore(VfDriver):
    """Dirties every mapped page at pause only once: a flag that says the full sweep is done is cleared when
    the driver is loaded, not when a migration starts, so a later migration's pause dirties nothing."""

    swept_once = False
    """Whether the driver has made its full pause sweep (cleared only by :meth:`load`)."""

    def dirty_pages(self, ranges: list[tuple[int, int]], why: str) -> None:
        if why == "pause":
            if self.swept_once:
                return
            self.swept_once = True
        super().dirty_pages(ranges, why)

    def load(self, *, up: bool = True) -> bool:
        self.swept_once = False
        return super().load(up=up)


# ------------------------------------------------------------------------------------------------ unbind


@fault(Target.DEVICE, breaks="VFM-ABS-003")
class UnbindsWithDirtyingSwitchedOffFirst(VfDriver):
    """Unregisters from migration (dirtying mode off) as the first step of its remove path, then quiesces:
    an unbind mid-migration dirties nothing of what the function wrote."""

    def unload(self) -> None:
        if self.loaded and not self.busy:
            self.set_dirtying(False)
        super().unload()


# ------------------------------------------------------------------------------------------------ bring-up and reinit


@fault(Target.DEVICE, breaks="VFM-DEV-007")
class ProgramsTheFunctionBeforeReportingReady(VfDriver):
    """Probe configures the hardware (rings, MSI-X, BME) first and registers with the migration core last."""

    def load(self, *, up: bool = True) -> bool:
        function = self.function
        if self.loaded or function is None or self.core.cap is None:
            return False
        if self.core.dev_state(self.slot) is not DevState.UNBOUND:
            return False
        self.loaded = True
        self.up = up
        self.publish_action("bind")
        function.function_level_reset("flr")
        if up:
            self.bring_up()  # rings, MSI-X, BME: the hardware first ...
        self.core.register(self.slot, self)  # ... the migration core last
        self.core.report(self.slot, DriverReport.READY)
        self.core.look_at(self.slot)
        return True


@fault(Target.DEVICE, breaks="VFM-DEV-009")
class ReinitialisesWithTheResumePath(VfDriver):
    """Answers REINIT_REQ as it answers RESUME_REQ: sets BME, unmasks and restarts the queues it programmed
    before the migration, without programming the (reset) function again."""

    def after_migration_reinit(self) -> None:
        function = self.function
        if self.up and self.configured and function is not None:
            migrated, reset = self.core.dev_status(self.slot)
            self.core.clear_dev_status(self.slot, migrated, reset)
            self.set_dirtying(False)
            self.start_function(function)
            self.core.report(self.slot, DriverReport.READY)
            return
        super().after_migration_reinit()


@fault(Target.DEVICE, breaks="VFM-CANCEL-003")
class ReportsReadyBeforeRestartingDma(VfDriver):
    """On the bad path, acknowledges RESUME_REQ with READY first and restarts BME and the queues afterwards."""

    def bad_path_resume(self) -> None:
        function = self.function
        if not (self.configured and self.paused and function is not None):
            super().bad_path_resume()
            return
        self.set_dirtying(False)
        self.core.write_drv_state(self.slot, DriverReport.READY)
        self.publish_action("resume")
        function.set_bus_master(True)
        function.mask_msix(False)
        function.mmio_enable_queues(True)
        self.paused = False
        self.core.look_again_later(self.slot)


# ------------------------------------------------------------------------------------------------ the function


@fault(Target.DEVICE, breaks="VFM-FN-006")
class FlrKeepsTheReceiveRing(VirtualFunction):
    """A function-level reset clears the config space but keeps the receive ring's registers (base, size,
    posted count) and the queue-enable bit, as if they lived in a block the FLR does not reach."""

    def function_level_reset(self, how: str) -> None:
        rx, enabled = self.rx, self.queues_enabled
        super().function_level_reset(how)
        self.rx, self.queues_enabled = rx, enabled


# ------------------------------------------------------------------------------------------------ the migration core


@fault(Target.DEVICE, breaks="VFM-ACC-008")
class ReportsWithASlotEntryReadModifyWrite(MigrationCore):
    """Writes a report with a 4-byte read-modify-write of the whole slot entry, so the DEV_STATUS bits it
    read as 1 are written back as 1 and cleared (RW1C) though it did not mean to clear them."""

    def write_drv_state(self, slot: int, report: DriverReport) -> None:
        entry = self.register_offset(f"device[{slot}].dev_state")
        word = self.config_read(entry, _SLOT_ENTRY_WIDTH)
        word = (word & ~(0x7 << 8)) | (int(report) << 8)
        self.config_write(entry, _SLOT_ENTRY_WIDTH, word)


@fault(Target.DEVICE, breaks="VFM-FLAG-005")
class ClearsTheFlagsByWritingZero(MigrationCore):
    """Clears DEV_STATUS.MIGRATED and RESET by writing 0 to them (the bits to clear masked out of the value
    read), as for an RW register: the RW1C bits stay set."""

    def clear_dev_status(self, slot: int, migrated: bool, reset: bool) -> None:
        bits = (0x1 if migrated else 0) | (0x2 if reset else 0)
        if bits:
            offset = self.register_offset(f"device[{slot}].dev_status.migrated")
            self.config_write(offset, 1, 0)  # "clear" as for an RW register: the bits to clear written as 0


@fault(Target.DEVICE, breaks="VFM-NOTIF-006")
class ClearsTheEventAfterReadingTheStates(MigrationCore):
    """On an event interrupt, reads MIG_STATE and every DEV_STATE and acts on them first, and clears
    STATUS.EVENT last."""

    def interrupt(self) -> None:
        if self.cap is None:
            return
        self.look_at_all()
        self.clear_event()


@fault(Target.DEVICE, breaks="VFM-VER-003")
class WritesGuestFeaturesWithoutTheReservedBits(MigrationCore):
    """Writes GUEST_FEATURES as just the wanted feature bits, zeros in its RsvdP bits whatever it read there."""

    def accept_features(self, host_features: int) -> None:
        self.config_write(self.register_offset("guest_features.dma_dirty"), 4, host_features & _FEATURES_WANTED)


CATALOGUE: list[Fault] = faults_in(__name__)
