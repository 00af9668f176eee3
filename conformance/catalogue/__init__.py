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

PENDING_MODULES = (
    "conformance.catalogue.field_device_faults",
    "conformance.catalogue.field_bridge_faults",
    "conformance.catalogue.field_hypervisor_faults",
)
"""Catalogue modules of faults the suite does not detect yet: the field faults of issue 12, written from the
spec and the interfaces rather than from the suite (``conformance/catalogue/FIELD_FAULTS.md`` has what the
suite caught when they were written).  :func:`all_faults` leaves them out unless asked (``include_pending``,
``python -m conformance.detection --include-pending``), so that the campaign and CI, which require every
catalogued fault to be detected, stay green; a module moves to :data:`CATALOGUE_MODULES` once the suite
detects every fault in it under the requirement it breaks."""


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


def all_faults(*, include_pending: bool = False) -> list[Fault]:
    """Every catalogued fault, from the catalogue modules that exist (others are skipped).

    ``include_pending`` adds the faults of :data:`PENDING_MODULES`, after the others.
    """
    faults: list[Fault] = []
    modules = CATALOGUE_MODULES + PENDING_MODULES if include_pending else CATALOGUE_MODULES
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:
                continue  # that target's catalogue is not written yet
            raise
        faults.extend(module.CATALOGUE)
    return faults
