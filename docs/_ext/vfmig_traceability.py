"""The ``vfm-traceability`` directive, and every requirement box one click from its checks.

The matrix comes from :mod:`conformance.traceability`, which reads the spec and the conformance suites'
source; it is built once per build.  Every problem it finds (a MUST requirement that no check names, a check
naming an ID the spec does not define) is reported as an error at the directive, and the build then fails
even without ``-W`` (the build's status is set to failure): a site whose traceability page is wrong does not
pass.

The page shows, in this order: coverage per target; the requirements no check of a target names, each with a
badge; a compact requirement x target matrix; the requirements that bind each target; a table per chapter
whose rows have anchors (``trace-vfm-cap-001``), the requirement's text as a tooltip of its ID, a linked
section and the names of the checks, each linked to its line in the highlighted source (Sphinx's viewcode
pages, to which this extension adds an anchor per line).

Every requirement box of the spec gets a "checked by" line per target it binds, with the same links, and a
link to its row of the traceability page.
"""

from __future__ import annotations

import posixpath
import re
import weakref
from collections.abc import Iterable
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from conformance import traceability, traceability_pages
from conformance.traceability import CheckSite, Matrix
from conformance.verdicts import Target
from vfmig_proto.requirements import Requirement, spec_directory

logger = logging.getLogger(__name__)
_PROBLEMS = "vfm_traceability_problems"
ROW_PREFIX = "trace-"
"""Anchor of a requirement's row on the traceability page: this prefix and the requirement's lower-case ID."""
_SECTION = re.compile(r"^(?P<number>\d+(?:\.\d+)*)\b")
CHECKED, UNCHECKED, NOT_BINDING = "\u2713", "\u2717", "\u2013"  # check mark, ballot x, en dash


def row_anchor(requirement_id: str) -> str:
    """The id of a requirement's row on the traceability page."""
    return ROW_PREFIX + requirement_id.lower()


_MATRICES: weakref.WeakKeyDictionary[BuildEnvironment, Matrix] = weakref.WeakKeyDictionary()
"""The matrix of each build (its environment), built on first use and never pickled with the environment."""


def matrix_of(env: BuildEnvironment) -> Matrix:
    """The traceability matrix of this build, built on first use."""
    matrix = _MATRICES.get(env)
    if matrix is None:
        matrix = _MATRICES[env] = traceability.build_matrix()
    return matrix


class source_link(nodes.Inline, nodes.TextElement):  # noqa: N801 - docutils names node classes in lower case
    """A check's name, linked to its line in the highlighted source once the viewcode pages are known."""


class TraceabilityDirective(SphinxDirective):
    """``.. vfm-traceability::``: coverage, unchecked requirements, the matrix and a table per spec chapter."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self._depend_on_sources()
        matrix = matrix_of(self.env)
        problems = matrix.problems()
        for problem in problems:
            logger.error("traceability: %s", problem.message, location=self.get_location())
        found: dict[str, list[str]] = getattr(self.env, _PROBLEMS, {})
        found[self.env.docname] = [problem.message for problem in problems]
        setattr(self.env, _PROBLEMS, found)
        return [
            _coverage_table(matrix),
            *_unchecked_section(matrix),
            *_matrix_section(matrix),
            *_binding_section(matrix),
            *_chapter_sections(matrix),
        ]

    def _depend_on_sources(self) -> None:
        """Re-read this page whenever the spec or a suite changes (the page's own text never does)."""
        for path in sorted(spec_directory().glob("*.rst")):
            self.env.note_dependency(str(path))
        for target in Target:
            for source in traceability.suite_sources(target):
                if source.path:
                    self.env.note_dependency(source.path)


# ------------------------------------------------------------------------------------- building blocks


def _paragraph(*children: nodes.Node | str, classes: Iterable[str] = ()) -> nodes.paragraph:
    paragraph = nodes.paragraph(classes=list(classes))
    for child in children:
        paragraph += nodes.Text(child) if isinstance(child, str) else child
    return paragraph


def _table(
    header: list[str], rows: Iterable[tuple[list[nodes.Node], list[str]]], widths: list[int], classes: list[str]
) -> nodes.table:
    """A table; each row is its cells (one node each) and the row's ids."""
    table = nodes.table(classes=classes)
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    group += head
    head_row = nodes.row()
    head += head_row
    for title in header:
        head_row += nodes.entry("", _paragraph(title))
    body = nodes.tbody()
    group += body
    for cells, ids in rows:
        row = nodes.row(ids=ids)
        body += row
        for cell in cells:
            row += nodes.entry("", cell)
    return table


def _section(title: str, name: str, *content: nodes.Node) -> nodes.section:
    section = nodes.section(ids=[name], names=[name])
    section += nodes.title(title, title)
    section.extend(content)
    return section


def requirement_ref(requirement_id: str) -> addnodes.pending_xref:
    """A link to a requirement's box, as ``:vfm:req:`` writes it (its text shows as the link's tooltip)."""
    literal = nodes.literal(requirement_id, requirement_id, classes=["xref", "vfm", "vfm-req"])
    return addnodes.pending_xref(
        "", literal, refdomain="vfm", reftype="req", reftarget=requirement_id, refexplicit=False, refwarn=True
    )


def _row_ref(requirement_id: str, text: nodes.Node) -> nodes.reference:
    return nodes.reference("", "", text, refid=row_anchor(requirement_id), classes=["vfm-matrix-link"])


def _section_ref(section: str) -> nodes.Node:
    """The spec section of a requirement (``4.3.1 IDLE``), linked to its label (``spec-4-3-1``)."""
    match = _SECTION.match(section)
    if match is None:
        return nodes.Text(section)
    label = "spec-" + match["number"].replace(".", "-")
    inline = nodes.inline(section, section)
    return addnodes.pending_xref(
        "", inline, refdomain="std", reftype="ref", reftarget=label, refexplicit=True, refwarn=True
    )


def _badge(text: str, kind: str) -> nodes.inline:
    return nodes.inline(text, text, classes=["vfm-badge", f"vfm-badge-{kind}"])


def _distinct_functions(sites: Iterable[CheckSite]) -> list[CheckSite]:
    """One site per (module, function): the first line where it names the requirement."""
    first: dict[tuple[str, str], CheckSite] = {}
    for site in sorted(sites, key=lambda site: (site.module, site.function, site.line)):
        first.setdefault((site.module, site.function), site)
    return list(first.values())


def _source_link(site: CheckSite) -> source_link:
    name = site.function
    link = source_link(name, name, module=site.module, line=site.line)
    tip = f"{site.kind.value} in {site.module}, line {site.line}"
    if site.reached_from:
        tip += ", reached from " + ", ".join(site.reached_from)
    link["reftitle"] = tip
    return link


def checks_paragraph(matrix: Matrix, requirement: Requirement, target: Target) -> nodes.paragraph:
    """``device: name, name`` (each linked to its source), or the target and an "unchecked" badge."""
    paragraph = _paragraph(nodes.strong(target.value, target.value), ": ", classes=["vfm-checked-by"])
    sites = _distinct_functions(matrix.sites_of(requirement.id, target))
    if not sites:
        paragraph += _badge("unchecked", "unchecked")
    for index, site in enumerate(sites):
        if index:
            paragraph += nodes.Text(", ")
        paragraph += _source_link(site)
    return paragraph


# --------------------------------------------------------------------------------------------- the page


def _coverage_table(matrix: Matrix) -> nodes.table:
    rows = [
        (
            [_paragraph(target.value), _paragraph(f"{done} of {total}"), _paragraph(f"{checked} of {every}")],
            [],
        )
        for target, done, total, checked, every in traceability_pages.coverage(matrix)
    ]
    table = _table(["Target", "MUST / MUST NOT checked", "All checked"], rows, [20, 40, 40], ["vfm-coverage-table"])
    table.insert(0, nodes.title("", "Requirements with a check, per conformance target"))
    return table


def _unchecked(matrix: Matrix) -> list[tuple[Requirement, list[Target]]]:
    found = []
    for requirement in matrix.requirements:
        targets = [target for target in matrix.targets_of(requirement) if not matrix.sites_of(requirement.id, target)]
        if targets:
            found.append((requirement, targets))
    return found


def _unchecked_section(matrix: Matrix) -> list[nodes.Node]:
    unchecked = _unchecked(matrix)
    if not unchecked:
        content: list[nodes.Node] = [_paragraph("Every requirement is checked for every target it binds.")]
    else:
        items = nodes.bullet_list(classes=["vfm-unchecked-list"])
        for requirement, targets in unchecked:
            item = _paragraph(_badge("unchecked", "unchecked"), " ", requirement_ref(requirement.id), " ")
            item += nodes.Text(f"{requirement.keyword.value}, for {', '.join(t.value for t in targets)} (")
            item += _row_ref(requirement.id, nodes.Text("row"))
            item += nodes.Text(")")
            items += nodes.list_item("", item)
        content = [
            _paragraph(f"{len(unchecked)} requirement(s) that no check of a target they bind names:"),
            items,
        ]
    return [_section("Requirements without a check", "trace-unchecked", *content)]


def _matrix_cell(matrix: Matrix, requirement: Requirement, target: Target) -> nodes.Node:
    if target not in matrix.targets_of(requirement):
        return _paragraph(_badge(NOT_BINDING, "none"))
    count = len(_distinct_functions(matrix.sites_of(requirement.id, target)))
    if not count:
        return _paragraph(_badge(UNCHECKED, "unchecked"))
    mark = _badge(f"{CHECKED} {count}", "checked")
    return _paragraph(_row_ref(requirement.id, mark))


def _matrix_section(matrix: Matrix) -> list[nodes.Node]:
    """One small table per chapter, side by side where the column has room: the matrix at a glance."""
    legend = _paragraph(
        f"{CHECKED} n: checked by n checks (a link to the requirement's row); {UNCHECKED}: binds the target "
        f"but no check names it; {NOT_BINDING}: does not bind the target."
    )
    grid = nodes.container(classes=["vfm-matrix-grid"])
    for path, requirements in _by_chapter(matrix).items():
        rows = [
            (
                [
                    _paragraph(requirement_ref(requirement.id)),
                    *(_matrix_cell(matrix, requirement, target) for target in Target),
                ],
                [],
            )
            for requirement in requirements
        ]
        table = _table(
            ["Requirement", *(target.value[:3] for target in Target)],
            rows,
            [40, *(20 for _ in Target)],
            ["vfm-matrix", "vfm-compact"],
        )
        title = traceability_pages._chapter_title(path)
        table.insert(0, nodes.title(title, title))
        grid += table
    note = _paragraph("Columns: dev = device, bri = bridge, hyp = hypervisor.", classes=["vfm-matrix-note"])
    return [_section("Requirement x target", "trace-matrix", legend, note, grid)]


def _by_chapter(matrix: Matrix) -> dict[str, list[Requirement]]:
    chapters: dict[str, list[Requirement]] = {}
    for requirement in matrix.requirements:
        chapters.setdefault(requirement.path, []).append(requirement)
    return chapters


def _binding_section(matrix: Matrix) -> list[nodes.Node]:
    section = _section("Requirements that bind each target", "requirements-that-bind-each-target")
    for target in Target:
        roles = " and ".join(sorted(role.value for role in target.roles))
        binding = [requirement for requirement in matrix.requirements if requirement.roles & target.roles]
        section += _paragraph(
            nodes.strong(target.value, target.value), f" (roles {roles}), {len(binding)} requirements:"
        )
        items = nodes.bullet_list()
        for keyword in dict.fromkeys(requirement.keyword for requirement in binding):
            ids = [requirement.id for requirement in binding if requirement.keyword is keyword]
            item = _paragraph(f"{keyword.value} ({len(ids)}): ")
            for index, requirement_id in enumerate(ids):
                if index:
                    item += nodes.Text(", ")
                item += requirement_ref(requirement_id)
            items += nodes.list_item("", item)
        section += items
    return [section]


def _checks_cell(matrix: Matrix, requirement: Requirement) -> nodes.Node:
    targets = matrix.targets_of(requirement)
    if not targets:
        return _paragraph(nodes.emphasis("", "binds no conformance target"))
    cell = nodes.container(classes=["vfm-checks-cell"])
    for target in targets:
        cell += checks_paragraph(matrix, requirement, target)
    return cell


def _requirement_cell(requirement: Requirement) -> nodes.Node:
    cell = nodes.container()
    cell += _paragraph(requirement_ref(requirement.id), f" {requirement.keyword.value}")
    text = " ".join(requirement.text.replace("``", "").split())
    cell += _paragraph(text, classes=["vfm-requirement-text"])
    return cell


def _chapter_sections(matrix: Matrix) -> list[nodes.Node]:
    sections: list[nodes.Node] = []
    for path, requirements in _by_chapter(matrix).items():
        title = traceability_pages._chapter_title(path)
        rows = [
            (
                [
                    _requirement_cell(requirement),
                    _paragraph(_section_ref(requirement.section)),
                    _checks_cell(matrix, requirement),
                ],
                [row_anchor(requirement.id)],
            )
            for requirement in requirements
        ]
        table = _table(
            ["Requirement", "Section", "Checked by, in the suite of each target it binds"],
            rows,
            [44, 16, 40],
            ["vfm-trace-table"],
        )
        name = "trace-" + path.removesuffix(".rst")
        sections.append(_section(title, name, table))
    return sections


# ------------------------------------------------------------------------------- the requirement boxes


def _traceability_doc(app: Sphinx) -> str | None:
    found: dict[str, list[str]] = getattr(app.env, _PROBLEMS, {})
    return next(iter(sorted(found)), None)


def add_checks_to_boxes(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Each requirement box: a "checked by" line per target it binds and a link to its traceability row."""
    boxes = [box for box in doctree.findall(nodes.container) if "vfm-requirement" in box["classes"]]
    if not boxes:
        return
    matrix = matrix_of(app.env)
    requirements = {requirement.id: requirement for requirement in matrix.requirements}
    page = _traceability_doc(app)
    for box in boxes:
        requirement = requirements.get(box.get("vfm_requirement", ""))
        if requirement is None:
            continue
        footer = nodes.container(classes=["vfm-requirement-checks"])
        for target in matrix.targets_of(requirement):
            footer += checks_paragraph(matrix, requirement, target)
        if page is not None:
            uri = app.builder.get_relative_uri(docname, page) + "#" + row_anchor(requirement.id)
            link = nodes.reference("", "its row in the traceability matrix", refuri=uri, classes=["vfm-trace-link"])
            footer += _paragraph(link, classes=["vfm-checked-by"])
        box.append(footer)


def resolve_source_links(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Each check's name: a link to its line on the module's viewcode page, or plain code without one."""
    pages: dict[str, Any] = getattr(app.env, "_viewcode_modules", {})
    for link in list(doctree.findall(source_link)):
        module, line = link["module"], link["line"]
        code = nodes.literal(link.astext(), link.astext(), classes=["vfm-check-name"])
        if pages.get(module) and app.builder.format == "html":
            page = "_modules/" + module.replace(".", "/")
            uri = app.builder.get_relative_uri(docname, page) + f"#line-{line}"
            replacement: nodes.Node = nodes.reference("", "", code, refuri=uri, reftitle=link["reftitle"])
        else:
            replacement = code
        link.replace_self(replacement)


_LINE_NUMBER = re.compile(r'<span class="linenos">(?P<pad>\s*)(?P<number>\d+)</span>')
_BACK_LINK = re.compile(r'<a class="viewcode-back" href="(?P<page>[^"#]*)#(?P<fragment>[^"]+)">')
_INDEX_ENTRY = re.compile(r'<li><a href="(?P<page>[^"]+)\.html">(?P<module>[\w.]+)</a></li>')


def anchor_source_lines(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: nodes.document | None
) -> None:
    """Viewcode pages: an anchor per line (``#line-12``), and links back to the docs that lead somewhere.

    Viewcode links an object back to ``page#module.Name`` with the module it was defined in; an object that a
    package re-exports is documented under the package's name, on its page, so that id does not exist.  The
    link goes to the object of the same name documented on that page instead.  The index of the source pages
    lists modules without source (``builtins``) that have no page: they are left out.
    """
    if not pagename.startswith("_modules/") or "body" not in context:
        return
    body = _LINE_NUMBER.sub(
        lambda match: f'<span class="linenos" id="line-{match["number"]}">{match["pad"]}{match["number"]}</span>',
        context["body"],
    )
    body = _BACK_LINK.sub(lambda match: _back_link(app, pagename, match), body)
    if pagename == "_modules/index":
        pages: dict[str, Any] = getattr(app.env, "_viewcode_modules", {})
        body = _INDEX_ENTRY.sub(lambda match: match[0] if pages.get(match["module"]) else "", body)
    context["body"] = body


def _back_link(app: Sphinx, pagename: str, match: re.Match[str]) -> str:
    fragment = match["fragment"]
    objects = app.env.get_domain("py").data.get("objects", {})
    if fragment in objects:
        entry = objects[fragment]
        return (
            f'<a class="viewcode-back" href="{app.builder.get_relative_uri(pagename, entry.docname)}#{entry.node_id}">'
        )
    page = posixpath.normpath(posixpath.join(posixpath.dirname(pagename), match["page"])).removesuffix(".html")
    module = fragment.split(".")
    for split in range(1, len(module)):
        qualname = ".".join(module[split:])
        found = [
            (name, entry)
            for name, entry in objects.items()
            if entry.docname == page and name.endswith("." + qualname) and not entry.aliased
        ]
        if len(found) == 1:
            return f'<a class="viewcode-back" href="{match["page"]}#{found[0][1].node_id}">'
    return match[0]


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


def _visit_source_link(self: Any, node: source_link) -> None:
    raise nodes.SkipNode  # replaced before writing; never reached in a normal build


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_node(source_link, html=(_visit_source_link, None))
    app.add_directive("vfm-traceability", TraceabilityDirective)
    app.connect("env-purge-doc", _purge)
    app.connect("doctree-resolved", add_checks_to_boxes, priority=400)
    app.connect("doctree-resolved", resolve_source_links, priority=600)
    app.connect("html-page-context", anchor_source_lines)
    app.connect("build-finished", _fail_on_problems)
    return {"version": "0.2", "parallel_read_safe": False, "parallel_write_safe": True}
