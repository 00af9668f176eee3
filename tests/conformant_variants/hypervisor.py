"""``hypervisor`` variants the specification allows: more pre-copy rounds and log reads, later but timely actions."""

from __future__ import annotations

from typing import cast

from reference_impl.factories import ReferenceHypervisor
from reference_impl.hypervisor import Hypervisor, SourceMigration
from vfmig_proto.states import MigState

_MIN_ROUNDS = 3


class FrequentLogReader(SourceMigration):
    """Reads its dirty log at every send quantum, not only at the end of a round, queues what it finds at once,
    and makes at least three pre-copy rounds before it considers switching over: more reads and more rounds
    than the reference, within the pre-copy limit P (VFM-TIME-001)."""

    def send_quantum(self) -> int:
        if self.phase() in (MigState.PRECOPY, MigState.PAUSING):
            self.stream().enqueue(self.read_dirty_log())
        return super().send_quantum()

    def converged(self) -> bool:
        return len(self.record.rounds) >= _MIN_ROUNDS and super().converged()


class HalfReactionLate(SourceMigration):
    """Acts on the PREPARE and PAUSING deadlines half its reaction time e after they pass: later than the
    reference, within the e that VFM-TIME-005 allows, and never before the deadline (VFM-TMO-004)."""

    def enter_phase(self, old: MigState, new: MigState) -> None:
        super().enter_phase(old, new)
        deadline = {MigState.PREPARE: self.prepare_deadline, MigState.PAUSING: self.pausing_deadline}.get(new)
        if deadline is not None:
            self.clock.cancel(self._phase_timer)
            delay = self.ack_timeout_ns + self.config.reaction_ns // 2
            self._phase_timer = self.clock.schedule(delay, deadline, f"{new.name} deadline")


def _with_source(source: type[SourceMigration]) -> ReferenceHypervisor:
    host = type(f"{source.__name__}Host", (Hypervisor,), {"source_class": source})
    return ReferenceHypervisor(cast("type[Hypervisor]", host))


def frequent_log_reader() -> ReferenceHypervisor:
    """Hosts whose migrations are :class:`FrequentLogReader`."""
    return _with_source(FrequentLogReader)


def half_reaction_late() -> ReferenceHypervisor:
    """Hosts whose migrations are :class:`HalfReactionLate`."""
    return _with_source(HalfReactionLate)
