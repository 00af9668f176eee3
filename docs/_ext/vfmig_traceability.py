"""The ``vfm-traceability`` directive: the traceability matrix, built while the site builds.

The matrix comes from :mod:`conformance.traceability`, which reads the spec
and the conformance suites' source.  Every problem it finds (a MUST
requirement that no check names, a check naming an ID the spec does not
define) is reported as an error at the directive, and the build then fails
even without ``-W`` (the build's status is set to failure): a site whose
traceability page is wrong does not pass.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from conformance import traceability, traceability_pages
from conformance.verdicts import Target
from vfmig_proto.requirements import spec_directory

logger = logging.getLogger(__name__)
_PROBLEMS = "vfm_traceability_problems"


class TraceabilityDirective(SphinxDirective):
    """``.. vfm-traceability::``: coverage per target and a table per spec section."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self._depend_on_sources()
        matrix = traceability.build_matrix()
        problems = matrix.problems()
        for problem in problems:
            logger.error("traceability: %s", problem.message, location=self.get_location())
        found: dict[str, list[str]] = getattr(self.env, _PROBLEMS, {})
        found[self.env.docname] = [problem.message for problem in problems]
        setattr(self.env, _PROBLEMS, found)
        holder = nodes.Element()
        lines = StringList(traceability_pages.render_rst(matrix), source=self.get_source_info()[0])
        nested_parse_with_titles(self.state, lines, holder)
        return list(holder.children)

    def _depend_on_sources(self) -> None:
        """Re-read this page whenever the spec or a suite changes (the page's own text never does)."""
        for path in sorted(spec_directory().glob("*.rst")):
            self.env.note_dependency(str(path))
        for target in Target:
            for source in traceability.suite_sources(target):
                if source.path:
                    self.env.note_dependency(source.path)


def _purge(app: Sphinx, env: Any, docname: str) -> None:
    getattr(env, _PROBLEMS, {}).pop(docname, None)


def _fail_on_problems(app: Sphinx, exception: BaseException | None) -> None:
    if exception is not None:
        return
    found: dict[str, list[str]] = getattr(app.env, _PROBLEMS, {})
    problems = [message for messages in found.values() for message in messages]
    if problems:
        logger.error("traceability: %d problem(s); the build fails", len(problems))
        app.statuscode = 1


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("vfm-traceability", TraceabilityDirective)
    app.connect("env-purge-doc", _purge)
    app.connect("build-finished", _fail_on_problems)
    return {"version": "0.1", "parallel_read_safe": False, "parallel_write_safe": True}
