"""The values the exchange stage hands to the checks: attempts and what the wire showed."""

from __future__ import annotations

# socket's C half: the socket module itself (its enums, selectors) is ≈ 13 M instructions
# (≈ 2 ms) to import, and a read needs nothing of it but inet_ntop.
from _socket import AF_INET, AF_INET6, inet_ntop
from dataclasses import dataclass
from enum import Enum

from analyzer.http.message import RequestHead, ResponseHead
from analyzer.remembered import Remembered
from analyzer.websocket.frames import WsFrame


def format_address(address: bytes) -> str:
    """The text of a packed IPv4 or IPv6 address (`inet_ntop`, uncached: the plain twin of
    `Endpoint.ip`'s cache, compared in tests/test_exchange_model.py)."""
    return inet_ntop(AF_INET if len(address) == 4 else AF_INET6, address)


# Address texts by packed address. Every attempt formats its two endpoints several times
# (checks, attribution, each renderer), and a capture holds few distinct addresses; the
# table is cleared when full, so a scan of a whole /8 cannot grow it without bound.
_ADDRESS_TEXTS: Remembered[bytes, str] = Remembered()


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """An address and port, one side of a connection."""
    address: bytes  # packed IPv4 (4 bytes) or IPv6 (16 bytes)
    port: int

    @property
    def ip(self) -> str:
        text = _ADDRESS_TEXTS.get(self.address)
        if text is None:
            text = _ADDRESS_TEXTS.keep(self.address, format_address(self.address))
        return text

    def __str__(self) -> str:
        ip = self.ip
        return f"[{ip}]:{self.port}" if ":" in ip else f"{ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class Message:
    """One HTTP head as it crossed the wire, with the frames that carried it."""

    head: RequestHead | ResponseHead
    first_frame: int
    last_frame: int  # the frame that completed the head
    time: float  # time of the first byte
    body_prefix: bytes = b""  # the first bytes of the body (error texts live there)
    body_length: int = 0  # body bytes seen
    body_complete: bool = True
    head_complete: bool = True  # False: the connection ended before the head's empty line


@dataclass(frozen=True, slots=True)
class TcpEvent:
    """Where a SYN, FIN or RST was seen: its frame and time."""
    frame: int
    time: float
    # A FIN the capture lost: ``frame`` (the other side's FIN or RST) acknowledged it, so it
    # came before that frame, and ``time`` is only an upper bound.
    lost: bool = False


def came_first(a: TcpEvent, b: TcpEvent) -> bool:
    """Whether ``a`` came before ``b``: an earlier frame, or the lost FIN ``b``'s frame
    acknowledged (one frame cannot carry both sides' ends otherwise)."""
    return a.frame < b.frame or (a.frame == b.frame and a.lost and not b.lost)


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes of one direction the capture does not have."""
    side: str  # "client" or "server"
    offset: int
    length: int
    frame: int
    time: float
    # "capture": bytes the capture lost; "snaplen": bytes the capture's snapshot length cut
    # off a segment's end (its record's caplen < len, delivery.py); "decryption": where a TLS
    # session stopped decrypting after records counted unopened (tls/passing.py), told to
    # the inner reader as a hole
    cause: str = "capture"


@dataclass(frozen=True, slots=True)
class Conflict:
    """Re-sent bytes that differ from the copy delivered first (an overlap conflict)."""

    side: str  # "client" or "server"
    offset: int
    length: int  # from the first to the last differing byte
    frame: int  # the frame carrying the conflicting copy
    time: float


@dataclass(frozen=True, slots=True)
class Resend:
    """A segment that sent bytes again before the capture saw them acknowledged: the first
    copy (seen here) was lost after the capture point, or its acknowledgement was."""

    side: str  # "client" or "server"
    offset: int
    length: int  # the bytes sent again
    frame: int
    time: float


@dataclass(frozen=True, slots=True)
class TcpFacts:
    """What TCP showed of the connection an attempt travelled on."""

    syn: TcpEvent | None = None  # the client's first SYN
    syn_count: int = 0  # SYNs sent by the client (retransmissions included)
    syn_ack: TcpEvent | None = None
    client_fin: TcpEvent | None = None
    server_fin: TcpEvent | None = None
    client_rst: TcpEvent | None = None
    server_rst: TcpEvent | None = None
    gaps: tuple[Gap, ...] = ()
    conflicts: tuple[Conflict, ...] = ()  # overlapping segments with different bytes
    end_reason: str = ""  # "closed", "reset", "end of capture", "idle", WINDOW_OVER, ...
    end_time: float = 0.0
    resent: tuple[Resend, ...] = ()  # re-sent bytes not yet acknowledged, the last ones kept


# `TcpFacts.end_reason`s with a meaning of their own: an attempt decided when its watch window
# ran out, its connection still open (it may go on into life: analyzer/life), and those of a
# connection that ended (both FINs, or a reset) before its attempt was decided
WINDOW_OVER = "observation window over"
CONNECTION_ENDED = ("closed", "reset")


@dataclass(frozen=True, slots=True)
class SeenFrame:
    """A WebSocket frame seen after the switch."""

    side: str  # "client" or "server"
    frame: int  # capture frame number carrying the frame's first byte
    time: float
    ws: WsFrame


@dataclass(frozen=True, slots=True)
class AfterSwitch:
    """The first moments of the new protocol after a 101 (or a CONNECT tunnel)."""

    switch_time: float
    frames: tuple[SeenFrame, ...] = ()  # WebSocket frames, both sides, in capture order
    client_prefix: bytes = b""  # first bytes the client sent in the new protocol
    server_prefix: bytes = b""
    client_first: TcpEvent | None = None  # when each side first sent new-protocol bytes
    server_first: TcpEvent | None = None
    early_client_bytes: int = 0  # client bytes sent before the 101 arrived
    early_client_frame: int = 0
    complete: bool = True  # False when a gap cut the observation short
    h2c_status: int = 0  # h2c: the :status of the answer to the upgraded request (stream 1)
    h2c_status_event: TcpEvent | None = None
    # The indexes in ``frames`` of the frames that are not usual (websocket/frames.py
    # `usual_frame`): the only ones the frame rules read (checks/after_switch.py). None: not
    # worked out (every frame is asked).
    looked: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """One certificate of a chain the server sent in cleartext (TLS 1.2 and older)."""

    subject: str
    issuer: str
    san_names: tuple[str, ...] = ()
    not_before: float = 0.0  # seconds since 1970, UTC
    not_after: float = 0.0


# Why a TLS session was not read, the two that a key would fix (TlsSessionSummary.reason).
NO_KEY = "no key"  # no key log (nor embedded secrets) was given
NOT_IN_KEY_LOG = "not in the key log"  # one was, without this session's client random
# No --keylog, and the keys a capture embedded (pcapng Decryption Secrets Block) lack it
NOT_IN_EMBEDDED_KEYS = "not in the capture's embedded keys"


@dataclass(frozen=True, slots=True)
class TlsSessionSummary:
    """A TLS session that carried application data the run could not read (no key for it),
    or read but could not analyse (HTTP/2 without its stage): counted, and listed in JSON."""

    client: Endpoint
    server: Endpoint
    sni: str
    alpn: str  # the protocol the server selected; "" when the capture cannot show it (TLS 1.3)
    alpn_offered: str  # the client's offer, comma-separated ("" for none)
    version: str
    first_frame: int
    last_frame: int
    reason: str  # NO_KEY, NOT_IN_KEY_LOG, "cipher suite not supported", "HTTP/2 not analysed"...


@dataclass(frozen=True, slots=True)
class TlsAlert:
    """A TLS alert record as the capture shows it."""
    side: str  # "client" or "server"
    level: str  # "warning" or "fatal" ("encrypted" when it could not be read)
    description: str  # the RFC 8446 §6 name, e.g. "unknown_ca"
    frame: int
    time: float


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What the TLS handshake of an attempt's connection showed (the TLS stage fills it)."""

    version: str = ""  # the version chosen, e.g. "TLS 1.3"; "" before a ServerHello
    cipher_suite: str = ""  # IANA name, e.g. "TLS_AES_128_GCM_SHA256"
    sni: str = ""
    alpn_offered: tuple[str, ...] = ()
    alpn: str = ""  # the protocol the server selected
    resumed: bool | None = False  # None: the capture cannot tell (a lost TLS 1.3 ServerHello)
    decrypted: bool = False
    certificates: tuple[CertificateInfo, ...] = ()  # the chain, leaf first, when in cleartext
    alerts: tuple[TlsAlert, ...] = ()
    # What the TLS checks read besides (analyzer/tls/layer.py fills them):
    versions_offered: tuple[str, ...] = ()
    retry: bool = False  # the server sent a HelloRetryRequest first
    client_hello_frame: int = 0
    client_hello_time: float = 0.0
    server_hello_frame: int = 0  # 0: the server never sent a ServerHello
    server_hello_time: float = 0.0
    server_flight_frame: int = 0  # the last frame of the server's first handshake flight
    certificate_request: bool = False  # the server asked for a client certificate (mutual TLS)
    client_certificate_empty: bool = False  # ... and the client answered with none
    client_finished: bool = False  # the client completed its side of the handshake
    application_data: bool = False  # the client sent application data
    key: str = ""  # "" (no --keylog), "missing", "mismatch", "used", "unsupported"
    key_frame: int = 0  # the record a present key did not open
    hole_side: str = ""  # whose handshake bytes are missing from the capture ("" when none)
    hole_frame: int = 0  # the frame that showed that hole (data or an ACK after it)
    hole_stop_frame: int = 0  # decryption stopped here: nothing after a hole authenticated
    # ... or, when set, nothing after records counted unopened (tls/passing.py)
    stopped_after_unopened: bool = False
    early_data: str = ""  # TLS 1.3 0-RTT offered: "accepted" or "rejected" by the server
    server_answer: bytes = b""  # the server's first bytes when they were not TLS (up to 256)
    problem: str = ""  # why the records stopped making sense, "" while they did


@dataclass(frozen=True, slots=True)
class H2Note:
    """One HTTP/2 frame of an attempt's stream or connection, for the detail view's ladder."""

    side: str  # "client" or "server"
    frame: int
    time: float
    label: str  # e.g. "SETTINGS ENABLE_CONNECT_PROTOCOL=1", "RST_STREAM CANCEL"


@dataclass(frozen=True, slots=True)
class H2End:
    """A RST_STREAM on the attempt's stream, or a GOAWAY on its connection."""

    side: str  # who sent it
    code: str  # the RFC 9113 §7 name, e.g. "REFUSED_STREAM"
    frame: int
    time: float
    last_stream_id: int = 0  # GOAWAY: the last stream the sender processed or may process


@dataclass(frozen=True, slots=True)
class H2Problem:
    """Something an HTTP/2 endpoint would treat as an error (``http2.events.Problem``)."""

    side: str
    kind: str  # http2.events.PROBLEM_KINDS
    detail: str
    frame: int
    stream_id: int = 0  # 0: the connection's framing


@dataclass(frozen=True, slots=True)
class H2Stream:
    """What HTTP/2 showed of an "h2" attempt's stream and of its connection."""

    # the server's SETTINGS seen before the request (None: none seen), and whether they
    # enabled extended CONNECT (RFC 8441 §3: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1)
    server_settings: tuple[tuple[int, int], ...] | None = None
    connect_protocol: bool = False
    client_end: TcpEvent | None = None  # END_STREAM from each side: HTTP/2's FIN
    server_end: TcpEvent | None = None
    reset: H2End | None = None  # RST_STREAM on this stream (the first)
    goaway: H2End | None = None  # the first GOAWAY on the connection
    problems: tuple[H2Problem, ...] = ()  # of the connection, up to the attempt's decision
    notes: tuple[H2Note, ...] = ()  # SETTINGS, DATA, RST_STREAM, GOAWAY... for the ladder
    client_data: int = 0  # DATA payload bytes on the stream, each way
    server_data: int = 0


@dataclass(frozen=True, slots=True)
class OtherAnswer:
    """What the server sent instead of an HTTP/1 response (first_bytes.describe_start)."""

    what: str  # e.g. "an HTTP/2 SETTINGS frame", "a TLS alert record"
    frame: int
    time: float
    prefix: bytes = b""  # the first bytes (up to 16), for the checks that classify them


@dataclass(frozen=True, slots=True)
class Promotion:
    """Why a plain request answered 4xx is listed as a failed WebSocket attempt
    (exchange/relevance.py, PlainRejections)."""

    upgrades: int  # WebSocket upgrade requests to the same server and path seen so far
    known_path: bool  # the path is a usual WebSocket endpoint (/ws, /websocket, /cable...)

    def describe(self) -> str:
        if self.upgrades:
            other = "request" if self.upgrades == 1 else "requests"
            verb = "upgrades" if self.upgrades == 1 else "upgrade"
            return f"where {self.upgrades} other {other} in this capture {verb}"
        return "a usual WebSocket path"


class AttemptKind(Enum):
    HTTP = "http"  # an HTTP exchange that offered or answered an upgrade
    TCP = "tcp"  # a connection attempt that never carried HTTP (refused, unanswered)
    TLS = "tls"  # a connection that broke at the TLS layer, before any HTTP


@dataclass(frozen=True, slots=True)
class Attempt:
    """One upgrade attempt (or failed connection attempt) with everything the wire showed."""

    kind: AttemptKind
    client: Endpoint
    server: Endpoint
    tcp: TcpFacts
    request: Message | None = None
    response: Message | None = None  # the final response (not 1xx interim)
    interim: tuple[Message, ...] = ()  # 1xx responses other than 101 that came first
    after: AfterSwitch | None = None
    sequence: int = 0  # 0 for the first exchange on its connection, 1 for the next...
    request_gap: bool = False  # bytes missing inside or before the request head
    response_gap: bool = False  # bytes missing where the response, or what precedes it, should be
    tls: TlsInfo | None = None  # the connection was TLS (decrypted or not: see tls.decrypted)
    transport: str = "h1"  # "h1" (HTTP/1.x) or "h2" (an HTTP/2 stream)
    stream_id: int | None = None  # the HTTP/2 stream of an "h2" attempt
    h2: H2Stream | None = None  # the HTTP/2 facts of an "h2" attempt
    other_answer: OtherAnswer | None = None  # the server answered, but not in HTTP/1
    promoted: Promotion | None = None  # a plain request listed because its path upgrades

    @property
    def first_frame(self) -> int:
        if self.request is not None:
            return self.request.first_frame
        if self.response is not None:
            return self.response.first_frame
        return self.tcp.syn.frame if self.tcp.syn else 0

    @property
    def time(self) -> float:
        if self.request is not None:
            return self.request.time
        if self.response is not None:
            return self.response.time
        return self.tcp.syn.time if self.tcp.syn else 0.0

    @property
    def request_head(self) -> RequestHead | None:
        head = self.request.head if self.request else None
        return head if isinstance(head, RequestHead) else None

    @property
    def response_head(self) -> ResponseHead | None:
        head = self.response.head if self.response else None
        return head if isinstance(head, ResponseHead) else None
