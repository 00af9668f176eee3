"""What the management layer and the destination do: migrations started (to the other host, or to the one
that must refuse), cancellations, platform resets, and destinations that refuse or crash.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.checks import step
from conformance.suites.hypervisor.observers.config_space import ConfigSpaceObserver
from conformance.suites.hypervisor.settings import ACK_TIMEOUT_MS, HOST_AT, IN_PROGRESS, LATE_US, MIGRATION, PAGE_SHIFT
from conformance.suites.hypervisor.watch import Armed, Cause, Watch, in_ms
from conformance.suites.hypervisor.world import alive, swarmed
from reference_impl.clock import ms
from reference_impl.driver import VfDriver
from reference_impl.guest import firmware_setup
from vfmig_proto.outcomes import MigrationRefusedError
from vfmig_proto.states import MigReason


def probe(driver: VfDriver) -> None:
    """The guest's OS binds the driver (a probe)."""
    driver.load(up=True)


class ManagementRules(ConfigSpaceObserver):
    """Rules of the management layer and of the destination."""

    @precondition(alive)
    @rule(
        far=st.booleans(),
        destination=st.sampled_from(("works", "refuses", "crashes")),
        until=st.sampled_from(("", "PRECOPY", "PAUSING", "STOPPED")),
    )
    @step(
        *("VFM-MIG-001", "VFM-GEN-003", "VFM-VER-007", "VFM-DIRTY-005", "VFM-DIRTY-006", "VFM-ABS-004"),
        *("VFM-DISC-002", "VFM-DIRTY-007", "VFM-DEV-012"),
    )
    def start_migration(self, far: bool, destination: str, until: str) -> None:
        """The management layer starts a migration, to the other host or to the one that must refuse it.

        ``destination``: whether the destination works, or refuses the final state, or crashes before it confirms.
        """
        if destination != "works" and self.in_progress() is None:
            self.armed.destination = "crash" if destination == "crashes" else "refuse"
        self._start(far)
        if until:
            self._run_until(until)
        self.checks.raise_pending()

    def _start(self, to_far: bool) -> None:
        host = self.guest_host()
        if host is None or self.dead or self.in_progress() is not None or host.bridge_or_none is None:
            return
        if to_far and "VFM-VER-007" in self.checks.disabled:
            return  # found already: in this world it would carry the guest away
        destination = self.far if to_far else self.other(host)
        assert destination is not None
        problem = self._start_problem(host.bridge)
        if destination.guest is not None or destination.incoming is not None:
            problem = problem or f"the destination {destination.name} is busy"
        if to_far:
            problem = problem or f"{destination.name} tracks dirty memory finer than 2^{PAGE_SHIFT} bytes"
        watch = Watch(len(self.watches) + 1, host, destination)
        self.pending = watch
        handles: list[Any] = []
        try:
            self._world(lambda: handles.append(host.migrate_to(destination, watch.number)))
        except MigrationRefusedError as error:
            refused = str(error)
        else:
            refused = ""
        finally:
            self.pending = None
        received = any(other.destination is host and other.handover_ns is not None for other in self.watches)
        if problem is None:
            guest = "the guest it had received" if received else "the guest"
            self.checks.that(
                "VFM-GEN-003",
                not refused,
                f"{host.name} refused to migrate {guest} to {destination.name} at {in_ms(self.clock.now)} although "
                f"every start condition holds: {refused}",
            )
        if not handles or not watch.started:
            return
        watch.handle = handles[0]
        watch.incoming = getattr(destination, "incoming", None)
        self._intercept_destination(watch)
        armed, self.armed = self.armed, Armed()
        if armed.destination:
            self._destination_fails(watch, crash=armed.destination == "crash")
        watch.rogue_at_stop = armed.rogue_at_stop

    def _finish_migrations(self) -> None:
        clock = self.clock
        bound = MIGRATION.bound_ns(ACK_TIMEOUT_MS)
        for watch in self.watches:
            if watch.start_ns is not None and watch.in_progress:
                self._world(partial(clock.run_while, partial(is_running, watch), watch.start_ns + bound + self.e + 2))
        self._world(partial(clock.advance, ms(5)))  # the handover message, and the checks due meanwhile

    def _intercept_destination(self, watch: Watch) -> None:
        """Watch the destination receive the final state: it may refuse it (armed) or crash (armed)."""
        incoming = watch.incoming
        receive = getattr(incoming, "receive_state", None)
        if incoming is None or receive is None:
            return

        watch.intercepted = True

        def receive_state(*args: Any, **kwargs: Any) -> None:
            watch.state_arrived_ns = self.clock.now
            if watch.crash:
                return  # the destination host crashed: nothing answers
            if watch.refuse or watch.destination is self.far:
                what = "the destination refused the final state"
                self._must_cancel_later(watch, Cause(self.clock.now, MigReason.DESTINATION_FAILURE, what))
            receive(*args, **kwargs)

        setattr(incoming, "receive_state", receive_state)  # noqa: B010 - this migration's destination only

    def _must_cancel_later(self, watch: Watch, cause: Cause) -> None:
        watch.causes.append(cause)
        due = cause.time_ns + MIGRATION.link_latency_ns + self.e

        def check() -> None:
            self.checks.record(
                "VFM-DEST-001",
                watch.cancel_ns is not None or watch.ended_ns is not None,
                lambda: (
                    f"migration {watch.number}: {cause}; no CANCEL by {in_ms(self.clock.now)} (the report takes "
                    f"{in_ms(MIGRATION.link_latency_ns)}, + e = {in_ms(self.e)})"
                ),
            )

        self._schedule(due + 1, check, "VFM-DEST-001")

    @precondition(swarmed("cancel"))
    @rule(at=st.sampled_from(HOST_AT), late_us=st.sampled_from(LATE_US))
    @step("VFM-CANCEL-001", "VFM-MIG-010", "VFM-TMO-005", "VFM-GEN-002", "VFM-DEV-012")
    def cancel(self, at: str, late_us: int) -> None:
        """The management layer cancels the migration."""
        self._when(at, "the management layer cancels", self._cancel, late_us=late_us)

    def _cancel(self) -> None:
        watch = self.in_progress()
        if watch is None or watch.handle is None or watch.bridge is None:
            return
        if watch.bridge.mig_state in IN_PROGRESS and not self.handed_over(watch):
            watch.causes.append(Cause(self.clock.now, MigReason.CANCELLED, "the management layer cancelled"))
        watch.handle.cancel(MigReason.CANCELLED)

    @precondition(swarmed("platform_reset"))
    @rule(at=st.sampled_from(HOST_AT), late_us=st.sampled_from(LATE_US))
    @step("VFM-CAP-008", "VFM-CANCEL-001", "VFM-MIG-010", "VFM-DEV-012")
    def platform_reset(self, at: str, late_us: int) -> None:
        """The management layer resets the guest's platform: a conventional reset of the bridge."""
        self._when(at, "a conventional reset of the bridge", self._platform_reset, late_us=late_us)

    def _platform_reset(self) -> None:
        host = self.guest_host()
        if host is None or host.bridge_or_none is None:
            return
        bridge = host.bridge
        watch = self.watch_of(bridge)
        state = bridge.mig_state
        if watch is not None and watch.in_progress and state in IN_PROGRESS and not self.handed_over(watch):
            watch.causes.append(Cause(self.clock.now, MigReason.CANCELLED, "a conventional reset of the bridge"))
        self.resetting, self.reset_state, self.reset_cancel = bridge, state, None
        try:
            host.reset_bridge()
        finally:
            self.resetting = None
        self._reboot_guest()

    def _reboot_guest(self) -> None:
        """After the reset the guest's OS sets the bridge up again and binds its drivers afresh."""
        guest = self.world.guest
        core = self.world.core

        def setup() -> None:
            bridge = self._guest_bridge()
            if bridge is None:
                return
            firmware_setup(bridge)
            core.probe()
            for driver in self.world.drivers:
                driver.unload()

        guest.after(0, setup, "the guest after a platform reset")
        for driver in self.world.drivers:
            guest.after(ms(1), partial(probe, driver), "driver load")

    @precondition(swarmed("destination_fails"))
    @rule(crash=st.booleans())
    @step("VFM-DEST-001", "VFM-DEST-005")
    def destination_fails(self, crash: bool) -> None:
        """The destination (of this migration, or of the next) will refuse the final state, or crash."""
        watch = self.in_progress()
        if watch is None:
            self.armed.destination = "crash" if crash else "refuse"
        elif watch.state_arrived_ns is None:
            self._destination_fails(watch, crash=crash)

    def _destination_fails(self, watch: Watch, *, crash: bool) -> None:
        if crash:
            watch.crash = True
        elif watch.incoming is not None and hasattr(watch.incoming, "fail_on_state"):
            watch.incoming.fail_on_state = "injected by the conformance suite"
            watch.refuse = True


def is_running(watch: Watch) -> bool:
    return watch.in_progress
