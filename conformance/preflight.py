"""The pre-flight check: load an implementation and check its shape before a conformance run.

A run of a suite against an adapter with a plain mistake in it (a factory
that returns None, a missing ``create_driver``, a syntax error in the
adapter's module) would fail every step of every example the same way and
end in a report that says NOT CONFORMANT.  This module finds such mistakes
first and raises :class:`AdapterError` with one line that names the mistake:

* :func:`load_implementation` imports ``MODULE:FACTORY`` and checks that the
  factory can be called with no arguments;
* :func:`check_implementation` calls the factory once, checks the object it
  returns against the target's adapter protocol, has it create the role
  objects the suite uses (functions and drivers, bridges, hosts) in a small
  world of reference peers, and checks their shape: every member the
  protocol declares is present, its methods accept the arguments the suite
  passes, and a few cheap reads return what the protocol says.

The members checked are those of the protocols in :mod:`conformance.interfaces`
(the one description of what the suites use, typed with protocol-level types);
nothing here lists them again.
The check judges shape, not behaviour: whatever an implementation does with
a well-formed call is the suite's to judge.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
import os
import sysconfig
import traceback
import types
import typing
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from conformance.interfaces.bridge import BridgeImplementation, BridgeUnderTest
from conformance.interfaces.device import DeviceImplementation, DriverUnderTest, FunctionUnderTest
from conformance.interfaces.hypervisor import HypervisorImplementation, HypervisorUnderTest
from conformance.runner import UsageError
from conformance.verdicts import Target
from reference_impl.bridge import MigrationBridge
from reference_impl.clock import SimClock
from reference_impl.device import FunctionIdentity, VirtualFunction
from reference_impl.driver import MigrationCore
from reference_impl.events import EventBus
from reference_impl.guest import DmaRegionAllocator, Guest
from reference_impl.hypervisor import Hypervisor, MigrationConfig
from vfmig_proto.layout import CapabilityParams


class AdapterError(UsageError):
    """An implementation the suite cannot run: not importable, not a zero-argument factory, or of the wrong shape."""


IMPLEMENTATION_PROTOCOLS: dict[Target, type] = {
    Target.DEVICE: DeviceImplementation,
    Target.BRIDGE: BridgeImplementation,
    Target.HYPERVISOR: HypervisorImplementation,
}
"""What each target's factory returns."""

_ROLE_NOUNS: dict[type, str] = {
    FunctionUnderTest: "a function",
    DriverUnderTest: "a driver",
    BridgeUnderTest: "a bridge",
    HypervisorUnderTest: "a host",
}
"""How messages name the object each role protocol describes."""

_PROBES: dict[type, tuple[tuple[str, tuple[int, ...] | None], ...]] = {
    FunctionUnderTest: (("name", None), ("identity", None), ("bus_master", None), ("config_read", (0, 2))),
    DriverUnderTest: (
        ("slot", None),
        ("busy", None),
        ("look_again", None),
        ("loaded", None),
        ("up", None),
        ("function", None),
    ),
    BridgeUnderTest: (
        ("name", None),
        ("num_slots", None),
        ("cap", None),
        ("observers", None),
        ("mig_state", None),
        ("capability_bytes", ()),
        ("config_read", (0, 2)),
    ),
    HypervisorUnderTest: (("name", None), ("guest", None), ("bridge_or_none", None)),
}
"""The cheap reads whose results are checked against the protocol's types, per role: a member and its
arguments (None: read it, not call it).  Only members safe to read on an object just created: a host's
``memory`` may raise while it holds none, a function's ``receive`` would run its DMA engine."""

PREFLIGHT_SLOTS = 1
"""The pre-flight world of the device target has one slot ..."""
PREFLIGHT_PAGE_SHIFT = 12
PREFLIGHT_PAGES = 64
"""... and a guest of 64 4-KiB pages: room for a driver's rings and buffers, and cheap to make."""


# ---------------------------------------------------------------------------------------- loading


def load_implementation(target: Target, spec: str) -> Callable[[], Any]:
    """The zero-argument factory ``MODULE:FACTORY`` names, of a ``target`` implementation; :class:`AdapterError`
    if there is none."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AdapterError(f"{spec!r} is not MODULE:FACTORY (e.g. mypkg.model:make)")
    module = _import(module_name)
    factory = _attribute(module, module_name, attribute, spec)
    if not callable(factory):
        raise AdapterError(
            f"{spec} is {_described(factory)}, not a factory "
            f"(a callable that takes no arguments and returns a {target.value} implementation)"
        )
    _check_takes_no_arguments(factory, spec)
    return typing.cast("Callable[[], Any]", factory)


def _import(module_name: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name == error.name or module_name.startswith(f"{error.name}.")):
            raise AdapterError(
                f"cannot import {module_name!r}: there is no module {error.name!r} "
                "(run from the directory that holds it, or add that directory to PYTHONPATH)"
            ) from None
        raise AdapterError(f"importing {module_name} raised {_raised(error)}") from error
    except SyntaxError as error:
        raise AdapterError(_syntax_error(error)) from None
    except (Exception, SystemExit) as error:  # anything the module does at import time is the adapter's mistake
        raise AdapterError(f"importing {module_name} raised {_raised(error)}") from error


def _attribute(module: types.ModuleType, module_name: str, attribute: str, spec: str) -> object:
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise AdapterError(f"{module_name} has no {attribute!r}{_defined_callables(module)}") from None
        except Exception as error:  # a module-level __getattr__ that fails
            raise AdapterError(f"looking up {spec} raised {_raised(error)}") from error
    return found


def _defined_callables(module: types.ModuleType) -> str:
    """`` (it defines: a, b)``: the public callables defined in ``module``, to point at the right name."""
    names = [
        name
        for name, value in vars(module).items()
        if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    ]
    return f" (it defines: {', '.join(sorted(names)[:6])})" if names else ""


def _check_takes_no_arguments(factory: Callable[..., object], spec: str) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # no signature to read (a builtin): calling it will tell
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    required = [
        parameter.name
        for parameter in signature.parameters.values()
        if parameter.default is inspect.Parameter.empty and parameter.kind not in variadic
    ]
    if required:
        raise AdapterError(f"{spec} needs arguments ({', '.join(required)}); the factory is called with none")


# ---------------------------------------------------------------------------------------- checking


def check_implementation(target: Target, factory: Callable[[], Any], spec: str) -> None:
    """Call ``factory`` once and check what it returns, and what that creates, against ``target``'s protocols."""
    try:
        implementation = factory()
    except (Exception, SystemExit) as error:
        raise AdapterError(f"{spec} raised {_raised(error)}") from error
    _check_implementation_shape(implementation, IMPLEMENTATION_PROTOCOLS[target], target, spec)
    try:
        _ROLE_CHECKS[target](implementation)
    except AdapterError:
        raise
    except Exception as error:  # a reference peer tripped over one of the implementation's objects
        raise AdapterError(f"the pre-flight world broke on the implementation's objects: {_raised(error)}") from error


def _check_implementation_shape(implementation: object, protocol: type, target: Target, spec: str) -> None:
    members = protocol_members(protocol)
    needed = _and(list(members))
    noun = f"a {target.value} implementation"
    if isinstance(implementation, type):  # its methods are there, unbound: the suite's calls would fail
        raise AdapterError(f"{spec} returned the class {implementation.__name__}, not an instance of it ({noun})")
    missing = [name for name in members if not _has(implementation, name)]
    if len(missing) == len(members):
        raise AdapterError(f"{spec} returned {_described(implementation)}, not {noun} (it needs {needed})")
    if missing:
        got = _described(implementation)
        raise AdapterError(f"{spec} returned {got} without {_and(missing)}; {noun} needs {needed}")
    _check_methods(implementation, protocol, f"the {target.value} implementation")
    core = getattr(implementation, "create_migration_core", None)
    if core is not None and not callable(core):
        raise AdapterError(f"the implementation's create_migration_core is {_described(core)}, not a method")


def _check_device_roles(implementation: Any) -> None:
    """A reference host places a function of the implementation's in a slot; its driver is created the suite's way."""
    clock = SimClock()
    bus = EventBus(clock)

    def functions(name: str, clock: SimClock, bus: EventBus, identity: FunctionIdentity | None) -> Any:
        made = _made_by(implementation.create_function, "create_function", name, clock, bus, identity)
        check_role(made, FunctionUnderTest, "the implementation's create_function")
        return made

    host = Hypervisor("preflight", clock, bus, MigrationConfig(), functions=functions)
    bridge = host.create_bridge(CapabilityParams(num_slots=PREFLIGHT_SLOTS))
    memory = host.make_memory(PREFLIGHT_PAGES << PREFLIGHT_PAGE_SHIFT, PREFLIGHT_PAGE_SHIFT, True)
    guest = Guest("guest", clock, bus, host)
    host.host_guest(guest, memory)
    core = MigrationCore(guest)
    host.assign_function(0)
    allocator = DmaRegionAllocator(memory.num_pages)
    driver = _made_by(implementation.create_driver, "create_driver", guest, core, 0, bridge.devfn(0), allocator)
    check_role(driver, DriverUnderTest, "the implementation's create_driver")


def _check_bridge_roles(implementation: Any) -> None:
    bus = EventBus(SimClock())
    bridge = _made_by(implementation.create_bridge, "create_bridge", bus, CapabilityParams(), "bridge")
    check_role(bridge, BridgeUnderTest, "the implementation's create_bridge")


def _check_hypervisor_roles(implementation: Any) -> None:
    """A host made with the reference function and bridge factories, as the suite's are."""
    clock = SimClock()
    bus = EventBus(clock)

    def bridges(bus: EventBus, params: CapabilityParams, name: str) -> MigrationBridge:
        return MigrationBridge(bus, params, name=name)

    host = _made_by(
        implementation.create_hypervisor,
        "create_hypervisor",
        "hostA",
        clock,
        bus,
        MigrationConfig(),
        functions=VirtualFunction,
        bridges=bridges,
    )
    check_role(host, HypervisorUnderTest, "the implementation's create_hypervisor")


_ROLE_CHECKS: dict[Target, Callable[[Any], None]] = {
    Target.DEVICE: _check_device_roles,
    Target.BRIDGE: _check_bridge_roles,
    Target.HYPERVISOR: _check_hypervisor_roles,
}


def check_role(made: object, protocol: type, maker: str) -> None:
    """Check ``made`` (what ``maker``, e.g. "the implementation's create_bridge", returned) against ``protocol``."""
    members = protocol_members(protocol)
    missing = [name for name in members if not _has(made, name)]
    if len(missing) == len(members):
        listed = ", ".join(list(members)[:4])
        raise AdapterError(
            f"{maker} returned {_described(made)}, not {_ROLE_NOUNS[protocol]} ({protocol.__name__}: {listed}, ...)"
        )
    if missing:
        raise AdapterError(f"{maker} returned {_described(made)} without {_and(missing)} ({protocol.__name__})")
    owner = f"the implementation's {_ROLE_NOUNS[protocol].removeprefix('a ')}"
    _check_methods(made, protocol, owner)
    for name, arguments in _PROBES[protocol]:
        _probe(made, protocol, owner, name, arguments)


# ---------------------------------------------------------------------------------------- the protocols


class MemberKind(Enum):
    """How a protocol declares a member."""

    METHOD = "method"
    PROPERTY = "property"
    ATTRIBUTE = "attribute"


def protocol_members(protocol: type) -> dict[str, MemberKind]:
    """The members ``protocol`` declares (its own and its base protocols'), in declaration order."""
    members: dict[str, MemberKind] = {}
    for cls in reversed(protocol.__mro__):
        if cls in {object, Protocol, typing.Generic} or not getattr(cls, "_is_protocol", False):
            continue
        for name in (*inspect.get_annotations(cls), *vars(cls)):
            if not name.startswith("_"):
                members.setdefault(name, _kind(vars(cls).get(name)))
    return members


def _kind(declared: object) -> MemberKind:
    if isinstance(declared, property):
        return MemberKind.PROPERTY
    if inspect.isfunction(declared):
        return MemberKind.METHOD
    return MemberKind.ATTRIBUTE


def _declared_type(protocol: type, name: str) -> object:
    """The type ``protocol`` gives ``name``: an attribute's annotation, a property's or a method's return type."""
    declared = inspect.getattr_static(protocol, name, None)
    if isinstance(declared, property):
        return typing.get_type_hints(declared.fget).get("return", Any)
    if inspect.isfunction(declared):
        return typing.get_type_hints(declared).get("return", Any)
    return typing.get_type_hints(protocol).get(name, Any)


# ---------------------------------------------------------------------------------------- shape checks


def _has(made: object, name: str) -> bool:
    """Whether ``made`` has ``name``, without running a property where that can be avoided."""
    try:
        inspect.getattr_static(made, name)
    except AttributeError:
        pass
    else:
        return True
    try:  # an object that makes its attributes on demand (``__getattr__``, a proxy to a model in C)
        getattr(made, name)
    except AttributeError:
        return False
    except Exception:  # present, but it cannot be read in this state (a host's memory before it holds a guest)
        return True
    return True


def _check_methods(made: object, protocol: type, owner: str) -> None:
    """Every method the protocol declares is callable with the arguments the suite passes."""
    for name, kind in protocol_members(protocol).items():
        if kind is not MemberKind.METHOD:
            continue
        try:
            method = getattr(made, name)
        except Exception as error:
            raise AdapterError(f"{owner}'s {name} raised {_raised(error)} when looked up") from error
        if not callable(method):
            raise AdapterError(f"{owner}'s {name} is {_described(method)}, not a method ({protocol.__name__})")
        _check_parameters(method, getattr(protocol, name), f"{owner}'s {name}")


def _check_parameters(method: Callable[..., object], declared: Callable[..., object], what: str) -> None:
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return  # no signature to read (a builtin, a C extension): the suite's calls will tell
    wanted = list(inspect.signature(declared).parameters.values())[1:]  # (without self)
    positional = [object() for parameter in wanted if parameter.kind is not inspect.Parameter.KEYWORD_ONLY]
    keywords = {parameter.name: object() for parameter in wanted if parameter.kind is inspect.Parameter.KEYWORD_ONLY}
    try:
        signature.bind(*positional, **keywords)
    except TypeError as error:
        call = ", ".join(f"{parameter.name}=" if parameter.name in keywords else parameter.name for parameter in wanted)
        raise AdapterError(f"{what} cannot be called as the suite calls it, with ({call}): {error}") from None


def _probe(made: object, protocol: type, owner: str, name: str, arguments: tuple[int, ...] | None) -> None:
    """Read ``name`` (or call it with ``arguments``) and check the result against the protocol's type."""
    shown = name if arguments is None else f"{name}({', '.join(map(str, arguments))})"
    try:
        value = getattr(made, name) if arguments is None else getattr(made, name)(*arguments)
    except Exception as error:
        raise AdapterError(f"{owner}'s {shown} raised {_raised(error)}") from error
    expected = _declared_type(protocol, name)
    if not _conforms(value, expected):
        verb = "is" if arguments is None else "returned"
        raise AdapterError(
            f"{owner}'s {shown} {verb} {_described(value)}, not {_type_text(expected)} ({protocol.__name__}.{name})"
        )


def _conforms(value: object, expected: object) -> bool:
    """Whether ``value`` is of the type ``expected`` at the depth a run-time check can see (no type arguments)."""
    if expected is Any:
        return True
    if expected is None or expected is type(None):
        return value is None
    origin = typing.get_origin(expected)
    if origin in {typing.Union, types.UnionType}:
        return any(_conforms(value, arm) for arm in typing.get_args(expected))
    if origin is not None:
        expected = origin
    if isinstance(expected, type) and getattr(expected, "_is_protocol", False):
        return True  # a role object, checked by its own shape where it is created
    accepted = _ACCEPTED_FOR.get(expected, expected)
    return isinstance(value, accepted) if isinstance(accepted, type | tuple) else True


_ACCEPTED_FOR: dict[object, tuple[type, ...]] = {
    bool: (numbers.Integral, np.bool_),
    int: (numbers.Integral,),
}
"""Declared types that take more at run time: the suite tests a bool's truth and converts an int with ``int()``,
so a model's 0 or 1 and numpy's integers and bools are as good."""


def _type_text(expected: object) -> str:
    if typing.get_origin(expected) in {typing.Union, types.UnionType}:
        return " or ".join(_type_text(arm) for arm in typing.get_args(expected))
    if expected is None or expected is type(None):
        return "None"
    named = typing.get_origin(expected) or expected
    return _with_article(getattr(named, "__name__", str(named)))


# ---------------------------------------------------------------------------------------- messages


def _made_by(maker: Callable[..., Any], name: str, *arguments: Any, **keywords: Any) -> Any:
    """Call the implementation's ``maker``; an exception in it names the method and where it was raised."""
    try:
        return maker(*arguments, **keywords)
    except AdapterError:
        raise  # (a role object that a maker's callee made, found wrong: that message says it)
    except Exception as error:
        raise AdapterError(f"the implementation's {name} raised {_raised(error)}") from error


def _described(value: object) -> str:
    """``None``, ``a str``, ``an AcmeFunction``: the kind of a value, for a message."""
    return "None" if value is None else _with_article(type(value).__name__)


def _with_article(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _raised(error: BaseException) -> str:
    """``ValueError: bad thing (mypkg/model.py, line 30, in __init__)``: the first line of it, and where."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    where = _where(error)
    return f"{text} ({where})" if where else text


def _syntax_error(error: SyntaxError) -> str:
    where = _shown_path(error.filename) if error.filename else "the adapter's module"
    line = f", line {error.lineno}" if error.lineno else ""
    return f"{where}{line}: {error.msg}"


def _where(error: BaseException) -> str:
    """Where ``error`` was raised: the innermost frame in the implementation's code (not Python's, not ours)."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if not _machinery(frame.filename)]
    if not frames:
        return ""
    own = [frame for frame in frames if not _installed(frame.filename)]
    frame = (own or frames)[-1]
    return f"{_shown_path(frame.filename)}, line {frame.lineno}, in {frame.name}"


def _machinery(filename: str) -> bool:
    """Frames of the import system and of this module: they say nothing about the adapter."""
    return filename.startswith("<frozen ") or Path(filename).resolve() == Path(__file__).resolve()


def _installed(filename: str) -> bool:
    """Whether ``filename`` is part of the Python installation (the standard library, site-packages)."""
    return any(filename.startswith(root) for root in _installation_roots())


def _installation_roots() -> Iterator[str]:
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        root = sysconfig.get_paths().get(key)
        if root:
            yield str(Path(root).resolve()) + os.sep


def _shown_path(filename: str) -> str:
    """``filename`` relative to the current directory when it is under it (as a user named the module)."""
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return filename
