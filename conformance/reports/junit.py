"""The JUnit XML report of a conformance run (``--junit PATH``), for CI test reporters.

The dialect is the one Jenkins (JUnit plugin), GitLab (``artifacts:reports:junit``)
and the GitHub test-report actions read; ``conformance/schemas/junit.xsd``
describes it and :func:`validate_junit` checks a document against it::

    <testsuites name="vfmig conformance of MODULE:FACTORY" tests= failures= errors= skipped= time=>
      <testsuite name="vfmig conformance: TARGET" tests= failures= errors= skipped= time=>
        <properties>  target, implementation, profile, seed, protocol_version,
                      status, conformant, steps, warnings, and per dimension of the
                      spec's space "coverage DIMENSION" = "exercised/reachable"  </properties>
        <testcase classname="vfmig.TARGET.AREA" name="VFM-AREA-NNN: first ~80 characters of the text" time=>
        ...
        <system-out>  the verdict line and the list of warnings  </system-out>
        <system-err>  problems of the run itself, if any  </system-err>
      </testsuite>
    </testsuites>

One test case per requirement; the verdicts map as follows:

``pass``
    a plain, passing test case.
``fail`` (a MUST broken)
    ``<failure type="fail" message=...>`` whose text holds the requirement,
    the check's message, the seed, the number of shrunk steps and the runnable
    reproduction.  Counted in ``failures``.
``warn`` (a SHOULD broken)
    a **passing** test case whose ``<system-out>`` starts with ``WARNING`` and
    holds the same evidence as a failure; the suite's ``warnings`` property
    counts them and the suite's ``<system-out>`` lists them.  A SHOULD
    violation does not make an implementation non-conformant, and every CI
    reporter turns a ``<failure>`` into a red build (Jenkins "unstable", a
    failed GitLab/GitHub check), so a warning must not be one.  ``<skipped>``
    would be wrong too: it says "not run" and would hide that the check ran
    and found something.  Passing with captured output is what these tools
    show beside a test without breaking the build.  (JUnit has no "warning"
    outcome, and ``<properties>`` inside a test case is not part of the
    dialect every reader accepts, so the marker is the ``WARNING`` prefix.)
``timeout``
    ``<error type="timeout" message=...>`` with what the timeout interrupted.
``error`` (the implementation raised)
    ``<error type="error" message="<last line of the traceback>">`` with the
    whole traceback.  Both count in ``errors``.
``not-covered``
    ``<skipped message="not covered by any check"/>`` (or the result's detail,
    e.g. that the run never reached it): honest about not being checked, and
    counted in ``skipped``, which CI tools show without failing the build.
``incomplete`` (the run stopped before it could judge the requirement)
    ``<error type="incomplete" message=...>`` with the cause, counted in
    ``errors``: a run that could not judge everything must not look green.

When the run itself had problems, stopped early, or the implementation failed
where no requirement's check owned the failure, one more test case,
``classname="vfmig.TARGET.run"``, carries them as ``<error type="run">``.
``failures + errors == 0`` exactly when the run is conformant.  Test case
``time`` is ``0.000``: the run records no per-requirement duration (checks of
many requirements run interleaved in the same steps); the suite's ``time`` is
the run's wall time.  Terminal colour codes are dropped, and the characters
XML 1.0 cannot carry (other control characters such as NUL or a stray ESC,
lone surrogates) are written as ``\\xNN``/``\\uNNNN``.

:func:`validate_junit` needs the ``xmlschema`` package, a test dependency
(``pip install 'vfmig[test]'``); writing a report never validates it.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import vfmig_proto
from conformance.reports.json_report import ReportValidationError
from conformance.reports.text import escape_unwanted
from conformance.summary import reason
from conformance.verdicts import RequirementResult, RunReport, Verdict

if TYPE_CHECKING:
    import xmlschema

XSD_RESOURCE = "junit.xsd"
"""The schema's file name in ``conformance/schemas/``."""

NAME_TEXT_CHARS = 80
"""How much of the requirement text goes into a test case's name."""

MESSAGE_CHARS = 200
"""The longest ``message`` attribute written (the element's text holds everything)."""

NOT_COVERED_MESSAGE = "not covered by any check"

WARNING_PREFIX = "WARNING"

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# Everything outside XML 1.0's Char production.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    r"""``text`` without terminal colour codes, and every character XML 1.0 cannot hold as ``\xNN``/``\uNNNN``."""

    return escape_unwanted(text, _NOT_XML_CHAR)


def _one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    """A single-line summary of ``text`` of at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def testcase_name(result: RequirementResult) -> str:
    """The requirement ID, a colon and the requirement text, cut at a word near :data:`NAME_TEXT_CHARS`."""
    requirement = result.requirement
    text = " ".join(requirement.text.split())
    if len(text) > NAME_TEXT_CHARS:
        cut = text.rfind(" ", 0, NAME_TEXT_CHARS)
        text = text[: cut if cut > NAME_TEXT_CHARS // 2 else NAME_TEXT_CHARS].rstrip(" ,;:") + "…"
    return f"{requirement.id}: {text}"


def _message(result: RequirementResult) -> str:
    """The short reason (:func:`conformance.summary.reason`)."""
    return reason(result)


def evidence(result: RequirementResult) -> str:
    """Everything a developer needs to see a broken requirement again, as plain text."""
    requirement = result.requirement
    roles = ", ".join(sorted(role.value for role in requirement.roles))
    parts = [
        f"{requirement.id} ({requirement.keyword.value}; roles: {roles}): {result.verdict.value}"
        f" after {result.checks} check(s)",
        requirement.text,
        f"Spec: {requirement.path}:{requirement.line}" + (f" ({requirement.section})" if requirement.section else ""),
    ]
    if result.detail:
        parts.append(result.detail)
    counterexample = result.counterexample
    if counterexample is not None:
        if counterexample.message and counterexample.message != result.detail:
            parts.append(counterexample.message)
        seed = "none recorded" if counterexample.seed is None else str(counterexample.seed)
        found = "" if result.seconds_to_detect is None else f", found after {result.seconds_to_detect:.3f} s"
        parts.append(f"Seed: {seed}; shrunk to {counterexample.steps} step(s){found}.")
        parts.append("Reproduction:\n" + counterexample.reproduction.rstrip("\n"))
    return "\n\n".join(parts) + "\n"


def _testcase(parent: ET.Element, report: RunReport, result: RequirementResult) -> None:
    case = ET.SubElement(
        parent,
        "testcase",
        {
            "classname": f"vfmig.{report.target.value}.{result.requirement.area}",
            "name": _xml_safe(testcase_name(result)),
            "time": _seconds(0.0),
        },
    )
    verdict = result.verdict
    if verdict is Verdict.PASS:
        return
    if verdict is Verdict.NOT_COVERED:
        message = _one_line(result.detail) if result.detail.strip() else NOT_COVERED_MESSAGE
        ET.SubElement(case, "skipped", {"message": _xml_safe(message)})
        return
    message = _xml_safe(_one_line(_message(result)))
    if verdict is Verdict.WARN:
        out = ET.SubElement(case, "system-out")
        out.text = _xml_safe(
            f"{WARNING_PREFIX}: {result.requirement.id} ({result.requirement.keyword.value}) was not met;"
            " a SHOULD violation does not make the implementation non-conformant.\n\n" + evidence(result)
        )
        return
    tag, kind = ("failure", "fail") if verdict is Verdict.FAIL else ("error", verdict.value)
    element = ET.SubElement(case, tag, {"message": message, "type": kind})
    element.text = _xml_safe(evidence(result))


def _run_problems(report: RunReport) -> list[str]:
    """What the run itself says beside the requirements' verdicts: each is an error of the ``run`` test case."""
    problems = [
        f"the implementation failed where no requirement's check owned it: {text}" for text in report.unattributed
    ]
    problems += [f"the run itself failed: {text}" for text in report.suite_errors]
    if report.stopped and not report.suite_errors:
        problems.append(f"the run stopped before it finished: {report.stopped}")
    return problems


def _run_testcase(parent: ET.Element, report: RunReport) -> None:
    problems = _run_problems(report)
    if not problems:
        return
    case = ET.SubElement(
        parent, "testcase", {"classname": f"vfmig.{report.target.value}.run", "name": "the run itself", "time": "0.000"}
    )
    element = ET.SubElement(case, "error", {"message": _xml_safe(_one_line(problems[0])), "type": "run"})
    element.text = _xml_safe("\n\n".join(problems) + "\n")


def _counts(report: RunReport) -> dict[str, str]:
    run_case = 1 if _run_problems(report) else 0
    errors = report.count(Verdict.ERROR) + report.count(Verdict.TIMEOUT) + report.count(Verdict.INCOMPLETE)
    return {
        "tests": str(len(report.results) + run_case),
        "failures": str(report.count(Verdict.FAIL)),
        "errors": str(errors + run_case),
        "skipped": str(report.count(Verdict.NOT_COVERED)),
        "time": _seconds(report.seconds),
    }


def _suite_out(report: RunReport) -> str:
    lines = [f"vfmig conformance of {report.implementation}: {report.status.headline}"]
    lines.extend(f"{verdict.value}: {report.count(verdict)}" for verdict in Verdict)
    warned = [result for result in report.results if result.verdict is Verdict.WARN]
    lines.extend(f"{WARNING_PREFIX}: {result.requirement.id}: {_one_line(_message(result))}" for result in warned)
    return "\n".join(lines) + "\n"


def _coverage_properties(report: RunReport) -> list[tuple[str, str]]:
    """``("coverage device table", "27/53")`` per dimension of the spec's space that applies to the target."""
    if report.coverage is None:
        return []
    return [
        (f"coverage {summary.dimension.value}", f"{len(summary.covered)}/{summary.reachable}")
        for summary in report.coverage.summary()
        if summary.not_applicable is None
    ]


def junit_element(report: RunReport, *, started: datetime | None = None) -> ET.Element:
    """``report`` as an ElementTree ``<testsuites>`` element (see the module docstring)."""
    root = ET.Element("testsuites", {"name": _xml_safe(f"vfmig conformance of {report.implementation}")})
    root.attrib.update(_counts(report))
    suite = ET.SubElement(root, "testsuite", {"name": f"vfmig conformance: {report.target.value}"})
    suite.attrib.update(_counts(report))
    if started is not None:
        if started.tzinfo is None or started.utcoffset() is None:
            raise ValueError("started must be a timezone-aware datetime")
        suite.set("timestamp", started.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds"))
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("target", report.target.value),
        ("implementation", report.implementation),
        ("profile", report.profile),
        ("seed", "none" if report.seed is None else str(report.seed)),
        ("protocol_version", vfmig_proto.PROTOCOL_VERSION),
        ("status", report.status.value),
        ("conformant", "true" if report.conformant else "false"),
        ("steps", str(report.steps)),
        ("warnings", str(report.count(Verdict.WARN))),
        *_coverage_properties(report),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _xml_safe(value)})
    for result in report.results:
        _testcase(suite, report, result)
    _run_testcase(suite, report)
    ET.SubElement(suite, "system-out").text = _xml_safe(_suite_out(report))
    if report.suite_errors:
        ET.SubElement(suite, "system-err").text = _xml_safe("\n\n".join(report.suite_errors) + "\n")
    return root


def report_junit(report: RunReport, *, started: datetime | None = None) -> str:
    """``report`` as JUnit XML text (with its XML declaration; encode as UTF-8).

    ``started`` (timezone-aware) fills the suite's ``timestamp``, which is
    left out otherwise: :class:`~conformance.verdicts.RunReport` records no
    start time.
    """
    root = junit_element(report, started=started)
    ET.indent(root)
    return _XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(report: RunReport, path: str | os.PathLike[str], *, started: datetime | None = None) -> None:
    """Write :func:`report_junit` of ``report`` to ``path`` as UTF-8."""
    Path(path).write_bytes(report_junit(report, started=started).encode("utf-8"))


@cache
def junit_xsd() -> str:
    """The XML Schema of the JUnit dialect (text of ``conformance/schemas/junit.xsd``)."""
    return (resources.files("conformance") / "schemas" / XSD_RESOURCE).read_text(encoding="utf-8")


@cache
def _compiled_xsd() -> xmlschema.XMLSchema10:
    try:
        import xmlschema  # noqa: PLC0415 - a test dependency, imported only when validating
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError("validating a JUnit report needs xmlschema: pip install 'vfmig[test]'") from exc
    return xmlschema.XMLSchema10(junit_xsd())


def validate_junit(xml_text: str) -> None:
    """Check JUnit XML text against :func:`junit_xsd`.

    Raises :class:`~conformance.reports.json_report.ReportValidationError`
    listing every violation with its path, and :class:`ImportError` saying what
    to install when ``xmlschema`` is missing.
    """
    schema = _compiled_xsd()
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ReportValidationError("JUnit XML", [f"not well-formed XML: {exc}"]) from None
    problems = [f"{error.path or '(document)'}: {error.reason or error.message}" for error in schema.iter_errors(root)]
    if problems:
        raise ReportValidationError("JUnit XML", problems)
