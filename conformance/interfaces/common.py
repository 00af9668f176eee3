"""What the suite hands to an implementation: small protocols, satisfied by the suite's simulated world.

An implementation receives these objects from the suite (through a factory method or an attribute the suite
sets) and uses only the members listed here.  The suite's own objects (today the reference implementation's
clock, event bus, guest memory, allocator and functions) have more; an implementation must not rely on the rest.

Two protocols that targets share are here too, so that each is stated once: a function as a host assigns it
(:class:`HostFunction`, which the ``device`` target's function extends) and the host the guest runs on, as a
driver reaches it (:class:`GuestPlatformView`, which the ``hypervisor`` target's host extends).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

ResetKind = Literal["flr", "group"]
"""How a function is reset: a function-level reset (``"flr"``) or a group reset of every function behind a
migration bridge (``"group"``, spec §7.9)."""


class Clock(Protocol):
    """The simulated clock every object of one world shares; time is in nanoseconds and moves only when the
    suite lets it.  An implementation that needs time to pass (a DMA drain, an acknowledgement deadline)
    schedules a callback rather than waiting."""

    @property
    def now(self) -> int:
        """The current simulated time, in nanoseconds."""

    def schedule(self, delay: int, callback: Callable[[], None], label: str = "") -> object:
        """Run ``callback`` ``delay`` nanoseconds from now (``label`` names it in traces).

        The result identifies the timer; this interface offers no way to cancel one, so a callback that may
        have become stale checks, when it runs, whether it still has work to do."""


class EventSink(Protocol):
    """The world's event bus, given to functions and bridges.

    Publishing is welcome but never required.  A bridge that publishes its transitions lets the suite judge the
    host events it raises itself, its fan-out, catch-up and settled events (VFM-DEV-012); one that publishes
    none is judged on its registers alone.  Keep the object: a bridge returns it as
    :attr:`conformance.interfaces.bridge.BridgeUnderTest.bus`.
    """

    def publish(self, kind: str, source: str, /, **data: Any) -> None:
        """Publish one event of ``kind`` from ``source`` (the publisher's name).

        The suites read two kinds, with these ``data`` fields:

        * ``"mig_transition"``: ``event`` (a :class:`~vfmig_proto.states.MigEvent`), ``old`` and ``new`` (the
          :class:`~vfmig_proto.states.MigState` before and after);
        * ``"dev_transition"``: ``slot`` (an int), ``event`` (a :class:`~vfmig_proto.states.DevEvent`),
          ``old`` and ``new`` (the :class:`~vfmig_proto.states.DevState` before and after).

        Further fields are ignored; so are the other kinds the reference implementation publishes
        (``reference_impl.events.EventKind``), which an implementation may publish by their values.
        """


class GuestMemoryView(Protocol):
    """One host's copy of the guest's RAM, as a function's DMA engine and a guest driver reach it.

    Memory is counted in pages of ``1 << page_shift`` bytes; ``start`` and ``stop`` are page numbers, ``stop``
    excluded, and must lie within ``0 .. num_pages``."""

    @property
    def page_shift(self) -> int:
        """log2 of the page size of this copy."""

    @property
    def num_pages(self) -> int:
        """How many pages the guest has."""

    def dma_write_range(self, start: int, stop: int) -> None:
        """A function writes pages ``start .. stop - 1`` by DMA (the host's dirty log does not see it: the
        driver has to dirty them, spec §5)."""

    def cpu_write_range(self, start: int, stop: int) -> None:
        """The guest's CPU writes new content into pages ``start .. stop - 1`` (a driver writing descriptors);
        the host's dirty log sees it."""

    def dirty_range(self, start: int, stop: int) -> None:
        """The guest marks pages ``start .. stop - 1`` dirty for the host (what a driver does in dirtying
        mode: it rewrites them from the CPU)."""


class DmaAllocator(Protocol):
    """Hands out guest pages a driver may give its function for rings and buffers."""

    def allocate(self, pages: int) -> int:
        """The first page of ``pages`` fresh contiguous guest pages."""


class FunctionIds(Protocol):
    """What the guest sees of a function's identity; the destination's function must match (VFM-MIG-004)."""

    @property
    def vendor_id(self) -> int:
        """The Vendor ID register."""

    @property
    def device_id(self) -> int:
        """The Device ID register."""

    @property
    def revision(self) -> int:
        """The Revision ID register."""

    @property
    def subsystem_vendor_id(self) -> int:
        """The Subsystem Vendor ID register."""

    @property
    def subsystem_id(self) -> int:
        """The Subsystem ID register."""


class HostFunction(Protocol):
    """A function as the host that assigns it to the guest sees it (made by the ``functions`` factory the suite
    passes a host; the ``device`` target's function is one, and more).

    The host reads the function's BARs from its configuration space to carry them to the destination, whose
    host writes them back into an equal function (VFM-FLOW-002)."""

    name: str
    memory: GuestMemoryView | None
    """Set by the host: the guest memory the function's DMA reaches (None: unassigned, VFM-SEC-007)."""
    interrupt_sink: Callable[[str], None] | None
    """Set by the host: the function calls it with its ``name`` for each MSI-X message it sends."""
    bme_listener: Callable[[object], None] | None
    """Set by the host: the function calls it (with itself) after each change of Bus Master Enable (VFIO traps
    Command writes)."""

    @property
    def identity(self) -> FunctionIds:
        """Vendor, device, revision and subsystem IDs: the destination places an equal function (VFM-MIG-004)."""

    @property
    def bus_master(self) -> bool:
        """Whether Bus Master Enable is set in the Command register."""

    @property
    def in_reset_state(self) -> bool:
        """Whether the function holds nothing a driver programmed (as after a function-level reset)."""

    def config_read(self, offset: int, width: int) -> int:
        """A configuration read of 1, 2 or 4 bytes (judged under VFM-GEN-004, for the ``device`` target)."""

    def config_write(self, offset: int, width: int, value: int) -> None:
        """A configuration write of 1, 2 or 4 bytes (judged under VFM-GEN-004, for the ``device`` target)."""

    def function_level_reset(self, how: ResetKind) -> None:
        """Reset the function (a function-level reset, or its part in a group reset)."""

    def fail(self) -> None:
        """The function hits an uncorrectable error (the host learns of it by AER; the suite injects device
        errors through this): it stops working until a reset."""


class GuestPlatformView(Protocol):
    """The host the guest currently runs on, as a driver reaches it."""

    @property
    def memory(self) -> GuestMemoryView:
        """This host's copy of the guest's RAM."""

    def function_at(self, devfn: int) -> object | None:
        """The function the guest finds at ``devfn`` on the bridge's secondary bus (VFM-DISC-003), or None.

        The object is the implementation's own function (possibly seen through a suite wrapper that forwards
        every attribute), so a driver reaches its own members by name."""
