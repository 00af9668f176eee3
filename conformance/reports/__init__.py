"""Reports of a conformance run: JSON for machines, JUnit XML for CI, Markdown for people.

Each writer takes a :class:`~conformance.verdicts.RunReport` and needs only the
standard library.  The schemas the JSON and JUnit reports follow ship in
``conformance/schemas/`` (``report-v3.schema.json``, ``junit.xsd``);
:func:`validate_report_json` and :func:`validate_junit` check a document
against them and need ``jsonschema`` / ``xmlschema`` (the ``test`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conformance.reports.json_report import (
    SCHEMA_ID,
    SCHEMA_VERSION,
    ReportValidationError,
    read_json,
    report_from_json,
    report_json,
    report_schema,
    validate_report_json,
    write_json,
)
from conformance.reports.junit import junit_xsd, report_junit, validate_junit, write_junit
from conformance.reports.markdown import report_markdown, write_markdown

if TYPE_CHECKING:
    import os
    from datetime import datetime

    from conformance.verdicts import RunReport

__all__ = [
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "ReportValidationError",
    "junit_xsd",
    "read_json",
    "report_from_json",
    "report_json",
    "report_junit",
    "report_markdown",
    "report_schema",
    "validate_junit",
    "validate_report_json",
    "write_json",
    "write_junit",
    "write_markdown",
    "write_reports",
]


def write_reports(
    report: RunReport,
    *,
    json: str | os.PathLike[str] | None = None,
    junit: str | os.PathLike[str] | None = None,
    markdown: str | os.PathLike[str] | None = None,
    started: datetime | None = None,
) -> None:
    """Write each report whose path is given (``started``: when the run began, for JSON and JUnit)."""
    if json is not None:
        write_json(report, json, started=started)
    if junit is not None:
        write_junit(report, junit, started=started)
    if markdown is not None:
        write_markdown(report, markdown)
