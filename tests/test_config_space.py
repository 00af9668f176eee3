"""Finding the capability in a whole config space, lspci's dump format, and real lspci as a peer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import vfmig_proto as vfm
from vfmig_proto.config_space import (
    CapabilityLoopError,
    CapabilityPointerError,
    capabilities,
    find_migration_capability,
    format_lspci_dump,
    migration_capability,
    parse_lspci_dump,
    walk_capabilities,
)
from vfmig_proto.spec_generation import QEMU_BRIDGE_DUMP, qemu_bridge_with_capability

SPEC_DIR = Path(__file__).resolve().parents[1] / "spec"
LSPCI = shutil.which("lspci")


@pytest.fixture
def qemu_bridge() -> bytes:
    return parse_lspci_dump((SPEC_DIR / QEMU_BRIDGE_DUMP).read_text())


@pytest.fixture
def migration_bridge() -> bytes:
    return qemu_bridge_with_capability(SPEC_DIR)[0]


def test_the_qemu_dump_is_qemus_pci_bridge(qemu_bridge: bytes) -> None:
    assert len(qemu_bridge) == 256
    assert qemu_bridge[:4] == bytes([0x36, 0x1B, 0x01, 0x00])  # 1b36:0001
    assert list(capabilities(qemu_bridge)) == [(0x4C, 0x05), (0x48, 0x04), (0x40, 0x0C)]
    assert find_migration_capability(qemu_bridge) is None


def test_the_migration_bridge_links_the_capability_first(migration_bridge: bytes) -> None:
    assert list(capabilities(migration_bridge)) == [(0x64, 0x09), (0x4C, 0x05), (0x48, 0x04), (0x40, 0x0C)]
    offset, view = migration_capability(migration_bridge)
    assert offset == 0x64
    assert view.cap_next == 0x4C
    assert view.devices[0].dev_state is vfm.DevState.UNBOUND
    assert offset + view.cap_len <= 0x100


def test_another_vendors_capability_is_not_taken_for_ours(migration_bridge: bytes) -> None:
    config = bytearray(migration_bridge)
    config[0x64 + 4] ^= 0xFF  # signature
    assert find_migration_capability(bytes(config)) is None
    with pytest.raises(vfm.DecodeError, match="no vfmig migration capability"):
        migration_capability(bytes(config))


def test_qemus_resource_reserve_capability_is_not_taken_for_ours(migration_bridge: bytes) -> None:
    # QEMU's bridges carry a vendor capability with type byte 1 for firmware (hw/pci/pci_bridge.c).
    config = bytearray(migration_bridge)
    config[0x64 + 3] = 0x01
    assert find_migration_capability(bytes(config)) is None
    with pytest.raises(vfm.DecodeError, match="cfg_type"):
        vfm.decode_capability(bytes(config[0x64 : 0x64 + 0x40]))


def test_a_looping_list_is_an_error(migration_bridge: bytes) -> None:
    config = bytearray(migration_bridge)
    config[0x40 + 1] = 0x64  # SHPC's next pointer back to the head
    with pytest.raises(vfm.DecodeError, match="loops"):
        list(capabilities(bytes(config)))


def test_a_loop_names_the_pointer_and_keeps_what_was_walked(migration_bridge: bytes) -> None:
    config = bytearray(migration_bridge)
    config[0x40 + 1] = 0x4C  # SHPC, the last, points back to MSI
    with pytest.raises(CapabilityLoopError, match="pointer at 0x41 points back to 0x4c") as caught:
        list(capabilities(bytes(config)))
    assert (caught.value.pointer_at, caught.value.pointer, caught.value.offset) == (0x41, 0x4C, 0x41)
    assert caught.value.walked == ((0x64, 0x09), (0x4C, 0x05), (0x48, 0x04), (0x40, 0x0C))


def test_a_capability_that_points_to_itself_is_a_loop(migration_bridge: bytes) -> None:
    config = bytearray(migration_bridge)
    config[0x48 + 1] = 0x48
    with pytest.raises(CapabilityLoopError) as caught:
        list(capabilities(bytes(config)))
    assert caught.value.walked == ((0x64, 0x09), (0x4C, 0x05), (0x48, 0x04))


class _Reads:
    """Config reads of ``config``, recorded as ``(offset, width)``: what a guest would issue."""

    def __init__(self, config: bytes) -> None:
        self.config = config
        self.log: list[tuple[int, int]] = []

    def __call__(self, offset: int, width: int) -> int:
        self.log.append((offset, width))
        return int.from_bytes(self.config[offset : offset + width], "little")


def test_walking_by_config_reads_finds_what_the_bytes_hold(migration_bridge: bytes) -> None:
    reads = _Reads(migration_bridge)
    assert list(walk_capabilities(reads)) == list(capabilities(migration_bridge))
    assert reads.log[:2] == [(0x06, 2), (0x34, 1)]  # Status, then the Capabilities Pointer
    assert all(width == 1 for _, width in reads.log[1:])


def test_a_walk_stops_reading_when_its_caller_has_found_what_it_wanted(migration_bridge: bytes) -> None:
    reads = _Reads(migration_bridge)
    assert next(walk_capabilities(reads)) == (0x64, 0x09)
    assert reads.log == [(0x06, 2), (0x34, 1), (0x64, 1)]


def test_without_the_capabilities_list_bit_there_is_no_list(migration_bridge: bytes) -> None:
    config = bytearray(migration_bridge)
    config[0x06] &= ~0x10
    assert list(capabilities(bytes(config))) == []


def test_pointer_low_bits_are_ignored(migration_bridge: bytes) -> None:
    config = bytearray(migration_bridge)
    config[0x34] |= 0x03
    assert next(capabilities(bytes(config))) == (0x64, 0x09)


def test_dump_format_round_trips(migration_bridge: bytes) -> None:
    text = format_lspci_dump(migration_bridge, "00:03.0 PCI bridge: test")
    assert parse_lspci_dump(text) == migration_bridge
    assert parse_lspci_dump(format_lspci_dump(migration_bridge[:64], "x")) == migration_bridge[:64]


@pytest.mark.parametrize("text", ["", "title only\n", "00: 00 01\n20: 00\n"])
def test_malformed_dumps_are_refused(text: str) -> None:
    with pytest.raises(vfm.DumpError):
        parse_lspci_dump(text)


@pytest.mark.skipif(LSPCI is None, reason="lspci (Debian package pciutils) is not installed")
def test_real_lspci_decodes_the_migration_bridge(tmp_path: Path, migration_bridge: bytes) -> None:
    assert LSPCI is not None
    dump = tmp_path / "bridge.lspci"
    dump.write_text(format_lspci_dump(migration_bridge, "00:03.0 PCI bridge: Red Hat, Inc. QEMU PCI-PCI bridge"))
    result = subprocess.run([LSPCI, "-F", str(dump), "-vvv"], capture_output=True, text=True, check=True)
    lines = [line.strip() for line in result.stdout.splitlines() if "Capabilities:" in line]
    assert lines == [
        "Capabilities: [64] Vendor Specific Information: Len=40 <?>",
        "Capabilities: [4c] MSI: Enable- Count=1/1 Maskable+ 64bit+",
        "Capabilities: [48] Slot ID: 0 slots, First+, chassis 01",
        "Capabilities: [40] Hot-plug capable",
    ]


# ---------------------------------------------------------------------------------------------------------------
# One rule for 256- and 4096-byte dumps: capabilities live in the first 256 bytes.


def _with_capability_at(qemu_bridge: bytes, offset: int, size: int) -> bytes:
    """QEMU's bridge of ``size`` bytes with an 8-slot migration capability linked first at ``offset``.

    Bytes of the capability past ``size`` are cut off, as a short dump would.
    """
    capability = vfm.reset_value(vfm.CapabilityParams(num_slots=8, next_pointer=qemu_bridge[0x34]))
    config = bytearray(qemu_bridge.ljust(max(size, offset + len(capability)), b"\0"))
    config[offset : offset + len(capability)] = capability
    config[0x34] = offset
    return bytes(config[:size])


@pytest.mark.parametrize("size", [256, 4096])
def test_a_capability_that_ends_at_0xff_is_accepted(qemu_bridge: bytes, size: int) -> None:
    config = _with_capability_at(qemu_bridge, 0xC0, size)
    offset, view = migration_capability(config)
    assert (offset, view.cap_len) == (0xC0, 0x40)


@pytest.mark.parametrize("size", [256, 4096])
def test_a_capability_that_runs_past_0xff_is_refused_in_any_dump(qemu_bridge: bytes, size: int) -> None:
    config = _with_capability_at(qemu_bridge, 0xE0, size)
    assert find_migration_capability(config) == 0xE0
    with pytest.raises(vfm.DecodeError, match=r"at 0xe0 is 64 bytes long and would end at 0x11f") as caught:
        migration_capability(config)
    assert caught.value.field == "cap_len"


@pytest.mark.parametrize("size", [256, 4096])
def test_a_vendor_capability_whose_signature_would_pass_0xff_is_not_ours(qemu_bridge: bytes, size: int) -> None:
    # ID, next, length and type fit below 0x100; the signature would be at 0x100, in extended space.
    config = _with_capability_at(qemu_bridge, 0xFC, size)
    assert next(offset for offset, _ in capabilities(config)) == 0xFC
    assert find_migration_capability(config) is None


@pytest.mark.parametrize(
    ("pointer", "problem"),
    [(0x20, "pointer at 0x34 points into the standard header"), (0x80, "past the 64 bytes of config space given")],
)
def test_bad_list_pointers_name_where_they_are(qemu_bridge: bytes, pointer: int, problem: str) -> None:
    config = bytearray(qemu_bridge[:64])
    config[0x34] = pointer
    with pytest.raises(CapabilityPointerError, match=problem) as caught:
        list(capabilities(bytes(config)))
    assert (caught.value.pointer_at, caught.value.pointer, caught.value.walked) == (0x34, pointer, ())
    assert isinstance(caught.value, vfm.DecodeError)  # code that caught DecodeError for a broken list still does
