"""Loading the implementation inside the worker: importing it runs its code, so only the worker does it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.preflight import check_implementation, load_implementation
from conformance.verdicts import Target


def load_checked_implementation(target: Target, implementation: str) -> Callable[[], Any]:
    """The factory ``MODULE:FACTORY`` names, checked against the target's adapter interface
    (:mod:`conformance.preflight`; raises :class:`~conformance.preflight.AdapterError`)."""
    factory = load_implementation(target, implementation)
    check_implementation(target, factory, implementation)
    return factory
