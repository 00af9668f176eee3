"""The fault catalogue: deliberately faulty implementations the conformance suites must catch.

Each module ``conformance.catalogue.<target>_faults`` holds small variations
of the reference implementation, each breaking one requirement: one class per
fault, registered with ``@fault`` (``conformance.catalogue.registry``), which
takes the fault's name and description from the class and makes its
zero-argument factory.  Each module lists its faults in a module-level
``CATALOGUE: list[Fault]``; :func:`all_faults` gathers them, and a detection
run (:mod:`conformance.detection`) checks that the suite of each fault's
target judges the requirement it breaks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from conformance.verdicts import Target, Verdict

CATALOGUE_MODULES = (
    "conformance.catalogue.bridge_faults",
    "conformance.catalogue.device_faults",
    "conformance.catalogue.device_core_faults",
    "conformance.catalogue.hypervisor_faults",
)
"""The modules :func:`all_faults` looks in, one per target."""


@dataclass(frozen=True)
class Fault:
    """One deliberately faulty implementation, and what the suite must find in it."""

    name: str
    """Kebab-case name, unique in the catalogue."""
    target: Target
    factory: str
    """``MODULE:FACTORY`` of the faulty implementation (a zero-argument factory, like the reference's)."""
    breaks: str
    """The requirement ID the fault breaks."""
    description: str
    """One sentence: what the implementation does wrong."""
    verdict: Verdict = Verdict.FAIL
    """The verdict the suite must give ``breaks`` (``timeout`` or ``error`` for implementations that hang or raise)."""


def all_faults() -> list[Fault]:
    """Every catalogued fault, from the catalogue modules that exist (others are skipped)."""
    faults: list[Fault] = []
    for name in CATALOGUE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:
                continue  # that target's catalogue is not written yet
            raise
        faults.extend(module.CATALOGUE)
    return faults
