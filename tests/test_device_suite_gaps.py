"""Proofs that the device suite closes the classes of blind spots of issue 12, one small faulty variant each.

Each variant is a subclass of the reference (here, not in the catalogue) that
the suite before issue 12 let through: it fails only when the suite acts in the
middle of a pause, writes a register through another byte lane, looks at what a
frame makes a function do right after BME is cleared, or judges each migration
as it ends.  Each test plays the few steps that show the fault on the suite's
machine and asserts the requirement it breaks; the same steps on the reference
find nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conformance.checks import ConformanceMachine
from conformance.replay import machine_for
from conformance.suites.device.register_lanes import BUS_MASTER, FUNCTION_MASK, bit_byte, lane, lane_value, writable
from conformance.suites.device.world import BACKGROUND_DMA, SWARM_RULES
from reference_impl.clock import ms
from reference_impl.device import MSIX_CAP_OFFSET, VirtualFunction, buffer_pages
from reference_impl.driver import DriverConfig, VfDriver
from reference_impl.factories import CONFORMANCE_BUFFERS, ReferenceDevice
from vfmig_proto.headers import function_masks
from vfmig_proto.pci import PCI_COMMAND, PCI_MSIX_FLAGS
from vfmig_proto.states import DriverReport, MigState

REFERENCE = "reference_impl.factories:device"

# ---------------------------------------------------------------------------------------------- faulty variants


class StopsAtNextDescriptor(VirtualFunction):
    """Checks BME only every 20 µs (at a descriptor boundary): frames right after the clear are still written."""

    def can_dma(self) -> bool:
        stopping = self.clock.now - self._bme_cleared_at < 20_000
        return (self.bus_master or stopping) and self.queues_enabled and not self.failed and self.memory is not None


class MaskByteIgnored(VirtualFunction):
    """Applies a write to MSI-X Message Control only when it starts at the register (a 2-byte access)."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        flags = MSIX_CAP_OFFSET + PCI_MSIX_FLAGS
        if offset < flags + 2 and offset + width > flags and offset != flags:
            return
        super().config_write(offset, width, value)


class CommandDwordIgnored(VirtualFunction):
    """Takes a 4-byte write at Command for a write of Status alone."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        if offset == PCI_COMMAND and width == 4:
            return
        super().config_write(offset, width, value)


class NotBusyWhileDraining(VfDriver):
    """Lets the core run another sequence while it waits for DMA to drain: a RESUME_REQ that comes mid-pause
    finds a driver that has cleared BME but not yet marked itself paused, and READY leaves the function stopped."""

    def _wait_for_drain(self, function: VirtualFunction, then: object) -> None:
        super()._wait_for_drain(function, then)
        self.busy = False


class EverySecondReinitForgotten(VfDriver):
    """Leaks a queue at each reinitialisation and cannot program the function every second time (it still
    reports READY); the next migration brings it back, so the end of a run may find it working."""

    reinits = 0

    def after_migration_reinit(self) -> None:
        type(self).reinits += 1
        if type(self).reinits % 2 or not self.up:
            super().after_migration_reinit()
            return
        self.set_dirtying(False)
        self.configured = True  # it believes so: the queue it would have used is the one it leaked
        self.paused = False
        self.core.report(self.slot, DriverReport.READY)


class HandsBuffersUp(VfDriver):
    """A zero-copy driver: it hands each completed buffer up to the guest's stack and posts it again only when
    the stack gives it back; it dirties the completed pages first (conformant)."""

    def poll(self) -> None:
        function = self.function
        hand_up = getattr(self.guest, "hand_up", None)
        if hand_up is None or not self.configured or function is None or function.rx is None:
            super().poll()
            return
        completed = function.mmio_take_completions()
        if not completed:
            return
        ranges = self.completion_ranges(function.rx, completed)
        if self.dirtying and self.config.dirty_completions:
            self.dirty_pages(ranges, "completion")
        rx, count = function.rx, sum(stop - start for start, stop in completed)
        pages = [page for start, stop in buffer_pages(rx, completed) for page in range(start, stop)]

        def give_back() -> None:
            if self.configured and self.function is function and function.rx is rx:
                self.repost(function, count)

        hand_up(pages, give_back)


class HandsUpBeforeDirtying(HandsBuffersUp):
    """Dirties at pause only (every mapped page), never at a completion: data it handed up in the window was read
    by the guest's software before it was dirtied, which no PAUSED report finds."""

    def poll(self) -> None:
        dirtying, self.dirtying = self.dirtying, False
        try:
            super().poll()
        finally:
            self.dirtying = dirtying


class _Device(ReferenceDevice):
    """The reference device with the function or the driver class of a variant."""

    function_class: type[VirtualFunction] = VirtualFunction
    driver_class: type[VfDriver] = VfDriver

    def create_function(self, name: str, clock: Any, bus: Any, identity: Any) -> VirtualFunction:
        return self.function_class(name, clock, bus, identity, self.timing)

    def create_driver(self, guest: Any, core: Any, slot: int, devfn: int, allocator: Any) -> VfDriver:
        return self.driver_class(guest, core, slot, devfn, allocator, config=self.driver_config)


def _variant(**classes: type[Any]) -> _Device:
    device = _Device(driver_config=DriverConfig(buffers=CONFORMANCE_BUFFERS))
    for name, cls in classes.items():
        object.__setattr__(device, name, cls)
    return device


def stops_at_next_descriptor() -> _Device:
    return _variant(function_class=StopsAtNextDescriptor)


def mask_byte_ignored() -> _Device:
    return _variant(function_class=MaskByteIgnored)


def command_dword_ignored() -> _Device:
    return _variant(function_class=CommandDwordIgnored)


def not_busy_while_draining() -> _Device:
    return _variant(driver_class=NotBusyWhileDraining)


def hands_buffers_up() -> _Device:
    return _variant(driver_class=HandsBuffersUp)


def hands_up_before_dirtying() -> _Device:
    return _variant(driver_class=HandsUpBeforeDirtying)


def every_second_reinit_forgotten() -> _Device:
    EverySecondReinitForgotten.reinits = 0
    return _variant(driver_class=EverySecondReinitForgotten)


# ---------------------------------------------------------------------------------------------- helpers


def _machine(implementation: str) -> Iterator[Any]:
    machine: Any = machine_for("device", implementation)()
    machine.build(
        vfs=1,
        reserved_ones=False,
        burst=(12, 1_000, 1_000),
        frame_pages=1,
        background=BACKGROUND_DMA,
        consume=(5_000, 10_000),
        swarm=frozenset(SWARM_RULES),
    )
    yield machine


def _found(machine: ConformanceMachine) -> set[str]:
    """The requirements whose checks failed so far (kept or raised), the machine's findings drained."""
    found = {requirement for requirement, _ in machine.checks.pending}
    machine.checks.pending.clear()
    return found


def _play(implementation: str, steps: Any) -> set[str]:
    machine = next(_machine(implementation))
    try:
        steps(machine)
    except AssertionError as violation:  # a check that raises at once
        return {str(violation).split(":")[0], *_found(machine)}
    return _found(machine)


# ---------------------------------------------------------------------------------------------- the proofs


def _lanes_bme(machine: Any) -> None:
    machine.time_passes(duration_us=3_000)
    machine.register_lanes(slot=0, bus_master=True, set_width=2, clear_width=2)


def test_dma_initiated_after_bme_is_cleared_is_not_excused_by_the_posted_write_grace() -> None:
    """Generation and observation: a frame that arrives right after BME is cleared must fill nothing."""
    assert "VFM-FN-001" in _play(f"{__name__}:stops_at_next_descriptor", _lanes_bme)
    assert _play(REFERENCE, _lanes_bme) == set()


def _lanes_mask(machine: Any) -> None:
    machine.time_passes(duration_us=3_000)
    machine.register_lanes(slot=0, bus_master=False, set_width=1, clear_width=1)


def test_a_function_mask_set_by_a_one_byte_write_is_honoured() -> None:
    assert "VFM-FN-005" in _play(f"{__name__}:mask_byte_ignored", _lanes_mask)
    assert _play(REFERENCE, _lanes_mask) == set()


def _lanes_dword(machine: Any) -> None:
    machine.time_passes(duration_us=3_000)
    machine.register_lanes(slot=0, bus_master=True, set_width=2, clear_width=4)


def test_bme_cleared_by_a_dword_write_that_also_covers_status_stops_dma() -> None:
    assert "VFM-FN-001" in _play(f"{__name__}:command_dword_ignored", _lanes_dword)
    assert _play(REFERENCE, _lanes_dword) == set()


def _cancel_mid_pause(machine: Any) -> None:
    machine.time_passes(duration_us=3_000)
    machine.in_phase(phase=MigState.PAUSING, moment="driver-working", late_us=1, jitter_ns=0, action="cancel", slot=0)
    machine.time_passes(duration_us=20_000)


def test_a_cancellation_while_the_driver_drains_its_function_is_met() -> None:
    """Generation: cancel once the driver has seen PAUSE_REQ and is working on it, not only at its entry."""
    assert "VFM-CANCEL-003" in _play(f"{__name__}:not_busy_while_draining", _cancel_mid_pause)
    assert _play(REFERENCE, _cancel_mid_pause) == set()


def _three_migrations(machine: Any) -> None:
    for _ in range(3):
        machine.time_passes(duration_us=3_000)
        machine.start_migration()
        machine.run_until(state=MigState.IDLE)
        machine.each_migration_judged()
        machine.time_passes(duration_us=20_000)


def test_a_fault_of_the_second_migration_is_judged_when_it_ends_not_at_teardown() -> None:
    """Repeated migrations: the third migration brings the function back, so only a judgement at each
    migration's end finds what the second left broken."""
    found = _play(f"{__name__}:every_second_reinit_forgotten", _three_migrations)
    assert found & {"VFM-DEV-009", "VFM-FN-002"}
    assert _play(REFERENCE, _three_migrations) == set()


def _traffic_through_a_migration(machine: Any) -> None:
    machine.time_passes(duration_us=3_000)
    machine.start_migration()
    for _ in range(6):
        machine.traffic(slot=0, frames=3)
        machine.time_passes(duration_us=2_000)
    machine.run_until(state=MigState.IDLE)
    machine.time_passes(duration_us=20_000)


def test_data_handed_up_to_the_guest_is_dirtied_before_the_guest_reads_it() -> None:
    """Observation: the guest's stack reads what a driver hands up; a page written in the dirtying window and
    read undirtied breaks VFM-DIRTY-001 even though the pause dirties every page afterwards."""
    assert "VFM-DIRTY-001" in _play(f"{__name__}:hands_up_before_dirtying", _traffic_through_a_migration)
    assert _play(f"{__name__}:hands_buffers_up", _traffic_through_a_migration) == set()
    assert _play(REFERENCE, _traffic_through_a_migration) == set()


# ---------------------------------------------------------------------------------------------- the lane arithmetic


def test_the_targets_are_rw_bits_by_the_protocol_data() -> None:
    assert writable(BUS_MASTER)
    assert writable(FUNCTION_MASK)
    assert bit_byte(FUNCTION_MASK) == (1, 0x40)


@pytest.mark.parametrize("width", [1, 2, 4])
def test_every_lane_covers_the_target_byte_and_is_naturally_aligned(width: int) -> None:
    for byte in range(0x40, 0x80):
        start = lane(byte, width)
        assert start % width == 0
        assert start <= byte < start + width


def test_a_lane_write_clears_only_its_bit_and_writes_rw1c_bits_as_zero() -> None:
    # Command 0x0006 (memory, master), Status 0xF910: every error bit set, Capabilities List set.
    read = 0xF910_0006
    cleared = lane_value(read, PCI_COMMAND, 4, PCI_COMMAND, target=BUS_MASTER, on=False)
    assert cleared & 0xFFFF == 0x0002
    _, w1cmask = function_masks(64 * 1024)
    status_w1c = int.from_bytes(w1cmask[PCI_COMMAND + 2 : PCI_COMMAND + 4], "little")
    assert cleared >> 16 == 0xF910 & ~status_w1c, "RW1C bits (as vfmig_proto lays them out) are written as 0"


def test_the_suite_steps_through_a_whole_migration_on_the_reference() -> None:
    machine = next(_machine(REFERENCE))
    machine.start_migration()
    machine.run_until(state=MigState.IDLE)
    machine.world.clock.advance(ms(30))
    assert machine.records[-1].ended
    assert _found(machine) == set()
