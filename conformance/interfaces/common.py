"""What the suite hands to an implementation: small protocols, satisfied by the suite's simulated world.

An implementation receives these objects from the suite (through a factory method or an attribute the suite
sets) and uses only the members listed here.  The suite's own objects (today the reference implementation's
clock, event bus, guest memory and allocator) have more; an implementation must not rely on the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

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

    Publishing is welcome but never required, and this interface declares no member for it: the event kinds
    are still the reference implementation's (``reference_impl.events.EventKind``).  A bridge that publishes
    no transition events is not judged on the events it raises itself (VFM-DEV-012).  Keep the object: a
    bridge returns it as :attr:`conformance.interfaces.bridge.BridgeUnderTest.bus`.
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
