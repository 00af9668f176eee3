"""The capability as the spec says it must be: the protocol engine's decisions, stored in the capability's bytes.

The bridge suite's model (:class:`CapabilityModel`) decides nothing about the protocol itself: every report it
judges, every host event, catch-up and settled event is :class:`~vfmig_proto.engine.ProtocolEngine`'s, the same
engine the reference bridge and the tests call.  What is the suite's own is the capability around the protocol
state: the bytes a step must leave behind (from the reset value of :mod:`vfmig_proto.codec`), the mask model of
guest writes (:mod:`vfmig_proto.access`), and what the observers compare (fields by path, the register offsets,
``STATUS.EVENT`` and the interrupt's enables).  It knows nothing of the suite around it.

A step of the model (spec §4.1) is :meth:`CapabilityModel.begin`, one input (a report through
:meth:`~CapabilityModel.judge` and :meth:`~CapabilityModel.apply_report`, or a host event), then
:meth:`~CapabilityModel.finish`, which raises the settled events and sets ``STATUS.EVENT`` if the step's
effects call for it.  Each input returns the :class:`~vfmig_proto.engine.Effects` it committed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

from vfmig_proto.access import apply_write_byte, write_masks
from vfmig_proto.codec import read_field, reset_value, store_field
from vfmig_proto.engine import (
    DeviceTransition,
    Effects,
    ProtocolEngine,
    ReportVerdict,
    read_protocol_state,
)
from vfmig_proto.layout import CapabilityParams, PlacedField, capability_length, placed_fields
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState, SlotFlag
from vfmig_proto.transitions import SETTLED_STATES, Action, device_event_allowed, migration_event_allowed

SETTLED_EVENTS = tuple(SETTLED_STATES)
"""The migration events the bridge raises itself once every slot has settled (spec §4.3.9)."""
REPORT_NAMES = {report.value: report.name for report in DriverReport}
"""The name of each defined ``DRV_STATE`` value."""


def state_path(slot: int) -> str:
    """The path of ``slot``'s ``DEV_STATE``."""
    return f"device[{slot}].dev_state"


def drv_path(slot: int) -> str:
    """The path of ``slot``'s ``DRV_STATE``, the driver's report."""
    return f"device[{slot}].dev_ctrl.drv_state"


def flag_path(slot: int, flag: SlotFlag) -> str:
    """The path of one of ``slot``'s ``DEV_STATUS`` flags (a flag's value is its field's name)."""
    return f"device[{slot}].dev_status.{flag.value}"


def states_taken(effects: Effects, slot: int) -> tuple[DevState, ...]:
    """Each ``DEV_STATE`` ``slot`` takes in ``effects``, in order.

    For the effects of an accepted report and its catch-up: the row's next state, then each state catch-up moves
    the slot to (VFM-MIG-008); empty for a report that is ignored or rejected.
    """
    return tuple(
        change.new
        for change in effects.changes
        if isinstance(change, DeviceTransition) and change.slot == slot and change.action is Action.ACCEPT
    )


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
    """The capability as the spec says it must be: the engine's protocol state in the capability's bytes."""

    def __init__(self, params: CapabilityParams, cap_next: int) -> None:
        self.num_slots = params.num_slots
        self.length = capability_length(params.num_slots)
        self.data = bytearray(cached_reset_value(replace(params, next_pointer=cap_next)))
        masks = write_masks(params.num_slots)
        self.wmask = masks.wmask
        self.w1cmask = masks.w1cmask
        self.fields, self.paths, self.by_path, self.registers = _layout(params.num_slots)
        self.dev_ctrl = tuple(self.by_path[drv_path(slot)].offset for slot in range(self.num_slots))
        self._protocol_bytes = _protocol_bytes(self.by_path, self.num_slots)
        self.engine = ProtocolEngine(self.num_slots, read_protocol_state(self.data, self.num_slots))
        self._stale: frozenset[tuple[MigState, MigEvent]] = frozenset()
        self.step_effects = Effects()
        """What the step under way committed (for the coverage of the spec's space, conformance.spec_coverage)."""

    # ---- fields

    def get(self, path: str, data: bytes | bytearray | None = None) -> int:
        return read_field(self.data if data is None else data, self.by_path[path])

    def put(self, path: str, value: int) -> None:
        store_field(self.data, self.by_path[path], value)

    def take_over(self, data: bytes) -> None:
        """Hold ``data`` (a valid capability of as many slots) from now on: the bridge's, or the one it presents."""
        self.data[:] = data
        self.engine.load(read_protocol_state(self.data, self.num_slots))

    @property
    def mig_state(self) -> MigState:
        return self.engine.mig_state

    def dev_state(self, slot: int) -> DevState:
        return self.engine.dev_state(slot)

    def dev_states(self) -> list[DevState]:
        return self.engine.dev_states()

    @property
    def event(self) -> bool:
        return bool(self.get("status.event"))

    @property
    def enabled(self) -> bool:
        return bool(self.get("control.enable")) and bool(self.get("control.event_ie"))

    def state_of(self, data: bytes | bytearray) -> tuple[int, ...]:
        """``MIG_STATE`` and every ``DEV_STATE`` in ``data``."""
        return (self.get("mig_state", data), *(self.get(state_path(slot), data) for slot in range(self.num_slots)))

    # ---- a step (spec §4.1)

    def begin(self) -> None:
        """A step starts.  A settled event already due now is one the bridge failed to raise before, in a step
        that has been judged: the model took the bridge's state over, and VFM-MIG-007 forbids raising it later."""
        self._stale = frozenset((self.engine.mig_state, event) for event in self.engine.due_settled_events())
        self.step_effects = Effects()

    def finish(self, effects: Effects) -> StepOutcome:
        """Raise the settled events the tables call for (spec §4.3.9); set ``STATUS.EVENT`` if the step does.

        ``effects``: what the step's input committed.
        """
        pre_settle = self.engine.mig_state
        effects += self._commit(self.engine.settle(skip=self._stale))
        if effects.sets_event:
            self.put("status.event", 1)
        return StepOutcome(effects.sets_event, self.event, self.enabled, pre_settle)

    def _commit(self, effects: Effects) -> Effects:
        """Make the engine's ``effects`` true in the engine and in the capability's bytes."""
        self.engine.apply(effects)
        self.step_effects += effects
        for write in effects.writes:
            self.put(write.path, write.value)
        return effects

    # ---- the guest side (spec §3.3, §4.2, §4.5)

    def apply_write(self, offset: int, data: bytes) -> None:
        """The mask model (VFM-ACC-001) on the bytes a legal write covers, ``offset`` from the capability.

        A write that covers ``DRV_STATE`` or a ``DEV_STATUS`` flag changes the protocol state behind the engine's
        back (before any report is judged): the engine takes it over.
        """
        for index, value in enumerate(data):
            position = offset + index
            self.data[position] = apply_write_byte(
                self.data[position], value, self.wmask[position], self.w1cmask[position]
            )
        if not self._protocol_bytes.isdisjoint(range(offset, offset + len(data))):
            self.engine.load(read_protocol_state(self.data, self.num_slots))

    def judge(self, slot: int, old: int, bus_master: bool) -> ReportVerdict:
        """The engine's verdict on the report now stored in ``slot``'s ``DRV_STATE`` (the mask model applied)."""
        return self.engine.judge_report(slot, self.get(drv_path(slot)), bus_master=bus_master, old=old)

    def apply_report(self, verdict: ReportVerdict) -> Effects:
        """A judged report carried out, with the catch-up of a driver that bound mid-migration (VFM-MIG-008)."""
        return self._commit(self.engine.report(verdict) + self.engine.catch_up(verdict))

    # ---- the host side (spec §4.3)

    def migration_event(self, event: MigEvent, reason: MigReason | None = None) -> Effects:
        """A migration event the hypervisor causes, with its fan-out and the fields it sets (spec §4.3)."""
        return self._commit(self.engine.migration_event(event, reason=reason))

    def slot_event(self, slot: int, event: DevEvent) -> Effects:
        """A host event of one slot: HOT_ADD, SURPRISE_REMOVAL, DEVICE_ERROR (spec §4.2.1)."""
        return self._commit(self.engine.slot_event(slot, event))

    def allows(self, event: MigEvent) -> bool:
        return migration_event_allowed(self.engine.mig_state, event)

    def slots_allowing(self, event: DevEvent) -> list[int]:
        return [slot for slot, state in enumerate(self.engine.dev_states()) if device_event_allowed(state, event)]


@cache
def cached_reset_value(params: CapabilityParams) -> bytes:
    """:func:`vfmig_proto.codec.reset_value`, computed once per ``params``."""
    return reset_value(params)


def _protocol_bytes(by_path: dict[str, PlacedField], num_slots: int) -> frozenset[int]:
    """The capability's bytes that hold a slot's protocol fields a guest may write: DRV_STATE and the flags."""
    paths = [path for slot in range(num_slots) for path in (drv_path(slot), *(flag_path(slot, f) for f in SlotFlag))]
    return frozenset(by_path[path].offset + by_path[path].field.lsb // 8 for path in paths)


@cache
def _layout(
    num_slots: int,
) -> tuple[tuple[PlacedField, ...], tuple[str, ...], dict[str, PlacedField], tuple[int, ...]]:
    """The placed fields of a ``num_slots`` capability, their paths, the fields by path, the register offsets."""
    fields = tuple(placed_fields(num_slots))
    by_path = {placed.path: placed for placed in fields}
    return fields, tuple(by_path), by_path, tuple(sorted({placed.offset for placed in fields}))
