"""What the conformance benchmarks share: their options, and one timed run of a target's suite."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from conformance.verdicts import RunReport, Target


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


def write_figures(path: str | None, document: dict[str, object], end: str = "") -> None:
    """Write ``document`` as JSON to ``path``, if one was asked for."""
    if path:
        Path(path).write_text(json.dumps(document, indent=2) + end, encoding="utf-8")
