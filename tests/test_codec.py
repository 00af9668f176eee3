"""The capability codec: reset value, strict decoding, round trips, fuzzing."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import load, store, valid_capabilities

import vfmig_proto as vfm
from vfmig_proto import codec
from vfmig_proto.layout import (
    DEVICE_REGISTERS,
    HEADER_REGISTERS,
    CapabilityParams,
    capability_length,
    placed_fields,
    slot_offset,
)


def _placed(path: str, num_slots: int = 8) -> vfm.layout.PlacedField:
    return next(p for p in placed_fields(num_slots) if p.path == path)


def _set(data: bytes, path: str, value: int) -> bytes:
    out = bytearray(data)
    store(out, _placed(path, data[0x0A]), value)
    return bytes(out)


def _bad_value(path: str, value: int, offset: int, case: str) -> Any:
    """A case of the strict-decoding table: ``value`` written into the field at ``path``, which the error names."""
    return pytest.param(lambda c: _set(c, path, value), path, offset, id=case)


class TestResetValue:
    def test_default_is_64_bytes_with_the_v1_identity(self) -> None:
        cap = vfm.reset_value()
        assert len(cap) == 64
        assert cap[:4] == bytes([0x09, 0x00, 0x40, 0x56])
        assert cap[4:8] == b"VFMG"
        view = vfm.decode_capability(cap)
        assert (view.version_major, view.version_minor, view.num_slots, view.page_shift) == (1, 0, 8, 12)
        assert view.mig_state is vfm.MigState.IDLE
        assert view.mig_reason is vfm.MigReason.NONE
        assert view.ack_timeout_ms == 500
        assert view.host_features == vfm.Features(True, True, True, True, 0)
        assert view.guest_features == vfm.Features(False, False, False, False, 0)
        assert not view.control.enable
        assert not view.status.event
        assert all(entry.dev_state is vfm.DevState.EMPTY for entry in view.devices)
        assert all(entry.dev_ctrl.drv_state is vfm.DriverReport.NONE for entry in view.devices)
        # Entry N describes device N + 1, function 0: QEMU's SHPC slot numbering.
        assert [entry.dev_devfn for entry in view.devices] == [(n + 1) << 3 for n in range(8)]

    @pytest.mark.parametrize("num_slots", [1, 2, 8, 31])
    def test_parameters_shape_the_capability(self, num_slots: int) -> None:
        params = CapabilityParams(num_slots=num_slots, next_pointer=0x4C, ack_timeout_ms=250, page_shift=21)
        view = vfm.decode_capability(vfm.reset_value(params))
        assert view.cap_len == capability_length(num_slots) == 0x20 + 4 * num_slots
        assert len(view.devices) == num_slots
        assert (view.cap_next, view.ack_timeout_ms, view.page_shift) == (0x4C, 250, 21)

    def test_reset_value_matches_every_field_reset_in_the_layout(self) -> None:
        cap = vfm.reset_value()
        for placed in placed_fields(8):
            reset = placed.field.reset
            if isinstance(reset, vfm.layout.Param):
                expected = CapabilityParams().value_of(reset, placed.slot)
            else:
                expected = int(reset)
            assert load(cap, placed) == expected, placed.path


class TestStrictDecoding:
    """Every kind of bad input is a DecodeError that names the field and the offset."""

    @pytest.mark.parametrize(
        ("mutate", "field", "offset"),
        [
            pytest.param(lambda c: c[:10], "cap_len", 0x02, id="shorter-than-header"),
            pytest.param(lambda c: c[:-1], "cap_len", 0x02, id="truncated"),
            pytest.param(lambda c: c + b"\x00", "cap_len", 0x02, id="trailing-byte"),
            pytest.param(lambda c: b"", "cap_len", 0x02, id="empty"),
            _bad_value("cap_id", 0x10, 0x00, "wrong-id"),
            _bad_value("cfg_type", 0x02, 0x03, "wrong-type"),
            _bad_value("signature", 0x12345678, 0x04, "wrong-signature"),
            _bad_value("cap_len", 0x44, 0x02, "length-disagrees"),
            _bad_value("version_major", 2, 0x08, "unknown-major"),
            _bad_value("version_major", 0, 0x08, "major-zero"),
            _bad_value("page_shift", 11, 0x0B, "page-too-small"),
            _bad_value("ack_timeout_ms", 0, 0x1A, "no-deadline"),
            _bad_value("status.reserved", 1, 0x16, "rsvdz-status"),
            _bad_value("mig_state", 7, 0x18, "unknown-mig-state"),
            _bad_value("mig_reason", 200, 0x19, "unknown-reason"),
            _bad_value("device[3].dev_state", 10, 0x2C, "unknown-dev"),
            _bad_value("device[7].dev_ctrl.drv_state", 4, 0x3D, "bad-report"),
            _bad_value("device[5].dev_devfn", 2 << 3, 0x37, "devfn-twice"),
            _bad_value("device[0].dev_status.reserved", 0x10, 0x22, "rsvdz-dev-status"),
        ],
    )
    def test_bad_input_names_field_and_offset(self, mutate: object, field: str, offset: int) -> None:
        assert callable(mutate)
        with pytest.raises(vfm.DecodeError) as caught:
            vfm.decode_capability(mutate(vfm.reset_value()))
        assert (caught.value.field, caught.value.offset) == (field, offset)
        assert field in str(caught.value)
        assert f"0x{offset:02x}" in str(caught.value)

    def test_the_first_bad_field_is_the_one_named(self) -> None:
        cap = _set(_set(_set(vfm.reset_value(), "mig_state", 99), "version_major", 7), "cap_id", 0x05)
        with pytest.raises(vfm.DecodeError) as caught:
            vfm.decode_capability(cap)
        assert caught.value.field == "cap_id"

    @pytest.mark.parametrize(
        ("params", "problem"),
        [
            ({"num_slots": 0}, "num_slots"),
            ({"num_slots": 32}, "num_slots"),
            ({"num_slots": 31, "first_device": 2}, "do not fit"),
            ({"first_device": -1}, "do not fit"),
        ],
    )
    def test_impossible_parameters_are_refused(self, params: dict[str, int], problem: str) -> None:
        with pytest.raises(ValueError, match=problem):
            CapabilityParams(**params)

    @pytest.mark.parametrize("num_slots", [0, 32, 255])
    def test_slot_count_out_of_range(self, num_slots: int) -> None:
        cap = bytearray(vfm.reset_value())
        cap[0x0A] = num_slots
        with pytest.raises(vfm.DecodeError, match="num_slots"):
            vfm.decode_capability(bytes(cap))

    def test_decode_error_is_a_value_error(self) -> None:
        assert issubclass(vfm.DecodeError, ValueError)

    def test_reserved_preserved_bits_and_unknown_features_are_accepted(self) -> None:
        # Forward compatibility (spec chapter 9): a later minor may define these bits.
        cap = _set(vfm.reset_value(), "host_features.reserved", 0x1234)
        cap = _set(cap, "control.reserved", 0x3FFF)
        cap = _set(cap, "version_minor", 7)
        view = vfm.decode_capability(cap)
        assert (view.host_features.reserved, view.control.reserved, view.version_minor) == (0x1234, 0x3FFF, 7)
        assert vfm.encode_capability(view) == cap


class TestEncode:
    def test_invalid_view_is_refused(self) -> None:
        view = vfm.decode_capability(vfm.reset_value())
        with pytest.raises(vfm.DecodeError, match="version_major"):
            vfm.encode_capability(view.replace(version_major=3))
        with pytest.raises(vfm.DecodeError, match="num_slots"):
            vfm.encode_capability(view.replace(devices=view.devices[:3]))
        with pytest.raises(vfm.DecodeError):
            vfm.encode_capability(view.replace(generation=1 << 32))

    def test_invalid_view_raises_encode_error(self) -> None:
        view = vfm.decode_capability(vfm.reset_value())
        with pytest.raises(vfm.EncodeError, match="version_major"):
            vfm.encode_capability(view.replace(version_major=3))

    @pytest.mark.parametrize(
        ("changes", "field", "says"),
        [
            pytest.param({"cap_next": 1.5}, "cap_next", "1.5 (a float) is not an integer", id="float"),
            pytest.param({"cap_next": 64.0}, "cap_next", "64.0 (a float) is not an integer", id="whole-float"),
            pytest.param({"page_shift": True}, "page_shift", "True is a bool", id="bool-in-number"),
            pytest.param({"ack_timeout_ms": "500"}, "ack_timeout_ms", "'500' (a str) is not an integer", id="str"),
            pytest.param({"generation": None}, "generation", "None is not an integer", id="none"),
            pytest.param({"generation": 1 << 32}, "generation", "4294967296 is outside 0..4294967295", id="too-big"),
            pytest.param({"cap_next": -1}, "cap_next", "-1 is outside 0..255", id="negative"),
            pytest.param({"mig_state": 9}, "mig_state", "9 is not a MigState value (IDLE=0", id="undefined-enum"),
            pytest.param(
                {"mig_state": vfm.DevState.PAUSED}, "mig_state", "DevState.PAUSED is not a MigState", id="other-enum"
            ),
            pytest.param({"mig_reason": False}, "mig_reason", "False (a bool) is not a MigReason", id="bool-in-enum"),
            pytest.param({"control": "enable"}, "control", "expected a Control, found 'enable' (a str)", id="register"),
            pytest.param({"num_slots": 3}, "num_slots", "is 3, but the view has 8 slot entries", id="slot-count"),
            pytest.param({"devices": None}, "devices", "expected a tuple of SlotEntry, found None", id="devices"),
            pytest.param({"num_slots": 0, "devices": ()}, "num_slots", "0 is outside 1..31", id="no-slots"),
            pytest.param({"cap_len": 0x44}, "cap_len", "is 68, but 8 slots make 64 bytes", id="cap-len"),
        ],
    )
    def test_bad_header_values_name_field_and_value(self, changes: dict[str, object], field: str, says: str) -> None:
        view = vfm.decode_capability(vfm.reset_value())
        with pytest.raises(vfm.EncodeError) as caught:
            vfm.encode_capability(view.replace(**changes))
        assert caught.value.field == field
        assert says in str(caught.value)

    @pytest.mark.parametrize(
        ("entry_changes", "field", "says"),
        [
            pytest.param(
                {"dev_ctrl": vfm.DevCtrl(9, 0)},  # type: ignore[arg-type]
                "device[2].dev_ctrl.drv_state",
                "9 is not a DriverReport value (NONE=0, READY=1, DIRTYING=2, PAUSED=3)",
                id="drv-state-9",
            ),
            pytest.param(
                {"dev_status": vfm.DevStatus(2, False, False, 0)},  # type: ignore[arg-type]
                "device[2].dev_status.migrated",
                "2 is outside 0..1, the range of a 1-bit field",
                id="flag-2",
            ),
            pytest.param(
                {"dev_status": vfm.DevStatus(True, False, False, 1.0)},  # type: ignore[arg-type]
                "device[2].dev_status.reserved",
                "1.0 (a float) is not an integer",
                id="reserved-float",
            ),
            pytest.param({"dev_devfn": 0x08}, "device[2].dev_devfn", "already entry 0's", id="devfn-twice"),
            pytest.param({"dev_state": "EMPTY"}, "device[2].dev_state", "'EMPTY' (a str) is not a DevState", id="name"),
        ],
    )
    def test_bad_slot_values_name_field_and_value(self, entry_changes: dict[str, Any], field: str, says: str) -> None:
        view = vfm.decode_capability(vfm.reset_value())
        entry = dataclasses.replace(view.devices[2], **entry_changes)
        with pytest.raises(vfm.EncodeError) as caught:
            vfm.encode_capability(view.replace(devices=(*view.devices[:2], entry, *view.devices[3:])))
        assert caught.value.field == field
        assert says in str(caught.value)

    @pytest.mark.parametrize("not_a_view", [None, b"\x09\x00\x40", {"cap_id": 9}])
    def test_something_that_is_not_a_view_is_refused(self, not_a_view: object) -> None:
        with pytest.raises(vfm.EncodeError, match="expected a Capability"):
            vfm.encode_capability(not_a_view)  # type: ignore[arg-type]

    def test_plain_values_that_mean_the_same_are_accepted(self) -> None:
        view = vfm.decode_capability(vfm.reset_value())
        flags = vfm.Control(enable=1, event_ie=0, reserved=0)  # type: ignore[arg-type]
        same = view.replace(mig_state=int(vfm.MigState.IDLE), control=flags, devices=list(view.devices))
        assert vfm.encode_capability(same) == vfm.encode_capability(view.replace(control=vfm.Control(True, False, 0)))

    def test_view_changes_land_in_the_right_bytes(self) -> None:
        view = vfm.decode_capability(vfm.reset_value())
        entry = dataclasses.replace(
            view.devices[2],
            dev_state=vfm.DevState.PAUSED,
            dev_ctrl=vfm.DevCtrl(vfm.DriverReport.PAUSED, 0),
        )
        changed = view.replace(
            mig_state=vfm.MigState.PAUSING, generation=0x01020304, devices=(*view.devices[:2], entry, *view.devices[3:])
        )
        cap = vfm.encode_capability(changed)
        assert cap[0x18] == vfm.MigState.PAUSING
        assert cap[0x1C:0x20] == bytes([4, 3, 2, 1])
        assert cap[slot_offset(2)] == vfm.DevState.PAUSED
        assert cap[slot_offset(2) + 1] == vfm.DriverReport.PAUSED


class TestViewMatchesLayout:
    """The typed view names exactly the layout's registers and fields."""

    def test_capability_attributes(self) -> None:
        names = [f.name for f in dataclasses.fields(vfm.Capability)]
        assert names == [r.name for r in HEADER_REGISTERS] + ["devices"]
        assert [f.name for f in dataclasses.fields(vfm.SlotEntry)] == [r.name for r in DEVICE_REGISTERS]

    @pytest.mark.parametrize("register", [r for r in (*HEADER_REGISTERS, *DEVICE_REGISTERS) if len(r.fields) > 1])
    def test_register_views(self, register: vfm.layout.Register) -> None:
        view_class = codec.REGISTER_VIEWS[register.name]
        assert [f.name for f in dataclasses.fields(view_class)] == [f.name for f in register.fields]


class TestRoundTrip:
    @given(valid_capabilities())
    def test_encode_of_decode_is_identity(self, cap: bytes) -> None:
        assert vfm.encode_capability(vfm.decode_capability(cap)) == cap

    @given(valid_capabilities(max_slots=4))
    def test_decode_of_encode_is_identity(self, cap: bytes) -> None:
        view = vfm.decode_capability(cap)
        assert vfm.decode_capability(vfm.encode_capability(view)) == view

    @given(valid_capabilities(max_slots=4), st.data())
    def test_field_value_reads_what_was_stored(self, cap: bytes, data: st.DataObject) -> None:
        placed = data.draw(st.sampled_from(list(placed_fields(cap[0x0A]))))
        assert vfm.field_value(cap, placed.path) == load(cap, placed)
        new_value = data.draw(st.integers(0, (1 << placed.field.width) - 1))
        changed = vfm.with_field(cap, placed.path, new_value)
        assert load(changed, placed) == new_value
        others = [p for p in placed_fields(cap[0x0A]) if p.path != placed.path]
        assert all(load(changed, p) == load(cap, p) for p in others)


# --- Garbage in a view: encode_capability raises EncodeError and nothing else.

_GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=300),
    st.floats(),
    st.complex_numbers(max_magnitude=10),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.lists(st.integers(0, 3), max_size=3),
    st.tuples(),
    st.sampled_from([*vfm.MigState, *vfm.MigReason, *vfm.DevState, *vfm.DriverReport, vfm.Access.RO]),
    st.builds(object),
    st.builds(vfm.Control, st.booleans(), st.booleans(), st.integers(0, 3)),
)


def _view_paths(num_slots: int) -> list[str]:
    """Every place of a view that holds a value: registers, their fields, slot entries and the devices tuple."""
    paths = ["devices"]
    for register in HEADER_REGISTERS:
        paths.append(register.name)
        if len(register.fields) > 1:
            paths.extend(f"{register.name}.{fld.name}" for fld in register.fields)
    for slot in range(num_slots):
        paths.append(f"device[{slot}]")
        for register in DEVICE_REGISTERS:
            paths.append(f"device[{slot}].{register.name}")
            if len(register.fields) > 1:
                paths.extend(f"device[{slot}].{register.name}.{fld.name}" for fld in register.fields)
    return paths


def _put(holder: object, names: list[str], value: object) -> object:
    """``holder`` with the value at the dotted ``names`` replaced (frozen dataclasses take anything)."""
    head, *rest = names
    new = value if not rest else _put(getattr(holder, head), rest, value)
    return dataclasses.replace(holder, **{head: new})  # type: ignore[type-var]


def _with_garbage(view: vfm.Capability, path: str, value: object) -> vfm.Capability:
    if not path.startswith("device["):
        result = _put(view, path.split("."), value)
    else:
        index, _, rest = path.removeprefix("device[").partition("]")
        devices: list[object] = list(view.devices)
        slot = int(index)
        devices[slot] = _put(devices[slot], rest.lstrip(".").split("."), value) if rest else value
        result = view.replace(devices=tuple(devices))
    assert isinstance(result, vfm.Capability)
    return result


_Argument = TypeVar("_Argument")
_Result = TypeVar("_Result")
_Error = TypeVar("_Error", bound=Exception)


def _result_or_error(
    function: Callable[[_Argument], _Result], argument: _Argument, error_type: type[_Error]
) -> _Result | _Error:
    """What ``function(argument)`` returns, or the ``error_type`` it raises (anything else fails the test)."""
    try:
        return function(argument)
    except error_type as error:
        return error


@settings(max_examples=400)
@given(valid_capabilities(max_slots=4), st.data())
def test_garbage_in_any_field_of_a_view_raises_only_encode_error(cap: bytes, data: st.DataObject) -> None:
    view = vfm.decode_capability(cap)
    paths = data.draw(st.lists(st.sampled_from(_view_paths(view.num_slots)), min_size=1, max_size=3, unique=True))
    # A path is longer than any path that holds it: fill the inside of a register or entry before replacing it.
    for path in sorted(paths, key=len, reverse=True):
        view = _with_garbage(view, path, data.draw(_GARBAGE, label=path))
    encoded = _result_or_error(vfm.encode_capability, view, vfm.EncodeError)
    if isinstance(encoded, vfm.EncodeError):
        assert encoded.field, "an EncodeError names the field"
        assert encoded.field in str(encoded)
    else:
        # Garbage that happens to mean a valid value must encode what it means.
        assert vfm.decode_capability(encoded) == view


# --- Fuzzing: random and mutated bytes give DecodeError or a valid capability, nothing else.

FUZZ_BATCHES = 250
FUZZ_PER_BATCH = 400
FUZZ_TOTAL = FUZZ_BATCHES * FUZZ_PER_BATCH


def _mutants(rng: random.Random, base: bytes, count: int) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(count):
        kind = rng.randrange(7)
        data = bytearray(base)
        if kind == 0:  # noise of any length, often around the interesting sizes
            length = rng.choice([rng.randrange(0, 300), len(base), 0x20, rng.randrange(0x1C, 0x24)])
            data = bytearray(rng.getrandbits(8) for _ in range(length))
        elif kind == 1:  # flip a few bits
            for _ in range(rng.randrange(1, 4)):
                position = rng.randrange(len(data))
                data[position] ^= 1 << rng.randrange(8)
        elif kind == 2:  # set a byte to a boundary value
            data[rng.randrange(len(data))] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x09, 0x20, 0x1F])
        elif kind == 3:  # truncate
            data = data[: rng.randrange(len(data))]
        elif kind == 4:  # extend
            data += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 12)))
        elif kind == 5:  # keep the frame consistent but change the slot count
            slots = rng.randrange(0, 40)
            data[0x0A] = slots
            data[0x02] = (0x20 + 4 * slots) & 0xFF
            data = (data + bytes(200))[: 0x20 + 4 * slots]
        else:  # splice a random run of bytes into the body
            start = rng.randrange(len(data))
            run = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 8)))
            data[start : start + len(run)] = run
        out.append(bytes(data))
    return out


def _decode_batch(base: bytes, seed: int) -> int:
    """Decode FUZZ_PER_BATCH mutants of ``base``; return how many inputs were tried."""
    rng = random.Random(seed)
    candidates = _mutants(rng, base, FUZZ_PER_BATCH)
    for candidate in candidates:
        view = _result_or_error(vfm.decode_capability, candidate, vfm.DecodeError)
        if isinstance(view, vfm.DecodeError):
            assert view.field, "a DecodeError names the field"
            assert 0 <= view.offset < 0x100, "a DecodeError names an offset inside config space"
        else:
            # Whatever decodes is a valid capability that encodes back to the same bytes.
            assert vfm.encode_capability(view) == candidate
    return len(candidates)


def test_random_and_mutated_bytes_only_raise_decode_error() -> None:
    """At least 100,000 inputs per run: each decodes cleanly or raises DecodeError, never anything else."""
    tried = 0

    @settings(max_examples=FUZZ_BATCHES, database=None)
    @given(base=valid_capabilities(max_slots=8), seed=st.integers(0, 2**32 - 1))
    def batch(base: bytes, seed: int) -> None:
        nonlocal tried
        tried += _decode_batch(base, seed)

    batch()
    assert tried >= 100_000
