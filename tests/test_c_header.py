"""The generated C header compiles, and a C compiler reads the layout's values out of it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.cli import main
from vfmig_proto.c_header import c_header
from vfmig_proto.layout import DEVICE_REGISTERS, HEADER_REGISTERS, VFM_SIGNATURE, Access
from vfmig_proto.states import DevState, DriverReport, MigReason, MigState

COMPILER = shutil.which("cc") or shutil.which("gcc")


def _expected_values() -> dict[str, int]:
    """What each macro must be, computed from the layout without the generator."""
    expected = {"VFM_SIGNATURE_VALUE": VFM_SIGNATURE, "VFM_CAP_LENGTH(8)": 0x40, "VFM_SLOT(3)": 0x2C}
    for register in (*HEADER_REGISTERS, *DEVICE_REGISTERS):
        expected[f"VFM_{register.name.upper()}"] = register.offset
        if len(register.fields) > 1:
            for fld in register.fields:
                if fld.access not in (Access.RSVDP, Access.RSVDZ) and fld.name != "reserved":
                    expected[f"VFM_{register.name.upper()}_{fld.name.upper()}"] = fld.mask
    for prefix, enum in (("MIG_STATE", MigState), ("MIG_REASON", MigReason), ("DEV_STATE", DevState)):
        expected.update({f"VFM_{prefix}_{m.name}": m.value for m in enum})
    expected.update({f"VFM_DRV_STATE_{m.name}": m.value for m in DriverReport})
    return expected


def test_every_object_macro_is_defined_once() -> None:
    names = re.findall(r"^#define (\w+)\s", c_header(), flags=re.MULTILINE)
    assert len(names) == len(set(names))
    assert set(_expected_values()) - {"VFM_CAP_LENGTH(8)", "VFM_SLOT(3)"} <= set(names)


@pytest.mark.skipif(COMPILER is None, reason="no C compiler on this machine")
def test_a_c_compiler_reads_the_layout_values(tmp_path: Path) -> None:
    assert COMPILER is not None
    (tmp_path / "vfmig_regs.h").write_text(c_header())
    expected = _expected_values()
    prints = "\n".join(f'    printf("%s %llu\\n", "{name}", (unsigned long long)({name}));' for name in expected)
    (tmp_path / "check.c").write_text(
        f'#include <stdio.h>\n#include "vfmig_regs.h"\nint main(void) {{\n{prints}\n    return 0;\n}}\n'
    )
    subprocess.run(
        [COMPILER, "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", str(tmp_path / "check"), str(tmp_path / "check.c")],
        check=True,
        capture_output=True,
    )
    output = subprocess.run([str(tmp_path / "check")], check=True, capture_output=True, text=True).stdout
    seen = {name: int(value) for name, value in (line.rsplit(" ", 1) for line in output.splitlines())}
    assert seen == expected


def test_cli_writes_the_header(tmp_path: Path) -> None:
    target = tmp_path / "out.h"
    assert main(["c-header", "-o", str(target)]) == 0
    assert target.read_text() == c_header()
