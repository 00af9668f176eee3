"""What the environment does: the rules with which Hypothesis drives the bridge, as the guest and the hypervisor.

``build`` makes the world: one bridge from the implementation under test, instantiated with parameters it chooses
(1 to 8 slots, half the spec's maximum or the maximum, occupied in any layout; any legal ``PAGE_SHIFT``,
``ACK_TIMEOUT_MS`` and first device number), simple fake functions in its slots, MSI and the event interrupt
enabled or not. The guest's rules make configuration writes of every width and alignment, legal or not, anywhere in
the capability and the type-1 header; driver reports of every ``DRV_STATE`` value in every state, alone and inside
wider writes; Bus Master Enable toggles on the functions; MSI enable and mask, Interrupt Disable, ``CONTROL``,
``GUEST_FEATURES`` and ``STATUS.EVENT`` writes; Secondary Bus Reset edges; and reads. The hypervisor's rules cause
every host event that has a row in the transition tables for the current state (the suite never causes a host event
without a row), ARRIVE on a new bridge restored from the source (``_migrate``), and conventional resets of the
bridge.

A rule runs only while there is a bridge to judge (``_live``): once the bridge has left the model for a state
no valid capability has, nothing more is judged.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from conformance.checks import step
from conformance.suites.bridge.actions import Actions
from conformance.suites.bridge.model import REPORT_NAMES, CapabilityModel, drv_path, flag_path
from conformance.suites.bridge.observers.discovery import CAP_NEXT, ConfigBytes
from conformance.suites.bridge.observers.security import SEC_002_ROUND, line_events, retained_objects
from conformance.suites.bridge.observers.versions import (
    GUEST_FEATURES,
    HOST_FEATURES,
    LATER_FEATURES_SHIFT,
    VERSION_MAJOR,
    VERSION_MINOR,
)
from conformance.suites.bridge.sweep import SWEEP_SLOTS, Move, next_move, plan
from conformance.suites.bridge.world import (
    SLOT_COUNTS,
    SLOT_LAYOUTS,
    SLOT_PICKS,
    SWARM_RULES,
    Explored,
    occupied_slots,
    swarmed,
)
from vfmig_proto import pci
from vfmig_proto.access import WRITE_WIDTHS
from vfmig_proto.layout import (
    VFM_DEFAULT_ACK_TIMEOUT_MS,
    VFM_HEADER_SIZE,
    VFM_MAX_ACK_TIMEOUT_MS,
    VFM_MAX_PAGE_SHIFT,
    VFM_MAX_SLOTS,
    VFM_MIN_ACK_TIMEOUT_MS,
    VFM_MIN_PAGE_SHIFT,
    VFM_SLOT_ENTRY_SIZE,
    CapabilityParams,
    slot_offset,
)
from vfmig_proto.states import DevEvent, DriverReport, MigEvent, MigReason, SlotFlag
from vfmig_proto.transitions import CANCEL_REASONS as ALLOWED_CANCEL_REASONS

BITS_PER_BYTE = 8
SWEEP_WRITE_VALUE = 0x5A5A5A5A
"""What the sweep writes into the read-only register of its round of repeated writes (VFM-SEC-002)."""
SWEEP_IDLE_MOVES = 24
"""The sweep gives up after this many moves in a row that cover no new pair (a path between two states of the plan
is at most a dozen moves): a bridge that does not go where the protocol says (its steps are judged; the model
takes its state over) cannot keep the walk going."""
CANCEL_REASONS = tuple(reason for reason in MigReason if reason in ALLOWED_CANCEL_REASONS)
"""The reasons the hypervisor gives for a CANCEL, in a fixed order (Hypothesis draws from it)."""


def _can_cause(event: MigEvent | DevEvent) -> Callable[[Rules], bool]:
    """The precondition of a host event's rule: a bridge to judge, and a row for ``event`` (in one slot, at least).

    The suite, in the hypervisor's seat, never causes a host event without a row.
    """
    if isinstance(event, MigEvent):
        return lambda self: self._live() and self.model.allows(event)
    return lambda self: self._live() and bool(self.model.slots_allowing(event))


def _aligned(width: int, start: int, stop: int, position: int) -> int:
    """An offset in ``[start, stop)`` aligned to ``width``, picked by ``position``."""
    return start + (position % ((stop - start) // width)) * width


class Rules(Actions):
    """The world's construction, and every rule of the guest and of the hypervisor."""

    # ------------------------------------------------------------------ the world

    # Hypothesis tries the simplest value of each strategy first (and shrinks towards it): the first choice of
    # each is the busiest world, with functions in the slots, MSI on and the event interrupt enabled, and every
    # rule enabled (swarm testing disables a random subset of them in the other examples).
    @initialize(
        num_slots=st.sampled_from(SLOT_COUNTS),
        page_shift=st.one_of(st.just(VFM_MIN_PAGE_SHIFT), st.integers(VFM_MIN_PAGE_SHIFT, VFM_MAX_PAGE_SHIFT)),
        ack_timeout_ms=st.one_of(
            st.just(VFM_DEFAULT_ACK_TIMEOUT_MS), st.integers(VFM_MIN_ACK_TIMEOUT_MS, VFM_MAX_ACK_TIMEOUT_MS)
        ),
        first_device=st.one_of(st.just(1), st.integers(0, 31)),
        layout=st.sampled_from(SLOT_LAYOUTS),
        occupied=st.lists(st.booleans(), min_size=1, max_size=VFM_MAX_SLOTS),
        msi=st.sampled_from((True, False)),
        control=st.sampled_from((3, 1, 3, 2, 1, 0)),
        swarm=st.one_of(st.just(frozenset()), st.frozensets(st.sampled_from(SWARM_RULES))),
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
        layout: str,
        occupied: list[bool],
        msi: bool,
        control: int,
        swarm: frozenset[str],
    ) -> None:
        self._sweep_tables()
        first_device = min(first_device, 32 - num_slots)
        params = CapabilityParams(
            num_slots=num_slots, page_shift=page_shift, ack_timeout_ms=ack_timeout_ms, first_device=first_device
        )
        self.swarm_off = swarm
        self._build_world(params, occupied_slots(layout, num_slots, occupied), msi=msi, control=control)

    def _build_world(self, params: CapabilityParams, occupied: list[bool], *, msi: bool, control: int) -> None:
        """A new bridge of ``params`` under test, discovered and judged at reset, with functions hot-added into the
        ``occupied`` slots, MSI enabled (``msi``) and ``CONTROL`` written (``control``)."""
        self.params = params
        self.explored = Explored()
        self._bridge = self._create_bridge("bridge")
        self.functions = [None] * params.num_slots
        config = ConfigBytes(self._read)  # 1-byte reads, as a guest walks the capability list
        self.cap = self._discover(config)
        if config[self.cap + VERSION_MAJOR] == 1:  # a later minor version of 1 (spec §9.2), or 0
            self.version_minor = config[self.cap + VERSION_MINOR]
            features = config[self.cap + HOST_FEATURES : self.cap + HOST_FEATURES + 4]
            self.later_features = int.from_bytes(features, "little") >> LATER_FEATURES_SHIFT
        self._check_reset_value(config)
        self._model = CapabilityModel(self.params, config[self.cap + CAP_NEXT])
        self.model.take_over(self._as_presented(bytes(self.model.data)))
        self.registers = self._read_registers()
        self.shpc_bytes = self._read_shpc()
        guest, host, mutated = self._observe(full=True)
        self._sync(host if mutated else guest)
        for slot in range(params.num_slots):
            if occupied[slot] and not self.stalled:
                self._hot_add(slot)
        if msi and self.msi_at is not None and not self.stalled:
            flags = self._read(self.msi_at + pci.PCI_MSI_FLAGS, 2) | pci.PCI_MSI_FLAGS_ENABLE
            self._guest_write(self.msi_at + pci.PCI_MSI_FLAGS, 2, flags, "the migration core enables MSI")
        if not self.stalled:
            self._write_field("control.enable", control, 2, "the migration core writes CONTROL")

    def _sweep_tables(self) -> None:
        """Once in a run, before its first example's world: the deterministic sweep of the protocol's tables.

        A bridge of :data:`~conformance.suites.bridge.sweep.SWEEP_SLOTS` slots is walked through every
        ``(MIG_STATE, DEV_STATE)`` a slot can be in, and in each every ``DRV_STATE`` value is reported (BME set
        and clear where the BME rule speaks of it) and every host event with a row is caused
        (:mod:`conformance.suites.bridge.sweep`), each move judged as the rules' are; then the byte lanes of the
        capability's registers are written (:meth:`_sweep_lanes`), the guest sets and clears Secondary Bus
        Reset, and the repeated writes of ``many_writes`` are measured, so that every run judges these once.
        The run remembers that the sweep passed (on the bound machine class): an example whose sweep fails does
        not, so every replay and every shrink of it sweeps again and fails the same way, and the replay file
        reproduces it.
        """
        machine = type(self)
        if machine.__dict__.get("_tables_swept", False):
            return
        world = dict(vars(self))
        self._build_world(CapabilityParams(num_slots=SWEEP_SLOTS), [False] * SWEEP_SLOTS, msi=True, control=3)
        the_plan = plan()
        covered: set[tuple[object, ...]] = set()
        idle = 0
        while self._live() and idle < SWEEP_IDLE_MOVES:
            state = (self.model.mig_state, tuple(self.model.dev_states()))
            move = next_move(state, covered, the_plan)
            if move is None:
                break
            key = move.key(state)
            idle = 0 if key not in covered else idle + 1
            covered.add(key)
            self._make(move)
        self._sweep_lanes()
        for on in (True, False):  # a group reset the guest asks for, by a 0 -> 1 edge of Secondary Bus Reset
            if self._live():
                self._secondary_bus_reset(on)
        if self._live():
            self.many_writes(SWEEP_WRITE_VALUE)
        vars(self).clear()
        vars(self).update(world)
        setattr(machine, "_tables_swept", True)  # noqa: B010 - on the bound class, for the rest of the run

    def _make(self, move: Move) -> None:
        """One move of the sweep, as the suite's actions make it."""
        if move.kind == "report":
            assert move.slot is not None
            function = self.functions[move.slot]
            if function is not None:
                function.bus_master = move.bme
            name = REPORT_NAMES.get(move.value, f"undefined {move.value}")
            state = self.model.dev_state(move.slot).name
            bme = "set" if move.bme else "clear"
            what = f"the sweep: slot {move.slot}'s driver reports {name} in {state} with BME {bme}"
            self._report(move.slot, move.value, what)
        elif move.kind == "slot":
            assert move.slot is not None
            slot_events = {
                DevEvent.HOT_ADD: self._hot_add,
                DevEvent.SURPRISE_REMOVAL: self._surprise_removal,
                DevEvent.DEVICE_ERROR: self._device_error,
            }
            slot_events[DevEvent(move.event)](move.slot)
        else:
            migration_events: dict[MigEvent, Callable[[], None]] = {
                MigEvent.START: self._start,
                MigEvent.REQUEST_PAUSE: self._request_pause,
                MigEvent.CANCEL: partial(self._cancel, MigReason.ACK_TIMEOUT),
                MigEvent.ARRIVE: self._migrate,
                MigEvent.GROUP_RESET: self._group_reset,
            }
            migration_events[MigEvent(move.event)]()

    def _sweep_lanes(self) -> None:
        """Every legal write (1, 2 and 4 bytes, every aligned offset) into the capability's header and first and last
        slot entries, with all ones and then zeros: every byte lane of every RO, RW, RW1C and reserved field is
        written alone and with its neighbours, and judged by the per-byte access rules of :mod:`vfmig_proto.access`."""
        length = self.model.length
        spans = ((0, VFM_HEADER_SIZE), (slot_offset(0), slot_offset(1)), (length - VFM_SLOT_ENTRY_SIZE, length))
        for start, stop in spans:
            for width in WRITE_WIDTHS:
                for offset in range(start, stop, width):
                    for value in ((1 << 8 * width) - 1, 0):
                        if not self._live():
                            return
                        self._guest_write(self.cap + offset, width, value, "the sweep: a byte-lane write")

    # ------------------------------------------------------------------ rules: the guest

    @swarmed
    @precondition(lambda self: self._live())
    @rule(
        where=st.sampled_from(("capability", "header", "config")),
        position=st.integers(0, pci.PCI_CONFIG_SIZE - 1),
        width=st.sampled_from(WRITE_WIDTHS),
        value=st.integers(0, 0xFFFFFFFF),
    )
    @step("VFM-ACC-001", "VFM-ACC-004", "VFM-ACC-005", "VFM-ACC-007", "VFM-SEC-001", "VFM-CAP-007", "VFM-ERR-004")
    def guest_write(self, where: str, position: int, width: int, value: int) -> None:
        """A write of a random value anywhere: the capability, the type-1 header, all of config space."""
        if where == "capability":
            offset = _aligned(width, self.cap, self.cap + self.model.length, position)
        else:
            offset = _aligned(
                width, 0, pci.PCI_STD_HEADER_SIZEOF if where == "header" else pci.PCI_CONFIG_SIZE, position
            )
        self._guest_write(offset, width, value & ((1 << (8 * width)) - 1), f"a guest write to the {where}")

    @swarmed
    @precondition(lambda self: self._live())
    @rule(
        header=st.booleans(),
        pick=st.integers(0, pci.PCI_CONFIG_SIZE - 1),
        width=st.sampled_from(WRITE_WIDTHS),
        value=st.integers(0, 0xFFFFFFFF),
    )
    @step("VFM-ACC-001", "VFM-ACC-004", "VFM-ACC-005", "VFM-ACC-007", "VFM-SEC-001", "VFM-CAP-007", "VFM-MIG-009")
    def register_write(self, header: bool, pick: int, width: int, value: int) -> None:
        """A write of a random value that covers the first byte of one register (a header one half the time)."""
        registers = [offset for offset in self.model.registers if (offset < VFM_HEADER_SIZE) == header]
        offset = self.cap + registers[pick % len(registers)] // width * width
        self._guest_write(offset, width, value & ((1 << (8 * width)) - 1), "a guest write to a register")

    @swarmed
    @precondition(lambda self: self._live())
    @rule(
        capability=st.booleans(),
        pick=SLOT_PICKS,
        lane=st.integers(0, 3),
        width=st.sampled_from(WRITE_WIDTHS),
        value=st.one_of(st.sampled_from((0xFFFFFFFF, 0)), st.integers(0, 0xFFFFFFFF)),
    )
    @step("VFM-ACC-001", "VFM-ACC-004", "VFM-ACC-005", "VFM-ACC-007", "VFM-SEC-001", "VFM-CAP-007", "VFM-VER-006")
    def lane_write(self, capability: bool, pick: int, lane: int, width: int, value: int) -> None:
        """A legal write that starts past the first byte of a multi-byte field: one byte lane, or the upper half,
        of a field of the capability (judged by its per-byte access rules) or of a register of the type-1 header."""
        if capability:
            wide = [placed for placed in self.model.fields if placed.field.width > BITS_PER_BYTE]
            placed = wide[pick % len(wide)]
            start = self.cap + placed.offset + placed.field.lsb // BITS_PER_BYTE
            span = -(-placed.field.width // BITS_PER_BYTE)
        else:
            start, span = pick % pci.PCI_STD_HEADER_SIZEOF // 4 * 4, 4
        position = start + 1 + lane % (span - 1) if span > 1 else start
        while position % width:
            width //= 2  # the widest legal write at this byte lane, up to the one drawn
        what = f"a guest write at byte {position - start} of a {span}-byte field"
        self._guest_write(position, width, value & ((1 << (BITS_PER_BYTE * width)) - 1), what)

    @swarmed
    @precondition(lambda self: self._live())
    @rule(
        position=st.integers(0, pci.PCI_CONFIG_SIZE - 1),
        width=st.sampled_from((2, 4, 2, 4, 3, 8, 5, 6, 7)),
        value=st.integers(0, (1 << 64) - 1),
    )
    @step("VFM-ACC-003", "VFM-ACC-005")
    def illegal_write(self, position: int, width: int, value: int) -> None:
        """A write no PCI transaction makes: unaligned, or 3, 5, 6, 7 or 8 bytes wide, in the capability."""
        offsets = [
            offset
            for offset in range(self.cap, self.cap + self.model.length - width + 1)
            if width not in WRITE_WIDTHS or offset % width
        ]
        offset = offsets[position % len(offsets)]
        self._guest_write(offset, width, value & ((1 << (8 * width)) - 1), "an illegal guest write")

    @swarmed
    @precondition(lambda self: self._live())
    @rule(
        slot=SLOT_PICKS,
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
        slot %= self.model.num_slots
        if repeat:
            value = self.model.get(drv_path(slot))
        function = self.functions[slot]
        if function is not None and bme is not None:
            function.bus_master = bme
        name = REPORT_NAMES.get(int(value), f"undefined {int(value)}")
        self._report(slot, reserved << 3 | int(value), f"slot {slot}'s driver reports {name}")

    @swarmed
    @precondition(lambda self: self._live() and any(function is not None for function in self.functions))
    @rule(pick=SLOT_PICKS, value=st.sampled_from((DriverReport.PAUSED, DriverReport.NONE)))
    @step("VFM-DEV-011", "VFM-DEV-010", "VFM-SEC-003")
    def report_while_running(self, pick: int, value: DriverReport) -> None:
        """A driver reports PAUSED or NONE while its function still has Bus Master Enable set."""
        slots = [slot for slot, function in enumerate(self.functions) if function is not None]
        slot = slots[pick % len(slots)]
        function = self.functions[slot]
        assert function is not None
        function.bus_master = True
        self._report(slot, value, f"slot {slot}'s driver reports {value.name} with its function's BME set")

    @swarmed
    @precondition(lambda self: self._live())
    @rule(
        slot=SLOT_PICKS,
        layout=st.sampled_from(("entry", "state+ctrl", "entry", "status+devfn")),
        drv=st.one_of(st.sampled_from(list(DriverReport)), st.integers(0, 7)),
        status=st.one_of(st.just(0x07), st.integers(0, 0xFF)),
        noise=st.integers(0, 0xFFFFFFFF),
    )
    @step("VFM-DEV-001", "VFM-DEV-004", "VFM-CAP-009", "VFM-ACC-001", "VFM-ACC-007", "VFM-DEV-010")
    def entry_write(self, slot: int, layout: str, drv: int, status: int, noise: int) -> None:
        """A 2- or 4-byte write of a slot entry: a report together with the bytes around DEV_CTRL."""
        slot %= self.model.num_slots
        entry = self.cap + slot_offset(slot)
        if layout == "state+ctrl":
            self._guest_write(entry, 2, noise & 0xF8FF | int(drv) << 8, f"slot {slot}'s DEV_STATE and DEV_CTRL")
        elif layout == "entry":
            value = noise & 0xFF00F8FF | int(drv) << 8 | status << 16
            self._guest_write(entry, 4, value, f"slot {slot}'s whole entry")
        else:
            self._guest_write(entry + 2, 2, noise & 0xFF00 | status, f"slot {slot}'s DEV_STATUS and DEV_DEVFN")

    @rule(slot=SLOT_PICKS, on=st.booleans())
    @step()
    def bus_master(self, slot: int, on: bool) -> None:
        """The guest sets or clears Bus Master Enable in a function's Command register."""
        # A guard, not a precondition: once the bridge has stalled, every other rule's precondition is false, and
        # Hypothesis raises InvalidDefinition when no rule may run; this rule stays valid (a no-op) instead.
        if not self._live():
            return
        function = self.functions[slot % self.model.num_slots]
        if function is not None:
            function.bus_master = on

    @swarmed
    @precondition(lambda self: self._live())
    @rule(enable=st.booleans(), event_ie=st.booleans(), reserved=st.one_of(st.just(0), st.integers(0, 0x3FFF)))
    @step("VFM-ACC-001", "VFM-ACC-007", "VFM-NOTIF-002", "VFM-NOTIF-003", "VFM-VER-006")
    def control(self, enable: bool, event_ie: bool, reserved: int) -> None:
        value = int(enable) | int(event_ie) << 1 | reserved << 2
        self._write_field("control.enable", value, 2, "the migration core writes CONTROL")

    @swarmed
    @precondition(lambda self: self._live())
    @rule(value=st.one_of(st.integers(0, 0xF), st.integers(0, 0xFFFFFFFF)))
    @step("VFM-ACC-001", "VFM-VER-006")
    def guest_features(self, value: int) -> None:
        self._write_field("guest_features.dma_dirty", value, 4, "the migration core writes GUEST_FEATURES")

    @swarmed
    @precondition(lambda self: self._live())
    @rule(extra=st.one_of(st.just(0), st.integers(0, 0x7FFF)))
    @step("VFM-ACC-001", "VFM-NOTIF-003", "VFM-VER-006")
    def clear_event(self, extra: int) -> None:
        self._clear_event(extra)

    @swarmed
    @precondition(lambda self: self._live())
    @rule(slot=SLOT_PICKS, bits=st.one_of(st.integers(0, 7), st.integers(0, 0xFF)))
    @step("VFM-ACC-001", "VFM-FLAG-002")
    def clear_flags(self, slot: int, bits: int) -> None:
        slot %= self.model.num_slots
        self._write_field(flag_path(slot, SlotFlag.MIGRATED), bits, 1, f"slot {slot}'s driver clears DEV_STATUS flags")

    @swarmed
    @precondition(lambda self: self._live() and self.msi_at is not None)
    @rule(enable=st.booleans(), masked=st.booleans())
    @step("VFM-NOTIF-002", "VFM-NOTIF-003")
    def msi(self, enable: bool, masked: bool) -> None:
        """The guest enables or disables MSI, then masks or unmasks its vector."""
        assert self.msi_at is not None  # the precondition: the bridge has MSI
        flags = self._read(self.msi_at + pci.PCI_MSI_FLAGS, 2)
        flags = flags | pci.PCI_MSI_FLAGS_ENABLE if enable else flags & ~pci.PCI_MSI_FLAGS_ENABLE
        self._guest_write(
            self.msi_at + pci.PCI_MSI_FLAGS, 2, flags, f"the guest {'enables' if enable else 'disables'} MSI"
        )
        if self.msi_mask_at is not None and not self.stalled:
            mask = self._read(self.msi_mask_at, 4)
            mask = mask | 1 if masked else mask & ~1
            self._guest_write(self.msi_mask_at, 4, mask, f"the guest {'masks' if masked else 'unmasks'} MSI")

    @precondition(lambda self: self._live() and not self.measured)
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
                int.from_bytes(model.data[GUEST_FEATURES : GUEST_FEATURES + 4], "little"),
            ),
            (self.cap + model.by_path[flag_path(data % model.num_slots, SlotFlag.MIGRATED)].offset, 1, 0),
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
        kept_before, work_before = retained_objects(self.bridge, foreign), line_events(one)
        burst()
        kept_after, work_after = retained_objects(self.bridge, foreign), line_events(one)
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

    @swarmed
    @precondition(lambda self: self._live())
    @rule(disabled=st.booleans())
    @step("VFM-NOTIF-003")
    def interrupt_disable(self, disabled: bool) -> None:
        command = self._read(pci.PCI_COMMAND, 2)
        command = command | pci.PCI_COMMAND_INTX_DISABLE if disabled else command & ~pci.PCI_COMMAND_INTX_DISABLE
        self._guest_write(
            pci.PCI_COMMAND, 2, command, f"the guest {'sets' if disabled else 'clears'} Interrupt Disable"
        )

    @swarmed
    @precondition(lambda self: self._live())
    @rule(on=st.booleans())
    @step("VFM-ERR-004", "VFM-ERR-005", "VFM-NOTIF-001")
    def secondary_bus_reset(self, on: bool) -> None:
        self._secondary_bus_reset(on)

    def _secondary_bus_reset(self, on: bool) -> None:
        """The guest sets or clears Secondary Bus Reset in Bridge Control."""
        control = self._read(pci.PCI_BRIDGE_CONTROL, 2)
        control = control | pci.PCI_BRIDGE_CTL_BUS_RESET if on else control & ~pci.PCI_BRIDGE_CTL_BUS_RESET
        what = f"the guest {'sets' if on else 'clears'} Secondary Bus Reset"
        self._guest_write(pci.PCI_BRIDGE_CONTROL, 2, control, what)

    @swarmed
    @precondition(lambda self: self._live())
    @rule(
        where=st.sampled_from(("capability", "config")),
        position=st.integers(0, pci.PCI_CONFIG_SIZE - 1),
        width=st.sampled_from(WRITE_WIDTHS),
    )
    @step("VFM-GEN-001", "VFM-ACC-005", "VFM-ACC-006")
    def guest_read(self, where: str, position: int, width: int) -> None:
        """A read anywhere, twice and byte by byte: the same value each time, little-endian, no side effect."""
        stop = self.cap + self.model.length if where == "capability" else pci.PCI_CONFIG_SIZE
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

    @swarmed
    @precondition(_can_cause(MigEvent.START))
    @rule()
    @step("VFM-MIG-002", "VFM-MIG-006", "VFM-MIG-007", "VFM-DEV-012", "VFM-NOTIF-001", "VFM-NOTIF-002", "VFM-NOTIF-004")
    def start(self) -> None:
        self._start()

    @swarmed
    @precondition(_can_cause(MigEvent.REQUEST_PAUSE))
    @rule()
    @step("VFM-MIG-006", "VFM-MIG-007", "VFM-DEV-012", "VFM-NOTIF-001", "VFM-NOTIF-002", "VFM-NOTIF-004")
    def request_pause(self) -> None:
        self._request_pause()

    @swarmed
    @precondition(_can_cause(MigEvent.CANCEL))
    @rule(reason=st.sampled_from(CANCEL_REASONS))
    @step("VFM-MIG-006", "VFM-MIG-007", "VFM-MIG-009", "VFM-DEV-012", "VFM-NOTIF-001", "VFM-NOTIF-002")
    def cancel(self, reason: MigReason) -> None:
        self._cancel(reason)

    @precondition(_can_cause(MigEvent.ARRIVE))
    @rule()
    @step("VFM-MIG-006", "VFM-MIG-009", "VFM-FLAG-001", "VFM-NOTIF-001", "VFM-NOTIF-002")
    def arrive(self) -> None:
        self._migrate()

    @swarmed
    @precondition(lambda self: self._live())
    @rule()
    @step("VFM-CAP-006", "VFM-NOTIF-001")
    def conventional_reset(self) -> None:
        self._conventional_reset()

    @swarmed
    @precondition(_can_cause(MigEvent.GROUP_RESET))
    @rule()
    @step("VFM-MIG-006", "VFM-ERR-005", "VFM-NOTIF-001", "VFM-NOTIF-002")
    def group_reset(self) -> None:
        self._group_reset()

    @swarmed
    @precondition(_can_cause(DevEvent.HOT_ADD))
    @rule(pick=SLOT_PICKS)
    @step("VFM-DEV-002", "VFM-DEV-013", "VFM-NOTIF-001", "VFM-MIG-007")
    def hot_add(self, pick: int) -> None:
        self._hot_add(self._slot_allowing(DevEvent.HOT_ADD, pick))

    @swarmed
    @precondition(_can_cause(DevEvent.SURPRISE_REMOVAL))
    @rule(pick=SLOT_PICKS)
    @step("VFM-DEV-002", "VFM-DEV-013", "VFM-FLAG-002", "VFM-MIG-007")
    def surprise_removal(self, pick: int) -> None:
        self._surprise_removal(self._slot_allowing(DevEvent.SURPRISE_REMOVAL, pick))

    @swarmed
    @precondition(_can_cause(DevEvent.DEVICE_ERROR))
    @rule(pick=SLOT_PICKS)
    @step("VFM-DEV-002", "VFM-MIG-007", "VFM-NOTIF-001")
    def device_error(self, pick: int) -> None:
        self._device_error(self._slot_allowing(DevEvent.DEVICE_ERROR, pick))

    def _slot_allowing(self, event: DevEvent, pick: int) -> int:
        """The slot ``pick`` chooses among those whose ``DEV_STATE`` has a row for ``event``."""
        slots = self.model.slots_allowing(event)
        return slots[pick % len(slots)]
