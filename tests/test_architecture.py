"""Imports only point down (docs/architecture.rst).

The layering itself is a set of import-linter contracts in pyproject.toml, which `lint-imports` enforces
(`tox -e lint`); here, that those contracts exist and hold, and what no static reading of imports can show:
importing the protocol package at run time loads nothing above it.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_the_contracts_stack_the_packages_and_keep_the_protocol_alone() -> None:
    by_type = {str(contract["type"]): contract for contract in _contracts()}
    assert by_type["layers"]["layers"] == ["conformance", "reference_impl", "vfmig_proto"]
    assert by_type["forbidden"]["source_modules"] == ["vfmig_proto"]
    assert set(by_type["forbidden"]["forbidden_modules"]) == {"reference_impl", "conformance"}


def test_the_import_contracts_are_kept() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    if not linter.exists():
        pytest.skip("import-linter is not installed (tox -e lint installs it)")
    result = subprocess.run(
        [str(linter), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_architecture_page_draws_the_imports_the_code_has() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        vfmig_imports = importlib.import_module("vfmig_imports")  # a docs extension: not a package of ours
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    packages = vfmig_imports.import_edges(vfmig_imports.PACKAGES)
    assert set(packages) == {
        ("conformance", "reference_impl"),
        ("conformance", "vfmig_proto"),
        ("reference_impl", "vfmig_proto"),
    }
    modules = vfmig_imports.import_edges(vfmig_imports.PACKAGES, expand="conformance")
    assert ("conformance.runner", "conformance.checks") in modules
    assert not any(source.startswith("vfmig_proto") for source, _ in modules)
    dot = "\n".join(vfmig_imports.import_graph_dot(expand="conformance"))
    assert dot.startswith("digraph")
    assert '"conformance.cli" -> "conformance.cli_options";' in dot


def test_importing_the_protocol_loads_nothing_above_it() -> None:
    code = (
        "import sys, vfmig_proto; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('reference_impl', 'conformance')))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
