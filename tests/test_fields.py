"""The per-attempt fields (report/fields.py): the fast paths give what their plain twins give."""

from __future__ import annotations

import random
import struct
from pathlib import Path

from analyzer.report.fields import iso_time, iso_time_plain
from tests.helpers import analyze_pcap

CAPTURES = Path(__file__).resolve().parent.parent / "captures"

# Where the microseconds round or carry (half to even, at .5 µs), both sides of 1970, the
# first and last second datetime holds and just past them, and what is no number.
EDGES = [
    0.0, -0.0, 0.5e-6, 1.5e-6, 2.5e-6, -0.5e-6, -1e-7, 0.9999995, 0.99999949999, -0.9999995,
    1700000000.0000005, 1700000000.9999995, 1733349999.999999, -62135596800.0,
    -62135596801.0, 253402300799.999999, 253402300799.9999999, 253402300800.0,
    14475000000000.0, 1e20, -1e20, 1e-300, -1e-300, 2.0 ** 53, 2.0 ** 63, -(2.0 ** 63),
    float("inf"), float("-inf"), float("nan"),
]


def test_iso_time_equals_its_plain_twin_at_the_edges() -> None:
    for seconds in EDGES:
        assert iso_time(seconds) == iso_time_plain(seconds), seconds


def test_iso_time_equals_its_plain_twin_on_random_times() -> None:
    rng = random.Random(15)
    values = []
    for _ in range(20_000):
        values.append(1.7e9 + rng.random() * 1e6)  # capture-like, the cache's own case
        values.append(rng.uniform(-1e10, 1e10))
        values.append(rng.randint(0, 2 ** 33) + rng.randint(0, 999_999) / 1e6
                      + rng.choice((0.0, 5e-7, -5e-7, 4.9999e-7)))
        # any 64-bit pattern: subnormals, huge, negative, inf and nan among them
        values.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
    for seconds in values:
        assert iso_time(seconds) == iso_time_plain(seconds), seconds


def test_iso_time_equals_its_plain_twin_on_real_attempts() -> None:
    times = []
    for name in ("ws_ok_websockets.pcap", "nginx_error_pages.pcap", "websocket_lives.pcap"):
        times += [d.attempt.time for d in analyze_pcap(CAPTURES / name)]
    assert times
    for seconds in times:
        assert iso_time(seconds) == iso_time_plain(seconds)
