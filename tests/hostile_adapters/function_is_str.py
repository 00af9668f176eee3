"""A device implementation whose ``create_function`` returns the function's name, not a function."""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity
from reference_impl.events import EventBus

from .reference_halves import ReferenceDriverHalf


@dataclass(frozen=True)
class NamesOnly(ReferenceDriverHalf):
    """The mistake: ``create_function`` returns a ``str``."""

    def create_function(self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None) -> str:
        return name


def make() -> NamesOnly:
    return NamesOnly()
