"""The fault catalogue bends the reference only through its public, documented extension points.

A fault that reaches into a private member of the reference breaks whenever the
reference is refactored, and copies of long reference methods drift from the
original.  So the catalogue's source must not import a ``_private`` name from
``reference_impl``, read or write a ``_private`` attribute, override or define a
``_private`` method or attribute in a fault class, or patch objects with
``setattr``/``delattr``.  (Module-level helpers of the catalogue itself may be
private: they are no part of the reference.)
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

CHECKED_MODULES = (
    "conformance.catalogue.device_faults",
    "conformance.catalogue.device_core_faults",
    "conformance.catalogue.hypervisor_faults",
    "conformance.catalogue.bridge_faults",
)
"""The catalogue modules held to the rule: every one."""


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _source(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)
    assert spec is not None, module
    assert spec.origin is not None, module
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8"), filename=spec.origin)


def private_reaches(tree: ast.Module) -> list[str]:
    """Every place in ``tree`` that reaches into a private name of the reference, as ``line: what``."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reference_impl"):
            found += [f"{node.lineno}: imports {alias.name}" for alias in node.names if _is_private(alias.name)]
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            found.append(f"{node.lineno}: uses .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            found.append(f"{node.lineno}: patches an object with {node.func.id}")
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                for name in _names_defined(statement):
                    if _is_private(name):
                        found.append(f"{statement.lineno}: {node.name} defines {name}")
    return sorted(found, key=lambda item: int(item.partition(":")[0]))


def _names_defined(statement: ast.stmt) -> list[str]:
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
        return [statement.name]
    if isinstance(statement, ast.Assign):
        return [target.id for target in statement.targets if isinstance(target, ast.Name)]
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return [statement.target.id]
    return []


@pytest.mark.parametrize("module", CHECKED_MODULES)
def test_faults_use_only_public_extension_points_of_the_reference(module: str) -> None:
    assert private_reaches(_source(module)) == []


def test_the_check_finds_each_kind_of_reach() -> None:
    tree = ast.parse(
        "from reference_impl.bridge import _Step\n"
        "class Bent(Base):\n"
        "    _limit = 3\n"
        "    def _stop_and_copy(self) -> None:\n"
        "        self._phase_timer = None\n"
        "        setattr(self.host, 'guard', None)\n"
        "    def __init__(self) -> None:\n"
        "        super().__init__()\n"
    )
    assert private_reaches(tree) == [
        "1: imports _Step",
        "3: Bent defines _limit",
        "4: Bent defines _stop_and_copy",
        "5: uses ._phase_timer",
        "6: patches an object with setattr",
    ]
