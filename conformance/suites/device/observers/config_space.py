"""Config space: what the guest reads from and writes to the bridge's migration capability.

The suite notes which DEV_STATE and DEV_STATUS each slot's driver read, so
that the report it writes can be judged against what it read (VFM-DEV-005,
VFM-DOWN-001) and the reads after a READY or a bring-up can be counted
(VFM-FLAG-003, VFM-FLAG-004, VFM-ERR-007); the bridge's rejections of
reports are findings of their own.  What the migration core does at the
bridge beyond that is the :class:`~conformance.guest_watch.watch.GuestWatch`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis.stateful import invariant

from conformance.checks import step
from conformance.suites.device.world import DeviceWorld
from reference_impl.bridge import MigrationBridge
from reference_impl.events import Event, EventBus, EventKind
from vfmig_proto.codec import find_field
from vfmig_proto.states import DevState, DriverReport
from vfmig_proto.transitions import ACKNOWLEDGED_BY

ANSWERS: dict[int, DriverReport] = {
    **{int(state): report for state, report in ACKNOWLEDGED_BY.items()},
    int(DevState.UNBOUND): DriverReport.READY,
}
"""The report a driver may write for the DEV_STATE it read last, besides NONE (VFM-DEV-005): the answer the
device table accepts for each request, and READY (binding) for UNBOUND."""


def _named(kind: type[DevState] | type[DriverReport], value: int | None) -> str:
    """The name of ``value`` in ``kind``, or the value itself if ``kind`` has no member with it."""
    return next((member.name for member in kind if member.value == value), str(value))


@dataclass(frozen=True)
class _Access:
    """One config read or write of the bridge: ``width`` bytes of ``value`` at ``offset``."""

    bridge: MigrationBridge
    offset: int
    width: int
    value: int

    def at(self, path: str) -> int | None:
        """The value from the first byte of the capability field ``path`` on, if the access covers that byte."""
        position = self.bridge.cap + find_field(self.bridge.num_slots, path).offset
        if not self.offset <= position < self.offset + self.width:
            return None
        return self.value >> (8 * (position - self.offset))


def _field_mask(num_slots: int, slot: int, name: str) -> int:
    """The bits of ``DEV_STATUS.<name>`` of ``slot`` (one byte register)."""
    return find_field(num_slots, f"device[{slot}].dev_status.{name}").field.mask


class ConfigSpaceObserver(DeviceWorld):
    """Watches the guest's config reads and writes of the bridge, and the reports the bridge rejects."""

    def observe(self, bus: EventBus) -> None:
        super().observe(bus)
        bus.subscribe(self.on_rejected, [EventKind.REPORT_REJECTED])
        bus.subscribe(self.on_bridge_read, [EventKind.CONFIG_READ])
        bus.subscribe(self.on_bridge_write, [EventKind.CONFIG_WRITE])

    def _guest_side_access(self, event: Event) -> _Access | None:
        """A config access of the bridge the guest is on (None: of another bridge)."""
        host = self.guest_host()
        if host is None or host.bridge_or_none is None or event.source != host.bridge.name:
            return None
        return _Access(host.bridge, int(event.data["offset"]), int(event.data["width"]), int(event.data["value"]))

    def on_bridge_read(self, event: Event) -> None:
        access = self._guest_side_access(event)
        if access is None:
            return
        num_slots = access.bridge.num_slots
        for slot, watch in self.watch.items():
            state = access.at(f"device[{slot}].dev_state")
            if state is not None:
                watch.dev_state_read = state & 0xFF
            bits = access.at(f"device[{slot}].dev_status.migrated")
            if bits is not None:
                watch.status_read = True
                watch.status_reads += 1
                if bits & (_field_mask(num_slots, slot, "migrated") | _field_mask(num_slots, slot, "reset")):
                    watch.flags_found = True
                if bits & _field_mask(num_slots, slot, "reset"):
                    watch.reset_read_at = watch.status_reads

    def on_bridge_write(self, event: Event) -> None:
        """A driver's report, as it writes it (before the bridge judges it)."""
        access = self._guest_side_access(event)
        if access is None:
            return
        for slot, watch in self.watch.items():
            path = f"device[{slot}].dev_ctrl.drv_state"
            written = access.at(path)
            if written is None:
                continue
            report = written & find_field(access.bridge.num_slots, path).field.mask
            read = watch.dev_state_read
            answer = ANSWERS.get(read) if read is not None else None
            self.checks.record(
                "VFM-DEV-005",
                report in (DriverReport.NONE, answer),
                f"slot {slot}: DRV_STATE {_named(DriverReport, report)} written while the DEV_STATE read last "
                f"was {_named(DevState, read)}: neither NONE nor the answer to that state",
            )
            if report == DriverReport.PAUSED and access.bridge.dev_state(slot) is DevState.PAUSE_REQ:
                function = self._function(slot)
                running = function is not None and function.bus_master
                self.checks.record(
                    "VFM-DOWN-001",
                    not running or watch.dirtied_since_request,
                    f"slot {slot}: PAUSED written for a function whose BME is set, with nothing dirtied since "
                    "PAUSE_REQ: the interface-down answer, for a function that runs",
                )

    def on_rejected(self, event: Event) -> None:
        slot = int(event.data["slot"])
        why = str(event.data["why"])
        requirement = "VFM-DIRTY-004" if "PAUSED" in why else "VFM-ABS-002" if "NONE" in why else "VFM-DEV-005"
        self.checks.record(requirement, False, f"slot {slot}: the bridge rejected a report: {why}")

    @invariant()
    @step(
        "VFM-ACC-002",
        "VFM-ACC-008",
        "VFM-DEV-006",
        "VFM-DISC-004",
        "VFM-DISC-005",
        "VFM-DISC-007",
        "VFM-DISC-008",
        "VFM-DISC-009",
        "VFM-NOTIF-006",
        "VFM-NOTIF-007",
        "VFM-NOTIF-009",
        "VFM-NOTIF-010",
        "VFM-FLOW-004",
        "VFM-VER-003",
        "VFM-VER-004",
        "VFM-VER-005",
    )
    def migration_core(self) -> None:
        """What the guest watch found in the core's accesses to the bridge (:mod:`conformance.guest_watch`)."""
        if self.sim is not None:
            self.guest_watch.wrap_handler()
            self.guest_watch.settle()
            self.checks.raise_pending()
