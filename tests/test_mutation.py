"""The mutation campaign's own logic (benchmarks/mutation): sampling, triage, the score, the copy, the judge.

No campaign runs here; the end-to-end tests judge three hand-made shadow implementations (one that does not
import, one the preflight refuses, the pristine one) on the bridge target, the cheapest.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/ holds scripts and the campaign's package `mutation`, imported the way the scripts import each other.
sys.path.insert(0, str(ROOT / "benchmarks"))

from mutation import campaign  # noqa: E402 - after the path above
from mutation.campaign import Mutant, Outcome, TriageError, parse_triage, stratified_sample, summarise  # noqa: E402
from mutation.shadow import (  # noqa: E402
    MODULES_BY_SOURCE,
    PRISTINE,
    ROLE_MODULES,
    SHADOW,
    build_copy,
    rewrite_imports,
    shadow_path,
)


def _population() -> list[Mutant]:
    sizes = {"a.py": 500, "b.py": 300, "c.py": 150, "d.py": 45, "e.py": 5}
    return [
        Mutant(module, "core/Op", occurrence, occurrence + 1) for module, n in sizes.items() for occurrence in range(n)
    ]


def test_the_sample_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    population = _population()
    first = stratified_sample(population, 120, 1)
    assert first == stratified_sample(population, 120, 1)
    assert first != stratified_sample(population, 120, 2)
    assert len(first) == 120
    assert len(set(first)) == 120


def test_the_sample_is_stratified_in_proportion_to_each_modules_mutants() -> None:
    population = _population()
    counts = Counter(mutant.module for mutant in stratified_sample(population, 100, 3))
    totals = Counter(mutant.module for mutant in population)
    for module, total in totals.items():
        assert abs(counts[module] - 100 * total / len(population)) <= 1, module
    assert counts["e.py"] >= 1


def test_a_sample_larger_than_the_population_is_the_population() -> None:
    population = _population()
    assert stratified_sample(population, 5000, 1) == population


GOOD_TRIAGE = """
[[mutant]]
module = "reference_impl/bridge.py"
operator = "core/ReplaceBinaryOperator_Add_BitOr"
occurrence = 14
line = 418
change = "x + 1 -> x | 1"
verdict = "equivalent"
reason = "x is even"

[[mutant]]
module = "reference_impl/driver.py"
operator = "core/AddNot"
occurrence = 3
line = 10
change = "if a: -> if not a:"
verdict = "gap"
requirement = "VFM-DIRTY-003"
reason = "the suite never sees the flushing read"
"""


def _known(requirement: str) -> bool:
    return requirement in {"VFM-DIRTY-003"}


def test_a_triage_file_is_read_entry_by_entry() -> None:
    entries = parse_triage(GOOD_TRIAGE, _known)
    assert set(entries) == {
        ("reference_impl/bridge.py", "core/ReplaceBinaryOperator_Add_BitOr", 14),
        ("reference_impl/driver.py", "core/AddNot", 3),
    }
    gap = entries["reference_impl/driver.py", "core/AddNot", 3]
    assert (gap.verdict, gap.requirement) == ("gap", "VFM-DIRTY-003")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('requirement = "VFM-DIRTY-003"', 'requirement = "VFM-NOPE-001"'), "is not one"),
        (('verdict = "equivalent"', 'verdict = "fine"'), "verdict must be"),
        (('reason = "x is even"', 'reason = "  "'), "reason is empty"),
        (("occurrence = 3\n", ""), "no 'occurrence'"),
        (("occurrence = 3", "occurrence = 14"), None),
    ],
)
def test_a_malformed_triage_entry_is_refused_naming_it(edit: tuple[str, str], message: str | None) -> None:
    text = GOOD_TRIAGE.replace(*edit)
    if message is None:  # the second entry now has the first one's key, apart from the module
        text = text.replace('module = "reference_impl/driver.py"', 'module = "reference_impl/bridge.py"').replace(
            '"core/AddNot"', '"core/ReplaceBinaryOperator_Add_BitOr"'
        )
        message = "triaged twice"
    with pytest.raises(TriageError, match=re.escape(message)):
        parse_triage(text, _known)


def test_the_checked_in_triage_file_is_well_formed() -> None:
    parse_triage(campaign.TRIAGE_FILE.read_text(encoding="utf-8"), campaign.spec_requirement)


def _outcome(module: str, occurrence: int, outcome: str, change: str = "c") -> Outcome:
    return Outcome(Mutant(module, "core/Op", occurrence, 1, change), outcome, 1.0)


def test_the_score_leaves_out_equivalent_and_incompetent_mutants_and_counts_gaps_and_untriaged_against() -> None:
    triage = parse_triage(
        """
[[mutant]]
module = "m.py"
operator = "core/Op"
occurrence = 1
change = "c"
verdict = "equivalent"
reason = "same value"

[[mutant]]
module = "m.py"
operator = "core/Op"
occurrence = 2
change = "c"
verdict = "gap"
requirement = "VFM-DIRTY-003"
reason = "unobserved"

[[mutant]]
module = "m.py"
operator = "core/Op"
occurrence = 3
change = "an older line"
verdict = "equivalent"
reason = "stale"
""",
        _known,
    )
    outcomes = [_outcome("m.py", n, "killed") for n in range(10, 26)]  # 16 killed
    outcomes += [
        _outcome("m.py", 1, "survived"),  # equivalent
        _outcome("m.py", 2, "incomplete"),  # a gap
        _outcome("m.py", 3, "survived"),  # its entry is stale: untriaged
        _outcome("m.py", 4, "timed out"),  # untriaged
        _outcome("n.py", 5, "incompetent"),
    ]
    summary = summarise(outcomes, triage)
    overall = summary.overall
    assert (overall.mutants, overall.killed, overall.survived, overall.incomplete) == (21, 16, 2, 1)
    assert (overall.timed_out, overall.incompetent, overall.equivalent, overall.gaps) == (1, 1, 1, 1)
    assert overall.untriaged == 2
    assert overall.scored == 21 - 1 - 1
    assert overall.score == pytest.approx(16 / 19)
    assert [entry.occurrence for entry in summary.stale] == [3]
    assert [result.mutant.occurrence for result in summary.untriaged] == [3, 4]
    assert summary.per_module["n.py"].score == 1.0  # nothing scored: no mutant to miss
    assert summary.per_module["m.py"].mutants == 20


def test_imports_of_the_shadowed_modules_and_of_the_engine_are_rewritten_and_no_others() -> None:
    text = (
        "from reference_impl.bridge import X\nfrom reference_impl.events import E\n"
        "from vfmig_proto.engine import J\nfrom vfmig_proto.states import S\nimport reference_impl.devices_list\n"
    )
    assert rewrite_imports(text) == (
        f"from {SHADOW}.bridge import X\nfrom reference_impl.events import E\n"
        f"from {SHADOW}._engine import J\nfrom vfmig_proto.states import S\nimport reference_impl.devices_list\n"
    )


def test_the_engine_is_imported_by_no_reference_module_but_the_bridge() -> None:
    """ROLE_MODULES judges engine mutants on the bridge target only: true while the bridge is its only user."""
    users = {
        path.name
        for path in (ROOT / "reference_impl").glob("*.py")
        if re.search(
            r"vfmig_proto\.engine\b|from vfmig_proto import [^\n]*\bengine\b", path.read_text(encoding="utf-8")
        )
    }
    assert users == {"bridge.py"}
    assert MODULES_BY_SOURCE["vfmig_proto/engine.py"].targets == ("bridge",)


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_copy(ROOT, tmp_path_factory.mktemp("mutation") / "tree")


def test_the_copy_leaves_the_suite_on_the_pristine_packages(copy: Path) -> None:
    for path in (copy / "conformance").rglob("*.py"):
        assert SHADOW not in path.read_text(encoding="utf-8"), path
        assert path.read_bytes() == (ROOT / path.relative_to(copy)).read_bytes()
    for module in ROLE_MODULES:
        assert shadow_path(copy, module).read_bytes() == (copy / PRISTINE / f"{module.shadow}.py").read_bytes()
        assert (copy / module.source).read_bytes() == (ROOT / module.source).read_bytes()
    shadow_bridge = shadow_path(copy, MODULES_BY_SOURCE["reference_impl/bridge.py"]).read_text(encoding="utf-8")
    assert f"from {SHADOW}._engine import" in shadow_bridge
    assert "vfmig_proto.engine" not in shadow_bridge


def test_every_role_module_has_mutants_with_cosmic_rays_occurrence_numbers(copy: Path) -> None:
    pytest.importorskip("cosmic_ray")
    mutants = campaign.enumerate_mutants(copy)
    assert {mutant.module for mutant in mutants} == set(MODULES_BY_SOURCE)
    by_operator: dict[tuple[str, str], list[int]] = {}
    for mutant in mutants:
        by_operator.setdefault((mutant.module, mutant.operator), []).append(mutant.occurrence)
    assert all(occurrences == list(range(len(occurrences))) for occurrences in by_operator.values())


def _mutant_package(copy: Path, tmp_path: Path, tail: str) -> Path:
    """A shadow package in ``tmp_path`` whose bridge module ends with ``tail``."""
    import shutil

    shutil.copytree(copy / SHADOW, tmp_path / SHADOW)
    bridge = shadow_path(tmp_path, MODULES_BY_SOURCE["reference_impl/bridge.py"])
    bridge.write_text(bridge.read_text(encoding="utf-8") + tail, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("tail", "outcome"),
    [
        ("\ndef broken(:\n", "incompetent"),
        ("\nMigrationBridge.config_read = lambda self, offset, width: 1 / 0  # type: ignore\n", "killed"),
        ("", "survived"),
    ],
)
def test_the_judge_tells_incompetent_killed_and_survived_apart(
    copy: Path, tmp_path: Path, tail: str, outcome: str
) -> None:
    package = _mutant_package(copy, tmp_path, tail)
    result, _seconds = campaign._run_judge(copy, package, ["bridge"], seed=1, timeout=600)
    assert result["outcome"] == outcome, result
    assert float(result["cpu_seconds"]) > 0
