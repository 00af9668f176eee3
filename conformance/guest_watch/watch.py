"""The :class:`GuestWatch`: checks of the migration core's requirements on each configuration access of the
guest to the bridge (see :mod:`conformance.guest_watch`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.checks import Checks
from conformance.guest_watch.bridge import WatchedBridge
from conformance.guest_watch.roles import ByteRoles, byte_roles
from reference_impl.clock import SimClock, ms
from reference_impl.events import Event, EventBus, EventKind
from reference_impl.guest import Guest
from vfmig_proto.pci import PCI_CAPABILITY_LIST
from vfmig_proto.states import DevState, DriverReport, MigState

REACT_NS = ms(2)
"""How long (of the guest's running time) the core may take to look at a slot after a report or after enabling."""
_DEFINED_DEV_STATES = frozenset(int(state) for state in DevState)


class GuestWatch:
    """Checks of the migration core's requirements, on each configuration access of the guest to the bridge."""

    def __init__(self, checks: Checks, clock: SimClock | None = None) -> None:
        self.checks = checks
        self.clock = clock or SimClock()
        """The world's clock (a bridge factory that makes the first :class:`WatchedBridge` sets it)."""
        self.drivers: list[Any] = []
        """The world's VF drivers, by slot (``loaded``, ``busy``)."""
        self.guest: Guest | None = None
        self.reached: set[int] = set()
        """Capability offsets the guest has reached by following the list from the Capabilities Pointer."""
        self.last_read: dict[int, int] = {}
        """Offset from the capability -> the byte the guest read there last."""
        self.last_mig_state: int | None = None
        self.last_dev_state: dict[int, int] = {}
        self.features_written = False
        self.in_handler = False
        self.handler_cleared = False
        self.handler_read = False
        self.enabled_at: int | None = None
        """When the guest set ``CONTROL.ENABLE``, until it has cleared ``STATUS.EVENT`` and read ``MIG_STATE``."""
        self.enable_cleared = False
        self.processing: set[int] | None = None
        """The slots with a driver (not in a waiting sequence) when the current event processing began."""
        self.read_in_processing: set[int] = set()
        self.reread_due: dict[int, int] = {}
        """Slot -> when the guest wrote a report for it, until it reads the slot's ``DEV_STATE`` again."""
        self.read_since_report: dict[int, bool] = {}
        self.writes: list[tuple[int, int, int]] | None = None
        """If a list: every write as ``(offset from the capability, width, value without RsvdP bits)``."""

    # ------------------------------------------------------------------ wiring

    def attach(self, guest: Guest, bus: EventBus) -> None:
        """Watch ``guest`` (its VF drivers are in :attr:`drivers`); wrap its event handler."""
        self.guest = guest
        self.clock = bus.clock
        bus.subscribe(self._vcpus, [EventKind.VCPU])
        self.wrap_handler()

    def wrap_handler(self) -> None:
        """Make the guest's event interrupt handler tell the watch when it runs (a core may install a new one)."""
        guest = self.guest
        handler = None if guest is None else guest.bridge_interrupt_handler
        if guest is None or handler is None or getattr(handler, "watched", False):
            return
        inner: Callable[[], None] = handler

        def watched() -> None:
            self.in_handler, self.handler_cleared, self.handler_read = True, False, False
            try:
                inner()
            finally:
                self.in_handler = False

        watched.watched = True  # type: ignore[attr-defined]
        guest.bridge_interrupt_handler = watched

    def _vcpus(self, event: Event) -> None:
        if event.data.get("running"):  # time with the vCPUs stopped does not count against the core
            now = self.clock.now
            self.reread_due = dict.fromkeys(self.reread_due, now)
            if self.enabled_at is not None:
                self.enabled_at = now

    def _loaded(self, slot: int) -> bool:
        return slot < len(self.drivers) and bool(self.drivers[slot].loaded)

    # ------------------------------------------------------------------ accesses

    def _access(self, bridge: WatchedBridge, offset: int, width: int, kind: str) -> None:
        self.checks.record(
            "VFM-ACC-002",
            width in (1, 2, 4) and offset % width == 0,
            lambda: f"a {width}-byte config {kind} at 0x{offset:02x} of the migration capability",
        )
        self.checks.record(
            "VFM-DISC-005",
            bridge.cap in self.reached,
            lambda: (
                f"a config {kind} at 0x{offset:02x} of the migration capability at 0x{bridge.cap:02x}, which the "
                "guest did not reach by following the capability list from the Capabilities Pointer at 0x34"
            ),
        )

    def _follow(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset <= PCI_CAPABILITY_LIST < end:
            self.reached.add(data[PCI_CAPABILITY_LIST - offset] & 0xFC)
        for pointer in tuple(self.reached):
            if offset <= pointer + 1 < end:
                self.reached.add(data[pointer + 1 - offset] & 0xFC)

    def read(self, bridge: WatchedBridge, offset: int, width: int, value: int) -> None:
        """The guest read ``value`` (``width`` bytes at ``offset``)."""
        data = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        self._follow(offset, data)
        roles = byte_roles(bridge.num_slots)
        cap = bridge.cap
        low, high = max(offset, cap) - cap, min(offset + width, cap + roles.length) - cap
        if low >= high:
            return
        self._access(bridge, offset, width, "read")
        for rel in range(low, high):
            byte = data[rel + cap - offset]
            self.last_read[rel] = byte
            slot = roles.dev_state.get(rel)
            if rel == roles.mig_state:
                self.last_mig_state = byte
                self._state_read()
                if self.enabled_at is not None and self.enable_cleared:
                    self.checks.record("VFM-DISC-009", True, "")
                    self.enabled_at = None
            elif slot is not None:
                self.last_dev_state[slot] = byte
                self.read_in_processing.add(slot)
                self.read_since_report[slot] = True
                self._state_read()
                if self.reread_due.pop(slot, None) is not None:
                    self.checks.record("VFM-NOTIF-007", True, "")

    def _state_read(self) -> None:
        if self.in_handler and not self.handler_read:
            self.handler_read = True
            self.checks.record(
                "VFM-NOTIF-006",
                self.handler_cleared,
                "the event interrupt handler read MIG_STATE or a DEV_STATE before it cleared STATUS.EVENT",
            )

    def write(self, bridge: WatchedBridge, offset: int, width: int, value: int) -> None:
        """The guest writes ``value`` (``width`` bytes at ``offset``); the bridge has not applied it yet."""
        end = offset + width
        for start, stop in bridge.decoys:
            self.checks.record(
                "VFM-DISC-004",
                end <= start or stop <= offset,
                lambda: (
                    f"a config write at 0x{offset:02x}, into a vendor-specific capability that is not the "
                    "migration capability (its capability ID, CFG_TYPE or SIGNATURE differs)"
                ),
            )
        roles = byte_roles(bridge.num_slots)
        cap = bridge.cap
        low, high = max(offset, cap) - cap, min(end, cap + roles.length) - cap
        if low >= high:
            return
        self._access(bridge, offset, width, "write")
        data = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        current = bridge.config
        covered = range(low, high)
        written = {rel: data[rel + cap - offset] for rel in covered}
        if self.writes is not None:
            kept = bytes(written[rel] & ~roles.rsvdp[rel] & 0xFF for rel in covered)
            self.writes.append((offset - cap, width, int.from_bytes(kept, "little")))
        self._reserved(roles, written, current, cap)
        self._slot_entries(roles, written)
        self._rw1c(roles, written)
        self._control(roles, written, current, cap)
        event_byte, event_bit = roles.event
        if event_byte in written and written[event_byte] & event_bit:
            self._event_cleared()
        for rel, byte in written.items():
            slot = roles.dev_ctrl.get(rel)
            if slot is not None:
                self._report(slot, byte & roles.drv_state_mask)

    def _reserved(self, roles: ByteRoles, written: dict[int, int], current: bytearray, cap: int) -> None:
        rsvdp = [rel for rel in written if roles.rsvdp[rel]]
        if rsvdp:
            wrong = [
                rel for rel in rsvdp if (written[rel] ^ self.last_read.get(rel, current[cap + rel])) & roles.rsvdp[rel]
            ]
            self.checks.record(
                "VFM-VER-003",
                not wrong,
                lambda: (
                    "RsvdP bits written with other values than last read, at capability offsets "
                    + ", ".join(
                        f"0x{rel:02x} (wrote 0x{written[rel]:02x}, read 0x{self.last_read.get(rel, 0):02x})"
                        for rel in wrong
                    )
                ),
            )
        rsvdz = [rel for rel in written if roles.rsvdz[rel]]
        if rsvdz:
            ones = [rel for rel in rsvdz if written[rel] & roles.rsvdz[rel]]
            self.checks.record(
                "VFM-VER-004",
                not ones,
                lambda: (
                    "RsvdZ bits written as 1, at capability offsets "
                    + ", ".join(f"0x{rel:02x} (wrote 0x{written[rel]:02x})" for rel in ones)
                ),
            )

    def _slot_entries(self, roles: ByteRoles, written: dict[int, int]) -> None:
        slots = {roles.slot[rel] for rel in written if roles.slot[rel] >= 0}
        for slot in slots:
            entry = [rel for rel in written if roles.slot[rel] == slot]
            reports = any(rel in roles.dev_ctrl for rel in entry)
            self.checks.record(
                "VFM-DEV-006",
                not (reports and len(entry) > 1),
                f"one config write covers slot {slot}'s DEV_CTRL and other registers of its entry",
            )

    def _rw1c(self, roles: ByteRoles, written: dict[int, int]) -> None:
        flags = [rel for rel in written if roles.w1c[rel]]
        if not flags:
            return
        controls = any(rel in roles.control or rel in roles.dev_ctrl for rel in written)
        written_back = [
            rel for rel in flags if written[rel] & roles.w1c[rel] and written[rel] == self.last_read.get(rel)
        ]
        self.checks.record(
            "VFM-ACC-008",
            not (controls and written_back),
            lambda: (
                "a write of CONTROL or DEV_CTRL wrote back the RW1C bits it read, clearing them, at capability "
                "offsets " + ", ".join(f"0x{rel:02x} (0x{written[rel]:02x})" for rel in written_back)
            ),
        )

    def _control(self, roles: ByteRoles, written: dict[int, int], current: bytearray, cap: int) -> None:
        features = roles.guest_features
        if features in written:
            self.features_written = True
        enable_byte, enable_bit = roles.enable
        if enable_byte not in written:
            return
        now_set = bool(written[enable_byte] & enable_bit)
        was_set = bool(current[cap + enable_byte] & enable_bit)
        last = self.last_mig_state
        self.checks.record(
            "VFM-DISC-008",
            now_set or not was_set or last == MigState.IDLE,
            lambda: f"CONTROL.ENABLE cleared while the MIG_STATE the guest read last was {_name(MigState, last)}",
        )
        if now_set and not was_set:
            accepted = int.from_bytes(current[cap + features : cap + features + 4], "little")
            accepted &= roles.guest_features_rw
            offered = int.from_bytes(current[cap + roles.host_features : cap + roles.host_features + 4], "little")
            self.checks.record(
                "VFM-DISC-007",
                self.features_written
                and accepted & roles.guest_features_needed == roles.guest_features_needed
                and not accepted & ~offered,
                lambda: (
                    f"CONTROL.ENABLE set with GUEST_FEATURES {'never written' if not self.features_written else ''}"
                    f" accepting 0x{accepted:x} of HOST_FEATURES 0x{offered:x} (DMA_DIRTY and PAUSE_RESUME "
                    "are needed, nothing that is not offered)"
                ),
            )
            self.enabled_at = self.clock.now
            self.enable_cleared = False

    def _event_cleared(self) -> None:
        if self.in_handler:
            self.handler_cleared = True
        if self.enabled_at is not None:
            self.enable_cleared = True
            if self.in_handler:  # the first look after enabling came with an interrupt: the core waited for one
                self.checks.record(
                    "VFM-DISC-009",
                    False,
                    "after setting CONTROL.ENABLE the guest cleared STATUS.EVENT only in its event interrupt handler",
                )
                self.enabled_at = None
        if self.processing is not None:
            missed = sorted(slot for slot in self.processing - self.read_in_processing if self._loaded(slot))
            self.checks.record(
                "VFM-FLOW-004",
                not missed,
                lambda: f"an event processing did not read the DEV_STATE of slots {missed}, which have a driver",
            )
        self.processing = {
            driver.slot for driver in self.drivers if bool(driver.loaded) and not bool(getattr(driver, "busy", False))
        }
        self.read_in_processing = set()

    def _report(self, slot: int, report: int) -> None:
        last = self.last_dev_state.get(slot)
        if report != DriverReport.NONE:
            self.checks.record(
                "VFM-VER-005",
                last is None or last in _DEFINED_DEV_STATES,
                lambda: (
                    f"slot {slot}: DRV_STATE {report} written while the DEV_STATE read last was {last}, "
                    "a value the spec does not define"
                ),
            )
            self.checks.record(
                "VFM-NOTIF-010",
                self.read_since_report.get(slot, True),
                lambda: (
                    f"slot {slot}: DRV_STATE {_name(DriverReport, report)} written without a read of the "
                    "slot's DEV_STATE since its last report"
                ),
            )
            self.read_since_report[slot] = False
            self.reread_due[slot] = self.clock.now
        if report == DriverReport.READY:
            self.checks.record(
                "VFM-NOTIF-009",
                self._loaded(slot),
                lambda: f"slot {slot}: READY reported, but no VF driver is bound to its function",
            )

    # ------------------------------------------------------------------ what must have happened by now

    def settle(self) -> None:
        """Judge what the core owed by now: a look after enabling, a look after each report."""
        guest = self.guest
        if guest is not None and not guest.running:
            return
        now = self.clock.now
        if self.enabled_at is not None and now - self.enabled_at >= REACT_NS:
            cleared = self.enable_cleared
            self.checks.record(
                "VFM-DISC-009",
                False,
                "after setting CONTROL.ENABLE the guest did not "
                + ("read MIG_STATE after clearing STATUS.EVENT" if cleared else "clear STATUS.EVENT")
                + f" within {REACT_NS / 1e6:g} ms",
            )
            self.enabled_at = None
        for slot, since in list(self.reread_due.items()):
            if not self._loaded(slot):
                del self.reread_due[slot]
            elif now - since >= REACT_NS:
                del self.reread_due[slot]
                self.checks.record(
                    "VFM-NOTIF-007",
                    False,
                    f"slot {slot}: DEV_STATE not read again within {REACT_NS / 1e6:g} ms of a report",
                )


def _name(enum: type[MigState] | type[DriverReport], value: int | None) -> str:
    try:
        return enum(value).name if value is not None else "none (never read)"
    except ValueError:
        return str(value)
