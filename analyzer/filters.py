"""Which attempts a report lists: connection attempts that never reached HTTP apart, then the
user's filters (--failed, --verdict, --reason, --host, --port, --since, --until)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from analyzer.checks.catalogue import CATALOGUE
from analyzer.exchange.model import AttemptKind
from analyzer.life.fold import lifetime_seconds
from analyzer.life.model import Ended
from analyzer.verdict import Diagnosis, Verdict


@dataclass(frozen=True, slots=True)
class Selection:
    """Which attempts a run lists (the filter options)."""
    failed: bool = False  # every verdict but succeeded
    host: str | None = None  # the Host header (with or without its port) or either address
    port: int | None = None  # either port
    verdicts: frozenset[str] = frozenset()  # any of these (empty: any)
    reasons: frozenset[str] = frozenset()  # any finding with one of these ids (empty: any)
    since: float | None = None  # the attempt's time (request, or SYN), inclusive
    until: float | None = None
    tcp: bool = False  # list connection attempts that never reached HTTP too
    # seconds a switched connection lived after its switch (--min-lifetime, --max-lifetime)
    min_lifetime: float | None = None
    max_lifetime: float | None = None

    def listed(self, d: Diagnosis) -> bool:
        """Whether the report lists (and numbers) this attempt at all. A refused or unanswered
        SYN is not an HTTP upgrade attempt: without --tcp such attempts are only counted, so
        that a port scan does not bury the one WebSocket, nor trip --fail-on."""
        return self.tcp or d.attempt.kind is not AttemptKind.TCP

    def _lives(self, seconds: float | None) -> bool:
        if self.min_lifetime is None and self.max_lifetime is None:
            return True
        if seconds is None:
            return False
        return ((self.min_lifetime is None or seconds >= self.min_lifetime)
                and (self.max_lifetime is None or seconds <= self.max_lifetime))

    def keep(self, d: Diagnosis) -> bool:
        a = d.attempt
        if self.failed and d.verdict in _NOT_FAILED:
            return False
        if not self._lives(lifetime_seconds(d)):
            return False
        if self.verdicts and d.verdict.value not in self.verdicts:
            return False
        if self.reasons and not any(f.check in self.reasons for f in d.findings):
            return False
        if self.since is not None and a.time < self.since:
            return False
        if self.until is not None and a.time > self.until:
            return False
        if self.port is not None and self.port not in (a.client.port, a.server.port):
            return False
        if self.host is not None:
            names = {a.client.ip, a.server.ip}
            header = a.request_head.headers.get("host") if a.request_head is not None else None
            if header:
                names.add(header)
                names.add(header.rsplit(":", 1)[0].strip("[]"))
            if self.host not in names:
                return False
        return True


    def keep_ended(self, e: Ended) -> bool:
        """The filters on an `ended` event (streamed reports): its final verdict, its life
        findings, its lifetime, its addresses and time."""
        if self.failed and e.verdict in _NOT_FAILED:
            return False
        if self.verdicts and e.verdict.value not in self.verdicts:
            return False
        if self.reasons and not any(f.check in self.reasons for f in e.findings):
            return False
        if not self._lives(e.lifetime.duration_s):
            return False
        if self.since is not None and e.time < self.since:
            return False
        if self.until is not None and e.time > self.until:
            return False
        if self.port is not None and self.port not in (e.client.port, e.server.port):
            return False
        return self.host is None or self.host in (e.client.ip, e.server.ip)


# wave2-decisions.md: --failed keeps every verdict except these
_NOT_FAILED = (Verdict.SUCCEEDED, Verdict.DECLINED)


def parse_time(text: str, local: bool = False) -> float:
    """Seconds since 1970 from an ISO 8601 time (`2023-11-14T22:13:20Z`, `2023-11-14 22:13`;
    without a zone: UTC, or local time when ``local``) or from Unix seconds (`1700000000.5`, as
    `tcpdump -tt` prints them). ValueError with a one-line message otherwise."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time (2023-11-14T22:13:20Z) nor "
                         f"Unix seconds (1700000000)") from None
    if stamp.tzinfo is None:
        stamp = stamp.astimezone() if local else stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def check_ids() -> list[str]:
    return [check.id for check in CATALOGUE]


def near_ids(text: str) -> list[str]:
    """Catalogue ids close to a mistyped one: spelling first, then ids containing it."""
    ids = check_ids()
    import difflib  # here: only a mistyped id needs it

    close = difflib.get_close_matches(text.lower(), ids, n=3, cutoff=0.6)
    close += [i for i in ids if text.lower() in i and i not in close]
    return close[:5]
