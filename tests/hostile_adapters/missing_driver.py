"""A device implementation that makes functions but has no ``create_driver``."""

from __future__ import annotations

from .reference_halves import ReferenceFunctionHalf


class FunctionsOnly(ReferenceFunctionHalf):
    """The mistake: the driver half of the device target is missing."""


def make() -> FunctionsOnly:
    return FunctionsOnly()
