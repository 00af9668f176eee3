"""vfmig_proto.registers: generated from the layout, up to date, and the same names and values as the C header."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from vfmig_proto import registers
from vfmig_proto.c_header import REGENERATE_PYTHON, c_header, main, python_module
from vfmig_proto.layout import (
    DEVICE_REGISTERS,
    HEADER_REGISTERS,
    VFM_HEADER_SIZE,
    VFM_SIGNATURE,
    VFM_SLOT_ENTRY_SIZE,
    VFM_VERSION_MAJOR,
)
from vfmig_proto.pci import PCI_CAP_ID_VNDR
from vfmig_proto.states import MigState

REGISTERS_PY = Path(registers.__file__)
ROOT = Path(__file__).resolve().parents[1]


def _module_constants() -> dict[str, int]:
    return {name: value for name, value in vars(registers).items() if name.startswith("VFM_")}


def test_the_checked_in_module_is_what_the_layout_generates() -> None:
    assert REGISTERS_PY.read_text(encoding="utf-8") == python_module(), (
        f"vfmig_proto/registers.py is out of date with the layout; regenerate it with `{REGENERATE_PYTHON}`"
    )


def test_offsets_and_masks_come_from_the_layout() -> None:
    constants = _module_constants()
    for register in (*HEADER_REGISTERS, *DEVICE_REGISTERS):
        assert constants[f"VFM_{register.name.upper()}"] == register.offset
        if len(register.fields) > 1:
            for fld in register.fields:
                if not fld.is_reserved:
                    assert constants[f"VFM_{register.name.upper()}_{fld.name.upper()}"] == fld.mask
    assert registers.VFM_DEV_CTRL_DRV_STATE_SHIFT == 0
    assert (registers.VFM_HEADER_SIZE, registers.VFM_SLOT_ENTRY_SIZE) == (VFM_HEADER_SIZE, VFM_SLOT_ENTRY_SIZE)
    assert registers.VFM_SIGNATURE_VALUE == VFM_SIGNATURE
    assert registers.VFM_PROTOCOL_MAJOR == VFM_VERSION_MAJOR
    assert registers.VFM_CAP_ID_VNDR == PCI_CAP_ID_VNDR
    assert registers.VFM_MIG_STATE_STOPPED == MigState.STOPPED


def test_python_and_c_define_the_same_numbers() -> None:
    defines = re.findall(r"^#define (VFM_\w+)\s+(0x[0-9a-f]+|\d+)U?\b", c_header(), flags=re.MULTILINE)
    assert {name: int(value, 0) for name, value in defines} == _module_constants()


def test_the_module_entry_point_writes_the_module(tmp_path: Path) -> None:
    target = tmp_path / "registers.py"
    assert main(["--python", "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == python_module()


def test_the_regenerate_command_runs_as_written(tmp_path: Path) -> None:
    command = REGENERATE_PYTHON.split()
    assert command[:3] == ["python", "-m", "vfmig_proto.c_header"]
    output = subprocess.run(
        [sys.executable, *command[1:-1], str(tmp_path / "registers.py")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    assert output.stderr == ""
    assert (tmp_path / "registers.py").read_text(encoding="utf-8") == python_module()
