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
    no check of the suite exercises it (yet), or the run never reached it;
``incomplete``
    the suite could not judge it: the run stopped before it finished (it was
    interrupted, or the run itself failed), so a check that would have failed
    may never have run.

A run has one *status*: ``not conformant`` when a requirement is ``fail``,
``timeout`` or ``error`` (or the implementation failed where no requirement's
check could own the failure); otherwise ``incomplete`` when anything was not
judged (an ``incomplete`` requirement, a problem of the run itself); otherwise
``conformant``.  Warnings and ``not-covered`` requirements do not change it.
A run that could not judge everything never says conformant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from conformance.spec_coverage import SpecCoverage
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
    INCOMPLETE = "incomplete"

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


class RunStatus(Enum):
    """What a run says about the implementation as a whole."""

    CONFORMANT = "conformant"
    NOT_CONFORMANT = "not conformant"
    INCOMPLETE = "incomplete"

    @property
    def headline(self) -> str:
        """``CONFORMANT``, ``NOT CONFORMANT`` or ``INCOMPLETE``."""
        return self.value.upper()


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
    unattributed: list[str] = field(default_factory=list)
    """Failures of the implementation (an exception, a hang, a crash) that no requirement's check owned."""
    stopped: str | None = None
    """Why the run ended before it judged everything: interrupted, the run itself failed (None: it did not)."""
    coverage: SpecCoverage | None = None
    """The cells of the spec's space the run exercised on the implementation (None: not recorded, e.g. a report
    of an older structure version)."""

    @property
    def status(self) -> RunStatus:
        """Not conformant if anything broke; otherwise incomplete if anything was not judged; else conformant."""
        if self.unattributed or any(result.verdict.breaks_conformance for result in self.results):
            return RunStatus.NOT_CONFORMANT
        if self.stopped or self.suite_errors or any(result.verdict is Verdict.INCOMPLETE for result in self.results):
            return RunStatus.INCOMPLETE
        return RunStatus.CONFORMANT

    @property
    def conformant(self) -> bool:
        """Everything was judged and nothing failed, timed out or raised."""
        return self.status is RunStatus.CONFORMANT

    def count(self, verdict: Verdict) -> int:
        """How many requirements got ``verdict``."""
        return sum(result.verdict is verdict for result in self.results)
