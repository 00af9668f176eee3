"""A state machine assembled from mixins in several modules, as a suite split into a package is."""

from __future__ import annotations

from typing import ClassVar

from conformance.checks import Checks

from .observers import Observers
from .rules import Rules

KNOWN = ("VFM-FN-001", "VFM-FN-002", "VFM-FN-003", "VFM-FN-004", "VFM-FN-005")


class MixinSuite(Rules, Observers):
    """Rules from one module, the checks they reach from another."""

    checks: ClassVar[Checks] = Checks(KNOWN)
