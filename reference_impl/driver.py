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

Extension points: every action of the driver on a ``DEV_STATE`` (``on_<state>``),
the brief's callbacks (:meth:`VfDriver.before_migration_pause` and the others)
and the steps they are made of (:meth:`~VfDriver.bring_up`,
:meth:`~VfDriver.reinitialise`, :meth:`~VfDriver.program_function`,
:meth:`~VfDriver.start_function`, :meth:`~VfDriver.dirty_pages`,
:meth:`~VfDriver.completion_ranges`, :meth:`~VfDriver.repost`,
:meth:`~VfDriver.quiesce`, ...) are public, as are the core's phases
(:meth:`MigrationCore.version_supported`, :meth:`~MigrationCore.negotiate_and_enable`,
:meth:`~MigrationCore.clear_event`, :meth:`~MigrationCore.write_drv_state`,
:meth:`~MigrationCore.look_again_later`, ...): a variant, such as a fault of
``conformance.catalogue.device_faults``, overrides one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol, cast

from reference_impl.clock import NS_PER_US
from reference_impl.device import DESCRIPTOR_BYTES, PCIE_CAP_OFFSET, RxQueue, VirtualFunction, buffer_pages
from reference_impl.events import EventKind
from reference_impl.guest import DmaRegionAllocator, Guest
from vfmig_proto.codec import find_field
from vfmig_proto.config_space import CapabilityListError, walk_capabilities
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
    PCI_CONFIG_SIZE,
    PCI_EXP_DEVCTL,
    PCI_EXP_DEVCTL_BCR_FLR,
    PCI_MSI_ADDRESS_HI,
    PCI_MSI_ADDRESS_LO,
    PCI_MSI_DATA_64,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_ENABLE,
)
from vfmig_proto.states import DevState, DriverReport, MigState

if TYPE_CHECKING:
    from collections.abc import Iterator

_MAX_SEQUENCES_PER_LOOK = 16
"""A slot settles within a few report/act rounds; more means a bug, not a busy guest."""
_FEATURES_WANTED = 0b1111
"""DMA_DIRTY, PAUSE_RESUME, RESET_DOMAIN, MIGRATED_FLAG: everything v1.0 defines."""
_MSI_ADDRESS = 0xFEE00000
"""x86's MSI address window, CPU 0."""
_MSI_VECTOR = 0x0041
_FEATURES_NEEDED = 0b0011
"""DMA_DIRTY and PAUSE_RESUME: a guest that cannot accept these does not take part (VFM-DISC-007)."""


class SequencedDriver(Protocol):
    """What the core needs of a driver it runs sequences for: :class:`VfDriver`, or any driver of that shape."""

    busy: bool
    """Set while the driver is in work the core must not interrupt with a new sequence."""
    look_again: bool
    """Set by the core when it owed the driver a sequence while it was busy."""

    def act_on(self, state: DevState | int) -> None:
        """One sequence: act on the slot's ``DEV_STATE`` (an int if the value is unknown to this version)."""

    def unload(self) -> None:
        """Unbind from the function (what the guest's OS does to a driver whose device goes away)."""


class MigrationCore:
    """The guest's migration core: one per migration bridge."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.cap: int | None = None
        self.num_slots = 0
        self.drivers: dict[int, SequencedDriver] = {}
        self.last_mig_state: MigState | None = None
        self._again: dict[int, bool] = {}
        self._fields: dict[str, PlacedField] = {}

    # ------------------------------------------------------------------ discovery (spec §2)

    def config_read(self, offset: int, width: int) -> int:
        """A config read of the guest at ``offset`` of the bridge (every access the core makes goes here)."""
        return self.guest.platform.bridge.config_read(offset, width)

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A config write of the guest at ``offset`` of the bridge."""
        self.guest.platform.bridge.config_write(offset, width, value)

    def capability_offsets(self) -> Iterator[int]:
        """The offsets of the bridge's capabilities, in the order of its capability list.

        A broken list (a loop, a pointer into the header) ends the walk where it breaks: the core keeps what
        it found before, as a guest's PCI core does, and the capability it looks for is simply not there.
        """
        try:
            for offset, _ in walk_capabilities(self.config_read):
                yield offset
        except CapabilityListError:
            return

    def find_capability(self) -> int | None:
        """Offset of the migration capability in the bridge's list (VFM-DISC-004, VFM-DISC-005)."""
        for offset in self.capability_offsets():
            if (
                self.config_read(offset, 1) == PCI_CAP_ID_VNDR
                and self.config_read(offset + 3, 1) == VFM_CFG_TYPE_MIGRATION
                and self.config_read(offset + 4, 4) == VFM_SIGNATURE
            ):
                return offset
        return None

    def usable(self, cap: int) -> bool:
        """The checks of VFM-DISC-006: anything else, and the guest leaves the capability alone."""
        return self.version_supported(cap) and self.layout_valid(cap)

    def version_supported(self, cap: int) -> bool:
        """Whether this core implements the capability's version: VERSION_MAJOR is its own (any VERSION_MINOR)."""
        return self.config_read(cap + 0x08, 1) == VFM_VERSION_MAJOR

    def layout_valid(self, cap: int) -> bool:
        """Whether NUM_SLOTS, CAP_LEN, PAGE_SHIFT, ACK_TIMEOUT_MS and the slots' DEV_DEVFN make sense."""
        num_slots = self.config_read(cap + 0x0A, 1)
        if not VFM_MIN_SLOTS <= num_slots <= VFM_MAX_SLOTS:
            return False
        cap_len = self.config_read(cap + 2, 1)
        if cap_len < capability_length(num_slots) or cap + cap_len > PCI_CONFIG_SIZE:
            return False
        if not VFM_MIN_PAGE_SHIFT <= self.config_read(cap + 0x0B, 1) <= VFM_MAX_PAGE_SHIFT:
            return False
        if self.config_read(cap + 0x1A, 2) == 0:
            return False
        devfns = [self.config_read(cap + slot_offset(slot) + 3, 1) for slot in range(num_slots)]
        return len(set(devfns)) == num_slots

    def probe(self) -> bool:
        """Find, check, negotiate and enable; then act on the current state (VFM-DISC-009)."""
        cap = self.find_capability()
        if cap is None or not self.usable(cap):
            return False
        self.cap = cap
        self.num_slots = self.config_read(cap + 0x0A, 1)
        host_features = self.field("host_features.dma_dirty", whole_register=True)
        if host_features & _FEATURES_NEEDED != _FEATURES_NEEDED:
            self.cap = None
            return False
        self._enable_bridge_msi()
        self.negotiate_and_enable(host_features)
        self.guest.bridge_interrupt_handler = self.interrupt
        self.interrupt()
        return True

    def negotiate_and_enable(self, host_features: int) -> None:
        """Accept the features first, then enable the protocol (VFM-DISC-007)."""
        self.accept_features(host_features)
        self.enable_protocol()

    def accept_features(self, host_features: int) -> None:
        """Write GUEST_FEATURES: the wanted features the bridge offers."""
        guest_features = self.register_offset("guest_features.dma_dirty")
        reserved = self.config_read(guest_features, 4) & ~0xF  # RsvdP: write back what was read (VFM-VER-003)
        self.config_write(guest_features, 4, reserved | (host_features & _FEATURES_WANTED))

    def enable_protocol(self) -> None:
        """Set CONTROL.ENABLE and CONTROL.EVENT_IE."""
        control = self.register_offset("control.enable")
        self.config_write(control, 2, (self.config_read(control, 2) & ~0x3) | 0x3)

    def _enable_bridge_msi(self) -> None:
        """What the guest's hot-plug driver does: give the bridge's MSI an address and vector, enable it."""
        for offset in self.capability_offsets():
            if self.config_read(offset, 1) == PCI_CAP_ID_MSI:
                self.config_write(offset + PCI_MSI_ADDRESS_LO, 4, _MSI_ADDRESS)
                self.config_write(offset + PCI_MSI_ADDRESS_HI, 4, 0)
                self.config_write(offset + PCI_MSI_DATA_64, 2, _MSI_VECTOR)
                self.config_write(offset + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE)
                return

    # ------------------------------------------------------------------ field access

    def _placed(self, path: str) -> PlacedField:
        placed = self._fields.get(path)
        if placed is None:
            placed = self._fields[path] = find_field(self.num_slots, path)
        return placed

    def register_offset(self, path: str) -> int:
        """Config-space offset of the register that holds ``path`` (the capability must have been found)."""
        if self.cap is None:
            raise RuntimeError("the migration core has not found the capability")
        return self.cap + self._placed(path).offset

    def field(self, path: str, *, whole_register: bool = False) -> int:
        """Read one field (or its whole register) from the bridge, as config reads."""
        placed = self._placed(path)
        word = self.config_read(self.register_offset(path), placed.register.size)
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
            self.config_write(self.register_offset(f"device[{slot}].dev_status.migrated"), 1, bits)

    # ------------------------------------------------------------------ events and reports

    def register(self, slot: int, driver: SequencedDriver) -> None:
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
        self.clear_event()
        self.look_at_all()

    def clear_event(self) -> None:
        """Clear STATUS.EVENT: write 1 to it alone (RW1C; the RsvdZ bits as 0, VFM-VER-004)."""
        self.config_write(self.register_offset("status.event"), 2, 0x0001)

    def look_at_all(self) -> None:
        """Read MIG_STATE, then act on every registered slot in turn (VFM-FLOW-004)."""
        self.last_mig_state = MigState(self.field("mig_state"))
        for slot in sorted(self.drivers):
            if not self.guest.running:
                # A report just stopped the vCPUs (the last PAUSED): the rest runs when they run again.
                self.guest.after(0, self.look_at_all, "migration core resumes")
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
        """Write ``DRV_STATE``, then look at the slot again: the bridge may have moved it on (VFM-NOTIF-007)."""
        self.write_drv_state(slot, report)
        self.look_again_later(slot)

    def write_drv_state(self, slot: int, report: DriverReport) -> None:
        """A 1-byte write of DEV_CTRL: the report in DRV_STATE, the reserved bits as read (VFM-VER-003)."""
        offset = self.register_offset(f"device[{slot}].dev_ctrl.drv_state")
        reserved = self.config_read(offset, 1) & ~0x7
        self.config_write(offset, 1, reserved | int(report))

    def look_again_later(self, slot: int) -> None:
        """Read the slot's DEV_STATE again once its current sequence is done."""
        self._again[slot] = True

    def request_group_reset(self) -> None:
        """Ask for a group reset, as PCI error recovery does: toggle Secondary Bus Reset (spec §7.9)."""
        control = self.config_read(PCI_BRIDGE_CONTROL, 2)
        self.config_write(PCI_BRIDGE_CONTROL, 2, control | PCI_BRIDGE_CTL_BUS_RESET)
        self.config_write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)

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

    def publish_action(self, action: str, **data: object) -> None:
        """A DRIVER event on the bus: what the driver does, for the trace and the suites."""
        self.guest.bus.publish(EventKind.DRIVER, self.name, slot=self.slot, action=action, **data)

    def set_dirtying(self, on: bool) -> None:
        """Turn dirtying mode on or off (the pages the function writes are dirtied while it is on)."""
        if self.dirtying != on:
            self.dirtying = on
            self.publish_action("dirtying_on" if on else "dirtying_off")

    def mapped_ranges(self) -> list[tuple[int, int]]:
        """The guest pages the function may write: its descriptor ring and its buffers."""
        return [(self.ring_start, self.buffer_start + self.buffer_count)]

    def dirty_pages(self, ranges: list[tuple[int, int]], why: str) -> None:
        """Mark ``ranges`` dirty in the CPU dirty log, as a CPU write to each page does (spec §5.3)."""
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
        self.publish_action("bind")
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
        self.publish_action("unbind")
        self.up = False

        def finish() -> None:
            if self.core.dev_state(self.slot) is not DevState.EMPTY:
                self.core.report(self.slot, DriverReport.NONE)
            self.core.unregister(self.slot)
            self.loaded = False
            self.dirtying = False
            self.paused = False

        self.quiesce(then=finish, why="unbind")

    def open(self) -> None:
        """Bring the interface up: configure the function if the slot's state allows it now."""
        if not self.loaded or self.up:
            return
        self.up = True
        self.publish_action("open")
        self.core.look_at(self.slot)

    def close(self) -> None:
        """Bring the interface down: quiesce and unconfigure the function."""
        if not self.loaded or not self.up:
            return
        self.up = False
        self.publish_action("close")
        if self.busy:
            return
        if self.configured and not self.paused:
            self.quiesce(then=None, why="close")
        else:
            self.configured = False

    def quiesce(self, then: object, why: str) -> None:
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
                self.dirty_pages(self.mapped_ranges(), why)
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

    def on_empty(self) -> None:
        """The function was surprise-removed: the OS removes the device and unbinds the driver (no report)."""
        self._lose_binding("function removed")

    def on_unbound(self) -> None:
        """The slot holds no binding of ours (the function was replaced under us): let it go."""
        self._lose_binding("slot unbound")

    def _lose_binding(self, why: str) -> None:
        self.configured = False
        self.paused = False
        self.set_dirtying(False)
        self.loaded = False
        self.up = False
        self.core.unregister(self.slot)
        self.publish_action("unbind", why=why)

    def on_ready(self) -> None:
        """READY: no migration needs the driver; bring the function up if a reset took it (VFM-ERR-007)."""
        self.set_dirtying(False)  # VFM-CANCEL-004: a cancellation before pause needs no answer
        if self.configured:
            _, reset = self.core.dev_status(self.slot)  # VFM-ERR-007
            if reset:
                self.core.clear_dev_status(self.slot, False, True)
                self.configured = False
                self.paused = False
                self.resumed_with_reset += 1
        if self.up and not self.configured:
            self.bring_up()

    def on_dirty_req(self) -> None:
        """DIRTY_REQ: turn dirtying on, then report DIRTYING."""
        self.before_migration_dirtying()
        self.core.report(self.slot, DriverReport.DIRTYING)

    def on_dirtying(self) -> None:
        """DIRTYING: keep dirtying; an interface opened meanwhile is brought up."""
        self.set_dirtying(True)
        if self.up and not self.configured:
            self.bring_up()

    def on_pause_req(self) -> None:
        """PAUSE_REQ: pause the function (or answer at once when nothing runs)."""
        self.set_dirtying(True)
        if not self.configured or self.paused:
            self.core.report(self.slot, DriverReport.PAUSED)  # nothing runs: answer at once (spec §7.3)
            return
        self.before_migration_pause()

    def on_paused(self) -> None:
        """PAUSED: nothing to do; the function stays stopped (VFM-DEV-008)."""
        return

    def on_resume_req(self) -> None:
        """RESUME_REQ: the bad path."""
        self.bad_path_resume()

    def on_reinit_req(self) -> None:
        """REINIT_REQ: after the migration or a group reset."""
        self.after_migration_reinit()

    def on_error(self) -> None:
        """The function failed: stop using it and recover the way PCI error recovery does, by a group reset."""
        function = self.function
        if function is not None and function.bus_master:
            function.set_bus_master(False)
        self.configured = False
        self.paused = False
        self.publish_action("error_recovery")
        self.core.request_group_reset()

    # ------------------------------------------------------------------ the callbacks of the brief

    def before_migration_dirtying(self) -> None:
        """Before migration, part 1: turn dirtying mode on."""
        self.set_dirtying(True)

    def before_migration_pause(self) -> None:
        """Before migration, part 2: stop DMA, make it land, dirty, then acknowledge (spec §5.4)."""
        function = self.function
        if function is None:
            return
        self.publish_action("pause")
        function.mask_msix(True)  # spec §5.4 step 1: interrupts masked ...
        function.set_bus_master(False)  # ... and DMA (and MSI-X) stopped at the function
        function.mmio_read_status()  # its completion orders every earlier DMA write (VFM-DIRTY-003)

        def drained() -> None:
            if self.config.dirty_on_pause:
                self.dirty_pages(self.mapped_ranges(), "pause")
            self.paused = True
            self.core.report(self.slot, DriverReport.PAUSED)

        self._wait_for_drain(function, drained)

    def bad_path_resume(self) -> None:
        """Bad path: restart the function from the hardware state it kept (VFM-CANCEL-003)."""
        function = self.function
        if self.configured and self.paused and function is not None:
            self.publish_action("resume")
            function.set_bus_master(True)
            function.mask_msix(False)
            function.mmio_enable_queues(True)
            self.paused = False
        elif self.up and not self.configured:
            self.bring_up()
        self.set_dirtying(False)
        self.core.report(self.slot, DriverReport.READY)

    def after_migration_reinit(self) -> None:
        """After migration (or a group reset): bring the function up from reset with the driver's state."""
        self.set_dirtying(False)
        self.configured = False
        self.paused = False
        if self.up:
            self.reinitialise()
        # Interface down: answer without touching the function; open() finds the flags (VFM-DOWN-003).
        self.core.report(self.slot, DriverReport.READY)

    def reinitialise(self) -> None:
        """Read and clear the flags, then program the function from reset (VFM-FLAG-005: the flags first)."""
        migrated, reset = self.core.dev_status(self.slot)
        self.core.clear_dev_status(self.slot, migrated, reset)
        self.publish_action("reinit")
        self.program_function()

    def bring_up(self) -> None:
        """Configure the function from its reset state (open, or the first look after a reset)."""
        migrated, reset = self.core.dev_status(self.slot)  # VFM-FLAG-003: before BME
        self.core.clear_dev_status(self.slot, migrated, reset)
        self.program_function()

    def program_function(self) -> None:
        """Program the function from its reset state: ring, buffers, then start it (MSI-X, BME, queues)."""
        function = self.function
        if function is None:
            return
        self.publish_action("program", function=function.name)
        memory = self.guest.memory
        function.mmio_setup_rx(self.ring_start, self.ring_pages, self.buffer_start, self.buffer_count)
        memory.cpu_write_range(self.ring_start, self.buffer_start)  # the driver writes every descriptor
        function.mmio_post(self.buffer_count)
        self.start_function(function)

    def start_function(self, function: VirtualFunction) -> None:
        """Start the programmed function: MSI-X, Bus Master Enable, its queues, and the driver's interrupt handler."""
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
            self.dirty_pages(self.completion_ranges(function.rx, completed), "completion")
        self.repost(function, sum(stop - start for start, stop in completed))

    def completion_ranges(self, rx: RxQueue, completed: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The pages a batch of completed receives wrote: their buffers, and the ring the function wrote back into."""
        return [*buffer_pages(rx, completed), (self.ring_start, self.buffer_start)]

    def repost(self, function: VirtualFunction, count: int) -> None:
        """Give the function ``count`` buffers back: write their descriptors (a CPU write of the ring), post them."""
        self.guest.memory.cpu_write_range(self.ring_start, self.buffer_start)
        function.mmio_post(count)

    def transmit(self, pages: int) -> int:
        """Send ``pages`` of data: the function reads them by DMA."""
        function = self.function
        if not self.configured or self.paused or function is None:
            return 0
        return function.transmit(pages)


_HANDLERS: dict[DevState, str] = {
    DevState.EMPTY: "on_empty",
    DevState.UNBOUND: "on_unbound",
    DevState.READY: "on_ready",
    DevState.DIRTY_REQ: "on_dirty_req",
    DevState.DIRTYING: "on_dirtying",
    DevState.PAUSE_REQ: "on_pause_req",
    DevState.PAUSED: "on_paused",
    DevState.RESUME_REQ: "on_resume_req",
    DevState.REINIT_REQ: "on_reinit_req",
    DevState.ERROR: "on_error",
}
"""The method that acts on each ``DEV_STATE`` (every state has one; a test checks it).  Looked up by
name, so that a driver derived from this one overrides a state's action by overriding the method."""
