"""What each byte of the migration capability is, read from the layout in :mod:`vfmig_proto` (never a table
kept here): RsvdP, RsvdZ and RW1C bits, the slot entry it belongs to, and where the registers the
:class:`~conformance.guest_watch.watch.GuestWatch` follows lie."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from vfmig_proto.access import write_masks
from vfmig_proto.codec import find_field
from vfmig_proto.layout import Access, capability_length, placed_fields

_FEATURES_NEEDED = ("guest_features.dma_dirty", "guest_features.pause_resume")


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
