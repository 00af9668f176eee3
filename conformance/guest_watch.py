"""Watching the guest's migration core at the bridge: every configuration access it makes.

The migration core (discovery, negotiation, event handling, the reports it
writes for the VF drivers) is judged by what it does to the bridge's
configuration space, so the ``device`` suite gives the guest a
:class:`WatchedBridge`: the reference bridge, which tells a :class:`GuestWatch`
of every guest read (after it, with the value read) and every guest write
(before it takes effect, so that the bridge's bytes are still the ones the
write finds).  Nobody but the guest accesses the bridge's configuration
space, so every access the watch sees is the guest's.

Per access, the watch checks the register access rules (width and alignment,
RW1C bits written back, ``DEV_CTRL`` left out of other writes of a slot
entry, RsvdP and RsvdZ bits), how the core follows the capability list, the
negotiation before ``CONTROL.ENABLE``, when ``ENABLE`` is cleared, the order
"clear ``STATUS.EVENT``, then read" of the event handler, that each event
processing reads every slot with a driver, and what the core reports.  Field
offsets, sizes and access types come from :mod:`vfmig_proto` (layout and
write masks), never from a table kept here.

A :class:`BridgeVariant` changes what the bridge presents: a higher minor
version, feature and reserved bits this version does not define, a longer
capability, the capability somewhere else in the list, a decoy
vendor-specific capability ahead of it, or a header that a version 1.0 guest
must refuse.  :func:`probe_variant` runs a fresh migration core against one
such bridge on its own (a guest booting on it), for the discovery and
versioning requirements that the main world, with its one well-formed
bridge, cannot exercise; :func:`run_handshake` drives a core through two
migrations and a group reset with a driver that answers at once, with
``GENERATION`` wrapping or not (VFM-REP-004), and counts how often the core
unbinds the driver (VFM-NOTIF-008).

Some driver requirements are observed only in part: that the core *acts*
on what it reads (VFM-NOTIF-007, VFM-FLOW-004, VFM-DISC-009) is seen as its
reading the states again; that it *intends* to clear an RW1C bit
(VFM-ACC-008) is judged by the pattern section 3.3.5 warns about, a write of
``CONTROL`` or ``DEV_CTRL`` that writes back the RW1C bits it read; and of
VFM-NOTIF-010 the watch sees that each report follows a read of the slot's
``DEV_STATE`` since the slot's previous report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from conformance.checks import Checks
from reference_impl.bridge import MigrationBridge
from reference_impl.clock import SimClock, ms
from reference_impl.events import Event, EventBus, EventKind
from reference_impl.guest import Guest
from reference_impl.memory import GuestMemory
from vfmig_proto.access import write_masks
from vfmig_proto.codec import find_field, read_field, store_field
from vfmig_proto.layout import (
    PCI_CAP_ID_VNDR,
    Access,
    CapabilityParams,
    capability_length,
    placed_fields,
)
from vfmig_proto.pci import PCI_CAPABILITY_LIST, PCI_CONFIG_SIZE
from vfmig_proto.states import DevState, DriverReport, MigReason, MigState
from vfmig_proto.transitions import ACKNOWLEDGED_BY

REACT_NS = ms(2)
"""How long (of the guest's running time) the core may take to look at a slot after a report or after enabling."""
_DEFINED_DEV_STATES = frozenset(int(state) for state in DevState)
_FEATURES_NEEDED = ("guest_features.dma_dirty", "guest_features.pause_resume")


# ------------------------------------------------------------------------------------------ the layout, per byte


@dataclass(frozen=True)
class ByteRoles:
    """What each byte of a capability with ``num_slots`` slots is, from the layout (offsets from the capability)."""

    length: int
    rsvdp: bytes
    """Per byte: its RsvdP bits."""
    rsvdz: bytes
    """Per byte: its RsvdZ bits."""
    w1c: bytes
    """Per byte: its RW1C bits."""
    slot: tuple[int, ...]
    """Per byte: the slot entry it belongs to (-1: the header)."""
    dev_state: dict[int, int]
    """Offset of each slot's ``DEV_STATE`` -> slot."""
    dev_ctrl: dict[int, int]
    """Offset of each slot's ``DEV_CTRL`` -> slot."""
    drv_state_mask: int
    mig_state: int
    control: tuple[int, ...]
    """The bytes of ``CONTROL``."""
    enable: tuple[int, int]
    """``(byte offset, bit mask)`` of ``CONTROL.ENABLE``."""
    event: tuple[int, int]
    """``(byte offset, bit mask)`` of ``STATUS.EVENT``."""
    guest_features: int
    guest_features_rw: int
    """The RW bits of ``GUEST_FEATURES`` (the features a version 1.0 guest chooses)."""
    guest_features_needed: int
    host_features: int


def _bit(num_slots: int, path: str) -> tuple[int, int]:
    placed = find_field(num_slots, path)
    mask = placed.field.mask.to_bytes(placed.register.size, "little")
    index = next(i for i, byte in enumerate(mask) if byte)
    return placed.offset + index, mask[index]


@cache
def byte_roles(num_slots: int) -> ByteRoles:
    """The per-byte roles of a capability with ``num_slots`` slots."""
    length = capability_length(num_slots)
    rsvdp = bytearray(length)
    rsvdz = bytearray(length)
    slot = [-1] * length
    guest_features_rw = 0
    for placed in placed_fields(num_slots):
        size = placed.register.size
        bits = placed.field.mask.to_bytes(size, "little")
        target = {Access.RSVDP: rsvdp, Access.RSVDZ: rsvdz}.get(placed.field.access)
        for index, byte in enumerate(bits):
            if target is not None:
                target[placed.offset + index] |= byte
            if placed.slot is not None:
                slot[placed.offset + index] = placed.slot
        if placed.register.name == "guest_features" and placed.field.access is Access.RW:
            guest_features_rw |= placed.field.mask
    needed = 0
    for path in _FEATURES_NEEDED:
        needed |= find_field(num_slots, path).field.mask
    control = find_field(num_slots, "control.enable")
    drv_state = find_field(num_slots, "device[0].dev_ctrl.drv_state")
    return ByteRoles(
        length=length,
        rsvdp=bytes(rsvdp),
        rsvdz=bytes(rsvdz),
        w1c=write_masks(num_slots).w1cmask,
        slot=tuple(slot),
        dev_state={find_field(num_slots, f"device[{n}].dev_state").offset: n for n in range(num_slots)},
        dev_ctrl={find_field(num_slots, f"device[{n}].dev_ctrl.drv_state").offset: n for n in range(num_slots)},
        drv_state_mask=drv_state.field.mask,
        mig_state=find_field(num_slots, "mig_state").offset,
        control=tuple(range(control.offset, control.offset + control.register.size)),
        enable=_bit(num_slots, "control.enable"),
        event=_bit(num_slots, "status.event"),
        guest_features=find_field(num_slots, "guest_features.dma_dirty").offset,
        guest_features_rw=guest_features_rw,
        guest_features_needed=needed,
        host_features=find_field(num_slots, "host_features.dma_dirty").offset,
    )


# ------------------------------------------------------------------------------------------ bridge variants


@dataclass(frozen=True)
class BridgeVariant:
    """What a :class:`WatchedBridge` presents differently from the reference bridge."""

    name: str = "plain"
    version_minor: int = 0
    version_major: int | None = None
    host_features_extra: int = 0
    """Value of ``HOST_FEATURES`` bits [31:4] (features of later minor versions)."""
    rsvdp_fill: int = 0
    """Bits to set in every RsvdP field (a field takes as many low bits as it is wide)."""
    rsvdz_fill: int = 0
    """Bits to set in every RsvdZ field (status bits of a later minor version, say)."""
    cap_len_extra: int = 0
    """Bytes of registers of a later minor version after the last slot entry (``CAP_LEN`` grows)."""
    trailer: int = 0
    """The value of each of those bytes."""
    relocate: int | None = None
    """Place the capability at this offset instead of 0x64."""
    cap_last: bool = False
    """Link the capability last in the list (after the SHPC) instead of first."""
    decoy: str | None = None
    """A vendor-specific capability ahead of it that is not the migration capability: it differs in
    ``"cfg_type"``, ``"signature"`` or ``"cap_id"`` (its other bytes copy the capability)."""
    fields: tuple[tuple[str, int], ...] = ()
    """Header fields presented with another value (``("page_shift", 11)``, say)."""
    cap_len: int | None = None
    """``CAP_LEN`` presented as this value."""
    duplicate_devfn: bool = False
    """Slot entry 1 names the same function as entry 0."""

    @property
    def usable(self) -> bool:
        """Whether a version 1.0 guest must take part on a bridge presenting this (else: leave it alone)."""
        return self.version_major in (None, 1) and not self.fields and self.cap_len is None and not self.duplicate_devfn


PLAIN = BridgeVariant()


class WatchedBridge(MigrationBridge):
    """The reference bridge, presenting ``variant``, that tells ``watch`` of every guest configuration access."""

    def __init__(
        self,
        bus: EventBus,
        params: CapabilityParams | None = None,
        *,
        name: str = "bridge",
        watch: GuestWatch | None = None,
        variant: BridgeVariant = PLAIN,
    ) -> None:
        super().__init__(bus, params, name=name)
        self.watch = watch
        self.variant = variant
        self.glitch: dict[int, int] = {}
        """Slot -> a ``DEV_STATE`` value the guest reads instead of the real one (a faulty bridge, for a moment)."""
        self.decoys: list[tuple[int, int]] = []
        """``[start, end)`` of each decoy capability in the configuration space."""
        self._base_masks = (self.wmask, self.w1cmask)
        self._present()

    # ------------------------------------------------------------------ the variant

    def conventional_reset(self) -> None:
        self.cap = self._home
        super().conventional_reset()
        self._present()

    def _present(self) -> None:
        variant = self.variant
        self._home = self.cap
        cap, slots = self.cap, self.num_slots
        config = self.config
        if variant.version_minor:
            store_field(config, find_field(slots, "version_minor"), variant.version_minor, cap)
        if variant.version_major is not None:
            store_field(config, find_field(slots, "version_major"), variant.version_major, cap)
        if variant.host_features_extra:
            store_field(config, find_field(slots, "host_features.reserved"), variant.host_features_extra, cap)
        for placed in placed_fields(slots):
            fill = {Access.RSVDP: variant.rsvdp_fill, Access.RSVDZ: variant.rsvdz_fill}.get(placed.field.access, 0)
            if fill:
                store_field(config, placed, fill & (placed.field.mask >> placed.field.lsb), cap)
        for path, value in variant.fields:
            store_field(config, find_field(slots, path), value, cap)
        if variant.duplicate_devfn and slots > 1:
            devfn = read_field(config, find_field(slots, "device[0].dev_devfn"), cap)
            store_field(config, find_field(slots, "device[1].dev_devfn"), devfn, cap)
        length = capability_length(slots) + variant.cap_len_extra
        if variant.cap_len_extra:
            end = cap + capability_length(slots)
            config[end : end + variant.cap_len_extra] = bytes([variant.trailer]) * variant.cap_len_extra
        cap_len = find_field(slots, "cap_len")
        store_field(config, cap_len, variant.cap_len if variant.cap_len is not None else length, cap)
        if variant.relocate is not None and variant.relocate != cap:
            self._relocate(variant.relocate, length)
        if variant.cap_last:
            self._link_last()
        if variant.decoy is not None:
            self._add_decoy(variant.decoy, length)

    def _relocate(self, offset: int, length: int) -> None:
        old = self.cap
        data = bytes(self.config[old : old + length])
        wmask, w1cmask = bytearray(self._base_masks[0]), bytearray(self._base_masks[1])
        masks = (bytes(wmask[old : old + length]), bytes(w1cmask[old : old + length]))
        self.config[old : old + length] = bytes(length)
        wmask[old : old + length] = bytes(length)
        w1cmask[old : old + length] = bytes(length)
        self.config[offset : offset + length] = data
        wmask[offset : offset + length] = masks[0]
        w1cmask[offset : offset + length] = masks[1]
        self.wmask, self.w1cmask = bytes(wmask), bytes(w1cmask)
        self.cap = offset
        self._repoint(old, offset)

    def _chain(self) -> list[int]:
        chain: list[int] = []
        pointer = self.config[PCI_CAPABILITY_LIST] & 0xFC
        while pointer and len(chain) < 48:
            chain.append(pointer)
            pointer = self.config[pointer + 1] & 0xFC
        return chain

    def _relink(self, chain: Sequence[int]) -> None:
        self.config[PCI_CAPABILITY_LIST] = chain[0] if chain else 0
        for here, following in zip(chain, [*chain[1:], 0], strict=True):
            self.config[here + 1] = following

    def _repoint(self, old: int, new: int) -> None:
        chain = self._chain_from(old)
        self._relink([new if item == old else item for item in chain])

    def _chain_from(self, moved: int) -> list[int]:
        """The list as it was, read with the moved capability's next pointer taken from its new place."""
        chain: list[int] = []
        pointer = self.config[PCI_CAPABILITY_LIST] & 0xFC
        while pointer and len(chain) < 48:
            chain.append(pointer)
            source = self.cap if pointer == moved else pointer
            pointer = self.config[source + 1] & 0xFC
        return chain

    def _link_last(self) -> None:
        chain = [item for item in self._chain() if item != self.cap]
        self._relink([*chain, self.cap])

    def _add_decoy(self, kind: str, length: int) -> None:
        start = -(-(self.cap + length) // 4) * 4
        if start + length > PCI_CONFIG_SIZE:
            raise ValueError("no room for a decoy capability")
        self.config[start : start + length] = self.config[self.cap : self.cap + length]
        slots = self.num_slots
        if kind == "cfg_type":
            store_field(self.config, find_field(slots, "cfg_type"), 0x01, start)
        elif kind == "signature":
            store_field(self.config, find_field(slots, "signature"), 0x474D4657, start)
        else:
            store_field(self.config, find_field(slots, "cap_id"), PCI_CAP_ID_VNDR + 1, start)
        self.decoys.append((start, start + length))
        self._relink([start, *self._chain()])

    # ------------------------------------------------------------------ guest accesses

    def config_read(self, offset: int, width: int) -> int:
        value = super().config_read(offset, width)
        if self.glitch:
            value = self._glitched(offset, width, value)
        if self.watch is not None:
            self.watch.read(self, offset, width, value)
        return value

    def config_write(self, offset: int, width: int, value: int) -> None:
        if self.watch is not None:
            self.watch.write(self, offset, width, value)
        super().config_write(offset, width, value)

    def _glitched(self, offset: int, width: int, value: int) -> int:
        data = bytearray(value.to_bytes(width, "little"))
        for slot, shown in self.glitch.items():
            at = self.cap + find_field(self.num_slots, f"device[{slot}].dev_state").offset
            if offset <= at < offset + width:
                data[at - offset] = shown
        return int.from_bytes(data, "little")

    def spurious_event(self) -> None:
        """Set ``STATUS.EVENT`` and signal the event interrupt with nothing changed (as a faulty bridge might)."""
        self.set_field("status.event", 1)
        self.signal_event()
        self.update_intx()


# ------------------------------------------------------------------------------------------ the watch


class GuestWatch:
    """Checks of the migration core's requirements, on each configuration access of the guest to the bridge."""

    def __init__(self, checks: Checks, clock: SimClock | None = None) -> None:
        self.checks = checks
        self.clock = clock or SimClock()
        """The world's clock (a bridge factory that makes the first :class:`WatchedBridge` sets it)."""
        self.drivers: list[Any] = []
        """The world's VF drivers, by slot (``loaded``, ``busy``)."""
        self.guest: Guest | None = None
        self.reached: set[int] = set()
        """Capability offsets the guest has reached by following the list from the Capabilities Pointer."""
        self.last_read: dict[int, int] = {}
        """Offset from the capability -> the byte the guest read there last."""
        self.last_mig_state: int | None = None
        self.last_dev_state: dict[int, int] = {}
        self.features_written = False
        self.in_handler = False
        self.handler_cleared = False
        self.handler_read = False
        self.enabled_at: int | None = None
        """When the guest set ``CONTROL.ENABLE``, until it has cleared ``STATUS.EVENT`` and read ``MIG_STATE``."""
        self.enable_cleared = False
        self.processing: set[int] | None = None
        """The slots with a driver (not in a waiting sequence) when the current event processing began."""
        self.read_in_processing: set[int] = set()
        self.reread_due: dict[int, int] = {}
        """Slot -> when the guest wrote a report for it, until it reads the slot's ``DEV_STATE`` again."""
        self.read_since_report: dict[int, bool] = {}
        self.writes: list[tuple[int, int, int]] | None = None
        """If a list: every write as ``(offset from the capability, width, value without RsvdP bits)``."""

    # ------------------------------------------------------------------ wiring

    def attach(self, guest: Guest, bus: EventBus) -> None:
        """Watch ``guest`` (its VF drivers are in :attr:`drivers`); wrap its event handler."""
        self.guest = guest
        self.clock = bus.clock
        bus.subscribe(self._vcpus, [EventKind.VCPU])
        self.wrap_handler()

    def wrap_handler(self) -> None:
        """Make the guest's event interrupt handler tell the watch when it runs (a core may install a new one)."""
        guest = self.guest
        handler = None if guest is None else guest.bridge_interrupt_handler
        if guest is None or handler is None or getattr(handler, "watched", False):
            return
        inner: Callable[[], None] = handler

        def watched() -> None:
            self.in_handler, self.handler_cleared, self.handler_read = True, False, False
            try:
                inner()
            finally:
                self.in_handler = False

        watched.watched = True  # type: ignore[attr-defined]
        guest.bridge_interrupt_handler = watched

    def _vcpus(self, event: Event) -> None:
        if event.data.get("running"):  # time with the vCPUs stopped does not count against the core
            now = self.clock.now
            self.reread_due = dict.fromkeys(self.reread_due, now)
            if self.enabled_at is not None:
                self.enabled_at = now

    def _loaded(self, slot: int) -> bool:
        return slot < len(self.drivers) and bool(self.drivers[slot].loaded)

    # ------------------------------------------------------------------ accesses

    def _access(self, bridge: WatchedBridge, offset: int, width: int, kind: str) -> None:
        self.checks.record(
            "VFM-ACC-002",
            width in (1, 2, 4) and offset % width == 0,
            lambda: f"a {width}-byte config {kind} at 0x{offset:02x} of the migration capability",
        )
        self.checks.record(
            "VFM-DISC-005",
            bridge.cap in self.reached,
            lambda: (
                f"a config {kind} at 0x{offset:02x} of the migration capability at 0x{bridge.cap:02x}, which the "
                "guest did not reach by following the capability list from the Capabilities Pointer at 0x34"
            ),
        )

    def _follow(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset <= PCI_CAPABILITY_LIST < end:
            self.reached.add(data[PCI_CAPABILITY_LIST - offset] & 0xFC)
        for pointer in tuple(self.reached):
            if offset <= pointer + 1 < end:
                self.reached.add(data[pointer + 1 - offset] & 0xFC)

    def read(self, bridge: WatchedBridge, offset: int, width: int, value: int) -> None:
        """The guest read ``value`` (``width`` bytes at ``offset``)."""
        data = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        self._follow(offset, data)
        roles = byte_roles(bridge.num_slots)
        cap = bridge.cap
        low, high = max(offset, cap) - cap, min(offset + width, cap + roles.length) - cap
        if low >= high:
            return
        self._access(bridge, offset, width, "read")
        for rel in range(low, high):
            byte = data[rel + cap - offset]
            self.last_read[rel] = byte
            slot = roles.dev_state.get(rel)
            if rel == roles.mig_state:
                self.last_mig_state = byte
                self._state_read()
                if self.enabled_at is not None and self.enable_cleared:
                    self.checks.record("VFM-DISC-009", True, "")
                    self.enabled_at = None
            elif slot is not None:
                self.last_dev_state[slot] = byte
                self.read_in_processing.add(slot)
                self.read_since_report[slot] = True
                self._state_read()
                if self.reread_due.pop(slot, None) is not None:
                    self.checks.record("VFM-NOTIF-007", True, "")

    def _state_read(self) -> None:
        if self.in_handler and not self.handler_read:
            self.handler_read = True
            self.checks.record(
                "VFM-NOTIF-006",
                self.handler_cleared,
                "the event interrupt handler read MIG_STATE or a DEV_STATE before it cleared STATUS.EVENT",
            )

    def write(self, bridge: WatchedBridge, offset: int, width: int, value: int) -> None:
        """The guest writes ``value`` (``width`` bytes at ``offset``); the bridge has not applied it yet."""
        end = offset + width
        for start, stop in bridge.decoys:
            self.checks.record(
                "VFM-DISC-004",
                end <= start or stop <= offset,
                lambda: (
                    f"a config write at 0x{offset:02x}, into a vendor-specific capability that is not the "
                    "migration capability (its capability ID, CFG_TYPE or SIGNATURE differs)"
                ),
            )
        roles = byte_roles(bridge.num_slots)
        cap = bridge.cap
        low, high = max(offset, cap) - cap, min(end, cap + roles.length) - cap
        if low >= high:
            return
        self._access(bridge, offset, width, "write")
        data = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        current = bridge.config
        covered = range(low, high)
        written = {rel: data[rel + cap - offset] for rel in covered}
        if self.writes is not None:
            kept = bytes(written[rel] & ~roles.rsvdp[rel] & 0xFF for rel in covered)
            self.writes.append((offset - cap, width, int.from_bytes(kept, "little")))
        self._reserved(roles, written, current, cap)
        self._slot_entries(roles, written)
        self._rw1c(roles, written)
        self._control(roles, written, current, cap)
        event_byte, event_bit = roles.event
        if event_byte in written and written[event_byte] & event_bit:
            self._event_cleared()
        for rel, byte in written.items():
            slot = roles.dev_ctrl.get(rel)
            if slot is not None:
                self._report(slot, byte & roles.drv_state_mask)

    def _reserved(self, roles: ByteRoles, written: dict[int, int], current: bytearray, cap: int) -> None:
        rsvdp = [rel for rel in written if roles.rsvdp[rel]]
        if rsvdp:
            wrong = [
                rel for rel in rsvdp if (written[rel] ^ self.last_read.get(rel, current[cap + rel])) & roles.rsvdp[rel]
            ]
            self.checks.record(
                "VFM-VER-003",
                not wrong,
                lambda: (
                    "RsvdP bits written with other values than last read, at capability offsets "
                    + ", ".join(
                        f"0x{rel:02x} (wrote 0x{written[rel]:02x}, read 0x{self.last_read.get(rel, 0):02x})"
                        for rel in wrong
                    )
                ),
            )
        rsvdz = [rel for rel in written if roles.rsvdz[rel]]
        if rsvdz:
            ones = [rel for rel in rsvdz if written[rel] & roles.rsvdz[rel]]
            self.checks.record(
                "VFM-VER-004",
                not ones,
                lambda: (
                    "RsvdZ bits written as 1, at capability offsets "
                    + ", ".join(f"0x{rel:02x} (wrote 0x{written[rel]:02x})" for rel in ones)
                ),
            )

    def _slot_entries(self, roles: ByteRoles, written: dict[int, int]) -> None:
        slots = {roles.slot[rel] for rel in written if roles.slot[rel] >= 0}
        for slot in slots:
            entry = [rel for rel in written if roles.slot[rel] == slot]
            reports = any(rel in roles.dev_ctrl for rel in entry)
            self.checks.record(
                "VFM-DEV-006",
                not (reports and len(entry) > 1),
                f"one config write covers slot {slot}'s DEV_CTRL and other registers of its entry",
            )

    def _rw1c(self, roles: ByteRoles, written: dict[int, int]) -> None:
        flags = [rel for rel in written if roles.w1c[rel]]
        if not flags:
            return
        controls = any(rel in roles.control or rel in roles.dev_ctrl for rel in written)
        written_back = [
            rel for rel in flags if written[rel] & roles.w1c[rel] and written[rel] == self.last_read.get(rel)
        ]
        self.checks.record(
            "VFM-ACC-008",
            not (controls and written_back),
            lambda: (
                "a write of CONTROL or DEV_CTRL wrote back the RW1C bits it read, clearing them, at capability "
                "offsets " + ", ".join(f"0x{rel:02x} (0x{written[rel]:02x})" for rel in written_back)
            ),
        )

    def _control(self, roles: ByteRoles, written: dict[int, int], current: bytearray, cap: int) -> None:
        features = roles.guest_features
        if features in written:
            self.features_written = True
        enable_byte, enable_bit = roles.enable
        if enable_byte not in written:
            return
        now_set = bool(written[enable_byte] & enable_bit)
        was_set = bool(current[cap + enable_byte] & enable_bit)
        last = self.last_mig_state
        self.checks.record(
            "VFM-DISC-008",
            now_set or not was_set or last == MigState.IDLE,
            lambda: f"CONTROL.ENABLE cleared while the MIG_STATE the guest read last was {_name(MigState, last)}",
        )
        if now_set and not was_set:
            accepted = int.from_bytes(current[cap + features : cap + features + 4], "little")
            accepted &= roles.guest_features_rw
            offered = int.from_bytes(current[cap + roles.host_features : cap + roles.host_features + 4], "little")
            self.checks.record(
                "VFM-DISC-007",
                self.features_written
                and accepted & roles.guest_features_needed == roles.guest_features_needed
                and not accepted & ~offered,
                lambda: (
                    f"CONTROL.ENABLE set with GUEST_FEATURES {'never written' if not self.features_written else ''}"
                    f" accepting 0x{accepted:x} of HOST_FEATURES 0x{offered:x} (DMA_DIRTY and PAUSE_RESUME "
                    "are needed, nothing that is not offered)"
                ),
            )
            self.enabled_at = self.clock.now
            self.enable_cleared = False

    def _event_cleared(self) -> None:
        if self.in_handler:
            self.handler_cleared = True
        if self.enabled_at is not None:
            self.enable_cleared = True
            if self.in_handler:  # the first look after enabling came with an interrupt: the core waited for one
                self.checks.record(
                    "VFM-DISC-009",
                    False,
                    "after setting CONTROL.ENABLE the guest cleared STATUS.EVENT only in its event interrupt handler",
                )
                self.enabled_at = None
        if self.processing is not None:
            missed = sorted(slot for slot in self.processing - self.read_in_processing if self._loaded(slot))
            self.checks.record(
                "VFM-FLOW-004",
                not missed,
                lambda: f"an event processing did not read the DEV_STATE of slots {missed}, which have a driver",
            )
        self.processing = {
            driver.slot for driver in self.drivers if bool(driver.loaded) and not bool(getattr(driver, "busy", False))
        }
        self.read_in_processing = set()

    def _report(self, slot: int, report: int) -> None:
        last = self.last_dev_state.get(slot)
        if report != DriverReport.NONE:
            self.checks.record(
                "VFM-VER-005",
                last is None or last in _DEFINED_DEV_STATES,
                lambda: (
                    f"slot {slot}: DRV_STATE {report} written while the DEV_STATE read last was {last}, "
                    "a value the spec does not define"
                ),
            )
            self.checks.record(
                "VFM-NOTIF-010",
                self.read_since_report.get(slot, True),
                lambda: (
                    f"slot {slot}: DRV_STATE {_name(DriverReport, report)} written without a read of the "
                    "slot's DEV_STATE since its last report"
                ),
            )
            self.read_since_report[slot] = False
            self.reread_due[slot] = self.clock.now
        if report == DriverReport.READY:
            self.checks.record(
                "VFM-NOTIF-009",
                self._loaded(slot),
                lambda: f"slot {slot}: READY reported, but no VF driver is bound to its function",
            )

    # ------------------------------------------------------------------ what must have happened by now

    def settle(self) -> None:
        """Judge what the core owed by now: a look after enabling, a look after each report."""
        guest = self.guest
        if guest is not None and not guest.running:
            return
        now = self.clock.now
        if self.enabled_at is not None and now - self.enabled_at >= REACT_NS:
            cleared = self.enable_cleared
            self.checks.record(
                "VFM-DISC-009",
                False,
                "after setting CONTROL.ENABLE the guest did not "
                + ("read MIG_STATE after clearing STATUS.EVENT" if cleared else "clear STATUS.EVENT")
                + f" within {REACT_NS / 1e6:g} ms",
            )
            self.enabled_at = None
        for slot, since in list(self.reread_due.items()):
            if not self._loaded(slot):
                del self.reread_due[slot]
            elif now - since >= REACT_NS:
                del self.reread_due[slot]
                self.checks.record(
                    "VFM-NOTIF-007",
                    False,
                    f"slot {slot}: DEV_STATE not read again within {REACT_NS / 1e6:g} ms of a report",
                )


def _name(enum: type[MigState] | type[DriverReport], value: int | None) -> str:
    try:
        return enum(value).name if value is not None else "none (never read)"
    except ValueError:
        return str(value)


# ------------------------------------------------------------------------------------------ a guest on its own bridge


@dataclass
class _Platform:
    bridge: WatchedBridge
    memory: GuestMemory

    def function_at(self, devfn: int) -> object | None:
        return None


@dataclass
class _Stub:
    """A function in a slot: it only needs to be there."""

    name: str
    bus_master: bool = False
    resets: list[str] = field(default_factory=list)

    def function_level_reset(self, how: str) -> None:
        self.resets.append(how)


@dataclass
class ProbeResult:
    """What a migration core did on a bridge of its own."""

    took_part: bool
    enabled: bool
    """Whether ``CONTROL.ENABLE`` of the real capability is set after the probe."""
    writes: list[tuple[int, int, int]]
    cap_writes: int
    """Writes that reached the capability."""


def probe_variant(
    make_core: Callable[[Guest], Any], checks: Checks, variant: BridgeVariant, params: CapabilityParams
) -> ProbeResult:
    """A guest boots on a bridge presenting ``variant`` and its migration core probes it, watched."""
    clock = SimClock()
    bus = EventBus(clock)
    watch = GuestWatch(checks, clock)
    watch.writes = []
    bridge = WatchedBridge(bus, params, name="probe.bridge", watch=watch, variant=variant)
    bridge.hot_add(0, _Stub("probe.vf0"))
    guest = Guest("probe", clock, bus, _Platform(bridge, GuestMemory(16 * 4096, 12, boot=True)))
    bridge.interrupt_sink = guest.inject_bridge_interrupt
    watch.attach(guest, bus)
    took_part = bool(make_core(guest).probe())
    watch.wrap_handler()
    clock.advance(REACT_NS)
    watch.settle()
    enabled = bool(read_field(bridge.config, find_field(bridge.num_slots, "control.enable"), bridge.cap))
    return ProbeResult(took_part, enabled, watch.writes, len(watch.writes))


class _Answering:
    """A VF driver that answers every request at once (its interface is down) and records being unbound."""

    def __init__(self, core: Any, slot: int) -> None:
        self.core = core
        self.slot = slot
        self.busy = False
        self.look_again = False
        self.loaded = True
        self.up = False
        self.unbound = 0

    def act_on(self, state: DevState | int) -> None:
        answer = ACKNOWLEDGED_BY.get(state) if isinstance(state, DevState) else None
        if answer is not None:
            self.core.report(self.slot, answer)

    def load(self, *, up: bool = True) -> bool:
        self.loaded = True
        return True

    def unload(self) -> None:
        self.unbound += 1
        self.loaded = False

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class HandshakeResult:
    """What a migration core did for a driver that answers at once, through migrations started by hand."""

    answered: tuple[bool, ...]
    """Per START: whether the slot got to DIRTYING (the core passed the request on and reported)."""
    reinitialised: bool
    """Whether the slot got back to READY after a group reset."""
    unbound: int
    """How often the core unbound the driver."""


def run_handshake(
    make_core: Callable[[Guest], Any], checks: Checks, params: CapabilityParams, generation: int
) -> HandshakeResult:
    """Two migrations (started, answered, cancelled) and a group reset, with ``GENERATION`` at ``generation`` first.

    With ``generation`` 0xFFFFFFFE, the second START wraps it to 0.
    """
    clock = SimClock()
    bus = EventBus(clock)
    watch = GuestWatch(checks, clock)
    bridge = WatchedBridge(bus, params, name="handshake.bridge", watch=watch)
    bridge.hot_add(0, _Stub("handshake.vf0"))
    guest = Guest("handshake", clock, bus, _Platform(bridge, GuestMemory(16 * 4096, 12, boot=True)))
    bridge.interrupt_sink = guest.inject_bridge_interrupt
    watch.attach(guest, bus)
    core = make_core(guest)
    if not core.probe():
        return HandshakeResult((), False, 0)
    driver = _Answering(core, 0)
    watch.drivers = [driver]
    core.register(0, driver)
    core.report(0, DriverReport.READY)
    core.look_at(0)
    watch.wrap_handler()
    store_field(bridge.config, find_field(bridge.num_slots, "generation"), generation, bridge.cap)
    answered = []
    for _ in range(2):
        bridge.start()
        clock.advance(REACT_NS)
        answered.append(bridge.dev_state(0) is DevState.DIRTYING)
        if bridge.mig_state is not MigState.IDLE:
            bridge.cancel(MigReason.CANCELLED)
        clock.advance(REACT_NS)
    bridge.group_reset()
    clock.advance(REACT_NS)
    watch.settle()
    return HandshakeResult(tuple(answered), bridge.dev_state(0) is DevState.READY, driver.unbound)
