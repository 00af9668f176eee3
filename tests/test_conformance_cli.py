"""`vfmig conformance`: exit codes, reports, and what a broken, raising or hanging implementation gets.

The implementations under test live in this module and are named by its
import name (``f"{__name__}:make_faulty"``), which works however pytest
imported it: the runner finds the module in ``sys.modules``.
"""

from __future__ import annotations

import io
import json
import time
import traceback
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text

from conformance import cli
from conformance.checks import RequirementViolation
from conformance.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, main
from conformance.harness import Progress
from conformance.live import ConformanceProgress
from conformance.parallel import SHARD_SEED_STRIDE, run_parallel
from conformance.reports import validate_junit, validate_report_json
from conformance.runner import implementation_key
from conformance.summary import verdict_line
from conformance.verdicts import RequirementResult, RunReport, Target, Verdict
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.factories import ReferenceDevice
from reference_impl.guest import DmaRegionAllocator, Guest
from vfmig_proto.requirements import requirement
from vfmig_proto.states import DevState

FAULTY_REQUIREMENT = "VFM-DIRTY-004"
"""What the faulty driver breaks: it reports PAUSED without dirtying what its function wrote."""
FAULTY_SEED = 2
"""A seed that finds it in about a second with the quick profile."""


class FaultyDevice(ReferenceDevice):
    """The reference function with a driver that never dirties a page."""

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        config = DriverConfig(buffers=16, dirty_completions=False, dirty_on_pause=False)
        return VfDriver(guest, core, slot, devfn, allocator, config=config)


def make_faulty() -> FaultyDevice:
    """A device implementation that breaks the dirtying requirements."""
    return FaultyDevice()


def make_raising() -> ReferenceDevice:
    """A factory that cannot build its implementation."""
    raise RuntimeError("the vendor's model failed to start")


class HangingDriver(VfDriver):
    """A driver that never returns from a migration sequence."""

    def act_on(self, state: DevState | int) -> None:
        while True:
            pass


class HangingDevice(ReferenceDevice):
    """The reference function with a driver that hangs."""

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return HangingDriver(guest, core, slot, devfn, allocator, config=DriverConfig(buffers=16))


def make_hanging() -> HangingDevice:
    """A device implementation whose driver hangs."""
    return HangingDevice()


def _vfmig(tmp_path: Path, *argv: str) -> int:
    """``vfmig conformance --target device --no-progress --database TMP ARGV...``; the exit code."""
    arguments = ["conformance", "--target", "device", "--no-progress", "--database", str(tmp_path / "db"), *argv]
    try:
        return main(arguments)
    except SystemExit as exit_:  # argparse refuses a bad argument this way
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE


def _json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _verdicts(document: dict[str, Any]) -> set[str]:
    return {result["verdict"] for result in document["results"]}


def test_reference_is_conformant_and_its_reports_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = {name: tmp_path / f"report.{name}" for name in ("json", "xml", "md")}
    code = _vfmig(
        tmp_path,
        *("--profile", "quick", "--seed", "1"),
        *("--json", str(paths["json"]), "--junit", str(paths["xml"]), "--markdown", str(paths["md"])),
    )
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert "vfmig conformance of reference_impl.factories:device (target device, profile quick, seed 1)" in out
    assert "\nCONFORMANT: " in out
    assert "steps/s" in out
    document = _json(paths["json"])
    validate_report_json(document)
    assert document["conformant"] is True
    assert document["seed"] == 1
    assert document["profile"] == "quick"
    assert document["started"] is not None
    assert document["summary"]["pass"] > 0
    junit = paths["xml"].read_text(encoding="utf-8")
    validate_junit(junit)
    suite = ET.fromstring(junit).find("testsuite")
    assert suite is not None
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    assert "**Verdict: CONFORMANT**" in paths["md"].read_text(encoding="utf-8")


def test_a_faulty_implementation_fails_with_a_runnable_reproduction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    code = _vfmig(
        tmp_path,
        *("--impl", f"{__name__}:make_faulty", "--profile", "quick", "--seed", str(FAULTY_SEED)),
        *("--requirement", FAULTY_REQUIREMENT, "--json", str(report)),
    )
    out = capsys.readouterr().out
    assert code == EXIT_CHECK_FAILED, out
    assert "\nNOT CONFORMANT: 1 requirement: 0 pass, 1 fail" in out
    assert f"{FAULTY_REQUIREMENT}   fail" in out
    assert "(replay: --seed " in out
    assert f'machine_for("device", "{__name__}:make_faulty"' in out
    document = _json(report)
    validate_report_json(document)
    [result] = document["results"]
    assert (result["id"], result["verdict"]) == (FAULTY_REQUIREMENT, "fail")
    counterexample = result["counterexample"]
    assert counterexample["seed"] is not None
    assert f"seed {counterexample['seed']}" in out
    # The reproduction is a program: running it breaks the requirement again.
    with pytest.raises(RequirementViolation) as violation:
        exec(compile(counterexample["reproduction"], "<reproduction>", "exec"), {})
    assert violation.value.requirement == FAULTY_REQUIREMENT
    # Hypothesis kept the failure in this implementation's own directory of the database.
    assert (tmp_path / "db" / f"device-{implementation_key(make_faulty)}").is_dir()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--impl", "nosuch:thing"], "cannot import 'nosuch'"),
        (["--impl", f"{__name__}:nothing_here"], "has no 'nothing_here'"),
        (["--impl", "no-colon"], "is not MODULE:FACTORY"),
        (["--requirement", "VFM-XXX-999"], "VFM-XXX-999"),
        (["--requirement", "VFM-CAP-001"], "not requirements of target device: VFM-CAP-001"),
        (["--profile", "nope"], "invalid choice: 'nope'"),
        (["--timeout", "-1"], "--timeout must not be negative"),
        (["--database", "/etc/passwd"], "--database /etc/passwd is a file; it must be a directory"),
        (["--memory-limit", "lots"], "--memory-limit"),
        (["--profile", "thorough", "--impl", "nosuch:thing"], "cannot import 'nosuch'"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert _vfmig(tmp_path, "--profile", "quick", *argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert message in captured.err
    assert len(captured.err.splitlines()) == 1
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_a_factory_that_raises_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The pre-flight check calls the factory first: one line naming the exception and where, and a report that
    says nothing was judged (INCOMPLETE, never CONFORMANT)."""
    report = tmp_path / "report.json"
    code = _vfmig(tmp_path, "--impl", f"{__name__}:make_raising", "--profile", "quick", "--json", str(report))
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith(f"vfmig conformance: {__name__}:make_raising raised RuntimeError: ")
    with pytest.raises(RuntimeError) as raised:
        make_raising()
    where = f"{Path(__file__).name}, line {traceback.extract_tb(raised.value.__traceback__)[-1].lineno}"
    assert "the vendor's model failed to start (" in line
    assert line.endswith(f"{where}, in make_raising)"), line
    document = _json(report)
    validate_report_json(document)
    assert document["status"] == "incomplete"
    assert _verdicts(document) == {"incomplete"}


def test_a_hanging_implementation_times_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    started = time.monotonic()
    code = _vfmig(
        tmp_path,
        *("--impl", f"{__name__}:make_hanging", "--profile", "quick", "--seed", "1", "--timeout", "0.5"),
        *("--json", str(report)),
    )
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == EXIT_CHECK_FAILED
    assert elapsed < 30
    assert "did not return within 0.5 s" in out
    document = _json(report)
    validate_report_json(document)
    assert "timeout" in _verdicts(document)
    # the hang is the timed-out requirements'; what a hang while building the world leaves unjudged is incomplete
    assert _verdicts(document) <= {"timeout", "pass", "not-covered", "incomplete"}


def test_a_report_in_a_missing_directory_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "run_isolated", None)  # never reached
    missing = tmp_path / "no" / "such" / "dir" / "report.json"
    assert _vfmig(tmp_path, "--profile", "quick", "--seed", "1", "--json", str(missing)) == EXIT_USAGE
    assert f"cannot write a report to {missing}: no such directory" in capsys.readouterr().err


def test_an_unwritable_report_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def tiny_run(target: Target, implementation: str | None = None, **options: Any) -> RunReport:
        return RunReport(target, "reference_impl.factories:device", "quick", 1, [], 0.0, 0)

    monkeypatch.setattr(cli, "run_isolated", tiny_run)
    directory = tmp_path / "report.json"
    directory.mkdir()  # a directory where the file should go
    assert _vfmig(tmp_path, "--profile", "quick", "--json", str(directory)) == EXIT_USAGE
    assert "cannot write a report" in capsys.readouterr().err


def test_an_internal_error_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> RunReport:
        raise KeyError("a bug in the suite")

    monkeypatch.setattr(cli, "run_isolated", broken)
    assert _vfmig(tmp_path, "--profile", "quick") == EXIT_USAGE
    assert "internal error: KeyError: 'a bug in the suite'" in capsys.readouterr().err


def test_thorough_runs_shards_in_parallel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--profile thorough`` goes through conformance.parallel (here with the quick profile's effort)."""
    calls: list[dict[str, Any]] = []
    finished: list[int] = []

    def quick_parallel(target: Target, implementation: str | None = None, **options: Any) -> RunReport:
        calls.append(options)
        on_shard = options["on_shard"]

        def shard_done(index: int, shard: RunReport) -> None:
            assert shard.seed == 7 + SHARD_SEED_STRIDE * index
            finished.append(index)
            on_shard(index, shard)

        changed = {"profile": "quick", "shards": 2, "on_shard": shard_done}
        return run_parallel(target, implementation, **{**options, **changed})

    monkeypatch.setattr(cli, "run_parallel", quick_parallel)
    report = tmp_path / "report.json"
    code = _vfmig(tmp_path, "--profile", "thorough", "--seed", "7", "--json", str(report))
    assert code == EXIT_OK, capsys.readouterr()
    [options] = calls
    assert options["profile"] == "thorough"
    assert options["database_dir"] == tmp_path / "db"
    assert sorted(finished) == [0, 1]
    document = _json(report)
    validate_report_json(document)
    assert document["seed"] == 7
    assert document["conformant"] is True
    assert document["profile"] == "quick"  # what the stand-in ran


def test_a_conformant_run_with_a_problem_of_its_own_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def troubled_run(target: Target, implementation: str | None = None, **options: Any) -> RunReport:
        return RunReport(target, "vendor:make", "quick", 1, [], 0.0, 0, ["Flaky: the suite is not deterministic"])

    monkeypatch.setattr(cli, "run_isolated", troubled_run)
    assert _vfmig(tmp_path, "--profile", "quick") == EXIT_USAGE
    captured = capsys.readouterr()
    assert "problems of the run itself:\n  Flaky: the suite is not deterministic" in captured.out
    assert "could not judge everything, so it is incomplete" in captured.err
    assert "INCOMPLETE" in captured.out
    assert "CONFORMANT:" not in captured.out.replace("NOT CONFORMANT", "")


def test_live_progress_prints_each_finding_once(capsys: pytest.CaptureFixture[str]) -> None:
    failed = RequirementResult(requirement(FAULTY_REQUIREMENT), Verdict.FAIL, 3, "pages not dirtied")
    passed = RequirementResult(requirement("VFM-FN-001"), Verdict.PASS, 3)
    with ConformanceProgress("vfmig conformance: device", enabled=True) as progress:
        progress.verdict(failed)
        progress.verdict(passed)
        progress.shard_done(0, RunReport(Target.DEVICE, "vendor:make", "quick", 1, [failed, passed], 1.0, 10))
    assert progress.counts == {Verdict.FAIL: 1}
    err = capsys.readouterr().err
    assert err.count(FAULTY_REQUIREMENT) == 1
    assert "pages not dirtied" in err
    with ConformanceProgress("off", enabled=False, shards=2) as quiet:
        quiet.shard_done(0, RunReport(Target.DEVICE, "vendor:make", "quick", 1, [failed], 1.0, 10))
    assert capsys.readouterr().err == ""


def test_the_live_display_fits_80_columns_and_wraps_findings_at_words() -> None:
    """Examples, steps, requirements judged and the profile's budget, each line whole at 80 columns; a finding
    printed above the display wraps at word boundaries instead of being cut."""
    display = ConformanceProgress(
        "vfmig conformance: hypervisor", enabled=False, budget="400 examples x 80 steps a group"
    )
    display.progress(Progress(examples=12_345, steps=1_234_567, judged=17, total=54, restarts=3, seconds=61.0))
    lines = display.lines()
    assert all(len(line) <= 76 for line in lines), lines  # room for the spinner and the indent
    text = "\n".join(lines)
    for figure in ("examples 12,345", "steps 1,234,567", "judged 17 of 54 requirements", "400 examples x 80 steps"):
        assert figure in text
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(display)
    words = "the function wrote guest memory by DMA after it acknowledged the pause " * 3
    finding = RequirementResult(requirement(FAULTY_REQUIREMENT), Verdict.FAIL, 3, words)
    console.print(Text(verdict_line(finding, chars=None)))  # as the display prints a finding
    rendered = console.export_text().splitlines()
    assert not any("…" in line for line in rendered)
    assert all(len(line) <= 80 for line in rendered)
    printed = " ".join(line.strip() for line in rendered[len(lines) :])
    assert " ".join(words.split()) in printed  # every word whole, in order, across the wrapped lines
