"""What the device and hypervisor suites (and the reference's own stateful test) share: the small world each
builds, a guest of a few hundred pages on two hosts whose migrations take tens of milliseconds of simulated
time, and the base of a suite over that world."""

from __future__ import annotations

from hypothesis.stateful import invariant

from conformance.checks import ConformanceMachine, step
from reference_impl.clock import ms
from reference_impl.hypervisor import Hypervisor, MigrationConfig
from reference_impl.scenario import Simulation, SimulationConfig

MiB = 1024 * 1024
PAGE = 4096
"""The guest's pages, and the size of one frame a function receives."""


def brisk_migration(bandwidth_mib: int, *, precopy_ms: int = 300, stop_copy_ms: int = 200) -> MigrationConfig:
    """The management layer of a small world: a link of ``bandwidth_mib`` MiB/s with 0.2 ms of latency, a
    downtime budget of 5 ms, limits of ``precopy_ms`` on pre-copy and ``stop_copy_ms`` on stop-and-copy, and
    a 1 ms quantum, so that deadlines of a few milliseconds are met to the quantum."""
    return MigrationConfig(
        bandwidth=bandwidth_mib * MiB,
        downtime_limit_ns=ms(5),
        link_latency_ns=ms(0.2),
        precopy_limit_ns=ms(precopy_ms),
        stop_copy_limit_ns=ms(stop_copy_ms),
        quantum_ns=ms(1),
    )


def small_world_config(
    pages: int,
    vfs: int,
    migration: MigrationConfig,
    *,
    dma_rate: float,
    buffers: int,
    ack_timeout_ms: int,
    page_shift: int = 12,
) -> SimulationConfig:
    """A guest of ``pages`` pages of 2^``page_shift`` bytes with ``vfs`` functions, each receiving ``dma_rate``
    bytes per second into ``buffers`` pages; its CPUs write nothing on their own (the suites write its memory
    when a rule says so)."""
    return SimulationConfig(
        memory_bytes=pages << page_shift,
        vfs=vfs,
        dma_rate=dma_rate,
        cpu_dirty_rate=0,
        migration=migration,
        buffers=buffers,
        ack_timeout_ms=ack_timeout_ms,
        page_shift=page_shift,
    )


def receive_frames(sim: Simulation, slot: int, frames: int) -> None:
    """The function behind the driver of ``slot`` (counted round the drivers there are) receives ``frames``
    page-sized frames, if it is bound."""
    drivers = sim.drivers
    function = drivers[slot % len(drivers)].function
    if function is not None:
        function.receive(frames * PAGE)


def set_interface(sim: Simulation, slot: int, up: bool) -> None:
    """The guest opens (``up``) or closes the interface of the driver of ``slot``, if it runs."""
    driver = sim.drivers[slot % len(sim.drivers)]
    if sim.guest.running:
        sim.guest.after(0, driver.open if up else driver.close, "interface")


def guest_host(sim: Simulation) -> Hypervisor | None:
    """The host the guest runs on (None while it is between hosts)."""
    return next((host for host in sim.hosts if host.guest is sim.guest), None)


def other_host(sim: Simulation, host: Hypervisor) -> Hypervisor:
    """The host of the two that is not ``host``."""
    first, second = sim.hosts
    return second if host is first else first


class SimulatedWorld(ConformanceMachine):
    """The base of a suite over a simulated world: the world once built, and the findings after each step."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        """The world: two hosts, their bridges, functions and drivers, the guest (made by the suite's ``build``)."""

    @property
    def world(self) -> Simulation:
        assert self.sim is not None, "the world is built first"
        return self.sim

    def guest_host(self) -> Hypervisor | None:
        return guest_host(self.world)

    @invariant()
    @step()
    def findings(self) -> None:
        """A finding recorded on the clock, outside any check of a step, is raised once the step ends."""
        if self.sim is not None:
            self.checks.raise_pending()
