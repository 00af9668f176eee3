"""Guest RAM as one version number per page, and the hypervisor's CPU dirty log.

A page's content is modelled by its version: every write batch stamps the
pages it touches with a fresh number.  Sending a page copies its version, so
"no lost write" (brief, spec §5) is one vectorised comparison: the
destination's versions equal the source's.  A 64 GiB guest with 4 KiB pages
is 16 Mi versions of 4 bytes: 64 MiB.

The dirty log is what KVM's dirty bitmap is: CPU writes mark pages, DMA writes
do not (that is the whole problem the protocol solves), and the hypervisor
reads-and-clears it once per pre-copy round.  It keeps the newly dirtied page
numbers in a list as well as in the bitmap, so that reading it costs time in
proportion to the pages dirtied, not to the size of the guest.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

Pages = npt.NDArray[np.int64]
"""An array of page numbers."""

VERSION_DTYPE = np.uint32
BOOT_VERSION = 1
"""Every page's version when the guest first boots: never equal to an unsent page (0) on a destination."""


class MemoryView(Protocol):
    """One copy of the guest's RAM as a function's DMA engine and a guest driver reach it: a :class:`GuestMemory`,
    or any memory of the same shape (a function of another implementation is handed this much, no more).

    ``start`` and ``stop`` are page numbers of ``1 << page_shift`` bytes, ``stop`` excluded."""

    @property
    def page_shift(self) -> int:
        """log2 of the page size of this copy."""

    @property
    def num_pages(self) -> int:
        """How many pages the guest has."""

    def dma_write_range(self, start: int, stop: int) -> None:
        """A function writes pages ``start .. stop - 1`` by DMA (the dirty log does not see it)."""

    def cpu_write_range(self, start: int, stop: int) -> None:
        """The guest's CPU writes pages ``start .. stop - 1`` (the dirty log sees it)."""

    def dirty_range(self, start: int, stop: int) -> None:
        """The guest marks pages ``start .. stop - 1`` dirty for the host."""


class PageRangeError(ValueError):
    """A page number outside guest memory."""


class DirtyLogReadError(RuntimeError):
    """Reading the dirty log failed (as an ioctl that fetches it can): what it held is unknown (VFM-DIRTY-008)."""


class DirtyLog:
    """The hypervisor's record of the pages the guest's CPUs wrote since it last read it."""

    def __init__(self, num_pages: int) -> None:
        self.num_pages = num_pages
        self.enabled = False
        self._bitmap: npt.NDArray[np.bool_] | None = None
        self._pending: list[Pages] = []
        self._count = 0
        self._everything = False

    @property
    def count(self) -> int:
        """Pages marked dirty and not yet read."""
        return self.num_pages if self._everything else self._count

    def enable(self) -> None:
        """Start recording (spec VFM-DIRTY-005); a fresh log is empty."""
        if self._bitmap is None:
            self._bitmap = np.zeros(self.num_pages, dtype=np.bool_)
        self.enabled = True

    def disable(self) -> None:
        """Stop recording and forget what was recorded.

        Forgetting is not a read of the log: a subclass that watches or fails reads (the hypervisor suite's
        :meth:`harvest`) is not called, so a failure armed for the hypervisor's next read does not fire here.
        """
        self._everything = False
        self._clear()
        self.enabled = False

    def mark(self, pages: Pages) -> None:
        """Record a write to each page of ``pages`` (duplicates allowed)."""
        if not self.enabled or self._bitmap is None or pages.size == 0:
            return
        fresh = pages[~self._bitmap[pages]]
        if fresh.size == 0:
            return
        if fresh.size > 1:
            fresh = np.unique(fresh)
        self._bitmap[fresh] = True
        self._pending.append(fresh)
        self._count += int(fresh.size)

    def mark_range(self, start: int, stop: int) -> None:
        """Record a write to every page in ``start .. stop - 1``."""
        if not self.enabled or self._bitmap is None or stop <= start:
            return
        fresh = np.flatnonzero(~self._bitmap[start:stop]).astype(np.int64) + start
        if fresh.size:
            self._bitmap[start:stop] = True
            self._pending.append(fresh)
            self._count += int(fresh.size)

    def lose_entries(self) -> None:
        """The log lost entries (spec VFM-DIRTY-008): from now until the next read, every page counts as dirty."""
        self._everything = True

    def harvest(self) -> Pages:
        """Read and clear: the pages dirtied since the last harvest, each once."""
        if self._everything:
            self._everything = False
            self._clear()
            return np.arange(self.num_pages, dtype=np.int64)
        return self._clear()

    def _clear(self) -> Pages:
        if not self._pending:
            return np.empty(0, dtype=np.int64)
        pages = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        if self._bitmap is not None:
            self._bitmap[pages] = False
        self._pending = []
        self._count = 0
        return pages


class GuestMemory:
    """One copy of the guest's RAM on one host: page versions plus that host's dirty log."""

    def __init__(self, size_bytes: int, page_shift: int, *, boot: bool = True) -> None:
        page_size = 1 << page_shift
        if size_bytes <= 0 or size_bytes % page_size:
            raise ValueError(f"memory size {size_bytes} is not a positive multiple of the {page_size}-byte page")
        self.page_shift = page_shift
        self.page_size = page_size
        self.num_pages = size_bytes // page_size
        self.size_bytes = size_bytes
        if boot:
            self.versions = np.full(self.num_pages, BOOT_VERSION, dtype=VERSION_DTYPE)
        else:
            # A destination's empty copy: np.zeros leaves pages untouched (and unallocated) until received.
            self.versions = np.zeros(self.num_pages, dtype=VERSION_DTYPE)
        self.log = DirtyLog(self.num_pages)
        self._stamp = BOOT_VERSION

    # ---- writes --------------------------------------------------------------------------

    def _next_stamp(self) -> int:
        self._stamp += 1
        return self._stamp

    def check(self, pages: Pages) -> None:
        """Raise if any page number is outside this memory."""
        if pages.size and (int(pages.min()) < 0 or int(pages.max()) >= self.num_pages):
            raise PageRangeError(f"page numbers {int(pages.min())}..{int(pages.max())} outside 0..{self.num_pages - 1}")

    def cpu_write(self, pages: Pages) -> None:
        """The guest's CPUs write ``pages``: new contents, recorded in the dirty log."""
        self.versions[pages] = self._next_stamp()
        self.log.mark(pages)

    def cpu_write_range(self, start: int, stop: int) -> None:
        """The guest's CPUs write pages ``start .. stop - 1``."""
        self.versions[start:stop] = self._next_stamp()
        self.log.mark_range(start, stop)

    def dma_write(self, pages: Pages) -> None:
        """A function writes ``pages`` by DMA: new contents, and the dirty log does not see it."""
        self.versions[pages] = self._next_stamp()

    def dma_write_range(self, start: int, stop: int) -> None:
        """A function writes pages ``start .. stop - 1`` by DMA."""
        self.versions[start:stop] = self._next_stamp()

    def dirty(self, pages: Pages) -> None:
        """A driver dirties ``pages``: a CPU write that leaves the contents as they are (spec VFM-DIRTY-002)."""
        self.log.mark(pages)

    def dirty_range(self, start: int, stop: int) -> None:
        """A driver dirties pages ``start .. stop - 1``."""
        self.log.mark_range(start, stop)

    # ---- migration -----------------------------------------------------------------------

    def receive_from(self, source: GuestMemory, pages: Pages) -> None:
        """Copy ``pages`` from ``source`` (the destination's side of a page send)."""
        self.versions[pages] = source.versions[pages]

    def receive_range_from(self, source: GuestMemory, start: int, stop: int) -> None:
        """Copy pages ``start .. stop - 1`` from ``source``."""
        self.versions[start:stop] = source.versions[start:stop]

    def continue_stamps_from(self, source: GuestMemory) -> None:
        """Take over ``source``'s stamp counter: this copy is now the guest's RAM."""
        self._stamp = max(self._stamp, source._stamp)

    def differing_pages(self, other: GuestMemory) -> int:
        """How many pages differ between this copy and ``other`` (the lost-write count)."""
        if other.num_pages != self.num_pages:
            raise ValueError(f"cannot compare {self.num_pages} pages with {other.num_pages}")
        return int(np.count_nonzero(self.versions != other.versions))
