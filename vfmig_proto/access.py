"""Guest writes to the capability, by the register access rules (spec §3.3).

The model is QEMU's per-byte mask model of config space: every byte has a
write mask (bits a guest write stores) and a write-1-to-clear mask (bits a
guest's 1 clears).  A write of value ``val`` to byte ``cfg`` does::

    cfg = (cfg & ~wmask) | (val & wmask)
    cfg &= ~(val & w1cmask)

RO, RsvdP and RsvdZ bits are in neither mask, so a write never changes them
(RsvdZ bits are zero in every valid capability and so stay zero).  The masks
are derived from the field access types in :mod:`vfmig_proto.layout`; there
is no hand-kept mask anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from vfmig_proto.codec import check_frame
from vfmig_proto.errors import ConfigWriteError
from vfmig_proto.layout import Access, capability_length, placed_fields

WRITE_WIDTHS = (1, 2, 4)
"""Widths of a PCI configuration write, in bytes."""


@dataclass(frozen=True)
class WriteMasks:
    """Per-byte masks of a capability instance: ``wmask[i]`` and ``w1cmask[i]`` for byte ``i``."""

    wmask: bytes
    w1cmask: bytes


@cache
def write_masks(num_slots: int) -> WriteMasks:
    """The write masks of a capability with ``num_slots`` slots, derived from the layout."""
    length = capability_length(num_slots)
    wmask = bytearray(length)
    w1cmask = bytearray(length)
    for placed in placed_fields(num_slots):
        target = {Access.RW: wmask, Access.RW1C: w1cmask}.get(placed.field.access)
        if target is None:
            continue
        bits = placed.field.mask.to_bytes(placed.register.size, "little")
        for index, byte in enumerate(bits):
            target[placed.offset + index] |= byte
    return WriteMasks(bytes(wmask), bytes(w1cmask))


def apply_write_byte(current: int, value: int, wmask: int, w1cmask: int) -> int:
    """One byte of config space after a guest writes ``value`` to it."""
    stored = (current & ~wmask) | (value & wmask)
    return stored & ~(value & w1cmask) & 0xFF


def check_write(cap_length: int, offset: int, width: int) -> None:
    """Raise :class:`ConfigWriteError` unless a ``width``-byte write at ``offset`` is a legal transaction."""
    if width not in WRITE_WIDTHS:
        raise ConfigWriteError(offset, width, "width must be 1, 2 or 4 bytes")
    if offset < 0 or offset % width:
        raise ConfigWriteError(offset, width, f"offset is not aligned to {width} bytes")
    if offset + width > cap_length:
        raise ConfigWriteError(offset, width, f"runs past the end of the {cap_length}-byte capability")


def config_write(cap: bytes, offset: int, data: bytes) -> bytes:
    """``cap`` after a guest writes ``data`` (1, 2 or 4 bytes, little-endian) at ``offset``.

    ``offset`` counts from the capability's first byte.  RO bits are ignored,
    RW bits stored, RW1C bits cleared where ``data`` has a 1, RsvdP bits
    preserved, RsvdZ bits left zero.  Raises :class:`ConfigWriteError` for a
    write no PCI transaction can make and :class:`DecodeError` if ``cap`` is
    not sized like a capability.

    This applies the access rules only.  What a write *means* (a driver
    report that the state machine rejects, say) is the bridge's business.
    """
    num_slots = check_frame(cap)
    check_write(len(cap), offset, len(data))
    masks = write_masks(num_slots)
    out = bytearray(cap)
    for index, value in enumerate(data):
        position = offset + index
        out[position] = apply_write_byte(out[position], value, masks.wmask[position], masks.w1cmask[position])
    return bytes(out)
