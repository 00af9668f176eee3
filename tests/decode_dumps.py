"""Dumps for the decode tests: a small machine in lspci's text format, built from parts we know.

The migration bridge is the reference implementation's, the plain bridge is
QEMU 7.2's as read from a running QEMU (spec/data), and the endpoint and the
PCI Express root port are made here, byte by byte, with the capabilities such
devices carry; the root port is a 4096-byte dump (``lspci -xxxx``).
"""

from __future__ import annotations

from pathlib import Path

from reference_impl.snapshots import bridge_config_at
from vfmig_proto.config_space import format_lspci_dump
from vfmig_proto.pci import PCI_CAP_ID_EXP, PCI_CAP_ID_VNDR, PCI_CAPABILITY_LIST, PCI_STATUS, PCI_STATUS_CAP_LIST

QEMU_DUMP = Path(__file__).resolve().parents[1] / "spec" / "data" / "qemu-7.2-pci-bridge.lspci"

MIGRATION_BRIDGE_TITLE = "00:03.0 PCI bridge: Red Hat, Inc. QEMU PCI-PCI bridge (vfmig migration bridge)"
PLAIN_BRIDGE_TITLE = "00:04.0 PCI bridge: Red Hat, Inc. QEMU PCI-PCI bridge"
ENDPOINT_TITLE = "01:01.0 Ethernet controller: Red Hat, Inc. Virtio network device"
ROOT_PORT_TITLE = "0001:00:1c.0 PCI bridge: Red Hat, Inc. QEMU PCIe Root port"

ENDPOINT_DETAILS = (
    "\tSubsystem: Red Hat, Inc. Device 0001\n"
    "\tControl: I/O+ Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR+ FastB2B- DisINTx+\n"
    "\tCapabilities: [40] Vendor Specific Information: VirtIO: CommonCfg\n"
    "\t\tBAR=4 offset=00000000 size=00001000\n"
    "\tKernel driver in use: virtio-pci\n"
)
"""What ``lspci -vvv -xxx`` prints between a function's title and its hex rows: decode skips it."""


def migration_bridge() -> bytes:
    """The reference bridge's 256 bytes while both of its functions are paused (STOPPED)."""
    return bridge_config_at("STOPPED", vfs=2, num_slots=8)


def plain_bridge() -> bytes:
    """QEMU 7.2's pci-bridge: MSI, Slot ID and SHPC, no migration capability."""
    rows = [line for line in QEMU_DUMP.read_text(encoding="utf-8").splitlines()[1:] if line]
    return bytes(int(byte, 16) for row in rows for byte in row.split(":", 1)[1].split())


def endpoint() -> bytes:
    """A virtio-net function: virtio's own vendor capabilities (type bytes 1 and 4), not ours."""
    config = bytearray(256)
    config[0:4] = bytes([0xF4, 0x1A, 0x41, 0x10])  # 1af4:1041
    config[PCI_STATUS] = PCI_STATUS_CAP_LIST
    config[0x0A:0x0C] = bytes([0x00, 0x02])  # Ethernet controller
    config[PCI_CAPABILITY_LIST] = 0x40
    config[0x40:0x44] = bytes([PCI_CAP_ID_VNDR, 0x50, 0x10, 0x01])  # virtio common config
    config[0x50:0x54] = bytes([PCI_CAP_ID_VNDR, 0x00, 0x10, 0x04])  # virtio device config
    return bytes(config)


def root_port() -> bytes:
    """A PCI Express root port in 4096 bytes, with an extended capability at 0x100."""
    config = bytearray(4096)
    config[0:4] = bytes([0x36, 0x1B, 0x0C, 0x00])  # 1b36:000c
    config[PCI_STATUS] = PCI_STATUS_CAP_LIST
    config[0x0A:0x0C] = bytes([0x04, 0x06])  # PCI-to-PCI bridge
    config[0x0E] = 0x01
    config[PCI_CAPABILITY_LIST] = 0x40
    config[0x40:0x44] = bytes([PCI_CAP_ID_EXP, 0x00, 0x42, 0x00])  # PCI Express v2, root port
    config[0x100:0x104] = bytes([0x01, 0x00, 0x02, 0x00])  # AER, the only extended capability
    return bytes(config)


def machine_dump() -> str:
    """Four functions as ``lspci -vvv -xxxx`` prints a machine: a title line, details, rows, a blank line."""
    parts = [
        format_lspci_dump(migration_bridge(), MIGRATION_BRIDGE_TITLE),
        format_lspci_dump(plain_bridge(), PLAIN_BRIDGE_TITLE),
        format_lspci_dump(endpoint(), ENDPOINT_TITLE).replace("\n", "\n" + ENDPOINT_DETAILS, 1),
        format_lspci_dump(root_port(), ROOT_PORT_TITLE),
    ]
    return "\n".join(parts)
