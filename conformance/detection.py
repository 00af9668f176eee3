"""Does the suite find bugs?  Run every catalogued faulty implementation and report what was found.

``python -m conformance.detection`` (and ``tox -e detection``) runs the whole
catalogue under the default profile and prints one row per fault, then, last,
the line::

    detected N/M, median time-to-detect X s, max Y s, median counterexample Z steps

A fault counts as detected when the run gives its ``breaks`` requirement the
verdict the catalogue expects (``fail`` for most; ``timeout`` or ``error``
for implementations that hang or raise).  ``--sample FRACTION --sample-seed
SEED`` runs a seeded share of each target's faults instead; CI does, with the
commit as the seed, and the whole catalogue runs as the campaign.
``--include-pending`` adds the faults of the pending catalogue modules
(:data:`conformance.catalogue.PENDING_MODULES`), which the suite is not
required to detect yet.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from conformance.catalogue import Fault, all_faults
from conformance.runner import run
from conformance.verdicts import RunReport, Verdict


@dataclass(frozen=True)
class Detection:
    """What one run of one faulty implementation found."""

    fault: Fault
    report: RunReport
    detected: bool
    seconds: float | None
    """Time to detect the ``breaks`` requirement (before shrinking), if it was detected."""
    steps: int | None
    """Steps in the shrunk counterexample, if there is one."""
    found: tuple[str, ...]
    """Every requirement the run judged other than pass / not-covered."""

    def cells(self) -> tuple[str, str, str]:
        """Detected (``yes`` / ``NO``), seconds to detect and counterexample steps, as a table prints them."""
        seconds = "-" if self.seconds is None else f"{self.seconds:.2f}"
        steps = "-" if self.steps is None else str(self.steps)
        return "yes" if self.detected else "NO", seconds, steps


def detect(
    fault: Fault,
    *,
    profile: str = "default",
    seed: int = 1,
    timeout_s: float = 2.0,
    only_breaks: bool = True,
    attempts: int = 3,
) -> Detection:
    """Run the suite against ``fault`` and judge whether it found what the fault breaks.

    With ``only_breaks`` (the default) only the checks of the requirement the
    fault breaks can stop the run: the question is whether the suite finds
    *that*, and the run ends as soon as it does.  A run is random: up to
    ``attempts`` runs with consecutive seeds, as a user who reruns would, and
    the time to detect counts every run before the one that found it.
    """
    wanted = [fault.breaks] if only_breaks else None
    spent = 0.0
    for attempt in range(attempts):
        report = run(
            fault.target,
            fault.factory,
            profile=profile,
            seed=seed + attempt * 1000,
            timeout_s=timeout_s,
            requirements=wanted,
        )
        result = next((item for item in report.results if item.requirement.id == fault.breaks), None)
        detected = result is not None and result.verdict is fault.verdict
        if detected or attempt == attempts - 1:
            break
        spent += report.seconds
    steps = result.counterexample.steps if result is not None and result.counterexample is not None else None
    seconds = None
    if detected and result is not None and result.seconds_to_detect is not None:
        seconds = spent + result.seconds_to_detect
    found = tuple(
        f"{item.requirement.id}:{item.verdict.value}"
        for item in report.results
        if item.verdict not in (Verdict.PASS, Verdict.NOT_COVERED)
    )
    return Detection(fault, report, detected, seconds, steps, found)


def summary_line(detections: Sequence[Detection]) -> str:
    """``detected N/M, median time-to-detect X s, max Y s, median counterexample Z steps``."""
    times = [item.seconds for item in detections if item.seconds is not None]
    steps = [item.steps for item in detections if item.steps is not None]
    detected = sum(item.detected for item in detections)
    median_time = statistics.median(times) if times else float("nan")
    max_time = max(times) if times else float("nan")
    median_steps = statistics.median(steps) if steps else float("nan")
    return (
        f"detected {detected}/{len(detections)}, median time-to-detect {median_time:.2f} s, "
        f"max {max_time:.2f} s, median counterexample {median_steps:g} steps"
    )


def sample_faults(faults: Sequence[Fault], fraction: float, seed: str) -> list[Fault]:
    """A deterministic share of ``faults``, the same share of every target, chosen by ``seed``.

    CI runs a sample so that it stays within its time budget; seeding it with
    the commit under test makes every commit run a different share, and the
    same commit always the same one, so a miss can be reproduced.  Each
    target keeps at least one fault.  The catalogue's order is kept.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"--sample takes a fraction in (0, 1], not {fraction}")
    chosen: set[str] = set()
    for target in sorted({fault.target for fault in faults}, key=lambda item: item.value):
        own = [fault for fault in faults if fault.target is target]
        ranked = sorted(own, key=lambda fault: hashlib.sha256(f"{seed}:{fault.name}".encode()).digest())
        chosen.update(fault.name for fault in ranked[: max(1, math.ceil(fraction * len(own)))])
    return [fault for fault in faults if fault.name in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the catalogue; exit 1 if any fault went undetected."""
    parser = argparse.ArgumentParser(prog="python -m conformance.detection", description=__doc__)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", choices=["device", "bridge", "hypervisor"])
    parser.add_argument("--fault", action="append", help="only these faults (by name)")
    parser.add_argument("--all-requirements", action="store_true", help="judge every requirement, not only `breaks`")
    parser.add_argument(
        "--sample", type=float, metavar="FRACTION", help="run only this share of each target's faults (CI's budget)"
    )
    parser.add_argument("--sample-seed", default="0", help="which share --sample takes (CI passes the commit)")
    parser.add_argument(
        "--include-pending",
        action="store_true",
        help="also run the faults of the pending catalogue modules (faults the suite does not detect yet)",
    )
    args = parser.parse_args(argv)
    faults = [
        fault
        for fault in all_faults(include_pending=args.include_pending)
        if (args.target is None or fault.target.value == args.target) and (not args.fault or fault.name in args.fault)
    ]
    if args.sample is not None:
        selected = len(faults)
        faults = sample_faults(faults, args.sample, args.sample_seed)
        print(f"sampled {len(faults)} of {selected} faults (--sample {args.sample} --sample-seed {args.sample_seed})")
    print(f"{'target':<11}{'fault':<40}{'breaks':<15}{'verdict':<9}{'found':<7}{'seconds':>8}{'steps':>6}")
    detections = []
    for fault in faults:
        detection = detect(fault, profile=args.profile, seed=args.seed, only_breaks=not args.all_requirements)
        detections.append(detection)
        found, seconds, steps = detection.cells()
        print(
            f"{fault.target.value:<11}{fault.name:<40}{fault.breaks:<15}{fault.verdict.value:<9}"
            f"{found:<7}{seconds:>8}{steps:>6}",
            flush=True,
        )
        if not detection.detected:
            print(f"    found instead: {', '.join(detection.found) or 'nothing'}", flush=True)
    print(summary_line(detections))
    return 0 if all(item.detected for item in detections) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
