"""The host's dirty log (reference_impl.memory.DirtyLog): disabling it forgets what it holds without reading it."""

from __future__ import annotations

import numpy as np

from reference_impl.memory import DirtyLog, Pages


class _ReadsFail(DirtyLog):
    """A log whose reads fail, as the hypervisor suite makes one fail (VFM-DIRTY-008)."""

    reads = 0

    def harvest(self) -> Pages:
        self.reads += 1
        raise RuntimeError("this read of the dirty log fails")


def test_disabling_forgets_without_reading_the_log() -> None:
    log = _ReadsFail(16)
    log.enable()
    log.mark(np.array([1, 2, 3], dtype=np.int64))
    log.lose_entries()
    log.disable()
    assert log.reads == 0
    assert not log.enabled
    assert log.count == 0


def test_a_log_enabled_again_after_disable_starts_empty() -> None:
    log = DirtyLog(16)
    log.enable()
    log.mark_range(4, 8)
    log.lose_entries()
    log.disable()
    log.enable()
    assert log.harvest().size == 0
