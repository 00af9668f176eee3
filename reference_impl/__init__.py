"""reference_impl: the executable meaning of ``spec/``.

The state-machine reference implementation of the roles, driven by a
simulated clock.  It imports :mod:`vfmig_proto` only and keeps no private
copy of a transition rule: every state change is a lookup in
:mod:`vfmig_proto.transitions`, every guest write goes through
:mod:`vfmig_proto.access`'s masks.

One module per role, and the pieces they share:

* :mod:`~reference_impl.bridge`: the migration bridge (type-1 config space, the capability, both state
  machines);
* :mod:`~reference_impl.device`: a virtual function (BME, FLR, its DMA engine);
* :mod:`~reference_impl.driver`: the guest's migration core and VF driver;
* :mod:`~reference_impl.hypervisor`: source and destination orchestration;
* :mod:`~reference_impl.guest`: the guest (vCPUs, tasks, its PCI view);
* :mod:`~reference_impl.memory`: guest RAM as page versions, the dirty log;
* :mod:`~reference_impl.clock` and :mod:`~reference_impl.events`: the simulated clock, the event bus;
* :mod:`~reference_impl.scenario`: wiring, workload, fault injection;
* :mod:`~reference_impl.invariants`: the brief's invariants, checked live;
* :mod:`~reference_impl.report`, :mod:`~reference_impl.snapshots`, :mod:`~reference_impl.units`: results
  as JSON and text, the bridge's config space at chosen points, ``4GiB`` / ``10Gb/s`` / ``300ms``.

A tool author's entry point::

    from reference_impl import Simulation, SimulationConfig
    result = Simulation(SimulationConfig(memory_bytes=1 << 30, vfs=2)).run()
    print(result.last.outcome, result.last.downtime_ns, result.last.lost_pages)
"""

from __future__ import annotations

from reference_impl.bridge import BridgeError, MigrationBridge
from reference_impl.clock import SimClock
from reference_impl.device import VirtualFunction
from reference_impl.driver import DriverConfig, MigrationCore, VfDriver
from reference_impl.events import Event, EventBus, EventKind, EventLog
from reference_impl.guest import Guest
from reference_impl.hypervisor import Hypervisor, MigrationConfig, MigrationOutcome, MigrationRecord
from reference_impl.invariants import InvariantMonitor, Violation
from reference_impl.memory import GuestMemory
from reference_impl.scenario import ScenarioFault, Simulation, SimulationConfig, SimulationResult

__all__ = [
    "BridgeError",
    "DriverConfig",
    "Event",
    "EventBus",
    "EventKind",
    "EventLog",
    "Guest",
    "GuestMemory",
    "Hypervisor",
    "InvariantMonitor",
    "MigrationBridge",
    "MigrationConfig",
    "MigrationCore",
    "MigrationOutcome",
    "MigrationRecord",
    "ScenarioFault",
    "SimClock",
    "Simulation",
    "SimulationConfig",
    "SimulationResult",
    "VfDriver",
    "Violation",
    "VirtualFunction",
]
