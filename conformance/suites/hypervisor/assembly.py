"""The top layer of the hypervisor suite: the world it builds.

The watched objects the world is built from report to observers of every part, so the world is built where
every part is below: :class:`AssembledSuite` derives from the top of each layer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

from hypothesis import strategies as st
from hypothesis.stateful import initialize

from conformance import spec_coverage
from conformance.checks import step
from conformance.suites.common import small_world_config
from conformance.suites.hypervisor.observers.handover import HandoverObserver
from conformance.suites.hypervisor.observers.interrupts import InterruptObserver
from conformance.suites.hypervisor.observers.watched import ObservedBridge, WatchedDevices, WatchedMemory
from conformance.suites.hypervisor.scenarios import ScenarioRules
from conformance.suites.hypervisor.settings import (
    ACK_TIMEOUT_MS,
    BACKGROUND_DMA,
    BUFFERS,
    FINALES,
    MEMORY_PAGES,
    MIGRATION,
    PAGE_SHIFT,
    SPARE_SLOTS,
    SWARMED,
    TWIST_PHASES,
)
from conformance.suites.hypervisor.watch import in_ms
from reference_impl.bridge import MigrationBridge
from reference_impl.events import EventBus, EventKind
from reference_impl.guest import Guest
from reference_impl.hypervisor import Hypervisor
from reference_impl.memory import GuestMemory
from reference_impl.scenario import Simulation
from vfmig_proto.layout import CapabilityParams


class AssembledSuite(ScenarioRules, HandoverObserver, InterruptObserver):
    """Every part of the suite layered together, and the world they watch: what the watched objects report to."""

    @initialize(
        vfs=st.integers(1, 3),
        storm=st.booleans(),
        start=st.booleans(),
        finale=st.sampled_from(FINALES),
        phase=st.sampled_from(TWIST_PHASES),
        spare=st.sampled_from(SPARE_SLOTS),
        swarm_off=st.frozensets(st.sampled_from(SWARMED), max_size=len(SWARMED) // 2),
    )
    @step("VFM-GEN-003", "VFM-DIRTY-007", "VFM-DISC-002", "VFM-DEV-012")
    def build(
        self,
        *,
        vfs: int,
        storm: bool,
        start: bool,
        finale: str,
        phase: str,
        spare: int | None,
        swarm_off: frozenset[str],
    ) -> None:
        """The world.

        ``storm``: the guest's CPUs dirty memory faster than the link sends; ``start``: a migration starts at
        once; ``finale``: after the last step, once every migration has ended, the guest is migrated once more
        (``"migrate"``), or a scenario runs (with slot 0 and its twist in ``phase``), or nothing more happens;
        ``spare``: a slot (the middle or the last of the bridge) that holds a function no driver binds;
        ``swarm_off``: the rules this example runs without (swarm testing).
        """
        config = small_world_config(
            MEMORY_PAGES,
            vfs,
            MIGRATION,
            dma_rate=BACKGROUND_DMA,
            buffers=BUFFERS,
            ack_timeout_ms=ACK_TIMEOUT_MS,
            page_shift=PAGE_SHIFT,
        )
        if self.checks.known <= self.checks.disabled:
            self.dead = True  # every requirement is judged already: nothing left to check, no world to build
            return
        implementation = self.factory()
        devices = WatchedDevices(self)
        self.sim = Simulation(
            config,
            monitor=False,
            devices=devices,
            bridges=self._make_bridge,
            hypervisors=implementation,
            memories=self._make_memory,
        )
        fine = replace(MIGRATION, dirty_tracking_shift=PAGE_SHIFT - 1)
        far = implementation.create_hypervisor(
            "hostC", self.sim.clock, self.sim.bus, fine, functions=devices.create_function, bridges=self._make_bridge
        )
        far.make_memory = self._make_memory
        self.far = cast("Hypervisor", far)
        bus = self.sim.bus
        bus.subscribe(self.on_mig_transition, [EventKind.MIG_TRANSITION])
        bus.subscribe(self.on_dev_transition, [EventKind.DEV_TRANSITION])
        bus.subscribe(self.on_bus_master, [EventKind.BUS_MASTER])
        bus.subscribe(self.on_vcpu, [EventKind.VCPU])
        bus.subscribe(self.on_milestone, [EventKind.MIGRATION])
        self.sim.guest.task_runner = self._as_guest  # every task of guest code runs marked as the guest's
        self._watch_device_interrupts(self.sim.guest)
        self.storm = storm
        self.finale = finale
        self.finale_phase = phase
        self.swarm_off = swarm_off
        if spare is not None:
            self._hot_add(spare)
        self.sim.clock.schedule(MIGRATION.quantum_ns, self._storm, "suite: CPU storm")
        if start:
            self._start(to_far=False)

    def _make_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        bridge = ObservedBridge(bus, params, name, self)
        spec_coverage.watched(bridge)
        self.bridges[name] = bridge
        watch = self.pending or self.current
        if watch is not None and (watch is self.pending or watch.in_progress):
            watch.dest_bridge = bridge
        return bridge

    def _make_memory(self, size_bytes: int, page_shift: int, boot: bool) -> GuestMemory:
        """A host makes its copy of the guest's RAM: its dirty log of that copy tracks pages of 2^page_shift bytes."""
        self.checks.record(
            "VFM-DIRTY-007",
            page_shift >= PAGE_SHIFT,
            f"a host made its copy of the guest's memory at {in_ms(self.clock.now) if self.sim else 'start-up'} with "
            f"pages of 2^{page_shift} bytes: its dirty log would track the guest finer than the bridge's PAGE_SHIFT "
            f"{PAGE_SHIFT}",
        )
        return WatchedMemory(size_bytes, page_shift, boot=boot, suite=self)

    def _watch_device_interrupts(self, guest: Guest) -> None:
        """See every interrupt of a function the hypervisor injects into the guest (VFM-MIG-013, VFM-NOTIF-005)."""
        original = guest.inject_device_interrupt

        def inject(function: str) -> None:
            self.on_device_interrupt(function)
            original(function)

        setattr(guest, "inject_device_interrupt", inject)  # noqa: B010 - an instance attribute shadowing the method
