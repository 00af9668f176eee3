"""``vfmig simulate``: its JSON, its faults, its trace, its errors; and the units it reads."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from conformance.cli import EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE, main
from reference_impl import report
from reference_impl.clock import NS_PER_MS, NS_PER_S, NS_PER_US
from reference_impl.events import EventKind
from reference_impl.hypervisor import MigrationOutcome
from reference_impl.scenario import ScenarioFault
from reference_impl.units import UnitError, parse_duration, parse_rate, parse_size
from vfmig_proto.states import MigEvent, MigState
from vfmig_proto.transitions import migration_transition

SMALL = ("--memory", "64MiB")
"""A guest small enough that a run takes milliseconds."""


def _documented() -> list[tuple[tuple[str, ...], set[str]]]:
    """The JSON keys that ``reference_impl.report``'s docstring documents: (terms, names in their description)."""
    assert report.__doc__ is not None
    entries: list[tuple[tuple[str, ...], set[str]]] = []
    for line in report.__doc__.splitlines():
        names = set(re.findall(r"``(\w+)``", line))
        if line.startswith("``"):
            entries.append((tuple(re.findall(r"``(\w+)``", line)), set()))
        elif line.startswith("    ") and entries:
            entries[-1][1].update(names)
    return entries


DOCUMENTED = _documented()
TOP_LEVEL = [key for terms, _ in DOCUMENTED for key in terms]
DESCRIBED = {key: names for terms, names in DOCUMENTED for key in terms}
PER_MIGRATION = TOP_LEVEL[: TOP_LEVEL.index("migrations")]
"""``migrations``: "one object per migration with every field above"."""


def _simulate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["simulate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _simulate_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code, out, err = _simulate(capsys, *SMALL, "--json", *args)
    assert code in (EXIT_OK, EXIT_CHECK_FAILED), err
    document = json.loads(out)
    assert isinstance(document, dict)
    return code, document


def test_the_docstring_documents_the_keys() -> None:
    assert {"outcome", "lost_pages", "devices", "rounds", "migrations", "version"} <= set(TOP_LEVEL)
    assert {"slot", "state", "migrated_flag"} <= DESCRIBED["devices"]
    assert {"round", "pages", "dirty_at_end"} <= DESCRIBED["rounds"]


def test_json_of_a_small_guest(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = _simulate_json(capsys)
    assert code == EXIT_OK
    assert document["outcome"] == MigrationOutcome.COMPLETED.value
    assert document["reason"] == "completed"
    assert document["lost_pages"] == 0
    assert document["invariant_violations"] == []
    assert set(document) == set(TOP_LEVEL) - {"migrations"}, "the documented keys; migrations only with several"
    devices = document["devices"]
    assert isinstance(devices, list)
    assert len(devices) == 2, "--vfs defaults to 2"
    for device in devices:
        assert set(device) == DESCRIBED["devices"]
        assert device["reset_on_destination"] is True, "reset on arrival"
    rounds = document["rounds"]
    assert isinstance(rounds, list)
    assert rounds, "a completed migration has at least one pre-copy round"
    for item in rounds:
        assert set(item) == DESCRIBED["rounds"]
    assert document["precopy_rounds"] == len(rounds)


@pytest.mark.parametrize("fault", list(ScenarioFault), ids=lambda fault: fault.value)
def test_each_fault_ends_as_the_spec_says(capsys: pytest.CaptureFixture[str], fault: ScenarioFault) -> None:
    code, document = _simulate_json(capsys, "--fault", fault.value)
    outcome, reason = fault.expected
    assert (document["outcome"], document["reason"]) == (outcome.value, reason.name.lower())
    devices = document["devices"]
    assert isinstance(devices, list)
    if outcome is not MigrationOutcome.COMPLETED:
        assert all(device["reset_on_destination"] is None for device in devices), "null unless completed"
    lost = document["lost_pages"]
    assert isinstance(lost, int)
    if fault is ScenarioFault.NO_DIRTYING:
        assert lost > 0, "a driver that never dirties loses pages, and the run must say so"
        assert code == EXIT_CHECK_FAILED, "exit 1 when an invariant broke"
        assert document["invariant_violations"]
    else:
        assert lost == 0, "no lost write"
        assert code == EXIT_OK
        assert document["invariant_violations"] == []


def test_repeated_migrations_go_back_and_forth(capsys: pytest.CaptureFixture[str]) -> None:
    code, document = _simulate_json(capsys, "--migrations", "3")
    assert code == EXIT_OK
    migrations = document["migrations"]
    assert isinstance(migrations, list)
    assert len(migrations) == 3
    for migration in migrations:
        assert set(PER_MIGRATION) <= set(migration), "every field above, per migration"
        assert migration["outcome"] == MigrationOutcome.COMPLETED.value
        assert migration["source"] != migration["destination"]
    for earlier, later in itertools.pairwise(migrations):
        assert later["source"] == earlier["destination"], "the guest leaves from where it arrived"
        assert later["destination"] == earlier["source"]
    assert [migration["generation"] for migration in migrations] == [1, 2, 3], "VFM-MIG-002: one per START"
    assert document["lost_pages"] == sum(migration["lost_pages"] for migration in migrations) == 0


def test_trace_is_json_lines_in_time_order(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    code, _ = _simulate_json(capsys, "--trace", str(trace))
    assert code == EXIT_OK
    kinds = {kind.value for kind in EventKind}
    lines = trace.read_text(encoding="utf-8").splitlines()
    assert lines
    last = 0
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        event = json.loads(line)
        assert event["kind"] in kinds, f"line {number}: unknown kind {event['kind']!r}"
        assert event["time_ns"] >= last, f"line {number}: time goes backwards"
        last = event["time_ns"]
        seen.add(event["kind"])
        if event["kind"] == EventKind.MIG_TRANSITION.value and event["event"] in MigEvent.__members__:
            old, new = MigState[event["old"]], MigState[event["new"]]
            assert migration_transition(old, MigEvent[event["event"]]) is new, f"line {number}: {line}"
    assert {EventKind.MIG_TRANSITION.value, EventKind.DEV_TRANSITION.value, EventKind.PAGE_SEND.value} <= seen


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (("--memory", "4XB"), "4XB"),
        (("--vfs", "0"), "--vfs"),
        (("--dma-rate", "fast"), "fast"),
        (("--downtime-limit", "soon"), "soon"),
        (("--migrations", "0"), "--migrations"),
    ],
)
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], mentions: str) -> None:
    code, out, err = _simulate(capsys, *args)
    assert code == EXIT_USAGE
    assert out == ""
    assert err.startswith("vfmig simulate: ")
    assert mentions in err


def test_an_unknown_fault_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["simulate", "--fault", "meteor-strike"])
    assert caught.value.code == EXIT_USAGE
    assert "meteor-strike" in capsys.readouterr().err


def test_default_run_reads_well_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _simulate(capsys)
    assert code == EXIT_OK
    assert "lost pages: 0" in out
    assert "overall: completed (completed)" in out
    assert "INVARIANT VIOLATIONS" not in out


# ---------------------------------------------------------------------------------------------------------------
# reference_impl.units


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("4GiB", 4 << 30),
        ("512MiB", 512 << 20),
        ("64MiB", 64 << 20),
        ("4096", 4096),
        ("4G", 4 << 30),
        ("4g", 4 << 30),
        ("1.5G", 3 << 29),
        ("512M", 512 << 20),
        ("8K", 8 << 10),
        ("1T", 1 << 40),
    ],
)
def test_parse_size(text: str, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10Gb/s", 1.25e9),
        ("25Gb/s", 3.125e9),
        ("1Gb/s", 125_000_000),
        ("128MiB/s", 128 << 20),
        ("1GiB/s", 1 << 30),
        ("125000000", 125_000_000),
        ("0", 0),
    ],
)
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("300ms", 300 * NS_PER_MS),
        ("2s", 2 * NS_PER_S),
        ("50us", 50 * NS_PER_US),
        ("0.1ms", 100 * NS_PER_US),
        ("600s", 600 * NS_PER_S),
        ("300", 300 * NS_PER_MS),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    "text", ["", "4XB", "GiB", "four GiB", "-1GiB", "0", "0.5", "4 GiB/s", "5GB", "1.5GB", "4kB", "1e9", "4Gb"]
)
def test_parse_size_refuses_garbage(text: str) -> None:
    with pytest.raises(UnitError):
        parse_size(text)


@pytest.mark.parametrize("text", ["", "fast", "10Gb/h", "1e", "-5MiB/s x", "-1MiB/s", "1e999"])
def test_parse_rate_refuses_garbage(text: str) -> None:
    with pytest.raises(UnitError):
        parse_rate(text)


@pytest.mark.parametrize("text", ["", "soon", "5 parsecs", "-1ms", "1h"])
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(UnitError):
        parse_duration(text)
