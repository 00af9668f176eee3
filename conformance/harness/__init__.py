"""The harness: conformance runs that survive the implementation they check.

:func:`run_isolated` runs the suite and the implementation in a supervised
worker process (:mod:`conformance.harness.supervisor`,
:mod:`conformance.harness.worker`); the ``vfmig conformance`` command and the
pytest plugin use it.  Whatever the implementation does (hang, crash, exit,
print megabytes, allocate without end), the run ends in bounded time, the
report is written, and it tells the truth.
"""

from conformance.harness.supervisor import AdapterProblem, Interrupted, Isolation, Progress, run_isolated

__all__ = ["AdapterProblem", "Interrupted", "Isolation", "Progress", "run_isolated"]
