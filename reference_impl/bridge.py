"""The migration bridge: QEMU's PCI-to-PCI bridge plus the vfmig migration capability.

Theory of operation
-------------------

The bridge is what the guest sees: a type-1 configuration space (the header,
then a capability list that runs migration capability -> MSI -> Slot ID ->
SHPC, spec §3.1) and, behind it, up to ``NUM_SLOTS`` functions.  Two parties
act on it:

* the **guest**, through :meth:`MigrationBridge.config_read` and
  :meth:`MigrationBridge.config_write`.  Every write goes through the per-byte
  masks (:mod:`vfmig_proto.access` for the capability, :mod:`vfmig_proto.pci`
  for the rest), then the bridge works out what the write meant: a driver
  report for each slot whose ``DEV_CTRL`` byte it covered (spec §4.2,
  VFM-DEV-001), a Secondary Bus Reset edge (the group reset, VFM-ERR-004);
* the **hypervisor**, through the host-event methods
  (:meth:`~MigrationBridge.start`, :meth:`~MigrationBridge.request_pause`,
  :meth:`~MigrationBridge.cancel`, :meth:`~MigrationBridge.arrive`,
  :meth:`~MigrationBridge.group_reset`, :meth:`~MigrationBridge.hot_add`,
  :meth:`~MigrationBridge.surprise_removal`, :meth:`~MigrationBridge.device_error`).

Each call is one *step* (spec VFM-ACC-007, VFM-MIG-006): the state changes,
the fan-out, the catch-up for a late binder, the settled ``ALL_*`` event and
the setting of ``STATUS.EVENT`` all happen before the call returns, and then
the interrupt is signalled at most once (VFM-NOTIF-002).

Every protocol decision is the :class:`~vfmig_proto.engine.ProtocolEngine`'s:
the bridge loads it from the registers when a step begins
(:meth:`MigrationBridge.begin_step`), asks it what an input does, and commits
the answer change by change (:meth:`MigrationBridge.commit`): each register
written, then each transition published.  The bridge itself keeps the
configuration space, the write masks, the functions behind it and the
interrupt; it keeps no copy of a rule.  A step is a sequence of named public
phases, listed on :class:`MigrationBridge`, that a variant overrides one at a
time.

The bridge tells its :class:`BridgeObserver` (the hypervisor) about every step
and every rejected report before the guest's write completes, so that the
hypervisor can cancel "at the latest before it completes the guest write that
brought it about" (VFM-MIG-011).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reference_impl.events import EventBus, EventKind
from vfmig_proto import headers
from vfmig_proto.access import apply_write_byte
from vfmig_proto.codec import Capability, decode_capability, find_field, read_field, store_field
from vfmig_proto.engine import (
    Change,
    DeviceTransition,
    Effects,
    MigrationTransition,
    ProtocolEngine,
    ProtocolState,
    ReportRejected,
    ReportVerdict,
    read_protocol_state,
    writes_of,
)
from vfmig_proto.headers import bridge_masks, bridge_reset_config
from vfmig_proto.layout import QEMU_BRIDGE_CAP_OFFSET, CapabilityParams, PlacedField, capability_length, slot_offset
from vfmig_proto.outcomes import RestoreRefusedError
from vfmig_proto.pci import (
    PCI_BRIDGE_CONTROL,
    PCI_BRIDGE_CTL_BUS_RESET,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_CONFIG_SIZE,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_ENABLE,
    PCI_MSI_MASK_64,
    PCI_MSI_PENDING_64,
)
from vfmig_proto.restore import restore_problem
from vfmig_proto.states import DevEvent, DevState, MigEvent, MigReason, MigState

# QEMU 7.2's pci-bridge (spec §3.1): its layout is protocol data, in vfmig_proto.headers.
QEMU_BRIDGE_VENDOR_ID = headers.QEMU_BRIDGE_VENDOR_ID
QEMU_BRIDGE_DEVICE_ID = headers.QEMU_BRIDGE_DEVICE_ID
SHPC_OFFSET = headers.QEMU_BRIDGE_SHPC_OFFSET
SLOTID_OFFSET = headers.QEMU_BRIDGE_SLOTID_OFFSET
MSI_OFFSET = headers.QEMU_BRIDGE_MSI_OFFSET
MIGRATION_CAP_OFFSET = QEMU_BRIDGE_CAP_OFFSET
"""Spec VFM-CAP-003: the first free DWORD after QEMU's 24-byte MSI capability at 0x4C."""


class SlotFunction(Protocol):
    """What the bridge needs from a function behind it."""

    name: str

    @property
    def bus_master(self) -> bool:
        """Whether the function's Command register has Bus Master Enable set."""

    def function_level_reset(self, how: str) -> None:
        """Reset the function (``how`` says why: ``"flr"`` or ``"group"``)."""


class BridgeObserver(Protocol):
    """The hypervisor's view of the bridge: told of every step before the access that caused it completes."""

    def bridge_stepped(self, bridge: MigrationBridge, cause: str) -> None:
        """A step changed the bridge (``cause`` names the host event or ``"guest"``)."""

    def report_rejected(self, bridge: MigrationBridge, slot: int, report: int, why: str) -> None:
        """The bridge rejected a driver report (spec VFM-DEV-010)."""

    def secondary_bus_reset_requested(self, bridge: MigrationBridge) -> None:
        """The guest set Secondary Bus Reset; called before the group reset takes effect (VFM-MIG-011)."""


class BridgeError(ValueError):
    """A host-side misuse of the bridge: a slot out of range, a restore that fails a check."""


class CapabilityRefusedError(BridgeError, RestoreRefusedError):
    """A restored capability fails a check of spec §10.6 (VFM-SEC-008): the protocol's
    :class:`~vfmig_proto.outcomes.RestoreRefusedError`, and a :class:`BridgeError` as every refusal of this
    bridge is."""


@dataclass
class BridgeStep:
    """One step (spec §4.1, VFM-ACC-007): who caused it and the engine's effects committed in it."""

    causes: list[str]
    effects: Effects = field(default_factory=Effects)

    @property
    def sets_event(self) -> bool:
        """Whether the step sets STATUS.EVENT and signals the event interrupt (VFM-NOTIF-001)."""
        return self.effects.sets_event


class MigrationBridge:
    """The emulated migration bridge of one guest on one host.

    The public methods below the host-event methods are the *phases* of a
    step, named and documented so that a variant of the bridge (a deliberately
    faulty one in the conformance catalogue, say) overrides one phase instead
    of copying the machinery: :meth:`begin_step`, :meth:`on_guest_write`,
    :meth:`on_driver_report`, :meth:`judge_report`, :meth:`apply_report`, :meth:`catch_up`,
    :meth:`report_rejected`, :meth:`migration_event`, :meth:`slot_event`,
    :meth:`reset_group`, :meth:`commit`, :meth:`settle`, :meth:`finish_step`
    and the interrupt phases :meth:`signal_event`, :meth:`send_msi`,
    :meth:`update_intx`.
    """

    def __init__(
        self,
        bus: EventBus,
        params: CapabilityParams | None = None,
        *,
        name: str = "bridge",
    ) -> None:
        self.bus = bus
        self.name = name
        self.params = params or CapabilityParams()
        self.num_slots = self.params.num_slots
        self.cap = MIGRATION_CAP_OFFSET
        self.config = bridge_reset_config(self.params)
        self.wmask, self.w1cmask = bridge_masks(self.num_slots)
        """Per-byte write and write-1-to-clear masks of the 256-byte config space (VFM-ACC-001)."""
        self.functions: list[SlotFunction | None] = [None] * self.num_slots
        self.observers: list[BridgeObserver] = []
        self.interrupt_sink: Callable[[], None] | None = None
        """Called once per interrupt the bridge signals (MSI message, or INTx rising edge)."""
        self.intx_asserted = False
        """Whether the bridge currently asserts its INTx pin for migration events (VFM-NOTIF-003)."""
        self.engine = ProtocolEngine(self.num_slots)
        """The protocol rules; loaded from the registers at the start of every step (:meth:`begin_step`)."""
        self._f = _FieldIndex(self.num_slots)

    # ------------------------------------------------------------------ field access (host side)

    def field(self, path: str) -> int:
        """The current value of a capability field, e.g. ``"mig_state"`` or ``"device[0].dev_state"``."""
        return read_field(self.config, self._f.get(path), self.cap)

    def set_field(self, path: str, value: int) -> None:
        """Set a capability field as the bridge does (no access rules, no state machine)."""
        store_field(self.config, self._f.get(path), value, self.cap)

    @property
    def mig_state(self) -> MigState:
        """``MIG_STATE``."""
        return MigState(read_field(self.config, self._f.mig_state, self.cap))

    @property
    def mig_reason(self) -> MigReason:
        """``MIG_REASON``."""
        return MigReason(read_field(self.config, self._f.mig_reason, self.cap))

    @property
    def generation(self) -> int:
        """``GENERATION``."""
        return read_field(self.config, self._f.generation, self.cap)

    def dev_state(self, slot: int) -> DevState:
        """The ``DEV_STATE`` of ``slot``."""
        return DevState(read_field(self.config, self._f.dev_state[self._slot(slot)], self.cap))

    def dev_states(self) -> list[DevState]:
        """Every slot's ``DEV_STATE``, in slot order."""
        return [DevState(read_field(self.config, placed, self.cap)) for placed in self._f.dev_state]

    def dev_status(self, slot: int) -> tuple[bool, bool, bool]:
        """``(MIGRATED, RESET, PROTOCOL_ERROR)`` of ``slot``."""
        index = self._slot(slot)
        return (
            bool(read_field(self.config, self._f.migrated[index], self.cap)),
            bool(read_field(self.config, self._f.reset[index], self.cap)),
            bool(read_field(self.config, self._f.protocol_error[index], self.cap)),
        )

    def protocol_state(self) -> ProtocolState:
        """The registers of chapter 4 as the capability holds them now."""
        return read_protocol_state(self.config, self.num_slots, self.cap)

    def devfn(self, slot: int) -> int:
        """The device/function number of ``slot``'s function on the secondary bus (``DEV_DEVFN``)."""
        return read_field(self.config, self._f.devfn[self._slot(slot)], self.cap)

    def slot_of_devfn(self, devfn: int) -> int | None:
        """The slot whose ``DEV_DEVFN`` is ``devfn``, or None."""
        for slot in range(self.num_slots):
            if self.devfn(slot) == devfn:
                return slot
        return None

    def bus_master(self, slot: int) -> bool:
        """Whether the function in ``slot`` has Bus Master Enable set (False for an empty slot)."""
        function = self.functions[slot]
        return function is not None and function.bus_master

    @property
    def secondary_bus_reset(self) -> bool:
        """Whether Bridge Control's Secondary Bus Reset bit is set."""
        return bool(self.config[PCI_BRIDGE_CONTROL] & PCI_BRIDGE_CTL_BUS_RESET)

    def capability_bytes(self) -> bytes:
        """The capability's bytes, as the migration stream carries them (spec VFM-REP-001)."""
        return bytes(self.config[self.cap : self.cap + capability_length(self.num_slots)])

    def capability(self) -> Capability:
        """The capability, decoded (for reports and tests; slower than :meth:`field`)."""
        return decode_capability(self.capability_bytes())

    def _slot(self, slot: int) -> int:
        if not 0 <= slot < self.num_slots:
            raise BridgeError(f"slot {slot} is outside 0..{self.num_slots - 1}")
        return slot

    # ------------------------------------------------------------------ guest side

    def config_read(self, offset: int, width: int) -> int:
        """A guest configuration read of ``width`` bytes at ``offset`` (no side effects, VFM-ACC-006)."""
        _check_access(offset, width)
        value = int.from_bytes(self.config[offset : offset + width], "little")
        self.bus.publish(EventKind.CONFIG_READ, self.name, target="bridge", offset=offset, width=width, value=value)
        return value

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A guest configuration write; completes normally whatever it covers (VFM-ACC-005)."""
        _check_access(offset, width)
        self.bus.publish(EventKind.CONFIG_WRITE, self.name, target="bridge", offset=offset, width=width, value=value)
        if width not in (1, 2, 4) or offset % width:
            return  # No PCI transaction looks like this: it changes nothing (VFM-ACC-003).
        before = bytes(self.config[offset : offset + width])
        data = value.to_bytes(width, "little")
        for index in range(width):
            position = offset + index
            self.config[position] = apply_write_byte(
                self.config[position], data[index], self.wmask[position], self.w1cmask[position]
            )
        step = self.begin_step("guest")
        self.on_guest_write(offset, width, before, step)
        self.finish_step(step)

    # ------------------------------------------------------------------ host side: migration events

    def start(self) -> None:
        """START (spec VFM-MIG-002): GENERATION + 1, MIG_REASON NONE, MIG_STATE PREPARE, fan-out."""
        self._host_step("start", lambda step: self.migration_event(MigEvent.START, step))

    def request_pause(self) -> None:
        """REQUEST_PAUSE: the hypervisor switches over; devices are asked to pause."""
        self._host_step("request_pause", lambda step: self.migration_event(MigEvent.REQUEST_PAUSE, step))

    def cancel(self, reason: MigReason) -> None:
        """CANCEL with ``reason`` (spec VFM-MIG-009, VFM-MIG-010); :class:`ProtocolError` for NONE or COMPLETED."""
        self._host_step(f"cancel:{reason.name}", lambda step: self.migration_event(MigEvent.CANCEL, step, reason))

    def arrive(self) -> None:
        """ARRIVE on the destination: MIG_REASON COMPLETED, MIGRATED set in every present slot (VFM-FLAG-001)."""
        self._host_step("arrive", lambda step: self.migration_event(MigEvent.ARRIVE, step))

    def group_reset(self) -> None:
        """A group reset the hypervisor performs (spec §7.9): as if the guest had toggled Secondary Bus Reset."""
        self._host_step("group_reset", self.reset_group)

    # ------------------------------------------------------------------ host side: slot events

    def hot_add(self, slot: int, function: SlotFunction) -> None:
        """HOT_ADD: ``function`` appears in ``slot`` (spec VFM-DEV-013)."""
        present = self.functions[self._slot(slot)]
        if present is not None:
            raise BridgeError(f"slot {slot} already holds {present.name!r}")
        step = self.begin_step("hot_add")
        self.functions[slot] = function
        self.slot_event(slot, DevEvent.HOT_ADD, step)
        self.bus.publish(EventKind.HOT_PLUG, self.name, slot=slot, action="add", function=function.name)
        self.finish_step(step)

    def surprise_removal(self, slot: int) -> None:
        """SURPRISE_REMOVAL: the function in ``slot`` is gone (spec §7.9)."""
        step = self.begin_step("surprise_removal")
        self.slot_event(self._slot(slot), DevEvent.SURPRISE_REMOVAL, step)
        function = self.functions[slot]
        self.functions[slot] = None
        self.bus.publish(
            EventKind.HOT_PLUG, self.name, slot=slot, action="remove", function=function.name if function else None
        )
        self.finish_step(step)

    def device_error(self, slot: int) -> None:
        """DEVICE_ERROR: the function in ``slot`` reported an uncorrectable error."""
        self._host_step("device_error", lambda step: self.slot_event(self._slot(slot), DevEvent.DEVICE_ERROR, step))

    def _host_step(self, cause: str, phase: Callable[[BridgeStep], None]) -> None:
        step = self.begin_step(cause)
        phase(step)
        self.finish_step(step)

    # ------------------------------------------------------------------ destination restore, reset

    def restore_capability(self, data: bytes, *, dirty_page_shift: int) -> None:
        """Load the capability from the migration stream (spec VFM-REP-001), after the checks of §10.6.

        Raises :class:`CapabilityRefusedError` naming the failed check; the bridge is
        then unchanged (VFM-SEC-008: the destination does not take over).
        """
        self._check_restored(data, dirty_page_shift)
        self.config[self.cap : self.cap + len(data)] = data
        self.bus.publish(EventKind.MIG_TRANSITION, self.name, event="restore", old=None, new=self.mig_state)

    def config_space(self) -> bytes:
        """The whole configuration space as the host reads it, with no guest access and no side effect: what the
        source saves into the migration stream once the vCPUs have stopped (VFM-REP-001)."""
        return bytes(self.config)

    def restore(self, config: bytes, functions: Sequence[SlotFunction | None], *, dirty_page_shift: int) -> None:
        """On the destination, before ARRIVE: take over the source's saved :meth:`config_space` (VFM-REP-001).

        The capability in ``config`` must pass the checks of spec §10.6 against this bridge's parameters and the
        host's dirty tracking granularity ``dirty_page_shift``; otherwise :class:`CapabilityRefusedError` names
        the failed check and the bridge is unchanged (VFM-SEC-008).  Then the bridge presents every byte of
        ``config`` (the capability with its GENERATION, what the guest programmed in the header and MSI) and
        holds ``functions[slot]`` in each slot, with no HOT_ADD: the restored ``DEV_STATE`` of each slot stays.
        """
        if len(functions) != self.num_slots:
            raise BridgeError(f"{len(functions)} functions restored into {self.num_slots} slots")
        if len(config) != PCI_CONFIG_SIZE:
            raise CapabilityRefusedError(f"the saved config space has {len(config)} bytes, not {PCI_CONFIG_SIZE}")
        self._check_restored(config[self.cap : self.cap + len(self.capability_bytes())], dirty_page_shift)
        self.config[:] = config
        self.functions[:] = functions

    def _check_restored(self, capability: bytes, dirty_page_shift: int) -> None:
        problem = restore_problem(self.capability_bytes(), capability, dirty_page_shift)
        if problem is not None:
            raise CapabilityRefusedError(f"restored capability refused: {problem}")

    def conventional_reset(self) -> None:
        """A conventional reset of the bridge (spec VFM-CAP-006): reset values; present functions UNBOUND."""
        self.config = bridge_reset_config(self.params)
        for slot, function in enumerate(self.functions):
            if function is not None:
                store_field(self.config, self._f.dev_state[slot], DevState.UNBOUND, self.cap)
        self.update_intx()
        for observer in tuple(self.observers):
            observer.bridge_stepped(self, "conventional_reset")

    # ------------------------------------------------------------------ the phases of a step

    def begin_step(self, cause: str) -> BridgeStep:
        """A step starts: the engine takes the registers over, whoever wrote them last (a restore, the guest)."""
        self.engine.load(self.protocol_state())
        return BridgeStep([cause])

    def on_guest_write(self, offset: int, width: int, before: bytes, step: BridgeStep) -> None:
        """What a legal guest write meant, after the masks applied it (``before``: the bytes it covered).

        A report for each slot whose ``DEV_CTRL`` byte it covers (VFM-DEV-001), a group reset on a 0 -> 1
        edge of Secondary Bus Reset (VFM-ERR-004), the held MSI message on unmask, the INTx level.
        """
        for slot in range(self.num_slots):
            ctrl = self.cap + slot_offset(slot) + 1
            if offset <= ctrl < offset + width:
                self.on_driver_report(slot, read_field(before, self._f.drv_state[slot], self.cap - offset), step)
        if offset <= PCI_BRIDGE_CONTROL < offset + width:
            was_set = bool(before[PCI_BRIDGE_CONTROL - offset] & PCI_BRIDGE_CTL_BUS_RESET)
            if self.secondary_bus_reset and not was_set:
                for observer in tuple(self.observers):
                    observer.secondary_bus_reset_requested(self)
                self.reset_group(step)
        mask = MSI_OFFSET + PCI_MSI_MASK_64
        if offset < mask + 4 and mask < offset + width:
            self.msi_mask_written()
        if offset <= PCI_COMMAND + 1 < offset + width or offset <= self.cap + self._f.status_offset < offset + width:
            self.update_intx()

    def on_driver_report(self, slot: int, old_report: int, step: BridgeStep) -> None:
        """A write of ``slot``'s ``DEV_CTRL.DRV_STATE``, whose value before the write was ``old_report``.

        The report is judged (:meth:`judge_report`), its effects committed, and a driver that bound
        mid-migration caught up (:meth:`catch_up`), all within the write (VFM-DEV-004).
        """
        written = read_field(self.config, self._f.drv_state[slot], self.cap)
        verdict = self.judge_report(slot, old_report, written, self.bus_master(slot))
        self.apply_report(verdict, step)
        self.catch_up(verdict, step)

    def judge_report(self, slot: int, old_report: int, written: int, bus_master: bool) -> ReportVerdict:
        """The verdict on a report: the device table and the BME rule (VFM-DEV-002, 003, 010, 011)."""
        return self.engine.judge_report(slot, written, bus_master=bus_master, old=old_report)

    def apply_report(self, verdict: ReportVerdict, step: BridgeStep) -> None:
        """Carry a verdict out: the row taken (VFM-DEV-002), or ``DRV_STATE`` restored (VFM-DEV-003) and, for a
        rejection, ``PROTOCOL_ERROR`` set and the hypervisor told (VFM-DEV-010)."""
        self.commit(self.engine.report(verdict), step)

    def catch_up(self, verdict: ReportVerdict, step: BridgeStep) -> None:
        """Bring a slot that a report moved to READY up to the migration's phase (VFM-MIG-008)."""
        self.commit(self.engine.catch_up(verdict), step)

    def report_rejected(self, verdict: ReportVerdict) -> None:
        """Tell the bus and the hypervisor of a rejected report (VFM-DEV-010), before the write completes."""
        slot, written = verdict.slot, verdict.written
        self.bus.publish(
            EventKind.REPORT_REJECTED, self.name, slot=slot, report=written, state=verdict.state, why=verdict.reason
        )
        for observer in tuple(self.observers):
            observer.report_rejected(self, slot, written, verdict.reason)

    def migration_event(self, event: MigEvent, step: BridgeStep, reason: MigReason | None = None) -> None:
        """A migration event the hypervisor causes, with its fan-out and the fields it sets (spec §4.3)."""
        self.commit(self.engine.migration_event(event, reason=reason), step)

    def slot_event(self, slot: int, event: DevEvent, step: BridgeStep) -> None:
        """A host event for one slot: HOT_ADD, SURPRISE_REMOVAL (with a clean entry, VFM-DEV-013), DEVICE_ERROR."""
        self.commit(self.engine.slot_event(slot, event), step)

    def reset_group(self, step: BridgeStep) -> None:
        """GROUP_RESET (VFM-ERR-004): the transitions and DEV_STATUS.RESET (VFM-ERR-005), then every function reset."""
        self.migration_event(MigEvent.GROUP_RESET, step)
        for function in self.functions:
            if function is not None:
                function.function_level_reset("group")

    def commit(self, effects: Effects, step: BridgeStep) -> None:
        """Make the engine's effects true, change by change: the registers, the engine, then the bus.

        Each change is in the registers before it is published, so that whoever listens (and may act on the
        bridge from within, as the hypervisor does on a rejected report) sees the bridge as it now is.
        """
        for change in effects.changes:
            for write in writes_of(change):
                store_field(self.config, self._f.get(write.path), write.value, self.cap)
            self.engine.apply_change(change)
            step.effects += Effects((change,))
            self._publish(change)

    def _publish(self, change: Change) -> None:
        if isinstance(change, MigrationTransition):
            self.bus.publish(EventKind.MIG_TRANSITION, self.name, **_fields_of(change), generation=self.generation)
        elif isinstance(change, DeviceTransition):
            self.bus.publish(EventKind.DEV_TRANSITION, self.name, **_fields_of(change))
        elif isinstance(change, ReportRejected):
            self.report_rejected(change.verdict)

    def settle(self, step: BridgeStep) -> None:
        """Raise the settled events every slot has settled for, in this step (VFM-MIG-007)."""
        self.commit(self.engine.settle(), step)

    def finish_step(self, step: BridgeStep) -> None:
        """End a step: settled events, STATUS.EVENT and one interrupt if it sets it (VFM-NOTIF-001/002)."""
        self.settle(step)
        if step.sets_event:
            store_field(self.config, self._f.event, 1, self.cap)
            self.signal_event()
        self.update_intx()
        for observer in tuple(self.observers):
            observer.bridge_stepped(self, ",".join(step.causes))

    # ------------------------------------------------------------------ interrupts (spec §6.2)

    @property
    def events_enabled(self) -> bool:
        """Whether the guest enabled the event interrupt: CONTROL.ENABLE and CONTROL.EVENT_IE (VFM-NOTIF-002)."""
        return bool(self.field("control.enable")) and bool(self.field("control.event_ie"))

    @property
    def msi_enabled(self) -> bool:
        """Whether the guest enabled MSI in the bridge's MSI capability."""
        return bool(self.config[MSI_OFFSET + PCI_MSI_FLAGS] & PCI_MSI_FLAGS_ENABLE)

    def signal_event(self) -> None:
        """One MSI message for a step that set STATUS.EVENT (VFM-NOTIF-002)."""
        if not self.events_enabled or not self.msi_enabled:
            return
        if self.config[MSI_OFFSET + PCI_MSI_MASK_64] & 0x01:
            self.config[MSI_OFFSET + PCI_MSI_PENDING_64] |= 0x01  # held pending until unmasked (spec §6.2)
            return
        self.send_msi()

    def send_msi(self) -> None:
        """Send the MSI message."""
        self.bus.publish(EventKind.BRIDGE_INTERRUPT, self.name, mode="msi")
        if self.interrupt_sink is not None:
            self.interrupt_sink()

    def msi_mask_written(self) -> None:
        """Unmasking a vector with its pending bit set sends the held message."""
        pending = self.config[MSI_OFFSET + PCI_MSI_PENDING_64] & 0x01
        if pending and not self.config[MSI_OFFSET + PCI_MSI_MASK_64] & 0x01:
            self.config[MSI_OFFSET + PCI_MSI_PENDING_64] &= 0xFE
            if self.msi_enabled:
                self.send_msi()

    def update_intx(self) -> None:
        """INTx follows STATUS.EVENT & ENABLE & EVENT_IE while MSI is off (VFM-NOTIF-003)."""
        command = int.from_bytes(self.config[PCI_COMMAND : PCI_COMMAND + 2], "little")
        asserted = (
            not self.msi_enabled
            and self.events_enabled
            and bool(self.field("status.event"))
            and not command & PCI_COMMAND_INTX_DISABLE
        )
        rising = asserted and not self.intx_asserted
        self.intx_asserted = asserted
        if rising:
            self.bus.publish(EventKind.BRIDGE_INTERRUPT, self.name, mode="intx")
            if self.interrupt_sink is not None:
                self.interrupt_sink()


class _FieldIndex:
    """The placed fields the bridge touches, looked up once per slot count."""

    def __init__(self, num_slots: int) -> None:
        self._num_slots = num_slots
        self.mig_state = find_field(num_slots, "mig_state")
        self.mig_reason = find_field(num_slots, "mig_reason")
        self.generation = find_field(num_slots, "generation")
        self.event = find_field(num_slots, "status.event")
        self.status_offset = self.event.offset
        self.dev_state = self._per_slot("dev_state")
        self.drv_state = self._per_slot("dev_ctrl.drv_state")
        self.migrated = self._per_slot("dev_status.migrated")
        self.reset = self._per_slot("dev_status.reset")
        self.protocol_error = self._per_slot("dev_status.protocol_error")
        self.devfn = self._per_slot("dev_devfn")

    def _per_slot(self, name: str) -> Sequence[PlacedField]:
        return tuple(find_field(self._num_slots, f"device[{slot}].{name}") for slot in range(self._num_slots))

    def get(self, path: str) -> PlacedField:
        return find_field(self._num_slots, path)


class ConfigAccessError(ValueError):
    """A config access outside the 256-byte configuration space."""


def _fields_of(transition: MigrationTransition | DeviceTransition) -> dict[str, object]:
    """A transition's fields in their declared order: the data of the event that publishes it."""
    return {item.name: getattr(transition, item.name) for item in dataclasses.fields(transition)}


def _check_access(offset: int, width: int) -> None:
    if width < 1 or offset < 0 or offset + width > PCI_CONFIG_SIZE:
        raise ConfigAccessError(f"a {width}-byte access at 0x{offset:x} is outside the bridge's config space")
