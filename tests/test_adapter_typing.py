"""The reference implementation and the vendor example satisfy the adapter interfaces, for mypy too.

The assignments below are checked by ``mypy --strict`` (``tox -e type``): an implementation whose shape
drifts from :mod:`conformance.adapters` fails the type check, not just a run of the suite.  At run time
the same objects pass the ``runtime_checkable`` protocols' ``isinstance`` checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.adapters import (
    BridgeImplementation,
    BridgeUnderTest,
    DeviceImplementation,
    FunctionUnderTest,
    HypervisorImplementation,
    HypervisorUnderTest,
)
from conformance.interfaces import device as device_interface
from conformance.interfaces.common import Clock, DmaAllocator, EventSink, FunctionIds, GuestMemoryView
from conformance.interfaces.device import GuestView
from conformance.interfaces.hypervisor import MigrationSettings
from reference_impl import factories
from reference_impl.bridge import MigrationBridge
from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.driver import MigrationCore, VfDriver
from reference_impl.events import EventBus
from reference_impl.guest import DmaRegionAllocator, Guest
from reference_impl.hypervisor import MigrationConfig
from reference_impl.memory import GuestMemory
from vfmig_proto.layout import CapabilityParams

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _checkout_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``examples`` is not in the wheel: import it from the checkout, as the vendor's guide does."""
    monkeypatch.syspath_prepend(str(ROOT))


def test_the_factories_return_implementations_of_their_targets() -> None:
    from examples.vendor_device.acme_vf import make as make_acme

    device: DeviceImplementation = factories.device()
    acme: DeviceImplementation = make_acme()
    bridge: BridgeImplementation = factories.bridge()
    hypervisor: HypervisorImplementation = factories.hypervisor()
    assert all(callable(getattr(item, "create_function", None)) for item in (device, acme))
    assert callable(bridge.create_bridge)
    assert callable(hypervisor.create_hypervisor)


def test_the_objects_they_make_are_what_the_suites_drive() -> None:
    from examples.vendor_device.acme_vf import make as make_acme

    clock = SimClock()
    bus = EventBus(clock)
    function: FunctionUnderTest = factories.device().create_function("vf0", clock, bus, None)
    acme_function: FunctionUnderTest = make_acme().create_function("vf1", clock, bus, None)
    bridge: BridgeUnderTest = factories.bridge().create_bridge(bus, CapabilityParams(), "bridge")
    host: HypervisorUnderTest = factories.hypervisor().create_hypervisor(
        "host", clock, bus, MigrationConfig(), functions=VirtualFunction, bridges=None
    )
    assert isinstance(function, FunctionUnderTest)
    assert isinstance(acme_function, FunctionUnderTest)
    assert isinstance(bridge, BridgeUnderTest)
    # (No isinstance for the host: on Python 3.11 it reads every property, and a host without a guest has
    # no memory to show.  tests/test_conformance_hypervisor.py checks its members by name.)
    assert host.guest is None


def test_the_objects_the_suite_hands_to_an_implementation_fit_the_reference_free_interfaces() -> None:
    """What the suite passes to an implementation is what :mod:`conformance.interfaces` promises it, for mypy too.

    A from-scratch implementation types its parameters with these protocols; the suite's objects (the
    reference's clock, bus, memory, allocator, guest and function identity) must satisfy them.  (Not yet the
    reference's memory as a hypervisor's ``HostMemory`` nor its guest as a ``HostedGuest``: the page copy takes
    only a reference ``GuestMemory``, ``Guest.move_to`` only a platform whose memory is one.)
    """
    clock = SimClock()
    bus = EventBus(clock)
    memory = GuestMemory(64 << 12, 12)
    guest = Guest("guest", clock, bus, _Platform(memory))
    handed: tuple[Clock, EventSink, GuestMemoryView, DmaAllocator, FunctionIds, GuestView] = (
        clock,
        bus,
        memory,
        DmaRegionAllocator(memory.num_pages),
        FunctionIdentity(),
        guest,
    )
    settings: MigrationSettings = MigrationConfig()
    assert handed[0].now == 0
    assert handed[2].num_pages == 64
    assert settings.dirty_tracking_shift is None


def test_the_reference_device_roles_are_typed_as_the_reference_free_device_interface() -> None:
    """The reference's function, driver and migration core are what :mod:`conformance.interfaces.device` says,
    for mypy too: a function's memory is any guest memory view, its BME listener takes any function, and the
    core registers any driver of the interface's shape."""
    clock = SimClock()
    bus = EventBus(clock)
    memory = GuestMemory(64 << 12, 12)
    guest = Guest("guest", clock, bus, _Platform(memory))
    core = MigrationCore(guest)
    function: device_interface.FunctionUnderTest = VirtualFunction("vf0", clock, bus)
    driver: device_interface.DriverUnderTest = VfDriver(guest, core, 0, 0x08, DmaRegionAllocator(4096))
    interface_core: device_interface.MigrationCore = core
    interface_core.register(0, driver)
    assert isinstance(function, device_interface.FunctionUnderTest)
    assert isinstance(driver, device_interface.DriverUnderTest)
    assert core.drivers[0] is driver


class _Platform:
    """The least a guest needs of the host it runs on, for the check above."""

    def __init__(self, memory: GuestMemory) -> None:
        self._memory = memory

    @property
    def memory(self) -> GuestMemory:
        return self._memory

    @property
    def bridge(self) -> MigrationBridge:
        raise LookupError("no bridge in this check")

    def function_at(self, devfn: int) -> object | None:
        return None
