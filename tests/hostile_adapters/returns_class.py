"""A factory that returns the implementation's class instead of an instance of it."""

from __future__ import annotations

from reference_impl.factories import ReferenceDevice


def make() -> type[ReferenceDevice]:
    """The mistake: ``ReferenceDevice``, not ``ReferenceDevice()``."""
    return ReferenceDevice
