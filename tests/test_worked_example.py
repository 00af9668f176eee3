"""The worked example: the timeline SVG and the docs' generated examples come from a fresh run of the code.

Every expected number here is read from a simulation or a conformance run made by the test itself, never
typed in: the figure must have one round per round of the report, with the report's page counts, and the
docs page built from the directives must show what a fresh run with the same options produces.
"""

from __future__ import annotations

import html
import json
import re
import textwrap
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from conformance.checks import RequirementViolation
from conformance.cli import EXIT_OK, EXIT_USAGE, main, simulation_config
from conformance.runner import run
from conformance.verdicts import Target, Verdict
from reference_impl.report import simulation_json
from reference_impl.scenario import ScenarioFault, Simulation, SimulationConfig
from reference_impl.timeline import migration_timeline, timeline_description, timeline_svg

ROOT = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
SMALL = ("--memory", "64MiB")
"""A guest small enough that a run takes a fraction of a second."""


def _report(*arguments: str) -> dict[str, Any]:
    """The JSON object ``vfmig simulate ARGUMENTS --json`` prints, computed in-process."""
    return simulation_json(Simulation(simulation_config([*SMALL, *arguments])).run())


def _groups(svg: str, css_class: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [element for element in root.iter(f"{SVG}g") if element.get("class") == css_class]


def _drawn_rounds(svg: str) -> list[dict[str, object]]:
    """The rounds as the SVG carries them, in the report's form."""
    return [
        {
            "round": int(group.attrib["data-round"]),
            "start_ms": float(group.attrib["data-start-ms"]),
            "end_ms": float(group.attrib["data-end-ms"]) if "data-end-ms" in group.attrib else None,
            "pages": int(group.attrib["data-pages"]),
            "sent": int(group.attrib["data-sent"]),
            "dirty_at_end": int(group.attrib["data-dirty-at-end"]) if "data-dirty-at-end" in group.attrib else None,
        }
        for group in _groups(svg, "vfm-round")
    ]


@pytest.fixture(scope="module")
def completed() -> dict[str, Any]:
    return _report("--seed", "7", "--downtime-limit", "150ms")


def test_one_round_element_per_round_with_the_reports_page_counts(completed: dict[str, Any]) -> None:
    assert completed["outcome"] == "completed"
    assert len(completed["rounds"]) >= 2, "a run with several rounds, so that the comparison means something"
    svg = timeline_svg(completed)
    assert _drawn_rounds(svg) == completed["rounds"]
    for group in _groups(svg, "vfm-round"):
        title = group.find(f"{SVG}title")
        assert title is not None
        assert title.text is not None
        assert f"{int(group.attrib['data-pages']):,} pages" in title.text, "every round says what it shows"


def test_the_switch_over_phases_are_the_reports_times(completed: dict[str, Any]) -> None:
    svg = timeline_svg(completed)
    phases = {
        group.attrib["data-phase"]: (float(group.attrib["data-start-ms"]), float(group.attrib["data-end-ms"]))
        for group in _groups(svg, "vfm-phase")
    }
    assert phases == {
        "pause": (completed["pause_requested_ms"], completed["stopped_ms"]),
        "stop-and-copy": (completed["stopped_ms"], completed["total_time_ms"]),
        "resume": (completed["total_time_ms"], completed["resumed_ms"]),
    }
    assert completed["resumed_ms"] - completed["stopped_ms"] == pytest.approx(completed["downtime_ms"], abs=0.002)
    assert {group.attrib["data-phase"] for group in _groups(svg, "vfm-phase-detail")} == set(phases)
    last_round = completed["rounds"][-1]
    assert last_round["end_ms"] <= completed["pause_requested_ms"], "pre-copy ends before the switch-over"


def test_the_svg_is_self_contained_and_accessible(completed: dict[str, Any]) -> None:
    svg = timeline_svg(completed)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    labels = (root.get("aria-labelledby") or "").split()
    assert labels, "the figure names its title and description"
    ids = {element.get("id"): element for element in root.iter() if element.get("id")}
    assert all(label in ids and ids[label].tag in (f"{SVG}title", f"{SVG}desc") for label in labels)
    assert not re.search(r"<script|href=|url\(|@import", svg), "nothing to fetch, nothing to run"
    assert re.findall(r"https?://[^\"]+", svg) == ["http://www.w3.org/2000/svg"]


@pytest.mark.parametrize(
    ("arguments", "phases"),
    [
        (("--fault", ScenarioFault.CANCEL_PRECOPY.value), []),
        (("--fault", ScenarioFault.ACK_TIMEOUT.value), ["pause"]),
        (("--fault", ScenarioFault.CANCEL_AFTER_PAUSE.value), ["pause", "stopped"]),
        (("--cpu-dirty-rate", "200MiB/s", "--precopy-limit", "200ms"), ["pause", "stop-and-copy", "resume"]),
    ],
    ids=["cancel-precopy", "ack-timeout", "cancel-after-pause", "precopy-limit"],
)
def test_migrations_that_end_otherwise_are_drawn_too(arguments: tuple[str, ...], phases: list[str]) -> None:
    document = _report(*arguments)
    svg = timeline_svg(document)
    assert _drawn_rounds(svg) == document["rounds"]
    assert [group.attrib["data-phase"] for group in _groups(svg, "vfm-phase")] == phases
    assert [phase.name for phase in migration_timeline(document).phases] == phases


def test_several_migrations_draw_each_in_order() -> None:
    document = _report("--migrations", "2")
    first, last = document["migrations"]
    svg = timeline_svg(document)
    assert _drawn_rounds(svg) == first["rounds"] + last["rounds"], "the first migration's panel, then the last's"
    assert last["rounds"] == document["rounds"]
    assert migration_timeline(document).end_ms == last["total_time_ms"], "the Timeline of a report is its last"


def test_simulate_timeline_writes_the_svg_of_the_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "timeline.svg"
    code = main(["simulate", *SMALL, "--seed", "3", "--json", "--no-progress", "--timeline", str(path)])
    printed = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK
    svg = path.read_text(encoding="utf-8")
    assert svg == timeline_svg(printed), "the file is the drawing of the JSON the same run printed"
    assert _drawn_rounds(svg) == printed["rounds"]


def test_simulate_timeline_to_a_missing_directory_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["simulate", *SMALL, "--no-progress", "--timeline", str(tmp_path / "no" / "such.svg")])
    assert code == EXIT_USAGE
    assert "--timeline: cannot write" in capsys.readouterr().err


def test_simulation_config_reads_the_commands_options() -> None:
    config = simulation_config(["--memory", "128MiB", "--vfs", "3", "--seed", "5"])
    assert (config.memory_bytes, config.vfs, config.seed) == (128 << 20, 3, 5)
    assert simulation_config([]) == SimulationConfig(), "the command's defaults are the configuration's"


# --- the Sphinx directives: a tiny project built in-process -----------------------------------------------

TIMELINE_OPTIONS = {"memory": "64MiB", "vfs": "1", "seed": "11"}
REPORT = {
    "target": "device",
    "implementation": "conformance.catalogue.device_faults:never_dirties",
    "seed": "7",
    "requirements": "VFM-DIRTY-004",
}


def _directive(name: str, options: dict[str, str]) -> str:
    return "\n".join([f".. vfm:{name}::", *(f"   :{key}: {value}" for key, value in options.items()), ""])


def _build(source: Path, page: str) -> tuple[str, str, Path]:
    """Build ``page`` as the index of a fresh project with the examples extension; (HTML, warnings, outdir)."""
    sphinx_application = pytest.importorskip("sphinx.application")
    source.mkdir()
    (source / "conf.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path[:0] = [{str(ROOT / "docs" / "_ext")!r}, {str(ROOT)!r}]
            extensions = ["vfmig_examples"]
            html_theme = "basic"
            """
        ),
        encoding="utf-8",
    )
    (source / "index.rst").write_text(page, encoding="utf-8")
    out = source.parent / "html"
    warnings = StringIO()
    app = sphinx_application.Sphinx(
        str(source), str(source), str(out), str(source.parent / "doctrees"), "html", status=None, warning=warnings
    )
    app.build()
    return (out / "index.html").read_text(encoding="utf-8"), warnings.getvalue(), out


def _visible(page: str) -> str:
    """The text of an HTML page (tags dropped, entities decoded): what a reader sees."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _table_rows(page: str, css_class: str) -> list[list[str]]:
    match = re.search(rf'<table[^>]*class="[^"]*{css_class}[^"]*"[^>]*>(.*?)</table>', page, flags=re.DOTALL)
    assert match, f"no table {css_class}"
    body = match.group(1).split("<tbody>", 1)[1]
    return [
        [_visible(cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.DOTALL)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.DOTALL)
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    page = "Examples\n========\n\n" + _directive("simulation-timeline", TIMELINE_OPTIONS) + "\n"
    page += _directive("sample-report", REPORT)
    return _build(tmp_path_factory.mktemp("docs") / "source", page)


def test_the_directives_build_without_warnings(built: tuple[str, str, Path]) -> None:
    _, warnings, _ = built
    assert warnings == ""


def test_the_timeline_directive_shows_a_fresh_runs_rounds(built: tuple[str, str, Path]) -> None:
    page, _, out = built
    arguments = [item for key, value in TIMELINE_OPTIONS.items() for item in (f"--{key}", value)]
    fresh = simulation_json(Simulation(simulation_config(arguments)).run())
    rows = _table_rows(page, "vfm-timeline-rounds")
    assert [(int(row[0]), int(row[3].replace(",", ""))) for row in rows] == [
        (item["round"], item["pages"]) for item in fresh["rounds"]
    ]
    assert [row[4].replace(",", "") for row in rows] == [str(item["dirty_at_end"]) for item in fresh["rounds"]]
    drawn = re.findall(r'<img class="vfm-timeline" src="(_images/vfm-timeline-\w+\.svg)"', page)
    assert len(drawn) == 1
    svg = (out / drawn[0]).read_text(encoding="utf-8")
    assert svg == timeline_svg(fresh), "the build drew the fresh run"
    alts = [html.unescape(alt) for alt in re.findall(r'<img class="vfm-timeline" [^>]*alt="([^"]*)"', page)]
    assert alts == [timeline_description(migration_timeline(fresh))], "and described it"
    assert "vfmig simulate " + " ".join(arguments) in _visible(page), "the command that reproduces it"
    phases = [row[0] for row in _table_rows(page, "vfm-timeline-phases")]
    assert phases == [phase.name for phase in migration_timeline(fresh).phases]


def _code_block(page: str, caption: str) -> str:
    """The text of the literal block whose caption starts with ``caption``."""
    match = re.search(
        rf'<span class="caption-text">{re.escape(caption)}.*?</span>.*?<pre>(.*?)</pre>', page, flags=re.DOTALL
    )
    assert match, f"no code block captioned {caption!r}"
    return _visible(match.group(1))


def test_the_report_directive_shows_a_fresh_runs_verdicts(built: tuple[str, str, Path]) -> None:
    page, _, _ = built
    fresh = run(
        Target(REPORT["target"]),
        REPORT["implementation"],
        profile="quick",
        seed=int(REPORT["seed"]),
        requirements=[REPORT["requirements"]],
    )
    (result,) = fresh.results
    assert result.verdict is Verdict.FAIL
    assert result.counterexample is not None
    text = _visible(page)
    assert "NOT CONFORMANT" in text
    assert f"{result.requirement.id} ({result.requirement.keyword.value}): {result.verdict.value}" in text
    markdown = _code_block(page, "The Markdown report")
    assert "**Verdict: NOT CONFORMANT**" in markdown
    assert f"### {result.requirement.id} ({result.requirement.keyword.value}): {result.verdict.value}" in markdown
    assert f"--seed {fresh.seed} --requirement {REPORT['requirements']}" in text, "the command that replays it"
    # Shrinking has a time budget, so a loaded machine may stop at a longer sequence: the page's counterexample
    # need not be the fresh run's word for word, but it must be a program that breaks the same requirement.
    reproduction = _code_block(page, "Reproduction")
    header = [line for line in result.counterexample.reproduction.splitlines() if "machine_for(" in line]
    assert header, "the reproduction binds the machine to the implementation"
    assert all(line in reproduction.splitlines() for line in header)
    with pytest.raises(RequirementViolation) as raised:
        exec(compile(reproduction, "counterexample.py", "exec"), {"__name__": "counterexample"})
    assert raised.value.requirement == result.requirement.id


def test_bad_options_fail_the_build(tmp_path: Path) -> None:
    page = _directive("simulation-timeline", {"memory": "lots"}) + "\n" + _directive("sample-report", {"target": "x"})
    _, warnings, _ = _build(tmp_path / "source", page)
    assert "vfm:simulation-timeline: bad simulate options" in warnings
    assert "vfm:sample-report: needs :target:" in warnings


def _page_options(text: str, directive: str) -> dict[str, str]:
    """The options of the first ``.. vfm:DIRECTIVE::`` on a page (continuation lines of a value dropped)."""
    lines = text.splitlines()
    start = lines.index(f".. vfm:{directive}::")
    options: dict[str, str] = {}
    for line in lines[start + 1 :]:
        if not line.startswith("   "):
            break
        if match := re.match(r"^   :([\w-]+): ?(.*)$", line):
            options[match.group(1)] = match.group(2)
    return options


def test_the_worked_example_page_types_no_number_of_its_run() -> None:
    page = (ROOT / "docs" / "guides" / "worked-example.rst").read_text(encoding="utf-8")
    options = _page_options(page, "simulation-timeline")
    assert _page_options(page, "sample-report")["target"] in {target.value for target in Target}
    arguments = [item for key, value in options.items() if key != "caption" for item in (f"--{key}", value)]
    document = simulation_json(Simulation(simulation_config(arguments)).run())
    figures = {item["pages"] for item in document["rounds"]} | {item["dirty_at_end"] for item in document["rounds"]}
    figures |= {document["pages_sent"]}
    for number in figures:
        assert str(number) not in page, f"{number} is typed into the page: let the directive show it"
        assert f"{number:,}" not in page, f"{number:,} is typed into the page: let the directive show it"
