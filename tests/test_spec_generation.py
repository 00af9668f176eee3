"""The generated spec tables come from the current definitions."""

from __future__ import annotations

import re
import shutil
from enum import Enum
from pathlib import Path

import pytest

from vfmig_proto.layout import DEVICE_REGISTERS, HEADER_REGISTERS, Param
from vfmig_proto.spec_generation import (
    GENERATED_DIR,
    GENERATORS,
    member_docs,
    registers_rst,
    stale_generated,
    write_generated,
)
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState
from vfmig_proto.transitions import (
    BUS_MASTER_REJECTIONS,
    CANCEL_REASONS,
    CLEAN_ENTRY_EVENTS,
    DEVICE_TRANSITIONS,
    EVENT_STATUS_FLAGS,
    FLAGS_SET_BY,
    MIGRATION_TRANSITIONS,
    REASON_SET_BY,
)

SPEC_DIR = Path(__file__).resolve().parents[1] / "spec"


def test_committed_tables_are_current() -> None:
    assert stale_generated(SPEC_DIR) == [], "run `vfmig spec-generate` and commit spec/generated/"


def test_a_hand_edit_is_detected_and_regenerated(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, spec)
    target = spec / GENERATED_DIR / "registers.rst"
    target.write_text(target.read_text().replace("RW1C", "RW"))
    assert stale_generated(spec) == [target]
    write_generated(spec)
    assert stale_generated(spec) == []


@pytest.mark.parametrize("enum", [MigState, MigReason, DevState, DriverReport, DevEvent, MigEvent])
def test_every_enum_member_is_documented(enum: type[Enum]) -> None:
    docs = member_docs(enum)
    assert set(docs) == {member.name for member in enum}
    assert all(len(text) > 10 for text in docs.values())


def _row_count(text: str, label: str) -> int:
    """How many body rows the table labelled ``label`` has (up to the next label, minus the header row)."""
    table = text.split(f".. _{label}:")[1].split("\n.. _", maxsplit=1)[0]
    return table.count("   * - ") - 1


def test_tables_have_one_row_per_rule() -> None:
    device = GENERATORS["device-transitions.rst"](SPEC_DIR)
    migration = GENERATORS["migration-transitions.rst"](SPEC_DIR)
    assert _row_count(device, "spec-device-transitions") == len(DEVICE_TRANSITIONS)
    assert _row_count(migration, "spec-migration-transitions") == len(MIGRATION_TRANSITIONS)


def test_the_engines_side_tables_are_rendered() -> None:
    device = GENERATORS["device-transitions.rst"](SPEC_DIR)
    migration = GENERATORS["migration-transitions.rst"](SPEC_DIR)
    assert _row_count(device, "spec-bus-master-rejections") == len(BUS_MASTER_REJECTIONS)
    assert _row_count(device, "spec-clean-entry") == len(CLEAN_ENTRY_EVENTS)
    side_events = {*REASON_SET_BY, *FLAGS_SET_BY, MigEvent.CANCEL}
    assert _row_count(migration, "spec-migration-side-fields") == len(side_events)
    side_table = migration.split(".. _spec-migration-side-fields:")[1]
    assert all(f"``{reason.name}``" in side_table for reason in CANCEL_REASONS)
    assert side_table.count("which sets ``STATUS.EVENT``") == len(EVENT_STATUS_FLAGS & set(FLAGS_SET_BY.values()))


def test_register_tables_say_what_each_bridge_chosen_reset_value_is() -> None:
    text = registers_rst(SPEC_DIR)
    for param in Param:
        assert f"({param.value})" not in text, f"the Python name of {param} shows as a reset value"
    for register in (*HEADER_REGISTERS, *DEVICE_REGISTERS):
        assert f"``{register.name.upper()}`` (" in text, f"{register.name} has no heading of its own"


def test_section_references_in_generated_tables_are_links() -> None:
    for name, generate in GENERATORS.items():
        text = generate(SPEC_DIR)
        bare = re.findall(r"(?<!:ref:`)§\d+(?:\.\d+)*", text)
        assert not bare, f"{name}: section references that are not links: {bare}"
