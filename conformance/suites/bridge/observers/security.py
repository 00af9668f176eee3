"""Security (spec §10): the measurements behind VFM-SEC-002, bounded time and no memory per guest write.

Between two rounds of the same guest writes (the ``many_writes`` rule), the objects reachable from the bridge
and its classes must not grow, and one write must not take more Python line events (not measured while a
debugger or coverage tool traces).  Memory the bridge keeps elsewhere (module globals, C extensions) and work
done in C are not seen.  VFM-SEC-001 and VFM-SEC-003 are judged on the registers
(:mod:`conformance.suites.bridge.observers.capability`, :mod:`conformance.suites.bridge.observers.reports`).
"""

from __future__ import annotations

import gc
import sys
from collections import deque
from collections.abc import Callable
from types import BuiltinFunctionType, CodeType, FrameType, FunctionType, MethodType, ModuleType
from typing import Any

SEC_002_ROUND = 20
"""Guest writes between the two measurements of VFM-SEC-002: a bridge that keeps one object per write shows it."""

_OPAQUE = (type, ModuleType, FunctionType, BuiltinFunctionType, MethodType, CodeType)
_SIZED = (list, tuple, dict, set, frozenset, bytes, bytearray, str, deque)


def retained_objects(bridge: object, foreign: set[int]) -> tuple[int, int]:
    """Objects reachable from ``bridge`` and its classes' attributes, and the entries of the containers among them.

    Classes, modules, functions and the objects in ``foreign`` (the suite's) are not walked into.
    """
    seen = set(foreign)
    stack: list[object] = [bridge, *(vars(cls) for cls in type(bridge).__mro__[:-1])]
    objects = entries = 0
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, _OPAQUE):
            continue
        seen.add(id(item))
        objects += 1
        if isinstance(item, _SIZED):
            entries += len(item)
        stack.extend(gc.get_referents(item))
    return objects, entries


def line_events(call: Callable[[], None]) -> int | None:
    """The Python line events (and calls) ``call`` makes: its work, counted exactly (None: tracing is taken).

    The garbage collector is held off while it runs: finalizers it would run are not the call's work.
    """
    if sys.gettrace() is not None:
        return None  # a debugger or a coverage tool traces this thread: leave it alone
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        count += 1
        return trace

    collecting = gc.isenabled()
    gc.disable()
    sys.settrace(trace)
    try:
        call()
    finally:
        sys.settrace(None)
        if collecting:
            gc.enable()
    return count
