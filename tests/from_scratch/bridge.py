"""A migration bridge written from the specification, :mod:`vfmig_proto` and :mod:`conformance.interfaces` only.

The configuration space follows spec §3.1 (QEMU's pci-bridge with the migration capability linked first:
capability at 0x64 -> MSI at 0x4C -> Slot ID at 0x48 -> SHPC at 0x40).  Writes go through per-byte masks
(:mod:`vfmig_proto.access` for the capability, :mod:`vfmig_proto.pci` for the rest); every rule of the state
machines is looked up in :mod:`vfmig_proto.transitions`.

Each guest access and each host event is one step (VFM-ACC-007): a :class:`_Step` collects what changed,
then :meth:`ScratchBridge._end_step` raises the settled events, sets ``STATUS.EVENT``, signals at most one
interrupt and tells the observers.  Every transition of a host event is published on the bus it was created
with (``"mig_transition"``, ``"dev_transition"``), so that the suite sees the events it raises itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from conformance.interfaces.bridge import BridgeObserver, BridgeUnderTest, RestoreRefusedError, SlotFunction
from conformance.interfaces.common import EventSink
from vfmig_proto import pci
from vfmig_proto.access import apply_write_byte
from vfmig_proto.codec import find_field, read_field, store_field
from vfmig_proto.errors import ProtocolError
from vfmig_proto.headers import QEMU_BRIDGE_MSI_OFFSET, bridge_masks, bridge_reset_config
from vfmig_proto.layout import QEMU_BRIDGE_CAP_OFFSET, CapabilityParams, PlacedField, capability_length, slot_offset
from vfmig_proto.restore import restore_problem
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState
from vfmig_proto.transitions import (
    CATCH_UP,
    FANOUT,
    REPORT_EVENTS,
    SETTLED_STATES,
    Action,
    device_event_allowed,
    device_transition,
    fanout_targets,
    migration_event_allowed,
    migration_transition,
    settled,
)

# The layout of spec §3.1 (QEMU 7.2's pci-bridge, 1b36:0001): the configuration space after reset and its
# write masks are protocol data, built by vfmig_proto.headers.
CAPABILITY_AT = QEMU_BRIDGE_CAP_OFFSET
MSI_AT = QEMU_BRIDGE_MSI_OFFSET

SETTLE_ORDER = tuple(SETTLED_STATES)
"""The settled (``ALL_*``) events, in the order the bridge considers them."""


class SlotError(ValueError):
    """The host named a slot the bridge does not have, or added a function to an occupied one."""


class ConfigRangeError(ValueError):
    """A configuration access beyond the 256 bytes of the configuration space."""


@dataclass
class _Step:
    """What one step changed: whether it sets ``STATUS.EVENT`` (VFM-NOTIF-001), and what caused it."""

    cause: str
    sets_event: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _GuestWrite:
    """A legal guest write, once the masks applied it: where it went and the bytes it covered before."""

    offset: int
    before: bytes

    def touches(self, start: int, length: int = 1) -> bool:
        """Whether the write covers any of the ``length`` bytes from ``start``."""
        return self.offset < start + length and start < self.offset + len(self.before)

    def old_byte(self, position: int) -> int:
        """The byte at ``position`` before the write (``position`` is one it covers)."""
        return self.before[position - self.offset]


class _Fields:
    """The capability's fields this bridge reads and writes, placed once for its slot count."""

    def __init__(self, num_slots: int) -> None:
        self.mig_state = find_field(num_slots, "mig_state")
        self.mig_reason = find_field(num_slots, "mig_reason")
        self.generation = find_field(num_slots, "generation")
        self.event = find_field(num_slots, "status.event")
        self.enable = find_field(num_slots, "control.enable")
        self.event_ie = find_field(num_slots, "control.event_ie")

        def per_slot(name: str) -> tuple[PlacedField, ...]:
            return tuple(find_field(num_slots, f"device[{slot}].{name}") for slot in range(num_slots))

        self.dev_state = per_slot("dev_state")
        self.drv_state = per_slot("dev_ctrl.drv_state")
        self.migrated = per_slot("dev_status.migrated")
        self.reset = per_slot("dev_status.reset")
        self.protocol_error = per_slot("dev_status.protocol_error")


class ScratchBridge:
    """One emulated migration bridge."""

    def __init__(self, bus: EventSink, params: CapabilityParams, name: str) -> None:
        self.name = name
        self.num_slots = params.num_slots
        self.cap = CAPABILITY_AT
        self.observers: list[BridgeObserver] = []
        self.interrupt_sink: Callable[[], None] | None = None
        self._bus = bus
        self._params = params
        self._config = bridge_reset_config(params)
        self._writable, self._clearable = bridge_masks(params.num_slots)
        self._fields = _Fields(params.num_slots)
        self._slots: list[SlotFunction | None] = [None] * params.num_slots
        self._intx_high = False

    # ------------------------------------------------------------------ reading

    @property
    def bus(self) -> EventSink:
        """The event sink the bridge was created with."""
        return self._bus

    @property
    def functions(self) -> Sequence[SlotFunction | None]:
        """The function in each slot."""
        return tuple(self._slots)

    def _get(self, placed: PlacedField) -> int:
        return read_field(self._config, placed, self.cap)

    def _store(self, placed: PlacedField, value: int) -> None:
        store_field(self._config, placed, value, self.cap)

    @property
    def mig_state(self) -> MigState:
        """``MIG_STATE``."""
        return MigState(self._get(self._fields.mig_state))

    @property
    def generation(self) -> int:
        """``GENERATION``."""
        return self._get(self._fields.generation)

    def _slot_state(self, slot: int) -> DevState:
        return DevState(self._get(self._fields.dev_state[slot]))

    def _slot_states(self) -> list[DevState]:
        return [self._slot_state(slot) for slot in range(self.num_slots)]

    def capability_bytes(self) -> bytes:
        """The capability's current bytes."""
        return bytes(self._config[self.cap : self.cap + capability_length(self.num_slots)])

    def config_read(self, offset: int, width: int) -> int:
        """A guest configuration read: no side effect."""
        _check_range(offset, width)
        return int.from_bytes(self._config[offset : offset + width], "little")

    # ------------------------------------------------------------------ guest writes

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A guest configuration write: masked byte by byte, then what it means (reports, SBR, MSI mask)."""
        _check_range(offset, width)
        if width not in (1, 2, 4) or offset % width:
            return  # not a PCI transaction: nothing changes (VFM-ACC-003)
        write = _GuestWrite(offset, bytes(self._config[offset : offset + width]))
        for index, byte in enumerate(value.to_bytes(width, "little")):
            position = offset + index
            self._config[position] = apply_write_byte(
                self._config[position], byte, self._writable[position], self._clearable[position]
            )
        with self._step("guest") as step:
            self._interpret_write(write, step)

    def _interpret_write(self, write: _GuestWrite, step: _Step) -> None:
        for slot in range(self.num_slots):
            if write.touches(self.cap + slot_offset(slot) + 1):  # the slot's DEV_CTRL byte
                previous = read_field(write.before, self._fields.drv_state[slot], self.cap - write.offset)
                self._judge_report(slot, previous, step)
        if self._bit_rose(write, pci.PCI_BRIDGE_CONTROL, pci.PCI_BRIDGE_CTL_BUS_RESET):
            self._tell(lambda observer: observer.secondary_bus_reset_requested(self))
            self._reset_group(step)
        if write.touches(MSI_AT + pci.PCI_MSI_MASK_64, 4):
            self._release_pending_msi()

    def _bit_rose(self, write: _GuestWrite, position: int, bit: int) -> bool:
        """Whether ``write`` took ``bit`` of the byte at ``position`` from clear to set (an edge, not a level)."""
        return write.touches(position) and not write.old_byte(position) & bit and bool(self._config[position] & bit)

    def _tell(self, news: Callable[[BridgeObserver], None]) -> None:
        """Pass ``news`` to every observer (over a copy: an observer may leave while it is told)."""
        for observer in tuple(self.observers):
            news(observer)

    def _judge_report(self, slot: int, previous: int, step: _Step) -> None:
        """A write of ``DEV_CTRL.DRV_STATE``: the driver's report (spec §4.2)."""
        written = self._get(self._fields.drv_state[slot])
        state = self._slot_state(slot)
        why = self._report_refusal(slot, written)
        event = REPORT_EVENTS[DriverReport(written)] if why is None else None
        if event is not None and not device_event_allowed(state, event):
            why = f"no row for {event.name} in {state.name}"
        if why is not None or event is None:
            self._refuse_report(slot, previous, written, why or "refused")
            return
        outcome = device_transition(state, event)
        if outcome.action is Action.IGNORE:
            self._store(self._fields.drv_state[slot], previous)
            return
        self._store(self._fields.dev_state[slot], outcome.next_state)
        if outcome.next_state is DevState.READY:
            for request in CATCH_UP.get(self.mig_state, ()):
                self._host_slot_event(slot, request, step)

    def _report_refusal(self, slot: int, written: int) -> str | None:
        """Why a report cannot be taken whatever the slot's state, or None."""
        if written not in {report.value for report in DriverReport}:
            return "undefined DRV_STATE value"
        function = self._slots[slot]
        bus_master = function is not None and function.bus_master
        if bus_master and written == DriverReport.PAUSED:
            return "PAUSED reported while Bus Master Enable is set"
        if bus_master and written == DriverReport.NONE and self.mig_state is not MigState.IDLE:
            return "NONE reported with Bus Master Enable set mid-migration"
        return None

    def _refuse_report(self, slot: int, previous: int, written: int, why: str) -> None:
        self._store(self._fields.drv_state[slot], previous)
        self._store(self._fields.protocol_error[slot], 1)
        self._tell(lambda observer: observer.report_rejected(self, slot, written, why))

    # ------------------------------------------------------------------ host events

    def start(self) -> None:
        """START: a new GENERATION, no reason yet, the slots asked to dirty."""
        with self._step("start") as step:
            self._bridge_event(MigEvent.START, step)
            self._store(self._fields.generation, (self.generation + 1) & 0xFFFFFFFF)
            self._store(self._fields.mig_reason, MigReason.NONE)

    def request_pause(self) -> None:
        """REQUEST_PAUSE."""
        with self._step("request_pause") as step:
            self._bridge_event(MigEvent.REQUEST_PAUSE, step)

    def cancel(self, reason: MigReason) -> None:
        """CANCEL with ``reason`` (never NONE or COMPLETED)."""
        if reason in (MigReason.NONE, MigReason.COMPLETED):
            raise ProtocolError("migration", self.mig_state, MigEvent.CANCEL)
        with self._step(f"cancel:{reason.name}") as step:
            self._bridge_event(MigEvent.CANCEL, step)
            self._store(self._fields.mig_reason, reason)

    def arrive(self) -> None:
        """ARRIVE: the migration completed; every present slot learns it was migrated (VFM-FLAG-001)."""
        with self._step("arrive") as step:
            self._bridge_event(MigEvent.ARRIVE, step)
            self._store(self._fields.mig_reason, MigReason.COMPLETED)
            for slot, state in enumerate(self._slot_states()):
                if state is not DevState.EMPTY:
                    self._store(self._fields.migrated[slot], 1)
                    step.sets_event = True

    def group_reset(self) -> None:
        """A group reset the host performs (spec §7.9)."""
        with self._step("group_reset") as step:
            self._reset_group(step)

    def _reset_group(self, step: _Step) -> None:
        self._bridge_event(MigEvent.GROUP_RESET, step)
        for slot, function in enumerate(self._slots):
            if function is not None:
                function.function_level_reset("group")
            if self._slot_state(slot) is not DevState.EMPTY:
                self._store(self._fields.reset[slot], 1)
                step.sets_event = True

    def conventional_reset(self) -> None:
        """A conventional reset: reset values; the slots that hold a function are UNBOUND."""
        self._config = bridge_reset_config(self._params)
        for slot, function in enumerate(self._slots):
            if function is not None:
                self._store(self._fields.dev_state[slot], DevState.UNBOUND)
        self._update_intx()
        self._tell(lambda observer: observer.bridge_stepped(self, "conventional_reset"))

    def hot_add(self, slot: int, function: SlotFunction) -> None:
        """HOT_ADD of ``function`` into ``slot``."""
        self._check_slot(slot)
        if self._slots[slot] is not None:
            raise SlotError(f"slot {slot} is occupied")
        with self._step("hot_add") as step:
            self._slots[slot] = function
            self._host_slot_event(slot, DevEvent.HOT_ADD, step)
            self._clear_slot_flags(slot)

    def surprise_removal(self, slot: int) -> None:
        """SURPRISE_REMOVAL of the function in ``slot``."""
        self._check_slot(slot)
        with self._step("surprise_removal") as step:
            self._host_slot_event(slot, DevEvent.SURPRISE_REMOVAL, step)
            self._clear_slot_flags(slot)
            self._slots[slot] = None

    def device_error(self, slot: int) -> None:
        """DEVICE_ERROR of the function in ``slot``."""
        self._check_slot(slot)
        with self._step("device_error") as step:
            self._host_slot_event(slot, DevEvent.DEVICE_ERROR, step)

    def config_space(self) -> bytes:
        """The whole configuration space, as the host reads it."""
        return bytes(self._config)

    def restore(self, config: bytes, functions: Sequence[SlotFunction | None], *, dirty_page_shift: int) -> None:
        """Take over the source's configuration space and the destination's functions (spec §10.6)."""
        if len(config) != pci.PCI_CONFIG_SIZE or len(functions) != self.num_slots:
            raise RestoreRefusedError(
                f"expected {pci.PCI_CONFIG_SIZE} bytes and {self.num_slots} slots, "
                f"not {len(config)} bytes and {len(functions)} slots"
            )
        capability = config[self.cap : self.cap + capability_length(self.num_slots)]
        problem = restore_problem(self.capability_bytes(), capability, dirty_page_shift)  # spec §10.6
        if problem is not None:
            raise RestoreRefusedError(f"restored capability refused: {problem}")
        self._config[:] = config
        self._slots = list(functions)
        self._intx_high = self._intx_level()  # the level the source left; the stopped guest is not interrupted

    # ------------------------------------------------------------------ the machinery of a step

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.num_slots:
            raise SlotError(f"slot {slot} is outside 0..{self.num_slots - 1}")

    def _clear_slot_flags(self, slot: int) -> None:
        for placed in (
            self._fields.drv_state[slot],
            self._fields.migrated[slot],
            self._fields.reset[slot],
            self._fields.protocol_error[slot],
        ):
            self._store(placed, 0)

    def _bridge_event(self, event: MigEvent, step: _Step) -> None:
        """A bridge-wide event and its fan-out to the slots that have a row for it."""
        old = self.mig_state
        new = migration_transition(old, event)
        self._store(self._fields.mig_state, new)
        self._bus.publish("mig_transition", self.name, event=event, old=old, new=new)
        step.sets_event = step.sets_event or new is not old
        for slot in fanout_targets(event, self._slot_states()):
            self._host_slot_event(slot, FANOUT[event], step)

    def _host_slot_event(self, slot: int, event: DevEvent, step: _Step) -> None:
        old = self._slot_state(slot)
        new = device_transition(old, event).next_state
        self._store(self._fields.dev_state[slot], new)
        self._bus.publish("dev_transition", self.name, slot=slot, event=event, old=old, new=new)
        step.sets_event = step.sets_event or new is not old

    def _raise_settled_events(self, step: _Step) -> None:
        """Each ``ALL_*`` event the current state waits for, once every slot has settled (VFM-MIG-007)."""
        while True:
            states = self._slot_states()
            due = [
                event
                for event in SETTLE_ORDER
                if migration_event_allowed(self.mig_state, event) and settled(event, states)
            ]
            if not due:
                return
            self._bridge_event(due[0], step)

    @contextmanager
    def _step(self, cause: str) -> Iterator[_Step]:
        """One step (VFM-ACC-007): what the body changes is settled, flagged and signalled once it is done."""
        step = _Step(cause)
        yield step
        self._end_step(step)

    def _end_step(self, step: _Step) -> None:
        self._raise_settled_events(step)
        if step.sets_event:
            self._store(self._fields.event, 1)
            self._send_msi()
        self._update_intx()
        self._tell(lambda observer: observer.bridge_stepped(self, step.cause))

    # ------------------------------------------------------------------ interrupts (spec §6.2)

    def _events_enabled(self) -> bool:
        return bool(self._get(self._fields.enable)) and bool(self._get(self._fields.event_ie))

    def _msi_on(self) -> bool:
        return bool(self._config[MSI_AT + pci.PCI_MSI_FLAGS] & pci.PCI_MSI_FLAGS_ENABLE)

    def _send_msi(self) -> None:
        """One message for a step that set STATUS.EVENT, or a pending bit while the vector is masked."""
        if not (self._events_enabled() and self._msi_on()):
            return
        if self._config[MSI_AT + pci.PCI_MSI_MASK_64] & 0x01:
            self._config[MSI_AT + pci.PCI_MSI_PENDING_64] |= 0x01
            return
        self._interrupt()

    def _release_pending_msi(self) -> None:
        pending = self._config[MSI_AT + pci.PCI_MSI_PENDING_64] & 0x01
        if pending and not self._config[MSI_AT + pci.PCI_MSI_MASK_64] & 0x01:
            self._config[MSI_AT + pci.PCI_MSI_PENDING_64] &= 0xFE
            if self._msi_on():
                self._interrupt()

    def _intx_level(self) -> bool:
        """INTx follows STATUS.EVENT, ENABLE and EVENT_IE while MSI is off and INTx is not disabled."""
        command = int.from_bytes(self._config[pci.PCI_COMMAND : pci.PCI_COMMAND + 2], "little")
        return (
            not self._msi_on()
            and self._events_enabled()
            and bool(self._get(self._fields.event))
            and not command & pci.PCI_COMMAND_INTX_DISABLE
        )

    def _update_intx(self) -> None:
        """Assert or deassert INTx; a rising edge is one interrupt."""
        high = self._intx_level()
        rising = high and not self._intx_high
        self._intx_high = high
        if rising:
            self._interrupt()

    def _interrupt(self) -> None:
        if self.interrupt_sink is not None:
            self.interrupt_sink()


def _check_range(offset: int, width: int) -> None:
    if width < 1 or offset < 0 or offset + width > pci.PCI_CONFIG_SIZE:
        raise ConfigRangeError(f"a {width}-byte access at 0x{offset:x} is outside the configuration space")


class ScratchBridges:
    """The ``bridge`` target's implementation object."""

    def create_bridge(self, bus: EventSink, params: CapabilityParams, name: str) -> BridgeUnderTest:
        """A bridge after a conventional reset, every slot empty."""
        return ScratchBridge(bus, params, name)


def make() -> ScratchBridges:
    """``tests.from_scratch.bridge:make``."""
    return ScratchBridges()
