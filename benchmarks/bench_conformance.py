"""How fast the conformance suite is, and how fast it finds bugs.

Measures, on this machine, in one run:

* the ``default`` profile against the reference implementation of each target
  (wall time, stateful steps, steps per second; median over ``--repeat`` seeds),
  and the three targets together against the 60 s target;
* every catalogued faulty implementation under the ``default`` profile:
  detected or not, time to detect, counterexample length; the medians against
  the 2 s target.

Usage: ``python benchmarks/bench_conformance.py [--repeat N] [--no-catalogue] [--json PATH]``.
Exit 1 if the reference is not conformant or a fault goes undetected.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence

from reference_runs import Column, benchmark_parser, over_seeds, print_per_target, timed_run, write_figures

from conformance.catalogue import all_faults
from conformance.detection import detect, summary_line
from conformance.runner import run

STEPS_PER_SECOND_TARGET = 1000
ALL_TARGETS_SECONDS = 60.0
TIME_TO_DETECT_TARGET = 2.0
REFERENCE_COLUMNS = (
    Column("wall s", "wall_s", 8, 2),
    Column("steps", "steps", 9, 0),
    Column("steps/s", "steps_per_s", 10, 0),
)


def bench_reference(repeat: int) -> tuple[dict[str, dict[str, float]], bool]:
    """Median wall time and steps per target over ``repeat`` seeds; whether every run was conformant."""
    runs = over_seeds(repeat, lambda target, seed: timed_run(run, target, seed))
    figures: dict[str, dict[str, float]] = {}
    for target, timed in runs.items():
        wall = statistics.median(seconds for seconds, _ in timed)
        step_count = statistics.median(report.steps for _, report in timed)
        figures[target.value] = {"wall_s": wall, "steps": step_count, "steps_per_s": step_count / wall}
    conformant = all(report.conformant and not report.suite_errors for timed in runs.values() for _, report in timed)
    return figures, conformant


def main(argv: Sequence[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "seeds per target for the reference runs (3)")
    parser.add_argument("--no-catalogue", action="store_true", help="skip the faulty implementations")
    args = parser.parse_args(argv)

    figures, conformant = bench_reference(args.repeat)
    title = f"reference, default profile, median of {args.repeat} seeds:"
    print_per_target(title, figures, REFERENCE_COLUMNS, target_width=11, indent="  ")
    together = sum(row["wall_s"] for row in figures.values())
    slowest = min(row["steps_per_s"] for row in figures.values())
    print(
        f"  all three: {together:.1f} s (target <= {ALL_TARGETS_SECONDS:.0f} s: "
        f"{'PASS' if together <= ALL_TARGETS_SECONDS else 'FAIL'}); slowest target {slowest:.0f} steps/s "
        f"(target >= {STEPS_PER_SECOND_TARGET}: {'PASS' if slowest >= STEPS_PER_SECOND_TARGET else 'FAIL'}); "
        f"conformant: {conformant}"
    )
    document: dict[str, object] = {"reference": figures, "all_targets_s": together, "conformant": conformant}
    all_detected = True
    if not args.no_catalogue:
        detections = []
        for fault in all_faults():
            started = time.perf_counter()
            detection = detect(fault)
            detections.append(detection)
            elapsed = time.perf_counter() - started
            found, seconds, steps = detection.cells()
            print(
                f"  {fault.target.value:<11}{fault.name:<34}{found:<5}"
                f"{seconds:>7} s to detect, {steps} steps, run {elapsed:.1f} s",
                flush=True,
            )
        times = [item.seconds for item in detections if item.seconds is not None]
        median = statistics.median(times) if times else float("nan")
        verdict = "PASS" if median <= TIME_TO_DETECT_TARGET else "FAIL"
        print(f"median time-to-detect {median:.2f} s (target <= {TIME_TO_DETECT_TARGET:.0f} s: {verdict})")
        print(summary_line(detections))
        all_detected = all(item.detected for item in detections)
        document["catalogue"] = [
            {"fault": item.fault.name, "detected": item.detected, "seconds": item.seconds, "steps": item.steps}
            for item in detections
        ]
    write_figures(args.json, document)
    return 0 if conformant and all_detected else 1


if __name__ == "__main__":
    sys.exit(main())
