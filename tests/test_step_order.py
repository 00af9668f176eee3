"""``@step`` under Hypothesis's decorator, never above it: the misorder is refused when the class is defined."""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis.stateful import initialize, invariant, precondition, rule

from conformance.checks import Checks, ConformanceMachine, ImplementationError, StepOrderError, step


def test_step_above_rule_is_refused_when_the_class_is_defined() -> None:
    with pytest.raises(StepOrderError, match=r"@step is above @rule on .*hangs.*put @rule\(\.\.\.\) first"):

        class _Misordered(ConformanceMachine):  # pragma: no cover - the class body never completes
            @step()
            @rule()
            def hangs(self) -> None:
                pass


@pytest.mark.parametrize(
    ("decorator", "name"),
    [(initialize(), "initialize"), (invariant(), "invariant"), (precondition(lambda _: True), "precondition")],
)
def test_step_above_any_hypothesis_decorator_is_refused(decorator: object, name: str) -> None:
    def method(self: object) -> None:
        pass

    marked = decorator(method)  # type: ignore[operator]
    with pytest.raises(StepOrderError, match=f"@step is above @{name} on"):
        step()(marked)


class _BoomError(RuntimeError):
    pass


def _implementation_call() -> None:
    raise _BoomError("from the implementation")


class _WellOrdered(ConformanceMachine):
    checks: ClassVar[Checks] = Checks([])

    @rule()
    @step()
    def raises(self) -> None:
        _implementation_call()


def test_step_under_rule_guards_the_step() -> None:
    machine = _WellOrdered()
    before = machine.checks.steps
    with pytest.raises(ImplementationError, match="step raises: _BoomError"):
        machine.raises()
    assert machine.checks.steps == before + 1
    assert "raises" in _WellOrdered.rule_names()
