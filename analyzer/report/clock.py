"""How the human formats print a time: UTC (labelled so) or the local zone, with the date when a
capture spans days. JSON, JSONL and CSV always give UTC ISO 8601 (`fields.iso_time`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class Clock:
    """How times are written: the zone, and whether with the date."""
    local: bool = False  # --local-time
    with_date: bool = False  # the attempts listed span more than one day (in this zone)

    @property
    def label(self) -> str:
        """The zone, for headings: "UTC", or the local zone's abbreviation ("CET")."""
        if not self.local:
            return "UTC"
        return datetime.now().astimezone().tzname() or "local"

    def _at(self, seconds: float) -> datetime | None:
        try:
            stamp = datetime.fromtimestamp(seconds, UTC)
            return stamp.astimezone() if self.local else stamp
        except (OverflowError, OSError, ValueError):  # no calendar date (a crafted capture)
            return None

    def time(self, seconds: float, fraction: bool = True) -> str:
        """HH:MM:SS.mmm (YYYY-MM-DD first when `with_date`); "@seconds" for a time that no
        calendar holds, as `fields.iso_time` gives it. Each second's text is made once
        (`_SECONDS`): a table of a reconnect storm prints thousands of attempts a second, and
        ``strftime`` was half of the ≈ 6 µs a time cost."""
        stamp = self._at(seconds)
        if stamp is None:
            return f"@{seconds:.6f}"
        # (the second as the clock shows it, after ``fromtimestamp`` rounded the microseconds;
        # its fields, not ``replace(microsecond=0)``: 0.3 µs against 2.3)
        key = (self.with_date, stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute,
               stamp.second)
        text = _SECONDS.get(key)
        if text is None:
            if len(_SECONDS) >= _SECONDS_KEPT:
                _SECONDS.clear()
            text = _SECONDS[key] = stamp.strftime(
                "%Y-%m-%d %H:%M:%S" if self.with_date else "%H:%M:%S")
        return text + f".{stamp.microsecond // 1000:03d}" if fraction else text

    def time_plain(self, seconds: float, fraction: bool = True) -> str:
        """`time`'s plain twin, each second made anew (tests/test_clock.py compares them)."""
        stamp = self._at(seconds)
        if stamp is None:
            return f"@{seconds:.6f}"
        text = stamp.strftime("%Y-%m-%d %H:%M:%S" if self.with_date else "%H:%M:%S")
        return text + f".{stamp.microsecond // 1000:03d}" if fraction else text

    def day(self, seconds: float) -> str | None:
        stamp = self._at(seconds)
        return stamp.strftime("%Y-%m-%d") if stamp is not None else None

    def spanning(self, times: list[float]) -> Clock:
        """This clock, with the date when ``times`` fall on more than one day."""
        days = {self.day(t) for t in times}
        return Clock(self.local, len(days) > 1)


UTC_CLOCK = Clock()

# (with the date, the second's fields) -> its text, for the seconds printed last (the fields
# are the text: a local hour that comes twice at the end of summer time prints the same)
_SECONDS: dict[tuple[int, ...], str] = {}
_SECONDS_KEPT = 4096
