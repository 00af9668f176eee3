"""The capability as the spec says it must be, computed from :mod:`vfmig_proto` alone.

The bridge suite's model (:class:`CapabilityModel`): the access rules (:mod:`vfmig_proto.access`), the
transition tables, fan-out, settled events and catch-up (:mod:`vfmig_proto.transitions`) and the reset value
(:mod:`vfmig_proto.codec`).  It knows nothing of the suite around it, so that a protocol engine can take its
place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from functools import cache, partial

from vfmig_proto.access import apply_write_byte, write_masks
from vfmig_proto.codec import read_field, reset_value, store_field
from vfmig_proto.layout import CapabilityParams, PlacedField, capability_length, placed_fields
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState
from vfmig_proto.transitions import (
    CATCH_UP,
    DEVICE_TRANSITIONS,
    FANOUT,
    MIGRATION_TRANSITIONS,
    REPORT_EVENTS,
    SETTLED_STATES,
    Action,
    device_transition,
    migration_transition,
)

SETTLED_EVENTS = tuple(SETTLED_STATES)
"""The migration events the bridge raises itself once every slot has settled (spec §4.3.9)."""
REPORT_NAMES = {report.value: report.name for report in DriverReport}
"""The name of each defined ``DRV_STATE`` value."""
SLOT_FLAGS = ("migrated", "reset", "protocol_error")
"""The ``DEV_STATUS`` flags of a slot entry."""


def state_path(slot: int) -> str:
    """The path of ``slot``'s ``DEV_STATE``."""
    return f"device[{slot}].dev_state"


def drv_path(slot: int) -> str:
    """The path of ``slot``'s ``DRV_STATE``, the driver's report."""
    return f"device[{slot}].dev_ctrl.drv_state"


def flag_path(slot: int, flag: str) -> str:
    """The path of one of ``slot``'s ``DEV_STATUS`` flags (:data:`SLOT_FLAGS`)."""
    return f"device[{slot}].dev_status.{flag}"


class Judgement(Enum):
    """What the spec makes of a driver report (spec §4.2, §4.5)."""

    ACCEPT = "accepted"
    IGNORE = "ignored"
    REJECT = "rejected"
    REJECT_BME = "rejected because of Bus Master Enable"

    @property
    def rejected(self) -> bool:
        return self in (Judgement.REJECT, Judgement.REJECT_BME)


@dataclass(frozen=True)
class Report:
    """One report, as the model judges it."""

    slot: int
    old: int
    """``DRV_STATE`` before the write."""
    written: int
    """``DRV_STATE`` the write stored (by the mask model)."""
    state: DevState
    """``DEV_STATE`` before the write."""
    mig: MigState
    bme: bool
    judgement: Judgement
    why: str
    chain: tuple[DevState, ...] = ()
    """For an accepted report: the row's next state, then each state catch-up moves the slot to."""
    table: Action | None = None
    """The device table's action for the report, Bus Master Enable aside (None: no row, or no such value)."""

    def describe(self) -> str:
        name = REPORT_NAMES.get(self.written, f"undefined value {self.written}")
        return (
            f"slot {self.slot} reports DRV_STATE {name} (was {self.old}) in {self.state.name}, "
            f"MIG_STATE {self.mig.name}, BME {int(self.bme)}: {self.judgement.value} ({self.why})"
        )


@dataclass
class SubStep:
    """What one step of the model changed: whether it sets ``STATUS.EVENT`` (spec §6.2, VFM-NOTIF-001)."""

    mig_changed: bool = False
    host_changed_dev_state: bool = False
    flag_set: bool = False

    @property
    def sets_event(self) -> bool:
        return self.mig_changed or self.host_changed_dev_state or self.flag_set


@dataclass(frozen=True)
class StepOutcome:
    """The model after a step: whether the step set ``STATUS.EVENT``, and the inputs of the interrupt."""

    sets_event: bool
    event: bool
    enabled: bool
    """``CONTROL.ENABLE`` and ``CONTROL.EVENT_IE`` both 1."""
    pre_settle: MigState
    """``MIG_STATE`` before the settled events of the step."""


class CapabilityModel:
    """The capability as the spec says it must be, computed from :mod:`vfmig_proto` alone."""

    def __init__(self, params: CapabilityParams, cap_next: int) -> None:
        self.num_slots = params.num_slots
        self.length = capability_length(params.num_slots)
        self.data = bytearray(cached_reset_value(replace(params, next_pointer=cap_next)))
        masks = write_masks(params.num_slots)
        self.wmask = masks.wmask
        self.w1cmask = masks.w1cmask
        self.fields, self.paths, self.by_path, self.registers = _layout(params.num_slots)
        self.dev_ctrl = tuple(self.by_path[drv_path(slot)].offset for slot in range(self.num_slots))
        self._stale: frozenset[tuple[MigState, MigEvent]] = frozenset()

    # ---- fields

    def get(self, path: str, data: bytes | bytearray | None = None) -> int:
        return read_field(self.data if data is None else data, self.by_path[path])

    def put(self, path: str, value: int) -> None:
        store_field(self.data, self.by_path[path], value)

    @property
    def mig_state(self) -> MigState:
        return MigState(self.get("mig_state"))

    def dev_state(self, slot: int) -> DevState:
        return DevState(self.get(state_path(slot)))

    def dev_states(self) -> list[DevState]:
        return [self.dev_state(slot) for slot in range(self.num_slots)]

    @property
    def event(self) -> bool:
        return bool(self.get("status.event"))

    @property
    def enabled(self) -> bool:
        return bool(self.get("control.enable")) and bool(self.get("control.event_ie"))

    def _due(self) -> list[MigEvent]:
        mig, states = self.mig_state, self.dev_states()
        return [
            event
            for event in SETTLED_EVENTS
            if (mig, event) in MIGRATION_TRANSITIONS
            and all(state in SETTLED_STATES[event] for state in states)
            and (mig, event) not in self._stale
        ]

    def begin(self) -> None:
        """A step starts.  A settled event already due now is one the bridge failed to raise before, in a step
        that has been judged: the model took the bridge's state over, and VFM-MIG-007 forbids raising it later."""
        self._stale = frozenset()
        self._stale = frozenset((self.mig_state, event) for event in self._due())

    # ---- the guest side (spec §3.3, §4.2, §4.5)

    def apply_write(self, offset: int, data: bytes) -> None:
        """The mask model (VFM-ACC-001) on the bytes a legal write covers, ``offset`` from the capability."""
        for index, value in enumerate(data):
            position = offset + index
            self.data[position] = apply_write_byte(
                self.data[position], value, self.wmask[position], self.w1cmask[position]
            )

    def judge(self, slot: int, old: int, bme: bool) -> Report:
        """The spec's verdict on the report now stored in ``slot``'s ``DRV_STATE`` (the mask model applied)."""
        written = self.get(drv_path(slot))
        state = self.dev_state(slot)
        mig = self.mig_state
        made = partial(Report, slot, old, written, state, mig, bme)
        if written not in REPORT_NAMES:
            return made(Judgement.REJECT, "undefined DRV_STATE value")
        report = DriverReport(written)
        event = REPORT_EVENTS[report]
        outcome = DEVICE_TRANSITIONS.get((state, event))
        table = None if outcome is None else outcome.action
        if bme and report is DriverReport.PAUSED:
            return made(Judgement.REJECT_BME, "PAUSED while the function's BME is set, VFM-DEV-011", table=table)
        if bme and report is DriverReport.NONE and mig is not MigState.IDLE:
            why = "NONE while BME is set and MIG_STATE is not IDLE, VFM-DEV-011"
            return made(Judgement.REJECT_BME, why, table=table)
        if outcome is None:
            return made(Judgement.REJECT, f"the device table has no row for {event.name} in {state.name}")
        if outcome.action is Action.IGNORE:
            return made(Judgement.IGNORE, f"the device table ignores {event.name} in {state.name}")
        chain = [outcome.next_state]
        if outcome.next_state is DevState.READY:
            for catch_up in CATCH_UP.get(mig, ()):
                chain.append(device_transition(chain[-1], catch_up).next_state)
        why = f"{state.name} -> {outcome.next_state.name}"
        if len(chain) > 1:
            why += f", catch-up in {mig.name} -> {chain[-1].name}"
        return made(Judgement.ACCEPT, why, tuple(chain))

    def apply_report(self, report: Report, sub: SubStep) -> None:
        if report.judgement.rejected:
            self.put(drv_path(report.slot), report.old)
            self.put(flag_path(report.slot, "protocol_error"), 1)
        elif report.judgement is Judgement.IGNORE:
            self.put(drv_path(report.slot), report.old)
        else:
            self.put(state_path(report.slot), report.chain[-1])
            if report.chain[-1] is not report.chain[0]:
                sub.host_changed_dev_state = True  # catch-up requests are host events (VFM-NOTIF-001)

    # ---- the host side (spec §4.3)

    def device_event(self, slot: int, event: DevEvent, sub: SubStep) -> None:
        old = self.dev_state(slot)
        new = device_transition(old, event).next_state
        self.put(state_path(slot), new)
        if new is not old:
            sub.host_changed_dev_state = True

    def migration_event(self, event: MigEvent, sub: SubStep) -> None:
        old = self.mig_state
        new = migration_transition(old, event)
        self.put("mig_state", new)
        if new is not old:
            sub.mig_changed = True
        device_event = FANOUT.get(event)
        if device_event is not None:
            for slot, state in enumerate(self.dev_states()):
                if (state, device_event) in DEVICE_TRANSITIONS:
                    self.device_event(slot, device_event, sub)

    def finish(self, sub: SubStep) -> StepOutcome:
        """Raise the settled events the tables call for (spec §4.3.9); set ``STATUS.EVENT`` if the step does."""
        pre_settle = self.mig_state
        while due := self._due():
            self.migration_event(due[0], sub)
        if sub.sets_event:
            self.put("status.event", 1)
        return StepOutcome(sub.sets_event, self.event, self.enabled, pre_settle)

    def start(self, sub: SubStep) -> None:
        self.migration_event(MigEvent.START, sub)
        self.put("generation", (self.get("generation") + 1) & 0xFFFFFFFF)
        self.put("mig_reason", MigReason.NONE)

    def request_pause(self, sub: SubStep) -> None:
        self.migration_event(MigEvent.REQUEST_PAUSE, sub)

    def cancel(self, reason: MigReason, sub: SubStep) -> None:
        self.migration_event(MigEvent.CANCEL, sub)
        self.put("mig_reason", reason)

    def arrive(self, sub: SubStep) -> None:
        self.migration_event(MigEvent.ARRIVE, sub)
        self.put("mig_reason", MigReason.COMPLETED)
        self._flag_present("migrated", sub)

    def group_reset(self, sub: SubStep) -> None:
        self.migration_event(MigEvent.GROUP_RESET, sub)
        self._flag_present("reset", sub)

    def _flag_present(self, flag: str, sub: SubStep) -> None:
        for slot, state in enumerate(self.dev_states()):
            if state is not DevState.EMPTY:
                self.put(flag_path(slot, flag), 1)
                sub.flag_set = True

    def slot_event(self, slot: int, event: DevEvent, sub: SubStep) -> None:
        self.device_event(slot, event, sub)
        if event in (DevEvent.HOT_ADD, DevEvent.SURPRISE_REMOVAL):  # VFM-DEV-013: a clean entry
            for path in (drv_path(slot), *(flag_path(slot, flag) for flag in SLOT_FLAGS)):
                self.put(path, 0)

    def allows(self, event: MigEvent) -> bool:
        return (self.mig_state, event) in MIGRATION_TRANSITIONS

    def slots_allowing(self, event: DevEvent) -> list[int]:
        return [slot for slot, state in enumerate(self.dev_states()) if (state, event) in DEVICE_TRANSITIONS]

    def state_of(self, data: bytes | bytearray) -> tuple[int, ...]:
        """``MIG_STATE`` and every ``DEV_STATE`` in ``data``."""
        return (self.get("mig_state", data), *(self.get(state_path(slot), data) for slot in range(self.num_slots)))


@cache
def cached_reset_value(params: CapabilityParams) -> bytes:
    """:func:`vfmig_proto.codec.reset_value`, computed once per ``params``."""
    return reset_value(params)


@cache
def _layout(
    num_slots: int,
) -> tuple[tuple[PlacedField, ...], tuple[str, ...], dict[str, PlacedField], tuple[int, ...]]:
    """The placed fields of a ``num_slots`` capability, their paths, the fields by path, the register offsets."""
    fields = tuple(placed_fields(num_slots))
    by_path = {placed.path: placed for placed in fields}
    return fields, tuple(by_path), by_path, tuple(sorted({placed.offset for placed in fields}))
