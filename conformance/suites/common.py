"""What the device and hypervisor suites (and the reference's own stateful test) share: the small world each
builds, a guest of a few hundred pages whose migrations take tens of milliseconds of simulated time."""

from __future__ import annotations

from reference_impl.clock import ms
from reference_impl.hypervisor import MigrationConfig
from reference_impl.scenario import SimulationConfig

MiB = 1024 * 1024


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
