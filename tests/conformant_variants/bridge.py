"""``bridge`` variants the specification allows: the slots of a step taken in another order."""

from __future__ import annotations

from reference_impl.bridge import BridgeStep, MigrationBridge
from reference_impl.events import EventBus
from vfmig_proto.engine import Change, DeviceTransition, Effects
from vfmig_proto.layout import CapabilityParams


def _reversed_fan_outs(changes: tuple[Change, ...]) -> tuple[Change, ...]:
    """``changes`` with each run of device transitions of distinct slots in the reverse slot order."""
    result: list[Change] = []
    run: list[DeviceTransition] = []

    def flush() -> None:
        if len({item.slot for item in run}) == len(run):
            run.sort(key=lambda item: -item.slot)
        result.extend(run)
        run.clear()

    for change in changes:
        if isinstance(change, DeviceTransition):
            run.append(change)
            continue
        flush()
        result.append(change)
    flush()
    return tuple(result)


class ReverseSlotOrderBridge(MigrationBridge):
    """Delivers a fan-out to the slots from the last to the first and resets a group's functions in the reverse
    slot order.  Within one step the order is the bridge's own: the step is indivisible (VFM-ACC-007,
    VFM-MIG-006), and only its result is visible."""

    def commit(self, effects: Effects, step: BridgeStep) -> None:
        super().commit(Effects(_reversed_fan_outs(effects.changes)), step)

    def reset_group(self, step: BridgeStep) -> None:
        functions = list(self.functions)
        self.functions[:] = [None] * self.num_slots
        try:
            super().reset_group(step)  # the transitions and DEV_STATUS.RESET, no function yet
        finally:
            self.functions[:] = functions
        for function in reversed(functions):
            if function is not None:
                function.function_level_reset("group")


class _ReverseSlotOrder:
    def create_bridge(self, bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        return ReverseSlotOrderBridge(bus, params, name=name)


def reverse_slot_order() -> _ReverseSlotOrder:
    """Makes :class:`ReverseSlotOrderBridge` bridges."""
    return _ReverseSlotOrder()
