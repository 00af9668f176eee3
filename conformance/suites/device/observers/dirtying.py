"""DMA and dirtying, page by page: who wrote which guest page, and whether its driver dirtied it in time.

A DMA write is attributed to the slot whose driver took the page (VFM-FN-004);
from a slot's DIRTYING acknowledgement to the end of the migration, every page
its function writes is owed a dirtying before PAUSED (VFM-DIRTY-003,
VFM-DIRTY-004), before the driver unbinds (VFM-ABS-003), even if the driver
dirtied it in an earlier migration (VFM-REP-003); and a dirtying write never
puts older content back (VFM-DIRTY-002).
"""

from __future__ import annotations

from hypothesis.stateful import invariant

from conformance.checks import step
from conformance.observe import ObservedMemory
from conformance.suites.device.world import DeviceWorld, SlotWatch
from reference_impl.device import POSTED_WRITE_GRACE_NS
from reference_impl.events import EventBus
from reference_impl.hypervisor import MigrationOutcome
from reference_impl.memory import Pages
from vfmig_proto.states import DevState


class DirtyingObserver(DeviceWorld):
    """Watches every DMA write, CPU write and dirtying of guest memory (through the :class:`Ledger`)."""

    def observe(self, bus: EventBus) -> None:
        super().observe(bus)
        self.ledger.dma_listeners.append(self.on_dma)
        self.ledger.dirty_listeners.append(self.on_dirty)
        self.ledger.dirtying_listeners.append(self.on_dirtying)

    def on_dma(self, pages: Pages) -> None:
        allocator = self.allocator
        if allocator is None or pages.size == 0:
            return
        owners = allocator.owner[pages]
        self.checks.record(
            "VFM-FN-004",
            bool((owners >= 0).all()),
            lambda: f"DMA write to guest pages {sorted(set(pages[owners < 0].tolist()))} that no driver gave out",
        )
        for slot in set(owners[owners >= 0].tolist()):
            self._dma_by(int(slot), pages[owners == slot])

    def _dma_by(self, slot: int, pages: Pages) -> None:
        host = self.functions_host()
        if host is None:
            return
        function = host.slot_functions.get(slot)
        bme = function is not None and function.bus_master
        cleared = self.watch[slot].bme_cleared_ns
        in_flight = cleared is not None and self.world.clock.now - cleared <= POSTED_WRITE_GRACE_NS
        self.checks.record(
            "VFM-FN-001", bme or in_flight, f"slot {slot}'s function wrote guest memory with BME clear (not in flight)"
        )
        state = self.dev_state(slot)
        self.checks.record(
            "VFM-DIRTY-004",
            state is not DevState.PAUSED,
            f"slot {slot}'s function wrote guest memory by DMA after its driver reported PAUSED",
        )
        watch = self.watch[slot]
        if watch.window:
            watch.undirtied.update(int(page) for page in pages)

    def on_dirty(self, pages: Pages) -> None:
        self._dirtied_by(pages)
        touched = set(pages.tolist())
        now = self.world.clock.now
        for slot, watch in self.watch.items():
            if watch.undirtied:
                watch.undirtied -= touched
            watch.last_dirty_ns = now
            if self.dev_state(slot) is DevState.PAUSE_REQ:
                function = self._function(slot)
                if function is not None and function.bus_master:
                    watch.early_pass = True

    def _dirtied_by(self, pages: Pages) -> None:
        """Which slot's driver dirtied which of its pages (VFM-DOWN-001, VFM-REP-003)."""
        allocator = self.allocator
        if allocator is None or pages.size == 0:
            return
        owners = allocator.owner[pages]
        for slot in set(owners[owners >= 0].tolist()):
            watch = self.watch.get(int(slot))
            if watch is not None:
                watch.dirtied_since_request = True
                if watch.window:
                    watch.dirtied_window.update(pages[owners == slot].tolist())

    def on_dirtying(self, memory: ObservedMemory, pages: Pages) -> None:
        """A dirtying write leaves every byte as it was, DMA data included (VFM-DIRTY-002)."""
        if pages.size == 0:
            return
        stale = memory.stale_pages(pages)
        self.checks.record(
            "VFM-DIRTY-002",
            stale.size == 0,
            lambda: (
                f"after a dirtying write, guest pages {sorted(set(stale.tolist()))} hold older content than the "
                "function's last DMA write to them: the dirtying stored back a value read before that write"
            ),
        )

    def _open_window(self, watch: SlotWatch) -> None:
        """Dirtying is owed from now on; what the driver dirtied in an earlier migration is kept apart."""
        number = len(self.records)
        if watch.window_migration != number:
            watch.dirtied_earlier |= watch.dirtied_window
            watch.dirtied_window = set()
            watch.window_migration = number
        watch.window = True

    def _close_window(self, watch: SlotWatch) -> None:
        """Dirtying is no longer owed: the migration ended for the slot, or it has no driver."""
        watch.window = False
        watch.undirtied.clear()

    def _paused(self, slot: int, watch: SlotWatch) -> None:
        function = self._function(slot)
        cleared, dirtied = watch.bme_cleared_ns, watch.last_dirty_ns
        late_pass = cleared is not None and dirtied is not None and dirtied >= cleared
        early = watch.running_at_pause and watch.early_pass and not late_pass
        # Pages left undirtied by a pass that ran before BME was cleared break VFM-DIRTY-003; otherwise -004.
        self.checks.record(
            "VFM-DIRTY-003",
            not (early and watch.undirtied),
            lambda: (
                f"slot {slot}: the dirtying pass ran before BME was cleared; DMA then wrote {sorted(watch.undirtied)}"
            ),
        )
        self.checks.record(
            "VFM-DIRTY-004",
            early or not watch.undirtied,
            lambda: f"slot {slot}: PAUSED with pages written by DMA and not dirtied: {sorted(watch.undirtied)}",
        )
        self.checks.record(
            "VFM-FN-001", function is None or not function.bus_master, f"slot {slot}: PAUSED with BME set"
        )
        if watch.dirtied_earlier:
            self.checks.record(
                "VFM-REP-003",
                early or not watch.undirtied & watch.dirtied_earlier,
                lambda: (
                    f"slot {slot}: PAUSED with pages written by DMA in this migration and not dirtied, each dirtied "
                    f"in an earlier migration: {sorted(watch.undirtied & watch.dirtied_earlier)}"
                ),
            )

    def _unbound(self, slot: int, watch: SlotWatch) -> None:
        function = self._function(slot)
        self.checks.record(
            "VFM-ABS-002", function is None or not function.bus_master, f"slot {slot}: NONE with BME set"
        )
        if watch.window:
            self.checks.record(
                "VFM-ABS-003",
                not watch.undirtied,
                lambda: f"slot {slot}: unbound with pages written by DMA and not dirtied: {sorted(watch.undirtied)}",
            )
            if watch.dirtied_earlier:
                self.checks.record(
                    "VFM-REP-003",
                    not watch.undirtied & watch.dirtied_earlier,
                    lambda: (
                        f"slot {slot}: unbound with pages written by DMA in this migration and not dirtied, each "
                        f"dirtied in an earlier migration: {sorted(watch.undirtied & watch.dirtied_earlier)}"
                    ),
                )
        self._close_window(watch)

    @invariant()
    @step("VFM-DIRTY-002")
    def dma_data_kept(self) -> None:
        """No page holds older content than the last DMA write to it left (VFM-DIRTY-002)."""
        if self.sim is None:
            return
        memory = self.world.guest.memory
        if isinstance(memory, ObservedMemory):
            stale = memory.stale_pages()
            self.checks.that(
                "VFM-DIRTY-002",
                stale.size == 0,
                lambda: (
                    f"guest pages {stale.tolist()} hold older content than the last DMA write to them left: a write "
                    "stored back a value read before the DMA (a dirtying write that is not an atomic no-op)"
                ),
            )

    @invariant()
    @step("VFM-DIRTY-001")
    def no_lost_write(self) -> None:
        for record in self.records:
            if record.outcome is MigrationOutcome.COMPLETED:
                self.checks.that(
                    "VFM-DIRTY-001",
                    record.lost_pages == 0,
                    f"migration {record.number} lost {record.lost_pages} pages written by DMA and never dirtied",
                )
