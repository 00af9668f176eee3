"""Live progress of a conformance run on a terminal (rich), fed by the runner's verdicts as they arrive.

Front-door code, in the style of :mod:`conformance.progress`: a spinner with
the elapsed time and the verdicts found so far, and each requirement that
fails, warns, times out or raises printed above it the moment it is judged.
A parallel run (:mod:`conformance.parallel`) shows a bar over its shards
instead.  When disabled (standard error is not a terminal, or
``--no-progress``) every method is a cheap no-op.
"""

from __future__ import annotations

from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

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


class ConformanceProgress:
    """A spinner (or, with ``shards``, a bar over the shards) and the verdicts found so far."""

    def __init__(self, title: str, *, enabled: bool, shards: int | None = None) -> None:
        self.enabled = enabled
        self.counts: Counter[Verdict] = Counter()
        self._shards = shards
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._printed: set[str] = set()
        if enabled:
            columns = [SpinnerColumn(), TextColumn(f"[bold]{escape(title)}")]
            if shards is not None:
                columns += [BarColumn(), MofNCompleteColumn(), TextColumn("shards")]
            columns += [TextColumn("{task.description}"), TimeElapsedColumn()]
            self._progress = Progress(*columns, console=Console(stderr=True), transient=True)

    def __enter__(self) -> ConformanceProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(self._description(), total=self._shards)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _description(self) -> str:
        found = ", ".join(f"{self.counts[verdict]} {verdict.value}" for verdict in SHOWN if self.counts[verdict])
        return f"found {found}" if found else "nothing broken yet"

    def verdict(self, result: RequirementResult) -> None:
        """A requirement was judged (the runner's ``on_verdict``): print it above the spinner and count it."""
        if result.verdict not in SHOWN or result.requirement.id in self._printed:
            return
        self._printed.add(result.requirement.id)
        self.counts[result.verdict] += 1
        if self._progress is not None and self._task is not None:
            line = Text(verdict_line(result), style=STYLES[result.verdict])
            self._progress.console.print(line, no_wrap=True, overflow="ellipsis")
            self._progress.update(self._task, description=self._description())

    def shard_done(self, index: int, report: RunReport) -> None:
        """Shard ``index`` of a parallel run finished: advance the bar and show its new findings."""
        for result in report.results:
            self.verdict(result)
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
