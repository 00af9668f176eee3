"""The capability's registers as named numbers: a C header in the style of Linux ``pci_regs.h``, and the same
names as the Python module :mod:`vfmig_proto.registers`.

Both are generated from :mod:`vfmig_proto.layout` and the state enums through
one list, :func:`register_definitions`, so the C and Python names cannot
disagree.  For device models, firmware and hypervisors written in C::

    vfmig c-header > vfmig_regs.h

and, after a change to the layout, for the Python module checked in next to
this one::

    python -m vfmig_proto.c_header --python -o vfmig_proto/registers.py

Offsets are ``VFM_<REG>``, field masks ``VFM_<REG>_<FIELD>`` with
``VFM_<REG>_<FIELD>_SHIFT``, values ``VFM_<ENUM>_<MEMBER>``.  Slot-entry
register offsets count from the entry; in C ``VFM_SLOT(n)`` is the entry's
offset (in Python :func:`vfmig_proto.layout.slot_offset`).  The feature bits,
the same in ``HOST_FEATURES`` and ``GUEST_FEATURES``, come from one table
(:data:`vfmig_proto.layout.FEATURES`) under both registers' names.

``VFM_SIGNATURE``, ``VFM_VERSION_MAJOR`` and ``VFM_VERSION_MINOR`` are
register *offsets*, in Python as in C; the values those registers hold are
``VFM_SIGNATURE_VALUE``, ``VFM_PROTOCOL_MAJOR`` and ``VFM_PROTOCOL_MINOR``
(in :mod:`vfmig_proto.layout` they are named ``VFM_SIGNATURE``,
``VFM_VERSION_MAJOR`` and ``VFM_VERSION_MINOR``).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from vfmig_proto.layout import (
    DEVICE_REGISTERS,
    FEATURE_REGISTERS,
    FEATURES,
    HEADER_REGISTERS,
    VFM_CFG_TYPE_MIGRATION,
    VFM_DEFAULT_ACK_TIMEOUT_MS,
    VFM_HEADER_SIZE,
    VFM_MAX_SLOTS,
    VFM_MIN_SLOTS,
    VFM_SIGNATURE,
    VFM_SLOT_ENTRY_SIZE,
    VFM_VERSION_MAJOR,
    VFM_VERSION_MINOR,
    Register,
)
from vfmig_proto.pci import PCI_CAP_ID_VNDR
from vfmig_proto.states import DevState, DriverReport, MigReason, MigState

GUARD = "VFMIG_REGS_H"

REGENERATE_PYTHON = "python -m vfmig_proto.c_header --python -o vfmig_proto/registers.py"
"""The command that rewrites :mod:`vfmig_proto.registers` from the layout (run from the repository root)."""

_ENUM_PREFIXES: tuple[tuple[str, type[IntEnum]], ...] = (
    ("VFM_MIG_STATE", MigState),
    ("VFM_MIG_REASON", MigReason),
    ("VFM_DEV_STATE", DevState),
    ("VFM_DRV_STATE", DriverReport),
)

_HEX_DIGITS_BYTE = 2
_HEX_DIGITS_DWORD = 8
_NIBBLES_PER_BYTE = 2
_BITS_PER_BYTE = 8
_PYTHON_LINE_LENGTH = 120
"""ruff's line length for this project (pyproject.toml)."""


@dataclass(frozen=True)
class Definition:
    """One named number of the register interface, as the C header and :mod:`vfmig_proto.registers` state it."""

    name: str
    value: int
    comment: str = ""
    hex_digits: int = 0
    """Written in hexadecimal with this many digits; 0 writes it in decimal."""
    unsigned: bool = False
    """A mask or a 32-bit pattern: C writes it with a ``U`` suffix so that shifts and ``~`` stay unsigned."""
    doc: str = ""
    """What it is, in words: the Python module's docstring (C keeps to ``comment``, as Python does without a doc)."""
    aliases: tuple[str, ...] = ()
    """Further names of the same number: Python binds them in the same statement, C defines each of them."""

    @property
    def names(self) -> tuple[str, ...]:
        """The name and its aliases."""
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Section:
    """Definitions under one heading (``title`` is empty for the protocol constants at the top)."""

    title: str
    definitions: tuple[Definition, ...]


def _protocol_constants() -> tuple[Definition, ...]:
    return (
        Definition("VFM_PROTOCOL_MAJOR", VFM_VERSION_MAJOR, "value of VFM_VERSION_MAJOR"),
        Definition("VFM_PROTOCOL_MINOR", VFM_VERSION_MINOR, "value of VFM_VERSION_MINOR"),
        Definition("VFM_CAP_ID_VNDR", PCI_CAP_ID_VNDR, "PCI vendor-specific capability", _HEX_DIGITS_BYTE),
        Definition(
            "VFM_CFG_TYPE_MIGRATION",
            VFM_CFG_TYPE_MIGRATION,
            hex_digits=_HEX_DIGITS_BYTE,
            doc="Value of VFM_CFG_TYPE that identifies this protocol's vendor-specific capability.",
        ),
        Definition(
            "VFM_SIGNATURE_VALUE",
            VFM_SIGNATURE,
            '"VFMG", value of VFM_SIGNATURE',
            _HEX_DIGITS_DWORD,
            unsigned=True,
            doc='Value of VFM_SIGNATURE: "VFMG" in byte order, read as a little-endian 32-bit value.',
        ),
        Definition(
            "VFM_DEFAULT_ACK_TIMEOUT_MS",
            VFM_DEFAULT_ACK_TIMEOUT_MS,
            doc="Default deadline in milliseconds for a driver to answer a request (spec §8).",
        ),
        Definition(
            "VFM_HEADER_SIZE", VFM_HEADER_SIZE, hex_digits=_HEX_DIGITS_BYTE, doc="Bytes before the first slot entry."
        ),
        Definition("VFM_SLOT_ENTRY_SIZE", VFM_SLOT_ENTRY_SIZE, "bytes per slot entry: the stride of VFM_SLOT(n)"),
        Definition("VFM_MIN_SLOTS", VFM_MIN_SLOTS, doc="Fewest slot entries a capability has (NUM_SLOTS)."),
        Definition("VFM_MAX_SLOTS", VFM_MAX_SLOTS, doc="Most slot entries a capability has (NUM_SLOTS)."),
    )


def _register_definitions(register: Register) -> list[Definition]:
    """The register's offset and, for a register of several fields, each defined field's mask and shift."""
    accesses = "/".join(dict.fromkeys(fld.access.value for fld in register.fields))
    width = f"{register.size * _BITS_PER_BYTE}-bit {accesses}"
    definitions = [
        Definition(register.c_name, register.offset, width, _HEX_DIGITS_BYTE, doc=f"{width}. {register.doc}")
    ]
    if len(register.fields) == 1 or register.name in FEATURE_REGISTERS:
        return definitions
    for fld in sorted(register.fields, key=lambda f: f.lsb):
        if fld.is_reserved:
            continue
        name = f"{register.c_name}_{fld.name.upper()}"
        digits = register.size * _NIBBLES_PER_BYTE
        definitions.append(
            Definition(name, fld.mask, fld.access.value, digits, unsigned=True, doc=f"{fld.access.value}. {fld.doc}")
        )
        if fld.width > 1 or fld.values is not None:
            definitions.append(Definition(f"{name}_SHIFT", fld.lsb, doc=f"Bit position of {name}."))
    return definitions


def _feature_section() -> Section:
    """The feature bits, once for both registers that hold them: they are the same bits."""
    host, guest = (f"VFM_{name.upper()}" for name in FEATURE_REGISTERS)
    return Section(
        f"Feature bits, the same in {host} (RO, offered) and {guest} (RW, accepted).",
        tuple(
            Definition(
                f"{host}_{feature.name.upper()}",
                feature.mask,
                hex_digits=_HEX_DIGITS_DWORD,
                unsigned=True,
                doc=f"{feature.doc[:1].upper()}{feature.doc[1:]}",
                aliases=(f"{guest}_{feature.name.upper()}",),
            )
            for feature in FEATURES
        ),
    )


def _registers_section(title: str, registers: tuple[Register, ...]) -> Section:
    return Section(title, tuple(d for register in registers for d in _register_definitions(register)))


def register_definitions() -> tuple[Section, ...]:
    """Every named number of the register interface, in the order the C header and Python module give them."""
    return (
        Section("", _protocol_constants()),
        _registers_section("Capability header: offsets from the capability's first byte.", HEADER_REGISTERS),
        _feature_section(),
        _registers_section("Slot entry: offsets from VFM_SLOT(n).", DEVICE_REGISTERS),
        *(
            Section(
                f"{enum_class.__name__} values.",
                tuple(
                    Definition(f"{prefix}_{member.name}", member.value, doc=f"{enum_class.__name__}.{member.name}.")
                    for member in enum_class
                ),
            )
            for prefix, enum_class in _ENUM_PREFIXES
        ),
    )


# ---------------------------------------------------------------------------------------------------- C


def _define(name: str, value: str, comment: str = "") -> str:
    line = f"#define {name:<40} {value}"
    return f"{line}  /* {comment} */" if comment else line


def _c_literal(definition: Definition) -> str:
    if not definition.hex_digits:
        return str(definition.value)
    return f"0x{definition.value:0{definition.hex_digits}x}" + ("U" if definition.unsigned else "")


_C_MACROS = (
    _define("VFM_SLOT(n)", "(VFM_HEADER_SIZE + VFM_SLOT_ENTRY_SIZE * (n))", "offset of slot entry n"),
    _define("VFM_CAP_LENGTH(slots)", "VFM_SLOT(slots)", "value of VFM_CAP_LEN"),
)
"""Function-like macros, which only C has (Python has ``layout.slot_offset`` and ``layout.capability_length``)."""


def c_header() -> str:
    """The header's text."""
    out = [
        "/* vfmig migration capability registers. Generated by `vfmig c-header` from vfmig_proto: do not edit. */",
        f"#ifndef {GUARD}",
        f"#define {GUARD}",
    ]
    for section in register_definitions():
        out.append("")
        if section.title:
            out.append(f"/* {section.title} */")
        out += [_define(name, _c_literal(d), d.comment) for d in section.definitions for name in d.names]
        if not section.title:
            out += _C_MACROS
    out += ["", f"#endif /* {GUARD} */", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- Python


def _python_literal(definition: Definition) -> str:
    # Upper-case hex digits: what ``ruff format`` writes, so the generated module passes ``ruff format --check``.
    return f"0x{definition.value:0{definition.hex_digits}X}" if definition.hex_digits else str(definition.value)


_PYTHON_DOCSTRING = f'''"""The migration capability's registers as Python constants, named as the C header names them.

Generated from :mod:`vfmig_proto.layout` and the state enums by :mod:`vfmig_proto.c_header`: do not edit.
After a change to the layout, regenerate it from the repository root with::

    {REGENERATE_PYTHON}

How the names are made, and which of them are offsets rather than values: :mod:`vfmig_proto.c_header`.
"""'''


def _python_docstring(definition: Definition) -> str:
    """The doc (or else the comment) as a docstring, wrapped to the line length that ruff checks."""
    comment = f"{definition.comment[:1].upper()}{definition.comment[1:]}." if definition.comment else ""
    text = definition.doc or comment
    return textwrap.fill(f'"""{text}"""', width=_PYTHON_LINE_LENGTH, break_on_hyphens=False) if text else ""


def _python_assignment(definition: Definition) -> list[str]:
    docstring = _python_docstring(definition)
    names = " = ".join(definition.names)
    return [f"{names} = {_python_literal(definition)}", *([docstring] if docstring else [])]


def python_module() -> str:
    """The text of :mod:`vfmig_proto.registers`."""
    out = [_PYTHON_DOCSTRING]
    for section in register_definitions():
        out.append("")
        out.append(f"# --- {section.title or 'Protocol constants.'}")
        for definition in section.definitions:
            out += _python_assignment(definition)
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m vfmig_proto.c_header [--python] [-o FILE]``: print or write the C header or the Python module."""
    parser = argparse.ArgumentParser(
        prog="python -m vfmig_proto.c_header",
        description="The C header or the Python module of the capability's registers.",
    )
    parser.add_argument("--python", action="store_true", help="the Python module (vfmig_proto/registers.py)")
    parser.add_argument("-o", "--output", metavar="FILE", type=Path, help="write to FILE instead of standard output")
    args = parser.parse_args(argv)
    text = python_module() if args.python else c_header()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
