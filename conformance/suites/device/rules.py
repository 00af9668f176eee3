"""What the environment does to the guest's functions: traffic, time, the guest's own actions, migrations, faults.

The rules do everything the spec lets happen to a function: traffic,
interface and driver changes, MSI-X masking, group resets, migrations,
cancellations, destination failures, device errors, and a bridge that
shows an undefined DEV_STATE for a moment.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conformance.checks import step
from conformance.guest_watch import WatchedBridge
from conformance.suites.common import receive_frames
from conformance.suites.device.observers.resets import ResetObserver
from conformance.suites.device.register_lanes import RegisterLanes
from conformance.suites.device.world import ACK_TIMEOUT_MS, MEMORY_PAGES, PAGE, DeviceWorld
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
from vfmig_proto.transitions import PENDING_REQUEST_STATES

_MASKED_NS = ms(0.05)
"""How long the guest's interrupt code keeps a function's MSI-X masked."""

DUE_AS_TIME_PASSES = (
    *("VFM-FN-007", "VFM-DIRTY-002", "VFM-DOWN-001", "VFM-DOWN-002"),
    *("VFM-FLAG-004", "VFM-ERR-007", "VFM-REP-003"),
)
"""Requirements whose checks the observers schedule on the clock (a reset's end, an answer or a bring-up due
later): every step that lets time pass exercises them."""

PHASES = (MigState.PREPARE, MigState.PRECOPY, MigState.PAUSING, MigState.STOPPED, MigState.RESUMING, MigState.ARRIVED)
"""The phases of a migration in which :meth:`EnvironmentRules.in_phase` acts."""
MOMENTS = ("entry", "driver-working", "late")
"""When in the phase: as the bridge enters it (before any driver has seen it), once a driver has seen the
request and is working on it (busy, or its function's BME cleared by the pause), or a drawn time later."""
PHASE_ACTIONS = (
    "cancel",
    "destination-fails",
    "close",
    "open",
    "unbind",
    "bind",
    "frames",
    "group-reset",
    "device-error",
)
"""What happens at that moment: every host event and guest action the device table answers."""
LATE_US = (1, 2, 5, 10, 20, 40, 80, 150, 400, 1_000, 3_000, 8_000, ACK_TIMEOUT_MS * 1_000)
"""How far into a phase a late action comes, in microseconds: a pause takes tens of microseconds, a
pre-copy tens of milliseconds, and the drivers have ACK_TIMEOUT_MS to answer."""


def swarm(rule_name: str) -> Callable[[DeviceWorld], bool]:
    """The precondition with which swarm testing switches ``rule_name`` off in some examples."""

    def enabled(machine: DeviceWorld) -> bool:
        return machine.enabled(rule_name)

    return enabled


class EnvironmentRules(RegisterLanes, ResetObserver):
    """The rules: what the guest, its traffic, the hosts and the hardware do."""

    # ------------------------------------------------------------------ the guest and the traffic

    @precondition(swarm("cpu_write"))
    @precondition(DeviceWorld.guest_running)
    @rule(pages=st.lists(st.integers(0, MEMORY_PAGES // 2), min_size=1, max_size=6))
    @step()
    def cpu_write(self, pages: list[int]) -> None:
        self.world.guest.cpu_write(np.array(pages, dtype=np.int64))

    @precondition(swarm("traffic"))
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

    @precondition(swarm("guest_masks_interrupts"))
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

    @precondition(swarm("interface"))
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

    @precondition(swarm("binding"))
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

    @precondition(swarm("guest_group_reset"))
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

    @precondition(swarm("cancel"))
    @precondition(lambda self: self.sim is not None and self.migrating())
    @rule(dice=st.integers(0, 2))
    @step("VFM-CANCEL-003", "VFM-FN-002")
    def cancel(self, dice: int) -> None:
        host = self.guest_host()
        if dice == 0 and host is not None and host.outgoing is not None:
            host.outgoing.cancel(MigReason.CANCELLED)

    @precondition(swarm("destination_fails"))
    @precondition(lambda self: self.sim is not None and self.migrating())
    @rule()
    @step("VFM-CANCEL-003")
    def destination_fails(self) -> None:
        for host in self.world.hosts:
            if host.incoming is not None:
                host.incoming.fail_on_state = "injected by the suite"

    @precondition(swarm("device_error"))
    @rule(slot=st.integers(0, 2), dice=st.integers(0, 3))
    @step()
    def device_error(self, slot: int, dice: int) -> None:
        host = self.guest_host()
        slot %= len(self.world.drivers)
        if dice == 0 and host is not None and slot in host.slot_functions:
            host.function_failed(slot)

    @precondition(swarm("undefined_dev_state"))
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

    # ------------------------------------------------------------------ actions at any moment of a phase

    @precondition(swarm("in_phase"))
    @precondition(DeviceWorld.guest_running)
    @rule(
        phase=st.sampled_from(PHASES),
        moment=st.sampled_from(MOMENTS),
        late_us=st.sampled_from(LATE_US),
        jitter_ns=st.integers(0, 999),
        action=st.sampled_from(PHASE_ACTIONS),
        slot=st.integers(0, 2),
    )
    @step(
        "VFM-CANCEL-003",
        "VFM-FN-002",
        "VFM-DIRTY-003",
        "VFM-DIRTY-004",
        "VFM-DOWN-001",
        "VFM-DOWN-002",
        "VFM-ABS-002",
        "VFM-ABS-003",
        "VFM-DEV-009",
        "VFM-TMO-006",
        *DUE_AS_TIME_PASSES,
    )
    def in_phase(self, *, phase: MigState, moment: str, late_us: int, jitter_ns: int, action: str, slot: int) -> None:
        """``action`` comes at ``moment`` of ``phase``: at its entry, while a driver works on the request it
        brought (mid-pause: after the driver cleared BME and before it answered), or late in it.

        A migration is started if none is under way.  The phase may not come (a cancelled migration has no
        STOPPED); then the action comes wherever the migration is.
        """
        if DeviceWorld.at_rest(self):
            self._start_migration()
        self._run_until_phase(phase)
        if moment == "driver-working":
            self._run_until_a_driver_works(ms(ACK_TIMEOUT_MS))
        elif moment == "late":
            self._run_in_phase(phase, late_us * 1_000 + jitter_ns)
        slot %= len(self.world.drivers)
        self.phase_cells.add((self.dev_state(slot), action))
        self._act(action, slot)
        self.world.clock.advance(ms(1))

    def _run_until_phase(self, phase: MigState) -> None:
        """Let time pass until a bridge enters ``phase``, or the migration ends without it (a migration that
        completes has no RESUMING; one cancelled has no STOPPED)."""
        world = self.world

        def waiting() -> bool:
            reached = any(h.bridge_or_none is not None and h.bridge.mig_state is phase for h in world.hosts)
            under_way = any(h.outgoing is not None or h.incoming is not None for h in world.hosts)
            return not reached and under_way

        world.clock.run_while(waiting, world.clock.now + ms(500))

    def _run_until_a_driver_works(self, limit_ns: int) -> None:
        """Let time pass until a driver has seen a request and works on it, or ``limit_ns`` has passed."""
        world = self.world

        def working() -> bool:
            for slot, driver in enumerate(world.drivers):
                state = self.dev_state(slot)
                if state not in PENDING_REQUEST_STATES:
                    continue
                function = self._function(slot)
                pausing = state is DevState.PAUSE_REQ and self.watch[slot].running_at_pause
                if driver.busy or (pausing and function is not None and not function.bus_master):
                    return True
            return False

        world.clock.run_while(lambda: not working(), world.clock.now + limit_ns)

    def _run_in_phase(self, phase: MigState, delay_ns: int) -> None:
        """Let ``delay_ns`` pass, or less if the migration leaves ``phase`` first (the action then comes at its
        last moment rather than in another phase)."""
        world = self.world

        def in_phase() -> bool:
            return any(host.bridge_or_none is not None and host.bridge.mig_state is phase for host in world.hosts)

        world.clock.run_while(in_phase, world.clock.now + delay_ns)

    def _act(self, action: str, slot: int) -> None:
        world = self.world
        host = self.guest_host()
        driver = world.drivers[slot]
        if action == "cancel":
            outgoing = next((h.outgoing for h in world.hosts if h.outgoing is not None), None)
            if outgoing is not None:
                outgoing.cancel(MigReason.CANCELLED)
        elif action == "destination-fails":
            for other in world.hosts:
                if other.incoming is not None:
                    other.incoming.fail_on_state = "injected by the suite"
        elif action in ("close", "open"):
            self._in_flight(slot)
            world.guest.after(0, driver.close if action == "close" else driver.open, "interface")
        elif action == "unbind":
            self._in_flight(slot)
            world.guest.after(0, driver.unload, "driver unload")
        elif action == "bind":
            world.guest.after(0, self._prober(driver), "driver load")
        elif action == "frames":
            receive_frames(world, slot, 1 + self.traffic_shape.frame_pages)
        elif action == "group-reset" and host is not None and world.guest.running:
            bridge = host.bridge
            control = bridge.config_read(PCI_BRIDGE_CONTROL, 2)
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control | PCI_BRIDGE_CTL_BUS_RESET)
            bridge.config_write(PCI_BRIDGE_CONTROL, 2, control & ~PCI_BRIDGE_CTL_BUS_RESET)
            self._check_reset_functions(host)
        elif action == "device-error" and host is not None and slot in host.slot_functions:
            host.function_failed(slot)
