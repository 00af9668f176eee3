"""The conformance reports: JSON against its schema, JUnit XML against its XSD, Markdown for people."""

from __future__ import annotations

import copy
import dataclasses
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import vfmig_proto
from conformance.reports import (
    SCHEMA_ID,
    ReportValidationError,
    junit_xsd,
    report_json,
    report_junit,
    report_markdown,
    report_schema,
    validate_junit,
    validate_report_json,
    write_json,
    write_junit,
    write_markdown,
)
from conformance.verdicts import Counterexample, RequirementResult, RunReport, Target, Verdict
from vfmig_proto.requirements import Requirement
from vfmig_proto.states import Keyword

NASTY = " | <b>bold</b> & \"quoted\" 'single' — Ünïcödé Ω 漢字"
BIG_SEED = 2**64 + 5
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "vendor/model.py", line 42, in <module>\n'
    "    device.pause()\n"
    '  File "vendor/model.py", line 17, in pause\n'
    "    raise RuntimeError(\"ring \x1b state <bad> & 'odd'\")\n"
    "\x1b[31mRuntimeError: ring state <bad> & 'odd' | ü\x1b[0m\x00"
)
# What a reader sees: colour codes dropped, other control characters escaped.
TRACEBACK_SHOWN = (
    TRACEBACK.replace("\x1b[31m", "").replace("\x1b[0m", "").replace("\x1b", "\\x1b").replace("\x00", "\\x00")
)
REPRODUCTION = (
    "from conformance.replay import replay\n"
    "\n"
    "machine = replay('vendor.model:make_vf')\n"
    "machine.pause(slot=0)\n"
    "machine.dma_write(page=0x3F, data=b'|<&>')\n"
    "machine.ack()  # ``` a fence inside the code\n"
)


def _requirements(keyword: Keyword, count: int) -> list[Requirement]:
    """``count`` real requirements with ``keyword`` that bind the device target."""
    found = [
        requirement
        for requirement in vfmig_proto.load_requirements()
        if requirement.keyword is keyword and requirement.roles & Target.DEVICE.roles
    ]
    assert len(found) >= count
    return found[:count]


def _result(
    requirement: Requirement, verdict: Verdict, *, detail: str = "", counterexample: Counterexample | None = None
) -> RequirementResult:
    seconds = 1.25 if verdict in (Verdict.FAIL, Verdict.WARN) else None
    checks = 0 if verdict is Verdict.NOT_COVERED else 17
    return RequirementResult(requirement, verdict, checks, detail, counterexample, seconds)


def _mixed_report() -> RunReport:
    """Every verdict kind, counterexamples, a multi-line traceback and awkward text."""
    must = _requirements(Keyword.MUST, 6)
    must_not = _requirements(Keyword.MUST_NOT, 1)
    should = _requirements(Keyword.SHOULD, 2)
    nasty_requirement = dataclasses.replace(must[1], text=must[1].text + NASTY)
    results = [
        _result(must[0], Verdict.PASS),
        _result(
            nasty_requirement,
            Verdict.FAIL,
            detail="page 0x3f differs on the destination" + NASTY,
            counterexample=Counterexample(5, REPRODUCTION, BIG_SEED, "page 0x3f lost" + NASTY),
        ),
        _result(
            must_not[0],
            Verdict.FAIL,
            detail="interrupt raised while paused",
            counterexample=Counterexample(2, "print('replay')\n", None, "interrupt raised while paused"),
        ),
        _result(
            should[0],
            Verdict.WARN,
            detail="slow acknowledgement",
            counterexample=Counterexample(3, REPRODUCTION, 99, "ack after 2 s" + NASTY),
        ),
        _result(should[1], Verdict.PASS),
        _result(must[2], Verdict.TIMEOUT, detail="step 17 (pause) did not return within 5.0 s"),
        _result(must[3], Verdict.ERROR, detail=TRACEBACK),
        _result(must[4], Verdict.NOT_COVERED),
        _result(must[5], Verdict.NOT_COVERED, detail="the run never reached it"),
    ]
    return RunReport(
        target=Target.DEVICE,
        implementation="vendor.model:make_vf",
        profile="ci",
        seed=BIG_SEED,
        results=results,
        seconds=12.5,
        steps=4000,
        suite_errors=["health check: too much data filtered" + NASTY],
    )


def _warn_only_report() -> RunReport:
    report = _mixed_report()
    report.results = [result for result in report.results if not result.verdict.breaks_conformance]
    report.suite_errors = []
    return report


@pytest.fixture(scope="module")
def mixed() -> RunReport:
    return _mixed_report()


# --- the verdict model ----------------------------------------------------------------------------


def test_conformant_is_computed_from_the_verdicts(mixed: RunReport) -> None:
    assert not mixed.conformant
    warn_only = _warn_only_report()
    assert warn_only.count(Verdict.WARN) == 1
    assert warn_only.conformant
    for verdict in (Verdict.FAIL, Verdict.TIMEOUT, Verdict.ERROR):
        one_bad = _warn_only_report()
        one_bad.results.append(_result(_requirements(Keyword.MUST, 1)[0], verdict))
        assert not one_bad.conformant, verdict


# --- JSON ---------------------------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema_with_our_identifier() -> None:
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == SCHEMA_ID
    assert not SCHEMA_ID.startswith(("http:", "https:"))


def test_json_validates_and_round_trips(mixed: RunReport) -> None:
    document = report_json(mixed)
    validate_report_json(document)
    again = json.loads(json.dumps(document))
    assert again == document
    validate_report_json(again)


def test_json_content(mixed: RunReport) -> None:
    document = report_json(mixed)
    assert document["$schema"] == SCHEMA_ID
    assert document["schema_version"] == 3
    assert document["status"] == "not conformant"
    assert document["tool"] == "vfmig"
    assert document["protocol_version"] == vfmig_proto.PROTOCOL_VERSION
    assert document["target"] == "device"
    assert document["seed"] == BIG_SEED
    assert document["started"] is None
    assert document["conformant"] is False
    assert document["summary"] == {
        "total": 9,
        "pass": 2,
        "fail": 2,
        "warn": 1,
        "timeout": 1,
        "error": 1,
        "not-covered": 2,
        "incomplete": 0,
    }
    assert [result["id"] for result in document["results"]] == [result.requirement.id for result in mixed.results]
    failed = document["results"][1]
    assert failed["verdict"] == "fail"
    assert failed["text"].endswith(NASTY)
    assert failed["counterexample"] == {
        "steps": 5,
        "seed": BIG_SEED,
        "message": "page 0x3f lost" + NASTY,
        "reproduction": REPRODUCTION,
    }
    assert failed["seconds_to_detect"] == 1.25
    assert failed["spec"] == {
        "path": mixed.results[1].requirement.path,
        "line": mixed.results[1].requirement.line,
        "section": mixed.results[1].requirement.section,
    }
    assert document["results"][0]["counterexample"] is None
    assert document["results"][6]["detail"] == TRACEBACK


def test_json_started_is_utc_and_must_be_aware(mixed: RunReport) -> None:
    started = datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    document = report_json(mixed, started=started)
    assert document["started"] == "2024-05-01T12:00:00Z"
    validate_report_json(document)
    with pytest.raises(ValueError, match="timezone-aware"):
        report_json(mixed, started=datetime(2024, 5, 1))  # naive: the point of the test


def test_write_json(mixed: RunReport, tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json(mixed, path, started=datetime(2024, 5, 1, tzinfo=UTC))
    text = path.read_text(encoding="utf-8")
    assert "Ünïcödé" in text  # written as UTF-8, not \u escapes
    document = json.loads(text)
    validate_report_json(document)
    assert document == report_json(mixed, started=datetime(2024, 5, 1, tzinfo=UTC))


def test_write_json_survives_a_lone_surrogate(tmp_path: Path) -> None:
    report = _warn_only_report()
    report.suite_errors = ["undecodable byte \udcff in a message"]
    path = tmp_path / "report.json"
    write_json(report, path)
    document = json.loads(path.read_text(encoding="ascii"))
    assert document["suite_errors"] == ["undecodable byte \udcff in a message"]
    validate_report_json(document)


def _set(path: list[str | int], value: object) -> Callable[[dict[str, Any]], None]:
    def mangle(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mangle


def _delete(path: list[str | int]) -> Callable[[dict[str, Any]], None]:
    def mangle(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return mangle


@pytest.mark.parametrize(
    ("mangle", "pointer"),
    [
        pytest.param(_set(["results", 1, "verdict"], "failed"), "/results/1/verdict", id="wrong-verdict"),
        pytest.param(_set(["results", 0, "keyword"], "MUSTN'T"), "/results/0/keyword", id="wrong-keyword"),
        pytest.param(_set(["target"], "vf"), "/target", id="wrong-target"),
        pytest.param(_set(["results", 2, "id"], "VFM-dirty-1"), "/results/2/id", id="bad-id"),
        pytest.param(_delete(["results", 3, "checks"]), "/results/3", id="missing-result-field"),
        pytest.param(_delete(["seed"]), "(document)", id="missing-top-field"),
        pytest.param(_set(["colour"], "red"), "(document)", id="extra-top-field"),
        pytest.param(_set(["results", 1, "counterexample", "shrunk"], True), "/results/1/counterexample", id="extra"),
        pytest.param(_set(["schema_version"], 4), "/schema_version", id="other-version"),
        pytest.param(_set(["conformant"], True), "/summary", id="conformant-despite-failures"),
        pytest.param(_set(["summary", "pass"], -1), "/summary/pass", id="negative-count"),
        pytest.param(_set(["started"], "yesterday"), "/started", id="bad-timestamp"),
    ],
)
def test_schema_rejects_mangled_documents(
    mixed: RunReport, mangle: Callable[[dict[str, Any]], None], pointer: str
) -> None:
    document = copy.deepcopy(report_json(mixed))
    mangle(document)
    with pytest.raises(ReportValidationError) as caught:
        validate_report_json(document)
    assert caught.value.kind == "JSON"
    assert any(problem.startswith(pointer) for problem in caught.value.problems), caught.value.problems


def test_schema_rejects_non_conformant_without_a_reason() -> None:
    document = report_json(_warn_only_report())
    validate_report_json(document)
    document["conformant"] = False
    with pytest.raises(ReportValidationError, match="/status"):
        validate_report_json(document)


# --- JUnit XML ----------------------------------------------------------------------------------


def _child(element: ET.Element, path: str) -> ET.Element:
    """The first element at ``path`` under ``element``, which must be there."""
    found = element.find(path)
    assert found is not None, path
    return found


def _text(element: ET.Element, path: str) -> str:
    """The text of the first element at ``path`` under ``element``, which must be there and hold text."""
    text = _child(element, path).text
    assert text is not None, path
    return text


def _cases(root: ET.Element) -> list[ET.Element]:
    return root.findall("./testsuite/testcase")


def test_junit_validates_against_the_xsd(mixed: RunReport) -> None:
    xml_text = report_junit(mixed)
    assert xml_text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    validate_junit(xml_text)
    validate_junit(report_junit(mixed, started=datetime(2024, 5, 1, 12, tzinfo=UTC)))
    validate_junit(report_junit(_warn_only_report()))


def test_junit_counts(mixed: RunReport) -> None:
    root = ET.fromstring(report_junit(mixed))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    for element in (root, suite):
        assert element.get("tests") == "10"  # 9 requirements and the run itself, which had a problem
        assert element.get("failures") == "2"
        assert element.get("errors") == "3"  # one timeout, one error, the run's own problem
        assert element.get("skipped") == "2"
        assert element.get("time") == "12.500"
    assert suite.get("name") == "vfmig conformance: device"
    cases = _cases(root)
    assert len(cases) == 10
    assert cases[-1].get("classname") == "vfmig.device.run"
    assert len(suite.findall("testcase/failure")) == 2
    assert len(suite.findall("testcase/error")) == 3
    assert len(suite.findall("testcase/skipped")) == 2


def test_junit_properties(mixed: RunReport) -> None:
    suite = ET.fromstring(report_junit(mixed)).find("testsuite")
    assert suite is not None
    properties = {prop.get("name"): prop.get("value") for prop in suite.findall("properties/property")}
    assert properties == {
        "target": "device",
        "implementation": "vendor.model:make_vf",
        "profile": "ci",
        "seed": str(BIG_SEED),
        "protocol_version": vfmig_proto.PROTOCOL_VERSION,
        "status": "not conformant",
        "conformant": "false",
        "steps": "4000",
        "warnings": "1",
    }
    assert "health check" in _text(suite, "system-err")


def test_junit_test_cases(mixed: RunReport) -> None:
    cases = [
        case for case in _cases(ET.fromstring(report_junit(mixed))) if not case.get("classname", "").endswith(".run")
    ]
    for case, result in zip(cases, mixed.results, strict=True):
        requirement = result.requirement
        assert case.get("classname") == f"vfmig.device.{requirement.area}"
        name = case.get("name")
        assert name is not None
        assert name.startswith(f"{requirement.id}: ")
        assert len(name) <= len(requirement.id) + 2 + 81
    passed, failed, failed_no_seed, warned, _, timed_out, raised, uncovered, unreached = cases
    assert list(passed) == []
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("type") == "fail"
    assert failure.get("message") == " ".join(("page 0x3f lost" + NASTY).split())
    assert failure.text is not None
    assert REPRODUCTION.rstrip("\n") in failure.text
    assert str(BIG_SEED) in failure.text
    assert "page 0x3f differs on the destination" + NASTY in failure.text
    assert "Seed: none recorded" in _text(failed_no_seed, "failure")
    assert warned.find("failure") is None
    assert warned.find("error") is None
    warning = _text(warned, "system-out")
    assert warning.startswith("WARNING: ")
    assert REPRODUCTION.rstrip("\n") in warning
    timeout = _child(timed_out, "error")
    assert timeout.get("type") == "timeout"
    assert timeout.get("message") == "step 17 (pause) did not return within 5.0 s"
    error = _child(raised, "error")
    assert error.get("type") == "error"
    assert error.text is not None
    assert TRACEBACK_SHOWN in error.text
    assert "ring \\x1b state" in error.text
    assert error.get("message") == "RuntimeError: ring state <bad> & 'odd' | ü\\x00"
    assert _child(uncovered, "skipped").get("message") == "not covered by any check"
    assert _child(unreached, "skipped").get("message") == "the run never reached it"


def test_junit_warn_only_run_has_no_failures() -> None:
    root = ET.fromstring(report_junit(_warn_only_report()))
    assert root.get("failures") == "0"
    assert root.get("errors") == "0"
    assert _child(root, "./testsuite/properties/property[@name='conformant']").get("value") == "true"
    system_out = _text(root, "./testsuite/system-out")
    assert system_out.startswith("vfmig conformance of vendor.model:make_vf: CONFORMANT\n")
    assert "WARNING: VFM-" in system_out


def test_write_junit(mixed: RunReport, tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    write_junit(mixed, path)
    data = path.read_bytes()
    assert data.decode("utf-8") == report_junit(mixed)
    assert ET.parse(path).getroot().tag == "testsuites"


def _mangle_xml(change: Callable[[ET.Element], object]) -> Callable[[str], str]:
    def mangle(xml_text: str) -> str:
        root = ET.fromstring(xml_text)
        change(root)
        return ET.tostring(root, encoding="unicode")

    return mangle


def _first_case(root: ET.Element) -> ET.Element:
    case = root.find("./testsuite/testcase")
    assert case is not None
    return case


def _failed_case(root: ET.Element) -> ET.Element:
    case = root.find("./testsuite/testcase[failure]")
    assert case is not None
    return case


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(_mangle_xml(lambda root: _first_case(root).attrib.pop("name")), id="case-without-name"),
        pytest.param(_mangle_xml(lambda root: root.set("tests", "many")), id="non-integer-count"),
        pytest.param(_mangle_xml(lambda root: _first_case(root).set("time", "-1")), id="negative-time"),
        pytest.param(_mangle_xml(lambda root: ET.SubElement(_first_case(root), "warning")), id="unknown-element"),
        pytest.param(_mangle_xml(lambda root: ET.SubElement(_failed_case(root), "skipped")), id="two-outcomes"),
        pytest.param(_mangle_xml(lambda root: ET.SubElement(root, "testcase", name="x")), id="case-outside-suite"),
        pytest.param(_mangle_xml(lambda root: root.set("colour", "red")), id="unknown-attribute"),
        pytest.param(lambda text: text.replace("</testsuites>", ""), id="not-well-formed"),
    ],
)
def test_xsd_rejects_mangled_documents(mixed: RunReport, mangle: Callable[[str], str]) -> None:
    with pytest.raises(ReportValidationError) as caught:
        validate_junit(mangle(report_junit(mixed)))
    assert caught.value.kind == "JUnit XML"
    assert caught.value.problems


def test_schema_files_are_package_resources() -> None:
    assert "<xs:schema" in junit_xsd()
    assert report_schema()["title"].startswith("vfmig conformance report")


# --- Markdown -----------------------------------------------------------------------------------


def _table_rows(markdown: str, heading: str) -> list[str]:
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| VFM-")]


def test_markdown_content(mixed: RunReport) -> None:
    text = report_markdown(mixed)
    lines = text.splitlines()
    assert "**Verdict: NOT CONFORMANT**" in lines
    assert "**Verdict: CONFORMANT**" not in lines
    failures = text.split("## Failures", 1)[1].split("\n## ", 1)[0]
    for result in mixed.results:
        if result.verdict is Verdict.FAIL:
            assert f"### {result.requirement.id} ({result.requirement.keyword.value}): fail" in failures
    # The reproduction contains a ``` run: the fence must be longer.
    assert "````python\n" + REPRODUCTION.rstrip("\n") + "\n````" in failures
    assert f"- Seed: `{BIG_SEED}`" in failures
    assert "- Seed: none recorded" in failures
    warnings = text.split("## Warnings", 1)[1].split("\n## ", 1)[0]
    assert mixed.results[3].requirement.id in warnings
    errors = text.split("## Timeouts and errors", 1)[1].split("\n## ", 1)[0]
    assert "Traceback:\n\n```text\n" + TRACEBACK_SHOWN + "\n```" in errors
    assert "## Problems of the run itself" in text
    rows = _table_rows(text, "All requirements")
    assert [row.split(" | ")[0] for row in rows] == [f"| {result.requirement.id}" for result in mixed.results]
    assert "| warn | 17 |" in rows[3]
    assert "| not-covered | 0 |" in rows[7]
    assert "| fail (MUST broken) | 2 |" in lines
    assert "| **total** | **9** |" in lines


def _outside_code(markdown: str) -> list[str]:
    """The lines of ``markdown`` that are not inside a fenced code block."""
    lines: list[str] = []
    fence = ""
    for line in markdown.splitlines():
        if fence:
            if line == fence:
                fence = ""
        elif line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
        else:
            lines.append(line)
    assert not fence, "unclosed code block"
    return lines


def test_markdown_escapes_text_outside_code(mixed: RunReport) -> None:
    prose = _outside_code(report_markdown(mixed))
    assert not any("<" in line or "\x1b" in line for line in prose)
    assert any('&lt;b&gt;bold&lt;/b&gt; &amp; "quoted"' in line for line in prose)
    for line in prose:
        if line.startswith("| "):
            assert len(line.replace("\\|", "").strip("|").split("|")) in (2, 4), line


def test_markdown_table_cells_escape_pipes() -> None:
    report = _warn_only_report()
    report.implementation = "vendor|model:make_vf"
    report.profile = "a|b"
    text = report_markdown(report)
    assert "| Implementation | vendor\\|model:make_vf |" in text
    assert "| Profile | a\\|b |" in text


def test_markdown_is_deterministic_and_conformant_when_only_warned(tmp_path: Path) -> None:
    report = _warn_only_report()
    text = report_markdown(report)
    assert text == report_markdown(_warn_only_report())
    assert "**Verdict: CONFORMANT**" in text.splitlines()
    assert "## Failures (MUST requirements broken)\n\nNone.\n" in text
    path = tmp_path / "report.md"
    write_markdown(report, path)
    assert path.read_text(encoding="utf-8") == text
