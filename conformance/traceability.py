"""The traceability matrix: which check of which suite checks each requirement.

Theory of operation
-------------------

A suite states what the spec demands with ``checks.that("VFM-…", …)`` and
``checks.record("VFM-…", …)``, always with the requirement ID written out as
a string, and names the requirements a rule or invariant exercises in its
``@step("VFM-…")`` decorator (:mod:`conformance.checks`).  So the matrix is
read from the suites' source, without running anything:

* a *check site* is a requirement ID written in the body of a function of a
  suite module (of any module of a suite that is a package), or of a
  ``conformance`` module that a suite module imports (where shared observers
  live); the site is the innermost function around it, and its *kind* is
  what Hypothesis made of that function: ``rule``, ``initialize``,
  ``invariant``, or ``helper`` for the listeners and functions the steps
  call (a state machine composed of mixins has its steps in several classes);
* a *declaration* is an ID in a ``@step(...)`` decorator.

A helper's check runs when a step runs it, so each helper site also lists the
steps that reach it through ``self.<name>`` references (across the mixin
classes a state machine may be composed of).  That a check site really runs
is a matter for the suites' own tests (each asserts that every requirement
its suite names is judged ``pass`` on the reference).

The matrix is consistent when:

* every ID that a suite writes names a requirement of the spec, and one that
  binds that suite's target (:class:`UnknownRequirement`,
  :class:`ForeignRequirement`);
* every MUST and MUST NOT requirement has a check site in the suite of each
  target whose roles it binds (:class:`UncheckedMandatory`);
* every ID a step declares is checked somewhere in that suite
  (:class:`DeclaredButUnchecked`).

The docs build renders :func:`render_rst` on the traceability page and fails
on any :class:`Problem`; ``vfmig traceability`` prints the same findings.

The same reading says what each step can judge
(:func:`derived_step_requirements`): the requirements of the checks the step
reaches through ``self.<name>`` and the module functions it calls, with
methods resolved along the state machine's MRO, so a suite may be a package
whose machine is assembled from mixins in several modules (its sources are
the modules of every class of that MRO, :func:`suite_sources`).  A hang or an
exception in a step that no check on the stack claims goes to those
requirements.  Checks that run in event listeners are set off by a step, not
called from it; the ``@step(...)`` list names those.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import ClassVar

from conformance.checks import ConformanceMachine
from conformance.runner import suite_class
from conformance.verdicts import Target
from vfmig_proto.requirements import ID_PATTERN, Requirement, load_requirements

_INITIALIZE_MARKER = "hypothesis_stateful_initialize_rule"
_RULE_MARKER = "hypothesis_stateful_rule"
_INVARIANT_MARKER = "hypothesis_stateful_invariant"
_PACKAGE = "conformance"
_CHECKS_MODULE = "conformance.checks"
"""Defines the machine's base class; read like any other module the suite imports, not as the suite's own."""


class SiteKind(Enum):
    """What a function holding a check is to the suite's state machine."""

    INITIALIZE = "initialize"
    RULE = "rule"
    INVARIANT = "invariant"
    HELPER = "helper"
    TABLE = "table"
    """A module- or class-level constant that maps to requirement IDs, used by a check that takes its ID from it."""


@dataclass(frozen=True)
class CheckSite:
    """One requirement ID written in one function of a suite."""

    requirement: str
    target: Target
    module: str
    function: str
    """``Class.method`` or ``function``."""
    kind: SiteKind
    line: int
    reached_from: tuple[str, ...] = ()
    """For a helper: the steps (rules, initializers, invariants) that reach it."""

    @property
    def where(self) -> str:
        """``module:line``, for messages."""
        return f"{self.module}:{self.line}"


@dataclass(frozen=True)
class WrittenId:
    """A requirement ID written somewhere in a suite's source."""

    requirement: str
    target: Target
    module: str
    function: str
    """The function, or the constant, it is written in."""
    line: int


@dataclass(frozen=True)
class Mention(WrittenId):
    """A requirement ID written in a suite where it is neither a check nor a step's declaration.

    For example in a constant that lists the requirements a suite covers, which no check reads.
    """


@dataclass(frozen=True)
class Declaration(WrittenId):
    """One requirement ID in a ``@step(...)`` decorator."""


@dataclass(frozen=True)
class SuiteSource:
    """The source of one module of a target's suite."""

    module: str
    text: str
    machine: type[ConformanceMachine] | None = None
    """The suite's state machine, if this module is the suite's or one of its package (step kinds are read from it)."""
    path: str | None = None
    """The module's file."""


# ------------------------------------------------------------------------------------------ problems


@dataclass(frozen=True)
class Problem:
    """Something that makes the matrix inconsistent."""

    target: Target
    requirement: str

    TEMPLATE: ClassVar[str] = ""
    """The problem's one line: a ``str.format`` template over its fields (``target`` is the target's name)."""

    @property
    def message(self) -> str:
        """One line naming the requirement, the target and where the problem is."""
        values = {each.name: getattr(self, each.name) for each in fields(self)}
        return self.TEMPLATE.format_map({**values, "target": self.target.value})


@dataclass(frozen=True)
class ProblemAtSite(Problem):
    """A problem with one place in a suite's source."""

    where: str
    """``module:line``."""
    function: str
    """The function, or the constant, the place is in."""


_NO_CHECK = "but no check of the {target} suite names it"


@dataclass(frozen=True)
class UnknownRequirement(ProblemAtSite):
    """A suite writes an ID that the spec does not define."""

    TEMPLATE = "{where} ({function}) names {requirement}, which the spec does not define"


@dataclass(frozen=True)
class ForeignRequirement(ProblemAtSite):
    """A suite writes an ID of a requirement that does not bind its target."""

    TEMPLATE = "{where} ({function}) names {requirement}, which does not bind the {target} target"


@dataclass(frozen=True)
class UncheckedMandatory(Problem):
    """A MUST or MUST NOT requirement that binds a target has no check in that target's suite."""

    keyword: str
    defined_at: str

    TEMPLATE = "{requirement} ({keyword}, {defined_at}) binds the {target} target " + _NO_CHECK


@dataclass(frozen=True)
class DeclaredButUnchecked(ProblemAtSite):
    """A step declares a requirement that no check of the suite names."""

    TEMPLATE = "{where} ({function}) declares {requirement} in @step, " + _NO_CHECK


class TraceabilityError(Exception):
    """The matrix is inconsistent; :attr:`problems` says where."""

    problems: tuple[Problem, ...]
    """Everything found, in the order :meth:`Matrix.problems` gives."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        lines = "\n".join(f"  - {problem.message}" for problem in problems)
        super().__init__(f"{len(problems)} traceability problem(s):\n{lines}")
        self.problems = tuple(problems)


# ------------------------------------------------------------------------------------------ reading the suites


def suite_sources(target: Target) -> list[SuiteSource]:
    """The suite of ``target`` (its module, or every module of its package) and the ``conformance`` modules
    those import (one level; every module of an imported package)."""
    machine = suite_class(target)
    module = inspect.getmodule(machine)
    assert module is not None
    sources = [_source(name, machine) for name in _suite_modules(module)]
    suite = {source.module for source in sources}
    for source in list(sources):
        for imported in _imported_conformance_modules(source.text):
            # A package the suite lives in (``conformance``, say) is read alone, not with every module in it.
            around = module.__name__.startswith(f"{imported}.")
            for name in [imported] if around else _suite_modules(importlib.import_module(imported)):
                if name not in suite:
                    suite.add(name)
                    sources.append(_source(name))
    return sources


def _suite_modules(module: ModuleType) -> list[str]:
    """``module`` and, if it is a package (a suite or a helper split by concern), every module in it."""
    names = [module.__name__]
    if hasattr(module, "__path__"):
        found = pkgutil.walk_packages(module.__path__, prefix=f"{module.__name__}.")
        names += sorted(info.name for info in found)
    return names


def _source(name: str, machine: type[ConformanceMachine] | None = None) -> SuiteSource:
    """The source of module ``name``; ``machine`` if the module defines the suite's state machine."""
    imported = importlib.import_module(name)
    defines = machine is not None and machine.__module__ == name
    return SuiteSource(name, inspect.getsource(imported), machine if defines else None, inspect.getsourcefile(imported))


def _imported_conformance_modules(text: str) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            candidates = [node.module]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        names.extend(name for name in candidates if name.split(".")[0] == _PACKAGE and name not in names)
    return names


@dataclass
class _Function:
    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    cls: str | None
    ids: list[tuple[str, int]] = field(default_factory=list)
    declared: list[tuple[str, int]] = field(default_factory=list)
    references: set[str] = field(default_factory=set)
    """Names this function reaches as ``self.<name>`` (methods of its class it may call)."""
    names: set[str] = field(default_factory=set)
    """Plain names it reads (the tables it may take requirement IDs from)."""
    indirect: bool = False
    """Whether it makes a check whose requirement is not written in the call (it comes from a table)."""


@dataclass(frozen=True)
class _Table:
    name: str
    ids: tuple[tuple[str, int], ...]


def _functions(tree: ast.Module, merged: Mapping[str, str] | None = None) -> Iterator[_Function]:
    """Every function of a module (methods as ``Class.name``), with the IDs it writes and declares.

    A class named in ``merged`` counts as the class it maps to (its methods' ``cls``): the mixins of a state
    machine are one class, whose methods reach each other through ``self``.
    """

    def visit(node: ast.AST, cls: str | None, prefix: str) -> Iterator[_Function]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from visit(child, (merged or {}).get(child.name, child.name), f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                function = _Function(f"{prefix}{child.name}", child, cls)
                function.declared = list(_step_declarations(child))
                _collect_body(child, function)
                yield function
                # nested functions (closures, listeners) belong to the function around them
            else:
                yield from visit(child, cls, prefix)

    yield from visit(tree, None, "")


def _step_declarations(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[tuple[str, int]]:
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call) and _called_name(decorator.func) == "step":
            for argument in decorator.args:  # IDs written out, or in a starred tuple of them
                for part in ast.walk(argument):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        yield part.value, part.lineno


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _collect_body(node: ast.FunctionDef | ast.AsyncFunctionDef, function: _Function) -> None:
    docstring = ast.get_docstring(node, clean=False)
    for statement in node.body:
        for child in ast.walk(statement):
            if isinstance(child, ast.Constant) and isinstance(child.value, str):
                if child.value == docstring:
                    continue
                function.ids.extend((match[0], child.lineno) for match in ID_PATTERN.finditer(child.value))
            elif isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name) and child.value.id == "self":
                function.references.add(child.attr)
            elif isinstance(child, ast.Name):
                function.names.add(child.id)
            elif isinstance(child, ast.Call) and _is_indirect_check(child):
                function.indirect = True


def _is_indirect_check(call: ast.Call) -> bool:
    """``checks.that(x, ...)`` or ``checks.record(x, ...)`` where ``x`` is not a written-out string."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr in {"that", "record"}):
        return False
    owner = func.value
    named_checks = (isinstance(owner, ast.Attribute) and owner.attr == "checks") or (
        isinstance(owner, ast.Name) and owner.id == "checks"
    )
    first = call.args[0] if call.args else None
    return named_checks and not (isinstance(first, ast.Constant) and isinstance(first.value, str))


def _tables(tree: ast.Module) -> Iterator[_Table]:
    """Module- and class-level constants whose values write requirement IDs."""
    bodies: list[list[ast.stmt]] = [tree.body]
    bodies += [node.body for node in tree.body if isinstance(node, ast.ClassDef)]
    for body in bodies:
        for statement in body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target, value = statement.targets[0], statement.value
            elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                target, value = statement.target, statement.value
            else:
                continue
            if not isinstance(target, ast.Name):
                continue
            ids = tuple(
                (match[0], node.lineno)
                for node in ast.walk(value)
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                for match in ID_PATTERN.finditer(node.value)
            )
            if ids:
                yield _Table(target.id, ids)


_Key = tuple[str, str]
"""A function of a suite: ``(module, qualname)``."""


def _machine_classes(machine: type[ConformanceMachine] | None) -> list[tuple[str, str]]:
    """``(module, name)`` of the machine's classes, most derived first: a suite split into mixins has several."""
    return [] if machine is None else [(cls.__module__, cls.__name__) for cls in machine.__mro__]


def _kind(machine: type[ConformanceMachine] | None, module: str, function: _Function) -> SiteKind:
    if machine is None or (module, function.cls) not in _machine_classes(machine):
        return SiteKind.HELPER
    attribute = getattr(machine, function.node.name, None)
    if getattr(attribute, _INITIALIZE_MARKER, None) is not None:
        return SiteKind.INITIALIZE
    if getattr(attribute, _RULE_MARKER, None) is not None:
        return SiteKind.RULE
    if getattr(attribute, _INVARIANT_MARKER, None) is not None:
        return SiteKind.INVARIANT
    return SiteKind.HELPER


def _method_tables(
    functions: Mapping[str, Sequence[_Function]], machine: type[ConformanceMachine] | None
) -> dict[tuple[str, str | None], dict[str, tuple[str, _Function]]]:
    """Per ``(module, class)``, the methods ``self.<name>`` finds there, with their modules.

    A class of the machine finds the methods of every class of the machine, the most derived first (as an
    instance of the machine does); any other class finds its own.
    """
    tables: dict[tuple[str, str | None], dict[str, tuple[str, _Function]]] = {}
    for module, found in functions.items():
        for function in found:
            tables.setdefault((module, function.cls), {})[function.node.name] = (module, function)
    classes = _machine_classes(machine)
    merged: dict[str, tuple[str, _Function]] = {}
    for cls in reversed(classes):
        merged.update(tables.get(cls, {}))
    for cls in classes:
        tables[cls] = merged
    return tables


def _reached_from(
    functions: Mapping[str, Sequence[_Function]],
    kinds: Mapping[_Key, SiteKind],
    machine: type[ConformanceMachine] | None,
) -> dict[_Key, tuple[str, ...]]:
    """For each method, the steps of its class that reach it through ``self.<name>`` references."""
    tables = _method_tables(functions, machine)
    reached: dict[_Key, set[str]] = {
        (module, function.qualname): set() for module, found in functions.items() for function in found
    }
    for module, found in functions.items():
        for function in found:
            if kinds[module, function.qualname] is SiteKind.HELPER:
                continue
            methods = tables.get((module, function.cls), {})
            seen: set[str] = set()
            pending = list(function.references)
            while pending:
                name = pending.pop()
                if name in seen or name not in methods:
                    continue
                seen.add(name)
                callee_module, callee = methods[name]
                reached[callee_module, callee.qualname].add(function.node.name)
                pending.extend(callee.references)
    return {key: tuple(sorted(steps)) for key, steps in reached.items()}


def _reads_table(function: _Function, table: str, methods: Mapping[str, _Function]) -> bool:
    """Whether ``function``, or a method of its class that it reaches through ``self``, reads ``table``."""
    seen: set[str] = set()
    pending = [function]
    while pending:
        current = pending.pop()
        if table in current.names:
            return True
        for name in current.references - seen:
            seen.add(name)
            if name in methods:
                pending.append(methods[name])
    return False


def _table_sites(
    target: Target,
    source: SuiteSource,
    tree: ast.Module,
    readers: Sequence[tuple[str, _Function]],
    methods: Mapping[tuple[str, str | None], Mapping[str, tuple[str, _Function]]],
) -> list[CheckSite | Mention]:
    """The tables of ``tree``: check sites if a check takes its requirement from them, mentions otherwise.

    ``readers`` are the ``(module, function)`` pairs that may read the tables: the module's own, or every
    module's of a suite package (a table in one module may serve the checks of another).
    """
    found: list[CheckSite | Mention] = []
    for table in _tables(tree):
        checkers = tuple(
            sorted(
                function.qualname
                for module, function in readers
                if function.indirect
                and _reads_table(function, table.name, _by_name(methods.get((module, function.cls), {})))
            )
        )
        for requirement, line in table.ids:
            if checkers:
                found.append(CheckSite(requirement, target, source.module, table.name, SiteKind.TABLE, line, checkers))
            else:
                found.append(Mention(requirement, target, source.module, table.name, line))
    return found


def _by_name(methods: Mapping[str, tuple[str, _Function]]) -> dict[str, _Function]:
    return {name: function for name, (_, function) in methods.items()}


def _in_suite_package(module: str, machine: type[ConformanceMachine] | None) -> bool:
    """Whether ``module`` is one of the modules of the package that defines the suite's machine."""
    if machine is None:
        return False
    package = machine.__module__
    return module == package or module.startswith(f"{package}.")


def read_suite(
    target: Target, sources: Iterable[SuiteSource]
) -> tuple[list[CheckSite], list[Declaration], list[Mention]]:
    """The check sites, step declarations and other mentions of IDs in ``sources``, ``target``'s suite.

    The suite's state machine may be composed of mixins in several of the sources: a step reaches the
    methods of all of them.
    """
    sites: list[CheckSite] = []
    declarations: list[Declaration] = []
    mentions: list[Mention] = []
    chosen = list(sources)
    trees = {source.module: ast.parse(source.text) for source in chosen}
    functions = {module: list(_functions(tree)) for module, tree in trees.items()}
    machine = next((source.machine for source in chosen if source.machine is not None), None)
    kinds = {
        (module, function.qualname): _kind(machine, module, function)
        for module, found in functions.items()
        for function in found
    }
    reached = _reached_from(functions, kinds, machine)
    methods = _method_tables(functions, machine)
    for source in chosen:
        in_suite = _in_suite_package(source.module, machine)
        readers = [
            (module, function)
            for module, defined in functions.items()
            if module == source.module or (in_suite and _in_suite_package(module, machine))
            for function in defined
        ]
        for found in _table_sites(target, source, trees[source.module], readers, methods):
            if isinstance(found, CheckSite):
                sites.append(found)
            else:
                mentions.append(found)
        for function in functions[source.module]:
            kind = kinds[source.module, function.qualname]
            via = reached[source.module, function.qualname] if kind is SiteKind.HELPER else ()
            sites.extend(
                CheckSite(requirement, target, source.module, function.qualname, kind, line, via)
                for requirement, line in function.ids
            )
            declarations.extend(
                Declaration(requirement, target, source.module, function.qualname, line)
                for requirement, line in function.declared
            )
    return sites, declarations, mentions


# ------------------------------------------------------------------------------------------ what a step can judge


@dataclass(frozen=True)
class _ClassSource:
    """The functions of one class of a machine's MRO, and the module around it, read from source."""

    methods: dict[str, _Function]
    functions: dict[str, _Function]
    """The module-level functions of the class's module (a step may call them by name)."""
    tables: dict[str, tuple[str, ...]]
    """The module's and the class's constants that write requirement IDs."""


@functools.cache
def _parsed_module(module_name: str) -> tuple[ast.Module, tuple[_Function, ...]] | None:
    module = sys.modules.get(module_name)
    try:
        text = inspect.getsource(module) if module is not None else None
    except (OSError, TypeError):
        return None  # a class defined where no source is (an interactive session): nothing to derive
    if text is None:
        return None
    tree = ast.parse(text)
    return tree, tuple(_functions(tree))


def _class_source(cls: type) -> _ClassSource | None:
    parsed = _parsed_module(cls.__module__)
    if parsed is None:
        return None
    tree, functions = parsed
    prefix = f"{cls.__qualname__}."
    methods = {
        function.node.name: function
        for function in functions
        if function.qualname.startswith(prefix) and "." not in function.qualname[len(prefix) :]
    }
    top_level = {function.qualname: function for function in functions if function.cls is None}
    tables = {table.name: tuple(requirement for requirement, _ in table.ids) for table in _tables(tree)}
    return _ClassSource(methods, top_level, tables)


def _machine_sources(machine: type) -> list[_ClassSource]:
    """The classes of ``machine``'s MRO that have source (its mixins, wherever they live), most derived first."""
    found = []
    for cls in machine.__mro__:
        if cls.__module__.split(".")[0] in {"hypothesis", "builtins"}:
            continue
        source = _class_source(cls)
        if source is not None:
            found.append(source)
    return found


def _reachable(
    start: _Function, methods: Mapping[str, _Function], functions: Mapping[str, _Function]
) -> list[_Function]:
    """``start`` and every function it reaches: methods through ``self.<name>``, module functions by name."""
    reached = [start]
    seen = {id(start)}
    index = 0
    while index < len(reached):
        current = reached[index]
        index += 1
        callees = [methods.get(name) for name in sorted(current.references)]
        callees += [functions.get(name) for name in sorted(current.names)]
        for callee in callees:
            if callee is not None and id(callee) not in seen:
                seen.add(id(callee))
                reached.append(callee)
    return reached


def derived_step_requirements(machine: type[ConformanceMachine]) -> Mapping[str, tuple[str, ...]]:
    """Per step (rule, initializer, invariant) of ``machine``: the requirements of the checks it reaches.

    The checks are read from the source of every class of the machine's MRO (a suite may be a package whose
    state machine is assembled from mixins in several modules) and of the modules those classes live in: the
    IDs a step writes in its body, those of the methods it reaches through ``self.<name>`` (resolved in MRO
    order, as Python resolves them) and of the module functions it calls, and the IDs of the tables read by a
    reached check that takes its requirement from a table.  What a step can judge is what it checks; a
    ``@step(...)`` list is not needed for that.
    """
    return _derived(machine)


@functools.cache
def _derived(machine: type[ConformanceMachine]) -> Mapping[str, tuple[str, ...]]:
    sources = _machine_sources(machine)
    methods: dict[str, _Function] = {}
    functions: dict[str, _Function] = {}
    tables: dict[str, tuple[str, ...]] = {}
    for source in reversed(sources):  # the most derived class's definition wins, as in the MRO
        methods.update(source.methods)
        functions.update(source.functions)
        tables.update(source.tables)
    derived: dict[str, tuple[str, ...]] = {}
    for name in sorted(_step_names(machine)):
        start = methods.get(name)
        if start is None:
            continue
        reached = _reachable(start, methods, functions)
        ids = [requirement for function in reached for requirement, _ in function.ids]
        if any(function.indirect for function in reached):
            read = set().union(*(function.names | function.references for function in reached))
            ids += [requirement for table, written in tables.items() if table in read for requirement in written]
        derived[name] = tuple(dict.fromkeys(ids))
    return MappingProxyType(derived)


def _step_names(machine: type) -> set[str]:
    markers = (_RULE_MARKER, _INITIALIZE_MARKER, _INVARIANT_MARKER)
    return {
        name
        for name in dir(machine)
        if any(getattr(getattr(machine, name, None), marker, None) is not None for marker in markers)
    }


# ------------------------------------------------------------------------------------------ the matrix


@dataclass(frozen=True)
class Matrix:
    """Every requirement of the spec and the check sites of each target's suite."""

    requirements: tuple[Requirement, ...]
    sites: tuple[CheckSite, ...]
    declarations: tuple[Declaration, ...]
    mentions: tuple[Mention, ...] = ()

    def sites_of(self, requirement: str, target: Target | None = None) -> list[CheckSite]:
        """The check sites naming ``requirement`` (in ``target``'s suite, or in any)."""
        return [
            site for site in self.sites if site.requirement == requirement and (target is None or site.target is target)
        ]

    def targets_of(self, requirement: Requirement) -> list[Target]:
        """The targets whose roles ``requirement`` binds."""
        return [target for target in Target if requirement.roles & target.roles]

    def problems(self) -> list[Problem]:
        """Everything that makes the matrix inconsistent, in a stable order."""
        index = {requirement.id: requirement for requirement in self.requirements}
        problems: list[Problem] = []
        for site in self.sites:
            problems.extend(_naming_problems(index, site.target, site.requirement, site.where, site.function))
        for mention in self.mentions:
            where = f"{mention.module}:{mention.line}"
            problems.extend(_naming_problems(index, mention.target, mention.requirement, where, mention.function))
        for declaration in self.declarations:
            where = f"{declaration.module}:{declaration.line}"
            problems.extend(
                _naming_problems(index, declaration.target, declaration.requirement, where, declaration.function)
            )
            if declaration.requirement in index and not self.sites_of(declaration.requirement, declaration.target):
                problems.append(
                    DeclaredButUnchecked(declaration.target, declaration.requirement, where, declaration.function)
                )
        for requirement in self.requirements:
            if not requirement.is_mandatory:
                continue
            for target in self.targets_of(requirement):
                if not self.sites_of(requirement.id, target):
                    defined_at = f"{Path(requirement.path).name}:{requirement.line}"
                    problems.append(UncheckedMandatory(target, requirement.id, requirement.keyword.value, defined_at))
        return list(dict.fromkeys(problems))

    def check(self) -> None:
        """Raise :class:`TraceabilityError` if the matrix has problems."""
        problems = self.problems()
        if problems:
            raise TraceabilityError(problems)


def _naming_problems(
    index: Mapping[str, Requirement], target: Target, requirement: str, where: str, function: str
) -> list[Problem]:
    known = index.get(requirement)
    if known is None:
        return [UnknownRequirement(target, requirement, where, function)]
    if not known.roles & target.roles:
        return [ForeignRequirement(target, requirement, where, function)]
    return []


def build_matrix(
    sources: Mapping[Target, Sequence[SuiteSource]] | None = None,
    requirements: Sequence[Requirement] | None = None,
) -> Matrix:
    """The matrix of the spec (``$VFMIG_SPEC_DIR`` or the checkout's) and the suites (or ``sources``)."""
    chosen = requirements if requirements is not None else load_requirements()
    all_sites: list[CheckSite] = []
    all_declarations: list[Declaration] = []
    all_mentions: list[Mention] = []
    for target in Target:
        target_sources = sources[target] if sources is not None else suite_sources(target)
        sites, declarations, mentions = read_suite(target, target_sources)
        all_sites.extend(sites)
        all_declarations.extend(declarations)
        all_mentions.extend(mentions)
    return Matrix(tuple(chosen), tuple(all_sites), tuple(all_declarations), tuple(all_mentions))
