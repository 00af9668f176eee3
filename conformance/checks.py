"""The machinery every suite shares: requirement checks, guarded steps, the step timeout.

A suite is a Hypothesis ``RuleBasedStateMachine``
derived from :class:`ConformanceMachine`.  Its rules and invariants are
decorated with :func:`step`, which names the requirements the step exercises
and runs the step under the step timeout; inside, the suite states what the
spec demands with :meth:`Checks.that`:

.. code-block:: python

    @step("VFM-FN-001")
    @rule(slot=st.integers(0, 3))
    def traffic(self, slot: int) -> None:
        ...
        self.checks.that("VFM-FN-001", not dma_seen or bme, "DMA with Bus Master Enable clear")

A broken check raises :class:`RequirementViolation`; an exception from the
implementation becomes :class:`ImplementationError`; a step that does not
return in time raises :class:`StepTimeout`.  The runner turns each into a
verdict and goes on with the rest of the requirements.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, ParamSpec, TypeVar

from hypothesis.errors import HypothesisException
from hypothesis.stateful import RuleBasedStateMachine

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

    def __init__(self, step_name: str, requirements: tuple[str, ...], seconds: float) -> None:
        super().__init__(f"step {step_name} did not return within {seconds:g} s")
        self.step_name = step_name
        self.requirements = requirements


class ImplementationError(Exception):
    """The implementation raised while a step ran."""

    def __init__(self, step_name: str, requirements: tuple[str, ...], error: BaseException) -> None:
        trace = "".join(traceback.format_exception(error))
        super().__init__(f"step {step_name}: {type(error).__name__}: {error}")
        self.step_name = step_name
        self.requirements = requirements
        self.trace = trace


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

    def record(self, requirement: str, condition: bool, message: str | Callable[[], str]) -> None:
        """Like :meth:`that`, but keep a failure for :meth:`raise_pending` instead of raising it now.

        For checks that run inside the implementation's call stack (event
        listeners), where an implementation's ``except Exception`` could
        swallow the violation.
        """
        if requirement not in self.known:
            raise KeyError(f"check of {requirement}, which is not a requirement of this target")
        self.counts[requirement] += 1
        if condition or requirement in self.disabled:
            return
        self.first_failure_at.setdefault(requirement, time.perf_counter() - self.started)
        self.pending.append((requirement, message() if callable(message) else message))

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

    @classmethod
    def initializers(cls) -> frozenset[str]:
        """Names of the steps that build the world: if one fails, nothing else can be checked."""
        return _marked(cls, _INITIALIZE_MARKER)

    @classmethod
    def rule_names(cls) -> frozenset[str]:
        """Names of the rules (what a counterexample's steps are made of)."""
        return _marked(cls, _RULE_MARKER) | _marked(cls, _INITIALIZE_MARKER)

    @staticmethod
    def factory() -> Any:
        """``MODULE:FACTORY`` of the implementation under test, loaded (the runner binds it)."""
        raise NotImplementedError("bind the machine to an implementation with conformance.runner.bind")

    checks: ClassVar[Checks]
    timeout_s: ClassVar[float] = 5.0


# Hypothesis marks rule functions with these attributes (hypothesis.stateful).
_RULE_MARKER = "hypothesis_stateful_rule"
_INITIALIZE_MARKER = "hypothesis_stateful_initialize_rule"


def _marked(cls: type, marker: str) -> frozenset[str]:
    return frozenset(name for name in dir(cls) if getattr(getattr(cls, name, None), marker, None) is not None)


def _alarm_available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def step(*requirements: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a rule or invariant: it exercises ``requirements`` and runs under the step timeout."""

    def decorate(method: Callable[_P, _R]) -> Callable[_P, _R]:
        name = method.__name__

        @functools.wraps(method)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            machine = args[0]
            assert isinstance(machine, ConformanceMachine)
            checks = machine.checks
            if name in checks.disabled_steps:
                return None  # type: ignore[return-value]  # a step that hung or raised before is skipped
            checks.steps += 1
            return _run_with_timeout(name, requirements, machine.timeout_s, lambda: method(*args, **kwargs))

        guarded.requirements = requirements  # type: ignore[attr-defined]
        return guarded

    return decorate


def _run_with_timeout(name: str, requirements: tuple[str, ...], seconds: float, call: Callable[[], _R]) -> _R:
    if seconds <= 0 or not _alarm_available():
        return _translate(name, requirements, call)

    def expire(signum: int, frame: object) -> None:
        raise StepTimeout(name, requirements, seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return _translate(name, requirements, call)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _translate(name: str, requirements: tuple[str, ...], call: Callable[[], _R]) -> _R:
    try:
        return call()
    except (RequirementViolation, StepTimeout, ImplementationError):
        raise
    except (AssertionError, HypothesisException):
        raise  # the suite's own bookkeeping or Hypothesis's control flow: not the implementation's doing
    except Exception as error:
        raise ImplementationError(name, requirements, error) from error
