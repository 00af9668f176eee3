"""The hypervisor suite's settings: the guest's size, the management layer's limits, the phases and the
scenarios the rules draw from, and the requirements the suite checks.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import strategies as st

from conformance.suites.common import brisk_migration
from reference_impl.clock import NS_PER_MS, ms
from reference_impl.device import PCIE_CAP_OFFSET
from vfmig_proto.layout import VFM_MIN_PAGE_SHIFT, CapabilityParams
from vfmig_proto.pci import PCI_BASE_ADDRESS_0, PCI_EXP_DEVCTL
from vfmig_proto.states import DevState, MigEvent, MigState

CHECKED = frozenset(
    {
        *("VFM-MIG-001", "VFM-MIG-003", "VFM-MIG-004", "VFM-MIG-005", "VFM-MIG-010", "VFM-MIG-011", "VFM-MIG-012"),
        *("VFM-TMO-001", "VFM-TMO-002", "VFM-TMO-003", "VFM-TMO-004", "VFM-TMO-005"),
        *("VFM-TIME-001", "VFM-TIME-002", "VFM-TIME-003", "VFM-TIME-004", "VFM-TIME-005"),
        *("VFM-DIRTY-005", "VFM-DIRTY-006", "VFM-FLOW-001", "VFM-FLOW-002", "VFM-FLOW-003"),
        *("VFM-DEST-001", "VFM-DEST-002", "VFM-DEST-003", "VFM-DEST-004", "VFM-DEST-005"),
        *("VFM-ERR-001", "VFM-ERR-002", "VFM-ERR-003", "VFM-CANCEL-001", "VFM-CANCEL-002", "VFM-CANCEL-005"),
        *("VFM-SEC-006", "VFM-SEC-008", "VFM-REP-001", "VFM-VER-007", "VFM-ABS-004", "VFM-GEN-003", "VFM-DEV-012"),
        *("VFM-GEN-002", "VFM-DISC-002", "VFM-DISC-003", "VFM-CAP-008", "VFM-MIG-013", "VFM-DIRTY-007"),
        *("VFM-DIRTY-008", "VFM-NOTIF-005", "VFM-SEC-004", "VFM-SEC-005", "VFM-SEC-007"),
    }
)
"""The requirements this suite checks; every other requirement of the hypervisor role stays not-covered."""

WATCHED_THROUGHOUT = (
    *("VFM-GEN-002", "VFM-SEC-004", "VFM-SEC-005", "VFM-SEC-007"),
    *("VFM-MIG-013", "VFM-NOTIF-005", "VFM-DIRTY-008", "VFM-DEV-012"),
)
"""Requirements whose checks watch every migration from start to end: each step that runs a whole migration
exercises them (a hang or an exception in it is attributed to them too)."""

PAGE_SHIFT = VFM_MIN_PAGE_SHIFT
PAGE = 1 << PAGE_SHIFT
"""The guest's pages: 4 KiB, the smallest PAGE_SHIFT a bridge may report."""
MEMORY_PAGES = 256
"""A 1 MiB guest: a first pre-copy round of 32 ms at 32 MiB/s."""
ACK_TIMEOUT_MS = 20
"""The bridges' ACK_TIMEOUT_MS, A: the deadline of each request to the guest."""
BACKGROUND_DMA = 2 * PAGE * 1000
"""Bytes per second each function receives all the time: two pages a millisecond."""
BUFFERS = 8
"""Receive buffers per driver: every function's pages fit the downtime budget, so pre-copy converges."""
STORM_PAGES = 16
"""Pages the CPU storm writes per millisecond: twice what the link sends, so pre-copy never converges."""
MIGRATION = replace(
    brisk_migration(32, precopy_ms=80, stop_copy_ms=50),  # eight pages per millisecond
    reaction_ns=ms(1),
    group_reset_ns=ms(100),
)
"""The management layer's settings: P = 80 ms, S = 50 ms, e = 1 ms, L = 5 ms (R x L = 40 pages)."""
RUN_LIMIT_NS = ms(300)
"""How long a rule lets time pass at most while it waits for a phase of the migration."""
IN_PROGRESS = frozenset({MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED})
"""MIG_STATE while a migration is in progress on the source (spec 7)."""
GUEST_HELP = frozenset({MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING})
"""MIG_STATE while the migration needs the guest's help (VFM-MIG-011)."""
CONSENT = ("control.enable", "guest_features.dma_dirty", "guest_features.pause_resume")
SETTLED_AT_START = frozenset({DevState.EMPTY, DevState.UNBOUND, DevState.READY})
QUIET_SLOTS = frozenset({DevState.UNBOUND, DevState.PAUSED})
"""Slots whose function must keep BME clear during a migration (VFM-MIG-011)."""
BAR_OFFSETS = tuple(range(PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_0 + 6 * 4, 4))
"""The config-space offsets of a function's six Base Address Registers."""
FLR_BYTE = PCIE_CAP_OFFSET + PCI_EXP_DEVCTL + 1
"""The config-space byte whose Initiate Function Level Reset bit a reset by config write sets."""
PHASES = ("PRECOPY", "PAUSING", "STOPPED", "RESUMING", "ARRIVED", "end")
PHASE_LIMITS: dict[MigState, tuple[str, int]] = {
    MigState.PREPARE: ("VFM-TMO-001", ACK_TIMEOUT_MS * NS_PER_MS),
    MigState.PRECOPY: ("VFM-TIME-001", MIGRATION.precopy_limit_ns),
    MigState.PAUSING: ("VFM-TMO-003", ACK_TIMEOUT_MS * NS_PER_MS),
    MigState.STOPPED: ("VFM-DEST-005", MIGRATION.stop_copy_limit_ns),
    MigState.RESUMING: ("VFM-TMO-005", ACK_TIMEOUT_MS * NS_PER_MS),
}
"""Each phase on the source, the requirement that bounds it and its length (spec 7.6, chapter 8)."""
DEADLINE_ACTIONS: dict[MigState, MigEvent] = {
    MigState.PREPARE: MigEvent.CANCEL,
    MigState.PAUSING: MigEvent.CANCEL,
    MigState.STOPPED: MigEvent.CANCEL,
    MigState.RESUMING: MigEvent.GROUP_RESET,
}
"""What the hypervisor does when the deadline of each phase passes with the phase still under way (Table 7-6,
VFM-DEST-005): the phase must end by that, not by a late acknowledgement."""
UNDEFINED_REPORT = 5
"""A DRV_STATE value no version defines (:class:`~vfmig_proto.states.DriverReport` ends at 3): the bridge rejects it."""
GUEST_AT = ("now", "PREPARE", "PRECOPY", "PAUSING", "RESUMING")
"""When a guest action happens: now, or as the migration enters that MIG_STATE (the vCPUs run in each)."""
HOST_AT = (*GUEST_AT, "STOPPED")
"""When a host event happens: now, or as the migration enters that MIG_STATE."""
DRIVER_SCENARIOS = (
    "driver-hangs-at-pause",
    "silent-driver",
    "silent-late-binder",
    "bus-master-as-vcpus-stop",
    "bus-master-on-unbound",
    "unbound-bus-master-at-stop",
)
FUNCTION_SCENARIOS = ("device-error-driver-hangs", "device-error-then-start", "surprise-removal", "hot-add")
GUEST_SCENARIOS = ("consent-withdrawn", "guest-group-reset", "rejected-report")
MANAGEMENT_SCENARIOS = (
    "cancel",
    "destination-refuses",
    "destination-crashes",
    "far-destination",
    "cpu-storm",
    "platform-reset",
    "dirty-log-loss",
)
"""Known-tricky sequences, each a whole migration in one step, so that random runs meet them often."""
GUEST_TWISTS = frozenset((*GUEST_SCENARIOS, "dirty-log-loss"))
"""Twists that need the vCPUs running (the guest's, and a dirty log's loss, which matters while they write)."""
SCENARIO_KINDS = (*DRIVER_SCENARIOS, *FUNCTION_SCENARIOS, *GUEST_SCENARIOS, *MANAGEMENT_SCENARIOS)
FINALES = ("", "migrate", *SCENARIO_KINDS)
"""What happens after the last step: nothing, one more migration, or one of the scenarios."""
TWIST_PHASES = ("PREPARE", "PRECOPY", "PAUSING", "STOPPED")
SLOTS = CapabilityParams().num_slots
"""The slots of the bridge the hosts make (vfmig_proto's default NUM_SLOTS)."""
SLOT_POSITIONS = st.sampled_from((0, SLOTS // 2, SLOTS - 1)) | st.integers(0, SLOTS - 1)
"""A slot across the whole bridge: the first, the middle and the last most often (off-by-ones live at the ends)."""
SPARE_SLOTS = (None, SLOTS // 2, SLOTS - 1)
"""Where the world places a function no driver binds, besides the drivers' slots: nowhere, the middle, the last."""
SWARMED = (
    *("guest_group_reset", "consent", "guest_claims_completion", "dirty_log_loses", "bogus_report"),
    *("rogue_bus_master", "driver_silence", "slow_drain", "device_error", "surprise_removal", "hot_add"),
    *("interface", "binding", "stale_report", "cancel", "platform_reset", "destination_fails"),
)
"""Rules swarm testing switches off: each example runs with a random subset of them off, so that the twists it
keeps meet each other more often than a uniform mix lets them."""
LATE_US = (0, 0, 0, 20, 2_000, ACK_TIMEOUT_MS * 1000 - 500)
"""How long after its phase's entry an armed action happens: at once (most often), a few microseconds in
(mid-pause: some slots PAUSED, others not), well into the phase, or just before the phase's deadline A."""
DEADLINE_OFFSETS_US = (-500, -200, 10, 300, 900)
"""When a driver that answers near a deadline starts its answer, from the deadline: just before it (the answer
lands before it), and just after it, within e = 1 ms (a late answer the hypervisor must not take)."""
REQUESTS = (DevState.DIRTY_REQ, DevState.PAUSE_REQ, DevState.RESUME_REQ)
"""The requests a deadline bounds (Table 7-6)."""
DURATIONS_US = (50, 500, 2_000, 5_000, 10_000, 21_000, 45_000)
"""How long time passes in one step: around the deadlines (A = 20 ms, e = 1 ms) and the limits."""
