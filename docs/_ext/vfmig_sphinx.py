"""Sphinx support for the vfmig spec: the ``vfm`` domain.

``.. vfm:requirement:: VFM-CAP-001`` renders a requirement with an anchor
named after its ID and a permalink (the pilcrow after the ID), and
``:vfm:req:`VFM-CAP-001``` links to it, the requirement's text as the link's
tooltip.  The directive's options and body follow the form that
:mod:`vfmig_proto.requirements` parses; this extension only presents them
(``vfmig_traceability`` adds the checks of each box).

Requirements are objects of the search index with Sphinx's "important"
priority, so that a search lists them before Python attributes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.builders import Builder
from sphinx.domains import Domain, ObjType
from sphinx.environment import BuildEnvironment
from sphinx.roles import XRefRole
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import make_refnode


def _anchor(req_id: str) -> str:
    return req_id.lower()


_IMPORTANT = 0
"""Search priority of Sphinx's "important" objects, ranked before ordinary ones (1), such as Python attributes."""


def _plain(content: Iterable[str]) -> str:
    """A requirement's body on one line, without inline-literal marks: the text of a tooltip."""
    return " ".join(" ".join(content).replace("``", "").split())


class RequirementDirective(SphinxDirective):
    """``.. vfm:requirement:: ID`` with ``:keyword:`` and ``:roles:``."""

    required_arguments = 1
    has_content = True
    option_spec: ClassVar[dict[str, Any]] = {
        "keyword": directives.unchanged_required,
        "roles": directives.unchanged_required,
    }

    def run(self) -> list[nodes.Node]:
        req_id = self.arguments[0]
        keyword = self.options.get("keyword", "")
        roles = ", ".join(role.strip() for role in self.options.get("roles", "").split(","))
        level = keyword.split()[0].lower() if keyword else "must"
        box = nodes.container(classes=["vfm-requirement", f"vfm-{level}"], ids=[_anchor(req_id)])
        box["vfm_requirement"] = req_id
        head = nodes.paragraph(classes=["vfm-requirement-head"])
        head += nodes.strong(text=req_id)
        head += nodes.reference("", "¶", refid=_anchor(req_id), classes=["headerlink"], reftitle=f"Link to {req_id}")
        head += nodes.Text(f"  {keyword} · binds: {roles}")
        box += head
        self.state.nested_parse(self.content, self.content_offset, box)
        domain = self.env.get_domain("vfm")
        assert isinstance(domain, VfmDomain)
        domain.note_requirement(req_id, self.env.docname, keyword, roles)
        domain.texts[req_id] = _plain(self.content)
        return [box]


class VfmDomain(Domain):
    """The ``vfm`` domain: requirements of the vfmig spec."""

    name = "vfm"
    label = "vfmig"
    object_types: ClassVar[dict[str, ObjType]] = {"requirement": ObjType("requirement", "req")}
    directives: ClassVar[dict[str, Any]] = {"requirement": RequirementDirective}
    roles: ClassVar[dict[str, Any]] = {"req": XRefRole()}
    initial_data: ClassVar[dict[str, Any]] = {"requirements": {}, "texts": {}}

    @property
    def requirements(self) -> dict[str, tuple[str, str, str]]:
        """ID -> (docname, keyword, roles)."""
        data: dict[str, tuple[str, str, str]] = self.data["requirements"]
        return data

    @property
    def texts(self) -> dict[str, str]:
        """ID -> the requirement's text on one line, for tooltips."""
        data: dict[str, str] = self.data.setdefault("texts", {})
        return data

    def note_requirement(self, req_id: str, docname: str, keyword: str, roles: str) -> None:
        self.requirements[req_id] = (docname, keyword, roles)

    def clear_doc(self, docname: str) -> None:
        for req_id, (doc, _, _) in list(self.requirements.items()):
            if doc == docname:
                del self.requirements[req_id]
                self.texts.pop(req_id, None)

    def merge_domaindata(self, docnames: Iterable[str], otherdata: dict[str, Any]) -> None:
        wanted = set(docnames)
        for req_id, entry in otherdata["requirements"].items():
            if entry[0] in wanted:
                self.requirements[req_id] = entry
                self.texts[req_id] = otherdata.get("texts", {}).get(req_id, "")

    def resolve_xref(
        self,
        env: BuildEnvironment,
        fromdocname: str,
        builder: Builder,
        typ: str,
        target: str,
        node: pending_xref,
        contnode: nodes.Element,
    ) -> nodes.reference | None:
        entry = self.requirements.get(target)
        if entry is None:
            return None
        return make_refnode(builder, fromdocname, entry[0], _anchor(target), contnode, self.texts.get(target, target))

    def resolve_any_xref(
        self,
        env: BuildEnvironment,
        fromdocname: str,
        builder: Builder,
        target: str,
        node: pending_xref,
        contnode: nodes.Element,
    ) -> list[tuple[str, nodes.reference]]:
        ref = self.resolve_xref(env, fromdocname, builder, "req", target, node, contnode)
        return [("vfm:req", ref)] if ref is not None else []

    def get_objects(self) -> Iterable[tuple[str, str, str, str, str, int]]:
        for req_id, (docname, _, _) in self.requirements.items():
            yield req_id, req_id, "requirement", docname, _anchor(req_id), _IMPORTANT


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_domain(VfmDomain)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
