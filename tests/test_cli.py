"""The `vfmig` command's protocol subcommands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, main
from vfmig_proto.requirements import load_requirements
from vfmig_proto.states import Keyword, Role

SPEC_DIR = Path(__file__).resolve().parents[1] / "spec"


def test_spec_summary_counts_what_the_spec_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec-summary", "--json", "--spec", str(SPEC_DIR)]) == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    requirements = load_requirements(SPEC_DIR)
    assert summary["protocol_version"] == "1.0"
    assert summary["capability"]["default_bytes"] == 64
    assert summary["capability"]["max_bytes"] == 0x20 + 4 * 31
    assert summary["requirements"]["total"] == len(requirements)
    for role in Role:
        for keyword in Keyword:
            expected = sum(1 for r in requirements if role in r.roles and r.keyword is keyword)
            assert summary["requirements"]["by_role"][role.value][keyword.value] == expected


def test_spec_summary_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec-summary"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("vfmig protocol 1.0\n")
    assert "64 bytes with 8 slots" in out
    for role in Role:
        assert f"\n  {role.value} " in out


def test_spec_generate_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec-generate", "--check", "--spec", str(SPEC_DIR)]) == EXIT_OK
    copy = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, copy)
    (copy / "generated" / "registers.rst").write_text("stale\n")
    assert main(["spec-generate", "--check", "--spec", str(copy)]) == EXIT_CHECK_FAILED
    assert "out of date" in capsys.readouterr().err
    assert main(["spec-generate", "--spec", str(copy)]) == EXIT_OK
    assert main(["spec-generate", "--check", "--spec", str(copy)]) == EXIT_OK


def test_a_broken_spec_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.rst").write_text(
        ".. vfm:requirement:: VFM-X-1\n   :keyword: MUST\n   :roles: bridge\n\n   A MUST.\n"
    )
    assert main(["spec-summary", "--spec", str(tmp_path)]) == EXIT_USAGE
    assert "bad.rst:1" in capsys.readouterr().err


def test_help_and_missing_command() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == EXIT_USAGE


def test_console_script_runs() -> None:
    vfmig = shutil.which("vfmig", path=str(Path(sys.executable).parent))
    assert vfmig is not None, "the vfmig console script is not installed beside this Python"
    result = subprocess.run([vfmig, "spec-summary"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "requirements:" in result.stdout
