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
"""

from __future__ import annotations

import importlib
from typing import Any

from docutils import nodes
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


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("missing-reference", resolve_imported_name)
    app.connect("autodoc-process-signature", show_factory_defaults)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
