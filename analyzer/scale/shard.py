"""One shard of a capture: the connections whose server endpoint hashes to it; its results
keyed by the frame that decided them; and the merge of several shards' results and totals.

How it works
------------
Every shard reads the whole capture. A connection belongs to the shard that its server
endpoint (address and port of the side that received the SYN) hashes to, so every attempt to
one server is judged in one shard, with the others to that server: the views that compare
attempts of one server (a plain 4xx promoted when another request to the same path upgrades,
`exchange/relevance.py`) see what one process sees. A shard ignores the other connections from
their first segment (`Analysis(owns=...)`), and the compiled skip drops their later frames
unread, as it drops bulk traffic. A capture that starts mid-connection shows no SYN: the side
with the lower port is taken as the server (ephemeral ports are high).

The order of a streamed report (JSONL) is the order of decision: an attempt's key is the frame
being read when it was decided (`END` for the ones judged at the end of the capture), then its
first frame, then the shard and the shard's own order. One process decides the attempts of one
connection in the same order, so the merged stream is one process's stream sorted by that key:
the same lines in the same order, but where one frame decides several attempts (a sweep of idle
connections, a segment that ends two exchanges), which the merge orders by first frame and one
process in the order its stages emit them (tests/test_scale.py `merge_order`). A JSONL run's
workers send each attempt's line rendered (`report/digest.py`).
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from analyzer.decode.segment import Segment
from analyzer.exchange.handoff import MAX_LISTED_TLS_SESSIONS
from analyzer.exchange.model import Attempt, AttemptKind
from analyzer.pipeline import (
    MAX_LISTED_TCP_ATTEMPTS,
    Analysis,
    Decided,
    RunStats,
    _transport_reason,
)
from analyzer.reassembly import Connection
from analyzer.report.digest import Digest
from analyzer.source.frame import CaptureWarning
from analyzer.source.stream import Record
from analyzer.verdict import Diagnosis

END = sys.maxsize  # the decision frame of attempts judged when the capture ends
_SYN = 0x02


def server_endpoint(conn: Connection, segment: Segment) -> bytes:
    """The server's address and port, as bytes, from a connection's first segment."""
    return _sides(conn, segment)[1]


def _sides(conn: Connection, segment: Segment) -> tuple[bytes, bytes]:
    """The client's address, and the server's address and port, as bytes."""
    a_address, a_port, b_address, b_port = conn.addresses
    if segment.flags & _SYN or b_port <= a_port:
        return a_address, b_address + b_port.to_bytes(2, "big")
    return b_address, a_address + a_port.to_bytes(2, "big")


def shard_of(endpoint: bytes, shards: int) -> int:
    # crc32, not hash(): every process (and every machine of a cluster) must agree.
    return zlib.crc32(endpoint) % shards


class Owner:
    """`Analysis(owns=...)` for shard ``index`` of ``shards``; counts the connections owned
    (a shard's reassembler counts every connection it saw, owned or not); with ``roles``,
    notes which addresses opened a connection and which took one, owned or not
    (`may_be_a_leg`: a sorted report's worker asks)."""

    def __init__(self, index: int, shards: int, roles: bool = False) -> None:
        self.index = index
        self.shards = shards
        self.owned = 0
        # bitmaps of the addresses' crc32s: fixed memory however many hosts the capture has
        self._roles = roles
        self._clients = bytearray(_ROLE_BITS >> 3 if roles else 0)
        self._servers = bytearray(_ROLE_BITS >> 3 if roles else 0)

    def __call__(self, conn: Connection, segment: Segment) -> bool:
        client, server = _sides(conn, segment)
        if self._roles:
            _mark(self._clients, client)
            _mark(self._servers, server[:-2])
        if shard_of(server, self.shards) != self.index:
            return False
        self.owned += 1
        return True

    def may_be_a_leg(self, attempt: Attempt) -> bool:
        """Whether ``attempt`` may be a leg of a proxied handshake, as far as the capture
        read so far shows: its server's address opened a connection too (a proxy's, to a
        backend: a front leg, or one the proxy answered itself), or its client's address
        took one (a back leg, opened by a proxy). What correlation may judge again needs
        the attempt whole (report/digest.py); a miss (a proxy that connects from another
        address, a backend connection seen after its front was decided) costs the report a
        rebuild, never a wrong line; a hash collision only an attempt sent whole."""
        assert self._roles  # (made with roles)
        return (_marked(self._clients, attempt.server.address)
                or _marked(self._servers, attempt.client.address))


_ROLE_BITS = 1 << 20  # 128 KB a bitmap


def _mark(bits: bytearray, address: bytes) -> None:
    n = zlib.crc32(address) & (_ROLE_BITS - 1)
    bits[n >> 3] |= 1 << (n & 7)


def _marked(bits: bytearray, address: bytes) -> bool:
    n = zlib.crc32(address) & (_ROLE_BITS - 1)
    return bool(bits[n >> 3] & 1 << (n & 7))


def decisions(analysis: Analysis, records: Iterable[Record]) -> Iterator[tuple[int, Decided]]:
    """(decision frame, diagnosis) for every attempt of a capture, in the order decided (and
    with lifetimes, (frame, `Ended`) when a connection in life ends).

    The frame is the one being read when the attempt was decided (`Analysis.deciding`).
    Not the reader's `number` when the attempt comes out: for a segment the compiled skip
    took, that is already the next record's, and which records the skip takes differs
    between a shard and one process (the shards' JSONL left one process's order).
    """
    for diagnosis in analysis.feed_records(records):
        yield analysis.deciding, diagnosis
    for diagnosis in analysis.finishing():
        yield END, diagnosis


@dataclass(slots=True)
class ShardTotals:
    """What a shard sends back besides its attempts."""

    index: int
    stats: RunStats
    owned: int  # connections this shard followed
    warnings: list[CaptureWarning] = field(default_factory=list)


def merge_totals(parts: Sequence[ShardTotals]) -> RunStats:
    """The totals of one process over the whole capture, from its shards'.

    What every shard counts over the whole file (frames, segments, frames without TCP, QUIC
    flows, times, key log lines, timestamps that step back) is taken from the shard that
    read furthest (all equal once every shard has ended); what counts connections is added
    up.
    """
    ahead = max(parts, key=lambda p: (p.stats.frames, -p.index))
    stats = RunStats(
        frames=ahead.stats.frames, tcp_segments=ahead.stats.tcp_segments,
        skipped=ahead.stats.skipped.copy(), quic_flows=ahead.stats.quic_flows,
        first_time=ahead.stats.first_time, last_time=ahead.stats.last_time,
        keylog_ignored_lines=ahead.stats.keylog_ignored_lines,
        timestamps_backwards=ahead.stats.timestamps_backwards,
        timestamps_backwards_first_frame=ahead.stats.timestamps_backwards_first_frame,
        timestamps_backwards_largest_s=ahead.stats.timestamps_backwards_largest_s)
    listed = []
    for part in parts:
        other = part.stats
        stats.connections += part.owned
        stats.http_connections += other.http_connections
        stats.ordinary_exchanges += other.ordinary_exchanges
        # Every shard's table holds every connection (the others' ignored): the most any
        # shard evicted is the closest to one process's count (equal below the cap: none).
        stats.evicted_connections = max(stats.evicted_connections, other.evicted_connections)
        stats.unlisted_tcp_attempts.update(other.unlisted_tcp_attempts)
        stats.abandoned_heads += other.abandoned_heads
        stats.tls_uninspected += other.tls_uninspected
        stats.tls_decrypted += other.tls_decrypted
        stats.tls_unused += other.tls_unused
        stats.snaplen_cut_segments += other.snaplen_cut_segments
        # a copy is folded into its connection by the shard that owns it (the others ignore
        # that connection from its first segment: it never finishes there)
        stats.connections_captured_twice += other.connections_captured_twice
        listed += other.tls_uninspected_listed
    # One process lists sessions as they end: by last frame is that order.
    listed.sort(key=lambda s: (s.last_frame, s.first_frame))
    stats.tls_uninspected_listed = listed[:MAX_LISTED_TLS_SESSIONS]
    return stats


class TcpListing:
    """One process lists the first MAX_LISTED_TCP_ATTEMPTS attempts that never reached HTTP
    and counts the rest by reason. Each shard lists its own first ones; in decision order the
    merge keeps the first of all shards and counts the others here."""

    def __init__(self, limit: int = MAX_LISTED_TCP_ATTEMPTS) -> None:
        self.limit = limit
        self.listed = 0
        self.unlisted: dict[str, int] = {}

    def admit(self, diagnosis: Diagnosis | Digest) -> bool:
        if isinstance(diagnosis, Digest):  # (a worker found its reason: report/digest.py)
            if diagnosis.transport_reason is None:
                return True
        elif diagnosis.attempt.kind is not AttemptKind.TCP:
            return True
        if self.listed < self.limit:
            self.listed += 1
            return True
        reason = (diagnosis.transport_reason or "none" if isinstance(diagnosis, Digest)
                  else _transport_reason(diagnosis.attempt))
        self.unlisted[reason] = self.unlisted.get(reason, 0) + 1
        return False

    def count_into(self, stats: RunStats) -> None:
        stats.unlisted_tcp_attempts.update(self.unlisted)
