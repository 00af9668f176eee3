"""The handover and the destination: the source reaching the handover point, the guest's vCPUs stopping and
running again, and what must hold once the destination has the guest.
"""

from __future__ import annotations

from functools import partial

from conformance.suites.hypervisor.observers.cancellation import CancellationObserver
from conformance.suites.hypervisor.watch import Watch, in_ms
from reference_impl.device import VirtualFunction
from reference_impl.events import Event
from reference_impl.hypervisor import MigrationOutcome
from vfmig_proto.states import DevState, MigReason, MigState


class HandoverObserver(CancellationObserver):
    """Checks at the handover point and when the guest runs again."""

    def on_milestone(self, event: Event) -> None:
        watch = self.current
        if watch is None or watch.handover_ns is not None or event.source != watch.source.name:
            return
        if event.data.get("what") == "end" and event.data.get("outcome") == MigrationOutcome.COMPLETED.value:
            watch.handover_ns = event.time
            self._handover_checks(watch)

    def _handover_checks(self, watch: Watch) -> None:
        if watch.handover_checked or watch.handover_ns is None:
            return
        watch.handover_checked = True
        at = in_ms(watch.handover_ns)
        if watch.dest_memory is not None:
            self._check_no_lost_write(watch, watch.dest_memory, "at the handover point")
        self._phase_left(watch, MigState.STOPPED, watch.handover_ns)
        self._check_nothing_left_out(watch)
        self._ended(watch, watch.handover_ns)
        bme = self._bme_in_stopped(watch) if watch.final_read_bme is None else watch.final_read_bme
        self.checks.record(
            "VFM-MIG-012",
            not bme,
            f"migration {watch.number}: completed (handover at {at}) although a function had BME set after the "
            "vCPUs stopped in STOPPED, when the hypervisor read the dirty log for the last time (PROTOCOL_ERROR "
            "expected)",
        )
        failures = [cause for cause in watch.causes if cause.reason is MigReason.DESTINATION_FAILURE]
        self.checks.record(
            "VFM-DEST-001",
            not failures,
            lambda: f"migration {watch.number}: completed (handover at {at}) after {failures[0]}",
        )
        bridge = watch.dest_bridge
        if bridge is None:
            return
        placed = all(
            isinstance(function, VirtualFunction) and function.in_reset_state
            for function, state in zip(bridge.functions, bridge.dev_states(), strict=False)
            if state is not DevState.EMPTY
        )
        self.checks.record(
            "VFM-DEST-004",
            placed and bridge.mig_state is MigState.STOPPED,
            f"migration {watch.number}: the destination confirmed (handover at {at}) before it had restored the "
            f"bridge (MIG_STATE {bridge.mig_state.name}, STOPPED expected) and placed a function in reset in every "
            f"slot that is not EMPTY (placed: {placed})",
        )

    def _arrived_and_running(self, watch: Watch, now: int) -> None:
        handed = self.handed_over(watch)
        self.checks.record(
            "VFM-DEST-003",
            handed,
            f"migration {watch.number}: the guest's vCPUs ran on {watch.destination.name} at {in_ms(now)}, before the "
            "source reached the handover point",
        )
        self.checks.record(
            "VFM-FLOW-003",
            watch.arrived_ns is not None,
            f"migration {watch.number}: the guest's vCPUs ran on {watch.destination.name} at {in_ms(now)} "
            "before ARRIVE",
        )
        if handed:
            self._check_no_lost_write(watch, self.world.guest.memory, f"when the guest ran on {watch.destination.name}")
            self._check_placement(watch.destination, f"when the guest ran on {watch.destination.name}", every=True)

    def on_vcpu(self, event: Event) -> None:
        watch = self.current
        if watch is None or not watch.started:
            return
        host = str(event.data.get("host"))
        now = event.time
        if not event.data.get("running"):
            if host == watch.source.name and watch.in_progress and watch.vcpus_stopped_ns is None:
                watch.vcpus_stopped_ns = now
            return
        if watch.vcpus_stopped_ns is not None and watch.vcpus_resumed_ns is None:
            watch.vcpus_resumed_ns = now
            self._schedule(now + 1, partial(self._check_measured_downtime, watch), "GEN-002")
        if host == watch.source.name:
            if self.handed_over(watch):
                self._violation(
                    "VFM-DEST-002",
                    watch,
                    f"the guest's vCPUs ran on the source {host} at {in_ms(now)}, after the "
                    f"handover point at {in_ms(watch.handover_ns or 0)}",
                )
                self.dead = True  # the guest runs on both hosts: nothing more in this world means anything
            elif watch.bridge is not None and watch.bridge.mig_state is MigState.STOPPED and watch.in_progress:
                watch.rogue = True
                self._violation(
                    "VFM-MIG-003",
                    watch,
                    f"the guest's vCPUs ran on {host} at {in_ms(now)} while the bridge is STOPPED and no CANCEL came",
                )
            elif watch.cancel_from is MigState.STOPPED:
                self._resuming_from(watch, now)
        elif host == watch.destination.name:
            self._arrived_and_running(watch, now)
