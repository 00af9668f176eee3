"""Live progress of a conformance run on a terminal (rich), fed by the harness as the run goes.

Front-door code.  The display is a few short lines under a spinner: the
elapsed time, the examples and steps run, how many requirements are judged out
of how many, the verdicts found so far, and the profile's budget; each
requirement that fails, warns, times out or raises is printed above it the
moment it is judged, wrapped at word boundaries.  Every line is built to fit
80 columns whole, so a narrow terminal wraps words instead of cutting numbers
to ``1…``.  A parallel run (:mod:`conformance.parallel`) counts finished
shards instead of steps.  When disabled (standard error is not a terminal, or
``--no-progress``) every method is a cheap no-op.
"""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from conformance.harness import Progress
from conformance.summary import verdict_line
from conformance.verdicts import RequirementResult, RunReport, Verdict

SHOWN = (Verdict.FAIL, Verdict.WARN, Verdict.TIMEOUT, Verdict.ERROR)
"""The verdicts the display counts and prints as they arrive (a pass is only known at the end)."""

STYLES: dict[Verdict, str] = {
    Verdict.FAIL: "bold red",
    Verdict.WARN: "yellow",
    Verdict.TIMEOUT: "magenta",
    Verdict.ERROR: "red",
}

_REFRESH_PER_SECOND = 8


def _elapsed(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


class ConformanceProgress:
    """A spinner over the run's figures (or, with ``shards``, over finished shards) and the verdicts so far."""

    def __init__(self, title: str, *, enabled: bool, shards: int | None = None, budget: str = "") -> None:
        self.enabled = enabled
        self.title = title
        self.budget = budget
        self.counts: Counter[Verdict] = Counter()
        self.shards = shards
        self.shards_done = 0
        self.latest: Progress | None = None
        self._printed: set[str] = set()
        self._started = time.monotonic()
        self._console = Console(stderr=True) if enabled else None
        self._spinner = Spinner("dots")
        self._live: Live | None = None
        if self._console is not None:
            self._live = Live(
                self,
                console=self._console,
                refresh_per_second=_REFRESH_PER_SECOND,
                transient=True,
                redirect_stdout=False,
            )

    def __enter__(self) -> ConformanceProgress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()

    # -------------------------------------------------------------------------------- what the run reports

    def verdict(self, result: RequirementResult) -> None:
        """A requirement was judged: print it above the spinner (wrapped at words) and count it."""
        if result.verdict not in SHOWN or result.requirement.id in self._printed:
            return
        self._printed.add(result.requirement.id)
        self.counts[result.verdict] += 1
        if self._live is not None:
            self._live.console.print(Text(verdict_line(result, chars=None), style=STYLES[result.verdict]))

    def progress(self, figures: Progress) -> None:
        """The harness's latest figures (examples, steps, requirements judged)."""
        self.latest = figures

    def shard_done(self, index: int, report: RunReport) -> None:
        """Shard ``index`` of a parallel run finished: count it and show its new findings."""
        for result in report.results:
            self.verdict(result)
        self.shards_done += 1

    # -------------------------------------------------------------------------------- what the display shows

    def lines(self) -> list[str]:
        """The display's lines, each short enough for 80 columns."""
        elapsed = _elapsed(time.monotonic() - self._started)
        lines = [f"{self.title}  {elapsed}"]
        if self.shards is not None:
            lines.append(f"shards {self.shards_done} of {self.shards} done")
        elif self.latest is not None:
            figures = self.latest
            restarts = f", {figures.restarts} worker restarts" if figures.restarts else ""
            lines.append(f"examples {figures.examples:,}, steps {figures.steps:,}{restarts}")
            lines.append(f"judged {figures.judged} of {figures.total} requirements")
        found = ", ".join(f"{self.counts[verdict]} {verdict.value}" for verdict in SHOWN if self.counts[verdict])
        lines.append(f"found {found}" if found else "nothing broken yet")
        if self.budget:
            lines.append(f"budget: {self.budget}")
        return lines

    def __rich__(self) -> RenderableType:
        first, *rest = self.lines()
        self._spinner.text = Text(first, style="bold")
        return Group(self._spinner, *(Text(f"  {line}") for line in rest))
