"""The older home of the adapter interfaces, kept for code written against it: use :mod:`conformance.interfaces`.

What an implementation under test provides, per conformance target, is documented in
:mod:`conformance.interfaces` (one module per target, typed with protocol-level types only): the suite's
pre-flight check and the attribution of failures read those protocols, and an implementation can be written
against them from scratch (``tests/from_scratch``).  Nothing of the suite imports this module.

What remains here is the same boundary typed with the reference implementation's classes, for the parts of
the reference that are not yet typed against the reference-free protocols (its bridge and its host: they take
and hand out the reference's own objects).  ``mypy`` checks the reference and the vendor example against them
(``tests/test_adapter_typing.py``):

* :class:`FunctionUnderTest` and :class:`DriverUnderTest` are the device target's protocols of
  :mod:`conformance.interfaces.device`, re-exported (the reference's function and driver satisfy them);
* :data:`DeviceImplementation` and :data:`HypervisorImplementation` are what the simulation the suites run
  needs of a device model and of a hypervisor (:class:`reference_impl.scenario.DeviceModel` and
  :class:`reference_impl.scenario.HypervisorModel`);
* :class:`BridgeImplementation`, :class:`BridgeUnderTest`, :class:`HypervisorUnderTest`,
  :class:`MigrationHandle` and :class:`IncomingMigration` are typed with the reference's classes; their
  reference-free counterparts are in :mod:`conformance.interfaces.bridge` and
  :mod:`conformance.interfaces.hypervisor`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, Self, runtime_checkable

from conformance.interfaces.device import DriverUnderTest, FunctionUnderTest
from reference_impl.bridge import SlotFunction
from reference_impl.device import FunctionIdentity
from reference_impl.events import EventBus
from reference_impl.guest import Guest
from reference_impl.hypervisor import MigrationRecord
from reference_impl.memory import GuestMemory
from reference_impl.scenario import DeviceModel, HypervisorModel
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.states import MigReason, MigState

__all__ = [
    "BridgeImplementation",
    "BridgeUnderTest",
    "DeviceImplementation",
    "DriverUnderTest",
    "FunctionUnderTest",
    "HypervisorImplementation",
    "HypervisorUnderTest",
    "IncomingMigration",
    "MigrationHandle",
]

DeviceImplementation = DeviceModel
"""What ``MODULE:FACTORY()`` returns for the ``device`` target, as the simulation types it."""

# ------------------------------------------------------------------------------------------ bridge target


@runtime_checkable
class BridgeUnderTest(Protocol):
    """The emulated migration bridge (the ``bridge`` role).

    The guest reaches it through :meth:`config_read` / :meth:`config_write`;
    the hypervisor through the host-event methods.  Each call is one step
    (VFM-ACC-007).  Functions placed in slots are objects with ``name``, a
    ``bus_master`` property and ``function_level_reset(how)``.
    """

    name: str
    num_slots: int
    cap: int
    """Offset of the migration capability in the config space."""
    observers: list[Any]
    """Objects with ``bridge_stepped(bridge, cause)``, ``report_rejected(bridge, slot, report, why)`` and
    ``secondary_bus_reset_requested(bridge)``; the bridge calls them before the access that caused it completes.

    ``bridge_stepped`` is called exactly once per step (each guest access, each host event), after the
    step's registers are final: the suite judges VFM-ACC-007 by it.  A bridge should also publish a
    ``MIG_TRANSITION`` or ``DEV_TRANSITION`` event (:class:`reference_impl.events.EventKind`) on the bus for
    each transition it makes; the suite judges the events the bridge raises itself (VFM-DEV-012) from
    them, and a bridge that publishes none is not judged on that requirement."""
    interrupt_sink: Callable[[], None] | None
    """Called once per interrupt the bridge signals."""

    @property
    def bus(self) -> EventBus:
        """The event bus the bridge was created with (the suite leaves it out when it measures what a bridge keeps)."""

    @property
    def functions(self) -> Sequence[object | None]:
        """The function in each slot (None: empty)."""

    def config_read(self, offset: int, width: int) -> int:
        """A guest configuration read (judged under VFM-ACC-005)."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A guest configuration write (judged under VFM-ACC-005)."""

    def start(self) -> None:
        """START."""

    def request_pause(self) -> None:
        """REQUEST_PAUSE."""

    def cancel(self, reason: MigReason) -> None:
        """CANCEL with ``reason``."""

    def arrive(self) -> None:
        """ARRIVE (destination)."""

    def group_reset(self) -> None:
        """A group reset by the hypervisor."""

    def hot_add(self, slot: int, function: SlotFunction) -> None:
        """HOT_ADD of ``function`` into ``slot``."""

    def surprise_removal(self, slot: int) -> None:
        """SURPRISE_REMOVAL of the function in ``slot``."""

    def device_error(self, slot: int) -> None:
        """DEVICE_ERROR of the function in ``slot``."""

    def capability_bytes(self) -> bytes:
        """The capability's current bytes (what the migration stream carries)."""

    @property
    def mig_state(self) -> MigState:
        """``MIG_STATE`` as the host reads it."""


class BridgeImplementation(Protocol):
    """What ``MODULE:FACTORY()`` returns for the ``bridge`` target."""

    def create_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> BridgeUnderTest:
        """A bridge after a conventional reset, instantiated with ``params``, with every slot empty."""


# ------------------------------------------------------------------------------------------ hypervisor target


class MigrationHandle(Protocol):
    """What :meth:`HypervisorUnderTest.migrate_to` returns: the management layer's hold on one migration."""

    record: MigrationRecord
    """How the migration goes and ended (the suite reads ``outcome`` and the times the hypervisor measured)."""

    def cancel(self, reason: MigReason) -> None:
        """The management layer cancels the migration (``reason`` CANCELLED), if it can still be cancelled."""


class IncomingMigration(Protocol):
    """The destination's side of a migration, as :attr:`HypervisorUnderTest.incoming` shows it."""

    memory: GuestMemory
    """The destination's copy of the guest's memory (made with :attr:`HypervisorUnderTest.make_memory`)."""
    fail_on_state: str | None
    """Set by the suite: the destination reports this failure when the final state arrives."""

    def receive_state(self, config: bytes, bars: dict[int, tuple[int, ...]] | None = None) -> None:
        """The last pages, the bridge's config space and the functions' BARs arrive from the source."""


@runtime_checkable
class HypervisorUnderTest(Protocol):
    """One host of the migration orchestration (the ``hypervisor`` role).

    The suite builds the guest, gives a host a bridge and functions, and asks
    it to migrate; everything else (deadlines, cancellations, the handover)
    is the hypervisor's own doing, observed on the bridge, the functions, the
    guest's vCPUs and the guest's memory.

    A host is also the platform the guest runs on
    (:class:`reference_impl.guest.GuestPlatform`): the guest reaches its memory,
    its bridge and its functions through :attr:`memory`, :attr:`bridge` and
    :meth:`function_at`.
    """

    name: str
    guest: Guest | None
    """The guest this host runs (None: none)."""

    @property
    def incoming(self) -> IncomingMigration | None:
        """The migration this host is receiving, from its start until the guest arrives or it is abandoned."""

    make_memory: Callable[[int, int, bool], GuestMemory]
    """Set by the suite: ``(size_bytes, page_shift, boot) -> memory``, how the host makes a copy of guest RAM.

    The ``page_shift`` the host asks for is the granularity of its dirty tracking of that copy (VFM-DIRTY-007)."""

    @property
    def memory(self) -> GuestMemory:
        """This host's copy of the guest's RAM (may raise while the host holds none)."""

    @property
    def bridge(self) -> object:
        """The guest's migration bridge on this host (may raise while the host has none)."""

    @property
    def bridge_or_none(self) -> object | None:
        """The bridge, or None while this host holds no guest and receives none."""

    def function_at(self, devfn: int) -> object | None:
        """The function the guest finds at ``devfn`` on the bridge's secondary bus (VFM-DISC-003), or None."""

    def create_bridge(self, params: CapabilityParams) -> object:
        """Create the guest's bridge on this host (with the bridge factory it was given)."""

    def host_guest(self, guest: Guest, memory: GuestMemory) -> None:
        """Run ``guest`` here with ``memory``."""

    def assign_function(self, slot: int, identity: FunctionIdentity | None = None) -> object:
        """Assign a fresh function to ``slot`` (HOT_ADD)."""

    def migrate_to(self, destination: Self, number: int = 1) -> MigrationHandle:
        """Start migrating this host's guest to ``destination`` (START); refuse with
        :class:`reference_impl.hypervisor.MigrationError` when a start condition fails."""

    def surprise_remove(self, slot: int) -> None:
        """The function in ``slot`` disappeared."""

    def function_failed(self, slot: int) -> None:
        """The function in ``slot`` reported an uncorrectable error."""

    def reset_bridge(self) -> None:
        """A conventional reset of the bridge (a platform reset the management layer asks for; VFM-CAP-008)."""


HypervisorImplementation = HypervisorModel
"""What ``MODULE:FACTORY()`` returns for the ``hypervisor`` target, as the simulation types it."""
