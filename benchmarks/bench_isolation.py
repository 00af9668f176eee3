"""What the supervised worker process costs: the default profile in-process against isolated, in one run.

For each target and each of ``--repeat`` seeds, the reference implementation is checked twice with the same seed,
once by :func:`conformance.runner.run` in this process and once by :func:`conformance.harness.run_isolated` (a
forked worker watched through the beacon), alternating which goes first.  Printed: the median wall time of each,
the median of the per-seed ratios isolated/in-process, and the three targets together.  Both runs of a seed must
give the same verdicts and steps (the worker runs the same code on the same seed); exit 1 if not.

Usage: ``python benchmarks/bench_isolation.py [--repeat N] [--json PATH]``.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence

from reference_runs import Column, benchmark_parser, over_seeds, print_per_target, timed_run, write_figures

from conformance.harness import run_isolated
from conformance.runner import run
from conformance.verdicts import RunReport, Target

RATIO_BOUND = 1.5
"""The default profile under isolation stays within this factor of the in-process wall time."""

COLUMNS = (
    Column("in-process s", "in_process_s", 14, 2),
    Column("isolated s", "isolated_s", 12, 2),
    Column("ratio", "ratio", 8, 2),
)


def _verdicts(report: RunReport) -> list[tuple[str, str]]:
    return [(result.requirement.id, result.verdict.value) for result in report.results]


def _both_ways(target: Target, seed: int) -> tuple[float, float, bool]:
    """The in-process and the isolated wall time of one seed, and whether both runs gave the same verdicts and steps.

    Which goes first alternates with the seed, so that neither always meets a cold or a warm machine.
    """
    order = [("inside", run), ("isolated", run_isolated)]
    if seed % 2 == 0:
        order.reverse()
    seconds: dict[str, float] = {}
    reports: dict[str, RunReport] = {}
    for name, check in order:
        seconds[name], reports[name] = timed_run(check, target, seed)
    same = _verdicts(reports["inside"]) == _verdicts(reports["isolated"])
    return seconds["inside"], seconds["isolated"], same and reports["inside"].steps == reports["isolated"].steps


def bench(repeat: int) -> tuple[dict[str, dict[str, float]], bool]:
    """Per target: medians of both wall times and of the ratio; whether every pair agreed."""
    runs = over_seeds(repeat, _both_ways)
    figures = {
        target.value: {
            "in_process_s": statistics.median(inside for inside, _, _ in pairs),
            "isolated_s": statistics.median(isolated for _, isolated, _ in pairs),
            "ratio": statistics.median(isolated / inside for inside, isolated, _ in pairs),
        }
        for target, pairs in runs.items()
    }
    agreed = all(same for pairs in runs.values() for _, _, same in pairs)
    return figures, agreed


def main(argv: Sequence[str] | None = None) -> int:
    args = benchmark_parser(__doc__, "seeds per target (3)").parse_args(argv)
    figures, agreed = bench(args.repeat)
    title = f"default profile, reference implementation, median of {args.repeat} seeds"
    print_per_target(title, figures, COLUMNS, target_width=12)
    inside = sum(row["in_process_s"] for row in figures.values())
    isolated = sum(row["isolated_s"] for row in figures.values())
    print(f"{'together':<12}{inside:>14.2f}{isolated:>12.2f}{isolated / inside:>8.2f}  (bound {RATIO_BOUND})")
    print(f"same verdicts and steps in both: {agreed}")
    write_figures(args.json, {"targets": figures, "together_ratio": isolated / inside, "agreed": agreed}, end="\n")
    return 0 if agreed and isolated / inside <= RATIO_BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
