"""Find and read the migration capability in a whole PCI configuration space.

For tools that hold a bridge's configuration space (from ``lspci -x``, from
``/sys/bus/pci/devices/*/config`` or from an emulator) and want the migration
capability in it.  Also the text format of ``lspci -x`` / ``lspci -xxx``, so
that dumps can be read and written exactly as pciutils does (spec §3.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from vfmig_proto.codec import Capability, decode_capability
from vfmig_proto.errors import DecodeError
from vfmig_proto.layout import VFM_CFG_TYPE_MIGRATION, VFM_HEADER_SIZE, VFM_SIGNATURE
from vfmig_proto.pci import (
    PCI_CAP_ID_VNDR,
    PCI_CAP_LIST_NEXT,
    PCI_CAPABILITY_LIST,
    PCI_CONFIG_SIZE,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_STD_HEADER_SIZEOF,
)

_MAX_CAPABILITIES = 48
"""(256 - 64) / 4: a longer walk is a loop in the list."""

_IDENTITY_SIZE = 8
"""Bytes that identify the migration capability: ID, next, length, type and the 4-byte signature."""

_DUMP_LINE = re.compile(r"^(?P<offset>[0-9a-fA-F]{2,3}):(?P<bytes>(?: [0-9a-fA-F]{2}){1,16})\s*$")


def capabilities(config: bytes) -> Iterator[tuple[int, int]]:
    """``(offset, capability ID)`` of each capability in the list, in list order.

    Stops at a pointer of 0, and raises :class:`DecodeError` for a pointer
    outside the capability area (0x40 to 0xff), a pointer past the end of
    ``config`` or a list that loops.  Bytes from 0x100 on (PCI Express
    extended configuration space) are never part of this list.
    """
    if len(config) < PCI_STD_HEADER_SIZEOF or not config[PCI_STATUS] & PCI_STATUS_CAP_LIST:
        return
    conventional = config[:PCI_CONFIG_SIZE]
    pointer_at = PCI_CAPABILITY_LIST
    pointer = config[pointer_at] & 0xFC
    for _ in range(_MAX_CAPABILITIES):
        if pointer == 0:
            return
        _check_pointer(conventional, pointer_at, pointer)
        yield pointer, config[pointer]
        pointer_at = pointer + PCI_CAP_LIST_NEXT
        pointer = config[pointer_at] & 0xFC
    raise DecodeError("capability list", PCI_CAPABILITY_LIST, f"more than {_MAX_CAPABILITIES} entries: the list loops")


def _check_pointer(conventional: bytes, pointer_at: int, pointer: int) -> None:
    if pointer < PCI_STD_HEADER_SIZEOF:
        raise DecodeError(
            "capability list", pointer, f"the pointer at 0x{pointer_at:02x} points into the standard header"
        )
    # A capability's ID and next pointer must both lie in the bytes we hold.
    if pointer + 2 > len(conventional):
        raise DecodeError(
            "capability list",
            pointer,
            f"the pointer at 0x{pointer_at:02x} points past the {len(conventional)} bytes of config space given",
        )


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


def parse_lspci_dump(text: str) -> bytes:
    """The configuration bytes of one function in ``lspci -x`` / ``-xxx`` / ``-xxxx`` text.

    Lines that are not hex rows (the function's title line, blank lines) are
    skipped; rows must be contiguous from offset 0.
    """
    data = bytearray()
    for number, line in enumerate(text.splitlines(), start=1):
        match = _DUMP_LINE.match(line.strip())
        if match is None:
            continue
        offset = int(match["offset"], 16)
        if offset != len(data):
            raise DecodeError(
                "lspci dump", offset, f"line {number} starts at 0x{offset:02x}, expected 0x{len(data):02x}"
            )
        data += bytes(int(byte, 16) for byte in match["bytes"].split())
    if not data:
        raise DecodeError("lspci dump", 0, "no hex rows found")
    return bytes(data)


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
