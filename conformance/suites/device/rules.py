"""What the environment does to the guest's functions: traffic, time, the guest's own actions, migrations, faults.

The rules do everything the spec lets happen to a function: traffic,
interface and driver changes, MSI-X masking, group resets, migrations,
cancellations, destination failures, device errors, and a bridge that
shows an undefined DEV_STATE for a moment.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.checks import step
from conformance.guest_watch import WatchedBridge
from conformance.suites.common import receive_frames
from conformance.suites.device.observers.resets import ResetObserver
from conformance.suites.device.world import MEMORY_PAGES, PAGE, DeviceWorld
from reference_impl.clock import ms
from vfmig_proto.pci import (
    PCI_BRIDGE_CONTROL,
    PCI_BRIDGE_CTL_BUS_RESET,
    PCI_CAP_ID_MSIX,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
)
from vfmig_proto.states import DevState, MigReason, MigState

_MASKED_NS = ms(0.05)
"""How long the guest's interrupt code keeps a function's MSI-X masked."""

DUE_AS_TIME_PASSES = (
    *("VFM-FN-007", "VFM-DIRTY-002", "VFM-DOWN-001", "VFM-DOWN-002"),
    *("VFM-FLAG-004", "VFM-ERR-007", "VFM-REP-003"),
)
"""Requirements whose checks the observers schedule on the clock (a reset's end, an answer or a bring-up due
later): every step that lets time pass exercises them."""


class EnvironmentRules(ResetObserver):
    """The rules: what the guest, its traffic, the hosts and the hardware do."""

    # ------------------------------------------------------------------ the guest and the traffic

    @precondition(DeviceWorld.guest_running)
    @rule(pages=st.lists(st.integers(0, MEMORY_PAGES // 2), min_size=1, max_size=6))
    @step()
    def cpu_write(self, pages: list[int]) -> None:
        self.world.guest.cpu_write(np.array(pages, dtype=np.int64))

    @rule(slot=st.integers(0, 2), frames=st.integers(1, 6))
    @step("VFM-FN-001", "VFM-FN-004", "VFM-DIRTY-004")
    def traffic(self, slot: int, frames: int) -> None:
        receive_frames(self.world, slot, frames)

    @rule(duration_us=st.integers(1, 60_000))
    @step("VFM-TMO-006", "VFM-DIRTY-003", "VFM-DIRTY-004", "VFM-FN-003", *DUE_AS_TIME_PASSES)
    def time_passes(self, duration_us: int) -> None:
        self.world.clock.advance(duration_us * 1000)

    @rule(
        state=st.sampled_from([MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED, MigState.ARRIVED, MigState.IDLE])
    )
    @step("VFM-TMO-006", "VFM-DIRTY-003", "VFM-DIRTY-004", "VFM-DEV-009", "VFM-FLAG-005", *DUE_AS_TIME_PASSES)
    def run_until(self, state: MigState) -> None:
        """Let time pass until a bridge reaches ``state`` (or half a second has passed)."""
        self._run_until(state)

    @precondition(DeviceWorld.guest_running)
    @rule(slot=st.integers(0, 2))
    @step("VFM-FN-005")
    def guest_masks_interrupts(self, slot: int) -> None:
        """The guest's interrupt code masks the function's MSI-X for a moment while a frame arrives."""
        function = self._function(slot % len(self.world.drivers))
        if function is None:
            return
        capability = function.capability(PCI_CAP_ID_MSIX)
        if capability is None:
            return
        flags = function.config_read(capability + PCI_MSIX_FLAGS, 2)
        if not flags & PCI_MSIX_FLAGS_ENABLE:
            return
        function.config_write(capability + PCI_MSIX_FLAGS, 2, flags | PCI_MSIX_FLAGS_MASKALL)
        function.receive(PAGE)
        self.world.clock.advance(_MASKED_NS)
        function.config_write(capability + PCI_MSIX_FLAGS, 2, flags)

    @precondition(DeviceWorld.guest_running)
    @rule(slot=st.integers(0, 2), up=st.booleans())
    @step("VFM-DOWN-003", "VFM-FLAG-003", "VFM-FLAG-004", "VFM-FLAG-005")
    def interface(self, slot: int, up: bool) -> None:
        driver = self.world.drivers[slot % len(self.world.drivers)]
        watch = self.watch[driver.slot]

        def change() -> None:
            if up:
                if driver.loaded and not driver.up:
                    watch.status_read = False  # an open: DEV_STATUS is read before BME (VFM-FLAG-003)
                driver.open()
            else:
                driver.close()

        if not up:
            self._in_flight(driver.slot)
        self.world.guest.after(0, change, "interface")

    @precondition(DeviceWorld.guest_running)
    @rule(slot=st.integers(0, 2), load=st.booleans())
    @step("VFM-DEV-007", "VFM-ABS-001", "VFM-ABS-002", "VFM-ABS-003")
    def binding(self, slot: int, load: bool) -> None:
        driver = self.world.drivers[slot % len(self.world.drivers)]
        if load:
            self.world.guest.after(0, self._prober(driver), "driver load")
        else:
            self._in_flight(driver.slot)
            self.world.guest.after(0, driver.unload, "driver unload")

    @rule(dice=st.integers(0, 1))
    @step("VFM-FN-006", "VFM-ERR-006", "VFM-ERR-007", "VFM-FLAG-004")
    def guest_group_reset(self, dice: int) -> None:
        """The guest resets the group now (0), or the hypervisor will, while a driver brings its function up (1).

        The second is a race: the next time a driver sets BME answering REINIT_REQ or RESUME_REQ, the
        hypervisor resets the group, the READY that follows is taken as "reinitialised", and only
        DEV_STATUS.RESET tells the driver (spec §7.5.1, §7.9, VFM-ERR-007).
        """
        host = self.guest_host()
        if dice == 1:
            self.reset_race = True
        elif host is not None and self.world.guest.running:
            bridge = host.bridge
            control = bridge.config_read(PCI_BRIDGE_CONTROL, 2)
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control | PCI_BRIDGE_CTL_BUS_RESET)
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)
            self._check_reset_functions(host)

    # ------------------------------------------------------------------ migrations and faults

    @precondition(DeviceWorld.at_rest)
    @rule()
    @step("VFM-DIRTY-001", "VFM-DIRTY-004", "VFM-TMO-006")
    def start_migration(self) -> None:
        self._start_migration()

    @precondition(lambda self: self.sim is not None and self.migrating())
    @rule(dice=st.integers(0, 2))
    @step("VFM-CANCEL-003", "VFM-FN-002")
    def cancel(self, dice: int) -> None:
        host = self.guest_host()
        if dice == 0 and host is not None and host.outgoing is not None:
            host.outgoing.cancel(MigReason.CANCELLED)

    @precondition(lambda self: self.sim is not None and self.migrating())
    @rule()
    @step("VFM-CANCEL-003")
    def destination_fails(self) -> None:
        for host in self.world.hosts:
            if host.incoming is not None:
                host.incoming.fail_on_state = "injected by the suite"

    @rule(slot=st.integers(0, 2), dice=st.integers(0, 3))
    @step()
    def device_error(self, slot: int, dice: int) -> None:
        host = self.guest_host()
        slot %= len(self.world.drivers)
        if dice == 0 and host is not None and slot in host.slot_functions:
            host.function_failed(slot)

    @precondition(lambda self: DeviceWorld.at_rest(self) and DeviceWorld.guest_running(self))
    @rule(slot=st.integers(0, 2), value=st.integers(max(DevState) + 1, 0xFF))
    @step("VFM-VER-005")
    def undefined_dev_state(self, slot: int, value: int) -> None:
        """For one event, the guest reads a DEV_STATE value the spec does not define (a faulty bridge)."""
        host = self.guest_host()
        assert host is not None  # at rest: the guest is on a host
        bridge = host.bridge
        assert isinstance(bridge, WatchedBridge)
        bridge.glitch[slot % len(self.world.drivers)] = value
        bridge.spurious_event()
        self.world.clock.advance(ms(0.2))
        bridge.glitch.clear()
        bridge.spurious_event()
        self.world.clock.advance(ms(0.2))
