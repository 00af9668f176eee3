"""The docs site: the state diagrams are the transition tables, and every page is in a table of contents.

The diagrams are checked by parsing the DOT text that :mod:`vfmig_proto.diagrams` produces and comparing
it with the tables themselves, never with a copy typed into this file.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import shutil
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path, PurePosixPath

import pytest

import vfmig_proto
from vfmig_proto.diagrams import (
    COMMON_EVENT_SOURCES,
    START_NODE,
    device_state_diagram,
    migration_state_diagram,
    off_path_device_events,
)
from vfmig_proto.spec_generation import GENERATED_DIR, GENERATORS
from vfmig_proto.states import DevEvent, DevState, MigState, Origin
from vfmig_proto.transitions import DEVICE_TRANSITIONS, MIGRATION_TRANSITIONS, Action

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SPEC = ROOT / "spec"

# --- a reader for the DOT subset the generator writes: one statement per line ----------------------

_NODE = re.compile(r'^\s*"(?P<name>[^"]+)"(?: \[(?P<attrs>.*)\])?;$')
_EDGE = re.compile(r'^\s*"(?P<source>[^"]+)" -> "(?P<target>[^"]+)"(?: \[(?P<attrs>.*)\])?;$')
_SAME_RANK = re.compile(r'^\s*\{rank="\w+";(?: "[^"]+";)+\}$')
_ATTRIBUTE = re.compile(r'(?P<key>\w+)="(?P<value>(?:[^"\\]|\\.)*)"')
_LINE_BREAK = "\\n"

Edge = tuple[str, str, dict[str, str]]


def parse_dot(text: str) -> tuple[set[str], list[Edge]]:
    """The declared nodes and the edges (source, target, attributes) of a generated digraph."""
    nodes: set[str] = set()
    edges: list[Edge] = []
    lines = text.strip().splitlines()
    assert re.fullmatch(r'digraph "\w+" \{', lines[0]), lines[0]
    assert lines[-1] == "}"
    for line in lines[1:-1]:
        if edge := _EDGE.match(line):
            attributes = {m["key"]: m["value"] for m in _ATTRIBUTE.finditer(edge["attrs"] or "")}
            edges.append((edge["source"], edge["target"], attributes))
        elif node := _NODE.match(line):
            nodes.add(node["name"])
        elif not _SAME_RANK.match(line):
            assert re.match(r"^\s*(graph|node|edge) \[.*\];$", line), f"unexpected DOT line: {line!r}"
    return nodes, edges


def drawn_transitions(edges: list[Edge]) -> set[tuple[str, str, str]]:
    """``(state, event, next state)`` for each event that an edge carries (its tooltip lists them all)."""
    return {
        (source, event, target)
        for source, target, attributes in edges
        if source != START_NODE
        for event in attributes["tooltip"].split(_LINE_BREAK)
    }


DIAGRAMS: dict[str, Callable[[], str]] = {"device": device_state_diagram, "migration": migration_state_diagram}


@pytest.fixture(scope="module")
def device() -> tuple[set[str], list[Edge]]:
    return parse_dot(device_state_diagram())


@pytest.fixture(scope="module")
def migration() -> tuple[set[str], list[Edge]]:
    return parse_dot(migration_state_diagram())


def _accepted_device_transitions() -> set[tuple[str, str, str]]:
    """The device table's ACCEPT rows (IGNORE rows are not transitions)."""
    return {
        (state.name, event.name, outcome.next_state.name)
        for (state, event), outcome in DEVICE_TRANSITIONS.items()
        if outcome.action is Action.ACCEPT
    }


def _off_path_device_transitions() -> set[tuple[str, str, str]]:
    """The transitions the device diagram lists beside itself instead of drawing them."""
    return {
        (state, off_path.event, off_path.target or state)
        for off_path in off_path_device_events()
        for state in off_path.sources
    }


def _main_path_device_transitions() -> set[tuple[str, str, str]]:
    return _accepted_device_transitions() - _off_path_device_transitions()


def _migration_transitions() -> set[tuple[str, str, str]]:
    return {(state.name, event.name, target.name) for (state, event), target in MIGRATION_TRANSITIONS.items()}


_DIAGRAMS = pytest.mark.parametrize(
    ("diagram", "states", "transitions"),
    [
        (device_state_diagram, DevState, _main_path_device_transitions),
        (migration_state_diagram, MigState, _migration_transitions),
    ],
    ids=["device", "migration"],
)


@_DIAGRAMS
def test_a_state_diagram_has_one_node_per_state_and_one_edge_per_transition(
    diagram: Callable[[], str], states: type[Enum], transitions: Callable[[], set[tuple[str, str, str]]]
) -> None:
    nodes, edges = parse_dot(diagram())
    assert nodes - {START_NODE} == {state.name for state in states}
    assert drawn_transitions(edges) == transitions()


class TestDeviceDiagram:
    def test_the_diagram_and_the_table_beside_it_show_every_accepted_transition_once(
        self, device: tuple[set[str], list[Edge]]
    ) -> None:
        _, edges = device
        drawn, listed = drawn_transitions(edges), _off_path_device_transitions()
        assert not drawn & listed
        assert drawn | listed == _accepted_device_transitions()

    def test_only_events_from_many_states_and_events_that_keep_the_state_are_left_out(self) -> None:
        for off_path in off_path_device_events():
            keeps = off_path.target is None
            assert keeps or len(off_path.sources) >= COMMON_EVENT_SOURCES, off_path
            for state in off_path.sources:
                outcome = DEVICE_TRANSITIONS[DevState[state], DevEvent[off_path.event]]
                assert outcome.action is Action.ACCEPT
                assert outcome.next_state.name == (state if keeps else off_path.target), off_path

    def test_the_events_from_any_bound_state_are_listed_not_drawn(self, device: tuple[set[str], list[Edge]]) -> None:
        """Removal, error, reset and unbinding: derived from the table, each in the list and on no edge."""
        _, edges = device
        bound = [state for state in DevState if state not in (DevState.EMPTY, DevState.UNBOUND)]
        outcomes = {event: [DEVICE_TRANSITIONS.get((state, event)) for state in bound] for event in DevEvent}
        everywhere = {
            event.name
            for event, found in outcomes.items()
            if all(outcome is not None and outcome.action is Action.ACCEPT for outcome in found)
            and len({outcome.next_state for outcome in found if outcome is not None}) == 1
        }
        assert everywhere, "no event leads to one state from every bound state"
        listed = {off_path.event for off_path in off_path_device_events() if off_path.target is not None}
        assert everywhere <= listed
        assert not everywhere & {event for _, event, _ in drawn_transitions(edges)}

    def test_ignore_rows_are_not_drawn_as_transitions(self, device: tuple[set[str], list[Edge]]) -> None:
        _, edges = device
        drawn = drawn_transitions(edges)
        for (state, event), outcome in DEVICE_TRANSITIONS.items():
            if outcome.action is Action.IGNORE:
                assert (state.name, event.name, outcome.next_state.name) not in drawn

    def test_reports_are_dashed_and_host_events_are_not(self, device: tuple[set[str], list[Edge]]) -> None:
        _, edges = device
        for source, target, attributes in edges:
            if source == START_NODE:
                continue
            origins = {DevEvent[name].origin for name in attributes["tooltip"].split(_LINE_BREAK)}
            assert len(origins) == 1, (source, target, attributes)
            dashed = "dashed" in attributes.get("style", "")
            assert dashed == (origins == {Origin.GUEST}), (source, target, attributes)

    def test_every_edge_is_labelled_with_its_events(self, device: tuple[set[str], list[Edge]]) -> None:
        _, edges = device
        drawn = [attributes for source, _, attributes in edges if source != START_NODE]
        assert drawn, "the device diagram draws no edge"
        assert all(attributes.get("label") == attributes["tooltip"] for attributes in drawn)

    def test_no_edge_is_a_loop(self, device: tuple[set[str], list[Edge]]) -> None:
        _, edges = device
        assert all(source != target for source, target, _ in edges)

    def test_events_between_two_states_share_an_edge(self, device: tuple[set[str], list[Edge]]) -> None:
        _, edges = device
        kinds = [
            (source, target, attributes.get("style", ""), attributes.get("color", ""))
            for source, target, attributes in edges
        ]
        assert len(kinds) == len(set(kinds))


class TestMigrationDiagram:
    def test_every_edge_is_labelled_with_its_events(self, migration: tuple[set[str], list[Edge]]) -> None:
        _, edges = migration
        assert all(
            attributes["label"] == attributes["tooltip"] for source, _, attributes in edges if source != START_NODE
        )


@pytest.mark.parametrize("machine", sorted(DIAGRAMS))
def test_edges_join_declared_nodes_and_the_start_points_at_the_reset_state(machine: str) -> None:
    nodes, edges = parse_dot(DIAGRAMS[machine]())
    assert all(source in nodes and target in nodes for source, target, _ in edges)
    starts = [target for source, target, _ in edges if source == START_NODE]
    assert starts == [DevState.EMPTY.name if machine == "device" else MigState.IDLE.name]


@pytest.mark.parametrize("machine", sorted(DIAGRAMS))
def test_graphviz_renders_the_diagram(machine: str) -> None:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz's `dot` is not installed (apt-get install graphviz; .ci/run installs it)")
    result = subprocess.run(
        [dot, "-Tsvg"], input=DIAGRAMS[machine](), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout


@pytest.mark.parametrize(
    ("name", "machine"), [("device-state-diagram.rst", "device"), ("migration-state-diagram.rst", "migration")]
)
def test_the_spec_shows_the_current_diagram(name: str, machine: str) -> None:
    generated = (SPEC / GENERATED_DIR / name).read_text(encoding="utf-8")
    assert ".. graphviz::" in generated
    assert textwrap.indent(DIAGRAMS[machine](), "   ") in generated, "run `vfmig spec-generate`"


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_generated_file_is_included_by_a_chapter(name: str) -> None:
    chapters = "\n".join(path.read_text(encoding="utf-8") for path in SPEC.glob("*.rst"))
    assert f".. include:: {GENERATED_DIR}/{name}" in chapters


# --- the site's structure -------------------------------------------------------------------------

_TOCTREE = re.compile(r"^(?P<indent> *)\.\. toctree::\s*$")
_TITLED_ENTRY = re.compile(r".*<(?P<target>[^>]+)>$")


def _exclude_patterns() -> list[str]:
    """``exclude_patterns`` of docs/conf.py, read without running the file."""
    for node in ast.parse((DOCS / "conf.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "exclude_patterns" for target in node.targets
        ):
            patterns = ast.literal_eval(node.value)
            assert isinstance(patterns, list)
            return [str(pattern) for pattern in patterns]
    return []


def _pages() -> dict[str, Path]:
    """Every page Sphinx builds, by docname (docs/spec is a link to spec/ and is followed)."""
    excluded = _exclude_patterns()
    pages: dict[str, Path] = {}
    for directory, _, files in os.walk(DOCS, followlinks=True):
        for file in files:
            if not file.endswith(".rst"):
                continue
            relative = PurePosixPath(Path(directory, file).relative_to(DOCS).as_posix())
            candidates = [str(relative), *(str(parent) for parent in relative.parents if str(parent) != ".")]
            if any(fnmatch.fnmatch(candidate, pattern) for candidate in candidates for pattern in excluded):
                continue
            pages[str(relative.with_suffix(""))] = Path(directory, file)
    return pages


def _toctree_entries(text: str) -> Iterator[str]:
    """The documents that the toctree directives of one page list, as written."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _TOCTREE.match(lines[index])
        index += 1
        if not match:
            continue
        body = match["indent"] + " "
        while index < len(lines) and (not lines[index].strip() or lines[index].startswith(body)):
            entry = lines[index].strip()
            index += 1
            if not entry or entry.startswith((":", "..")):
                continue
            titled = _TITLED_ENTRY.match(entry)
            yield titled["target"] if titled else entry


def _resolve(docname: str, entry: str) -> str:
    if entry.startswith("/"):
        return entry.lstrip("/")
    parts: list[str] = []
    for part in (*PurePosixPath(docname).parent.parts, *PurePosixPath(entry).parts):
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def test_every_page_is_reachable_from_a_toctree() -> None:
    pages = _pages()
    assert {"index", "spec/index", "guides/index", "api/vfmig_proto"} <= set(pages)
    reached, todo = {"index"}, ["index"]
    while todo:
        docname = todo.pop()
        for entry in _toctree_entries(pages[docname].read_text(encoding="utf-8")):
            if entry == "self" or re.match(r"https?://", entry):
                continue
            target = _resolve(docname, entry)
            assert target in pages, f"{docname} lists {entry!r}, which is no page"
            if target not in reached:
                reached.add(target)
                todo.append(target)
    orphans = {name for name, path in pages.items() if path.read_text(encoding="utf-8").startswith(":orphan:")}
    assert set(pages) - reached - orphans == set()


def test_the_api_reference_documents_every_module_of_vfmig_proto() -> None:
    page = (DOCS / "api" / "vfmig_proto.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. automodule:: (\S+)$", page, flags=re.MULTILINE))
    package = Path(vfmig_proto.__file__).parent
    modules = {f"vfmig_proto.{path.stem}" for path in package.glob("*.py") if not path.stem.startswith("_")}
    assert documented == modules | {"vfmig_proto"}
