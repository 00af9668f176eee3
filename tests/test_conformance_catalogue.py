"""The catalogue of faulty implementations: well formed here, and every entry detected (VFMIG_CATALOGUE=1).

Detection runs each faulty implementation through the suite under the default
profile, so it takes minutes; ``tox -e detection`` runs it (and CI runs that
environment once).  The shape of the catalogue is checked in every run.
"""

from __future__ import annotations

import os

import pytest

from conformance.catalogue import Fault, all_faults
from conformance.detection import detect
from conformance.preflight import load_implementation
from conformance.runner import target_requirements
from conformance.verdicts import Target, Verdict

FAULTS = all_faults()


def test_the_catalogue_has_at_least_forty_faults_over_every_target() -> None:
    assert len(FAULTS) >= 40
    assert len({fault.name for fault in FAULTS}) == len(FAULTS), "fault names are unique"
    assert {fault.target for fault in FAULTS} == set(Target)


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_each_fault_names_a_requirement_of_its_target_and_loads(fault: Fault) -> None:
    assert fault.breaks in {req.id for req in target_requirements(fault.target)}
    assert fault.verdict in (Verdict.FAIL, Verdict.WARN, Verdict.TIMEOUT, Verdict.ERROR)
    assert callable(load_implementation(fault.target, fault.factory))


def test_the_catalogue_covers_every_requirement_area_the_suites_check() -> None:
    areas = {fault.breaks.split("-")[1] for fault in FAULTS}
    assert {"DIRTY", "FN", "DEV", "ABS", "FLAG", "TMO"} <= areas


@pytest.mark.skipif(os.environ.get("VFMIG_CATALOGUE") != "1", reason="minutes long: tox -e detection runs it")
@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_every_fault_is_detected_as_breaking_its_requirement(fault: Fault) -> None:
    detection = detect(fault)
    assert detection.detected, (
        f"{fault.name} ({fault.description}) was not found as {fault.verdict.value} of {fault.breaks}; "
        f"the run found: {', '.join(detection.found) or 'nothing'}"
    )
