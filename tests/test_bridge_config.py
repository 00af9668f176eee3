"""The bridge's type-1 header and capability list, against QEMU 7.2's pci-bridge (spec §3.1, the brief)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.bridge import MigrationBridge
from reference_impl.clock import SimClock
from reference_impl.events import EventBus
from reference_impl.guest import firmware_setup
from vfmig_proto import pci
from vfmig_proto.access import WRITE_WIDTHS, apply_write_byte
from vfmig_proto.config_space import capabilities, find_migration_capability, migration_capability, parse_lspci_dump
from vfmig_proto.layout import CapabilityParams
from vfmig_proto.pci import MaskedRegister

QEMU_DUMP = Path(__file__).resolve().parents[1] / "spec" / "data" / "qemu-7.2-pci-bridge.lspci"
MIGRATION_CAP_OFFSET = 0x64
"""VFM-CAP-003: the capability sits at 0x64 and is linked first."""


def _qemu() -> bytes:
    return parse_lspci_dump(QEMU_DUMP.read_text(encoding="utf-8"))


def _booted(num_slots: int = 8) -> MigrationBridge:
    bridge = MigrationBridge(EventBus(SimClock()), CapabilityParams(num_slots=num_slots))
    firmware_setup(bridge)
    return bridge


def test_header_after_firmware_equals_qemus_dump() -> None:
    qemu = _qemu()
    bridge = _booted()
    differing = [
        f"0x{offset:02x}: ours 0x{bridge.config[offset]:02x}, QEMU 0x{qemu[offset]:02x}"
        for offset in range(MIGRATION_CAP_OFFSET)
        if bridge.config[offset] != qemu[offset]
    ]
    assert differing == [f"0x{pci.PCI_CAPABILITY_LIST:02x}: ours 0x64, QEMU 0x4c"], (
        "the bridge is QEMU 7.2's pci-bridge plus one capability: only the Capabilities Pointer differs"
    )


@pytest.mark.parametrize("num_slots", [1, 8, 31])
def test_capability_list(num_slots: int) -> None:
    config = bytes(_booted(num_slots).config)
    qemu_list = list(capabilities(_qemu()))
    assert [cap_id for _, cap_id in qemu_list] == [pci.PCI_CAP_ID_MSI, pci.PCI_CAP_ID_SLOTID, pci.PCI_CAP_ID_SHPC]
    assert list(capabilities(config)) == [(MIGRATION_CAP_OFFSET, pci.PCI_CAP_ID_VNDR), *qemu_list], (
        "VFM-CAP-003: 0x64 -> MSI 0x4C -> Slot ID 0x48 -> SHPC 0x40"
    )
    assert find_migration_capability(config) == MIGRATION_CAP_OFFSET, "VFM-CAP-001"
    offset, capability = migration_capability(config)
    assert capability.cap_next == qemu_list[0][0]
    assert capability.num_slots == num_slots
    assert offset + capability.cap_len <= len(config), "VFM-CAP-002: the capability ends below 0x100"


@pytest.mark.parametrize(
    ("name", "offset", "width"),
    [
        ("vendor ID", pci.PCI_VENDOR_ID, 2),
        ("device ID", pci.PCI_DEVICE_ID, 2),
        ("revision and class", pci.PCI_CLASS_REVISION, 4),
        ("header type", pci.PCI_HEADER_TYPE, 1),
        ("capability pointer", pci.PCI_CAPABILITY_LIST, 1),
        ("interrupt pin", pci.PCI_INTERRUPT_PIN, 1),
    ],
)
def test_read_only_header_registers_ignore_writes(name: str, offset: int, width: int) -> None:
    bridge = _booted()
    before = bytes(bridge.config)
    bridge.config_write(offset, width, (1 << (8 * width)) - 1)
    assert bytes(bridge.config) == before, f"the {name} is read-only"


@pytest.mark.parametrize(("name", "offset"), [("Status", pci.PCI_STATUS), ("Secondary Status", pci.PCI_SEC_STATUS)])
def test_status_error_bits_are_write_1_to_clear(name: str, offset: int) -> None:
    bridge = _booted()
    value = int.from_bytes(bridge.config[offset : offset + 2], "little")
    # The hardware sets them.
    bridge.config[offset : offset + 2] = (value | pci.PCI_STATUS_ERROR_BITS).to_bytes(2, "little")
    bridge.config_write(offset, 2, 0)
    assert int.from_bytes(bridge.config[offset : offset + 2], "little") == value | pci.PCI_STATUS_ERROR_BITS, (
        f"{name}: writing 0 leaves RW1C bits alone"
    )
    bridge.config_write(offset, 2, 0xFFFF)
    assert int.from_bytes(bridge.config[offset : offset + 2], "little") == value, (
        f"{name}: writing 1 clears the error bits and nothing else"
    )
    if offset == pci.PCI_STATUS:
        assert value & pci.PCI_STATUS_CAP_LIST, "Capabilities List stays set"


def _masks(registers: list[tuple[int, tuple[MaskedRegister, ...]]]) -> tuple[bytes, bytes]:
    wmask = bytearray(MIGRATION_CAP_OFFSET)
    w1cmask = bytearray(MIGRATION_CAP_OFFSET)
    for base, group in registers:
        pci.place_masks(wmask, w1cmask, base, group)
    return bytes(wmask), bytes(w1cmask)


def _qemu_masks() -> tuple[bytes, bytes]:
    where = {cap_id: offset for offset, cap_id in capabilities(_qemu())}
    return _masks(
        [
            (0, pci.TYPE1_HEADER_MASKS),
            (where[pci.PCI_CAP_ID_SHPC], pci.SHPC_MASKS),
            (where[pci.PCI_CAP_ID_SLOTID], pci.SLOTID_MASKS),
            (where[pci.PCI_CAP_ID_MSI], pci.MSI_64_MASKABLE_MASKS),
        ]
    )


_WMASK, _W1CMASK = _qemu_masks()
_LEGAL = [(offset, width) for width in WRITE_WIDTHS for offset in range(0, MIGRATION_CAP_OFFSET, width)]


@settings(max_examples=150)
@given(write=st.sampled_from(_LEGAL), data=st.data())
def test_header_and_qemu_capabilities_follow_their_masks(write: tuple[int, int], data: st.DataObject) -> None:
    offset, width = write
    value = data.draw(st.integers(0, (1 << (8 * width)) - 1), label="value")
    if offset <= pci.PCI_BRIDGE_CONTROL < offset + width:  # a group reset: test_bridge.py covers it
        value &= ~(pci.PCI_BRIDGE_CTL_BUS_RESET << (8 * (pci.PCI_BRIDGE_CONTROL - offset)))
    bridge = _booted()
    before = bytes(bridge.config)
    bridge.config_write(offset, width, value)
    expected = bytearray(before)
    for index, byte in enumerate(value.to_bytes(width, "little")):
        position = offset + index
        expected[position] = apply_write_byte(before[position], byte, _WMASK[position], _W1CMASK[position])
    assert bytes(bridge.config) == bytes(expected), (
        f"a {width}-byte write of 0x{value:x} at 0x{offset:02x} follows the type-1/MSI/Slot ID/SHPC masks"
    )
