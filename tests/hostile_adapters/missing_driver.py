"""A device implementation that makes functions but has no ``create_driver``."""

from __future__ import annotations

from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.events import EventBus


class FunctionsOnly:
    """The mistake: the driver half of the device target is missing."""

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        return VirtualFunction(name, clock, bus, identity)


def make() -> FunctionsOnly:
    return FunctionsOnly()
