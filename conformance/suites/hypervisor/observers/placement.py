"""Placement and resets: where the functions sit (behind the bridge, at their slot's DEV_DEVFN), what the
destination placed for ARRIVE, and resets and hot-plug that no rule calls for.
"""

from __future__ import annotations

from hypothesis.stateful import invariant, precondition

from conformance.checks import step
from conformance.suites.hypervisor.observers.timing import TimingObserver
from conformance.suites.hypervisor.observers.watched import WatchedFunction
from conformance.suites.hypervisor.settings import BAR_OFFSETS, IN_PROGRESS
from conformance.suites.hypervisor.watch import Watch, in_ms
from conformance.suites.hypervisor.world import built_and_alive
from reference_impl.bridge import MigrationBridge
from reference_impl.hypervisor import Hypervisor
from reference_impl.memory import GuestMemory
from vfmig_proto.states import DevState, MigReason, MigState


class PlacementObserver(TimingObserver):
    """Checks of where functions are placed and of the resets and hot-plug the hypervisor does."""

    def on_function_created(self, function: WatchedFunction) -> None:
        self.functions[function.name] = function
        watch = self.pending or self.current
        fresh = watch is not None and (watch is self.pending or watch.in_progress)
        if fresh and watch is not None and not function.name.startswith(f"{watch.source.name}."):
            function.arrival = watch

    def _check_start_placement(self, watch: Watch, bridge: MigrationBridge, memory: GuestMemory) -> None:
        """VFM-DISC-002 and VFM-DIRTY-007 at START: one bridge for every assigned function, pages tracked whole."""
        now = self.clock.now
        behind = [function for function in bridge.functions if function is not None]
        # A function is assigned to the guest when the IOMMU maps the guest's memory for its DMA.
        beside = sorted(
            function.name
            for function in self.functions.values()
            if function.memory is memory and not any(function is placed for placed in behind)
        )
        self.checks.record(
            "VFM-DISC-002",
            not beside,
            lambda: (
                f"migration {watch.number}: START at {in_ms(now)} on {bridge.name} although the guest's memory is "
                f"mapped for the DMA of {', '.join(beside)}, which does not sit behind that bridge"
            ),
        )
        shift = bridge.field("page_shift")
        self.checks.record(
            "VFM-DIRTY-007",
            memory.page_shift >= shift,
            f"migration {watch.number}: START at {in_ms(now)} with the dirty log of the guest's memory tracking pages "
            f"of 2^{memory.page_shift} bytes, finer than the bridge's PAGE_SHIFT {shift}",
        )

    def _check_placed(self, watch: Watch, bridge: MigrationBridge, slot: int) -> None:
        function = bridge.functions[slot]
        where = f"migration {watch.number}: at ARRIVE ({in_ms(self.clock.now)}) slot {slot}"
        self.checks.record("VFM-MIG-004", function is not None, f"{where} holds no function")
        if not isinstance(function, WatchedFunction):
            return
        source = watch.stopped_functions.get(slot)
        fresh = function is not source and function.resets > 0 and function.in_reset_state
        self.checks.record(
            "VFM-MIG-004",
            fresh and not function.bus_master,
            f"{where}: {function.name} is not a fresh function after a Function Level Reset with BME clear "
            f"(resets {function.resets}, in reset {function.in_reset_state}, BME {int(function.bus_master)})",
        )
        if source is not None:
            self.checks.record(
                "VFM-MIG-004",
                function.identity == source.identity,
                f"{where}: {function.name} is {function.identity}, the source's function was {source.identity}",
            )
            bars = tuple(function.config_read(offset, 4) for offset in BAR_OFFSETS)
            expected = watch.stopped_bars.get(slot, bars)
            self.checks.record(
                "VFM-FLOW-002",
                bars == expected,
                f"{where}: BARs {[hex(bar) for bar in bars]}, the source's were {[hex(bar) for bar in expected]}",
            )
        self.checks.record(
            "VFM-FLOW-002",
            not function.bus_master and not function.msix_enabled,
            f"{where}: {function.name} has BME {int(function.bus_master)} and MSI-X enabled and unmasked "
            f"{int(function.msix_enabled)}",
        )

    def _check_placement(self, host: Hypervisor, when: str, *, every: bool = False) -> None:
        """VFM-DISC-003: the guest finds each function at its slot's DEV_DEVFN (``every``: and at no other device)."""
        bridge = host.bridge_or_none
        if bridge is None:
            return
        devfns = {bridge.devfn(slot): slot for slot in range(bridge.num_slots)}
        for devfn, slot in devfns.items():
            function = bridge.functions[slot]
            if function is None:
                continue
            found = host.function_at(devfn)
            where = "nothing" if found is None else getattr(found, "name", repr(found))
            self.checks.record(
                "VFM-DISC-003",
                found is function,
                ""
                if found is function
                else f"{host.name} {when} ({in_ms(self.clock.now)}): slot {slot} holds "
                f"{getattr(function, 'name', '?')} and its DEV_DEVFN is 0x{devfn:02x}, but the guest finds {where} "
                "there",
            )
            if function.bus_master and isinstance(function, WatchedFunction):
                self._check_confined(function, "has Bus Master Enable set")
        if every:
            # (function 0 of every device number: where a function the hypervisor put elsewhere shows up first)
            devices = range(0, 256, 8)
            elsewhere = [devfn for devfn in devices if devfn not in devfns and host.function_at(devfn) is not None]
            self.checks.record(
                "VFM-DISC-003",
                not elsewhere,
                lambda: (
                    f"{host.name} {when} ({in_ms(self.clock.now)}): the guest finds functions at devfn "
                    f"{', '.join(hex(devfn) for devfn in elsewhere)}, which no slot's DEV_DEVFN holds"
                ),
            )

    def on_function_reset(self, function: WatchedFunction, how: str) -> None:
        """VFM-CANCEL-002: no reset of a source function during the migration but those chapter 7 calls for."""
        watch = self.in_progress()
        if self.resetting is not None:
            return  # (a conventional reset of the bridge resets whatever is behind it: VFM-CAP-008 judges it)
        if watch is None or watch.bridge is None or how != "flr" or self.guest_depth > 0 or function.failed:
            return
        if function in watch.bridge.functions and not self.handed_over(watch):
            self._violation(
                "VFM-CANCEL-002",
                watch,
                f"{function.name}, behind the source's bridge, reset by the hypervisor at "
                f"{in_ms(self.clock.now)} during {watch.bridge.mig_state.name} although it had not failed",
            )

    def function_unmapped(self, function: WatchedFunction) -> None:
        """A host took a function's DMA mapping away: the guest's memory it could reach is being freed."""
        self._check_reset_after_handover(function, "had its DMA mapping of the guest's memory taken away")

    def function_reassigned(self, function: WatchedFunction, where: str) -> None:
        """A host gives a function to a guest (again)."""
        self._check_reset_after_handover(function, f"was {where}")

    def _check_reset_after_handover(self, function: WatchedFunction, what: str) -> None:
        """VFM-SEC-006, judged at each migration: a function that was behind the source's bridge when the guest
        left is reset after the handover point before the source frees the guest's memory or reassigns it."""
        watch = next(
            (
                watch
                for watch in reversed(self.watches)
                if any(placed is function for placed in watch.stopped_functions.values()) and self.handed_over(watch)
            ),
            None,
        )
        if watch is None or watch.handover_ns is None:
            return
        handover, reset = watch.handover_ns, function.last_reset_ns
        self.checks.record(
            "VFM-SEC-006",
            reset is not None and reset >= handover,
            lambda: (
                f"migration {watch.number}: {function.name}, behind the source's bridge, {what} at "
                f"{in_ms(self.clock.now)} with no reset since the handover point at {in_ms(handover)} (last reset: "
                f"{'never' if reset is None else in_ms(reset)})"
            ),
        )

    def before_group_reset(self, bridge: MigrationBridge) -> None:
        watch = self.watch_of(bridge)
        if watch is None or not watch.in_progress:
            return
        now = self.clock.now
        state = bridge.mig_state
        error = DevState.ERROR in bridge.dev_states()
        start = watch.resuming_start
        deadline_passed = state is MigState.RESUMING and start is not None and now >= start + self.ack_ns
        justified = deadline_passed or (error and state in (MigState.IDLE, MigState.RESUMING))
        self.checks.record(
            "VFM-CANCEL-002",
            justified,
            lambda: (
                f"migration {watch.number}: a group reset by the hypervisor at {in_ms(now)} in {state.name}, which "
                "no rule calls for (no slot in ERROR"
                + (f", RESUMING deadline {in_ms(start + self.ack_ns)})" if start is not None else ")")
            ),
        )
        if deadline_passed and start is not None and not error:
            self.checks.record(
                "VFM-TIME-005",
                now <= start + self.ack_ns + self.e,
                f"migration {watch.number}: the group reset for the RESUMING deadline at {in_ms(now)}, later than "
                f"e = {in_ms(self.e)} after the deadline at {in_ms(start + self.ack_ns)}",
            )

    def before_hot_add(self, bridge: MigrationBridge, slot: int) -> None:
        watch = self.watch_of(bridge)
        if watch is not None and watch.in_progress and not self.handed_over(watch):
            self._violation(
                "VFM-CANCEL-002",
                watch,
                f"a function hot-added into slot {slot} at {in_ms(self.clock.now)}, during {bridge.mig_state.name}",
            )

    def before_conventional_reset(self, bridge: MigrationBridge) -> None:
        """VFM-CAP-008: a conventional reset takes effect only once no migration is in progress on the bridge."""
        state = bridge.mig_state
        now = self.clock.now
        self.checks.record(
            "VFM-CAP-008",
            state not in IN_PROGRESS,
            f"{bridge.name}: a conventional reset took effect at {in_ms(now)} in MIG_STATE {state.name}, with no "
            "CANCEL first",
        )
        if self.resetting is bridge and self.reset_state in IN_PROGRESS:
            reason = self.reset_cancel
            self.checks.record(
                "VFM-CAP-008",
                reason is MigReason.CANCELLED,
                f"{bridge.name}: the conventional reset asked for in {self.reset_state.name} took effect at "
                f"{in_ms(now)} after "
                + ("no CANCEL" if reason is None else f"a CANCEL with MIG_REASON {reason.name}, not CANCELLED"),
            )

    def after_conventional_reset(self, bridge: MigrationBridge) -> None:
        """The reset returned the bridge to IDLE without a transition: the migration, if any, has ended."""
        watch = self.watch_of(bridge)
        if watch is not None and watch.in_progress and not self.handed_over(watch):
            self._ended(watch, self.clock.now)

    @precondition(built_and_alive)
    @invariant()
    @step("VFM-DISC-003", "VFM-SEC-007")
    def placement(self) -> None:
        """Where the guest runs, it finds each function at its slot's DEV_DEVFN, confined to the guest's memory."""
        host = self.guest_host()
        if host is not None:
            self._check_placement(host, "after a step")
        self.checks.raise_pending()
