"""Watching an implementation from the outside: its DMA, dirtying, Bus Master Enable and interrupts.

The suites see an implementation only through the platform they give it:

* :class:`ObservedMemory` is the guest RAM the suite hands to the world; it
  tells the :class:`Ledger` of every DMA write, CPU write and dirtying, and
  remembers what each page held after the last DMA write to it, so that a
  write that puts older content back over it shows (VFM-DIRTY-002);
* :class:`FunctionProxy` stands between the world and a function under test;
  it forwards everything and reports Bus Master Enable changes, interrupts
  and function-level resets;
* :class:`RecordingAllocator` remembers which guest pages each driver took
  for its rings and buffers, so that a DMA write can be attributed to the
  function whose driver owns the page (and a DMA write to a page nobody gave
  the function is a finding of its own, VFM-FN-004).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reference_impl.device import FunctionIdentity
from reference_impl.guest import DmaRegionAllocator
from reference_impl.memory import GuestMemory, Pages
from vfmig_proto.config_space import capabilities
from vfmig_proto.errors import DecodeError
from vfmig_proto.pci import (
    PCI_CAP_ID_EXP,
    PCI_CAP_LIST_ID,
    PCI_CONFIG_SIZE,
    PCI_EXP_DEVCTL,
    PCI_EXP_DEVCTL_BCR_FLR,
)

_DWORD = 4
"""Bytes of the widest config read: the walk reads config space in these."""
_FLR_BYTE = (PCI_EXP_DEVCTL_BCR_FLR.bit_length() - 1) // 8
"""The byte of Device Control that holds Initiate FLR (a guest may write that byte alone)."""
_FLR_BIT = PCI_EXP_DEVCTL_BCR_FLR >> (8 * _FLR_BYTE)
"""Initiate FLR within that byte."""


@dataclass
class Ledger:
    """Who is told of each DMA write, CPU write and dirtying of guest pages, as it happens."""

    dirty_listeners: list[Callable[[Pages], None]] = field(default_factory=list)
    dma_listeners: list[Callable[[Pages], None]] = field(default_factory=list)
    dirtying_listeners: list[Callable[[ObservedMemory, Pages], None]] = field(default_factory=list)
    """Called after each dirtying write (``dirty``, ``dirty_range``: not a CPU write of new data), with the memory."""

    def record_dma(self, pages: Pages) -> None:
        for listener in tuple(self.dma_listeners):
            listener(pages)

    def record_dirty(self, pages: Pages) -> None:
        for listener in tuple(self.dirty_listeners):
            listener(pages)

    def record_dirtying(self, memory: ObservedMemory, pages: Pages) -> None:
        for listener in tuple(self.dirtying_listeners):
            listener(memory, pages)


class ObservedMemory(GuestMemory):
    """Guest RAM that reports DMA writes and dirtying to a :class:`Ledger`.

    Page contents are versions (:mod:`reference_impl.memory`), and every write
    of new data takes a fresh, larger one.  :attr:`dma_floor` keeps, per page,
    the version the last DMA write left there: a page whose version falls
    below it was overwritten with content older than the function's data, which
    no write of new data can do, but a store of a value loaded before the DMA
    write landed does (:meth:`stale_pages`).
    """

    def __init__(self, size_bytes: int, page_shift: int, *, boot: bool, ledger: Ledger) -> None:
        super().__init__(size_bytes, page_shift, boot=boot)
        self.ledger = ledger
        self.dma_floor = np.zeros(self.num_pages, dtype=self.versions.dtype)
        """Per page, the content version the last DMA write to it left (a dirtying write must not go below)."""

    def stale_pages(self, pages: Pages | None = None) -> Pages:
        """Those of ``pages`` (all if None) that hold older content than the last DMA write to them left."""
        if pages is None:
            return np.flatnonzero(self.versions < self.dma_floor).astype(np.int64)
        return pages[self.versions[pages] < self.dma_floor[pages]]

    def dma_write(self, pages: Pages) -> None:
        super().dma_write(pages)
        self.dma_floor[pages] = self.versions[pages]
        self.ledger.record_dma(np.asarray(pages, dtype=np.int64).reshape(-1))

    def dma_write_range(self, start: int, stop: int) -> None:
        super().dma_write_range(start, stop)
        self.dma_floor[start:stop] = self.versions[start:stop]
        self.ledger.record_dma(np.arange(start, stop, dtype=np.int64))

    def dirty(self, pages: Pages) -> None:
        super().dirty(pages)
        touched = np.asarray(pages, dtype=np.int64).reshape(-1)
        self.ledger.record_dirty(touched)
        self.ledger.record_dirtying(self, touched)

    def dirty_range(self, start: int, stop: int) -> None:
        super().dirty_range(start, stop)
        touched = np.arange(start, stop, dtype=np.int64)
        self.ledger.record_dirty(touched)
        self.ledger.record_dirtying(self, touched)

    def cpu_write(self, pages: Pages) -> None:
        super().cpu_write(pages)
        self.ledger.record_dirty(np.asarray(pages, dtype=np.int64).reshape(-1))  # a CPU write dirties too

    def cpu_write_range(self, start: int, stop: int) -> None:
        super().cpu_write_range(start, stop)
        self.ledger.record_dirty(np.arange(start, stop, dtype=np.int64))


def memory_factory(ledger: Ledger) -> Callable[[int, int, bool], GuestMemory]:
    """A hypervisor memory factory that makes :class:`ObservedMemory` reporting to ``ledger``."""

    def make(size_bytes: int, page_shift: int, boot: bool) -> GuestMemory:
        return ObservedMemory(size_bytes, page_shift, boot=boot, ledger=ledger)

    return make


class RecordingAllocator(DmaRegionAllocator):
    """A DMA region allocator that remembers which slot got which pages."""

    def __init__(self, num_pages: int) -> None:
        super().__init__(num_pages)
        self.owner = np.full(num_pages, -1, dtype=np.int64)
        self.slot = -1

    def for_slot(self, slot: int) -> RecordingAllocator:
        """Allocations from now on belong to ``slot``."""
        self.slot = slot
        return self

    def allocate(self, pages: int) -> int:
        first = super().allocate(pages)
        self.owner[first : first + pages] = self.slot
        return first


class FunctionProxy:
    """A function under test, seen through a window: every call forwarded, BME changes and interrupts reported.

    Attributes the proxy does not know (a driver's private registers) go
    straight to the function.
    """

    def __init__(
        self,
        inner: Any,
        on_bus_master: Callable[[FunctionProxy, bool], None],
        on_interrupt: Callable[[FunctionProxy], None],
        on_reset: Callable[[FunctionProxy], None] | None = None,
    ) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_on_bus_master", on_bus_master)
        object.__setattr__(self, "_on_interrupt", on_interrupt)
        object.__setattr__(self, "_on_reset", on_reset)
        object.__setattr__(self, "_listener", None)
        object.__setattr__(self, "_sink", None)
        object.__setattr__(self, "_last_bme", bool(inner.bus_master))
        inner.bme_listener = self._bme_changed
        inner.interrupt_sink = self._interrupt
        object.__setattr__(self, "_capabilities", {})
        # Where a write initiates a function-level reset: the byte of Device Control that holds Initiate FLR.
        express = find_capability(self.config_read, PCI_CAP_ID_EXP) if on_reset is not None else None
        object.__setattr__(self, "_flr_byte", None if express is None else express + PCI_EXP_DEVCTL + _FLR_BYTE)

    def capability(self, cap_id: int) -> int | None:
        """Offset of the function's first capability with ``cap_id`` (:func:`find_capability`), or None.

        The list is walked once; after that one read checks that the ID is still where it was (a function
        in reset may read all ones), and the list is walked again if it is not.  An observer asks on every
        interrupt, and a walk reads the whole of config space.
        """
        known: int | None = self._capabilities.get(cap_id)
        if known is not None and self.config_read(known + PCI_CAP_LIST_ID, 1) == cap_id:
            return known
        found = find_capability(self.config_read, cap_id)
        if found is not None:
            self._capabilities[cap_id] = found
        return found

    @property
    def inner(self) -> Any:
        """The function under test itself."""
        return self._inner

    # --- the adapter interface, forwarded -------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self._inner.name)

    @property
    def identity(self) -> FunctionIdentity:
        identity: FunctionIdentity = self._inner.identity
        return identity

    @property
    def bus_master(self) -> bool:
        return bool(self._inner.bus_master)

    @property
    def in_reset_state(self) -> bool:
        return bool(self._inner.in_reset_state)

    def config_read(self, offset: int, width: int) -> int:
        return int(self._inner.config_read(offset, width))

    def config_write(self, offset: int, width: int, value: int) -> None:
        flr = self._flr_byte
        initiates = (
            flr is not None and offset <= flr < offset + width and bool(value >> (8 * (flr - offset)) & _FLR_BIT)
        )
        self._inner.config_write(offset, width, value)
        self._poll_bme()
        if initiates:
            self._reset_initiated()

    def function_level_reset(self, how: str) -> None:
        self._inner.function_level_reset(how)
        self._poll_bme()
        self._reset_initiated()

    def receive(self, nbytes: int) -> int:
        return int(self._inner.receive(nbytes))

    def fail(self) -> None:
        self._inner.fail()

    # --- attributes the hypervisor sets ---------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "bme_listener":
            object.__setattr__(self, "_listener", value)
        elif name == "interrupt_sink":
            object.__setattr__(self, "_sink", value)
        else:
            setattr(self._inner, name, value)

    def __getattr__(self, name: str) -> Any:
        if name == "bme_listener":
            return self._listener
        if name == "interrupt_sink":
            return self._sink
        return getattr(self._inner, name)

    # --- what the proxy reports -----------------------------------------------------------------

    def _poll_bme(self) -> None:
        now = bool(self._inner.bus_master)
        if now != self._last_bme:
            self._bme_changed(self._inner)

    def _bme_changed(self, function: object) -> None:
        now = bool(self._inner.bus_master)
        if now == self._last_bme:
            return
        object.__setattr__(self, "_last_bme", now)
        self._on_bus_master(self, now)
        if self._listener is not None:
            self._listener(self)

    def _reset_initiated(self) -> None:
        if self._on_reset is not None:
            self._on_reset(self)

    def _interrupt(self, name: str) -> None:
        self._on_interrupt(self)
        if self._sink is not None:
            self._sink(name)


def find_capability(config_read: Callable[[int, int], int], cap_id: int) -> int | None:
    """Offset of the first capability with ``cap_id`` in a function's list, read by config reads.

    None if the function has none, or if its list cannot be walked (a function in reset may read all ones):
    the list's form is not what the observers judge.
    """
    config = b"".join(
        config_read(offset, _DWORD).to_bytes(_DWORD, "little") for offset in range(0, PCI_CONFIG_SIZE, _DWORD)
    )
    try:
        return next((offset for offset, found in capabilities(config) if found == cap_id), None)
    except DecodeError:
        return None
