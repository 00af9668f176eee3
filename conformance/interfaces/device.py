"""The ``device`` target: a virtual function and its guest driver, with the migration core they work with.

``MODULE:FACTORY()`` returns a :class:`DeviceImplementation`; the suite asks it for functions
(:class:`FunctionUnderTest`), which a host assigns to the guest's migration bridge, and for their drivers
(:class:`DriverUnderTest`), which run in the guest next to the guest's migration core (:class:`MigrationCore`).
How a driver programs its own function (rings, buffers, queues) is the implementation's own business: the
suite reaches the function only through :class:`FunctionUnderTest`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from conformance.interfaces.common import (
    Clock,
    DmaAllocator,
    EventSink,
    FunctionIds,
    GuestMemoryView,
    GuestPlatformView,
    HostFunction,
)
from vfmig_proto.states import DevState, DriverReport


@runtime_checkable
class FunctionUnderTest(HostFunction, Protocol):
    """A virtual function (the ``device`` role): config space, resets and a DMA engine.

    The function is what a host assigns to the guest (its members as
    :class:`~conformance.interfaces.common.HostFunction` lists them, the hypervisor setting ``memory``,
    ``interrupt_sink`` and ``bme_listener``), and more that the suite drives."""

    @property
    def msix_enabled(self) -> bool:
        """Whether MSI-X is enabled and not masked as a whole (the function may then send messages)."""

    @property
    def failed(self) -> bool:
        """Whether the function is in the failed state
        :meth:`~conformance.interfaces.common.HostFunction.fail` put it in (until a reset)."""

    def receive(self, nbytes: int) -> int:
        """Frames of ``nbytes`` arrive from the network; DMA them into posted buffers. Returns buffers filled.

        Judged under VFM-FN-001 and VFM-FN-004 (what the function may write, and when).
        """


class GuestView(Protocol):
    """The guest operating system, as a driver uses it."""

    @property
    def clock(self) -> Clock:
        """The world's clock."""

    @property
    def platform(self) -> GuestPlatformView:
        """The host the guest runs on now (it changes at each migration)."""

    @property
    def memory(self) -> GuestMemoryView:
        """The guest's RAM on the host it runs on now."""

    @property
    def device_interrupt_handlers(self) -> dict[str, Callable[[], None]]:
        """The handler of each function's interrupts, by function name: a driver installs its own here."""

    def after(self, delay: int, task: Callable[[], None], label: str = "") -> None:
        """Run ``task`` in the guest ``delay`` ns from now, or as soon as the vCPUs run again."""


class MigrationCore(Protocol):
    """The guest's migration core (one per migration bridge), as a driver uses it (spec §4.4, §6).

    The core calls :meth:`DriverUnderTest.act_on` with the slot's ``DEV_STATE`` in each of the slot's
    sequences (VFM-NOTIF-010) unless the driver is ``busy``; then it sets ``look_again`` and waits for the
    driver's :meth:`sequence_done`."""

    @property
    def cap(self) -> int | None:
        """Offset of the migration capability the core found and enabled (None: the guest takes no part, and
        a driver leaves the migration registers alone)."""

    def register(self, slot: int, driver: DriverUnderTest) -> None:
        """``driver`` handles ``slot`` from now on."""

    def unregister(self, slot: int) -> None:
        """No driver handles ``slot`` any more."""

    def report(self, slot: int, report: DriverReport) -> None:
        """Write ``DRV_STATE`` of ``slot``."""

    def dev_state(self, slot: int) -> DevState | int:
        """``DEV_STATE`` of ``slot`` (an int if the value is unknown to this version)."""

    def dev_status(self, slot: int) -> tuple[bool, bool]:
        """``DEV_STATUS.MIGRATED`` and ``DEV_STATUS.RESET`` of ``slot``."""

    def clear_dev_status(self, slot: int, migrated: bool, reset: bool) -> None:
        """Clear the named ``DEV_STATUS`` flags of ``slot`` (write 1 to clear)."""

    def look_at(self, slot: int) -> None:
        """Run a sequence for ``slot`` now (a driver that was busy asks again)."""

    def sequence_done(self, slot: int) -> None:
        """A driver that was ``busy`` has finished; the core runs the sequence it owes if ``look_again``."""

    def request_group_reset(self) -> None:
        """Ask the host for a group reset (the guest's way to recover a failed function, spec §7.9)."""


@runtime_checkable
class DriverUnderTest(Protocol):
    """The guest driver of one function (the ``driver`` role), working with the guest's
    :class:`~conformance.interfaces.device.MigrationCore`."""

    slot: int
    busy: bool
    """Set while the driver is in the middle of work the core must not interrupt with a new sequence."""
    look_again: bool
    """Set by the core when it owed the driver a sequence while it was busy."""

    @property
    def loaded(self) -> bool:
        """Whether the driver is bound to its function."""

    @property
    def up(self) -> bool:
        """Whether the interface is administratively up."""

    @property
    def configured(self) -> bool:
        """Whether the driver has programmed its function (rings, buffers, queues) and it may do DMA."""

    @property
    def paused(self) -> bool:
        """Whether the driver has paused its function for a migration (and not yet resumed or reinitialised)."""

    @property
    def function(self) -> FunctionUnderTest | None:
        """The function this driver drives: ``guest.platform.function_at(devfn)`` on the host where the guest
        runs.  The suite sends frames to it."""

    def act_on(self, state: DevState | int) -> None:
        """One sequence: act on the slot's ``DEV_STATE`` (an int if the value is unknown to this version)."""

    def load(self, *, up: bool = True) -> bool:
        """Bind to the function (probe); returns whether it bound."""

    def unload(self) -> None:
        """Unbind from the function."""

    def open(self) -> None:
        """Bring the interface up."""

    def close(self) -> None:
        """Bring the interface down."""

    def transmit(self, pages: int) -> int:
        """Send ``pages`` of data; returns the pages the function read."""


class DeviceImplementation(Protocol):
    """What ``MODULE:FACTORY()`` returns for the ``device`` target.

    Optionally, the object also has ``create_migration_core(guest) -> core``: the guest operating system's own
    migration core (one per migration bridge), which the suite then uses in place of the reference core.
    Absent, the suite uses the reference core.  A core supplied this way finds, checks and enables the
    capability on ``guest.platform.bridge`` in ``probe() -> bool`` (and returns whether the guest takes part),
    installs its event handler as ``guest.bridge_interrupt_handler``, and offers the drivers what
    :class:`MigrationCore` lists.  The suite checks the migration core's own requirements (discovery,
    negotiation, register access, event handling) on every configuration access it makes to the bridge
    (:mod:`conformance.guest_watch`).  The method is not a member of this protocol because a protocol's
    members are all required.
    """

    def create_function(
        self, name: str, clock: Clock, bus: EventSink, identity: FunctionIds | None
    ) -> FunctionUnderTest:
        """A fresh function named ``name``, as after a function-level reset (``identity`` None: the
        implementation's own IDs)."""

    def create_driver(
        self, guest: GuestView, core: MigrationCore, slot: int, devfn: int, allocator: DmaAllocator
    ) -> DriverUnderTest:
        """The driver for the function at ``devfn`` in ``slot``, not yet loaded; ``allocator`` hands out guest
        pages for rings and buffers."""
