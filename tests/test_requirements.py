"""The requirement index: the directive format, and the spec as a whole."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

import vfmig_proto as vfm
from vfmig_proto.layout import DEVICE_REGISTERS, HEADER_REGISTERS
from vfmig_proto.requirements import ID_PATTERN, load_requirements, parse_requirements
from vfmig_proto.states import DevEvent, DevState, DriverReport, Keyword, MigEvent, MigReason, MigState, Role

SPEC_DIR = Path(__file__).resolve().parents[1] / "spec"

GOOD = """\
Chapter
=======

.. vfm:requirement:: VFM-TEST-001
   :keyword: MUST NOT
   :roles: bridge, hypervisor

   The bridge MUST NOT change
   a read-only field.

Text after it.
"""


class TestDirectiveFormat:
    def test_a_well_formed_requirement(self) -> None:
        (req,) = parse_requirements(GOOD, "x.rst")
        assert req.id == "VFM-TEST-001"
        assert req.keyword is Keyword.MUST_NOT
        assert req.roles == {Role.BRIDGE, Role.HYPERVISOR}
        assert req.text == "The bridge MUST NOT change a read-only field."
        assert (req.path, req.line, req.section, req.area) == ("x.rst", 4, "Chapter", "TEST")
        assert req.is_mandatory

    @pytest.mark.parametrize(
        ("change", "problem"),
        [
            (("VFM-TEST-001", "VFM-TEST-1"), "not of the form"),
            (("VFM-TEST-001", "CAP-001"), "not of the form"),
            (("MUST NOT\n   :roles", "MUSTN'T\n   :roles"), "unknown keyword"),
            (("bridge, hypervisor", "bridge, guest"), "unknown role"),
            (("   :roles: bridge, hypervisor\n", ""), "exactly the options"),
            (("MUST NOT change", "MUST NOT and SHOULD change"), "exactly one"),
            (("MUST NOT change", "may change"), "no keyword"),
            (("MUST NOT change", "MUST change"), "declares MUST NOT"),
            (("   The bridge MUST NOT change\n   a read-only field.\n", ""), "no text"),
        ],
    )
    def test_malformed_requirements_name_file_and_line(self, change: tuple[str, str], problem: str) -> None:
        text = GOOD.replace(*change)
        assert text != GOOD
        with pytest.raises(vfm.SpecFormatError, match=problem) as caught:
            list(parse_requirements(text, "bad.rst"))
        assert caught.value.path == "bad.rst"
        assert caught.value.line == 4

    def test_duplicate_ids_are_refused(self, tmp_path: Path) -> None:
        (tmp_path / "a.rst").write_text(GOOD)
        (tmp_path / "b.rst").write_text(GOOD)
        with pytest.raises(vfm.SpecFormatError, match=r"already defined at a\.rst:4"):
            load_requirements(tmp_path)

    def test_an_empty_directory_is_no_spec(self, tmp_path: Path) -> None:
        with pytest.raises(vfm.SpecFormatError, match=r"no \.rst files"):
            load_requirements(tmp_path)


@pytest.fixture(scope="module")
def spec() -> tuple[vfm.Requirement, ...]:
    return load_requirements(SPEC_DIR)


@pytest.fixture(scope="module")
def chapters_text() -> str:
    """The chapters' prose, without the generated tables."""
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(SPEC_DIR.glob("*.rst")))


class TestTheSpec:
    def test_size(self, spec: tuple[vfm.Requirement, ...]) -> None:
        assert 80 <= len(spec) <= 150

    def test_ids_are_numbered_without_gaps_per_area(self, spec: tuple[vfm.Requirement, ...]) -> None:
        numbers: dict[str, list[int]] = defaultdict(list)
        for req in spec:
            match = ID_PATTERN.fullmatch(req.id)
            assert match is not None
            numbers[match["area"]].append(int(match["number"]))
        for area, found in numbers.items():
            assert sorted(found) == list(range(1, len(found) + 1)), area

    def test_every_role_is_bound_by_mandatory_requirements(self, spec: tuple[vfm.Requirement, ...]) -> None:
        for role in Role:
            assert sum(1 for r in spec if role in r.roles and r.is_mandatory) >= 8, role

    def test_the_installed_index_is_the_source_spec(self, spec: tuple[vfm.Requirement, ...]) -> None:
        # Whatever copy vfmig_proto found (source tree or packaged), it holds the same requirements.
        assert {r.id: r.text for r in vfm.requirement_index().values()} == {r.id: r.text for r in spec}
        assert vfm.requirement(spec[0].id).text == spec[0].text
        with pytest.raises(KeyError, match="VFM-NONE-999"):
            vfm.requirement("VFM-NONE-999")

    def test_every_chapter_is_in_the_toctree(self) -> None:
        index = (SPEC_DIR / "index.rst").read_text(encoding="utf-8")
        listed = set(re.findall(r"^   ([\w-]+)$", index, flags=re.MULTILINE))
        chapters = {p.stem for p in SPEC_DIR.glob("*.rst")} - {"index"}
        assert listed == chapters

    @pytest.mark.parametrize(
        "name",
        [r.name.upper() for r in (*HEADER_REGISTERS, *DEVICE_REGISTERS)]
        + [m.name for enum in (MigState, MigReason, DevState, DriverReport, DevEvent, MigEvent) for m in enum],
    )
    def test_the_prose_names_every_register_state_and_event(self, chapters_text: str, name: str) -> None:
        assert re.search(rf"\b{name}\b", chapters_text), f"no chapter of spec/ mentions {name}"
