"""A device implementation whose ``create_function`` returns the function's name, not a function."""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity
from reference_impl.driver import MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.guest import DmaRegionAllocator, Guest


@dataclass(frozen=True)
class NamesOnly:
    """The mistake: ``create_function`` returns a ``str``."""

    def create_function(self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None) -> str:
        return name

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return VfDriver(guest, core, slot, devfn, allocator)


def make() -> NamesOnly:
    return NamesOnly()
