"""The driver half of a device adapter, done right: the device adapters here inherit it to hold one mistake each."""

from __future__ import annotations

from reference_impl.driver import MigrationCore, VfDriver
from reference_impl.guest import DmaRegionAllocator, Guest


class ReferenceDriverHalf:
    """``create_driver`` as the reference device's adapter has it."""

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        return VfDriver(guest, core, slot, devfn, allocator)
