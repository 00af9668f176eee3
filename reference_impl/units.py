"""Sizes, rates and durations as people write them: ``4GiB``, ``10Gb/s``, ``300ms``.

A size (guest RAM) is written with a binary prefix, ``4GiB``, or in QEMU's
``-m`` notation, ``4G``, which means the same; a bare number is bytes.  A
decimal unit such as ``4GB`` is refused: people use it for both 4e9 and 2^32
bytes, and a guest's RAM is a whole number of pages, which 4e9 bytes is not.

In a rate, binary prefixes (KiB, MiB, GiB, TiB) are powers of 1024 and decimal
ones (k, M, G, T) powers of 1000, as network links are quoted; a lowercase
``b`` means bits and an uppercase ``B`` bytes: ``25Gb/s`` is 3.125e9 bytes
per second.

Every parser raises :class:`UnitError` with a message that starts with the
text it could not use, so that a caller can put the option's name in front.
"""

from __future__ import annotations

import math
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
_BINARY = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
"""QEMU's size suffixes (``-m 4G``), which are binary whether or not an ``i`` follows."""
_SIGN = r"(?P<sign>-?)"
_NUMBER = r"(?P<number>\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_PLAIN_NUMBER = r"(?P<number>\d+(?:\.\d*)?|\.\d+)"
"""A size takes no exponent: ``1e9`` bytes is no whole number of pages, and QEMU does not read it either."""
_SIZE = re.compile(rf"^\s*{_SIGN}{_PLAIN_NUMBER}\s*(?:(?P<prefix>[KMGTkmgt])(?:iB|i|B)?|B)?\s*$")
_DECIMAL_SIZE = re.compile(rf"^\s*{_SIGN}{_PLAIN_NUMBER}\s*(?P<unit>[kKMGT]B)\s*$")
_RATE = re.compile(
    rf"^\s*{_SIGN}{_NUMBER}\s*(?P<prefix>Ki|Mi|Gi|Ti|k|K|M|G|T|)(?P<unit>B|b|bit|bps|Bps)?(?:/s|ps)?\s*$"
)
_DURATION = re.compile(rf"^\s*{_SIGN}{_NUMBER}\s*(?P<unit>ns|us|µs|ms|s|min)?\s*$")
_DURATION_UNIT = {"ns": 1, "us": NS_PER_US, "µs": NS_PER_US, "ms": NS_PER_MS, "s": NS_PER_S, "min": 60 * NS_PER_S}


class UnitError(ValueError):
    """A size, rate or duration that cannot be read."""


def _number(match: re.Match[str]) -> float:
    """The signed number at the start of ``match`` (exponent included), refused unless finite."""
    text = match.group(0).strip()
    head = re.match(rf"-?{_NUMBER}", text)
    assert head is not None  # the caller's pattern starts with _SIGN and a number
    value = float(head.group(0))
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is too large")
    return value


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``4GiB``, ``4G`` (QEMU: the same), ``512MiB``, ``1.5GiB``, ``4096`` (bytes)."""
    decimal = _DECIMAL_SIZE.match(text)
    if decimal is not None:
        unit = decimal["unit"]
        raise UnitError(f"{text!r} is not a size ({unit} is ambiguous: write {unit[0].upper()}iB, or QEMU's {unit[0]})")
    match = _SIZE.match(text)
    if match is None:
        raise UnitError(f"{text!r} is not a size (use e.g. 4GiB or QEMU's 4G)")
    value = float(match["number"]) * _BINARY[(match["prefix"] or "").upper()]
    if match["sign"] or value == 0:
        raise UnitError(f"{text!r} is not a positive size")
    if value != int(value):
        raise UnitError(f"{text!r} is not a whole number of bytes")
    return int(value)


def parse_rate(text: str) -> float:
    """Bytes per second in ``text``: ``10Gb/s`` (bits), ``1GiB/s`` (bytes), ``125000000`` (bytes)."""
    match = _RATE.match(text)
    if match is None:
        raise UnitError(f"{text!r} is not a rate (use e.g. 10Gb/s, 128MiB/s or bytes per second)")
    value = _number(match) * _PREFIX[match["prefix"]]
    unit = match["unit"] or "B"
    if unit in ("b", "bit", "bps"):
        value /= 8
    if value < 0:
        raise UnitError(f"{text!r} is a negative rate")
    return value


def parse_duration(text: str) -> int:
    """Nanoseconds in ``text``: ``300ms``, ``2s``, ``50us``; a bare number is milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise UnitError(f"{text!r} is not a duration (use e.g. 300ms, 2s or 50us)")
    value = _number(match)
    if value < 0:
        raise UnitError(f"{text!r} is a negative duration")
    return round(value * _DURATION_UNIT[match["unit"] or "ms"])


def format_size(nbytes: float) -> str:
    """``nbytes`` with a binary prefix: ``4.0 GiB``."""
    for prefix, factor in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if abs(nbytes) >= factor:
            return f"{nbytes / factor:.1f} {prefix}B"
    return f"{nbytes:.0f} B"
