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

import hashlib
import importlib
import inspect
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase
from hypothesis.errors import HypothesisException
from hypothesis.internal.conjecture import engine as hypothesis_engine
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test

from conformance.checks import Checks, ConformanceMachine, ImplementationError, RequirementViolation, StepTimeout
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


class UsageError(ValueError):
    """A bad argument: an implementation that cannot be loaded, an unknown profile or requirement."""


@dataclass(frozen=True)
class Profile:
    """How hard a run tries."""

    name: str
    max_examples: int
    steps: int
    """Rule calls per example (Hypothesis's stateful_step_count)."""
    shrink_seconds: float
    """How long Hypothesis may shrink one counterexample: a few steps more is cheaper than a minute's wait."""


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", max_examples=12, steps=25, shrink_seconds=2.0),
    "default": Profile("default", max_examples=40, steps=40, shrink_seconds=5.0),
    "thorough": Profile("thorough", max_examples=400, steps=80, shrink_seconds=60.0),
}


@contextmanager
def _shrink_budget(seconds: float) -> Iterator[None]:
    """Bound Hypothesis's shrinking time (its engine reads this module constant; 300 s by default)."""
    previous = getattr(hypothesis_engine, "MAX_SHRINKING_SECONDS", None)
    if previous is None:
        yield
        return
    hypothesis_engine.MAX_SHRINKING_SECONDS = seconds  # type: ignore[assignment]
    try:
        yield
    finally:
        hypothesis_engine.MAX_SHRINKING_SECONDS = previous


def load_object(spec: str) -> Any:
    """The object ``MODULE:NAME`` names."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"{spec!r} is not MODULE:FACTORY (e.g. mypkg.model:make_device)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import {module_name!r}: {error}") from error
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no {attribute!r}") from None
    return target


def load_factory(spec: str) -> Callable[[], Any]:
    """The zero-argument factory ``MODULE:FACTORY`` names."""
    factory = load_object(spec)
    if not callable(factory):
        raise UsageError(f"{spec} is not callable")
    return factory  # type: ignore[no-any-return]


def implementation_key(factory: Callable[[], Any]) -> str:
    """A key that tells implementations apart: a digest of the factory's module source (or its name)."""
    try:
        source = inspect.getsource(inspect.getmodule(factory) or factory)
    except (OSError, TypeError):
        source = f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', repr(factory))}"
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def suite_class(target: Target) -> type[ConformanceMachine]:
    """The state machine of ``target``."""
    cls = load_object(SUITES[target])
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


def run(
    target: Target,
    implementation: str | None = None,
    *,
    profile: str = "default",
    seed: int | None = None,
    timeout_s: float = 5.0,
    requirements: Iterable[str] | None = None,
    database_dir: Path | None = None,
    on_verdict: Callable[[RequirementResult], None] | None = None,
) -> RunReport:
    """Check ``implementation`` (``MODULE:FACTORY``; the reference by default) for ``target``."""
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    spec = implementation or DEFAULT_IMPLEMENTATIONS[target]
    # (Imported here: conformance.preflight imports UsageError from this module.)
    from conformance.preflight import check_implementation, load_implementation  # noqa: PLC0415

    factory = load_implementation(target, spec)
    check_implementation(target, factory, spec)
    wanted = target_requirements(target, requirements)
    by_id = {req.id: req for req in wanted}
    all_ids = {req.id for req in target_requirements(target)}
    checks = Checks(all_ids)
    checks.disabled.update(all_ids - set(by_id))
    run_seed = seed if seed is not None else random.SystemRandom().randrange(1 << 32)
    database = None
    if database_dir is not None:
        database = DirectoryBasedExampleDatabase(database_dir / f"{target.value}-{implementation_key(factory)}")
    machine = bind(target, factory, checks, timeout_s)
    found: dict[str, RequirementResult] = {}
    suite_errors: list[str] = []
    started = time.perf_counter()
    for group in range(_MAX_GROUPS):
        attempt = _Group(machine, _settings(PROFILES[profile], database), run_seed + group)
        try:
            with _shrink_budget(PROFILES[profile].shrink_seconds):
                attempt.run()
            break
        except RequirementViolation as violation:
            result = _violation_result(by_id, violation, attempt, target, spec, run_seed + group, checks)
            _record(found, result, checks, [violation.requirement], on_verdict)
            if set(by_id) <= set(found):
                break  # every requirement asked about has its verdict
        except (StepTimeout, ImplementationError) as error:
            _step_failure(found, by_id, error, checks, on_verdict)
            if error.step_name in machine.initializers():
                _everything_else(found, by_id, error, checks, on_verdict)  # no world to check anything in
                break
        except HypothesisException as error:
            suite_errors.append(f"{type(error).__name__}: {error}")
            break
        except Exception as error:
            suite_errors.append(f"the suite itself failed: {type(error).__name__}: {error}")
            break
    else:
        suite_errors.append(f"stopped after {_MAX_GROUPS} requirement groups")
    results = [_final(req, found, checks) for req in wanted]
    return RunReport(
        target=target,
        implementation=spec,
        profile=profile,
        seed=run_seed,
        results=results,
        seconds=time.perf_counter() - started,
        steps=checks.steps,
        suite_errors=suite_errors,
    )


def _violation_result(  # noqa: PLR0917 - one call site, each argument a different piece of evidence
    by_id: dict[str, Requirement],
    violation: RequirementViolation,
    attempt: _Group,
    target: Target,
    spec: str,
    seed: int,
    checks: Checks,
) -> RequirementResult:
    requirement = by_id[violation.requirement]
    reproduction, steps = attempt.reproduction(target, spec, violation.requirement, violation.message)
    return RequirementResult(
        requirement=requirement,
        verdict=verdict_for_violation(requirement.keyword),
        checks=checks.counts[requirement.id],
        detail=violation.message,
        counterexample=Counterexample(steps, reproduction, seed, violation.message),
        seconds_to_detect=checks.first_failure_at.get(requirement.id),
    )


def _step_failure(
    found: dict[str, RequirementResult],
    by_id: dict[str, Requirement],
    error: StepTimeout | ImplementationError,
    checks: Checks,
    on_verdict: Callable[[RequirementResult], None] | None,
) -> None:
    verdict = Verdict.TIMEOUT if isinstance(error, StepTimeout) else Verdict.ERROR
    detail = error.trace if isinstance(error, ImplementationError) else str(error)
    checks.disabled_steps.add(error.step_name)
    affected = [req for req in error.requirements if req in by_id and req not in found]
    elapsed = time.perf_counter() - checks.started
    for requirement_id in affected:
        result = RequirementResult(by_id[requirement_id], verdict, checks.counts[requirement_id], detail, None, elapsed)
        _record(found, result, checks, [requirement_id], on_verdict)


def _everything_else(
    found: dict[str, RequirementResult],
    by_id: dict[str, Requirement],
    error: StepTimeout | ImplementationError,
    checks: Checks,
    on_verdict: Callable[[RequirementResult], None] | None,
) -> None:
    verdict = Verdict.TIMEOUT if isinstance(error, StepTimeout) else Verdict.ERROR
    detail = f"the world could not be built: {error}"
    for requirement_id, requirement in by_id.items():
        if requirement_id not in found:
            _record(found, RequirementResult(requirement, verdict, 0, detail), checks, [requirement_id], on_verdict)


def _record(
    found: dict[str, RequirementResult],
    result: RequirementResult,
    checks: Checks,
    requirement_ids: list[str],
    on_verdict: Callable[[RequirementResult], None] | None,
) -> None:
    found[result.requirement.id] = result
    checks.disabled.update(requirement_ids)
    if on_verdict is not None:
        on_verdict(result)


def _final(requirement: Requirement, found: dict[str, RequirementResult], checks: Checks) -> RequirementResult:
    if requirement.id in found:
        result = found[requirement.id]
        result.checks = checks.counts[requirement.id]
        return result
    count = checks.counts[requirement.id]
    verdict = Verdict.PASS if count else Verdict.NOT_COVERED
    detail = "" if count else "no check of the suite exercised this requirement"
    return RequirementResult(requirement, verdict, count, detail)
