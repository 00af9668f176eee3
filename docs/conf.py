"""Sphinx configuration of the vfmig site: the normative spec, guides and the API reference.

The site builds offline: no intersphinx, no diagrams or scripts fetched at view time.  The state
diagrams are Graphviz sources generated into ``spec/generated/`` and rendered to SVG by the ``dot``
binary while the site builds.
"""

from __future__ import annotations

import sys
from pathlib import Path

_DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(_DOCS / "_ext"))
# The API reference imports the packages from this checkout, installed or not.
sys.path.insert(0, str(_DOCS.parent))

project = "vfmig"
author = "The vfmig authors"
copyright = "2026, The vfmig authors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "sphinx.ext.viewcode",
    # A copy button on every code block; the extension ships its script and styles, so it works offline.
    "sphinx_copybutton",
    "vfmig_autodoc",
    "vfmig_sphinx",
    "vfmig_examples",
    "vfmig_traceability",
    # The results page: the reference's verdicts, run while the site builds, and the detection campaign.
    "vfmig_results",
    # The architecture page's import graph, read from the code with grimp while the site builds.
    "vfmig_imports",
    "vfmig_site",
]

# spec/ is linked into docs/ as docs/spec; the generated tables are included by the chapters.
exclude_patterns = ["_build", "spec/generated/*"]

html_theme = "furo"
html_title = "vfmig"
html_static_path = ["_static"]
html_css_files = ["vfmig.css"]

# Every cross-reference must resolve (sphinx-build -n): a broken link is a build error.
nitpicky = True
nitpick_ignore_regex = [
    # Without intersphinx (the build is offline) names of the standard library and of Construct
    # have no page to link to.  They are genuinely external; everything of vfmig must resolve.
    ("py:class", r"(collections\.abc|typing|enum|pathlib|dataclasses|functools|re)\.\w+"),
    ("py:class", r"construct\.[\w.]+|cs\.[\w.]+"),
    ("py:class", r"numpy\.[\w.]+|np\.[\w.]+|npt\.[\w.]+"),
    ("py:class", r"rich\.[\w.]+"),
    ("py:class", r"hypothesis\.[\w.]+|(datetime|os|xml\.etree\.ElementTree)\.\w+"),
    ("py:class", r"_P|_R|conformance\.checks\._R|_?pytest\.[\w.]+"),
    ("py:class", r"(types|multiprocessing\.connection|typing)\.\w+"),
    ("py:mod", r"multiprocessing"),
]

# Search ranks the specification's pages before the API reference (see the file).
html_search_scorer = str(_DOCS / "_ext" / "search_scorer.js")

# -- viewcode: line numbers, which vfmig_traceability turns into anchors (#line-12) for the checks' links --
viewcode_line_numbers = True

# -- graphviz: SVG rendered at build time by the local `dot` ---------------------------------------
graphviz_output_format = "svg"

# -- autodoc ---------------------------------------------------------------------------------------
autodoc_default_options = {
    "members": True,
    "member-order": "bysource",
    "show-inheritance": True,
}
autodoc_typehints = "signature"
autodoc_preserve_defaults = False
python_use_unqualified_type_names = True

# The pytest plugin's modules import pytest, which the docs environment does not install.
autodoc_mock_imports = ["pytest", "_pytest", "xdist"]
