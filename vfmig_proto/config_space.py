"""Find and read the migration capability in a whole PCI configuration space.

For tools that hold a bridge's configuration space (from ``lspci -x``, from
``/sys/bus/pci/devices/*/config`` or from an emulator) and want the migration
capability in it.  Also the text format of ``lspci -x`` / ``lspci -xxx``, so
that dumps can be read and written exactly as pciutils does (spec §3.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from vfmig_proto.codec import Capability, decode_capability
from vfmig_proto.errors import DecodeError, DumpError
from vfmig_proto.layout import VFM_CFG_TYPE_MIGRATION, VFM_HEADER_SIZE, VFM_SIGNATURE
from vfmig_proto.pci import (
    PCI_CAP_ID_VNDR,
    PCI_CAP_LIST_ID,
    PCI_CAP_LIST_NEXT,
    PCI_CAP_POINTER_MASK,
    PCI_CAPABILITY_LIST,
    PCI_CONFIG_SIZE,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_STD_HEADER_SIZEOF,
)

_IDENTITY_SIZE = 8
"""Bytes that identify the migration capability: ID, next, length, type and the 4-byte signature."""

_CAP_LIST_BYTES = 2
"""A capability's ID and next pointer: what a walk of the list reads of each entry."""

_DUMP_LINE = re.compile(r"^(?P<offset>[0-9a-fA-F]{2,3}):(?P<bytes>(?: [0-9a-fA-F]{2}){1,16})\s*$")

ConfigRead = Callable[[int, int], int]
"""``read(offset, width)``: a configuration read of ``width`` (1, 2 or 4) bytes, little-endian, as a guest issues it."""


class CapabilityListError(DecodeError):
    """A capability list that cannot be walked to its end (PCI Local Bus 3.0 §6.7).

    Raised by :func:`walk_capabilities` and :func:`capabilities` in place of
    the bad entry.  The data a caller needs to report the problem instead of
    raising it: ``pointer_at`` is the config-space offset of the bad pointer
    (0x34 or an entry's next pointer), ``pointer`` its value, ``walked`` the
    ``(offset, ID)`` of every capability before it, in list order, and
    ``problem`` the words (with both offsets).  ``offset`` (of
    :class:`DecodeError`) is ``pointer_at``.
    """

    def __init__(self, problem: str, *, pointer_at: int, pointer: int, walked: Sequence[tuple[int, int]]) -> None:
        self.pointer_at = pointer_at
        self.pointer = pointer
        self.walked = tuple(walked)
        super().__init__("capability list", pointer_at, problem)


class CapabilityLoopError(CapabilityListError):
    """A next pointer leads back to a capability already walked: the list never ends."""


class CapabilityPointerError(CapabilityListError):
    """A pointer into the standard header (below 0x40) or past the configuration bytes there are."""


def walk_capabilities(read: ConfigRead, size: int = PCI_CONFIG_SIZE) -> Iterator[tuple[int, int]]:
    """``(offset, capability ID)`` of each capability in a function's list, in list order, by config reads.

    The one walker of the capability list: what a guest does (Status bit 4,
    the pointer at 0x34, then each entry's ID and next pointer, the pointers'
    two low bits ignored).  Nothing when Status says the function has no
    list.  Stops at a pointer of 0, and raises :class:`CapabilityLoopError`
    for a pointer back to an entry already walked and
    :class:`CapabilityPointerError` for one into the standard header or past
    ``size`` bytes (capabilities live below 0x100, so ``size`` is at most
    that).  Entries walked before the problem have been yielded, and are in
    the error's ``walked``.
    """
    size = min(size, PCI_CONFIG_SIZE)
    if size < PCI_STD_HEADER_SIZEOF or not read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST:
        return
    walked: list[tuple[int, int]] = []
    pointer_at = PCI_CAPABILITY_LIST
    pointer = read(pointer_at, 1) & PCI_CAP_POINTER_MASK
    while pointer:
        _check_pointer(pointer_at, pointer, size, walked)
        entry = (pointer, read(pointer + PCI_CAP_LIST_ID, 1))
        walked.append(entry)
        yield entry
        pointer_at = pointer + PCI_CAP_LIST_NEXT
        pointer = read(pointer_at, 1) & PCI_CAP_POINTER_MASK


def _check_pointer(pointer_at: int, pointer: int, size: int, walked: Sequence[tuple[int, int]]) -> None:
    where = f"the pointer at 0x{pointer_at:02x}"
    if any(offset == pointer for offset, _ in walked):
        problem = f"{where} points back to 0x{pointer:02x}, walked before: the list loops"
        raise CapabilityLoopError(problem, pointer_at=pointer_at, pointer=pointer, walked=walked)
    if pointer < PCI_STD_HEADER_SIZEOF:
        problem = f"{where} points into the standard header"
        raise CapabilityPointerError(problem, pointer_at=pointer_at, pointer=pointer, walked=walked)
    if pointer + _CAP_LIST_BYTES > size:
        problem = f"{where} points to 0x{pointer:02x}, past the {size} bytes of config space given"
        raise CapabilityPointerError(problem, pointer_at=pointer_at, pointer=pointer, walked=walked)


def capabilities(config: bytes) -> Iterator[tuple[int, int]]:
    """``(offset, capability ID)`` of each capability in the list held in ``config``, in list order.

    :func:`walk_capabilities` over bytes in hand (a dump, an emulator's
    array): the same stops and the same :class:`CapabilityListError`.  Bytes
    from 0x100 on (PCI Express extended configuration space) are never part
    of this list.
    """

    def read(offset: int, width: int) -> int:
        return int.from_bytes(config[offset : offset + width], "little")

    return walk_capabilities(read, len(config))


def find_migration_capability(config: bytes) -> int | None:
    """Offset of the migration capability in ``config``, or None if the list has none.

    A candidate is a vendor-specific capability (ID 0x09) with ``CFG_TYPE``
    0x56 and the ``VFMG`` signature (spec §2.2), all within the first 256
    bytes: a vendor capability too close to 0x100 to hold them is another
    vendor's, whatever follows in extended config space.
    """
    conventional = config[:PCI_CONFIG_SIZE]
    for offset, cap_id in capabilities(conventional):
        if cap_id != PCI_CAP_ID_VNDR or offset + _IDENTITY_SIZE > len(conventional):
            continue
        if (
            conventional[offset + 3] == VFM_CFG_TYPE_MIGRATION
            and int.from_bytes(conventional[offset + 4 : offset + _IDENTITY_SIZE], "little") == VFM_SIGNATURE
        ):
            return offset
    return None


def migration_capability(config: bytes) -> tuple[int, Capability]:
    """The migration capability's offset and decoded view; :class:`DecodeError` if absent or invalid.

    One rule whatever the dump's size: the capability lies wholly in the
    first 256 bytes (conventional config space, where the capability list
    lives).  One whose ``CAP_LEN`` takes it past 0xff is an error, in a
    4096-byte dump as in a 256-byte one.
    """
    offset = find_migration_capability(config)
    if offset is None:
        raise DecodeError("capability list", PCI_CAPABILITY_LIST, "no vfmig migration capability in the list")
    conventional = config[:PCI_CONFIG_SIZE]
    length = conventional[offset + 2]
    end = offset + length
    if end > len(conventional):
        raise DecodeError(
            "cap_len",
            0x02,
            f"the capability at 0x{offset:02x} is {length} bytes long and would end at 0x{end - 1:02x}, "
            f"past the {len(conventional)} bytes of config space where capabilities live",
        )
    # A cap_len shorter than the header still gets the whole header, so that the codec
    # reports the disagreement between cap_len and num_slots rather than a short buffer.
    return offset, decode_capability(conventional[offset : offset + max(length, VFM_HEADER_SIZE)])


# ---------------------------------------------------------------------------
# lspci's text: one function or a whole machine.

DUMP_SIZES: Mapping[int, str] = {64: "lspci -x", 256: "lspci -xxx", 4096: "lspci -xxxx"}
"""Bytes per function that lspci prints, and the option that prints them."""

_ROW_BYTES = 16

_SLOT = r"(?:(?P<domain>[0-9a-fA-F]{4,8}):)?(?P<bus>[0-9a-fA-F]{2}):(?P<device>[01][0-9a-fA-F])\.(?P<function>[0-7])"
_TITLE_LINE = re.compile(_SLOT + r"(?:\s|$)")
"""The line lspci prints before a function's dump: its slot, then what it is (``00:03.0 PCI bridge: ...``)."""
_SLOT_ONLY = re.compile(_SLOT + "$")


@dataclass(frozen=True)
class DumpedFunction:
    """One function's config space as lspci printed it."""

    config: bytes
    title: str
    """The function's title line (``"00:03.0 PCI bridge: ..."``), or ``""`` if the dump has none."""
    index: int
    """Its position in the text, from 1."""

    @property
    def slot(self) -> str | None:
        """The slot as lspci printed it (``"00:03.0"``, ``"0000:04:00.0"``), or None without a title line."""
        match = _TITLE_LINE.match(self.title)
        return match.group(0).strip() if match else None

    @property
    def name(self) -> str:
        """What messages call the function: its slot, or ``"device N"`` when the dump does not say."""
        return self.slot or f"device {self.index}"

    @property
    def address(self) -> tuple[int, int, int, int] | None:
        """``(domain, bus, device, function)``; lspci leaves out domain 0000."""
        match = _TITLE_LINE.match(self.title)
        return _address(match) if match else None


def _address(match: re.Match[str]) -> tuple[int, int, int, int]:
    domain = int(match["domain"], 16) if match["domain"] else 0
    return domain, int(match["bus"], 16), int(match["device"], 16), int(match["function"], 16)


def _size_problem(name: str, size: int) -> str | None:
    if size in DUMP_SIZES:
        return None
    expected = min((full for full in DUMP_SIZES if full > size), default=max(DUMP_SIZES))
    return f"the dump of {name} has {size} of {expected} bytes; use the whole output of {DUMP_SIZES[expected]}"


class _Reader:
    """Collects the functions of an lspci text, one line at a time."""

    def __init__(self) -> None:
        self.functions: list[DumpedFunction] = []
        self.title = ""
        self.data = bytearray()

    @property
    def name(self) -> str:
        return DumpedFunction(b"", self.title, len(self.functions) + 1).name

    def title_line(self, line: str) -> None:
        if self.data or self.title:
            self.finish()
        self.title = line

    def hex_row(self, number: int, offset: int, row: bytes) -> None:
        if offset == 0 and self.data:
            # A dump that starts over without a title line: the next function of a concatenated file.
            self.finish()
        if offset > len(self.data):
            raise DumpError(
                f"the dump of {self.name} is missing bytes 0x{len(self.data):02x}-0x{offset - 1:02x} "
                f"(before line {number}): a row was cut out",
                self.name,
            )
        if offset < len(self.data):
            raise DumpError(
                f"the dump of {self.name} has bytes from 0x{offset:02x} twice (line {number}): "
                "two dumps are mixed, or a row was pasted twice",
                self.name,
            )
        self.data += row

    def finish(self) -> None:
        if not self.data:
            raise DumpError(
                f"{self.name} has no hex dump: lspci prints one with -xxx (as root; -xxxx for extended config space)",
                self.name,
            )
        problem = _size_problem(self.name, len(self.data))
        if problem is not None:
            raise DumpError(problem, self.name)
        self.functions.append(DumpedFunction(bytes(self.data), self.title, len(self.functions) + 1))
        self.title = ""
        self.data = bytearray()


def parse_lspci_functions(text: str) -> list[DumpedFunction]:
    """Every function in ``lspci -x`` / ``-xxx`` / ``-xxxx`` output, one or a whole machine's.

    A function starts at its title line (``00:03.0 PCI bridge: ...``) or, in
    dumps pasted together without titles, at a row for offset 00.  Other
    lines (``lspci -v`` details, blank lines) are skipped.  Each function
    must have 64, 256 or 4096 bytes in rows contiguous from 00; otherwise
    :class:`DumpError` says which function and what is missing.
    """
    reader = _Reader()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        row = _DUMP_LINE.match(stripped)
        if row is not None:
            reader.hex_row(number, int(row["offset"], 16), bytes(int(byte, 16) for byte in row["bytes"].split()))
        elif _TITLE_LINE.match(stripped):
            reader.title_line(stripped)
    if not reader.functions and not reader.data and not reader.title:
        raise DumpError("no lspci hex dump found: lspci prints one with -xxx (as root)")
    reader.finish()
    return reader.functions


def parse_lspci_dump(text: str) -> bytes:
    """The configuration bytes of the one function in ``lspci -x`` / ``-xxx`` / ``-xxxx`` text.

    :class:`DumpError` when the text holds several functions (choose one
    with :func:`select_function`) or is not a whole dump (see
    :func:`parse_lspci_functions`).
    """
    functions = parse_lspci_functions(text)
    if len(functions) != 1:
        raise DumpError(
            f"this text holds {len(functions)} devices ({_names(functions)}); "
            "parse_lspci_functions reads them all, select_function picks one"
        )
    return functions[0].config


def _names(functions: Sequence[DumpedFunction], most: int = 6) -> str:
    names = [function.name for function in functions[:most]]
    more = len(functions) - len(names)
    return ", ".join(names) + (f" and {more} more" if more else "")


def select_function(functions: Sequence[DumpedFunction], slot: str) -> DumpedFunction:
    """The function at ``slot`` (``BB:DD.F`` or ``DDDD:BB:DD.F``, as lspci prints it).

    :class:`DumpError` when ``slot`` is not written that way, or when the
    dump holds no function or several functions there.
    """
    match = _SLOT_ONLY.match(slot.strip())
    if match is None:
        raise DumpError(f"{slot!r} is not a slot: write it as lspci does, BB:DD.F (00:03.0) or DDDD:BB:DD.F")
    wanted = _address(match)
    found = [function for function in functions if function.address == wanted]
    if not found:
        raise DumpError(f"the dump holds no device {slot}; it holds {_names(functions)}", slot)
    if len(found) > 1:
        raise DumpError(f"the dump holds {len(found)} dumps of {slot}; keep one", slot)
    return found[0]


def format_lspci_dump(config: bytes, title: str) -> str:
    """``config`` in the format of ``lspci -x`` (64 bytes) or ``-xxx`` (256 bytes), under ``title``.

    ``title`` is the function's line, e.g. ``"00:03.0 PCI bridge: ..."``; the
    result is what ``lspci -F FILE`` reads back.
    """
    rows = [title]
    for offset in range(0, len(config), 16):
        row = " ".join(f"{byte:02x}" for byte in config[offset : offset + 16])
        rows.append(f"{offset:02x}: {row}")
    return "\n".join(rows) + "\n"
