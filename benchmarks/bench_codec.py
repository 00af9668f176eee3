"""Codec benchmark: decode, encode, round trip and guest writes per capability.

Run with `tox -e bench` or `python benchmarks/bench_codec.py`.  Prints the
median of several timed runs (the machines are noisy), per operation and per
slot count.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable
from functools import partial

import vfmig_proto as vfm
from vfmig_proto.layout import CapabilityParams

REPEATS = 7
LOOPS = 500


def _median_us(operation: Callable[[], object]) -> float:
    runs = timeit.repeat(operation, number=LOOPS, repeat=REPEATS)
    return statistics.median(runs) / LOOPS * 1e6


def _round_trip(cap: bytes) -> bytes:
    return vfm.encode_capability(vfm.decode_capability(cap))


def main() -> int:
    print(f"vfmig_proto codec, Python {sys.version.split()[0]}: median of {REPEATS} runs x {LOOPS} calls")
    columns = ("slots", "bytes", "decode us", "encode us", "round trip us", "config_write us")
    widths = (5, 6, 10, 10, 14, 16)
    print(" ".join(f"{name:>{width}}" for name, width in zip(columns, widths, strict=True)))
    for num_slots in (1, 8, 31):
        cap = vfm.reset_value(CapabilityParams(num_slots=num_slots))
        view = vfm.decode_capability(cap)
        decode = _median_us(partial(vfm.decode_capability, cap))
        encode = _median_us(partial(vfm.encode_capability, view))
        round_trip = _median_us(partial(_round_trip, cap))
        write = _median_us(partial(vfm.config_write, cap, 0x14, b"\x03\x00"))
        print(f"{num_slots:>5} {len(cap):>6} {decode:>10.1f} {encode:>10.1f} {round_trip:>14.1f} {write:>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
