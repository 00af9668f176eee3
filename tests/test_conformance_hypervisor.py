"""The ``hypervisor`` target: the reference passes every check, and every catalogued fault is found.

The reference runs under the quick profile (a second or so).  The faulty
hypervisors of ``conformance.catalogue.hypervisor_faults`` run under the
default profile as ``tox -e detection`` runs them, only the requirement each
breaks switched on (one to three seconds of CPU each, some 40 s for all), and
only with ``VFMIG_CATALOGUE=1``.
"""

from __future__ import annotations

import os

import pytest
from reference_coverage import reference_coverage

from conformance.adapters import HypervisorUnderTest, IncomingMigration, MigrationHandle
from conformance.catalogue import Fault
from conformance.catalogue.hypervisor_faults import CATALOGUE
from conformance.detection import detect
from conformance.runner import run, target_requirements
from conformance.suites.hypervisor import CHECKED
from conformance.traceability import SiteKind, build_matrix
from conformance.verdicts import RunReport, Target, Verdict
from reference_impl.hypervisor import DestinationMigration, Hypervisor, SourceMigration

SEED = 1


@pytest.fixture(scope="module")
def reference() -> RunReport:
    return run(Target.HYPERVISOR, None, profile="quick", seed=SEED)


def test_the_suite_checks_requirements_of_the_hypervisor_role_only() -> None:
    role = {req.id for req in target_requirements(Target.HYPERVISOR)}
    assert CHECKED.issubset(role)


def test_the_reference_hypervisor_is_conformant(reference: RunReport) -> None:
    assert reference.suite_errors == []
    broken = [
        f"{result.requirement.id} {result.verdict.value}: {result.detail}"
        for result in reference.results
        if result.verdict not in (Verdict.PASS, Verdict.NOT_COVERED)
    ]
    assert broken == []
    assert reference.conformant


def test_every_requirement_the_suite_checks_passes_and_no_other_is_claimed() -> None:
    coverage = reference_coverage(Target.HYPERVISOR, CHECKED, profile="quick")
    assert coverage.problems == []
    assert coverage.unreached == set(), f"not reached in seeds {coverage.seeds}"
    assert coverage.passed == CHECKED


def test_the_matrix_reads_every_module_of_the_suite_package() -> None:
    """The suite is a package of mixins: the matrix finds the checks of every module, a table in one module is the
    requirement of checks in another, and a helper is reached from steps defined in other modules."""
    sites = [site for site in build_matrix().sites if site.target is Target.HYPERVISOR]
    modules = {site.module.removeprefix("conformance.suites.hypervisor.") for site in sites}
    observers = {"dirtying", "timing", "cancellation", "config_space", "interrupts", "placement", "handover"}
    assert {"world", "settings", "management", "scenarios"} | {f"observers.{name}" for name in observers} <= modules
    table = next(site for site in sites if site.kind is SiteKind.TABLE and site.requirement == "VFM-TMO-001")
    assert table.reached_from == ("TimingObserver._due", "TimingObserver._phase_left")
    ended = next(site for site in sites if site.function == "TimingObserver._ended" and site.kind is SiteKind.HELPER)
    assert {"build", "cancel", "driver_scenario"} <= set(ended.reached_from)


def _declared(protocol: type) -> set[str]:
    names = {name for name in vars(protocol) if not name.startswith("_")}
    return names | set(getattr(protocol, "__annotations__", {}))


@pytest.mark.parametrize(
    ("protocol", "reference", "instance_attributes"),
    [
        (HypervisorUnderTest, Hypervisor, {"name", "guest", "incoming", "make_memory"}),
        (MigrationHandle, SourceMigration, {"record"}),
        (IncomingMigration, DestinationMigration, {"memory", "fail_on_state"}),
    ],
)
def test_the_reference_has_every_member_the_hypervisor_adapter_declares(
    protocol: type, reference: type, instance_attributes: set[str]
) -> None:
    """The suite uses only what the adapter declares; the reference, which it runs, provides all of it."""
    missing = {name for name in _declared(protocol) - instance_attributes if not hasattr(reference, name)}
    assert missing == set()
    assert instance_attributes <= _declared(protocol)


def test_the_catalogue_breaks_requirements_the_suite_checks() -> None:
    assert len(CATALOGUE) >= 12
    assert len({fault.name for fault in CATALOGUE}) == len(CATALOGUE)
    assert all(fault.target is Target.HYPERVISOR and fault.breaks in CHECKED for fault in CATALOGUE)


@pytest.mark.parametrize("fault", CATALOGUE, ids=[fault.name for fault in CATALOGUE])
@pytest.mark.skipif(os.environ.get("VFMIG_CATALOGUE") != "1", reason="minutes long: tox -e detection runs it")
def test_every_faulty_hypervisor_is_found_breaking_its_requirement(fault: Fault) -> None:
    detection = detect(fault, profile="default", seed=SEED)
    assert detection.detected, (
        f"{fault.name} ({fault.description}) was not found as {fault.verdict.value} of {fault.breaks}; "
        f"the run found: {', '.join(detection.found) or 'nothing'}"
    )
    result = next(item for item in detection.report.results if item.requirement.id == fault.breaks)
    assert result.counterexample is not None
    assert result.counterexample.steps >= 1
