"""The Markdown report of a conformance run (``--markdown PATH``): a summary a vendor can hand on.

Layout: a title; a table of what was checked (implementation, target and its
roles, profile, seed, protocol version, steps, run time); the verdict line
``**Verdict: CONFORMANT**`` or ``**Verdict: NOT CONFORMANT**``; a table of
counts per verdict; then sections for failures (MUST requirements broken),
warnings (SHOULD requirements broken), timeouts and errors, and problems of
the run itself, each entry with the requirement's ID, keyword and text, the
check's message (or the traceback, or what the timeout interrupted), the
seed and the runnable reproduction in a fenced ``python`` block;
last, a compact table of every requirement (ID, keyword, verdict, checks).

The output depends only on the report: no date, no host, so the same report
always gives the same text.  Free text from the implementation (messages,
tracebacks, reproductions) goes into fenced code blocks, with a fence longer
than any run of backticks inside, terminal colour codes dropped and other
control characters written as ``\\xNN``; text outside code blocks has ``&``, ``<``
and ``>`` escaped (no HTML reaches a renderer) and, in table cells, ``|``
escaped and line breaks folded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import vfmig_proto
from conformance.reports.text import escape_unwanted
from conformance.spec_coverage import DimensionSummary, SpecCoverage
from conformance.verdicts import RequirementResult, RunReport, Verdict

_VERDICT_LABELS: dict[Verdict, str] = {
    Verdict.PASS: "pass",
    Verdict.FAIL: "fail (MUST broken)",
    Verdict.WARN: "warn (SHOULD broken)",
    Verdict.TIMEOUT: "timeout",
    Verdict.ERROR: "error (implementation raised)",
    Verdict.NOT_COVERED: "not covered",
    Verdict.INCOMPLETE: "incomplete (not judged: the run stopped early)",
}

_DETAIL_LABELS: dict[Verdict, str] = {
    Verdict.TIMEOUT: "What the timeout interrupted",
    Verdict.ERROR: "Traceback",
}

_BACKTICK_RUN = re.compile(r"`+")

# Control characters other than tab and newline, and lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(text: str) -> str:
    r"""``text`` without terminal colour codes, other control characters written as ``\xNN``/``\uNNNN``."""

    return escape_unwanted(text.replace("\r\n", "\n"), _UNPRINTABLE)


def _text(text: str) -> str:
    """``text`` safe for Markdown prose: no HTML, no control characters, one line."""
    escaped = _printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(escaped.split())


def _cell(text: str) -> str:
    """``text`` safe for a table cell."""
    return _text(text).replace("|", "\\|")


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _fenced(body: str, language: str = "text") -> list[str]:
    """``body`` in a fenced code block whose fence no backtick run inside can close."""
    body = _printable(body)
    longest = max((len(run) for run in _BACKTICK_RUN.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", body.rstrip("\n"), fence]


def _roles(result: RequirementResult) -> str:
    return ", ".join(sorted(role.value for role in result.requirement.roles))


def _entry(result: RequirementResult) -> list[str]:
    """One broken requirement: what it says, what happened, how to see it again."""
    requirement = result.requirement
    location = f"{requirement.path}:{requirement.line}"
    if requirement.section:
        location += f" ({requirement.section})"
    lines = [
        f"### {requirement.id} ({requirement.keyword.value}): {result.verdict.value}",
        "",
        f"> {_text(requirement.text)}",
        "",
        f"- Roles: {_roles(result)}",
        f"- Spec: {_text(location)}",
        f"- Checks: {result.checks}",
    ]
    if result.seconds_to_detect is not None:
        lines.append(f"- Found after: {result.seconds_to_detect:.3f} s")
    counterexample = result.counterexample
    if counterexample is not None:
        seed = "none recorded" if counterexample.seed is None else f"`{counterexample.seed}`"
        lines += [f"- Seed: {seed}", f"- Shrunk to: {counterexample.steps} step(s)"]
    message = "" if counterexample is None else counterexample.message
    if message.strip():
        lines += ["", "Message:", "", *_fenced(message)]
    if result.detail.strip() and result.detail != message:
        lines += ["", f"{_DETAIL_LABELS.get(result.verdict, 'Detail')}:", "", *_fenced(result.detail)]
    if counterexample is not None:
        lines += ["", "Reproduction:", "", *_fenced(counterexample.reproduction, "python")]
    return [*lines, ""]


def _section(title: str, results: list[RequirementResult]) -> list[str]:
    lines = [f"## {title}", ""]
    if not results:
        return [*lines, "None.", ""]
    for result in results:
        lines += _entry(result)
    return lines


def _coverage_details(summary: DimensionSummary) -> list[str]:
    lines: list[str] = []
    name = summary.dimension.value
    if summary.missing:
        lines += [f"### {_text(name)}: not exercised", "", *(f"- {_text(cell)}" for cell in summary.missing), ""]
    if summary.contradicted:
        lines += [f"### {_text(name)}: listed unreachable, exercised all the same", ""]
        lines += [*(f"- {_text(cell)}" for cell in summary.contradicted), ""]
    if summary.unreachable:
        lines += [f"### {_text(name)}: unreachable", "", _row("Cell", "Why"), _row("---", "---")]
        lines += [*(_row(_cell(cell), _cell(reason)) for cell, reason in summary.unreachable), ""]
    return lines


def _coverage_section(coverage: SpecCoverage | None) -> list[str]:
    """The coverage of the spec's space: a table of the dimensions, then what was not exercised, and why not."""
    lines = ["## Coverage of the spec's space", ""]
    if coverage is None:
        return [*lines, "Not recorded.", ""]
    summaries = coverage.summary()
    lines += [
        "Cells of the protocol the run exercised on the implementation, of those the target's suite can reach.",
        "",
        _row("Dimension", "Exercised", "Reachable", "Unreachable"),
        _row("---", "---:", "---:", "---:"),
    ]
    for summary in summaries:
        if summary.not_applicable is not None:
            lines.append(_row(_cell(summary.dimension.value), "n/a", "n/a", _cell(summary.not_applicable)))
        else:
            lines.append(
                _row(
                    _cell(summary.dimension.value),
                    str(len(summary.covered)),
                    str(summary.reachable),
                    str(len(summary.unreachable)),
                )
            )
    lines.append("")
    for summary in summaries:
        lines += _coverage_details(summary)
    return lines


def report_markdown(report: RunReport) -> str:
    """``report`` as a Markdown document (see the module docstring); deterministic."""
    target_roles = ", ".join(sorted(role.value for role in report.target.roles))
    seed = "not set" if report.seed is None else f"`{report.seed}`"
    lines = [
        f"# vfmig conformance report: {_text(report.implementation)}",
        "",
        _row("Checked", ""),
        _row("---", "---"),
        _row("Implementation", _cell(report.implementation)),
        _row("Target", _cell(f"{report.target.value} (roles: {target_roles})")),
        _row("Profile", _cell(report.profile)),
        _row("Seed", seed),
        _row("Protocol version", vfmig_proto.PROTOCOL_VERSION),
        _row("Steps", str(report.steps)),
        _row("Run time", f"{report.seconds:.1f} s"),
        "",
        f"**Verdict: {report.status.headline}**",
        "",
        "The implementation is conformant when every requirement was judged, no MUST requirement failed and"
        " nothing timed out or raised; SHOULD warnings do not affect the verdict. A run that could not judge"
        " everything is INCOMPLETE, never conformant.",
        "",
        "## Summary",
        "",
        _row("Verdict", "Requirements"),
        _row("---", "---:"),
        *(_row(_VERDICT_LABELS[verdict], str(report.count(verdict))) for verdict in Verdict),
        _row("**total**", f"**{len(report.results)}**"),
        "",
    ]

    def having(*verdicts: Verdict) -> list[RequirementResult]:
        return [result for result in report.results if result.verdict in verdicts]

    lines += _section("Failures (MUST requirements broken)", having(Verdict.FAIL))
    lines += _section("Warnings (SHOULD requirements broken)", having(Verdict.WARN))
    lines += _section("Timeouts and errors", having(Verdict.TIMEOUT, Verdict.ERROR))
    if report.unattributed:
        lines += ["## Failures no requirement's check owned", ""]
        for problem in report.unattributed:
            lines += [*_fenced(problem), ""]
    if report.stopped:
        lines += ["## Not judged", "", _text(f"The run stopped before it finished: {report.stopped}."), ""]
        lines += [f"- {result.requirement.id}" for result in having(Verdict.INCOMPLETE)]
        lines += [""]
    if report.suite_errors:
        lines += ["## Problems of the run itself", ""]
        for problem in report.suite_errors:
            lines += [*_fenced(problem), ""]
    lines += _coverage_section(report.coverage)
    lines += [
        "## All requirements",
        "",
        _row("ID", "Keyword", "Verdict", "Checks"),
        _row("---", "---", "---", "---:"),
        *(
            _row(
                result.requirement.id,
                _cell(result.requirement.keyword.value),
                _cell(result.verdict.value),
                str(result.checks),
            )
            for result in report.results
        ),
    ]
    return "\n".join(lines) + "\n"


def write_markdown(report: RunReport, path: str | os.PathLike[str]) -> None:
    """Write :func:`report_markdown` of ``report`` to ``path`` as UTF-8."""
    Path(path).write_bytes(report_markdown(report).encode("utf-8", errors="backslashreplace"))
