"""A factory that builds its device and forgets to return it."""

from __future__ import annotations

from reference_impl.factories import ReferenceDevice


def make() -> None:
    """The mistake: no ``return``."""
    ReferenceDevice()
