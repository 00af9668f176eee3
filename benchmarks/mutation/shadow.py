"""The copy of the tree a mutant runs in, and the mutant's own package inside it.

The oracle problem: the conformance suites build their world from the reference (``reference_impl.bridge``,
``reference_impl.hypervisor``, ...) and take their expectations from ``vfmig_proto.engine``.  Mutating those files
would change the implementation under test and the suite's oracle together, and a mutant would survive because
both sides moved, not because the suite is blind.  So the copy holds, beside the pristine packages, a package
:data:`SHADOW` with its own copy of each role module and of the engine; the implementation under test is made by
``vfmig_mutant.factories`` and the mutation is applied to the shadow copy only.  The suite's side never imports
:data:`SHADOW` (the copy's ``conformance`` is the checkout's, byte for byte), so it judges with the pristine
reference and engine.

Only the role modules and the factories are shadowed: the infrastructure they share with the suite (the clock,
the event bus and its kinds, guest memory) stays the one pristine module, so an event kind or a page set the
implementation hands to the suite is the suite's own class, as it would be for a vendor's implementation.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

SHADOW = "vfmig_mutant"
"""The package, in the copy only, that holds the implementation under test."""

COPIED = ("vfmig_proto", "reference_impl", "conformance", "spec")
"""What a run needs from the checkout (the spec: the requirement index is read from it at run time)."""


@dataclass(frozen=True)
class RoleModule:
    """A module that is mutated: where it lives in the checkout, its shadow's name, the targets that judge it."""

    source: str
    """Path in the checkout, e.g. ``reference_impl/driver.py``: how triage and reports name the module."""
    shadow: str
    """Module name inside :data:`SHADOW`."""
    targets: tuple[str, ...]


ROLE_MODULES: tuple[RoleModule, ...] = (
    RoleModule("reference_impl/driver.py", "driver", ("device",)),
    RoleModule("reference_impl/device.py", "device", ("device",)),
    RoleModule("reference_impl/bridge.py", "bridge", ("bridge",)),
    RoleModule("reference_impl/hypervisor.py", "hypervisor", ("hypervisor",)),
    # Of the reference's modules only bridge.py imports the engine (tests/test_mutation.py keeps that true), and
    # the hypervisor suite hands the host under test its own (pristine) bridges: the bridge target is the one
    # whose implementation runs the engine.
    RoleModule("vfmig_proto/engine.py", "_engine", ("bridge",)),
)
MODULES_BY_SOURCE = {module.source: module for module in ROLE_MODULES}

_SHADOWED_REFERENCE = ("driver", "device", "bridge", "hypervisor", "factories")
"""The reference modules copied into the shadow: the roles, and the factories that build them."""


def rewrite_imports(text: str) -> str:
    """``text`` with imports of the shadowed modules pointed at :data:`SHADOW` (the copy's shadow only)."""
    names = "|".join(_SHADOWED_REFERENCE)
    text = re.sub(rf"\breference_impl\.({names})\b", rf"{SHADOW}.\1", text)
    return re.sub(r"\bvfmig_proto\.engine\b", f"{SHADOW}._engine", text)


IGNORED = ("__pycache__", "*.pyc")

PRISTINE = ".pristine"
"""Where the copy keeps the unmutated shadow package."""


def shadow_path(root: Path, module: RoleModule) -> Path:
    return root / SHADOW / f"{module.shadow}.py"


def pristine_shadow_source(checkout: Path, module: RoleModule) -> str:
    """The shadow copy of ``module`` before any mutation, as :func:`build_copy` writes it."""
    return rewrite_imports((checkout / module.source).read_text(encoding="utf-8"))


def build_copy(checkout: Path, root: Path) -> Path:
    """Copy what a run needs from ``checkout`` into ``root`` and add the shadow package; returns ``root``."""
    ignore = shutil.ignore_patterns(*IGNORED)
    for name in COPIED:
        shutil.copytree(checkout / name, root / name, ignore=ignore)
    package = root / SHADOW
    package.mkdir()
    (package / "__init__.py").write_text('"""The implementation under mutation (a copy; see shadow.py)."""\n')
    for name in _SHADOWED_REFERENCE:
        source = checkout / "reference_impl" / f"{name}.py"
        (package / f"{name}.py").write_text(rewrite_imports(source.read_text(encoding="utf-8")), encoding="utf-8")
    engine = MODULES_BY_SOURCE["vfmig_proto/engine.py"]
    shadow_path(root, engine).write_text(pristine_shadow_source(checkout, engine), encoding="utf-8")
    # The judge runs inside the copy; and the pristine shadow sources let it tell which module cosmic-ray mutated
    # in place when it is cosmic-ray's test-command (a campaign spread over HTTP workers).
    shutil.copytree(
        checkout / "benchmarks" / "mutation", root / "mutation", ignore=shutil.ignore_patterns(*IGNORED, "results")
    )
    shutil.copytree(package, root / PRISTINE)
    return root


def implementation(target: str) -> str:
    """``MODULE:FACTORY`` of the shadow implementation for ``target``."""
    return f"{SHADOW}.factories:{target}"
