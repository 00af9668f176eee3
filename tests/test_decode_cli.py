"""``vfmig decode``: what a user sees for a machine's dump, one device, JSON, and input that is not a whole dump."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from decode_dumps import MIGRATION_BRIDGE_TITLE, PLAIN_BRIDGE_TITLE, machine_dump, migration_bridge

from conformance.cli import EXIT_OK, EXIT_USAGE, main
from vfmig_proto.config_space import format_lspci_dump

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    path = tmp_path / "machine.lspci"
    path.write_text(machine_dump(), encoding="utf-8")
    return path


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dump.lspci"
    path.write_text(text, encoding="utf-8")
    return path


def test_decode_lists_every_device_and_decodes_the_migration_bridge(
    machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decode", str(machine)]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.err == ""
    blocks = captured.out.split("\n\n")
    assert [block.splitlines()[0][:12] for block in blocks[:4]] == [
        "00:03.0 PCI ",
        "00:04.0 PCI ",
        "01:01.0 Ethe",
        "0001:00:1c.0",
    ]
    assert blocks[0].splitlines()[1] == "  migration capability at 0x64: 64 bytes, version 1.0, 8 slots, STOPPED"
    assert "    0x7c  mig_state       STOPPED (4)" in blocks[0].splitlines()
    assert all(block.splitlines()[1:] == ["  no migration capability"] for block in blocks[1:4])
    assert blocks[4] == "4 devices, 1 with the migration capability\n"


def test_slot_picks_one_device(machine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(machine), "--slot", "00:04.0"]) == EXIT_OK
    assert capsys.readouterr().out == f"{PLAIN_BRIDGE_TITLE}\n  no migration capability\n"


def test_json_is_one_document(machine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(machine), "--json"]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert [device["migration_capability"] for device in document["devices"]] == [True, False, False, False]
    states = {field["field"]: field["meaning"] for field in document["devices"][0]["fields"]}
    assert states["mig_state"] == "STOPPED"
    assert states["device[0].dev_state"] == "PAUSED"


def test_standard_input_is_read_for_dash(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(format_lspci_dump(migration_bridge(), MIGRATION_BRIDGE_TITLE)))
    assert main(["decode", "-"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"{MIGRATION_BRIDGE_TITLE}\n  migration capability at 0x64")
    assert "devices," not in out, "one device: no summary line"


def _cut(text: str, keep_rows: int) -> str:
    """``text`` with only the first ``keep_rows`` hex rows of its first device."""
    lines = text.splitlines()
    rows = [number for number, line in enumerate(lines) if re.match(r"^[0-9a-f]{2,3}: ", line)]
    return "\n".join(lines[: rows[keep_rows]]) + "\n"


BAD_DUMPS = {
    "cut-rows": (
        _cut(machine_dump(), 7),
        "vfmig decode: the dump of 00:03.0 has 112 of 256 bytes; use the whole output of lspci -xxx",
    ),
    "cut-row": (
        _cut(machine_dump(), 7) + "70: 0f 00 00\n",
        "vfmig decode: the dump of 00:03.0 has 115 of 256 bytes; use the whole output of lspci -xxx",
    ),
    "row-missing": (
        machine_dump().replace("\n20: ", "\n#20: ", 1),
        "vfmig decode: the dump of 00:03.0 is missing bytes 0x20-0x2f (before line 5): a row was cut out",
    ),
    "no-dump": ("lspci: Unable to load libkmod resources: error -2\n", "vfmig decode: no lspci hex dump found: "),
    "header-only": (
        format_lspci_dump(migration_bridge()[:64], MIGRATION_BRIDGE_TITLE),
        "vfmig decode: 00:03.0: the dump has 64 of 256 bytes, too few to hold its capabilities; use lspci -xxx as root",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DUMPS))
def test_bad_input_exits_2_with_one_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, message = BAD_DUMPS[case]
    assert main(["decode", str(_write(tmp_path, text))]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(message), err
    assert "expected" not in err, "no parser's-eye view of the text"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--slot", "00:1f.0"], "vfmig decode: the dump holds no device 00:1f.0; it holds 00:03.0, 00:04.0, 01:01.0,"),
        (["--slot", "3.0"], "vfmig decode: '3.0' is not a slot: write it as lspci does, BB:DD.F (00:03.0)"),
    ],
)
def test_a_slot_the_dump_does_not_hold(
    machine: Path, arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["decode", str(machine), *arguments]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert (captured.out, captured.err.count("\n")) == ("", 1)
    assert captured.err.startswith(message)


def test_a_broken_device_does_not_hide_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = machine_dump().replace(
        "\n70: 0f 00 00 00 0f 00 00 00 03 00 01 00 04", "\n70: 0f 00 00 00 0f 00 00 00 03 00 01 00 07"
    )
    assert text != machine_dump()
    assert main(["decode", str(_write(tmp_path, text))]) == EXIT_USAGE
    captured = capsys.readouterr()
    problem = "the migration capability at 0x64 is invalid: mig_state at 0x7c: unknown MigState value 7"
    assert f"  cannot decode: {problem}\n" in captured.out
    assert captured.out.count("  no migration capability\n") == 3
    assert captured.err == f"vfmig decode: 00:03.0: {problem}\n"


def test_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(tmp_path / "none.lspci")]) == EXIT_USAGE
    assert (
        capsys.readouterr().err == f"vfmig decode: cannot read {tmp_path / 'none.lspci'}: No such file or directory\n"
    )


@pytest.mark.parametrize("case", ["cut-rows", "row-missing", "header-only"])
def test_the_command_prints_no_traceback(case: str, tmp_path: Path) -> None:
    text, message = BAD_DUMPS[case]
    result = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "decode", "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == EXIT_USAGE
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


@pytest.mark.skipif(shutil.which("lspci") is None, reason="lspci (Debian package pciutils) is not installed")
def test_lspci_reads_the_same_devices_and_sees_the_capability_where_decode_does(
    machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lspci = shutil.which("lspci")
    assert lspci is not None
    listed = subprocess.run([lspci, "-F", str(machine), "-vvv"], capture_output=True, text=True, check=True).stdout
    titles = [line.split(" ", 1)[0] for line in listed.splitlines() if line and not line[0].isspace()]
    assert titles == ["0000:00:03.0", "0000:00:04.0", "0000:01:01.0", "0001:00:1c.0"]
    assert main(["decode", str(machine), "--json"]) == EXIT_OK
    (bridge, *_) = json.loads(capsys.readouterr().out)["devices"]
    assert f"Capabilities: [{bridge['capability_offset']:02x}] Vendor Specific Information: Len=40" in listed
