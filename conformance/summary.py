"""The plain-text summary of a conformance run, as ``vfmig conformance`` and the pytest plugin print it.

:func:`summary_text` is the whole summary: a header (implementation, target,
profile, seed), the verdict and the count of each verdict, the steps and their
rate, the coverage of the spec's space (:mod:`conformance.spec_coverage`: per dimension, the reachable cells
exercised), then one entry per requirement that did not pass — its verdict, keyword
and message and, for a ``fail`` or ``warn``, the seed and the shrunk
reproduction::

    vfmig conformance of mypkg.model:make (target device, profile quick, seed 1)
    NOT CONFORMANT: 54 requirements: 19 pass, 2 fail, 0 warn, 0 timeout, 0 error, 33 not-covered
    6943 steps in 10.3 s (676 steps/s)
    spec coverage (reachable cells exercised; the JSON and Markdown reports list every cell):
      device table 27/64 (11 unreachable)
      migration table 11/14 (missing PAUSING x CANCEL, RESUMING x GROUP_RESET, ARRIVED x GROUP_RESET)
      slot positions 2/3 (missing last), slot numbers 3/8, sides 2/2
      phases x perturbations 7/20 (16 unreachable), byte lanes not applicable

      VFM-DIRTY-004  fail  MUST  slot 0: PAUSED with pages written by DMA and not dirtied: [240, ...]
        seed 1 (replay: --seed 1 --requirement VFM-DIRTY-004), shrunk to 7 steps:
          # vfmig conformance counterexample: target device, implementation mypkg.model:make
          ...

:func:`failure_text` is the same without the ``not-covered`` entries: what a
failing pytest item shows.
"""

from __future__ import annotations

import textwrap

from conformance.spec_coverage import Dimension, DimensionSummary, SpecCoverage
from conformance.verdicts import RequirementResult, RunReport, Verdict

ORDER = (Verdict.FAIL, Verdict.TIMEOUT, Verdict.ERROR, Verdict.INCOMPLETE, Verdict.WARN, Verdict.NOT_COVERED)
"""The order in which non-passing requirements are listed."""

MESSAGE_CHARS = 160
"""The longest message printed on a requirement's line."""


def reason(result: RequirementResult) -> str:
    """Why, in the evidence's own words: the check's message; else the detail's first line (what the harness
    says: the step, the implementation's method, the checks that waited), or a bare traceback's exception."""
    if result.counterexample is not None and result.counterexample.message.strip():
        return result.counterexample.message
    lines = [line for line in result.detail.splitlines() if line.strip()]
    if not lines:
        return result.verdict.value
    return lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]


def short_message(result: RequirementResult, chars: int | None = MESSAGE_CHARS) -> str:
    """:func:`reason` on one line of at most ``chars`` characters (None: all of it)."""
    line = " ".join(reason(result).split())
    return line if chars is None or len(line) <= chars else line[: chars - 1].rstrip() + "…"


def verdict_line(result: RequirementResult, chars: int | None = MESSAGE_CHARS) -> str:
    """``VFM-AREA-NNN  verdict  KEYWORD  message``, the message cut at ``chars`` (None: whole, for a display
    that wraps it at words)."""
    requirement = result.requirement
    message = short_message(result, chars)
    return f"{requirement.id:<15} {result.verdict.value:<12} {requirement.keyword.value:<10} {message}"


def counts_line(report: RunReport) -> str:
    """The verdict and how many requirements got each verdict."""
    verdict = report.status.headline
    counts = ", ".join(f"{report.count(v)} {v.value}" for v in Verdict)
    total = len(report.results)
    return f"{verdict}: {total} requirement{'' if total == 1 else 's'}: {counts}"


def rate_line(report: RunReport) -> str:
    """Steps, wall time and steps per second."""
    rate = report.steps / report.seconds if report.seconds > 0 else 0.0
    return f"{report.steps} steps in {report.seconds:.1f} s ({rate:.0f} steps/s)"


COVERAGE_LINES: tuple[tuple[Dimension, ...], ...] = (
    (Dimension.DEVICE_TABLE,),
    (Dimension.MIGRATION_TABLE,),
    (Dimension.SLOT_POSITIONS, Dimension.SLOT_NUMBERS, Dimension.SIDES),
    (Dimension.PHASE_PERTURBATIONS, Dimension.BYTE_LANES),
)
"""Which dimensions share a line of the coverage block."""
NAMED_MISSING = 3
"""A dimension missing at most this many cells names them on its line."""


def _coverage_part(summary: DimensionSummary) -> str:
    name = summary.dimension.value
    if summary.not_applicable is not None:
        return f"{name} not applicable"
    text = f"{name} {len(summary.covered)}/{summary.reachable}"
    extras = []
    if summary.missing and len(summary.missing) <= NAMED_MISSING:
        extras.append(f"missing {', '.join(summary.missing)}")
    if summary.unreachable:
        extras.append(f"{len(summary.unreachable)} unreachable")
    if summary.contradicted:
        extras.append(f"{len(summary.contradicted)} listed unreachable but exercised")
    return text + (f" ({'; '.join(extras)})" if extras else "")


def coverage_lines(coverage: SpecCoverage | None) -> list[str]:
    """The coverage of the spec's space in a few lines (none if the run recorded none)."""
    if coverage is None:
        return []
    by_dimension = {summary.dimension: summary for summary in coverage.summary()}
    lines = [", ".join(_coverage_part(by_dimension[dimension]) for dimension in line) for line in COVERAGE_LINES]
    head = "spec coverage (reachable cells exercised; the JSON and Markdown reports list every cell):"
    return [head, *(f"  {line}" for line in lines)]


def _entry(result: RequirementResult, *, reproductions: bool) -> list[str]:
    lines = [f"  {verdict_line(result)}"]
    counterexample = result.counterexample
    if reproductions and counterexample is not None and result.verdict in (Verdict.FAIL, Verdict.WARN):
        seed = "no seed recorded" if counterexample.seed is None else f"seed {counterexample.seed}"
        replay = (
            ""
            if counterexample.seed is None
            else f" (replay: --seed {counterexample.seed} --requirement {result.requirement.id})"
        )
        lines.append(f"    {seed}{replay}, shrunk to {counterexample.steps} steps:")
        lines.append(textwrap.indent(counterexample.reproduction.rstrip("\n"), "      "))
    return lines


def header_line(report: RunReport) -> str:
    """What was checked, and how."""
    seed = "no seed" if report.seed is None else f"seed {report.seed}"
    return (
        f"vfmig conformance of {report.implementation} (target {report.target.value}, profile {report.profile}, {seed})"
    )


def summary_text(report: RunReport, *, not_covered: bool = True, reproductions: bool = True) -> str:
    """The summary (see the module docstring); optionally without ``not-covered`` entries or reproductions."""
    lines = [header_line(report), counts_line(report), rate_line(report), *coverage_lines(report.coverage)]
    listing: list[str] = []
    for verdict in ORDER:
        if verdict is Verdict.NOT_COVERED and not not_covered:
            continue
        for result in report.results:
            if result.verdict is verdict:
                listing += _entry(result, reproductions=reproductions)
    if report.unattributed:
        listing += ["", "failures of the implementation that no requirement's check owned:"]
        listing += [textwrap.indent(problem, "  ") for problem in report.unattributed]
    if report.stopped:
        listing += ["", f"the run stopped before it finished: {report.stopped}"]
    if report.suite_errors:
        listing += ["", "problems of the run itself:"]
        listing += [textwrap.indent(problem, "  ") for problem in report.suite_errors]
    if listing:
        lines += ["", *listing]
    return "\n".join(lines) + "\n"


FIRST_LINE_IDS = 4
"""How many breaking requirements :func:`failure_line` names."""


def failure_line(report: RunReport) -> str:
    """One line that says what broke (what pytest shows in its short test summary)."""
    broken = [result for result in report.results if result.verdict.breaks_conformance]
    if not broken:
        if report.unattributed:
            return f"not conformant: {report.unattributed[0].splitlines()[0]}"
        if report.suite_errors:
            return f"incomplete: the conformance run itself failed: {report.suite_errors[0].splitlines()[0]}"
        if report.stopped:
            return f"incomplete: {report.stopped}"
        return "conformant"
    named = ", ".join(f"{result.requirement.id} {result.verdict.value}" for result in broken[:FIRST_LINE_IDS])
    more = f" and {len(broken) - FIRST_LINE_IDS} more" if len(broken) > FIRST_LINE_IDS else ""
    return f"not conformant: {named}{more}"


def failure_text(report: RunReport) -> str:
    """:func:`failure_line`, then the summary without ``not-covered`` entries (what a failing pytest item shows)."""
    return failure_line(report) + "\n" + summary_text(report, not_covered=False)
