"""Interrupts (spec §6.2): how many the bridge signals, by MSI or INTx; and the SHPC left alone.

Interrupts are counted through ``interrupt_sink`` and compared with what ``STATUS.EVENT``, ``CONTROL`` (the
model's) and the bridge's MSI and Command registers call for (VFM-NOTIF-002, VFM-NOTIF-003).  A change of
``MIG_STATE`` or ``DEV_STATE`` must leave the registers of the SHPC, the hot-plug controller, alone
(VFM-NOTIF-004).
"""

from __future__ import annotations

from conformance.suites.bridge.world import BridgeWorld, Expectation
from vfmig_proto.engine import Judgement

_CHANGES_THE_SHPC = frozenset({"hot_add", "surprise_removal", "conventional_reset", "restore"})
"""Host events after which the SHPC's registers may differ for reasons of their own (VFM-NOTIF-004 does not apply):
a hot-plug operation, a conventional reset (which resets the SHPC too), and a restore into a new bridge."""


class InterruptObserver(BridgeWorld):
    """The interrupts a step must signal, the ones it signalled, and the SHPC's registers."""

    def _on_interrupt(self) -> None:
        self.interrupts += 1

    def _expect_interrupts(self, expectation: Expectation) -> None:
        """How many interrupts the step must signal (spec §6.2), from the model and the bridge's registers."""
        old, new = expectation.registers_before, self.registers
        count, level, unknown = 0, self.level, False
        if old.msi_masked and not new.msi_masked and self.pending:
            unknown = self.pending_uncertain
            count += new.msi_enabled and not unknown  # the held message goes out when the vector is unmasked
            self.pending = self.pending_uncertain = False
        if self.pending and old.msi_enabled != new.msi_enabled:
            self.pending_uncertain = True
        points = [expectation.after_mask, *((outcome.event, outcome.enabled) for outcome in expectation.outcomes)]
        for index, (event, enabled) in enumerate(points):
            if index:
                outcome = expectation.outcomes[index - 1]
                if outcome.sets_event and outcome.enabled and new.msi_enabled:
                    if new.msi_masked:
                        self.pending = True
                    else:
                        count += 1
            after = new.pin(event, enabled)
            count += after and not level
            level = after
        self.level = level
        expectation.interrupts = None if unknown else count

    def _judge_interrupts(self, expectation: Expectation) -> None:
        expected = expectation.interrupts
        if expected is None or self._diverged:
            return
        report = expectation.report
        if not expectation.legal:
            requirement = "VFM-ACC-003"
        elif report is not None and report.judgement is not Judgement.ACCEPT:
            requirement = "VFM-SEC-003"
        elif expectation.covered and not expectation.covers_rw:
            requirement = "VFM-ACC-004"
        elif self.registers.msi_enabled or expectation.registers_before.msi_enabled:
            requirement = "VFM-NOTIF-002"
        else:
            requirement = "VFM-NOTIF-003"
        sets = [outcome.sets_event for outcome in expectation.outcomes]
        model, registers = self.model, self.registers
        self._that(
            requirement,
            self.interrupts == expected,
            lambda: (
                f"{expectation.what}: expected {expected} interrupt(s), the bridge signalled {self.interrupts} "
                f"(steps setting STATUS.EVENT: {sets}; STATUS.EVENT {int(model.event)}, CONTROL.ENABLE "
                f"{model.get('control.enable')}, EVENT_IE {model.get('control.event_ie')}; MSI "
                f"{'enabled' if registers.msi_enabled else 'disabled'}{', masked' if registers.msi_masked else ''}; "
                f"Interrupt Disable {int(registers.intx_disabled)})"
            ),
        )

    def _judge_shpc(self, expectation: Expectation) -> None:
        if self.shpc_at is None:
            return
        now = self._read_shpc()
        before, self.shpc_bytes = self.shpc_bytes, now
        if expectation.host_event in _CHANGES_THE_SHPC or expectation.shpc_write:
            return  # an actual hot-plug operation, a reset or a new bridge, or the guest's own write, may change them
        if expectation.state_changed:
            self._that(
                "VFM-NOTIF-004",
                now == before,
                lambda: (
                    f"{expectation.what}: a change of MIG_STATE or DEV_STATE leaves the SHPC's registers alone; "
                    f"its config-space window at 0x{self.shpc_at:02x} read {before.hex()} before and {now.hex()} after"
                ),
            )
