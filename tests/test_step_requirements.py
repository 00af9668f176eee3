"""What a step can judge is derived from the checks it reaches, read from the suite's source, wherever in the
machine's MRO (and its package's modules) those checks live; ``@step(...)`` lists only add to it."""

from __future__ import annotations

import pytest
from mixin_suite import MixinSuite

from conformance.checks import ImplementationError
from conformance.runner import suite_class
from conformance.traceability import derived_step_requirements, suite_sources
from conformance.verdicts import Target


def test_a_step_reaches_checks_in_another_module_of_the_package() -> None:
    derived = derived_step_requirements(MixinSuite)
    assert derived["poke"] == ("VFM-FN-001", "VFM-FN-002")


def test_methods_resolve_in_mro_order_and_tables_count() -> None:
    derived = derived_step_requirements(MixinSuite)
    assert derived["hand_listed"] == ("VFM-FN-004",)  # Rules.overridden, not Observers.overridden (VFM-FN-005)
    assert derived["nothing_checked"] == ()


def test_the_judged_set_is_the_hand_list_and_the_derived_one() -> None:
    assert MixinSuite.step_requirements("hand_listed") == ("VFM-FN-003", "VFM-FN-004")
    assert MixinSuite.step_requirements("poke") == ("VFM-FN-001", "VFM-FN-002")


def test_a_failure_no_check_claims_goes_to_the_derived_requirements() -> None:
    with pytest.raises(ImplementationError) as raised:
        MixinSuite().poke()
    assert raised.value.requirements == ("VFM-FN-001", "VFM-FN-002")


@pytest.mark.parametrize("target", list(Target), ids=lambda target: target.value)
def test_every_step_of_every_suite_judges_its_hand_list_and_its_derived_checks(target: Target) -> None:
    machine = suite_class(target)
    derived = derived_step_requirements(machine)
    assert derived, "no step of the suite was read"
    for name, requirements in derived.items():
        hand: tuple[str, ...] = getattr(getattr(machine, name), "requirements", ())
        judged = set(machine.step_requirements(name))
        assert judged >= set(requirements) | set(hand), name


@pytest.mark.parametrize("target", list(Target), ids=lambda target: target.value)
def test_the_suite_sources_are_the_modules_of_the_machine_mro(target: Target) -> None:
    machine = suite_class(target)
    modules = {source.module for source in suite_sources(target)}
    assert {cls.__module__ for cls in machine.__mro__ if cls.__module__.startswith("conformance.suites")} <= modules
