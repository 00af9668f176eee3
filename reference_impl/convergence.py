"""A forecast of whether a simulation's pre-copy converges, made from its settings before it runs.

A run whose pre-copy cannot converge goes on until the pre-copy limit P (600 simulated seconds by
default), which can take minutes of wall time, and then may fail in stop-and-copy; ``vfmig simulate``
says so up front.  The forecast is rough on purpose: it follows the rounds as the hypervisor does
(each round sends what the previous one left dirty) with a guest that dirties distinct pages at its
configured rates, within its CPU working set and its functions' receive buffers.  Page collisions
make the real guest dirty less, so the forecast errs towards warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.clock import NS_PER_MS, NS_PER_S
from reference_impl.hypervisor import PrecopyLimitAction
from reference_impl.scenario import SimulationConfig
from reference_impl.units import format_size


@dataclass(frozen=True)
class Forecast:
    """What the settings let pre-copy do."""

    converges: bool
    """Whether what is left dirty fits the downtime limit before a pre-copy limit passes."""
    switch_over_s: float
    """Simulated seconds from the start of pre-copy to the switch-over (or to the cancel)."""
    left_bytes: float
    """What stop-and-copy has to send."""


def dirtied_bytes(config: SimulationConfig, seconds: float) -> float:
    """Distinct bytes the guest dirties in ``seconds``: CPU writes in its working set, DMA in its buffers."""
    page_size = 1 << config.page_shift
    cpu = min(config.cpu_dirty_rate * seconds, config.memory_bytes * config.cpu_working_set)
    dma = min(config.vfs * config.dma_rate * seconds, config.vfs * config.buffers * page_size)
    return min(float(config.memory_bytes), cpu + dma)


def forecast(config: SimulationConfig) -> Forecast:
    """Follow the pre-copy rounds until what is left fits the downtime limit or a pre-copy limit passes."""
    migration = config.migration
    rate = migration.bandwidth
    fits = rate * migration.downtime_limit_ns / NS_PER_S
    limit_s = migration.precopy_limit_ns / NS_PER_S
    elapsed, to_send, rounds = 0.0, float(config.memory_bytes), 0
    while True:
        rounds += 1
        duration = to_send / rate
        if elapsed + duration > limit_s:  # P passes in this round: its unsent part, and what was dirtied meanwhile
            into = limit_s - elapsed
            left = to_send - rate * into + dirtied_bytes(config, into)
            return Forecast(False, limit_s, min(left, float(config.memory_bytes)))
        elapsed += duration
        to_send = dirtied_bytes(config, duration)
        if to_send <= fits:
            return Forecast(True, elapsed, to_send)
        if migration.max_precopy_rounds and rounds >= migration.max_precopy_rounds:
            return Forecast(False, elapsed, to_send)


def convergence_warning(config: SimulationConfig) -> str | None:
    """One line on why the settings cannot converge and what follows, or None when they can."""
    expected = forecast(config)
    if expected.converges:
        return None
    migration = config.migration
    rate = format_size(migration.bandwidth)
    downtime_ms = migration.downtime_limit_ns / NS_PER_MS
    words = [
        f"pre-copy is not expected to converge: the guest dirties up to {format_size(config.cpu_dirty_rate)}/s "
        f"by CPU and {format_size(config.vfs * config.dma_rate)}/s by DMA, the {format_size(config.memory_bytes)} "
        f"guest takes {config.memory_bytes / migration.bandwidth:.0f} s to send at {rate}/s, and what is left "
        f"never fits the {downtime_ms:g} ms downtime limit before the pre-copy limit "
        f"({expected.switch_over_s:.0f} simulated s)"
    ]
    if migration.on_precopy_limit is PrecopyLimitAction.CANCEL:
        words.append("; then the migration is cancelled")
    else:
        stop_copy_s = expected.left_bytes / migration.bandwidth
        words.append(f"; then stop-and-copy sends about {format_size(expected.left_bytes)} in {stop_copy_s:.0f} s")
        limit_s = migration.stop_copy_limit_ns / NS_PER_S
        if stop_copy_s > limit_s:
            words.append(
                f", more than the stop-and-copy limit S = {limit_s:g} s: expect it to fail as destination_failure"
            )
    return "".join(words)
