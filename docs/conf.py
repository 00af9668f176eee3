"""Sphinx configuration of the vfmig site: the normative spec plus guides."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "vfmig"
author = "The vfmig authors"
copyright = "2026, The vfmig authors"

extensions = ["vfmig_sphinx"]

# spec/ is linked into docs/ as docs/spec; the generated tables are included by the chapters.
exclude_patterns = ["_build", "spec/generated/*"]

html_theme = "furo"
html_title = "vfmig"
html_static_path = ["_static"]
html_css_files = ["vfmig.css"]

nitpicky = True
