"""Implementations written from scratch against ``conformance.interfaces`` are typed and judged conformant.

``tests/from_scratch`` holds one implementation per target that imports nothing but
:mod:`conformance.interfaces` and :mod:`vfmig_proto`.  They pass ``mypy --strict`` (so the interfaces are
complete enough to type a real implementation against) and the conformance suite (so the suite asks for
nothing the interfaces do not describe).  A target whose from-scratch implementation is not yet
conformant is marked ``xfail(strict=True)`` with the gap that keeps it out: the test states the truth,
and starts failing the day the gap closes.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from from_scratch import bridge as scratch_bridge
from from_scratch import device as scratch_device

from conformance.interfaces.bridge import BridgeImplementation, BridgeUnderTest
from conformance.interfaces.device import DeviceImplementation
from conformance.preflight import AdapterError
from conformance.runner import RunState, execute, finish, load_factory, plan_run, run
from conformance.verdicts import RunReport, RunStatus, Target, Verdict
from vfmig_proto.layout import CapabilityParams

ROOT = Path(__file__).resolve().parents[1]
FROM_SCRATCH = ROOT / "tests" / "from_scratch"
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names)

IMPLEMENTATIONS = {
    Target.BRIDGE: "tests.from_scratch.bridge:make",
    Target.DEVICE: "tests.from_scratch.device:make",
}


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(FROM_SCRATCH.glob("*.py")), ids=lambda path: path.name)
def test_a_from_scratch_implementation_imports_only_the_interfaces_and_the_protocol(path: Path) -> None:
    foreign = [
        name
        for name in _imported_modules(path)
        if name.partition(".")[0] not in STANDARD_LIBRARY
        and not name.startswith(("conformance.interfaces", "vfmig_proto"))
    ]
    conformance_beyond_interfaces = [
        name for name in _imported_modules(path) if name.startswith("conformance") and "interfaces" not in name
    ]
    assert not foreign, f"{path.name} imports {foreign}"
    assert not conformance_beyond_interfaces, f"{path.name} imports {conformance_beyond_interfaces}"


def test_the_from_scratch_implementations_pass_mypy_strict() -> None:
    mypy = shutil.which("mypy") or str(Path(sys.executable).with_name("mypy"))
    if not Path(mypy).exists():
        pytest.skip("mypy is not installed")
    checked = subprocess.run(
        [mypy, "--strict", "tests/from_scratch", "conformance/interfaces"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_from_scratch_bridge_is_typed_as_the_bridge_interface() -> None:
    implementation: BridgeImplementation = scratch_bridge.make()
    bridge: BridgeUnderTest = implementation.create_bridge(object(), CapabilityParams(num_slots=2), "bridge")
    assert isinstance(bridge, BridgeUnderTest)
    assert bridge.capability_bytes()[:2] == bytes((0x09, 0x4C))  # vendor-specific, then MSI (spec §3.1)


def _problems(report: RunReport) -> list[str]:
    broken = [
        f"{result.requirement.id}: {result.verdict.value}: {result.detail[:300]}"
        for result in report.results
        if result.verdict.breaks_conformance
    ]
    return broken + report.unattributed + report.suite_errors


def _run(target: Target, seed: int) -> tuple[RunStatus, list[str]]:
    """A run as ``vfmig conformance`` makes it (the pre-flight check first)."""
    report = run(target, IMPLEMENTATIONS[target], profile="quick", seed=seed)
    return report.status, _problems(report)


def _run_the_suite_alone(target: Target, seed: int) -> tuple[RunStatus, list[str]]:
    """The suite's own judgement, without the pre-flight check (which reads the reference-typed adapters)."""
    plan = plan_run(target, IMPLEMENTATIONS[target], profile="quick", seed=seed)
    state = RunState.start(plan)
    execute(plan, load_factory(plan.implementation), state)
    report = finish(plan, state)
    return report.status, _problems(report)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_from_scratch_bridge_is_conformant(seed: int) -> None:
    status, problems = _run(Target.BRIDGE, seed)
    assert status is RunStatus.CONFORMANT, problems


def test_verdicts_are_what_the_suite_reports() -> None:
    """The from-scratch bridge publishes no events: the one requirement judged from events is not covered."""
    report = run(Target.BRIDGE, IMPLEMENTATIONS[Target.BRIDGE], profile="quick", seed=1)
    not_covered = {result.requirement.id for result in report.results if result.verdict is Verdict.NOT_COVERED}
    assert not_covered == {"VFM-DEV-012"}


def test_the_from_scratch_device_is_typed_as_the_device_interface() -> None:
    implementation: DeviceImplementation = scratch_device.make()
    function = implementation.create_function("vf0", _Clock(), object(), None)
    assert function.identity.vendor_id == scratch_device.ScratchIds().vendor_id
    assert function.in_reset_state
    assert not function.msix_enabled
    assert not function.failed


class _Clock:
    now = 0

    def schedule(self, delay: int, callback: object, label: str = "") -> object:
        raise AssertionError("a fresh function schedules nothing")


@pytest.mark.parametrize("seed", [1, 2])
def test_the_suite_judges_the_from_scratch_device_conformant(seed: int) -> None:
    status, problems = _run_the_suite_alone(Target.DEVICE, seed)
    assert status is RunStatus.CONFORMANT, problems


@pytest.mark.xfail(
    strict=True,
    raises=AdapterError,
    reason="the pre-flight check (conformance/preflight.py) probes FunctionUnderTest.identity against "
    "conformance.adapters, whose type is reference_impl.device.FunctionIdentity: an identity of the "
    "implementation's own (conformance.interfaces.common.FunctionIds) is refused before the suite runs",
)
def test_the_from_scratch_device_is_conformant() -> None:
    status, problems = _run(Target.DEVICE, 1)
    assert status is RunStatus.CONFORMANT, problems
