"""Reading lspci text for one function or a whole machine, and what each function says about the capability."""

from __future__ import annotations

import json
import re

import pytest
from decode_dumps import (
    ENDPOINT_TITLE,
    MIGRATION_BRIDGE_TITLE,
    PLAIN_BRIDGE_TITLE,
    ROOT_PORT_TITLE,
    endpoint,
    machine_dump,
    migration_bridge,
    plain_bridge,
    root_port,
)

import vfmig_proto as vfm
from vfmig_proto.config_space import DumpedFunction, format_lspci_dump, parse_lspci_functions, select_function
from vfmig_proto.dump_report import decode_dump, decode_function, problems_line, report_json, report_text
from vfmig_proto.layout import placed_fields


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^[0-9a-f]{2,3}: ", line)]


def _function(config: bytes, title: str = MIGRATION_BRIDGE_TITLE) -> DumpedFunction:
    (function,) = parse_lspci_functions(format_lspci_dump(config, title))
    return function


# ---------------------------------------------------------------------------------------------------------------
# Parsing


def test_a_machine_dump_holds_each_function_with_its_slot_and_bytes() -> None:
    functions = parse_lspci_functions(machine_dump())
    assert [function.slot for function in functions] == ["00:03.0", "00:04.0", "01:01.0", "0001:00:1c.0"]
    assert [function.title for function in functions] == [
        MIGRATION_BRIDGE_TITLE,
        PLAIN_BRIDGE_TITLE,
        ENDPOINT_TITLE,
        ROOT_PORT_TITLE,
    ]
    assert [function.config for function in functions] == [migration_bridge(), plain_bridge(), endpoint(), root_port()]
    assert [function.address for function in functions][-1] == (1, 0, 0x1C, 0)


def test_dumps_pasted_together_without_titles_are_separate_functions() -> None:
    text = "\n".join(_rows(format_lspci_dump(migration_bridge(), "x") + format_lspci_dump(endpoint(), "y")))
    functions = parse_lspci_functions(text)
    assert [function.config for function in functions] == [migration_bridge(), endpoint()]
    assert [function.name for function in functions] == ["device 1", "device 2"]
    assert all(function.slot is None for function in functions)


def test_the_qemu_dump_from_a_running_qemu_parses() -> None:
    (function,) = parse_lspci_functions(format_lspci_dump(plain_bridge(), PLAIN_BRIDGE_TITLE))
    assert len(function.config) == 256
    assert function.config[:4] == bytes([0x36, 0x1B, 0x01, 0x00])


def _cut_after(text: str, rows: int, keep_bytes: int | None = None) -> str:
    """``text`` up to ``rows`` whole rows of its first function, then ``keep_bytes`` bytes of the next row."""
    lines = text.splitlines()
    row_numbers = [number for number, line in enumerate(lines) if re.match(r"^[0-9a-f]{2,3}: ", line)]
    kept = lines[: row_numbers[rows]]
    if keep_bytes is not None:
        kept.append(lines[row_numbers[rows]][: 4 + 3 * keep_bytes])
    return "\n".join(kept) + "\n"


@pytest.mark.parametrize(
    ("config", "rows", "keep_bytes", "message"),
    [
        pytest.param(
            migration_bridge(), 7, None, "has 112 of 256 bytes; use the whole output of lspci -xxx", id="rows"
        ),
        pytest.param(migration_bridge(), 7, 8, "has 120 of 256 bytes; use the whole output of lspci -xxx", id="row"),
        pytest.param(migration_bridge(), 3, None, "has 48 of 64 bytes; use the whole output of lspci -x", id="header"),
        pytest.param(root_port(), 19, None, "has 304 of 4096 bytes; use the whole output of lspci -xxxx", id="ext"),
    ],
)
def test_a_cut_dump_says_how_much_it_has_and_what_makes_a_whole_one(
    config: bytes, rows: int, keep_bytes: int | None, message: str
) -> None:
    text = _cut_after(format_lspci_dump(config, MIGRATION_BRIDGE_TITLE), rows, keep_bytes)
    with pytest.raises(vfm.DumpError) as caught:
        parse_lspci_functions(text)
    assert str(caught.value) == f"the dump of 00:03.0 {message}"
    assert caught.value.device == "00:03.0"


def test_a_cut_function_in_the_middle_of_a_machine_is_named() -> None:
    functions = machine_dump().split("\n\n")
    functions[1] = _cut_after(functions[1], 9).rstrip("\n")
    with pytest.raises(vfm.DumpError, match=r"^the dump of 00:04\.0 has 144 of 256 bytes"):
        parse_lspci_functions("\n\n".join(functions))


def test_a_missing_row_names_the_missing_bytes() -> None:
    lines = format_lspci_dump(migration_bridge(), MIGRATION_BRIDGE_TITLE).splitlines()
    del lines[8]  # the row for 0x70
    with pytest.raises(vfm.DumpError) as caught:
        parse_lspci_functions("\n".join(lines))
    assert str(caught.value) == "the dump of 00:03.0 is missing bytes 0x70-0x7f (before line 9): a row was cut out"


def test_a_repeated_row_is_refused() -> None:
    lines = format_lspci_dump(migration_bridge(), MIGRATION_BRIDGE_TITLE).splitlines()
    lines.insert(5, lines[4])
    with pytest.raises(vfm.DumpError, match=r"has bytes from 0x30 twice \(line 6\)"):
        parse_lspci_functions("\n".join(lines))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "no lspci hex dump found: lspci prints one with -xxx", id="empty"),
        pytest.param("hello\nworld\n", "no lspci hex dump found", id="prose"),
        pytest.param(MIGRATION_BRIDGE_TITLE + "\n\tControl: I/O+\n", "00:03.0 has no hex dump", id="lspci-v"),
    ],
)
def test_text_without_a_dump_is_refused(text: str, message: str) -> None:
    with pytest.raises(vfm.DumpError, match=re.escape(message)):
        parse_lspci_functions(text)


def test_parse_lspci_dump_wants_exactly_one_function() -> None:
    assert vfm.parse_lspci_dump(format_lspci_dump(endpoint(), ENDPOINT_TITLE)) == endpoint()
    with pytest.raises(
        vfm.DumpError, match=r"this text holds 4 devices \(00:03\.0, 00:04\.0, 01:01\.0, 0001:00:1c\.0\)"
    ):
        vfm.parse_lspci_dump(machine_dump())


@pytest.mark.parametrize(("slot", "title"), [("00:04.0", PLAIN_BRIDGE_TITLE), ("0000:00:04.0", PLAIN_BRIDGE_TITLE)])
def test_select_function_finds_a_slot_written_as_lspci_writes_it(slot: str, title: str) -> None:
    assert select_function(parse_lspci_functions(machine_dump()), slot).title == title


def test_select_function_refuses_a_slot_the_dump_does_not_hold() -> None:
    functions = parse_lspci_functions(machine_dump())
    with pytest.raises(vfm.DumpError) as caught:
        select_function(functions, "00:1c.0")  # the root port is in domain 0001
    assert str(caught.value) == "the dump holds no device 00:1c.0; it holds 00:03.0, 00:04.0, 01:01.0, 0001:00:1c.0"
    with pytest.raises(vfm.DumpError, match=r"'3' is not a slot: write it as lspci does, BB:DD\.F"):
        select_function(functions, "3")


# ---------------------------------------------------------------------------------------------------------------
# What each function says


def test_the_migration_bridge_is_decoded_field_by_field_at_config_space_offsets() -> None:
    report = decode_function(_function(migration_bridge()))
    offset, view = vfm.migration_capability(migration_bridge())
    assert (report.has_capability, report.capability_offset, report.capability, report.problem) == (
        True,
        offset,
        view,
        None,
    )
    assert [field.path for field in report.fields] == [placed.path for placed in placed_fields(view.num_slots)]
    by_path = {field.path: field for field in report.fields}
    assert (by_path["mig_state"].offset, by_path["mig_state"].value, by_path["mig_state"].meaning) == (
        0x64 + 0x18,
        vfm.MigState.STOPPED,
        "STOPPED",
    )
    assert by_path["device[1].dev_ctrl.drv_state"].meaning == view.devices[1].dev_ctrl.drv_state.name
    assert by_path["device[1].dev_ctrl.drv_state"].access is vfm.Access.RW
    assert by_path["device[1].dev_devfn"].meaning == "02.0"
    assert by_path["control.enable"].is_flag
    assert by_path["generation"].value == view.generation


@pytest.mark.parametrize("config", [plain_bridge(), endpoint(), root_port()], ids=["bridge", "virtio", "root-port"])
def test_a_function_without_the_capability_is_not_a_problem(config: bytes) -> None:
    report = decode_function(_function(config))
    assert (report.has_capability, report.fields, report.problem) == (False, (), None)


def test_a_64_byte_dump_cannot_tell_when_the_function_has_capabilities() -> None:
    report = decode_function(_function(migration_bridge()[:64]))
    assert report.has_capability is None
    assert report.problem == "the dump has 64 of 256 bytes, too few to hold its capabilities; use lspci -xxx as root"
    no_list = bytearray(migration_bridge()[:64])
    no_list[vfm.pci.PCI_STATUS] = 0
    assert decode_function(_function(bytes(no_list))).has_capability is False


def test_an_invalid_capability_is_reported_at_its_config_space_offset() -> None:
    config = bytearray(migration_bridge())
    config[0x64 + 0x18] = 7  # mig_state
    report = decode_function(_function(bytes(config)))
    assert (report.has_capability, report.capability_offset) == (True, 0x64)
    assert report.problem == "the migration capability at 0x64 is invalid: mig_state at 0x7c: unknown MigState value 7"


@pytest.mark.parametrize(
    ("offset", "pointer", "problem"),
    [
        (0x40 + 1, 0x4C, "the pointer at 0x41 points back to 0x4c, walked before: the list loops"),  # SHPC -> MSI
        (0x34, 0x20, "the pointer at 0x34 points into the standard header"),
    ],
)
def test_a_broken_capability_list_is_reported(offset: int, pointer: int, problem: str) -> None:
    config = bytearray(plain_bridge())
    config[offset] = pointer
    report = decode_function(_function(bytes(config)))
    assert report.has_capability is None
    assert report.problem == f"its capability list is broken: {problem}"


@pytest.mark.parametrize("size", [256, 4096])
def test_a_capability_past_0xff_is_a_problem_in_any_dump(size: int) -> None:
    config = bytearray(migration_bridge().ljust(size, b"\0"))
    capability = config[0x64 : 0x64 + 0x40]
    config[0x64 : 0x64 + 0x40] = bytes(0x40)
    config[0xE0 : 0xE0 + 0x40] = capability  # runs on into 0x100..0x11f, which a 256-byte dump lacks
    config[vfm.pci.PCI_CAPABILITY_LIST] = 0xE0
    report = decode_function(_function(bytes(config[:size])))
    assert report.problem is not None
    assert "the capability at 0xe0 is 64 bytes long and would end at 0x11f" in report.problem


def test_problems_line_names_the_first_function_and_counts_the_others() -> None:
    broken = bytearray(migration_bridge())
    broken[0x64 + 0x18] = 7
    short = format_lspci_dump(migration_bridge()[:64], "00:05.0 PCI bridge: short")
    reports = decode_dump(format_lspci_dump(bytes(broken), MIGRATION_BRIDGE_TITLE) + "\n" + short)
    line = problems_line(reports)
    assert line is not None
    assert line.startswith("00:03.0: the migration capability at 0x64 is invalid: mig_state at 0x7c")
    assert line.endswith("(and 1 more device could not be decoded)")
    assert problems_line(decode_dump(machine_dump())) is None


def test_decode_dump_with_a_slot_reports_on_that_function_only() -> None:
    (report,) = decode_dump(machine_dump(), slot="00:03.0")
    assert report.function.title == MIGRATION_BRIDGE_TITLE
    assert report.has_capability


def test_report_json_is_one_document_for_every_function() -> None:
    document = json.loads(json.dumps(report_json(decode_dump(machine_dump()))))
    assert [device["slot"] for device in document["devices"]] == ["00:03.0", "00:04.0", "01:01.0", "0001:00:1c.0"]
    assert [device["migration_capability"] for device in document["devices"]] == [True, False, False, False]
    assert [device["config_bytes"] for device in document["devices"]] == [256, 256, 256, 4096]
    assert (document["with_migration_capability"], document["problems"]) == (1, 0)
    fields = {field["field"]: field for field in document["devices"][0]["fields"]}
    assert fields["mig_state"] == {
        "field": "mig_state",
        "offset": 0x7C,
        "access": "RO",
        "value": 4,
        "meaning": "STOPPED",
    }


def test_report_text_shows_registers_states_and_flags() -> None:
    text = report_text(decode_dump(machine_dump()))
    assert "  migration capability at 0x64: 64 bytes, version 1.0, 8 slots, STOPPED\n" in text
    assert "    0x7c  mig_state       STOPPED (4)\n" in text
    assert "    0x78  control         enable+ event_ie+\n" in text
    assert re.search(
        r"    0x84  device\[0\]       dev_state=PAUSED \(6\) drv_state=PAUSED \(3\) .* dev_devfn=01\.0", text
    )
    assert text.count("  no migration capability\n") == 3
    assert text.endswith("4 devices, 1 with the migration capability\n")
