"""A device implementation whose function's ``config_read`` takes no width."""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.driver import MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.guest import DmaRegionAllocator, Guest


class DwordOnlyFunction(VirtualFunction):
    """The mistake: ``config_read(offset)``; the suite calls ``config_read(offset, width)``."""

    def config_read(self, offset: int) -> int:  # type: ignore[override]
        return super().config_read(offset & ~3, 4)


@dataclass(frozen=True)
class DwordOnlyDevice:
    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        return DwordOnlyFunction(name, clock, bus, identity)

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return VfDriver(guest, core, slot, devfn, allocator)


def make() -> DwordOnlyDevice:
    return DwordOnlyDevice()
