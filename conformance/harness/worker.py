"""The worker: the process in which the suite meets the implementation.

A worker is forked from the supervisor (:mod:`conformance.harness.supervisor`)
with the run's plan and state in its memory.  It makes itself a process that
the implementation can ruin without harm to anyone else:

* its own session, so the terminal's Ctrl-C reaches the supervisor only, and a
  ``KeyboardInterrupt`` in the worker can only be the implementation's;
* standard input from ``/dev/null``, standard output and error into a pipe the
  supervisor drains (a flood of output costs the implementation, not the
  terminal);
* a limit on its address space, so an unbounded allocation ends in a
  ``MemoryError`` (judged like any exception) rather than the machine's OOM
  killer;
* ``faulthandler`` writing the Python stack to a file on a crash, and on the
  signal the supervisor sends before it kills a step that missed its deadline,
  so that even a hang inside C code is attributed.

Then it loads the implementation (its mistakes are usage errors, reported as
such), checks it against the adapter interface and runs requirement groups
from where the state says, telling the supervisor about every verdict and, at
each group and example, the accounting it would need to carry on without it.
It always leaves with ``os._exit``: nothing of the supervisor's (atexit
handlers, buffered output) runs twice.
"""

from __future__ import annotations

import ctypes
import faulthandler
import os
import resource
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, BinaryIO

from conformance.attribution import sides_for
from conformance.harness import messages
from conformance.harness.beacon import Beacon
from conformance.runner import RunPlan, RunState, UsageError, execute
from conformance.verdicts import RequirementResult, Target

DUMP_SIGNAL = signal.SIGUSR1
"""The signal on which a worker writes its Python stack to the dump file (before the supervisor kills it)."""


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker is handed at its fork besides the plan and the state."""

    connection: Connection
    """Where the worker's messages go."""
    output_fd: int
    """The write end of the pipe that becomes its standard output and error."""
    dump: BinaryIO
    """The file ``faulthandler`` writes stacks into."""
    beacon: Beacon
    memory_limit: int | None
    """Bytes of address space (None: no limit)."""
    loader: Callable[[Target, str], Callable[[], Any]]
    """Loads ``MODULE:FACTORY`` and checks the implementation it makes (raises UsageError)."""
    supervisor_pid: int = field(default_factory=os.getpid)
    """The process the worker is forked from (made before the fork, so it is the supervisor's own pid)."""


class _Monitor:
    """The worker's :class:`~conformance.checks.StepMonitor`: steps to the beacon, accounting to the supervisor."""

    def __init__(self, beacon: Beacon, connection: Connection, state: RunState) -> None:
        self.beacon = beacon
        self.connection = connection
        self.state = state

    def step_started(self, name: str, depth: int, seconds: float) -> None:
        self.beacon.step_started(name, depth, seconds)

    def step_finished(self, depth: int) -> None:
        self.beacon.step_finished(depth)

    def example_started(self) -> None:
        self.beacon.example_started()
        checks = self.state.checks
        self.connection.send(messages.Counts(dict(checks.counts), checks.steps))


def work(plan: RunPlan, state: RunState, setup: WorkerSetup) -> None:
    """The worker's whole life (called in the child right after the fork; never returns)."""
    code = 0
    try:
        _isolate(setup)
        _run(plan, state, setup)
    except BaseException:  # the worker's last words: whatever happened goes to its output, then it leaves
        traceback.print_exc()
        code = 70  # EX_SOFTWARE
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                code = code or 74  # EX_IOERR
        os._exit(code)


def _isolate(setup: WorkerSetup) -> None:
    os.setsid()  # the terminal's Ctrl-C goes to the supervisor's process group, not here
    _die_with(setup.supervisor_pid)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(setup.output_fd, 1)
    os.dup2(setup.output_fd, 2)
    os.close(setup.output_fd)
    # fresh streams: the supervisor's may have been mid-write, holding a lock, when it forked
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    faulthandler.enable(file=setup.dump, all_threads=True)
    faulthandler.register(DUMP_SIGNAL, file=setup.dump, all_threads=True, chain=False)
    if setup.memory_limit is not None:
        resource.setrlimit(resource.RLIMIT_AS, (setup.memory_limit, setup.memory_limit))


_PR_SET_PDEATHSIG = 1
"""``prctl`` option of <linux/prctl.h>: the signal the kernel sends this process when its parent dies."""
_EX_TEMPFAIL = 75


def _die_with(supervisor_pid: int) -> None:
    """Have the kernel kill this worker when its supervisor dies.

    The worker leads a session of its own, so nothing else would reach it: a supervisor killed from outside
    (a parallel run's shard stopped after Ctrl-C, say) would otherwise leave it running the suite alone.
    """
    if not sys.platform.startswith("linux"):  # pragma: no cover - the harness isolates on Linux
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor_pid:  # it died before the request took effect
        os._exit(_EX_TEMPFAIL)


def _run(plan: RunPlan, state: RunState, setup: WorkerSetup) -> None:
    connection = setup.connection
    try:
        factory = setup.loader(plan.target, plan.implementation)
    except UsageError as error:
        connection.send(messages.UsageProblem(str(error)))
        return
    connection.send(messages.Ready(str(sides_for(factory).implementation_home or "") or None))
    state.checks.monitor = _Monitor(setup.beacon, connection, state)

    def on_group(current: RunState) -> None:
        setup.beacon.group_started(current.next_group - 1)
        connection.send(messages.StateSync(messages.snapshot(current)))

    def on_verdict(result: RequirementResult) -> None:
        connection.send(messages.VerdictFound(result))

    execute(plan, factory, state, on_verdict=on_verdict, on_group=on_group, isolated=True)
    connection.send(messages.Finished(messages.snapshot(state)))
