"""Hypothesis strategies for capabilities, built from the layout (not from the codec under test)."""

from __future__ import annotations

from hypothesis import strategies as st

from vfmig_proto import layout
from vfmig_proto.layout import Access, PlacedField

# Fields whose legal values the layout's access and enum information does not tell by itself.
_FIXED_RANGES = {
    "version_major": (layout.VFM_VERSION_MAJOR, layout.VFM_VERSION_MAJOR),
    "page_shift": (layout.VFM_MIN_PAGE_SHIFT, layout.VFM_MAX_PAGE_SHIFT),
    "ack_timeout_ms": (1, 0xFFFF),
}


def store(data: bytearray, placed: PlacedField, value: int) -> None:
    """Put ``value`` into ``placed``'s bits of ``data`` (an independent little-endian writer)."""
    for index in range(placed.register.size):
        shift = 8 * index
        byte_mask = (placed.field.mask >> shift) & 0xFF
        byte_value = ((value << placed.field.lsb) >> shift) & byte_mask
        data[placed.offset + index] = (data[placed.offset + index] & ~byte_mask) | byte_value


def load(data: bytes, placed: PlacedField) -> int:
    """The value of ``placed``'s bits in ``data``."""
    word = int.from_bytes(data[placed.offset : placed.offset + placed.register.size], "little")
    return (word & placed.field.mask) >> placed.field.lsb


def _field_values(placed: PlacedField, num_slots: int) -> st.SearchStrategy[int]:
    fld = placed.field
    if placed.path == "num_slots":
        return st.just(num_slots)
    if placed.path == "cap_len":
        return st.just(layout.capability_length(num_slots))
    if fld.const:
        assert isinstance(fld.reset, int)
        return st.just(int(fld.reset))
    if placed.path in _FIXED_RANGES:
        low, high = _FIXED_RANGES[placed.path]
        return st.integers(low, high)
    if fld.access is Access.RSVDZ:
        return st.just(0)
    if fld.values is not None:
        return st.sampled_from([int(member) for member in fld.values])
    return st.integers(0, (1 << fld.width) - 1)


@st.composite
def valid_capabilities(draw: st.DrawFn, max_slots: int = layout.VFM_MAX_SLOTS) -> bytes:
    """Any capability a v1.0 decoder accepts."""
    num_slots = draw(st.integers(layout.VFM_MIN_SLOTS, max_slots))
    devfns = draw(st.lists(st.integers(0, 255), min_size=num_slots, max_size=num_slots, unique=True))
    data = bytearray(layout.capability_length(num_slots))
    for placed in layout.placed_fields(num_slots):
        if placed.register.name == "dev_devfn":
            assert placed.slot is not None
            store(data, placed, devfns[placed.slot])
        else:
            store(data, placed, draw(_field_values(placed, num_slots)))
    return bytes(data)
