"""Decode and encode the migration capability (spec §3).

The Construct structure is built from :mod:`vfmig_proto.layout`: one
Construct field per layout field, carrying the field's doc, with the state
enums as Construct ``Enum`` fields.  Decoding is strict: every problem becomes
a :class:`~vfmig_proto.errors.DecodeError` naming the field and byte offset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

import construct as cs

from vfmig_proto.errors import DecodeError, EncodeError
from vfmig_proto.layout import (
    DEVICE_REGISTERS,
    HEADER_REGISTERS,
    VFM_HEADER_SIZE,
    VFM_MAX_PAGE_SHIFT,
    VFM_MAX_SLOTS,
    VFM_MIN_PAGE_SHIFT,
    VFM_MIN_SLOTS,
    VFM_VERSION_MAJOR,
    Access,
    CapabilityParams,
    Field,
    PlacedField,
    Register,
    capability_length,
    placed_fields,
    slot_offset,
)
from vfmig_proto.states import DevState, DriverReport, MigReason, MigState

# ---------------------------------------------------------------------------
# The typed, read-only view.  Its attribute names are the layout's register
# and field names (a test keeps them in step with vfmig_proto.layout).


@dataclass(frozen=True)
class Features:
    """``HOST_FEATURES`` or ``GUEST_FEATURES``."""

    dma_dirty: bool
    pause_resume: bool
    reset_domain: bool
    migrated_flag: bool
    reserved: int


@dataclass(frozen=True)
class Control:
    """``CONTROL``."""

    enable: bool
    event_ie: bool
    reserved: int


@dataclass(frozen=True)
class Status:
    """``STATUS``."""

    event: bool
    reserved: int


@dataclass(frozen=True)
class DevCtrl:
    """A slot's ``DEV_CTRL``."""

    drv_state: DriverReport
    reserved: int


@dataclass(frozen=True)
class DevStatus:
    """A slot's ``DEV_STATUS``."""

    migrated: bool
    reset: bool
    protocol_error: bool
    reserved: int


@dataclass(frozen=True)
class SlotEntry:
    """One slot entry: the state of the function that ``dev_devfn`` names, behind the bridge."""

    dev_state: DevState
    dev_ctrl: DevCtrl
    dev_status: DevStatus
    dev_devfn: int


@dataclass(frozen=True)
class Capability:
    """Every field of a migration capability, decoded."""

    cap_id: int
    cap_next: int
    cap_len: int
    cfg_type: int
    signature: int
    version_major: int
    version_minor: int
    num_slots: int
    page_shift: int
    host_features: Features
    guest_features: Features
    control: Control
    status: Status
    mig_state: MigState
    mig_reason: MigReason
    ack_timeout_ms: int
    generation: int
    devices: tuple[SlotEntry, ...]

    def replace(self, **changes: Any) -> Capability:
        """A copy with ``changes`` applied (the view itself is immutable)."""
        return dataclasses.replace(self, **changes)


REGISTER_VIEWS: Mapping[str, type[Any]] = {
    "host_features": Features,
    "guest_features": Features,
    "control": Control,
    "status": Status,
    "dev_ctrl": DevCtrl,
    "dev_status": DevStatus,
}
"""View class of each register that has more than one field."""


# ---------------------------------------------------------------------------
# Construct structure, derived from the layout.

_INT_BY_SIZE: Mapping[int, cs.Construct[int, int]] = {1: cs.Int8ul, 2: cs.Int16ul, 4: cs.Int32ul}


def _field_construct(fld: Field) -> cs.Construct[Any, Any]:
    if fld.values is not None:
        return cs.Enum(cs.BitsInteger(fld.width), fld.values)
    return cs.BitsInteger(fld.width)


def _register_construct(register: Register) -> cs.Construct[Any, Any]:
    if len(register.fields) == 1:
        (only,) = register.fields
        body: cs.Construct[Any, Any] = _INT_BY_SIZE[register.size]
        if only.values is not None:
            body = cs.Enum(body, only.values)
        return cs.Renamed(body, newname=register.name, newdocs=register.doc)
    # Construct reads bits most-significant first; PCI registers are little-endian.
    bits = cs.BitStruct(
        *(
            cs.Renamed(_field_construct(fld), newname=fld.name, newdocs=fld.doc)
            for fld in sorted(register.fields, key=lambda f: f.lsb, reverse=True)
        )
    )
    body = cs.ByteSwapped(bits) if register.size > 1 else bits
    return cs.Renamed(body, newname=register.name, newdocs=register.doc)


SLOT_ENTRY = cs.Struct(*(_register_construct(register) for register in DEVICE_REGISTERS))
"""Construct definition of one slot entry."""

CAPABILITY = cs.Struct(
    *(_register_construct(register) for register in HEADER_REGISTERS),
    "devices" / cs.Array(cs.this.num_slots, SLOT_ENTRY),
)
"""Construct definition of the whole capability."""

_COMPILED = CAPABILITY.compile()


# ---------------------------------------------------------------------------
# Validation on raw integers, shared by decode and encode.


@cache
def _placed(num_slots: int) -> tuple[PlacedField, ...]:
    return tuple(placed_fields(num_slots))


@cache
def _placed_by_path(num_slots: int) -> Mapping[str, PlacedField]:
    return {placed.path: placed for placed in _placed(num_slots)}


def _read(data: bytes, placed: PlacedField) -> int:
    size = placed.register.size
    word = int.from_bytes(data[placed.offset : placed.offset + size], "little")
    return (word & placed.field.mask) >> placed.field.lsb


def find_field(num_slots: int, path: str) -> PlacedField:
    """Where the field at ``path`` (``"mig_state"``, ``"device[1].dev_ctrl.drv_state"``) lives.

    For code that reads and writes single fields in place, as a bridge or a
    guest driver does, without decoding the whole capability.
    """
    try:
        return _placed_by_path(num_slots)[path]
    except KeyError:
        raise KeyError(f"no field {path!r} in a capability with {num_slots} slots") from None


def read_field(data: bytes | bytearray, placed: PlacedField, base: int = 0) -> int:
    """The value of ``placed`` in ``data``, whose capability starts at ``base``."""
    start = base + placed.offset
    word = int.from_bytes(data[start : start + placed.register.size], "little")
    return (word & placed.field.mask) >> placed.field.lsb


def store_field(data: bytearray, placed: PlacedField, value: int, base: int = 0) -> None:
    """Set ``placed`` to ``value`` in ``data``, whose capability starts at ``base`` (no access rules)."""
    fld = placed.field
    if not 0 <= value <= fld.mask >> fld.lsb:
        raise ValueError(f"{placed.path}: value {value} does not fit in {fld.width} bits")
    start = base + placed.offset
    size = placed.register.size
    word = int.from_bytes(data[start : start + size], "little")
    word = (word & ~fld.mask) | (value << fld.lsb)
    data[start : start + size] = word.to_bytes(size, "little")


def _lookup(data: bytes, path: str) -> PlacedField:
    return find_field(check_frame(data), path)


def _check_field(placed: PlacedField, value: int) -> None:
    fld = placed.field
    if fld.access is Access.RSVDZ and value != 0:
        raise DecodeError(placed.path, placed.offset, f"reserved bits must be zero, found 0x{value:x}")
    if fld.values is not None and value not in fld.values._value2member_map_:
        raise DecodeError(placed.path, placed.offset, f"unknown {fld.values.__name__} value {value}")
    if fld.const and value != fld.reset:
        raise DecodeError(placed.path, placed.offset, f"must be 0x{fld.reset:x}, found 0x{value:x}")


def check_frame(data: bytes) -> int:
    """Check the size fields (buffer length, ``num_slots``, ``cap_len``); return the slot count.

    Raises :class:`DecodeError` when they disagree.  Field values are not
    checked: see :func:`validate`.
    """
    if len(data) < VFM_HEADER_SIZE:
        raise DecodeError(
            "cap_len", 0x02, f"buffer of {len(data)} bytes is shorter than the {VFM_HEADER_SIZE}-byte header"
        )
    num_slots = data[0x0A]
    if not VFM_MIN_SLOTS <= num_slots <= VFM_MAX_SLOTS:
        raise DecodeError("num_slots", 0x0A, f"{num_slots} is outside {VFM_MIN_SLOTS}..{VFM_MAX_SLOTS}")
    expected = capability_length(num_slots)
    if data[0x02] != expected:
        raise DecodeError("cap_len", 0x02, f"is {data[0x02]}, but {num_slots} slots make {expected} bytes")
    if len(data) != expected:
        raise DecodeError("cap_len", 0x02, f"buffer holds {len(data)} bytes, the capability {expected}")
    return num_slots


def _in_range(low: int, high: int, what: str) -> Callable[[int], str | None]:
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"{what} {value} is outside {low}..{high}"

    return check


def _known_major(value: int) -> str | None:
    return (
        None if value == VFM_VERSION_MAJOR else f"unknown major version {value}; this decoder knows {VFM_VERSION_MAJOR}"
    )


_VALUE_CHECKS: Mapping[str, Callable[[int], str | None]] = {
    "version_major": _known_major,
    "page_shift": _in_range(VFM_MIN_PAGE_SHIFT, VFM_MAX_PAGE_SHIFT, "page shift"),
    "ack_timeout_ms": _in_range(1, 0xFFFF, "acknowledgement deadline"),
}
"""Rules on single header fields that the access type and value enum do not express."""


_DEVFN_OFFSET = next(register.offset for register in DEVICE_REGISTERS if register.name == "dev_devfn")


def _check_unique_devfns(data: bytes, num_slots: int) -> None:
    described: dict[int, int] = {}
    for slot in range(num_slots):
        offset = slot_offset(slot) + _DEVFN_OFFSET
        first = described.setdefault(data[offset], slot)
        if first != slot:
            raise DecodeError(
                f"device[{slot}].dev_devfn", offset, f"devfn 0x{data[offset]:02x} is already entry {first}'s"
            )


def validate(data: bytes) -> None:
    """Raise :class:`DecodeError` unless ``data`` is a valid capability.

    Fields are checked in offset order, so the error names the first bad field.
    """
    num_slots = check_frame(data)
    for placed in _placed(num_slots):
        value = _read(data, placed)
        _check_field(placed, value)
        value_check = _VALUE_CHECKS.get(placed.path)
        if value_check is not None and (problem := value_check(value)) is not None:
            raise DecodeError(placed.path, placed.offset, problem)
    _check_unique_devfns(data, num_slots)


# ---------------------------------------------------------------------------
# Conversion between Construct containers and the typed view.


def _convert(fld: Field, raw: Any) -> Any:
    value = int(raw)
    if fld.values is not None:
        return fld.values(value)
    if fld.width == 1 and not fld.is_reserved:
        return bool(value)
    return value


def _register_view(register: Register, raw: Any) -> Any:
    if len(register.fields) == 1:
        return _convert(register.fields[0], raw)
    view_class = REGISTER_VIEWS[register.name]
    return view_class(**{fld.name: _convert(fld, raw[fld.name]) for fld in register.fields})


def decode_capability(data: bytes) -> Capability:
    """Decode a migration capability strictly.

    ``data`` must hold exactly the capability (``cap_len`` bytes, starting at
    the capability ID).  Raises :class:`DecodeError` for a short or long
    buffer, a wrong ID, type, signature or length, an unknown major version,
    reserved-zero bits set, an out-of-range value or an unknown enum value.
    """
    data = bytes(data)
    validate(data)
    parsed = _COMPILED.parse(data)
    header = {register.name: _register_view(register, parsed[register.name]) for register in HEADER_REGISTERS}
    devices = tuple(
        SlotEntry(**{register.name: _register_view(register, entry[register.name]) for register in DEVICE_REGISTERS})
        for entry in parsed.devices
    )
    return Capability(**header, devices=devices)


def encode_capability(view: Capability) -> bytes:
    """Encode ``view``; ``encode_capability(decode_capability(b)) == b`` for every valid ``b``.

    Raises :class:`~vfmig_proto.errors.EncodeError`, and nothing else, when
    the view does not describe a valid capability: a value of the wrong type
    or out of its field's range, an undefined enum value, slot entries that
    ``num_slots`` does not count, or anything decoding would refuse.

    What each field accepts: an ``int`` (not a ``bool``) in its range; a
    one-bit flag also takes a ``bool``; an enum field takes a member of its
    own enum or an ``int`` that enum defines.  Floats are refused even when
    whole: a view is built from decoded values, and a float in one is a bug
    worth hearing about.
    """
    container = _checked_container(view)
    data = _COMPILED.build(container)
    try:
        validate(data)
    except DecodeError as exc:
        raise EncodeError(exc.field, exc.offset, exc.problem) from None
    return bytes(data)


# ---------------------------------------------------------------------------
# Checking a view before it is encoded: each value is judged where the view holds it.


_LONGEST_DESCRIPTION = 40
"""Characters of a value's repr that an error message quotes before it cuts it short with "..."."""


def _describe(value: object) -> str:
    """``value`` as a user would recognise it in an error message."""
    if isinstance(value, Enum):
        return f"{type(value).__name__}.{value.name}"
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    text = repr(value)
    if len(text) > _LONGEST_DESCRIPTION:
        text = text[: _LONGEST_DESCRIPTION - len("...")] + "..."
    return f"{text} (a {type(value).__name__})"


def _expect(value: object, view_class: type[Any], path: str, offset: int) -> None:
    if not isinstance(value, view_class):
        raise EncodeError(path, offset, f"expected a {view_class.__name__}, found {_describe(value)}")


def _enum_raw(placed: PlacedField, value: object) -> int:
    enum = placed.field.values
    assert enum is not None
    if isinstance(value, enum):
        return int(value)
    if isinstance(value, Enum | bool) or not isinstance(value, int):
        raise EncodeError(placed.path, placed.offset, f"{_describe(value)} is not a {enum.__name__}")
    if value not in enum._value2member_map_:
        names = ", ".join(f"{member.name}={int(member)}" for member in enum)
        raise EncodeError(placed.path, placed.offset, f"{value} is not a {enum.__name__} value ({names})")
    return value


def _is_flag(fld: Field) -> bool:
    return fld.width == 1 and not fld.is_reserved


def _field_raw(placed: PlacedField, value: object) -> int:
    """The integer that ``value`` stands for in ``placed``; :class:`EncodeError` if it stands for none."""
    fld = placed.field
    if fld.values is not None:
        return _enum_raw(placed, value)
    if isinstance(value, bool) and not _is_flag(fld):
        raise EncodeError(placed.path, placed.offset, f"{value} is a bool; this field holds a number")
    if not isinstance(value, int):
        kind = "True, False, 0 or 1" if _is_flag(fld) else "an integer"
        raise EncodeError(placed.path, placed.offset, f"{_describe(value)} is not {kind}")
    highest = (1 << fld.width) - 1
    if not 0 <= value <= highest:
        raise EncodeError(
            placed.path, placed.offset, f"{value} is outside 0..{highest}, the range of a {fld.width}-bit field"
        )
    return int(value)


def _register_value(placed: tuple[PlacedField, ...], holder: object) -> Any:
    """Construct's value of one register, read from ``holder`` (the Capability or SlotEntry holding it)."""
    first = placed[0]
    value = getattr(holder, first.register.name)
    if len(placed) == 1:
        return _field_raw(first, value)
    register_path = first.path.rsplit(".", 1)[0]
    _expect(value, REGISTER_VIEWS[first.register.name], register_path, first.offset)
    return {item.field.name: _field_raw(item, getattr(value, item.field.name)) for item in placed}


def _by_register(fields: tuple[PlacedField, ...]) -> list[tuple[PlacedField, ...]]:
    groups: dict[tuple[int | None, str], list[PlacedField]] = {}
    for placed in fields:
        groups.setdefault((placed.slot, placed.register.name), []).append(placed)
    return [tuple(group) for group in groups.values()]


def _slot_entries(view: Capability, num_slots: int) -> tuple[Any, ...]:
    devices = view.devices
    if not isinstance(devices, tuple | list):
        raise EncodeError("devices", VFM_HEADER_SIZE, f"expected a tuple of SlotEntry, found {_describe(devices)}")
    if len(devices) != num_slots:
        raise EncodeError("num_slots", 0x0A, f"is {num_slots}, but the view has {len(devices)} slot entries")
    for slot, entry in enumerate(devices):
        _expect(entry, SlotEntry, f"device[{slot}]", slot_offset(slot))
    return tuple(devices)


def _checked_container(view: Capability) -> dict[str, Any]:
    """Construct's container for ``view``, every value checked for type and range first."""
    _expect(view, Capability, "capability", 0)
    container = {group[0].register.name: _register_value(group, view) for group in _by_register(_placed(0))}
    # Slot entries are placed by their count in the view; num_slots must agree with it.
    entries = _slot_entries(view, container["num_slots"])
    devices: list[dict[str, Any]] = [{} for _ in entries]
    for group in _by_register(tuple(placed for placed in _placed(len(entries)) if placed.slot is not None)):
        slot = group[0].slot
        assert slot is not None
        devices[slot][group[0].register.name] = _register_value(group, entries[slot])
    container["devices"] = devices
    return container


def reset_value(params: CapabilityParams | None = None) -> bytes:
    """The capability's bytes as a bridge presents them after reset.

    Every slot is ``EMPTY``: the bridge marks the slots that hold a function
    ``UNBOUND`` when it presents them (a ``HOT_ADD`` event).
    """
    params = params or CapabilityParams()
    data = bytearray(params.length)
    for placed in placed_fields(params.num_slots):
        reset = placed.field.reset
        value = int(reset) if isinstance(reset, int) else params.value_of(reset, placed.slot)
        _store(data, placed, value)
    validate(bytes(data))
    return bytes(data)


def _store(data: bytearray, placed: PlacedField, value: int) -> None:
    size = placed.register.size
    offset = placed.offset
    word = int.from_bytes(data[offset : offset + size], "little")
    word = (word & ~placed.field.mask) | ((value << placed.field.lsb) & placed.field.mask)
    data[offset : offset + size] = word.to_bytes(size, "little")


def field_value(data: bytes, path: str) -> int:
    """The raw value of the field at ``path`` (``"mig_state"``, ``"device[1].dev_ctrl.drv_state"``).

    Needs only a valid frame (size and slot count), not valid field values:
    a bridge reads a guest's write before it judges it.
    """
    return _read(data, _lookup(data, path))


def with_field(data: bytes, path: str, value: int) -> bytes:
    """``data`` with the field at ``path`` set to ``value``: the host's side, no access rules."""
    placed = _lookup(data, path)
    if not 0 <= value <= placed.field.mask >> placed.field.lsb:
        raise ValueError(f"{path}: value {value} does not fit in {placed.field.width} bits")
    out = bytearray(data)
    _store(out, placed, value)
    return bytes(out)
