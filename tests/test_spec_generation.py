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
from vfmig_proto.transitions import DEVICE_TRANSITIONS, MIGRATION_TRANSITIONS

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


def test_tables_have_one_row_per_rule() -> None:
    device = GENERATORS["device-transitions.rst"](SPEC_DIR)
    migration = GENERATORS["migration-transitions.rst"](SPEC_DIR)
    rows = device.split(".. _spec-device-transitions:")[1].count("   * - ") - 1  # minus the header row
    assert rows == len(DEVICE_TRANSITIONS)
    table = migration.split(".. _spec-migration-transitions:")[1].split(".. _spec-fanout:")[0]
    assert table.count("   * - ") - 1 == len(MIGRATION_TRANSITIONS)


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
