"""``hypervisor`` variants the specification allows: more pre-copy rounds and log reads, later but timely actions."""

from __future__ import annotations

from functools import partial
from typing import cast

from reference_impl.factories import ReferenceHypervisor
from reference_impl.hypervisor import Hypervisor, SourceMigration
from vfmig_proto.states import MigEvent, MigReason, MigState
from vfmig_proto.transitions import MIGRATION_TRANSITIONS

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
    reference, within the e that VFM-TIME-005 allows, and never before the deadline (VFM-TMO-004).  What it
    does is decided by the phase the migration was in at the deadline, as VFM-TMO-001/003 say, not by answers
    that come in during the e/2 it takes to act."""

    def enter_phase(self, old: MigState, new: MigState) -> None:
        super().enter_phase(old, new)
        if new in (MigState.PREPARE, MigState.PAUSING):
            self.clock.cancel(self._phase_timer)
            passed = partial(self._deadline_passed, new)
            self._phase_timer = self.clock.schedule(self.ack_timeout_ns, passed, f"{new.name} deadline")

    def _deadline_passed(self, phase: MigState) -> None:
        if self.phase() is phase:  # still under way at its deadline: a cancel is owed, made e/2 later
            self.clock.schedule(self.config.reaction_ns // 2, self._cancel_late, f"{phase.name} deadline, acted on")

    def _cancel_late(self) -> None:
        if (self.phase(), MigEvent.CANCEL) in MIGRATION_TRANSITIONS:
            self.cancel(MigReason.ACK_TIMEOUT)


def _with_source(source: type[SourceMigration]) -> ReferenceHypervisor:
    host = type(f"{source.__name__}Host", (Hypervisor,), {"source_class": source})
    return ReferenceHypervisor(cast("type[Hypervisor]", host))


def frequent_log_reader() -> ReferenceHypervisor:
    """Hosts whose migrations are :class:`FrequentLogReader`."""
    return _with_source(FrequentLogReader)


def half_reaction_late() -> ReferenceHypervisor:
    """Hosts whose migrations are :class:`HalfReactionLate`."""
    return _with_source(HalfReactionLate)
