"""What ``vfmig simulate`` reports says what happened: non-convergence, unfinished rounds, every migration drawn."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_helpers import SMALL, run_cli

from conformance.cli import EXIT_OK, simulation_config
from conformance.progress import SimulationProgress
from reference_impl.clock import NS_PER_S, SimClock
from reference_impl.convergence import convergence_warning, forecast
from reference_impl.events import EventBus, EventKind

SLOW_LINK = ("--memory", "256MiB", "--vfs", "1", "--bandwidth", "1MiB/s", "--precopy-limit", "1s", "--no-progress")
"""Pre-copy cannot converge (256 s a round, P = 1 s) and stop-and-copy outlasts S: a second of wall time."""

SVG = "{http://www.w3.org/2000/svg}"


def test_a_stop_and_copy_timeout_says_so_instead_of_blaming_the_destination(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, "simulate", *SLOW_LINK)
    assert code == EXIT_OK, "no invariant broke"
    overall = out.splitlines()[-2]
    assert overall.startswith("overall: failed (destination_failure: no handover within the stop-and-copy limit S")
    assert "at 1.0 MiB/s" in overall, "with the numbers"
    assert "pre-copy limit reached (P = 1 s) before convergence" in out
    assert err.startswith("vfmig simulate: warning: pre-copy is not expected to converge")
    assert "expect it to fail as destination_failure" in err
    assert len(err.splitlines()) == 1


def test_the_json_carries_the_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "simulate", *SLOW_LINK, "--json")
    document = json.loads(out)
    assert document["reason"] == "destination_failure", "MIG_REASON is what VFM-DEST-005 prescribes"
    assert document["explanation"].startswith("no handover within the stop-and-copy limit")
    _, out, _ = run_cli(capsys, "simulate", *SMALL, "--json")
    assert json.loads(out)["explanation"] is None


def test_settings_that_converge_get_no_warning(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "simulate", *SMALL, "--no-progress")
    assert code == EXIT_OK
    assert err == ""
    assert forecast(simulation_config([])).converges, "the defaults (4 GiB) converge"


def test_a_terabyte_guest_is_forecast_to_fail_without_running_it() -> None:
    config = simulation_config(["--memory", "1TiB", "--vfs", "1"])
    expected = forecast(config)
    assert not expected.converges
    assert expected.left_bytes > 900 * 2**30, "most of the guest is still to send at the switch-over"
    warning = convergence_warning(config)
    assert warning is not None
    assert "8192 s to send at 128.0 MiB/s" in warning
    assert "S = 120 s" in warning


def test_a_cancel_policy_is_forecast_as_a_cancel() -> None:
    config = simulation_config(["--memory", "1TiB", "--on-precopy-limit", "cancel"])
    warning = convergence_warning(config)
    assert warning is not None
    assert warning.endswith("then the migration is cancelled")


def test_an_unfinished_round_says_how_far_it_got(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "simulate", *SMALL, "--fault", "cancel-precopy")
    assert "..- ms" not in out
    match = re.search(r"round 1: from 0\.0 ms, not finished: (\d+) of 16384 pages sent", out)
    assert match is not None, out
    _, out, _ = run_cli(capsys, "simulate", *SMALL, "--fault", "cancel-precopy", "--json")
    document = json.loads(out)
    assert int(match[1]) == document["rounds"][0]["sent"] == document["pages_sent"] < 16384


def _y_ticks(svg: ET.Element) -> list[int]:
    """The page counts on the y axis."""
    return [
        int(text.text.replace(",", ""))
        for text in svg.iter(f"{SVG}text")
        if text.text and text.get("text-anchor") == "end" and re.fullmatch(r"[\d,]+", text.text)
    ]


def test_the_timeline_of_a_cancelled_precopy_draws_what_was_sent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "cancel.svg"
    run_cli(capsys, "simulate", *SMALL, "--fault", "cancel-precopy", "--timeline", str(path))
    svg = ET.fromstring(path.read_text(encoding="utf-8"))
    (bar,) = (group for group in svg.iter(f"{SVG}g") if group.get("class") == "vfm-round")
    assert bar.get("data-pages") == "16384"
    sent = int(bar.get("data-sent", "0"))
    assert 0 < sent < 16384
    assert max(_y_ticks(svg)) < 16384, "the scale is set by the pages sent, not by the whole guest"


def test_the_timeline_draws_every_migration(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "three.svg"
    code, _, _ = run_cli(capsys, "simulate", *SMALL, "--migrations", "3", "--timeline", str(path))
    assert code == EXIT_OK
    figure = ET.fromstring(path.read_text(encoding="utf-8"))
    panels = [element for element in figure.iter(f"{SVG}svg") if element.get("class") == "vfm-timeline"]
    titles = [panel.findtext(f"{SVG}title") or "" for panel in panels]
    assert [title.split(":")[0] for title in titles] == ["Migration 1", "Migration 2", "Migration 3"]
    assert len({panel.get("y") for panel in panels}) == 3, "one under the other"
    ids = [element.get("id") for element in figure.iter() if element.get("id")]
    assert len(ids) == len(set(ids)), "element IDs stay unique in the document"


def test_the_progress_line_shows_the_simulated_time() -> None:
    bus = EventBus(SimClock())
    with SimulationProgress(bus, 1, enabled=True) as progress:
        bus.publish(EventKind.PAGE_SEND, "hostA", pages=100, bytes=409600, phase="PRECOPY")
        bus.clock.advance(90 * NS_PER_S)
        bus.publish(EventKind.MIGRATION, "hostA", what="stopped")
        assert progress.description().endswith("100 pages sent, simulated 90.0 s")
