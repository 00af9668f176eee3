"""Text an implementation wrote (messages, tracebacks), made safe for a report format."""

from __future__ import annotations

import re

ANSI_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
"""Terminal control sequences (colours in a traceback): ESC [ parameters intermediates final."""

_LATIN_1_END = 0x100
"""Characters below this are written ``\\xNN``; the rest ``\\uNNNN``."""


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < _LATIN_1_END else f"\\u{code:04x}"


def escape_unwanted(text: str, unwanted: re.Pattern[str]) -> str:
    r"""``text`` without terminal colour codes, and each character ``unwanted`` matches written as ``\xNN`` or
    ``\uNNNN`` (so a reader sees what the implementation wrote, and the format stays valid)."""
    return unwanted.sub(_escaped, ANSI_CSI.sub("", text))
