"""The hypervisor's seat: what the bridge tells the hypervisor, and when.

The suite observes the bridge as the hypervisor does (:class:`SuiteObserver`, and the event bus):

* VFM-ACC-007 (one access, one step): the bridge tells its observer of every step; within one guest write it may
  tell of one step only, whose state is the write's result (the hypervisor's own events from within the write,
  VFM-MIG-011, are steps of their own);
* VFM-DEV-012 (no host event without a row): the host events the bridge raises itself are judged as it
  publishes them;
* VFM-ERR-004 (the group reset): the bridge tells the hypervisor of a Secondary Bus Reset before any function
  is reset, and only for a 0 -> 1 edge of the bit;
* rejected reports (VFM-DEV-010, VFM-DEV-011): the hypervisor is told of exactly those.
"""

from __future__ import annotations

from conformance.suites.bridge.world import CANCEL_BEFORE_RESET, BridgeWorld, Expectation
from reference_impl.events import Event
from vfmig_proto.engine import Judgement
from vfmig_proto.states import DevEvent, DevState, MigEvent, MigReason, MigState
from vfmig_proto.transitions import DEVICE_TRANSITIONS, MIGRATION_TRANSITIONS, REPORT_EVENTS

TOLD_OF_RESET = "secondary bus reset requested"
"""The entry of the suite's trace for a call of ``secondary_bus_reset_requested``."""
_REPORTED = frozenset(REPORT_EVENTS.values())
"""The device events of the guest's reports (not host events: VFM-DEV-012 does not speak of them)."""


class SuiteObserver:
    """The hypervisor's seat on the bridge."""

    def __init__(self, suite: HypervisorSeat) -> None:
        self.suite = suite

    def bridge_stepped(self, bridge: object, cause: str) -> None:
        """Every step is seen; the suite counts the steps of a guest access (VFM-ACC-007)."""
        self.suite.on_step()

    def report_rejected(self, bridge: object, slot: int, report: int, why: str) -> None:
        self.suite.rejections.append((slot, report))

    def secondary_bus_reset_requested(self, bridge: object) -> None:
        self.suite.on_secondary_bus_reset()


class HypervisorSeat(BridgeWorld):
    """What the bridge tells the hypervisor: its steps, its own host events, rejected reports, group resets."""

    def on_secondary_bus_reset(self) -> None:
        """The bridge tells the hypervisor that the guest set Secondary Bus Reset."""
        self.trace.append(TOLD_OF_RESET)
        expectation = self.current
        if expectation is None or not expectation.sbr_edge:
            if expectation is None:
                self.checks.record("VFM-ERR-004", False, "the bridge requested a group reset outside any guest write")
            else:
                expectation.sbr_unexpected = True
            if self.bridge.mig_state in CANCEL_BEFORE_RESET:
                self._host_cancel()  # the hypervisor's answer (VFM-MIG-011)
            return
        early = [entry for entry in self.trace if entry.startswith("reset ")]
        self.checks.record(
            "VFM-ERR-004",
            not early,
            lambda: (
                f"{expectation.what}: functions were reset ({', '.join(early)}) before the bridge told the "
                "hypervisor of the secondary bus reset (secondary_bus_reset_requested)"
            ),
        )
        if expectation.planned_cancel and not expectation.cancel_done and self.bridge.mig_state in CANCEL_BEFORE_RESET:
            expectation.cancel_done = True  # VFM-MIG-011: the hypervisor cancels before the group reset
            self._host_cancel()

    def _host_cancel(self) -> None:
        """The hypervisor cancels from within the bridge's handling of a guest write (VFM-MIG-011)."""
        self.host_depth += 1
        self.caused.append(MigEvent.CANCEL)
        try:
            self.bridge.cancel(MigReason.PROTOCOL_ERROR)
        finally:
            self.host_depth -= 1

    def on_step(self) -> None:
        """The bridge tells the hypervisor of a step: during a guest write, one that belongs to the access itself
        unless it comes from a host event the hypervisor causes from within the write (VFM-ACC-007)."""
        if self.access_steps is not None and not self.host_depth:
            self.access_steps.append(bytes(self.bridge.capability_bytes()))

    def _on_transition(self, event: Event) -> None:
        """A transition the bridge publishes: the host events it causes itself need a row (VFM-DEV-012).

        Publishing is optional (:meth:`conformance.interfaces.common.EventSink.publish`): a bridge that
        publishes nothing is judged on its registers alone.  The host events the suite causes are its own doing,
        and reports are the guest's.
        """
        data = event.data
        cause, old = data.get("event"), data.get("old")
        if isinstance(cause, MigEvent) and isinstance(old, MigState):
            if cause in self.caused:
                self.caused.remove(cause)
                return
            self.checks.record(
                "VFM-DEV-012",
                (old, cause) in MIGRATION_TRANSITIONS,
                lambda: f"the bridge raised {cause.name} in MIG_STATE {old.name}, which has no row for it",
            )
        elif isinstance(cause, DevEvent) and isinstance(old, DevState) and cause not in _REPORTED:
            slot = data.get("slot")
            if (slot, cause) in self.caused:
                self.caused.remove((slot, cause))
                return
            self.checks.record(
                "VFM-DEV-012",
                (old, cause) in DEVICE_TRANSITIONS,
                lambda: (
                    f"the bridge caused {cause.name} for slot {slot} in DEV_STATE {old.name}, which has no row for it"
                ),
            )

    def _judge_reset_request(self, expectation: Expectation) -> bool:
        """A group reset the write does not ask for, or none where it does (VFM-ERR-004); True if so."""
        told = TOLD_OF_RESET in self.trace
        resets = [entry for entry in self.trace if entry.endswith("(group)")]
        if not expectation.sbr_edge and (expectation.sbr_unexpected or resets):
            self._that(
                "VFM-ERR-004",
                False,
                f"{expectation.what}: the write does not change Secondary Bus Reset from 0 to 1, but the bridge "
                f"performed a group reset (told the hypervisor: {told}; resets: {resets})",
            )
        elif expectation.sbr_edge and not told and not self.trace:
            self._that(
                "VFM-ERR-004",
                False,
                f"{expectation.what}: the write changes Secondary Bus Reset from 0 to 1, but the bridge neither "
                "told the hypervisor (secondary_bus_reset_requested) nor reset any function",
            )
        else:
            return False
        self._diverged = True
        expectation.observer_judged = True
        return True

    def _judge_observer(self, expectation: Expectation) -> None:
        report = expectation.report
        if not expectation.observer_judged and (expectation.is_guest_write or self.rejections):
            wanted = [(report.slot, report.written)] if report is not None and report.judgement.rejected else []
            if not expectation.legal:
                requirement = "VFM-ACC-003"
            elif report is None:  # a write that covers no DEV_CTRL byte carries no report
                requirement = "VFM-DEV-001" if expectation.is_guest_write else "VFM-DEV-010"
            else:
                requirement = {
                    Judgement.ACCEPT: "VFM-DEV-002",
                    Judgement.IGNORE: "VFM-DEV-003",
                    Judgement.REJECT: "VFM-DEV-010",
                    Judgement.REJECT_BUS_MASTER: "VFM-DEV-010",
                }[report.judgement]
            self._that(
                requirement,
                self.rejections == wanted,
                lambda: (
                    f"{expectation.what}: the hypervisor is told of exactly the rejected reports {wanted} "
                    f"(report_rejected(slot, DRV_STATE)); the bridge told it of {self.rejections}"
                ),
            )
        if expectation.sbr_edge and not expectation.observer_judged:
            told = self.trace.count(TOLD_OF_RESET)
            self._that(
                "VFM-ERR-004",
                told == 1,
                lambda: (
                    f"{expectation.what}: the bridge calls secondary_bus_reset_requested once before the group "
                    f"reset takes effect; it called it {told} time(s)"
                ),
            )
            present = [function.name for function in self.functions if function is not None]
            unreset = [name for name in present if not any(t.startswith(f"reset {name} ") for t in self.trace)]
            self._that(
                "VFM-ERR-004",
                not unreset,
                lambda: (
                    f"{expectation.what}: every function behind the bridge is reset before the write that sets "
                    f"Secondary Bus Reset completes; not reset: {unreset}"
                ),
            )
        elif not expectation.legal:
            self._that(
                "VFM-ACC-003",
                not self.trace,
                lambda: f"{expectation.what}: an illegal write takes no action, but the bridge did {self.trace}",
            )

    def _judge_one_step(self, expectation: Expectation, steps: list[bytes]) -> None:
        """VFM-ACC-007: the write was one step, and the step the hypervisor was told of is the whole write.

        The bridge tells its observer of every step before the access that caused it completes
        (:class:`conformance.interfaces.bridge.BridgeUnderTest`).  A second step within one access, or a step
        after which the access still changed the capability, is a point where a host event could take effect
        between the parts of the access; the host events the hypervisor causes from within the write (VFM-MIG-011) are
        steps of their own and not counted.  An illegal write is no access at all (VFM-ACC-003).
        """
        if not expectation.legal:
            return
        self.checks.raise_pending()
        now = bytes(self.bridge.capability_bytes())
        changed = bool(steps) and steps[-1] != now
        self._that(
            "VFM-ACC-007",
            len(steps) <= 1 and not changed,
            lambda: (
                f"{expectation.what}: one guest access is one indivisible step, but the bridge told the hypervisor "
                f"of {len(steps)} steps within it (bridge_stepped)"
                + (
                    f", and the capability changed after the last of them: {steps[-1].hex()} when the hypervisor "
                    f"was told, {now.hex()} when the write completed"
                    if changed
                    else ""
                )
            ),
        )
