"""The ``hypervisor`` target: one host of the migration orchestration, source or destination.

``MODULE:FACTORY()`` returns a :class:`HypervisorImplementation`; the suite asks it for hosts
(:class:`HypervisorUnderTest`), builds a guest (:class:`HostedGuest`), gives a host a bridge and functions
(made by the factories the suite passes: reference peers, seen here as
:class:`~conformance.interfaces.bridge.BridgeUnderTest` and :class:`HostFunction`), and asks it to migrate.
Everything else (deadlines, cancellations, the handover, the restore on the destination) is the
hypervisor's own doing, observed on the bridge, the functions, the guest's vCPUs and the guest's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, Self, runtime_checkable

from conformance.interfaces import common
from conformance.interfaces.bridge import BridgeObserver, BridgeUnderTest
from conformance.interfaces.common import Clock, EventSink, FunctionIds, GuestMemoryView, GuestPlatformView
from vfmig_proto import outcomes
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.states import MigReason

HostFunction = common.HostFunction
"""A function the host assigns to the guest (made by the ``functions`` factory the suite passes):
:class:`conformance.interfaces.common.HostFunction`."""

MigrationRefusedError = outcomes.MigrationRefusedError
"""How a host refuses a migration or a hot-plug: the protocol's :class:`vfmig_proto.outcomes.MigrationRefusedError`."""

# How a migration ended (MigrationRecordView.outcome): the protocol's, documented there with its members.
MigrationOutcome = outcomes.MigrationOutcome


class DirtyLog(Protocol):
    """The host's dirty log of one copy of guest RAM (what KVM's dirty logging gives a hypervisor)."""

    @property
    def enabled(self) -> bool:
        """Whether logging is on."""

    def enable(self) -> None:
        """Start logging CPU writes (and the pages the guest's drivers dirty)."""

    def disable(self) -> None:
        """Stop logging and forget what was logged; this is not a read and does not fail."""

    @property
    def count(self) -> int:
        """How many pages are logged dirty now."""

    def harvest(self) -> Iterable[int]:
        """The pages logged dirty since the last harvest (the log is cleared).

        Raises a :class:`RuntimeError` when the read fails (the suite makes some fail): the host must then
        count every page as dirty (VFM-DIRTY-008)."""


class HostMemory(GuestMemoryView, Protocol):
    """One host's copy of the guest's RAM, as the hypervisor copies it."""

    @property
    def page_size(self) -> int:
        """Bytes per page (``1 << page_shift``)."""

    @property
    def size_bytes(self) -> int:
        """The guest's RAM size."""

    @property
    def log(self) -> DirtyLog:
        """The dirty log of this copy."""

    def receive_range_from(self, source: HostMemory, start: int, stop: int) -> None:
        """Pages ``start .. stop - 1`` of ``source`` arrive in this copy (one page-copy of the stream)."""

    def continue_stamps_from(self, source: HostMemory) -> None:
        """This copy takes the guest over from ``source``: later writes here are newer than any there.

        (The suite's memory tells page contents apart by a write counter; a destination calls this once, when
        the guest arrives.)"""


class GuestPlatform(GuestPlatformView, Protocol):
    """A host as the guest runs on it: its copy of the guest's RAM, its bridge and its functions."""

    @property
    def memory(self) -> HostMemory:
        """This host's copy of the guest's RAM (raises a :class:`RuntimeError` while the host holds none)."""

    @property
    def bridge(self) -> BridgeUnderTest:
        """The guest's migration bridge on this host (raises a :class:`RuntimeError` while the host has none)."""


class HostedGuest(Protocol):
    """The guest, as the host that runs it uses it."""

    name: str
    running: bool
    """Whether its vCPUs run."""

    def stop(self, host: str) -> None:
        """Stop the vCPUs (``host`` names who stopped them)."""

    def run(self, host: str) -> None:
        """Run the vCPUs on ``host``."""

    def move_to(self, platform: GuestPlatform) -> None:
        """The guest runs on ``platform`` from now on (the destination, when it takes the guest over)."""

    def inject_bridge_interrupt(self) -> None:
        """Deliver an interrupt of the migration bridge to the guest."""

    def inject_device_interrupt(self, function: str) -> None:
        """Deliver an MSI-X message of the function named ``function`` to the guest."""


class MigrationSettings(Protocol):
    """The management layer's settings of a migration (QEMU's migration parameters)."""

    @property
    def bandwidth(self) -> float:
        """Bytes per second the migration stream may use."""

    @property
    def downtime_limit_ns(self) -> int:
        """Longest downtime the management layer accepts."""

    @property
    def link_latency_ns(self) -> int:
        """One-way latency between the hosts."""

    @property
    def precopy_limit_ns(self) -> int:
        """Longest pre-copy before the host switches over or gives up."""

    @property
    def max_precopy_rounds(self) -> int:
        """Most pre-copy rounds (0: no limit)."""

    @property
    def stop_copy_limit_ns(self) -> int:
        """Longest the source waits for the destination after the vCPUs stopped (VFM-DEST-005)."""

    @property
    def quantum_ns(self) -> int:
        """How finely the host divides its copying in time."""

    @property
    def dirty_tracking_shift(self) -> int | None:
        """log2 of the host's dirty-tracking granularity (None: the guest's page size)."""


class MigrationRecordView(Protocol):
    """How a migration went, as the hypervisor measured it (VFM-GEN-002)."""

    @property
    def outcome(self) -> MigrationOutcome | None:
        """How it ended (None: it has not ended).  The suite takes ``COMPLETED`` as the source's handover."""

    @property
    def reason(self) -> MigReason:
        """``MIG_REASON`` at the end (COMPLETED, or why it was cancelled or failed)."""

    @property
    def downtime_ns(self) -> int:
        """From the vCPUs stopping to their running again, on the host's clock."""

    @property
    def total_ns(self) -> int:
        """From START to IDLE, on the host's clock."""


class MigrationHandle(Protocol):
    """What :meth:`HypervisorUnderTest.migrate_to` returns: the management layer's hold on one migration."""

    @property
    def record(self) -> MigrationRecordView:
        """How the migration goes and ended."""

    def cancel(self, reason: MigReason) -> None:
        """The management layer cancels the migration (``reason`` CANCELLED), if it can still be cancelled."""


class IncomingMigration(Protocol):
    """The destination's side of a migration, as :attr:`HypervisorUnderTest.incoming` shows it."""

    @property
    def memory(self) -> HostMemory:
        """The destination's copy of the guest's memory (made with :attr:`HypervisorUnderTest.make_memory`)."""

    fail_on_state: str | None
    """Set by the suite: the destination reports this failure when the final state arrives."""

    def receive_state(self, config: bytes, bars: dict[int, tuple[int, ...]] | None = None) -> None:
        """The bridge's saved configuration space and the functions' BARs arrive from the source: check the
        capability (spec §10.6), restore it on a fresh bridge
        (:meth:`~conformance.interfaces.bridge.BridgeUnderTest.restore`), place equal functions
        after a function-level reset, confirm, then ARRIVE (VFM-REP-001, VFM-SEC-008).

        The suite replaces this attribute on the object to see the state arrive, so the source looks it up
        when it delivers, not before."""


@runtime_checkable
class HypervisorUnderTest(BridgeObserver, GuestPlatform, Protocol):
    """One host of the migration orchestration (the ``hypervisor`` role).

    A host is also the platform the guest runs on (:class:`GuestPlatform`): the guest reaches its memory, its
    bridge and its functions through ``memory``, ``bridge`` and ``function_at``.  The host is the observer of
    the bridges it creates (:class:`~conformance.interfaces.bridge.BridgeObserver`): the bridge tells it of
    each step (VFM-MIG-011), of each driver report it rejected and of the guest setting Secondary Bus Reset.
    """

    name: str
    guest: HostedGuest | None
    """The guest this host runs (None: none)."""
    make_memory: Callable[[int, int, bool], HostMemory]
    """Set by the suite: ``(size_bytes, page_shift, boot) -> memory``, how the host makes a copy of guest RAM.

    The ``page_shift`` the host asks for is the granularity of its dirty tracking of that copy (VFM-DIRTY-007)."""

    @property
    def incoming(self) -> IncomingMigration | None:
        """The migration this host is receiving, from its start until the guest arrives or it is abandoned."""

    @property
    def bridge_or_none(self) -> BridgeUnderTest | None:
        """The bridge, or None while this host holds no guest and receives none."""

    def create_bridge(self, params: CapabilityParams) -> BridgeUnderTest:
        """Create the guest's bridge on this host (with the bridge factory it was given)."""

    def host_guest(self, guest: HostedGuest, memory: HostMemory) -> None:
        """Run ``guest`` here with ``memory``."""

    def assign_function(self, slot: int, identity: FunctionIds | None = None) -> HostFunction:
        """Assign a fresh function to ``slot`` (HOT_ADD); refuse with
        :class:`~vfmig_proto.outcomes.MigrationRefusedError` during a migration."""

    def migrate_to(self, destination: Self, number: int = 1) -> MigrationHandle:
        """Start migrating this host's guest to ``destination`` (START); refuse with
        :class:`~vfmig_proto.outcomes.MigrationRefusedError` when a start condition fails."""

    def surprise_remove(self, slot: int) -> None:
        """The function in ``slot`` disappeared."""

    def function_failed(self, slot: int) -> None:
        """The function in ``slot`` reported an uncorrectable error."""

    def group_reset(self) -> None:
        """Reset every function behind the bridge as one group (spec §7.9), as the host decides to."""

    def reset_bridge(self) -> None:
        """A conventional reset of the bridge (a platform reset the management layer asks for; VFM-CAP-008)."""


class HypervisorImplementation(Protocol):
    """What ``MODULE:FACTORY()`` returns for the ``hypervisor`` target."""

    def create_hypervisor(
        self,
        name: str,
        clock: Clock,
        bus: EventSink,
        config: MigrationSettings,
        *,
        functions: Callable[[str, Clock, EventSink, FunctionIds | None], HostFunction],
        bridges: Callable[[EventSink, CapabilityParams, str], BridgeUnderTest] | None,
    ) -> HypervisorUnderTest:
        """A host that makes its functions and bridges with the given factories (None: its own bridge)."""
