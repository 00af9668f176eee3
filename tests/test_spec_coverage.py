"""The coverage of the spec's space (conformance.spec_coverage): derived from vfmig_proto, recorded from what the
implementation did, merged across workers and shards, in every report, and measured on the reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conformance import spec_coverage
from conformance.harness import messages
from conformance.parallel import merge_reports
from conformance.reports import read_json, report_json, report_markdown, report_schema, validate_report_json
from conformance.reports.json_report import report_from_json
from conformance.runner import RunState, plan_run
from conformance.spec_coverage import (
    CoverageRecorder,
    Dimension,
    Perturbation,
    SpecCoverage,
    device_key,
    migration_key,
    phase_key,
)
from conformance.summary import summary_text
from conformance.verdicts import RunReport, Target
from reference_impl.bridge import MigrationBridge
from reference_impl.clock import SimClock, ms
from reference_impl.events import EventBus
from vfmig_proto import transitions
from vfmig_proto.engine import DeviceTransition, Effects, MigrationTransition
from vfmig_proto.layout import CapabilityParams, slot_offset
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState

ROOT = Path(__file__).resolve().parents[1]
DEVICE = Dimension.DEVICE_TABLE.value
MIGRATION = Dimension.MIGRATION_TABLE.value
PHASES = Dimension.PHASE_PERTURBATIONS.value


@pytest.fixture
def recorder() -> Iterator[CoverageRecorder]:
    """A recorder the bridges feed while the test runs."""
    made = CoverageRecorder(Target.DEVICE)
    spec_coverage.activate(made)
    yield made
    spec_coverage.activate(None)


def _clear_caches() -> None:
    spec_coverage.forget_derived()


@dataclass
class _Function:
    """A function behind the bridge with Bus Master Enable clear."""

    name: str
    bus_master: bool = False

    def function_level_reset(self, how: str) -> None:
        """Nothing to reset."""


# --- the universe is the tables' ---------------------------------------------------------------


def test_the_device_table_cells_are_its_rows_and_every_rejected_report() -> None:
    cells = spec_coverage.universe()[Dimension.DEVICE_TABLE]
    rows = {device_key(state, event) for state, event in transitions.DEVICE_TRANSITIONS}
    assert rows <= set(cells)
    rejections = set(cells) - rows
    guest_events = set(transitions.REPORT_EVENTS.values())
    assert all(key.split(" x ")[1] in {event.name for event in guest_events} for key in rejections)
    assert len(cells) == len(DevState) * len(guest_events) + sum(
        event.origin.value == "host" for _, event in transitions.DEVICE_TRANSITIONS
    )
    assert set(spec_coverage.universe()[Dimension.MIGRATION_TABLE]) == {
        migration_key(state, event) for state, event in transitions.MIGRATION_TRANSITIONS
    }


def test_changing_a_table_changes_the_universe(monkeypatch: pytest.MonkeyPatch) -> None:
    dropped_host, dropped_guest = (DevState.PAUSED, DevEvent.ARRIVE), (DevState.PAUSED, DevEvent.DRIVER_PAUSED)
    table = {
        cell: row for cell, row in transitions.DEVICE_TRANSITIONS.items() if cell not in (dropped_host, dropped_guest)
    }
    migration = dict(transitions.MIGRATION_TRANSITIONS)
    del migration[(MigState.STOPPED, MigEvent.CANCEL)]
    monkeypatch.setattr(spec_coverage, "DEVICE_TRANSITIONS", table)
    monkeypatch.setattr(spec_coverage, "MIGRATION_TRANSITIONS", migration)
    _clear_caches()
    try:
        cells = spec_coverage.universe()
        assert device_key(*dropped_host) not in cells[Dimension.DEVICE_TABLE]  # a host event without a row: no cell
        assert device_key(*dropped_guest) in cells[Dimension.DEVICE_TABLE]  # a report without a row: a rejection
        assert migration_key(MigState.STOPPED, MigEvent.CANCEL) not in cells[Dimension.MIGRATION_TABLE]
        reasons = spec_coverage.unreachable(Target.HYPERVISOR)
        assert (PHASES, phase_key(MigState.STOPPED, Perturbation.CANCEL)) in reasons
    finally:
        monkeypatch.undo()
        _clear_caches()
    assert device_key(*dropped_host) in spec_coverage.universe()[Dimension.DEVICE_TABLE]


def test_the_other_dimensions_come_from_the_layout_and_the_tables() -> None:
    cells = spec_coverage.universe()
    assert cells[Dimension.SLOT_NUMBERS] == tuple(str(slot) for slot in range(CapabilityParams().num_slots))
    assert len(cells[Dimension.BYTE_LANES]) == 3 * (0x20 + 4)  # every byte of the header and a slot entry, 3 widths
    assert "control byte 0 by 2-byte write (RW+RsvdP)" in cells[Dimension.BYTE_LANES]
    assert spec_coverage.destination_phases() == {MigState.ARRIVED}
    assert MigState.IDLE not in spec_coverage.phases()
    assert set(report_schema()["$defs"]["dimensionName"]["enum"]) == {dimension.value for dimension in Dimension}


def test_every_unreachable_cell_is_in_the_universe_and_has_a_reason() -> None:
    for target in Target:
        universe = spec_coverage.universe()
        for (dimension, key), reason in spec_coverage.unreachable(target).items():
            assert key in universe[Dimension(dimension)]
            assert len(reason) > 20


def test_a_conformant_driver_can_race_into_a_rejection_but_not_write_one_at_will() -> None:
    reasons = spec_coverage.unreachable(Target.DEVICE)
    # READY after reading UNBOUND, with the function surprise-removed before the write lands: a race, reachable.
    assert (DEVICE, device_key(DevState.EMPTY, DevEvent.DRIVER_READY)) not in reasons
    # PAUSED written to a READY slot: no host event moves PAUSE_REQ to READY, so only VFM-DEV-005 broken writes it.
    assert "VFM-DEV-005" in reasons[(DEVICE, device_key(DevState.READY, DevEvent.DRIVER_PAUSED))]
    assert not any(dimension == DEVICE for dimension, _ in spec_coverage.unreachable(Target.BRIDGE))


# --- recording is faithful ---------------------------------------------------------------------


def _reference_bridge() -> tuple[MigrationBridge, SimClock]:
    clock = SimClock()
    bridge = MigrationBridge(EventBus(clock), CapabilityParams(num_slots=8, ack_timeout_ms=20), name="bridge")
    spec_coverage.watched(bridge)
    return bridge, clock


def _report(bridge: MigrationBridge, slot: int, report: DriverReport) -> None:
    bridge.config_write(bridge.cap + slot_offset(slot) + 1, 1, int(report))


def test_a_request_never_answered_leaves_its_answer_uncovered(recorder: CoverageRecorder) -> None:
    bridge, _ = _reference_bridge()
    bridge.hot_add(7, _Function("vf7"))
    _report(bridge, 7, DriverReport.READY)
    bridge.start()
    assert (DEVICE, device_key(DevState.READY, DevEvent.REQUEST_DIRTYING)) in recorder.cells
    assert (DEVICE, device_key(DevState.DIRTY_REQ, DevEvent.DRIVER_DIRTYING)) not in recorder.cells
    assert (Dimension.SLOT_POSITIONS.value, "last") in recorder.cells
    assert (Dimension.SLOT_POSITIONS.value, "first") not in recorder.cells  # empty slots fanned out to are no use
    _report(bridge, 7, DriverReport.DIRTYING)
    assert (DEVICE, device_key(DevState.DIRTY_REQ, DevEvent.DRIVER_DIRTYING)) in recorder.cells
    assert (MIGRATION, migration_key(MigState.PREPARE, MigEvent.ALL_DIRTYING)) in recorder.cells


def test_stale_answers_cancels_faults_and_late_answers_are_crossed_with_their_phase(recorder: CoverageRecorder) -> None:
    bridge, clock = _reference_bridge()
    bridge.hot_add(0, _Function("vf0"))
    _report(bridge, 0, DriverReport.READY)
    bridge.start()
    bridge.cancel(MigReason.CANCELLED)
    _report(bridge, 0, DriverReport.DIRTYING)  # the answer crossed the cancellation: ignored
    assert (PHASES, phase_key(MigState.PREPARE, Perturbation.CANCEL)) in recorder.cells
    assert (PHASES, phase_key(MigState.PREPARE, Perturbation.STALE_REPORT)) in recorder.cells
    bridge.start()
    clock.advance(ms(21))
    _report(bridge, 0, DriverReport.DIRTYING)  # 21 ms into a 20 ms deadline
    assert (PHASES, phase_key(MigState.PREPARE, Perturbation.ACK_AFTER_DEADLINE)) in recorder.cells
    bridge.request_pause()
    clock.advance(ms(16))
    _report(bridge, 0, DriverReport.PAUSED)  # 16 ms into 20: the last quarter
    assert (PHASES, phase_key(MigState.PAUSING, Perturbation.ACK_JUST_BEFORE_DEADLINE)) in recorder.cells
    bridge.device_error(0)
    assert (PHASES, phase_key(MigState.STOPPED, Perturbation.FAULT)) in recorder.cells
    assert (Dimension.SIDES.value, "source") in recorder.cells
    assert (Dimension.SIDES.value, "destination") not in recorder.cells


def test_a_rejected_report_is_a_cell_only_where_the_table_has_no_row(recorder: CoverageRecorder) -> None:
    bridge, _ = _reference_bridge()
    _report(bridge, 3, DriverReport.PAUSED)  # an empty slot: no row, rejected
    assert (DEVICE, device_key(DevState.EMPTY, DevEvent.DRIVER_PAUSED)) in recorder.cells
    assert (Dimension.SLOT_POSITIONS.value, "middle") in recorder.cells


class _Model:
    """What bridge_step reads of the bridge suite's model."""

    def __init__(self, data: bytes, effects: Effects) -> None:
        self.num_slots = 1
        self.data = bytearray(data)
        self.step_effects = effects


def _capability(mig: MigState, dev: DevState, drv: DriverReport) -> bytes:
    data = bytearray(0x24)
    data[0x18] = mig
    data[0x20] = dev
    data[0x21] = drv
    return bytes(data)


def test_a_bridge_under_test_is_credited_only_with_the_state_it_presents(recorder: CoverageRecorder) -> None:
    before = _capability(MigState.IDLE, DevState.READY, DriverReport.READY)
    after = _capability(MigState.PREPARE, DevState.DIRTY_REQ, DriverReport.READY)
    effects = Effects(
        (
            MigrationTransition(MigEvent.START, MigState.IDLE, MigState.PREPARE),
            DeviceTransition(0, DevEvent.REQUEST_DIRTYING, DevState.READY, DevState.DIRTY_REQ),
        )
    )
    model = _Model(after, effects)
    spec_coverage.bridge_step(model, before, range(0), before)  # the bridge did not move: nothing is credited
    assert not recorder.cells
    spec_coverage.bridge_step(model, before, range(0x14, 0x16), after)
    assert (MIGRATION, migration_key(MigState.IDLE, MigEvent.START)) in recorder.cells
    assert (DEVICE, device_key(DevState.READY, DevEvent.REQUEST_DIRTYING)) in recorder.cells
    lanes = {key for dimension, key in recorder.cells if dimension == Dimension.BYTE_LANES.value}
    assert lanes == {"control byte 0 by 2-byte write (RW+RsvdP)", "control byte 1 by 2-byte write (RsvdP)"}


def test_a_bridge_that_never_settles_pausing_never_gets_all_paused(tmp_path: Path) -> None:
    key = migration_key(MigState.PAUSING, MigEvent.ALL_PAUSED)
    faulty = _cli_coverage(tmp_path, "bridge", "conformance.catalogue.bridge_faults:no_all_paused")
    assert key in faulty.dimension(Dimension.MIGRATION_TABLE).missing
    assert key in _cli_coverage(tmp_path, "bridge").dimension(Dimension.MIGRATION_TABLE).covered


# --- merging -----------------------------------------------------------------------------------


def test_the_supervisor_takes_the_workers_cells_and_keeps_its_own() -> None:
    plan = plan_run(Target.BRIDGE, seed=1)
    worker, supervisor = RunState.start(plan), RunState.start(plan)
    assert worker.coverage is not None
    assert supervisor.coverage is not None
    supervisor.coverage.add(Dimension.SIDES, "source")
    worker.coverage.add(Dimension.SIDES, "destination")
    messages.absorb(supervisor, messages.snapshot(worker))
    assert supervisor.coverage.cells == {(Dimension.SIDES.value, "source"), (Dimension.SIDES.value, "destination")}


def _report_with(cells: set[tuple[str, str]], seed: int) -> RunReport:
    return RunReport(
        Target.DEVICE, "m:f", "default", seed, [], 1.0, 10, coverage=SpecCoverage(Target.DEVICE, frozenset(cells))
    )


def test_shards_merge_by_union_and_old_reports_have_none() -> None:
    first = _report_with({(Dimension.SIDES.value, "source")}, 1)
    second = _report_with({(Dimension.SIDES.value, "destination")}, 1001)
    merged = merge_reports({0: first, 1: second})
    assert merged.coverage is not None
    assert merged.coverage.dimension(Dimension.SIDES).complete
    older = report_json(first)
    older.update({"$schema": "urn:vfmig:conformance-report:v2", "schema_version": 2})
    del older["coverage"]
    assert report_from_json(older).coverage is None
    assert merge_reports({0: report_from_json(older), 1: second}).coverage == second.coverage


# --- in every report ---------------------------------------------------------------------------


def test_reports_carry_the_coverage_and_validate(tmp_path: Path) -> None:
    cells = {(DEVICE, device_key(DevState.EMPTY, DevEvent.HOT_ADD)), (Dimension.SLOT_POSITIONS.value, "first")}
    report = _report_with(cells, 1)
    document = report_json(report)
    validate_report_json(document)
    device = next(entry for entry in document["coverage"]["dimensions"] if entry["dimension"] == DEVICE)
    assert device["covered"] == [device_key(DevState.EMPTY, DevEvent.HOT_ADD)]
    assert device["reachable"] == len(device["covered"]) + len(device["missing"])
    assert all(entry["reason"] for entry in device["unreachable"])
    lanes = next(entry for entry in document["coverage"]["dimensions"] if entry["dimension"] == "byte lanes")
    assert lanes["not_applicable"]
    assert not lanes["missing"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert read_json(path).coverage == report.coverage
    text = summary_text(report)
    assert "spec coverage" in text
    assert "device table 1/" in text
    assert "byte lanes not applicable" in text
    markdown = report_markdown(report)
    assert "## Coverage of the spec's space" in markdown
    assert f"- {device_key(DevState.DIRTY_REQ, DevEvent.CANCEL)}" in markdown  # listed as not exercised


# --- what the default profile reaches today on the reference ------------------------------------


def _cli_coverage(tmp_path: Path, target: str, implementation: str | None = None) -> SpecCoverage:
    """The coverage ``vfmig conformance --target TARGET --seed 1`` (default profile, fresh database) reports.

    In a process of its own, as a vendor runs it: the figures are those of the command, whatever ran before.
    """
    name = f"{target}-{(implementation or 'reference').rpartition(':')[2]}"
    command = [sys.executable, "-m", "conformance.cli", "conformance", "--target", target, "--seed", "1"]
    command += ["--no-progress", "--database", str(tmp_path / f"db-{name}"), "--json", str(tmp_path / f"{name}.json")]
    if implementation is not None:
        command += ["--impl", implementation]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, check=False, timeout=900)
    assert finished.returncode in {0, 1}, finished.stderr  # conformant or not: a report either way
    coverage = read_json(tmp_path / f"{name}.json").coverage
    assert coverage is not None
    return coverage


KNOWN_GAPS: dict[str, dict[str, frozenset[str]]] = {
    "device": {
        "device table": frozenset(
            {
                "DIRTYING x DEVICE_ERROR",
                "DIRTYING x SURPRISE_REMOVAL",
                "DIRTY_REQ x REQUEST_PAUSE",
                "DIRTY_REQ x SURPRISE_REMOVAL",
                "EMPTY x DRIVER_DETACHED",
                "EMPTY x DRIVER_DIRTYING",
                "EMPTY x DRIVER_PAUSED",
                "EMPTY x DRIVER_READY",
                "ERROR x DRIVER_DETACHED",
                "ERROR x DRIVER_DIRTYING",
                "ERROR x DRIVER_PAUSED",
                "ERROR x DRIVER_READY",
                "ERROR x SURPRISE_REMOVAL",
                "PAUSED x DEVICE_ERROR",
                "PAUSED x DRIVER_DETACHED",
                "PAUSED x SURPRISE_REMOVAL",
                "PAUSE_REQ x CANCEL",
                "PAUSE_REQ x DEVICE_ERROR",
                "PAUSE_REQ x DRIVER_DETACHED",
                "PAUSE_REQ x DRIVER_DIRTYING",
                "PAUSE_REQ x SURPRISE_REMOVAL",
                "READY x DRIVER_DIRTYING",
                "READY x SURPRISE_REMOVAL",
                "REINIT_REQ x DEVICE_ERROR",
                "REINIT_REQ x DRIVER_DIRTYING",
                "REINIT_REQ x DRIVER_PAUSED",
                "REINIT_REQ x SURPRISE_REMOVAL",
                "RESUME_REQ x DEVICE_ERROR",
                "RESUME_REQ x DRIVER_DETACHED",
                "RESUME_REQ x DRIVER_DIRTYING",
                "RESUME_REQ x DRIVER_PAUSED",
                "RESUME_REQ x GROUP_RESET",
                "RESUME_REQ x SURPRISE_REMOVAL",
                "UNBOUND x DRIVER_DETACHED",
                "UNBOUND x DRIVER_DIRTYING",
                "UNBOUND x DRIVER_PAUSED",
                "UNBOUND x SURPRISE_REMOVAL",
            }
        ),
        "migration table": frozenset(
            {
                "ARRIVED x GROUP_RESET",
                "PAUSING x CANCEL",
                "RESUMING x GROUP_RESET",
            }
        ),
        "slot positions": frozenset(
            {
                "last",
            }
        ),
        "slot numbers": frozenset(
            {
                "3",
                "4",
                "5",
                "6",
                "7",
            }
        ),
        "phases x perturbations": frozenset(
            {
                "ARRIVED x fault",
                "ARRIVED x stale report",
                "ARRIVED x unbind",
                "PAUSING x cancel",
                "PAUSING x fault",
                "PAUSING x stale report",
                "PAUSING x unbind",
                "PRECOPY x stale report",
                "PREPARE x stale report",
                "RESUMING x fault",
                "RESUMING x stale report",
                "RESUMING x unbind",
                "STOPPED x fault",
            }
        ),
    },
    "bridge": {
        "device table": frozenset(
            {
                "PAUSED x CANCEL",
                "RESUME_REQ x GROUP_RESET",
            }
        ),
        "phases x perturbations": frozenset(
            {
                "PREPARE x fault",
            }
        ),
    },
    "hypervisor": {
        "device table": frozenset(
            {
                "DIRTYING x DRIVER_DETACHED",
                "DIRTYING x DRIVER_DIRTYING",
                "DIRTYING x DRIVER_PAUSED",
                "DIRTYING x DRIVER_READY",
                "DIRTY_REQ x DEVICE_ERROR",
                "DIRTY_REQ x DRIVER_DETACHED",
                "DIRTY_REQ x DRIVER_PAUSED",
                "DIRTY_REQ x REQUEST_PAUSE",
                "EMPTY x DRIVER_DETACHED",
                "EMPTY x DRIVER_DIRTYING",
                "EMPTY x DRIVER_PAUSED",
                "EMPTY x DRIVER_READY",
                "ERROR x DRIVER_DETACHED",
                "ERROR x DRIVER_DIRTYING",
                "ERROR x DRIVER_PAUSED",
                "ERROR x DRIVER_READY",
                "ERROR x SURPRISE_REMOVAL",
                "PAUSED x DRIVER_DETACHED",
                "PAUSED x DRIVER_DIRTYING",
                "PAUSED x DRIVER_PAUSED",
                "PAUSED x DRIVER_READY",
                "PAUSED x SURPRISE_REMOVAL",
                "PAUSE_REQ x DRIVER_DETACHED",
                "PAUSE_REQ x DRIVER_DIRTYING",
                "PAUSE_REQ x DRIVER_READY",
                "PAUSE_REQ x SURPRISE_REMOVAL",
                "READY x DRIVER_DIRTYING",
                "READY x DRIVER_READY",
                "REINIT_REQ x DRIVER_DETACHED",
                "REINIT_REQ x DRIVER_DIRTYING",
                "REINIT_REQ x GROUP_RESET",
                "RESUME_REQ x DEVICE_ERROR",
                "RESUME_REQ x DRIVER_DETACHED",
                "RESUME_REQ x DRIVER_DIRTYING",
                "UNBOUND x DRIVER_DIRTYING",
                "UNBOUND x SURPRISE_REMOVAL",
            }
        ),
        "migration table": frozenset(
            {
                "ARRIVED x GROUP_RESET",
            }
        ),
        "slot numbers": frozenset(
            {
                "3",
                "5",
                "6",
            }
        ),
        "phases x perturbations": frozenset(
            {
                "ARRIVED x fault",
                "ARRIVED x stale report",
                "ARRIVED x unbind",
                "PAUSING x ack after deadline",
                "PAUSING x ack just before deadline",
                "PAUSING x stale report",
                "PAUSING x unbind",
                "PRECOPY x ack after deadline",
                "PRECOPY x ack just before deadline",
                "PRECOPY x stale report",
                "PRECOPY x unbind",
                "PREPARE x ack after deadline",
                "PREPARE x stale report",
                "PREPARE x unbind",
                "RESUMING x ack after deadline",
                "RESUMING x unbind",
            }
        ),
    },
}
"""Per target and dimension, the reachable cells the default profile, seed 1, does not exercise on the reference
today (measured with ``vfmig conformance --target T --seed 1``).  A cell leaves this list when a suite reaches it;
a cell that is missing and not listed is a regression of the suite's reach."""


@pytest.mark.parametrize("target", [target.value for target in Target])
def test_the_default_profile_reaches_what_it_reached(tmp_path: Path, target: str) -> None:
    coverage = _cli_coverage(tmp_path, target)
    known = KNOWN_GAPS.get(target, {})
    for summary in coverage.summary():
        assert not summary.contradicted, f"{summary.dimension.value}: exercised cells listed unreachable"
        newly_missing = set(summary.missing) - known.get(summary.dimension.value, frozenset())
        assert not newly_missing, (
            f"{target} {summary.dimension.value}: no longer reached: {sorted(newly_missing)} (if a suite change moved "
            "its reach on purpose, update KNOWN_GAPS from the JSON report's coverage)"
        )


def test_a_restored_bridge_is_the_destination_even_in_stopped() -> None:
    recorder = CoverageRecorder(Target.HYPERVISOR)
    tracker = spec_coverage.BridgeTracker(recorder, num_slots=8)
    tracker.restored(MigState.STOPPED)
    tracker.device(DeviceTransition(2, DevEvent.DEVICE_ERROR, DevState.PAUSED, DevState.ERROR))
    tracker.migration(MigEvent.ARRIVE, MigState.STOPPED, MigState.ARRIVED)
    assert {key for dimension, key in recorder.cells if dimension == Dimension.SIDES.value} == {"destination"}
    assert (PHASES, phase_key(MigState.STOPPED, Perturbation.FAULT)) in recorder.cells
