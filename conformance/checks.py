"""The machinery every suite shares: requirement checks, guarded steps, the step timeout.

A suite is a Hypothesis ``RuleBasedStateMachine``
derived from :class:`ConformanceMachine`.  Its rules and invariants are
decorated with :func:`step`, which runs the step under the step timeout; inside,
the suite states what the spec demands with :meth:`Checks.that`.  ``@step``
goes directly above the ``def``, under Hypothesis's decorator (the other way
round, Hypothesis would run the bare method: :func:`step` refuses it with
:class:`StepOrderError`):

.. code-block:: python

    @rule(slot=st.integers(0, 3))
    @step("VFM-FN-001")
    def traffic(self, slot: int) -> None:
        ...
        self.checks.that("VFM-FN-001", not dma_seen or bme, "DMA with Bus Master Enable clear")

A broken check raises :class:`RequirementViolation`; an exception from the
implementation becomes :class:`ImplementationError`; a step that does not
return in time raises :class:`StepTimeout`.  The runner turns each into a
verdict and goes on with the rest of the requirements.

Steps nest (a final check that runs another step): the timer always holds the
earliest deadline of the steps in flight, so an inner step never lifts the
outer one's.  Both errors carry an :class:`~conformance.attribution.Attribution`:
the requirements whose checks were waiting for the implementation, and the
implementation's method that raised or hung.  A *monitor* (the worker process
of :mod:`conformance.harness`) is told when each step starts and ends, so that
a supervisor outside the process can enforce the deadline when the timer
cannot (a hang inside C code, an implementation that swallows the timeout).
"""

from __future__ import annotations

import functools
import math
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar, ParamSpec, Protocol, TypeVar

from hypothesis.errors import HypothesisException, StopTest
from hypothesis.stateful import RuleBasedStateMachine

from conformance.attribution import (
    Attribution,
    FrameRef,
    Sides,
    attribute,
    frames_of_stack,
    frames_of_traceback,
)
from conformance.verdicts import Target

_P = ParamSpec("_P")
_R = TypeVar("_R")


class RequirementViolation(AssertionError):  # noqa: N818 - a violation is what the spec calls it
    """A check of ``requirement`` failed."""

    def __init__(self, requirement: str, message: str) -> None:
        super().__init__(f"{requirement}: {message}")
        self.requirement = requirement
        self.message = message


class StepTimeout(BaseException):
    """A step of the implementation did not return within the step timeout.

    A :class:`BaseException`, so that Hypothesis does not try to shrink it:
    every shrinking attempt of a hang would cost another full timeout.
    """

    timed_out = True

    def __init__(self, step_name: str, requirements: tuple[str, ...], seconds: float, attribution: Attribution) -> None:
        super().__init__(f"step {step_name} did not return within {seconds:g} s: {attribution.describe()}")
        self.step_name = step_name
        self.requirements = attribution.requirements or requirements
        self.attribution = attribution
        self.trace = "\n".join(
            [str(self), "the implementation's stack, outermost first:", *(f"  {line}" for line in attribution.stack)]
        )


class ImplementationError(Exception):
    """The implementation raised while a step ran."""

    timed_out = False

    def __init__(
        self, step_name: str, requirements: tuple[str, ...], error: BaseException, attribution: Attribution
    ) -> None:
        super().__init__(f"step {step_name}: {type(error).__name__}: {error} ({attribution.describe()})")
        trace = f"{self}\n" + "".join(traceback.format_exception(error))
        self.step_name = step_name
        self.requirements = attribution.requirements or requirements
        self.attribution = attribution
        self.trace = trace


class StepMonitor(Protocol):
    """Told when each step starts and ends (the worker process's beacon to its supervisor)."""

    def step_started(self, name: str, depth: int, seconds: float) -> None:
        """Step ``name`` starts at nesting ``depth`` (0: outermost) with a deadline ``seconds`` from now."""

    def step_finished(self, depth: int) -> None:
        """The step at ``depth`` returned or raised."""

    def example_started(self) -> None:
        """Hypothesis builds the machine for another example."""


@dataclass(frozen=True)
class RunContext:
    """What attribution needs to know about the run: the target and where the implementation lives."""

    target: Target
    sides: Sides
    isolated: bool = False
    """Whether the run is a worker process of its own: then a KeyboardInterrupt can only be the implementation's
    (the terminal's Ctrl-C goes to the supervisor), and is judged like any other exception it raises."""


class Checks:
    """The accounting of one conformance run, shared by every example it runs."""

    def __init__(self, known: Iterable[str]) -> None:
        self.known = frozenset(known)
        self.counts: Counter[str] = Counter()
        self.disabled: set[str] = set()
        """Requirements already judged (failed, warned, errored): their checks no longer stop a run."""
        self.disabled_steps: set[str] = set()
        """Steps whose implementation calls hung or raised: later groups skip them."""
        self.steps = 0
        self.first_failure_at: dict[str, float] = {}
        self.pending: list[tuple[str, str]] = []
        self.started = time.perf_counter()
        self.context: RunContext | None = None
        """The target and the implementation's side of the stack (None: attribute to the steps' declarations)."""
        self.monitor: StepMonitor | None = None

    def attribute(self, frames: list[FrameRef], declared: tuple[str, ...]) -> Attribution:
        """Whose failure ended ``frames``: see :mod:`conformance.attribution`."""
        if self.context is None:
            return Attribution(declared, None, (), None)
        return attribute(frames, self.context.sides, self.context.target, self.known, declared)

    def record(self, requirement: str, condition: bool, message: str | Callable[[], str]) -> None:
        """Like :meth:`that`, but keep a failure for :meth:`raise_pending` instead of raising it now.

        For checks that run inside the implementation's call stack (event
        listeners), where an implementation's ``except Exception`` could
        swallow the violation.
        """
        try:
            self.that(requirement, condition, message)
        except RequirementViolation as violation:
            self.pending.append((violation.requirement, violation.message))

    def raise_pending(self) -> None:
        """Raise the first failure :meth:`record` kept (and forget the rest: they come back if real)."""
        pending = [(req, message) for req, message in self.pending if req not in self.disabled]
        self.pending.clear()
        if pending:
            requirement, message = pending[0]
            raise RequirementViolation(requirement, message)

    def that(self, requirement: str, condition: bool, message: str | Callable[[], str]) -> None:
        """Record a check of ``requirement``; raise :class:`RequirementViolation` if ``condition`` is false."""
        if requirement not in self.known:
            raise KeyError(f"check of {requirement}, which is not a requirement of this target")
        self.counts[requirement] += 1
        if condition or requirement in self.disabled:
            return
        self.first_failure_at.setdefault(requirement, time.perf_counter() - self.started)
        raise RequirementViolation(requirement, message() if callable(message) else message)


class ConformanceMachine(RuleBasedStateMachine):
    """Base of every suite: the implementation factory, the shared checks and the step timeout."""

    def __init__(self) -> None:
        super().__init__()
        # A failure kept by Checks.record in an example that then ended on an exception (a step that raised or
        # timed out) belongs to that example's world: raised in this one, Hypothesis would call the test flaky.
        self.checks.pending.clear()
        if self.checks.monitor is not None:
            self.checks.monitor.example_started()

    @classmethod
    def initializers(cls) -> frozenset[str]:
        """Names of the steps that build the world: if one fails, nothing else can be checked."""
        return _marked(cls, _INITIALIZE_MARKER)

    @classmethod
    def rule_names(cls) -> frozenset[str]:
        """Names of the rules (what a counterexample's steps are made of)."""
        return _marked(cls, _RULE_MARKER) | _marked(cls, _INITIALIZE_MARKER)

    @classmethod
    def step_requirements(cls, name: str) -> tuple[str, ...]:
        """The requirements step ``name`` can judge: those of the checks it reaches, read from the suite's source.

        A hang or an exception in the step that no check on the stack claims goes to these.  The IDs written
        in ``@step(...)`` come first and are kept: they name the requirements of checks that run in event
        listeners, which the step sets off without calling them.
        """
        from conformance.traceability import derived_step_requirements  # noqa: PLC0415 - it imports this module

        declared: tuple[str, ...] = getattr(getattr(cls, name, None), "requirements", ())
        return tuple(dict.fromkeys([*declared, *derived_step_requirements(cls).get(name, ())]))

    @staticmethod
    def factory() -> Any:
        """``MODULE:FACTORY`` of the implementation under test, loaded (the runner binds it)."""
        raise NotImplementedError("bind the machine to an implementation with conformance.runner.bind")

    checks: ClassVar[Checks]
    timeout_s: ClassVar[float] = 5.0


# Hypothesis marks rule functions with these attributes (hypothesis.stateful).
_RULE_MARKER = "hypothesis_stateful_rule"
_INITIALIZE_MARKER = "hypothesis_stateful_initialize_rule"
_DECORATOR_OF_MARKER = {
    _RULE_MARKER: "rule",
    _INITIALIZE_MARKER: "initialize",
    "hypothesis_stateful_invariant": "invariant",
    "hypothesis_stateful_preconditions": "precondition",
}


class StepOrderError(TypeError):
    """:func:`step` was applied above a Hypothesis decorator instead of below it.

    Hypothesis keeps the function it was given: with ``@step`` on top, it would run the bare method, with no
    step timeout, no :class:`ImplementationError` and no step count.
    """

    def __init__(self, function: str, decorator: str) -> None:
        super().__init__(
            f"@step is above @{decorator} on {function}: Hypothesis would run the method without the step "
            f"guard; put @{decorator}(...) first and @step(...) directly above the def"
        )
        self.function = function


def _marked(cls: type, marker: str) -> frozenset[str]:
    return frozenset(name for name in dir(cls) if getattr(getattr(cls, name, None), marker, None) is not None)


def _alarm_available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def step(*requirements: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a rule or invariant: it runs under the step timeout.

    The requirements a step can judge are derived from the checks it reaches
    (:meth:`ConformanceMachine.step_requirements`); ``requirements`` adds those of checks it only sets off
    (event listeners), which no reading of the source can tie to it.
    """

    def decorate(method: Callable[_P, _R]) -> Callable[_P, _R]:
        name = method.__name__
        for marker, decorator in _DECORATOR_OF_MARKER.items():
            if getattr(method, marker, None) is not None:
                raise StepOrderError(method.__qualname__, decorator)

        @functools.wraps(method)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            machine = args[0]
            assert isinstance(machine, ConformanceMachine)
            checks = machine.checks
            if name in checks.disabled_steps:
                return None  # type: ignore[return-value]  # a step that hung or raised before is skipped
            checks.steps += 1
            running = _Running(name, type(machine).step_requirements(name), checks, machine.timeout_s)
            return running.run(lambda: method(*args, **kwargs))

        guarded.requirements = requirements  # type: ignore[attr-defined]
        return guarded

    return decorate


_IN_FLIGHT: list[_Running] = []
"""The steps running now, outermost first (one machine runs at a time in a process)."""


class _Running:
    """One step in flight: its deadline, the timer that enforces it, the monitor that watches it."""

    def __init__(self, name: str, requirements: tuple[str, ...], checks: Checks, seconds: float) -> None:
        self.name = name
        self.requirements = requirements
        self.checks = checks
        self.seconds = seconds
        own = time.monotonic() + seconds if seconds > 0 else math.inf
        self.deadline: float = min([own, *(outer.deadline for outer in _IN_FLIGHT)])

    def run(self, call: Callable[[], _R]) -> _R:
        depth = len(_IN_FLIGHT)
        timed = math.isfinite(self.deadline) and _alarm_available()
        installs = timed and signal.getsignal(signal.SIGALRM) is not _expire  # the outermost timed step
        previous = signal.signal(signal.SIGALRM, _expire) if installs else None
        _IN_FLIGHT.append(self)
        if self.checks.monitor is not None:
            self.checks.monitor.step_started(self.name, depth, self.deadline - time.monotonic())
        try:
            if timed:
                _arm(self.deadline)
            return self._translate(call)
        finally:
            _IN_FLIGHT.pop()
            if self.checks.monitor is not None:
                self.checks.monitor.step_finished(depth)
            if installs:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            elif timed:
                _arm(_IN_FLIGHT[-1].deadline)  # the outer step's deadline still holds

    def _translate(self, call: Callable[[], _R]) -> _R:
        try:
            return call()
        except (RequirementViolation, StepTimeout, ImplementationError, StopTest, GeneratorExit, HypothesisException):
            raise  # verdicts found, or Hypothesis's control flow: not the implementation's doing
        except AssertionError as error:
            if not self._raised_by_implementation(error):
                raise  # the suite's own bookkeeping
            raise self._implementation_error(error) from error
        except KeyboardInterrupt as error:
            if self.checks.context is None or not self.checks.context.isolated:
                raise  # in the caller's own process it may be the user's Ctrl-C
            raise self._implementation_error(error) from error
        except BaseException as error:  # SystemExit and MemoryError too: whatever the implementation raises
            raise self._implementation_error(error) from error

    def _raised_by_implementation(self, error: BaseException) -> bool:
        context = self.checks.context
        frames = frames_of_traceback(error.__traceback__)
        return context is not None and bool(frames) and context.sides.is_implementation(frames[-1])

    def _implementation_error(self, error: BaseException) -> ImplementationError:
        frames = frames_of_traceback(error.__traceback__)
        # Let go of the frames' locals before anything else is built: an implementation that ran out of memory
        # holds its hoard in them, and formatting the trace (or anything after) needs memory again.
        traceback.clear_frames(error.__traceback__)
        attribution = self.checks.attribute(frames, self.requirements)
        return ImplementationError(self._path(), self.requirements, error, attribution)

    def _path(self) -> str:
        """The step's name, with the steps around it when it runs inside another."""
        outer = [running.name for running in _IN_FLIGHT if running is not self]
        return f"{self.name} (inside {' > '.join(outer)})" if outer else self.name

    def timeout(self, frame: FrameType | None) -> StepTimeout:
        """The error that a passed deadline raises in the frame the timer interrupted."""
        attribution = self.checks.attribute(frames_of_stack(frame), self.requirements)
        return StepTimeout(self._path(), self.requirements, self.seconds, attribution)


def _arm(deadline: float) -> None:
    # a deadline already passed still fires, at once, in the step it belongs to
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 1e-6))


def _expire(signum: int, frame: FrameType | None) -> None:
    if not _IN_FLIGHT:
        return  # the timer outlived its step (it is disarmed as the step ends)
    now = time.monotonic()
    late = [running for running in _IN_FLIGHT if running.deadline <= now]
    if not late:
        _arm(min(running.deadline for running in _IN_FLIGHT))  # woken early: sleep on
        return
    raise _IN_FLIGHT[-1].timeout(frame)
