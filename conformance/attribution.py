"""Whose failure is it: the requirement and the implementation method behind an exception or a hang.

Theory of operation
-------------------

When the implementation raises, or hangs, while a step of a suite runs, the
verdict belongs to the requirement whose check or observation was running,
not to every requirement the step can judge.  The stack says which:

* each frame is *harness* (the suite and the rest of the ``conformance`` package,
  Hypothesis, the standard library, and the reference peers the suite wires
  around the implementation) or *implementation* (the implementation's own
  code: the directory its factory's module lives in, every object whose class
  is defined there, and any code outside the harness it calls);
* the outermost implementation frame is the *call* that failed, named with its
  class and method ("``AcmeFunction.receive``"), and the implementation's own
  frames below it are its stack;
* walking outwards from that call, the first suite function that holds checks
  (read from the suites' source as :mod:`conformance.traceability` reads them)
  names the requirements: those checks were waiting for the call's answer;
* when no check was waiting (the world called the implementation as it ran),
  the requirements the called interface method is *judged under* (its
  docstring in :mod:`conformance.interfaces`) own the failure, the ones the step
  declares among them first;
* only when neither names one do the requirements the step can judge get it:
  those of the checks it reaches, read from the suite's source, and those its
  ``@step(...)`` lists (:meth:`~conformance.checks.ConformanceMachine.step_requirements`).

Frames come from a live stack (an exception's traceback, or the frame a timer
interrupted) or from a text dump (``faulthandler``'s, written by a worker
process that was killed or crashed), so both are reduced to
:class:`FrameRef` first.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from conformance.interfaces import bridge as bridge_interface
from conformance.interfaces import device as device_interface
from conformance.interfaces import hypervisor as hypervisor_interface
from conformance.verdicts import Target
from vfmig_proto.requirements import ID_PATTERN

_CONFORMANCE_DIR = Path(__file__).resolve().parent
_CATALOGUE_DIR = _CONFORMANCE_DIR / "catalogue"
_HARNESS_LIBRARIES = ("hypothesis", "_pytest", "pytest", "pluggy", "xdist", "execnet", "rich", "construct")


@dataclass(frozen=True)
class FrameRef:
    """One frame of a stack, as much of it as its source told."""

    file: str
    line: int
    name: str
    """The function's qualified name (``Class.method``), or its bare name when only a dump gave it."""
    owner_file: str | None = None
    """The file that defines the class of the frame's ``self``, when the frame is a method of a live object."""
    owner_name: str | None = None
    """The ``name`` of the frame's ``self`` (a function's ``vf0``), when it has one."""

    def describe(self) -> str:
        """``name of owner (file:line)``, the file relative to the working directory or ``site-packages``."""
        owner = f" of {self.owner_name}" if self.owner_name else ""
        return f"{self.name}{owner} ({_short(self.file)}:{self.line})"


@dataclass(frozen=True)
class Attribution:
    """To whom a failure belongs."""

    requirements: tuple[str, ...]
    """The requirements whose checks were waiting for the failed call (empty: no check could be named)."""
    call: str | None
    """The implementation's method that raised or hung, ``Class.method (file:line)``, if the stack showed one."""
    stack: tuple[str, ...]
    """The implementation's own frames, outermost first."""
    checked_in: str | None
    """The suite function whose checks the requirements are, ``Class.method``."""

    def describe(self) -> str:
        """One line: where in the implementation, for which check."""
        where = f"in {self.call}" if self.call else "outside the implementation's own code"
        return f"{where}, while {self.checked_in} checked" if self.checked_in else where


# ------------------------------------------------------------------------------------------ frames


def frames_of_traceback(trace: TracebackType | None) -> list[FrameRef]:
    """The frames an exception went through, outermost first."""
    return [_live_frame(frame, line) for frame, line in _walk_traceback(trace)]


def frames_of_stack(frame: FrameType | None) -> list[FrameRef]:
    """The frames of a live stack ending at ``frame``, outermost first."""
    return [_live_frame(each, each.f_lineno) for each, _ in reversed(list(inspect_stack(frame)))]


def inspect_stack(frame: FrameType | None) -> Iterable[tuple[FrameType, int]]:
    """``frame`` and its callers, innermost first."""
    while frame is not None:
        yield frame, frame.f_lineno
        frame = frame.f_back


def _walk_traceback(trace: TracebackType | None) -> Iterable[tuple[FrameType, int]]:
    while trace is not None:
        yield trace.tb_frame, trace.tb_lineno
        trace = trace.tb_next


def _live_frame(frame: FrameType, line: int) -> FrameRef:
    code = frame.f_code
    owner = frame.f_locals.get("self") if code.co_varnames[:1] == ("self",) else None
    if owner is None:
        return FrameRef(code.co_filename, line, code.co_qualname)
    name = inspect.getattr_static(owner, "name", None)  # never run the implementation's code from here
    return FrameRef(
        code.co_filename, line, code.co_qualname, _class_file(type(owner)), name if isinstance(name, str) else None
    )


def _class_file(cls: type) -> str | None:
    module = sys.modules.get(cls.__module__)
    return getattr(module, "__file__", None) if module is not None else None


_DUMP_LINE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<name>\S+)')


def frames_of_dump(text: str) -> list[FrameRef]:
    """The main thread's frames in a ``faulthandler`` dump, outermost first.

    ``faulthandler`` writes the innermost frame first, one ``File "...", line N in name`` a frame, and a block
    per thread; the block that says ``most recent call first`` after ``Current thread`` (or the first block)
    is the one that ran the step.
    """
    blocks = re.split(r"\n(?=(?:Current thread|Thread) 0x)", text)
    chosen = next((block for block in blocks if block.startswith("Current thread")), blocks[-1] if blocks else "")
    frames = [
        FrameRef(match["file"], int(match["line"]), match["name"])
        for match in map(_DUMP_LINE.match, chosen.splitlines())
        if match is not None
    ]
    return list(reversed(frames))


# ------------------------------------------------------------------------------------------ whose frame


@dataclass(frozen=True)
class Sides:
    """Which files are the implementation's and which the harness's, for one run."""

    implementation_home: Path | None
    """The directory of the implementation's factory module."""

    def is_implementation(self, frame: FrameRef) -> bool:
        """Whether ``frame`` runs the implementation's code (its own, or code it called outside the harness)."""
        if self._home(frame.file) or (frame.owner_file is not None and self._home(frame.owner_file)):
            return True
        return not _is_harness_file(frame.file)

    def is_own(self, frame: FrameRef) -> bool:
        """Whether ``frame`` is the implementation's own code (not a library it called)."""
        return self._home(frame.file) or (frame.owner_file is not None and self._home(frame.owner_file))

    def _home(self, file: str) -> bool:
        return self.implementation_home is not None and _within(file, self.implementation_home)


def sides_for(factory: object) -> Sides:
    """The sides of a run whose implementation ``factory`` makes."""
    module = inspect.getmodule(factory)
    path = getattr(module, "__file__", None)
    return Sides(Path(path).resolve().parent if path else None)


def _within(file: str, directory: Path) -> bool:
    try:
        return Path(file).resolve().is_relative_to(directory)
    except (OSError, ValueError):
        return False


@functools.cache
def _project_roots() -> tuple[Path, ...]:
    """The harness's own packages: the suite and the reference peers it wires around the implementation."""
    return (_CONFORMANCE_DIR, _CONFORMANCE_DIR.parent / "reference_impl", _CONFORMANCE_DIR.parent / "vfmig_proto")


@functools.cache
def _stdlib_roots() -> tuple[Path, ...]:
    paths = {sysconfig.get_paths().get(key) for key in ("stdlib", "platstdlib")}
    return tuple(Path(path).resolve() for path in paths if path)


@functools.cache
def _is_harness_file(file: str) -> bool:
    if file.startswith("<"):  # <frozen ...>, <string>: the interpreter's own machinery
        return True
    if _within(file, _CATALOGUE_DIR):
        return False  # the fault catalogue's implementations are implementations under test
    if any(_within(file, root) for root in _project_roots()):
        return True
    parts = Path(file).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:  # a library: the harness's own, or one the implementation called
            index = parts.index(marker)
            return index + 1 < len(parts) and parts[index + 1] in _HARNESS_LIBRARIES
    return any(_within(file, root) for root in _stdlib_roots())


# ------------------------------------------------------------------------------------------ which checks


@dataclass(frozen=True)
class _FunctionSpan:
    lines: range
    qualname: str
    requirements: tuple[str, ...]


@functools.cache
def _check_index(target: Target) -> dict[str, tuple[_FunctionSpan, ...]]:
    """Per suite file, its functions' line spans and the requirement IDs their checks name."""
    from conformance import traceability  # noqa: PLC0415 - reads the suites' source: only on a failure

    index: dict[str, tuple[_FunctionSpan, ...]] = {}
    for source in traceability.suite_sources(target):
        if source.path is None:
            continue
        spans = [
            _FunctionSpan(range(node.lineno, (node.end_lineno or node.lineno) + 1), qualname, tuple(dict.fromkeys(ids)))
            for qualname, node, ids in _functions_with_ids(ast.parse(source.text))
        ]
        index[str(Path(source.path).resolve())] = tuple(spans)
    return index


def _functions_with_ids(tree: ast.Module) -> Iterable[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, list[str]]]:
    from conformance.traceability import _functions  # noqa: PLC0415 - the one reader of check sites

    for function in _functions(tree):
        yield function.qualname, function.node, [requirement for requirement, _ in function.ids]


def _suite_function(target: Target, frame: FrameRef) -> _FunctionSpan | None:
    try:
        spans = _check_index(target).get(str(Path(frame.file).resolve()), ())
    except (OSError, SyntaxError, TypeError):
        return None
    # the innermost function around the line: nested closures count as part of the function that holds them
    around = [span for span in spans if frame.line in span.lines]
    return min(around, key=lambda span: len(span.lines)) if around else None


# ------------------------------------------------------------------------------------------ the verdict's owner


def attribute(
    frames: Sequence[FrameRef], sides: Sides, target: Target, known: Iterable[str], declared: Sequence[str]
) -> Attribution:
    """To whom the failure that ended ``frames`` (outermost first) belongs.

    ``known`` are the target's requirement IDs; ``declared`` the IDs the step in flight declares, the
    fallback when no suite function with checks lies between the step and the failed call.
    """
    wanted = frozenset(known)
    boundary = next((index for index, frame in enumerate(frames) if sides.is_implementation(frame)), None)
    call = frames[boundary].describe() if boundary is not None else None
    stack = tuple(frame.describe() for frame in frames[boundary or len(frames) :] if sides.is_implementation(frame))
    callers = frames[:boundary] if boundary is not None else frames
    for frame in reversed(callers):
        span = _suite_function(target, frame)
        if span is None:
            continue
        requirements = tuple(requirement for requirement in span.requirements if requirement in wanted)
        if requirements:
            return Attribution(requirements, call, stack, span.qualname)
    stated = tuple(requirement for requirement in declared if requirement in wanted)
    if boundary is not None:
        governed = [req for req in judged_under(frames[boundary].name.rsplit(".", 1)[-1]) if req in wanted]
        if governed:
            return Attribution(tuple(req for req in governed if req in stated) or tuple(governed), call, stack, None)
    return Attribution(stated, call, stack, None)


_INTERFACE_MODULES = (device_interface, bridge_interface, hypervisor_interface)
"""The per-target interface modules whose docstrings say what each method is judged under."""


@functools.cache
def judged_under(method: str) -> tuple[str, ...]:
    """The requirements an interface method of :mod:`conformance.interfaces` is judged under (by its docstring)."""
    found: list[str] = []
    for module in _INTERFACE_MODULES:
        for protocol in vars(module).values():
            member = getattr(protocol, method, None) if getattr(protocol, "_is_protocol", False) else None
            if member is None:
                continue
            doc = inspect.getdoc(member.fget if isinstance(member, property) else member) or ""
            if "judged under" in doc.lower():
                found += [match[0] for match in ID_PATTERN.finditer(doc)]
    return tuple(dict.fromkeys(found))


def _short(file: str) -> str:
    parts = Path(file).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1 :])
    try:
        return str(Path(file).resolve().relative_to(Path.cwd()))
    except ValueError:
        return file
