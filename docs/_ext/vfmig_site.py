"""Fixes to the HTML that furo writes: each id once per page.

furo wraps every table (and display math) in a ``div.table-wrapper`` so that a wide one can scroll, and copies
all of the table's attributes onto the wrapper, its ids among them: the page then has each table id twice, which
is invalid HTML and makes ``#id`` links and ``getElementById`` pick the wrapper by chance.  The id stays on the
table, where the label put it.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

_WRAPPERS = ("table-wrapper", "math-wrapper")


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


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_post_transform(DropWrapperIds)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
