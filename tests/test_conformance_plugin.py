"""The pytest plugin (``pytest --vfmig-target ...``), the merging of parallel shards, and a fresh install.

The plugin tests run pytest in a temporary directory with the ``pytester``
fixture.  The plugin reaches that inner pytest through its ``pytest11`` entry
point when the package is installed, or through ``-p conformance.pytest_plugin``
when it is not (a source checkout run without installing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

# pytester takes sys.modules back to what it was after each in-process run, and numpy cannot be imported twice
# in one process: import what an inner run imports (the suite, the reference implementation) here first.
import conformance.suites.device  # noqa: F401
import reference_impl.factories  # noqa: F401
from conformance.parallel import SHARD_SEED_STRIDE, merge_reports, read_shards, shard_seed, write_shard
from conformance.pytest_plugin import TARGETS
from conformance.reports import validate_junit, validate_report_json
from conformance.verdicts import Counterexample, RequirementResult, RunReport, RunStatus, Target, Verdict
from vfmig_proto.requirements import requirement

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

VENDOR_MODEL = '''
"""A vendor's device model whose driver forgets to dirty pages."""

from reference_impl.driver import DriverConfig, VfDriver
from reference_impl.factories import ReferenceDevice


class VendorDevice(ReferenceDevice):
    def create_driver(self, guest, core, slot, devfn, allocator):
        config = DriverConfig(buffers=16, dirty_completions=False, dirty_on_pause=False)
        return VfDriver(guest, core, slot, devfn, allocator, config=config)


def make():
    return VendorDevice()
'''


def _plugin_args() -> list[str]:
    installed = any(point.name == "vfmig" for point in entry_points(group="pytest11"))
    return [] if installed else ["-p", "conformance.pytest_plugin"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*_plugin_args(), "-p", "no:cacheprovider", *args)


def _json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def test_the_plugin_knows_every_target() -> None:
    assert tuple(target.value for target in Target) == TARGETS


def test_inactive_without_a_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_vendor="def test_own():\n    pass\n")
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    assert "vfmig-conformance" not in result.stdout.str()
    # Nothing else to collect: pytest's own "no tests ran".
    (pytester.path / "test_vendor.py").unlink()
    assert _run(pytester).ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_an_inactive_plugin_imports_none_of_the_suite() -> None:
    code = (
        "import sys, conformance.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('hypothesis', 'conformance', 'reference_impl')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['conformance', 'conformance.pytest_plugin']"


def test_the_options_are_documented(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--help")
    for option in ("--vfmig-target", "--vfmig-impl", "--vfmig-profile", "--vfmig-seed", "--vfmig-shards"):
        assert option in result.stdout.str()


def test_the_reference_passes_and_the_reports_validate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_vendor="def test_own():\n    pass\n")
    result = _run(
        pytester,
        *("--vfmig-target", "device", "--vfmig-profile", "quick", "--vfmig-seed", "1"),
        *("--vfmig-json", "report.json", "--vfmig-junit", "report.xml", "--vfmig-markdown", "report.md"),
    )
    result.assert_outcomes(passed=2)  # the vendor's own test and the conformance run
    result.stdout.fnmatch_lines(["*= vfmig conformance =*", "CONFORMANT: 54 requirements:*"])
    document = _json(pytester.path / "report.json")
    validate_report_json(document)
    assert (document["conformant"], document["seed"], document["profile"]) == (True, 1, "quick")
    validate_junit((pytester.path / "report.xml").read_text(encoding="utf-8"))
    assert "CONFORMANT" in (pytester.path / "report.md").read_text(encoding="utf-8")


def test_a_faulty_model_fails_with_the_requirement_and_a_reproduction(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(vendor_model=VENDOR_MODEL)
    pytester.syspathinsert()
    result = _run(
        pytester,
        *("--vfmig-target", "device", "--vfmig-impl", "vendor_model:make", "--vfmig-profile", "quick"),
        *("--vfmig-seed", "2", "--vfmig-requirement", "VFM-DIRTY-004", "--vfmig-json", "report.json"),
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*not conformant: VFM-DIRTY-004 fail*",
            "*VFM-DIRTY-004*fail*MUST NOT*",
            "*seed * (replay: --seed *), shrunk to * steps:",
            '*DeviceConformance = machine_for("device", "vendor_model:make"*',
            "FAILED vfmig-conformance[[]device[]] - not conformant: VFM-DIRTY-004 fail",
        ]
    )
    document = _json(pytester.path / "report.json")
    assert document["results"][0]["verdict"] == "fail"
    # The plugin gave Hypothesis a database, one directory per implementation.
    assert [path.name.split("-")[0] for path in (pytester.path / ".hypothesis" / "vfmig").iterdir()] == ["device"]


def test_a_bad_implementation_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = _run(pytester, "--vfmig-target", "device", "--vfmig-impl", "nosuch:thing")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*vfmig: cannot import 'nosuch'*"])
    result = _run(pytester, "--vfmig-target", "device", "--vfmig-profile", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*vfmig: unknown profile 'nope'*"])


def test_shards_are_merged_into_one_report(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        *("--vfmig-target", "device", "--vfmig-profile", "quick", "--vfmig-seed", "5", "--vfmig-shards", "2"),
        *("--vfmig-json", "report.json", "--vfmig-shard-dir", "shards", "--vfmig-requirement", "VFM-FN-001"),
    )
    result.assert_outcomes(passed=2)
    shards = read_shards(pytester.path / "shards")
    assert sorted(shards) == [0, 1]
    assert [shards[i].seed for i in (0, 1)] == [5, 5 + SHARD_SEED_STRIDE]
    document = _json(pytester.path / "report.json")
    validate_report_json(document)
    assert document["seed"] == 5
    assert document["steps"] == shards[0].steps + shards[1].steps
    assert document["results"][0]["checks"] == sum(shard.results[0].checks for shard in shards.values())


# ------------------------------------------------------------------------------------- merging shards


def _result(req_id: str, verdict: Verdict, checks: int, seed: int | None = None) -> RequirementResult:
    counterexample = None if seed is None else Counterexample(3, f"# seed {seed}\n", seed, "broken")
    return RequirementResult(requirement(req_id), verdict, checks, f"{verdict.value} detail", counterexample)


def _report(seed: int, *results: RequirementResult, errors: tuple[str, ...] = ()) -> RunReport:
    return RunReport(Target.DEVICE, "vendor:make", "thorough", seed, list(results), 2.0 + seed, 100, list(errors))


def test_merge_takes_the_worst_verdict_and_sums_the_checks() -> None:
    shards = {
        0: _report(
            0,
            _result("VFM-FN-001", Verdict.PASS, 5),
            _result("VFM-FN-002", Verdict.NOT_COVERED, 0),
            _result("VFM-DIRTY-004", Verdict.PASS, 2),
            _result("VFM-FN-003", Verdict.NOT_COVERED, 0),
        ),
        1: _report(
            1,
            _result("VFM-FN-001", Verdict.WARN, 1, seed=1),
            _result("VFM-FN-002", Verdict.PASS, 4),
            _result("VFM-DIRTY-004", Verdict.FAIL, 3, seed=11),
            _result("VFM-FN-003", Verdict.NOT_COVERED, 0),
            errors=("Flaky: it happened",),
        ),
        2: _report(
            2,
            _result("VFM-FN-001", Verdict.PASS, 7),
            _result("VFM-FN-002", Verdict.NOT_COVERED, 0),
            _result("VFM-DIRTY-004", Verdict.FAIL, 1, seed=22),
            _result("VFM-FN-003", Verdict.NOT_COVERED, 0),
        ),
    }
    merged = merge_reports(shards, seed=99, seconds=12.5)
    by_id = {result.requirement.id: result for result in merged.results}
    assert [result.requirement.id for result in merged.results] == [
        "VFM-FN-001",
        "VFM-FN-002",
        "VFM-DIRTY-004",
        "VFM-FN-003",
    ]
    assert (by_id["VFM-FN-001"].verdict, by_id["VFM-FN-001"].checks) == (Verdict.WARN, 13)
    assert (by_id["VFM-FN-002"].verdict, by_id["VFM-FN-002"].checks) == (Verdict.PASS, 4)
    dirty = by_id["VFM-DIRTY-004"]
    assert (dirty.verdict, dirty.checks) == (Verdict.FAIL, 6)
    assert dirty.counterexample is not None
    assert dirty.counterexample.seed == 11  # the first shard that failed
    assert by_id["VFM-FN-003"].verdict is Verdict.NOT_COVERED
    assert (merged.seed, merged.seconds, merged.steps) == (99, 12.5, 300)
    assert merged.suite_errors == ["shard 1: Flaky: it happened"]
    assert not merged.conformant
    defaults = merge_reports(shards)
    assert (defaults.seed, defaults.seconds) == (0, 4.0)


def test_merge_never_loses_what_makes_a_run_not_conformant_or_incomplete() -> None:
    crashed = replace(_report(1, _result("VFM-FN-001", Verdict.PASS, 2)), unattributed=["a segfault in receive"])
    clean = _report(0, _result("VFM-FN-001", Verdict.PASS, 3))
    merged = merge_reports({0: clean, 1: crashed})
    assert merged.unattributed == ["shard 1: a segfault in receive"]
    assert merged.status is RunStatus.NOT_CONFORMANT

    stopped = replace(_report(1, _result("VFM-FN-001", Verdict.INCOMPLETE, 0)), stopped="interrupted (Ctrl-C)")
    merged = merge_reports({0: clean, 1: stopped})
    assert merged.results[0].verdict is Verdict.INCOMPLETE  # one shard passed it, the other could not judge it
    assert merged.stopped == "shard 1: interrupted (Ctrl-C)"
    assert merged.status is RunStatus.INCOMPLETE

    finding = _report(1, _result("VFM-FN-001", Verdict.FAIL, 1, seed=1))
    assert merge_reports({0: stopped, 1: finding}).results[0].verdict is Verdict.FAIL  # a finding stands


def test_a_shard_that_never_reported_makes_the_merged_run_incomplete() -> None:
    merged = merge_reports({0: _report(0, _result("VFM-FN-001", Verdict.PASS, 3))}, expected=3)
    assert merged.stopped == "no report from shard 1, 2 of 3"
    assert merged.status is RunStatus.INCOMPLETE
    assert merge_reports({0: _report(0)}, expected=1, stopped="interrupted (Ctrl-C)").stopped == "interrupted (Ctrl-C)"


def test_merge_refuses_shards_of_different_runs() -> None:
    other = RunReport(Target.BRIDGE, "vendor:make", "thorough", 1, [], 1.0, 0)
    with pytest.raises(ValueError, match="shards of different runs"):
        merge_reports({0: _report(0), 1: other})
    with pytest.raises(ValueError, match="no shard reports"):
        merge_reports({})


def test_shard_reports_round_trip(tmp_path: Path) -> None:
    report = _report(3, _result("VFM-DIRTY-004", Verdict.FAIL, 3, seed=3), errors=("oops",))
    write_shard(report, tmp_path, 4)
    assert read_shards(tmp_path) == {4: report}
    assert shard_seed(10, 0) == 10
    assert shard_seed(10, 3) == 10 + 3 * SHARD_SEED_STRIDE


# ------------------------------------------------------------------------------------- a fresh install


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("VFMIG_SLOW_TESTS") != "1", reason="builds a virtualenv: set VFMIG_SLOW_TESTS=1")
def test_the_plugin_works_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    """``pip install`` the checkout (with the ``pytest`` extra) into a new virtualenv and run the plugin there."""
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV"))}
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{ROOT}[pytest]"],
        check=True,
        env=env,
        timeout=900,
    )
    work = tmp_path / "vendor"
    work.mkdir()

    def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)

    where = run(python, "-c", "import conformance; print(conformance.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(environment), where.stdout + where.stderr
    result = run(
        environment / "bin" / "pytest",
        *("--vfmig-target", "device", "--vfmig-profile", "quick", "-p", "no:cacheprovider"),
        *("--vfmig-seed", "1", "--vfmig-json", "report.json"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert json.loads((work / "report.json").read_text(encoding="utf-8"))["conformant"] is True
    vfmig = run(environment / "bin" / "vfmig", "conformance", "--target", "device", "--profile", "quick", "--seed", "1")
    assert vfmig.returncode == 0, vfmig.stdout + vfmig.stderr
