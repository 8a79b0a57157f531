"""Follows the HTTP conversation on one TCP connection and turns it into Attempts.

How it works
------------
The tracker is the reassembler's listener for one connection. Until one side's first bytes
say "HTTP request" or "HTTP response" it does not know who the client is; bytes that are not
HTTP make it drop the connection at once (the reassembler then ignores it), but for the tail
of a head in a connection picked up mid-way, skipped as after a hole.

The client side parses request heads, skips their bodies, and queues them. A request that offers
an upgrade (or a CONNECT) pauses the client side: what the client sends next is either the new
protocol (if the answer is 101 / 2xx) or the next HTTP request (if it is not), and only the
response can tell. Held bytes are bounded.

The server side (responses.py) parses response heads and pairs each final one with the oldest
queued request (1xx interim responses other than 101 are kept with it). Non-101 responses are
complete once their body has been read (its first bytes are kept: error texts live there).
After a switch, the tracker watches the first moments of the new protocol (WebSocket frames of
both sides, or the raw first bytes of other protocols) for a short window, then hands the
attempt on and tells the reassembler to ignore the rest of the connection.

A hole in a direction stops the interpretation of that direction until data begins a new
message; how reading resumes, and why what follows a hole is flagged, is holes.py's part.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable

from analyzer.exchange.attempts import AttemptEmitter
from analyzer.exchange.first_bytes import Start, classify_first_bytes, read_first_bytes
from analyzer.exchange.handoff import ExchangeCounters, RunContext
from analyzer.exchange.holes import HoleRecovery, head_so_far
from analyzer.exchange.model import (
    CONNECTION_ENDED,
    WINDOW_OVER,
    Attempt,
    Message,
    OtherAnswer,
)
from analyzer.exchange.pending import (
    HOLE,
    MAX_HEAD_BYTES,
    MAX_HELD_BYTES,
    Mode,
    PendingRequest,
    PendingResponse,
    Side,
    Switch,
    has_body,
    joined,
    new_pending_request,
    new_side,
)
from analyzer.exchange.relevance import offers_websocket, request_offers_upgrade
from analyzer.exchange.responses import ResponseReader
from analyzer.exchange.switching import SwitchFollower
from analyzer.exchange.tcplog import TcpLog
from analyzer.http.body import BodyReader, FramingKind, body_framing
from analyzer.http.head import parse_request_head, request_head_at
from analyzer.reassembly import Connection

__all__ = ["ConnectionTracker", "ExchangeCounters", "RESPONSE_TIMEOUT"]

RESPONSE_TIMEOUT = "response timeout"  # end reason of attempts decided by waiting (live)

# The modes (and framing kinds) as module names, which the code below compares against several
# times per segment: on Python 3.11 each `Mode.X` goes through the Enum metaclass's __getattr__
# hook (~900 machine instructions, measured with callgrind), a module global costs next to nothing.
_DETECT, _HEAD, _BODY, _WAIT, _SWITCHED, _LOST, _DEAD = (
    Mode.DETECT, Mode.HEAD, Mode.BODY, Mode.WAIT, Mode.SWITCHED, Mode.LOST, Mode.DEAD
)
_UNTIL_CLOSE = FramingKind.UNTIL_CLOSE
_HTTP1_REQUEST, _HTTP1_RESPONSE, _TLS = Start.HTTP1_REQUEST, Start.HTTP1_RESPONSE, Start.TLS
_NEED_MORE = Start.NEED_MORE

_NO_REQUESTS: deque[PendingRequest] = deque(maxlen=0)  # shared, stays empty (maxlen 0)
# The first bytes of a side picked up mid-connection that are the tail of a head: a header
# field line (RFC 9112 §5: field-name ":" ...), maybe cut short, or the empty line that ends it
_HEADER_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:|\r?\n")


class ConnectionTracker(ResponseReader, SwitchFollower, HoleRecovery, AttemptEmitter):
    """The reassembler listener for one connection (see module docstring); the server side,
    the parts after a switch, after a hole and for building attempts are its mixins
    (responses.py, switching.py, holes.py, attempts.py)."""

    __slots__ = ()  # the fields are TrackerState's (pending.py)

    def __init__(self, conn: Connection, run: RunContext, tcp: TcpLog | None = None) -> None:
        self._conn = conn
        self._run = run
        self._emit: Callable[[Attempt], None] = run.emit
        self._counters = run.counters
        self._tcp = tcp if tcp is not None else TcpLog(conn)
        self._client: int | None = None  # which reassembler side (0/1) is the HTTP client
        self._sides = (new_side(), new_side())
        # Allocated by the first request: a SYN flood opens a million trackers that never
        # see one (the same goes for Side's buffers, which stay empty).
        self._requests: deque[PendingRequest] = _NO_REQUESTS
        self._interim: list[Message] = []
        self._response: PendingResponse | None = None
        self._switch: Switch | None = None
        self._sequence = 0
        self._client_gap = False  # a hole in the client direction broke request pairing
        self._server_gap = False  # a hole in the server direction: later pairings are guesses
        self._done = False
        self._other: OtherAnswer | None = None  # the server's answer was not HTTP/1

    # --- StreamListener ---------------------------------------------------------------------

    def on_syn(self, side: int, frame: int, time: float, with_ack: bool) -> None:
        self._tcp.syn(frame, time, with_ack)

    def on_fin(self, side: int, frame: int, time: float, lost: bool = False) -> None:
        if self._switch is not None and self._past_watch(time):
            return  # in life now: the reassembler hands the FIN to it
        self._tcp.fin_of(side, frame, time, lost)

    def on_rst(self, side: int, frame: int, time: float) -> None:
        if self._switch is not None and self._past_watch(time):
            return
        self._tcp.rst_of(side, frame, time)

    def on_gap(self, side: int, offset: int, length: int, frame: int, time: float,
               cause: str = "capture") -> None:
        self._tcp.gap(side, offset, length, frame, time, cause)
        state = self._sides[side]
        if state.mode is _SWITCHED:
            switch = self._switch
            if switch is not None:
                if (side == self._client and switch.request is None
                        and not switch.watch.client_seen):
                    # a 101 with no request yet: the request may follow the hole (the
                    # capture lost what came before it); _observe looks once
                    switch.watch.complete = False
                    switch.request_after_hole = True
                    self._client_gap = True
                    state.buf.clear()  # a head cut by the hole
                    return
                switch.watch.lost(side == self._client, frame, time)
            state.mode = _DEAD
            return
        if state.mode is _WAIT:
            state.held_gap = True
            state.held.append(HOLE)
            return
        if state.mode is _DEAD:
            return
        if self._client is not None:
            if side == self._client:
                self._client_gap = True
                state.body = None
                if (state.mode is _HEAD and state.buf and self._cut_request_head(state)
                        and self._requests[-1].offers):
                    # what follows is the new protocol or the next request: held, the hole
                    # first, until the answer says which (as `_request_complete` does)
                    state.mode = _WAIT
                    state.held.append(HOLE)
                    state.held_gap = True
                    state.buf.clear()
                    state.scanned = 0
                    state.start_read = None
                    return
            else:
                # (a head the hole cut is read before the flag is set: the hole is after it)
                cut = self._response is None and state.mode is _HEAD and bool(state.buf) and (
                    self._cut_response_head(state, time))
                self._server_gap = True
                if self._response is not None:  # the hole is in its body: that ends it here
                    self._complete_response(body_complete=False)
                switch = self._switch
                if cut and switch is not None:  # a cut 101: what the hole hid (the rest of
                    # its head, maybe frames) is not read, as after any hole in a switch
                    switch.watch.lost(False, frame, time)
                    state.mode = _DEAD
                    return
        state.mode = _LOST
        state.buf.clear()
        state.scanned = 0
        state.start_read = None

    def on_conflict(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        self._tcp.conflict(side, offset, length, frame, time)

    def on_resent(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        self._tcp.resend(side, offset, length, frame, time)

    def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        if self._switch is not None:
            self._observe(side, data, frame, time)
            return
        state = self._sides[side]
        if state.mode is _DEAD:
            return
        if state.mode is _LOST:
            if self._client is None and not state.buf and _TLS in self._run.handlers and (
                    self._tls_after_hole(data)):
                # TLS records after a hole where the first bytes were (a lossy capture lost
                # the hellos): the TLS stage says what the hole hides
                self._hand_off(_TLS, side, data, frame, time, offset)
                return
            found = self._resync(side, state, data, frame, time)
            if found is None:
                return
            data, first_frame, first_time = found
            if self._client is None:
                self._detect(side, data, first_frame, first_time)
            elif side == self._client:
                self._client_data(state, data, first_frame, first_time, last_frame=frame)
            else:
                self._server_data(state, data, first_frame, first_time, last_frame=frame)
            return
        if self._client is None:
            self._detect(side, data, frame, time)
            return
        if side == self._client:
            self._client_data(state, data, frame, time)
        else:
            self._server_data(state, data, frame, time)

    def on_tick(self, now: float, patience: float) -> None:
        """Time passed without traffic (live capture): decide what the waiting has decided."""
        if self._done:
            return
        if self._switch is not None:
            if now > self._switch.watch.deadline:
                self._finish_switch(now, WINDOW_OVER)
            return
        if self._client is None:
            syn = self._tcp.syn_seen
            if syn is not None and self._tcp.syn_ack is None and not self._any_data() and (
                now - syn[1] > patience
            ):
                self._emit_transport_attempt(now, RESPONSE_TIMEOUT)
                self._done = True
                self._ignore()
            return
        for request in self._requests:
            if request.reported or now - request.time <= patience:
                continue
            if request.offers:
                self._emit_http(request, None, tuple(self._interim), None, now, RESPONSE_TIMEOUT)
                request.reported = True

    def ticks_idle(self, now: float) -> bool:
        """Whether `on_tick` with infinite patience does nothing at ``now`` (tls/passing.py):
        only a switch's watch window ends by time alone, once past its deadline."""
        return self._done or self._switch is None or now <= self._switch.watch.deadline

    def on_end(self, time: float, reason: str) -> None:
        if self._done:
            return
        if self._switch is not None:
            if self._past_watch(time):  # it lived past its watch: the end is its life's
                life = self._conn.life
                if life is not None:
                    self._conn.life = None
                    life.end(self._conn.addresses, time, reason)
                return
            self._finish_switch(time, reason)
            return
        if self._response is not None:
            assert self._client is not None
            reader = self._sides[1 - self._client].body
            if reader is not None and reason in CONNECTION_ENDED:
                reader.feed_eof()  # the server closed: that ends an until-close body
            self._complete_response(body_complete=reader is not None and reader.done,
                                    end_reason=reason, end_time=time)
        if self._client is not None:
            client = self._sides[self._client]
            # Requests held behind an unanswered upgrade, each maybe behind the next one: every
            # round reads at least one held chunk, so this ends.
            while client.mode is _WAIT and client.held:
                self._resume_client(unanswered=True)
            server = self._sides[1 - self._client]
            if server.mode is _HEAD and server.buf:  # bytes that never became a head
                self._not_http(bytes(server.buf[:64]), server.buf_frame, server.buf_time)
        self._flush_unanswered(time, reason)
        self._flush_unfinished_head(time, reason)
        if self._client is None and self._tcp.unanswered_syn and not self._any_data():
            self._emit_transport_attempt(time, reason)
        self._done = True

    def _cut_request_head(self, state: Side) -> bool:
        """A hole cut the request head being read (a snaplen cuts every head longer than
        it): the request is queued as far as it was read, as a head cut by the connection's
        end is (`_flush_unfinished_head`), and is an attempt when it offers an upgrade or
        its answer makes it one. False when not even its request line was read."""
        head = parse_request_head(head_so_far(state.buf, response=False) or b"-")
        if head is None:
            return False
        if self._requests is _NO_REQUESTS:
            self._requests = deque()
        request = PendingRequest(head, state.buf_frame, state.buf_last, state.buf_time,
                                 self._sequence, gap_before=True,
                                 offers=request_offers_upgrade(head), complete=False)
        self._requests.append(request)
        self._sequence += 1
        if request.offers and offers_websocket(head):
            self._promote_plain(request)
        return True

    # --- who is the client ------------------------------------------------------------------

    def _detect(self, side: int, data: bytes, frame: int, time: float) -> None:
        """Collects a side's first bytes until they say request, response or not HTTP."""
        state = self._sides[side]
        seen = joined(state, data, frame, time)  # usually `data`: the first data decides
        if state.start_read is None:
            kind = classify_first_bytes(seen)  # nearly always decides: a whole start line
            if kind is _NEED_MORE:  # and where the line was left, to read on from there
                kind, state.start_read = read_first_bytes(seen, None)
        else:  # a start line still growing, sent a byte at a time maybe: read on
            kind, state.start_read = read_first_bytes(seen, state.start_read)
        if kind is not _HTTP1_REQUEST and kind is not _HTTP1_RESPONSE:
            if kind is not _NEED_MORE and kind in self._run.handlers:
                pending = data
                if seen is not data:
                    pending = bytes(seen)
                    del state.buf[len(pending) - len(data):]  # _hand_off's earlier bytes only
                self._hand_off(kind, side, pending, frame, time)
                return
            if seen is data:
                state.buf += data  # kept: later bytes join them, and _any_data counts them
            if kind is not _NEED_MORE:
                if self._tcp.syn_seen is None and _HEADER_LINE.match(seen):
                    # picked up mid-connection inside a head (sweep30a B4): the rest of it
                    # is skipped as after a hole, and the other side may still answer
                    state.buf.clear()
                    state.start_read = None
                    state.mode = _LOST
                    return
                self._ignore()
            return
        self._client = side if kind is _HTTP1_REQUEST else 1 - side
        self._counters.http_connections += 1
        # Holes before the first message (its side was lost from the start) count as any other.
        gaps = self._tcp.gaps
        if gaps:  # (usually none)
            self._client_gap = any(g[0] == self._client for g in gaps)
            self._server_gap = any(g[0] != self._client for g in gaps)
        else:
            self._client_gap = self._server_gap = False
        pending = data if seen is data else bytes(seen)
        state.buf.clear()
        state.mode = _HEAD
        other = self._sides[1 - side]
        if other.mode is _DETECT:
            other.mode = _HEAD
        if side == self._client:
            self._client_data(state, pending, state.buf_frame, state.buf_time, last_frame=frame)
        else:
            self._server_data(state, pending, state.buf_frame, state.buf_time, last_frame=frame)

    @staticmethod
    def _tls_after_hole(data: bytes) -> bool:
        """Whether bytes after a hole are TLS records: they start with one, or one starts in
        them (the hole ended inside a record), checked by the TLS reader's own rule."""
        if classify_first_bytes(data) is _TLS:
            return True
        from analyzer.tls.records import find_record_start  # (a rare path: after a hole)

        return find_record_start(data) is not None

    def _hand_off(self, kind: Start, side: int, pending: bytes, frame: int, time: float,
                  offset: int = 0) -> None:
        """Another stage reads this connection from now on (see handoff.py): it becomes the
        reassembler's listener and gets every byte seen so far, in order (``pending`` at
        ``offset``: 0 but after a hole)."""
        handler = self._run.handlers[kind](self._run, self._conn, self._tcp, kind)
        self._conn.listener = handler
        self._done = True  # nothing is decided here any more
        first = self._sides[side]
        other = self._sides[1 - side]
        if other.buf and other.mode is _DETECT:  # the other side spoke first, undecided
            handler.on_data(1 - side, 0, bytes(other.buf), other.buf_frame, other.buf_time)
        handler.on_data(side, offset, pending, first.buf_frame if first.buf else frame,
                        first.buf_time if first.buf else time)

    # --- client side ------------------------------------------------------------------------

    def _client_data(
        self, state: Side, data: bytes, frame: int, time: float, last_frame: int | None = None
    ) -> None:
        last = last_frame if last_frame is not None else frame
        while data:
            if state.mode is _WAIT:
                self._hold(state, data, frame, time)
                return
            if state.mode is _BODY:  # `_skip_body` inline
                reader = state.body
                assert reader is not None  # set with the mode
                used = reader.feed(data)
                if reader.error:
                    state.mode = _DEAD
                    return
                if not reader.done:
                    return
                self._request_complete(state)
                data = data[used:]
                continue
            if state.mode is not _HEAD:
                return
            # The usual case: a whole plain head at the start of the data, parsed where it
            # lies (what _take_head and parse_request_head make of it, in one compiled look).
            plain = request_head_at(data) if not state.buf else None
            if plain is not None and plain[1] <= MAX_HEAD_BYTES:  # else abandoned: _take_head
                request, end = plain
                first_frame, first_time = frame, time
                data = data[end:]
            else:
                head, data = self._take_head(state, data, frame, time, last)
                if head is None:
                    return
                raw, first_frame, first_time = head
                request = parse_request_head(raw)
            if request is None:
                state.mode = _DEAD
                self._client_gap = True
                return
            if self._requests is _NO_REQUESTS:
                self._requests = deque()
            pending = new_pending_request(request, first_frame, last, first_time,
                                          self._sequence, self._client_gap,
                                          request_offers_upgrade(request))
            self._requests.append(pending)
            self._sequence += 1
            if pending.offers and offers_websocket(request):
                self._promote_plain(pending)
            names = request.headers.names()
            if "content-length" not in names and "transfer-encoding" not in names:
                # RFC 9112 §6.3: "If this is a request message and none of the above are
                # true, then the message body length is zero" (what body_framing would say,
                # for most requests, the upgrade offers above all)
                self._request_complete(state)
                continue
            framing = body_framing(request)
            if has_body(framing):
                # a request's body is never read (`_request_complete` drops its reader):
                # none of it kept, so that it may go by unread from its first byte
                state.body = BodyReader(framing, keep=0)
                state.mode = _BODY
            else:
                self._request_complete(state)
        # A head completed exactly at the end of the data must still move on.

    def _request_complete(self, state: Side) -> None:
        state.body = None
        if self._requests and self._requests[-1].offers:
            state.mode = _WAIT
        else:
            state.mode = _HEAD

    def _hold(self, state: Side, data: bytes, frame: int, time: float) -> None:
        if state.held_bytes + len(data) > MAX_HELD_BYTES:
            data = data[: max(0, MAX_HELD_BYTES - state.held_bytes)]
            state.held_gap = True
        if data:
            state.held.append((data, frame, time))
            state.held_bytes += len(data)

    def _resume_client(self, unanswered: bool = False) -> None:
        """The upgrade request was not switched: what the client sent meanwhile is HTTP again.

        ``unanswered``: the connection ended without an answer, so whether those bytes are
        HTTP or the new protocol is unknown; only data that starts a request is read.
        """
        assert self._client is not None
        state = self._sides[self._client]
        if state.mode is not _WAIT:
            return
        held, state.held, state.held_bytes = state.held, [], 0
        state.held_gap = False
        state.mode = _LOST if unanswered else _HEAD
        for data, frame, time in held:
            if not data and state.mode is _WAIT:  # behind a request that offers, again
                state.held.append(HOLE)
                state.held_gap = True
            elif not data:  # HOLE: what follows is read as after any hole
                self._client_gap = True
                state.mode = _LOST
                state.buf.clear()
                state.scanned = 0
            elif state.mode is not _LOST:
                self._client_data(state, data, frame, time)
            elif found := self._resync(self._client, state, data, frame, time):
                self._client_data(state, found[0], found[1], found[2], last_frame=frame)

    # --- helpers ---------------------------------------------------------------------------

    def _any_data(self) -> bool:
        return any(s.buf or s.mode is not _DETECT for s in self._sides)
