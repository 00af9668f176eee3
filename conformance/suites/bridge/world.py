"""The world the bridge suite builds, and the state and plumbing every part of the suite shares.

:class:`BridgeWorld` is the base of every part of :class:`~conformance.suites.bridge.BridgeSuite`: it holds
the bridge under test, the model of its capability (:class:`~conformance.suites.bridge.model.CapabilityModel`)
and what the suite has seen of the bridge, and it reads the bridge as a guest does.  The observers
(:mod:`conformance.suites.bridge.observers`), the actions, the rules and the scenarios are mixins of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import precondition

from conformance.checks import ConformanceMachine
from conformance.suites.bridge.model import CapabilityModel, StepOutcome
from vfmig_proto.codec import find_field, validate
from vfmig_proto.engine import ReportVerdict
from vfmig_proto.errors import DecodeError
from vfmig_proto.layout import VFM_MAX_SLOTS, VFM_MIN_SLOTS, CapabilityParams, PlacedField
from vfmig_proto.pci import (
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_ENABLE,
)
from vfmig_proto.states import DevEvent, DevState, MigEvent, MigState
from vfmig_proto.transitions import MIGRATION_TRANSITIONS

SLOT_COUNTS = (2, 1, 3, 4, 5, 6, 7, 8, VFM_MAX_SLOTS // 2, VFM_MAX_SLOTS)
"""The slot counts the suite's bridges are built with: mostly small ones (fast, every per-slot rule has a slot to act
on), and the largest the spec allows and one halfway, so that the last slots of a full bridge are used too."""
SLOT_PICKS = st.integers(-VFM_MAX_SLOTS, VFM_MAX_SLOTS - 1)
"""A rule's choice of slot among ``n`` candidates, taken modulo ``n``: negative picks count from the end, so that the
last slot is chosen as often as the first whatever the bridge's size."""
SLOT_LAYOUTS = ("random", "all", "first", "last", "ends", "middle", "alternate")
"""How the ``build`` rule fills a bridge's slots (:func:`occupied_slots`)."""


SWARM_RULES = (
    "guest_write",
    "register_write",
    "lane_write",
    "illegal_write",
    "report",
    "report_while_running",
    "entry_write",
    "control",
    "guest_features",
    "clear_event",
    "clear_flags",
    "msi",
    "interrupt_disable",
    "secondary_bus_reset",
    "guest_read",
    "start",
    "request_pause",
    "cancel",
    "conventional_reset",
    "group_reset",
    "hot_add",
    "surprise_removal",
    "device_error",
    "unbind",
    "stale_answer",
)
"""The rules swarm testing may switch off for a whole example (the ``build`` rule draws which): an example with
fewer kinds of action does more of each, and reaches states that the others' noise keeps it from."""


def swarmed(method: Callable[..., None]) -> Callable[..., None]:
    """A rule that runs only in the examples whose swarm keeps it on (:data:`SWARM_RULES`)."""
    name = method.__name__
    assert name in SWARM_RULES, f"{name} is not listed in SWARM_RULES"

    def on(self: BridgeWorld) -> bool:
        return name not in self.swarm_off

    swarm_precondition: Callable[[Callable[..., None]], Callable[..., None]] = precondition(on)
    return swarm_precondition(method)


def occupied_slots(layout: str, num_slots: int, bits: list[bool]) -> list[bool]:
    """Which of ``num_slots`` slots hold a function in ``layout``: every one, the first, the last, both ends, the
    middle one, every other one, or (``random``) as ``bits`` say, over the whole range of slots."""
    last, middle = num_slots - 1, num_slots // 2
    rules: dict[str, Callable[[int], bool]] = {
        "all": lambda slot: True,
        "first": lambda slot: slot == 0,
        "last": lambda slot: slot == last,
        "ends": lambda slot: slot in {0, last},
        "middle": lambda slot: slot == middle,
        "alternate": lambda slot: slot % 2 == last % 2,
    }
    if layout == "random":
        return [bits[slot % len(bits)] for slot in range(num_slots)]
    return [rules[layout](slot) for slot in range(num_slots)]


CANCEL_BEFORE_RESET = frozenset(
    state
    for state in MigState
    if (state, MigEvent.GROUP_RESET) not in MIGRATION_TRANSITIONS and (state, MigEvent.CANCEL) in MIGRATION_TRANSITIONS
)
"""Where the hypervisor cancels before a group reset the guest requests (VFM-MIG-011): GROUP_RESET has no row."""
Part = TypeVar("Part")
"""Whichever part of the world :func:`built` is asked for (the bridge under test, the model)."""


def built(part: Part | None) -> Part:
    """A part of the world, which the ``build`` rule makes before any other rule runs."""
    assert part is not None, "the world is built first"
    return part


def register_offset(path: str) -> int:
    """Where the register holding the header field ``path`` lies in the capability (by :mod:`vfmig_proto.layout`)."""
    return find_field(VFM_MIN_SLOTS, path).offset


HEX_ABOVE_BITS = 4
"""A field of up to this many bits is a small number and is shown in decimal; a wider one (an ID, a mask) in hex."""


def describe_value(placed: PlacedField, value: int) -> str:
    """``value`` of the field ``placed``, by name if the field's values are named."""
    values = placed.field.values
    if values is not None and value in values._value2member_map_:
        return f"{values(value).name} ({value})"
    return f"0x{value:x}" if placed.field.width > HEX_ABOVE_BITS else str(value)


@dataclass
class FakeFunction:
    """A function behind the bridge: a settable Bus Master Enable and a record of its resets."""

    name: str
    trace: list[str]
    bus_master: bool = False

    def function_level_reset(self, how: str) -> None:
        self.trace.append(f"reset {self.name} ({how})")
        self.bus_master = False  # a reset clears the Command register


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
    report: ReportVerdict | None = None
    """The model's verdict on the report the write carries, if it covers a ``DEV_CTRL``."""
    chain: tuple[DevState, ...] = ()
    """For an accepted report: the row's next state, then each state catch-up moves the slot to (VFM-MIG-008)."""
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


@dataclass
class Explored:
    """How far an example went, for Hypothesis' ``target``: the protocol states visited, the migrations made."""

    visited: set[tuple[MigState, DevState]] = field(default_factory=set)
    """The ``(MIG_STATE, DEV_STATE)`` pairs the model has been in."""
    migrations: int = 0
    """The migrations handed over to a destination."""


class BridgeWorld(ConformanceMachine):
    """One bridge under test, the model of its capability, and what the suite has seen of it."""

    explored: Explored
    """How far this example went (the ``build`` rule makes it with the world)."""
    swarm_off: frozenset[str] = frozenset()
    """The rules swarm testing switched off in this example (:data:`SWARM_RULES`; the ``build`` rule draws them)."""

    def __init__(self) -> None:
        super().__init__()
        self._bridge: Any = None
        self._model: CapabilityModel | None = None
        self.params: CapabilityParams = CapabilityParams()
        """What the bridge was instantiated with (the ``build`` rule chooses it)."""
        self.cap: int = 0
        """The migration capability's offset in config space."""
        self.msi_at: int | None = None
        """The MSI capability's offset, if the bridge has one."""
        self.msi_mask_at: int | None = None
        """The offset of MSI's Mask Bits register, if the vector can be masked."""
        self.shpc_at: int | None = None
        """The SHPC capability's offset, if the bridge has one."""
        self.functions: list[FakeFunction | None] = []
        """The function in each slot (None: the slot is empty)."""
        self.trace: list[str] = []
        """Resets of functions and the bridge's calls of secondary_bus_reset_requested, in order, this step."""
        self.rejections: list[tuple[int, int]] = []
        """``(slot, DRV_STATE)`` of each report the bridge told the hypervisor it rejected, this step."""
        self.interrupts: int = 0
        """Interrupts the bridge signalled this step."""
        self.registers: Registers = Registers()
        """The registers outside the capability that decide the interrupt, as last read."""
        self.level: bool = False
        """The INTx pin as the model has it (VFM-NOTIF-003)."""
        self.pending: bool = False
        """An MSI message held pending while the vector is masked (spec §6.2)."""
        self.pending_uncertain: bool = False
        """MSI was switched while a message was pending: the spec does not say what becomes of it."""
        self.shpc_bytes: bytes = b""
        """The SHPC capability's config-space window, as last read."""
        self.current: Expectation | None = None
        """The guest write or host event under way."""
        self.stalled: bool = False
        """The bridge left the model for a state no valid capability has: nothing more to judge."""
        self._diverged: bool = False
        """A check already judged failed in this step: what follows from it is not judged again."""
        self._functions_made: int = 0
        self.access_steps: list[bytes] | None = None
        """While a guest write runs: the capability at each step the bridge announced for it (VFM-ACC-007)."""
        self.host_depth: int = 0
        """Host events the suite is causing from within the bridge's handling of a guest write."""
        self.caused: list[MigEvent | tuple[int | None, DevEvent]] = []
        """The host events the suite caused in this step, not yet seen published (VFM-DEV-012)."""
        self.measured: bool = False
        """The ``many_writes`` rule ran in this example."""
        self.version_minor: int = 0
        """VERSION_MINOR as the bridge presents it, if it presents major version 1 (VFM-VER-006)."""
        self.later_features: int = 0
        """HOST_FEATURES[31:4] as the bridge presents them: the features of later minor versions it offers."""

    # ------------------------------------------------------------------ plumbing

    @property
    def bridge(self) -> Any:
        return built(self._bridge)

    @property
    def model(self) -> CapabilityModel:
        return built(self._model)

    def _live(self) -> bool:
        """Whether there is a bridge to judge: the world is built and the bridge has not left the model."""
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
        if model.get("num_slots", actual) != model.num_slots:
            self.stalled = True
            return
        model.take_over(actual)
        self.level = self.registers.pin(model.event, model.enabled)
