"""The JSON report of a conformance run (``--json PATH``): a documented, versioned structure.

Structure version 3 is described, field by field, by the JSON Schema
``conformance/schemas/report-v3.schema.json`` (draft 2020-12), which ships with
the package (:func:`report_schema`).  A document is one object::

    {
      "$schema": "urn:vfmig:conformance-report:v3",   # the schema's $id
      "schema_version": 3,
      "tool": "vfmig",
      "protocol_version": "1.0",                      # vfmig_proto.PROTOCOL_VERSION
      "target": "device",                             # device | bridge | hypervisor
      "implementation": "vendor.model:make_vf",       # MODULE:FACTORY
      "profile": "ci",
      "seed": 1234,                                   # or null
      "started": "2024-05-01T12:00:00Z",              # or null when the writer was not told
      "duration_seconds": 12.5,
      "steps": 4000,
      "status": "not conformant",                     # conformant | not conformant | incomplete
      "conformant": false,                            # status == "conformant"
      "summary": {"total": 60, "pass": 50, "fail": 1, "warn": 2,
                  "timeout": 0, "error": 0, "not-covered": 7, "incomplete": 0},
      "suite_errors": [],                             # problems of the run itself
      "unattributed": [],                             # failures no requirement's check owned
      "stopped": null,                                # why the run ended early, or null
      "results": [                                    # one per requirement, in run order
        {
          "id": "VFM-DIRTY-003", "keyword": "MUST", "roles": ["device", "driver"],
          "text": "The driver MUST ...",
          "verdict": "fail",                          # pass | fail | warn | timeout | error | not-covered
                                                      # | incomplete
          "checks": 812,
          "detail": "page 0x3f000 differs on the destination",
          "seconds_to_detect": 3.2,                   # or null
          "counterexample": {"steps": 5, "seed": 1234, "message": "...",
                             "reproduction": "from ... import ...\\n..."},   # or null
          "spec": {"path": "05-dirty.rst", "line": 88, "section": "5.2 ..."}
        }
      ],
      "coverage": {                                   # the spec's space (conformance.spec_coverage), or null
        "cells": [{"dimension": "device table", "cell": "PAUSE_REQ x CANCEL"}, ...],   # every cell exercised
        "dimensions": [                               # one per dimension, in a fixed order
          {"dimension": "device table", "not_applicable": null,
           "reachable": 53, "covered": ["EMPTY x HOT_ADD", ...], "missing": ["PAUSE_REQ x CANCEL", ...],
           "unreachable": [{"cell": "READY x DRIVER_PAUSED", "reason": "the reports are ..."}],
           "contradicted": []}                        # listed unreachable, exercised all the same
        ]
      }
    }

Compatibility: consumers should check ``schema_version``; a version only ever
gains documentation, never a changed or removed field.  A change of structure is
a new version with a new schema file and identifier: version 3 added ``coverage``;
version 2 added ``status``,
``unattributed``, ``stopped`` and the ``incomplete`` verdict, so that a run that
could not judge everything says so (version 1 called such a run conformant).
:func:`report_from_json` still reads version 1 and 2 documents (their coverage is None).  Seeds are JSON integers of
any size (Hypothesis seeds may exceed 2**53: read them with an arbitrary-precision
parser if that matters).

:func:`report_from_json` (and :func:`read_json`) turn a document back into a
:class:`~conformance.verdicts.RunReport`, e.g. to merge the reports of parallel
shards (``conformance.parallel``).

:func:`validate_report_json` checks a document against the schema.  It needs
the ``jsonschema`` package, which is a test dependency (``pip install
'vfmig[test]'``), not a run-time one: writing a report never validates it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import vfmig_proto
from conformance.spec_coverage import DimensionSummary, SpecCoverage
from conformance.verdicts import Counterexample, RequirementResult, RunReport, Target, Verdict
from vfmig_proto.errors import VfmigError
from vfmig_proto.requirements import Requirement
from vfmig_proto.states import Keyword, Role

SCHEMA_VERSION = 3
"""The structure version this module writes."""

SCHEMA_ID = "urn:vfmig:conformance-report:v3"
"""The identifier of structure version 3: the schema's ``$id`` and every document's ``$schema``."""

READABLE_VERSIONS = (1, 2, 3)
"""The structure versions :func:`report_from_json` reads."""

SCHEMA_RESOURCE = "report-v3.schema.json"
"""The schema's file name in ``conformance/schemas/``."""

TOOL = "vfmig"


class ReportValidationError(VfmigError, ValueError):
    """A report document that does not match its schema.

    ``kind`` is ``"JSON"`` or ``"JUnit XML"``; ``problems`` lists every
    violation found, each naming where it is.
    """

    def __init__(self, kind: str, problems: list[str]) -> None:
        self.kind = kind
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid {kind} report ({len(problems)} problem(s)):\n{listed}")


def _timestamp(started: datetime) -> str:
    if started.tzinfo is None or started.utcoffset() is None:
        raise ValueError("started must be a timezone-aware datetime")
    return started.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _counterexample_json(counterexample: Counterexample | None) -> dict[str, Any] | None:
    if counterexample is None:
        return None
    return {
        "steps": counterexample.steps,
        "seed": counterexample.seed,
        "message": counterexample.message,
        "reproduction": counterexample.reproduction,
    }


def _result_json(result: RequirementResult) -> dict[str, Any]:
    requirement = result.requirement
    return {
        "id": requirement.id,
        "keyword": requirement.keyword.value,
        "roles": sorted(role.value for role in requirement.roles),
        "text": requirement.text,
        "verdict": result.verdict.value,
        "checks": result.checks,
        "detail": result.detail,
        "seconds_to_detect": result.seconds_to_detect,
        "counterexample": _counterexample_json(result.counterexample),
        "spec": {"path": requirement.path, "line": requirement.line, "section": requirement.section},
    }


def _dimension_json(summary: DimensionSummary) -> dict[str, Any]:
    return {
        "dimension": summary.dimension.value,
        "not_applicable": summary.not_applicable,
        "reachable": summary.reachable,
        "covered": list(summary.covered),
        "missing": list(summary.missing),
        "unreachable": [{"cell": cell, "reason": reason} for cell, reason in summary.unreachable],
        "contradicted": list(summary.contradicted),
    }


def _coverage_json(coverage: SpecCoverage | None) -> dict[str, Any] | None:
    if coverage is None:
        return None
    return {
        "cells": [{"dimension": dimension, "cell": cell} for dimension, cell in sorted(coverage.cells)],
        "dimensions": [_dimension_json(summary) for summary in coverage.summary()],
    }


def _coverage_from_json(target: Target, document: dict[str, Any] | None) -> SpecCoverage | None:
    """The coverage a version-3 document records: its cells (the dimensions follow from them and the tables)."""
    if document is None:
        return None
    return SpecCoverage(target, frozenset((cell["dimension"], cell["cell"]) for cell in document["cells"]))


def report_json(report: RunReport, *, started: datetime | None = None) -> dict[str, Any]:
    """``report`` as a structure-version-3 document (plain dicts, lists, strings, numbers).

    :class:`~conformance.verdicts.RunReport` records no start time: pass
    ``started`` (timezone-aware) to fill ``"started"``, which is ``null`` otherwise.
    """
    summary: dict[str, int] = {"total": len(report.results)}
    summary.update({verdict.value: report.count(verdict) for verdict in Verdict})
    return {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "tool": TOOL,
        "protocol_version": vfmig_proto.PROTOCOL_VERSION,
        "target": report.target.value,
        "implementation": report.implementation,
        "profile": report.profile,
        "seed": report.seed,
        "started": None if started is None else _timestamp(started),
        "duration_seconds": report.seconds,
        "steps": report.steps,
        "status": report.status.value,
        "conformant": report.conformant,
        "summary": summary,
        "suite_errors": list(report.suite_errors),
        "unattributed": list(report.unattributed),
        "stopped": report.stopped,
        "results": [_result_json(result) for result in report.results],
        "coverage": _coverage_json(report.coverage),
    }


def dumps_json(document: dict[str, Any]) -> str:
    """A report document as JSON text: indented, non-ASCII kept, NaN and infinities refused."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(report: RunReport, path: str | os.PathLike[str], *, started: datetime | None = None) -> None:
    """Write :func:`report_json` of ``report`` to ``path`` (UTF-8)."""
    text = dumps_json(report_json(report, started=started))
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate in a message: fall back to \\u escapes
        data = json.dumps(report_json(report, started=started), indent=2, allow_nan=False).encode("ascii") + b"\n"
    Path(path).write_bytes(data)


def _counterexample_from_json(document: dict[str, Any] | None) -> Counterexample | None:
    if document is None:
        return None
    return Counterexample(document["steps"], document["reproduction"], document["seed"], document["message"])


def _result_from_json(document: dict[str, Any]) -> RequirementResult:
    spec = document["spec"]
    requirement = Requirement(
        id=document["id"],
        keyword=Keyword(document["keyword"]),
        roles=frozenset(Role(role) for role in document["roles"]),
        text=document["text"],
        path=spec["path"],
        line=spec["line"],
        section=spec["section"],
    )
    return RequirementResult(
        requirement=requirement,
        verdict=Verdict(document["verdict"]),
        checks=document["checks"],
        detail=document["detail"],
        counterexample=_counterexample_from_json(document["counterexample"]),
        seconds_to_detect=document["seconds_to_detect"],
    )


def report_from_json(document: dict[str, Any]) -> RunReport:
    """The :class:`~conformance.verdicts.RunReport` a structure-version-1, -2 or -3 document describes.

    The inverse of :func:`report_json` (the start time is not part of a
    ``RunReport`` and is dropped).  The requirements are rebuilt from the
    document itself, not looked up in the spec.  Raises :class:`ValueError` for
    another structure version and :class:`KeyError` for a missing field.
    """
    if document.get("schema_version") not in READABLE_VERSIONS:
        raise ValueError(
            f"not a report of a version this vfmig reads ({', '.join(map(str, READABLE_VERSIONS))}): "
            f"schema_version {document.get('schema_version')!r}"
        )
    target = Target(document["target"])
    return RunReport(
        target=target,
        implementation=document["implementation"],
        profile=document["profile"],
        seed=document["seed"],
        results=[_result_from_json(result) for result in document["results"]],
        seconds=document["duration_seconds"],
        steps=document["steps"],
        suite_errors=list(document["suite_errors"]),
        unattributed=list(document.get("unattributed", [])),
        stopped=document.get("stopped"),
        coverage=_coverage_from_json(target, document.get("coverage")),
    )


def read_json(path: str | os.PathLike[str]) -> RunReport:
    """The report :func:`write_json` wrote to ``path``."""
    document: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return report_from_json(document)


@cache
def _schema_text(name: str) -> str:
    return (resources.files("conformance") / "schemas" / name).read_text(encoding="utf-8")


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the structure version this module writes (a fresh copy on every call)."""
    schema: dict[str, Any] = json.loads(_schema_text(SCHEMA_RESOURCE))
    return schema


def _json_pointer(path: list[str | int]) -> str:
    if not path:
        return "(document)"
    return "/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in path)


def validate_report_json(document: object) -> None:
    """Check ``document`` (parsed JSON) against :func:`report_schema`.

    Raises :class:`ReportValidationError` listing every violation with its
    JSON pointer, and :class:`ImportError` saying what to install when
    ``jsonschema`` is missing.
    """
    try:
        import jsonschema  # noqa: PLC0415 - a test dependency, imported only when validating
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError("validating a JSON report needs jsonschema: pip install 'vfmig[test]'") from exc
    validator = jsonschema.Draft202012Validator(report_schema())
    errors = sorted(validator.iter_errors(document), key=lambda error: [str(part) for part in error.absolute_path])
    if errors:
        raise ReportValidationError(
            "JSON", [f"{_json_pointer(list(error.absolute_path))}: {error.message}" for error in errors]
        )
