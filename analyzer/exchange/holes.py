"""Recovery after capture holes, for ConnectionTracker: where reading resumes, a request found
late behind a 101, and offers answered inside a hole.

A hole in a direction stops the interpretation of that direction: what it would have said is
reported as unknown rather than guessed. Interpretation starts again at the first data after
the hole that begins a new message (a request line on the client side, a status line on the
server side), so a request whose head was captured whole is never lost; whatever follows a
hole is flagged (``gap_before``), because the pairing of requests and responses across it is a
guess, and the checks make such attempts inconclusive. A head the hole cut (a snaplen cuts every
long one) is read as far as it went (`head_so_far`, the tracker's ``on_gap``) and flagged too.
"""

from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING

from analyzer.exchange.attempts import AttemptEmitter
from analyzer.exchange.pending import (
    MAX_HEAD_BYTES,
    Mode,
    PendingRequest,
    Side,
    Switch,
    holds_a_request,
    joined,
)
from analyzer.exchange.relevance import request_offers_upgrade
from analyzer.http.head import parse_request_head
from analyzer.http.start import (
    StartRead,
    find_head_end,
    read_start,  # HTTP/1 only: where reading resumes after a hole
)

# module globals for speed (see tracker.py): _resync runs on every segment after a hole
_DETECT, _HEAD, _WAIT = Mode.DETECT, Mode.HEAD, Mode.WAIT


class HoleRecovery(AttemptEmitter):
    """Mixin of ConnectionTracker: reading again after a hole (see module docstring)."""

    __slots__ = ()

    if TYPE_CHECKING:
        def _resume_client(self, unanswered: bool = False) -> None: ...

    def _resync(self, side: int, state: Side, data: bytes, frame: int, time: float
                ) -> tuple[bytes, int, float] | None:
        """After a hole: the bytes to read, with the frame and time of their first one, once
        data begins the message this side sends (a request from the client, a response from
        the server); the side then reads heads again. None while it does not: a start line
        split over segments is collected (bounded by classify_start's MAX_REQUEST_LINE)."""
        seen = joined(state, data, frame, time)
        kind, state.start_read = read_start(seen, _start_read(state, seen, data))
        if kind == "need_more":
            if seen is data:
                state.buf += data
            return None
        candidate = data if seen is data else bytes(seen)
        if self._client is None:
            wanted = kind == "request" or kind == "response"
        else:
            wanted = kind == ("request" if side == self._client else "response")
        if not wanted:
            state.buf.clear()
            if candidate is not data:  # the collected start was none: this data may be one
                return self._resync(side, state, data, frame, time)
            return None
        found = (candidate, state.buf_frame, state.buf_time)
        state.mode = _DETECT if self._client is None else _HEAD
        state.buf.clear()
        state.scanned = 0
        state.body = None
        return found

    def _late_request(self, switch: Switch, data: bytes, frame: int, time: float
                      ) -> tuple[bool | None, bytes]:
        """A 101 came with no request (or with a plain one found late), and the client's first
        bytes after it begin a request head: the capture showed them out of order (merged
        interfaces) or after a hole. The head becomes the switch's request. Returns (True,
        the bytes after it), (False, the bytes) when they are no request, (None, b"") while
        the head is incomplete (its bytes are kept in the client side's buffer)."""
        state = self._sides[self._client_side()]
        seen = joined(state, data, frame, time)
        # `scanned`: how far a request's head was looked for in the bytes kept (its start
        # was a request's then, and stays one), so a head sent a byte at a time is read once
        searched = state.scanned if seen is not data else 0
        if searched:
            kind = "request"
        else:
            kind, state.start_read = read_start(seen, _start_read(state, seen, data))
        end = find_head_end(seen, searched) if kind == "request" else None
        if end is not None and end > MAX_HEAD_BYTES:  # as _take_head: whatever the segments
            end = None
        if kind == "need_more" or (kind == "request" and end is None
                                   and len(seen) <= MAX_HEAD_BYTES):
            if seen is data:
                state.buf += data
            state.scanned = len(seen) if kind == "request" else 0
            return None, b""
        candidate = data if seen is data else bytes(seen)
        state.buf.clear()
        state.scanned = 0
        head = parse_request_head(candidate[:end]) if end is not None else None
        if end is None or head is None:
            return False, candidate
        earlier = switch.request
        if earlier is not None:  # a client sends nothing after an offer until it is answered:
            # the earlier request had another answer, which the capture did not pair with it
            if earlier.offers:
                self._emit_http(earlier, None, (), None, time, "", gap_before_response=True)
            else:
                self._counters.ordinary_exchanges += 1
        switch.request = PendingRequest(head, state.buf_frame, frame, state.buf_time,
                                         self._sequence, gap_before=self._client_gap,
                                         offers=request_offers_upgrade(head))
        switch.replaceable = True  # until the client's bytes stop being requests
        self._sequence += 1
        return True, candidate[end:]

    def _answered_in_the_hole(self, time: float) -> None:
        """A 101 after a hole in the server's bytes answers the client's last upgrade offer:
        a client sends nothing after an offer until it is answered, so requests it sent
        later (held while the offer waited) mean the earlier offers were answered in the
        hole. Those earlier requests are reported without their lost answers."""
        client = self._sides[self._client_side()]
        while client.mode is _WAIT and holds_a_request(client.held):  # each round reads one
            self._requests, waiting = deque(), self._requests
            self._resume_client(unanswered=True)
            self._requests = waiting + self._requests
        while len(self._requests) > 1 and any(r.offers for r in list(self._requests)[1:]):
            earlier = self._requests.popleft()
            if earlier.offers:
                self._emit_http(earlier, None, (), None, time, "", gap_before_response=True)
            else:
                self._counters.ordinary_exchanges += 1


# A status line whose code is whole (RFC 9112 §4: status-code = 3DIGIT, then SP)
_STATUS_CODE = re.compile(rb"HTTP/[0-9]\.[0-9] [0-9]{3}(?: |$)")


def head_so_far(buf: bytes | bytearray, response: bool) -> bytes:
    """What can be read of a head a hole cut (a snaplen cuts every head longer than it): its
    complete lines, since the line the hole cut may have lost part of its name or value; a
    response with no complete line keeps its status line when the status code is whole.
    Empty when nothing can be read."""
    end = buf.rfind(b"\n") + 1
    if end:
        return bytes(buf[:end])
    if response and _STATUS_CODE.match(buf):
        return bytes(buf)
    return b""


def _start_read(state: Side, seen: bytes | bytearray, data: bytes) -> StartRead | None:
    """Where the start line the kept bytes begin was left while it grew (`Side.start_read`),
    when they are still those bytes (their length is what it was then), else None (read it
    whole). A line sent a byte at a time after a hole or behind its 101 is so read on from
    where it was left, as `ConnectionTracker._detect` reads a first one: read whole at every
    byte, a 16 KB plain line cost 2.7 s, 8,000 bytes of "GET a a a ..." 1.9 s."""
    so_far = state.start_read
    if so_far is not None and seen is not data and so_far.length == len(seen) - len(data):
        return so_far
    return None
