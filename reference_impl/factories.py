"""The reference implementation of each conformance target, as zero-argument factories.

``vfmig conformance --impl MODULE:FACTORY`` names a callable that returns a
fresh implementation object; these are the defaults:

* :func:`device` returns a :class:`ReferenceDevice`, which makes VFs
  (:class:`~reference_impl.device.VirtualFunction`) and their guest drivers
  (:class:`~reference_impl.driver.VfDriver`);
* :func:`bridge` returns a :class:`ReferenceBridge`, which makes migration
  bridges (:class:`~reference_impl.bridge.MigrationBridge`);
* :func:`hypervisor` returns a :class:`ReferenceHypervisor`, which makes hosts
  (:class:`~reference_impl.hypervisor.Hypervisor`).

They satisfy the adapter protocols of :mod:`conformance.adapters` by their
shape alone: this module does not import the conformance package.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reference_impl.bridge import MigrationBridge
from reference_impl.clock import SimClock
from reference_impl.device import DeviceTiming, FunctionIdentity, VirtualFunction
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.guest import DmaRegionAllocator, Guest
from reference_impl.hypervisor import BridgeFactory, FunctionFactory, Hypervisor, MigrationConfig
from vfmig_proto.layout import CapabilityParams


@dataclass(frozen=True)
class ReferenceDevice:
    """The reference VF and its driver; the configs let a test or the catalogue bend them."""

    driver_config: DriverConfig = field(default_factory=DriverConfig)
    timing: DeviceTiming = field(default_factory=DeviceTiming)

    def create_function(
        self, name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None
    ) -> VirtualFunction:
        """A fresh function, as after a function-level reset."""
        return VirtualFunction(name, clock, bus, identity, self.timing)

    def create_driver(
        self, guest: Guest, core: MigrationCore, slot: int, devfn: int, allocator: DmaRegionAllocator
    ) -> VfDriver:
        """The guest's driver for the function in ``slot`` (not yet loaded)."""
        return VfDriver(guest, core, slot, devfn, allocator, config=self.driver_config)

    def create_migration_core(self, guest: Guest) -> MigrationCore:
        """The guest's migration core for one bridge: the reference core, declared here so that a suite (and a
        mutation campaign) judges this implementation's own core rather than a copy of its own."""
        return MigrationCore(guest)


class ReferenceBridge:
    """Makes reference migration bridges."""

    def create_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        """A bridge after a conventional reset, with no function in any slot."""
        return MigrationBridge(bus, params, name=name)


@dataclass(frozen=True)
class ReferenceHypervisor:
    """Makes reference hosts: instances of ``host_class`` (a variant of the reference host substitutes its own)."""

    host_class: type[Hypervisor] = Hypervisor

    def create_hypervisor(
        self,
        name: str,
        clock: SimClock,
        bus: EventBus,
        config: MigrationConfig,
        *,
        functions: FunctionFactory,
        bridges: BridgeFactory | None,
    ) -> Hypervisor:
        """A host that makes its functions and bridges with the given factories (None: the reference bridge)."""
        return self.host_class(name, clock, bus, config, functions=functions, bridges=bridges)


CONFORMANCE_BUFFERS = 16
"""Receive buffers of the reference driver under the conformance suite: a small guest keeps every step cheap."""


def device() -> ReferenceDevice:
    """The reference implementation of the ``device`` target."""
    return ReferenceDevice(driver_config=DriverConfig(buffers=CONFORMANCE_BUFFERS))


def bridge() -> ReferenceBridge:
    """The reference implementation of the ``bridge`` target."""
    return ReferenceBridge()


def hypervisor() -> ReferenceHypervisor:
    """The reference implementation of the ``hypervisor`` target."""
    return ReferenceHypervisor()
