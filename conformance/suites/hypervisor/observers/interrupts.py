"""Interrupts and accesses to functions: interrupts of a function injected into the guest without the
function's signal, and the hypervisor's own accesses to a function during a migration or before the guest
took a fresh one back.
"""

from __future__ import annotations

from conformance.suites.hypervisor.observers.watched import WatchedFunction
from conformance.suites.hypervisor.watch import in_ms
from conformance.suites.hypervisor.world import HypervisorWorld


class InterruptObserver(HypervisorWorld):
    """Checks of the interrupts the hypervisor injects and of its accesses to functions."""

    def on_device_interrupt(self, name: str) -> None:
        """An interrupt of a function reaches the guest: the function's own MSI-X message, or the hypervisor's."""
        function = self.functions.get(name)
        if function is None:
            return
        signalled = function.signals > 0
        function.signals -= 1 if signalled else 0
        now = self.clock.now
        arrival = function.arrival
        if (
            arrival is not None
            and arrival is self.current
            and arrival.arrived_ns is not None
            and not function.slot_ready
        ):
            function.unsignalled += 0 if signalled else 1
            self.checks.record(
                "VFM-MIG-013",
                signalled,
                f"migration {arrival.number}: the hypervisor injected an interrupt of {function.name}, placed for "
                f"ARRIVE ({in_ms(arrival.arrived_ns)}), at {in_ms(now)}, before the guest wrote READY for its slot and "
                "without the function signalling it",
            )
        watch = self.in_progress()
        behind = (
            watch is not None
            and watch.bridge is not None
            and not self.handed_over(watch)
            and any(function is placed for placed in watch.bridge.functions)
        )
        if watch is not None and (behind or (arrival is watch and not function.slot_ready)):
            watch.unsignalled += 0 if signalled else 1
            self.checks.record(
                "VFM-NOTIF-005",
                signalled,
                f"migration {watch.number}: the hypervisor injected an interrupt of {function.name} at {in_ms(now)}, "
                "during the migration, that the function never signalled",
            )

    def function_access(self, function: WatchedFunction, what: str, *, mailbox: bool = False) -> None:
        """VFM-MIG-005: nobody but the guest touches a fresh function after ARRIVE, before its READY.

        VFM-NOTIF-005: during a migration the hypervisor writes nothing to a function behind the source's bridge
        (no device-specific mailbox); resets are judged elsewhere (VFM-CANCEL-002, VFM-SEC-006).
        """
        if self.resetting is not None:
            return  # (the conventional reset of the bridge the suite asked for resets what is behind it)
        if mailbox and self.guest_depth == 0:
            self._check_no_mailbox(function, what)
        watch = function.arrival
        if watch is None or watch is not self.current or function.slot_ready or self.guest_depth > 0:
            return
        if watch.arrived_ns is None:
            return
        self._violation(
            "VFM-MIG-005",
            watch,
            f"the hypervisor made {what} to {function.name} at {in_ms(self.clock.now)}, "
            f"after ARRIVE ({in_ms(watch.arrived_ns)}) and before the guest wrote READY for its slot",
        )

    def function_written(self, function: WatchedFunction) -> None:
        """Before ARRIVE the destination may reset and restore a fresh function, never enable it."""
        watch = function.arrival
        if watch is None or watch is not self.current or function.slot_ready or self.guest_depth > 0:
            return
        if watch.arrived_ns is not None:
            return
        self.checks.record(
            "VFM-MIG-005",
            not function.bus_master and not function.msix_enabled,
            f"migration {watch.number}: the destination left {function.name}, placed for ARRIVE, with BME "
            f"{int(function.bus_master)} and MSI-X enabled and unmasked {int(function.msix_enabled)} at "
            f"{in_ms(self.clock.now)}",
        )

    def _check_no_mailbox(self, function: WatchedFunction, what: str) -> None:
        watch = self.in_progress()
        if watch is None or watch.bridge is None or self.handed_over(watch):
            return
        if any(function is placed for placed in watch.bridge.functions):
            self._violation(
                "VFM-NOTIF-005",
                watch,
                f"the hypervisor made {what} to {function.name}, behind the source's "
                f"bridge, at {in_ms(self.clock.now)} during {watch.bridge.mig_state.name}: the guest learns of a "
                "migration through its bridge, never through a function",
            )
