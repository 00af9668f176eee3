"""Which spec ``vfmig`` reads and writes: the checkout's when run in one; never the copy installed with the package."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import ROOT, assert_one_line_usage_error, run_cli

import conformance.cli
from conformance.cli import EXIT_OK
from vfmig_proto.requirements import SPEC_DIR_ENV, checkout_root, spec_directory

PYPROJECT = '[project]\nname = "{name}"\nversion = "0"\n'


def _checkout(where: Path, *, name: str = "vfmig", spec: bool = True) -> Path:
    """A directory that looks like a checkout of project ``name`` (with a copy of the real spec if ``spec``)."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "pyproject.toml").write_text(PYPROJECT.format(name=name), encoding="utf-8")
    if spec:
        shutil.copytree(ROOT / "spec", where / "spec")
    return where


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPEC_DIR_ENV, raising=False)


def test_a_checkout_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "work")
    (checkout / "docs" / "guides").mkdir(parents=True)
    assert checkout_root(checkout / "docs" / "guides") == checkout.resolve()
    assert checkout_root(checkout) == checkout.resolve()


def test_another_project_or_a_bare_spec_directory_is_no_checkout(tmp_path: Path) -> None:
    assert checkout_root(_checkout(tmp_path / "other", name="acme-nic")) is None, "a project vendoring the spec"
    bare = tmp_path / "bare"
    (bare / "spec").mkdir(parents=True)
    (bare / "spec" / "notes.rst").write_text("notes\n", encoding="utf-8")
    (bare / "pyproject.toml").write_text(PYPROJECT.format(name="vfmig"), encoding="utf-8")
    assert checkout_root(bare) is None, "a spec/ without the spec's index.rst"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "pyproject.toml").write_text("[project\n", encoding="utf-8")
    shutil.copytree(ROOT / "spec", tmp_path / "broken" / "spec")
    assert checkout_root(tmp_path / "broken") is None, "an unreadable pyproject.toml"


def test_the_spec_read_is_the_checkouts_that_the_command_runs_in(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    checkout = _checkout(tmp_path / "work")
    monkeypatch.chdir(checkout)
    assert spec_directory() == checkout.resolve() / "spec"
    code, out, _ = run_cli(capsys, "spec-summary", "--json")
    assert code == EXIT_OK
    assert json.loads(out)["spec"] == str(checkout.resolve() / "spec")


def test_traceability_says_which_spec_it_read(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = _checkout(tmp_path / "work") / "spec"
    _, out_text, _ = run_cli(capsys, "traceability", "--spec", str(spec))
    assert out_text.splitlines()[0] == f"spec: {spec}"
    _, out_json, _ = run_cli(capsys, "traceability", "--json", "--spec", str(spec))
    assert json.loads(out_json)["spec"] == str(spec)


def test_spec_generate_outside_a_checkout_writes_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    written: list[Path] = []

    def write_generated(spec_dir: Path) -> list[Path]:
        written.append(spec_dir)
        return []

    monkeypatch.setattr(conformance.cli, "write_generated", write_generated)
    code, out, err = run_cli(capsys, "spec-generate")
    assert out == ""
    assert_one_line_usage_error(code, err, "vfmig spec-generate: ", "not in a vfmig checkout", "--spec DIR")
    assert written == []


def test_spec_generate_in_a_checkout_writes_its_spec(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    checkout = _checkout(tmp_path / "work")
    (checkout / "spec" / "generated" / "registers.rst").write_text("stale\n", encoding="utf-8")
    monkeypatch.chdir(checkout / "spec")
    code, out, _ = run_cli(capsys, "spec-generate")
    assert code == EXIT_OK
    assert f"wrote {checkout.resolve() / 'spec' / 'generated' / 'registers.rst'}" in out
    assert (checkout / "spec" / "generated" / "registers.rst").read_text(encoding="utf-8") != "stale\n"


def test_spec_generate_never_writes_the_installed_copy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed = tmp_path / "site-packages" / "vfmig_proto" / "spec"
    shutil.copytree(ROOT / "spec", installed)
    monkeypatch.setattr(conformance.cli, "installed_spec", lambda: installed)
    code, _, err = run_cli(capsys, "spec-generate", "--spec", str(installed))
    assert_one_line_usage_error(code, err, "installed with the package")
    code, _, _ = run_cli(capsys, "spec-generate", "--check", "--spec", str(installed))
    assert code == EXIT_OK, "checking only reads"
