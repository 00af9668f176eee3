"""Helpers of the tests that run ``vfmig`` in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[1]
"""The checkout (or worktree) the tests run in."""

SMALL = ("--memory", "64MiB")
"""A guest small enough that a simulation takes milliseconds."""


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``vfmig ARGV`` in-process: (exit code, stdout, stderr); argparse's own exits count as exit codes."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else -1  # a message as exit code: no test expects -1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_usage_error(code: int, err: str, *mentions: str) -> None:
    """Exit 2 with exactly one line on standard error, no traceback, and every one of ``mentions`` in it."""
    assert code == EXIT_USAGE
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, f"one line on stderr, got:\n{err}"
    for text in mentions:
        assert text in err, f"{text!r} not in {err!r}"
