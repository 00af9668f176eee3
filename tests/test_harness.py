"""The harness tells the truth: nested deadlines hold, a run that could not judge everything is never conformant,
the same seed gives the same verdicts, failures land on the requirement whose check waited, Ctrl-C keeps a report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis.stateful import rule

from conformance.checks import Checks, ConformanceMachine, StepTimeout, step
from conformance.harness import run_isolated
from conformance.reports import report_json, report_junit, report_markdown
from conformance.verdicts import RequirementResult, RunReport, RunStatus, Target, Verdict
from vfmig_proto.requirements import load_requirements

ROOT = Path(__file__).resolve().parent.parent


class _Nested(ConformanceMachine):
    checks: ClassVar[Checks] = Checks([])
    timeout_s: ClassVar[float] = 1.0

    @rule()
    @step()
    def inner(self) -> None:
        pass

    @rule()
    @step()
    def outer(self) -> None:
        self.inner()  # a step inside a step, as final checks run no_lost_write
        time.sleep(5)  # after the inner step returned: the outer step's deadline must still hold


def test_a_nested_step_keeps_the_outer_deadline() -> None:
    machine = _Nested()
    started = time.monotonic()
    with pytest.raises(StepTimeout, match="step outer did not return within 1 s"):
        machine.outer()
    assert time.monotonic() - started < 3


def test_a_run_with_a_problem_of_its_own_is_incomplete_in_every_report() -> None:
    requirement = next(req for req in load_requirements() if req.roles & Target.BRIDGE.roles)
    report = RunReport(
        Target.BRIDGE,
        "vendor:make",
        "quick",
        1,
        [RequirementResult(requirement, Verdict.PASS, 3)],
        1.0,
        10,
        suite_errors=["FlakyStrategyDefinition: the strategies changed between runs"],
    )
    assert report.status is RunStatus.INCOMPLETE
    assert not report.conformant
    document = report_json(report)
    assert document["status"] == "incomplete"
    assert document["conformant"] is False
    junit = report_junit(report)
    assert 'errors="1"' in junit
    assert 'type="run"' in junit
    assert "**Verdict: INCOMPLETE**" in report_markdown(report)


def _comparable(report: RunReport) -> dict[str, Any]:
    document = report_json(report)
    del document["duration_seconds"], document["started"]
    for result in document["results"]:
        del result["seconds_to_detect"]
    return document


def test_the_same_seed_gives_the_same_verdicts_steps_and_counterexamples(tmp_path: Path) -> None:
    faulty = "conformance.catalogue.device_faults:forgets_the_ring"
    documents = [
        _comparable(run_isolated(Target.DEVICE, faulty, profile="quick", seed=11, database_dir=tmp_path / f"db{index}"))
        for index in range(3)
    ]
    assert documents[0]["status"] == "not conformant"
    assert any(result["counterexample"] for result in documents[0]["results"])
    assert documents[1] == documents[0]
    assert documents[2] == documents[0]


def _wait_for_the_worker(pid: int, timeout_s: float = 60.0) -> None:
    """Until the process ``pid`` has started a child (the run's worker), on Linux; elsewhere a fixed wait."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        time.sleep(4)
        return
    deadline = time.monotonic() + timeout_s
    while not children.read_text(encoding="ascii").split():
        assert time.monotonic() < deadline, "the run started no worker"
        time.sleep(0.05)


def test_an_interrupted_run_keeps_an_incomplete_report(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        *("-m", "conformance.cli", "conformance", "--target", "device", "--seed", "3", "--no-progress"),
        *("--json", str(tmp_path / "report.json"), "--database", str(tmp_path / "db")),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_the_worker(process.pid)  # the run is under way: imports and the pre-flight check are over
    time.sleep(0.5)  # a default run of the reference takes seconds: the interrupt lands in it
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    [line] = err.splitlines()
    assert line.startswith("vfmig conformance: interrupted;")
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["status"] == "incomplete"
    assert document["stopped"] == "interrupted (Ctrl-C)"
    assert "incomplete" in {result["verdict"] for result in document["results"]}


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux)."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text(encoding="ascii").split()
        except OSError:
            continue
        for child in map(int, children):
            found.add(child)
            pending.append(child)
    return found


def _depth(pid: int, ancestor: int) -> int:
    """How many parents up from ``pid`` ``ancestor`` is (0 if it is not an ancestor)."""
    depth, current = 0, pid
    while current not in (0, 1):
        try:
            stat = Path(f"/proc/{current}/stat").read_text(encoding="ascii")
        except OSError:
            return 0
        current = int(stat.rsplit(")", 1)[1].split()[1])
        depth += 1
        if current == ancestor:
            return depth
    return 0


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="follows the run's processes through /proc")
def test_ctrl_c_stops_a_parallel_run_and_keeps_an_incomplete_report(tmp_path: Path) -> None:
    """The thorough profile (pytest-xdist shards, each with a supervised worker) stops on Ctrl-C at once: exit
    130, a report that says INCOMPLETE, and not one of the run's processes left behind."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        *("-m", "conformance.cli", "conformance", "--target", "bridge", "--profile", "thorough", "--seed", "3"),
        *("--no-progress", "--json", str(tmp_path / "report.json"), "--database", str(tmp_path / "db")),
    ]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    # CLI -> pytest -> xdist worker -> supervised worker: wait until a shard's worker runs the suite
    while not any(_depth(pid, process.pid) >= 3 for pid in _descendants(process.pid)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no shard started its worker"
        time.sleep(0.1)
    time.sleep(1.0)
    started = _descendants(process.pid)
    interrupted_at = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground process group
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - interrupted_at < 30
    assert process.returncode == 130, (out, err)
    assert err.splitlines()[-1].startswith("vfmig conformance: interrupted;")
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["status"] == "incomplete"
    assert document["stopped"].startswith("interrupted (Ctrl-C)")
    settle = time.monotonic() + 10
    while any(_alive(pid) for pid in started) and time.monotonic() < settle:
        time.sleep(0.1)
    assert not [pid for pid in started if _alive(pid)], "processes of the run outlived it"
