"""A simulated migration's timeline, drawn as SVG from what ``vfmig simulate --json`` prints.

:func:`migration_timeline` reads the JSON object of :mod:`reference_impl.report`
(the whole run's document, or one entry of its ``migrations``) and returns the
phases of one migration: its pre-copy rounds, then the switch-over — the
pause (REQUEST_PAUSE until STOPPED), stop-and-copy (STOPPED until the handover
point) and the resume (the handover until the vCPUs run on the destination).
:func:`timeline_svg` draws them: one bar per round, as long as the round and as
high as the pages it sent, with the pages dirty at its end beside it; the
switch-over phases as bands; a time axis in milliseconds; and below, the
switch-over's phases side by side with their exact times, since a pause of a
few microseconds has no width on a scale of seconds.

Pure functions: no I/O, no plotting library; the SVG is self-contained, with a
``<title>`` for the figure and for every round and phase (screen readers and
tooltips), and ``data-*`` attributes that carry the report's numbers unrounded.
``vfmig simulate --timeline FILE.svg`` writes it; the docs draw theirs at build
time with the same function.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from reference_impl.units import format_size


@dataclass(frozen=True)
class Round:
    """One pre-copy round, as the report gives it (times in ms from the migration's START)."""

    number: int
    start_ms: float
    end_ms: float | None
    """None when the round was cut short (by the pre-copy limit, or the migration's end)."""
    pages: int
    """Pages the round set out to send: every page in round 1, the previous round's dirty log after."""
    dirty_at_end: int | None
    """Pages in the dirty log when the round ended: the next round's size (or what stop-and-copy sends)."""
    sent: int | None = None
    """Pages of the round sent (None in a report from before it said so)."""

    @property
    def drawn_pages(self) -> int:
        """The bar's height: the pages it sent when it was cut short (a cancel after 491 of 16,384), else all."""
        return self.sent if self.end_ms is None and self.sent is not None else self.pages

    @property
    def pages_label(self) -> str:
        """The bar's label: its pages, or how many of them were sent."""
        if self.drawn_pages == self.pages:
            return f"{self.pages:,} pages"
        return f"{self.drawn_pages:,} of {self.pages:,} pages"


@dataclass(frozen=True)
class Phase:
    """One phase of the switch-over."""

    name: str
    """``pause``, ``stop-and-copy`` or ``resume``."""
    start_ms: float
    end_ms: float
    description: str

    @property
    def duration_ms(self) -> float:
        """How long the phase lasted."""
        return self.end_ms - self.start_ms


@dataclass(frozen=True)
class Timeline:
    """One migration's phases, read from a simulate report."""

    outcome: str
    reason: str
    rounds: tuple[Round, ...]
    phases: tuple[Phase, ...]
    end_ms: float
    """The migration's end: the handover point when it completed, back in IDLE otherwise."""
    downtime_ms: float
    stopped_ms: float | None
    resumed_ms: float | None
    lost_pages: int
    pages_sent: int
    title: str

    @property
    def precopy_end_ms(self) -> float:
        """Where pre-copy stopped: the switch-over, or the migration's end if there was none."""
        pauses = [phase.start_ms for phase in self.phases if phase.name == "pause"]
        return pauses[0] if pauses else self.end_ms

    @property
    def span_ms(self) -> float:
        """The time the figure covers: START until the last thing it shows."""
        ends = [self.end_ms, *(p.end_ms for p in self.phases), *(r.end_ms for r in self.rounds if r.end_ms)]
        if self.resumed_ms is not None:
            ends.append(self.resumed_ms)
        return max(ends)


PHASE_DESCRIPTIONS = {
    "pause": "REQUEST_PAUSE until STOPPED: the drivers stop DMA, dirty what it wrote and acknowledge",
    "stop-and-copy": "STOPPED until the handover point: the vCPUs are stopped, the last dirty pages "
    "and the device state go to the destination",
    "resume": "the handover point until the vCPUs run on the destination, its functions fresh from reset",
    "stopped": "STOPPED until the vCPUs run again on the source: the migration was abandoned",
}
"""What each phase of the switch-over is (the labels of the figure and of the docs' tables)."""


def _migration(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """The migration the report's ``rounds`` describe: its last one."""
    migrations = report.get("migrations")
    if isinstance(migrations, Sequence) and migrations:
        last: Mapping[str, Any] = migrations[-1]
        return last
    return report


def _title(report: Mapping[str, Any], migration: Mapping[str, Any]) -> str:
    config = report.get("config")
    parts = []
    if isinstance(config, Mapping) and "memory_bytes" in config:
        bandwidth = config.get("migration", {}).get("bandwidth")
        parts.append(f"{format_size(int(config['memory_bytes']))} guest, {config.get('vfs')} VFs")
        if bandwidth:
            parts.append(f"{format_size(int(bandwidth))}/s stream")
    number = migration.get("number")
    head = "Migration" if number is None else f"Migration {number}"
    outcome = str(migration["outcome"])
    if migration["reason"] != outcome:
        outcome += f" ({migration['reason']})"
    return f"{head}: {outcome}" + (f", {', '.join(parts)}" if parts else "")


def migration_timeline(report: Mapping[str, Any]) -> Timeline:
    """The phases of the last migration of a ``vfmig simulate --json`` report (or of one migration's entry)."""
    migration = _migration(report)
    rounds = tuple(
        Round(
            number=int(item["round"]),
            start_ms=float(item["start_ms"]),
            end_ms=None if item["end_ms"] is None else float(item["end_ms"]),
            pages=int(item["pages"]),
            dirty_at_end=None if item["dirty_at_end"] is None else int(item["dirty_at_end"]),
            sent=None if item.get("sent") is None else int(item["sent"]),
        )
        for item in migration["rounds"]
    )
    end_ms = float(migration["total_time_ms"])
    completed = migration["outcome"] == "completed"
    requested = migration.get("pause_requested_ms")
    stopped = migration.get("stopped_ms")
    resumed = migration.get("resumed_ms")
    phases: list[Phase] = []
    if requested is not None:
        pause_end = stopped if stopped is not None else end_ms
        phases.append(Phase("pause", float(requested), float(pause_end), PHASE_DESCRIPTIONS["pause"]))
    if stopped is not None:
        if completed:
            phases.append(Phase("stop-and-copy", float(stopped), end_ms, PHASE_DESCRIPTIONS["stop-and-copy"]))
        else:
            until = float(resumed) if resumed is not None else end_ms
            phases.append(Phase("stopped", float(stopped), until, PHASE_DESCRIPTIONS["stopped"]))
    if completed and resumed is not None:
        phases.append(Phase("resume", end_ms, float(resumed), PHASE_DESCRIPTIONS["resume"]))
    return Timeline(
        outcome=str(migration["outcome"]),
        reason=str(migration["reason"]),
        rounds=rounds,
        phases=tuple(phases),
        end_ms=end_ms,
        downtime_ms=float(migration["downtime_ms"]),
        stopped_ms=None if stopped is None else float(stopped),
        resumed_ms=None if resumed is None else float(resumed),
        lost_pages=int(migration["lost_pages"]),
        pages_sent=int(migration["pages_sent"]),
        title=_title(report, migration),
    )


FINE_BELOW_MS = 10
"""Times shorter than this many ms are printed with 3 decimals (microseconds matter there), longer with 1."""


def format_ms(value: float, *, fine: bool = False) -> str:
    """A time in ms as the figure and the tables print it: 3 decimals below :data:`FINE_BELOW_MS` (or if
    ``fine``), 1 above."""
    return f"{value:,.3f}" if fine or abs(value) < FINE_BELOW_MS else f"{value:,.1f}"


def _nice_step(span: float, ticks: int) -> float:
    """A step of 1, 2 or 5 times a power of ten that cuts ``span`` into about ``ticks`` parts."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(factor * power for factor in (1, 2, 5, 10) if factor * power >= raw)


# -- drawing ------------------------------------------------------------------------------------------------

WIDTH = 900
_LEFT, _RIGHT = 78, 24
_PLOT_TOP, _PLOT_BOTTOM = 86, 316
_DETAIL_TOP = 376
_DETAIL_HEIGHT = 64
HEIGHT = 500
_DIRTY_WIDTH = 7.0
_MIN_BAND = 3.0
_LABEL_WIDTH = 40.0
"""Narrower rounds carry no labels (their numbers stay in their ``<title>``)."""
_WHITE = ' fill="#ffffff"'

COLOURS = {
    "round": "#4c78a8",
    "dirty": "#f58518",
    "pause": "#b279a2",
    "stop-and-copy": "#e45756",
    "stopped": "#e45756",
    "resume": "#54a24b",
    "axis": "#333333",
    "grid": "#dddddd",
    "text": "#222222",
    "muted": "#666666",
}


def _attr(value: object) -> str:
    return quoteattr(str(value))


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _round_title(item: Round) -> str:
    start = f"Pre-copy round {item.number}: {format_ms(item.start_ms)} ms to"
    if item.end_ms is None:
        sent = "" if item.sent is None else f", {item.sent:,} sent"
        return f"{start} cut short, {item.pages:,} pages to send{sent}"
    dirty = "" if item.dirty_at_end is None else f"; {item.dirty_at_end:,} pages dirty at its end"
    return f"{start} {format_ms(item.end_ms)} ms, {item.pages:,} pages to send{dirty}"


def _phase_title(phase: Phase) -> str:
    fine = phase.duration_ms < FINE_BELOW_MS
    return (
        f"{phase.name}: {format_ms(phase.start_ms, fine=fine)} ms to {format_ms(phase.end_ms, fine=fine)} ms "
        f"({format_ms(phase.duration_ms)} ms) — {phase.description}"
    )


def timeline_description(timeline: Timeline) -> str:
    """One paragraph that says what the figure shows (its ``<desc>``, and the docs' alt text)."""
    rounds = ", ".join(
        f"round {item.number} {item.pages_label}"
        + ("" if item.dirty_at_end is None else f" ({item.dirty_at_end:,} dirty at its end)")
        for item in timeline.rounds
    )
    phases = ", ".join(f"{phase.name} {format_ms(phase.duration_ms)} ms" for phase in timeline.phases)
    return (
        f"{timeline.title}. {len(timeline.rounds)} pre-copy rounds: {rounds or 'none'}. "
        f"Switch-over: {phases or 'none'}. Downtime {format_ms(timeline.downtime_ms)} ms, "
        f"{timeline.pages_sent:,} pages sent, {timeline.lost_pages} lost."
    )


@dataclass(frozen=True)
class _Scale:
    """Where a time and a page count land in the plot."""

    span_ms: float
    page_max: float
    page_step: float

    @property
    def width(self) -> float:
        return WIDTH - _LEFT - _RIGHT

    def x(self, ms: float) -> float:
        return _LEFT + self.width * ms / self.span_ms

    def y(self, pages: float) -> float:
        return _PLOT_BOTTOM - (_PLOT_BOTTOM - _PLOT_TOP) * pages / self.page_max


def _scale(timeline: Timeline) -> _Scale:
    top_pages = max([1, *(r.drawn_pages for r in timeline.rounds), *(r.dirty_at_end or 0 for r in timeline.rounds)])
    page_step = _nice_step(top_pages, 4)
    return _Scale(timeline.span_ms or 1.0, page_step * math.ceil(top_pages / page_step), page_step)


def _header(timeline: Timeline, ids: str, top: int | None) -> list[str]:
    """The panel's ``<svg>`` element (at ``top`` inside a figure of several), its title and its summary line."""
    place = "" if top is None else f' x="0" y="{top}"'
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg"{place} width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{ids}-timeline-title {ids}-timeline-desc" '
        f'font-family="sans-serif" class="vfm-timeline" data-outcome={_attr(timeline.outcome)} '
        f'data-rounds="{len(timeline.rounds)}" data-downtime-ms="{timeline.downtime_ms}">',
        f'<title id="{ids}-timeline-title">{escape(timeline.title)}</title>',
        f'<desc id="{ids}-timeline-desc">{escape(timeline_description(timeline))}</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<g fill="{COLOURS["text"]}">',
        _text(_LEFT, 24, timeline.title, size=15, extra=' font-weight="bold"'),
        _text(
            _LEFT,
            44,
            f"downtime {format_ms(timeline.downtime_ms)} ms · {timeline.pages_sent:,} pages sent · "
            f"{timeline.lost_pages} lost",
            extra=f' fill="{COLOURS["muted"]}"',
        ),
        "</g>",
    ]


def _axes(scale: _Scale) -> list[str]:
    label = ' stroke="none" fill="#444"'
    out = [f'<g class="vfm-axes" stroke="{COLOURS["grid"]}" stroke-width="1" font-size="11">']
    for index in range(round(scale.page_max / scale.page_step) + 1):
        pages = index * scale.page_step
        y = scale.y(pages)
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{WIDTH - _RIGHT}" y2="{y:.1f}"/>')
        out.append(_text(_LEFT - 6, y + 4, f"{int(pages):,}", anchor="end", extra=label))
    time_step = _nice_step(scale.span_ms, 8)
    for index in range(math.floor(scale.span_ms / time_step + 1e-9) + 1):
        tick = index * time_step
        x = scale.x(tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{_PLOT_BOTTOM}" x2="{x:.1f}" y2="{_PLOT_BOTTOM + 5}" stroke="{COLOURS["axis"]}"/>'
        )
        out.append(_text(x, _PLOT_BOTTOM + 18, f"{tick:,.0f}", anchor="middle", extra=label))
    middle = (_PLOT_TOP + _PLOT_BOTTOM) / 2
    axis = f'stroke="{COLOURS["axis"]}"'
    out += [
        f'<line x1="{_LEFT}" y1="{_PLOT_BOTTOM}" x2="{WIDTH - _RIGHT}" y2="{_PLOT_BOTTOM}" {axis}/>',
        f'<line x1="{_LEFT}" y1="{_PLOT_TOP - 6}" x2="{_LEFT}" y2="{_PLOT_BOTTOM}" {axis}/>',
        _text(WIDTH - _RIGHT, _PLOT_BOTTOM + 36, "time since START (ms)", anchor="end", extra=label),
        _text(18, middle, "pages", anchor="middle", extra=f'{label} transform="rotate(-90 18 {middle:.1f})"'),
        "</g>",
    ]
    return out


def _bands(timeline: Timeline, scale: _Scale) -> list[str]:
    """The switch-over's phases as bands behind the rounds, at least a few pixels wide."""
    out = ['<g class="vfm-phases">']
    for phase in timeline.phases:
        x0, x1 = scale.x(phase.start_ms), scale.x(phase.end_ms)
        out.append(
            f'<g class="vfm-phase" data-phase={_attr(phase.name)} data-start-ms="{phase.start_ms}" '
            f'data-end-ms="{phase.end_ms}"><title>{escape(_phase_title(phase))}</title>'
            f'<rect x="{x0:.2f}" y="{_PLOT_TOP - 6}" width="{max(x1 - x0, _MIN_BAND):.2f}" '
            f'height="{_PLOT_BOTTOM - _PLOT_TOP + 6}" fill="{COLOURS[phase.name]}" fill-opacity="0.28"/></g>'
        )
    if timeline.phases:
        first = scale.x(timeline.phases[0].start_ms)
        last = scale.x(max(phase.end_ms for phase in timeline.phases))
        centre = (first + last) / 2
        near_edge = centre > WIDTH - _RIGHT - 60
        out.append(
            _text(
                WIDTH - _RIGHT if near_edge else centre,
                _PLOT_TOP - 12,
                "switch-over",
                anchor="end" if near_edge else "middle",
                size=11,
                extra=f' fill="{COLOURS["muted"]}"',
            )
        )
    out.append("</g>")
    return out


def _text_width(text: str, size: int) -> float:
    """A generous estimate of a label's width in a sans-serif font (no font metrics at hand)."""
    return 0.62 * size * len(text)


def _round(item: Round, timeline: Timeline, scale: _Scale, ids: str) -> list[str]:
    """One pre-copy round: a bar as long as the round and as high as its pages, its dirty log at its end."""
    x0 = scale.x(item.start_ms)
    x1 = scale.x(item.end_ms if item.end_ms is not None else timeline.precopy_end_ms)
    width = max(x1 - x0, 1.0)
    y = scale.y(item.drawn_pages)
    dirty = "" if item.dirty_at_end is None else f' data-dirty-at-end="{item.dirty_at_end}"'
    end = "" if item.end_ms is None else f' data-end-ms="{item.end_ms}"'
    dashed = ' stroke-dasharray="4 3"' if item.end_ms is None else ""
    sent = "" if item.sent is None else f' data-sent="{item.sent}"'
    out = [
        f'<g class="vfm-round" id="{ids}-round-{item.number}" data-round="{item.number}" '
        f'data-pages="{item.pages}"{sent}{dirty} data-start-ms="{item.start_ms}"{end}>'
        f"<title>{escape(_round_title(item))}</title>",
        f'<rect class="vfm-round-pages" x="{x0:.2f}" y="{y:.2f}" width="{width:.2f}" '
        f'height="{_PLOT_BOTTOM - y:.2f}" fill="{COLOURS["round"]}" fill-opacity="0.85" '
        f'stroke="#ffffff" stroke-width="1"{dashed}/>',
    ]
    labelled = width >= max(_LABEL_WIDTH, _text_width(item.pages_label, 11))
    if item.dirty_at_end is not None:
        dirty_y = scale.y(item.dirty_at_end)
        dirty_width = min(_DIRTY_WIDTH, width / 2)
        out.append(
            f'<rect class="vfm-round-dirty" x="{x1 - dirty_width:.2f}" y="{dirty_y:.2f}" '
            f'width="{dirty_width:.2f}" height="{_PLOT_BOTTOM - dirty_y:.2f}" fill="{COLOURS["dirty"]}"/>'
        )
        label = f"{item.dirty_at_end:,} dirty"
        if _text_width(label, 10) + 4 <= width:
            out.append(_text(x1 - 2, _PLOT_BOTTOM - 6, label, anchor="end", size=10, extra=_WHITE))
    if labelled:
        middle = x0 + width / 2
        out.append(_text(middle, y - 18, f"round {item.number}", anchor="middle", size=11))
        out.append(
            _text(middle, y - 5, item.pages_label, anchor="middle", size=11, extra=f' fill="{COLOURS["round"]}"')
        )
    out.append("</g>")
    return out


def _rounds(timeline: Timeline, scale: _Scale, ids: str) -> list[str]:
    out = ['<g class="vfm-rounds">']
    for item in timeline.rounds:
        out += _round(item, timeline, scale, ids)
    if not timeline.rounds:
        out.append(_text(_LEFT + 10, _PLOT_TOP + 20, "no pre-copy round", extra=f' fill="{COLOURS["muted"]}"'))
    out.append("</g>")
    return out


def _switch_over(timeline: Timeline, scale: _Scale) -> list[str]:
    """The switch-over, not to scale: one box per phase with its exact times, and the downtime under them."""
    out = [f'<g class="vfm-switch-over" fill="{COLOURS["text"]}">']
    out.append(_text(_LEFT, _DETAIL_TOP - 10, "switch-over, phase by phase (not to scale)", size=12))
    gap = 10.0
    box = (scale.width - gap * (max(len(timeline.phases), 1) - 1)) / max(len(timeline.phases), 1)
    for index, phase in enumerate(timeline.phases):
        x = _LEFT + index * (box + gap)
        fine = phase.duration_ms < FINE_BELOW_MS
        times = f"{format_ms(phase.start_ms, fine=fine)} → {format_ms(phase.end_ms, fine=fine)} ms"
        out += [
            f'<g class="vfm-phase-detail" data-phase={_attr(phase.name)}><title>{escape(_phase_title(phase))}</title>'
            f'<rect x="{x:.1f}" y="{_DETAIL_TOP}" width="{box:.1f}" height="{_DETAIL_HEIGHT}" rx="4" '
            f'fill="{COLOURS[phase.name]}" fill-opacity="0.28" stroke="{COLOURS[phase.name]}"/>',
            _text(x + 8, _DETAIL_TOP + 18, phase.name, size=12, extra=' font-weight="bold"'),
            _text(x + 8, _DETAIL_TOP + 36, f"{format_ms(phase.duration_ms)} ms", size=12),
            _text(x + 8, _DETAIL_TOP + 53, times, size=11, extra=f' fill="{COLOURS["muted"]}"'),
            "</g>",
        ]
    if not timeline.phases:
        out.append(_text(_LEFT, _DETAIL_TOP + 20, "the migration ended before a switch-over", size=12))
    stopped = [i for i, phase in enumerate(timeline.phases) if phase.name in ("stop-and-copy", "stopped", "resume")]
    if stopped and timeline.downtime_ms:
        x0 = _LEFT + stopped[0] * (box + gap)
        x1 = _LEFT + stopped[-1] * (box + gap) + box
        y = _DETAIL_TOP + _DETAIL_HEIGHT + 12
        downtime = f"downtime: vCPUs stopped for {format_ms(timeline.downtime_ms)} ms"
        out += [
            f'<path d="M{x0:.1f},{y - 5} V{y} H{x1:.1f} V{y - 5}" fill="none" stroke="{COLOURS["axis"]}"/>',
            _text((x0 + x1) / 2, y + 16, downtime, anchor="middle", size=12),
        ]
    out.append("</g>")
    return out


def _legend(timeline: Timeline) -> list[str]:
    entries = [
        ("round", "pages a pre-copy round sends"),
        ("dirty", "dirty at the round's end"),
        *((phase.name, phase.name) for phase in timeline.phases),
    ]
    out = [f'<g class="vfm-legend" fill="{COLOURS["text"]}" font-size="11">']
    x, y = float(_LEFT), HEIGHT - 16
    for colour, label in entries:
        out.append(f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" fill="{COLOURS[colour]}"/>')
        out.append(_text(x + 17, y, label, size=11))
        x += 30 + 6.2 * len(label)
    out.append("</g>")
    return out


def _panel(timeline: Timeline, *, ids: str = "vfm", top: int | None = None) -> list[str]:
    """One migration's drawing, an ``<svg>`` element of WIDTH x HEIGHT; ``ids`` prefixes its element IDs."""
    scale = _scale(timeline)
    return [
        *_header(timeline, ids, top),
        *_axes(scale),
        *_bands(timeline, scale),
        *_rounds(timeline, scale, ids),
        *_switch_over(timeline, scale),
        *_legend(timeline),
        "</svg>",
    ]


def _each_migration(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The report once per migration, each carrying the run's ``config`` (for the titles)."""
    migrations = report.get("migrations")
    if not isinstance(migrations, Sequence) or len(migrations) <= 1:  # one migration: the report as it is
        return [report]
    return [{**migration, "config": report.get("config")} for migration in migrations]


def timeline_svg(report: Mapping[str, Any]) -> str:
    """The timeline of every migration of a ``vfmig simulate --json`` report, as a standalone SVG document.

    One migration is one drawing; several are drawn one under the other, each as its own ``<svg>``
    panel inside the document, in the order they ran.
    """
    runs = _each_migration(report)
    if len(runs) == 1:
        return "\n".join(_panel(migration_timeline(runs[0]))) + "\n"
    height = HEIGHT * len(runs)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" class="vfm-timelines">',
        f"<title>{len(runs)} migrations</title>",
    ]
    for index, run in enumerate(runs):
        timeline = migration_timeline(run)
        parts += _panel(timeline, ids=f"vfm-m{run.get('number', index + 1)}", top=index * HEIGHT)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
