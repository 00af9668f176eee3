"""The catalogue's registry: each fault is written once, as one decorated class.

A catalogue module registers, once per reference base class, how a subclass of
it becomes an implementation of its target (:func:`builds`), then decorates
each faulty subclass with :func:`fault`::

    @fault(Target.HYPERVISOR, breaks="VFM-MIG-001")
    class StartsWithAFailedSlot(SourceMigration):
        \"\"\"Counts a slot in ERROR among those a migration may start with.\"\"\"

The fault's name is the class name in kebab case (``starts-with-a-failed-slot``)
unless ``name=`` says otherwise; its description is the docstring's first
paragraph.  The decorator also puts the zero-argument factory the runner loads
(``MODULE:FACTORY``, ``FACTORY`` being the name in snake case) into the
class's module, so that ``conformance.catalogue.hypervisor_faults:starts_with_a_failed_slot``
names a ``hypervisor`` implementation as it always did.  A fault that is a
configuration of the reference rather than a subclass decorates its factory
function instead.

A fault that only leaves out a phase of the reference says so instead of
overriding it with an empty method::

    @fault(Target.HYPERVISOR, breaks="VFM-TMO-003", leaves_out="pausing_deadline")
    class NeverTimesOutAPause(SourceMigration):
        \"\"\"Waits for every PAUSED report however long it takes.\"\"\"

A module whose builders only pass the faulty subclass to one factory, each
under its own keyword, registers them at once with :func:`builds_by_keyword`.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from conformance.catalogue import Fault
from conformance.verdicts import Target, Verdict

Builder = Callable[[type[Any]], object]
"""Makes a target's implementation from a faulty subclass of a reference class."""

_Decorated = TypeVar("_Decorated", bound=Callable[..., object])

_BUILDERS: dict[type, Builder] = {}
_FAULTS: dict[str, Fault] = {}
"""Every registered fault by name, in the order the catalogue modules declare them."""


class CatalogueError(TypeError):
    """A fault is registered twice, or its class has no builder or no description."""


def builds(base: type) -> Callable[[Builder], Builder]:
    """Register the decorated function as the way a faulty subclass of ``base`` becomes an implementation."""

    def register(builder: Builder) -> Builder:
        if base in _BUILDERS:
            raise CatalogueError(f"a builder for {base.__qualname__} is registered already")
        _BUILDERS[base] = builder
        return builder

    return register


def builds_by_keyword(make: Callable[..., object], **bases: type) -> None:
    """Register, for each keyword, that a faulty subclass of ``bases[keyword]`` becomes ``make(keyword=subclass)``."""
    for keyword, base in bases.items():
        builds(base)(partial(_build_by_keyword, make, keyword))


def _build_by_keyword(make: Callable[..., object], keyword: str, cls: type[Any]) -> object:
    return make(**{keyword: cls})


def fault(
    target: Target,
    *,
    breaks: str,
    verdict: Verdict = Verdict.FAIL,
    name: str | None = None,
    leaves_out: str | None = None,
) -> Callable[[_Decorated], _Decorated]:
    """Register the decorated class (or factory function) as a fault of ``target`` that breaks ``breaks``.

    ``leaves_out`` names a phase (a public method of the reference class) the fault does not do at all: the
    registry makes it a method that does nothing and returns ``None``.
    """

    def register(decorated: _Decorated) -> _Decorated:
        fault_name = name or _kebab_case(decorated.__name__)
        factory_name = fault_name.replace("-", "_")
        module = sys.modules[decorated.__module__]
        if leaves_out is not None:
            _leave_out(decorated, leaves_out)
        if isinstance(decorated, type):
            setattr(module, factory_name, _factory(decorated, factory_name))
        elif decorated.__name__ != factory_name:
            raise CatalogueError(f"the factory of {fault_name} must be called {factory_name}")
        if fault_name in _FAULTS:
            raise CatalogueError(f"two faults are called {fault_name}")
        description = _first_paragraph(decorated)
        _FAULTS[fault_name] = Fault(
            fault_name, target, f"{module.__name__}:{factory_name}", breaks, description, verdict
        )
        return decorated

    return register


def _leave_out(decorated: object, phase: str) -> None:
    """Make ``phase`` of the fault class ``decorated`` a method that does nothing."""
    inherited = getattr(decorated, phase, None)
    if not isinstance(decorated, type) or phase.startswith("_") or not inspect.isfunction(inherited):
        raise CatalogueError(f"{decorated!r} cannot leave out {phase!r}: not a public method of a fault class")
    if phase in vars(decorated):
        raise CatalogueError(f"{decorated.__qualname__} both defines and leaves out {phase}")

    def left_out(self: object, *args: object, **kwargs: object) -> None:
        return None

    left_out.__name__ = phase
    left_out.__qualname__ = f"{decorated.__qualname__}.{phase}"
    left_out.__doc__ = f"Left out: {decorated.__qualname__} does not do {inherited.__qualname__}."
    setattr(decorated, phase, left_out)


def faults_in(module: str) -> list[Fault]:
    """The faults ``module`` registered, in declaration order."""
    return [entry for entry in _FAULTS.values() if entry.factory.partition(":")[0] == module]


def _factory(cls: type, factory_name: str) -> Callable[[], object]:
    builder = next((_BUILDERS[base] for base in cls.__mro__ if base in _BUILDERS), None)
    if builder is None:
        raise CatalogueError(f"{cls.__qualname__}: no builder is registered for any of its base classes")

    def factory() -> object:
        return builder(cls)

    # The runner keys implementations by the factory's module source, and reports name the factory.
    factory.__module__ = cls.__module__
    factory.__name__ = factory.__qualname__ = factory_name
    factory.__doc__ = cls.__doc__
    return factory


def _kebab_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower().replace("_", "-")


def _first_paragraph(decorated: object) -> str:
    doc = getattr(decorated, "__doc__", None)  # its own: inspect.getdoc would fall back on the base class's
    if not doc:
        raise CatalogueError(f"{decorated!r} needs a docstring: its first paragraph is the fault's description")
    return " ".join(inspect.cleandoc(doc).split("\n\n", 1)[0].split())
