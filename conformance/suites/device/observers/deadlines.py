"""Timing and deadlines: what must have happened some time after an event, checked on the simulated clock.

Each ``_check_*_later`` schedules a look at the function or the driver a
fixed time after what it follows: Transactions Pending 50 ms after BME is
cleared (VFM-FN-003), a function brought up after MIGRATED or RESET working
(VFM-FLAG-004), a request answered by a driver whose interface is down
(VFM-DOWN-002), DEV_STATUS read after a READY report (VFM-ERR-007).  The
invariant :meth:`DeadlineObserver.answers_in_time` reads the migrations'
outcomes for answers that came after ACK_TIMEOUT_MS (VFM-TMO-006).
"""

from __future__ import annotations

from hypothesis.stateful import invariant

from conformance.checks import step
from conformance.observe import FunctionProxy
from conformance.suites.device.world import ACK_TIMEOUT_MS, DeviceWorld, SlotWatch
from reference_impl.clock import ms
from vfmig_proto.pci import PCI_CAP_ID_EXP, PCI_EXP_DEVSTA, PCI_EXP_DEVSTA_TRPND
from vfmig_proto.states import DevState, MigReason

DRAIN_LIMIT_NS = ms(50)
"""VFM-FN-003: Transactions Pending clear within 50 ms of clearing BME."""
ANSWER_LIMIT_NS = ms(ACK_TIMEOUT_MS) // 2
"""How long a driver may take to answer a request while its interface is down (VFM-DOWN-002), and to read
DEV_STATUS after a READY report (VFM-ERR-007): half ACK_TIMEOUT_MS, a hundred times an interrupt's latency."""
SETTLE_NS = ms(1)
"""After a driver brought its function up, when the suite sends it a frame to see that it works (VFM-FLAG-004)."""


class DeadlineObserver(DeviceWorld):
    """Checks scheduled on the world's clock, and the migrations' answers within ACK_TIMEOUT_MS."""

    def _check_drain_later(self, function: FunctionProxy) -> None:
        capability = function.capability(PCI_CAP_ID_EXP)
        if capability is None:
            return

        def drained() -> None:
            if function.bus_master or self.slot_of(function) is None:
                return
            pending = function.config_read(capability + PCI_EXP_DEVSTA, 2) & PCI_EXP_DEVSTA_TRPND
            self.checks.record("VFM-FN-003", not pending, f"{function.name}: Transactions Pending 50 ms after BME")

        self.world.clock.schedule(DRAIN_LIMIT_NS, drained, "FN-003 drain check")

    def _check_works_later(self, slot: int, function: FunctionProxy) -> None:
        """The driver found MIGRATED or RESET and set BME: once settled, the function works (VFM-FLAG-004)."""

        def works() -> None:
            if self._running_normally(slot, function):
                self._check_receives(
                    "VFM-FLAG-004",
                    slot,
                    function,
                    "brought up after DEV_STATUS showed MIGRATED or RESET, with the interface up and BME set, its "
                    "function receives nothing: the driver relied on state the function no longer has",
                )

        self.world.clock.schedule(SETTLE_NS, works, "FLAG-004 bring-up check")

    def _check_answered_while_down(self, slot: int, watch: SlotWatch, request: DevState) -> None:
        """A driver whose interface is down answers without waiting for it to be opened (VFM-DOWN-002)."""
        entry = watch.entries
        driver = self.world.drivers[slot]

        def answered() -> None:
            if not driver.loaded or not self.world.guest.running:
                return
            waiting = watch.entries == entry and not driver.up
            self.checks.record(
                "VFM-DOWN-002",
                not waiting,
                f"slot {slot}: {request.name} still unanswered {ANSWER_LIMIT_NS / 1e6:g} ms after it came to a driver "
                "whose interface is down: the driver waits for the interface to be opened",
            )

        self.world.clock.schedule(ANSWER_LIMIT_NS, answered, "DOWN-002 answer check")

    def _check_reset_read_later(self, slot: int, watch: SlotWatch) -> None:
        """After READY for a configured function: DEV_STATUS.RESET read, and acted on if set (VFM-ERR-007)."""
        reads = watch.status_reads
        driver = self.world.drivers[slot]

        def read_after_ready() -> None:
            if not driver.loaded or not self.world.guest.running:
                return
            self.checks.record(
                "VFM-ERR-007",
                watch.status_reads > reads,
                f"slot {slot}: no read of DEV_STATUS in the {ANSWER_LIMIT_NS / 1e6:g} ms after the driver's READY "
                "report for a function it had configured",
            )
            function = self._function(slot)
            if watch.reset_read_at > reads and self._running_normally(slot, function, bme=False):
                assert function is not None
                self._check_receives(
                    "VFM-ERR-007",
                    slot,
                    function,
                    "the driver read DEV_STATUS.RESET set after its READY report, but did not reinitialise the "
                    "function: with the interface up, it receives nothing",
                )

        self.world.clock.schedule(ANSWER_LIMIT_NS, read_after_ready, "ERR-007 READY check")

    @invariant()
    @step("VFM-TMO-006")
    def answers_in_time(self) -> None:
        """Every migration that ended had its requests answered within ACK_TIMEOUT_MS."""
        for record in self.records:
            if record.ended:
                self.checks.that(
                    "VFM-TMO-006",
                    record.reason is not MigReason.ACK_TIMEOUT,
                    f"migration {record.number}: a driver did not answer within ACK_TIMEOUT_MS (ACK_TIMEOUT)",
                )
                self.checks.that(
                    "VFM-TMO-006",
                    "RESUMING deadline passed: group reset" not in record.notes,
                    f"migration {record.number}: a driver did not answer RESUME_REQ within ACK_TIMEOUT_MS",
                )
