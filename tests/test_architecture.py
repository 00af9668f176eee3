"""Imports only point down: vfmig_proto imports no other vfmig package (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import vfmig_proto

ALLOWED = {
    "vfmig_proto": {"vfmig_proto"},
    "reference_impl": {"vfmig_proto", "reference_impl"},
    "conformance": {"vfmig_proto", "reference_impl", "conformance"},
}


def _project_imports(package_dir: Path) -> set[str]:
    found: set[str] = set()
    for source in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package: str) -> None:
    package_dir = Path(vfmig_proto.__file__).resolve().parents[1] / package
    assert _project_imports(package_dir) <= ALLOWED[package]


def test_importing_the_protocol_loads_nothing_above_it() -> None:
    code = (
        "import sys, vfmig_proto; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('reference_impl', 'conformance')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
