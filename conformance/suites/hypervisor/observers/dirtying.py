"""DMA and dirtying: the pages sent to the destination, the reads of the dirty log, the memory a function's
DMA reaches, and whether the destination ends up with every page the guest wrote.
"""

from __future__ import annotations

import numpy as np

from conformance.suites.hypervisor.observers.watched import WatchedFunction, WatchedLog
from conformance.suites.hypervisor.settings import MIGRATION
from conformance.suites.hypervisor.watch import Watch, in_ms
from conformance.suites.hypervisor.world import HypervisorWorld
from reference_impl.bridge import MigrationBridge
from reference_impl.clock import NS_PER_S
from reference_impl.device import VirtualFunction
from reference_impl.memory import GuestMemory, Pages
from vfmig_proto.states import MigState


class DirtyingObserver(HypervisorWorld):
    """Checks of the pages sent and dirtied, of the memory kept and of the memory a function's DMA reaches."""

    def on_receive(self, memory: GuestMemory, pages: int, which: Pages | slice | None = None) -> None:
        watch = self.pending or self.current
        if watch is None or (watch.started and not watch.in_progress) or pages == 0:
            return
        if which is not None and watch.memory is not None and memory is not watch.memory:
            log = watch.memory.log
            if isinstance(log, WatchedLog) and log.unsent is not None:
                log.unsent[which] = False
            if watch.resent is not None:
                watch.resent[which] = True
        watch.dest_memory = memory
        precopy = watch.phases.get(MigState.PRECOPY)
        if watch.bridge is not None and watch.bridge.mig_state is MigState.PAUSING:
            watch.sent_in_pausing += pages
        self.checks.record(
            "VFM-DIRTY-006",
            precopy is not None,
            lambda: (
                f"migration {watch.number}: {pages} pages sent to the destination at {in_ms(self.clock.now)}, "
                + (
                    f"in {watch.bridge.mig_state.name}, before the bridge entered PRECOPY"
                    if watch.bridge is not None
                    else "before START"
                )
            ),
        )

    def on_harvest(self, memory: GuestMemory) -> None:
        """The hypervisor reads the dirty log; in STOPPED, its last read is the one VFM-MIG-012 checks BME before."""
        watch = self.in_progress()
        if watch is None or watch.bridge is None or memory is not watch.memory or self.world.guest.running:
            return
        if watch.bridge.mig_state is MigState.STOPPED and not self.handed_over(watch):
            watch.final_read_bme = any(
                isinstance(function, VirtualFunction) and function.bus_master for function in watch.bridge.functions
            )

    def before_request_pause(self, bridge: MigrationBridge) -> None:
        watch = self.watch_of(bridge)
        precopy = None if watch is None else watch.phases.get(MigState.PRECOPY)
        if watch is None or precopy is None or self.clock.now >= precopy + MIGRATION.precopy_limit_ns:
            return
        memory = watch.memory
        assert memory is not None
        left = memory.log.count * memory.page_size
        budget = MIGRATION.bandwidth * MIGRATION.downtime_limit_ns / NS_PER_S
        self.checks.record(
            "VFM-TIME-002",
            left <= budget,
            lambda: (
                f"migration {watch.number}: REQUEST_PAUSE at {in_ms(self.clock.now)}, before P, with "
                f"{memory.log.count} dirty pages ({left} bytes) left, more than R x L = {budget:.0f} bytes"
            ),
        )

    def _check_sent_in_pausing(self, watch: Watch, now: int) -> None:
        """VFM-TIME-003: while PAUSING lasts, what the dirty log held goes on being sent (a batch per quantum)."""
        start = watch.phases.get(MigState.PAUSING)
        if start is None or watch.dirty_at_pause == 0 or now - start < 3 * MIGRATION.quantum_ns:
            return
        self.checks.record(
            "VFM-TIME-003",
            watch.sent_in_pausing > 0,
            f"migration {watch.number}: PAUSING lasted from {in_ms(start)} to {in_ms(now)} and the dirty log held "
            f"{watch.dirty_at_pause} pages at its start, but no page was sent meanwhile",
        )

    def _check_no_lost_write(self, watch: Watch, copy: GuestMemory, when: str) -> None:
        """VFM-FLOW-001, no lost write: the destination's copy equals the source's final contents."""
        if watch.lost_checked or watch.rogue or watch.memory is None:
            return  # (with a rogue BME the guest wrote pages nobody could dirty: not the hypervisor's doing)
        watch.lost_checked = True
        lost = copy.differing_pages(watch.memory)
        self.checks.record(
            "VFM-FLOW-001",
            lost == 0,
            f"migration {watch.number}: {when} ({in_ms(self.clock.now)}), {lost} of the guest's pages on "
            f"{watch.destination.name} differed from the source's final contents",
        )

    def _check_nothing_left_out(self, watch: Watch) -> None:
        """At the handover point: every page the log marked was sent since; the destination had the state."""
        at = in_ms(watch.handover_ns or 0)
        if watch.intercepted:
            self.checks.record(
                "VFM-SEC-005",
                watch.state_arrived_ns is not None and not watch.crash,
                f"migration {watch.number}: the source reached the handover point at {at} although the destination "
                + ("crashed" if watch.crash else "never received the final state")
                + ": nothing but the guest's own reports can have told it the migration completed",
            )
        memory = watch.memory
        log = None if memory is None else memory.log
        if isinstance(log, WatchedLog) and log.unsent is not None:
            unsent = log.unsent
            log.unsent = None
            if not watch.rogue:  # (the vCPUs ran in STOPPED: the pages they dirtied are VFM-MIG-003's to judge)
                left = np.flatnonzero(unsent)
                self.checks.record(
                    "VFM-SEC-004",
                    left.size == 0,
                    lambda: (
                        f"migration {watch.number}: at the handover point ({at}) {left.size} pages the dirty log had "
                        f"marked (e.g. {left[:8].tolist()}) were never sent after they were marked; the guest wrote "
                        "the bridge's config space during the migration (its reports, and any value it likes)"
                    ),
                )
        if watch.resent is not None:
            missing = np.flatnonzero(~watch.resent)
            self.checks.record(
                "VFM-DIRTY-008",
                missing.size == 0,
                lambda: (
                    f"migration {watch.number}: the dirty log {watch.lost_how} at {in_ms(watch.lost_at or 0)} and the "
                    f"migration completed at {at} without {missing.size} pages (e.g. {missing[:8].tolist()}) being "
                    "sent again: neither every page treated as dirty nor a CANCEL with CANCELLED"
                ),
            )

    def _check_memory_kept(self, watch: Watch, bridge: MigrationBridge, memory: GuestMemory) -> None:
        source = watch.source
        try:
            held = source.memory
        except RuntimeError:
            held = None
        self.checks.record(
            "VFM-CANCEL-005",
            held is memory,
            lambda: f"migration {watch.number}: {source.name} released the guest's memory at {in_ms(self.clock.now)}",
        )
        for slot, function in enumerate(bridge.functions):
            if isinstance(function, WatchedFunction):
                mapped = function.memory is memory
                self.checks.record(
                    "VFM-CANCEL-005",
                    mapped,
                    ""
                    if mapped
                    else f"migration {watch.number}: slot {slot}'s function lost its IOMMU mapping of the guest's "
                    f"memory at {in_ms(self.clock.now)}, before the end",
                )

    def function_dma(self, function: WatchedFunction) -> None:
        """VFM-SEC-007: a function's DMA lands in the memory of the guest it is assigned to, nowhere else."""
        if function.memory is not self._guest_memory():
            self._check_confined(function, "wrote by DMA")

    def _check_confined(self, function: WatchedFunction, what: str) -> None:
        """VFM-SEC-007: a function that can DMA reaches the memory of the guest where it runs, and only that."""
        guest = self._guest_memory()
        holder = next(
            (
                host
                for host in (*self.world.hosts, self.far)
                if host is not None
                and host.bridge_or_none is not None
                and any(function is placed for placed in host.bridge.functions)
            ),
            None,
        )
        if holder is None:
            return  # (behind no bridge: unassigned, or VFM-DISC-002's to judge at START)
        if holder.guest is self.world.guest:
            allowed = guest
            whose = "the guest's memory"
        else:
            incoming = getattr(holder, "incoming", None)
            allowed = getattr(incoming, "memory", None)  # (a destination's copy, before the guest arrives)
            whose = f"{holder.name}'s copy of the guest's memory"
        mapped = function.memory
        self.checks.record(
            "VFM-SEC-007",
            mapped is not None and mapped is allowed,
            lambda: (
                f"{function.name}, behind {holder.name}'s bridge, {what} at {in_ms(self.clock.now)} with its DMA "
                + ("reaching no memory" if mapped is None else "reaching memory that is not " + whose)
                + (" (the memory of another host's copy of the guest)" if mapped is not None else "")
            ),
        )
