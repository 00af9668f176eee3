"""Driver reports (spec §4.2, §4.5): what the bridge does with a ``DRV_STATE`` write, and when.

A report is judged against the model's verdict on it (:meth:`~conformance.suites.bridge.model.CapabilityModel.judge`):
accepted, ignored or rejected, by the device table and by the function's Bus Master Enable.  The bridge must
process every report (VFM-DEV-001), each as the table and VFM-DEV-011 say, and finish with it, catch-up and
settled event included, before the write completes (VFM-DEV-004): what the host sees when the write returns and
what the guest's next reads return must agree on ``MIG_STATE`` and every ``DEV_STATE``.
"""

from __future__ import annotations

from conformance.suites.bridge.model import drv_path, flag_path, state_path
from conformance.suites.bridge.world import BridgeWorld, Expectation, Judge, describe_value
from vfmig_proto.engine import Judgement, ReportVerdict
from vfmig_proto.states import SlotFlag
from vfmig_proto.transitions import Action


class ReportObserver(BridgeWorld):
    """The bridge's processing of a driver report, judged field by field against the model's verdict."""

    def _judge_report(self, expectation: Expectation, report: ReportVerdict, actual: bytes, judge: Judge) -> None:
        model = self.model
        slot = report.slot
        state_field, drv_field = state_path(slot), drv_path(slot)
        error_field = flag_path(slot, SlotFlag.PROTOCOL_ERROR)
        everything = (state_field, drv_field, error_field, "mig_state", "status.event")
        said = report.describe()
        actual_state = model.get(state_field, actual)
        told = (slot, report.written) in self.rejections
        masked_error, actual_error = model.get(error_field, expectation.masked), model.get(error_field, actual)
        # A bridge that does nothing with a report that the table alone would ignore broke VFM-DEV-011, not -001.
        table_ignores = report.judgement is Judgement.REJECT_BUS_MASTER and report.table is Action.IGNORE
        repeated_or_wide = report.written == report.old or expectation.width > 1
        if report.judgement is not Judgement.IGNORE and not table_ignores and repeated_or_wide:
            untouched = actual_state == report.state and not told
            if report.judgement.rejected:
                untouched = untouched and actual_error == masked_error
            self._that(
                "VFM-DEV-001",
                not untouched,
                lambda: (
                    f"{expectation.what}: {said}; every legal write that covers DEV_CTRL is one report, also a "
                    f"{expectation.width}-byte write and one that repeats DRV_STATE, but the bridge did nothing with it"
                ),
            )
            if untouched:
                judge(None, everything, "")
                expectation.observer_judged = True
                self._diverged = True
                return
        if report.judgement.rejected and expectation.writes_one(model.by_path[error_field]):
            judge(
                "VFM-CAP-009",
                (error_field,),
                f"{said}; the write's 1 in PROTOCOL_ERROR applies before the report, whose rejection then sets it",
            )
        if report.judgement is Judgement.REJECT_BUS_MASTER:
            rejected = actual_state == report.state and (told or (masked_error == 0 and actual_error == 1))
            self._that(
                "VFM-DEV-011",
                rejected,
                lambda: (
                    f"{expectation.what}: {said}; the bridge must reject it, but DEV_STATE is "
                    f"{describe_value(model.by_path[state_field], actual_state)}, PROTOCOL_ERROR {actual_error}, "
                    f"and the hypervisor was {'' if told else 'not '}told"
                ),
            )
            if not rejected:
                judge(None, everything, "")
                expectation.observer_judged = True
                self._diverged = True
                return
            judge("VFM-DEV-010", (state_field, drv_field, error_field), f"{said}: DRV_STATE gets its old value back")
        elif report.judgement is Judgement.REJECT:
            judge(
                "VFM-DEV-010",
                (state_field, drv_field, error_field),
                f"{said}: DEV_STATE unchanged, DRV_STATE restored, PROTOCOL_ERROR set",
            )
        elif report.judgement is Judgement.IGNORE:
            judge(
                "VFM-DEV-003",
                (state_field, drv_field, error_field, "mig_state"),
                f"{said}: nothing changes, DRV_STATE gets its old value back",
            )
        else:
            chain = expectation.chain
            if len(chain) > 1:
                judge(
                    "VFM-MIG-008",
                    (state_field,) if actual_state in chain[:-1] else (),
                    f"{said}: the catch-up requests in MIG_STATE {report.mig_state.name} apply in the same step, in "
                    f"order ({' -> '.join(state.name for state in chain)})",
                )
            judge("VFM-DEV-002", (state_field, drv_field, error_field), f"{said}: DRV_STATE keeps the written value")
        settled = None if self._diverged else "VFM-MIG-007"  # not when a judged difference decided the states
        judge(settled, ("mig_state",), f"{said}: a settled event is raised exactly when every slot has settled")
        if report.judgement is not Judgement.ACCEPT:
            judge("VFM-SEC-003", ("status.event",), f"{said}: a rejected or ignored report sets no STATUS.EVENT")

    def _judge_report_finished(self, expectation: Expectation) -> None:
        """VFM-DEV-004: the report, its catch-up and its settled event were processed before the write completed.

        What the host sees the moment the write returns (``capability_bytes()``) is compared with what the
        guest's first reads after it return: a bridge that finishes the report later, for instance at the next
        access, shows the hypervisor one state and the guest another.
        """
        self.checks.raise_pending()
        model = self.model
        at_return = bytes(self.bridge.capability_bytes())
        if len(at_return) != model.length:
            return  # judged elsewhere (VFM-CAP-005, VFM-CAP-007)
        paths = ("mig_state", *(state_path(slot) for slot in range(model.num_slots)))
        offsets = [model.by_path[path].offset for path in paths]
        read = [self._read(self.cap + offset, 1) for offset in offsets]
        late = [
            f"{path.upper()} {describe_value(model.by_path[path], at_return[offset])} when the write returned, "
            f"{describe_value(model.by_path[path], value)} at the guest's next read"
            for path, offset, value in zip(paths, offsets, read, strict=True)
            if at_return[offset] != value
        ]
        self._that(
            "VFM-DEV-004",
            not late,
            lambda: (
                f"{expectation.what}: {expectation.report.describe() if expectation.report else 'a report'}; the "
                "bridge finishes processing a report, with its catch-up and settled event, before the write "
                f"completes, but the state went on changing after it: {'; '.join(late)}"
            ),
        )
