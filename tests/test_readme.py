"""The README's Python example runs as written, and prints what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vfmig_proto.config_space import format_lspci_dump
from vfmig_proto.spec_generation import qemu_bridge_with_capability

ROOT = Path(__file__).resolve().parents[1]

PRINTED_COMMENT = re.compile(r"^print\(.*\)  # (?P<printed>.+)$", flags=re.MULTILINE)
"""A ``print(...)`` line whose comment is what it prints."""


def test_readme_python_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks, "the README has no Python example"
    config, title = qemu_bridge_with_capability(ROOT / "spec")
    (tmp_path / "bridge.lspci").write_text(format_lspci_dump(config, title))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    promised: list[str] = []
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
        promised += PRINTED_COMMENT.findall(block)
    assert namespace["offset"] == 0x64
    assert promised, "the README shows what its example prints"
    assert capsys.readouterr().out.splitlines() == promised
