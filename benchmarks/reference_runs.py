"""What the conformance benchmarks share: their options, and one timed run of a target's suite."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

from conformance.verdicts import RunReport, Target

Measured = TypeVar("Measured")


def benchmark_parser(description: str | None, repeat_help: str) -> argparse.ArgumentParser:
    """A parser with the options every conformance benchmark takes: ``--repeat N`` seeds and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help=repeat_help)
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    return parser


def timed_run(check: Callable[..., RunReport], target: Target, seed: int) -> tuple[float, RunReport]:
    """The wall time of ``check`` (a way of running the suite) on ``target``'s default profile, and its report."""
    started = time.perf_counter()
    report = check(target, profile="default", seed=seed)
    return time.perf_counter() - started, report


def over_seeds(repeat: int, measure: Callable[[Target, int], Measured]) -> dict[Target, list[Measured]]:
    """``measure(target, seed)`` for every target, with seeds 1 to ``repeat``, a target's seeds one after another."""
    return {target: [measure(target, seed) for seed in range(1, repeat + 1)] for target in Target}


class Column(NamedTuple):
    """One column of figures in a per-target table."""

    heading: str
    figure: str
    """The key of the figure in a target's row."""
    width: int
    decimals: int


def print_per_target(
    title: str, figures: dict[str, dict[str, float]], columns: Sequence[Column], *, target_width: int, indent: str = ""
) -> None:
    """``title``, a line of headings, then a line per target with its figures right-aligned under them."""
    print(title)
    print(indent + f"{'target':<{target_width}}" + "".join(f"{column.heading:>{column.width}}" for column in columns))
    for target, row in figures.items():
        cells = "".join(f"{row[column.figure]:>{column.width}.{column.decimals}f}" for column in columns)
        print(indent + f"{target:<{target_width}}" + cells)


def write_figures(path: str | None, document: dict[str, object], end: str = "") -> None:
    """Write ``document`` as JSON to ``path``, if one was asked for."""
    if path:
        Path(path).write_text(json.dumps(document, indent=2) + end, encoding="utf-8")
