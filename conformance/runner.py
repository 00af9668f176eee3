"""Running a suite against an implementation, and turning what happens into verdicts.

One run checks one target.  It runs the target's state machine under
Hypothesis; when a check fails, Hypothesis shrinks the failing sequence, the
runner records the verdict with the shrunk sequence as a runnable
reproduction, switches that requirement's checks off and runs again — a new
*requirement group* — until a run passes or nothing is left to find.  A step
that hangs or raises is switched off the same way, so that one bad step costs
one verdict, not the whole run.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, TypedDict, Unpack

from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase
from hypothesis.errors import HypothesisException
from hypothesis.internal.conjecture import engine as hypothesis_engine
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from conformance.attribution import sides_for
from conformance.checks import (
    Checks,
    ConformanceMachine,
    ImplementationError,
    RequirementViolation,
    RunContext,
    StepTimeout,
)
from conformance.spec_coverage import CoverageRecorder, activate
from conformance.verdicts import (
    Counterexample,
    RequirementResult,
    RunReport,
    Target,
    Verdict,
    verdict_for_violation,
)
from vfmig_proto import states as vfmig_states
from vfmig_proto.requirements import Requirement, load_requirements

DEFAULT_IMPLEMENTATIONS: dict[Target, str] = {
    Target.DEVICE: "reference_impl.factories:device",
    Target.BRIDGE: "reference_impl.factories:bridge",
    Target.HYPERVISOR: "reference_impl.factories:hypervisor",
}
SUITES: dict[Target, str] = {
    Target.DEVICE: "conformance.suites.device:DeviceSuite",
    Target.BRIDGE: "conformance.suites.bridge:BridgeSuite",
    Target.HYPERVISOR: "conformance.suites.hypervisor:HypervisorSuite",
}
_MAX_GROUPS = 64
DEFAULT_STEP_TIMEOUT_S = 5.0
"""How long a step of the implementation may take before it counts as hung."""


class UsageError(ValueError):
    """A bad argument: an implementation that cannot be loaded, an unknown profile or requirement."""


class StepFailure(Protocol):
    """What :func:`step_failure` needs of a step that failed: a timeout, an exception, or a dead worker."""

    @property
    def step_name(self) -> str:
        """The step that was running (the innermost, when steps nest)."""

    @property
    def requirements(self) -> tuple[str, ...]:
        """The requirements whose checks were waiting for it (empty: no check could be named)."""

    @property
    def trace(self) -> str:
        """What happened, with the implementation's stack where one was seen."""

    @property
    def timed_out(self) -> bool:
        """A timeout (the step did not return in time), not an error."""


@dataclass(frozen=True)
class Profile:
    """How hard a run tries."""

    name: str
    max_examples: int
    steps: int
    """Rule calls per example (Hypothesis's stateful_step_count)."""
    shrinks: int
    """How many times Hypothesis may shrink one counterexample: a count, not a clock, so that the same seed
    gives the same counterexample on a fast machine and a slow one."""
    shrink_safety_seconds: float
    """A last bound on shrinking, far above what the count takes, for an implementation so slow that the count
    would take hours.  A counterexample cut short by it is still valid, and the report says so."""


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", max_examples=12, steps=25, shrinks=50, shrink_safety_seconds=120.0),
    "default": Profile("default", max_examples=40, steps=40, shrinks=150, shrink_safety_seconds=300.0),
    "thorough": Profile("thorough", max_examples=400, steps=80, shrinks=500, shrink_safety_seconds=900.0),
}


@contextmanager
def _shrink_budget(profile: Profile) -> Iterator[None]:
    """Bound Hypothesis's shrinking by the profile's count (its engine reads these module constants)."""
    names = {"MAX_SHRINKS": profile.shrinks, "MAX_SHRINKING_SECONDS": profile.shrink_safety_seconds}
    previous = {name: getattr(hypothesis_engine, name) for name in names if hasattr(hypothesis_engine, name)}
    for name in previous:
        setattr(hypothesis_engine, name, names[name])
    try:
        yield
    finally:
        for name, value in previous.items():
            setattr(hypothesis_engine, name, value)


def implementation_key(factory: Callable[[], Any]) -> str:
    """A key that tells implementations apart: a digest of the factory's module source (or its name)."""
    try:
        source = inspect.getsource(inspect.getmodule(factory) or factory)
    except (OSError, TypeError):
        source = f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', repr(factory))}"
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def suite_class(target: Target) -> type[ConformanceMachine]:
    """The state machine of ``target``."""
    # SUITES names our own classes: an implementation's MODULE:FACTORY goes through
    # conformance.preflight.load_implementation, which explains a bad one.
    module_name, _, name = SUITES[target].partition(":")
    cls = getattr(importlib.import_module(module_name), name)
    if not (isinstance(cls, type) and issubclass(cls, ConformanceMachine)):
        raise TypeError(f"{SUITES[target]} is not a conformance machine")
    return cls


def bind(target: Target, factory: Callable[[], Any], checks: Checks, timeout_s: float) -> type[ConformanceMachine]:
    """A subclass of the target's machine bound to ``factory``; its name appears in reproductions."""
    base = suite_class(target)
    name = f"{target.value.capitalize()}Conformance"
    attributes = {"factory": staticmethod(factory), "checks": checks, "timeout_s": timeout_s}
    return type(name, (base,), attributes)


def target_requirements(target: Target, only: Iterable[str] | None = None) -> list[Requirement]:
    """The requirements that bind ``target``'s roles (or the ``only`` ones among them)."""
    requirements = [req for req in load_requirements() if req.roles & target.roles]
    if only is None:
        return requirements
    wanted = set(only)
    unknown = wanted - {req.id for req in requirements}
    if unknown:
        raise UsageError(f"not requirements of target {target.value}: {', '.join(sorted(unknown))}")
    return [req for req in requirements if req.id in wanted]


class _Group:
    """One requirement group: a Hypothesis run that ends at the first finding."""

    def __init__(self, machine: type[ConformanceMachine], settings_: settings, seed: int) -> None:
        self.machine = machine
        self.settings = settings_
        self.seed = seed
        self.lines: list[str] = []
        self.notes: list[str] = []

    def run(self) -> None:
        seeded = hypothesis_seed(self.seed)(self.machine)
        try:
            with with_reporter(self._report):  # Hypothesis's own notes (a shrink cut short, ...) stay quiet
                run_state_machine_as_test(seeded, settings=self.settings)
        except Exception as error:
            # Hypothesis attaches the shrunk sequence to the exception as notes.
            self.lines = [str(note) for note in getattr(error, "__notes__", [])]
            raise

    def _report(self, text: object) -> None:
        self.notes.append(str(text))

    def reproduction(self, target: Target, implementation: str, requirement: str, message: str) -> tuple[str, int]:
        """The shrunk sequence as a Python program, and its number of rule calls."""
        rules = self.machine.rule_names()
        body = [line for line in self.lines if line.startswith(("state = ", "state."))]
        steps = sum(1 for line in body if line.startswith("state.") and line[6:].split("(")[0] in rules)
        body, enums = _readable_enums(body)
        checks = self.machine.checks
        options = ""
        disabled = sorted(checks.disabled - {requirement})
        enabled = sorted(checks.known - set(disabled))
        if len(enabled) < len(disabled):
            options += f", only={enabled!r}"
        elif disabled:
            options += f", disabled={disabled!r}"
        if skipped := sorted(checks.disabled_steps):
            options += f", skipped_steps={skipped!r}"
        header = [
            f"# vfmig conformance counterexample: target {target.value}, implementation {implementation}",
            f"# breaks {requirement}: {message.splitlines()[0] if message else ''}",
            "from conformance.replay import machine_for",
            *([f"from vfmig_proto.states import {', '.join(enums)}"] if enums else []),
            "",
            f'{self.machine.__name__} = machine_for("{target.value}", "{implementation}"{options})',
        ]
        return "\n".join([*header, *body]) + "\n", steps


_ENUM_REPR = re.compile(r"<(?P<cls>[A-Z]\w*)\.(?P<member>\w+): -?\d+>")


def _readable_enums(lines: list[str]) -> tuple[list[str], list[str]]:
    """Replace ``<MigState.IDLE: 0>`` (an enum's repr, not Python) by ``MigState.IDLE`` where
    :mod:`vfmig_proto.states` defines the enum; returns the lines and the enums to import."""
    used: set[str] = set()

    def readable(match: re.Match[str]) -> str:
        enum = getattr(vfmig_states, match["cls"], None)
        if not (isinstance(enum, type) and issubclass(enum, Enum) and match["member"] in enum.__members__):
            return match[0]
        used.add(match["cls"])
        return f"{match['cls']}.{match['member']}"

    return [_ENUM_REPR.sub(readable, line) for line in lines], sorted(used)


def _settings(profile: Profile, database: ExampleDatabase | None) -> settings:
    return settings(
        max_examples=profile.max_examples,
        stateful_step_count=profile.steps,
        deadline=None,
        database=database,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        report_multiple_bugs=False,
        print_blob=False,
    )


@dataclass(frozen=True)
class RunPlan:
    """What one run checks, and how hard: everything but the implementation object itself."""

    target: Target
    implementation: str
    """``MODULE:FACTORY``."""
    profile: Profile
    seed: int
    timeout_s: float
    wanted: tuple[Requirement, ...]
    """The requirements the run judges (every requirement of the target, or those asked for)."""
    all_ids: frozenset[str]
    """Every requirement of the target (the checks of the unwanted ones are off)."""
    database_dir: Path | None

    @property
    def by_id(self) -> dict[str, Requirement]:
        """The wanted requirements by ID."""
        return {requirement.id: requirement for requirement in self.wanted}


class RunArguments(TypedDict, total=False):
    """The keyword arguments every way of running a suite takes (:func:`plan_run` says what each means)."""

    profile: str
    seed: int | None
    timeout_s: float
    requirements: Iterable[str] | None
    database_dir: Path | None


def plan_run(
    target: Target,
    implementation: str | None = None,
    *,
    profile: str = "default",
    seed: int | None = None,
    timeout_s: float = DEFAULT_STEP_TIMEOUT_S,
    requirements: Iterable[str] | None = None,
    database_dir: Path | None = None,
) -> RunPlan:
    """Check the arguments of a run (:class:`UsageError`) without loading the implementation."""
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    if timeout_s < 0:
        raise UsageError(f"the step timeout must not be negative, not {timeout_s:g}")
    return RunPlan(
        target=target,
        implementation=implementation or DEFAULT_IMPLEMENTATIONS[target],
        profile=PROFILES[profile],
        seed=seed if seed is not None else random.SystemRandom().randrange(1 << 32),
        timeout_s=timeout_s,
        wanted=tuple(target_requirements(target, requirements)),
        all_ids=frozenset(req.id for req in target_requirements(target)),
        database_dir=database_dir,
    )


@dataclass
class RunState:
    """Where a run stands: the verdicts found, the accounting, the next requirement group.

    A supervised run (:mod:`conformance.harness`) keeps a copy outside the worker process and starts a new
    worker from it when one dies: the state is all a run needs to go on.
    """

    checks: Checks
    found: dict[str, RequirementResult] = field(default_factory=dict)
    next_group: int = 0
    suite_errors: list[str] = field(default_factory=list)
    unattributed: list[str] = field(default_factory=list)
    """Failures of the implementation that no requirement's check owned."""
    stopped: str | None = None
    """Why the run ended before it judged everything (None: it ran to its end)."""
    done: bool = False
    coverage: CoverageRecorder | None = None
    """The cells of the spec's space the run exercised so far (:mod:`conformance.spec_coverage`)."""

    @classmethod
    def start(cls, plan: RunPlan) -> RunState:
        """The state of a run that has not started."""
        checks = Checks(plan.all_ids)
        checks.disabled.update(plan.all_ids - set(plan.by_id))
        return cls(checks, coverage=CoverageRecorder(plan.target))

    def record(self, result: RequirementResult, on_verdict: Callable[[RequirementResult], None] | None) -> None:
        """Keep ``result`` (the first verdict on a requirement is final) and switch its checks off."""
        if result.requirement.id in self.found:
            return
        self.found[result.requirement.id] = result
        self.checks.disabled.add(result.requirement.id)
        if on_verdict is not None:
            on_verdict(result)


_MAX_SUITE_ERRORS = 3
"""Requirement groups that may end on a problem of the run itself before the run gives up."""


def run(
    target: Target,
    implementation: str | None = None,
    *,
    on_verdict: Callable[[RequirementResult], None] | None = None,
    **arguments: Unpack[RunArguments],
) -> RunReport:
    """Check ``implementation`` (``MODULE:FACTORY``; the reference by default) for ``target``, in this process.

    An implementation that exits, crashes or hangs inside C code takes this process with it: run untrusted
    implementations with :func:`conformance.harness.run_isolated`, which runs this in a worker process.
    """
    plan = plan_run(target, implementation, **arguments)
    from conformance.preflight import check_implementation, load_implementation  # noqa: PLC0415 - it imports us

    factory = load_implementation(target, plan.implementation)
    check_implementation(target, factory, plan.implementation)
    state = RunState.start(plan)
    execute(plan, factory, state, on_verdict=on_verdict)
    return finish(plan, state)


def execute(
    plan: RunPlan,
    factory: Callable[[], Any],
    state: RunState,
    *,
    on_verdict: Callable[[RequirementResult], None] | None = None,
    on_group: Callable[[RunState], None] | None = None,
    isolated: bool = False,
) -> None:
    """Run requirement groups from ``state.next_group`` until every wanted requirement is judged or a run of
    the profile finds nothing more; ``state`` is updated as verdicts come (``on_group`` sees it as each group
    starts)."""
    database = _database(plan, factory)
    machine = bind(plan.target, factory, state.checks, plan.timeout_s)
    state.checks.context = RunContext(plan.target, sides_for(factory), isolated=isolated)
    activate(state.coverage)  # the suites' bridges feed it (conformance.spec_coverage.watched, bridge_step)
    try:
        while not state.done:
            if state.next_group >= _MAX_GROUPS:
                state.stopped = f"stopped after {_MAX_GROUPS} requirement groups"
                state.suite_errors.append(state.stopped)
                break
            group = state.next_group
            state.next_group += 1
            if on_group is not None:
                on_group(state)
            _run_group(plan, machine, state, group, database, on_verdict)
    finally:
        activate(None)


def _database(plan: RunPlan, factory: Callable[[], Any]) -> ExampleDatabase | None:
    if plan.database_dir is None:
        return None
    return DirectoryBasedExampleDatabase(plan.database_dir / f"{plan.target.value}-{implementation_key(factory)}")


def _run_group(  # noqa: PLR0917 - one call site; each argument a different part of the run
    plan: RunPlan,
    machine: type[ConformanceMachine],
    state: RunState,
    group: int,
    database: ExampleDatabase | None,
    on_verdict: Callable[[RequirementResult], None] | None,
) -> None:
    attempt = _Group(machine, _settings(plan.profile, database), plan.seed + group)
    by_id = plan.by_id
    try:
        with _shrink_budget(plan.profile):
            attempt.run()
        state.done = True
    except RequirementViolation as violation:
        state.record(_violation_result(by_id, violation, attempt, plan, plan.seed + group, state.checks), on_verdict)
        state.done = set(by_id) <= set(state.found)  # every requirement asked about has its verdict
    except (StepTimeout, ImplementationError) as error:
        step_failure(state, plan, error, on_verdict)
    except HypothesisException as error:
        _suite_error(state, plan, error, attempt, group, on_verdict)
    except Exception as error:
        state.suite_errors.append(f"group {group}: the suite itself failed: {type(error).__name__}: {error}")
        _give_up_after_repeats(state)


def _suite_error(  # noqa: PLR0917 - one call site
    state: RunState,
    plan: RunPlan,
    error: HypothesisException,
    attempt: _Group,
    group: int,
    on_verdict: Callable[[RequirementResult], None] | None,
) -> None:
    """Hypothesis stopped the group.  A flaky failure still holds the finding it could not reproduce: an
    implementation that failed a check once failed it, whether or not it does so again."""
    for cause in _causes(error):
        if isinstance(cause, RequirementViolation) and cause.requirement in plan.by_id:
            result = _violation_result(plan.by_id, cause, attempt, plan, plan.seed + group, state.checks)
            result.detail = f"{cause.message}\n(not reproducible: {_flaky_note(error)})"
            state.record(result, on_verdict)
            return
        if isinstance(cause, StepTimeout | ImplementationError):
            step_failure(state, plan, cause, on_verdict)
            return
    state.suite_errors.append(f"group {group}: {type(error).__name__}: {error}")
    _give_up_after_repeats(state)


def _causes(error: BaseException) -> list[BaseException]:
    """``error`` and, for an exception group (Hypothesis's flaky failures), every exception it holds."""
    if isinstance(error, BaseExceptionGroup):
        return [error, *(cause for inner in error.exceptions for cause in _causes(inner))]
    return [error]


def _flaky_note(error: HypothesisException) -> str:
    return (
        f"Hypothesis reported {type(error).__name__}: the implementation behaved differently when the same steps "
        "ran again, so it keeps state between examples or depends on something outside the steps"
    )


def _give_up_after_repeats(state: RunState) -> None:
    if len(state.suite_errors) >= _MAX_SUITE_ERRORS:
        state.stopped = f"the run itself failed {len(state.suite_errors)} times"
        state.done = True


def finish(plan: RunPlan, state: RunState, *, seconds: float | None = None) -> RunReport:
    """The report of a run that ended: every wanted requirement with its verdict."""
    checks = state.checks
    blocked = _blocked_by_skipped_steps(plan.target, checks.disabled_steps)
    results = [_final(req, state.found, checks, state.stopped, blocked.get(req.id, ())) for req in plan.wanted]
    return RunReport(
        target=plan.target,
        implementation=plan.implementation,
        profile=plan.profile.name,
        seed=plan.seed,
        results=results,
        seconds=time.perf_counter() - checks.started if seconds is None else seconds,
        steps=checks.steps,
        suite_errors=list(state.suite_errors),
        unattributed=list(state.unattributed),
        stopped=state.stopped,
        coverage=None if state.coverage is None else state.coverage.coverage(),
    )


def _violation_result(  # noqa: PLR0917 - each argument a different piece of evidence
    by_id: dict[str, Requirement],
    violation: RequirementViolation,
    attempt: _Group,
    plan: RunPlan,
    seed: int,
    checks: Checks,
) -> RequirementResult:
    requirement = by_id[violation.requirement]
    reproduction, steps = attempt.reproduction(
        plan.target, plan.implementation, violation.requirement, violation.message
    )
    return RequirementResult(
        requirement=requirement,
        verdict=verdict_for_violation(requirement.keyword),
        checks=checks.counts[requirement.id],
        detail=violation.message,
        counterexample=Counterexample(steps, reproduction, seed, violation.message),
        seconds_to_detect=checks.first_failure_at.get(requirement.id),
    )


def step_failure(
    state: RunState,
    plan: RunPlan,
    error: StepTimeout | ImplementationError | StepFailure,
    on_verdict: Callable[[RequirementResult], None] | None,
) -> None:
    """A step hung, raised or took its process down: its verdict goes to the requirements whose checks were
    waiting for it, the step is skipped from now on, and a failed world-building step ends the run."""
    verdict = Verdict.TIMEOUT if error.timed_out else Verdict.ERROR
    checks = state.checks
    checks.disabled_steps.add(error.step_name)
    elapsed = time.perf_counter() - checks.started
    owners = [req for req in error.requirements if req in plan.by_id]
    if not owners and not error.requirements:
        state.unattributed.append(f"{verdict.value}: {error.trace}")
    for requirement_id in owners:
        if requirement_id not in state.found:
            result = RequirementResult(
                plan.by_id[requirement_id], verdict, checks.counts[requirement_id], error.trace, None, elapsed
            )
            state.record(result, on_verdict)
    if error.step_name in _initializers(plan.target):
        # the failure is the attributed requirements'; the rest could not be judged without a world
        detail = f"not judged: the world could not be built ({error})"
        for requirement in plan.wanted:
            state.record(RequirementResult(requirement, Verdict.INCOMPLETE, 0, detail), on_verdict)
        state.stopped = f"the world could not be built: step {error.step_name} {verdict.value}"
        state.done = True


@functools.cache
def _initializers(target: Target) -> frozenset[str]:
    return suite_class(target).initializers()


def _blocked_by_skipped_steps(target: Target, skipped: set[str]) -> dict[str, tuple[str, ...]]:
    """Per requirement, the skipped steps (they hung or raised before) that can judge it."""
    machine = suite_class(target)
    blocked: dict[str, list[str]] = {}
    for name in sorted(skipped):
        for requirement in machine.step_requirements(name):
            blocked.setdefault(requirement, []).append(name)
    return {requirement: tuple(steps) for requirement, steps in blocked.items()}


def _final(
    requirement: Requirement,
    found: dict[str, RequirementResult],
    checks: Checks,
    stopped: str | None,
    blocked_by: tuple[str, ...],
) -> RequirementResult:
    if requirement.id in found:
        result = found[requirement.id]
        result.checks = checks.counts[requirement.id]
        return result
    count = checks.counts[requirement.id]
    if stopped is not None:
        detail = f"not judged: the run stopped before it finished ({stopped}); its checks ran {count} times"
        return RequirementResult(requirement, Verdict.INCOMPLETE, count, detail)
    if not count and blocked_by:
        detail = (
            f"not judged: the steps that exercise it ({', '.join(blocked_by)}) were switched off after the "
            "implementation hung or raised in them"
        )
        return RequirementResult(requirement, Verdict.INCOMPLETE, count, detail)
    verdict = Verdict.PASS if count else Verdict.NOT_COVERED
    detail = "" if count else "no check of the suite exercised this requirement"
    return RequirementResult(requirement, verdict, count, detail)
