"""The supervisor: a conformance run that survives its implementation.

Theory of operation
-------------------

The suite and the implementation run in a worker process
(:mod:`conformance.harness.worker`), forked from here with the run's plan and
its state so far.  The supervisor keeps its own copy of that state, brought up
to date by the worker's messages (every verdict at once, the accounting at
each group and example), and watches the worker's beacon: which steps are in
flight and when the innermost must have returned.

Inside the worker a timer raises :class:`~conformance.checks.StepTimeout` at a
step's deadline; that is the ordinary way a hang ends, and the worker goes on.
The supervisor is the backstop for what the timer cannot end: a hang inside C
code, an implementation that catches the timeout and carries on, a crash, an
exit.  When a step is still in flight ``grace`` seconds after its deadline, the
supervisor has the worker write its stack (``faulthandler``, which works even
inside C code) and kills it.  Whenever a worker dies before it finished, the
step in flight gets the verdict (``timeout`` for a kill at the deadline,
``error`` for a death of its own), attributed from the stack as the worker
itself would (:mod:`conformance.attribution`); the step is skipped from then
on, and a new worker carries on with the next requirement group from the
supervisor's copy of the state.  So one bad step costs one verdict, and the
report is always written.

A worker that dies outside any step, or makes no progress for ``idle_s``
seconds, costs the group it was in; after ``max_restarts`` deaths the run
stops, and the requirements not judged by then are ``incomplete``.  Ctrl-C
(which reaches only the supervisor: the worker has a session of its own) stops
the run the same way and raises :class:`Interrupted` with the report of what
was judged.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, BinaryIO, Unpack

from conformance.attribution import Attribution, Sides, attribute, frames_of_dump
from conformance.harness.beacon import Beacon, BeaconReading
from conformance.harness.loading import load_checked_implementation
from conformance.harness.messages import (
    Counts,
    Finished,
    Ready,
    StateSync,
    UsageProblem,
    VerdictFound,
    absorb,
    absorb_counts,
)
from conformance.harness.worker import DUMP_SIGNAL, WorkerSetup, work
from conformance.runner import RunArguments, RunPlan, RunState, UsageError, finish, plan_run, step_failure, suite_class
from conformance.verdicts import RequirementResult, RunReport, Target

OUTPUT_TAIL_BYTES = 64 * 1024
"""How much of a worker's own output (standard output and error) the supervisor keeps: the end of it."""

_POLL_S = 0.05


@dataclass(frozen=True)
class Isolation:
    """How the supervisor guards a run."""

    memory_limit: int | None = 4 << 30
    """Address space a worker may use, in bytes (None: no limit)."""
    grace_s: float = 1.0
    """How long after a step's deadline the supervisor waits for the worker's own timer before it kills."""
    idle_s: float = 120.0
    """How long a worker may go without a step or a message before it counts as hung outside any step."""
    max_restarts: int = 16
    """Worker deaths after which the run stops (the rest is incomplete)."""


@dataclass(frozen=True)
class Progress:
    """Where a supervised run stands, for a live display."""

    examples: int
    steps: int
    judged: int
    total: int
    restarts: int
    seconds: float


class AdapterProblem(UsageError):  # noqa: N818 - what the user made, as the user sees it
    """The implementation could not be loaded or does not fit the adapter interface (not a verdict).

    its ``report`` says so for every requirement (``incomplete``), so that a report is written all the same.
    """

    def __init__(self, message: str, report: RunReport) -> None:
        super().__init__(message)
        self.report = report


class Interrupted(Exception):  # noqa: N818 - what happened to the run, as the user sees it
    """Ctrl-C stopped the run; its ``report`` holds what was judged until then."""

    def __init__(self, report: RunReport) -> None:
        super().__init__("interrupted")
        self.report = report


@dataclass(frozen=True)
class WorkerDeath:
    """A step the worker did not come back from (a :class:`~conformance.runner.StepFailure`)."""

    step_name: str
    requirements: tuple[str, ...]
    trace: str
    timed_out: bool


def run_isolated(
    target: Target,
    implementation: str | None = None,
    *,
    on_verdict: Callable[[RequirementResult], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    isolation: Isolation | None = None,
    loader: Callable[[Target, str], Callable[[], Any]] = load_checked_implementation,
    **arguments: Unpack[RunArguments],
) -> RunReport:
    """Check ``implementation`` like :func:`conformance.runner.run`, in a supervised worker process.

    Raises :class:`~conformance.runner.UsageError` for bad arguments, :class:`AdapterProblem` when the
    implementation cannot be used, and :class:`Interrupted` on Ctrl-C (each with the report where there is one).
    """
    plan = plan_run(target, implementation, **arguments)
    supervisor = _Supervisor(plan, isolation or Isolation(), loader, on_verdict, on_progress)
    return supervisor.run()


class _Supervisor:
    def __init__(
        self,
        plan: RunPlan,
        isolation: Isolation,
        loader: Callable[[Target, str], Callable[[], Any]],
        on_verdict: Callable[[RequirementResult], None] | None,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.plan = plan
        self.isolation = isolation
        self.loader = loader
        self.on_verdict = on_verdict
        self.on_progress = on_progress
        self.state = RunState.start(plan)
        self.machine = suite_class(plan.target)
        self.step_names = tuple(sorted(name for name in dir(self.machine) if _is_step(self.machine, name)))
        self.sides = Sides(None)
        self.output = bytearray()
        self.restarts = 0
        self.examples = 0
        self.started = time.perf_counter()

    def run(self) -> RunReport:
        worker: _Worker | None = None
        try:
            while not self.state.done:
                worker = _Worker.start(self)
                self._supervise(worker)
                worker = None
        except KeyboardInterrupt:
            self.state.stopped = "interrupted (Ctrl-C)"
            raise Interrupted(self._report()) from None
        finally:
            if worker is not None:
                worker.kill()  # whatever ended the supervision, no worker outlives it
        return self._report()

    def _report(self) -> RunReport:
        return finish(self.plan, self.state, seconds=time.perf_counter() - self.started)

    # ---------------------------------------------------------------------------------------- one worker

    def _supervise(self, worker: _Worker) -> None:
        last_sequence, last_change = -1, time.monotonic()
        while True:
            finished = self._take_messages(worker)
            reading = worker.beacon.read()
            self._show(reading)
            if finished:
                worker.reap()
                return
            if not worker.alive():
                worker.reap()
                finished = self._take_messages(worker)  # what it said before it ended
                if not finished:
                    self._died(worker, worker.beacon_reading or reading, timed_out=False)
                return
            now = time.monotonic()
            if reading.sequence != last_sequence or worker.heard_at > last_change:
                last_sequence, last_change = reading.sequence, max(now, worker.heard_at)
            if self._overdue(reading, now) or self._idle(now - last_change):
                worker.kill(dump_first=True)
                if self._take_messages(worker):  # it finished as it was being killed: no death to judge
                    return
                self._died(worker, reading, timed_out=reading.depth > 0)
                return

    def _overdue(self, reading: BeaconReading, now: float) -> bool:
        return reading.depth > 0 and math.isfinite(reading.deadline) and now > reading.deadline + self.grace_s

    @property
    def grace_s(self) -> float:
        return max(self.isolation.grace_s, 0.25 * self.plan.timeout_s)

    def _idle(self, seconds: float) -> bool:
        return self.plan.timeout_s > 0 and seconds > max(self.isolation.idle_s, 10 * self.plan.timeout_s)

    def _take_messages(self, worker: _Worker) -> bool:
        """Handle what the worker said; True once it said it finished."""
        for message in worker.messages():
            if isinstance(message, VerdictFound):
                self.state.record(message.result, self.on_verdict)
            elif isinstance(message, Counts):
                absorb_counts(self.state, message.counts, message.steps)
            elif isinstance(message, StateSync):
                absorb(self.state, message.state)
            elif isinstance(message, Ready):
                worker.ready = True
                self.sides = Sides(Path(message.implementation_home) if message.implementation_home else None)
            elif isinstance(message, UsageProblem):
                worker.reap()
                self.state.stopped = f"the implementation could not be used: {message.message}"
                raise AdapterProblem(message.message, self._report())
            elif isinstance(message, Finished):
                absorb(self.state, message.state)
                return True
        return False

    def _show(self, reading: BeaconReading) -> None:
        if self.on_progress is None:
            return
        self.on_progress(
            Progress(
                examples=self.examples + reading.examples,
                steps=max(self.state.checks.steps, reading.steps),
                judged=len(self.state.found),
                total=len(self.plan.wanted),
                restarts=self.restarts,
                seconds=time.perf_counter() - self.started,
            )
        )

    # ---------------------------------------------------------------------------------------- a death

    def _died(self, worker: _Worker, reading: BeaconReading, *, timed_out: bool) -> None:
        self.examples += reading.examples
        self.output = (self.output + worker.output)[-OUTPUT_TAIL_BYTES:]
        state = self.state
        state.checks.steps = max(state.checks.steps, reading.steps)
        names = worker.beacon.names_of(reading)
        how = worker.how_it_ended(timed_out, self.plan.timeout_s)
        if not worker.ready:
            self.state.stopped = f"the implementation could not be used: loading it {how}"
            raise AdapterProblem(f"loading the implementation {how}{_last_words(bytes(worker.output))}", self._report())
        frames = frames_of_dump(worker.dump_text())
        if reading.depth > 0 and names:
            step = names[-1]
            declared = self.machine.step_requirements(step)
            found = (
                attribute(frames, self.sides, self.plan.target, self.plan.all_ids, declared)
                if frames
                else Attribution(declared, None, (), None)
            )
            trace = _death_trace(_step_path(names), how, found, bytes(worker.output))
            death = WorkerDeath(step, found.requirements or declared, trace, timed_out)
            step_failure(state, self.plan, death, self.on_verdict)
        elif any(self.sides.is_own(frame) for frame in frames):
            found = attribute(frames, self.sides, self.plan.target, (), ())
            state.unattributed.append(_death_trace(None, how, found, bytes(worker.output)))
        else:
            state.suite_errors.append(f"group {reading.group}: the worker {how} outside any step")
        self.restarts += 1
        if self.restarts > self.isolation.max_restarts and not state.done:
            state.stopped = f"the worker process died {self.restarts} times"
            state.done = True


def _is_step(machine: type, name: str) -> bool:
    return callable(getattr(machine, name, None)) and hasattr(getattr(machine, name), "requirements")


def _step_path(names: tuple[str, ...]) -> str:
    inner, outer = names[-1], names[:-1]
    return f"{inner} (inside {' > '.join(outer)})" if outer else inner


def _death_trace(step: str | None, how: str, found: Attribution, output: bytes) -> str:
    where = f"step {step} {how}" if step else f"the worker {how} outside any step"
    if not found.stack and found.call is None:
        lines = [f"{where} (it left no stack: the process ended without a Python frame to show)"]
    else:
        lines = [f"{where}: {found.describe()}"]
    if found.stack:
        lines += ["the implementation's stack, outermost first:", *(f"  {frame}" for frame in found.stack)]
    return "\n".join(lines) + _last_words(output)


def _last_words(output: bytes, limit: int = 2000) -> str:
    text = output[-limit:].decode("utf-8", errors="replace").strip()
    return f"\nthe end of its output:\n{text}" if text else ""


class _Worker:
    """One worker process and the supervisor's ends of its pipes."""

    def __init__(self, pid: int, connection: Connection, output_fd: int, dump: BinaryIO, beacon: Beacon) -> None:
        self.pid = pid
        self.connection = connection
        self.output_fd = output_fd
        self.dump = dump
        self.beacon = beacon
        self.output = bytearray()
        self.ready = False
        self.status: int | None = None
        self.heard_at = time.monotonic()
        self.eof = False
        self.beacon_reading: BeaconReading | None = None
        """The beacon's last word, read when the worker was reaped."""
        self.leftover: list[object] = []
        """Messages read when the worker was reaped, not yet handled."""

    @classmethod
    def start(cls, supervisor: _Supervisor) -> _Worker:
        beacon = Beacon(supervisor.step_names)
        reader, writer = Pipe(duplex=False)
        output_read, output_write = os.pipe()
        dump = tempfile.TemporaryFile(prefix="vfmig-worker-stack-")  # noqa: SIM115 - closed with the worker
        setup = WorkerSetup(writer, output_write, dump, beacon, supervisor.isolation.memory_limit, supervisor.loader)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            reader.close()
            os.close(output_read)
            work(supervisor.plan, supervisor.state, setup)
        writer.close()
        os.close(output_write)
        os.set_blocking(output_read, False)
        return cls(pid, reader, output_read, dump, beacon)

    def messages(self) -> list[object]:
        """Every message waiting (and the worker's output drained), after at most a short wait."""
        if self.connection.closed:  # reaped: what it said last was kept
            left, self.leftover = self.leftover, []
            return left
        wait([self.connection, self.output_fd], timeout=_POLL_S)
        self._drain_output()
        received = self._receive_waiting()
        if received:
            self.heard_at = time.monotonic()
        return received

    def _receive_waiting(self) -> list[object]:
        received: list[object] = []
        while not self.eof and self.connection.poll():
            try:
                received.append(self.connection.recv())
            except (EOFError, OSError):
                self.eof = True
        return received

    def _drain_output(self) -> None:
        while True:
            try:
                chunk = os.read(self.output_fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk
            if len(self.output) > 2 * OUTPUT_TAIL_BYTES:
                del self.output[:-OUTPUT_TAIL_BYTES]

    def alive(self) -> bool:
        if self.status is not None:
            return False
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.status = status
        return False

    def kill(self, *, dump_first: bool = False) -> None:
        """End the worker (and anything it started in its session), after it wrote its stack if asked."""
        if self.status is not None:
            return
        if dump_first:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, DUMP_SIGNAL)
            self._await_dump()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # the worker leads its own session: whatever it started goes too
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)  # (if it died before it made the session, the group is not there)
        self.reap()

    def _await_dump(self, seconds: float = 1.0) -> None:
        """Wait until the dump file stops growing (faulthandler writes it from a signal handler at once)."""
        deadline = time.monotonic() + seconds
        size = -1
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = os.fstat(self.dump.fileno()).st_size
            if now and now == size:
                return
            size = now

    def reap(self) -> None:
        """Wait for the worker's end, keep the last of its output and what its beacon said, close its pipes."""
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
        if self.output_fd >= 0:
            self._drain_output()
            os.close(self.output_fd)
            self.output_fd = -1
        if self.beacon_reading is None:
            self.beacon_reading = self.beacon.read()
            self.beacon.close()
        if not self.connection.closed:
            self.leftover += self._receive_waiting()  # a message sent just before the end is still heard
            self.connection.close()

    def dump_text(self) -> str:
        self.dump.seek(0)
        text = self.dump.read().decode("utf-8", errors="replace")
        self.dump.close()
        return text

    def how_it_ended(self, timed_out: bool, timeout_s: float) -> str:
        """``did not return within 5 s``, ``killed its process (SIGSEGV)``, ``exited with status 3``."""
        if timed_out:
            return f"did not return within {timeout_s:g} s (the worker process was killed)"
        status = self.status or 0
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            return f"killed its process ({name})"
        if os.WIFEXITED(status):
            return f"ended its process with exit status {os.WEXITSTATUS(status)}"
        return "ended its process"
