"""A bridge implementation handed to ``--target device``: an object of the wrong type."""

from __future__ import annotations

from reference_impl.factories import ReferenceBridge


def make() -> ReferenceBridge:
    """The mistake: the factory of another target."""
    return ReferenceBridge()
