"""The values the report reads about a run as a whole (counts, times), apart from the
pipeline that fills them, so that renderers do not import the pipeline."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from analyzer.exchange.model import TlsSessionSummary

# A SYN flood or a port scan is a million connection attempts that never reached HTTP. The
# first ones are listed like any attempt (they show what happened and when); past this many in
# one run they are only counted in the summary, by reason, so that the report and the memory
# holding it stay small and the attempts that did reach HTTP stay readable.
MAX_LISTED_TCP_ATTEMPTS = 1000


@dataclass(slots=True)
class RunStats:
    """What the summary says about the capture as a whole."""

    frames: int = 0
    tcp_segments: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # frames without TCP, by reason
    connections: int = 0
    http_connections: int = 0
    ordinary_exchanges: int = 0
    evicted_connections: int = 0
    # Connection attempts that never reached HTTP (refused, unanswered SYN) decided after the
    # first MAX_LISTED_TCP_ATTEMPTS: counted by primary finding id instead of listed.
    unlisted_tcp_attempts: Counter[str] = field(default_factory=Counter)
    abandoned_heads: int = 0  # HTTP heads with no end within MAX_HEAD_BYTES (exchange/pending.py)
    # TLS sessions with application data that could not be read (no key) or analysed, and the
    # first MAX_LISTED_TLS_SESSIONS of them; sessions decrypted (analyzer/tls/layer.py).
    tls_uninspected: int = 0
    tls_uninspected_listed: list[TlsSessionSummary] = field(default_factory=list)
    tls_decrypted: int = 0
    # TLS sessions whose client completed the handshake and then sent nothing, not even an
    # alert: a browser's spare or preconnected connection (not attempts)
    tls_unused: int = 0
    # TCP segments of read connections whose end the capture's snapshot length cut off (tcpdump
    # -s N): their bytes past it are holes, and a head cut so may not be read
    snaplen_cut_segments: int = 0
    # Connections whose SYN (or SYN-ACK) was seen again after their end, with the same first
    # sequence number: a second copy of them (a capture on several interfaces, both ends'
    # captures merged), read as the same connection and counted once (`Connection.copied`)
    connections_captured_twice: int = 0
    # Records whose timestamp is earlier than the previous record's (an unsorted merge, a
    # clock stepped back): durations and timeouts measured across them may be wrong. The
    # first one's frame number (0: none) and the largest step back, in seconds
    # (`source.frame.Backsteps`).
    timestamps_backwards: int = 0
    timestamps_backwards_first_frame: int = 0
    timestamps_backwards_largest_s: float = 0.0
    keylog_ignored_lines: int = 0  # lines of the key log that were not secrets
    quic_flows: int = 0  # UDP flows that start like QUIC (HTTP/3): seen, not analysed
    first_time: float | None = None
    last_time: float | None = None
