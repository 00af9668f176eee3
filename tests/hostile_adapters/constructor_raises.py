"""A device implementation whose constructor fails (its model is not where it looks)."""

from __future__ import annotations

from reference_impl.factories import ReferenceDevice


class UnreachableModel(ReferenceDevice):
    """The mistake: the constructor raises."""

    def __init__(self) -> None:
        raise ValueError("cannot open /dev/acme0: no such device")


def make() -> UnreachableModel:
    return UnreachableModel()
