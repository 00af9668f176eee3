"""Fixes to the HTML that furo writes: each id once per page; diagrams that open full size.

furo wraps every table (and display math) in a ``div.table-wrapper`` so that a wide one can scroll, and copies
all of the table's attributes onto the wrapper, its ids among them: the page then has each table id twice, which
is invalid HTML and makes ``#id`` links and ``getElementById`` pick the wrapper by chance.  The id stays on the
table, where the label put it.

A text chart wider than a code block's usual 88 columns (the sequence chart of spec 4.1, about 106) gets the
class ``vfm-wide-text``: a smaller type makes it fit a desktop column, and on a phone it scrolls with a scroll
bar always shown, so nothing is silently cut on the right.

A Graphviz diagram is shown at its natural size (1 pt = 4/3 CSS px, so its fonts keep the size the generator
gave them) inside a box that scrolls when the diagram is wider than the column, and the picture is a link to
the SVG itself, which the browser opens full size (with each edge's events as a tooltip).
"""

from __future__ import annotations

import html
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.ext.graphviz import GraphvizError, graphviz, render_dot
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.writers.html5 import HTML5Translator

_WRAPPERS = ("table-wrapper", "math-wrapper")
logger = logging.getLogger(__name__)


class DropWrapperIds(SphinxPostTransform):
    """Removes from furo's wrappers the ids that the wrapped node keeps."""

    formats = ("html",)
    default_priority = 501  # furo's wrapping runs at 500

    def run(self, **kwargs: Any) -> None:
        for wrapper in self.document.findall(nodes.container):
            if not any(name in wrapper["classes"] for name in _WRAPPERS) or not wrapper.children:
                continue
            inner_ids = set(wrapper.children[0].get("ids", []))
            wrapper["ids"] = [node_id for node_id in wrapper["ids"] if node_id not in inner_ids]


WIDE_TEXT_COLUMNS = 88
"""Longest line of a literal block above which it is set in the smaller type of ``vfm-wide-text``."""
WIDE_TEXT_STEP = 8
"""Wide blocks are sized for their longest line rounded up to a multiple of this (``vfm-cols-104``)."""


class MarkWideText(SphinxPostTransform):
    """Marks literal blocks with lines longer than :data:`WIDE_TEXT_COLUMNS` for the smaller type that fits them.

    Such a block gets the classes ``vfm-wide-text`` and ``vfm-cols-N`` (its longest line, rounded up), which the
    style sheet turns into a type size that fits N columns in the content column.  A block that names no
    language is a text chart, not code: it is shown as plain text rather than guessed to be Python.
    """

    formats = ("html",)
    default_priority = 502

    def run(self, **kwargs: Any) -> None:
        for block in self.document.findall(nodes.literal_block):
            longest = max((len(line) for line in block.astext().splitlines()), default=0)
            if longest <= WIDE_TEXT_COLUMNS:
                continue
            columns = -(-longest // WIDE_TEXT_STEP) * WIDE_TEXT_STEP
            block["classes"].extend(["vfm-wide-text", f"vfm-cols-{columns}"])
            if block.get("language") in {None, "default"}:
                block["language"] = "text"


def visit_graphviz(self: HTML5Translator, node: graphviz) -> None:
    """A diagram as a picture that links to its SVG, in a box that scrolls rather than shrinks it."""
    try:
        relative, _ = render_dot(self, node["code"], node["options"], "svg", "graphviz", node.get("filename"))
    except GraphvizError as error:
        logger.warning("dot code %r: %s", node["code"], error, location=node)
        raise nodes.SkipNode from error
    if relative is None:
        raise nodes.SkipNode
    source = html.escape(relative.as_posix(), quote=True)
    alt = html.escape(node.get("alt", "diagram"), quote=True)
    self.body.append(
        f'<div class="graphviz vfm-diagram"><a class="vfm-diagram-open" href="{source}" '
        f'title="Open the diagram full size"><img src="{source}" alt="{alt}" class="graphviz vfm-diagram-image" />'
        f'</a></div>\n<p class="vfm-diagram-note"><a href="{source}">Open the diagram full size (SVG)</a></p>\n'
    )
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_post_transform(DropWrapperIds)
    app.add_post_transform(MarkWideText)
    app.setup_extension("sphinx.ext.graphviz")
    app.add_node(graphviz, override=True, html=(visit_graphviz, None))
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
