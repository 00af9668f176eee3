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
from vfmig_proto.layout import VFM_CFG_TYPE_MIGRATION, VFM_SIGNATURE
from vfmig_proto.pci import PCI_CAP_ID_VNDR, PCI_CAPABILITY_LIST, PCI_CONFIG_SIZE, PCI_STATUS, PCI_STATUS_CAP_LIST

_MAX_CAPABILITIES = 48
"""(256 - 64) / 4: a longer walk is a loop in the list."""

_DUMP_LINE = re.compile(r"^(?P<offset>[0-9a-fA-F]{2,3}):(?P<bytes>(?: [0-9a-fA-F]{2}){1,16})\s*$")


def capabilities(config: bytes) -> Iterator[tuple[int, int]]:
    """``(offset, capability ID)`` of each capability in the list, in list order.

    Stops at a pointer of 0, and raises :class:`DecodeError` for a pointer
    outside the capability area or a list that loops.
    """
    if len(config) < 0x40 or not config[PCI_STATUS] & PCI_STATUS_CAP_LIST:
        return
    pointer = config[PCI_CAPABILITY_LIST] & 0xFC
    for _ in range(_MAX_CAPABILITIES):
        if pointer == 0:
            return
        if pointer < 0x40 or pointer + 2 > min(len(config), PCI_CONFIG_SIZE):
            raise DecodeError("capability list", pointer, "pointer outside the capability area")
        yield pointer, config[pointer]
        pointer = config[pointer + 1] & 0xFC
    raise DecodeError("capability list", PCI_CAPABILITY_LIST, f"more than {_MAX_CAPABILITIES} entries: the list loops")


def find_migration_capability(config: bytes) -> int | None:
    """Offset of the migration capability in ``config``, or None if the list has none.

    A candidate is a vendor-specific capability (ID 0x09) with ``CFG_TYPE``
    0x56 and the ``VFMG`` signature (spec §2.2).
    """
    for offset, cap_id in capabilities(config):
        if cap_id != PCI_CAP_ID_VNDR or offset + 8 > len(config):
            continue
        if (
            config[offset + 3] == VFM_CFG_TYPE_MIGRATION
            and int.from_bytes(config[offset + 4 : offset + 8], "little") == VFM_SIGNATURE
        ):
            return offset
    return None


def migration_capability(config: bytes) -> tuple[int, Capability]:
    """The migration capability's offset and decoded view; :class:`DecodeError` if absent or invalid."""
    offset = find_migration_capability(config)
    if offset is None:
        raise DecodeError("capability list", PCI_CAPABILITY_LIST, "no vfmig migration capability in the list")
    length = config[offset + 2]
    return offset, decode_capability(config[offset : offset + length])


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
