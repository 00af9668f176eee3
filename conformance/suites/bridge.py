"""The ``bridge`` target: the emulated migration bridge, driven as the guest and as the hypervisor drive it.

The world: one bridge from the implementation under test, instantiated with
parameters chosen in the ``build`` rule (1 to 8 slots, any legal
``PAGE_SHIFT``, ``ACK_TIMEOUT_MS`` and first device number), simple fake
functions in its slots (a settable Bus Master Enable, a record of their
resets), an observer in the hypervisor's seat and an interrupt counter.

The rules do what the guest and the hypervisor can do to a bridge: guest
configuration writes of every width and alignment, legal or not, anywhere in
the capability and the type-1 header; driver reports of every ``DRV_STATE``
value in every state, alone and inside wider writes; Bus Master Enable
toggles on the functions; MSI enable and mask, Interrupt Disable, ``CONTROL``,
``GUEST_FEATURES`` and ``STATUS.EVENT`` writes; Secondary Bus Reset edges; and
every host event that has a row in the transition tables for the current
state (the suite, in the hypervisor's seat, never causes a host event without
a row).  A cooperative guest and hypervisor (the ``advance``
rule) move migrations along, so that every state is reached in a few steps.

The suite is model based.  :class:`CapabilityModel` computes the capability
each step must leave behind from :mod:`vfmig_proto` alone: the access rules
(:mod:`vfmig_proto.access`), the transition tables, fan-out, settled events
and catch-up (:mod:`vfmig_proto.transitions`) and the reset value
(:mod:`vfmig_proto.codec`).  After every step the suite reads the capability
as a guest does (1- and 4-byte configuration reads) and through
``capability_bytes()``, and judges every field that differs from the model.
Each field is judged by the most specific requirement that speaks of it in
that step, and a field once judged is not judged again in the same step, so
that one fault is reported once, under the requirement it breaks.
Interrupts are counted through ``interrupt_sink`` and compared with what
``STATUS.EVENT``, ``CONTROL`` (the model's) and the bridge's MSI and Command
registers call for (spec §6.2).

When a requirement has already been judged (its checks are off for the rest
of the run) and the bridge differs from the model because of it, the model
takes the bridge's state over after the step, so that one known fault does
not turn later steps into findings against other requirements.

Some requirements are seen from the side:

* VFM-ACC-007 (one access, one step): the bridge tells its observer of every
  step; within one guest write it may tell of one step only, whose state is
  the write's result (the hypervisor's own events from within the write,
  VFM-MIG-011, are steps of their own).  A bridge that never calls
  ``bridge_stepped`` is judged on its registers alone;
* VFM-DEV-004 (a report is processed before its write completes): what the
  host sees when the write returns and what the guest's next reads return
  must agree on ``MIG_STATE`` and every ``DEV_STATE``;
* VFM-DEV-012 (no host event without a row): the host events the bridge
  raises itself (fan-out, catch-up, settled events) are judged as it
  publishes them on the event bus; a bridge that publishes nothing is not;
* VFM-SEC-002 (bounded time, no memory per write): between two rounds of the
  same guest writes, the objects reachable from the bridge and its classes
  must not grow, and one write must not take more Python line events (not
  measured while a debugger or coverage tool traces).  Memory the bridge keeps
  elsewhere (module globals, C extensions) and work done in C are not seen;
* VFM-VER-006 (later features gated by GUEST_FEATURES): the suite's guest
  knows version 1.0 and never accepts a later feature, so a bridge that
  presents a minor version above 0 must keep the reserved bits of version 1.0
  as a 1.0 bridge does (a 1.0 bridge meets it by construction).  Registers
  after the last slot entry (a larger ``CAP_LEN``) are not supported.
"""

from __future__ import annotations

import gc
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import cache, partial
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from conformance.checks import ConformanceMachine, step
from reference_impl.clock import SimClock
from reference_impl.events import Event, EventBus, EventKind
from vfmig_proto.access import WRITE_WIDTHS, apply_write_byte, write_masks
from vfmig_proto.codec import read_field, reset_value, store_field, validate
from vfmig_proto.errors import DecodeError
from vfmig_proto.layout import (
    VFM_CFG_TYPE_MIGRATION,
    VFM_HEADER_SIZE,
    VFM_MAX_PAGE_SHIFT,
    VFM_MAX_SLOTS,
    VFM_MIN_PAGE_SHIFT,
    VFM_MIN_SLOTS,
    VFM_SIGNATURE,
    CapabilityParams,
    PlacedField,
    capability_length,
    placed_fields,
    slot_offset,
)
from vfmig_proto.pci import (
    PCI_BRIDGE_CONTROL,
    PCI_BRIDGE_CTL_BUS_RESET,
    PCI_CAP_ID_MSI,
    PCI_CAP_ID_SHPC,
    PCI_CAP_ID_SLOTID,
    PCI_CAP_ID_VNDR,
    PCI_CAPABILITY_LIST,
    PCI_CLASS_BRIDGE_PCI,
    PCI_CLASS_DEVICE,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_CONFIG_SIZE,
    PCI_DEVICE_ID,
    PCI_HEADER_TYPE,
    PCI_HEADER_TYPE_BRIDGE,
    PCI_HEADER_TYPE_MASK,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_64BIT,
    PCI_MSI_FLAGS_ENABLE,
    PCI_MSI_FLAGS_MASKBIT,
    PCI_SHPC_SIZEOF,
    PCI_SID_SIZEOF,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_STD_HEADER_SIZEOF,
    PCI_VENDOR_ID,
)
from vfmig_proto.states import DevEvent, DevState, DriverReport, MigEvent, MigReason, MigState
from vfmig_proto.transitions import (
    ACKNOWLEDGED_BY,
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

MAX_SLOTS = 8
"""The suite's bridges have 1 to 8 slots: enough for every per-slot rule, few enough to stay fast."""
QEMU_BRIDGE_ID = (0x1B36, 0x0001)
"""Vendor and device ID of QEMU's pci-bridge: VFM-CAP-003 speaks of bridges derived from it."""
QEMU_CAP_OFFSET = 0x64
QEMU_CAP_NEXT = 0x4C
RESOURCE_RESERVE_TYPE = 0x01
"""CFG_TYPE of QEMU's resource-reserve vendor capability (spec §3.1.1)."""
CANCEL_REASONS = tuple(reason for reason in MigReason if reason not in (MigReason.NONE, MigReason.COMPLETED))
SLOT_EVENTS = ("hot_add", "surprise_removal", "device_error")
CANCEL_BEFORE_RESET = frozenset(
    state
    for state in MigState
    if (state, MigEvent.GROUP_RESET) not in MIGRATION_TRANSITIONS and (state, MigEvent.CANCEL) in MIGRATION_TRANSITIONS
)
"""Where the hypervisor cancels before a group reset the guest requests (VFM-MIG-011): GROUP_RESET has no row."""
TOLD_OF_RESET = "secondary bus reset requested"
VERSION_MAJOR, VERSION_MINOR, HOST_FEATURES, GUEST_FEATURES = 0x08, 0x09, 0x0C, 0x10
"""Capability offsets of the registers versioning speaks of (spec §3.2, §9)."""
LATER_FEATURES_SHIFT = 4
"""HOST_FEATURES and GUEST_FEATURES bits [31:4] are the feature bits of later minor versions (spec §9.2)."""
SEC_002_ROUND = 20
"""Guest writes between the two measurements of VFM-SEC-002: a bridge that keeps one object per write shows it."""
_SETTLED_EVENTS = tuple(SETTLED_STATES)
_REPORT_NAMES = {report.value: report.name for report in DriverReport}
_REPORTED = frozenset(REPORT_EVENTS.values())
"""The device events of the guest's reports (not host events: VFM-DEV-012 does not speak of them)."""
_FLAGS = ("migrated", "reset", "protocol_error")
_HEADER_PARAMS = (
    "cap_next",
    "cap_len",
    "version_major",
    "version_minor",
    "num_slots",
    "page_shift",
    "host_features.dma_dirty",
    "host_features.pause_resume",
    "host_features.reset_domain",
    "host_features.migrated_flag",
    "host_features.reserved",
    "ack_timeout_ms",
)
"""Fields VFM-CAP-007 fixes between conventional resets (with each slot's DEV_DEVFN)."""
_CONSTANTS = ("cap_id", "cfg_type", "signature")
"""Fields VFM-CAP-004 fixes."""


@cache
def _extension_paths(num_slots: int) -> tuple[str, ...]:
    """The fields of version 1.0 in which a later minor version may put control and status bits (spec §9.2)."""
    per_slot = (f"device[{slot}].{name}.reserved" for slot in range(num_slots) for name in ("dev_ctrl", "dev_status"))
    return ("guest_features.reserved", "control.reserved", "status.reserved", *per_slot)


def _state_path(slot: int) -> str:
    return f"device[{slot}].dev_state"


def _drv_path(slot: int) -> str:
    return f"device[{slot}].dev_ctrl.drv_state"


def _flag_path(slot: int, flag: str) -> str:
    return f"device[{slot}].dev_status.{flag}"


# ------------------------------------------------------------------------------------------ the model


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
    table: Action | None = None
    """The device table's action for the report, Bus Master Enable aside (None: no row, or no such value)."""
    """For an accepted report: the row's next state, then each state catch-up moves the slot to."""

    def describe(self) -> str:
        name = _REPORT_NAMES.get(self.written, f"undefined value {self.written}")
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
        self.data = bytearray(_reset_value(replace(params, next_pointer=cap_next)))
        masks = write_masks(params.num_slots)
        self.wmask = masks.wmask
        self.w1cmask = masks.w1cmask
        self.fields, self.paths, self.by_path, self.registers = _layout(params.num_slots)
        self.dev_ctrl = tuple(slot_offset(slot) + 1 for slot in range(self.num_slots))
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
        return DevState(self.get(_state_path(slot)))

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
            for event in _SETTLED_EVENTS
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
        written = self.get(_drv_path(slot))
        state = self.dev_state(slot)
        mig = self.mig_state
        made = partial(Report, slot, old, written, state, mig, bme)
        if written not in _REPORT_NAMES:
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
            self.put(_drv_path(report.slot), report.old)
            self.put(_flag_path(report.slot, "protocol_error"), 1)
        elif report.judgement is Judgement.IGNORE:
            self.put(_drv_path(report.slot), report.old)
        else:
            self.put(_state_path(report.slot), report.chain[-1])
            if report.chain[-1] is not report.chain[0]:
                sub.host_changed_dev_state = True  # catch-up requests are host events (VFM-NOTIF-001)

    # ---- the host side (spec §4.3)

    def device_event(self, slot: int, event: DevEvent, sub: SubStep) -> None:
        old = self.dev_state(slot)
        new = device_transition(old, event).next_state
        self.put(_state_path(slot), new)
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
                self.put(_flag_path(slot, flag), 1)
                sub.flag_set = True

    def slot_event(self, slot: int, event: DevEvent, sub: SubStep) -> None:
        self.device_event(slot, event, sub)
        if event in (DevEvent.HOT_ADD, DevEvent.SURPRISE_REMOVAL):  # VFM-DEV-013: a clean entry
            for path in (_drv_path(slot), *(_flag_path(slot, flag) for flag in _FLAGS)):
                self.put(path, 0)

    def allows(self, event: MigEvent) -> bool:
        return (self.mig_state, event) in MIGRATION_TRANSITIONS

    def slots_allowing(self, event: DevEvent) -> list[int]:
        return [slot for slot, state in enumerate(self.dev_states()) if (state, event) in DEVICE_TRANSITIONS]

    def state_of(self, data: bytes | bytearray) -> tuple[int, ...]:
        """``MIG_STATE`` and every ``DEV_STATE`` in ``data``."""
        return (self.get("mig_state", data), *(self.get(_state_path(slot), data) for slot in range(self.num_slots)))


@cache
def _reset_value(params: CapabilityParams) -> bytes:
    return reset_value(params)


@cache
def _layout(
    num_slots: int,
) -> tuple[tuple[PlacedField, ...], tuple[str, ...], dict[str, PlacedField], tuple[int, ...]]:
    """The placed fields of a ``num_slots`` capability, their paths, the fields by path, the register offsets."""
    fields = tuple(placed_fields(num_slots))
    by_path = {placed.path: placed for placed in fields}
    return fields, tuple(by_path), by_path, tuple(sorted({placed.offset for placed in fields}))


class _ConfigBytes:
    """A bridge's configuration space, read byte by byte as it is looked at (as a guest walks it)."""

    def __init__(self, read: Callable[[int, int], int]) -> None:
        self._read = read
        self._bytes: dict[int, int] = {}

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return bytes(self[position] for position in range(*index.indices(PCI_CONFIG_SIZE)))
        if index not in self._bytes:
            self._bytes[index] = self._read(index, 1)
        return self._bytes[index]

    def capabilities(self) -> tuple[list[tuple[int, int]], str]:
        """``(offset, ID)`` of each capability in the list from 0x34, and what is wrong with the list, if anything."""
        listed: list[tuple[int, int]] = []
        if not self[PCI_STATUS] & PCI_STATUS_CAP_LIST:
            return listed, "Status bit 4 (Capabilities List) is clear"
        pointer = self[PCI_CAPABILITY_LIST] & 0xFC
        while pointer:
            if not PCI_STD_HEADER_SIZEOF <= pointer <= PCI_CONFIG_SIZE - 4:
                return listed, f"a pointer to 0x{pointer:02x}, outside the capability area"
            if any(offset == pointer for offset, _ in listed):
                return listed, f"the list loops back to 0x{pointer:02x}"
            listed.append((pointer, self[pointer]))
            pointer = self[pointer + 1] & 0xFC
        return listed, ""


def _named(placed: PlacedField, value: int) -> str:
    values = placed.field.values
    if values is not None and value in values._value2member_map_:
        return f"{values(value).name} ({value})"
    return f"0x{value:x}" if placed.field.width > 4 else str(value)


# ------------------------------------------------------------------------------------------ the world


@dataclass
class FakeFunction:
    """A function behind the bridge: a settable Bus Master Enable and a record of its resets."""

    name: str
    trace: list[str]
    bus_master: bool = False

    def function_level_reset(self, how: str) -> None:
        self.trace.append(f"reset {self.name} ({how})")
        self.bus_master = False  # a reset clears the Command register


class _Observer:
    """The hypervisor's seat on the bridge."""

    def __init__(self, suite: BridgeSuite) -> None:
        self.suite = suite

    def bridge_stepped(self, bridge: object, cause: str) -> None:
        """Every step is seen; the suite counts the steps of a guest access (VFM-ACC-007)."""
        self.suite.on_step()

    def report_rejected(self, bridge: object, slot: int, report: int, why: str) -> None:
        self.suite.rejections.append((slot, report))

    def secondary_bus_reset_requested(self, bridge: object) -> None:
        self.suite.on_secondary_bus_reset()


@dataclass(frozen=True)
class Registers:
    """The bridge's registers outside the capability that decide its interrupt (spec §6.2)."""

    msi_enabled: bool = False
    msi_masked: bool = False
    intx_disabled: bool = False

    def pin(self, event: bool, enabled: bool) -> bool:
        """Whether INTx is asserted for migration events (VFM-NOTIF-003)."""
        return not self.msi_enabled and event and enabled and not self.intx_disabled


@dataclass
class Expectation:
    """One step and what it must do, by the model: the context every judgement of the step needs."""

    what: str
    before: bytes
    """The model's capability before the step."""
    host_event: str | None = None
    slot: int | None = None
    offset: int = 0
    width: int = 0
    data: bytes = b""
    legal: bool = True
    covered: range = range(0)
    """Capability offsets a legal write covers."""
    covers_rw: bool = False
    masked: bytes = b""
    """The model's capability right after the mask model (before the report is processed)."""
    report: Report | None = None
    sbr_edge: bool = False
    sbr_unexpected: bool = False
    """The bridge performed a group reset that the write did not ask for."""
    planned_cancel: bool = False
    cancel_done: bool = False
    header_write: bool = False
    shpc_write: bool = False
    registers_before: Registers = field(default_factory=Registers)
    after_mask: tuple[bool, bool] = (False, False)
    """``STATUS.EVENT`` and the enables right after the mask model."""
    outcomes: list[StepOutcome] = field(default_factory=list)
    interrupts: int | None = 0
    """Interrupts the step must signal (None: the spec leaves it open)."""
    state_changed: bool = False
    observer_judged: bool = False
    """A check already judged what the hypervisor must be told in this step."""

    @property
    def is_guest_write(self) -> bool:
        return self.host_event is None

    def covers(self, placed: PlacedField) -> bool:
        """Whether the write covers the (1-bit) field ``placed``."""
        return placed.offset + placed.field.lsb // 8 in self.covered

    def writes_one(self, placed: PlacedField) -> bool:
        """Whether the write covers the 1-bit field ``placed`` with a 1."""
        if not self.covers(placed):
            return False
        byte = placed.offset + placed.field.lsb // 8
        return bool(self.data[byte - self.covered.start] >> (placed.field.lsb % 8) & 1)


Judge = Callable[[str | None, Iterable[str], str], None]
"""``judge(requirement, paths, what)``: the first judgement of each path in a step (None: judged already)."""


def _aligned(width: int, start: int, stop: int, position: int) -> int:
    """An offset in ``[start, stop)`` aligned to ``width``, picked by ``position``."""
    return start + (position % ((stop - start) // width)) * width


class BridgeSuite(ConformanceMachine):
    """Random guest accesses and host events on one bridge, judged against a model of the capability."""

    def __init__(self) -> None:
        super().__init__()
        self._bridge: Any = None
        self._model: CapabilityModel | None = None
        self.params = CapabilityParams()
        self.cap = 0
        self.msi_at: int | None = None
        self.msi_mask_at: int | None = None
        self.shpc_at: int | None = None
        self.functions: list[FakeFunction | None] = []
        self.trace: list[str] = []
        """Resets of functions and the bridge's calls of secondary_bus_reset_requested, in order, this step."""
        self.rejections: list[tuple[int, int]] = []
        self.interrupts = 0
        self.registers = Registers()
        self.level = False
        """The INTx pin as the model has it (VFM-NOTIF-003)."""
        self.pending = False
        """An MSI message held pending while the vector is masked (spec §6.2)."""
        self.pending_uncertain = False
        """MSI was switched while a message was pending: the spec does not say what becomes of it."""
        self.shpc_bytes = b""
        self.current: Expectation | None = None
        self.stalled = False
        """The bridge left the model for a state no valid capability has: nothing more to judge."""
        self._diverged = False
        """A check already judged failed in this step: what follows from it is not judged again."""
        self._functions_made = 0
        self.access_steps: list[bytes] | None = None
        """While a guest write runs: the capability at each step the bridge announced for it (VFM-ACC-007)."""
        self.host_depth = 0
        """Host events the suite is causing from within the bridge's handling of a guest write."""
        self.caused: list[MigEvent | tuple[int | None, DevEvent]] = []
        """The host events the suite caused in this step, not yet seen published (VFM-DEV-012)."""
        self.measured = False
        """The ``many_writes`` rule ran in this example."""
        self.version_minor = 0
        """VERSION_MINOR as the bridge presents it, if it presents major version 1 (VFM-VER-006)."""
        self.later_features = 0
        """HOST_FEATURES[31:4] as the bridge presents them: the features of later minor versions it offers."""

    # ------------------------------------------------------------------ plumbing

    @property
    def bridge(self) -> Any:
        assert self._bridge is not None, "the world is built first"
        return self._bridge

    @property
    def model(self) -> CapabilityModel:
        assert self._model is not None, "the world is built first"
        return self._model

    def _live(self) -> bool:
        return self._model is not None and not self.stalled

    def _that(self, requirement: str, condition: bool, message: str | Callable[[], str]) -> None:
        """:meth:`Checks.that`, remembering when a check that was already judged fails again this step."""
        if not condition and requirement in self.checks.disabled:
            self._diverged = True
        self.checks.that(requirement, condition, message)

    def _in_capability(self, offset: int, width: int) -> bool:
        return self._model is not None and self.cap <= offset and offset + width <= self.cap + self.model.length

    def _read(self, offset: int, width: int) -> int:
        """A guest configuration read (VFM-ACC-005 when it reads the capability)."""
        in_cap = self._in_capability(offset, width)
        try:
            value = self.bridge.config_read(offset, width)
        except Exception as error:
            if in_cap:
                self._that(
                    "VFM-ACC-005",
                    False,
                    f"a {width}-byte guest read at 0x{offset:02x} must complete normally; "
                    f"it raised {type(error).__name__}: {error}",
                )
            raise
        if in_cap:
            self._that(
                "VFM-ACC-005",
                isinstance(value, int) and 0 <= value < 1 << (8 * width),
                lambda: f"a {width}-byte guest read at 0x{offset:02x} returned {value!r}, not a {width}-byte value",
            )
        return int(value)

    def _read_registers(self) -> Registers:
        msi_enabled = msi_masked = False
        if self.msi_at is not None:
            msi_enabled = bool(self._read(self.msi_at + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_ENABLE)
            if self.msi_mask_at is not None:
                msi_masked = bool(self._read(self.msi_mask_at, 4) & 1)
        intx_disabled = bool(self._read(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE)
        return Registers(msi_enabled, msi_masked, intx_disabled)

    def _read_shpc(self) -> bytes:
        if self.shpc_at is None:
            return b""
        return b"".join(self._read(self.shpc_at + index, 4).to_bytes(4, "little") for index in (0, 4))

    def _bme(self, slot: int) -> bool:
        function = self.functions[slot]
        return function is not None and function.bus_master

    def _begin(self, expectation: Expectation) -> None:
        self.current = expectation
        self.trace.clear()
        self.rejections.clear()
        self.caused.clear()
        self.interrupts = 0
        self._diverged = False
        self.model.begin()
        expectation.registers_before = self.registers
        expectation.after_mask = (self.model.event, self.model.enabled)

    def _on_interrupt(self) -> None:
        self.interrupts += 1

    def on_secondary_bus_reset(self) -> None:
        """The bridge tells the hypervisor that the guest set Secondary Bus Reset."""
        self.trace.append(TOLD_OF_RESET)
        expectation = self.current
        if expectation is None or not expectation.sbr_edge:
            if expectation is None:
                self.checks.record("VFM-ERR-004", False, "the bridge requested a group reset outside any guest write")
            else:
                expectation.sbr_unexpected = True
            if self.bridge.mig_state in CANCEL_BEFORE_RESET:
                self._host_cancel()  # the hypervisor's answer (VFM-MIG-011)
            return
        early = [entry for entry in self.trace if entry.startswith("reset ")]
        self.checks.record(
            "VFM-ERR-004",
            not early,
            lambda: (
                f"{expectation.what}: functions were reset ({', '.join(early)}) before the bridge told the "
                "hypervisor of the secondary bus reset (secondary_bus_reset_requested)"
            ),
        )
        if expectation.planned_cancel and not expectation.cancel_done and self.bridge.mig_state in CANCEL_BEFORE_RESET:
            expectation.cancel_done = True  # VFM-MIG-011: the hypervisor cancels before the group reset
            self._host_cancel()

    def _host_cancel(self) -> None:
        """The hypervisor cancels from within the bridge's handling of a guest write (VFM-MIG-011)."""
        self.host_depth += 1
        self.caused.append(MigEvent.CANCEL)
        try:
            self.bridge.cancel(MigReason.PROTOCOL_ERROR)
        finally:
            self.host_depth -= 1

    def on_step(self) -> None:
        """The bridge tells the hypervisor of a step: during a guest write, one that belongs to the access itself
        unless it comes from a host event the hypervisor causes from within the write (VFM-ACC-007)."""
        if self.access_steps is not None and not self.host_depth:
            self.access_steps.append(bytes(self.bridge.capability_bytes()))

    def _on_transition(self, event: Event) -> None:
        """A transition the bridge publishes: the host events it causes itself need a row (VFM-DEV-012).

        Publishing is optional (:mod:`conformance.adapters`): a bridge that publishes nothing is judged on its
        registers alone.  The host events the suite causes are its own doing, and reports are the guest's.
        """
        data = event.data
        cause, old = data.get("event"), data.get("old")
        if isinstance(cause, MigEvent) and isinstance(old, MigState):
            if cause in self.caused:
                self.caused.remove(cause)
                return
            self.checks.record(
                "VFM-DEV-012",
                (old, cause) in MIGRATION_TRANSITIONS,
                lambda: f"the bridge raised {cause.name} in MIG_STATE {old.name}, which has no row for it",
            )
        elif isinstance(cause, DevEvent) and isinstance(old, DevState) and cause not in _REPORTED:
            slot = data.get("slot")
            if (slot, cause) in self.caused:
                self.caused.remove((slot, cause))
                return
            self.checks.record(
                "VFM-DEV-012",
                (old, cause) in DEVICE_TRANSITIONS,
                lambda: (
                    f"the bridge caused {cause.name} for slot {slot} in DEV_STATE {old.name}, which has no row for it"
                ),
            )

    # ------------------------------------------------------------------ the world

    # Hypothesis tries the simplest value of each strategy first (and shrinks towards it): the first choice of
    # each is the busiest world, with functions in the slots, MSI on and the event interrupt enabled.
    @initialize(
        num_slots=st.sampled_from((2, 1, 3, 4, 5, 6, 7, MAX_SLOTS)),
        page_shift=st.one_of(st.just(VFM_MIN_PAGE_SHIFT), st.integers(VFM_MIN_PAGE_SHIFT, VFM_MAX_PAGE_SHIFT)),
        ack_timeout_ms=st.one_of(st.just(500), st.integers(1, 0xFFFF)),
        first_device=st.one_of(st.just(1), st.integers(0, 31)),
        occupied=st.lists(st.sampled_from((True, False)), min_size=MAX_SLOTS, max_size=MAX_SLOTS),
        msi=st.sampled_from((True, False)),
        control=st.sampled_from((3, 1, 3, 2, 1, 0)),
    )
    @step(
        "VFM-DISC-001",
        "VFM-CAP-001",
        "VFM-CAP-002",
        "VFM-CAP-003",
        "VFM-CAP-004",
        "VFM-CAP-005",
        "VFM-CAP-006",
        "VFM-DEV-013",
        "VFM-NOTIF-001",
    )
    def build(  # noqa: PLR0917 - one argument per choice the world is built with
        self,
        num_slots: int,
        page_shift: int,
        ack_timeout_ms: int,
        first_device: int,
        occupied: list[bool],
        msi: bool,
        control: int,
    ) -> None:
        first_device = min(first_device, 32 - num_slots)
        self.params = CapabilityParams(
            num_slots=num_slots, page_shift=page_shift, ack_timeout_ms=ack_timeout_ms, first_device=first_device
        )
        bus = EventBus(SimClock())
        bus.subscribe(self._on_transition, (EventKind.MIG_TRANSITION, EventKind.DEV_TRANSITION))
        self._bridge = self.factory().create_bridge(bus, self.params, "bridge")
        self.bridge.observers.append(_Observer(self))
        self.bridge.interrupt_sink = self._on_interrupt
        self.functions = [None] * num_slots
        config = _ConfigBytes(self._read)  # 1-byte reads, as a guest walks the capability list
        self.cap = self._discover(config)
        if config[self.cap + VERSION_MAJOR] == 1:  # a later minor version of 1 (spec §9.2), or 0
            self.version_minor = config[self.cap + VERSION_MINOR]
            features = config[self.cap + HOST_FEATURES : self.cap + HOST_FEATURES + 4]
            self.later_features = int.from_bytes(features, "little") >> LATER_FEATURES_SHIFT
        self._check_reset_value(config)
        self._model = CapabilityModel(self.params, config[self.cap + 1])
        self.model.data[:] = self._as_presented(bytes(self.model.data))
        self.registers = self._read_registers()
        self.shpc_bytes = self._read_shpc()
        guest, host, mutated = self._observe(full=True)
        self._sync(host if mutated else guest)
        for slot in range(num_slots):
            if occupied[slot] and not self.stalled:
                self._hot_add(slot)
        if msi and self.msi_at is not None and not self.stalled:
            flags = self._read(self.msi_at + PCI_MSI_FLAGS, 2) | PCI_MSI_FLAGS_ENABLE
            self._guest_write(self.msi_at + PCI_MSI_FLAGS, 2, flags, "the migration core enables MSI")
        if not self.stalled:
            self._write_field("control.enable", control, 2, "the migration core writes CONTROL")

    def _discover(self, config: _ConfigBytes) -> int:
        """Discovery (spec §2.2): the header and the capability list; the capability's offset."""
        header_type = config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK
        class_code = int.from_bytes(config[PCI_CLASS_DEVICE : PCI_CLASS_DEVICE + 2], "little")
        status = int.from_bytes(config[PCI_STATUS : PCI_STATUS + 2], "little")
        self._that(
            "VFM-DISC-001",
            header_type == PCI_HEADER_TYPE_BRIDGE and class_code == PCI_CLASS_BRIDGE_PCI and bool(status & 0x10),
            f"expected Header Type 0x01, class code 0x0604 and Status bit 4 set; the bridge presents Header Type "
            f"0x{header_type:02x}, class code 0x{class_code:04x}, Status 0x{status:04x}",
        )
        listed, problem = config.capabilities()
        self._that("VFM-CAP-001", not problem, f"the capability list cannot be followed: {problem}")
        migration = [
            offset
            for offset, cap_id in listed
            if cap_id == PCI_CAP_ID_VNDR
            and offset + 8 <= PCI_CONFIG_SIZE
            and config[offset + 3] == VFM_CFG_TYPE_MIGRATION
            and int.from_bytes(config[offset + 4 : offset + 8], "little") == VFM_SIGNATURE
        ]
        self._that(
            "VFM-CAP-001",
            len(migration) == 1 and migration[0] == self.bridge.cap,
            f"expected exactly one migration capability in the list from 0x34, at the bridge's cap "
            f"0x{self.bridge.cap:02x}; the list {[f'0x{o:02x} (ID 0x{i:02x})' for o, i in listed]} links "
            f"{[f'0x{o:02x}' for o in migration]}",
        )
        cap = migration[0] if len(migration) == 1 else int(self.bridge.cap)
        for offset, cap_id in listed:
            if cap_id == PCI_CAP_ID_MSI and self.msi_at is None:
                self.msi_at = offset
                flags = int.from_bytes(config[offset + PCI_MSI_FLAGS : offset + PCI_MSI_FLAGS + 2], "little")
                if flags & PCI_MSI_FLAGS_MASKBIT:
                    self.msi_mask_at = offset + (0x10 if flags & PCI_MSI_FLAGS_64BIT else 0x0C)
            elif cap_id == PCI_CAP_ID_SHPC and self.shpc_at is None:
                self.shpc_at = offset
        length = config[cap + 2]
        others = [(offset, _capability_size(config, offset, cap_id)) for offset, cap_id in listed if offset != cap]
        overlapping = [f"0x{o:02x}..0x{o + size - 1:02x}" for o, size in others if o < cap + length and cap < o + size]
        self._that(
            "VFM-CAP-002",
            cap % 4 == 0 and cap >= PCI_STD_HEADER_SIZEOF and cap + length <= PCI_CONFIG_SIZE and not overlapping,
            f"expected a DWORD-aligned offset >= 0x40 with all CAP_LEN bytes below 0x100 and outside other "
            f"capabilities; the capability is at 0x{cap:02x}, CAP_LEN {length}, overlapping {overlapping}",
        )
        vendor_device = (
            int.from_bytes(config[PCI_VENDOR_ID : PCI_VENDOR_ID + 2], "little"),
            int.from_bytes(config[PCI_DEVICE_ID : PCI_DEVICE_ID + 2], "little"),
        )
        reserve = any(cap_id == PCI_CAP_ID_VNDR and config[o + 3] == RESOURCE_RESERVE_TYPE for o, cap_id in listed)
        if vendor_device == QEMU_BRIDGE_ID and not reserve:  # VFM-CAP-003 speaks of such bridges only
            self._that(
                "VFM-CAP-003",
                cap == QEMU_CAP_OFFSET and config[PCI_CAPABILITY_LIST] == cap and config[cap + 1] == QEMU_CAP_NEXT,
                f"a bridge with QEMU's IDs 1b36:0001 and no resource-reserve capability should link the capability "
                f"first, at 0x64, with CAP_NEXT 0x4C; the Capabilities Pointer reads "
                f"0x{config[PCI_CAPABILITY_LIST]:02x}, the capability is at 0x{cap:02x} with CAP_NEXT "
                f"0x{config[cap + 1]:02x}",
            )
        return cap

    def _as_presented(self, capability: bytes) -> bytes:
        """A 1.0 capability as a bridge of the minor version the bridge presents shows it (spec §9.2, §9.4).

        A later minor version presents its own VERSION_MINOR and offers its new features in HOST_FEATURES[31:4];
        towards a guest that accepts none of them it behaves as a version 1.0 bridge in everything else.
        """
        if not self.version_minor:
            return capability
        data = bytearray(capability)
        data[VERSION_MINOR] = self.version_minor
        features = int.from_bytes(data[HOST_FEATURES : HOST_FEATURES + 4], "little") & ((1 << LATER_FEATURES_SHIFT) - 1)
        features |= self.later_features << LATER_FEATURES_SHIFT
        data[HOST_FEATURES : HOST_FEATURES + 4] = features.to_bytes(4, "little")
        return bytes(data)

    def _as_version_1_0_guest(self, offset: int, width: int, value: int) -> int:
        """``value`` with GUEST_FEATURES[31:4] as the guest last read them, if the write covers them.

        The suite's guest knows version 1.0 only: towards a bridge of a later minor version it writes back what it
        read into those bits (VFM-VER-003) and so accepts none of the later features (VFM-VER-006).
        """
        start = self.cap + GUEST_FEATURES
        if not self.version_minor or offset >= start + 4 or start >= offset + width:
            return value
        data = bytearray(value.to_bytes(width, "little"))
        for position in range(max(offset, start), min(offset + width, start + 4)):
            later = 0xFF if position > start else 0xFF & ~((1 << LATER_FEATURES_SHIFT) - 1)
            data[position - offset] = data[position - offset] & ~later | self.model.data[position - self.cap] & later
        return int.from_bytes(data, "little")

    def _check_reset_value(self, config: _ConfigBytes) -> None:
        cap = self.cap
        raw = config[cap : cap + max(config[cap + 2], VFM_HEADER_SIZE)]
        signature = int.from_bytes(raw[4:8], "little")
        self._that(
            "VFM-CAP-004",
            raw[0] == PCI_CAP_ID_VNDR and raw[3] == VFM_CFG_TYPE_MIGRATION and signature == VFM_SIGNATURE,
            f"expected CAP_ID 0x09, CFG_TYPE 0x56 and SIGNATURE 0x474D4656; the capability at 0x{cap:02x} presents "
            f"CAP_ID 0x{raw[0]:02x}, CFG_TYPE 0x{raw[3]:02x}, SIGNATURE 0x{signature:08x}",
        )
        num_slots, page_shift = raw[0x0A], raw[0x0B]
        ack = int.from_bytes(raw[0x1A:0x1C], "little")
        devfns = [raw[slot_offset(slot) + 3] for slot in range(num_slots) if slot_offset(slot) + 4 <= len(raw)]
        self._that(
            "VFM-CAP-005",
            VFM_MIN_SLOTS <= num_slots <= VFM_MAX_SLOTS
            and raw[2] == capability_length(num_slots)
            and VFM_MIN_PAGE_SHIFT <= page_shift <= VFM_MAX_PAGE_SHIFT
            and 1 <= ack <= 0xFFFF
            and len(set(devfns)) == len(devfns) == num_slots,
            f"expected NUM_SLOTS in 1..31, CAP_LEN 0x20 + 4 x NUM_SLOTS, PAGE_SHIFT in 12..30, ACK_TIMEOUT_MS in "
            f"1..65535 and distinct DEV_DEVFNs; the bridge presents NUM_SLOTS {num_slots}, CAP_LEN {raw[2]}, "
            f"PAGE_SHIFT {page_shift}, ACK_TIMEOUT_MS {ack}, DEV_DEVFN {[f'0x{d:02x}' for d in devfns]}",
        )
        expected = self._as_presented(_reset_value(replace(self.params, next_pointer=config[cap + 1])))
        views = (
            ("config reads", config[cap : cap + len(expected)]),
            ("capability_bytes()", bytes(self.bridge.capability_bytes())),
        )
        for view, got in views:
            self._that(
                "VFM-CAP-006",
                got == expected,
                f"a new bridge with {self.params} must present the reset value {expected.hex()}; "
                f"{view} show {got.hex()}",
            )

    # ------------------------------------------------------------------ observing the bridge

    def _observe(self, *, full: bool = False) -> tuple[bytes, bytes, bool]:
        """The capability as the guest reads it, ``capability_bytes()`` after the reads, and whether reading changed it.

        DWORD reads first; when they show what the model expects, that is the guest's view.  Otherwise (or with
        ``full``) the suite reads every byte too, takes the bytes for the guest's view and judges VFM-GEN-001 on
        the DWORDs.
        """
        bridge = self.bridge
        before = bytes(bridge.capability_bytes())
        dwords = self._read_capability(4)
        packed = b"".join(value.to_bytes(4, "little") for value in dwords)
        singles = dwords if not full and packed == before == self.model.data else self._read_capability(1)
        after = bytes(bridge.capability_bytes())
        mutated = after != before
        self._that(
            "VFM-ACC-006",
            not mutated,
            lambda: f"reading the capability changed it: {before.hex()} before the guest's reads, {after.hex()} after",
        )
        if singles is dwords:
            return packed, after, mutated
        guest = bytes(singles)
        if not mutated:
            for index, value in enumerate(dwords):
                little = int.from_bytes(guest[4 * index : 4 * index + 4], "little")
                self._that("VFM-GEN-001", value == little, partial(_endianness_message, 4 * index, value, little))
        return guest, after, mutated

    def _read_capability(self, width: int) -> list[int]:
        """The whole capability in guest reads of ``width`` bytes (VFM-ACC-005: each completes normally)."""
        cap, length = self.cap, self.model.length
        try:
            values = [self.bridge.config_read(cap + offset, width) for offset in range(0, length, width)]
        except Exception as error:
            self._that(
                "VFM-ACC-005",
                False,
                f"guest reads of the capability complete normally; a {width}-byte read raised "
                f"{type(error).__name__}: {error}",
            )
            raise
        self._that(
            "VFM-ACC-005",
            all(isinstance(value, int) and 0 <= value < 1 << (8 * width) for value in values),
            lambda: f"{width}-byte guest reads of the capability returned values out of range: {values}",
        )
        return values

    def _sync(self, actual: bytes) -> None:
        """After a step whose differences were all judged: take the bridge's state over (or stop judging)."""
        model = self.model
        if actual == bytes(model.data):
            return
        try:
            validate(actual)
        except DecodeError:
            self.stalled = True
            return
        if actual[0x0A] != model.num_slots:
            self.stalled = True
            return
        model.data[:] = actual
        self.level = self.registers.pin(model.event, model.enabled)

    def _verify(self, expectation: Expectation) -> None:
        self.checks.raise_pending()
        guest, host, mutated = self._observe()
        if mutated:
            self._diverged = True  # our own reads changed the bridge: its interrupts and events are its own now
        self._judge(expectation, guest, "config reads")
        if host != guest and not mutated:
            self._judge(expectation, host, "capability_bytes()")
        self._judge_interrupts(expectation)
        self._judge_observer(expectation)
        self._judge_shpc(expectation)
        self._sync(host if mutated else guest)

    # ------------------------------------------------------------------ judging the capability

    def _judge(self, expectation: Expectation, actual: bytes, view: str) -> None:
        model = self.model
        expected = bytes(model.data)
        differing = (
            frozenset()
            if actual == expected
            else frozenset(p.path for p in model.fields if read_field(actual, p) != read_field(expected, p))
        )
        explained: set[str] = set()

        def judge(requirement: str | None, paths: Iterable[str], what: str) -> None:
            if not differing:  # nothing to explain: the check passes
                if requirement is not None:
                    self.checks.that(requirement, True, "")
                return
            fresh = [path for path in paths if path not in explained]
            explained.update(fresh)
            if requirement is None:
                return
            bad = [path for path in fresh if path in differing]
            self._that(
                requirement,
                not bad,
                lambda: (
                    f"{expectation.what}: {what}; "
                    + "; ".join(self._difference(path, expected, actual) for path in bad)
                    + f" ({view})"
                ),
            )

        judge("VFM-CAP-004", _CONSTANTS, "CAP_ID, CFG_TYPE and SIGNATURE are constants")
        judge(
            "VFM-CAP-007",
            (*_HEADER_PARAMS, *(f"device[{slot}].dev_devfn" for slot in range(model.num_slots))),
            "CAP_NEXT, CAP_LEN, the version, NUM_SLOTS, PAGE_SHIFT, HOST_FEATURES, ACK_TIMEOUT_MS and DEV_DEVFN "
            "never change",
        )
        accepted = model.get("guest_features.reserved")  # the later features the guest accepted (none, here)
        judge(
            "VFM-VER-006",
            _extension_paths(model.num_slots) if self.version_minor and not accepted else (),
            f"a bridge of version 1.{self.version_minor} that offers later features 0x{self.later_features:x} "
            "(HOST_FEATURES[31:4]) behaves as a version 1.0 bridge while GUEST_FEATURES[31:4] is 0: the reserved "
            "bits of version 1.0, where later minor versions put their control and status bits, keep their 1.0 "
            "values",
        )
        if not expectation.legal:
            judge(
                "VFM-ACC-003",
                model.paths,
                f"a {expectation.width}-byte write at 0x{expectation.offset:02x} is no legal PCI write and changes "
                "nothing",
            )
        elif expectation.is_guest_write:
            self._judge_guest_write(expectation, actual, judge)
        else:
            self._judge_host_event(expectation, actual, judge)

    def _judge_guest_write(self, expectation: Expectation, actual: bytes, judge: Judge) -> None:
        model = self.model
        slots = range(model.num_slots)
        states = [_state_path(slot) for slot in slots]
        if self._judge_reset_request(expectation):
            judge(None, model.paths, "")
            return
        if expectation.report is not None:
            self._judge_report(expectation, expectation.report, actual, judge)
        if expectation.sbr_edge:
            judge(
                "VFM-ERR-004",
                ("mig_state", *states),
                "the write sets Secondary Bus Reset (0 -> 1): the GROUP_RESET transitions complete before it does",
            )
            judge(
                "VFM-ERR-005",
                (_flag_path(slot, "reset") for slot in slots),
                "GROUP_RESET sets DEV_STATUS.RESET in every slot that is not EMPTY",
            )
        judge("VFM-MIG-009", ("mig_reason",), "MIG_REASON changes only on START, CANCEL and ARRIVE")
        judge(
            "VFM-SEC-001",
            ("mig_state", "generation", *states),
            f"a guest write ({self._data_text(expectation)}) changes MIG_STATE, GENERATION and DEV_STATE only "
            "through a report the device table accepts, never to a value of the written data",
        )
        if expectation.covered and not expectation.covers_rw:
            judge(
                "VFM-ACC-004",
                ("status.event",),
                "a write that covers no RW or RW1C bit of the capability sets no STATUS.EVENT",
            )
        self._judge_migrated_kept(actual, judge)
        if not expectation.covers(model.by_path["status.event"]):  # if it does, the access rules say what happens
            self._judge_event(expectation, judge)
        judge(
            "VFM-ACC-001",
            model.paths,
            "the write follows the mask model cfg = (cfg & ~wmask) | (val & wmask); cfg &= ~(val & w1cmask), "
            "and changes nothing it does not cover",
        )

    def _judge_reset_request(self, expectation: Expectation) -> bool:
        """A group reset the write does not ask for, or none where it does (VFM-ERR-004); True if so."""
        told = TOLD_OF_RESET in self.trace
        resets = [entry for entry in self.trace if entry.endswith("(group)")]
        if not expectation.sbr_edge and (expectation.sbr_unexpected or resets):
            self._that(
                "VFM-ERR-004",
                False,
                f"{expectation.what}: the write does not change Secondary Bus Reset from 0 to 1, but the bridge "
                f"performed a group reset (told the hypervisor: {told}; resets: {resets})",
            )
        elif expectation.sbr_edge and not told and not self.trace:
            self._that(
                "VFM-ERR-004",
                False,
                f"{expectation.what}: the write changes Secondary Bus Reset from 0 to 1, but the bridge neither "
                "told the hypervisor (secondary_bus_reset_requested) nor reset any function",
            )
        else:
            return False
        self._diverged = True
        expectation.observer_judged = True
        return True

    def _judge_report(self, expectation: Expectation, report: Report, actual: bytes, judge: Judge) -> None:
        model = self.model
        slot = report.slot
        state_path, drv_path = _state_path(slot), _drv_path(slot)
        error_path = _flag_path(slot, "protocol_error")
        everything = (state_path, drv_path, error_path, "mig_state", "status.event")
        said = report.describe()
        actual_state = model.get(state_path, actual)
        told = (slot, report.written) in self.rejections
        masked_error, actual_error = model.get(error_path, expectation.masked), model.get(error_path, actual)
        # A bridge that does nothing with a report that the table alone would ignore broke VFM-DEV-011, not -001.
        table_ignores = report.judgement is Judgement.REJECT_BME and report.table is Action.IGNORE
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
        if report.judgement.rejected and expectation.writes_one(model.by_path[error_path]):
            judge(
                "VFM-CAP-009",
                (error_path,),
                f"{said}; the write's 1 in PROTOCOL_ERROR applies before the report, whose rejection then sets it",
            )
        if report.judgement is Judgement.REJECT_BME:
            rejected = actual_state == report.state and (told or (masked_error == 0 and actual_error == 1))
            self._that(
                "VFM-DEV-011",
                rejected,
                lambda: (
                    f"{expectation.what}: {said}; the bridge must reject it, but DEV_STATE is "
                    f"{_named(model.by_path[state_path], actual_state)}, PROTOCOL_ERROR {actual_error}, and the "
                    f"hypervisor was {'' if told else 'not '}told"
                ),
            )
            if not rejected:
                judge(None, everything, "")
                expectation.observer_judged = True
                self._diverged = True
                return
            judge("VFM-DEV-010", (state_path, drv_path, error_path), f"{said}: DRV_STATE gets its old value back")
        elif report.judgement is Judgement.REJECT:
            judge(
                "VFM-DEV-010",
                (state_path, drv_path, error_path),
                f"{said}: DEV_STATE unchanged, DRV_STATE restored, PROTOCOL_ERROR set",
            )
        elif report.judgement is Judgement.IGNORE:
            judge(
                "VFM-DEV-003",
                (state_path, drv_path, error_path, "mig_state"),
                f"{said}: nothing changes, DRV_STATE gets its old value back",
            )
        else:
            chain = report.chain
            if len(chain) > 1:
                judge(
                    "VFM-MIG-008",
                    (state_path,) if actual_state in chain[:-1] else (),
                    f"{said}: the catch-up requests apply in the same step, in order",
                )
            judge("VFM-DEV-002", (state_path, drv_path, error_path), f"{said}: DRV_STATE keeps the written value")
        settled = None if self._diverged else "VFM-MIG-007"  # not when a judged difference decided the states
        judge(settled, ("mig_state",), f"{said}: a settled event is raised exactly when every slot has settled")
        if report.judgement is not Judgement.ACCEPT:
            judge("VFM-SEC-003", ("status.event",), f"{said}: a rejected or ignored report sets no STATUS.EVENT")

    def _judge_host_event(self, expectation: Expectation, actual: bytes, judge: Judge) -> None:
        model = self.model
        event = expectation.host_event or ""
        name = event.upper()
        slots = range(model.num_slots)
        if event in SLOT_EVENTS:
            slot = expectation.slot
            assert slot is not None
            judge("VFM-DEV-002", (_state_path(slot),), f"{name} takes the device table's row")
            if event != "device_error":
                judge(
                    "VFM-DEV-013",
                    (_drv_path(slot), *(_flag_path(slot, flag) for flag in _FLAGS)),
                    f"{name} returns DRV_STATE to NONE and clears MIGRATED, RESET and PROTOCOL_ERROR",
                )
        else:
            if event == "start":
                judge(
                    "VFM-MIG-002",
                    ("generation", "mig_reason"),
                    "START increments GENERATION modulo 2^32 and sets MIG_REASON to NONE",
                )
            judge(
                "VFM-MIG-006",
                (_state_path(slot) for slot in slots),
                f"{name} reaches every slot whose DEV_STATE has a row for its device event, and no other",
            )
            if event == "arrive":
                judge(
                    "VFM-FLAG-001",
                    (_flag_path(slot, "migrated") for slot in slots),
                    "ARRIVE sets DEV_STATUS.MIGRATED in every slot that is not EMPTY",
                )
            if event == "group_reset":
                judge(
                    "VFM-ERR-005",
                    (_flag_path(slot, "reset") for slot in slots),
                    "GROUP_RESET sets DEV_STATUS.RESET in every slot that is not EMPTY",
                )
        pre_settle = expectation.outcomes[-1].pre_settle
        actual_mig = model.get("mig_state", actual)
        settling = pre_settle is not model.mig_state or any(
            MIGRATION_TRANSITIONS.get((pre_settle, settled)) == actual_mig for settled in _SETTLED_EVENTS
        )
        if settling or event in SLOT_EVENTS:
            settled = None if self._diverged else "VFM-MIG-007"  # not when a judged difference decided the states
            judge(settled, ("mig_state",), "a settled event is raised exactly when every slot has settled")
        else:
            judge("VFM-MIG-002" if event == "start" else "VFM-MIG-006", ("mig_state",), f"{name} moves MIG_STATE")
        judge("VFM-MIG-009", ("mig_reason",), "MIG_REASON changes only on START, CANCEL and ARRIVE, as they say")
        self._judge_migrated_kept(actual, judge)
        self._judge_event(expectation, judge)
        rest = {"hot_add": "VFM-DEV-013", "surprise_removal": "VFM-DEV-013", "device_error": "VFM-DEV-002"}
        requirement = rest.get(event, "VFM-MIG-002" if event == "start" else "VFM-MIG-006")
        judge(requirement, model.paths, f"{name} changes nothing the tables do not make it change")

    def _judge_migrated_kept(self, actual: bytes, judge: Judge) -> None:
        model = self.model
        judge(
            "VFM-FLAG-002",
            [
                path
                for path in (_flag_path(slot, "migrated") for slot in range(model.num_slots))
                if model.get(path) and not model.get(path, actual)
            ],
            "DEV_STATUS.MIGRATED is cleared only by a guest write of 1, when the slot enters EMPTY or on HOT_ADD",
        )

    def _judge_event(self, expectation: Expectation, judge: Judge) -> None:
        if self._diverged:  # the finding already made decides the event: no second finding from it
            judge(None, ("status.event",), "")
            return
        sets = any(outcome.sets_event for outcome in expectation.outcomes)
        judge(
            "VFM-NOTIF-001",
            ("status.event",),
            "STATUS.EVENT is set in a step that changes MIG_STATE, in which a host event changes a DEV_STATE, or "
            f"which sets MIGRATED or RESET, and in no other step (this step {'does' if sets else 'does not'})",
        )

    def _difference(self, path: str, expected: bytes, actual: bytes) -> str:
        placed = self.model.by_path[path]
        want, got = read_field(expected, placed), read_field(actual, placed)
        return f"{path.upper()} expected {_named(placed, want)}, the bridge has {_named(placed, got)}"

    @staticmethod
    def _data_text(expectation: Expectation) -> str:
        value = int.from_bytes(expectation.data, "little")
        return f"{expectation.width}-byte write of 0x{value:0{2 * expectation.width}x} at 0x{expectation.offset:02x}"

    # ------------------------------------------------------------------ judging interrupts, the observer, the SHPC

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

    def _judge_observer(self, expectation: Expectation) -> None:
        report = expectation.report
        if not expectation.observer_judged and (expectation.is_guest_write or self.rejections):
            wanted = [(report.slot, report.written)] if report is not None and report.judgement.rejected else []
            if not expectation.legal:
                requirement = "VFM-ACC-003"
            elif report is None:  # a write that covers no DEV_CTRL byte carries no report
                requirement = "VFM-DEV-001" if expectation.is_guest_write else "VFM-DEV-010"
            else:
                requirement = {
                    Judgement.ACCEPT: "VFM-DEV-002",
                    Judgement.IGNORE: "VFM-DEV-003",
                    Judgement.REJECT: "VFM-DEV-010",
                    Judgement.REJECT_BME: "VFM-DEV-010",
                }[report.judgement]
            self._that(
                requirement,
                self.rejections == wanted,
                lambda: (
                    f"{expectation.what}: the hypervisor is told of exactly the rejected reports {wanted} "
                    f"(report_rejected(slot, DRV_STATE)); the bridge told it of {self.rejections}"
                ),
            )
        if expectation.sbr_edge and not expectation.observer_judged:
            told = self.trace.count(TOLD_OF_RESET)
            self._that(
                "VFM-ERR-004",
                told == 1,
                lambda: (
                    f"{expectation.what}: the bridge calls secondary_bus_reset_requested once before the group "
                    f"reset takes effect; it called it {told} time(s)"
                ),
            )
            present = [function.name for function in self.functions if function is not None]
            unreset = [name for name in present if not any(t.startswith(f"reset {name} ") for t in self.trace)]
            self._that(
                "VFM-ERR-004",
                not unreset,
                lambda: (
                    f"{expectation.what}: every function behind the bridge is reset before the write that sets "
                    f"Secondary Bus Reset completes; not reset: {unreset}"
                ),
            )
        elif not expectation.legal:
            self._that(
                "VFM-ACC-003",
                not self.trace,
                lambda: f"{expectation.what}: an illegal write takes no action, but the bridge did {self.trace}",
            )

    def _judge_shpc(self, expectation: Expectation) -> None:
        if self.shpc_at is None:
            return
        now = self._read_shpc()
        before, self.shpc_bytes = self.shpc_bytes, now
        if expectation.host_event in ("hot_add", "surprise_removal") or expectation.shpc_write:
            return  # an actual hot-plug operation, or the guest's own write, may change them
        if expectation.state_changed:
            self._that(
                "VFM-NOTIF-004",
                now == before,
                lambda: (
                    f"{expectation.what}: a change of MIG_STATE or DEV_STATE leaves the SHPC's registers alone; "
                    f"its config-space window at 0x{self.shpc_at:02x} read {before.hex()} before and {now.hex()} after"
                ),
            )

    # ------------------------------------------------------------------ acting: guest writes

    def _guest_write(self, offset: int, width: int, value: int, what: str) -> None:
        """One guest configuration write, with the model's expectation and every judgement of it."""
        legal = width in WRITE_WIDTHS and offset % width == 0
        value = self._as_version_1_0_guest(offset, width, value)
        expectation = Expectation(
            what=f"{what} ({width}-byte write of 0x{value:0{2 * width}x} at 0x{offset:02x})",
            before=bytes(self.model.data),
            offset=offset,
            width=width,
            data=value.to_bytes(width, "little"),
            legal=legal,
            header_write=legal and offset < PCI_STD_HEADER_SIZEOF,
        )
        if self.shpc_at is not None:
            expectation.shpc_write = offset < self.shpc_at + PCI_SHPC_SIZEOF and self.shpc_at < offset + width
        in_cap = self._in_capability(offset, width)
        sbr_before = None
        if legal and offset <= PCI_BRIDGE_CONTROL < offset + width:
            sbr_before = bool(self._read(PCI_BRIDGE_CONTROL, 1) & PCI_BRIDGE_CTL_BUS_RESET)
        self._begin(expectation)
        if legal and in_cap:
            self._model_write(expectation)
        if sbr_before is False and expectation.data[PCI_BRIDGE_CONTROL - offset] & PCI_BRIDGE_CTL_BUS_RESET:
            self._model_secondary_bus_reset(expectation)
        expectation.state_changed = self.model.state_of(expectation.before) != self.model.state_of(self.model.data)
        self.access_steps = []
        try:
            self.bridge.config_write(offset, width, value)
        except Exception as error:
            self.checks.raise_pending()
            if in_cap:
                self._that(
                    "VFM-ACC-005",
                    False,
                    f"{expectation.what}: a guest write completes normally; it raised {type(error).__name__}: {error}",
                )
            raise
        finally:
            steps, self.access_steps = self.access_steps, None
        self.current = None
        if in_cap:
            self._that("VFM-ACC-005", True, "")
            self._judge_one_step(expectation, steps)
            if expectation.report is not None:
                self._judge_report_finished(expectation)
        elif legal:
            self.registers = self._read_registers()
        if expectation.header_write:
            self._check_header()
        self._expect_interrupts(expectation)
        self._verify(expectation)

    def _judge_one_step(self, expectation: Expectation, steps: list[bytes]) -> None:
        """VFM-ACC-007: the write was one step, and the step the hypervisor was told of is the whole write.

        The bridge tells its observer of every step before the access that caused it completes
        (:class:`conformance.adapters.BridgeUnderTest`).  A second step within one access, or a step after which
        the access still changed the capability, is a point where a host event could take effect between the
        parts of the access; the host events the hypervisor causes from within the write (VFM-MIG-011) are
        steps of their own and not counted.  An illegal write is no access at all (VFM-ACC-003).
        """
        if not expectation.legal:
            return
        self.checks.raise_pending()
        now = bytes(self.bridge.capability_bytes())
        changed = bool(steps) and steps[-1] != now
        self._that(
            "VFM-ACC-007",
            len(steps) <= 1 and not changed,
            lambda: (
                f"{expectation.what}: one guest access is one indivisible step, but the bridge told the hypervisor "
                f"of {len(steps)} steps within it (bridge_stepped)"
                + (
                    f", and the capability changed after the last of them: {steps[-1].hex()} when the hypervisor "
                    f"was told, {now.hex()} when the write completed"
                    if changed
                    else ""
                )
            ),
        )

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
        paths = ("mig_state", *(_state_path(slot) for slot in range(model.num_slots)))
        offsets = [model.by_path[path].offset for path in paths]
        read = [self._read(self.cap + offset, 1) for offset in offsets]
        late = [
            f"{path.upper()} {_named(model.by_path[path], at_return[offset])} when the write returned, "
            f"{_named(model.by_path[path], value)} at the guest's next read"
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

    def _model_write(self, expectation: Expectation) -> None:
        """The model of a legal write to the capability: the mask model, then the report it carries."""
        model = self.model
        start = expectation.offset - self.cap
        expectation.covered = range(start, start + expectation.width)
        expectation.covers_rw = any(model.wmask[i] | model.w1cmask[i] for i in expectation.covered)
        old = {slot: model.get(_drv_path(slot)) for slot in range(model.num_slots)}
        model.apply_write(start, expectation.data)
        expectation.masked = bytes(model.data)
        expectation.after_mask = (model.event, model.enabled)
        for slot, ctrl in enumerate(model.dev_ctrl):
            if ctrl in expectation.covered:
                report = model.judge(slot, old[slot], self._bme(slot))
                expectation.report = report
                sub = SubStep()
                model.apply_report(report, sub)
                expectation.outcomes.append(model.finish(sub))

    def _model_secondary_bus_reset(self, expectation: Expectation) -> None:
        """The model of a 0 -> 1 edge of Secondary Bus Reset: the hypervisor's CANCEL if needed, then GROUP_RESET."""
        model = self.model
        expectation.sbr_edge = True
        if model.mig_state in CANCEL_BEFORE_RESET:
            expectation.planned_cancel = True
            sub = SubStep()
            model.cancel(MigReason.PROTOCOL_ERROR, sub)
            expectation.outcomes.append(model.finish(sub))
        sub = SubStep()
        model.group_reset(sub)
        expectation.outcomes.append(model.finish(sub))

    def _check_header(self) -> None:
        """After a write to the type-1 header: still a bridge, the capability still linked once (spec §2.2)."""
        header_type = self._read(PCI_HEADER_TYPE, 1) & PCI_HEADER_TYPE_MASK
        class_code = self._read(PCI_CLASS_DEVICE, 2)
        status = self._read(PCI_STATUS, 2)
        self._that(
            "VFM-DISC-001",
            header_type == PCI_HEADER_TYPE_BRIDGE and class_code == PCI_CLASS_BRIDGE_PCI and bool(status & 0x10),
            f"after a guest write to the header: Header Type 0x{header_type:02x}, class code 0x{class_code:04x}, "
            f"Status 0x{status:04x} (expected 0x01, 0x0604 and bit 4 set)",
        )
        linked: list[int] = []
        pointer = self._read(PCI_CAPABILITY_LIST, 1) & 0xFC if status & PCI_STATUS_CAP_LIST else 0
        while pointer and pointer not in linked and len(linked) < 48:
            linked.append(pointer)
            pointer = self._read(pointer + 1, 1) & 0xFC if pointer >= PCI_STD_HEADER_SIZEOF else 0
        self._that(
            "VFM-CAP-001",
            linked.count(self.cap) == 1 and not pointer,
            f"after a guest write to the header, the capability list from 0x34 runs "
            f"{[f'0x{o:02x}' for o in linked]}{' and loops' if pointer else ''}: the migration capability at "
            f"0x{self.cap:02x} is not linked exactly once",
        )

    def _write_field(self, path: str, value: int, width: int, what: str) -> None:
        """A guest write of ``width`` bytes at the register that holds ``path``."""
        placed = self.model.by_path[path]
        self._guest_write(self.cap + placed.offset, width, value, what)

    # ------------------------------------------------------------------ acting: host events

    def _host(
        self,
        event: str,
        what: str,
        call: Callable[[], None],
        apply: Callable[[SubStep], None],
        slot: int | None = None,
    ) -> None:
        model = self.model
        expectation = Expectation(what=what, before=bytes(model.data), host_event=event, slot=slot)
        self._begin(expectation)
        self.caused.append(MigEvent[event.upper()] if slot is None else (slot, DevEvent[event.upper()]))
        sub = SubStep()
        apply(sub)
        expectation.outcomes.append(model.finish(sub))
        expectation.state_changed = model.state_of(expectation.before) != model.state_of(model.data)
        call()
        self.current = None
        self._expect_interrupts(expectation)
        self._verify(expectation)

    def _start(self) -> None:
        self._host("start", "START", self.bridge.start, self.model.start)

    def _request_pause(self) -> None:
        self._host("request_pause", "REQUEST_PAUSE", self.bridge.request_pause, self.model.request_pause)

    def _cancel(self, reason: MigReason) -> None:
        call, apply = partial(self.bridge.cancel, reason), partial(self.model.cancel, reason)
        self._host("cancel", f"CANCEL with {reason.name}", call, apply)

    def _arrive(self) -> None:
        self._host("arrive", "ARRIVE", self.bridge.arrive, self.model.arrive)

    def _group_reset(self) -> None:
        self._host("group_reset", "GROUP_RESET by the hypervisor", self.bridge.group_reset, self.model.group_reset)

    def _hot_add(self, slot: int) -> None:
        self._functions_made += 1
        function = FakeFunction(f"vf{self._functions_made}", self.trace)
        self.functions[slot] = function
        self._host(
            "hot_add",
            f"HOT_ADD of {function.name} into slot {slot}",
            partial(self.bridge.hot_add, slot, function),
            partial(self.model.slot_event, slot, DevEvent.HOT_ADD),
            slot,
        )

    def _surprise_removal(self, slot: int) -> None:
        self._host(
            "surprise_removal",
            f"SURPRISE_REMOVAL of slot {slot} (DEV_STATE {self.model.dev_state(slot).name})",
            partial(self.bridge.surprise_removal, slot),
            partial(self.model.slot_event, slot, DevEvent.SURPRISE_REMOVAL),
            slot,
        )
        self.functions[slot] = None

    def _device_error(self, slot: int) -> None:
        self._host(
            "device_error",
            f"DEVICE_ERROR of slot {slot} (DEV_STATE {self.model.dev_state(slot).name})",
            partial(self.bridge.device_error, slot),
            partial(self.model.slot_event, slot, DevEvent.DEVICE_ERROR),
            slot,
        )

    # ------------------------------------------------------------------ acting: a cooperative guest

    def _report(self, slot: int, value: int, what: str) -> None:
        self._write_field(_drv_path(slot), value, 1, what)

    def _clear_event(self, extra: int = 0) -> None:
        self._write_field("status.event", 1 | extra << 1, 2, "the migration core clears STATUS.EVENT")

    def _answer(self, slot: int) -> None:
        """What a driver that follows the protocol does about its slot's pending request (or to bind)."""
        state = self.model.dev_state(slot)
        answer = ACKNOWLEDGED_BY.get(state, DriverReport.READY)
        function = self.functions[slot]
        if answer is DriverReport.PAUSED and function is not None:
            function.bus_master = False  # stop DMA before acknowledging the pause
        self._report(slot, answer, f"slot {slot}'s driver answers {state.name} with {answer.name}")
        if answer is DriverReport.READY and function is not None and self.model.dev_state(slot) is DevState.READY:
            function.bus_master = True  # running again

    def _bindable(self) -> list[int]:
        return [slot for slot, state in enumerate(self.model.dev_states()) if state is DevState.UNBOUND]

    def _progress(self, late_binder: bool) -> Callable[[], None]:
        """The next thing that moves the migration on, as a cooperative guest and hypervisor do it.

        With ``late_binder``, a driver that binds while a migration is in progress goes first (spec §4.3.10).
        """
        model = self.model
        if late_binder and model.mig_state in CATCH_UP and self._bindable():
            return partial(self._answer, self._bindable()[0])
        pending = [slot for slot, state in enumerate(model.dev_states()) if state in ACKNOWLEDGED_BY]
        if pending:
            return partial(self._answer, pending[0])
        stuck = partial(self._cancel, MigReason.ACK_TIMEOUT)  # a slot in ERROR never settles
        actions: dict[MigState, Callable[[], None]] = {
            MigState.IDLE: self._start,
            MigState.PRECOPY: self._request_pause,
            MigState.STOPPED: self._arrive,
            MigState.PREPARE: stuck,
            MigState.PAUSING: stuck,
            MigState.RESUMING: self._group_reset,
            MigState.ARRIVED: self._group_reset,
        }
        return actions[model.mig_state]

    # ------------------------------------------------------------------ rules: the guest

    @rule(
        where=st.sampled_from(("capability", "header", "config")),
        position=st.integers(0, PCI_CONFIG_SIZE - 1),
        width=st.sampled_from(WRITE_WIDTHS),
        value=st.integers(0, 0xFFFFFFFF),
    )
    @step("VFM-ACC-001", "VFM-ACC-004", "VFM-ACC-005", "VFM-ACC-007", "VFM-SEC-001", "VFM-CAP-007", "VFM-ERR-004")
    def guest_write(self, where: str, position: int, width: int, value: int) -> None:
        """A write of a random value anywhere: the capability, the type-1 header, all of config space."""
        if not self._live():
            return
        if where == "capability":
            offset = _aligned(width, self.cap, self.cap + self.model.length, position)
        else:
            offset = _aligned(width, 0, PCI_STD_HEADER_SIZEOF if where == "header" else PCI_CONFIG_SIZE, position)
        self._guest_write(offset, width, value & ((1 << (8 * width)) - 1), f"a guest write to the {where}")

    @rule(
        header=st.booleans(),
        pick=st.integers(0, PCI_CONFIG_SIZE - 1),
        width=st.sampled_from(WRITE_WIDTHS),
        value=st.integers(0, 0xFFFFFFFF),
    )
    @step("VFM-ACC-001", "VFM-ACC-004", "VFM-ACC-005", "VFM-ACC-007", "VFM-SEC-001", "VFM-CAP-007", "VFM-MIG-009")
    def register_write(self, header: bool, pick: int, width: int, value: int) -> None:
        """A write of a random value that covers the first byte of one register (a header one half the time)."""
        if not self._live():
            return
        registers = [offset for offset in self.model.registers if (offset < VFM_HEADER_SIZE) == header]
        offset = self.cap + registers[pick % len(registers)] // width * width
        self._guest_write(offset, width, value & ((1 << (8 * width)) - 1), "a guest write to a register")

    @rule(
        position=st.integers(0, PCI_CONFIG_SIZE - 1),
        width=st.sampled_from((2, 4, 2, 4, 3, 8, 5, 6, 7)),
        value=st.integers(0, (1 << 64) - 1),
    )
    @step("VFM-ACC-003", "VFM-ACC-005")
    def illegal_write(self, position: int, width: int, value: int) -> None:
        """A write no PCI transaction makes: unaligned, or 3, 5, 6, 7 or 8 bytes wide, in the capability."""
        if not self._live():
            return
        offsets = [
            offset
            for offset in range(self.cap, self.cap + self.model.length - width + 1)
            if width not in WRITE_WIDTHS or offset % width
        ]
        offset = offsets[position % len(offsets)]
        self._guest_write(offset, width, value & ((1 << (8 * width)) - 1), "an illegal guest write")

    @rule(
        slot=st.integers(0, MAX_SLOTS - 1),
        value=st.one_of(st.sampled_from(list(DriverReport)), st.integers(0, 7)),
        reserved=st.one_of(st.just(0), st.integers(0, 0x1F)),
        bme=st.sampled_from((None, True, False)),
        repeat=st.sampled_from((False, False, True)),
    )
    @step(
        "VFM-DEV-001",
        "VFM-DEV-002",
        "VFM-DEV-003",
        "VFM-DEV-004",
        "VFM-DEV-010",
        "VFM-DEV-011",
        "VFM-MIG-007",
        "VFM-SEC-003",
    )
    def report(self, slot: int, value: int, reserved: int, bme: bool | None, repeat: bool) -> None:
        """A report of any DRV_STATE value (or the value DRV_STATE holds), with the function's BME set or clear."""
        if not self._live():
            return
        slot %= self.model.num_slots
        if repeat:
            value = self.model.get(_drv_path(slot))
        function = self.functions[slot]
        if function is not None and bme is not None:
            function.bus_master = bme
        name = _REPORT_NAMES.get(int(value), f"undefined {int(value)}")
        self._report(slot, reserved << 3 | int(value), f"slot {slot}'s driver reports {name}")

    @precondition(lambda self: self._live() and any(function is not None for function in self.functions))
    @rule(pick=st.integers(0, MAX_SLOTS - 1), value=st.sampled_from((DriverReport.PAUSED, DriverReport.NONE)))
    @step("VFM-DEV-011", "VFM-DEV-010", "VFM-SEC-003")
    def report_while_running(self, pick: int, value: DriverReport) -> None:
        """A driver reports PAUSED or NONE while its function still has Bus Master Enable set."""
        slots = [slot for slot, function in enumerate(self.functions) if function is not None]
        slot = slots[pick % len(slots)]
        function = self.functions[slot]
        assert function is not None
        function.bus_master = True
        self._report(slot, value, f"slot {slot}'s driver reports {value.name} with its function's BME set")

    @rule(
        slot=st.integers(0, MAX_SLOTS - 1),
        layout=st.sampled_from(("entry", "state+ctrl", "entry", "status+devfn")),
        drv=st.one_of(st.sampled_from(list(DriverReport)), st.integers(0, 7)),
        status=st.one_of(st.just(0x07), st.integers(0, 0xFF)),
        noise=st.integers(0, 0xFFFFFFFF),
    )
    @step("VFM-DEV-001", "VFM-DEV-004", "VFM-CAP-009", "VFM-ACC-001", "VFM-ACC-007", "VFM-DEV-010")
    def entry_write(self, slot: int, layout: str, drv: int, status: int, noise: int) -> None:
        """A 2- or 4-byte write of a slot entry: a report together with the bytes around DEV_CTRL."""
        if not self._live():
            return
        slot %= self.model.num_slots
        entry = self.cap + slot_offset(slot)
        if layout == "state+ctrl":
            self._guest_write(entry, 2, noise & 0xF8FF | int(drv) << 8, f"slot {slot}'s DEV_STATE and DEV_CTRL")
        elif layout == "entry":
            value = noise & 0xFF00F8FF | int(drv) << 8 | status << 16
            self._guest_write(entry, 4, value, f"slot {slot}'s whole entry")
        else:
            self._guest_write(entry + 2, 2, noise & 0xFF00 | status, f"slot {slot}'s DEV_STATUS and DEV_DEVFN")

    @rule(slot=st.integers(0, MAX_SLOTS - 1), on=st.booleans())
    @step()
    def bus_master(self, slot: int, on: bool) -> None:
        """The guest sets or clears Bus Master Enable in a function's Command register."""
        if not self._live():
            return
        function = self.functions[slot % self.model.num_slots]
        if function is not None:
            function.bus_master = on

    @rule(enable=st.booleans(), event_ie=st.booleans(), reserved=st.one_of(st.just(0), st.integers(0, 0x3FFF)))
    @step("VFM-ACC-001", "VFM-ACC-007", "VFM-NOTIF-002", "VFM-NOTIF-003", "VFM-VER-006")
    def control(self, enable: bool, event_ie: bool, reserved: int) -> None:
        if not self._live():
            return
        value = int(enable) | int(event_ie) << 1 | reserved << 2
        self._write_field("control.enable", value, 2, "the migration core writes CONTROL")

    @rule(value=st.one_of(st.integers(0, 0xF), st.integers(0, 0xFFFFFFFF)))
    @step("VFM-ACC-001", "VFM-VER-006")
    def guest_features(self, value: int) -> None:
        if not self._live():
            return
        self._write_field("guest_features.dma_dirty", value, 4, "the migration core writes GUEST_FEATURES")

    @rule(extra=st.one_of(st.just(0), st.integers(0, 0x7FFF)))
    @step("VFM-ACC-001", "VFM-NOTIF-003", "VFM-VER-006")
    def clear_event(self, extra: int) -> None:
        if self._live():
            self._clear_event(extra)

    @rule(slot=st.integers(0, MAX_SLOTS - 1), bits=st.one_of(st.integers(0, 7), st.integers(0, 0xFF)))
    @step("VFM-ACC-001", "VFM-FLAG-002")
    def clear_flags(self, slot: int, bits: int) -> None:
        if not self._live():
            return
        slot %= self.model.num_slots
        self._write_field(_flag_path(slot, "migrated"), bits, 1, f"slot {slot}'s driver clears DEV_STATUS flags")

    @rule(enable=st.booleans(), masked=st.booleans())
    @step("VFM-NOTIF-002", "VFM-NOTIF-003")
    def msi(self, enable: bool, masked: bool) -> None:
        """The guest enables or disables MSI, then masks or unmasks its vector."""
        if not self._live() or self.msi_at is None:
            return
        flags = self._read(self.msi_at + PCI_MSI_FLAGS, 2)
        flags = flags | PCI_MSI_FLAGS_ENABLE if enable else flags & ~PCI_MSI_FLAGS_ENABLE
        self._guest_write(self.msi_at + PCI_MSI_FLAGS, 2, flags, f"the guest {'enables' if enable else 'disables'} MSI")
        if self.msi_mask_at is not None and not self.stalled:
            mask = self._read(self.msi_mask_at, 4)
            mask = mask | 1 if masked else mask & ~1
            self._guest_write(self.msi_mask_at, 4, mask, f"the guest {'masks' if masked else 'unmasks'} MSI")

    @precondition(lambda self: not self.measured)
    @rule(data=st.integers(0, 0xFFFFFFFF))
    @step("VFM-SEC-002")
    def many_writes(self, data: int) -> None:
        """The guest writes the same registers again and again: the bridge keeps no more, and works no longer, for
        its later writes than for its earlier ones (VFM-SEC-002).

        The writes change nothing (a read-only register, CONTROL and GUEST_FEATURES rewritten with their values,
        zeros into the write-1-to-clear bits), so their outcome is known without a model step each; the first is
        judged as every write is.  Between two rounds of the same writes, the objects the bridge keeps (walked
        from the bridge and its classes, the suite's own objects left out) must not grow, and one write must not
        take more Python line events after the second round than after the first.
        """
        if not self._live():
            return
        self.measured = True  # once per example: the rule is costly
        model = self.model
        writes = (
            (self.cap + model.by_path["signature"].offset, 4, data),
            (
                self.cap + model.by_path["control.enable"].offset,
                2,
                model.get("control.enable") | model.get("control.event_ie") << 1,
            ),
            (self.cap + model.by_path["status.event"].offset, 2, 0),
            (
                self.cap + model.by_path["guest_features.dma_dirty"].offset,
                4,
                int.from_bytes(model.data[0x10:0x14], "little"),
            ),
            (self.cap + slot_offset(data % model.num_slots) + 2, 1, 0),
        )
        self._guest_write(*writes[0], "the guest writes SIGNATURE, a read-only register")
        if not self._live() or bytes(self.bridge.capability_bytes()) != bytes(model.data):
            return

        def burst() -> None:
            for _ in range(SEC_002_ROUND // len(writes)):
                for offset, width, value in writes:
                    self.bridge.config_write(offset, width, value)

        foreign = {id(self), id(self.bridge.bus), *(id(item) for item in (*self.functions, *self.bridge.observers))}
        one = partial(self.bridge.config_write, *writes[1])
        burst()  # caches and lazily built tables fill here
        kept_before, work_before = _retained(self.bridge, foreign), _line_events(one)
        burst()
        kept_after, work_after = _retained(self.bridge, foreign), _line_events(one)
        self.checks.raise_pending()
        after = bytes(self.bridge.capability_bytes())
        if after != bytes(model.data):
            self._sync(after)  # repeated writes that change something: the next judged write shows it
            return
        grew = kept_after[0] - kept_before[0], kept_after[1] - kept_before[1]
        slower = None if work_before is None or work_after is None else work_after - work_before
        self._that(
            "VFM-SEC-002",
            max(grew) < SEC_002_ROUND // 4 and (slower is None or slower < SEC_002_ROUND // 4),
            lambda: (
                f"after {SEC_002_ROUND} more guest writes that change nothing, the bridge keeps {grew[0]} more "
                f"objects and {grew[1]} more container entries, and one write takes {slower} more line events: "
                "each write must be processed in a time, and without memory, that do not depend on earlier writes"
            ),
        )

    @rule(disabled=st.booleans())
    @step("VFM-NOTIF-003")
    def interrupt_disable(self, disabled: bool) -> None:
        if not self._live():
            return
        command = self._read(PCI_COMMAND, 2)
        command = command | PCI_COMMAND_INTX_DISABLE if disabled else command & ~PCI_COMMAND_INTX_DISABLE
        self._guest_write(PCI_COMMAND, 2, command, f"the guest {'sets' if disabled else 'clears'} Interrupt Disable")

    @rule(on=st.booleans())
    @step("VFM-ERR-004", "VFM-ERR-005", "VFM-NOTIF-001")
    def secondary_bus_reset(self, on: bool) -> None:
        if not self._live():
            return
        control = self._read(PCI_BRIDGE_CONTROL, 2)
        control = control | PCI_BRIDGE_CTL_BUS_RESET if on else control & ~PCI_BRIDGE_CTL_BUS_RESET
        what = f"the guest {'sets' if on else 'clears'} Secondary Bus Reset"
        self._guest_write(PCI_BRIDGE_CONTROL, 2, control, what)

    @rule(
        where=st.sampled_from(("capability", "config")),
        position=st.integers(0, PCI_CONFIG_SIZE - 1),
        width=st.sampled_from(WRITE_WIDTHS),
    )
    @step("VFM-GEN-001", "VFM-ACC-005", "VFM-ACC-006")
    def guest_read(self, where: str, position: int, width: int) -> None:
        """A read anywhere, twice and byte by byte: the same value each time, little-endian, no side effect."""
        if not self._live():
            return
        stop = self.cap + self.model.length if where == "capability" else PCI_CONFIG_SIZE
        offset = _aligned(width, self.cap if where == "capability" else 0, stop, position)
        before = bytes(self.bridge.capability_bytes())
        first = self._read(offset, width)
        pieces = [self._read(offset + index, 1) for index in range(width)]
        second = self._read(offset, width)
        after = bytes(self.bridge.capability_bytes())
        self._that(
            "VFM-ACC-006",
            after == before and first == second,
            lambda: (
                f"reading {width} byte(s) at 0x{offset:02x} changed the capability or the value read: "
                f"0x{first:x}, then 0x{second:x}; the capability was {before.hex()}, then {after.hex()}"
            ),
        )
        if after == before and self._in_capability(offset, width):
            little = int.from_bytes(bytes(pieces), "little")
            self._that(
                "VFM-GEN-001",
                first == little,
                lambda: (
                    f"a {width}-byte read at 0x{offset:02x} returned 0x{first:x}; its 1-byte reads "
                    f"{[f'0x{piece:02x}' for piece in pieces]} make 0x{little:x} in little-endian order"
                ),
            )
        self._sync(after)

    # ------------------------------------------------------------------ rules: the hypervisor

    @precondition(lambda self: self._live() and self.model.allows(MigEvent.START))
    @rule()
    @step("VFM-MIG-002", "VFM-MIG-006", "VFM-MIG-007", "VFM-DEV-012", "VFM-NOTIF-001", "VFM-NOTIF-002", "VFM-NOTIF-004")
    def start(self) -> None:
        self._start()

    @precondition(lambda self: self._live() and self.model.allows(MigEvent.REQUEST_PAUSE))
    @rule()
    @step("VFM-MIG-006", "VFM-MIG-007", "VFM-DEV-012", "VFM-NOTIF-001", "VFM-NOTIF-002", "VFM-NOTIF-004")
    def request_pause(self) -> None:
        self._request_pause()

    @precondition(lambda self: self._live() and self.model.allows(MigEvent.CANCEL))
    @rule(reason=st.sampled_from(CANCEL_REASONS))
    @step("VFM-MIG-006", "VFM-MIG-007", "VFM-MIG-009", "VFM-DEV-012", "VFM-NOTIF-001", "VFM-NOTIF-002")
    def cancel(self, reason: MigReason) -> None:
        self._cancel(reason)

    @precondition(lambda self: self._live() and self.model.allows(MigEvent.ARRIVE))
    @rule()
    @step("VFM-MIG-006", "VFM-MIG-009", "VFM-FLAG-001", "VFM-NOTIF-001", "VFM-NOTIF-002")
    def arrive(self) -> None:
        self._arrive()

    @precondition(lambda self: self._live() and self.model.allows(MigEvent.GROUP_RESET))
    @rule()
    @step("VFM-MIG-006", "VFM-ERR-005", "VFM-NOTIF-001", "VFM-NOTIF-002")
    def group_reset(self) -> None:
        self._group_reset()

    @precondition(lambda self: self._live() and bool(self.model.slots_allowing(DevEvent.HOT_ADD)))
    @rule(pick=st.integers(0, MAX_SLOTS - 1))
    @step("VFM-DEV-002", "VFM-DEV-013", "VFM-NOTIF-001", "VFM-MIG-007")
    def hot_add(self, pick: int) -> None:
        slots = self.model.slots_allowing(DevEvent.HOT_ADD)
        self._hot_add(slots[pick % len(slots)])

    @precondition(lambda self: self._live() and bool(self.model.slots_allowing(DevEvent.SURPRISE_REMOVAL)))
    @rule(pick=st.integers(0, MAX_SLOTS - 1))
    @step("VFM-DEV-002", "VFM-DEV-013", "VFM-FLAG-002", "VFM-MIG-007")
    def surprise_removal(self, pick: int) -> None:
        slots = self.model.slots_allowing(DevEvent.SURPRISE_REMOVAL)
        self._surprise_removal(slots[pick % len(slots)])

    @precondition(lambda self: self._live() and bool(self.model.slots_allowing(DevEvent.DEVICE_ERROR)))
    @rule(pick=st.integers(0, MAX_SLOTS - 1))
    @step("VFM-DEV-002", "VFM-MIG-007", "VFM-NOTIF-001")
    def device_error(self, pick: int) -> None:
        slots = self.model.slots_allowing(DevEvent.DEVICE_ERROR)
        self._device_error(slots[pick % len(slots)])

    # ------------------------------------------------------------------ rules: both, cooperating

    @precondition(lambda self: self._live() and bool(self._bindable()))
    @rule(pick=st.integers(0, MAX_SLOTS - 1))
    @step("VFM-DEV-002", "VFM-DEV-004", "VFM-MIG-008", "VFM-NOTIF-001")
    def bind(self, pick: int) -> None:
        """A driver binds to an UNBOUND slot's function: READY, then Bus Master Enable."""
        slots = self._bindable()
        self._answer(slots[pick % len(slots)])

    @precondition(lambda self: self._live())
    @rule(times=st.integers(1, 8), late_binder=st.booleans())
    @step(
        "VFM-MIG-002",
        "VFM-MIG-006",
        "VFM-MIG-007",
        "VFM-MIG-008",
        "VFM-DEV-002",
        "VFM-DEV-004",
        "VFM-DEV-012",
        "VFM-FLAG-001",
        "VFM-NOTIF-001",
        "VFM-NOTIF-002",
        "VFM-NOTIF-003",
    )
    def advance(self, times: int, late_binder: bool) -> None:
        """The migration moves on: the core acknowledges the event, drivers answer, the hypervisor steps on."""
        for _ in range(times):
            if self._live() and self.model.event:
                self._clear_event()
            if self._live():
                self._progress(late_binder)()


_OPAQUE = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType, CodeType)
_SIZED = (list, tuple, dict, set, frozenset, bytes, bytearray, str, deque)


def _retained(bridge: object, foreign: set[int]) -> tuple[int, int]:
    """Objects reachable from ``bridge`` and its classes' attributes, and the entries of the containers among them.

    Classes, modules, functions and the objects in ``foreign`` (the suite's) are not walked into.
    """
    seen = set(foreign)
    stack: list[object] = [bridge, *(vars(cls) for cls in type(bridge).__mro__[:-1])]
    objects = entries = 0
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, _OPAQUE):
            continue
        seen.add(id(item))
        objects += 1
        if isinstance(item, _SIZED):
            entries += len(item)
        stack.extend(gc.get_referents(item))
    return objects, entries


def _line_events(call: Callable[[], None]) -> int | None:
    """The Python line events (and calls) ``call`` makes: its work, counted exactly (None: tracing is taken).

    The garbage collector is held off while it runs: finalizers it would run are not the call's work.
    """
    if sys.gettrace() is not None:
        return None  # a debugger or a coverage tool traces this thread: leave it alone
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        count += 1
        return trace

    collecting = gc.isenabled()
    gc.disable()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(None)
        if collecting:
            gc.enable()
    return count


def _endianness_message(offset: int, value: int, little: int) -> str:
    return (
        f"a 4-byte read at capability offset 0x{offset:02x} returned 0x{value:08x}, but the 1-byte reads of its "
        f"bytes make 0x{little:08x} in little-endian order"
    )


def _capability_size(config: _ConfigBytes, offset: int, cap_id: int) -> int:
    """Bytes a capability occupies, as far as the suite knows its kind (at least its two list bytes)."""
    if cap_id == PCI_CAP_ID_MSI:
        flags = int.from_bytes(config[offset + 2 : offset + 4], "little")
        size = 0x0E if flags & PCI_MSI_FLAGS_64BIT else 0x0A
        return size + (0x0A if flags & PCI_MSI_FLAGS_MASKBIT else 0)
    if cap_id == PCI_CAP_ID_SHPC:
        return PCI_SHPC_SIZEOF
    if cap_id == PCI_CAP_ID_SLOTID:
        return PCI_SID_SIZEOF
    if cap_id == PCI_CAP_ID_VNDR:
        return max(int(config[offset + 2]), 2)
    return 2
