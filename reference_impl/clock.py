"""The simulated clock: every role's notion of time, and the only scheduler.

Time is an integer number of nanoseconds since the simulation began, so that
deadline comparisons are exact (spec §8 compares "ACK_TIMEOUT_MS after" with
"before").  Nothing in the reference implementation sleeps: a role that wants
to act later schedules a callback, and whoever drives the simulation advances
the clock from one scheduled callback to the next.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def ms(value: float) -> int:
    """``value`` milliseconds in nanoseconds."""
    return round(value * NS_PER_MS)


def seconds(value: float) -> int:
    """``value`` seconds in nanoseconds."""
    return round(value * NS_PER_S)


def to_ms(ns: int) -> float:
    """Nanoseconds as (fractional) milliseconds, for reports."""
    return ns / NS_PER_MS


class ClockError(RuntimeError):
    """The clock was asked to go backwards or to run past a bound."""


@dataclass(order=True)
class Timer:
    """A scheduled callback.  Cancel it with :meth:`SimClock.cancel`."""

    when: int
    sequence: int
    callback: Callable[[], None] = field(compare=False)
    label: str = field(compare=False, default="")
    cancelled: bool = field(compare=False, default=False)


class SimClock:
    """A discrete-event clock: a heap of timers ordered by time, then by scheduling order."""

    def __init__(self) -> None:
        self._now = 0
        self._timers: list[Timer] = []
        self._sequence = itertools.count()

    @property
    def now(self) -> int:
        """The current simulated time, in nanoseconds."""
        return self._now

    def schedule_at(self, when: int, callback: Callable[[], None], label: str = "") -> Timer:
        """Run ``callback`` at simulated time ``when`` (not before now)."""
        if when < self._now:
            raise ClockError(f"cannot schedule {label or callback!r} at {when} ns: the clock is at {self._now} ns")
        timer = Timer(when, next(self._sequence), callback, label)
        heapq.heappush(self._timers, timer)
        return timer

    def schedule(self, delay: int, callback: Callable[[], None], label: str = "") -> Timer:
        """Run ``callback`` ``delay`` nanoseconds from now."""
        if delay < 0:
            raise ClockError(f"cannot schedule {label or callback!r} {delay} ns in the past")
        return self.schedule_at(self._now + delay, callback, label)

    @staticmethod
    def cancel(timer: Timer | None) -> None:
        """Make ``timer`` a no-op (it stays in the heap until its time comes)."""
        if timer is not None:
            timer.cancelled = True

    def next_time(self) -> int | None:
        """When the next live timer fires, or None if none is scheduled."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].when if self._timers else None

    def step(self) -> bool:
        """Advance to the next live timer and run it; False if there is none."""
        when = self.next_time()
        if when is None:
            return False
        timer = heapq.heappop(self._timers)
        self._now = when
        timer.callback()
        return True

    def run_until(self, when: int) -> None:
        """Run every timer due up to and including ``when``, then set the clock to ``when``."""
        if when < self._now:
            raise ClockError(f"cannot run back to {when} ns: the clock is at {self._now} ns")
        while (due := self.next_time()) is not None and due <= when:
            self.step()
        self._now = when

    def advance(self, delay: int) -> None:
        """Run every timer due in the next ``delay`` nanoseconds."""
        self.run_until(self._now + delay)

    def run_while(self, condition: Callable[[], bool], limit: int) -> bool:
        """Step while ``condition()`` holds and timers remain, up to time ``limit``.

        Returns whether ``condition()`` became false.  The clock never passes
        ``limit``; a simulation that could run forever stops there.
        """
        while condition():
            due = self.next_time()
            if due is None or due > limit:
                self._now = max(self._now, min(limit, due if due is not None else limit))
                return not condition()
            self.step()
        return True
