"""The ``bridge`` conformance target: the reference bridge passes, and every catalogued faulty bridge is caught.

The reference must come out conformant with every requirement the suite checks
judged ``pass`` (a check that never runs would be silent coverage).  Each entry
of :data:`conformance.catalogue.bridge_faults.CATALOGUE` must be caught under
the requirement it breaks.  To keep the file fast, a detection run stops at the
verdict on that requirement (the runner's ``on_verdict`` hook) and tries the
``quick`` profile before the ``default`` one, with fixed seeds.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re

import pytest
from reference_coverage import reference_coverage

import conformance.suites.bridge as bridge_suite
import conformance.suites.bridge.model as bridge_model
from conformance.catalogue import Fault, all_faults
from conformance.catalogue.bridge_faults import CATALOGUE
from conformance.preflight import load_implementation
from conformance.runner import run, suite_class, target_requirements
from conformance.suites.bridge.model import CapabilityModel, drv_path, flag_path, state_path, states_taken
from conformance.verdicts import RequirementResult, Target, Verdict
from vfmig_proto.codec import find_field, store_field
from vfmig_proto.engine import Effects, Judgement, ProtocolEngine, ReportVerdict, read_protocol_state
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigState, SlotFlag

REFERENCE_SEED = 1
DETECTION_SEED = 12
DETECTION_PROFILES = ("quick", "default")


def _named_in_suite() -> set[str]:
    """Every requirement ID the bridge suite's source (each module of its package) checks or names in a step."""
    modules = pkgutil.walk_packages(bridge_suite.__path__, f"{bridge_suite.__name__}.")
    sources = [inspect.getsource(bridge_suite)]
    sources += [inspect.getsource(importlib.import_module(module.name)) for module in modules]
    return {requirement for source in sources for requirement in re.findall(r'"(VFM-[A-Z]+-\d{3})"', source)}


def _named_by_steps() -> set[str]:
    machine = suite_class(Target.BRIDGE)
    named: set[str] = set()
    for name in machine.rule_names():
        named.update(getattr(getattr(machine, name), "requirements", ()))
    return named


class _Judged(Exception):  # noqa: N818 - not an error: the run is stopped once the verdict is in
    def __init__(self, result: RequirementResult) -> None:
        super().__init__(result.requirement.id)
        self.result = result


def _detect(fault: Fault) -> tuple[RequirementResult | None, list[str]]:
    """The verdict on ``fault.breaks``, from the first profile that judges it, and every verdict seen on the way."""
    seen: list[str] = []
    for profile in DETECTION_PROFILES:

        def stop(result: RequirementResult, profile: str = profile) -> None:
            seen.append(f"{profile}: {result.requirement.id} {result.verdict.value}: {result.detail.splitlines()[0]}")
            if result.requirement.id == fault.breaks:
                raise _Judged(result)

        try:
            report = run(fault.target, fault.factory, profile=profile, seed=DETECTION_SEED, on_verdict=stop)
        except _Judged as judged:
            return judged.result, seen
        seen.extend(f"{profile}: suite error: {error}" for error in report.suite_errors)
    return None, seen


# ---------------------------------------------------------------------------------------------- the reference


def test_the_reference_bridge_is_conformant_and_every_check_runs() -> None:
    report = run(Target.BRIDGE, profile="default", seed=REFERENCE_SEED)
    assert report.suite_errors == []
    problems = [
        f"{result.requirement.id} {result.verdict.value}: {result.detail}"
        for result in report.results
        if result.verdict.breaks_conformance or result.verdict is Verdict.WARN
    ]
    assert problems == [], "the reference bridge breaks the spec, or the suite's model is wrong"
    verdicts = {result.requirement.id: result.verdict for result in report.results}
    named = _named_in_suite()
    assert named <= set(verdicts), f"the suite checks requirements that do not bind the bridge: {named - set(verdicts)}"
    unexercised = {requirement for requirement in named if verdicts[requirement] is not Verdict.PASS}
    if unexercised:  # another seed may reach what this one did not (tests/reference_coverage.py)
        coverage = reference_coverage(Target.BRIDGE, unexercised, seeds=range(REFERENCE_SEED + 1, REFERENCE_SEED + 5))
        assert coverage.problems == []
        unexercised = coverage.unreached
    assert sorted(unexercised) == [], "checks of these requirements never ran under the default profile"


def test_a_conformant_bridge_of_a_later_minor_version_passes() -> None:
    """VFM-VER-006 is judged on bridges of later minor versions: one that gates its new feature is conformant."""
    report = run(Target.BRIDGE, "conformance.catalogue.bridge_faults:later_minor_bridge", seed=REFERENCE_SEED)
    assert report.suite_errors == []
    problems = [
        f"{result.requirement.id} {result.verdict.value}: {result.detail}"
        for result in report.results
        if result.verdict.breaks_conformance or result.verdict is Verdict.WARN
    ]
    assert problems == []
    verdicts = {result.requirement.id: result.verdict for result in report.results}
    assert verdicts["VFM-VER-006"] is Verdict.PASS


def test_every_requirement_a_step_names_is_one_the_suite_checks() -> None:
    named = _named_by_steps()
    assert named, "the suite's steps name the requirements they exercise"
    assert named <= _named_in_suite()
    assert named <= {requirement.id for requirement in target_requirements(Target.BRIDGE)}


# ---------------------------------------------------------------------------------------------- the model


def _hot_added(model: CapabilityModel) -> None:
    """A function hot-added into every slot: each slot UNBOUND."""
    for slot in range(model.num_slots):
        model.begin()
        model.finish(model.slot_event(slot, DevEvent.HOT_ADD))


def _report(model: CapabilityModel, slot: int, value: int) -> tuple[ReportVerdict, Effects]:
    """One report step of the model, the function's BME clear; the verdict and what the report committed."""
    model.begin()
    old = model.get(drv_path(slot))
    model.apply_write(model.dev_ctrl[slot], bytes([value]))
    verdict = model.judge(slot, old, bus_master=False)
    effects = model.apply_report(verdict)
    model.finish(effects)
    return verdict, effects


def test_the_model_decides_nothing_itself() -> None:
    """Issue 11: the suite's model reads no transition table; every protocol decision is the engine's."""
    tables = {"DEVICE_TRANSITIONS", "MIGRATION_TRANSITIONS", "FANOUT", "CATCH_UP", "REPORT_EVENTS", "FLAGS_SET_BY"}
    rules = {"device_transition", "migration_transition", "rejected_for_bus_master", "settled", "fanout_targets"}
    assert not (tables | rules) & set(vars(bridge_model))


def test_the_model_steps_as_the_engine_does_and_keeps_its_bytes_in_step() -> None:
    """The model's capability holds the engine's state after every step, and a step does what process_* does."""
    model = CapabilityModel(CapabilityParams(num_slots=3), 0)
    engine = ProtocolEngine(3)
    _hot_added(model)
    for slot in range(3):
        engine.process_slot_event(slot, DevEvent.HOT_ADD)
    for slot in range(3):  # the drivers bind
        verdict, _ = _report(model, slot, DriverReport.READY)
        assert verdict.judgement is Judgement.ACCEPT
        engine.process_report(slot, DriverReport.READY, bus_master=False)
    model.begin()
    outcome = model.finish(model.migration_event(MigEvent.START))
    engine.process_migration_event(MigEvent.START)
    assert outcome.sets_event
    assert outcome.event
    assert outcome.pre_settle is MigState.PREPARE
    assert model.engine.state == engine.state
    assert read_protocol_state(model.data, 3) == engine.state
    assert model.dev_states() == [DevState.DIRTY_REQ] * 3
    assert model.get("generation") == 1


def test_a_report_the_model_accepts_mid_migration_is_caught_up() -> None:
    """The chain of an accepted report: the row's next state, then each state catch-up moves the slot to."""
    model = CapabilityModel(CapabilityParams(num_slots=2), 0)
    _hot_added(model)
    model.begin()
    model.finish(model.migration_event(MigEvent.START))
    assert model.mig_state is MigState.PRECOPY, "UNBOUND slots have settled: ALL_DIRTYING in the same step"
    model.begin()
    model.apply_write(model.dev_ctrl[0], bytes([DriverReport.READY]))
    effects = model.apply_report(model.judge(0, DriverReport.NONE, bus_master=False))
    assert states_taken(effects, 0) == (DevState.READY, DevState.DIRTY_REQ)
    assert model.dev_state(0) is DevState.DIRTY_REQ
    assert model.finish(effects).sets_event, "catch-up requests are host events (VFM-NOTIF-001)"


def test_a_rejected_report_restores_drv_state_and_sets_protocol_error() -> None:
    model = CapabilityModel(CapabilityParams(num_slots=1), 0)
    _hot_added(model)
    verdict, effects = _report(model, 0, 7)  # no such DRV_STATE value
    assert verdict.judgement is Judgement.REJECT
    assert states_taken(effects, 0) == ()
    assert model.get(drv_path(0)) == DriverReport.NONE
    assert model.get(flag_path(0, SlotFlag.PROTOCOL_ERROR)) == 1
    assert not effects.sets_event
    assert model.engine.state.slots[0].protocol_error


def test_a_guest_write_of_the_flags_reaches_the_engine() -> None:
    """The mask model changes DEV_STATUS behind the engine's back: the engine takes the bytes over."""
    model = CapabilityModel(CapabilityParams(num_slots=2), 0)
    _hot_added(model)
    model.begin()
    model.finish(model.migration_event(MigEvent.GROUP_RESET))
    assert model.engine.state.slots[1].reset
    reset = find_field(2, flag_path(1, SlotFlag.RESET))
    model.apply_write(reset.offset + reset.field.lsb // 8, bytes([1 << reset.field.lsb % 8]))  # RW1C: cleared
    assert model.get(flag_path(1, SlotFlag.RESET)) == 0
    assert read_protocol_state(model.data, 2) == model.engine.state


def test_a_settled_event_overdue_when_the_model_takes_over_is_not_raised_later() -> None:
    """VFM-MIG-007: a settled event the bridge failed to raise in a judged step is not the next step's to raise."""
    model = CapabilityModel(CapabilityParams(num_slots=1), 0)
    _hot_added(model)
    _report(model, 0, DriverReport.READY)
    model.begin()
    model.finish(model.migration_event(MigEvent.START))
    overdue = bytearray(model.data)
    store_field(overdue, find_field(1, state_path(0)), DevState.DIRTYING)  # the driver answered; no ALL_DIRTYING
    model.take_over(bytes(overdue))
    assert model.engine.due_settled_events() == [MigEvent.ALL_DIRTYING]
    model.begin()
    outcome = model.finish(Effects())
    assert model.mig_state is MigState.PREPARE
    assert not outcome.sets_event


# ---------------------------------------------------------------------------------------------- the catalogue


def test_the_catalogue_is_well_formed() -> None:
    bridge_ids = {requirement.id for requirement in target_requirements(Target.BRIDGE)}
    names = [fault.name for fault in CATALOGUE]
    assert len(CATALOGUE) >= 14
    assert len(set(names)) == len(names), "fault names are unique"
    for fault in CATALOGUE:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", fault.name), fault.name
        assert fault.target is Target.BRIDGE
        assert fault.breaks in bridge_ids, f"{fault.name} breaks {fault.breaks}, not a bridge requirement"
        assert fault.verdict is Verdict.FAIL
        assert fault.description.endswith("."), fault.description
        assert ". " not in fault.description, f"one sentence: {fault.description}"
        assert fault.factory.startswith("conformance.catalogue.bridge_faults:")
        implementation = load_implementation(fault.target, fault.factory)()
        assert callable(getattr(implementation, "create_bridge", None)), fault.factory
    assert {fault.name for fault in all_faults()} >= set(names), "all_faults() gathers the bridge catalogue"


@pytest.mark.parametrize("fault", CATALOGUE, ids=lambda fault: fault.name)
@pytest.mark.skipif(os.environ.get("VFMIG_CATALOGUE") != "1", reason="minutes long: tox -e detection runs it")
def test_the_suite_catches_the_fault_under_the_requirement_it_breaks(fault: Fault) -> None:
    result, seen = _detect(fault)
    assert result is not None, f"{fault.name} ({fault.description}) went undetected; verdicts: {seen}"
    assert result.verdict is fault.verdict, f"{fault.breaks}: {result.verdict.value}, expected {fault.verdict.value}"
    assert result.counterexample is not None
    assert result.counterexample.steps >= 1
    assert result.counterexample.reproduction.startswith("# vfmig conformance counterexample: target bridge")
