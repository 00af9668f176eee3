"""Simulation benchmark: one live migration of a large guest with 8 busy VFs, wall time and peak RSS.

Run with `tox -e bench` or `python benchmarks/bench_simulate.py`.  The scenario
is the issue's: a guest of SIZE with 8 VFs, each receiving (and DMA-writing)
10 Gb/s, its CPUs dirtying 1 GiB/s, migrated over a 25 Gb/s link; everything
else is ``SimulationConfig``'s default.  The target, on a 2-core machine, is
the whole 64 GiB migration in at most 10 s of wall time and 1.5 GiB of peak
RSS.

Every measurement runs in a fresh child process (this script with ``--child
SIZE``), so that its peak RSS (``ru_maxrss``) belongs to that size alone; a
child that only imports the modules gives the baseline the simulation adds
to.  The wall time is the construction of the ``Simulation`` plus its
``run()``, without the interpreter's start-up and the imports.  The machines
are noisy: each size is repeated and the table shows the median wall time
(with min and max) and the highest peak RSS of the repetitions.

The verdict on the target is informational: the exit status is 0 unless a run
did not complete (or crashed), lost pages, or broke an invariant.

    python benchmarks/bench_simulate.py                    # 4 GiB x5, 64 GiB x3, 256 GiB x1
    python benchmarks/bench_simulate.py --sizes 64 --repeat 5
    python benchmarks/bench_simulate.py --quick            # 1 GiB once: a smoke run
    python benchmarks/bench_simulate.py --json bench.json  # every measurement as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from reference_impl.hypervisor import GiB, MiB, MigrationConfig, MigrationOutcome
from reference_impl.scenario import Simulation, SimulationConfig
from reference_impl.units import UnitError, parse_size

VFS = 8
DMA_RATE = 10e9 / 8
"""Bytes per second each VF receives and writes by DMA: 10 Gb/s."""
CPU_DIRTY_RATE = float(GiB)
"""Bytes per second the guest's CPUs dirty: 1 GiB/s."""
BANDWIDTH = 25e9 / 8
"""Bytes per second of the migration link: 25 Gb/s."""

DEFAULT_SIZES = (4 * GiB, 64 * GiB, 256 * GiB)
DEFAULT_REPEATS = {4 * GiB: 5, 64 * GiB: 3, 256 * GiB: 1}
"""Repetitions per size unless --repeat says otherwise (256 GiB takes about 10 s)."""
OTHER_SIZE_REPEATS = 3
QUICK_SIZE = 1 * GiB
PAGE_SIZE = 1 << SimulationConfig().page_shift

TARGET_SIZE = 64 * GiB
TARGET_WALL_S = 10.0
TARGET_RSS_BYTES = 3 * GiB // 2


def scenario(size_bytes: int) -> SimulationConfig:
    """The issue's scenario for a guest of ``size_bytes``."""
    return SimulationConfig(
        memory_bytes=size_bytes,
        vfs=VFS,
        dma_rate=DMA_RATE,
        cpu_dirty_rate=CPU_DIRTY_RATE,
        migration=MigrationConfig(bandwidth=BANDWIDTH),
    )


def _max_rss_bytes() -> int:
    """This process's peak RSS (``ru_maxrss`` is in KiB on Linux, in bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


# ---------------------------------------------------------------------------------------------- the child


def child_run(size_bytes: int) -> dict[str, Any]:
    """Simulate one migration of a ``size_bytes`` guest; its figures as a JSON-ready dict."""
    start = time.perf_counter()
    simulation = Simulation(scenario(size_bytes))
    built = time.perf_counter()
    result = simulation.run()
    done = time.perf_counter()
    record = result.last
    return {
        "size_bytes": size_bytes,
        "wall_s": done - start,
        "construct_s": built - start,
        "run_s": done - built,
        "max_rss_bytes": _max_rss_bytes(),
        "migration_ns": record.total_ns,
        "simulated_ns": result.simulated_ns,
        "downtime_ns": record.downtime_ns,
        "rounds": record.precopy_rounds,
        "pages_sent": record.pages_sent,
        "lost_pages": record.lost_pages,
        "outcome": record.outcome.value if record.outcome is not None else "unfinished",
        "reason": record.reason.name.lower(),
        "violations": [str(violation) for violation in result.violations],
    }


def child_baseline() -> dict[str, Any]:
    """The peak RSS of a child that only imported the modules (this script's imports)."""
    return {"max_rss_bytes": _max_rss_bytes()}


# ---------------------------------------------------------------------------------------------- the parent


@dataclass
class Run:
    """One child's measurement, or its failure."""

    size_bytes: int
    repetition: int
    wall_s: float = 0.0
    construct_s: float = 0.0
    run_s: float = 0.0
    max_rss_bytes: int = 0
    migration_ns: int = 0
    simulated_ns: int = 0
    downtime_ns: int = 0
    rounds: int = 0
    pages_sent: int = 0
    lost_pages: int = 0
    outcome: str = "unfinished"
    reason: str = ""
    violations: list[str] = field(default_factory=list)
    error: str | None = None
    """Why the child failed (exit status and the end of its stderr), if it did."""

    @property
    def problems(self) -> list[str]:
        """Why this run makes the benchmark fail: crashed, did not complete, lost pages, broke invariants."""
        if self.error is not None:
            return [self.error]
        found = []
        if self.outcome != MigrationOutcome.COMPLETED.value:
            found.append(f"outcome {self.outcome} ({self.reason})")
        if self.lost_pages:
            found.append(f"{self.lost_pages} lost pages")
        found.extend(f"invariant violation: {violation}" for violation in self.violations)
        return found


@dataclass
class SizeSummary:
    """The repetitions of one size, summarised."""

    size_bytes: int
    runs: int
    median_wall_s: float
    min_wall_s: float
    max_wall_s: float
    max_rss_bytes: int
    migration_s: float
    simulated_s: float
    ratio: float
    """Simulated time of the whole run per second of (median) wall time."""
    downtime_ms: float
    rounds: int
    pages_sent: int
    lost_pages: int
    deterministic: bool
    """Whether every repetition simulated the same migration (the seed is fixed, so it should)."""


def _child(arguments: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """Run this script as a child with ``arguments``: its JSON, or why it failed."""
    command = [sys.executable, os.path.abspath(__file__), *arguments]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = " | ".join(completed.stderr.strip().splitlines()[-3:])
        return None, f"child exited with status {completed.returncode}: {tail or '(no output)'}"
    try:
        document = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        return None, f"child printed no JSON ({error}): {completed.stdout[-200:]!r}"
    if not isinstance(document, dict):
        return None, f"child printed {type(document).__name__}, not a JSON object"
    return document, None


def measure(size_bytes: int, repetition: int) -> Run:
    """One fresh child simulating one migration of ``size_bytes``."""
    document, error = _child(["--child", str(size_bytes)])
    if document is None:
        return Run(size_bytes, repetition, error=error)
    # The child printed child_run's dict: Run's measured fields, which JSON brings back with their types.
    return Run(repetition=repetition, **document)


def summarise(size_bytes: int, runs: list[Run]) -> SizeSummary | None:
    """The summary of ``runs`` that completed (``None`` if none did)."""
    good = [run for run in runs if run.error is None]
    if not good:
        return None
    walls = [run.wall_s for run in good]
    median_wall = statistics.median(walls)
    first = good[0]
    simulated = [(run.migration_ns, run.simulated_ns, run.downtime_ns, run.rounds, run.pages_sent) for run in good]
    return SizeSummary(
        size_bytes=size_bytes,
        runs=len(good),
        median_wall_s=median_wall,
        min_wall_s=min(walls),
        max_wall_s=max(walls),
        max_rss_bytes=max(run.max_rss_bytes for run in good),
        migration_s=first.migration_ns / 1e9,
        simulated_s=first.simulated_ns / 1e9,
        ratio=first.simulated_ns / 1e9 / median_wall,
        downtime_ms=first.downtime_ns / 1e6,
        rounds=first.rounds,
        pages_sent=first.pages_sent,
        lost_pages=max(run.lost_pages for run in good),
        deterministic=len(set(simulated)) == 1,
    )


def _size_label(size_bytes: int) -> str:
    if size_bytes % GiB == 0:
        return f"{size_bytes // GiB} GiB"
    if size_bytes % MiB == 0:
        return f"{size_bytes // MiB} MiB"
    return f"{size_bytes} B"


def _mib(nbytes: float) -> float:
    return nbytes / MiB


COLUMNS = (
    ("size", 8),
    ("runs", 4),
    ("wall s", 7),
    ("min s", 7),
    ("max s", 7),
    ("RSS MiB", 8),
    ("+base MiB", 9),
    ("migr s", 7),
    ("sim s", 7),
    ("sim/wall", 8),
    ("downtime ms", 11),
    ("rounds", 6),
    ("lost", 4),
)


def table(summaries: list[SizeSummary], baseline_rss: int) -> list[str]:
    """The table of medians, one line per size."""
    lines = [" ".join(f"{name:>{width}}" for name, width in COLUMNS)]
    for item in summaries:
        cells = (
            _size_label(item.size_bytes),
            str(item.runs),
            f"{item.median_wall_s:.2f}",
            f"{item.min_wall_s:.2f}",
            f"{item.max_wall_s:.2f}",
            f"{_mib(item.max_rss_bytes):.0f}",
            f"{_mib(item.max_rss_bytes - baseline_rss):.0f}",
            f"{item.migration_s:.2f}",
            f"{item.simulated_s:.2f}",
            f"{item.ratio:.1f}",
            f"{item.downtime_ms:.1f}",
            str(item.rounds),
            str(item.lost_pages),
        )
        lines.append(" ".join(f"{cell:>{width}}" for cell, (_, width) in zip(cells, COLUMNS, strict=True)))
    return lines


def verdict(summaries: list[SizeSummary]) -> str:
    """The informational verdict on the 64 GiB target."""
    target = next((item for item in summaries if item.size_bytes == TARGET_SIZE), None)
    prefix = f"{_size_label(TARGET_SIZE)} target"
    if target is None:
        return f"{prefix}: not measured (add {TARGET_SIZE // GiB} to --sizes)"
    wall_ok = target.median_wall_s <= TARGET_WALL_S
    rss_ok = target.max_rss_bytes <= TARGET_RSS_BYTES
    return (
        f"{prefix}: wall <= {TARGET_WALL_S:g} s: {'PASS' if wall_ok else 'FAIL'} "
        f"(median {target.median_wall_s:.2f} s); "
        f"peak RSS <= {TARGET_RSS_BYTES / GiB:g} GiB: {'PASS' if rss_ok else 'FAIL'} "
        f"({_mib(target.max_rss_bytes):.0f} MiB)"
    )


def _read_size(text: str) -> int:
    """A size on the command line: a bare number is GiB (``64``), otherwise ``512MiB``, ``4GiB``..."""
    try:
        size = int(float(text) * GiB) if text.replace(".", "", 1).isdigit() else parse_size(text)
    except UnitError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    if size <= 0 or size % PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive multiple of the {PAGE_SIZE}-byte page")
    return size


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=_read_size,
        metavar="SIZE",
        help="guest sizes: a bare number is GiB (default: 4 64 256)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="repetitions of every size (default: 5 for 4 GiB, 3 for 64 GiB, 1 for 256 GiB, 3 otherwise)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 GiB once (unless --sizes/--repeat)")
    parser.add_argument("--json", metavar="PATH", help="write every measurement as JSON to PATH")
    parser.add_argument("--child", type=int, metavar="BYTES", help=argparse.SUPPRESS)
    parser.add_argument("--child-baseline", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.repeat is not None and arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    if arguments.child_baseline:
        print(json.dumps(child_baseline()))
        return 0
    if arguments.child is not None:
        print(json.dumps(child_run(arguments.child)))
        return 0

    sizes: list[int] = arguments.sizes or ([QUICK_SIZE] if arguments.quick else list(DEFAULT_SIZES))
    sizes = list(dict.fromkeys(sizes))

    def repeats(size_bytes: int) -> int:
        if arguments.repeat is not None:
            return int(arguments.repeat)
        if arguments.quick:
            return 1
        return DEFAULT_REPEATS.get(size_bytes, OTHER_SIZE_REPEATS)

    print(
        f"vfmig simulate, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs: one migration of a guest "
        f"with {VFS} VFs at {DMA_RATE * 8 / 1e9:g} Gb/s DMA each, CPU dirtying {CPU_DIRTY_RATE / GiB:g} GiB/s, "
        f"over {BANDWIDTH * 8 / 1e9:g} Gb/s; one fresh process per run",
        flush=True,
    )
    failures: list[str] = []
    baseline_document, baseline_error = _child(["--child-baseline"])
    baseline_rss = 0
    if baseline_document is None:
        failures.append(f"baseline: {baseline_error}")
    else:
        baseline_rss = int(baseline_document["max_rss_bytes"])
    print(f"baseline: a process that only imports the modules peaks at {_mib(baseline_rss):.0f} MiB RSS", flush=True)

    runs: list[Run] = []
    summaries: list[SizeSummary] = []
    for size_bytes in sizes:
        size_runs = []
        count = repeats(size_bytes)
        for repetition in range(1, count + 1):
            run = measure(size_bytes, repetition)
            size_runs.append(run)
            head = f"  {_size_label(size_bytes)} run {repetition}/{count}: "
            if run.error is not None:
                print(f"{head}{run.error}", flush=True)
            else:
                print(
                    f"{head}{run.wall_s:.2f} s wall ({run.construct_s:.2f} s construction), "
                    f"{_mib(run.max_rss_bytes):.0f} MiB peak RSS: {'; '.join(run.problems) or 'ok'}",
                    flush=True,
                )
            failures.extend(f"{_size_label(size_bytes)} run {repetition}: {problem}" for problem in run.problems)
        runs.extend(size_runs)
        summary = summarise(size_bytes, size_runs)
        if summary is not None:
            summaries.append(summary)
            if not summary.deterministic:
                print(f"  note: the {_size_label(size_bytes)} repetitions simulated different migrations", flush=True)

    print()
    print("median wall time of construction + run; RSS: highest peak of the runs; +base: over the baseline")
    print("\n".join(table(summaries, baseline_rss)))
    print(verdict(summaries))
    if failures:
        print(f"FAILED ({len(failures)}):")
        print("\n".join(f"  {failure}" for failure in failures))

    if arguments.json:
        document = {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "scenario": {
                "vfs": VFS,
                "dma_rate_bytes_per_s": DMA_RATE,
                "cpu_dirty_rate_bytes_per_s": CPU_DIRTY_RATE,
                "bandwidth_bytes_per_s": BANDWIDTH,
            },
            "baseline_max_rss_bytes": baseline_rss,
            "runs": [asdict(run) for run in runs],
            "sizes": [asdict(summary) for summary in summaries],
            "verdict": verdict(summaries),
            "failures": failures,
        }
        with open(arguments.json, "w", encoding="utf-8") as output:
            json.dump(document, output, indent=2)
            output.write("\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
