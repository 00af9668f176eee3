"""The traceability matrix presented: the site's page (reStructuredText), JSON and text for ``vfmig traceability``.

:mod:`conformance.traceability` builds the :class:`~conformance.traceability.Matrix` from the spec and the
suites' source; this module only writes it out.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from conformance.traceability import CheckSite, Matrix
from conformance.verdicts import Target
from vfmig_proto.requirements import Requirement, spec_directory
from vfmig_proto.states import Keyword


def coverage(matrix: Matrix) -> list[tuple[Target, int, int, int, int]]:
    """Per target: (target, mandatory checked, mandatory, all checked, all) requirements binding it."""
    rows = []
    for target in Target:
        binding = [requirement for requirement in matrix.requirements if requirement.roles & target.roles]
        checked = [requirement for requirement in binding if matrix.sites_of(requirement.id, target)]
        rows.append(
            (
                target,
                sum(requirement.is_mandatory for requirement in checked),
                sum(requirement.is_mandatory for requirement in binding),
                len(checked),
                len(binding),
            )
        )
    return rows


_LISTED_STEPS = 4
"""A helper reached from more steps than this says how many instead of naming them."""


def _site_text(site: CheckSite) -> str:
    text = f"``{site.function}`` ({site.kind.value}, line {site.line})"
    if len(site.reached_from) > _LISTED_STEPS:
        text += f" from {len(site.reached_from)} steps"
    elif site.reached_from:
        text += " from " + ", ".join(f"``{name}``" for name in site.reached_from)
    return text


def _chapter_title(path: str) -> str:
    """The title of a spec chapter (``path`` relative to the spec): the first line underlined with ``=``."""
    file = spec_directory() / path
    if not file.is_file():
        return Path(path).stem
    lines = file.read_text(encoding="utf-8").splitlines()
    for title, underline in itertools.pairwise(lines):
        if title.strip() and underline.startswith("===") and len(underline.strip()) >= len(title.strip()):
            return title.strip()
    return Path(path).stem


def _sites_cell(matrix: Matrix, requirement: Requirement) -> str:
    parts = []
    for target in matrix.targets_of(requirement):
        sites = list(dict.fromkeys(_site_text(site) for site in matrix.sites_of(requirement.id, target)))
        listed = "; ".join(sites) if sites else "*no check*"
        parts.append(f"**{target.value}**: {listed}")
    return " | ".join(parts) if parts else "*binds no conformance target*"


def _binding_lists(matrix: Matrix) -> list[str]:
    """A section listing, per target, the requirements that bind it (what a report of that target judges)."""
    title = "Requirements that bind each target"
    lines = [title, "-" * len(title), ""]
    for target in Target:
        roles = " and ".join(sorted(role.value for role in target.roles))
        binding = [requirement for requirement in matrix.requirements if requirement.roles & target.roles]
        lines.append(f"**{target.value}** (roles {roles}), {len(binding)} requirements:")
        lines.append("")
        for keyword in Keyword:
            ids = [f":vfm:req:`{req.id}`" for req in binding if req.keyword is keyword]
            if ids:
                lines.append(f"* {keyword.value} ({len(ids)}): {', '.join(ids)}")
        lines.append("")
    return lines


def render_rst(matrix: Matrix) -> list[str]:
    """The traceability page's body: coverage per target, then one table row per requirement."""
    lines = [
        ".. list-table:: Requirements with a check, per conformance target",
        "   :header-rows: 1",
        "",
        "   * - Target",
        "     - MUST / MUST NOT checked",
        "     - All checked",
    ]
    for target, mandatory_checked, mandatory, checked, total in coverage(matrix):
        lines += [
            f"   * - {target.value}",
            f"     - {mandatory_checked} of {mandatory}",
            f"     - {checked} of {total}",
        ]
    lines += ["", *_binding_lists(matrix)]
    chapters: dict[str, list[Requirement]] = {}
    for requirement in matrix.requirements:
        chapters.setdefault(requirement.path, []).append(requirement)
    for path, requirements in chapters.items():
        title = _chapter_title(path)
        lines += [title, "-" * len(title), ""]
        lines += [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 14 9 20 57",
            "",
            "   * - Requirement",
            "     - Keyword",
            "     - Section",
            "     - Checked by, in the suite of each target it binds",
        ]
        for requirement in requirements:
            lines += [
                f"   * - :vfm:req:`{requirement.id}`",
                f"     - {requirement.keyword.value}",
                f"     - {requirement.section}",
                f"     - {_sites_cell(matrix, requirement)}",
            ]
        lines.append("")
    return lines


def to_json(matrix: Matrix) -> dict[str, object]:
    """The matrix as plain data: coverage per target, every requirement's check sites, and the problems."""
    return {
        "coverage": [
            {"target": target.value, "mandatory_checked": done, "mandatory": total, "checked": checked, "all": every}
            for target, done, total, checked, every in coverage(matrix)
        ],
        "requirements": [
            {
                "id": requirement.id,
                "keyword": requirement.keyword.value,
                "section": requirement.section,
                "checks": {
                    target.value: [
                        {
                            "module": site.module,
                            "function": site.function,
                            "kind": site.kind.value,
                            "line": site.line,
                            "reached_from": list(site.reached_from),
                        }
                        for site in matrix.sites_of(requirement.id, target)
                    ]
                    for target in matrix.targets_of(requirement)
                },
            }
            for requirement in matrix.requirements
        ],
        "problems": [
            {
                "kind": type(problem).__name__,
                "target": problem.target.value,
                "requirement": problem.requirement,
                "message": problem.message,
            }
            for problem in matrix.problems()
        ],
    }


def render_text(matrix: Matrix) -> str:
    """A terminal summary: coverage per target and every problem."""
    lines = [
        f"{target.value:<11} MUST checked {done:>3}/{total:<3}  all checked {checked:>3}/{everything}"
        for target, done, total, checked, everything in coverage(matrix)
    ]
    problems = matrix.problems()
    lines.append(f"{len(problems)} problem(s)")
    lines += [f"  - {problem.message}" for problem in problems]
    return "\n".join(lines)
