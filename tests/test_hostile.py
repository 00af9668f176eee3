"""Hostile implementations: whatever the implementation does, the run ends, the report is written, and it tells the
truth.

Each model in ``tests/hostile/hostile_devices.py`` misbehaves in its functions' ``receive``.  ``vfmig conformance``
runs it in a process of its own, as a vendor would; every run must end in bounded time with exit 1 (2 for an
adapter mistake), print no traceback, and write JSON, JUnit and Markdown reports that do not say CONFORMANT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.reports import validate_junit, validate_report_json

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = Path(__file__).resolve().parent / "hostile"
WALL_LIMIT_S = 240
"""Every run ends well within this (the slowest, hangs that only a kill ends, take about a minute)."""


def _vfmig(
    tmp_path: Path, factory: str, *extra: str, state: Path | None = None, timeout: str = "0.5"
) -> tuple[int, str, str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HOSTILE), str(ROOT)])}
    if state is not None:
        env["VFMIG_HOSTILE_STATE"] = str(state)
    command = [
        sys.executable,
        *("-m", "conformance.cli", "conformance", "--target", "device"),
        *("--impl", f"hostile_devices:{factory}", "--profile", "quick", "--seed", "1", "--timeout", timeout),
        *("--json", str(tmp_path / "report.json"), "--junit", str(tmp_path / "report.xml")),
        *("--markdown", str(tmp_path / "report.md"), "--no-progress"),
        *extra,
    ]
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=WALL_LIMIT_S, check=False
    )
    return result.returncode, result.stdout, result.stderr, time.monotonic() - started


def _reports(tmp_path: Path) -> tuple[dict[str, Any], ET.Element, str]:
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    validate_report_json(document)
    xml_text = (tmp_path / "report.xml").read_text(encoding="utf-8")
    validate_junit(xml_text)
    return document, ET.fromstring(xml_text), (tmp_path / "report.md").read_text(encoding="utf-8")


def _assert_not_conformant_anywhere(tmp_path: Path, status: str) -> dict[str, Any]:
    document, junit, markdown = _reports(tmp_path)
    assert document["status"] == status
    assert document["conformant"] is False
    suite = junit.find("testsuite")
    assert suite is not None
    assert int(suite.get("failures", "0")) + int(suite.get("errors", "0")) > 0
    assert "**Verdict: CONFORMANT**" not in markdown
    assert f"**Verdict: {status.upper()}**" in markdown
    return document


RUNTIME_HOSTILES = {
    "busy_loop": "timeout",
    "sleep": "timeout",
    "hang_in_c": "timeout",
    "swallow_everything": "timeout",
    "keyboard_interrupt": "error",
    "system_exit": "error",
    "os_exit": "error",
    "segfault": "error",
    "allocate_without_end": "error",  # a MemoryError at the address-space limit
    "wrong_type": "error",
    "chatty": "error",
}
"""Each misbehaving model and the verdict its misbehaviour earns."""


@pytest.mark.parametrize("factory", sorted(RUNTIME_HOSTILES))
def test_a_hostile_model_gets_a_true_report_in_bounded_time(tmp_path: Path, factory: str) -> None:
    expected = RUNTIME_HOSTILES[factory]
    timeout = "0.5" if expected == "timeout" else "5"  # a hang costs one timeout a step; the rest needs time to fail
    code, out, err, seconds = _vfmig(tmp_path, factory, "--memory-limit", "768MiB", timeout=timeout)
    assert "Traceback" not in err
    assert code == 1, (out, err)
    assert seconds < WALL_LIMIT_S
    document = _assert_not_conformant_anywhere(tmp_path, "not conformant")
    verdicts = {result["id"]: result for result in document["results"]}
    assert any(result["verdict"] == expected for result in verdicts.values()), {
        key: value["verdict"] for key, value in verdicts.items()
    }
    # attributed to the checks that wait for received frames, not to every requirement a step lists
    judged = [result for result in verdicts.values() if result["verdict"] == expected]
    assert "VFM-FN-001" in {result["id"] for result in judged} or any(
        "receive" in result["detail"] for result in judged
    )
    assert len(out) < 200_000  # the model's own output stays out of the summary
    assert not document["suite_errors"], document["suite_errors"]  # the harness itself came through unharmed


def test_the_cause_names_the_implementations_method(tmp_path: Path) -> None:
    code, out, _, _ = _vfmig(tmp_path, "busy_loop")
    assert code == 1
    assert "did not return within 0.5 s: in HostileFunction.receive of" in out
    assert "hostile_devices.py:" in out


def test_a_hang_inside_c_is_attributed_from_outside(tmp_path: Path) -> None:
    code, out, _, _ = _vfmig(tmp_path, "hang_in_c")
    assert code == 1
    assert "(the worker process was killed): in receive" in out


def test_a_flood_of_output_ends_up_bounded_in_the_report(tmp_path: Path) -> None:
    code, _, _, _ = _vfmig(tmp_path, "chatty")
    assert code == 1
    document, _, _ = _reports(tmp_path)
    details = " ".join(result["detail"] for result in document["results"])
    assert "the device model gave up after talking too much" in details
    assert (tmp_path / "report.json").stat().st_size < 2_000_000


def test_a_constructor_that_raises_is_an_adapter_mistake(tmp_path: Path) -> None:
    code, out, err, _ = _vfmig(tmp_path, "constructor_raises")
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert "could not open its configuration" in line
    document = _assert_not_conformant_anywhere(tmp_path, "incomplete")
    assert {result["verdict"] for result in document["results"]} == {"incomplete"}


def test_state_carried_between_examples_with_a_shared_database(tmp_path: Path) -> None:
    """The model fails on every other world it builds, so Hypothesis cannot replay what it found; runs that
    share a database replay each other's examples.  Each still ends not conformant, with the finding."""
    state = tmp_path / "calls"
    database = tmp_path / "db"
    for _ in range(2):
        code, out, err, _ = _vfmig(tmp_path, "fails_every_other_world", "--database", str(database), state=state)
        assert "Traceback" not in err
        assert code == 1, (out, err)
        document = _assert_not_conformant_anywhere(tmp_path, "not conformant")
        assert any(result["verdict"] == "error" for result in document["results"])


def test_an_error_in_one_config_read_is_the_config_requirements(tmp_path: Path) -> None:
    """The model raises on one config-space offset while the world boots: the error belongs to the requirement
    whose check read it; what cannot be judged without a world is incomplete, not 53 more errors."""
    code, out, _, _ = _vfmig(tmp_path, "config_read_raises", timeout="5")
    assert code == 1, out
    document = _assert_not_conformant_anywhere(tmp_path, "not conformant")
    errors = [result for result in document["results"] if result["verdict"] == "error"]
    assert [result["id"] for result in errors] == ["VFM-GEN-004"]
    assert "_ConfigReadRaises.config_read" in errors[0]["detail"]
    assert {result["verdict"] for result in document["results"]} == {"error", "incomplete"}
