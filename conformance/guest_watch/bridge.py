"""The reference bridge as the guest's migration core sees it in the ``device`` suite: watched, and presenting a
:class:`BridgeVariant` (a newer minor version, undefined bits set, a longer or relocated capability, a decoy
ahead of it, or a header to refuse)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from reference_impl.bridge import MigrationBridge
from reference_impl.events import EventBus
from vfmig_proto.codec import find_field, read_field, store_field
from vfmig_proto.config_space import capabilities, walk_capabilities
from vfmig_proto.layout import Access, CapabilityParams, capability_length, placed_fields
from vfmig_proto.pci import PCI_CAP_ID_VNDR, PCI_CAP_LIST_NEXT, PCI_CAPABILITY_LIST, PCI_CONFIG_SIZE


class AccessWatch(Protocol):
    """Who a :class:`WatchedBridge` tells of the guest's configuration accesses (a
    :class:`~conformance.guest_watch.watch.GuestWatch`)."""

    def read(self, bridge: WatchedBridge, offset: int, width: int, value: int) -> None:
        """The guest read ``value`` (``width`` bytes at ``offset``)."""

    def write(self, bridge: WatchedBridge, offset: int, width: int, value: int) -> None:
        """The guest writes ``value`` (``width`` bytes at ``offset``); the bridge has not applied it yet."""


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
        watch: AccessWatch | None = None,
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
        return [offset for offset, _ in capabilities(bytes(self.config))]

    def _relink(self, chain: Sequence[int]) -> None:
        self.config[PCI_CAPABILITY_LIST] = chain[0] if chain else 0
        for here, following in zip(chain, [*chain[1:], 0], strict=True):
            self.config[here + 1] = following

    def _repoint(self, old: int, new: int) -> None:
        chain = self._chain_from(old)
        self._relink([new if item == old else item for item in chain])

    def _chain_from(self, moved: int) -> list[int]:
        """The list as it was, read with the moved capability's next pointer taken from its new place."""

        def read(offset: int, width: int) -> int:
            if offset == moved + PCI_CAP_LIST_NEXT:
                offset = self.cap + PCI_CAP_LIST_NEXT
            return int.from_bytes(self.config[offset : offset + width], "little")

        return [offset for offset, _ in walk_capabilities(read)]

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
