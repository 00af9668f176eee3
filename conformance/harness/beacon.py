"""The beacon: a few bytes of memory the worker writes at every step and the supervisor reads from outside.

A step is the unit the deadline applies to, and there are thousands a second:
a message per step would cost the worker a system call each and wake the
supervisor as often.  The beacon is anonymous shared memory instead (mapped
before the fork, so both processes see the same page): the worker writes which
steps are in flight and their deadline, the supervisor reads it a few times a
second.  A sequence number that is odd while a write is under way (a seqlock)
lets the reader take only whole snapshots.
"""

from __future__ import annotations

import math
import mmap
import struct
import time
from dataclasses import dataclass

MAX_DEPTH = 4
"""Nested steps the beacon names (deeper ones count, but only the outer four are named)."""

_NO_STEP = 0xFFFF
_LAYOUT = struct.Struct(f"<QBxxxIdQQ{MAX_DEPTH}H")
"""sequence, depth, group, deadline (monotonic seconds), steps, examples, step name indices."""


@dataclass(frozen=True)
class BeaconReading:
    """What the worker was doing when the supervisor looked."""

    sequence: int
    depth: int
    """Steps in flight (0: none: the suite or Hypothesis is between steps)."""
    group: int
    deadline: float
    """When the innermost step in flight must have returned (``time.monotonic()``; inf: no limit)."""
    steps: int
    examples: int
    names: tuple[int, ...]
    """The in-flight steps' indices into the supervisor's list of step names, outermost first."""


class Beacon:
    """Shared memory written by one worker (:meth:`step_started` ...) and read by its supervisor (:meth:`read`)."""

    def __init__(self, step_names: tuple[str, ...]) -> None:
        self.step_names = step_names
        self._index = {name: index for index, name in enumerate(step_names)}
        self._memory = mmap.mmap(-1, _LAYOUT.size)  # anonymous and shared: the forked worker writes the same page
        self._sequence = 0
        self._depth = 0
        self._group = 0
        self._deadline = math.inf
        self._steps = 0
        self._examples = 0
        self._names = [_NO_STEP] * MAX_DEPTH
        self._write()

    # -------------------------------------------------------------------------------- the worker's side

    def step_started(self, name: str, depth: int, seconds: float) -> None:
        """A step starts (:class:`conformance.checks.StepMonitor`)."""
        if depth < MAX_DEPTH:
            self._names[depth] = self._index.get(name, _NO_STEP)
        self._depth = depth + 1
        self._steps += 1
        self._deadline = time.monotonic() + seconds if math.isfinite(seconds) else math.inf
        self._write()

    def step_finished(self, depth: int) -> None:
        """The step at ``depth`` ended."""
        self._depth = depth
        if depth < MAX_DEPTH:
            self._names[depth] = _NO_STEP
        if depth == 0:
            self._deadline = math.inf
        self._write()

    def group_started(self, group: int) -> None:
        """A requirement group starts."""
        self._group = group
        self._write()

    def example_started(self) -> None:
        """Hypothesis starts another example."""
        self._examples += 1
        self._write()

    def _write(self) -> None:
        self._sequence += 1  # odd while the fields change: a reader that sees it looks again
        _LAYOUT.pack_into(
            self._memory,
            0,
            self._sequence,
            min(self._depth, 255),
            self._group,
            self._deadline,
            self._steps,
            self._examples,
            *self._names,
        )
        self._sequence += 1
        struct.pack_into("<Q", self._memory, 0, self._sequence)

    # -------------------------------------------------------------------------------- the supervisor's side

    def read(self) -> BeaconReading:
        """A whole snapshot of what the worker last wrote."""
        while True:
            fields = _LAYOUT.unpack_from(self._memory, 0)
            after = struct.unpack_from("<Q", self._memory, 0)[0]
            if fields[0] % 2 == 0 and fields[0] == after:
                break
            time.sleep(0)  # a write is under way: look again
        sequence, depth, group, deadline, steps, examples, *names = fields
        in_flight = tuple(index for index in names[: min(depth, MAX_DEPTH)] if index != _NO_STEP)
        return BeaconReading(sequence, depth, group, deadline, steps, examples, in_flight)

    def names_of(self, reading: BeaconReading) -> tuple[str, ...]:
        """The names of the steps in flight in ``reading``, outermost first."""
        return tuple(self.step_names[index] for index in reading.names if index < len(self.step_names))

    def close(self) -> None:
        """Unmap the memory."""
        self._memory.close()
