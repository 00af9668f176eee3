"""Discovery and placement (spec §2.2, §3.1, §3.2): the type-1 header, the capability list, the reset value.

:class:`DiscoveryObserver` finds the migration capability as a guest does, walking the capability list from the
Capabilities Pointer with 1-byte configuration reads (VFM-DISC-001, VFM-CAP-001 to VFM-CAP-003), judges the
capability a new bridge presents (VFM-CAP-004 to VFM-CAP-006), and after every guest write to the header judges
that the bridge is still a bridge with the capability linked once.  The list is walked by
:func:`vfmig_proto.config_space.capabilities`, the one walker of the project.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

from conformance.suites.bridge.model import cached_reset_value
from conformance.suites.bridge.observers.versions import VersionObserver
from conformance.suites.bridge.world import register_offset
from reference_impl.bridge import MIGRATION_CAP_OFFSET, MSI_OFFSET, QEMU_BRIDGE_DEVICE_ID, QEMU_BRIDGE_VENDOR_ID
from vfmig_proto.codec import find_field, read_field
from vfmig_proto.config_space import capabilities
from vfmig_proto.errors import DecodeError
from vfmig_proto.layout import (
    VFM_CFG_TYPE_MIGRATION,
    VFM_HEADER_SIZE,
    VFM_MAX_ACK_TIMEOUT_MS,
    VFM_MAX_PAGE_SHIFT,
    VFM_MAX_SLOTS,
    VFM_MIN_ACK_TIMEOUT_MS,
    VFM_MIN_PAGE_SHIFT,
    VFM_MIN_SLOTS,
    VFM_SIGNATURE,
    VFM_SLOT_ENTRY_SIZE,
    capability_length,
    slot_offset,
)
from vfmig_proto.pci import (
    PCI_CAP_ID_MSI,
    PCI_CAP_ID_SHPC,
    PCI_CAP_ID_SLOTID,
    PCI_CAP_ID_VNDR,
    PCI_CAPABILITY_LIST,
    PCI_CLASS_BRIDGE_PCI,
    PCI_CLASS_DEVICE,
    PCI_CONFIG_SIZE,
    PCI_DEVICE_ID,
    PCI_HEADER_TYPE,
    PCI_HEADER_TYPE_BRIDGE,
    PCI_HEADER_TYPE_MASK,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_64BIT,
    PCI_MSI_FLAGS_MASKBIT,
    PCI_SHPC_SIZEOF,
    PCI_SID_SIZEOF,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_STD_HEADER_SIZEOF,
    PCI_VENDOR_ID,
)

QEMU_BRIDGE_ID = (QEMU_BRIDGE_VENDOR_ID, QEMU_BRIDGE_DEVICE_ID)
"""Vendor and device ID of QEMU's pci-bridge: VFM-CAP-003 speaks of bridges derived from it."""
QEMU_CAP_OFFSET = MIGRATION_CAP_OFFSET
"""Where VFM-CAP-003 places the capability in QEMU's pci-bridge."""
QEMU_CAP_NEXT = MSI_OFFSET
"""The capability's CAP_NEXT there: QEMU's MSI capability."""
RESOURCE_RESERVE_TYPE = 0x01
"""CFG_TYPE of QEMU's resource-reserve vendor capability (spec §3.1.1)."""


# Offsets in the migration capability (and in any vendor-specific capability, for the first three), from
# vfmig_proto's layout.
CAP_NEXT = register_offset("cap_next")
CAP_LEN = register_offset("cap_len")
CFG_TYPE = register_offset("cfg_type")
SIGNATURE = register_offset("signature")
IDENTITY_SIZE = SIGNATURE + find_field(VFM_MIN_SLOTS, "signature").register.size
"""Bytes that tell the migration capability from other vendor-specific ones: up to the end of SIGNATURE."""
DEVFN_IN_ENTRY = find_field(VFM_MIN_SLOTS, "device[0].dev_devfn").offset - slot_offset(0)
"""The offset of DEV_DEVFN in a slot entry."""


def _header_value(capability: bytes, path: str) -> int:
    """The header field ``path`` in the bytes of a capability."""
    return read_field(capability, find_field(VFM_MIN_SLOTS, path))


class ConfigBytes:
    """A bridge's configuration space, read byte by byte as it is looked at (as a guest walks it)."""

    def __init__(self, read: Callable[[int, int], int]) -> None:
        self._read = read
        self._bytes: dict[int, int] = {}

    def __len__(self) -> int:
        return PCI_CONFIG_SIZE

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            if index.indices(PCI_CONFIG_SIZE) == (0, PCI_CONFIG_SIZE, 1):
                return self  # the whole space, still read as it is looked at
            return bytes(self[position] for position in range(*index.indices(PCI_CONFIG_SIZE)))
        if index not in self._bytes:
            self._bytes[index] = self._read(index, 1)
        return self._bytes[index]


def capability_list(config: ConfigBytes) -> tuple[list[tuple[int, int]], str]:
    """``(offset, ID)`` of each capability in the list from 0x34, and what is wrong with the list, if anything."""
    listed: list[tuple[int, int]] = []
    if not config[PCI_STATUS] & PCI_STATUS_CAP_LIST:
        return listed, "Status bit 4 (Capabilities List) is clear"
    # The walker takes bytes; it only indexes, slices and measures them, which ConfigBytes does with the reads a
    # guest makes.  Reading all 256 bytes for it would double the suite's reads.
    walk = capabilities(cast("bytes", config))
    try:
        for found in walk:
            listed.append(found)
    except DecodeError as error:  # a pointer out of the capability area, or a list that loops
        return listed, error.problem
    return listed, ""


def _capability_size(config: ConfigBytes, offset: int, cap_id: int) -> int:
    """Bytes a capability occupies, as far as the suite knows its kind (at least its two list bytes)."""
    if cap_id == PCI_CAP_ID_MSI:
        flags = int.from_bytes(config[offset + PCI_MSI_FLAGS : offset + PCI_MSI_FLAGS + 2], "little")
        size = 0x0E if flags & PCI_MSI_FLAGS_64BIT else 0x0A
        return size + (0x0A if flags & PCI_MSI_FLAGS_MASKBIT else 0)
    if cap_id == PCI_CAP_ID_SHPC:
        return PCI_SHPC_SIZEOF
    if cap_id == PCI_CAP_ID_SLOTID:
        return PCI_SID_SIZEOF
    if cap_id == PCI_CAP_ID_VNDR:
        return max(int(config[offset + CAP_LEN]), 2)
    return 2


class DiscoveryObserver(VersionObserver):
    """Where the bridge places the capability, and what a new bridge presents in it."""

    def _discover(self, config: ConfigBytes) -> int:
        """Discovery (spec §2.2): the header and the capability list; the capability's offset."""
        header_type = config[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MASK
        class_code = int.from_bytes(config[PCI_CLASS_DEVICE : PCI_CLASS_DEVICE + 2], "little")
        status = int.from_bytes(config[PCI_STATUS : PCI_STATUS + 2], "little")
        self._that(
            "VFM-DISC-001",
            header_type == PCI_HEADER_TYPE_BRIDGE
            and class_code == PCI_CLASS_BRIDGE_PCI
            and bool(status & PCI_STATUS_CAP_LIST),
            f"expected Header Type 0x01, class code 0x0604 and Status bit 4 set; the bridge presents Header Type "
            f"0x{header_type:02x}, class code 0x{class_code:04x}, Status 0x{status:04x}",
        )
        listed, problem = capability_list(config)
        self._that("VFM-CAP-001", not problem, f"the capability list cannot be followed: {problem}")
        migration = [
            offset
            for offset, cap_id in listed
            if cap_id == PCI_CAP_ID_VNDR
            and offset + IDENTITY_SIZE <= PCI_CONFIG_SIZE
            and config[offset + CFG_TYPE] == VFM_CFG_TYPE_MIGRATION
            and int.from_bytes(config[offset + SIGNATURE : offset + IDENTITY_SIZE], "little") == VFM_SIGNATURE
        ]
        self._that(
            "VFM-CAP-001",
            len(migration) == 1 and migration[0] == self.bridge.cap,
            f"expected exactly one migration capability in the list from 0x34, at the bridge's cap "
            f"0x{self.bridge.cap:02x}; the list {[f'0x{o:02x} (ID 0x{i:02x})' for o, i in listed]} links "
            f"{[f'0x{o:02x}' for o in migration]}",
        )
        cap = migration[0] if len(migration) == 1 else int(self.bridge.cap)
        for offset, cap_id in listed:
            if cap_id == PCI_CAP_ID_MSI and self.msi_at is None:
                self.msi_at = offset
                flags = int.from_bytes(config[offset + PCI_MSI_FLAGS : offset + PCI_MSI_FLAGS + 2], "little")
                if flags & PCI_MSI_FLAGS_MASKBIT:
                    self.msi_mask_at = offset + (0x10 if flags & PCI_MSI_FLAGS_64BIT else 0x0C)
            elif cap_id == PCI_CAP_ID_SHPC and self.shpc_at is None:
                self.shpc_at = offset
        length = config[cap + CAP_LEN]
        others = [(offset, _capability_size(config, offset, cap_id)) for offset, cap_id in listed if offset != cap]
        overlapping = [f"0x{o:02x}..0x{o + size - 1:02x}" for o, size in others if o < cap + length and cap < o + size]
        self._that(
            "VFM-CAP-002",
            cap % 4 == 0 and cap >= PCI_STD_HEADER_SIZEOF and cap + length <= PCI_CONFIG_SIZE and not overlapping,
            f"expected a DWORD-aligned offset >= 0x40 with all CAP_LEN bytes below 0x100 and outside other "
            f"capabilities; the capability is at 0x{cap:02x}, CAP_LEN {length}, overlapping {overlapping}",
        )
        vendor_device = (
            int.from_bytes(config[PCI_VENDOR_ID : PCI_VENDOR_ID + 2], "little"),
            int.from_bytes(config[PCI_DEVICE_ID : PCI_DEVICE_ID + 2], "little"),
        )
        reserve = any(
            cap_id == PCI_CAP_ID_VNDR and config[o + CFG_TYPE] == RESOURCE_RESERVE_TYPE for o, cap_id in listed
        )
        if vendor_device == QEMU_BRIDGE_ID and not reserve:  # VFM-CAP-003 speaks of such bridges only
            self._that(
                "VFM-CAP-003",
                cap == QEMU_CAP_OFFSET
                and config[PCI_CAPABILITY_LIST] == cap
                and config[cap + CAP_NEXT] == QEMU_CAP_NEXT,
                f"a bridge with QEMU's IDs 1b36:0001 and no resource-reserve capability should link the capability "
                f"first, at 0x64, with CAP_NEXT 0x4C; the Capabilities Pointer reads "
                f"0x{config[PCI_CAPABILITY_LIST]:02x}, the capability is at 0x{cap:02x} with CAP_NEXT "
                f"0x{config[cap + CAP_NEXT]:02x}",
            )
        return cap

    def _check_reset_value(self, config: ConfigBytes) -> None:
        cap = self.cap
        raw = config[cap : cap + max(config[cap + CAP_LEN], VFM_HEADER_SIZE)]
        cap_id, cfg_type, signature = (_header_value(raw, path) for path in ("cap_id", "cfg_type", "signature"))
        self._that(
            "VFM-CAP-004",
            cap_id == PCI_CAP_ID_VNDR and cfg_type == VFM_CFG_TYPE_MIGRATION and signature == VFM_SIGNATURE,
            f"expected CAP_ID 0x09, CFG_TYPE 0x56 and SIGNATURE 0x474D4656; the capability at 0x{cap:02x} presents "
            f"CAP_ID 0x{cap_id:02x}, CFG_TYPE 0x{cfg_type:02x}, SIGNATURE 0x{signature:08x}",
        )
        cap_len, num_slots, page_shift, ack = (
            _header_value(raw, path) for path in ("cap_len", "num_slots", "page_shift", "ack_timeout_ms")
        )
        devfns = [
            raw[slot_offset(slot) + DEVFN_IN_ENTRY]
            for slot in range(num_slots)
            if slot_offset(slot) + VFM_SLOT_ENTRY_SIZE <= len(raw)
        ]
        self._that(
            "VFM-CAP-005",
            VFM_MIN_SLOTS <= num_slots <= VFM_MAX_SLOTS
            and cap_len == capability_length(num_slots)
            and VFM_MIN_PAGE_SHIFT <= page_shift <= VFM_MAX_PAGE_SHIFT
            and VFM_MIN_ACK_TIMEOUT_MS <= ack <= VFM_MAX_ACK_TIMEOUT_MS
            and len(set(devfns)) == len(devfns) == num_slots,
            f"expected NUM_SLOTS in 1..31, CAP_LEN 0x20 + 4 x NUM_SLOTS, PAGE_SHIFT in 12..30, ACK_TIMEOUT_MS in "
            f"1..65535 and distinct DEV_DEVFNs; the bridge presents NUM_SLOTS {num_slots}, CAP_LEN {cap_len}, "
            f"PAGE_SHIFT {page_shift}, ACK_TIMEOUT_MS {ack}, DEV_DEVFN {[f'0x{d:02x}' for d in devfns]}",
        )
        expected = self._as_presented(cached_reset_value(replace(self.params, next_pointer=config[cap + CAP_NEXT])))
        views = (
            ("config reads", config[cap : cap + len(expected)]),
            ("capability_bytes()", bytes(self.bridge.capability_bytes())),
        )
        for view, got in views:
            self._that(
                "VFM-CAP-006",
                got == expected,
                f"a new bridge with {self.params} must present the reset value {expected.hex()}; "
                f"{view} show {got.hex()}",
            )

    def _check_header(self) -> None:
        """After a write to the type-1 header: still a bridge, the capability still linked once (spec §2.2)."""
        header_type = self._read(PCI_HEADER_TYPE, 1) & PCI_HEADER_TYPE_MASK
        class_code = self._read(PCI_CLASS_DEVICE, 2)
        status = self._read(PCI_STATUS, 2)
        self._that(
            "VFM-DISC-001",
            header_type == PCI_HEADER_TYPE_BRIDGE
            and class_code == PCI_CLASS_BRIDGE_PCI
            and bool(status & PCI_STATUS_CAP_LIST),
            f"after a guest write to the header: Header Type 0x{header_type:02x}, class code 0x{class_code:04x}, "
            f"Status 0x{status:04x} (expected 0x01, 0x0604 and bit 4 set)",
        )
        listed, problem = capability_list(ConfigBytes(self._read))
        linked = [offset for offset, _ in listed]
        self._that(
            "VFM-CAP-001",
            linked.count(self.cap) == 1 and not problem,
            f"after a guest write to the header, the capability list from 0x34 runs "
            f"{[f'0x{o:02x}' for o in linked]}{f' ({problem})' if problem else ''}: the migration capability at "
            f"0x{self.cap:02x} must be linked exactly once, in a list a guest can follow",
        )
