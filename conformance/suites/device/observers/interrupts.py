"""Interrupts: an MSI-X message only with BME set (VFM-FN-001), MSI-X enabled and unmasked (VFM-FN-005), and
none after the driver reported PAUSED (VFM-DIRTY-004)."""

from __future__ import annotations

from conformance.observe import FunctionProxy
from conformance.suites.device.world import DeviceWorld
from vfmig_proto.pci import PCI_CAP_ID_MSIX, PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_MASKALL
from vfmig_proto.states import DevState


class InterruptObserver(DeviceWorld):
    """Judges every MSI-X message a function sends."""

    def on_interrupt(self, function: FunctionProxy) -> None:
        if self.sim is None:
            return  # the world is still being built (the guest boots)
        slot = self.slot_of(function)
        self.checks.record("VFM-FN-001", function.bus_master, f"{function.name} sent an MSI-X message with BME clear")
        capability = function.capability(PCI_CAP_ID_MSIX)
        if capability is not None:
            flags = function.config_read(capability + PCI_MSIX_FLAGS, 2)
            self.checks.record(
                "VFM-FN-005",
                bool(flags & PCI_MSIX_FLAGS_ENABLE) and not flags & PCI_MSIX_FLAGS_MASKALL,
                f"{function.name} sent an MSI-X message while MSI-X is disabled or masked",
            )
        if slot is not None:
            self.checks.record(
                "VFM-DIRTY-004",
                self.dev_state(slot) is not DevState.PAUSED,
                f"slot {slot}'s function interrupted after its driver reported PAUSED",
            )
