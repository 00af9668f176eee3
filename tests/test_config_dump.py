"""``vfmig config-dump`` and the snapshots behind it, decoded by vfmig_proto and by pciutils' own ``lspci``."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest

from conformance.cli import EXIT_OK, main
from reference_impl.snapshots import BOOTED, MIGRATION_POINTS, POINTS, RESET, bridge_config_at
from vfmig_proto.codec import reset_value, with_field
from vfmig_proto.config_space import capabilities, migration_capability, parse_lspci_dump
from vfmig_proto.layout import CapabilityParams, capability_length
from vfmig_proto.pci import PCI_CAP_ID_MSI, PCI_CAP_ID_SHPC, PCI_CAP_ID_SLOTID, PCI_CAP_ID_VNDR
from vfmig_proto.states import DevState, MigEvent, MigReason, MigState
from vfmig_proto.transitions import SETTLED_STATES

QEMU_DUMP = Path(__file__).resolve().parents[1] / "spec" / "data" / "qemu-7.2-pci-bridge.lspci"
VFS = 2
SLOTS = 8

_EMPTY = frozenset({DevState.EMPTY})
PLAUSIBLE: dict[str, frozenset[DevState]] = {
    # States a slot with a function can be in at each point; slots without one are EMPTY.
    RESET: frozenset({DevState.UNBOUND}),
    BOOTED: SETTLED_STATES[MigEvent.ALL_RESUMED] - _EMPTY,
    "PREPARE": frozenset({DevState.DIRTY_REQ, DevState.DIRTYING}),
    "PRECOPY": SETTLED_STATES[MigEvent.ALL_DIRTYING] - _EMPTY,
    "PAUSING": frozenset({DevState.PAUSE_REQ, DevState.PAUSED}),
    "STOPPED": SETTLED_STATES[MigEvent.ALL_PAUSED] - _EMPTY,
    "RESUMING": frozenset({DevState.RESUME_REQ, DevState.READY}),
    "ARRIVED": frozenset({DevState.REINIT_REQ, DevState.READY}),
    "IDLE": SETTLED_STATES[MigEvent.ALL_REINITIALISED] - _EMPTY,
}
REASON: dict[str, MigReason] = {
    RESET: MigReason.NONE,
    BOOTED: MigReason.NONE,
    "PREPARE": MigReason.NONE,
    "PRECOPY": MigReason.NONE,
    "PAUSING": MigReason.NONE,
    "STOPPED": MigReason.NONE,
    "RESUMING": MigReason.CANCELLED,  # the snapshot cancels once every function is paused
    "ARRIVED": MigReason.COMPLETED,
    "IDLE": MigReason.COMPLETED,  # back to IDLE on the destination
}
LSPCI_NAMES = {
    PCI_CAP_ID_VNDR: "Vendor Specific Information",
    PCI_CAP_ID_MSI: "MSI",
    PCI_CAP_ID_SLOTID: "Slot ID",
    PCI_CAP_ID_SHPC: "Hot-plug capable",
}
"""How pciutils names each capability of the bridge."""
WINDOW_LINES = (
    "Region 0:",
    "Bus:",
    "I/O behind bridge:",
    "Memory behind bridge:",
    "Prefetchable memory behind bridge:",
)


def test_tables_cover_every_point() -> None:
    assert set(PLAUSIBLE) == set(POINTS) == set(REASON)


@cache
def _config_at(point: str) -> bytes:
    return bridge_config_at(point, vfs=VFS, num_slots=SLOTS)


@pytest.mark.parametrize("point", POINTS)
def test_the_capability_at_each_point(point: str) -> None:
    config = _config_at(point)
    assert len(config) == 256
    offset, capability = migration_capability(config)  # strict decoding: a valid capability
    expected_state = MigState.IDLE if point in (RESET, BOOTED) else MigState[point]
    assert capability.mig_state is expected_state
    assert capability.mig_reason is REASON[point], "VFM-MIG-009"
    assert capability.generation == (0 if point in (RESET, BOOTED) else 1), "VFM-MIG-002: one START"
    assert capability.num_slots == SLOTS
    states = [entry.dev_state for entry in capability.devices]
    assert set(states[VFS:]) == {DevState.EMPTY}, "slots without a function are EMPTY"
    assert set(states[:VFS]) <= PLAUSIBLE[point], f"{point}: slot states {[s.name for s in states]}"
    if point == "ARRIVED":
        assert all(entry.dev_status.migrated for entry in capability.devices[:VFS]), "VFM-FLAG-001"
    if point in MIGRATION_POINTS[:-1]:
        assert capability.status.event, "VFM-NOTIF-001: the step into a new MIG_STATE sets STATUS.EVENT"
    assert offset == 0x64


def test_reset_dump_holds_the_reset_value() -> None:
    config = _config_at(RESET)
    offset, capability = migration_capability(config)
    expected = reset_value(replace(CapabilityParams(num_slots=SLOTS), next_pointer=capability.cap_next))
    for slot in range(VFS):
        expected = with_field(expected, f"device[{slot}].dev_state", DevState.UNBOUND)
    assert config[offset : offset + capability.cap_len] == expected, "VFM-CAP-006"


def test_config_dump_prints_the_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-dump", "--at", "STOPPED"]) == EXIT_OK
    assert parse_lspci_dump(capsys.readouterr().out) == _config_at("STOPPED")
    assert main(["config-dump", "--at", BOOTED, "--short"]) == EXIT_OK
    assert parse_lspci_dump(capsys.readouterr().out) == _config_at(BOOTED)[:64]


# ---------------------------------------------------------------------------------------------------------------
# pciutils decodes what we print


@pytest.fixture(scope="module")
def lspci() -> str:
    path = shutil.which("lspci")
    if path is None:
        pytest.skip("lspci not found: install pciutils (Debian/Ubuntu: apt-get install pciutils) to run these tests")
    return path


def _decode(lspci: str, dump: Path) -> str:
    result = subprocess.run([lspci, "-F", str(dump), "-vvv"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _dump(tmp_path: Path, *args: str) -> Path:
    output = tmp_path / f"dump{len(list(tmp_path.iterdir()))}.txt"
    assert main(["config-dump", *args, "-o", str(output)]) == EXIT_OK
    return output


def _lines(text: str, prefixes: tuple[str, ...]) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefixes)]


@pytest.mark.parametrize("point", [RESET, BOOTED, "STOPPED"])
def test_lspci_decodes_the_capability_list(lspci: str, tmp_path: Path, point: str) -> None:
    text = _decode(lspci, _dump(tmp_path, "--at", point))
    config = _config_at(point)
    expected = [f"Capabilities: [{offset:02x}] {LSPCI_NAMES[cap_id]}" for offset, cap_id in capabilities(config)]
    found = _lines(text, ("Capabilities:",))
    assert len(found) == len(expected) == 4
    for line, prefix in zip(found, expected, strict=True):
        assert line.startswith(prefix), f"lspci: {line!r}, expected {prefix!r}"
    assert f"Vendor Specific Information: Len={capability_length(SLOTS):02x}" in found[0]


def test_lspci_sees_the_firmwares_bus_numbers_and_windows(lspci: str, tmp_path: Path) -> None:
    ours = _decode(lspci, _dump(tmp_path, "--at", BOOTED))
    qemu = _decode(lspci, QEMU_DUMP)
    assert "Bus: primary=00, secondary=01, subordinate=01" in ours
    assert _lines(ours, WINDOW_LINES) == _lines(qemu, WINDOW_LINES), "as QEMU 7.2 after SeaBIOS"
    assert len(_lines(ours, WINDOW_LINES)) == len(WINDOW_LINES)
    reset = _decode(lspci, _dump(tmp_path, "--at", RESET))
    assert "Bus: primary=00, secondary=00, subordinate=00" in reset, "no bus numbers before the firmware ran"


@pytest.mark.parametrize("point", [RESET, BOOTED, "STOPPED"])
def test_slots_option_sets_the_capability_length(lspci: str, tmp_path: Path, point: str) -> None:
    text = _decode(lspci, _dump(tmp_path, "--at", point, "--slots", "4"))
    wanted = f"Capabilities: [64] Vendor Specific Information: Len={capability_length(4):02x}"
    seen = _lines(text, ("Capabilities: [64]",))
    assert wanted in text, (
        f"config-dump --at {point} --slots 4: NUM_SLOTS 4 makes CAP_LEN 0x20 + 4 x 4 = 0x30 (VFM-CAP-005), "
        f"lspci: {seen}"
    )


@pytest.mark.parametrize("point", POINTS)
def test_snapshots_honour_num_slots(point: str) -> None:
    _, capability = migration_capability(bridge_config_at(point, vfs=VFS, num_slots=4))
    assert (capability.num_slots, capability.cap_len) == (4, capability_length(4)), (
        f"bridge_config_at({point!r}, num_slots=4) must present a 4-slot capability (VFM-CAP-005), "
        f"not {capability.num_slots} slots"
    )
