"""The catalogue of faulty implementations: well formed here, and every entry detected (VFMIG_CATALOGUE=1).

Detection runs each faulty implementation through the suite under the default
profile, so it takes minutes; ``tox -e detection`` runs it (and CI runs that
environment once).  The shape of the catalogue is checked in every run.
"""

from __future__ import annotations

import os
import sys
import types

import pytest

from conformance.catalogue import Fault, all_faults, registry
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


class _Reference:
    """Stands for a reference class the catalogue varies."""


class _Implementation:
    def __init__(self, variant: type[_Reference]) -> None:
        self.variant = variant


@pytest.fixture
def probe_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A throwaway catalogue module whose faults the registry takes, with a builder for :class:`_Reference`."""
    module = types.ModuleType("vfmig_registry_probe")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(registry, "_BUILDERS", {})
    monkeypatch.setattr(registry, "_FAULTS", {})
    registry.builds(_Reference)(_Implementation)
    return module


def _variant(module: types.ModuleType, name: str, doc: str | None) -> type[_Reference]:
    return type(name, (_Reference,), {"__doc__": doc, "__module__": module.__name__})


def test_a_registered_class_is_a_fault_named_and_described_by_the_class(probe_module: types.ModuleType) -> None:
    variant = _variant(probe_module, "AcceptsAFineTrackingHost", "Takes any host.\n\n    More detail, not kept.")
    registered = registry.fault(Target.HYPERVISOR, breaks="VFM-VER-007", verdict=Verdict.WARN)(variant)
    assert registered is variant
    [entry] = registry.faults_in(probe_module.__name__)
    assert entry == Fault(
        "accepts-a-fine-tracking-host",
        Target.HYPERVISOR,
        "vfmig_registry_probe:accepts_a_fine_tracking_host",
        "VFM-VER-007",
        "Takes any host.",
        Verdict.WARN,
    )
    implementation = load_implementation(Target.HYPERVISOR, entry.factory)()
    assert isinstance(implementation, _Implementation)
    assert implementation.variant is variant


def test_the_registry_refuses_a_fault_it_cannot_describe_name_uniquely_or_build(
    probe_module: types.ModuleType,
) -> None:
    with pytest.raises(registry.CatalogueError, match="docstring"):
        registry.fault(Target.DEVICE, breaks="VFM-FN-001")(_variant(probe_module, "Undocumented", None))
    registry.fault(Target.DEVICE, breaks="VFM-FN-001")(_variant(probe_module, "Twice", "Once."))
    with pytest.raises(registry.CatalogueError, match="two faults"):
        registry.fault(Target.DEVICE, breaks="VFM-FN-001")(_variant(probe_module, "Twice", "Again."))
    stranger = type("Stranger", (), {"__doc__": "No builder.", "__module__": probe_module.__name__})
    with pytest.raises(registry.CatalogueError, match="no builder"):
        registry.fault(Target.DEVICE, breaks="VFM-FN-001")(stranger)


class _Phased(_Reference):
    """A reference class with a phase a fault may leave out."""

    def phase(self, value: int) -> str:
        return f"done {value}"


def test_a_fault_may_leave_out_a_public_phase(probe_module: types.ModuleType) -> None:
    variant = type("SkipsThePhase", (_Phased,), {"__doc__": "Skips it.", "__module__": probe_module.__name__})
    registry.fault(Target.DEVICE, breaks="VFM-FN-001", leaves_out="phase")(variant)
    assert _Phased().phase(1) == "done 1"
    assert variant().phase(1) is None
    assert [entry.name for entry in registry.faults_in(probe_module.__name__)] == ["skips-the-phase"]


@pytest.mark.parametrize(
    ("phase", "body", "why"),
    [
        ("missing", {}, "not a public method"),
        ("_private", {"_private": lambda self: None}, "not a public method"),
        ("phase", {"phase": lambda self, value: None}, "both defines and leaves out"),
    ],
)
def test_the_registry_refuses_to_leave_out_what_is_no_inherited_public_phase(
    probe_module: types.ModuleType, phase: str, body: dict[str, object], why: str
) -> None:
    variant = type("Skips", (_Phased,), {"__doc__": "Skips.", "__module__": probe_module.__name__, **body})
    with pytest.raises(registry.CatalogueError, match=why):
        registry.fault(Target.DEVICE, breaks="VFM-FN-001", leaves_out=phase)(variant)


def test_builders_by_keyword_pass_the_faulty_subclass_under_its_keyword(probe_module: types.ModuleType) -> None:
    class _Other:
        """A second reference class."""

    built: list[dict[str, type]] = []
    registry.builds_by_keyword(lambda **classes: built.append(classes), other=_Other)
    variant = type("BentOther", (_Other,), {"__doc__": "Bent.", "__module__": probe_module.__name__})
    registry.fault(Target.DEVICE, breaks="VFM-FN-001")(variant)
    [entry] = registry.faults_in(probe_module.__name__)
    load_implementation(Target.DEVICE, entry.factory)()
    assert built == [{"other": variant}]
