"""The vendor's guide (docs/guides/vendor.rst) works as written: its example adapter and its commands.

The example, ``examples/vendor_device/acme_vf.py``, is not part of the wheel: these tests put the
checkout's root on ``sys.path`` (in-process) or ``PYTHONPATH`` (subprocesses), as the guide tells a
reader to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conformance.cli import build_parser
from conformance.interfaces.device import DriverUnderTest, FunctionUnderTest
from conformance.reports import validate_junit, validate_report_json
from conformance.runner import run
from conformance.verdicts import Target, Verdict
from reference_impl.hypervisor import MigrationOutcome
from reference_impl.scenario import Simulation, SimulationConfig
from vfmig_proto.states import DevState

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guides" / "vendor.rst"
EXAMPLE = "examples.vendor_device.acme_vf:make"


@pytest.fixture
def checkout_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkout's root on ``sys.path``, so that ``examples`` imports (as the guide tells a reader)."""
    monkeypatch.syspath_prepend(str(ROOT))


def _vfmig() -> list[str]:
    """The ``vfmig`` command of the running interpreter's environment."""
    script = Path(sys.executable).with_name("vfmig")
    return [str(script)] if script.exists() else [sys.executable, "-m", "conformance.cli"]


def _guide_commands(prefix: str) -> list[str]:
    """The lines of the guide's ``sh`` code blocks that start with ``prefix`` (continuation lines joined)."""
    text = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"^\.\. code-block:: sh\n\n((?:   .*\n|\n)+)", text, flags=re.MULTILINE)
    lines = (line.strip() for block in blocks for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines())
    return [line for line in lines if line.startswith(prefix)]


@pytest.mark.usefixtures("checkout_on_path")
def test_the_example_satisfies_the_adapter_protocols() -> None:
    from examples.vendor_device.acme_vf import ACME_IDENTITY, AcmeDriver, AcmeFunction, make

    implementation = make()
    assert implementation is not make(), "the factory returns a fresh object on every call"
    simulation = Simulation(SimulationConfig(memory_bytes=4 << 20, vfs=2), devices=implementation)
    assert len(simulation.drivers) == 2
    for driver in simulation.drivers:
        assert isinstance(driver, AcmeDriver)
        assert isinstance(driver, DriverUnderTest)
        function = driver.function
        assert isinstance(function, AcmeFunction)
        seen_as: FunctionUnderTest = function  # (mypy checks the shape; isinstance checks it at run time)
        assert isinstance(seen_as, FunctionUnderTest)
        assert function.identity == ACME_IDENTITY
        assert function.config_read(0x00, 2) == ACME_IDENTITY.vendor_id
        assert driver.loaded
        assert driver.up
    record = simulation.run().last
    assert record.outcome is MigrationOutcome.COMPLETED, record.reason
    assert record.lost_pages == 0
    seen = [driver.states_seen for driver in simulation.drivers if isinstance(driver, AcmeDriver)]
    assert all(DevState.PAUSE_REQ in states and DevState.REINIT_REQ in states for states in seen), seen


@pytest.mark.usefixtures("checkout_on_path")
def test_the_example_is_conformant() -> None:
    report = run(Target.DEVICE, EXAMPLE, profile="quick", seed=1)
    assert report.implementation == EXAMPLE
    assert report.conformant, [(r.requirement.id, r.verdict.value, r.detail) for r in report.results]
    assert not report.suite_errors
    assert report.count(Verdict.PASS) > 0
    assert report.count(Verdict.FAIL) == report.count(Verdict.ERROR) == report.count(Verdict.TIMEOUT) == 0


def _python_blocks() -> list[str]:
    """The guide's ``python`` code blocks, dedented."""
    text = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text, flags=re.MULTILINE)
    return [textwrap.dedent(block) for block in blocks]


def _run_guide_command(command: str, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One of the guide's ``vfmig`` commands, in ``cwd``, with the checkout on ``PYTHONPATH``."""
    words = shlex.split(command)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    args = [*_vfmig(), *words[1:], *extra]
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.usefixtures("checkout_on_path")
def test_the_guides_simulation_example_runs() -> None:
    [block] = [block for block in _python_blocks() if "Simulation(" in block]
    namespace: dict[str, object] = {}
    exec(compile(block, str(GUIDE), "exec"), namespace)
    record = namespace["record"]
    assert getattr(record, "lost_pages", None) == 0


def test_the_guides_commands_run_on_the_example(tmp_path: Path) -> None:
    commands = _guide_commands(f"vfmig conformance --target device --impl {EXAMPLE} --profile quick")
    assert len(commands) == 2, commands
    assert commands[1].startswith(commands[0]), "the second adds the reports to the first"
    result = _run_guide_command(commands[1], tmp_path, "--database", str(tmp_path / "db"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"vfmig conformance of {EXAMPLE} (target device, profile quick, seed 1)" in result.stdout
    assert re.search(r"^CONFORMANT: \d+ requirements", result.stdout, flags=re.MULTILINE), result.stdout
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    validate_report_json(document)
    assert document["conformant"] is True
    validate_junit((tmp_path / "report.xml").read_text(encoding="utf-8"))
    assert "**Verdict: CONFORMANT**" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_the_guides_failure_and_its_replay(tmp_path: Path) -> None:
    [command] = [
        c for c in _guide_commands("vfmig conformance") if "dirties_before_stopping" in c and "--database" in c
    ]
    result = _run_guide_command(
        command.replace("/tmp/vfmig-db", str(tmp_path / "db")), tmp_path, "--json", "report.json"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^NOT CONFORMANT: \d+ requirements", result.stdout, flags=re.MULTILINE), result.stdout
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    failed = {r["id"] for r in document["results"] if r["verdict"] == "fail"}
    assert "VFM-DIRTY-004" in failed  # the requirement the catalogue says this fault breaks
    assert "VFM-DIRTY-004   fail         MUST NOT" in result.stdout
    # The guide's snippets: read and validate the report, then write each reproduction to a file.
    blocks = [block for block in _python_blocks() if "report.json" in block]
    assert len(blocks) == 2
    with contextlib.chdir(tmp_path):
        for block in blocks:
            exec(compile(block, str(GUIDE), "exec"), {"print": lambda *args: None})
    replay = tmp_path / "replay_vfm_dirty_004.py"
    assert replay.exists()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ran = subprocess.run(
        [sys.executable, replay.name], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 1
    assert "RequirementViolation: VFM-DIRTY-004" in ran.stderr


def test_every_vfmig_conformance_command_in_the_guide_parses() -> None:
    commands = _guide_commands("vfmig conformance ")
    assert len(commands) >= 4
    parser = build_parser()
    for command in commands:
        try:
            args = parser.parse_args(shlex.split(command)[1:])
        except SystemExit as exit_:
            pytest.fail(f"the guide's command does not parse ({exit_.code}): {command}")
        assert args.command == "conformance"
