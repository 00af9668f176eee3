"""The ``bridge`` target: the emulated migration bridge, as the guest and the hypervisor drive it.

``MODULE:FACTORY()`` returns a :class:`BridgeImplementation`; the suite asks it for bridges
(:class:`BridgeUnderTest`), puts simple functions (:class:`SlotFunction`) in their slots, sits in the
hypervisor's seat as a :class:`BridgeObserver` and counts interrupts through ``interrupt_sink``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from conformance.interfaces.common import EventSink, ResetKind
from vfmig_proto import outcomes
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.states import MigReason, MigState

RestoreRefusedError = outcomes.RestoreRefusedError
"""What :meth:`BridgeUnderTest.restore` raises: the protocol's :class:`vfmig_proto.outcomes.RestoreRefusedError`."""


class SlotFunction(Protocol):
    """A function in one of the bridge's slots, as the bridge sees it."""

    @property
    def name(self) -> str:
        """The function's name (for the bridge's traces)."""

    @property
    def bus_master(self) -> bool:
        """Whether Bus Master Enable is set: a report of ``PAUSED`` is rejected while it is (spec §4.4)."""

    def function_level_reset(self, how: ResetKind) -> None:
        """Reset the function; the bridge calls it with ``"group"`` for each function of a group reset."""


class BridgeObserver(Protocol):
    """The hypervisor's seat: told of each step of the bridge, before the access that caused it completes."""

    def bridge_stepped(self, bridge: BridgeUnderTest, cause: str) -> None:
        """One step is over (``cause``: the access or host event); the step's registers are final."""

    def report_rejected(self, bridge: BridgeUnderTest, slot: int, report: int, why: str) -> None:
        """The driver's report ``report`` (a ``DRV_STATE`` value) in ``slot`` was rejected, for ``why``."""

    def secondary_bus_reset_requested(self, bridge: BridgeUnderTest) -> None:
        """The guest set Secondary Bus Reset in Bridge Control."""


@runtime_checkable
class BridgeUnderTest(Protocol):
    """The emulated migration bridge (the ``bridge`` role).

    The guest reaches it through :meth:`config_read` / :meth:`config_write`; the hypervisor through the
    host-event methods.  Each call is one step (VFM-ACC-007).
    """

    name: str
    num_slots: int
    """``NUM_SLOTS`` of the capability (the ``params`` it was created with)."""
    cap: int
    """Offset of the migration capability in the config space."""
    observers: list[BridgeObserver]
    """The suite appends its observer here.  ``bridge_stepped`` is called exactly once per step (each guest
    access, each host event), after the step's registers are final: the suite judges VFM-ACC-007 by it."""
    interrupt_sink: Callable[[], None] | None
    """Set by the suite: called once per interrupt the bridge signals (MSI message or INTx assertion)."""

    @property
    def bus(self) -> EventSink:
        """The event sink the bridge was created with (the suite leaves it out when it measures what a bridge
        keeps)."""

    @property
    def functions(self) -> Sequence[SlotFunction | None]:
        """The function in each slot (None: empty)."""

    @property
    def mig_state(self) -> MigState:
        """``MIG_STATE`` as the host reads it."""

    @property
    def generation(self) -> int:
        """``GENERATION`` as the host reads it (the destination checks it after a restore)."""

    def config_read(self, offset: int, width: int) -> int:
        """A guest configuration read (judged under VFM-ACC-005)."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A guest configuration write (judged under VFM-ACC-005)."""

    def capability_bytes(self) -> bytes:
        """The capability's current bytes, as the host reads them (no guest access, no side effect)."""

    def config_space(self) -> bytes:
        """The whole configuration space (256 bytes: the header, MSI, the capability) as the host reads it,
        without a guest access and without side effects: what the source saves into the migration stream
        when the vCPUs have stopped (VFM-REP-001) and what a hypervisor reads the bridge's registers from."""

    def start(self) -> None:
        """The host event START."""

    def request_pause(self) -> None:
        """The host event REQUEST_PAUSE."""

    def cancel(self, reason: MigReason) -> None:
        """The host event CANCEL with ``reason``."""

    def arrive(self) -> None:
        """The host event ARRIVE (destination, after :meth:`restore`)."""

    def group_reset(self) -> None:
        """A group reset initiated by the host (spec §7.9): every present function is reset with ``"group"``
        and its slot goes to ``REINIT_REQ``."""

    def conventional_reset(self) -> None:
        """A conventional reset of the bridge (VFM-CAP-006): reset values; present functions ``UNBOUND``."""

    def hot_add(self, slot: int, function: SlotFunction) -> None:
        """The host event HOT_ADD of ``function`` into ``slot``."""

    def surprise_removal(self, slot: int) -> None:
        """The host event SURPRISE_REMOVAL of the function in ``slot``."""

    def device_error(self, slot: int) -> None:
        """The host event DEVICE_ERROR of the function in ``slot``."""

    def restore(self, config: bytes, functions: Sequence[SlotFunction | None], *, dirty_page_shift: int) -> None:
        """On the destination, before ARRIVE: take over the source's saved :meth:`config_space`.

        The bridge checks the capability in ``config`` against its own parameters and the host's dirty
        tracking granularity ``dirty_page_shift`` (spec §10.6: same NUM_SLOTS, PAGE_SHIFT, ACK_TIMEOUT_MS,
        HOST_FEATURES, version and DEV_DEVFNs; MIG_STATE STOPPED; every slot EMPTY, UNBOUND or PAUSED; a
        PAGE_SHIFT no coarser than the tracking).  If they hold, it presents every byte of ``config`` (the
        capability with its GENERATION, and what the guest programmed in the header and MSI) and holds
        ``functions[slot]`` in each slot, with no HOT_ADD: the restored ``DEV_STATE`` stays.  Otherwise it
        raises :class:`~vfmig_proto.outcomes.RestoreRefusedError` naming the failed check and is unchanged
        (VFM-SEC-008)."""


class BridgeImplementation(Protocol):
    """What ``MODULE:FACTORY()`` returns for the ``bridge`` target."""

    def create_bridge(self, bus: EventSink, params: CapabilityParams, name: str) -> BridgeUnderTest:
        """A bridge after a conventional reset, instantiated with ``params``, with every slot empty."""
