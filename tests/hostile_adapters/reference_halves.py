"""The two halves of a device adapter, done right: the device adapters here inherit them to hold one mistake each."""

from __future__ import annotations

from typing import ClassVar

from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.driver import MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.guest import DmaRegionAllocator, Guest


class ReferenceFunctionHalf:
    """``create_function`` as the reference device's adapter has it, for functions of :attr:`function_class`."""

    function_class: ClassVar[type[VirtualFunction]] = VirtualFunction

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        return self.function_class(name, clock, bus, identity)


class ReferenceDriverHalf:
    """``create_driver`` as the reference device's adapter has it."""

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return VfDriver(guest, core, slot, devfn, allocator)
