"""The reference roles one property at a time: clock, memory, deadlines, convergence, events, faults."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from reference_impl.clock import ClockError, SimClock, ms
from reference_impl.driver import _HANDLERS, VfDriver
from reference_impl.events import EventKind, EventLog
from reference_impl.hypervisor import MiB, MigrationConfig, MigrationError, MigrationOutcome, PrecopyLimitAction
from reference_impl.memory import BOOT_VERSION, GuestMemory
from reference_impl.scenario import ScenarioFault, Simulation, SimulationConfig
from vfmig_proto.states import DevState, MigEvent, MigReason, MigState

SMALL = SimulationConfig(
    memory_bytes=16 * MiB,
    dma_rate=20 * MiB,
    cpu_dirty_rate=32 * MiB,
    buffers=64,
    migration=MigrationConfig(downtime_limit_ns=ms(20)),
)
"""A 16 MiB guest that needs a few pre-copy rounds (the 20 ms limit is below one round's dirtying)."""


# ---------------------------------------------------------------------------------------------- clock


def test_clock_runs_timers_in_time_then_scheduling_order() -> None:
    clock = SimClock()
    seen: list[str] = []
    clock.schedule(ms(2), lambda: seen.append("b"))
    clock.schedule(ms(1), lambda: seen.append("a"))
    clock.schedule(ms(2), lambda: seen.append("c"))
    cancelled = clock.schedule(ms(1), lambda: seen.append("never"))
    clock.cancel(cancelled)
    clock.advance(ms(5))
    assert seen == ["a", "b", "c"]
    assert clock.now == ms(5)


def test_clock_refuses_the_past_and_stops_at_a_limit() -> None:
    clock = SimClock()
    clock.advance(ms(1))
    with pytest.raises(ClockError, match="cannot schedule"):
        clock.schedule_at(0, lambda: None)
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(clock.now)
        clock.schedule(ms(1), tick)

    clock.schedule(0, tick)
    assert not clock.run_while(lambda: True, ms(10))
    assert clock.now == ms(10)
    assert ticks[-1] <= ms(10)


# ---------------------------------------------------------------------------------------------- memory


def test_dirty_log_records_cpu_writes_and_dirtying_but_not_dma() -> None:
    memory = GuestMemory(64 * 4096, 12)
    memory.log.enable()
    memory.cpu_write(np.array([3, 3, 5], dtype=np.int64))
    memory.dma_write(np.array([7], dtype=np.int64))
    memory.dirty_range(10, 12)
    memory.dirty(np.array([5, 20], dtype=np.int64))
    assert memory.log.count == 5
    assert sorted(memory.log.harvest().tolist()) == [3, 5, 10, 11, 20]
    assert memory.log.count == 0
    assert memory.log.harvest().size == 0
    assert memory.versions[7] != BOOT_VERSION
    assert memory.versions[10] == BOOT_VERSION, "dirtying must leave the contents as they are (VFM-DIRTY-002)"


def test_a_lost_dirty_log_makes_every_page_dirty() -> None:
    memory = GuestMemory(32 * 4096, 12)
    memory.log.enable()
    memory.log.lose_entries()
    assert memory.log.count == 32
    assert memory.log.harvest().size == 32


def test_differing_pages_counts_what_a_destination_missed() -> None:
    source = GuestMemory(16 * 4096, 12)
    destination = GuestMemory(16 * 4096, 12, boot=False)
    destination.receive_range_from(source, 0, 16)
    assert destination.differing_pages(source) == 0
    source.dma_write_range(2, 5)
    assert destination.differing_pages(source) == 3


# ---------------------------------------------------------------------------------------------- driver


def test_the_driver_has_an_action_for_every_device_state() -> None:
    assert set(_HANDLERS) == set(DevState)
    assert all(callable(getattr(VfDriver, handler)) for handler in _HANDLERS.values())


# ---------------------------------------------------------------------------------------------- migrations


def _transitions(log: EventLog, state: MigState) -> list[int]:
    return [event.time for event in log.of(EventKind.MIG_TRANSITION) if event.data["new"] is state]


def _wait_before(log: EventLog, event: MigEvent, state: MigState) -> int:
    """Nanoseconds from the first entry into ``state`` to the first ``event`` of the migration."""
    happened = next(logged.time for logged in log.events if logged.data["event"] is event)
    return happened - _transitions(log, state)[0]


def test_a_default_migration_completes_with_nothing_lost_and_every_kind_of_event() -> None:
    simulation = Simulation(SMALL)
    log = EventLog(simulation.bus)
    result = simulation.run()
    record = result.last
    assert record.outcome is MigrationOutcome.COMPLETED
    assert record.lost_pages == 0
    assert result.violations == []
    assert all(device.reset_on_destination for device in record.devices)
    assert all(device.state is DevState.READY for device in record.devices)
    kinds = {event.kind for event in log.events}
    assert kinds >= set(EventKind) - {
        EventKind.FAULT,
        EventKind.HOT_PLUG,
        EventKind.REPORT_REJECTED,
        EventKind.DMA_READ,
    }
    times = [event.time for event in log.events]
    assert times == sorted(times)


def test_switch_over_happens_at_the_first_round_that_fits_the_downtime_limit() -> None:
    result = Simulation(SMALL).run()
    record = result.last
    limit = SMALL.migration.bandwidth * SMALL.migration.downtime_limit_ns / 1e9 / 4096
    ended = [item for item in record.rounds if item.dirty_at_end is not None]
    assert ended, "at least one round ended"
    assert all(item.dirty_at_end is not None and item.dirty_at_end > limit for item in ended[:-1])
    last = ended[-1].dirty_at_end
    assert last is not None
    assert last <= limit
    assert record.rounds[0].pages == SMALL.memory_bytes // 4096, "round 1 sends every page"


def test_a_round_limit_with_the_cancel_policy_cancels() -> None:
    migration = replace(SMALL.migration, max_precopy_rounds=1, on_precopy_limit=PrecopyLimitAction.CANCEL)
    config = replace(SMALL, migration=migration, cpu_dirty_rate=64 * MiB)
    record = Simulation(config).run().last
    assert (record.outcome, record.reason) == (MigrationOutcome.CANCELLED, MigReason.CANCELLED)
    assert len(record.notes) == 1
    assert record.notes[0].startswith("pre-copy limit reached (round limit 1) before convergence: ")


def test_pausing_deadline_cancels_exactly_ack_timeout_after_pausing_began() -> None:
    simulation = Simulation(replace(SMALL, fault=ScenarioFault.ACK_TIMEOUT))
    log = EventLog(simulation.bus, [EventKind.MIG_TRANSITION])
    record = simulation.run().last
    assert (record.outcome, record.reason) == (MigrationOutcome.FAILED, MigReason.ACK_TIMEOUT)
    deadline = SMALL.ack_timeout_ms * 1_000_000
    assert _wait_before(log, MigEvent.CANCEL, MigState.PAUSING) == deadline, "VFM-TMO-003/004: at it, not before"
    # The slow function's driver answers RESUME_REQ only after its drain: RESUMING's deadline resets the group.
    assert _wait_before(log, MigEvent.GROUP_RESET, MigState.RESUMING) == deadline, "VFM-TMO-005"


def test_prepare_deadline_cancels_a_migration_whose_driver_never_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    simulation = Simulation(SMALL)
    silent: VfDriver = simulation.drivers[0]
    # A driver that ignores DIRTY_REQ; the other one answers as usual.
    monkeypatch.setattr(silent, "on_dirty_req", lambda: None)
    log = EventLog(simulation.bus, [EventKind.MIG_TRANSITION])
    record = simulation.run().last
    assert (record.outcome, record.reason) == (MigrationOutcome.FAILED, MigReason.ACK_TIMEOUT)
    assert _wait_before(log, MigEvent.CANCEL, MigState.PREPARE) == SMALL.ack_timeout_ms * 1_000_000, "VFM-TMO-001"


@pytest.mark.parametrize("fault", list(ScenarioFault))
def test_every_fault_ends_as_the_spec_says_within_its_bound(fault: ScenarioFault) -> None:
    result = Simulation(replace(SMALL, fault=fault)).run()
    record = result.last
    assert (record.outcome, record.reason) == fault.expected
    assert record.total_ns <= record.bound_ns
    if fault is ScenarioFault.NO_DIRTYING:
        assert record.lost_pages > 0, "a driver that skips DMA dirtying must lose pages: the check can fail"
        assert [violation.invariant for violation in result.violations] == ["no lost write"]
    else:
        assert record.lost_pages == 0
        assert result.violations == []
    if record.outcome is not MigrationOutcome.COMPLETED:
        # Bad path is safe: every remaining function works again on the source.
        assert all(device.state in (DevState.READY, DevState.EMPTY) for device in record.devices)
        assert all(device.function is None or device.function.startswith("hostA") for device in record.devices)


def test_interface_down_and_unloaded_driver_leave_the_migrated_flag_for_later() -> None:
    record = Simulation(replace(SMALL, fault=ScenarioFault.DRIVER_UNLOADED)).run().last
    unbound = record.devices[0]
    assert (unbound.state, unbound.migrated_flag, unbound.driver) == (DevState.UNBOUND, True, "unloaded")
    record = Simulation(replace(SMALL, fault=ScenarioFault.INTERFACE_DOWN)).run().last
    reopened = record.devices[0]
    assert (reopened.state, reopened.migrated_flag, reopened.driver) == (DevState.READY, False, "running")


def test_back_and_forth_migrations_count_generations_and_swap_hosts() -> None:
    result = Simulation(replace(SMALL, migrations=3)).run()
    assert [record.generation for record in result.migrations] == [1, 2, 3]
    assert [(record.source, record.destination) for record in result.migrations] == [
        ("hostA", "hostB"),
        ("hostB", "hostA"),
        ("hostA", "hostB"),
    ]
    assert all(record.outcome is MigrationOutcome.COMPLETED and record.lost_pages == 0 for record in result.migrations)


def test_the_source_resets_its_functions_after_the_handover() -> None:
    simulation = Simulation(SMALL)
    resets = EventLog(simulation.bus, [EventKind.FUNCTION_RESET])
    simulation.run()
    source_functions = {f"hostA.vf{index}" for index in range(SMALL.vfs)}
    reset_after = {event.data["function"] for event in resets.events if event.data["how"] == "flr"}
    assert source_functions <= reset_after, "VFM-SEC-006: reset before reuse"
    assert all(not function.bus_master for function in simulation.hosts[0].freed_functions)


# ---------------------------------------------------------------------------------------------- review findings


def _quiet(config: SimulationConfig = SMALL) -> SimulationConfig:
    return replace(config, dma_rate=0, cpu_dirty_rate=0)


def test_a_guest_that_never_enabled_the_protocol_migrates_without_a_handshake() -> None:
    """VFM-MIG-001 and spec §2.6: no slot READY and CONTROL.ENABLE clear is a legal start."""
    simulation = Simulation(_quiet())
    for driver in simulation.drivers:
        driver.unload()
    simulation.clock.advance(ms(5))
    bridge = simulation.hosts[0].bridge
    bridge.config_write(bridge.cap + 0x14, 2, 0)  # the guest turns the protocol off
    record = simulation.run().last
    assert (record.outcome, record.reason) == (MigrationOutcome.COMPLETED, MigReason.COMPLETED)


def test_clearing_enable_during_a_migration_withdraws_consent() -> None:
    """VFM-MIG-011: a guest write that clears CONTROL.ENABLE set at START cancels with PROTOCOL_ERROR."""
    simulation = Simulation(_quiet())
    source, destination = simulation.hosts
    migration = source.migrate_to(destination)
    simulation.clock.advance(ms(1))
    bridge = source.bridge
    bridge.config_write(bridge.cap + 0x14, 2, 0)
    assert (migration.record.outcome, migration.record.reason) == (MigrationOutcome.FAILED, MigReason.PROTOCOL_ERROR)


def test_an_unbound_function_that_fails_is_reset_and_does_not_cancel() -> None:
    """Spec §4.2.2 and VFM-ABS-004: no driver, no ERROR, no cancellation; the hypervisor resets it."""
    simulation = Simulation(_quiet())
    simulation.drivers[1].unload()
    simulation.clock.advance(ms(5))
    source, destination = simulation.hosts
    migration = source.migrate_to(destination)
    simulation.clock.advance(ms(1))
    function = source.slot_functions[1]
    resets = function.resets
    source.function_failed(1)
    assert function.resets == resets + 1
    assert not function.failed
    assert migration.record.outcome is None, "the migration goes on"
    simulation.clock.run_while(lambda: not migration.record.ended, ms(60_000))
    assert migration.record.outcome is MigrationOutcome.COMPLETED


def test_outside_a_migration_the_guest_recovers_a_failed_function_by_a_group_reset() -> None:
    """Spec §7.9: the hypervisor leaves ERROR to the guest; its driver asks for the group reset."""
    simulation = Simulation(_quiet())
    log = EventLog(simulation.bus, [EventKind.DRIVER, EventKind.MIG_TRANSITION])
    source = simulation.hosts[0]
    source.function_failed(0)
    simulation.clock.advance(ms(5))
    assert [event.data["action"] for event in log.of(EventKind.DRIVER) if event.data["action"] == "error_recovery"]
    assert source.group_resets == 1, "the guest's Secondary Bus Reset, counted by the hypervisor"
    assert source.bridge.dev_states()[: SMALL.vfs] == [DevState.READY] * SMALL.vfs


def test_a_guest_with_larger_pages_migrates_and_a_finer_tracking_host_refuses_it() -> None:
    """VFM-DIRTY-007 / VFM-VER-007: tracking at 2^PAGE_SHIFT or coarser."""
    record = Simulation(replace(_quiet(), page_shift=13)).run().last
    assert record.outcome is MigrationOutcome.COMPLETED
    fine = replace(SMALL.migration, dirty_tracking_shift=12)
    simulation = Simulation(replace(_quiet(), page_shift=13, migration=fine))
    source, destination = simulation.hosts
    with pytest.raises(MigrationError, match="finer than"):
        source.migrate_to(destination)


def test_no_hot_plug_behind_the_bridge_during_a_migration() -> None:
    """VFM-CANCEL-002."""
    simulation = Simulation(_quiet())
    source, destination = simulation.hosts
    source.migrate_to(destination)
    with pytest.raises(MigrationError, match="VFM-CANCEL-002"):
        source.assign_function(5)


def test_a_conventional_reset_of_the_bridge_cancels_the_migration_first() -> None:
    """VFM-CAP-008."""
    simulation = Simulation(_quiet())
    source, destination = simulation.hosts
    migration = source.migrate_to(destination)
    simulation.clock.advance(ms(1))
    source.reset_bridge()
    assert (migration.record.outcome, migration.record.reason) == (MigrationOutcome.CANCELLED, MigReason.CANCELLED)
    assert source.bridge.mig_state is MigState.IDLE
