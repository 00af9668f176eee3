"""Loading the implementation inside the worker: importing it runs its code, so only the worker does it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.runner import load_factory
from conformance.verdicts import Target


def load_checked_implementation(target: Target, implementation: str) -> Callable[[], Any]:
    """The factory ``MODULE:FACTORY`` names (raises :class:`~conformance.runner.UsageError` when it cannot be
    used)."""
    return load_factory(implementation)
