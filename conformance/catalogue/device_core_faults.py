"""Deliberately faulty migration cores: each a small variation of the reference core that breaks one rule.

The ``device`` target's implementation may bring the guest's own migration
core (``create_migration_core``, see :class:`conformance.interfaces.device.DeviceImplementation`);
these faults do, with the reference VF and driver around a subclass of the
reference :class:`~reference_impl.driver.MigrationCore` that changes one
method.  The suite must find each (``tests/test_conformance_catalogue.py``,
``tox -e detection``) through what the core does to the bridge's
configuration space (:mod:`conformance.guest_watch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.catalogue import Fault
from conformance.catalogue.registry import builds_by_keyword, fault, faults_in
from conformance.verdicts import Target
from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.factories import CONFORMANCE_BUFFERS, ReferenceDevice
from reference_impl.guest import DmaRegionAllocator, Guest
from vfmig_proto.codec import find_field
from vfmig_proto.layout import QEMU_BRIDGE_CAP_OFFSET, VFM_SIGNATURE, VFM_VERSION_MINOR
from vfmig_proto.pci import PCI_CAP_ID_VNDR
from vfmig_proto.states import DevState, DriverReport, MigState

_CONTROL_WIDTH = 2
"""CONTROL is a 16-bit register: the write the careless core makes to enable events."""
_FIXED_OFFSET = QEMU_BRIDGE_CAP_OFFSET
"""Where QEMU-based migration bridges place the capability (spec 3.1.1): what a careless core assumes."""


def _at(path: str) -> int:
    """Offset of a header register from the capability's start (the header does not depend on NUM_SLOTS)."""
    return find_field(1, path).offset


@dataclass(frozen=True)
class CoreDevice:
    """A ``device`` implementation: the reference VF and driver, with a (faulty) migration core of its own."""

    core_class: type[MigrationCore] = MigrationCore
    reference: ReferenceDevice = field(
        default_factory=lambda: ReferenceDevice(driver_config=DriverConfig(buffers=CONFORMANCE_BUFFERS))
    )

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        return self.reference.create_function(name, clock, bus, identity)

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return self.reference.create_driver(guest, core, slot, devfn, allocator)

    def create_migration_core(self, guest: Guest) -> MigrationCore:
        return self.core_class(guest)


builds_by_keyword(CoreDevice, core_class=MigrationCore)


# ---------------------------------------------------------------------------------------------- discovery


@fault(Target.DEVICE, breaks="VFM-DISC-004")
class TrustsTheCapabilityId(MigrationCore):
    """Takes the first vendor-specific capability for the migration capability, without CFG_TYPE or SIGNATURE."""

    def find_capability(self) -> int | None:
        for offset in self.capability_offsets():
            if self.config_read(offset, 1) == PCI_CAP_ID_VNDR:
                return offset
        return None


@fault(Target.DEVICE, breaks="VFM-DISC-005")
class AssumesTheUsualOffset(MigrationCore):
    """Looks for the capability at 0x64, where QEMU-based bridges put it, before (or instead of) walking the list."""

    def find_capability(self) -> int | None:
        if self.config_read(_FIXED_OFFSET + _at("signature"), 4) == VFM_SIGNATURE:
            return _FIXED_OFFSET
        return super().find_capability()


@fault(Target.DEVICE, breaks="VFM-DISC-006")
class IgnoresTheMajorVersion(MigrationCore):
    """Uses a capability whatever its VERSION_MAJOR (every other check intact)."""

    def version_supported(self, cap: int) -> bool:
        return True


@fault(Target.DEVICE, breaks="VFM-VER-001")
class RejectsANewerMinorVersion(MigrationCore):
    """Refuses a capability whose VERSION_MINOR is higher than the one it implements."""

    def version_supported(self, cap: int) -> bool:
        return self.config_read(cap + _at("version_minor"), 1) <= VFM_VERSION_MINOR and super().version_supported(cap)


@fault(Target.DEVICE, breaks="VFM-VER-002")
class RejectsUnknownFeatures(MigrationCore):
    """Refuses a bridge that offers feature bits it does not know (HOST_FEATURES bits [31:4])."""

    def usable(self, cap: int) -> bool:
        return not self.config_read(cap + _at("host_features.dma_dirty"), 4) >> 4 and super().usable(cap)


@fault(Target.DEVICE, breaks="VFM-DISC-007")
class EnablesBeforeNegotiating(MigrationCore):
    """Sets CONTROL.ENABLE first and writes GUEST_FEATURES afterwards."""

    def negotiate_and_enable(self, host_features: int) -> None:
        self.enable_protocol()
        self.accept_features(host_features)


@fault(Target.DEVICE, breaks="VFM-DISC-008")
class RenegotiatesOnEveryEvent(MigrationCore):
    """On each event interrupt, clears CONTROL.ENABLE and sets it again around rewriting GUEST_FEATURES."""

    def interrupt(self) -> None:
        if self.cap is not None:
            control = self.register_offset("control.enable")
            value = self.config_read(control, 2)
            self.config_write(control, 2, value & ~0x1)
            self.config_write(control, 2, value | 0x1)
        super().interrupt()


@fault(Target.DEVICE, breaks="VFM-DISC-009")
class WaitsForAnInterrupt(MigrationCore):
    """After enabling, waits for the first event interrupt instead of looking at the states at once."""

    def probe(self) -> bool:
        interrupt = self.interrupt
        self.interrupt = lambda: None  # type: ignore[method-assign]
        try:
            return super().probe()
        finally:
            self.interrupt = interrupt  # type: ignore[method-assign]
            self.guest.bridge_interrupt_handler = interrupt


# ---------------------------------------------------------------------------------------------- register access


@fault(Target.DEVICE, breaks="VFM-ACC-002")
class ReadsStatusUnaligned(MigrationCore):
    """Reads a slot's DEV_STATUS as the high byte of a 2-byte read at DEV_CTRL (an odd offset)."""

    def dev_status(self, slot: int) -> tuple[bool, bool]:
        value = self.config_read(self.register_offset(f"device[{slot}].dev_ctrl.drv_state"), 2) >> 8
        return bool(value & 0x1), bool(value & 0x2)


@fault(Target.DEVICE, breaks="VFM-ACC-008")
class EnablesWithADwordWrite(MigrationCore):
    """Sets CONTROL.ENABLE by writing back the DWORD it read at CONTROL, which carries STATUS.EVENT back too."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        if self.cap is not None and offset == self.register_offset("control.enable") and width == _CONTROL_WIDTH:
            status = self.config_read(offset, 4) >> 16
            super().config_write(offset, 4, value | status << 16)
            return
        super().config_write(offset, width, value)


@fault(Target.DEVICE, breaks="VFM-DEV-006")
class ReportsWithAnEntryWrite(MigrationCore):
    """Writes DRV_STATE with a 2-byte write at the start of the slot entry (DEV_STATE and DEV_CTRL)."""

    def write_drv_state(self, slot: int, report: DriverReport) -> None:
        offset = self.register_offset(f"device[{slot}].dev_state")
        word = self.config_read(offset, 2)
        self.config_write(offset, 2, (word & ~0x0700) | int(report) << 8)


@fault(Target.DEVICE, breaks="VFM-VER-003")
class ZeroesReservedBits(MigrationCore):
    """Writes DEV_CTRL with 0 in its RsvdP bits instead of the value read there."""

    def write_drv_state(self, slot: int, report: DriverReport) -> None:
        self.config_write(self.register_offset(f"device[{slot}].dev_ctrl.drv_state"), 1, int(report))


@fault(Target.DEVICE, breaks="VFM-VER-004")
class ClearsStatusWithOnes(MigrationCore):
    """Clears STATUS.EVENT by writing all ones to STATUS, its RsvdZ bits too."""

    def clear_event(self) -> None:
        self.config_write(self.register_offset("status.event"), 2, 0xFFFF)


# ---------------------------------------------------------------------------------------------- events and reports


@fault(Target.DEVICE, breaks="VFM-NOTIF-006")
class ReadsBeforeClearing(MigrationCore):
    """Its event handler reads MIG_STATE first and clears STATUS.EVENT only afterwards."""

    def interrupt(self) -> None:
        if self.cap is None:
            return
        self.last_mig_state = MigState(self.field("mig_state"))
        self.clear_event()
        self.look_at_all()


@fault(Target.DEVICE, breaks="VFM-NOTIF-007", leaves_out="look_again_later")
class ForgetsToLookAfterReports(MigrationCore):
    """Does not read the slot's DEV_STATE again after a report (a catch-up request goes unseen)."""


@fault(Target.DEVICE, breaks="VFM-FLOW-004")
class LooksAtTheFirstChangedSlot(MigrationCore):
    """In each event processing, acts only on the first slot whose DEV_STATE changed since it last looked."""

    def look_at_all(self) -> None:
        self.last_mig_state = MigState(self.field("mig_state"))
        seen = self.__dict__.setdefault("_seen", {})
        for slot in sorted(self.drivers):
            state = self.dev_state(slot)
            if seen.get(slot) != state:
                seen[slot] = state
                self.look_at(slot)
                return


@fault(Target.DEVICE, breaks="VFM-NOTIF-009")
class AdoptsUnboundSlots(MigrationCore):
    """Reports READY at enable time for every slot holding a function, driver or not."""

    def probe(self) -> bool:
        if not super().probe():
            return False
        for slot in range(self.num_slots):
            if self.dev_state(slot) is DevState.UNBOUND:
                self.report(slot, DriverReport.READY)
        return True


@fault(Target.DEVICE, breaks="VFM-NOTIF-010")
class ReportsTwice(MigrationCore):
    """Writes each report twice, the second time without reading DEV_STATE in between."""

    def report(self, slot: int, report: DriverReport) -> None:
        super().report(slot, report)
        super().report(slot, report)


@fault(Target.DEVICE, breaks="VFM-VER-005")
class ResynchronisesUnknownStates(MigrationCore):
    """On a DEV_STATE value it does not know, writes its slot's last report again to resynchronise."""

    def report(self, slot: int, report: DriverReport) -> None:
        self.__dict__.setdefault("_reports", {})[slot] = report
        super().report(slot, report)

    def dev_state(self, slot: int) -> DevState | int:
        state = super().dev_state(slot)
        last = self.__dict__.get("_reports", {}).get(slot)
        if not isinstance(state, DevState) and last not in (None, DriverReport.NONE):
            super().report(slot, last)
        return state


@fault(Target.DEVICE, breaks="VFM-REP-004")
class DropsStaleGenerations(MigrationCore):
    """Ignores an event whose GENERATION is lower than the highest it saw (stale, it thinks; GENERATION wraps)."""

    def interrupt(self) -> None:
        if self.cap is None:
            return
        generation = self.field("generation")
        highest: int = self.__dict__.get("_highest", -1)
        if generation < highest:
            self.clear_event()
            return
        self.__dict__["_highest"] = generation
        super().interrupt()


@fault(Target.DEVICE, breaks="VFM-NOTIF-008")
class UnbindsOnReinit(MigrationCore):
    """Treats REINIT_REQ like a hot-unplug: unbinds the slot's driver, for the OS to probe it again later."""

    def look_at(self, slot: int) -> None:
        driver = self.drivers.get(slot)
        if driver is not None and not driver.busy and self.dev_state(slot) is DevState.REINIT_REQ:
            driver.unload()
            return
        super().look_at(slot)


CATALOGUE: list[Fault] = faults_in(__name__)
"""Every faulty migration core, with the requirement it breaks."""
