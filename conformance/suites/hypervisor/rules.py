"""What the environment does: time passes, and the guest, its drivers and the devices act (now, or armed for a
phase of the migration).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.checks import step
from conformance.suites.common import set_interface
from conformance.suites.hypervisor.management import ManagementRules, probe
from conformance.suites.hypervisor.observers.watched import WatchedLog
from conformance.suites.hypervisor.settings import (
    CONSENT,
    DURATIONS_US,
    GUEST_AT,
    GUEST_HELP,
    HOST_AT,
    LATE_US,
    PHASES,
    QUIET_SLOTS,
    SLOT_POSITIONS,
    SLOTS,
    UNDEFINED_REPORT,
    WATCHED_THROUGHOUT,
)
from conformance.suites.hypervisor.watch import Cause, Watch
from conformance.suites.hypervisor.world import alive, swarmed
from reference_impl.clock import ms
from reference_impl.device import DeviceTiming, VirtualFunction
from reference_impl.driver import VfDriver
from reference_impl.memory import GuestMemory
from vfmig_proto.codec import find_field
from vfmig_proto.outcomes import MigrationRefusedError
from vfmig_proto.pci import PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET
from vfmig_proto.states import DevState, DriverReport, MigReason, MigState
from vfmig_proto.transitions import DEVICE_TRANSITIONS, REPORT_EVENTS, Action


def ignore_requests(state: object) -> None:
    """A driver's ``act_on`` that never answers."""


def hang_at_pause(driver: VfDriver, state: DevState | int) -> None:
    """A driver's ``act_on`` that works until its slot reads PAUSE_REQ, and never answers anything after."""
    if state is DevState.PAUSE_REQ:
        setattr(driver, "act_on", ignore_requests)  # noqa: B010 - this driver instance only
        return
    VfDriver.act_on(driver, state)


class EnvironmentRules(ManagementRules):
    """Rules of the guest, its drivers and the devices, and time passing."""

    @rule(duration_us=st.sampled_from(DURATIONS_US) | st.integers(1, 60_000), start=st.booleans())
    @step(
        *("VFM-TMO-001", "VFM-TMO-002", "VFM-TMO-003", "VFM-TMO-005", "VFM-TIME-001", "VFM-TIME-004", "VFM-DEST-005"),
        *WATCHED_THROUGHOUT,
    )
    def time_passes(self, duration_us: int, start: bool) -> None:
        """Time passes (after the management layer starts a migration, if ``start`` and none is under way)."""
        if self.dead:
            # A guard, not a precondition: Hypothesis must always find a rule it may draw (with none it raises
            # InvalidDefinition), and in a broken world this one does nothing until the example ends.
            return
        if start and self.in_progress() is None:
            self._start(to_far=False)
        self._world(partial(self.clock.advance, duration_us * 1000))

    @precondition(alive)
    @rule(phase=st.sampled_from(PHASES))
    @step(
        *("VFM-TMO-001", "VFM-TMO-003", "VFM-TMO-005", "VFM-TIME-001", "VFM-MIG-003", "VFM-FLOW-001"),
        *WATCHED_THROUGHOUT,
    )
    def run_until(self, phase: str) -> None:
        """Let time pass until the migration reaches ``phase`` (starting one if none is under way)."""
        if self.in_progress() is None:
            self._start(to_far=False)
        self._run_until(phase)

    @precondition(swarmed("interface"))
    @rule(slot=st.integers(0, 2), up=st.booleans())
    @step()
    def interface(self, slot: int, up: bool) -> None:
        set_interface(self.world, slot, up)

    @precondition(swarmed("binding"))
    @rule(slot=st.integers(0, 2), load=st.booleans(), at=st.sampled_from(GUEST_AT), late_us=st.sampled_from(LATE_US))
    @step("VFM-TMO-002", "VFM-TMO-001", "VFM-TMO-003", "VFM-MIG-001", "VFM-CANCEL-001")
    def binding(self, slot: int, load: bool, at: str, late_us: int) -> None:
        """A driver binds or unbinds, now or at any point of a phase (mid-pause included)."""
        driver = self.world.drivers[slot % len(self.world.drivers)]
        label = "driver load" if load else "driver unload"
        self._when(at, label, partial(self._binding, driver, load), late_us=late_us)

    def _binding(self, driver: VfDriver, load: bool) -> None:
        if not self.world.guest.running:
            return
        if load:
            self.world.guest.after(0, partial(probe, driver), "driver load")
        else:
            self.world.guest.after(0, driver.unload, "driver unload")

    @precondition(swarmed("stale_report"))
    @rule(
        slot=st.integers(0, 2),
        report=st.sampled_from(DriverReport),
        at=st.sampled_from(GUEST_AT),
        late_us=st.sampled_from(LATE_US),
    )
    @step("VFM-MIG-011", "VFM-CANCEL-001", "VFM-MIG-010")
    def stale_report(self, slot: int, report: DriverReport, at: str, late_us: int) -> None:
        """A driver writes a report its slot has moved past (a PAUSED after a CANCEL, a DIRTYING after the
        pause began): the bridge ignores or rejects it, and the hypervisor must react as chapter 7 says."""
        action = partial(self._stale_report, slot % len(self.world.drivers), report)
        self._when(at, f"a stale {report.name} report", action, late_us=late_us)

    def _stale_report(self, slot: int, report: DriverReport) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        outcome = DEVICE_TRANSITIONS.get((bridge.dev_state(slot), REPORT_EVENTS[report]))
        if outcome is not None and outcome.action is Action.ACCEPT:
            return  # (a report the slot takes is the driver's progress, not a stale one)
        placed = find_field(bridge.num_slots, f"device[{slot}].dev_ctrl.drv_state")
        offset = bridge.cap + placed.offset
        reserved = bridge.config_read(offset, 1) & ~placed.field.mask
        self._as_guest(partial(bridge.config_write, offset, 1, reserved | int(report)))

    @precondition(swarmed("guest_group_reset"))
    @rule(hold=st.booleans(), at=st.sampled_from(GUEST_AT), late_us=st.sampled_from(LATE_US))
    @step("VFM-MIG-011", "VFM-CANCEL-002")
    def guest_group_reset(self, hold: bool, at: str, late_us: int) -> None:
        """The guest sets Secondary Bus Reset (and clears it, unless it holds the bus in reset until next time)."""
        self._when(at, "the guest sets Secondary Bus Reset", partial(self._group_reset_by_guest, hold), late_us=late_us)

    def _group_reset_by_guest(self, hold: bool) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        control = bridge.config_read(PCI_BRIDGE_CONTROL, 2)

        def toggle() -> None:
            if control & PCI_BRIDGE_CTL_BUS_RESET:
                bridge.config_write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)
                return
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control | PCI_BRIDGE_CTL_BUS_RESET)
            if not hold:
                bridge.config_write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)

        self._as_guest(toggle)

    @precondition(swarmed("consent"))
    @rule(
        which=st.sampled_from(CONSENT),
        withdraw=st.booleans(),
        at=st.sampled_from(GUEST_AT),
        late_us=st.sampled_from(LATE_US),
    )
    @step("VFM-MIG-011", "VFM-MIG-001")
    def consent(self, which: str, withdraw: bool, at: str, late_us: int) -> None:
        """The guest clears one of the fields that say it takes part, or sets it again."""
        label = f"the guest {'clears' if withdraw else 'sets'} {which.upper()}"
        self._when(at, label, partial(self._consent, which, withdraw), late_us=late_us)

    def _consent(self, which: str, withdraw: bool) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        placed = find_field(bridge.num_slots, which)
        offset, width, mask = bridge.cap + placed.offset, placed.register.size, placed.field.mask
        value = bridge.config_read(offset, width)
        if withdraw and value & mask:
            self.saved_consent[which] = value & mask
            self._as_guest(partial(bridge.config_write, offset, width, value & ~mask))
        elif not withdraw and which in self.saved_consent:
            restored = value | self.saved_consent.pop(which)
            self._as_guest(partial(bridge.config_write, offset, width, restored))
            self.world.guest.after(0, self.world.core.interrupt, "the migration core looks again")

    @precondition(swarmed("guest_claims_completion"))
    @rule(at=st.sampled_from(GUEST_AT), late_us=st.sampled_from(LATE_US))
    @step("VFM-SEC-004", "VFM-SEC-005", "VFM-MIG-011")
    def guest_claims_completion(self, at: str, late_us: int) -> None:
        """The guest writes values that say the migration completed: ARRIVED, COMPLETED, READY, a new GENERATION.

        The registers are read-only to the guest, so the bridge keeps its own values; a hypervisor that took any
        guest-written value for the destination's word would end the migration or skip pages on it.
        """
        self._when(at, "the guest claims the migration completed", self._claim_completion, late_us=late_us)

    def _claim_completion(self) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        values = {
            "mig_state": MigState.ARRIVED,
            "mig_reason": MigReason.COMPLETED,
            "generation": bridge.generation + 1,
            **{f"device[{slot}].dev_state": DevState.READY for slot in range(bridge.num_slots)},
        }
        for path, value in values.items():
            placed = find_field(bridge.num_slots, path)
            offset, width = bridge.cap + placed.offset, placed.register.size
            self._as_guest(partial(bridge.config_write, offset, width, int(value) & placed.field.mask))

    @precondition(swarmed("dirty_log_loses"))
    @rule(at=st.sampled_from(("PREPARE", "PRECOPY", "PAUSING")), read_fails=st.booleans())
    @step("VFM-DIRTY-008", "VFM-CANCEL-001", "VFM-MIG-010", "VFM-MIG-001", "VFM-GEN-003", "VFM-DISC-002")
    def dirty_log_loses(self, at: str, read_fails: bool) -> None:
        """The host's dirty log of the guest's memory loses its entries (an overflow) during a migration, or
        (``read_fails``) the hypervisor's next read of it fails.

        The loss comes as the migration under way (or one the management layer starts now) enters ``at``, or at
        once if it is past that; the migration then runs to its end, so that the handover shows whether every page
        went again.
        """
        watch = self.in_progress()
        if watch is None:
            self._start(to_far=False)
            watch = self.in_progress()
        if watch is None:
            return
        twist = self._fail_dirty_log_read if read_fails else self._lose_dirty_log
        if MigState[at] in watch.phases:
            self._world(twist)
        else:
            what = "the next read of the dirty log fails" if read_fails else "the dirty log loses its entries"
            self.triggers.append((MigState[at], what, twist, 0))
        self._run_until("end")
        self.checks.raise_pending()

    def _watched_log(self) -> tuple[Watch, WatchedLog] | None:
        """The migration under way and its source's dirty log, while the guest still helps it."""
        watch = self.in_progress()
        memory = None if watch is None else watch.memory
        if watch is None or memory is None or self.handed_over(watch) or watch.bridge is None:
            return None
        log = memory.log
        if not isinstance(log, WatchedLog) or not log.enabled or watch.bridge.mig_state not in GUEST_HELP:
            return None
        return watch, log

    def _every_page_due(self, watch: Watch, memory: GuestMemory, how: str) -> None:
        """From now on, every page must go to the destination again before the handover (VFM-DIRTY-008)."""
        now = self.clock.now
        if watch.resent is None:
            watch.lost_at, watch.lost_how = now, how
            watch.resent = np.zeros(memory.num_pages, dtype=np.bool_)
        else:
            watch.resent[:] = False  # (lost again: every page is due again)
        watch.causes.append(Cause(now, MigReason.CANCELLED, f"the dirty log {how}"))

    def _lose_dirty_log(self) -> None:
        if (found := self._watched_log()) is None:
            return
        watch, log = found
        self._every_page_due(watch, log.memory, "lost its entries")
        log.lose()

    def _fail_dirty_log_read(self) -> None:
        if (found := self._watched_log()) is not None:
            watch, log = found
            log.fail_next_read = watch

    def read_fails(self, watch: Watch, memory: GuestMemory) -> bool:
        """The hypervisor reads the log the suite set to fail: it fails if ``watch`` is still under way."""
        if watch is not self.in_progress() or self.handed_over(watch):
            return False
        self._every_page_due(watch, memory, "failed a read")
        return True

    @precondition(swarmed("bogus_report"))
    @rule(slot=st.integers(0, 2), at=st.sampled_from(GUEST_AT), late_us=st.sampled_from(LATE_US))
    @step("VFM-MIG-011")
    def bogus_report(self, slot: int, at: str, late_us: int) -> None:
        """A driver writes a DRV_STATE value no version defines: the bridge rejects it."""
        self._when(
            at,
            "a report the bridge rejects",
            partial(self._bogus_report, slot % len(self.world.drivers)),
            late_us=late_us,
        )

    def _bogus_report(self, slot: int) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        placed = find_field(bridge.num_slots, f"device[{slot}].dev_ctrl.drv_state")
        offset = bridge.cap + placed.offset
        reserved = bridge.config_read(offset, 1) & ~placed.field.mask
        self._as_guest(partial(bridge.config_write, offset, 1, reserved | UNDEFINED_REPORT))

    @precondition(swarmed("rogue_bus_master"))
    @rule(slot=st.integers(0, SLOTS - 1), at=st.sampled_from((*GUEST_AT, "STOPPED")), late_us=st.sampled_from(LATE_US))
    @step("VFM-MIG-011", "VFM-MIG-001", "VFM-MIG-012")
    def rogue_bus_master(self, slot: int, at: str, late_us: int) -> None:
        """Something in the guest sets BME on a function whose slot is UNBOUND or PAUSED.

        ``STOPPED``: a write under way on another vCPU lands just as the vCPUs stop.
        """
        slot = self._present_slot(slot)
        if at != "STOPPED":
            self._when(
                at, "the guest sets BME where it must not", partial(self._rogue_bus_master, slot), late_us=late_us
            )
            return
        watch = self.in_progress()
        if watch is None:
            self.armed.rogue_at_stop = slot
        elif MigState.STOPPED not in watch.phases:
            watch.rogue_at_stop = slot

    def _present_slot(self, slot: int) -> int:
        """The ``slot``-th slot (counted round them) that holds a function: the drivers' and any other, across
        the whole bridge (first, middle and last slots alike)."""
        host = self.guest_host()
        bridge = None if host is None else host.bridge_or_none
        if bridge is None:
            return slot % len(self.world.drivers)
        present = [index for index, function in enumerate(bridge.functions) if function is not None]
        return present[slot % len(present)] if present else slot % len(self.world.drivers)

    def _rogue_bus_master(self, slot: int) -> None:
        bridge = self._guest_bridge()
        if bridge is None:
            return
        function = bridge.functions[slot]
        if isinstance(function, VirtualFunction) and bridge.dev_state(slot) in QUIET_SLOTS:
            self._as_guest(partial(function.set_bus_master, True))

    @precondition(swarmed("driver_silence"))
    @rule(slot=st.integers(0, 2), hang=st.sampled_from(("now", "at-pause", "no")))
    @step("VFM-TMO-001", "VFM-TMO-002", "VFM-TMO-003", "VFM-TMO-005")
    def driver_silence(self, slot: int, hang: str) -> None:
        """A driver stops answering any request, now or from its next PAUSE_REQ on (or answers again, at once)."""
        driver = self.world.drivers[slot % len(self.world.drivers)]
        if hang == "now":
            setattr(driver, "act_on", ignore_requests)  # noqa: B010 - this driver instance only
        elif hang == "at-pause":
            setattr(driver, "act_on", partial(hang_at_pause, driver))  # noqa: B010 - this driver instance only
        elif "act_on" in vars(driver):
            delattr(driver, "act_on")
            self.world.guest.after(0, partial(self.world.core.look_at, driver.slot), "the driver answers again")

    @precondition(swarmed("slow_drain"))
    @rule(slot=st.integers(0, 2), drain=st.sampled_from([0.0, 0.5, 6.0]))
    @step("VFM-TMO-003", "VFM-TMO-004", "VFM-TMO-005")
    def slow_drain(self, slot: int, drain: float) -> None:
        """A function whose DMA drains in ``drain`` x ACK_TIMEOUT_MS (0: its usual 50 us)."""
        function = self.world.drivers[slot % len(self.world.drivers)].function
        if isinstance(function, VirtualFunction):
            function.timing = DeviceTiming(drain_ns=int(drain * self.ack_ns)) if drain else DeviceTiming()

    @precondition(swarmed("device_error"))
    @rule(
        slot=st.integers(0, 2),
        driver_hangs=st.booleans(),
        at=st.sampled_from(HOST_AT),
        late_us=st.sampled_from(LATE_US),
    )
    @step("VFM-ERR-001", "VFM-ERR-002", "VFM-ABS-004", "VFM-CANCEL-001", "VFM-DEV-012")
    def device_error(self, slot: int, driver_hangs: bool, at: str, late_us: int) -> None:
        """A function fails (and its driver, stuck in its error handling, answers nothing until told)."""
        action = partial(self._device_error, slot % len(self.world.drivers), driver_hangs)
        self._when(at, "a function fails", action, late_us=late_us)

    def _device_error(self, slot: int, driver_hangs: bool) -> None:
        host = self.guest_host()
        if host is None or host.bridge_or_none is None or host.bridge.functions[slot] is None:
            return
        if driver_hangs:
            setattr(self.world.drivers[slot], "act_on", ignore_requests)  # noqa: B010 - this driver instance only
        host.function_failed(slot)

    @precondition(swarmed("surprise_removal"))
    @rule(slot=st.integers(0, 2), at=st.sampled_from(HOST_AT), late_us=st.sampled_from(LATE_US))
    @step("VFM-ERR-003", "VFM-CANCEL-001", "VFM-DEV-012")
    def surprise_removal(self, slot: int, at: str, late_us: int) -> None:
        self._when(
            at,
            "a function disappears",
            partial(self._surprise_removal, slot % len(self.world.drivers)),
            late_us=late_us,
        )

    def _surprise_removal(self, slot: int) -> None:
        host = self.guest_host()
        if host is not None and host.bridge_or_none is not None and host.bridge.functions[slot] is not None:
            host.surprise_remove(slot)

    @precondition(swarmed("hot_add"))
    @rule(slot=SLOT_POSITIONS, at=st.sampled_from(HOST_AT), late_us=st.sampled_from(LATE_US))
    @step("VFM-CANCEL-002", "VFM-DISC-002", "VFM-DISC-003", "VFM-DEV-012")
    def hot_add(self, slot: int, at: str, late_us: int) -> None:
        """The management layer asks for a function in an empty slot (refused during a migration)."""
        self._when(at, "the management layer hot-adds a function", partial(self._hot_add, slot), late_us=late_us)

    def _hot_add(self, slot: int) -> None:
        host = self.guest_host()
        if host is None or host.bridge_or_none is None or not 0 <= slot < host.bridge.num_slots:
            return
        if host.bridge.dev_state(slot) is not DevState.EMPTY:
            return
        try:
            host.assign_function(slot)
        except MigrationRefusedError:
            return
        drivers = self.world.drivers
        if slot < len(drivers):  # slots beyond the guest's drivers keep an UNBOUND function
            self.world.guest.after(ms(1), partial(probe, drivers[slot]), "the OS probes the new function")
