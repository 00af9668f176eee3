"""Bus Master Enable: when a driver may set it, and what clearing it must be followed by.

A driver sets BME only for a slot that is READY or being brought up
(VFM-DEV-007, VFM-DEV-008, VFM-DOWN-004), with its interface up when it
answers REINIT_REQ (VFM-DOWN-003), after reading DEV_STATUS (VFM-FLAG-003)
and with MIGRATED and RESET cleared (VFM-FLAG-005).  Clearing BME starts the
50 ms drain (VFM-FN-003); setting it after MIGRATED or RESET was found starts
the bring-up check (VFM-FLAG-004).
"""

from __future__ import annotations

from conformance.observe import FunctionProxy
from conformance.suites.device.observers.deadlines import DeadlineObserver
from vfmig_proto.states import DevState


class BusMasterObserver(DeadlineObserver):
    """Judges every change of a function's Bus Master Enable."""

    def on_bus_master(self, function: FunctionProxy, enabled: bool) -> None:
        if self.sim is None:
            return  # the world is still being built (the guest boots)
        slot = self.slot_of(function)
        if slot is None:
            return
        watch = self.watch[slot]
        if not enabled:
            watch.bme_cleared_ns = self.world.clock.now
            self._check_drain_later(function)
            return
        state = self.dev_state(slot)
        self.checks.record("VFM-DEV-007", state is not DevState.UNBOUND, f"slot {slot}: BME set before READY")
        self.checks.record(
            "VFM-DEV-008", state not in (DevState.PAUSED, DevState.ERROR), f"slot {slot}: BME set while {state}"
        )
        self.checks.record(
            "VFM-DOWN-004",
            state not in (DevState.DIRTY_REQ, DevState.PAUSE_REQ),
            f"slot {slot}: BME set while {state}",
        )
        driver = self.world.drivers[slot]
        if state is DevState.REINIT_REQ:
            self.checks.record("VFM-DOWN-003", driver.up, f"slot {slot}: BME set answering REINIT_REQ while down")
        self.checks.record("VFM-FLAG-003", watch.status_read, f"slot {slot}: BME set before DEV_STATUS was read")
        host = self.guest_host()
        if host is not None and host.bridge_or_none is not None:
            migrated, reset, _ = host.bridge.dev_status(slot)
            self.checks.record(
                "VFM-FLAG-005",
                not (migrated or reset),
                f"slot {slot}: reinitialised (BME set) with DEV_STATUS MIGRATED={int(migrated)} RESET={int(reset)}",
            )
        if watch.flags_found:
            watch.flags_found = False
            self._check_works_later(slot, function)
        if state in (DevState.REINIT_REQ, DevState.RESUME_REQ):
            watch.bme_set_in_request = True
            if self.reset_race and host is not None and host.bridge_or_none is not None:
                # The function is reset under the driver that is bringing it up (spec §7.5.1, §7.9): its READY
                # is taken as "reinitialised" and only DEV_STATUS.RESET tells it (VFM-ERR-007).
                self.reset_race = False
                host.group_reset()
