"""The exchange stage for HTTP/2: pairs each stream's request and response into Attempts.

How it works
------------
``H2Stage`` is a reassembler listener (``StreamListener``) that the HTTP/1 tracker hands a
connection to when its first bytes are the HTTP/2 client preface (``handoff.py``); the TLS stage
builds one too for the plaintext of a session whose ALPN chose ``h2``. It feeds both directions
to ``http2.H2Reader`` and follows the streams the events describe:

- an extended CONNECT stream (``:method CONNECT`` with ``:protocol``, RFC 8441 §4), or any
  CONNECT, is an attempt: its request and response HEADERS become ``Message``s whose heads carry
  the pseudo-header fields as header fields, so the status, subprotocol, extension and
  attribution rules read them as they read an HTTP/1 head;
- after a 2xx, the stream's DATA carries the new protocol: a ``SwitchWatch`` reads the
  WebSocket frames of both sides for the same short window as after a 101, and END_STREAM or
  RST_STREAM end the stream as FIN or RST end a TCP connection;
- a RST_STREAM or a GOAWAY that leaves a stream unanswered decides it (the checks say
  "not processed" or "refused" by the code, wave2-decisions.md);
- any other stream is an ordinary exchange, counted (listed only when its answer talks about
  an upgrade, as for HTTP/1);
- a server whose first bytes are not HTTP/2 frames (an HTTP/1 server's 400 to the preface of a
  client with prior knowledge) does not speak HTTP/2: its bytes are named (``OtherAnswer``),
  not read as frames, and the connection's first stream is listed with that answer;
- with the run's life stage, a stream still open when its watch ends is followed in life to
  its end (``h2life.StreamLives``: its DATA counted, END_STREAM, RST_STREAM, GOAWAY, the TCP
  connection's ends), which becomes an ``Ended`` as for an HTTP/1 connection.

Memory is bounded: at most ``MAX_STREAMS`` streams are followed at once (later ones are
counted), DATA is never held beyond a response's first ``PREFIX_LIMIT`` bytes, and the reader
itself holds at most one frame per direction.
"""

from __future__ import annotations

from dataclasses import replace

from analyzer.exchange.first_bytes import Start, describe_start, read_first_bytes
from analyzer.exchange.h2heads import field_value, request_head, response_head
from analyzer.exchange.h2life import StreamLives
from analyzer.exchange.h2streams import StreamState, stream_attempt
from analyzer.exchange.handoff import HandlerFactory, RunContext
from analyzer.exchange.model import (
    WINDOW_OVER,
    Attempt,
    H2End,
    H2Note,
    H2Problem,
    Message,
    OtherAnswer,
    TcpEvent,
)
from analyzer.exchange.relevance import is_upgrade_attempt
from analyzer.exchange.switch import SwitchWatch
from analyzer.exchange.tcplog import TcpLog
from analyzer.exchange.tracker import RESPONSE_TIMEOUT, ConnectionTracker
from analyzer.http.body import PREFIX_LIMIT
from analyzer.http.message import RequestHead, ResponseHead
from analyzer.http.start import StartRead
from analyzer.http2.events import (
    Data,
    GoAway,
    H2Event,
    HeaderBlock,
    Problem,
    RstStream,
    Setting,
    Settings,
    error_name,
    setting_name,
)
from analyzer.http2.reader import H2Reader
from analyzer.life.state import TAIL_BYTES, pending_pings
from analyzer.reassembly import Connection

MAX_STREAMS = 100  # streams followed at once per connection (RFC 9113 §6.5.2 suggests >= 100)
MAX_PROBLEMS = 8  # connection problems kept (the first ones are the evidence)
MAX_STREAM_NOTES = 16  # ladder notes per stream
MAX_CONNECTION_NOTES = 8  # SETTINGS and GOAWAY notes per connection
MAX_UNDECIDED_BYTES = 64 * 1024  # bytes held while it is unclear which side is the client
_SIDES = ("client", "server")


class H2Stage:
    """The listener of one HTTP/2 connection (see module docstring)."""

    def __init__(self, run: RunContext, conn: Connection, tcp: TcpLog,
                 client: int | None = None) -> None:
        self._run = run
        self._conn = conn
        self._tcp = tcp
        self._client = client  # reassembler side of the HTTP/2 client, once known
        self._undecided: tuple[bytearray, bytearray] = (bytearray(), bytearray())
        self._undecided_at: list[tuple[int, float]] = [(0, 0.0), (0, 0.0)]
        # what each side's undecided bytes begin (decided, it stays), and where an HTTP/1
        # start line still growing in them was left: bytes sent one at a time are read on
        self._kinds: list[Start] = [Start.NEED_MORE, Start.NEED_MORE]
        self._starts: list[StartRead | None] = [None, None]
        # events are handled as the reader makes them, so that keep_data knows, at each DATA
        # frame, whether its stream is watched (the same answer whatever the segmentation)
        self._reader = H2Reader(sink=self._event, keep_data=self._keep_data)
        self._streams: dict[int, StreamState] = {}
        self._sequence = 0
        self._untracked = 0  # streams past MAX_STREAMS, only counted
        self._server_settings: tuple[tuple[int, int], ...] | None = None
        self._connect_enabled = False
        self._goaway: H2End | None = None
        self._problems: list[H2Problem] = []
        self._notes: list[H2Note] = []
        self._watching = 0  # streams under a SwitchWatch
        self._lives: StreamLives | None = None  # streams past their watch (made at the first)
        # what the server sent instead of HTTP/2 (its first bytes were not a SETTINGS frame),
        # and whether an attempt carries it yet
        self._answer: OtherAnswer | None = None
        self._answer_listed = False
        self._done = False
        run.counters.http_connections += 1

    # --- StreamListener ---------------------------------------------------------------------

    def on_syn(self, side: int, frame: int, time: float, with_ack: bool) -> None:
        self._tcp.syn(frame, time, with_ack)

    def on_fin(self, side: int, frame: int, time: float, lost: bool = False) -> None:
        if self._watching:
            self._expire(time)  # (a watch whose window ran out in the silence before it)
        self._tcp.fin_of(side, frame, time, lost)
        if self._client is not None:
            self._server_ended(side)
            self._handle(self._reader.end(self._h2_side(side), frame, time))
        if self._lives:
            self._lives.tcp_fin(side, frame, time, lost)

    def on_rst(self, side: int, frame: int, time: float) -> None:
        if self._watching:
            self._expire(time)
        self._tcp.rst_of(side, frame, time)
        if self._client is not None:
            self._server_ended(side)
            self._handle(self._reader.end(self._h2_side(side), frame, time))
        if self._lives:
            self._lives.tcp_rst(side, frame, time)

    def close_notify(self, side: int, frame: int, time: float) -> None:
        """Inside TLS, ``side`` said close_notify: it sends nothing more, so its streams in
        life end there, before whichever FIN comes first (tls/layer.py)."""
        if self._lives:
            self._lives.tcp_fin(side, frame, time)

    @property
    def in_life(self) -> bool:
        """Whether streams are followed in life (the reassembler keeps the connection through
        LIFE_IDLE_TIMEOUT of silence)."""
        return bool(self._lives)

    def on_gap(self, side: int, offset: int, length: int, frame: int, time: float,
               cause: str = "capture") -> None:
        self._tcp.gap(side, offset, length, frame, time, cause)
        if self._client is None:
            self._undecided[side].clear()
            self._kinds[side], self._starts[side] = Start.NEED_MORE, None
            return
        h2_side = self._h2_side(side)
        if h2_side == 1 and self._kinds[side] is not Start.H2_FRAMES and self._answer is None:
            # a hole before the server's first bytes were told: they are read as HTTP/2 (the
            # reader stops at the hole) rather than guessed
            self._kinds[side] = Start.H2_FRAMES
            self._undecided[side].clear()
        for stream in self._streams.values():
            if stream.watch is not None:
                stream.watch.complete = False
        self._handle(self._reader.gap(h2_side, frame, time))

    def on_conflict(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        self._tcp.conflict(side, offset, length, frame, time)

    def on_resent(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        self._tcp.resend(side, offset, length, frame, time)

    def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        if self._done:
            return
        if self._client is None:
            self._detect(side, data, frame, time)
            return
        if self._watching:
            # A watch whose window ran out in the silence before these bytes is over before
            # they are read: what they carry (a RST_STREAM 3 s in) is its stream's life. (A
            # watch these bytes begin ends a window after them: none to expire after reading.)
            self._expire(time)
        self._feed(side, data, frame, time)

    def on_tick(self, now: float, patience: float) -> None:
        """Live capture: watches past their window end, and a CONNECT unanswered for longer
        than ``patience`` is decided as unanswered (as the HTTP/1 tracker does)."""
        if self._done:
            return
        if self._watching:
            self._expire(now)
        for stream in list(self._streams.values()):
            request = stream.request
            if (request is not None and stream.response is None and stream.is_attempt_shape
                    and now - request.time > patience):
                self._decide(stream, now, RESPONSE_TIMEOUT)

    def on_end(self, time: float, reason: str) -> None:
        if self._done:
            return
        for stream in list(self._streams.values()):
            self._decide(stream, time, reason)
        if self._answer is not None and not self._answer_listed:
            # (the client sent no request, or its streams were decided before the answer):
            # the connection's attempt, on no stream (stream_attempt)
            self._streams[0] = StreamState(0, self._sequence)
            self._decide(self._streams[0], time, reason)
        if self._lives:
            self._lives.end_all(time, reason)
        self._done = True

    # --- which side is the client -------------------------------------------------------------

    def _detect(self, side: int, data: bytes, frame: int, time: float) -> None:
        """Holds each side's first bytes until one is the client preface or a server's SETTINGS
        (the hand-off gives the preface side right after the other, so this is short)."""
        pending = self._undecided[side]
        if not pending:
            self._undecided_at[side] = (frame, time)
        pending += data
        kind = self._kinds[side]
        if kind is Start.NEED_MORE:  # (once told, what bytes begin stays: read them once)
            kind, self._starts[side] = read_first_bytes(pending, self._starts[side])
            self._kinds[side] = kind
        other_kind = self._kinds[1 - side]
        if kind is Start.H2_PREFACE:
            self._client = side
        elif kind is Start.HTTP1_REQUEST:
            self._back_to_http1(side)
            return
        elif kind is not Start.NEED_MORE and other_kind is Start.H2_FRAMES:
            self._client = side  # the other side is the server: this one is the client anyway
        elif kind is Start.H2_FRAMES and other_kind not in (Start.NEED_MORE, Start.H2_FRAMES):
            self._client = 1 - side
        elif sum(map(len, self._undecided)) > MAX_UNDECIDED_BYTES:
            self._done = True  # neither side speaks HTTP/2 after all
            self._run.ignore(self._conn)
            return
        else:
            return  # a server's SETTINGS alone: the client's first bytes decide
        # the client's bytes first (its preface), then the server's, as they were buffered
        self._starts[1 - self._client] = None  # (the server's are told again from the start)
        for s in (self._client, 1 - self._client):
            held = bytes(self._undecided[s])
            self._undecided[s].clear()
            if held:
                frame_at, time_at = self._undecided_at[s]
                self._feed(s, held, frame_at, time_at)

    def _back_to_http1(self, client: int) -> None:
        """The server spoke HTTP/2 first (SETTINGS on accept) but the client speaks HTTP/1.1:
        the HTTP/1 tracker reads the connection (without the HTTP/2 hand-off), and names the
        server's HTTP/2 bytes as an answer that is not HTTP/1 (response_not_http)."""
        handlers: dict[Start, HandlerFactory] = {
            kind: factory for kind, factory in self._run.handlers.items()
            if kind not in (Start.H2_PREFACE, Start.H2_FRAMES)}
        tracker = ConnectionTracker(self._conn, replace(self._run, handlers=handlers), self._tcp)
        self._conn.listener = tracker
        self._done = True
        self._run.counters.http_connections -= 1  # the tracker counts the connection itself
        for side in (client, 1 - client):  # the request first: it tells the tracker who is who
            held = bytes(self._undecided[side])
            self._undecided[side].clear()
            if held:
                frame, time = self._undecided_at[side]
                tracker.on_data(side, 0, held, frame, time)

    def _h2_side(self, side: int) -> int:
        return 0 if side == self._client else 1

    # --- the server's first bytes -------------------------------------------------------------

    def _feed(self, side: int, data: bytes, frame: int, time: float) -> None:
        """``side``'s bytes to the reader once the client is known; the server's only once
        its first bytes are HTTP/2 frames (`_server_start`)."""
        if side == self._client or self._kinds[side] is Start.H2_FRAMES:
            self._handle(self._reader.feed(self._h2_side(side), data, frame, time))
        elif self._answer is None:
            self._server_start(side, data, frame, time)

    def _server_start(self, side: int, data: bytes, frame: int, time: float) -> None:
        """Holds the server's first bytes until they tell whether it speaks HTTP/2: "The
        server connection preface consists of a potentially empty SETTINGS frame (Section
        6.5) that MUST be the first frame the server sends in the HTTP/2 connection" (RFC
        9113 §3.4). Anything else (an HTTP/1 server's 400 to "PRI * HTTP/2.0") is its answer
        in another protocol: named, and nothing more of that side is read."""
        held = self._undecided[side]
        if not held:
            self._undecided_at[side] = (frame, time)
        held += data
        kind = self._kinds[side]
        if kind is Start.NEED_MORE:
            kind, self._starts[side] = read_first_bytes(held, self._starts[side])
            if kind is Start.NEED_MORE and len(held) <= MAX_UNDECIDED_BYTES:
                return
            self._kinds[side] = kind
        first_frame, first_time = self._undecided_at[side]
        if kind is Start.H2_FRAMES:
            earlier = bytes(held[: len(held) - len(data)])
            held.clear()
            if earlier:
                self._handle(self._reader.feed(1, earlier, first_frame, first_time))
            self._handle(self._reader.feed(1, data, frame, time))
            return
        self._answer = OtherAnswer(_answer_in_words(kind, held), first_frame, first_time,
                                   bytes(held[:16]))
        held.clear()

    def _server_ended(self, side: int) -> None:
        """The server's side ended with first bytes still too few to tell: they were its
        answer, not HTTP/2."""
        held = self._undecided[side]
        if side != self._client and held and self._answer is None and (
                self._kinds[side] is Start.NEED_MORE):
            first_frame, first_time = self._undecided_at[side]
            self._answer = OtherAnswer(_answer_in_words(Start.OTHER, held), first_frame,
                                       first_time, bytes(held[:16]))
            held.clear()

    # --- events -------------------------------------------------------------------------------

    def _handle(self, events: list[H2Event]) -> None:
        for event in events:  # empty with a sink; kept for readers fed without one
            self._event(event)

    def _event(self, event: H2Event) -> None:
        if self._done:
            return
        if isinstance(event, Data):
            self._data(event)
        elif isinstance(event, HeaderBlock):
            self._headers(event)
        elif isinstance(event, Settings):
            self._settings(event)
        elif isinstance(event, RstStream):
            self._rst(event)
        elif isinstance(event, GoAway):
            self._goaway_frame(event)
        elif isinstance(event, Problem) and len(self._problems) < MAX_PROBLEMS:
            self._problems.append(H2Problem(_SIDES[event.side], event.kind, event.detail,
                                            event.first_frame, event.stream_id))

    def _keep_data(self, side: int, stream_id: int) -> bool:
        """Whether a DATA frame's bytes are needed: a watched stream's (WebSocket frames), or
        the start of a response body (error texts); any other is only counted."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return self._lives is not None and stream_id in self._lives  # its last bytes
        if stream.watch is not None:
            return True
        return side == 1 and stream.response is not None and len(stream.body) < PREFIX_LIMIT

    def _settings(self, event: Settings) -> None:
        if event.ack:
            return
        # the setting RFC 8441 is about first: the ladder has room for one or two
        shown = sorted(event.values, key=lambda item: item[0] != Setting.ENABLE_CONNECT_PROTOCOL)
        values = ", ".join(f"{setting_name(i)}={v}" for i, v in shown)
        self._note_connection(event, f"SETTINGS {values}".strip())
        if event.side == 1:
            if self._server_settings is None:
                self._server_settings = event.values
            for identifier, value in event.values:
                if identifier == Setting.ENABLE_CONNECT_PROTOCOL:
                    self._connect_enabled = value == 1

    def _headers(self, event: HeaderBlock) -> None:
        if event.promised_stream_id:
            return  # server push: not an exchange the client started
        stream = self._streams.get(event.stream_id)
        if event.side == 0:
            if stream is None:
                stream = self._open(event)
                if stream is None:
                    return
            stream.undecoded |= not event.decoded
            if stream.request is None:
                stream.request = Message(request_head(event), event.first_frame,
                                         event.last_frame, event.time)
                stream.method = (field_value(event, ":method") or "").upper()
                stream.protocol = field_value(event, ":protocol")
            if event.end_stream:
                self._end_of(stream, event)
            return
        if stream is None:
            return
        stream.undecoded |= not event.decoded
        head = response_head(event)
        message = Message(head, event.first_frame, event.last_frame, event.time)
        if stream.response is None and 100 <= head.status < 200 and head.status != 101:
            stream.interim.append(message)
        elif stream.response is None:
            stream.response = message
            if stream.method == "CONNECT" and 200 <= head.status < 300:
                websocket = (stream.protocol or "").lower() == "websocket"
                stream.watch = SwitchWatch(event.time, event.time, websocket, self._run.window,
                                           parser=self._run.frame_parser)
                self._watching += 1
        if event.end_stream:
            self._end_of(stream, event)

    def _open(self, event: HeaderBlock) -> StreamState | None:
        if len(self._streams) >= MAX_STREAMS:
            self._untracked += 1
            self._run.counters.ordinary_exchanges += 1
            return None
        stream = StreamState(event.stream_id, self._sequence,
                         settings_seen=self._server_settings,
                         connect_enabled=self._connect_enabled)
        self._sequence += 1
        self._streams[event.stream_id] = stream
        return stream

    def _data(self, event: Data) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            if self._lives is not None and event.stream_id in self._lives:
                self._lives.data(event.side, event.stream_id, event.data, event.skipped,
                                 event.end_stream, event.last_frame, event.time)
            return
        stream.data[event.side] += len(event.data) + event.skipped
        if event.last_piece:
            flag = " END_STREAM" if event.end_stream else ""
            self._note(stream, event, f"DATA {event.frame_length} B{flag}")
        if stream.watch is not None and event.data:
            stream.tails[event.side] = (stream.tails[event.side] + event.data)[-TAIL_BYTES:]
            if stream.watch.observe(event.side == 0, event.data, event.first_frame, event.time):
                self._decide(stream, event.time, WINDOW_OVER)
                return
        elif stream.watch is None and event.side == 1 and stream.response is not None:
            stream.body += event.data[: PREFIX_LIMIT - len(stream.body)]
        if event.end_stream:
            self._end_of(stream, event)

    def _rst(self, event: RstStream) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            if self._lives is not None and event.stream_id in self._lives:
                self._lives.reset(event.side, event.stream_id, event.first_frame, event.time)
            return
        code = error_name(event.code)
        self._note(stream, event, f"RST_STREAM {code}")
        stream.reset = H2End(_SIDES[event.side], code, event.first_frame, event.time)
        self._decide(stream, event.time, "stream reset")

    def _goaway_frame(self, event: GoAway) -> None:
        code = error_name(event.code)
        self._note_connection(event, f"GOAWAY last stream {event.last_stream_id} {code}")
        if self._goaway is None or (self._goaway.side == "client" and event.side == 1):
            self._goaway = H2End(_SIDES[event.side], code, event.first_frame, event.time,
                                 event.last_stream_id)
        if self._lives and event.code:  # an error: the connection goes down with its streams
            self._lives.going_away(event.side, event.first_frame, event.time)
        elif self._lives:
            self._lives.shutting_down(event.side)
        if event.side == 0:
            return  # the client's last stream id is about streams the server opened (push)
        # RFC 9113 §6.8: streams above the last stream id "were not or will not be processed"
        for stream in list(self._streams.values()):
            if stream.id > event.last_stream_id and stream.response is None:
                self._decide(stream, event.time, "connection going away")

    def _end_of(self, stream: StreamState, event: H2Event) -> None:
        if stream.ends[event.side] is None:
            stream.ends[event.side] = TcpEvent(event.last_frame, event.time)
            if not isinstance(event, Data):
                self._note(stream, event, "END_STREAM")
        if stream.response is None or stream.ends[1] is None:
            return
        if stream.watch is None or stream.ends[0] is not None:
            self._decide(stream, event.time, "stream ended")

    def _expire(self, now: float) -> None:
        for stream in list(self._streams.values()):
            if stream.watch is not None and now > stream.watch.deadline:
                self._decide(stream, now, WINDOW_OVER)

    # --- deciding -----------------------------------------------------------------------------

    def _decide(self, stream: StreamState, time: float, reason: str) -> None:
        if self._streams.pop(stream.id, None) is None:
            return
        if stream.watch is not None:
            self._watching -= 1
        response = stream.response
        if response is not None and stream.body:
            response = Message(response.head, response.first_frame, response.last_frame,
                               response.time, bytes(stream.body), stream.data[1],
                               stream.ends[1] is not None)
        head = response.head if response is not None else None
        request = stream.request.head if stream.request is not None else None
        listed = stream.is_attempt_shape or is_upgrade_attempt(
            False, head if isinstance(head, ResponseHead) else None, bytes(stream.body),
            request if isinstance(request, RequestHead) else None)
        if self._answer is not None and not self._answer_listed:
            listed = self._answer_listed = True  # (the first stream carries the answer)
        if not listed:
            self._run.counters.ordinary_exchanges += 1
            return
        client = self._client if self._client is not None else 0
        attempt = stream_attempt(stream, response, self._tcp, client, time, reason,
                                 self._goaway, self._problems, self._notes, self._answer)
        self._run.emit(attempt)
        if reason == WINDOW_OVER and stream.watch is not None and self._run.life_sink:
            self._live_on(stream, attempt, client)

    def _live_on(self, stream: StreamState, attempt: Attempt, client: int) -> None:
        """The stream's watch is over and it is still open: it is followed in life."""
        watch = stream.watch
        assert watch is not None and self._run.life_sink is not None
        if self._lives is None:
            self._lives = StreamLives(self._run.life_sink, self._conn, client)
        request, response = stream.request, stream.response
        first = (request.time if request is not None else watch.switch_time,
                 response.time if response is not None else watch.switch_time)
        seen = watch.last_seen
        ends = tuple(None if e is None else (e.frame, e.time) for e in stream.ends)
        head = request.head if request is not None else None
        target = str(getattr(head, "target", ""))
        after = attempt.after
        pings = pending_pings(after, target, (seen[0], seen[1])) \
            if watch.websocket and after is not None and after.frames else (None, None)
        self._lives.start(attempt, stream.id, watch.switch_time, target, watch.websocket,
                          (stream.data[0], stream.data[1]), first,
                          (seen[0] or first[0], seen[1] or first[1]),
                          (stream.tails[0], stream.tails[1]), (ends[0], ends[1]), pings)

    def _note(self, stream: StreamState, event: H2Event, label: str) -> None:
        if len(stream.notes) < MAX_STREAM_NOTES:
            stream.notes.append(H2Note(_SIDES[event.side], event.first_frame, event.time, label))

    def _note_connection(self, event: H2Event, label: str) -> None:
        if len(self._notes) < MAX_CONNECTION_NOTES:
            self._notes.append(H2Note(_SIDES[event.side], event.first_frame, event.time, label))


def _answer_in_words(kind: Start, first: bytes | bytearray) -> str:
    """A server's first bytes that are not HTTP/2, for the finding's "found": an HTTP/1
    answer by its status line, text without one (an HTTP/0.9-style error page: python's
    http.server answers "PRI * HTTP/2.0" so) by its first line."""
    line = bytes(first[:80]).split(b"\n", 1)[0].rstrip(b"\r")
    if kind is Start.HTTP1_RESPONSE:
        return f'an HTTP/1.x response "{line.decode("ascii", "backslashreplace")}"'
    if kind is Start.OTHER and line and all(32 <= byte < 127 for byte in line):
        return f'text without an HTTP status line "{line.decode("ascii")}"'
    return describe_start(kind, first)


def h2_handler(run: RunContext, conn: Connection, tcp: TcpLog, kind: Start) -> H2Stage:
    """The hand-off factory (``pipeline.protocol_handlers``) for ``Start.H2_PREFACE`` and
    ``Start.H2_FRAMES`` (which side is the client is read from the bytes either way)."""
    return H2Stage(run, conn, tcp)
