"""The server side of ConnectionTracker: response heads read and paired with the oldest queued
request, bodies skipped (their first bytes kept), and the head and body readers both sides use.

A final response completes once its body is read; the attempt is emitted then if it answers an
offer (or looks like an upgrade answer), otherwise it is counted as an ordinary exchange and
the client side resumes. A 101 (or a 2xx to CONNECT) starts the switch (switching.py). Bytes
that are not HTTP/1 where a response should start are named (`OtherAnswer`), not parsed.
"""

from __future__ import annotations

from analyzer.exchange.first_bytes import Start, classify_first_bytes, describe_start
from analyzer.exchange.holes import head_so_far
from analyzer.exchange.model import OtherAnswer
from analyzer.exchange.pending import (
    MAX_HEAD_BYTES,
    Mode,
    Side,
    message,
    new_pending_response,
)
from analyzer.exchange.relevance import is_upgrade_attempt
from analyzer.exchange.switching import SwitchFollower
from analyzer.http.body import PREFIX_LIMIT, BodyReader, FramingKind, body_framing
from analyzer.http.head import parse_response_head, response_head_at
from analyzer.http.start import HEAD_END, find_head_end, only_empty_lines

# module globals for speed (see tracker.py): these are compared several times per segment
_HEAD, _BODY, _WAIT, _DEAD = Mode.HEAD, Mode.BODY, Mode.WAIT, Mode.DEAD
_NONE, _LENGTH = FramingKind.NONE, FramingKind.LENGTH
_HTTP1_RESPONSE, _NEED_MORE = Start.HTTP1_RESPONSE, Start.NEED_MORE


def _prefix_read(offers: bool, status: int) -> bool:
    """Whether a final response's first body bytes are read: for an answer to an offer
    (listed with them), or a 4xx or 5xx, whose words may make it one."""
    return offers or status >= 400


class ResponseReader(SwitchFollower):
    """Mixin of ConnectionTracker: the server side and the shared readers (module docstring)."""

    __slots__ = ()


    def _server_data(
        self, state: Side, data: bytes, frame: int, time: float, last_frame: int | None = None
    ) -> None:
        last = last_frame if last_frame is not None else frame
        while data:
            if self._switch is not None:
                self._observe(1 - self._client_side(), data, frame, time)
                return
            if state.mode is _BODY:  # `_skip_body` inline: most server segments are bodies
                reader = state.body
                assert reader is not None  # set with the mode
                used = reader.feed(data)
                if reader.error:  # a malformed body: its end is unknown
                    state.mode = _DEAD
                    self._complete_response(body_complete=False)
                    return
                if not reader.done:
                    return
                self._complete_response(body_complete=True)
                data = data[used:]
                continue
            if state.mode is not _HEAD:
                return
            if data[0] != 0x48 and not state.buf and self._other is None:  # not "HTTP/..."
                kind = classify_first_bytes(data)
                if kind is not _HTTP1_RESPONSE and kind is not _NEED_MORE:
                    # A TLS alert to a cleartext request, an HTTP/2 SETTINGS frame...: kept
                    # for the checks (response_not_http, checks/tls.py), and no response
                    # will come.
                    self._other = OtherAnswer(describe_start(kind, data), frame, time,
                                              bytes(data[:16]))
                    state.mode = _DEAD
                    self._maybe_ignore()
                    return
            plain = response_head_at(data) if not state.buf else None  # as in _client_data
            if plain is not None and plain[1] <= MAX_HEAD_BYTES:
                response, end = plain
                first_frame, first_time = frame, time
                data = data[end:]
            else:
                head, data = self._take_head(state, data, frame, time, last)
                if head is None:
                    return
                raw, first_frame, first_time = head
                response = parse_response_head(raw)
            if response is None:
                self._not_http(raw[:64], first_frame, first_time)
                state.mode = _DEAD
                self._maybe_ignore()
                return
            # A Message is made here only for the heads that are kept as they are (interim and
            # switching ones); a final response's is made once its body is read, if it is part
            # of an attempt (_complete_response).
            status = response.status
            if 100 <= status < 200 and status != 101:
                self._interim.append(message(response, first_frame, last, first_time))
                continue
            if self._server_gap and status == 101:
                self._answered_in_the_hole(first_time)
            request = self._requests.popleft() if self._requests else None
            if self._interim:
                interim = tuple(self._interim)
                self._interim.clear()
            else:
                interim = ()
            method = request.head.method.upper() if request is not None else None
            if status == 101 or (method == "CONNECT" and 200 <= status < 300):
                switching = message(response, first_frame, last, first_time)
                self._start_switch(request, switching, interim, time)
                if data:
                    self._observe(1 - self._client_side(), data, frame, time)
                return
            framing = body_framing(response, request_method=method)
            self._response = new_pending_response(
                request, response, first_frame, last, first_time, interim, self._server_gap
            )
            framed = framing.kind
            if framed is _NONE or (framed is _LENGTH and not framing.length):  # no body (has_body)
                # complete now, not when more bytes come: a keep-alive 403 with an empty body
                # may be the last thing the server says for minutes
                self._complete_response(body_complete=True)
                continue
            # its first bytes kept only where they will be read (`_complete_response`): an
            # ordinary 2xx's go by unread from the first (`body_room`, the compiled skip)
            state.body = BodyReader(framing, keep=PREFIX_LIMIT if _prefix_read(
                request is not None and request.offers, status) else 0)
            state.mode = _BODY

    def _complete_response(
        self, *, body_complete: bool, end_reason: str = "", end_time: float = 0.0
    ) -> None:
        pending = self._response
        assert pending is not None and self._client is not None
        server = self._sides[1 - self._client]
        reader = server.body
        server.body = None
        if server.mode is _BODY:
            server.mode = _HEAD
        self._response = None
        request = pending.request
        offers = request is not None and request.offers
        # The body's first bytes are read only where they may be needed: an answer to an offer
        # is listed with them, and a 4xx's words may make it one (response_talks_about_upgrade;
        # a 101 never gets here); an ordinary 2xx's would be a copy thrown away.
        body_prefix = b""
        if reader is not None and _prefix_read(offers, pending.head.status):
            body_prefix = reader.prefix
        if is_upgrade_attempt(offers, pending.head, body_prefix,
                              request.head if request is not None else None):
            answer = message(pending.head, pending.first_frame, pending.last_frame,
                             pending.time, body_prefix, reader.size if reader is not None else 0,
                             body_complete)
            self._emit_http(request, answer, pending.interim, None, end_time or pending.time,
                            end_reason, pending.gap_before)
        else:
            self._counters.ordinary_exchanges += 1
            if request is not None and 400 <= pending.head.status < 500:
                self._hold_plain(request, pending, reader, body_complete, end_time, end_reason)
        if self._sides[self._client].mode is _WAIT:  # (a call fewer for the usual answer)
            self._resume_client()

    def _cut_response_head(self, state: Side, time: float) -> bool:
        """A hole cut the response head being read (a snaplen cuts every head longer than
        it): the response, as far as it was read (`Message.head_complete` False), answers
        the oldest request as a whole one would; its body is unknown. A 101 starts the
        switch (the tracker tells its watch of the hole). False when not even the status code was
        read."""
        raw = head_so_far(state.buf, response=True)
        response = parse_response_head(raw) if raw else None
        if response is None:
            return False
        first_frame, last, first_time = state.buf_frame, state.buf_last, state.buf_time
        state.buf.clear()
        state.scanned = 0
        state.start_read = None
        status = response.status
        cut = message(response, first_frame, last, first_time, b"", 0, False,
                      head_complete=False)
        if 100 <= status < 200 and status != 101:
            self._interim.append(cut)
            return True
        if self._server_gap and status == 101:
            self._answered_in_the_hole(first_time)
        request = self._requests.popleft() if self._requests else None
        interim = tuple(self._interim)
        self._interim.clear()
        method = request.head.method.upper() if request is not None else None
        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            self._start_switch(request, cut, interim, time)
            switch = self._switch
            assert switch is not None
            switch.gap_before = True  # (capture_gap_response: the hole cut its head)
            return True
        if is_upgrade_attempt(request is not None and request.offers, response, b"",
                              request.head if request is not None else None):
            self._emit_http(request, cut, interim, None, first_time, "",
                            gap_before_response=True)
        else:
            self._counters.ordinary_exchanges += 1
            if request is not None and 400 <= status < 500:
                pending = new_pending_response(request, response, first_frame, last,
                                               first_time, interim, True)
                self._hold_plain(request, pending, None, False, 0.0, "", head_complete=False)
        if self._sides[self._client_side()].mode is _WAIT:
            self._resume_client()
        return True

    # --- the readers both sides use ------------------------------------------------------------

    def _take_head(
        self, state: Side, data: bytes, frame: int, time: float, last_frame: int
    ) -> tuple[tuple[bytes, int, float] | None, bytes]:
        """Adds data to the head buffer; returns (head, rest) once a head is complete."""
        if state.buf:
            state.buf += data
            if state.scanned:
                end = find_head_end(state.buf, state.scanned)
            else:  # only empty lines so far (RFC 9112 §2.2): a head may begin in data
                end = None if only_empty_lines(data) else find_head_end(state.buf)
        else:
            # A head usually begins and ends in the same data: look in the data itself, and
            # copy it into the buffer only when the head goes on in later data. Data that
            # begins with its start line (not an empty line) is searched here, as
            # find_head_end would (a call fewer per head).
            if data[0] != 0x0D and data[0] != 0x0A:
                found = HEAD_END.search(data)
                end = found.end() if found is not None else None
            else:
                end = find_head_end(data)
            if end is not None and end <= MAX_HEAD_BYTES:
                return (data[:end], frame, time), data[end:]
            state.buf_frame, state.buf_time = frame, time
            state.buf += data
        state.buf_last = last_frame
        if end is None or end > MAX_HEAD_BYTES:
            if state.scanned or not only_empty_lines(data):  # (0 while only empty lines)
                state.scanned = len(state.buf)
            # A head that never ends (slowloris, or a header flood) is not waited for
            # forever: the side stops here and the summary counts it. A head is read only
            # when it ends within MAX_HEAD_BYTES, whatever the segments that brought it
            # (one that ended in the segment taking it past the bound was read, one that
            # went past first was not: the attempt depended on the segmentation).
            if len(state.buf) >= MAX_HEAD_BYTES:  # (always so when it ended past the bound)
                state.mode = _DEAD
                state.buf.clear()
                self._counters.abandoned_heads += 1
            return None, b""
        raw = bytes(state.buf[:end])
        rest = bytes(state.buf[end:])
        head = (raw, state.buf_frame, state.buf_time)
        state.buf.clear()
        state.scanned = 0
        if rest:
            state.buf_frame, state.buf_time = last_frame, time
        return head, rest

    def body_room(self, side: int) -> tuple[int, float]:
        """Bytes of ``side`` that may go by unread (tls/passing.py), 0 when none may: the
        rest of a body past its kept prefix, or of a WebSocket frame under watch; and the
        time after which they may not (the watch's end, which a segment must see)."""
        state = self._sides[side]
        switch = self._switch
        if switch is not None:
            if state.mode is _DEAD or self._done or (side == self._client and (
                    switch.request is None or switch.replaceable)):
                return 0, 0.0
            return switch.watch.room(side == self._client), switch.watch.deadline
        if state.mode is not _BODY or state.body is None:
            return 0, 0.0
        return state.body.room(), float("inf")

    def pass_body(self, side: int, count: int) -> None:
        """``count`` bytes of ``side`` (fewer than `body_room`) went by unread."""
        if self._switch is not None:
            self._switch.watch.pass_bytes(side == self._client, count)
            return
        body = self._sides[side].body
        assert body is not None
        body.pass_bytes(count)

    def _not_http(self, prefix: bytes, frame: int, time: float) -> None:
        """The server's bytes where a response should start: named when they are another
        protocol (an HTTP/2 SETTINGS frame, a TLS alert, an SSH banner) rather than a broken
        HTTP/1 head, so the attempt says what answered instead of "closed without a word"."""
        kind = classify_first_bytes(prefix)
        if kind is not _HTTP1_RESPONSE and kind is not _NEED_MORE and self._other is None:
            self._other = OtherAnswer(describe_start(kind, prefix), frame, time,
                                      bytes(prefix[:16]))

    def _maybe_ignore(self) -> None:
        if all(s.mode is _DEAD for s in self._sides) and not self._requests:
            self._ignore()
