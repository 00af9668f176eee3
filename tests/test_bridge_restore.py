"""The bridge suite hands every migration over to a new bridge restored from the source, and resets bridges.

The suite issues ARRIVE on a destination bridge that it created and restored from the source's
``config_space()`` (spec §4.3.5), so a bridge's restore path and its ``GENERATION`` across migrations are judged;
the host's conventional reset of a bridge is judged against the reset value (VFM-CAP-006).  Each variant below
is the reference bridge with one such fault; the suite must find it under the requirement it breaks, and the
reference must stay conformant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from conformance.runner import run
from conformance.verdicts import RunStatus, Target, Verdict
from reference_impl.bridge import MigrationBridge, SlotFunction
from reference_impl.events import EventBus
from vfmig_proto.codec import find_field, store_field
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.states import MigState


class _RestoresWith(MigrationBridge):
    """The reference bridge, except that once restored it presents another value in one field."""

    path = ""
    value = 0

    def restore(self, config: bytes, functions: Sequence[SlotFunction | None], *, dirty_page_shift: int) -> None:
        super().restore(config, functions, dirty_page_shift=dirty_page_shift)
        store_field(self.config, find_field(self.num_slots, self.path), self.value, self.cap)


class _RestartsGeneration(_RestoresWith):
    """Starts GENERATION again at 0 on the destination."""

    path = "generation"


class _ComesUpIdle(_RestoresWith):
    """Presents MIG_STATE IDLE on the destination instead of the restored STOPPED."""

    path = "mig_state"
    value = int(MigState.IDLE)


class _ResetKeepsState(MigrationBridge):
    """Announces a conventional reset but keeps its registers."""

    def conventional_reset(self) -> None:
        for observer in tuple(self.observers):
            observer.bridge_stepped(self, "conventional_reset")


_CALLS: Counter[str] = Counter()


class _Counting(MigrationBridge):
    """The reference bridge, counting the restores and conventional resets the suite asks of it."""

    def restore(self, config: bytes, functions: Sequence[SlotFunction | None], *, dirty_page_shift: int) -> None:
        _CALLS["restore"] += 1
        super().restore(config, functions, dirty_page_shift=dirty_page_shift)

    def conventional_reset(self) -> None:
        _CALLS["conventional_reset"] += 1
        super().conventional_reset()


class _Factory:
    def __init__(self, bridge_class: type[MigrationBridge]) -> None:
        self.bridge_class = bridge_class

    def create_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        return self.bridge_class(bus, params, name=name)


def restarts_generation() -> _Factory:
    return _Factory(_RestartsGeneration)


def comes_up_idle() -> _Factory:
    return _Factory(_ComesUpIdle)


def reset_keeps_state() -> _Factory:
    return _Factory(_ResetKeepsState)


def counting() -> _Factory:
    return _Factory(_Counting)


@pytest.mark.parametrize(
    ("factory", "requirement"),
    [
        ("restarts_generation", "VFM-MIG-002"),
        ("comes_up_idle", "VFM-SEC-001"),
        ("reset_keeps_state", "VFM-CAP-006"),
    ],
)
def test_a_fault_of_restore_or_reset_is_found_under_the_requirement_it_breaks(factory: str, requirement: str) -> None:
    report = run(Target.BRIDGE, f"{__name__}:{factory}", seed=1, requirements=[requirement])
    (result,) = report.results
    assert result.verdict is Verdict.FAIL, result
    assert report.status is RunStatus.NOT_CONFORMANT


def test_the_reference_bridge_is_restored_and_reset_by_the_suite_and_stays_conformant() -> None:
    _CALLS.clear()
    report = run(Target.BRIDGE, f"{__name__}:counting", seed=1)
    assert report.status is RunStatus.CONFORMANT, [r for r in report.results if r.verdict is not Verdict.PASS]
    assert _CALLS["restore"] > 0
    assert _CALLS["conventional_reset"] > 0
