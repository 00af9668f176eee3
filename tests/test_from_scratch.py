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

from conformance.interfaces.bridge import BridgeImplementation, BridgeUnderTest
from conformance.runner import run
from conformance.verdicts import RunStatus, Target, Verdict
from vfmig_proto.layout import CapabilityParams

ROOT = Path(__file__).resolve().parents[1]
FROM_SCRATCH = ROOT / "tests" / "from_scratch"
STANDARD_LIBRARY = frozenset(sys.stdlib_module_names)

IMPLEMENTATIONS = {
    Target.BRIDGE: "tests.from_scratch.bridge:make",
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


def _run(target: Target, seed: int) -> tuple[RunStatus, list[str]]:
    report = run(target, IMPLEMENTATIONS[target], profile="quick", seed=seed)
    broken = [
        f"{result.requirement.id}: {result.verdict.value}"
        for result in report.results
        if result.verdict.breaks_conformance
    ]
    return report.status, broken + report.unattributed + report.suite_errors


@pytest.mark.parametrize("seed", [1, 2])
def test_the_from_scratch_bridge_is_conformant(seed: int) -> None:
    status, problems = _run(Target.BRIDGE, seed)
    assert status is RunStatus.CONFORMANT, problems


def test_verdicts_are_what_the_suite_reports() -> None:
    """The from-scratch bridge publishes no events: the one requirement judged from events is not covered."""
    report = run(Target.BRIDGE, IMPLEMENTATIONS[Target.BRIDGE], profile="quick", seed=1)
    not_covered = {result.requirement.id for result in report.results if result.verdict is Verdict.NOT_COVERED}
    assert not_covered == {"VFM-DEV-012"}
