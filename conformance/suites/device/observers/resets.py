"""Resets: a function-level reset forgets what was set up before it (VFM-ERR-006) and completes within 100 ms
(VFM-FN-007); a group reset leaves every function with BME clear and in its reset state (VFM-FN-006)."""

from __future__ import annotations

from conformance.observe import FunctionProxy
from conformance.suites.device.world import PAGE, DeviceWorld
from reference_impl.clock import ms
from reference_impl.hypervisor import Hypervisor
from vfmig_proto.pci import PCI_COMMAND, PCI_COMMAND_MASTER, PCI_VENDOR_ID

FLR_LIMIT_NS = ms(100)
"""VFM-FN-007: a function-level reset completes within 100 ms; config requests then complete normally."""


class ResetObserver(DeviceWorld):
    """Judges each function-level reset as it is initiated and 100 ms on, and each function after a group reset."""

    def on_reset(self, function: FunctionProxy) -> None:
        """A reset: nothing set up before it runs (VFM-ERR-006); 100 ms on, config requests work (VFM-FN-007)."""
        if self.sim is None:
            return  # the world is still being built (the guest boots)
        clock = self.world.clock
        started = clock.now
        self.reset_started[function] = started
        # Right after the reset, before anyone set the function up again, a frame finds no buffer (VFM-ERR-006).
        self.checks.record(
            "VFM-ERR-006",
            function.receive(PAGE) == 0,
            f"{function.name}: right after a reset, a frame that arrived was written by DMA into a buffer "
            "posted before the reset",
        )

        def completed() -> None:
            if self.reset_started.get(function) != started:
                return  # reset again since: that reset has its own 100 ms
            identity = function.identity
            expected = identity.vendor_id | identity.device_id << 16
            try:
                answer = f"0x{function.config_read(PCI_VENDOR_ID, 4):08x}"
            except Exception as error:  # a config request that fails is what this checks
                answer = f"{type(error).__name__}: {error}"
            self.checks.record(
                "VFM-FN-007",
                answer == f"0x{expected:08x}",
                f"{function.name}: 100 ms after a function-level reset was initiated, a config read of the "
                f"Vendor and Device ID registers gave {answer}, not 0x{expected:08x}",
            )

        clock.schedule(FLR_LIMIT_NS, completed, "FN-007 reset completion check")

    def _check_reset_functions(self, host: Hypervisor) -> None:
        """Right after the reset, before any driver had a chance to act (VFM-FN-006)."""
        for slot, function in host.slot_functions.items():
            command = function.config_read(PCI_COMMAND, 2)
            self.checks.record(
                "VFM-FN-006", not command & PCI_COMMAND_MASTER, f"slot {slot}: BME still set after a group reset"
            )
            self.checks.record(
                "VFM-FN-006", function.in_reset_state, f"slot {slot}: the function kept state across a group reset"
            )
