"""The world the hypervisor suite builds, and the base every part of the suite derives from.

:class:`HypervisorWorld` holds the state the observers, the rules and the scenarios share, builds the world
(:meth:`~HypervisorWorld.build`) and names, at its end, the methods one part calls and another provides: the
parts are mixins of this one base, composed into :class:`~conformance.suites.hypervisor.HypervisorSuite`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import cast

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import initialize

from conformance.checks import ConformanceMachine, RequirementViolation, step
from conformance.suites.hypervisor.observers.watched import (
    ObservedBridge,
    WatchedDevices,
    WatchedFunction,
    WatchedMemory,
)
from conformance.suites.hypervisor.settings import (
    ACK_TIMEOUT_MS,
    BACKGROUND_DMA,
    BUFFERS,
    FINALES,
    MEMORY_PAGES,
    MIGRATION,
    PAGE,
    PAGE_SHIFT,
    STORM_PAGES,
    TWIST_PHASES,
)
from conformance.suites.hypervisor.watch import Armed, Watch, in_ms
from reference_impl.bridge import MigrationBridge
from reference_impl.clock import NS_PER_MS, SimClock
from reference_impl.events import Event, EventBus, EventKind
from reference_impl.guest import Guest
from reference_impl.hypervisor import Hypervisor
from reference_impl.memory import GuestMemory, Pages
from reference_impl.scenario import Simulation, SimulationConfig
from vfmig_proto.errors import ProtocolError
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.outcomes import MigrationOutcome
from vfmig_proto.states import DevEvent, MigEvent, MigReason, MigState


def alive(machine: HypervisorWorld) -> bool:
    """The precondition of every rule but one: the world is not broken (see :attr:`HypervisorWorld.dead`)."""
    return not machine.dead


def built_and_alive(machine: HypervisorWorld) -> bool:
    """The world was built and is not broken."""
    return machine.sim is not None and not machine.dead


class HypervisorWorld(ConformanceMachine):
    """The shared state of the hypervisor suite, the world it builds, and helpers every part uses."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        """The world: two hosts of the implementation, the reference bridge, functions and drivers, the guest."""
        self.far: Hypervisor | None = None
        """A host that tracks dirty memory in 2 KiB pieces: it cannot take a guest with 4 KiB pages."""
        self.watches: list[Watch] = []
        """Every migration started, in order (the last is ``current``)."""
        self.pending: Watch | None = None
        """The migration the management layer is starting, until the source's bridge has taken START."""
        self.bridges: dict[str, ObservedBridge] = {}
        """Every bridge a host made, by name."""
        self.functions: dict[str, WatchedFunction] = {}
        """Every function a host made, by name."""
        self.depth = 0
        """How many accesses or host events are under way (:meth:`scope`)."""
        self.guest_depth = 0
        """Above 0 while guest code runs: an access then is the guest's, not the hypervisor's."""
        self.protocol_pending: list[tuple[Watch, str, int]] = []
        """Conditions that call for a CANCEL with PROTOCOL_ERROR, arisen in the step under way: due before it ends."""
        self.storm = False
        """The guest's CPUs dirty memory faster than the link sends."""
        self.storm_tick = 0
        self.saved_consent: dict[str, int] = {}
        """The bits of each consent field the guest cleared, to set them again."""
        self.armed = Armed()
        self.triggers: list[tuple[MigState, str, Callable[[], None]]] = []
        """Actions armed for a MIG_STATE: each happens as the migration enters it."""
        self.finale = ""
        """What happens after the last step (one of ``FINALES``)."""
        self.finale_phase = "PRECOPY"
        self.dead = False
        """The world is broken (a bridge refused an event, the guest runs on two hosts) and the finding reported:
        nothing more in it can be checked, so no rule but ``time_passes`` is drawn (:func:`alive`)."""
        self.resetting: MigrationBridge | None = None
        """The bridge whose conventional reset the suite asked for, while the hypervisor carries it out."""
        self.reset_state = MigState.IDLE
        """The bridge's MIG_STATE when the suite asked for the conventional reset."""
        self.reset_cancel: MigReason | None = None
        """The MIG_REASON of the first CANCEL between the request of a conventional reset and its effect."""

    @property
    def world(self) -> Simulation:
        assert self.sim is not None, "the world is built first"
        return self.sim

    @property
    def clock(self) -> SimClock:
        return self.world.clock

    @property
    def current(self) -> Watch | None:
        return self.watches[-1] if self.watches else None

    @property
    def ack_ns(self) -> int:
        return ACK_TIMEOUT_MS * NS_PER_MS

    @property
    def e(self) -> int:
        return MIGRATION.reaction_ns

    def guest_host(self) -> Hypervisor | None:
        return next((host for host in self.world.hosts if host.guest is self.world.guest), None)

    def other(self, host: Hypervisor) -> Hypervisor:
        first, second = self.world.hosts
        return second if host is first else first

    def in_progress(self) -> Watch | None:
        watch = self.current
        return watch if watch is not None and watch.in_progress else None

    def watch_of(self, bridge: MigrationBridge) -> Watch | None:
        watch = self.current
        return watch if watch is not None and watch.bridge is bridge else None

    def _schedule(self, at_ns: int, check: Callable[[], None], label: str) -> None:
        self.clock.schedule_at(max(at_ns, self.clock.now), check, f"suite: {label}")

    def _guest_memory(self) -> GuestMemory | None:
        """The guest's memory on the host where it runs now (None while it is between hosts)."""
        try:
            return self.world.guest.memory
        except RuntimeError:
            return None

    def _as_guest(self, action: Callable[[], None]) -> None:
        """Run ``action`` as guest code, so that the hypervisor's own accesses stand out."""
        self.guest_depth += 1
        try:
            action()
        finally:
            self.guest_depth -= 1

    def _world(self, action: Callable[[], object]) -> None:
        """Run ``action``; a finding recorded inside the implementation's stack comes out first."""
        if self.dead:
            return  # (a helper: a step may kill the world half-way, and its later actions must not run)
        try:
            action()
        except RequirementViolation:
            raise
        except ProtocolError as error:
            self.checks.raise_pending()
            if not self.dead:  # (dead already: the guest's write that the bridge refused is judged)
                message = f"the bridge refused a host event the hypervisor caused: {error}"
                self.checks.that("VFM-DEV-012", False, message)
            self.dead = True  # the requirement is already judged; nothing more can be checked in this world
        except Exception:
            self.checks.raise_pending()
            if not self.dead:
                raise  # (in a dead world the error is a consequence of what killed it, reported already)

    @contextmanager
    def scope(self) -> Iterator[None]:
        """One access or host event; checks that need the hypervisor's reaction run when the outermost ends."""
        self.depth += 1
        saved = self.guest_depth
        try:
            yield
        finally:
            self.depth -= 1
            self.guest_depth = saved
        if self.depth == 0:
            self.after_step()

    def _guest_bridge(self) -> MigrationBridge | None:
        """The bridge as the guest reaches it, if the guest runs (guest code needs running vCPUs)."""
        host = self.guest_host()
        if host is None or not self.world.guest.running:
            return None
        return host.bridge_or_none

    def handed_over(self, watch: Watch) -> bool:
        """Whether the source has reached the handover point (its record says so, or it announced it)."""
        if watch.handover_ns is None and watch.handle is not None:
            record = getattr(watch.handle, "record", None)
            if record is not None and record.outcome is MigrationOutcome.COMPLETED:
                watch.handover_ns = self.clock.now
                self._handover_checks(watch)
        return watch.handover_ns is not None

    @initialize(
        vfs=st.integers(1, 3),
        storm=st.booleans(),
        start=st.booleans(),
        finale=st.sampled_from(FINALES),
        phase=st.sampled_from(TWIST_PHASES),
    )
    @step("VFM-GEN-003", "VFM-DIRTY-007", "VFM-DISC-002", "VFM-DEV-012")
    def build(self, vfs: int, storm: bool, start: bool, finale: str, phase: str) -> None:
        """The world.

        ``storm``: the guest's CPUs dirty memory faster than the link sends; ``start``: a migration starts at
        once; ``finale``: after the last step, once every migration has ended, the guest is migrated once more
        (``"migrate"``), or a scenario runs (with slot 0 and its twist in ``phase``), or nothing more happens.
        """
        config = SimulationConfig(
            memory_bytes=MEMORY_PAGES * PAGE,
            vfs=vfs,
            dma_rate=BACKGROUND_DMA,
            cpu_dirty_rate=0,
            migration=MIGRATION,
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
        self.sim.clock.schedule(MIGRATION.quantum_ns, self._storm, "suite: CPU storm")
        if start:
            self._start(to_far=False)

    def _make_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        bridge = ObservedBridge(bus, params, name, self)
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

    def _storm(self) -> None:
        """The CPU storm: more dirty pages per millisecond than the link sends."""
        clock = self.clock
        clock.schedule(MIGRATION.quantum_ns, self._storm, "suite: CPU storm")
        guest = self.world.guest
        if not self.storm or not guest.running or self.guest_host() is None:
            return
        self.storm_tick += 1
        first = self.storm_tick * STORM_PAGES
        pages = (np.arange(first, first + STORM_PAGES, dtype=np.int64) * 97) % MEMORY_PAGES
        self._as_guest(partial(guest.cpu_write, pages))

    # ------------------------------------------------------------------ what the mixins provide
    # One part calls these and another defines them; HypervisorSuite composes every definition.

    # DirtyingObserver

    def _check_confined(self, function: WatchedFunction, what: str) -> None:
        raise NotImplementedError

    def _check_memory_kept(self, watch: Watch, bridge: MigrationBridge, memory: GuestMemory) -> None:
        raise NotImplementedError

    def _check_no_lost_write(self, watch: Watch, copy: GuestMemory, when: str) -> None:
        raise NotImplementedError

    def _check_nothing_left_out(self, watch: Watch) -> None:
        raise NotImplementedError

    def _check_sent_in_pausing(self, watch: Watch, now: int) -> None:
        raise NotImplementedError

    def before_request_pause(self, bridge: MigrationBridge) -> None:
        raise NotImplementedError

    def function_dma(self, function: WatchedFunction) -> None:
        raise NotImplementedError

    def on_harvest(self, memory: GuestMemory) -> None:
        raise NotImplementedError

    def on_receive(self, memory: GuestMemory, pages: int, which: Pages | slice | None = None) -> None:
        raise NotImplementedError

    # TimingObserver

    def _check_bound(self, watch: Watch, bound: int) -> None:
        raise NotImplementedError

    def _check_dirty_request(self, watch: Watch, slot: int, since: int) -> None:
        raise NotImplementedError

    def _check_measured_downtime(self, watch: Watch) -> None:
        raise NotImplementedError

    def _ended(self, watch: Watch, now: int) -> None:
        raise NotImplementedError

    def _phase_left(self, watch: Watch, state: MigState, now: int) -> None:
        raise NotImplementedError

    def _resuming_from(self, watch: Watch, start: int) -> None:
        raise NotImplementedError

    def on_mig_transition(self, event: Event) -> None:
        raise NotImplementedError

    # CancellationObserver

    @staticmethod
    def _bme_in_stopped(watch: Watch) -> bool:
        raise NotImplementedError

    def after_step(self) -> None:
        raise NotImplementedError

    def before_cancel(self, bridge: MigrationBridge, reason: MigReason) -> None:
        raise NotImplementedError

    def group_reset_refused(self, bridge: MigrationBridge, error: ProtocolError) -> None:
        raise NotImplementedError

    def on_bridge_stepped(self, bridge: MigrationBridge, cause: str) -> None:
        raise NotImplementedError

    def on_bus_master(self, event: Event) -> None:
        raise NotImplementedError

    def on_dev_transition(self, event: Event) -> None:
        raise NotImplementedError

    def on_protocol_condition(self, bridge: MigrationBridge, what: str) -> None:
        raise NotImplementedError

    # ConfigSpaceObserver

    def _snapshot_at_stop(self, watch: Watch, bridge: MigrationBridge) -> None:
        raise NotImplementedError

    def _start_problem(self, bridge: MigrationBridge) -> str | None:
        raise NotImplementedError

    def before_arrive(self, bridge: ObservedBridge) -> None:
        raise NotImplementedError

    def before_capability_change(self, bridge: MigrationBridge) -> None:
        raise NotImplementedError

    def before_start(self, bridge: MigrationBridge) -> None:
        raise NotImplementedError

    def guest_access(self, bridge: MigrationBridge, what: str) -> None:
        raise NotImplementedError

    def host_event(self, bridge: MigrationBridge, event: MigEvent) -> None:
        raise NotImplementedError

    def slot_event(self, bridge: MigrationBridge, slot: int, event: DevEvent) -> None:
        raise NotImplementedError

    # InterruptObserver

    def function_access(self, function: WatchedFunction, what: str, *, mailbox: bool = False) -> None:
        raise NotImplementedError

    def function_written(self, function: WatchedFunction) -> None:
        raise NotImplementedError

    def on_device_interrupt(self, name: str) -> None:
        raise NotImplementedError

    # PlacementObserver

    def _check_placed(self, watch: Watch, bridge: MigrationBridge, slot: int) -> None:
        raise NotImplementedError

    def _check_placement(self, host: Hypervisor, when: str, *, every: bool = False) -> None:
        raise NotImplementedError

    def _check_start_placement(self, watch: Watch, bridge: MigrationBridge, memory: GuestMemory) -> None:
        raise NotImplementedError

    def after_conventional_reset(self, bridge: MigrationBridge) -> None:
        raise NotImplementedError

    def before_conventional_reset(self, bridge: MigrationBridge) -> None:
        raise NotImplementedError

    def before_group_reset(self, bridge: MigrationBridge) -> None:
        raise NotImplementedError

    def before_hot_add(self, bridge: MigrationBridge, slot: int) -> None:
        raise NotImplementedError

    def on_function_created(self, function: WatchedFunction) -> None:
        raise NotImplementedError

    def on_function_reset(self, function: WatchedFunction, how: str) -> None:
        raise NotImplementedError

    # HandoverObserver

    def _handover_checks(self, watch: Watch) -> None:
        raise NotImplementedError

    def on_milestone(self, event: Event) -> None:
        raise NotImplementedError

    def on_vcpu(self, event: Event) -> None:
        raise NotImplementedError

    # EnvironmentRules

    def _fire(self, state: MigState) -> None:
        raise NotImplementedError

    def read_fails(self, watch: Watch, memory: GuestMemory) -> bool:
        raise NotImplementedError

    # ManagementRules

    def _start(self, to_far: bool) -> None:
        raise NotImplementedError
