"""A factory that wants to be told which vendor's model to build."""

from __future__ import annotations

from reference_impl.factories import ReferenceDevice


def make(vendor: str, revision: int = 1) -> ReferenceDevice:
    """The mistake: ``vendor`` has no default, and the suite calls the factory with no arguments."""
    return ReferenceDevice()
