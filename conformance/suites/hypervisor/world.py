"""The world the hypervisor suite builds, and the base every part of the suite derives from.

:class:`HypervisorWorld` holds the state the observers, the rules and the scenarios share, and the helpers
they all use (running the world, scopes, armed actions).  The parts are mixins layered on this base: a part
that calls another's methods derives from it (see :mod:`conformance.suites.hypervisor`), and the two hooks the
base itself calls are named at its end.  The world is built by
:meth:`~conformance.suites.hypervisor.assembly.AssembledSuite.build`, above every part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np

from conformance.checks import RequirementViolation
from conformance.suites.common import SimulatedWorld, other_host
from conformance.suites.hypervisor.observers.watched import (
    ObservedBridge,
    WatchedFunction,
)
from conformance.suites.hypervisor.settings import (
    ACK_TIMEOUT_MS,
    MEMORY_PAGES,
    MIGRATION,
    RUN_LIMIT_NS,
    STORM_PAGES,
)
from conformance.suites.hypervisor.watch import Armed, Watch
from reference_impl.bridge import MigrationBridge
from reference_impl.clock import NS_PER_MS, SimClock
from reference_impl.hypervisor import Hypervisor
from reference_impl.memory import GuestMemory
from vfmig_proto.errors import ProtocolError
from vfmig_proto.outcomes import MigrationOutcome
from vfmig_proto.states import MigReason, MigState


def alive(machine: HypervisorWorld) -> bool:
    """The precondition of every rule but one: the world is not broken (see :attr:`HypervisorWorld.dead`)."""
    return not machine.dead


def swarmed(rule: str) -> Callable[[HypervisorWorld], bool]:
    """The precondition of a rule swarm testing may switch off: the world is not broken and the rule is on."""

    def allowed(machine: HypervisorWorld) -> bool:
        return not machine.dead and rule not in machine.swarm_off

    allowed.__name__ = f"swarm_allows_{rule}"
    return allowed


def built_and_alive(machine: HypervisorWorld) -> bool:
    """The world was built and is not broken."""
    return machine.sim is not None and not machine.dead


class HypervisorWorld(SimulatedWorld):
    """The shared state of the hypervisor suite, the world it builds, and helpers every part uses."""

    def __init__(self) -> None:
        super().__init__()
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
        self.triggers: list[tuple[MigState, str, Callable[[], None], int]] = []
        """Actions armed for a MIG_STATE: each happens as the migration enters it, or that many ns into it."""
        self.finale = ""
        """What happens after the last step (one of ``FINALES``)."""
        self.finale_phase = "PRECOPY"
        self.swarm_off: frozenset[str] = frozenset()
        """The rules this example runs without (swarm testing: see ``SWARMED``)."""
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

    def other(self, host: Hypervisor) -> Hypervisor:
        return other_host(self.world, host)

    def in_progress(self) -> Watch | None:
        watch = self.current
        return watch if watch is not None and watch.in_progress else None

    def watch_of(self, bridge: MigrationBridge) -> Watch | None:
        watch = self.current
        return watch if watch is not None and watch.bridge is bridge else None

    def _violation(self, requirement: str, watch: Watch, what: str) -> None:
        """Record that ``watch``'s migration broke ``requirement``: ``what`` happened."""
        self.checks.record(requirement, False, f"migration {watch.number}: {what}")

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

    def _run_until(self, phase: str) -> None:
        """Let the clock run until the migration under way reaches ``phase`` (``"end"``: until it ends)."""
        watch = self.current
        if watch is None or not watch.in_progress:
            return
        target = None if phase == "end" else MigState[phase]

        def waiting() -> bool:
            if watch.ended_ns is not None and (target is not MigState.ARRIVED or watch.handover_ns is None):
                return False
            if target is MigState.ARRIVED:
                return watch.arrived_ns is None
            return target is None or target not in watch.phases

        self._world(lambda: self.clock.run_while(waiting, self.clock.now + RUN_LIMIT_NS))

    def _when(self, at: str, label: str, action: Callable[[], None], late_us: int = 0) -> None:
        """Do ``action`` now, or ``late_us`` after the migration (this one, or the next) enters the MIG_STATE ``at``.

        Late in a phase is where a hypervisor that judges only the phase's entry goes wrong: mid-pause, with some
        slots PAUSED and others not; just before a deadline.  An action whose phase has ended by then still runs
        (its guards look at the world as it is then).
        """
        if at == "now":
            self._world(action)
            self.checks.raise_pending()
        else:
            self.triggers.append((MigState[at], label, action, late_us * 1000))

    def _fire(self, state: MigState) -> None:
        """The migration entered ``state``: the actions armed for it happen just after that step, or later."""
        armed = [trigger for trigger in self.triggers if trigger[0] is state]
        self.triggers = [trigger for trigger in self.triggers if trigger[0] is not state]
        for _, label, action, delay_ns in armed:
            self.clock.schedule(delay_ns, partial(self._fired, action), f"suite: {label}")

    def _fired(self, action: Callable[[], None]) -> None:
        """An armed action whose time came (a guard, not a precondition: it runs on the clock, inside a step)."""
        if not self.dead:
            action()

    # ------------------------------------------------------------------ what the top of the suite provides
    # The two hooks the base itself calls (in scope and handed_over); the observers layered on it define them.

    def after_step(self) -> None:
        """The checks due once the outermost access or host event ends (CancellationObserver)."""
        raise NotImplementedError

    def _handover_checks(self, watch: Watch) -> None:
        """The checks due when the source reaches the handover point (HandoverObserver)."""
        raise NotImplementedError
