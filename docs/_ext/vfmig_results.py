"""The results page: what the conformance suite says of the reference, and which faults it finds.

``.. vfm:verdict-matrix::`` runs the suite of every conformance target against the reference implementation
while the site builds (``:profile:``, ``default`` unless told, and ``:seed:``, 1 unless told) and shows one
row per requirement with each target's verdict, the time the runs took and the command that repeats each.

``.. vfm:detection-table:: PATH`` shows the detection campaign of the catalogue of faulty implementations:
each fault, the requirement it breaks, whether the suite caught it, and in how long.  The campaign takes
minutes, far more than a site build may, so it is read from PATH (relative to the docs directory), the
output of ``python -m conformance.detection`` saved in the repository; the page says when that file was
written and that it is not rerun.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from conformance.runner import PROFILES, run
from conformance.verdicts import RunReport, Target, Verdict

logger = logging.getLogger(__name__)
_SOURCES = ("vfmig_proto", "reference_impl", "conformance")
_ROOT = Path(__file__).resolve().parents[2]


def _paragraph(*children: nodes.Node | str, classes: tuple[str, ...] = ()) -> nodes.paragraph:
    paragraph = nodes.paragraph(classes=list(classes))
    for child in children:
        paragraph += nodes.Text(child) if isinstance(child, str) else child
    return paragraph


def _table(header: list[str], rows: list[list[nodes.Node | str]], classes: list[str]) -> nodes.table:
    table = nodes.table(classes=classes)
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    head_row = nodes.row()
    head += head_row
    for title in header:
        head_row += nodes.entry("", _paragraph(title))
    body = nodes.tbody()
    group += body
    for cells in rows:
        row = nodes.row()
        body += row
        for cell in cells:
            row += nodes.entry("", cell if isinstance(cell, nodes.paragraph) else _paragraph(cell))
    return table


def _requirement_ref(requirement_id: str) -> addnodes.pending_xref:
    literal = nodes.literal(requirement_id, requirement_id, classes=["xref", "vfm", "vfm-req"])
    return addnodes.pending_xref(
        "", literal, refdomain="vfm", reftype="req", reftarget=requirement_id, refexplicit=False, refwarn=True
    )


def _verdict_badge(verdict: Verdict | None) -> nodes.paragraph:
    if verdict is None:
        return _paragraph(nodes.inline("\u2013", "\u2013", classes=["vfm-badge", "vfm-badge-none"]))
    kind = "checked" if verdict is Verdict.PASS else "unchecked" if verdict.breaks_conformance else "other"
    return _paragraph(nodes.inline(verdict.value, verdict.value, classes=["vfm-badge", f"vfm-badge-{kind}"]))


class _BuildDirective(SphinxDirective):
    def note_sources(self) -> None:
        """Read this page again whenever the code it runs changes."""
        for package in _SOURCES:
            for path in sorted((_ROOT / package).rglob("*.py")):
                self.env.note_dependency(str(path))


class VerdictMatrixDirective(_BuildDirective):
    """``.. vfm:verdict-matrix::``: the reference's verdict for every requirement and target, run now."""

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {
        "profile": directives.unchanged_required,
        "seed": directives.nonnegative_int,
    }

    def run(self) -> list[nodes.Node]:
        profile = self.options.get("profile", "default")
        if profile not in PROFILES:
            raise self.error(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
        seed = int(self.options.get("seed", 1))
        self.note_sources()
        started = time.perf_counter()
        reports = {target: run(target, None, profile=profile, seed=seed) for target in Target}
        seconds = time.perf_counter() - started
        logger.info("vfm:verdict-matrix: the three default runs took %.1f s", seconds)
        return [*self._summary(reports, profile, seed, seconds), self._matrix(reports)]

    def _summary(self, reports: dict[Target, RunReport], profile: str, seed: int, seconds: float) -> list[nodes.Node]:
        rows: list[list[nodes.Node | str]] = []
        for target, report in reports.items():
            verdict = "CONFORMANT" if report.conformant else "NOT CONFORMANT"
            counts = ", ".join(f"{report.count(item)} {item.value}" for item in Verdict if report.count(item))
            command = f"vfmig conformance --target {target.value} --profile {profile} --seed {seed}"
            rows.append(
                [
                    target.value,
                    _paragraph(nodes.strong(verdict, verdict)),
                    counts,
                    f"{report.steps:,}",
                    f"{report.seconds:.1f} s",
                    _paragraph(nodes.literal(command, command)),
                ]
            )
        note = _paragraph(
            f"Run while this page was built: the reference implementation, profile {profile}, seed {seed}; "
            f"the three runs took {seconds:.1f} s together."
        )
        table = _table(
            ["Target", "Verdict", "Requirements", "Steps", "Time", "The same run"], rows, ["vfm-results-summary"]
        )
        return [note, table]

    def _matrix(self, reports: dict[Target, RunReport]) -> nodes.table:
        verdicts: dict[str, dict[Target, Verdict]] = {}
        for target, report in reports.items():
            for result in report.results:
                verdicts.setdefault(result.requirement.id, {})[target] = result.verdict
        rows: list[list[nodes.Node | str]] = [
            [_paragraph(_requirement_ref(requirement)), *(_verdict_badge(found.get(target)) for target in Target)]
            for requirement, found in verdicts.items()
        ]
        return _table(["Requirement", *(target.value for target in Target)], rows, ["vfm-matrix", "vfm-compact"])


@dataclass(frozen=True)
class DetectionRow:
    """One row of ``python -m conformance.detection``'s table."""

    target: str
    fault: str
    breaks: str
    verdict: str
    found: bool
    seconds: str
    steps: str


def parse_detection(text: str) -> tuple[list[DetectionRow], str, str]:
    """The rows, the summary line and the first line (when and how the file was made) of a saved campaign."""
    rows, summary, made = [], "", ""
    for line in text.splitlines():
        fields = line.split()
        if line.startswith("#"):
            made = made or line.lstrip("# ")
        elif line.startswith("detected "):
            summary = line
        elif len(fields) == 7 and fields[0] in {target.value for target in Target}:  # noqa: PLR2004 - the columns
            target, fault, breaks, verdict, found, seconds, steps = fields
            rows.append(DetectionRow(target, fault, breaks, verdict, found == "yes", seconds, steps))
    return rows, summary, made


class DetectionTableDirective(SphinxDirective):
    """``.. vfm:detection-table:: PATH``: the saved detection campaign, one row per fault."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        relative, path = self.env.relfn2path(self.arguments[0])
        self.env.note_dependency(relative)
        try:
            rows, summary, made = parse_detection(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise self.error(f"cannot read the detection campaign {path}: {error}") from error
        if not rows:
            raise self.error(f"{path} has no row of `python -m conformance.detection`")
        body: list[list[nodes.Node | str]] = [
            [
                row.target,
                _paragraph(nodes.literal(row.fault, row.fault)),
                _paragraph(_requirement_ref(row.breaks)),
                row.verdict,
                _paragraph(
                    nodes.inline(
                        "caught" if row.found else "missed",
                        "caught" if row.found else "missed",
                        classes=["vfm-badge", "vfm-badge-checked" if row.found else "vfm-badge-unchecked"],
                    )
                ),
                row.seconds,
                row.steps,
            ]
            for row in rows
        ]
        out: list[nodes.Node] = []
        if made:
            out.append(_paragraph(made))
        if summary:
            out.append(_paragraph(nodes.strong(summary, summary)))
        else:
            caught = sum(row.found for row in rows)
            text = (
                f"Incomplete: the saved campaign has no summary line, so it stopped before its end; "
                f"{caught} of the {len(rows)} faults it ran were caught."
            )
            out.append(_paragraph(nodes.strong(text, text)))
        out.append(
            _table(
                ["Target", "Fault", "Breaks", "Expected verdict", "Caught", "Seconds to detect", "Steps"],
                body,
                ["vfm-detection-table", "vfm-compact"],
            )
        )
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("vfmig_sphinx")  # the vfm domain the directives belong to
    app.add_directive_to_domain("vfm", "verdict-matrix", VerdictMatrixDirective)
    app.add_directive_to_domain("vfm", "detection-table", DetectionTableDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
