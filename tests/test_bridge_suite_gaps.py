"""The classes of faults the bridge suite used to miss (issue 12, item 3), each with one small faulty bridge.

Each bridge below is a variation of the reference that a vendor could plausibly write; the suite before issue 12
passed the first three (default profile, seeds 1 to 3) and blamed the byte-lane one on other requirements only
(VFM-DEV-002, VFM-DEV-010, VFM-DEV-011, never VFM-ACC-001); the suite now finds each under the requirement it
breaks.  They are proofs for the suite's generators, not catalogue entries: the catalogue
(:mod:`conformance.catalogue.bridge_faults`) is where faults are registered for the detection campaign.

* slots across the whole bridge: a bridge that handles the reports of its first eight slots only;
* a stale answer after CANCEL: a bridge that takes a PAUSED in RESUME_REQ as a pause;
* an unbind in the middle of a migration: a bridge that keeps a slot in PAUSE_REQ when its driver unbinds;
* byte lanes: a bridge that applies a one-byte write to the register's first byte's mask;
* repeated migrations: a destination that keeps two bits of GENERATION.  The suite before issue 12 found this one
  too (the restore and GENERATION have been judged at each migration since ``_migrate`` came in); it stays as a
  check that the sweep and swarm testing did not lose it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pytest

from conformance.runner import run
from conformance.suites.bridge import BridgeSuite
from conformance.suites.bridge.sweep import DRV_STATE_VALUES, SWEEP_SLOTS, Abstract, after, next_move, plan
from conformance.suites.bridge.world import SLOT_LAYOUTS, SWARM_RULES, occupied_slots
from conformance.verdicts import Verdict
from reference_impl.bridge import BridgeStep, MigrationBridge, SlotFunction
from reference_impl.events import EventBus
from vfmig_proto.engine import Judgement, ReportVerdict
from vfmig_proto.layout import VFM_MAX_SLOTS, CapabilityParams
from vfmig_proto.states import DevState, DriverReport, MigState, Target


@dataclass(frozen=True)
class _Bridges:
    """A ``bridge`` implementation making bridges of one (faulty) class."""

    bridge_class: type[MigrationBridge]

    def create_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        return self.bridge_class(bus, params, name=name)


GENERATION_BITS_KEPT = 0b11
"""What the last faulty bridge's destination keeps of GENERATION."""
HARDWARE_SLOTS = 8
"""The size of the slot table the first faulty bridge was written for."""


class EightSlotReports(MigrationBridge):
    """Its report handling loops over a table of eight slots: the reports of slots 8 and up are never processed."""

    def on_driver_report(self, slot: int, old_report: int, step: BridgeStep) -> None:
        if slot < HARDWARE_SLOTS:
            super().on_driver_report(slot, old_report, step)


class StalePausedAccepted(MigrationBridge):
    """A PAUSED report that crossed a CANCEL (the slot is in RESUME_REQ) is taken as a pause: the slot goes PAUSED."""

    def apply_report(self, verdict: ReportVerdict, step: BridgeStep) -> None:
        super().apply_report(verdict, step)
        stale = verdict.state is DevState.RESUME_REQ and verdict.written == DriverReport.PAUSED
        if stale and verdict.judgement is Judgement.IGNORE:
            self.set_field(f"device[{verdict.slot}].dev_state", DevState.PAUSED)


class UnbindIgnoredInPause(MigrationBridge):
    """A driver that unbinds while its slot is in PAUSE_REQ is ignored: the slot waits for a PAUSED that never
    comes."""

    def judge_report(self, slot: int, old_report: int, written: int, bus_master: bool) -> ReportVerdict:
        verdict = super().judge_report(slot, old_report, written, bus_master)
        unbind = verdict.state is DevState.PAUSE_REQ and written == DriverReport.NONE
        if unbind and verdict.judgement is Judgement.ACCEPT:
            return replace(verdict, judgement=Judgement.IGNORE, reason="an unbind in PAUSE_REQ is ignored")
        return verdict


class FirstLaneMask(MigrationBridge):
    """A one-byte write is masked with the mask of its register's first byte (the register's, not the lane's)."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        if width != 1 or not self.cap < offset < self.cap + len(self.capability_bytes()) or offset % 2 == 0:
            super().config_write(offset, width, value)
            return
        first = offset - 1
        saved = self.wmask
        wmask = bytearray(saved)
        wmask[offset] = saved[first]
        self.wmask = bytes(wmask)
        try:
            super().config_write(offset, width, value)
        finally:
            self.wmask = saved


class GenerationTwoBits(MigrationBridge):
    """The destination keeps the two low bits of the source's GENERATION (a two-bit copy): from the fourth
    migration on, GENERATION goes back on the destination."""

    def restore(self, config: bytes, functions: Sequence[SlotFunction | None], *, dirty_page_shift: int) -> None:
        super().restore(config, functions, dirty_page_shift=dirty_page_shift)
        self.set_field("generation", self.generation & GENERATION_BITS_KEPT)


def _factory(bridge_class: type[MigrationBridge]) -> Callable[[], _Bridges]:
    return lambda: _Bridges(bridge_class)


eight_slot_reports = _factory(EightSlotReports)
stale_paused_accepted = _factory(StalePausedAccepted)
unbind_ignored_in_pause = _factory(UnbindIgnoredInPause)
first_lane_mask = _factory(FirstLaneMask)
generation_two_bits = _factory(GenerationTwoBits)


@pytest.mark.parametrize(
    ("factory", "requirement"),
    [
        ("eight_slot_reports", "VFM-DEV-002"),
        ("stale_paused_accepted", "VFM-DEV-003"),
        ("unbind_ignored_in_pause", "VFM-DEV-002"),
        ("first_lane_mask", "VFM-ACC-001"),
        ("generation_two_bits", "VFM-MIG-002"),
    ],
)
def test_the_suite_finds_the_fault_under_its_requirement(factory: str, requirement: str) -> None:
    report = run(Target.BRIDGE, f"{__name__}:{factory}", seed=1)
    failed = {result.requirement.id for result in report.results if result.verdict is Verdict.FAIL}
    assert requirement in failed


# ---------------------------------------------------------------------------------------------- the generators


def test_slot_layouts_reach_the_last_slot_of_the_largest_bridge() -> None:
    last = VFM_MAX_SLOTS - 1
    reached = {
        slot for layout in SLOT_LAYOUTS for slot, on in enumerate(occupied_slots(layout, VFM_MAX_SLOTS, [True])) if on
    }
    assert {0, VFM_MAX_SLOTS // 2, last} <= reached
    assert occupied_slots("last", VFM_MAX_SLOTS, [False]) == [False] * last + [True]


def test_the_sweep_covers_every_pair_of_the_tables() -> None:
    the_plan = plan()
    reports = {(key[1], key[2]) for key in the_plan.keys if key[0] == "report"}
    # every phase of a migration, with a slot answering, unbinding or answering a withdrawn request
    assert (MigState.PAUSING, DevState.PAUSE_REQ) in reports
    assert (MigState.RESUMING, DevState.RESUME_REQ) in reports
    assert (MigState.PREPARE, DevState.DIRTYING) in reports
    assert (MigState.ARRIVED, DevState.REINIT_REQ) in reports
    values = {key[3] for key in the_plan.keys if key[0] == "report"}
    assert values == set(DRV_STATE_VALUES)
    state: Abstract = (MigState.IDLE, (DevState.EMPTY,) * SWEEP_SLOTS)
    covered: set[tuple[object, ...]] = set()
    while (move := next_move(state, covered, the_plan)) is not None:
        covered.add(move.key(state))
        state = after(state, move)
    assert covered == the_plan.keys


def test_every_rule_swarm_testing_may_switch_off_is_a_rule_of_the_suite() -> None:
    rules = BridgeSuite.rule_names()
    assert set(SWARM_RULES) <= set(rules)
    assert "bus_master" not in SWARM_RULES  # one rule stays valid whatever the swarm switched off
