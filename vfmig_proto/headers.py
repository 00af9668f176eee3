"""Configuration spaces as data: the migration bridge's (spec §3.1) and a virtual function's, after reset.

Both the reference implementation and an implementation written from the specification lay out the same
bytes and the same per-byte write masks; a vendor deriving its bridge from QEMU's ``pci-bridge`` would too.
The bridge is QEMU 7.2's pci-bridge (``hw/pci-bridge/pci_bridge_dev.c``, 1b36:0001) with the migration
capability linked first: capability at 0x64 -> MSI at 0x4C -> Slot ID at 0x48 -> SHPC at 0x40.  The function
is a type-0 header with a PCI Express capability (function-level reset, Transactions Pending) followed by an
MSI-X capability; its identity registers are the caller's.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from vfmig_proto.access import write_masks
from vfmig_proto.codec import reset_value
from vfmig_proto.errors import CapabilityFitError
from vfmig_proto.layout import QEMU_BRIDGE_CAP_NEXT, QEMU_BRIDGE_CAP_OFFSET, CapabilityParams, capability_length
from vfmig_proto.pci import (
    MSI_64_MASKABLE_MASKS,
    PCI_BASE_ADDRESS_0,
    PCI_CAP_ID_EXP,
    PCI_CAP_ID_MSI,
    PCI_CAP_ID_MSIX,
    PCI_CAP_ID_SHPC,
    PCI_CAP_ID_SLOTID,
    PCI_CAPABILITY_LIST,
    PCI_CLASS_BRIDGE_PCI,
    PCI_CLASS_DEVICE,
    PCI_COMMAND,
    PCI_COMMAND_INTX_DISABLE,
    PCI_COMMAND_IO,
    PCI_COMMAND_MASTER,
    PCI_COMMAND_MEMORY,
    PCI_CONFIG_SIZE,
    PCI_DEVICE_ID,
    PCI_EXP_DEVCTL,
    PCI_HEADER_TYPE,
    PCI_HEADER_TYPE_BRIDGE,
    PCI_INTERRUPT_PIN,
    PCI_MSI_FLAGS,
    PCI_MSI_FLAGS_64BIT,
    PCI_MSI_FLAGS_MASKBIT,
    PCI_MSIX_FLAGS,
    PCI_MSIX_FLAGS_ENABLE,
    PCI_MSIX_FLAGS_MASKALL,
    PCI_PREF_MEMORY_BASE,
    PCI_PREF_MEMORY_LIMIT,
    PCI_REVISION_ID,
    PCI_SEC_STATUS,
    PCI_SID_CHASSIS_NR,
    PCI_SID_ESR,
    PCI_STATUS,
    PCI_STATUS_CAP_LIST,
    PCI_SUBSYSTEM_ID,
    PCI_SUBSYSTEM_VENDOR_ID,
    PCI_VENDOR_ID,
    SHPC_MASKS,
    SLOTID_MASKS,
    TYPE1_HEADER_MASKS,
    MaskedRegister,
    place_masks,
)

# --- the bridge: QEMU 7.2's pci-bridge -------------------------------------------------------------
QEMU_BRIDGE_VENDOR_ID = 0x1B36
QEMU_BRIDGE_DEVICE_ID = 0x0001
QEMU_BRIDGE_SHPC_OFFSET = 0x40
QEMU_BRIDGE_SLOTID_OFFSET = 0x48
QEMU_BRIDGE_MSI_OFFSET = QEMU_BRIDGE_CAP_NEXT
"""Spec VFM-CAP-003: the capability at :data:`~vfmig_proto.layout.QEMU_BRIDGE_CAP_OFFSET` links to QEMU's MSI."""
_BRIDGE_STATUS_RESET = 0x00B0
"""Capabilities List, 66 MHz capable, fast back-to-back capable (as QEMU presents it)."""
_BRIDGE_SEC_STATUS_RESET = 0x00A0
_BRIDGE_BAR0_RESET = 0x00000004
"""64-bit memory BAR (the SHPC's registers)."""
_PREFETCHABLE_64BIT = 0x0001
_SLOTID_FIRST_IN_CHASSIS = 0x20
_CHASSIS_NUMBER = 0x01
_INTX_PIN_A = 0x01
_BRIDGE_MSI_FLAGS_RESET = PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT


def _put(config: bytearray, offset: int, size: int, value: int) -> None:
    config[offset : offset + size] = value.to_bytes(size, "little")


def _put_all(config: bytearray, registers: tuple[tuple[int, int, int], ...]) -> None:
    """Store each ``(offset, size, value)`` little-endian."""
    for offset, size, value in registers:
        _put(config, offset, size, value)


def _capability_header(cap_id: int, next_offset: int) -> int:
    """The 16-bit ID and next-pointer word that opens a capability."""
    return cap_id | next_offset << 8


@cache
def bridge_masks(num_slots: int) -> tuple[bytes, bytes]:
    """Per-byte write and write-1-to-clear masks of the bridge's 256-byte configuration space (VFM-ACC-001)."""
    wmask = bytearray(PCI_CONFIG_SIZE)
    w1cmask = bytearray(PCI_CONFIG_SIZE)
    place_masks(wmask, w1cmask, 0, TYPE1_HEADER_MASKS)
    place_masks(wmask, w1cmask, QEMU_BRIDGE_SHPC_OFFSET, SHPC_MASKS)
    place_masks(wmask, w1cmask, QEMU_BRIDGE_SLOTID_OFFSET, SLOTID_MASKS)
    place_masks(wmask, w1cmask, QEMU_BRIDGE_MSI_OFFSET, MSI_64_MASKABLE_MASKS)
    capability = write_masks(num_slots)
    end = QEMU_BRIDGE_CAP_OFFSET + capability_length(num_slots)
    wmask[QEMU_BRIDGE_CAP_OFFSET:end] = capability.wmask
    w1cmask[QEMU_BRIDGE_CAP_OFFSET:end] = capability.w1cmask
    return bytes(wmask), bytes(w1cmask)


def bridge_reset_config(params: CapabilityParams) -> bytearray:
    """The bridge's 256 configuration bytes after a conventional reset (no functions added yet).

    Raises :class:`~vfmig_proto.errors.CapabilityFitError` if the capability runs past the configuration space.
    """
    if QEMU_BRIDGE_CAP_OFFSET + params.length > PCI_CONFIG_SIZE:
        raise CapabilityFitError(f"a {params.num_slots}-slot capability does not fit at 0x{QEMU_BRIDGE_CAP_OFFSET:02x}")
    config = bytearray(PCI_CONFIG_SIZE)
    _put_all(
        config,
        (
            (PCI_VENDOR_ID, 2, QEMU_BRIDGE_VENDOR_ID),
            (PCI_DEVICE_ID, 2, QEMU_BRIDGE_DEVICE_ID),
            (PCI_STATUS, 2, _BRIDGE_STATUS_RESET),
            (PCI_CLASS_DEVICE, 2, PCI_CLASS_BRIDGE_PCI),
            (PCI_HEADER_TYPE, 1, PCI_HEADER_TYPE_BRIDGE),
            (PCI_BASE_ADDRESS_0, 4, _BRIDGE_BAR0_RESET),
            (PCI_SEC_STATUS, 2, _BRIDGE_SEC_STATUS_RESET),
            (PCI_PREF_MEMORY_BASE, 2, _PREFETCHABLE_64BIT),
            (PCI_PREF_MEMORY_LIMIT, 2, _PREFETCHABLE_64BIT),
            (PCI_INTERRUPT_PIN, 1, _INTX_PIN_A),
            (PCI_CAPABILITY_LIST, 1, QEMU_BRIDGE_CAP_OFFSET),
            # SHPC (last in the list), Slot ID, MSI, each pointing to the one before it in memory.
            (QEMU_BRIDGE_SHPC_OFFSET, 2, _capability_header(PCI_CAP_ID_SHPC, 0)),
            (QEMU_BRIDGE_SLOTID_OFFSET, 2, _capability_header(PCI_CAP_ID_SLOTID, QEMU_BRIDGE_SHPC_OFFSET)),
            (QEMU_BRIDGE_SLOTID_OFFSET + PCI_SID_ESR, 1, _SLOTID_FIRST_IN_CHASSIS),
            (QEMU_BRIDGE_SLOTID_OFFSET + PCI_SID_CHASSIS_NR, 1, _CHASSIS_NUMBER),
            (QEMU_BRIDGE_MSI_OFFSET, 2, _capability_header(PCI_CAP_ID_MSI, QEMU_BRIDGE_SLOTID_OFFSET)),
            (QEMU_BRIDGE_MSI_OFFSET + PCI_MSI_FLAGS, 2, _BRIDGE_MSI_FLAGS_RESET),
        ),
    )
    capability = reset_value(CapabilityParams(**{**params.__dict__, "next_pointer": QEMU_BRIDGE_MSI_OFFSET}))
    config[QEMU_BRIDGE_CAP_OFFSET : QEMU_BRIDGE_CAP_OFFSET + len(capability)] = capability
    return config


# --- a virtual function: type-0 header, PCI Express capability, MSI-X capability ------------------------
FUNCTION_PCIE_CAP_OFFSET = 0x40
FUNCTION_MSIX_CAP_OFFSET = 0x70
PCI_CLASS_NETWORK_ETHERNET = 0x0200
_BAR_MEMORY_64BIT = 0x4
"""Memory BAR, 64-bit, not prefetchable."""
_BAR_FLAG_BITS = 0xF
_DWORD_ALL_ONES = 0xFFFFFFFF
_DEVCTL_WRITABLE = 0x7FFF
"""Every Device Control bit but the reserved top one; Initiate FLR among them."""


class FunctionIdentityRegisters(Protocol):
    """The identity registers of a function (VFM-MIG-004: the destination's must match)."""

    @property
    def vendor_id(self) -> int: ...
    @property
    def device_id(self) -> int: ...
    @property
    def revision(self) -> int: ...
    @property
    def subsystem_vendor_id(self) -> int: ...
    @property
    def subsystem_id(self) -> int: ...


@cache
def function_masks(bar0_size: int) -> tuple[bytes, bytes]:
    """Per-byte write and write-1-to-clear masks of a function whose BAR 0 is a 64-bit ``bar0_size`` window."""
    wmask = bytearray(PCI_CONFIG_SIZE)
    w1cmask = bytearray(PCI_CONFIG_SIZE)
    command_bits = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE
    header = (
        MaskedRegister("command", PCI_COMMAND, 2, wmask=command_bits),
        MaskedRegister(
            "base_address_0", PCI_BASE_ADDRESS_0, 4, wmask=~(bar0_size - 1) & _DWORD_ALL_ONES & ~_BAR_FLAG_BITS
        ),
        MaskedRegister.read_write("base_address_1", PCI_BASE_ADDRESS_0 + 4, 4),
    )
    msix_control = PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL
    place_masks(wmask, w1cmask, 0, header)
    place_masks(
        wmask, w1cmask, FUNCTION_PCIE_CAP_OFFSET, (MaskedRegister("devctl", PCI_EXP_DEVCTL, 2, wmask=_DEVCTL_WRITABLE),)
    )
    place_masks(
        wmask, w1cmask, FUNCTION_MSIX_CAP_OFFSET, (MaskedRegister("msix_flags", PCI_MSIX_FLAGS, 2, wmask=msix_control),)
    )
    return bytes(wmask), bytes(w1cmask)


def function_reset_config(
    identity: FunctionIdentityRegisters, class_code: int = PCI_CLASS_NETWORK_ETHERNET
) -> bytearray:
    """A function's 256 configuration bytes after reset: its identity, BAR 0's type and the capability list."""
    config = bytearray(PCI_CONFIG_SIZE)
    _put_all(
        config,
        (
            (PCI_VENDOR_ID, 2, identity.vendor_id),
            (PCI_DEVICE_ID, 2, identity.device_id),
            (PCI_STATUS, 2, PCI_STATUS_CAP_LIST),
            (PCI_REVISION_ID, 1, identity.revision),
            (PCI_CLASS_DEVICE, 2, class_code),
            (PCI_SUBSYSTEM_VENDOR_ID, 2, identity.subsystem_vendor_id),
            (PCI_SUBSYSTEM_ID, 2, identity.subsystem_id),
            (PCI_BASE_ADDRESS_0, 1, _BAR_MEMORY_64BIT),
            (PCI_CAPABILITY_LIST, 1, FUNCTION_PCIE_CAP_OFFSET),
            (FUNCTION_PCIE_CAP_OFFSET, 2, _capability_header(PCI_CAP_ID_EXP, FUNCTION_MSIX_CAP_OFFSET)),
            (FUNCTION_MSIX_CAP_OFFSET, 2, _capability_header(PCI_CAP_ID_MSIX, 0)),
        ),
    )
    return config
