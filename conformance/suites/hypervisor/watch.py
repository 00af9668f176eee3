"""What the hypervisor suite knows about each migration (:class:`Watch`), the causes of a cancellation, and
the faults armed for the next migration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from reference_impl.bridge import MigrationBridge
from reference_impl.clock import NS_PER_MS
from reference_impl.hypervisor import Hypervisor
from reference_impl.memory import GuestMemory
from vfmig_proto.states import MigReason, MigState

if TYPE_CHECKING:
    from conformance.suites.hypervisor.observers.watched import ObservedBridge, WatchedFunction


def in_ms(ns: int) -> str:
    """A time on the simulated clock, for messages."""
    return f"{ns / NS_PER_MS:.3f} ms"


@dataclass(frozen=True)
class Cause:
    """Something that calls for a cancellation, with the MIG_REASON Table 7-7 gives it."""

    time_ns: int
    reason: MigReason
    what: str

    def __str__(self) -> str:
        return f"{self.what} ({self.reason.name}) at {in_ms(self.time_ns)}"


@dataclass
class Armed:
    """Faults armed for the next migration."""

    destination: str = ""
    """``"refuse"`` or ``"crash"``: the destination fails when the final state arrives."""
    rogue_at_stop: int | None = None


@dataclass(frozen=True)
class PhaseExit:
    """How the source's bridge first left a phase: when, and whether by the action the phase's deadline calls for."""

    time_ns: int
    by_deadline_action: bool
    how: str


@dataclass
class Watch:
    """What the suite knows about one migration."""

    number: int
    source: Hypervisor
    destination: Hypervisor
    bridge: MigrationBridge | None = None
    """The source's bridge."""
    memory: GuestMemory | None = None
    """The source's copy of the guest's memory."""
    handle: Any = None
    incoming: Any = None
    start_ns: int | None = None
    phases: dict[MigState, int] = field(default_factory=dict)
    """When the source's bridge first entered each MIG_STATE."""
    left: dict[MigState, PhaseExit] = field(default_factory=dict)
    """How the source's bridge first left each phase that has a deadline or limit (spec 7.6, chapter 8)."""
    dirty_req_ended: dict[tuple[int, int], int] = field(default_factory=dict)
    """(slot, entry) of each DIRTY_REQ in PRECOPY, with when it ended (the slot's report, or PRECOPY's end)."""
    consent: tuple[str, ...] = ()
    consent_withdrawn: bool = False
    causes: list[Cause] = field(default_factory=list)
    dirty_req: dict[int, int] = field(default_factory=dict)
    """Slots in DIRTY_REQ during PRECOPY, with the time they entered it (VFM-TMO-002)."""
    cancel_ns: int | None = None
    cancel_reason: MigReason | None = None
    cancel_from: MigState | None = None
    resuming_start: int | None = None
    group_resets: list[int] = field(default_factory=list)
    ended_ns: int | None = None
    handover_ns: int | None = None
    handover_checked: bool = False
    dest_bridge: ObservedBridge | None = None
    arrived_ns: int | None = None
    stopped_capability: bytes | None = None
    capability_touched: bool = False
    """A host event changed the source's capability after the vCPUs stopped: REP-001 cannot be judged."""
    stopped_functions: dict[int, WatchedFunction] = field(default_factory=dict)
    stopped_bars: dict[int, tuple[int, ...]] = field(default_factory=dict)
    rogue: bool = False
    """A function the protocol keeps quiet had BME set, or the vCPUs ran in STOPPED: lost pages are not
    VFM-FLOW-001's to judge (the guest's doing, or VFM-MIG-003's)."""
    rogue_at_stop: int | None = None
    bme_at_stop_ns: int | None = None
    """When a function got BME set after the vCPUs stopped in STOPPED."""
    final_read_bme: bool | None = None
    """Whether a function had BME set when the hypervisor last read the dirty log in STOPPED (None: no read)."""
    crash: bool = False
    refuse: bool = False
    state_arrived_ns: int | None = None
    dest_memory: GuestMemory | None = None
    """The destination's copy of the guest's memory (the one that receives the pages)."""
    lost_checked: bool = False
    dirty_at_pause: int = 0
    """Pages the CPU dirty log held when the bridge entered PAUSING."""
    sent_in_pausing: int = 0
    intercepted: bool = False
    """The suite sees the final state arrive at the destination (its ``receive_state``)."""
    lost_at: int | None = None
    """When the suite made the source's dirty log lose its entries, or fail a read (VFM-DIRTY-008)."""
    lost_how: str = "lost its entries"
    resent: npt.NDArray[np.bool_] | None = None
    """Pages sent to the destination since the dirty log lost its entries."""
    unsignalled: int = 0
    """Interrupts of functions behind the bridge injected during the migration without the function's signal."""
    vcpus_stopped_ns: int | None = None
    vcpus_resumed_ns: int | None = None
    """When the guest's vCPUs stopped for the migration and ran again (the downtime, on the host's clock)."""

    @property
    def started(self) -> bool:
        return self.start_ns is not None

    @property
    def in_progress(self) -> bool:
        return self.start_ns is not None and self.ended_ns is None
