"""The ``vfm-import-graph`` directive: the packages' import graph, computed from the code while the site builds.

The graph is read with grimp (the library under import-linter, which enforces the same layering in
``tox -e lint``) and drawn by ``sphinx.ext.graphviz``, so the architecture page shows the imports the code
has, never a drawing that has drifted from it.  Without ``:expand:`` each package is one node; with it,
the named package is opened into its modules and subpackages, each of the others still one node.  An edge
says how many module-to-module imports it stands for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import grimp
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.ext.graphviz import Graphviz

PACKAGES = ("conformance", "reference_impl", "vfmig_proto")
"""The packages of the repository, top layer first."""

_FILL = {"conformance": "#e8f0fe", "reference_impl": "#e6f4ea", "vfmig_proto": "#fff4d6"}


def _node_of(module: str, expand: str | None) -> str:
    """The node ``module`` is drawn in: its package, or its first level below the expanded package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == expand and len(parts) > 1 else parts[0]


def import_edges(packages: Sequence[str], expand: str | None = None) -> Counter[tuple[str, str]]:
    """Imports between the nodes of the graph, each counted once per importing and imported module."""
    graph = grimp.build_graph(*packages, cache_dir=None)
    edges: Counter[tuple[str, str]] = Counter()
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            source, target = _node_of(importer, expand), _node_of(imported, expand)
            if source != target:
                edges[source, target] += 1
    return edges


def import_graph_dot(packages: Sequence[str] = PACKAGES, expand: str | None = None) -> list[str]:
    """The Graphviz source of the import graph of ``packages`` (``expand`` opened into its modules)."""
    edges = import_edges(packages, expand)
    names = sorted({name for edge in edges for name in edge} | {name for name in packages if name != expand})
    lines = [
        "digraph imports {",
        '  graph [rankdir="TB", bgcolor="transparent", fontname="Helvetica", nodesep="0.3", ranksep="0.5"];',
        '  node [shape="box", style="rounded,filled", fontname="Helvetica", fontsize="11"];',
        '  edge [fontname="Helvetica", fontsize="9", arrowsize="0.6", color="#666666"];',
    ]
    for name in names:
        label = name.split(".", 1)[1] if "." in name else name
        lines.append(f'  "{name}" [label="{label}", fillcolor="{_FILL.get(name.split(".")[0], "white")}"];')
    if expand is not None:
        inside = [name for name in names if name.startswith(f"{expand}.")]
        lines.append(f'  subgraph "cluster_{expand}" {{')
        lines.append(f'    label="{expand}"; style="rounded"; color="#999999"; fontname="Helvetica";')
        lines += [f'    "{name}";' for name in inside]
        lines.append("  }")
    for (source, target), count in sorted(edges.items()):
        label = f' [label="{count}"]' if expand is None else ""
        lines.append(f'  "{source}" -> "{target}"{label};')
    lines.append("}")
    return lines


class ImportGraphDirective(Graphviz):
    """``.. vfm-import-graph::`` with Graphviz's options (``:caption:``, ``:alt:``...) and ``:expand: PACKAGE``."""

    has_content = False
    required_arguments = 0
    optional_arguments = 0
    option_spec: ClassVar[dict[str, Any]] = {**Graphviz.option_spec, "expand": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        for package in PACKAGES:
            for source in sorted((Path(__file__).resolve().parents[2] / package).rglob("*.py")):
                self.env.note_dependency(str(source))
        self.content = StringList(import_graph_dot(PACKAGES, self.options.get("expand")), source="vfm-import-graph")
        return super().run()


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.setup_extension("sphinx.ext.graphviz")
    app.add_directive("vfm-import-graph", ImportGraphDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
