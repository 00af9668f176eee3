"""``vfmig`` outputs it cannot write, Ctrl-C, and its version: one line on standard error, the right exit code."""

from __future__ import annotations

import importlib.metadata
import json
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from cli_helpers import ROOT, SMALL, assert_one_line_usage_error, run_cli

import conformance.cli
from conformance.cli import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_OK, main
from reference_impl.scenario import Simulation, SimulationResult

MISSING = "/nonexistent-vfmig-test/out"


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (("config-dump", "-o", MISSING), "--output"),
        (("config-dump", "--at", "PRECOPY", "-o", MISSING), "--output"),
        (("c-header", "-o", f"{MISSING}.h"), "--output"),
        (("simulate", *SMALL, "--trace", f"{MISSING}.jsonl"), "--trace"),
        (("simulate", *SMALL, "--timeline", f"{MISSING}.svg"), "--timeline"),
        (("spec-generate", "--spec", MISSING), "--spec"),
        (("spec-generate", "--check", "--spec", MISSING), "--spec"),
        (("spec-summary", "--spec", MISSING), "--spec"),
        (("traceability", "--spec", MISSING), "--spec"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else value,
)
def test_an_unwritable_output_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], option: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert out == ""
    assert_one_line_usage_error(code, err, f"vfmig {argv[0]}: {option}: ", "/nonexistent-vfmig-test")


def test_a_directory_is_no_output_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "c-header", "-o", str(tmp_path))
    assert_one_line_usage_error(code, err, "--output", "is a directory")


@pytest.mark.parametrize("option", ["--trace", "--timeline"])
def test_simulate_checks_its_outputs_before_it_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    def no_simulation(*args: object, **kwargs: object) -> None:
        raise AssertionError("the simulation ran although its output cannot be written")

    monkeypatch.setattr(conformance.cli, "Simulation", no_simulation)
    code, _, err = run_cli(capsys, "simulate", *SMALL, option, MISSING)
    assert_one_line_usage_error(code, err, option)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "c-header", "-o", "/dev/full")
    assert_one_line_usage_error(code, err, "vfmig c-header: ", "No space left on device")


# ---------------------------------------------------------------------------------------------------------------
# Ctrl-C


class _InterruptedSimulation(Simulation):
    """Boots (so the trace has events), then Ctrl-C arrives as the migrations begin."""

    def run(self, progress: object = None) -> SimulationResult:
        raise KeyboardInterrupt


def test_ctrl_c_in_simulate_keeps_the_trace(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(conformance.cli, "Simulation", _InterruptedSimulation)
    trace = tmp_path / "trace.jsonl"
    code, out, err = run_cli(capsys, "simulate", *SMALL, "--trace", str(trace))
    assert code == EXIT_INTERRUPTED
    assert out == ""
    assert err == "vfmig simulate: interrupted\n"
    lines = trace.read_text(encoding="utf-8").splitlines()
    assert lines, "the events until the interrupt are in the trace"
    assert all(isinstance(json.loads(line), dict) for line in lines)


@pytest.mark.parametrize(
    ("argv", "interrupted"),
    [
        (("c-header",), "c_header"),
        (("config-dump",), "bridge_config_at"),
        (("spec-summary",), "load_requirements"),
        (("spec-generate", "--check"), "stale_generated"),
    ],
)
def test_ctrl_c_in_any_command_is_one_line_and_exit_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...], interrupted: str
) -> None:
    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(conformance.cli, interrupted, ctrl_c)
    code, _, err = run_cli(capsys, *argv)
    assert code == EXIT_INTERRUPTED
    assert err == f"vfmig {argv[0]}: interrupted\n"


def test_a_real_sigint_stops_a_long_simulation(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    # 64 MiB at 1 MiB/s pre-copies until the 600 s limit: about 20 s of wall time, so SIGINT arrives mid-run.
    command = [sys.executable, "-m", "conformance.cli", "simulate", *SMALL, "--bandwidth", "1MiB/s"]
    process = subprocess.Popen(
        [*command, "--no-progress", "--trace", str(trace)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while (not trace.exists() or trace.stat().st_size < 100_000) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "vfmig simulate: interrupted", "after the warning that pre-copy will not converge"
    assert out == ""
    lines = trace.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 100
    assert all(isinstance(json.loads(line), dict) for line in lines), "every line written is whole"


# ---------------------------------------------------------------------------------------------------------------
# --version


def test_version_names_the_package_and_the_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == EXIT_OK
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert capsys.readouterr().out == f"vfmig {version} (protocol 1.0)\n"


def test_version_without_a_source_tree_or_an_installation(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(conformance.cli, "_source_tree_version", lambda: None)
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert conformance.cli.package_version() == "unknown"
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.8.7")
    assert conformance.cli.package_version() == "9.8.7"


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance.cli", "spec-summary"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()  # like `vfmig spec-summary | head -0`
    _, err = process.communicate(timeout=60)
    assert process.returncode == EXIT_BROKEN_PIPE
    assert err == ""
