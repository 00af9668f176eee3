"""Sizes, rates and durations as people write them: ``4GiB``, ``10Gb/s``, ``300ms``.

Binary prefixes (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (kB,
MB, GB, TB) powers of 1000.  In a rate, a lowercase ``b`` means bits and an
uppercase ``B`` bytes: ``25Gb/s`` is 3.125e9 bytes per second.
"""

from __future__ import annotations

import re

from reference_impl.clock import NS_PER_MS, NS_PER_S, NS_PER_US

_PREFIX = {
    "": 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
}
_NUMBER = r"(?P<number>\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_SIZE = re.compile(rf"^\s*{_NUMBER}\s*(?P<prefix>Ki|Mi|Gi|Ti|k|K|M|G|T|)(?P<unit>B?)\s*$")
_RATE = re.compile(rf"^\s*{_NUMBER}\s*(?P<prefix>Ki|Mi|Gi|Ti|k|K|M|G|T|)(?P<unit>B|b|bit|bps|Bps)?(?:/s|ps)?\s*$")
_DURATION = re.compile(rf"^\s*{_NUMBER}\s*(?P<unit>ns|us|µs|ms|s|min)?\s*$")
_DURATION_UNIT = {"ns": 1, "us": NS_PER_US, "µs": NS_PER_US, "ms": NS_PER_MS, "s": NS_PER_S, "min": 60 * NS_PER_S}


class UnitError(ValueError):
    """A size, rate or duration that cannot be read."""


def _number(match: re.Match[str]) -> float:
    text = match.group(0).strip()
    head = re.match(_NUMBER, text)
    assert head is not None  # the caller's pattern starts with _NUMBER
    return float(head.group(0))


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``4GiB``, ``512MiB``, ``1.5GB``, ``4096``."""
    match = _SIZE.match(text)
    if match is None:
        raise UnitError(f"cannot read {text!r} as a size (try 4GiB, 512MiB or a number of bytes)")
    value = _number(match) * _PREFIX[match["prefix"]]
    if value != int(value) or value <= 0:
        raise UnitError(f"size {text!r} is not a positive whole number of bytes")
    return int(value)


def parse_rate(text: str) -> float:
    """Bytes per second in ``text``: ``10Gb/s`` (bits), ``1GiB/s`` (bytes), ``125000000`` (bytes)."""
    match = _RATE.match(text)
    if match is None:
        raise UnitError(f"cannot read {text!r} as a rate (try 10Gb/s, 128MiB/s or bytes per second)")
    value = _number(match) * _PREFIX[match["prefix"]]
    unit = match["unit"] or "B"
    if unit in ("b", "bit", "bps"):
        value /= 8
    if value < 0:
        raise UnitError(f"rate {text!r} is negative")
    return value


def parse_duration(text: str) -> int:
    """Nanoseconds in ``text``: ``300ms``, ``2s``, ``50us``; a bare number is milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UnitError(f"cannot read {text!r} as a duration (try 300ms, 2s or 50us)")
    return round(_number(match) * _DURATION_UNIT[match["unit"] or "ms"])


def format_size(nbytes: float) -> str:
    """``nbytes`` with a binary prefix: ``4.0 GiB``."""
    for prefix, factor in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if abs(nbytes) >= factor:
            return f"{nbytes / factor:.1f} {prefix}B"
    return f"{nbytes:.0f} B"
