"""What a config-space dump says about the migration capability, as data, text and JSON.

For ``vfmig decode`` and for tools that read ``lspci -xxx`` output: each
function of a dump becomes a :class:`FunctionReport` that tells whether it
carries the migration capability and, if it does, every field's value at
its config-space offset, with the names of enum values.  Problems with one
function (a broken capability list, an invalid capability, a dump too short
to hold capabilities) are part of its report, so one odd device does not
hide what the others say.  Problems with the text itself are
:class:`~vfmig_proto.errors.DumpError` from
:func:`~vfmig_proto.config_space.parse_lspci_functions`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vfmig_proto.codec import Capability, read_field
from vfmig_proto.config_space import (
    DumpedFunction,
    find_migration_capability,
    migration_capability,
    parse_lspci_functions,
    select_function,
)
from vfmig_proto.errors import DecodeError
from vfmig_proto.layout import Access, PlacedField, placed_fields
from vfmig_proto.pci import PCI_CONFIG_SIZE, PCI_STATUS, PCI_STATUS_CAP_LIST


def _devfn_text(value: int) -> str:
    return f"{value >> 3:02x}.{value & 7}"


_MEANINGS: Mapping[str, Callable[[int], str]] = {"dev_devfn": _devfn_text}
"""How to read fields whose number means something other than a count, by field name (enums aside)."""


@dataclass(frozen=True)
class DecodedField:
    """One field of the capability as found in a dump."""

    path: str
    """The layout's name for it: ``"mig_state"``, ``"device[1].dev_ctrl.drv_state"``."""
    name: str
    """The field's own name (``"drv_state"``)."""
    register: str
    slot: int | None
    offset: int
    """Config-space offset of the register that holds the field (as lspci numbers the dump's bytes)."""
    access: Access
    value: int
    meaning: str | None
    """The enum member's name (``"PAUSED"``), or another reading of the number (a devfn as ``"01.0"``)."""
    is_flag: bool
    is_reserved: bool


@dataclass(frozen=True)
class FunctionReport:
    """What one function's dump says about the migration capability."""

    function: DumpedFunction
    capability_offset: int | None
    """Where the capability is, None if the function has none (or it could not be looked for)."""
    capability: Capability | None
    fields: tuple[DecodedField, ...]
    problem: str | None
    """Why the function could not be decoded, in the user's terms (without its name); None when it could."""

    @property
    def has_capability(self) -> bool | None:
        """Whether the function carries the migration capability; None if the dump cannot tell."""
        if self.capability_offset is not None:
            return True
        return None if self.problem else False


def _decoded_field(config: bytes, base: int, placed: PlacedField) -> DecodedField:
    fld = placed.field
    value = read_field(config, placed, base)
    meaning = fld.values(value).name if fld.values is not None else None
    if fld.name in _MEANINGS:
        meaning = _MEANINGS[fld.name](value)
    return DecodedField(
        path=placed.path,
        name=fld.name,
        register=placed.register.name,
        slot=placed.slot,
        offset=base + placed.offset,
        access=fld.access,
        value=value,
        meaning=meaning,
        is_flag=fld.width == 1 and not fld.is_reserved,
        is_reserved=fld.is_reserved,
    )


def _too_short(function: DumpedFunction) -> str | None:
    config = function.config
    if len(config) >= PCI_CONFIG_SIZE or not config[PCI_STATUS] & PCI_STATUS_CAP_LIST:
        return None
    # Unprivileged lspci -xxx prints only the standard header too.
    return (
        f"the dump has {len(config)} of {PCI_CONFIG_SIZE} bytes, too few to hold its capabilities; "
        "use lspci -xxx as root"
    )


def decode_function(function: DumpedFunction) -> FunctionReport:
    """The migration capability of ``function``, decoded, or why it has none or cannot be decoded."""
    problem = _too_short(function)
    if problem is not None:
        return FunctionReport(function, None, None, (), problem)
    try:
        offset = find_migration_capability(function.config)
    except DecodeError as exc:
        return FunctionReport(function, None, None, (), f"its capability list is broken: {exc.problem}")
    if offset is None:
        return FunctionReport(function, None, None, (), None)
    try:
        _, capability = migration_capability(function.config)
    except DecodeError as exc:
        where = f"{exc.field} at 0x{offset + exc.offset:02x}"
        problem = f"the migration capability at 0x{offset:02x} is invalid: {where}: {exc.problem}"
        return FunctionReport(function, offset, None, (), problem)
    fields = tuple(_decoded_field(function.config, offset, placed) for placed in placed_fields(capability.num_slots))
    return FunctionReport(function, offset, capability, fields, None)


def decode_dump(text: str, slot: str | None = None) -> list[FunctionReport]:
    """A report on every function in lspci text, or on the one at ``slot`` (``BB:DD.F``).

    :class:`~vfmig_proto.errors.DumpError` when the text is not a whole dump
    or holds no function at ``slot``; a problem with one function is in its
    report instead.
    """
    functions = parse_lspci_functions(text)
    if slot is not None:
        functions = [select_function(functions, slot)]
    return [decode_function(function) for function in functions]


def problems_line(reports: Sequence[FunctionReport]) -> str | None:
    """One line naming the first function that could not be decoded and how many others; None if none."""
    problems = [f"{report.function.name}: {report.problem}" for report in reports if report.problem]
    if not problems:
        return None
    others = len(problems) - 1
    return problems[0] + (f" (and {others} more device{'s' * (others > 1)} could not be decoded)" if others else "")


# ---------------------------------------------------------------------------
# JSON


def _field_json(field: DecodedField) -> dict[str, Any]:
    return {
        "field": field.path,
        "offset": field.offset,
        "access": field.access.value,
        "value": field.value,
        "meaning": field.meaning,
    }


def _function_json(report: FunctionReport) -> dict[str, Any]:
    capability = report.capability
    return {
        "slot": report.function.slot,
        "title": report.function.title,
        "config_bytes": len(report.function.config),
        "migration_capability": report.has_capability,
        "capability_offset": report.capability_offset,
        "num_slots": capability.num_slots if capability else None,
        "fields": [_field_json(field) for field in report.fields],
        "problem": report.problem,
    }


def report_json(reports: Sequence[FunctionReport]) -> dict[str, Any]:
    """One JSON document for every function of a dump."""
    return {
        "devices": [_function_json(report) for report in reports],
        "with_migration_capability": sum(report.has_capability is True for report in reports),
        "problems": sum(report.problem is not None for report in reports),
    }


# ---------------------------------------------------------------------------
# Text, as lspci writes flags (``enable+``, ``event-``).


_LARGEST_DIGIT = 9
"""Values up to 9 read the same in decimal and hexadecimal; larger ones are given in both."""


def _number(value: int) -> str:
    return f"0x{value:x} ({value})" if value > _LARGEST_DIGIT else str(value)


def _value_text(field: DecodedField) -> str:
    if field.meaning is None:
        return _number(field.value)
    # An enum's number is what a register dump shows; a devfn's "01.0" says all its number does.
    return f"{field.meaning} ({field.value})" if field.register != "dev_devfn" else field.meaning


def _part_text(field: DecodedField) -> str:
    if field.is_flag:
        return f"{field.name}{'+' if field.value else '-'}"
    return f"{field.name}={_value_text(field)}"


def _shown(fields: Sequence[DecodedField]) -> list[DecodedField]:
    # Reserved bits are noise unless something set them.
    return [field for field in fields if not field.is_reserved or field.value]


def _register_lines(fields: Sequence[DecodedField]) -> list[str]:
    # One line per header register, one line per slot entry (all its registers).
    groups: dict[str, list[DecodedField]] = {}
    for field in fields:
        groups.setdefault(field.register if field.slot is None else f"device[{field.slot}]", []).append(field)
    lines = []
    for label, members in groups.items():
        if len(members) == 1:
            text = _value_text(members[0])
        else:
            text = " ".join(_part_text(field) for field in _shown(members))
        lines.append(f"    0x{members[0].offset:02x}  {label:<15} {text}")
    return lines


def _function_lines(report: FunctionReport) -> list[str]:
    function = report.function
    lines = [function.title or f"{function.name} (the dump has no title line)"]
    capability = report.capability
    if report.problem is not None:
        lines.append(f"  cannot decode: {report.problem}")
    elif capability is None or report.capability_offset is None:
        lines.append("  no migration capability")
    else:
        lines.append(
            f"  migration capability at 0x{report.capability_offset:02x}: {capability.cap_len} bytes, "
            f"version {capability.version_major}.{capability.version_minor}, {capability.num_slots} slots, "
            f"{capability.mig_state.name}"
        )
        lines.extend(_register_lines(report.fields))
    return lines


def report_text(reports: Sequence[FunctionReport]) -> str:
    """Every function of a dump, as ``vfmig decode`` prints them."""
    blocks = ["\n".join(_function_lines(report)) for report in reports]
    if len(reports) > 1:
        found = sum(report.has_capability is True for report in reports)
        blocks.append(f"{len(reports)} devices, {found} with the migration capability")
    return "\n\n".join(blocks) + "\n"
