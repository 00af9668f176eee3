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

from reference_runs import benchmark_parser, timed_run, write_figures

from conformance.harness import run_isolated
from conformance.runner import run
from conformance.verdicts import RunReport, Target

RATIO_BOUND = 1.5
"""The default profile under isolation stays within this factor of the in-process wall time."""


def _verdicts(report: RunReport) -> list[tuple[str, str]]:
    return [(result.requirement.id, result.verdict.value) for result in report.results]


def bench(repeat: int) -> tuple[dict[str, dict[str, float]], bool]:
    """Per target: medians of both wall times and of the ratio; whether every pair agreed."""
    figures: dict[str, dict[str, float]] = {}
    agreed = True
    for target in Target:
        inside: list[float] = []
        isolated: list[float] = []
        for seed in range(1, repeat + 1):
            order = [("inside", run), ("isolated", run_isolated)]
            if seed % 2 == 0:
                order.reverse()
            reports: dict[str, RunReport] = {}
            for name, check in order:
                seconds, reports[name] = timed_run(check, target, seed)
                (inside if name == "inside" else isolated).append(seconds)
            same = _verdicts(reports["inside"]) == _verdicts(reports["isolated"])
            agreed = agreed and same and reports["inside"].steps == reports["isolated"].steps
        figures[target.value] = {
            "in_process_s": statistics.median(inside),
            "isolated_s": statistics.median(isolated),
            "ratio": statistics.median(b / a for a, b in zip(inside, isolated, strict=True)),
        }
    return figures, agreed


def main(argv: Sequence[str] | None = None) -> int:
    args = benchmark_parser(__doc__, "seeds per target (3)").parse_args(argv)
    figures, agreed = bench(args.repeat)
    print(f"default profile, reference implementation, median of {args.repeat} seeds")
    print(f"{'target':<12}{'in-process s':>14}{'isolated s':>12}{'ratio':>8}")
    for target, row in figures.items():
        print(f"{target:<12}{row['in_process_s']:>14.2f}{row['isolated_s']:>12.2f}{row['ratio']:>8.2f}")
    inside = sum(row["in_process_s"] for row in figures.values())
    isolated = sum(row["isolated_s"] for row in figures.values())
    print(f"{'together':<12}{inside:>14.2f}{isolated:>12.2f}{isolated / inside:>8.2f}  (bound {RATIO_BOUND})")
    print(f"same verdicts and steps in both: {agreed}")
    write_figures(args.json, {"targets": figures, "together_ratio": isolated / inside, "agreed": agreed}, end="\n")
    return 0 if agreed and isolated / inside <= RATIO_BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
