"""Guest writes: the access rules, checked field by field against an independent oracle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import load, valid_capabilities

import vfmig_proto as vfm
from vfmig_proto.access import apply_write_byte, write_masks
from vfmig_proto.layout import Access, placed_fields, slot_offset


def _write(cap: bytes, offset: int, value: int, width: int) -> bytes:
    return vfm.config_write(cap, offset, value.to_bytes(width, "little"))


class TestMasks:
    def test_masks_follow_the_field_access_types(self) -> None:
        masks = write_masks(8)
        assert masks.wmask[0x10] == 0x0F  # GUEST_FEATURES bits 3:0
        assert masks.wmask[0x11:0x14] == bytes(3)  # its reserved bits are RsvdP
        assert masks.wmask[0x14] == 0x03  # CONTROL.ENABLE, CONTROL.EVENT_IE
        assert masks.w1cmask[0x16] == 0x01  # STATUS.EVENT
        for slot in range(8):
            assert masks.wmask[slot_offset(slot) + 1] == 0x07  # DEV_CTRL.DRV_STATE
            assert masks.w1cmask[slot_offset(slot) + 2] == 0x07  # DEV_STATUS.MIGRATED, RESET, PROTOCOL_ERROR
        writable = {i for i, (w, c) in enumerate(zip(masks.wmask, masks.w1cmask, strict=True)) if w or c}
        assert writable == {0x10, 0x14, 0x16} | {slot_offset(s) + k for s in range(8) for k in (1, 2)}

    def test_no_bit_is_both_rw_and_rw1c(self) -> None:
        masks = write_masks(31)
        assert all(not (w & c) for w, c in zip(masks.wmask, masks.w1cmask, strict=True))

    @given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
    def test_byte_rule_is_qemus(self, current: int, value: int, wmask: int, w1cmask: int) -> None:
        expected = (current & ~wmask) | (value & wmask)
        expected &= ~(value & w1cmask)
        assert apply_write_byte(current, value, wmask, w1cmask) == expected & 0xFF


class TestConfigWrite:
    def test_ro_fields_ignore_writes(self) -> None:
        cap = vfm.reset_value()
        for offset in range(0, 0x10, 4):
            assert _write(cap, offset, 0xFFFFFFFF, 4) == cap
        assert _write(cap, 0x18, 0xFFFF, 2) == cap  # MIG_STATE, MIG_REASON
        assert _write(cap, 0x1C, 0xFFFFFFFF, 4) == cap  # GENERATION
        assert _write(cap, slot_offset(0), 0x09, 1) == cap  # DEV_STATE

    def test_rw_stores_and_rsvdp_preserves(self) -> None:
        cap = vfm.with_field(vfm.reset_value(), "control.reserved", 0x1555)
        written = _write(cap, 0x14, 0xFFFF, 2)
        view = vfm.decode_capability(written)
        assert view.control == vfm.Control(enable=True, event_ie=True, reserved=0x1555)
        view = vfm.decode_capability(_write(written, 0x14, 0x0000, 2))
        assert view.control == vfm.Control(enable=False, event_ie=False, reserved=0x1555)

    def test_rw1c_clears_only_the_ones_written(self) -> None:
        cap = vfm.reset_value()
        for path in (
            "device[1].dev_status.migrated",
            "device[1].dev_status.reset",
            "device[1].dev_status.protocol_error",
        ):
            cap = vfm.with_field(cap, path, 1)
        cap = vfm.with_field(cap, "status.event", 1)
        after = _write(cap, slot_offset(1) + 2, 0b010, 1)
        status = vfm.decode_capability(after).devices[1].dev_status
        assert (status.migrated, status.reset, status.protocol_error) == (True, False, True)
        assert vfm.decode_capability(_write(cap, 0x16, 0x0000, 2)).status.event  # writing 0 leaves it
        assert not vfm.decode_capability(_write(cap, 0x16, 0xFFFF, 2)).status.event

    def test_rsvdz_stays_zero(self) -> None:
        cap = vfm.reset_value()
        assert vfm.decode_capability(_write(cap, 0x16, 0xFFFE, 2)).status.reserved == 0
        assert vfm.decode_capability(_write(cap, slot_offset(0) + 2, 0xF8, 1)).devices[0].dev_status.reserved == 0

    def test_a_dword_write_covers_four_registers(self) -> None:
        cap = vfm.reset_value()
        # DEV_STATE (RO), DEV_CTRL (RW), DEV_STATUS (RW1C), DEV_DEVFN (RO) of slot 0 at once.
        written = _write(cap, slot_offset(0), 0xFFFF_02FF, 4)
        entry = vfm.decode_capability(written).devices[0]
        assert entry.dev_state is vfm.DevState.EMPTY
        assert entry.dev_ctrl.drv_state is vfm.DriverReport.DIRTYING
        assert entry.dev_devfn == 1 << 3

    @pytest.mark.parametrize(
        ("offset", "width", "problem"),
        [
            (0x14, 3, "width"),
            (0x15, 2, "aligned"),
            (0x12, 4, "aligned"),
            (0x40, 1, "past the end"),
            (0x3E, 4, "aligned"),
            (0x3C, 8, "width"),
            (-1, 1, "aligned"),
        ],
    )
    def test_impossible_transactions_are_refused(self, offset: int, width: int, problem: str) -> None:
        with pytest.raises(vfm.ConfigWriteError, match=problem) as caught:
            vfm.config_write(vfm.reset_value(), offset, bytes(width))
        assert caught.value.offset == offset
        assert caught.value.width == width

    def test_a_buffer_that_is_no_capability_is_refused(self) -> None:
        with pytest.raises(vfm.DecodeError):
            vfm.config_write(b"\x09\x00", 0, b"\x00")


_WRITES = st.tuples(st.sampled_from([1, 2, 4]), st.integers(0, 0xFFFFFFFF))


@given(valid_capabilities(max_slots=6), st.lists(st.tuples(st.integers(0, 200), _WRITES), min_size=1, max_size=12))
def test_random_guest_writes_obey_every_fields_access_type(
    cap: bytes, writes: list[tuple[int, tuple[int, int]]]
) -> None:
    """No write changes an RO, RsvdP or RsvdZ bit; RW takes the value; RW1C only clears."""
    fields = list(placed_fields(cap[0x0A]))
    for position, (width, value) in writes:
        offset = (position % (len(cap) // width)) * width
        data = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        after = vfm.config_write(cap, offset, data)
        for placed in fields:
            before_value, after_value = load(cap, placed), load(after, placed)
            start, end = placed.offset, placed.offset + placed.register.size
            touched = [i for i in range(start, end) if offset <= i < offset + width]
            if not touched or placed.field.access in (Access.RO, Access.RSVDP, Access.RSVDZ):
                assert after_value == before_value, placed.path
                continue
            # The written bits of this field, wherever the write overlapped the register.
            register_bytes = bytearray(cap[start:end])
            for i in touched:
                register_bytes[i - start] = data[i - offset]
            written = (int.from_bytes(register_bytes, "little") & placed.field.mask) >> placed.field.lsb
            field_bytes_mask = 0
            for i in touched:
                field_bytes_mask |= 0xFF << (8 * (i - start))
            covered = (field_bytes_mask & placed.field.mask) >> placed.field.lsb
            if placed.field.access is Access.RW:
                assert after_value == (before_value & ~covered) | (written & covered), placed.path
            else:  # RW1C
                assert after_value == before_value & ~(written & covered), placed.path
        cap = after
