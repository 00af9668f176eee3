"""A device implementation whose function's ``config_read`` takes no width."""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.events import EventBus
from tests.hostile_adapters.driver_half import ReferenceDriverHalf


class DwordOnlyFunction(VirtualFunction):
    """The mistake: ``config_read(offset)``; the suite calls ``config_read(offset, width)``."""

    def config_read(self, offset: int) -> int:  # type: ignore[override]
        return super().config_read(offset & ~3, 4)


@dataclass(frozen=True)
class DwordOnlyDevice(ReferenceDriverHalf):
    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        return DwordOnlyFunction(name, clock, bus, identity)


def make() -> DwordOnlyDevice:
    return DwordOnlyDevice()
