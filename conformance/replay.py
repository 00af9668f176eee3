"""Replaying a counterexample: the state machine of a target, bound to an implementation.

A failure's reproduction (see :class:`conformance.verdicts.Counterexample`)
is a short program that starts with::

    from conformance.replay import machine_for
    DeviceConformance = machine_for("device", "mypkg.model:make")

followed by the shrunk steps.  Running it raises the same violation.
"""

from __future__ import annotations

from conformance.checks import Checks, ConformanceMachine
from conformance.runner import bind, load_factory, target_requirements
from conformance.verdicts import Target


def machine_for(target: str, implementation: str, *, timeout_s: float = 0.0) -> type[ConformanceMachine]:
    """The ``target`` machine bound to ``implementation`` (``MODULE:FACTORY``), every check on."""
    chosen = Target(target)
    checks = Checks(req.id for req in target_requirements(chosen))
    return bind(chosen, load_factory(implementation), checks, timeout_s)
