"""Reading the ``vfmig`` command's options: each value checked before a command starts, each refusal naming its option.

A long run should not fail at its end on a value that was wrong from the start (a report path in a missing
directory, a rate of zero), so every option is checked here, as it is read, and a bad one becomes an
:class:`OptionError` whose message starts with the option's name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from reference_impl.units import UnitError


class CommandError(Exception):
    """A command refuses to run; the message says why (``main`` prints it as one line and exits 2)."""


class OptionError(CommandError, ValueError):
    """A value on the command line that the command cannot use; the message starts with the option's name."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option


_Value = TypeVar("_Value")
_Number = TypeVar("_Number", int, float)


def read_option(option: str, text: str, parse: Callable[[str], _Value]) -> _Value:
    """``parse(text)``, with a :class:`UnitError` turned into an :class:`OptionError` naming ``option``."""
    try:
        return parse(text)
    except UnitError as exc:
        raise OptionError(option, str(exc)) from None


def existing_directory(option: str, path: str) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        raise OptionError(option, f"{path!r} is not a directory")
    return directory


def writable_file(option: str, path: str) -> Path:
    """``path``, once it is clear that a file can be written there: asked before a long run, not after it."""
    target = Path(path)
    if target.is_dir():
        raise OptionError(option, f"cannot write {path!r}: it is a directory")
    parent = target.absolute().parent
    if not parent.is_dir():
        raise OptionError(option, f"cannot write {path!r}: no directory {str(parent)!r}")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise OptionError(option, f"cannot write {path!r}: permission denied")
    return target


def in_range(option: str, value: int, low: int, high: int | None = None) -> int:
    if value < low or (high is not None and value > high):
        allowed = f"at least {low}" if high is None else f"{low}..{high}"
        raise OptionError(option, f"{value} is out of range ({allowed})")
    return value


def positive(option: str, text: str, parse: Callable[[str], _Number]) -> _Number:
    value = read_option(option, text, parse)
    if value <= 0:
        raise OptionError(option, f"{text!r} must be more than 0")
    return value


def fraction(option: str, value: float) -> float:
    # NaN fails both comparisons, so it is refused here too.
    if not 0 < value <= 1:
        raise OptionError(option, f"{value:g} is out of range (more than 0, at most 1)")
    return value
