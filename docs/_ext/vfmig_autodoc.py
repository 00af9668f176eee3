"""Autodoc support for the vfmig API reference.

Two fixes that keep the reference's cross-references exact under ``sphinx-build -n``:

* A docstring may name a class its module imported, as in ``:class:`DecodeError``` in
  :mod:`vfmig_proto.codec`.  Python resolves that name in the module's namespace; Sphinx only
  looks for an object documented under the module's own name.  :func:`resolve_imported_name`
  resolves it the way Python does, to the object's documented home (``vfmig_proto.errors``),
  and otherwise to the one documented object of the project with that name, if there is exactly
  one: the search Sphinx makes for a reference written as ``.DecodeError``.
* A dataclass field with ``default_factory`` shows its default as ``<factory>``, which is not
  Python, so Sphinx cannot parse the signature.  It is shown as ``...`` instead.

And one fix that keeps the reference readable: the value of a module's table (a register list, a transition
table, the fault catalogue) is not printed as a repr thousands of characters long.  A value longer than
:data:`LONGEST_SHOWN_VALUE` characters is left out; the entry links to the table's rendering in the
specification when there is one, and otherwise says where the value is (the module's source).
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.domains.python import PythonDomain
from sphinx.environment import BuildEnvironment

PROJECT_PACKAGES = frozenset({"vfmig_proto", "reference_impl", "conformance"})
"""Packages whose imported names are resolved; a name from anywhere else stays unresolved."""


def resolve_imported_name(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    """Resolve a Python reference to a name that the current module imported from a project module."""
    module_name = node.get("py:module")
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py" or not module_name or module_name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    full_name = _imported_name(module_name, target) or _unique_name(env, target, node["reftype"])
    if full_name is None or full_name == f"{module_name}.{target}":
        return None  # Sphinx already looked for it there
    domain = env.get_domain("py")
    found: nodes.reference | None = domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], full_name, node, contnode
    )
    return found


def _imported_name(module_name: str, target: str) -> str | None:
    """The full name of what ``target`` means inside ``module_name``, if a project module defines it."""
    head, _, rest = target.partition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    obj = getattr(module, head, None)
    defining, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(defining, str) or not isinstance(qualname, str):
        return None
    if defining.split(".")[0] not in PROJECT_PACKAGES:
        return None
    return ".".join(part for part in (defining, qualname, rest) if part)


def _unique_name(env: BuildEnvironment, target: str, reftype: str) -> str | None:
    """The full name of the only documented project object called ``target``, or None."""
    domain = env.get_domain("py")
    assert isinstance(domain, PythonDomain)
    matches = {
        name for name, _ in domain.find_obj(env, "", "", target, reftype, 1) if name.split(".")[0] in PROJECT_PACKAGES
    }
    return matches.pop() if len(matches) == 1 else None


def show_factory_defaults(
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: dict[str, Any],
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None]:
    """Replace a dataclass's ``<factory>`` default by ``...``, which Sphinx can parse."""
    if signature is not None and "<factory>" in signature:
        signature = signature.replace("<factory>", "...")
    return signature, return_annotation


LONGEST_SHOWN_VALUE = 200
"""Characters of a documented value's repr above which the reference leaves the value out."""

SPEC_RENDERINGS = {
    "HEADER_REGISTERS": "spec-3-2",
    "DEVICE_REGISTERS": "spec-3-2",
    "DEVICE_TRANSITIONS": "spec-device-transitions",
    "MIGRATION_TRANSITIONS": "spec-migration-transitions",
    "FANOUT": "spec-fanout",
    "SETTLED_STATES": "spec-settled",
    "CATCH_UP": "spec-catch-up",
    "BUS_MASTER_REJECTIONS": "spec-bus-master-rejections",
    "REPORT_EVENTS": "spec-device-events",
}
"""Tables of :mod:`vfmig_proto` (by name) and the label of the specification's table generated from them."""


def _value_annotation(signature: addnodes.desc_signature) -> tuple[addnodes.desc_annotation, str] | None:
    """The ``= value`` part of a data or attribute signature, and the value's text."""
    for annotation in signature.findall(addnodes.desc_annotation):
        parts = [child for child in annotation.children if not isinstance(child, addnodes.desc_sig_space)]
        if parts and isinstance(parts[0], addnodes.desc_sig_punctuation) and parts[0].astext() == "=":
            return annotation, "".join(part.astext() for part in parts[1:])
    return None


def _value_note(name: str, length: int) -> nodes.paragraph:
    note = nodes.paragraph(classes=["vfm-value-left-out"])
    note += nodes.emphasis("", f"Its value ({length:,} characters) is not shown here: ")
    label = SPEC_RENDERINGS.get(name)
    if label is None:
        note += nodes.emphasis("", "read it in the module's source.")
        return note
    text = "its table in the specification"
    link = pending_xref(
        "", nodes.inline(text, text), refdomain="std", reftype="ref", reftarget=label, refexplicit=True, refwarn=True
    )
    note += link
    note += nodes.emphasis("", ".")
    return note


def hide_long_values(app: Sphinx, doctree: nodes.document) -> None:
    """Leave out the values of documented tables; say where to read them."""
    for entry in doctree.findall(addnodes.desc):
        if entry.get("domain") != "py" or entry.get("objtype") not in {"data", "attribute"}:
            continue
        for signature in entry.findall(addnodes.desc_signature):
            found = _value_annotation(signature)
            if found is None or len(found[1]) <= LONGEST_SHOWN_VALUE:
                continue
            annotation, value = found
            annotation.parent.remove(annotation)
            content = next(iter(entry.findall(addnodes.desc_content)), None)
            if content is not None:
                content.insert(0, _value_note(signature.get("fullname", "").split(".")[-1], len(value)))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("doctree-read", hide_long_values)
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("missing-reference", resolve_imported_name)
    app.connect("autodoc-process-signature", show_factory_defaults)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
