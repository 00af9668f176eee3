"""The requirement index, read from the normative text in ``spec/``.

Every requirement in ``spec/*.rst`` is written as a directive::

    .. vfm:requirement:: VFM-CAP-001
       :keyword: MUST
       :roles: bridge

       The bridge MUST place the capability ...

The ID has the form ``VFM-<AREA>-<NNN>``; ``:keyword:`` is one of the RFC 2119
keywords of :class:`~vfmig_proto.states.Keyword`, and the text uses exactly
that one keyword; ``:roles:`` lists the roles (:class:`~vfmig_proto.states.Role`)
the requirement binds.  Anything else is a :class:`SpecFormatError` naming the
file and line: the index is only useful if it is complete.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from vfmig_proto.errors import SpecFormatError
from vfmig_proto.states import Keyword, Role

SPEC_DIR_ENV = "VFMIG_SPEC_DIR"
"""Environment variable that points the index at another ``spec/`` directory."""

DIRECTIVE = "vfm:requirement"

ID_PATTERN = re.compile(r"VFM-(?P<area>[A-Z]+)-(?P<number>\d{3})")
_DIRECTIVE_LINE = re.compile(rf"^\.\. {re.escape(DIRECTIVE)}::\s*(?P<id>\S*)\s*$")
_OPTION_LINE = re.compile(r"^   :(?P<name>[a-z]+):\s*(?P<value>.*?)\s*$")
_BCP14 = re.compile(
    r"\b(MUST NOT|MUST|SHALL NOT|SHALL|SHOULD NOT|SHOULD|NOT RECOMMENDED|RECOMMENDED|MAY|OPTIONAL|REQUIRED)\b"
)
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")


@dataclass(frozen=True)
class Requirement:
    """One normative requirement of the spec."""

    id: str
    keyword: Keyword
    roles: frozenset[Role]
    text: str
    path: str
    line: int
    section: str

    @property
    def area(self) -> str:
        """The ``<AREA>`` part of the ID."""
        match = ID_PATTERN.fullmatch(self.id)
        assert match is not None  # guaranteed by the parser
        return match["area"]

    @property
    def is_mandatory(self) -> bool:
        """True for MUST and MUST NOT."""
        return self.keyword.is_mandatory


PROJECT_NAME = "vfmig"
SPEC_MARKER = "index.rst"
"""The file that makes a directory named ``spec`` the spec (its table of contents, read by Sphinx)."""


def _names_vfmig(pyproject: Path) -> bool:
    """Whether ``pyproject`` is the vfmig project's (an unreadable or foreign one is not)."""
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    project = data.get("project")
    return isinstance(project, dict) and project.get("name") == PROJECT_NAME


def checkout_root(start: Path | None = None) -> Path | None:
    """The vfmig checkout that ``start`` (default: the working directory) is in, or None.

    A checkout is the first of ``start`` and its parents that holds a ``pyproject.toml`` naming the
    ``vfmig`` project and a ``spec/`` with its :data:`SPEC_MARKER`.  Both are asked for: a project
    that vendors a copy of vfmig's spec, or a directory that happens to be called ``spec``, is not one.
    """
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "spec" / SPEC_MARKER).is_file() and _names_vfmig(directory / "pyproject.toml"):
            return directory
    return None


def installed_spec() -> Path:
    """The copy of the spec that the installed package carries (``vfmig_proto/spec``)."""
    return Path(str(resources.files("vfmig_proto") / "spec"))


def spec_directory() -> Path:
    """Where the spec lives: ``$VFMIG_SPEC_DIR``; else the ``spec/`` of the checkout that the working
    directory is in (the text being edited, even when vfmig is installed from elsewhere); else the source
    tree the package is imported from; else the copy installed with the package.
    """
    override = os.environ.get(SPEC_DIR_ENV)
    if override:
        return Path(override)
    checkout = checkout_root()
    if checkout is not None:
        return checkout / "spec"
    source_tree = Path(__file__).resolve().parent.parent / "spec"
    if (source_tree / SPEC_MARKER).is_file():
        return source_tree
    return installed_spec()


def _section_titles(lines: list[str]) -> list[str]:
    """For each line, the title of the innermost section it is in ('' before the first title)."""
    titles: list[str] = []
    current = ""
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if (
            line.strip()
            and not line.startswith(" ")
            and _UNDERLINE.match(following)
            and len(following.strip()) >= len(line.strip())
        ):
            current = line.strip()
        titles.append(current)
    return titles


def _parse_block(lines: list[str], start: int, path: str, section: str) -> tuple[Requirement, int]:
    """Parse the directive that begins at ``lines[start]``; return it and the index after it."""
    line_no = start + 1
    match = _DIRECTIVE_LINE.match(lines[start])
    assert match is not None
    req_id = match["id"]
    if not ID_PATTERN.fullmatch(req_id):
        raise SpecFormatError(path, line_no, f"requirement ID {req_id!r} is not of the form VFM-<AREA>-<NNN>")
    options: dict[str, str] = {}
    index = start + 1
    while index < len(lines) and (option := _OPTION_LINE.match(lines[index])):
        options[option["name"]] = option["value"]
        index += 1
    unknown = set(options) - {"keyword", "roles"}
    if unknown or {"keyword", "roles"} - set(options):
        raise SpecFormatError(
            path, line_no, f"{req_id} needs exactly the options :keyword: and :roles:, has {sorted(options)}"
        )
    try:
        keyword = Keyword(options["keyword"])
    except ValueError:
        raise SpecFormatError(path, line_no, f"{req_id} has unknown keyword {options['keyword']!r}") from None
    try:
        roles = frozenset(Role(role.strip()) for role in options["roles"].split(",") if role.strip())
    except ValueError as exc:
        raise SpecFormatError(path, line_no, f"{req_id} names an unknown role: {exc}") from None
    if not roles:
        raise SpecFormatError(path, line_no, f"{req_id} binds no role")
    body: list[str] = []
    while index < len(lines) and (not lines[index].strip() or lines[index].startswith("   ")):
        body.append(lines[index].strip())
        index += 1
    text = " ".join(part for part in body if part)
    if not text:
        raise SpecFormatError(path, line_no, f"{req_id} has no text")
    used = _BCP14.findall(text)
    if used != [keyword.value]:
        raise SpecFormatError(
            path,
            line_no,
            f"{req_id} declares {keyword.value} but its text uses {used or 'no keyword'}; exactly one is allowed",
        )
    return Requirement(req_id, keyword, roles, text, path, line_no, section), index


def parse_requirements(text: str, path: str = "<string>") -> Iterator[Requirement]:
    """Every requirement directive in one reStructuredText document."""
    lines = text.splitlines()
    titles = _section_titles(lines)
    index = 0
    while index < len(lines):
        if lines[index].startswith(f".. {DIRECTIVE}::"):
            requirement, index = _parse_block(lines, index, path, titles[index])
            yield requirement
        else:
            index += 1


def load_requirements(directory: Path | None = None) -> tuple[Requirement, ...]:
    """All requirements of the spec in ``directory`` (default :func:`spec_directory`), in document order."""
    directory = directory or spec_directory()
    files = sorted(directory.rglob("*.rst"))
    if not files:
        raise SpecFormatError(str(directory), 0, "no .rst files: is this the spec directory?")
    found: list[Requirement] = []
    for file in files:
        found.extend(parse_requirements(file.read_text(encoding="utf-8"), str(file.relative_to(directory))))
    _check_unique(found)
    return tuple(found)


def _check_unique(requirements: Iterable[Requirement]) -> None:
    seen: dict[str, Requirement] = {}
    for requirement in requirements:
        first = seen.setdefault(requirement.id, requirement)
        if first is not requirement:
            raise SpecFormatError(
                requirement.path, requirement.line, f"{requirement.id} is already defined at {first.path}:{first.line}"
            )


@cache
def requirement_index() -> Mapping[str, Requirement]:
    """The spec's requirements by ID (read once per process)."""
    return {requirement.id: requirement for requirement in load_requirements()}


def requirement(req_id: str) -> Requirement:
    """The requirement ``req_id``; :class:`KeyError` naming it if the spec has none."""
    try:
        return requirement_index()[req_id]
    except KeyError:
        raise KeyError(f"the spec defines no requirement {req_id}") from None


def count_by_role_and_keyword(requirements: Iterable[Requirement]) -> Mapping[tuple[Role, Keyword], int]:
    """How many requirements bind each role with each keyword (a requirement counts once per role)."""
    return Counter((role, requirement.keyword) for requirement in requirements for role in requirement.roles)
