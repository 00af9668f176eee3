"""Scenarios: whole migrations with one known-tricky twist each, and the end of an example (every migration
runs to its end, then the finale).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial

from hypothesis import strategies as st
from hypothesis import target
from hypothesis.stateful import precondition, rule

from conformance.checks import step
from conformance.suites.hypervisor.management import is_running, probe
from conformance.suites.hypervisor.observers.watched import WatchedFunction
from conformance.suites.hypervisor.rules import EnvironmentRules, hang_at_pause, ignore_requests
from conformance.suites.hypervisor.settings import (
    ACK_TIMEOUT_MS,
    CONSENT,
    DEADLINE_OFFSETS_US,
    DRIVER_SCENARIOS,
    FUNCTION_SCENARIOS,
    GUEST_SCENARIOS,
    GUEST_TWISTS,
    LATE_US,
    MANAGEMENT_SCENARIOS,
    MIGRATION,
    REQUESTS,
    RUN_LIMIT_NS,
    SCENARIO_KINDS,
    TWIST_PHASES,
    WATCHED_THROUGHOUT,
)
from conformance.suites.hypervisor.watch import in_ms
from conformance.suites.hypervisor.world import alive
from reference_impl.bridge import MigrationBridge
from reference_impl.clock import ms
from reference_impl.driver import VfDriver
from vfmig_proto.codec import find_field
from vfmig_proto.states import DevState, MigState


class ScenarioRules(EnvironmentRules):
    """Rules that each run a whole migration with one twist; the invariants; the end of the example."""

    @precondition(alive)
    @rule(kind=st.sampled_from(DRIVER_SCENARIOS), slot=st.integers(0, 2))
    @step(
        *("VFM-TMO-001", "VFM-TMO-002", "VFM-TMO-003", "VFM-TMO-005", "VFM-MIG-001", "VFM-MIG-012"),
        *WATCHED_THROUGHOUT,
    )
    def driver_scenario(self, kind: str, slot: int) -> None:
        """A migration with a driver that hangs, binds late and silent, or leaves BME set where it must not."""
        self._scenario(kind, slot, "PRECOPY")

    @precondition(alive)
    @rule(
        kind=st.sampled_from(FUNCTION_SCENARIOS),
        slot=st.integers(0, 2),
        phase=st.sampled_from(TWIST_PHASES),
        late_us=st.sampled_from(LATE_US),
    )
    @step(
        *("VFM-ERR-001", "VFM-ERR-002", "VFM-ERR-003", "VFM-MIG-001", "VFM-CANCEL-001", "VFM-CANCEL-002"),
        *("VFM-DISC-002", "VFM-DISC-003", "VFM-DEV-012", "VFM-GEN-002"),
    )
    def function_scenario(self, kind: str, slot: int, phase: str, late_us: int) -> None:
        """A migration during which (or just before which) a function fails, disappears or is hot-added."""
        self._scenario(kind, slot, phase, late_us)

    @precondition(alive)
    @rule(
        kind=st.sampled_from(GUEST_SCENARIOS),
        slot=st.integers(0, 2),
        phase=st.sampled_from(TWIST_PHASES),
        late_us=st.sampled_from(LATE_US),
    )
    @step("VFM-MIG-011", "VFM-MIG-010", "VFM-CANCEL-001", "VFM-SEC-004", "VFM-SEC-005", "VFM-GEN-002")
    def guest_scenario(self, kind: str, slot: int, phase: str, late_us: int) -> None:
        """A migration during which the guest withdraws its consent, resets the bridge or writes a bad report."""
        self._scenario(kind, slot, phase, late_us)

    @precondition(alive)
    @rule(
        kind=st.sampled_from(MANAGEMENT_SCENARIOS),
        phase=st.sampled_from(TWIST_PHASES),
        late_us=st.sampled_from(LATE_US),
    )
    @step(
        *("VFM-DEST-001", "VFM-DEST-005", "VFM-VER-007", "VFM-TIME-001", "VFM-TIME-002", "VFM-CANCEL-001"),
        *("VFM-CAP-008", "VFM-DIRTY-007"),
        *WATCHED_THROUGHOUT,
    )
    def management_scenario(self, kind: str, phase: str, late_us: int) -> None:
        """A migration that the management layer cancels, whose destination fails, or that cannot converge."""
        self._scenario(kind, 0, phase, late_us)

    @precondition(alive)
    @rule(
        request=st.sampled_from(REQUESTS),
        slot=st.integers(0, 2),
        offset_us=st.sampled_from(DEADLINE_OFFSETS_US),
        pokes=st.booleans(),
    )
    @step(
        *("VFM-TMO-001", "VFM-TMO-003", "VFM-TMO-004", "VFM-TMO-005", "VFM-TIME-005", "VFM-CANCEL-001"),
        *("VFM-MIG-010", "VFM-DEST-005"),
        *WATCHED_THROUGHOUT,
    )
    def deadline_scenario(self, request: DevState, slot: int, offset_us: int, pokes: bool) -> None:
        """A migration in which a driver answers ``request`` just before or just after its deadline.

        An answer after the deadline must not be taken: the hypervisor acts on the deadline whatever comes
        within e.  With ``pokes`` the guest also writes the bridge all through the phase, writes that change
        nothing and must not restart the phase's deadline (it runs from the phase's start, Table 7-6).  A
        RESUME_REQ is reached by a cancellation in the middle of PAUSING.
        """
        self._world(self._settle)
        driver = self.world.drivers[slot % len(self.world.drivers)]
        offset_ns = offset_us * 1000
        setattr(driver, "act_on", partial(self._answer_near_deadline, driver, request, offset_ns))  # noqa: B010
        phase = {DevState.DIRTY_REQ: "PREPARE", DevState.PAUSE_REQ: "PAUSING", DevState.RESUME_REQ: "RESUMING"}
        if request is DevState.RESUME_REQ:
            self.triggers.append((MigState.PAUSING, "the management layer cancels", self._cancel, 0))
        if pokes:
            self.triggers.append((MigState[phase[request]], "the guest writes the bridge", self._poke, 0))
        self._start(to_far=False)
        self._run_until("end")
        self._world(partial(self.clock.advance, ms(5)))
        self.triggers = [trigger for trigger in self.triggers if trigger[2] != self._poke]
        self._recover(driver)
        self.checks.raise_pending()

    def _answer_near_deadline(self, driver: VfDriver, request: DevState, offset_ns: int, state: DevState | int) -> None:
        """A driver's ``act_on`` that starts its answer to ``request`` ``offset_ns`` from the request's deadline."""
        deadline = self._request_deadline(driver.slot, request) if state is request else None
        if deadline is not None and self.clock.now < deadline + offset_ns:
            look = partial(self.world.core.look_at, driver.slot)
            self.world.guest.after(deadline + offset_ns - self.clock.now, look, "a driver answers near its deadline")
            return
        VfDriver.act_on(driver, state)

    def _request_deadline(self, slot: int, request: DevState) -> int | None:
        """The deadline of ``request`` in ``slot`` on the source (Table 7-6), if a migration there has one."""
        watch = self.in_progress()
        bridge = None if watch is None else watch.bridge
        if watch is None or bridge is None:
            return None
        state = bridge.mig_state
        since: int | None = None
        if request is DevState.DIRTY_REQ:
            since = watch.dirty_req.get(slot) if state is MigState.PRECOPY else watch.phases.get(MigState.PREPARE)
        elif request is DevState.PAUSE_REQ and state is MigState.PAUSING:
            since = watch.phases.get(MigState.PAUSING)
        elif request is DevState.RESUME_REQ and state is MigState.RESUMING:
            since = watch.resuming_start if watch.resuming_start is not None else watch.phases.get(state)
        return None if since is None else since + self.ack_ns

    def _poke(self) -> None:
        """The guest rewrites the bridge's CONTROL register with its own value, again every A/4 while the
        migration needs the guest; the write changes nothing (a deadline it restarted would be found late)."""
        bridge = self._guest_bridge()
        watch = self.in_progress()
        if bridge is None or watch is None or watch.bridge is not bridge or bridge.mig_state not in POKED:
            return
        placed = find_field(bridge.num_slots, "control.enable")
        offset, width = bridge.cap + placed.offset, placed.register.size
        self._as_guest(partial(bridge.config_write, offset, width, bridge.config_read(offset, width)))
        self.clock.schedule(self.ack_ns // 4, partial(self._fired, self._poke), "suite: the guest writes the bridge")

    def _scenario(self, kind: str, slot: int, phase: str, late_us: int = 0) -> None:
        """Once the migration under way (if any) has ended: a migration with one known-tricky twist.

        ``slot`` is the function or driver concerned, ``phase`` the MIG_STATE in which the twist comes, for the
        kinds with a twist during the migration (in STOPPED the vCPUs are stopped: guest twists come in PAUSING),
        ``late_us`` how long into that phase.
        """
        self._world(self._settle)
        slot %= len(self.world.drivers)
        driver = self.world.drivers[slot]
        if kind == "silent-late-binder":
            self._late_binder(driver)
            return
        setup: dict[str, Callable[[], None]] = {
            "driver-hangs-at-pause": partial(setattr, driver, "act_on", partial(hang_at_pause, driver)),
            "silent-driver": partial(setattr, driver, "act_on", ignore_requests),
            "device-error-then-start": partial(self._world, partial(self._device_error, slot, False)),
            "destination-refuses": partial(setattr, self.armed, "destination", "refuse"),
            "destination-crashes": partial(setattr, self.armed, "destination", "crash"),
            "bus-master-as-vcpus-stop": partial(setattr, self.armed, "rogue_at_stop", slot),
            "bus-master-on-unbound": partial(self._unbound_bus_master, driver),
            "unbound-bus-master-at-stop": partial(self._unbound_at_stop, driver),
        }
        twists: dict[str, Callable[[], None]] = {
            "device-error-driver-hangs": partial(self._device_error, slot, True),
            "surprise-removal": partial(self._surprise_removal, slot),
            "consent-withdrawn": partial(self._consent, CONSENT[slot], True),
            "guest-group-reset": partial(self._group_reset_by_guest, False),
            "rejected-report": partial(self._bogus_report, slot),
            "hot-add": partial(self._hot_add, len(self.world.drivers)),
            "cancel": self._cancel,
            "platform-reset": self._platform_reset,
            "dirty-log-loss": self._lose_dirty_log,
        }
        if kind in setup:
            setup[kind]()
        if kind in twists:
            at = "PAUSING" if kind in GUEST_TWISTS and phase == "STOPPED" else phase  # guest code needs vCPUs
            self.triggers.append((MigState[at], kind, twists[kind], late_us * 1000))
        storm, self.storm = self.storm, self.storm or kind == "cpu-storm"
        self._start(to_far=kind == "far-destination")
        self._run_until("end")
        self._world(partial(self.clock.advance, ms(5)))
        self._recover(driver)
        if kind == "consent-withdrawn":
            self._world(partial(self._consent, CONSENT[slot], False))
        elif kind in ("bus-master-on-unbound", "unbound-bus-master-at-stop"):  # its probe resets the function
            self.world.guest.after(0, partial(probe, driver), "driver load")
            self._world(partial(self.clock.advance, ms(1)))
        self.storm = storm
        self.checks.raise_pending()

    def _settle(self) -> None:
        """Let the migration under way end, and the bridge return to IDLE with the bus out of reset."""
        clock = self.clock
        watch = self.in_progress()
        if watch is not None and watch.start_ns is not None:
            bound = MIGRATION.bound_ns(ACK_TIMEOUT_MS)
            clock.run_while(partial(is_running, watch), watch.start_ns + bound + self.e + 2)
        clock.advance(ms(1))
        host = self.guest_host()
        if host is not None and host.bridge_or_none is not None:
            clock.run_while(partial(_settling, host.bridge), clock.now + RUN_LIMIT_NS)

    def _recover(self, driver: VfDriver) -> None:
        """A silenced driver answers again, looking at its slot at once."""
        if "act_on" in vars(driver):
            delattr(driver, "act_on")
            self.world.guest.after(0, partial(self.world.core.look_at, driver.slot), "the driver answers again")
            self._world(partial(self.clock.advance, ms(1)))

    def _late_binder(self, driver: VfDriver) -> None:
        """A driver binds during PRECOPY and never answers the DIRTY_REQ that catch-up gives it (VFM-TMO-002)."""
        guest = self.world.guest
        guest.after(0, driver.unload, "driver unload")
        self._world(partial(self.clock.advance, ms(1)))
        self._start(to_far=False)
        self._run_until("PRECOPY")
        setattr(driver, "act_on", ignore_requests)  # noqa: B010 - this driver instance only
        guest.after(0, partial(probe, driver), "driver load")
        self._run_until("end")
        self._world(partial(self.clock.advance, ms(5)))
        self._recover(driver)
        self.checks.raise_pending()

    def _unbound_at_stop(self, driver: VfDriver) -> None:
        """A driver unbinds, and a write that sets BME on an UNBOUND function (the last one along the bridge: its
        own, or one no driver ever bound) lands just as the vCPUs stop: the hypervisor's read of every Command
        register once they have stopped must see it (VFM-MIG-012)."""
        self.world.guest.after(0, driver.unload, "driver unload")
        self._world(partial(self.clock.advance, ms(1)))
        self.armed.rogue_at_stop = self._last_unbound_slot(driver.slot)

    def _last_unbound_slot(self, fallback: int) -> int:
        """The UNBOUND slot furthest along the bridge (its last slots are where an off-by-one hides)."""
        bridge = self._guest_bridge()
        if bridge is None:
            return fallback
        unbound = [slot for slot in range(bridge.num_slots) if bridge.dev_state(slot) is DevState.UNBOUND]
        return unbound[-1] if unbound else fallback

    def _unbound_bus_master(self, driver: VfDriver) -> None:
        """A driver unbinds and something else in the guest sets BME on the function (VFM-MIG-001 refuses it)."""
        guest = self.world.guest
        guest.after(0, driver.unload, "driver unload")
        self._world(partial(self.clock.advance, ms(1)))
        self._world(partial(self._rogue_bus_master, driver.slot))

    def teardown(self) -> None:
        if self.sim is not None and not self.dead and sys.exc_info()[0] is None:
            self.final_checks()  # (after a finding the example is over: Hypothesis wants that finding, not another)

    @step(
        *("VFM-TIME-004", "VFM-SEC-006", "VFM-DEST-005", "VFM-TMO-005", "VFM-CAP-008", "VFM-DISC-002"),
        *WATCHED_THROUGHOUT,
    )
    def final_checks(self) -> None:
        """Every migration runs to its end; then the finale (one more migration, faults and all, or a scenario)."""
        clock = self.clock
        self._finish_migrations()
        if self.finale in SCENARIO_KINDS and not self.dead:
            self._scenario(self.finale, 0, self.finale_phase)
        elif self.finale == "migrate" and not self.dead:
            self._world(self._settle)
            self._start(to_far=False)
        self._finish_migrations()
        self.checks.raise_pending()
        # Steer generation towards examples that run more migrations, each judged as it happens (Hypothesis'
        # targeted search): faults that show only on the second or third migration need them.
        target(float(sum(watch.ended_ns is not None for watch in self.watches)), label="migrations ended")
        for watch in self.watches:
            if watch.handover_ns is None:
                continue
            # Violations were recorded as they happened; this one passes for the whole run.
            self.checks.record("VFM-DEST-002", True, "")
            source = watch.bridge
            assert source is not None
            for slot, function in enumerate(source.functions):  # (a function surprise-removed since is gone)
                if not isinstance(function, WatchedFunction):
                    continue
                reset = function.last_reset_ns
                self.checks.that(
                    "VFM-SEC-006",
                    reset is not None and reset >= watch.handover_ns,
                    f"migration {watch.number}: slot {slot}'s source function {function.name} was never reset "
                    f"after the handover point at {in_ms(watch.handover_ns)} (last reset: "
                    f"{'never' if reset is None else in_ms(reset)}; now {in_ms(clock.now)})",
                )


POKED = frozenset({MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING, MigState.RESUMING})
"""Where the guest's vCPUs run during a migration, so that it can write the bridge."""


def _settling(bridge: MigrationBridge) -> bool:
    return bridge.mig_state is not MigState.IDLE or bridge.secondary_bus_reset
