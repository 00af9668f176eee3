"""Live progress on a terminal (rich), fed by the reference implementation's event bus.

Front-door code: the simulation itself prints nothing.  When disabled (output
is not a terminal, or ``--no-progress``) every method is a cheap no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from reference_impl.clock import to_ms
from reference_impl.events import Event, EventBus, EventKind
from reference_impl.hypervisor import MigrationRecord

_REFRESH_S = 0.1


class SimulationProgress:
    """A progress bar over the migrations of one run, with the current phase and round."""

    def __init__(self, bus: EventBus, migrations: int, *, enabled: bool) -> None:
        self.bus = bus
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._phase = "booting"
        self._round = 0
        self._sent = 0
        self._last = 0.0
        self._migrations = migrations
        self._unsubscribe: Callable[[], None] | None = None
        if enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]migrations"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> SimulationProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("", total=self._migrations)
            # MIGRATION too: in STOPPED no page is sent for up to S, and the simulated time must still move.
            self._unsubscribe = self.bus.subscribe(
                self._on_event,
                [EventKind.MIG_TRANSITION, EventKind.PRECOPY_ROUND, EventKind.PAGE_SEND, EventKind.MIGRATION],
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._progress is not None:
            self._progress.stop()

    def _on_event(self, event: Event) -> None:
        if event.kind is EventKind.MIG_TRANSITION:
            new = event.data.get("new")
            self._phase = getattr(new, "name", str(new))
        elif event.kind is EventKind.PRECOPY_ROUND:
            self._round = int(event.data["round"])
        elif event.kind is EventKind.PAGE_SEND:
            self._sent += int(event.data["pages"])
        now = time.monotonic()
        if now - self._last >= _REFRESH_S:
            self._last = now
            self._show()

    def description(self) -> str:
        """The line beside the bar: phase, round, pages sent, and the simulated time (a slow run's measure)."""
        simulated = to_ms(self.bus.clock.now) / 1000
        return f"{self._phase}, round {self._round}, {self._sent} pages sent, simulated {simulated:.1f} s"

    def _show(self) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, description=self.description())

    def migration_done(self, record: MigrationRecord) -> None:
        """Advance the bar by one migration."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
            self._show()
