"""The reference roles together, under random interleavings of everything the spec lets happen.

A Hypothesis state machine drives a small world (a 64-page guest, 1 to 4
functions) through guest CPU writes, DMA, the passage of time (which runs
pre-copy rounds), interface and driver changes, migrations in both directions
and every fault of ``vfmig simulate``.  After every step it checks the brief's
invariants; at the end it lets time run until every migration has ended and
checks that each ended within its bound with nothing lost.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conformance.suites.common import (
    brisk_migration,
    guest_host,
    other_host,
    receive_frames,
    set_interface,
    small_world_config,
)
from reference_impl.clock import ms
from reference_impl.hypervisor import (
    Hypervisor,
    MigrationError,
    MigrationOutcome,
    MigrationRecord,
)
from reference_impl.scenario import Simulation
from vfmig_proto.codec import decode_capability
from vfmig_proto.pci import PCI_BRIDGE_CONTROL, PCI_BRIDGE_CTL_BUS_RESET
from vfmig_proto.states import DevState, MigReason, MigState

PAGE = 4096
ACK_TIMEOUT_MS = 20


def small_world(vfs: int) -> Simulation:
    """A 64-page guest whose migrations take tens of milliseconds of simulated time."""
    migration = brisk_migration(4)  # one page per ms
    return Simulation(small_world_config(64, vfs, migration, dma_rate=0, buffers=4, ack_timeout_ms=ACK_TIMEOUT_MS))


def _running(record: MigrationRecord) -> bool:
    return not record.ended


class ReferenceMigrations(RuleBasedStateMachine):
    """Random interleavings of guest activity, migrations and faults over the reference roles."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        self.records: list[MigrationRecord] = []

    @initialize(vfs=st.integers(1, 4))
    def build(self, vfs: int) -> None:
        self.sim = small_world(vfs)

    # ------------------------------------------------------------------ helpers

    @property
    def world(self) -> Simulation:
        assert self.sim is not None
        return self.sim

    def where(self) -> Hypervisor | None:
        return guest_host(self.world)

    def other(self, host: Hypervisor) -> Hypervisor:
        return other_host(self.world, host)

    def migrating(self) -> bool:
        return any(host.outgoing is not None for host in self.world.hosts)

    # ------------------------------------------------------------------ guest activity

    @rule(pages=st.lists(st.integers(0, 63), min_size=1, max_size=8))
    def cpu_write(self, pages: list[int]) -> None:
        if self.world.guest.running:
            self.world.guest.cpu_write(np.array(pages, dtype=np.int64))

    @rule(slot=st.integers(0, 3), frames=st.integers(1, 6))
    def traffic(self, slot: int, frames: int) -> None:
        receive_frames(self.world, slot, frames)

    @rule(duration_us=st.integers(1, 80_000))
    def time_passes(self, duration_us: int) -> None:
        self.world.clock.advance(duration_us * 1000)

    @rule(slot=st.integers(0, 3), up=st.booleans())
    def interface(self, slot: int, up: bool) -> None:
        set_interface(self.world, slot, up)

    @rule(slot=st.integers(0, 3), load=st.booleans())
    def driver_binding(self, slot: int, load: bool) -> None:
        driver = self.world.drivers[slot % len(self.world.drivers)]

        def act() -> None:
            if load:
                driver.load(up=True)
            else:
                driver.unload()

        if self.world.guest.running:
            self.world.guest.after(0, act, "driver binding")

    @rule(dice=st.integers(0, 4))
    def guest_group_reset(self, dice: int) -> None:
        """The guest toggles Secondary Bus Reset (a reset it may ask for at any time; rarer than the rest)."""
        host = self.where()
        if dice == 0 and host is not None and self.world.guest.running:
            bridge = host.bridge
            control = bridge.config_read(PCI_BRIDGE_CONTROL, 2)
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control | PCI_BRIDGE_CTL_BUS_RESET)
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)

    # ------------------------------------------------------------------ migrations and faults

    @rule()
    def start_migration(self) -> None:
        host = self.where()
        if host is None or self.migrating() or host.incoming is not None:
            return
        bridge = host.bridge
        expected_ok = bridge.mig_state is MigState.IDLE and all(
            state in (DevState.EMPTY, DevState.UNBOUND, DevState.READY) for state in bridge.dev_states()
        )
        expected_ok = expected_ok and not any(
            bridge.dev_state(slot) is DevState.UNBOUND and function.bus_master
            for slot, function in host.slot_functions.items()
        )
        destination = self.other(host)
        if destination.incoming is not None or destination.guest is not None:
            return
        try:
            migration = host.migrate_to(destination, len(self.records) + 1)
        except MigrationError:
            assert not expected_ok, "the hypervisor refused a migration whose start conditions hold (VFM-MIG-001)"
            return
        assert expected_ok, "the hypervisor started a migration whose start conditions fail (VFM-MIG-001)"
        self.records.append(migration.record)

    @precondition(lambda self: self.migrating())
    @rule(reason=st.sampled_from([MigReason.CANCELLED, MigReason.DESTINATION_FAILURE]), dice=st.integers(0, 2))
    def cancel(self, reason: MigReason, dice: int) -> None:
        host = self.where()
        if dice == 0 and host is not None and host.outgoing is not None:
            host.outgoing.cancel(reason)

    @precondition(lambda self: self.migrating())
    @rule()
    def destination_fails(self) -> None:
        for host in self.world.hosts:
            if host.incoming is not None:
                host.incoming.fail_on_state = "injected by the test"

    @rule(slot=st.integers(0, 3))
    def slow_pause(self, slot: int) -> None:
        """One function drains its DMA slower than ACK_TIMEOUT_MS allows."""
        function = self.world.drivers[slot % len(self.world.drivers)].function
        if function is not None:
            function.timing = replace(function.timing, drain_ns=ms(2 * ACK_TIMEOUT_MS))

    @rule(slot=st.integers(0, 3), dice=st.integers(0, 2))
    def surprise_removal(self, slot: int, dice: int) -> None:
        struck = self._struck(slot, dice)
        if struck is not None:
            host, slot = struck
            host.surprise_remove(slot)

    @rule(slot=st.integers(0, 3))
    def hot_add(self, slot: int) -> None:
        host = self.where()
        slot %= len(self.world.drivers)
        if host is None or self.migrating() or host.bridge.dev_state(slot) is not DevState.EMPTY:
            return
        if host.bridge.mig_state is not MigState.IDLE:
            return
        host.assign_function(slot)
        driver = self.world.drivers[slot]

        def probe() -> None:
            driver.load(up=True)

        self.world.guest.after(ms(1), probe, "the OS probes the new function")

    @rule(slot=st.integers(0, 3), dice=st.integers(0, 2))
    def device_error(self, slot: int, dice: int) -> None:
        struck = self._struck(slot, dice)
        if struck is not None:
            host, slot = struck
            if host.bridge.dev_state(slot) is not DevState.EMPTY:
                host.function_failed(slot)

    def _struck(self, slot: int, dice: int) -> tuple[Hypervisor, int] | None:
        """The guest's host and a slot with a function in it, for a fault that strikes one draw in three."""
        host = self.where()
        slot %= len(self.world.drivers)
        if dice or host is None or slot not in host.slot_functions:
            return None
        return host, slot

    # ------------------------------------------------------------------ invariants after every step

    @invariant()
    def no_invariant_broken(self) -> None:
        if self.sim is None:
            return
        monitor = self.world.monitor
        assert monitor is not None
        assert not monitor.violations, "\n".join(str(violation) for violation in monitor.violations)

    @invariant()
    def guest_cannot_corrupt_the_capability(self) -> None:
        if self.sim is None:
            return
        for host in self.world.hosts:
            if host.bridge_or_none is not None:
                decode_capability(host.bridge.capability_bytes())  # raises if any field is out of range

    @invariant()
    def ended_migrations_kept_their_promises(self) -> None:
        for record in self.records:
            if not record.ended:
                assert self.world.clock.now <= record.start_ns + record.bound_ns, "a migration outlived T_max"
                continue
            assert record.lost_pages == 0, f"migration {record.number} lost {record.lost_pages} pages"
            assert record.total_ns <= record.bound_ns
            if record.outcome is MigrationOutcome.COMPLETED:
                assert record.reason is MigReason.COMPLETED
            else:
                assert record.reason not in (MigReason.NONE, MigReason.COMPLETED)

    @invariant()
    def the_guest_runs_somewhere_unless_stopped_for_copy(self) -> None:
        if self.sim is None:
            return
        host = self.where()
        if self.world.guest.running:
            return
        # Stopped: only between STOPPED and the next vCPU run (stop-and-copy or a cancel's restart).
        stopped_somewhere = (
            host is not None
            and host.bridge_or_none is not None
            and host.bridge.mig_state
            in (
                MigState.STOPPED,
                MigState.RESUMING,
            )
        )
        in_flight = host is None or any(other.incoming is not None for other in self.world.hosts)
        assert stopped_somewhere or in_flight, "the guest's vCPUs are stopped outside a migration"

    def teardown(self) -> None:
        if self.sim is None:
            return
        world = self.world
        for record in self.records:
            world.clock.run_while(partial(_running, record), record.start_ns + record.bound_ns)
            assert record.ended, f"migration {record.number} did not end within T_max (VFM-TIME-004)"
            assert record.lost_pages == 0
        monitor = world.monitor
        assert monitor is not None
        for record in self.records:
            monitor.check_record(record)
        assert not monitor.violations, "\n".join(str(violation) for violation in monitor.violations)
        self.functions_work_again()

    def functions_work_again(self) -> None:
        """Whatever happened, once the dust settles every function with a driver that is up works."""
        world = self.world
        world.clock.advance(ms(5))  # the handover message of a completed migration is on its way
        host = self.where()
        assert host is not None, "the guest runs on one of the hosts"
        world.clock.run_while(lambda: host.bridge.mig_state is not MigState.IDLE, world.clock.now + ms(500))
        world.clock.advance(ms(100))  # drivers finish pauses, drains and reinitialisations
        for driver in world.drivers:
            function = driver.function
            state = host.bridge.dev_state(driver.slot)
            if not (driver.loaded and driver.up and function is not None) or state is DevState.ERROR:
                continue
            assert state is DevState.READY, f"slot {driver.slot} is {state.name}, not READY, with its driver up"
            assert driver.configured, f"slot {driver.slot}'s driver did not restart its function"
            assert not driver.paused, f"slot {driver.slot}'s function is still paused"
            assert function.receive(PAGE) == 1, f"slot {driver.slot}'s function does not receive (bad path safe)"


ReferenceMigrations.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    suppress_health_check=[HealthCheck.too_slow],
    deadline=None,
)
TestReferenceMigrations = ReferenceMigrations.TestCase
