"""How a connection is handed from the HTTP/1 tracker to the stage that reads its protocol.

Every connection starts with a ``ConnectionTracker`` as its reassembler listener. When a
direction's first bytes (``first_bytes.classify_first_bytes``) are of a kind with a handler in
``RunContext.handlers`` (TLS, the HTTP/2 preface), the tracker builds that handler with the same
``TcpLog``, makes it the connection's listener and replays into it the bytes it had buffered;
from then on the reassembler calls the handler directly, so the dispatch costs nothing per
segment. A handler may run an inner ``ConnectionTracker`` on bytes it produced (TLS plaintext)
with a ``RunContext`` of its own (an ``emit`` that adds what it knows to each attempt, and an
``ignore`` that stops only the inner reading).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analyzer.exchange.first_bytes import Start
from analyzer.exchange.model import Attempt, TlsSessionSummary
from analyzer.exchange.relevance import PlainRejections
from analyzer.exchange.switch import DEFAULT_WINDOW, ObservationWindow
from analyzer.reassembly import Connection, StreamListener
from analyzer.websocket.frames import WsFrameParser

if TYPE_CHECKING:
    from analyzer.exchange.tcplog import TcpLog
    from analyzer.life.state import Sink as LifeSink


@dataclass(slots=True)
class ExchangeCounters:
    """Totals the report's summary needs, shared by every tracker of one run."""

    http_connections: int = 0
    ordinary_exchanges: int = 0
    abandoned_heads: int = 0  # heads with no end within MAX_HEAD_BYTES: that side went dead
    # Plain requests answered 4xx, held until an upgrade on their path makes them attempts
    # (shared by the trackers of a run: the upgrade usually comes on another connection).
    plain: PlainRejections = field(default_factory=PlainRejections)
    # TLS sessions with application data that could not be read (no key) or analysed: all
    # counted, the first MAX_LISTED_TLS_SESSIONS kept for the report (analyzer/tls/layer.py).
    tls_uninspected: int = 0
    tls_uninspected_listed: list[TlsSessionSummary] = field(default_factory=list)
    tls_decrypted: int = 0  # TLS sessions whose records were decrypted
    tls_unused: int = 0  # TLS sessions opened and never used (tls/layer.py `_unused`)



MAX_LISTED_TLS_SESSIONS = 1000


HandlerFactory = Callable[["RunContext", Connection, "TcpLog", Start], StreamListener]


def _ignore_connection(conn: Connection) -> None:
    conn.ignore()


@dataclass(slots=True)
class RunContext:
    """What every connection of one run shares: where attempts go, the counters, the handlers."""

    emit: Callable[[Attempt], None]
    counters: ExchangeCounters = field(default_factory=ExchangeCounters)
    window: ObservationWindow = DEFAULT_WINDOW
    handlers: dict[Start, HandlerFactory] = field(default_factory=dict)
    secrets: object | None = None  # the TLS stage's key store; None without keys
    # What a tracker calls once it needs no more bytes of its connection. The outermost reader
    # stops reassembly (Connection.ignore); an inner tracker (TLS plaintext) must not, since
    # the stage around it still reads the records.
    ignore: Callable[[Connection], None] = _ignore_connection
    # Where a switched connection goes after its watch window (analyzer/life): the pipeline
    # sets it; None (an inner tracker, or a caller without the life stage) lets it go
    # through `ignore` as before.
    life_sink: LifeSink | None = None
    # The compiled skip's ledger when a decrypted TLS direction's records may pass unread
    # (tls/passing.py); None for the pure-Python path and inner readers.
    passing: object | None = None
    # The WebSocket frame parser of the watch windows: the compiled twin in a compiled run
    # (`websocket.frames.frame_parser`), the plain one otherwise; a TLS session's inner
    # reader takes its run's.
    frame_parser: Callable[..., WsFrameParser] = WsFrameParser
    # The input a frame came from, of several files read together (None: one input), so a
    # TLS session without a key is told by what its own file carried (tls/reporting.py)
    source_of: Callable[[int], int] | None = None
    # Live capture with a key log still being written: TLS sessions that ended while their
    # records waited for their key (tls/layer.py `_wait_for_key`). Each is called with the
    # time at every tick, and with infinity at the end of the run, until it says True.
    awaiting_keys: list[Callable[[float], bool]] = field(default_factory=list)
