"""Config space and host events: the bridge's state when the hypervisor causes an event (START and its
conditions, a row of the transition tables for every event), the guest's accesses while its vCPUs are
stopped, and the capability the destination restores.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from conformance.suites.hypervisor.observers.placement import PlacementObserver
from conformance.suites.hypervisor.observers.watched import ObservedBridge, WatchedFunction, WatchedLog
from conformance.suites.hypervisor.settings import (
    ACK_TIMEOUT_MS,
    BAR_OFFSETS,
    CONSENT,
    MIGRATION,
    PAGE_SHIFT,
    QUIET_SLOTS,
    SETTLED_AT_START,
)
from conformance.suites.hypervisor.watch import Cause, Watch, in_ms
from reference_impl.bridge import MigrationBridge
from reference_impl.device import VirtualFunction
from vfmig_proto.restore import restore_problem
from vfmig_proto.states import DevEvent, DevState, MigEvent, MigReason, MigState
from vfmig_proto.transitions import DEVICE_TRANSITIONS, MIGRATION_TRANSITIONS


class ConfigSpaceObserver(PlacementObserver):
    """Checks of the events the hypervisor causes on the bridge and of the capability it carries over."""

    def guest_access(self, bridge: MigrationBridge, what: str) -> None:
        """VFM-MIG-003: the vCPUs are stopped in STOPPED, so the bridge receives no guest configuration access."""
        watch = self.watch_of(bridge)
        if watch is None or not watch.in_progress or bridge.mig_state is not MigState.STOPPED or self.depth:
            return
        if not self.handed_over(watch):
            watch.capability_touched = True  # (what the capability was when the vCPUs stopped is moot now)
            watch.rogue = True
            self._violation(
                "VFM-MIG-003",
                watch,
                f"the guest made {what} to the bridge at {in_ms(self.clock.now)}, in STOPPED "
                f"(entered at {in_ms(watch.phases.get(MigState.STOPPED, 0))})",
            )

    def host_event(self, bridge: MigrationBridge, event: MigEvent) -> None:
        state = bridge.mig_state
        self.checks.record(
            "VFM-DEV-012",
            (state, event) in MIGRATION_TRANSITIONS,
            f"{bridge.name}: {event.name} caused in MIG_STATE {state.name}, which has no row for it",
        )
        if event is MigEvent.GROUP_RESET:
            for slot, dev_state in enumerate(bridge.dev_states()):
                self.checks.record(
                    "VFM-DEV-012",
                    (dev_state, DevEvent.GROUP_RESET) in DEVICE_TRANSITIONS,
                    f"{bridge.name}: GROUP_RESET with slot {slot} in {dev_state.name}, which has no row for it",
                )

    def slot_event(self, bridge: MigrationBridge, slot: int, event: DevEvent) -> None:
        if not 0 <= slot < bridge.num_slots:
            return
        state = bridge.dev_state(slot)
        self.checks.record(
            "VFM-DEV-012",
            (state, event) in DEVICE_TRANSITIONS,
            f"{bridge.name}: {event.name} caused for slot {slot} in {state.name}, which has no row for it",
        )

    def _start_problem(self, bridge: MigrationBridge) -> str | None:
        """Which start condition of VFM-MIG-001 fails, or None."""
        if bridge.mig_state is not MigState.IDLE:
            return f"MIG_STATE is {bridge.mig_state.name}, not IDLE"
        if bridge.secondary_bus_reset:
            return "the bridge's Secondary Bus Reset bit is 1"
        states = bridge.dev_states()
        for slot, state in enumerate(states):
            if state not in SETTLED_AT_START:
                return f"slot {slot} is {state.name}, not EMPTY, UNBOUND or READY"
            function = bridge.functions[slot]
            if state is DevState.UNBOUND and function is not None and function.bus_master:
                return f"slot {slot} is UNBOUND and its function has BME set"
        missing = [path.upper() for path in CONSENT if not bridge.field(path)]
        if DevState.READY in states and missing:
            return f"a slot is READY but {', '.join(missing)} is 0"
        return None

    def before_start(self, bridge: MigrationBridge) -> None:
        now = self.clock.now
        watch = self.pending
        if watch is None:
            host = self.guest_host()
            source = host if host is not None else self.world.hosts[0]
            watch = Watch(len(self.watches) + 1, source, self.other(source))
        problem = self._start_problem(bridge)
        self.checks.record(
            "VFM-MIG-001", problem is None, f"migration {watch.number}: START at {in_ms(now)} although {problem}"
        )
        far = watch.destination is self.far
        self.checks.record(
            "VFM-VER-007",
            not far,
            f"migration {watch.number}: START at {in_ms(now)} towards {watch.destination.name}, which tracks dirty "
            f"memory in pieces of 2^{PAGE_SHIFT - 1} bytes, finer than the guest's PAGE_SHIFT {PAGE_SHIFT}",
        )
        for slot, function in enumerate(bridge.functions):
            if isinstance(function, VirtualFunction) and bridge.dev_state(slot) is DevState.UNBOUND:
                self.checks.record(
                    "VFM-ABS-004",
                    not function.failed,
                    f"migration {watch.number}: START at {in_ms(now)} with slot {slot}'s function failed and UNBOUND, "
                    "never reset by a Function Level Reset",
                )
        memory = self.world.guest.memory
        self.checks.record(
            "VFM-DIRTY-005",
            memory.log.enabled,
            f"migration {watch.number}: START at {in_ms(now)} with the CPU dirty log off",
        )
        self._check_start_placement(watch, bridge, memory)
        if isinstance(memory.log, WatchedLog):
            memory.log.unsent = np.zeros(memory.num_pages, dtype=np.bool_)
        watch.bridge = bridge
        watch.memory = memory
        watch.start_ns = now
        watch.consent = tuple(path for path in CONSENT if bridge.field(path))
        watch.causes.extend(  # (a start that VFM-MIG-001 forbids: the slot is a cause from the outset)
            Cause(now, MigReason.DEVICE_ERROR, f"slot {slot} in ERROR at START")
            for slot, state in enumerate(bridge.dev_states())
            if state is DevState.ERROR
        )
        watch.rogue = any(
            function is not None and function.bus_master and state in QUIET_SLOTS
            for function, state in zip(bridge.functions, bridge.dev_states(), strict=False)
        )
        self.watches.append(watch)
        bound = MIGRATION.bound_ns(ACK_TIMEOUT_MS)
        self._schedule(now + bound + 1, partial(self._check_bound, watch, bound), "T_max")

    def before_capability_change(self, bridge: MigrationBridge) -> None:
        watch = self.watch_of(bridge)
        if watch is not None and watch.stopped_capability is not None:
            watch.capability_touched = True

    def before_arrive(self, bridge: ObservedBridge) -> None:
        watch = self.current
        if watch is None or watch.dest_bridge is not bridge:
            return
        self.handed_over(watch)
        self._handover_checks(watch)
        now = self.clock.now
        capability = bridge.capability_bytes()
        stopped = watch.stopped_capability
        if stopped is not None and not watch.capability_touched:
            self.checks.record(
                "VFM-REP-001",
                capability == stopped,
                lambda: (
                    f"migration {watch.number}: ARRIVE at {in_ms(now)} with a capability that differs from the "
                    f"source's when the vCPUs stopped (bytes {_differing(capability, stopped)})"
                ),
            )
        tracking = PAGE_SHIFT - 1 if watch.destination is self.far else PAGE_SHIFT
        problem = restore_problem(bridge.own, capability, tracking)
        self.checks.record(
            "VFM-SEC-008",
            problem is None,
            f"migration {watch.number}: ARRIVE at {in_ms(now)} on {watch.destination.name} for a restored "
            f"capability that fails a check of 10.6: {problem}",
        )
        for slot, state in enumerate(bridge.dev_states()):
            if state is not DevState.EMPTY:
                self._check_placed(watch, bridge, slot)

    def _snapshot_at_stop(self, watch: Watch, bridge: MigrationBridge) -> None:
        watch.stopped_capability = bridge.capability_bytes()
        for slot, function in enumerate(bridge.functions):
            if isinstance(function, WatchedFunction):
                watch.stopped_functions[slot] = function
                watch.stopped_bars[slot] = tuple(function.config_read(offset, 4) for offset in BAR_OFFSETS)
        armed = watch.rogue_at_stop
        watch.rogue_at_stop = None
        if armed is None:
            return
        slot = armed % bridge.num_slots  # (any slot of the bridge: a driver's, or one no driver binds)
        rogue = bridge.functions[slot]
        if isinstance(rogue, WatchedFunction) and bridge.dev_state(slot) in QUIET_SLOTS:
            # A guest write to the Command register that was under way on another vCPU when they stopped.
            self._as_guest(partial(rogue.set_bus_master, True))


def _differing(one: bytes, other: bytes) -> str:
    offsets = [hex(index) for index, (a, b) in enumerate(zip(one, other, strict=False)) if a != b]
    return ", ".join(offsets[:8]) or f"lengths {len(one)} and {len(other)}"
