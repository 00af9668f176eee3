"""A conformance run on every core: independent shards under pytest-xdist, merged into one report.

The ``thorough`` profile of ``vfmig conformance`` runs here.  :func:`run_parallel`
starts ``python -m pytest`` in a subprocess with the pytest plugin
(``conformance.pytest_plugin``) and pytest-xdist: one xdist worker per CPU
this process may use and as many *shards*, each a complete run of the profile
with its own seed (:func:`shard_seed`).  Every shard writes its JSON report
into a directory the parent watches (so a live display can count finished
shards), and :func:`merge_reports` folds them into one
:class:`~conformance.verdicts.RunReport`:

- a requirement's verdict is the worst over the shards, in the order
  ``not-covered < pass < warn < timeout < error < fail``, with the detail and
  counterexample of the first shard (lowest index) that has that verdict;
  so a requirement is ``not-covered`` only if no shard covered it;
- its check count, and the run's steps, are summed over the shards;
- the problems of the run itself, and the implementation's failures no requirement owned, are collected,
  each prefixed with its shard; a shard that stopped early, or did not report at all, stops the merged run
  (so it is INCOMPLETE, never CONFORMANT);
- the coverage of the spec's space is the union of the shards' cells.

Ctrl-C stops every shard: the pytest run has a session of its own, so the terminal's interrupt reaches only
this process, which passes it on to the whole run, waits a bounded time for the shards to write what they
judged, kills what is left, and raises :class:`~conformance.harness.Interrupted` with the merged report.

The subprocess is hermetic: plugin autoloading is off (``-p xdist.plugin -p
conformance.pytest_plugin`` load what it needs), it runs in a temporary
directory with an empty ``pytest.ini`` (so the caller's own tests and pytest
configuration stay out of it), and it sees this process's ``sys.path`` (so an
implementation importable here is importable there).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Unpack

from conformance.harness import Interrupted
from conformance.preflight import load_implementation
from conformance.reports.json_report import read_json, write_json
from conformance.runner import (
    DEFAULT_IMPLEMENTATIONS,
    DEFAULT_STEP_TIMEOUT_S,
    PROFILES,
    RunArguments,
    UsageError,
    target_requirements,
)
from conformance.spec_coverage import merge_all
from conformance.verdicts import RequirementResult, RunReport, Target, Verdict
from vfmig_proto.requirements import Requirement

SHARD_SEED_STRIDE = 1000
"""Shard ``i`` runs with seed ``seed + SHARD_SEED_STRIDE * i``.

A run uses ``seed + g`` for its requirement group ``g`` (at most 64 groups),
so shards ``seed + i`` would replay each other's later groups; a stride keeps
every shard's seeds apart.  Shard 0 runs with the run's own seed, so a one-shard
run is the same run as ``vfmig conformance --seed`` in-process.
"""

SHARD_PATTERN = "shard-*.json"
_POLL_S = 0.2
_LOG_TAIL_CHARS = 4000
INTERRUPT_GRACE_S = 10.0
"""How long the shards get after Ctrl-C to write the report of what they judged, before they are killed."""
INTERRUPTED = "interrupted (Ctrl-C)"

SEVERITY: dict[Verdict, int] = {
    Verdict.NOT_COVERED: 0,
    Verdict.PASS: 1,
    Verdict.WARN: 2,
    Verdict.INCOMPLETE: 3,
    Verdict.TIMEOUT: 4,
    Verdict.ERROR: 5,
    Verdict.FAIL: 6,
}
"""How bad a verdict is when shards disagree: the merged verdict is the highest.

A finding of one shard stands whatever the others did; a shard that could not judge a requirement leaves it
``incomplete`` even if another shard passed it, since the run as asked for was not done.
"""


def shard_seed(seed: int, index: int) -> int:
    """The seed of shard ``index`` of a run with seed ``seed``."""
    return seed + SHARD_SEED_STRIDE * index


def available_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)  # pragma: no cover - macOS and Windows


def shard_path(directory: Path, index: int) -> Path:
    """Where shard ``index`` writes its JSON report."""
    return directory / f"shard-{index}.json"


def write_shard(report: RunReport, directory: Path, index: int) -> Path:
    """Write ``report`` as shard ``index`` atomically (a watcher never sees half a file)."""
    path = shard_path(directory, index)
    partial = directory / f".{path.name}.{os.getpid()}.tmp"
    write_json(report, partial)
    os.replace(partial, path)
    return path


def shard_indices(directory: Path) -> set[int]:
    """The indices of the shards that wrote their report into ``directory``."""
    names = (path.stem.removeprefix("shard-") for path in directory.glob(SHARD_PATTERN))
    return {int(name) for name in names if name.isdigit()}


def read_shards(directory: Path) -> dict[int, RunReport]:
    """The shard reports in ``directory``, by shard index."""
    return {index: read_json(shard_path(directory, index)) for index in sorted(shard_indices(directory))}


def _merge_results(results: list[RequirementResult]) -> RequirementResult:
    worst = max(results, key=lambda result: SEVERITY[result.verdict])  # max keeps the first of equals
    return RequirementResult(
        requirement=worst.requirement,
        verdict=worst.verdict,
        checks=sum(result.checks for result in results),
        detail=worst.detail,
        counterexample=worst.counterexample,
        seconds_to_detect=worst.seconds_to_detect,
    )


def merge_reports(
    shards: Mapping[int, RunReport],
    *,
    seed: int | None = None,
    seconds: float | None = None,
    expected: int | None = None,
    stopped: str | None = None,
) -> RunReport:
    """One report from the reports of independent shards of a run (see the module docstring).

    ``seed`` is the run's seed (default: shard 0's, or the first shard's);
    ``seconds`` its wall time (default: the longest shard's); ``expected`` how many shards the run had (the
    missing ones stop the merged run); ``stopped`` why the whole run stopped early, if it did.
    """
    if not shards:
        raise ValueError("no shard reports to merge")
    ordered = [shards[index] for index in sorted(shards)]
    first = ordered[0]
    for report in ordered[1:]:
        if (report.target, report.implementation) != (first.target, first.implementation):
            raise ValueError(
                f"shards of different runs: {first.target.value} of {first.implementation} and "
                f"{report.target.value} of {report.implementation}"
            )
    by_id: dict[str, list[RequirementResult]] = {}
    for report in ordered:
        for result in report.results:
            by_id.setdefault(result.requirement.id, []).append(result)
    return RunReport(
        target=first.target,
        implementation=first.implementation,
        profile=first.profile,
        seed=first.seed if seed is None else seed,
        results=[_merge_results(results) for results in by_id.values()],
        seconds=max(report.seconds for report in ordered) if seconds is None else seconds,
        steps=sum(report.steps for report in ordered),
        suite_errors=_per_shard(shards, lambda report: report.suite_errors),
        unattributed=_per_shard(shards, lambda report: report.unattributed),
        stopped=_merged_stop(shards, expected, stopped),
        coverage=merge_all(report.coverage for report in ordered),
    )


def _per_shard(shards: Mapping[int, RunReport], items: Callable[[RunReport], list[str]]) -> list[str]:
    return [f"shard {index}: {item}" for index in sorted(shards) for item in items(shards[index])]


def _merged_stop(shards: Mapping[int, RunReport], expected: int | None, stopped: str | None) -> str | None:
    """Why the merged run did not judge everything: its own stop, the shards' stops and the shards missing."""
    reasons = [stopped] if stopped else []
    reasons += [f"shard {index}: {shards[index].stopped}" for index in sorted(shards) if shards[index].stopped]
    missing = sorted(set(range(expected)) - set(shards)) if expected is not None else []
    if missing:
        reasons.append(f"no report from shard {', '.join(map(str, missing))} of {expected}")
    return "; ".join(reasons) or None


def nothing_judged(
    target: Target, implementation: str, requirements: list[Requirement], *, profile: str, seed: int, why: str
) -> RunReport:
    """The report of a run that ended before any shard reported: every requirement ``incomplete``."""
    return RunReport(
        target=target,
        implementation=implementation,
        profile=profile,
        seed=seed,
        results=[RequirementResult(req, Verdict.INCOMPLETE, detail=f"not judged: {why}") for req in requirements],
        seconds=0.0,
        steps=0,
        stopped=why,
    )


def pytest_command(
    target: Target,
    implementation: str,
    *,
    profile: str,
    seed: int,
    timeout_s: float,
    requirements: Iterable[str] | None,
    database_dir: Path,
    shards: int,
    shard_dir: Path,
    ini_file: Path,
) -> list[str]:
    """The ``python -m pytest`` command line of a parallel run."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "xdist.plugin",
        "-p",
        "conformance.pytest_plugin",
        "-p",
        "no:cacheprovider",
        "-c",
        str(ini_file),
        "--rootdir",
        str(ini_file.parent),
        "-q",
        "--no-header",
        "-n",
        str(shards),
        "--vfmig-target",
        target.value,
        "--vfmig-impl",
        implementation,
        "--vfmig-profile",
        profile,
        "--vfmig-seed",
        str(seed),
        "--vfmig-timeout",
        repr(timeout_s),
        "--vfmig-shards",
        str(shards),
        "--vfmig-shard-dir",
        str(shard_dir),
        "--vfmig-database",
        str(database_dir),
    ]
    for requirement in requirements or ():
        command += ["--vfmig-requirement", requirement]
    return command


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    return env


def _check_tools() -> None:
    missing = [name for name in ("pytest", "xdist") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            "the thorough profile runs in parallel with pytest-xdist, and "
            f"{' and '.join(missing)} is not installed: pip install pytest pytest-xdist"
        )


def _stop(process: subprocess.Popen[bytes], reported: Callable[[], bool]) -> None:
    """Interrupt the pytest run and its xdist workers; kill what is left once every shard has reported, or
    after the grace period.

    Each shard answers the interrupt by writing the report of what it judged (and killing its own supervised
    worker, which also dies with its shard if the shard is killed first: see conformance.harness.worker).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    deadline = time.monotonic() + INTERRUPT_GRACE_S
    while process.poll() is None and not reported() and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # pytest's session: the controller and every xdist worker
    process.wait()


def run_parallel(
    target: Target,
    implementation: str | None = None,
    *,
    shards: int | None = None,
    on_shard: Callable[[int, RunReport], None] | None = None,
    **arguments: Unpack[RunArguments],
) -> RunReport:
    """Check ``implementation`` like :func:`conformance.runner.run`, in ``shards`` processes at once.

    ``shards`` defaults to :func:`available_cpus`; ``on_shard`` is called with
    each shard's index and report as it finishes.  Raises
    :class:`~conformance.runner.UsageError` for bad arguments (checked here,
    before anything starts) and :class:`~conformance.harness.Interrupted`
    (holding the report of what was judged) on Ctrl-C.  A pytest run that
    ends without every shard's report gives a report that is stopped, so
    INCOMPLETE, with the end of pytest's output among its problems.
    """
    profile = arguments.get("profile", "thorough")
    requirements = arguments.get("requirements")
    seed = arguments.get("seed")
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    spec = implementation or DEFAULT_IMPLEMENTATIONS[target]
    load_implementation(target, spec)
    wanted = target_requirements(target, list(requirements) if requirements is not None else None)
    _check_tools()
    count = shards if shards is not None else available_cpus()
    if count < 1:
        raise UsageError(f"shards must be at least 1, not {count}")
    run = _ParallelRun(
        target=target,
        implementation=spec,
        profile=profile,
        seed=seed if seed is not None else random.SystemRandom().randrange(1 << 32),
        shards=count,
        wanted=wanted,
        on_shard=on_shard,
    )
    with tempfile.TemporaryDirectory(prefix="vfmig-parallel-") as work:
        return run.execute(
            Path(work),
            timeout_s=arguments.get("timeout_s", DEFAULT_STEP_TIMEOUT_S),
            database_dir=arguments.get("database_dir"),
            requirements=None if requirements is None else [req.id for req in wanted],
        )


@dataclass
class _ParallelRun:
    """One parallel run: its pytest process, the shard reports it collects, and the report it ends with."""

    target: Target
    implementation: str
    profile: str
    seed: int
    shards: int
    wanted: list[Requirement]
    on_shard: Callable[[int, RunReport], None] | None
    seen: set[int] = field(default_factory=set)
    started: float = field(default_factory=time.perf_counter)

    def execute(
        self, root: Path, *, timeout_s: float, database_dir: Path | None, requirements: list[str] | None
    ) -> RunReport:
        shard_dir = root / "shards"
        shard_dir.mkdir()
        ini_file = root / "pytest.ini"
        ini_file.write_text("[pytest]\n", encoding="utf-8")
        command = pytest_command(
            self.target,
            self.implementation,
            profile=self.profile,
            seed=self.seed,
            timeout_s=timeout_s,
            requirements=requirements,
            database_dir=(database_dir or root / "database").resolve(),
            shards=self.shards,
            shard_dir=shard_dir,
            ini_file=ini_file,
        )
        log_path = root / "pytest.log"
        with log_path.open("wb") as log:
            # A session of its own: the terminal's Ctrl-C reaches this process only, which stops the run in order.
            process = subprocess.Popen(
                command, cwd=root, env=_environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                while process.poll() is None:
                    time.sleep(_POLL_S)
                    self._collect(shard_dir)
            except KeyboardInterrupt:
                _stop(process, lambda: len(shard_indices(shard_dir)) == self.shards)
                raise Interrupted(self._report(shard_dir, INTERRUPTED)) from None
            finally:
                if process.poll() is None:
                    _stop(process, lambda: False)
        reports_missing = len(shard_indices(shard_dir)) != self.shards
        if reports_missing:
            output = log_path.read_text(encoding="utf-8", errors="replace")[-_LOG_TAIL_CHARS:]
            return self._report(
                shard_dir, f"the parallel run (pytest exit code {process.returncode}) ended; its output ends:\n{output}"
            )
        return self._report(shard_dir, None)

    def _collect(self, shard_dir: Path) -> None:
        for index in sorted(shard_indices(shard_dir) - self.seen):
            self.seen.add(index)
            if self.on_shard is not None:
                self.on_shard(index, read_json(shard_path(shard_dir, index)))

    def _report(self, shard_dir: Path, stopped: str | None) -> RunReport:
        """The merged report of the shards that reported (every requirement incomplete if none did)."""
        self._collect(shard_dir)
        judged = read_shards(shard_dir)
        seconds = time.perf_counter() - self.started
        if not judged:
            why = stopped or "no shard reported"
            report = nothing_judged(
                self.target, self.implementation, self.wanted, profile=self.profile, seed=self.seed, why=why
            )
            return replace(report, seconds=seconds)
        return merge_reports(judged, seed=self.seed, seconds=seconds, expected=self.shards, stopped=stopped)
