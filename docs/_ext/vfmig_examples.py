"""Worked examples generated while the site builds: a simulated migration's timeline and a sample report.

``.. vfm:simulation-timeline::`` runs a simulation in-process with the options
of ``vfmig simulate`` (``:memory:``, ``:vfs:``, ``:bandwidth:``, ``:seed:``,
...; they mean what the command's options mean, because they are parsed by the
command's own parser) and shows the command that reproduces it, the timeline
that :func:`reference_impl.timeline.timeline_svg` draws from the run's JSON
report, a table of the pre-copy rounds and a table of the switch-over's phases.

``.. vfm:sample-report::`` runs the conformance suite (``:target:``,
``:implementation:``, ``:profile:`` quick by default, ``:seed:``, and
``:requirements:`` to check only some) and shows the command, the verdicts, each
broken requirement with its counterexample's reproduction, and the Markdown
report that ``vfmig conformance --markdown`` writes for the same run.

Nothing is typed by hand and nothing generated is kept in the repository: every
number on the page comes from the run made during the build, and a page that
uses a directive is read again whenever a module of ``vfmig_proto``,
``reference_impl`` or ``conformance`` changes.  The SVG files are written into
the build's ``_images`` directory when the HTML is written.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.writers.html5 import HTML5Translator

from conformance.cli import simulation_config
from conformance.reports import report_markdown
from conformance.runner import PROFILES, UsageError, run
from conformance.verdicts import RunReport, Target, Verdict
from reference_impl.report import simulation_json
from reference_impl.scenario import Simulation
from reference_impl.timeline import HEIGHT, WIDTH, format_ms, migration_timeline, timeline_description, timeline_svg

_ROOT = Path(__file__).resolve().parents[2]
_SOURCES = ("vfmig_proto", "reference_impl", "conformance")

SIMULATE_OPTIONS = (
    "memory",
    "vfs",
    "dma-rate",
    "dma-read-rate",
    "cpu-dirty-rate",
    "cpu-working-set",
    "bandwidth",
    "downtime-limit",
    "link-latency",
    "precopy-limit",
    "max-rounds",
    "on-precopy-limit",
    "ack-timeout-ms",
    "slots",
    "buffers",
    "seed",
    "fault",
)
"""The options of ``vfmig simulate`` the timeline directive takes, under the same names."""


class timeline_figure(nodes.General, nodes.Element):  # noqa: N801 - docutils names nodes in lowercase
    """A generated SVG drawing: ``svg`` (the document) and ``alt`` (what it shows, for readers without it)."""


def visit_timeline_html(translator: HTML5Translator, node: timeline_figure) -> None:
    """Write the SVG into the build's images and show it, linked to itself."""
    svg: str = node["svg"]
    name = f"vfm-timeline-{hashlib.sha256(svg.encode()).hexdigest()[:16]}.svg"
    builder = translator.builder
    target = Path(builder.outdir, builder.imagedir, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_text(encoding="utf-8") != svg:
        target.write_text(svg, encoding="utf-8")
    source = f"{builder.imgpath}/{name}"
    alt = translator.attval(node["alt"])
    # An <img> scales with the column; a click opens the SVG itself, where every round's and phase's
    # <title> shows as a tooltip.
    translator.body.append(
        f'<div class="vfm-timeline"><a class="vfm-timeline-link" href="{source}">'
        f'<img class="vfm-timeline" src="{source}" alt="{alt}" width="{WIDTH}" height="{HEIGHT}" '
        f'style="max-width: 100%; height: auto;"/></a></div>\n'
    )
    raise nodes.SkipNode


def skip_node(translator: Any, node: nodes.Node) -> None:
    raise nodes.SkipNode


def _table(headers: Sequence[str], rows: Sequence[Sequence[str | nodes.Node]], classes: list[str]) -> nodes.table:
    """A docutils table: a header row, then ``rows``; a cell is text or a node."""
    table = nodes.table(classes=classes)
    group = nodes.tgroup(cols=len(headers))
    table += group
    for _ in headers:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    head += _row(headers)
    body = nodes.tbody()
    group += body
    for row in rows:
        body += _row(row)
    return table


def _row(cells: Sequence[str | nodes.Node]) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        paragraph = nodes.paragraph()
        paragraph += nodes.Text(cell) if isinstance(cell, str) else cell
        entry += paragraph
        row += entry
    return row


def _code(text: str, language: str, caption: str | None = None) -> nodes.Element:
    block = nodes.literal_block(text, text, language=language)
    if caption is None:
        return block
    container = nodes.container("", literal_block=True, classes=["literal-block-wrapper"])
    container += nodes.caption(caption, caption)
    container += block
    return container


def _requirement_ref(requirement_id: str) -> addnodes.pending_xref:
    """A link to the requirement, as ``:vfm:req:`ID``` makes it."""
    ref = addnodes.pending_xref(
        "", refdomain="vfm", reftype="req", reftarget=requirement_id, refexplicit=False, refwarn=False
    )
    ref += nodes.literal(requirement_id, requirement_id)
    return ref


class _GeneratedDirective(SphinxDirective):
    """A directive whose output comes from running the code: the page depends on every module."""

    def note_sources(self) -> None:
        for package in _SOURCES:
            for path in sorted((_ROOT / package).rglob("*.py")):
                self.env.note_dependency(str(path))

    def problem(self, message: str) -> list[nodes.Node]:
        """An error in the page (a warning: the build fails under -W) instead of the generated content."""
        return [self.state.document.reporter.error(f"{self.name}: {message}", line=self.lineno)]


class SimulationTimelineDirective(_GeneratedDirective):
    """``.. vfm:simulation-timeline::`` with options of ``vfmig simulate``; ``:caption:`` for the figure."""

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {
        **dict.fromkeys(SIMULATE_OPTIONS, directives.unchanged_required),
        "caption": directives.unchanged,
    }

    def arguments_of(self) -> list[str]:
        """The ``vfmig simulate`` arguments the options spell, in the command's order."""
        arguments: list[str] = []
        for name in SIMULATE_OPTIONS:
            if name in self.options:
                arguments += [f"--{name}", str(self.options[name])]
        return arguments

    def run(self) -> list[nodes.Node]:
        arguments = self.arguments_of()
        try:
            config = simulation_config(arguments)
        except (ValueError, SystemExit) as exc:
            return self.problem(f"bad simulate options {arguments}: {exc}")
        self.note_sources()
        document = simulation_json(Simulation(config).run())
        timeline = migration_timeline(document)
        command = shlex.join(["vfmig", "simulate", *arguments, "--json", "--timeline", "timeline.svg"])
        figure = nodes.figure(classes=["vfm-timeline-figure"])
        figure += timeline_figure(svg=timeline_svg(document), alt=timeline_description(timeline))
        caption = self.options.get("caption") or timeline.title
        figure += nodes.caption(caption, caption)
        rounds = _table(
            ["Round", "Start (ms)", "End (ms)", "Pages sent", "Dirty at its end"],
            [
                [
                    str(item.number),
                    format_ms(item.start_ms, fine=True),
                    "cut short" if item.end_ms is None else format_ms(item.end_ms, fine=True),
                    f"{item.pages:,}",
                    "-" if item.dirty_at_end is None else f"{item.dirty_at_end:,}",
                ]
                for item in timeline.rounds
            ],
            ["vfm-timeline-rounds"],
        )
        phases = _table(
            ["Phase", "From (ms)", "To (ms)", "Duration (ms)", "What happens"],
            [
                [
                    phase.name,
                    format_ms(phase.start_ms, fine=True),
                    format_ms(phase.end_ms, fine=True),
                    format_ms(phase.duration_ms, fine=True),
                    phase.description,
                ]
                for phase in timeline.phases
            ],
            ["vfm-timeline-phases"],
        )
        outcome = timeline.outcome if timeline.reason == timeline.outcome else f"{timeline.outcome} ({timeline.reason})"
        totals = nodes.paragraph(
            "",
            f"Outcome: {outcome}; {len(timeline.rounds)} pre-copy rounds; "
            f"{timeline.pages_sent:,} pages sent; downtime {format_ms(timeline.downtime_ms)} ms; "
            f"the handover at {format_ms(timeline.end_ms)} ms; {timeline.lost_pages} lost pages.",
            classes=["vfm-timeline-totals"],
        )
        return [_code(command, "sh", "The run (same options)"), figure, totals, rounds, phases]


class SampleReportDirective(_GeneratedDirective):
    """``.. vfm:sample-report::`` with ``:target:``, ``:implementation:``, ``:seed:`` and the like."""

    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {
        "target": directives.unchanged_required,
        "implementation": directives.unchanged_required,
        "profile": directives.unchanged_required,
        "seed": directives.nonnegative_int,
        "requirements": directives.unchanged_required,
    }

    def run(self) -> list[nodes.Node]:
        try:
            target = Target(self.options.get("target", ""))
        except ValueError:
            return self.problem(f"needs :target: one of {', '.join(t.value for t in Target)}")
        profile = self.options.get("profile", "quick")
        if profile not in PROFILES:
            return self.problem(f"unknown profile {profile!r}")
        seed = int(self.options.get("seed", 1))
        implementation = self.options.get("implementation")
        wanted = [item.strip() for item in self.options.get("requirements", "").split(",") if item.strip()]
        self.note_sources()
        try:
            report = run(target, implementation, profile=profile, seed=seed, requirements=wanted or None)
        except UsageError as exc:
            return self.problem(str(exc))
        return self.render(report, wanted)

    def command(self, report: RunReport, wanted: list[str]) -> str:
        arguments = ["vfmig", "conformance", "--target", report.target.value, "--impl", report.implementation]
        arguments += ["--profile", report.profile, "--seed", str(report.seed)]
        for requirement in wanted:
            arguments += ["--requirement", requirement]
        return shlex.join([*arguments, "--markdown", "report.md"])

    def render(self, report: RunReport, wanted: list[str]) -> list[nodes.Node]:
        verdict = "CONFORMANT" if report.conformant else "NOT CONFORMANT"
        roles = ", ".join(sorted(role.value for role in report.target.roles))
        checked = _table(
            ["Checked", ""],
            [
                ["Implementation", nodes.literal(report.implementation, report.implementation)],
                ["Target", f"{report.target.value} (roles: {roles})"],
                ["Profile, seed", f"{report.profile}, {report.seed}"],
                ["Requirements", str(len(report.results))],
                ["Steps", f"{report.steps:,}"],
                ["Verdict", nodes.strong(verdict, verdict)],
            ],
            ["vfm-report-checked"],
        )
        counts = _table(
            ["Verdict", "Requirements"],
            [[item.value, str(report.count(item))] for item in Verdict if report.count(item)],
            ["vfm-report-counts"],
        )
        out: list[nodes.Node] = [_code(self.command(report, wanted), "sh", "The run (same options)"), checked, counts]
        for result in report.results:
            if result.verdict is Verdict.PASS:
                continue
            head = nodes.paragraph(classes=["vfm-report-finding"])
            head += _requirement_ref(result.requirement.id)
            head += nodes.Text(f" ({result.requirement.keyword.value}): {result.verdict.value}, ")
            head += nodes.Text(f"{result.checks:,} checks")
            out.append(head)
            counterexample = result.counterexample
            if counterexample is None:
                if result.detail:
                    out.append(_code(result.detail, "text", "Detail"))
                continue
            out.append(_code(counterexample.message, "text", f"Message (seed {counterexample.seed})"))
            out.append(
                _code(
                    counterexample.reproduction,
                    "python",
                    f"Reproduction: {counterexample.steps} step(s) after shrinking",
                )
            )
        out.append(_code(report_markdown(report), "markdown", "The Markdown report of the same run (report.md)"))
        return out


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("vfmig_sphinx")  # the vfm domain the directives belong to
    app.add_node(
        timeline_figure,
        html=(visit_timeline_html, None),
        latex=(skip_node, None),
        text=(skip_node, None),
        man=(skip_node, None),
        texinfo=(skip_node, None),
    )
    app.add_directive_to_domain("vfm", "simulation-timeline", SimulationTimelineDirective)
    app.add_directive_to_domain("vfm", "sample-report", SampleReportDirective)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
