"""The traceability matrix: read from the suites, complete for every MUST, and enforced by the docs build."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest
from reference_coverage import reference_coverage
from sphinx.cmd.build import build_main

from conformance import traceability
from conformance.cli import main
from conformance.traceability_pages import render_rst
from conformance.verdicts import Target
from vfmig_proto.requirements import SPEC_DIR_ENV, load_requirements, spec_directory
from vfmig_proto.states import Role

ROOT = Path(__file__).resolve().parents[1]
NEW_REQUIREMENT = "VFM-CAP-900"


def _spec_with_an_unchecked_must(directory: Path) -> Path:
    """A copy of the spec with one more MUST requirement of the bridge, which no suite checks."""
    spec = directory / "spec"
    shutil.copytree(spec_directory(), spec)
    chapter = spec / "03-capability.rst"
    chapter.write_text(
        chapter.read_text(encoding="utf-8")
        + textwrap.dedent(
            f"""

            .. vfm:requirement:: {NEW_REQUIREMENT}
               :keyword: MUST
               :roles: bridge

               The bridge MUST keep a register that this test invented.
            """
        ),
        encoding="utf-8",
    )
    return spec


@pytest.fixture
def unchecked_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    spec = _spec_with_an_unchecked_must(tmp_path)
    monkeypatch.setenv(SPEC_DIR_ENV, str(spec))
    assert NEW_REQUIREMENT in {requirement.id for requirement in load_requirements()}
    return spec


# ---------------------------------------------------------------------------------------------- the real matrix


def test_every_must_requirement_is_checked_and_every_named_id_is_real() -> None:
    matrix = traceability.build_matrix()
    assert [problem.message for problem in matrix.problems()] == []
    matrix.check()


def test_the_matrix_has_a_row_for_every_requirement_of_the_spec() -> None:
    matrix = traceability.build_matrix()
    page = "\n".join(render_rst(matrix))
    for requirement in load_requirements():
        assert f":vfm:req:`{requirement.id}`" in page


@pytest.mark.parametrize("target", list(Target), ids=lambda target: target.value)
def test_every_check_the_matrix_lists_runs_on_the_reference(target: Target) -> None:
    """A check site is a place in the source; this shows each one is reached and judges ``pass``."""
    named = {site.requirement for site in traceability.build_matrix().sites if site.target is target}
    coverage = reference_coverage(target, named)
    assert coverage.suite_errors == []
    assert coverage.problems == []
    assert sorted(coverage.unreached) == [], f"no check of these ran in seeds {coverage.seeds}"


def test_steps_are_told_apart_from_helpers_and_tables() -> None:
    sites = [site for target in Target for site in traceability.build_matrix().sites if site.target is target]
    kinds = {site.kind for site in sites}
    assert {traceability.SiteKind.RULE, traceability.SiteKind.INVARIANT, traceability.SiteKind.HELPER} <= kinds
    helpers_reached = [site for site in sites if site.kind is traceability.SiteKind.HELPER and site.reached_from]
    assert helpers_reached, "helper checks list the steps that reach them"


# ---------------------------------------------------------------------------------------------- finding problems


def test_an_unchecked_must_requirement_is_a_problem(unchecked_spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as real_spec:
        real_spec.delenv(SPEC_DIR_ENV)
        before = set(traceability.build_matrix().problems())
    added = [problem for problem in traceability.build_matrix().problems() if problem not in before]
    assert [(type(problem), problem.requirement, problem.target) for problem in added] == [
        (traceability.UncheckedMandatory, NEW_REQUIREMENT, Target.BRIDGE)
    ]
    assert "03-capability.rst" in added[0].message
    with pytest.raises(traceability.TraceabilityError, match=NEW_REQUIREMENT):
        traceability.build_matrix().check()


_FAKE_SUITE = """
from conformance.checks import ConformanceMachine, step

LIMITS = {"pause": ("VFM-TMO-003", 20)}
LISTED = ("VFM-CAP-001",)


class FakeSuite(ConformanceMachine):
    @step("VFM-CAP-002", "VFM-CAP-003")
    def poke(self) -> None:
        self.checks.that("VFM-XYZ-999", True, "an ID the spec does not define")
        self.checks.that("VFM-TMO-001", True, "a hypervisor requirement, in the bridge suite")
        self._helper()

    def _helper(self) -> None:
        self.checks.record("VFM-CAP-002", True, "")

    def _deadline(self) -> None:
        requirement, _ = LIMITS["pause"]
        self.checks.record(requirement, True, "")
"""


def test_unknown_foreign_and_declared_but_unchecked_ids_are_problems() -> None:
    sources = {target: traceability.suite_sources(target) for target in Target}
    sources[Target.BRIDGE] = [traceability.SuiteSource("fake_suite", _FAKE_SUITE)]
    problems = traceability.build_matrix(sources).problems()
    found = {(type(problem), problem.requirement) for problem in problems}
    assert (traceability.UnknownRequirement, "VFM-XYZ-999") in found
    assert (traceability.ForeignRequirement, "VFM-TMO-001") in found
    assert (traceability.ForeignRequirement, "VFM-TMO-003") in found  # the table is read by a check, so its IDs count
    assert (traceability.DeclaredButUnchecked, "VFM-CAP-003") in found
    assert (traceability.DeclaredButUnchecked, "VFM-CAP-002") not in found  # the helper the step calls checks it
    messages = [problem.message for problem in problems]
    assert any("fake_suite:" in message and "FakeSuite.poke" in message for message in messages)


def test_tables_count_only_when_a_check_takes_its_requirement_from_them() -> None:
    sites, _, mentions = traceability.read_suite(Target.BRIDGE, [traceability.SuiteSource("fake_suite", _FAKE_SUITE)])
    table_sites = [site for site in sites if site.kind is traceability.SiteKind.TABLE]
    assert [(site.requirement, site.function, site.reached_from) for site in table_sites] == [
        ("VFM-TMO-003", "LIMITS", ("FakeSuite._deadline",))
    ]
    assert [(mention.requirement, mention.function) for mention in mentions] == [("VFM-CAP-001", "LISTED")]
    helper = next(site for site in sites if site.function == "FakeSuite._helper")
    assert isinstance(helper, traceability.CheckSite)
    assert helper.kind is traceability.SiteKind.HELPER
    assert helper.reached_from == ()  # FakeSuite has no Hypothesis steps: nothing is a rule here


# ---------------------------------------------------------------------------------------------- the docs build


def _sphinx_project(directory: Path) -> Path:
    """The smallest site with the traceability directive (the build is the one `tox -e docs` runs)."""
    source = directory / "site"
    source.mkdir()
    (source / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'docs' / '_ext')!r})\n"
        'extensions = ["vfmig_sphinx", "vfmig_traceability"]\n',
        encoding="utf-8",
    )
    (source / "index.rst").write_text("Traceability\n============\n\n.. vfm-traceability::\n", encoding="utf-8")
    return source


def _build(source: Path, out: Path) -> int:
    return build_main(["-q", "-b", "html", str(source), str(out)])


def test_the_docs_build_fails_on_an_unchecked_must_requirement(
    tmp_path: Path, unchecked_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = _build(_sphinx_project(tmp_path), tmp_path / "out")
    errors = capsys.readouterr().err
    assert status != 0, "no -W here: the traceability problem alone fails the build"
    assert f"{NEW_REQUIREMENT} (MUST, 03-capability.rst:" in errors
    assert "the build fails" in errors


def test_the_same_docs_build_passes_on_the_spec_as_it_is(tmp_path: Path) -> None:
    status = _build(_sphinx_project(tmp_path), tmp_path / "out")
    assert status == 0
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "VFM-CAP-001" in page


# ---------------------------------------------------------------------------------------------- the command


def test_vfmig_traceability_exits_1_and_names_an_unchecked_must(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec_with_an_unchecked_must(tmp_path)
    assert main(["traceability", "--spec", str(spec)]) == 1
    assert f"{NEW_REQUIREMENT} (MUST, 03-capability.rst:" in capsys.readouterr().out


def test_vfmig_traceability_json_lists_every_requirement_and_its_checks(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["traceability", "--json"])
    matrix = json.loads(capsys.readouterr().out)
    assert status == (1 if matrix["problems"] else 0)
    assert [entry["id"] for entry in matrix["requirements"]] == [req.id for req in load_requirements()]
    checked = next(entry for entry in matrix["requirements"] if entry["id"] == "VFM-CAP-001")
    assert checked["checks"]["bridge"], "the bridge suite checks where the capability is placed"
    assert {row["target"] for row in matrix["coverage"]} == {target.value for target in Target}


def test_the_page_lists_the_requirements_that_bind_each_target() -> None:
    page = render_rst(traceability.build_matrix())
    for target in Target:
        head = next(number for number, text in enumerate(page) if text.startswith(f"**{target.value}**"))
        binding = [req for req in load_requirements() if req.roles & target.roles]
        assert f"{len(binding)} requirements" in page[head]
        bullets = itertools.takewhile(lambda text: text.startswith("* "), page[head + 2 :])
        named = {match for text in bullets for match in re.findall(r"VFM-[A-Z]+-\d{3}", text)}
        assert named == {req.id for req in binding}
    assert {role for target in Target for role in target.roles} == set(Role)
