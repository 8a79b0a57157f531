"""The human formats' clock (analyzer/report/clock.py): each second's text made once gives
what making it anew gives, in UTC and local time, with and without the date."""

from __future__ import annotations

import random
import time

import pytest

from analyzer.report import clock as clock_module
from analyzer.report.clock import Clock

# Times a capture may hold: a storm's many in one second, any second at all, the edges where
# fromtimestamp rounds the microseconds up into the next second (or year), times no calendar
# holds, and what a crafted capture may give (NaN, infinities)
_STORM = [1_700_000_000.0 + n / 997 for n in range(3_000)]
_EDGES = [5.9999999, 5.9999996, 5.0000004, -0.0000004, -1.9999996, 1e20, -1e20, 1e-7,
          253402300799.9999996, 253402300800.0, -62135596800.0, -62135596800.0000004,
          float("nan"), float("inf"), float("-inf")] + [n + 0.9999995 for n in range(300)]


def _values(seed: int) -> list[float]:
    rng = random.Random(seed)
    anywhere = [rng.uniform(-7e10, 2.6e11) for _ in range(3_000)]
    return _STORM + anywhere + _EDGES


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Australia/Lord_Howe"])
def test_each_second_made_once_is_the_second_made_anew(
        monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        for clock in (Clock(), Clock(local=True), Clock(with_date=True),
                      Clock(local=True, with_date=True)):
            for seconds in _values(len(zone)):
                for fraction in (True, False):
                    assert clock.time(seconds, fraction) == clock.time_plain(seconds, fraction), \
                        (clock, seconds, fraction)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_seconds_kept_stay_bounded() -> None:
    clock = Clock()
    for n in range(3 * clock_module._SECONDS_KEPT):
        assert clock.time(1_700_000_000.25 + n) == clock.time_plain(1_700_000_000.25 + n)
        assert len(clock_module._SECONDS) <= clock_module._SECONDS_KEPT


def test_a_summer_time_hour_that_comes_twice_prints_as_the_clock_shows_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same local second, once in summer time and once after it ended (2023-11-05 in New
    York): one text, as the wall clock showed it both times."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        first, second = 1_699_162_200.5, 1_699_165_800.5  # 01:30:00 EDT, 01:30:00 EST
        clock = Clock(local=True)
        assert clock.time(first) == clock.time(second) == "01:30:00.500"
        assert clock.time(second) == clock.time_plain(second)
    finally:
        monkeypatch.undo()
        time.tzset()
