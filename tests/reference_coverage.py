"""Runs of a suite against the reference implementation until every check it names has judged ``pass``.

Which rules Hypothesis draws for a seed depends on more than the seed: the same code installed in another
place draws other sequences.  So a check that one seed does not reach is not a finding; these helpers run
further seeds, for the requirements still unjudged only, and report what no run reached and anything any
run found wrong with the reference.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from conformance.runner import run
from conformance.verdicts import Target, Verdict

REFERENCE_SEEDS = (1, 2, 3, 4, 5)


@dataclass
class Coverage:
    """What the runs of one target's suite on the reference showed."""

    passed: set[str] = field(default_factory=set)
    """Requirements that some run judged ``pass``."""
    unreached: set[str] = field(default_factory=set)
    """Requirements asked about that no run judged ``pass``."""
    problems: list[str] = field(default_factory=list)
    """Verdicts other than ``pass`` and ``not-covered`` (the reference is meant to have none), per seed."""
    suite_errors: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


def reference_coverage(
    target: Target, wanted: Collection[str], *, profile: str = "default", seeds: Collection[int] = REFERENCE_SEEDS
) -> Coverage:
    """Run ``target``'s suite on the reference, seed after seed, until every one of ``wanted`` has passed."""
    coverage = Coverage(unreached=set(wanted))
    for number, seed in enumerate(seeds):
        if number and not coverage.unreached:
            break
        asked = None if number == 0 else sorted(coverage.unreached)
        report = run(target, profile=profile, seed=seed, requirements=asked)
        coverage.seeds.append(seed)
        coverage.suite_errors += [f"seed {seed}: {error}" for error in report.suite_errors]
        for result in report.results:
            if result.verdict is Verdict.PASS:
                coverage.passed.add(result.requirement.id)
            elif result.verdict is not Verdict.NOT_COVERED:
                coverage.problems.append(
                    f"seed {seed}: {result.requirement.id} {result.verdict.value}: {result.detail}"
                )
        coverage.unreached -= coverage.passed
    return coverage
