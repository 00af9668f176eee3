"""Replaying a counterexample: the state machine of a target, bound to an implementation.

A failure's reproduction (see :class:`conformance.verdicts.Counterexample`)
is a short program that starts with::

    from conformance.replay import machine_for
    DeviceConformance = machine_for("device", "mypkg.model:make")

followed by the shrunk steps.  Running it raises the same violation.  When the
run had already judged other requirements, the program passes them as
``disabled``: their checks were off while this counterexample was found, so
they stay off while it is replayed (and steps that hung or raised before are
skipped, as they were).
"""

from __future__ import annotations

from collections.abc import Iterable

from conformance.checks import Checks, ConformanceMachine
from conformance.preflight import load_implementation
from conformance.runner import bind, target_requirements
from conformance.verdicts import Target


def machine_for(
    target: str,
    implementation: str,
    *,
    timeout_s: float = 0.0,
    disabled: Iterable[str] = (),
    only: Iterable[str] | None = None,
    skipped_steps: Iterable[str] = (),
) -> type[ConformanceMachine]:
    """The ``target`` machine bound to ``implementation`` (``MODULE:FACTORY``).

    Every check is on except those of the ``disabled`` requirements, or, with ``only``, just the checks of
    those requirements; the ``skipped_steps`` do nothing.
    """
    chosen = Target(target)
    checks = Checks(req.id for req in target_requirements(chosen))
    chosen_only = set(only) if only is not None else set()
    unknown = (set(disabled) | chosen_only) - checks.known
    if unknown:
        raise KeyError(f"not requirements of target {chosen.value}: {', '.join(sorted(unknown))}")
    checks.disabled.update(disabled)
    if only is not None:
        checks.disabled.update(checks.known - chosen_only)
    checks.disabled_steps.update(skipped_steps)
    return bind(chosen, load_implementation(chosen, implementation), checks, timeout_s)
