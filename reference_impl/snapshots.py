"""The bridge's configuration space at a chosen point: after reset, after boot, or in a migration phase.

What ``vfmig config-dump`` prints, in the format of ``lspci -xxx``, so that
``lspci -F FILE -vvv`` from pciutils can decode it.
"""

from __future__ import annotations

from dataclasses import replace

from reference_impl.bridge import MigrationBridge
from reference_impl.clock import SimClock
from reference_impl.events import Event, EventBus, EventKind
from reference_impl.hypervisor import Hypervisor, MiB
from reference_impl.scenario import ScenarioFault, Simulation, SimulationConfig
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.states import MigState

RESET = "reset"
BOOTED = "booted"
MIGRATION_POINTS = ("PREPARE", "PRECOPY", "PAUSING", "STOPPED", "RESUMING", "ARRIVED", "IDLE")
POINTS = (RESET, BOOTED, *MIGRATION_POINTS)
"""Where a snapshot can be taken: ``reset``, ``booted``, or the moment the bridge enters a MIG_STATE
(``IDLE``: back to IDLE on the destination once the drivers have reinitialised)."""

BRIDGE_TITLE = "00:03.0 PCI bridge: vfmig migration bridge (QEMU pci-bridge 1b36:0001 + migration capability)"


class SnapshotError(ValueError):
    """An unknown snapshot point."""


class _Capture:
    """A bridge observer that keeps the config space at the end of the first step in ``state``."""

    def __init__(self, state: MigState) -> None:
        self.state = state
        self.config: bytes | None = None

    def bridge_stepped(self, bridge: MigrationBridge, cause: str) -> None:
        if self.config is None and bridge.mig_state is self.state:
            self.config = bytes(bridge.config)

    def report_rejected(self, bridge: MigrationBridge, slot: int, report: int, why: str) -> None:
        return

    def secondary_bus_reset_requested(self, bridge: MigrationBridge) -> None:
        return


def bridge_config_at(point: str, *, vfs: int = 2, num_slots: int = 8, seed: int = 0) -> bytes:
    """The bridge's 256 configuration bytes at ``point`` (one of :data:`POINTS`)."""
    if point not in POINTS:
        raise SnapshotError(f"unknown point {point!r}: choose one of {', '.join(POINTS)}")
    if point == RESET:
        return _after_reset(vfs, num_slots)
    config = SimulationConfig(
        memory_bytes=64 * MiB,
        vfs=vfs,
        num_slots=num_slots,
        seed=seed,
        buffers=64,
        cpu_dirty_rate=8 * MiB,
        dma_rate=16 * MiB,
    )
    if point == "RESUMING":
        config = replace(config, fault=ScenarioFault.CANCEL_AFTER_PAUSE)
    simulation = Simulation(config)
    if point == BOOTED:
        return bytes(simulation.hosts[0].bridge.config)
    state = MigState[point]
    capture = _Capture(state)
    simulation.hosts[0].bridge.observers.append(capture)
    destination = simulation.hosts[1]

    def on_arrival(event: Event) -> None:
        if event.data.get("what") == "arrived" and capture.config is None and state is MigState.ARRIVED:
            capture.config = bytes(destination.bridge.config)

    simulation.bus.subscribe(on_arrival, [EventKind.MIGRATION])
    simulation.run()
    if state is MigState.IDLE:
        return bytes(destination.bridge.config)
    if capture.config is None:
        raise SnapshotError(f"the simulated migration never reached {point}")
    return capture.config


def _after_reset(vfs: int, num_slots: int) -> bytes:
    clock = SimClock()
    bus = EventBus(clock)
    host = Hypervisor("host", clock, bus)
    if not 1 <= vfs <= num_slots:
        raise SnapshotError(f"{vfs} functions do not fit in {num_slots} slots")
    bridge = host.create_bridge(CapabilityParams(num_slots=num_slots))
    for slot in range(vfs):
        bridge.functions[slot] = host.new_function()
    bridge.conventional_reset()
    return bytes(bridge.config)
