"""The brief's invariants, checked on the event stream while a simulation runs.

An :class:`InvariantMonitor` subscribes to the bus and records a
:class:`Violation` for every event that breaks one of:

no lost write
    at the handover point the destination's pages equal the source's
    (VFM-DIRTY-001, VFM-DIRTY-004, VFM-FLOW-001);
quiet when stopped
    no DMA and no interrupt from a function while its BME is clear
    (VFM-FN-001), while its slot is PAUSED, or while it waits in REINIT_REQ
    for its driver (VFM-ERR-006);
reset on arrival
    the destination's functions are in their reset state when the guest
    arrives and nobody enables them before their driver reinitialises them
    (VFM-MIG-004, VFM-MIG-005);
bad path is safe
    a cancelled or failed migration leaves the guest running on the source
    with its memory (VFM-CANCEL-005);
always ends
    every migration ends within T_max (VFM-TIME-004).

The monitor only reads: it never changes the world it watches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reference_impl.device import POSTED_WRITE_GRACE_NS
from reference_impl.events import Event, EventBus, EventKind
from reference_impl.hypervisor import Hypervisor, MigrationOutcome, MigrationRecord
from vfmig_proto.states import DevState


@dataclass(frozen=True)
class Violation:
    """One broken invariant."""

    time_ns: int
    invariant: str
    requirements: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"[{self.time_ns} ns] {self.invariant} ({', '.join(self.requirements)}): {self.message}"


_QUIET_KINDS = (EventKind.DMA_WRITE, EventKind.DMA_READ, EventKind.DEVICE_INTERRUPT)


class InvariantMonitor:
    """Watches a set of hosts through the bus and collects violations."""

    def __init__(self, bus: EventBus, hosts: Sequence[Hypervisor]) -> None:
        self.bus = bus
        self.hosts = hosts
        self.violations: list[Violation] = []
        self._awaiting_reinit: set[str] = set()
        self._bme_cleared: dict[str, int] = {}
        self._unsubscribe: list[Callable[[], None]] = [
            bus.subscribe(self._quiet, _QUIET_KINDS),
            bus.subscribe(self._bus_master, [EventKind.BUS_MASTER]),
            bus.subscribe(self._driver, [EventKind.DRIVER]),
            bus.subscribe(self._reset, [EventKind.FUNCTION_RESET]),
            bus.subscribe(self._guest_access, [EventKind.CONFIG_READ, EventKind.CONFIG_WRITE]),
            bus.subscribe(self._migration, [EventKind.MIGRATION]),
        ]

    def close(self) -> None:
        """Stop watching."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def _violate(self, invariant: str, requirements: tuple[str, ...], message: str) -> None:
        self.violations.append(Violation(self.bus.clock.now, invariant, requirements, message))

    def _locate(self, function: str) -> tuple[Hypervisor, int] | None:
        for host in self.hosts:
            for slot, candidate in host.slot_functions.items():
                if candidate.name == function:
                    return host, slot
        return None

    # ------------------------------------------------------------------ quiet when stopped

    def _quiet(self, event: Event) -> None:
        name = str(event.data["function"])
        place = self._locate(name)
        if place is None:
            self._violate("quiet when stopped", ("VFM-SEC-006",), f"{name} did {event.kind.value} unassigned")
            return
        host, slot = place
        function = host.slot_functions[slot]
        cleared = self._bme_cleared.get(name)
        in_flight = cleared is not None and self.bus.clock.now - cleared <= POSTED_WRITE_GRACE_NS
        if not function.bus_master and not (in_flight and event.kind is EventKind.DMA_WRITE):
            self._violate("quiet when stopped", ("VFM-FN-001",), f"{name} did {event.kind.value} with BME clear")
        state = host.bridge.dev_state(slot)
        if state is DevState.PAUSED:
            self._violate("quiet when stopped", ("VFM-DIRTY-004",), f"{name} did {event.kind.value} while PAUSED")
        if name in self._awaiting_reinit:
            self._violate(
                "quiet when stopped", ("VFM-ERR-006", "VFM-MIG-005"), f"{name} did {event.kind.value} before reinit"
            )

    def _guest_access(self, event: Event) -> None:
        """No guest configuration access reaches a bridge while the guest's vCPUs are stopped (VFM-MIG-003)."""
        for host in self.hosts:
            bridge = host.bridge_or_none
            if bridge is not None and bridge.name == event.source and host.guest is not None:
                if not host.guest.running:
                    self._violate(
                        "quiet when stopped",
                        ("VFM-MIG-003",),
                        f"guest {event.kind.value} at 0x{event.data['offset']:02x} while its vCPUs are stopped",
                    )
                return

    # ------------------------------------------------------------------ reset on arrival

    def _migration(self, event: Event) -> None:
        what = event.data.get("what")
        if what == "arrived":
            self._arrived(event.source)
        elif what == "end" and event.data.get("outcome") != MigrationOutcome.COMPLETED.value:
            self._bad_path_ended(event.source, event.data.get("number"))

    def _bad_path_ended(self, host_name: str, number: object) -> None:
        """When a cancelled or failed migration ends, the guest runs on the source (VFM-CANCEL-005)."""
        source = next((host for host in self.hosts if host.name == host_name), None)
        guest = None if source is None else source.guest
        if guest is None or not guest.running or guest.platform is not source:
            self._violate(
                "bad path is safe",
                ("VFM-CANCEL-005", "VFM-DEST-002"),
                f"migration {number} ended early, yet the guest does not run on the source {host_name}",
            )

    def _arrived(self, host_name: str) -> None:
        host = next((candidate for candidate in self.hosts if candidate.name == host_name), None)
        if host is None or host.last_placed is None:
            return
        for slot, in_reset in host.last_placed.items():
            function = host.slot_functions.get(slot)
            if function is None:
                continue
            if not in_reset:
                self._violate("reset on arrival", ("VFM-MIG-004",), f"{function.name} was not in reset when placed")
            if function.bus_master or function.msix_enabled:
                self._violate(
                    "reset on arrival", ("VFM-FLOW-002",), f"{function.name} has BME or MSI-X on when the guest arrives"
                )
            self._awaiting_reinit.add(function.name)

    def _reset(self, event: Event) -> None:
        """After any reset a function stays quiet until its driver programs it again (VFM-ERR-006)."""
        self._awaiting_reinit.add(str(event.data["function"]))

    def _bus_master(self, event: Event) -> None:
        name = str(event.data["function"])
        if not event.data.get("enabled"):
            self._bme_cleared[name] = self.bus.clock.now
        if event.data.get("enabled") and name in self._awaiting_reinit:
            # Only the driver may set BME, when it programs the function (it announces that first, see _driver).
            self._violate("reset on arrival", ("VFM-MIG-005",), f"BME of {name} set before its driver reinitialised")

    def _driver(self, event: Event) -> None:
        if event.data.get("action") != "program":
            return
        slot = event.data.get("slot")
        for host in self.hosts:
            function = host.slot_functions.get(slot) if isinstance(slot, int) else None
            if function is not None and host.guest is not None:
                self._awaiting_reinit.discard(function.name)

    # ------------------------------------------------------------------ per migration

    def check_record(self, record: MigrationRecord) -> None:
        """The invariants that a migration's record shows: no lost write, always ends."""
        if record.lost_pages:
            self._violate(
                "no lost write",
                ("VFM-DIRTY-001", "VFM-DIRTY-004"),
                f"migration {record.number}: {record.lost_pages} pages differ between destination and source",
            )
        if record.outcome is None:
            self._violate("always ends", ("VFM-TIME-004",), f"migration {record.number} has not ended")
        elif record.total_ns > record.bound_ns:
            self._violate(
                "always ends",
                ("VFM-TIME-004",),
                f"migration {record.number} took {record.total_ns} ns, more than T_max = {record.bound_ns} ns",
            )
