"""The fault catalogue: deliberately faulty implementations the conformance suites must catch.

Each module ``conformance.catalogue.<target>_faults`` holds small variations
of the reference implementation, each breaking one requirement: one class
per fault, registered with :func:`~conformance.catalogue.registry.fault`
(which takes the fault's name and description from the class and makes its
factory).  :func:`all_faults` gathers them; a detection run
(:mod:`conformance.detection`) checks that the suite of each fault's target
judges the requirement it breaks.
"""

from __future__ import annotations

import importlib

from conformance.catalogue.registry import Fault, faults_in

__all__ = ["CATALOGUE_MODULES", "Fault", "all_faults"]

CATALOGUE_MODULES = (
    "conformance.catalogue.bridge_faults",
    "conformance.catalogue.device_faults",
    "conformance.catalogue.device_core_faults",
    "conformance.catalogue.hypervisor_faults",
)
"""The modules :func:`all_faults` looks in, one per target."""


def all_faults() -> list[Fault]:
    """Every catalogued fault, from the catalogue modules that exist (others are skipped)."""
    for name in CATALOGUE_MODULES:
        try:
            importlib.import_module(name)  # its faults register themselves
        except ModuleNotFoundError as error:
            if error.name == name:
                continue  # that target's catalogue is not written yet
            raise
    return [fault for name in CATALOGUE_MODULES for fault in faults_in(name)]
