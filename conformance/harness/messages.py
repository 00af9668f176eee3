"""What a worker tells its supervisor, one picklable object a message.

The worker and the supervisor are the same program (the worker is forked), so
the messages are Python objects sent over a :mod:`multiprocessing` pipe.  Each
is small and rare: a verdict when one is found, the accounting at each
requirement group and example.  The steps themselves go through the beacon
(:mod:`conformance.harness.beacon`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.runner import RunState
from conformance.verdicts import RequirementResult


@dataclass(frozen=True)
class StateSnapshot:
    """The part of a :class:`~conformance.runner.RunState` that a new worker needs to carry on."""

    found: dict[str, RequirementResult]
    next_group: int
    suite_errors: list[str]
    unattributed: list[str]
    stopped: str | None
    done: bool
    disabled: set[str]
    disabled_steps: set[str]
    counts: dict[str, int]
    steps: int
    first_failure_at: dict[str, float] = field(default_factory=dict)
    coverage: frozenset[tuple[str, str]] = frozenset()
    """The cells of the spec's space exercised so far (:mod:`conformance.spec_coverage`)."""


def snapshot(state: RunState) -> StateSnapshot:
    """What ``state`` holds now."""
    checks = state.checks
    return StateSnapshot(
        found=dict(state.found),
        next_group=state.next_group,
        suite_errors=list(state.suite_errors),
        unattributed=list(state.unattributed),
        stopped=state.stopped,
        done=state.done,
        disabled=set(checks.disabled),
        disabled_steps=set(checks.disabled_steps),
        counts=dict(checks.counts),
        steps=checks.steps,
        first_failure_at=dict(checks.first_failure_at),
        coverage=_coverage_cells(state),
    )


def _coverage_cells(state: RunState) -> frozenset[tuple[str, str]]:
    return frozenset() if state.coverage is None else state.coverage.snapshot()


def absorb(state: RunState, taken: StateSnapshot) -> None:
    """Make ``state`` (the supervisor's copy) what the worker's was when it took ``taken``."""
    checks = state.checks
    state.found.update(taken.found)
    state.next_group = taken.next_group
    state.suite_errors[:] = taken.suite_errors
    state.unattributed[:] = taken.unattributed
    state.stopped = taken.stopped
    state.done = taken.done
    checks.disabled |= taken.disabled
    checks.disabled_steps |= taken.disabled_steps
    absorb_counts(state, taken.counts, taken.steps)
    checks.first_failure_at.update(taken.first_failure_at)
    if state.coverage is not None:  # coverage only grows: a union (a worker that dies loses its last group's)
        state.coverage.merge(taken.coverage)


def absorb_counts(state: RunState, counts: dict[str, int], steps: int) -> None:
    """Take the worker's check counts and step count (they only grow)."""
    checks = state.checks
    for requirement, count in counts.items():
        checks.counts[requirement] = max(checks.counts[requirement], count)
    checks.steps = max(checks.steps, steps)


@dataclass(frozen=True)
class Ready:
    """The implementation loaded and passed the adapter check; the run starts."""

    implementation_home: str | None
    """The directory of the implementation's factory module (its frames are told apart by it)."""


@dataclass(frozen=True)
class UsageProblem:
    """The implementation could not be loaded or does not fit the adapter interface: a usage error, not a
    verdict."""

    message: str


@dataclass(frozen=True)
class VerdictFound:
    """A requirement got its verdict."""

    result: RequirementResult


@dataclass(frozen=True)
class Counts:
    """The accounting at the start of an example."""

    counts: dict[str, int]
    steps: int


@dataclass(frozen=True)
class StateMessage:
    """A message that hands the supervisor the worker's state, to carry on from."""

    state: StateSnapshot


class StateSync(StateMessage):
    """A requirement group starts: the state so far."""


class Finished(StateMessage):
    """The run ended in the worker; its final state."""
