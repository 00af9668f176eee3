"""The parts of PCI that the protocol leans on, as named constants and per-byte masks.

Names follow Linux ``include/uapi/linux/pci_regs.h`` and pciutils
``lib/header.h`` (``PCI_<REG>`` for an offset, ``PCI_<REG>_<FIELD>`` for a bit),
so that a reader who knows those files knows these.  The values are PCI facts
([PCI-LB30], [PCI-BR12], [PCIE6] in the spec's references), not protocol
choices.

The write masks describe a PCI-to-PCI bridge's type-1 header and the
capabilities QEMU's ``pci-bridge`` carries (MSI, Slot ID, SHPC) in the same
per-byte model that :mod:`vfmig_proto.access` uses for the migration
capability: ``wmask`` bits take a guest write, ``w1cmask`` bits clear on a
written 1, all other bits are read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# --- Type-0/1 common header --------------------------------------------------
PCI_VENDOR_ID = 0x00
PCI_VENDOR_ID_NONE = 0xFFFF
"""What a Vendor ID read returns when no function answers (a failed read completes with all ones)."""
PCI_DEVICE_ID = 0x02
PCI_COMMAND = 0x04
PCI_COMMAND_IO = 0x0001
PCI_COMMAND_MEMORY = 0x0002
PCI_COMMAND_MASTER = 0x0004
"""Bus Master Enable (BME): the function may issue DMA and MSI/MSI-X messages."""
PCI_COMMAND_PARITY = 0x0040
PCI_COMMAND_SERR = 0x0100
PCI_COMMAND_INTX_DISABLE = 0x0400
PCI_STATUS = 0x06
PCI_STATUS_CAP_LIST = 0x0010
PCI_STATUS_ERROR_BITS = 0xF900
"""Parity, signalled/received target abort, received master abort, signalled SERR, detected parity (RW1C)."""
PCI_CLASS_REVISION = 0x08
PCI_REVISION_ID = 0x08
PCI_CLASS_DEVICE = 0x0A
PCI_CLASS_BRIDGE_PCI = 0x0604
PCI_CACHE_LINE_SIZE = 0x0C
PCI_LATENCY_TIMER = 0x0D
PCI_HEADER_TYPE = 0x0E
PCI_HEADER_TYPE_MASK = 0x7F
PCI_HEADER_TYPE_BRIDGE = 0x01
PCI_BASE_ADDRESS_0 = 0x10
PCI_SUBSYSTEM_VENDOR_ID = 0x2C
PCI_SUBSYSTEM_ID = 0x2E
PCI_CAPABILITY_LIST = 0x34
PCI_INTERRUPT_LINE = 0x3C
PCI_INTERRUPT_PIN = 0x3D
PCI_CONFIG_SIZE = 0x100
"""Conventional configuration space: capabilities live in the first 256 bytes."""
PCI_DEVICES_PER_BUS = 32
"""Device numbers 0 to 31 on one bus (a 5-bit field of the devfn, PCI Local Bus 3.0 §3.2.2.3.1)."""
PCI_STD_HEADER_SIZEOF = 0x40

# --- Type-1 (PCI-to-PCI bridge) header ---------------------------------------
PCI_PRIMARY_BUS = 0x18
PCI_SECONDARY_BUS = 0x19
PCI_SUBORDINATE_BUS = 0x1A
PCI_SEC_LATENCY_TIMER = 0x1B
PCI_IO_BASE = 0x1C
PCI_IO_LIMIT = 0x1D
PCI_SEC_STATUS = 0x1E
PCI_MEMORY_BASE = 0x20
PCI_MEMORY_LIMIT = 0x22
PCI_PREF_MEMORY_BASE = 0x24
PCI_PREF_MEMORY_LIMIT = 0x26
PCI_PREF_BASE_UPPER32 = 0x28
PCI_PREF_LIMIT_UPPER32 = 0x2C
PCI_IO_BASE_UPPER16 = 0x30
PCI_IO_LIMIT_UPPER16 = 0x32
PCI_ROM_ADDRESS1 = 0x38
PCI_BRIDGE_CONTROL = 0x3E
PCI_BRIDGE_CTL_BUS_RESET = 0x40
"""Secondary Bus Reset: a 0 -> 1 edge resets every function behind the bridge (the group reset, spec §7.9)."""
PCI_BRIDGE_CTL_DISCARD_STATUS = 0x0400

# --- Capability IDs -----------------------------------------------------------
PCI_CAP_ID_MSI = 0x05
PCI_CAP_ID_VNDR = 0x09
"""Vendor-specific capability (PCI Local Bus 3.0, Appendix H); the migration capability is one (spec §3)."""
PCI_CAP_ID_SLOTID = 0x04
PCI_CAP_ID_SHPC = 0x0C
PCI_CAP_ID_EXP = 0x10
PCI_CAP_ID_MSIX = 0x11
PCI_CAP_LIST_ID = 0
PCI_CAP_LIST_NEXT = 1
PCI_CAP_POINTER_MASK = 0xFC
"""Capability pointers address DWORDs: their two low bits are reserved and ignored (PCI Local Bus 3.0 §6.7)."""
PCI_CAP_LIST_MAX_ENTRIES = (PCI_CONFIG_SIZE - PCI_STD_HEADER_SIZEOF) // 4
"""48: as many DWORD-aligned capabilities as fit between the header and 0x100; a longer walk has looped."""

# --- MSI capability (64-bit address, per-vector masking) -----------------------
PCI_MSI_FLAGS = 0x02
PCI_MSI_FLAGS_ENABLE = 0x0001
PCI_MSI_FLAGS_QSIZE = 0x0070
PCI_MSI_FLAGS_64BIT = 0x0080
PCI_MSI_FLAGS_MASKBIT = 0x0100
PCI_MSI_ADDRESS_LO = 0x04
PCI_MSI_ADDRESS_HI = 0x08
PCI_MSI_DATA_64 = 0x0C
PCI_MSI_MASK_64 = 0x10
PCI_MSI_PENDING_64 = 0x14
PCI_MSI_64_MASKABLE_SIZEOF = 0x18

# --- MSI-X capability (PCI Local Bus 3.0 §6.8.2) -------------------------------
PCI_MSIX_FLAGS = 0x02
PCI_MSIX_FLAGS_MASKALL = 0x4000
"""Function Mask: every vector is masked; messages wait as pending."""
PCI_MSIX_FLAGS_ENABLE = 0x8000
"""MSI-X Enable: the function signals interrupts by MSI-X messages."""

# --- Slot ID and SHPC capabilities --------------------------------------------
PCI_SID_ESR = 0x02
PCI_SID_CHASSIS_NR = 0x03
PCI_SID_SIZEOF = 0x04
PCI_SHPC_DWORD_SELECT = 0x02
PCI_SHPC_PENDING = 0x03
PCI_SHPC_DWORD_DATA = 0x04
PCI_SHPC_SIZEOF = 0x08

# --- PCI Express capability (for a function's FLR and Transactions Pending) ---
PCI_EXP_DEVCTL = 0x08
PCI_EXP_DEVCTL_BCR_FLR = 0x8000
"""Initiate Function Level Reset (write 1; reads 0)."""
PCI_EXP_DEVSTA = 0x0A
PCI_EXP_DEVSTA_TRPND = 0x0020
"""Transactions Pending: non-posted requests of the function still await completion."""


@dataclass(frozen=True)
class MaskedRegister:
    """A register's write behaviour: ``size`` bytes at ``offset`` (from the header or capability start)."""

    name: str
    offset: int
    size: int
    wmask: int = 0
    w1cmask: int = 0

    @classmethod
    def read_write(cls, name: str, offset: int, size: int) -> MaskedRegister:
        """A register every bit of which takes a guest write."""
        return cls(name, offset, size, wmask=(1 << (8 * size)) - 1)


def _base_and_limit(
    name: str, base: int, limit: int, size: int, wmask: int | None = None
) -> tuple[MaskedRegister, ...]:
    """A bridge window's base and limit registers, which have the same format (PCI-to-PCI Bridge 1.2 §3.2.5).

    ``name`` has ``{}`` where ``base`` or ``limit`` goes; without ``wmask`` every bit takes a write.
    """
    registers = (
        MaskedRegister.read_write(name.format(part), offset, size)
        for part, offset in (("base", base), ("limit", limit))
    )
    return tuple(registers if wmask is None else (replace(register, wmask=wmask) for register in registers))


TYPE1_HEADER_MASKS: tuple[MaskedRegister, ...] = (
    MaskedRegister(
        "command",
        PCI_COMMAND,
        2,
        wmask=PCI_COMMAND_IO
        | PCI_COMMAND_MEMORY
        | PCI_COMMAND_MASTER
        | PCI_COMMAND_PARITY
        | PCI_COMMAND_SERR
        | PCI_COMMAND_INTX_DISABLE,
    ),
    MaskedRegister("status", PCI_STATUS, 2, w1cmask=PCI_STATUS_ERROR_BITS),
    MaskedRegister.read_write("cache_line_size", PCI_CACHE_LINE_SIZE, 1),
    MaskedRegister.read_write("latency_timer", PCI_LATENCY_TIMER, 1),
    # BAR 0: 64-bit memory BAR of 256 bytes (QEMU's SHPC register block).
    MaskedRegister("base_address_0", PCI_BASE_ADDRESS_0, 4, wmask=0xFFFFFF00),
    MaskedRegister.read_write("base_address_1", PCI_BASE_ADDRESS_0 + 4, 4),
    MaskedRegister.read_write("primary_bus", PCI_PRIMARY_BUS, 1),
    MaskedRegister.read_write("secondary_bus", PCI_SECONDARY_BUS, 1),
    MaskedRegister.read_write("subordinate_bus", PCI_SUBORDINATE_BUS, 1),
    MaskedRegister.read_write("sec_latency_timer", PCI_SEC_LATENCY_TIMER, 1),
    *_base_and_limit("io_{}", PCI_IO_BASE, PCI_IO_LIMIT, 1, wmask=0xF0),
    MaskedRegister("sec_status", PCI_SEC_STATUS, 2, w1cmask=PCI_STATUS_ERROR_BITS),
    *_base_and_limit("memory_{}", PCI_MEMORY_BASE, PCI_MEMORY_LIMIT, 2, wmask=0xFFF0),
    *_base_and_limit("pref_memory_{}", PCI_PREF_MEMORY_BASE, PCI_PREF_MEMORY_LIMIT, 2, wmask=0xFFF0),
    *_base_and_limit("pref_{}_upper32", PCI_PREF_BASE_UPPER32, PCI_PREF_LIMIT_UPPER32, 4),
    *_base_and_limit("io_{}_upper16", PCI_IO_BASE_UPPER16, PCI_IO_LIMIT_UPPER16, 2),
    MaskedRegister.read_write("interrupt_line", PCI_INTERRUPT_LINE, 1),
    MaskedRegister("bridge_control", PCI_BRIDGE_CONTROL, 2, wmask=0x0BFF, w1cmask=PCI_BRIDGE_CTL_DISCARD_STATUS),
)
"""Writable bits of a type-1 header as QEMU's PCI-to-PCI bridges model them (offsets from 0)."""

MSI_64_MASKABLE_MASKS: tuple[MaskedRegister, ...] = (
    MaskedRegister("msi_flags", PCI_MSI_FLAGS, 2, wmask=PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE),
    MaskedRegister("msi_address_lo", PCI_MSI_ADDRESS_LO, 4, wmask=0xFFFFFFFC),
    MaskedRegister.read_write("msi_address_hi", PCI_MSI_ADDRESS_HI, 4),
    MaskedRegister.read_write("msi_data", PCI_MSI_DATA_64, 2),
    MaskedRegister("msi_mask", PCI_MSI_MASK_64, 4, wmask=0x00000001),
)
"""Writable bits of a one-vector, 64-bit, maskable MSI capability (offsets from the capability)."""

SLOTID_MASKS: tuple[MaskedRegister, ...] = (MaskedRegister.read_write("chassis_nr", PCI_SID_CHASSIS_NR, 1),)
"""Writable bits of the Slot ID capability (offsets from the capability)."""

SHPC_MASKS: tuple[MaskedRegister, ...] = (MaskedRegister.read_write("dword_select", PCI_SHPC_DWORD_SELECT, 1),)
"""Writable bits of the SHPC capability's config-space window (offsets from the capability)."""


def place_masks(wmask: bytearray, w1cmask: bytearray, base: int, registers: tuple[MaskedRegister, ...]) -> None:
    """OR the masks of ``registers`` into per-byte ``wmask``/``w1cmask`` at ``base``."""
    for register in registers:
        write_bits = register.wmask.to_bytes(register.size, "little")
        clear_bits = register.w1cmask.to_bytes(register.size, "little")
        for index in range(register.size):
            wmask[base + register.offset + index] |= write_bits[index]
            w1cmask[base + register.offset + index] |= clear_bits[index]
