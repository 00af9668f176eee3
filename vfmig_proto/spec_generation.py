"""Generate the spec's tables from the protocol definitions.

``spec/generated/*.rst`` are never edited by hand: :func:`write_generated`
writes them from :mod:`vfmig_proto.layout`, :mod:`vfmig_proto.states` and
:mod:`vfmig_proto.transitions` (the state diagrams through
:mod:`vfmig_proto.diagrams`), and :func:`stale_generated` tells which of them
no longer match (a test and ``vfmig spec-generate --check`` use it).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from functools import cache
from pathlib import Path
from typing import TypeVar

from vfmig_proto import transitions
from vfmig_proto.access import write_masks
from vfmig_proto.codec import reset_value, with_field
from vfmig_proto.config_space import format_lspci_dump, parse_lspci_dump
from vfmig_proto.diagrams import (
    EdgeKind,
    OffPathEvent,
    device_state_diagram,
    migration_state_diagram,
    off_path_device_events,
)
from vfmig_proto.layout import (
    DEVICE_REGISTERS,
    HEADER_REGISTERS,
    QEMU_BRIDGE_CAP_OFFSET,
    VFM_DEFAULT_ACK_TIMEOUT_MS,
    VFM_HEADER_SIZE,
    VFM_MAX_PAGE_SHIFT,
    VFM_MAX_SLOTS,
    VFM_MIN_PAGE_SHIFT,
    VFM_MIN_SLOTS,
    VFM_SLOT_ENTRY_SIZE,
    CapabilityParams,
    Field,
    Param,
    Register,
)
from vfmig_proto.pci import PCI_CAPABILITY_LIST, PCI_CONFIG_SIZE
from vfmig_proto.requirements import Requirement, load_requirements
from vfmig_proto.states import DevEvent, DevState, DriverReport, Keyword, MigEvent, MigReason, MigState, Target
from vfmig_proto.transitions import Action

GENERATED_DIR = "generated"
"""Sub-directory of ``spec/`` that holds the generated files."""

_BANNER = (
    ".. This file is generated from vfmig_proto by `vfmig spec-generate`. Do not edit it:\n"
    ".. change the definitions in vfmig_proto and run the command again.\n\n"
)


@cache
def member_docs(enum_class: type[Enum]) -> Mapping[str, str]:
    """The docstring written under each member of ``enum_class``, read from its source."""
    tree = ast.parse(inspect.getsource(enum_class))
    class_def = tree.body[0]
    assert isinstance(class_def, ast.ClassDef)
    docs: dict[str, str] = {}
    body = class_def.body
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.Assign)
            and isinstance(statement.targets[0], ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.targets[0].id] = inspect.cleandoc(following.value.value)
    return docs


def _escape(text: str) -> str:
    """Text safe inside a list-table cell."""
    return text.replace("*", r"\*").replace("|", r"\|")


def _list_table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]], widths: Sequence[int]) -> str:
    lines = [
        f".. list-table:: {title}",
        "   :header-rows: 1",
        f"   :widths: {' '.join(str(width) for width in widths)}",
        "",
    ]
    for row in (header, *rows):
        first, *rest = row
        lines.append(f"   * - {first or ' '}")
        lines.extend(f"     - {cell or ' '}" for cell in rest)
    return "\n".join(lines) + "\n"


def _labelled_table(
    label: str, title: str, header: Sequence[str], rows: Iterable[Sequence[str]], widths: Sequence[int]
) -> str:
    """A list-table preceded by a reference label, so chapters can link to it."""
    return f"\n.. _{label}:\n\n" + _list_table(title, header, rows, widths)


Rows = list[list[str]]
"""A table's body: one list of cells per row."""

_Key = TypeVar("_Key", bound=Enum)


@dataclass(frozen=True)
class _Table:
    """A labelled table of a generated file: how it is laid out, and the function that computes its rows."""

    label: str
    columns: Mapping[str, int]
    """Each column's header and its relative width."""
    rows: Callable[[], Rows]
    """Its docstring, on one line, is the table's title: what the rows are is what the table shows."""

    def rst(self) -> str:
        """The table as reStructuredText, its label first."""
        title = _docstring(self.rows)
        return _labelled_table(self.label, title, tuple(self.columns), self.rows(), tuple(self.columns.values()))


def _table(label: str, columns: Mapping[str, int]) -> Callable[[Callable[[], Rows]], _Table]:
    """Decorator: the function below computes the rows of a table with this label and columns, and titles it."""

    def with_layout(rows: Callable[[], Rows]) -> _Table:
        return _Table(label, columns, rows)

    return with_layout


def _docstring(function: Callable[..., object]) -> str:
    """``function``'s docstring on one line, read from its source so that ``python -OO`` does not lose it."""
    definition = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    assert isinstance(definition, ast.FunctionDef)
    docstring = ast.get_docstring(definition)
    if docstring is None:  # pragma: no cover - a table without a title is a mistake in this module
        raise ValueError(f"{function.__name__} has no docstring to title its table")
    return " ".join(docstring.split())


def _code(member: Enum) -> str:
    """A member's name as an inline literal."""
    return f"``{member.name}``"


def _codes(members: Iterable[Enum], separator: str = ", ") -> str:
    """The members' names as inline literals, in their order; a set's in the order its enum defines them."""
    listed = list(members)
    if isinstance(members, (set, frozenset)):
        listed.sort(key=lambda member: list(type(member)).index(member))
    return separator.join(_code(member) for member in listed)


def _mapping_rows(mapping: Mapping[_Key, Iterable[Enum]], separator: str = ", ") -> Rows:
    """A row per key of ``mapping``: the key, and its values."""
    return [[_code(key), _codes(values, separator)] for key, values in mapping.items()]


def _tables_rst(*tables: _Table) -> str:
    """A generated file of ``tables``, in this order."""
    return _BANNER + "".join(table.rst() for table in tables)


def _bits(fld: Field) -> str:
    high = fld.lsb + fld.width - 1
    return f"{high}" if fld.width == 1 else f"{high}:{fld.lsb}"


# What each bridge-chosen reset value is, for a reader of the register tables: the parameter's Python
# name would mean nothing there.
_PARAM_RESET_TEXT: Mapping[Param, str] = {
    Param.NEXT_POINTER: "offset of the next capability; 0 if this one is last",
    Param.LENGTH: f"0x{VFM_HEADER_SIZE:02X} + {VFM_SLOT_ENTRY_SIZE} x ``NUM_SLOTS``",
    Param.NUM_SLOTS: f"the bridge's number of slots, {VFM_MIN_SLOTS} to {VFM_MAX_SLOTS}",
    Param.PAGE_SHIFT: f"the bridge's choice, {VFM_MIN_PAGE_SHIFT} to {VFM_MAX_PAGE_SHIFT}",
    Param.ACK_TIMEOUT_MS: f"the bridge's choice; {VFM_DEFAULT_ACK_TIMEOUT_MS} in the reference bridge",
    Param.SLOT_DEVFN: "devfn of the slot's function: (device << 3) | function",
}


_LARGEST_DIGIT = 9
"""Reset values up to 9 read the same in decimal and hexadecimal; larger ones are written in hex."""


def _reset_text(fld: Field) -> str:
    reset = fld.reset
    if isinstance(reset, Param):
        return _PARAM_RESET_TEXT[reset]
    if fld.values is not None:
        return f"{int(reset)} (``{fld.values(reset).name}``)"
    if fld.const:
        return f"0x{int(reset):0{(fld.width + 3) // 4}X}"
    return f"0x{int(reset):X}" if reset > _LARGEST_DIGIT else str(int(reset))


# "§4.3.1" and "spec §5" in the definitions' docstrings: the chapters' labels are spec-4-3-1 and spec-5.  A
# number before the sign ("PCIe Base 6.0 §7.4") makes it a section of another standard, which stays text.
_SECTION_REFERENCE = re.compile(r"(?<!\d )(?:spec )?§(?P<number>\d+(?:\.\d+)*)")


def _link_sections(text: str) -> str:
    """Text whose references to sections of this spec are links to them."""
    return _SECTION_REFERENCE.sub(
        lambda match: f":ref:`§{match['number']} <spec-{match['number'].replace('.', '-')}>`", text
    )


def _describe(text: str) -> str:
    """Docstring text for a table cell: escaped, its section references linked."""
    return _link_sections(_escape(text))


def _meaning(member: Enum) -> str:
    """The docstring under ``member``, for a table cell ("" where it has none)."""
    return _describe(member_docs(type(member)).get(member.name, ""))


def _field_description(fld: Field) -> str:
    text = _describe(fld.doc)
    if fld.values is not None:
        text += f" Values: see :ref:`{fld.values.__name__} <spec-enum-{fld.values.__name__.lower()}>`."
    return text


def _field_rows(register: Register) -> list[list[str]]:
    rows: list[list[str]] = []
    for fld in sorted(register.fields, key=lambda f: f.lsb, reverse=True):
        name = register.name.upper() if len(register.fields) == 1 else fld.name.upper()
        rows.append([_bits(fld), f"``{name}``", fld.access.value, _reset_text(fld), _field_description(fld)])
    return rows


def _byte_count(size: int) -> str:
    return "1 byte" if size == 1 else f"{size} bytes"


def _register_section(register: Register, offset_prefix: str) -> str:
    """One register as the PCI Express spec lays it out: a heading with offset and size, then its fields.

    Registers of one field repeat the register's description in the field's row only.
    """
    heading = f"{offset_prefix}0x{register.offset:02X}: ``{register.name.upper()}`` ({_byte_count(register.size)})"
    anchor = f"spec-register-{register.name.replace('_', '-')}"
    lines = [f".. rubric:: {heading}", "   :class: vfm-register", f"   :name: {anchor}", ""]
    if len(register.fields) > 1:
        lines += [_describe(register.doc), ""]
    body = _list_table("", _REGISTER_HEADER, _field_rows(register), _REGISTER_WIDTHS)
    table = body.replace(".. list-table:: \n", ".. list-table::\n   :class: vfm-register-table\n", 1)
    return "\n".join(lines) + "\n" + table + "\n"


_REGISTER_HEADER = ("Bits", "Field", "Access", "Reset", "Description")
_REGISTER_WIDTHS = (8, 22, 9, 21, 40)


def _enum_table(enum_class: type[IntEnum]) -> str:
    rows = [[str(member.value), _code(member), _meaning(member)] for member in enum_class]
    label = f"spec-enum-{enum_class.__name__.lower()}"
    return _labelled_table(label, f"``{enum_class.__name__}`` values", ("Value", "Name", "Meaning"), rows, (8, 18, 74))


def _mask_rows(num_slots: int) -> list[list[str]]:
    masks = write_masks(num_slots)
    rows = []
    for offset in range(VFM_HEADER_SIZE + VFM_SLOT_ENTRY_SIZE):
        wmask, w1cmask = masks.wmask[offset], masks.w1cmask[offset]
        if not wmask and not w1cmask:
            continue
        where = f"0x{offset:02x}" if offset < VFM_HEADER_SIZE else f"entry + {offset - VFM_HEADER_SIZE}"
        rows.append([where, f"0x{wmask:02x}", f"0x{w1cmask:02x}"])
    return rows


def write_masks_rst() -> str:
    """The per-byte write masks derived from the access types (every byte not listed has both masks 0)."""
    return _labelled_table(
        "spec-write-masks",
        "Write masks: bytes a guest write can change (every other byte of the capability has both masks 0)",
        ("Byte", "wmask (RW)", "w1cmask (RW1C)"),
        _mask_rows(1),
        (30, 35, 35),
    )


def _register_group(title: str, intro: str, registers: Iterable[Register], offset_prefix: str) -> str:
    sections = "".join(_register_section(register, offset_prefix) for register in registers)
    return f".. rubric:: {title}\n   :class: vfm-register-group\n\n{intro}\n\n{sections}"


def registers_rst(spec_dir: Path) -> str:
    """The register tables of the capability header, the slot entry and the value enums."""
    parts = [
        _BANNER,
        _register_group(
            "Capability header",
            f"{VFM_HEADER_SIZE} bytes; offsets count from the capability's first byte.",
            HEADER_REGISTERS,
            "",
        ),
        _register_group(
            "Slot entry N",
            f"{VFM_SLOT_ENTRY_SIZE} bytes at offset 0x{VFM_HEADER_SIZE:02X} + {VFM_SLOT_ENTRY_SIZE} x N; "
            "offsets count from the entry's first byte.",
            DEVICE_REGISTERS,
            "entry + ",
        ),
    ]
    parts.append(write_masks_rst())
    for enum_class in (MigState, MigReason, DevState, DriverReport):
        parts += ["\n", _enum_table(enum_class)]
    return "".join(parts)


@_table("spec-device-answers", {"Request state": 30, "Answer (DRV_STATE)": 35, "Event": 35})
def _device_answer_rows() -> Rows:
    """Requests and their answers: the DRV_STATE report that moves each request state on"""
    # Sorted: the request states in DevState's order.
    return [
        [_code(state), _code(report), _code(transitions.REPORT_EVENTS[report])]
        for state, report in sorted(transitions.ACKNOWLEDGED_BY.items())
    ]


@_table("spec-device-events", {"Event": 22, "Origin": 8, "Meaning": 70})
def _device_event_rows() -> Rows:
    """Device events"""
    return [[_code(event), event.origin.value, _meaning(event)] for event in DevEvent]


@_table("spec-device-transitions", {"State": 20, "Event": 26, "Origin": 10, "Next state": 24})
def _device_transition_rows() -> Rows:
    """Device state machine: every allowed (state, event) pair; any other pair is rejected"""
    rows = []
    for state in DevState:
        for event in DevEvent:
            outcome = transitions.DEVICE_TRANSITIONS.get((state, event))
            if outcome is None:
                continue
            after = _code(outcome.next_state) if outcome.action is Action.ACCEPT else "(ignored, no change)"
            rows.append([_code(state), _code(event), event.origin.value, after])
    return rows


@_table("spec-bus-master-rejections", {"Report (DRV_STATE)": 30, "Rejected while MIG_STATE is": 70})
def _bus_master_rows() -> Rows:
    """Reports rejected while the function's Bus Master Enable is set, whatever the device table's row
    (VFM-DEV-011)"""
    return _mapping_rows(transitions.BUS_MASTER_REJECTIONS)


@_table("spec-clean-entry", {"Event": 25, "Meaning": 75})
def _clean_entry_rows() -> Rows:
    """Clean entry: host events after which the slot's DRV_STATE is NONE and its DEV_STATUS flags clear
    (VFM-DEV-013)"""
    return [[_code(event), _meaning(event)] for event in DevEvent if event in transitions.CLEAN_ENTRY_EVENTS]


def device_transitions_rst(spec_dir: Path) -> str:
    """The device state machine's table, one row per allowed (state, event) pair, and the rules beside it."""
    return _tables_rst(
        _device_answer_rows, _device_event_rows, _device_transition_rows, _bus_master_rows, _clean_entry_rows
    )


_ALL_SLOT_STATES = list(DevState)


@_table("spec-migration-events", {"Event": 25, "Meaning": 75})
def _migration_event_rows() -> Rows:
    """Migration events"""
    return [[_code(event), _meaning(event)] for event in MigEvent]


@_table("spec-migration-transitions", {"State": 30, "Event": 40, "Next state": 30})
def _migration_transition_rows() -> Rows:
    """Migration state machine: every allowed (state, event) pair; any other pair is forbidden"""
    return [
        [_code(state), _code(event), _code(transitions.MIGRATION_TRANSITIONS[(state, event)])]
        for state in MigState
        for event in MigEvent
        if (state, event) in transitions.MIGRATION_TRANSITIONS
    ]


@_table("spec-fanout", {"Migration event": 25, "Device event": 25, "Delivered to slots in": 50})
def _fanout_rows() -> Rows:
    """Fan-out: the device event each migration event delivers, and the slot states it reaches"""
    return [
        [
            _code(mig_event),
            _code(dev_event),
            ", ".join(_code(_ALL_SLOT_STATES[i]) for i in transitions.fanout_targets(mig_event, _ALL_SLOT_STATES)),
        ]
        for mig_event, dev_event in transitions.FANOUT.items()
    ]


@_table("spec-settled", {"Event": 30, "Every slot in": 70})
def _settled_rows() -> Rows:
    """Settled events: raised by the bridge when every slot is in one of the states"""
    return _mapping_rows(transitions.SETTLED_STATES)


@_table("spec-catch-up", {"MIG_STATE": 30, "Requests": 70})
def _catch_up_rows() -> Rows:
    """Catch-up: requests issued, in order, to a slot that enters READY while a migration is in progress"""
    return _mapping_rows(transitions.CATCH_UP, separator=", then ")


def _reason_set_by(event: MigEvent) -> str:
    if event is MigEvent.CANCEL:
        return f"the hypervisor's reason, one of {_codes(transitions.CANCEL_REASONS)}"
    reason = transitions.REASON_SET_BY.get(event)
    return "(unchanged)" if reason is None else _code(reason)


def _flag_set_by(event: MigEvent) -> str:
    flag = transitions.FLAGS_SET_BY.get(event)
    if flag is None:
        return "(none)"
    return _code(flag) + (", which sets ``STATUS.EVENT``" if flag in transitions.EVENT_STATUS_FLAGS else "")


@_table("spec-migration-side-fields", {"Event": 20, "MIG_REASON": 45, "DEV_STATUS flag": 35})
def _side_field_rows() -> Rows:
    """Side fields: the MIG_REASON a migration event sets, and the DEV_STATUS flag it sets in every slot that
    holds a function (VFM-MIG-009, VFM-MIG-010, VFM-FLAG-001, VFM-NOTIF-001)"""
    rows = [[_code(event), _reason_set_by(event), _flag_set_by(event)] for event in MigEvent]
    return [row for row in rows if row[1:] != ["(unchanged)", "(none)"]]


def migration_transitions_rst(spec_dir: Path) -> str:
    """The migration state machine's table and the rules that tie it to the slots."""
    return _tables_rst(
        _migration_event_rows,
        _migration_transition_rows,
        _fanout_rows,
        _settled_rows,
        _catch_up_rows,
        _side_field_rows,
    )


QEMU_BRIDGE_DUMP = Path("data") / "qemu-7.2-pci-bridge.lspci"
"""Config space of QEMU 7.2's pci-bridge (1b36:0001) read from a running QEMU, relative to ``spec/``."""


def qemu_bridge_with_capability(spec_dir: Path) -> tuple[bytes, str]:
    """QEMU's pci-bridge config space with the migration capability linked first at 0x64.

    The capability is the reset value with 8 slots; the function in slot
    entry 0 is present (``UNBOUND``).  Returns the 256 bytes and the dump's
    title line.
    """
    text = (spec_dir / QEMU_BRIDGE_DUMP).read_text(encoding="utf-8")
    config = bytearray(parse_lspci_dump(text).ljust(PCI_CONFIG_SIZE, b"\0"))
    first_capability = config[PCI_CAPABILITY_LIST]
    capability = reset_value(CapabilityParams(num_slots=8, next_pointer=first_capability))
    capability = with_field(capability, "device[0].dev_state", DevState.UNBOUND)
    end = QEMU_BRIDGE_CAP_OFFSET + len(capability)
    if any(config[QEMU_BRIDGE_CAP_OFFSET:end]):
        raise ValueError(f"bytes 0x{QEMU_BRIDGE_CAP_OFFSET:02x}..0x{end - 1:02x} of the QEMU dump are not free")
    config[QEMU_BRIDGE_CAP_OFFSET:end] = capability
    config[PCI_CAPABILITY_LIST] = QEMU_BRIDGE_CAP_OFFSET
    title = text.splitlines()[0].split(" (")[0] + " with the vfmig migration capability"
    return bytes(config), title


def qemu_bridge_example_rst(spec_dir: Path) -> str:
    """The example dump of spec §3.1.1, in the format of ``lspci -xxx``."""
    config, title = qemu_bridge_with_capability(spec_dir)
    dump = format_lspci_dump(config, title)
    return _BANNER + ".. code-block:: text\n\n" + "".join(f"   {line}\n" for line in dump.splitlines())


def _graphviz_rst(dot: str, name: str, alt: str, caption: str) -> str:
    """A ``graphviz`` directive with the DOT source inline, rendered by Sphinx at build time."""
    lines = [
        ".. graphviz::",
        f"   :name: {name}",
        f"   :alt: {alt}",
        "   :align: center",
        f"   :caption: {caption}",
        "",
    ]
    lines.extend(f"   {line}" if line else "" for line in dot.splitlines())
    return _BANNER + "\n".join(lines) + "\n"


def _names(names: Sequence[str]) -> str:
    """``A``, ``A and B`` or ``A, B and C``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _states_in(sources: Sequence[str]) -> str:
    """The states an event is accepted in: their names, or "every state but ..." when that is shorter."""
    left_out = [state.name for state in DevState if state.name not in sources]
    if left_out and len(left_out) < len(sources):
        return "every state but " + _names([f"``{name}``" for name in left_out])
    return ", ".join(f"``{name}``" for name in sources)


def _off_path_row(off_path: OffPathEvent) -> list[str]:
    event = f"``{off_path.event}``" + (" (a report)" if off_path.kind is EdgeKind.COMMON_GUEST else "")
    target = "stays in its state" if off_path.target is None else f"``{off_path.target}``"
    return [event, _states_in(off_path.sources), target]


def device_state_diagram_rst(spec_dir: Path) -> str:
    """The device state machine's main path as a diagram, and a table of the events it leaves out (spec §4.2).

    Both come from ``DEVICE_TRANSITIONS``: together they show every accepted transition.
    """
    ignored = sum(outcome.action is Action.IGNORE for outcome in transitions.DEVICE_TRANSITIONS.values())
    caption = (
        "The device state machine's main path (informative; the table that follows is normative). "
        "Solid edges are host events, dashed edges reports of the driver. "
        "The bridge waits for the driver in the yellow request states. "
        "The events that lead to one state from many states, and those that leave the state as it is, "
        "are listed in the table below the diagram instead of drawn; a state with a dashed border is entered "
        "and left only through them. "
        f"The {ignored} reports that the table ignores change nothing and are not drawn."
    )
    diagram = _graphviz_rst(
        device_state_diagram(),
        "spec-device-diagram",
        "State diagram of the device state machine's main path",
        caption,
    )
    table = _labelled_table(
        "spec-device-off-path",
        "Accepted events the diagram does not draw (informative)",
        ["Event", "Accepted in", "Leads to"],
        [_off_path_row(off_path) for off_path in off_path_device_events()],
        [30, 46, 24],
    )
    return diagram + table


def migration_state_diagram_rst(spec_dir: Path) -> str:
    """The migration state machine as a diagram, drawn from ``MIGRATION_TRANSITIONS`` (spec §4.3)."""
    caption = (
        "The migration state machine (informative; the table that follows is normative). "
        "Solid edges are events of the hypervisor and group resets, dashed edges the settled events "
        "that the bridge raises by itself. "
        "In the yellow states the bridge waits for every slot to settle."
    )
    return _graphviz_rst(
        migration_state_diagram(),
        "spec-migration-diagram",
        "State diagram of the migration state machine",
        caption,
    )


def _requirement_counts(requirements: Iterable[Requirement], target: Target) -> str:
    """``"40 MUST, 3 MUST NOT, ..."``: the requirements that bind ``target``, by keyword."""
    counts = Counter(requirement.keyword for requirement in requirements if requirement.roles & target.roles)
    return ", ".join(f"{counts[keyword]} {keyword.value}" for keyword in Keyword if counts[keyword])


def conformance_targets_rst(spec_dir: Path) -> str:
    """Table 11-1: the conformance targets, the roles each takes and how many requirements bind it."""
    requirements = load_requirements(spec_dir)
    docs = member_docs(Target)
    rows = [
        [
            target.value.capitalize(),
            " and ".join(role.value for role in sorted(target.roles, key=lambda role: role.value)),
            _escape(" ".join(docs[target.name].split())),
            _requirement_counts(requirements, target),
        ]
        for target in Target
    ]
    table = _labelled_table(
        "spec-targets",
        "Table 11-1. Conformance targets",
        ["Target", "Roles it takes", "Typical implementation", "Requirements that bind it"],
        rows,
        [12, 16, 44, 28],
    )
    return _BANNER + table


GENERATORS: Mapping[str, Callable[[Path], str]] = {
    "registers.rst": registers_rst,
    "device-transitions.rst": device_transitions_rst,
    "migration-transitions.rst": migration_transitions_rst,
    "qemu-bridge-example.rst": qemu_bridge_example_rst,
    "device-state-diagram.rst": device_state_diagram_rst,
    "migration-state-diagram.rst": migration_state_diagram_rst,
    "conformance-targets.rst": conformance_targets_rst,
}
"""Each generated file of ``spec/generated/`` and the function that writes it."""


def write_generated(spec_dir: Path) -> list[Path]:
    """Write every generated file under ``spec_dir``; return the paths written."""
    target = spec_dir / GENERATED_DIR
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, generate in GENERATORS.items():
        path = target / name
        path.write_text(generate(spec_dir), encoding="utf-8")
        written.append(path)
    return written


def stale_generated(spec_dir: Path) -> list[Path]:
    """The generated files under ``spec_dir`` that are missing or differ from the definitions."""
    stale = []
    for name, generate in GENERATORS.items():
        path = spec_dir / GENERATED_DIR / name
        if not path.is_file() or path.read_text(encoding="utf-8") != generate(spec_dir):
            stale.append(path)
    return stale
