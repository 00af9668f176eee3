"""CI runs a seeded share of the catalogue (``--sample``); the whole catalogue runs as ``tox -e detection``."""

from __future__ import annotations

import pytest

from conformance import detection
from conformance.catalogue import Fault, all_faults
from conformance.verdicts import RunReport, Target

FAULTS = all_faults()


def _per_target(faults: list[Fault]) -> dict[Target, int]:
    return {target: sum(fault.target is target for fault in faults) for target in Target}


def test_a_sample_takes_the_same_share_of_every_target() -> None:
    sample = detection.sample_faults(FAULTS, 0.25, seed="abc")
    everything = _per_target(FAULTS)
    for target, count in _per_target(sample).items():
        assert count == max(1, -(-everything[target] // 4)), target


def test_the_same_seed_takes_the_same_faults_and_another_seed_others() -> None:
    first = detection.sample_faults(FAULTS, 0.25, seed="commit-1")
    assert detection.sample_faults(FAULTS, 0.25, seed="commit-1") == first
    assert detection.sample_faults(FAULTS, 0.25, seed="commit-2") != first


def test_a_sample_keeps_the_catalogue_order_and_the_whole_is_everything() -> None:
    sample = detection.sample_faults(FAULTS, 0.5, seed="x")
    assert sample == [fault for fault in FAULTS if fault in sample]
    assert detection.sample_faults(FAULTS, 1.0, seed="x") == FAULTS


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_a_fraction_outside_zero_to_one_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="--sample takes a fraction"):
        detection.sample_faults(FAULTS, fraction, seed="x")


def test_main_runs_only_the_sample_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[str] = []

    def fake_detect(fault: Fault, **_: object) -> detection.Detection:
        ran.append(fault.name)
        report = RunReport(fault.target, fault.factory, "default", 1, results=[], seconds=0.1, steps=2)
        return detection.Detection(fault, report, detected=True, seconds=0.1, steps=2, found=())

    monkeypatch.setattr(detection, "detect", fake_detect)
    assert detection.main(["--target", "bridge", "--sample", "0.2", "--sample-seed", "s"]) == 0
    expected = detection.sample_faults([f for f in FAULTS if f.target is Target.BRIDGE], 0.2, seed="s")
    assert ran == [fault.name for fault in expected]
    out = capsys.readouterr().out
    assert f"sampled {len(expected)} of {_per_target(FAULTS)[Target.BRIDGE]} faults" in out
    assert f"detected {len(expected)}/{len(expected)}" in out
