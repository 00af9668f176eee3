"""The guest driver side: the migration core and a VF driver with the spec's callbacks.

Theory of operation
-------------------

The **migration core** owns the bridge's capability.  It finds it by walking
the capability list (VFM-DISC-005), checks it (VFM-DISC-006), accepts the
features it needs and enables the protocol (VFM-DISC-007), and then reacts to
the bridge's event interrupt: clear ``STATUS.EVENT`` first, then read
``MIG_STATE`` and every registered slot's ``DEV_STATE`` and let that slot's
driver act on it (VFM-NOTIF-006, VFM-FLOW-004).  It also acts after each
report it writes (VFM-NOTIF-007).  Per slot, one *sequence* runs at a time
(VFM-NOTIF-010): a driver whose sequence waits for its function (draining
DMA before a pause) makes the core note that the slot needs another look,
and the core takes it as soon as the sequence ends.

A **VF driver** is state-driven: :meth:`VfDriver.act_on` compares what the
slot's ``DEV_STATE`` asks for with what the driver has done and closes the
gap.  The brief's callbacks are the three ways a migration reaches a driver:
*before migration* (``DIRTY_REQ``: dirtying on; ``PAUSE_REQ``: stop DMA,
dirty, acknowledge), *after migration* (``REINIT_REQ``: bring the fresh
function up from reset using the driver's own state) and the *bad path*
(``RESUME_REQ``: restart the function from the hardware state it kept).

The pause follows spec §5.4 exactly: clear Bus Master Enable, read a device
register so that every earlier DMA write has landed, wait for Transactions
Pending to clear, dirty every page the function may have written, and only
then report ``PAUSED`` (VFM-DIRTY-003, VFM-DIRTY-004).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, cast

from reference_impl.clock import NS_PER_US
from reference_impl.device import DESCRIPTOR_BYTES, PCIE_CAP_OFFSET, VirtualFunction, buffer_pages
from reference_impl.events import EventKind
from reference_impl.guest import DmaRegionAllocator, Guest
from vfmig_proto.codec import find_field
from vfmig_proto.layout import (
    PCI_CAP_ID_VNDR,
    VFM_CFG_TYPE_MIGRATION,
    VFM_MAX_PAGE_SHIFT,
    VFM_MAX_SLOTS,
    VFM_MIN_PAGE_SHIFT,
    VFM_MIN_SLOTS,
    VFM_SIGNATURE,
    VFM_VERSION_MAJOR,
    PlacedField,
    capability_length,
    slot_offset,
)
from vfmig_proto.pci import (
    PCI_BRIDGE_CONTROL,
    PCI_BRIDGE_CTL_BUS_RESET,
    PCI_CAP_ID_MSI,
    PCI_CAPABILITY_LIST,
    PCI_CONFIG_SIZE,
    PCI_EXP_DEVCTL,
    PCI_EXP_DEVCTL_BCR_FLR,
    PCI_MSI_ADDRESS_HI,
    PCI_MSI_ADDRESS_LO,
    PCI_MSI_DATA_64,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_ENABLE,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
)
from vfmig_proto.states import DevState, DriverReport, MigState

if TYPE_CHECKING:
    from collections.abc import Iterator

_MAX_CAPABILITIES = 48
_MAX_SEQUENCES_PER_LOOK = 16
"""A slot settles within a few report/act rounds; more means a bug, not a busy guest."""
_FEATURES_WANTED = 0b1111
"""DMA_DIRTY, PAUSE_RESUME, RESET_DOMAIN, MIGRATED_FLAG: everything v1.0 defines."""
_MSI_ADDRESS = 0xFEE00000
"""x86's MSI address window, CPU 0."""
_MSI_VECTOR = 0x0041
_FEATURES_NEEDED = 0b0011
"""DMA_DIRTY and PAUSE_RESUME: a guest that cannot accept these does not take part (VFM-DISC-007)."""


class MigrationCore:
    """The guest's migration core: one per migration bridge."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.cap: int | None = None
        self.num_slots = 0
        self.drivers: dict[int, VfDriver] = {}
        self.last_mig_state: MigState | None = None
        self._again: dict[int, bool] = {}
        self._fields: dict[str, PlacedField] = {}

    # ------------------------------------------------------------------ discovery (spec §2)

    def _read(self, offset: int, width: int) -> int:
        return self.guest.platform.bridge.config_read(offset, width)

    def _write(self, offset: int, width: int, value: int) -> None:
        self.guest.platform.bridge.config_write(offset, width, value)

    def _capability_list(self) -> Iterator[int]:
        if not self._read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST:
            return
        pointer = self._read(PCI_CAPABILITY_LIST, 1) & 0xFC
        for _ in range(_MAX_CAPABILITIES):
            if pointer < 0x40:
                return
            yield pointer
            pointer = self._read(pointer + 1, 1) & 0xFC

    def find_capability(self) -> int | None:
        """Offset of the migration capability in the bridge's list (VFM-DISC-004, VFM-DISC-005)."""
        for offset in self._capability_list():
            if (
                self._read(offset, 1) == PCI_CAP_ID_VNDR
                and self._read(offset + 3, 1) == VFM_CFG_TYPE_MIGRATION
                and self._read(offset + 4, 4) == VFM_SIGNATURE
            ):
                return offset
        return None

    def _usable(self, cap: int) -> bool:
        """The checks of VFM-DISC-006: anything else, and the guest leaves the capability alone."""
        num_slots = self._read(cap + 0x0A, 1)
        if self._read(cap + 0x08, 1) != VFM_VERSION_MAJOR or not VFM_MIN_SLOTS <= num_slots <= VFM_MAX_SLOTS:
            return False
        cap_len = self._read(cap + 2, 1)
        if cap_len < capability_length(num_slots) or cap + cap_len > PCI_CONFIG_SIZE:
            return False
        if not VFM_MIN_PAGE_SHIFT <= self._read(cap + 0x0B, 1) <= VFM_MAX_PAGE_SHIFT:
            return False
        if self._read(cap + 0x1A, 2) == 0:
            return False
        devfns = [self._read(cap + slot_offset(slot) + 3, 1) for slot in range(num_slots)]
        return len(set(devfns)) == num_slots

    def probe(self) -> bool:
        """Find, check, negotiate and enable; then act on the current state (VFM-DISC-009)."""
        cap = self.find_capability()
        if cap is None or not self._usable(cap):
            return False
        self.cap = cap
        self.num_slots = self._read(cap + 0x0A, 1)
        host_features = self.field("host_features.dma_dirty", whole_register=True)
        if host_features & _FEATURES_NEEDED != _FEATURES_NEEDED:
            self.cap = None
            return False
        self._enable_bridge_msi()
        guest_features = self._register_offset("guest_features.dma_dirty")
        reserved = self._read(guest_features, 4) & ~0xF  # RsvdP: write back what was read (VFM-VER-003)
        self._write(guest_features, 4, reserved | (host_features & _FEATURES_WANTED))
        control = self._register_offset("control.enable")
        self._write(control, 2, (self._read(control, 2) & ~0x3) | 0x3)
        self.guest.bridge_interrupt_handler = self.interrupt
        self.interrupt()
        return True

    def _enable_bridge_msi(self) -> None:
        """What the guest's hot-plug driver does: give the bridge's MSI an address and vector, enable it."""
        for offset in self._capability_list():
            if self._read(offset, 1) == PCI_CAP_ID_MSI:
                self._write(offset + PCI_MSI_ADDRESS_LO, 4, _MSI_ADDRESS)
                self._write(offset + PCI_MSI_ADDRESS_HI, 4, 0)
                self._write(offset + PCI_MSI_DATA_64, 2, _MSI_VECTOR)
                self._write(offset + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE)
                return

    # ------------------------------------------------------------------ field access

    def _placed(self, path: str) -> PlacedField:
        placed = self._fields.get(path)
        if placed is None:
            placed = self._fields[path] = find_field(self.num_slots, path)
        return placed

    def _register_offset(self, path: str) -> int:
        if self.cap is None:
            raise RuntimeError("the migration core has not found the capability")
        return self.cap + self._placed(path).offset

    def field(self, path: str, *, whole_register: bool = False) -> int:
        """Read one field (or its whole register) from the bridge, as config reads."""
        placed = self._placed(path)
        word = self._read(self._register_offset(path), placed.register.size)
        return word if whole_register else (word & placed.field.mask) >> placed.field.lsb

    def dev_state(self, slot: int) -> DevState | int:
        """The slot's ``DEV_STATE`` (an int if the value is one this driver does not know, VFM-VER-005)."""
        value = self.field(f"device[{slot}].dev_state")
        try:
            return DevState(value)
        except ValueError:
            return value

    def dev_status(self, slot: int) -> tuple[bool, bool]:
        """``(MIGRATED, RESET)`` of the slot."""
        value = self.field(f"device[{slot}].dev_status.migrated", whole_register=True)
        return bool(value & 0x1), bool(value & 0x2)

    def clear_dev_status(self, slot: int, migrated: bool, reset: bool) -> None:
        """Write 1 to the bits to clear, in a 1-byte write of DEV_STATUS alone (VFM-DEV-006, VFM-ACC-008)."""
        bits = (0x1 if migrated else 0) | (0x2 if reset else 0)
        if bits:
            self._write(self._register_offset(f"device[{slot}].dev_status.migrated"), 1, bits)

    # ------------------------------------------------------------------ events and reports

    def register(self, slot: int, driver: VfDriver) -> None:
        """A VF driver registers its callbacks for ``slot`` (VFM-NOTIF-009)."""
        self.drivers[slot] = driver

    def unregister(self, slot: int) -> None:
        """The driver of ``slot`` is gone."""
        self.drivers.pop(slot, None)
        self._again.pop(slot, None)

    def interrupt(self) -> None:
        """The event interrupt: clear STATUS.EVENT, then act on every slot (VFM-NOTIF-006)."""
        if self.cap is None:
            return
        self._write(self._register_offset("status.event"), 2, 0x0001)
        self._look_at_all()

    def _look_at_all(self) -> None:
        self.last_mig_state = MigState(self.field("mig_state"))
        for slot in sorted(self.drivers):
            if not self.guest.running:
                # A report just stopped the vCPUs (the last PAUSED): the rest runs when they run again.
                self.guest.after(0, self._look_at_all, "migration core resumes")
                return
            self.look_at(slot)

    def look_at(self, slot: int) -> None:
        """Run the slot's sequence now, or as soon as its running sequence ends."""
        driver = self.drivers.get(slot)
        if driver is None:
            return
        if driver.busy:
            driver.look_again = True
            return
        for _ in range(_MAX_SEQUENCES_PER_LOOK):
            if not self.guest.running:
                self.guest.after(0, partial(self.look_at, slot), "migration core resumes")
                return
            self._again[slot] = False
            driver.act_on(self.dev_state(slot))
            if driver.busy or not self._again.get(slot) or self.drivers.get(slot) is not driver:
                return
        raise RuntimeError(f"slot {slot}: the driver did not settle after {_MAX_SEQUENCES_PER_LOOK} sequences")

    def report(self, slot: int, report: DriverReport) -> None:
        """Write ``DRV_STATE`` (1-byte write, reserved bits as read); act on the result (VFM-NOTIF-007)."""
        offset = self._register_offset(f"device[{slot}].dev_ctrl.drv_state")
        reserved = self._read(offset, 1) & ~0x7
        self._write(offset, 1, reserved | int(report))
        self._again[slot] = True

    def request_group_reset(self) -> None:
        """Ask for a group reset, as PCI error recovery does: toggle Secondary Bus Reset (spec §7.9)."""
        control = self._read(PCI_BRIDGE_CONTROL, 2)
        self._write(PCI_BRIDGE_CONTROL, 2, control | PCI_BRIDGE_CTL_BUS_RESET)
        self._write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)

    def sequence_done(self, slot: int) -> None:
        """A driver's waiting sequence ended: look at the slot again."""
        driver = self.drivers.get(slot)
        if driver is not None and (driver.look_again or self._again.get(slot)):
            driver.look_again = False
            self.look_at(slot)


def dma_pages(buffers: int, page_size: int) -> int:
    """Guest pages one driver takes for its descriptor ring and its ``buffers`` one-page receive buffers."""
    ring_pages = max(1, -(-buffers * DESCRIPTOR_BYTES // page_size))
    return ring_pages + buffers


@dataclass(frozen=True)
class DriverConfig:
    """How a VF driver is built; the ``dirty_*`` switches exist to break it on purpose."""

    buffers: int = 1024
    """Receive buffers of one page each."""
    drain_poll_ns: int = 10 * NS_PER_US
    """How often the driver polls Transactions Pending while it waits for DMA to drain."""
    dirty_completions: bool = True
    """Dirty the pages of each completed receive while dirtying mode is on (spec §5.3)."""
    dirty_on_pause: bool = True
    """Dirty every mapped page after DMA stopped, before reporting PAUSED (spec §5.4)."""


class VfDriver:
    """The guest's driver for the function in one slot."""

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
        self.guest = guest
        self.core = core
        self.slot = slot
        self.devfn = devfn
        self.config = config or DriverConfig()
        self.name = f"{guest.name}.vf{slot}"
        page_size = guest.memory.page_size
        self.buffer_count = self.config.buffers
        self.ring_pages = dma_pages(self.buffer_count, page_size) - self.buffer_count
        self.ring_start = allocator.allocate(self.ring_pages + self.buffer_count)
        self.buffer_start = self.ring_start + self.ring_pages
        self.loaded = False
        self.up = False
        self.configured = False
        """The driver has programmed the function and set its BME (it may be paused since)."""
        self.paused = False
        """The function is quiesced for a migration and keeps its hardware state."""
        self.dirtying = False
        self.busy = False
        self.look_again = False
        self.resumed_with_reset = 0

    # ------------------------------------------------------------------ helpers

    @property
    def function(self) -> VirtualFunction | None:
        """The function at this driver's device/function number on the host where the guest runs."""
        # Whatever the host placed there: the reference function, or a stand-in with its interface.
        return cast("VirtualFunction | None", self.guest.platform.function_at(self.devfn))

    def _event(self, action: str, **data: object) -> None:
        self.guest.bus.publish(EventKind.DRIVER, self.name, slot=self.slot, action=action, **data)

    def _set_dirtying(self, on: bool) -> None:
        if self.dirtying != on:
            self.dirtying = on
            self._event("dirtying_on" if on else "dirtying_off")

    def _mapped_ranges(self) -> list[tuple[int, int]]:
        return [(self.ring_start, self.buffer_start + self.buffer_count)]

    def _dirty(self, ranges: list[tuple[int, int]], why: str) -> None:
        memory = self.guest.memory
        pages = 0
        for start, stop in ranges:
            memory.dirty_range(start, stop)
            pages += stop - start
        self.guest.bus.publish(EventKind.DIRTY, self.name, function=self.name, pages=pages, why=why)

    # ------------------------------------------------------------------ lifecycle: load, unload, open, close

    def load(self, *, up: bool = True) -> bool:
        """Bind to the function (probe): reset it, clear the flags, report READY, answer (VFM-DEV-007)."""
        function = self.function
        if self.loaded or function is None or self.core.cap is None:
            return False
        if self.core.dev_state(self.slot) is not DevState.UNBOUND:
            return False
        self.loaded = True
        self.up = up
        self._event("bind")
        function.config_write(PCIE_CAP_OFFSET + PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR)  # reset at probe
        migrated, reset = self.core.dev_status(self.slot)  # VFM-FLAG-003
        self.core.clear_dev_status(self.slot, migrated, reset)
        self.core.register(self.slot, self)
        self.core.report(self.slot, DriverReport.READY)
        self.core.look_at(self.slot)
        return True

    def unload(self) -> None:
        """Unbind: quiesce, dirty what the function wrote if dirtying, report NONE (VFM-ABS-001..003)."""
        if not self.loaded or self.busy:
            return
        self._event("unbind")
        self.up = False

        def finish() -> None:
            if self.core.dev_state(self.slot) is not DevState.EMPTY:
                self.core.report(self.slot, DriverReport.NONE)
            self.core.unregister(self.slot)
            self.loaded = False
            self.dirtying = False
            self.paused = False

        self._quiesce(then=finish, why="unbind")

    def open(self) -> None:
        """Bring the interface up: configure the function if the slot's state allows it now."""
        if not self.loaded or self.up:
            return
        self.up = True
        self._event("open")
        self.core.look_at(self.slot)

    def close(self) -> None:
        """Bring the interface down: quiesce and unconfigure the function."""
        if not self.loaded or not self.up:
            return
        self.up = False
        self._event("close")
        if self.busy:
            return
        if self.configured and not self.paused:
            self._quiesce(then=None, why="close")
        else:
            self.configured = False

    def _quiesce(self, then: object, why: str) -> None:
        """Stop the function's DMA, wait for it to drain, dirty if dirtying, forget the configuration."""
        function = self.function
        callback = then if callable(then) else None
        if not self.configured or self.paused or function is None:
            self.configured = False
            self.paused = False
            if callback is not None:
                callback()
            self.core.sequence_done(self.slot)
            return
        function.mmio_enable_queues(False)
        function.set_bus_master(False)
        function.mmio_read_status()

        def drained() -> None:
            if self.dirtying and self.config.dirty_on_pause:
                self._dirty(self._mapped_ranges(), why)
            self.configured = False
            if callback is not None:
                callback()

        self._wait_for_drain(function, drained)

    def _wait_for_drain(self, function: VirtualFunction, then: object) -> None:
        self.busy = True
        callback = then if callable(then) else None

        def poll() -> None:
            if function.transactions_pending:
                self.guest.after(self.config.drain_poll_ns, poll, f"{self.name} drain")
                return
            self.busy = False
            if callback is not None:
                callback()
            self.core.sequence_done(self.slot)

        poll()

    # ------------------------------------------------------------------ the state-driven sequence

    def act_on(self, state: DevState | int) -> None:
        """Close the gap between what ``state`` asks for and what the driver has done (one sequence)."""
        if not isinstance(state, DevState):
            return  # a state this driver does not know: write nothing but NONE (VFM-VER-005)
        getattr(self, _HANDLERS[state])()

    def _on_empty(self) -> None:
        """The function was surprise-removed: the OS removes the device and unbinds the driver (no report)."""
        self._lose_binding("function removed")

    def _on_unbound(self) -> None:
        """The slot holds no binding of ours (the function was replaced under us): let it go."""
        self._lose_binding("slot unbound")

    def _lose_binding(self, why: str) -> None:
        self.configured = False
        self.paused = False
        self._set_dirtying(False)
        self.loaded = False
        self.up = False
        self.core.unregister(self.slot)
        self._event("unbind", why=why)

    def _on_ready(self) -> None:
        self._set_dirtying(False)  # VFM-CANCEL-004: a cancellation before pause needs no answer
        if self.configured:
            _, reset = self.core.dev_status(self.slot)  # VFM-ERR-007
            if reset:
                self.core.clear_dev_status(self.slot, False, True)
                self.configured = False
                self.paused = False
                self.resumed_with_reset += 1
        if self.up and not self.configured:
            self._bring_up()

    def _on_dirty_req(self) -> None:
        self._before_migration_dirtying()
        self.core.report(self.slot, DriverReport.DIRTYING)

    def _on_dirtying(self) -> None:
        self._set_dirtying(True)
        if self.up and not self.configured:
            self._bring_up()

    def _on_pause_req(self) -> None:
        self._set_dirtying(True)
        if not self.configured or self.paused:
            self.core.report(self.slot, DriverReport.PAUSED)  # nothing runs: answer at once (spec §7.3)
            return
        self._before_migration_pause()

    def _on_paused(self) -> None:
        return

    def _on_resume_req(self) -> None:
        self._bad_path_resume()

    def _on_reinit_req(self) -> None:
        self._after_migration_reinit()

    def _on_error(self) -> None:
        """The function failed: stop using it and recover the way PCI error recovery does, by a group reset."""
        function = self.function
        if function is not None and function.bus_master:
            function.set_bus_master(False)
        self.configured = False
        self.paused = False
        self._event("error_recovery")
        self.core.request_group_reset()

    # ------------------------------------------------------------------ the callbacks of the brief

    def _before_migration_dirtying(self) -> None:
        """Before migration, part 1: turn dirtying mode on."""
        self._set_dirtying(True)

    def _before_migration_pause(self) -> None:
        """Before migration, part 2: stop DMA, make it land, dirty, then acknowledge (spec §5.4)."""
        function = self.function
        if function is None:
            return
        self._event("pause")
        function.mask_msix(True)  # spec §5.4 step 1: interrupts masked ...
        function.set_bus_master(False)  # ... and DMA (and MSI-X) stopped at the function
        function.mmio_read_status()  # its completion orders every earlier DMA write (VFM-DIRTY-003)

        def drained() -> None:
            if self.config.dirty_on_pause:
                self._dirty(self._mapped_ranges(), "pause")
            self.paused = True
            self.core.report(self.slot, DriverReport.PAUSED)

        self._wait_for_drain(function, drained)

    def _bad_path_resume(self) -> None:
        """Bad path: restart the function from the hardware state it kept (VFM-CANCEL-003)."""
        function = self.function
        if self.configured and self.paused and function is not None:
            self._event("resume")
            function.set_bus_master(True)
            function.mask_msix(False)
            function.mmio_enable_queues(True)
            self.paused = False
        elif self.up and not self.configured:
            self._bring_up()
        self._set_dirtying(False)
        self.core.report(self.slot, DriverReport.READY)

    def _after_migration_reinit(self) -> None:
        """After migration (or a group reset): bring the function up from reset with the driver's state."""
        self._set_dirtying(False)
        self.configured = False
        self.paused = False
        if self.up:
            migrated, reset = self.core.dev_status(self.slot)
            self.core.clear_dev_status(self.slot, migrated, reset)  # VFM-FLAG-005, before reinitialising
            self._event("reinit")
            self._program_function()
        # Interface down: answer without touching the function; open() finds the flags (VFM-DOWN-003).
        self.core.report(self.slot, DriverReport.READY)

    def _bring_up(self) -> None:
        """Configure the function from its reset state (open, or the first look after a reset)."""
        migrated, reset = self.core.dev_status(self.slot)  # VFM-FLAG-003: before BME
        self.core.clear_dev_status(self.slot, migrated, reset)
        self._program_function()

    def _program_function(self) -> None:
        function = self.function
        if function is None:
            return
        self._event("program", function=function.name)
        memory = self.guest.memory
        function.mmio_setup_rx(self.ring_start, self.ring_pages, self.buffer_start, self.buffer_count)
        memory.cpu_write_range(self.ring_start, self.buffer_start)  # the driver writes every descriptor
        function.mmio_post(self.buffer_count)
        function.set_msix(True)
        function.set_bus_master(True)
        function.mmio_enable_queues(True)
        self.guest.device_interrupt_handlers[function.name] = self.poll
        self.configured = True
        self.paused = False

    # ------------------------------------------------------------------ the data path

    def poll(self) -> None:
        """Receive processing after an interrupt: dirty what the function wrote, then repost (spec §5.3)."""
        function = self.function
        if not self.configured or function is None or function.rx is None:
            return
        completed = function.mmio_take_completions()
        if not completed:
            return
        if self.dirtying and self.config.dirty_completions:
            self._dirty([*buffer_pages(function.rx, completed), (self.ring_start, self.buffer_start)], "completion")
        count = sum(stop - start for start, stop in completed)
        self.guest.memory.cpu_write_range(self.ring_start, self.buffer_start)  # new descriptors
        function.mmio_post(count)

    def transmit(self, pages: int) -> int:
        """Send ``pages`` of data: the function reads them by DMA."""
        function = self.function
        if not self.configured or self.paused or function is None:
            return 0
        return function.transmit(pages)


_HANDLERS: dict[DevState, str] = {
    DevState.EMPTY: "_on_empty",
    DevState.UNBOUND: "_on_unbound",
    DevState.READY: "_on_ready",
    DevState.DIRTY_REQ: "_on_dirty_req",
    DevState.DIRTYING: "_on_dirtying",
    DevState.PAUSE_REQ: "_on_pause_req",
    DevState.PAUSED: "_on_paused",
    DevState.RESUME_REQ: "_on_resume_req",
    DevState.REINIT_REQ: "_on_reinit_req",
    DevState.ERROR: "_on_error",
}
"""The method that acts on each ``DEV_STATE`` (every state has one; a test checks it).  Looked up by
name, so that a driver derived from this one overrides a state's action by overriding the method."""
