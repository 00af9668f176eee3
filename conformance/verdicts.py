"""Verdicts: what a conformance run says about each requirement, and about the implementation.

A run checks one *target* (``device``, ``bridge`` or ``hypervisor``) of one
implementation.  Every requirement that binds the target's roles gets exactly
one :class:`RequirementResult`:

``pass``
    checked, never broken;
``fail``
    a MUST or MUST NOT requirement was broken (with a counterexample);
``warn``
    a SHOULD or SHOULD NOT requirement was broken (with a counterexample);
``timeout``
    a step of the implementation did not return within the step timeout
    while the requirement's checks were running;
``error``
    the implementation raised an exception the spec does not allow while the
    requirement's checks were running (with the traceback);
``not-covered``
    no check of the suite exercises it (yet), or the run never reached it.

The implementation is *conformant* when no requirement is ``fail``,
``timeout`` or ``error``; warnings do not make it non-conformant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from vfmig_proto.requirements import Requirement
from vfmig_proto.states import Keyword
from vfmig_proto.states import Target as Target  # noqa: PLC0414 - re-exported for the suites (mypy --strict)


class Verdict(Enum):
    """The outcome for one requirement."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    TIMEOUT = "timeout"
    ERROR = "error"
    NOT_COVERED = "not-covered"

    @property
    def breaks_conformance(self) -> bool:
        """Whether this verdict makes the implementation non-conformant."""
        return self in (Verdict.FAIL, Verdict.TIMEOUT, Verdict.ERROR)


def verdict_for_violation(keyword: Keyword) -> Verdict:
    """A broken requirement is a failure if it is mandatory, a warning otherwise."""
    return Verdict.FAIL if keyword.is_mandatory else Verdict.WARN


@dataclass(frozen=True)
class Counterexample:
    """How to see a failure again."""

    steps: int
    """Rule calls in the shrunk sequence."""
    reproduction: str
    """A short Python program that replays the shrunk sequence against the implementation."""
    seed: int | None
    """The seed to give ``vfmig conformance --seed`` to find it again."""
    message: str
    """What the check said."""


@dataclass
class RequirementResult:
    """The verdict on one requirement, with the evidence."""

    requirement: Requirement
    verdict: Verdict
    checks: int = 0
    """How many times a check of this requirement was evaluated."""
    detail: str = ""
    """Why: the check's message, the exception's traceback, or what the timeout interrupted."""
    counterexample: Counterexample | None = None
    seconds_to_detect: float | None = None
    """Wall time from the start of the run to the failure being found (before shrinking)."""


@dataclass
class RunReport:
    """Everything one conformance run found."""

    target: Target
    implementation: str
    """``MODULE:FACTORY`` of the implementation under test."""
    profile: str
    seed: int | None
    results: list[RequirementResult]
    seconds: float
    steps: int
    """Stateful steps executed in total (all examples, all groups)."""
    suite_errors: list[str] = field(default_factory=list)
    """Problems of the run itself (not of the implementation), if any."""

    @property
    def conformant(self) -> bool:
        """No requirement failed, timed out or raised."""
        return not any(result.verdict.breaks_conformance for result in self.results)

    def count(self, verdict: Verdict) -> int:
        """How many requirements got ``verdict``."""
        return sum(result.verdict is verdict for result in self.results)
