"""The ``hypervisor`` target: the migration orchestration on the source and on the destination.

The world: two hosts of the implementation under test, a third one whose dirty
tracking is finer than the guest's pages (a destination it must refuse), the
reference bridge, reference functions and drivers, and a 256-page guest whose
functions receive traffic all the time.  The suite plays everyone but the
hypervisor:

* the guest: a storm of CPU writes that keeps pre-copy from converging, driver
  binding and interface changes, a Secondary Bus Reset, the withdrawal of its
  consent, a report the bridge rejects, a Bus Master Enable it must not set
  (on an UNBOUND or PAUSED function, or one under way while the vCPUs stop),
  values written to the bridge that claim the migration completed;
* the devices: a driver that stops answering (at once, or from its next
  PAUSE_REQ), a function whose drain outlasts ``ACK_TIMEOUT_MS``, device
  errors, surprise removal;
* the management layer: migrations (to the other host, or to the one that
  must be refused), cancellations, hot-plug, a conventional reset of the
  bridge (a platform reset, after which the guest sets everything up again);
* the host: a dirty log that loses its entries;
* the destination: a refusal when the final state arrives, or a crash.

Most of these can happen now or be armed for a phase of the migration
(``at``), at its entry or late in it (``late_us``: mid-pause, just before the
deadline); a driver can answer a request just before or just after its
deadline while the guest keeps writing the bridge (``deadline_scenario``);
the world may hold a function no driver binds in the middle or the last slot
of the bridge; each example runs with a random subset of the twists switched
off (swarm testing).  Deadlines are judged when they pass: a phase still under
way at its deadline must end by the deadline's action (a late answer, even
within e, must not complete it), and an action later than e is VFM-TIME-005's.
The ``*_scenario`` rules, and the finale that
:meth:`~conformance.suites.hypervisor.assembly.AssembledSuite.build` draws, run a whole migration with one
known-tricky twist, so that 40 random examples meet each twist several times.

The hypervisor is watched from outside.  The bridge is the reference's,
subclassed so that the suite sees every host event before it takes effect and
every guest access once it has completed, with the hypervisor's reaction (the
suite's observer runs first, before the hypervisor's); the functions report
their resets and accesses; the guest's memory reports every page a
destination receives and every read of the dirty log; the guest reports its
vCPUs and every interrupt of a function injected into it (the function's own
MSI-X message, or one the hypervisor made up); guest code is marked as such,
so that the hypervisor's own accesses to a function stand out.  A function's
DMA mapping (its ``memory``) is the IOMMU's translation, and the memory a
host asks ``make_memory`` for is the granularity of its dirty log.  The guest
finds its functions through the host (``function_at``), as it would on the
secondary bus.  Deadlines are measured on the simulated clock
from the phase start that spec 7.6 defines: an action is due within the
reaction time e (``MigrationConfig.reaction_ns``) and never before its
deadline.

The suite uses what :class:`~conformance.interfaces.hypervisor.HypervisorUnderTest` declares (with the migration handle,
:class:`~conformance.interfaces.hypervisor.MigrationHandle`, and the destination's side,
:class:`~conformance.interfaces.hypervisor.IncomingMigration`); the time a hypervisor measured is read from the handle's
``record`` (``downtime_ns``, ``total_ns``).  What it cannot see is not judged: a function the hypervisor made
other than with the function factory it was given, or a dirty log other than the one of the memory
``make_memory`` made.

The suite is a package, one module per concern: :mod:`~conformance.suites.hypervisor.world` (the world and
the base class), ``observers`` (one mixin per observed aspect, and the watched reference objects that report
to them), :mod:`~conformance.suites.hypervisor.rules` and :mod:`~conformance.suites.hypervisor.management`
(what the guest, the devices, the host and the management layer do),
:mod:`~conformance.suites.hypervisor.scenarios` (whole migrations with one twist, and the end of each example),
and :mod:`~conformance.suites.hypervisor.assembly` (the top layer, which builds the world).  A mixin that
calls another's methods derives from it: timing from dirtying, placement from timing, the config-space
observer from placement, cancellation from the config-space observer, handover from cancellation; the
management rules from the config-space observer, the environment rules from the management rules, the
scenarios from the environment rules.  Hypothesis collects the rules and invariants of every mixin by name,
so the layout does not change what a run does.
"""

from __future__ import annotations

from conformance.suites.hypervisor.assembly import AssembledSuite
from conformance.suites.hypervisor.management import ManagementRules
from conformance.suites.hypervisor.observers.cancellation import CancellationObserver
from conformance.suites.hypervisor.observers.config_space import ConfigSpaceObserver
from conformance.suites.hypervisor.observers.dirtying import DirtyingObserver
from conformance.suites.hypervisor.observers.handover import HandoverObserver
from conformance.suites.hypervisor.observers.interrupts import InterruptObserver
from conformance.suites.hypervisor.observers.placement import PlacementObserver
from conformance.suites.hypervisor.observers.timing import TimingObserver
from conformance.suites.hypervisor.rules import EnvironmentRules
from conformance.suites.hypervisor.scenarios import ScenarioRules
from conformance.suites.hypervisor.settings import CHECKED, WATCHED_THROUGHOUT

__all__ = ["CHECKED", "WATCHED_THROUGHOUT", "HypervisorSuite"]


class HypervisorSuite(
    AssembledSuite,
    ScenarioRules,
    EnvironmentRules,
    ManagementRules,
    HandoverObserver,
    CancellationObserver,
    ConfigSpaceObserver,
    PlacementObserver,
    TimingObserver,
    DirtyingObserver,
    InterruptObserver,
):
    """Random interleavings around one guest's migrations; checks of the hypervisor requirements."""
