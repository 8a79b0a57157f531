"""Builds Attempts from what a ConnectionTracker read and hands them on: answered, unanswered
at the end, cut inside a head, TCP-only, and plain 4xx rejections held for promotion."""

from __future__ import annotations

from analyzer.exchange.made import made_attempt
from analyzer.exchange.model import (
    CONNECTION_ENDED,
    AfterSwitch,
    Attempt,
    AttemptKind,
    Message,
    Promotion,
)
from analyzer.exchange.pending import (
    Mode,
    PendingRequest,
    PendingResponse,
    TrackerState,
)
from analyzer.exchange.relevance import PathKey, path_key, request_offers_upgrade
from analyzer.http.body import BodyReader
from analyzer.http.head import parse_request_head

_HEAD, _LOST, _DEAD = Mode.HEAD, Mode.LOST, Mode.DEAD  # module globals for speed (tracker.py)
_HTTP = AttemptKind.HTTP


class AttemptEmitter(TrackerState):
    """Mixin of ConnectionTracker: building and handing on its attempts."""

    __slots__ = ()

    def _emit_http(
        self,
        request: PendingRequest | None,
        response: Message | None,
        interim: tuple[Message, ...],
        after: AfterSwitch | None,
        time: float,
        reason: str,
        gap_before_response: bool = False,
    ) -> None:
        if request is not None and request.reported and response is not None:
            return  # answered after it was reported unanswered (live): said once is enough
        self._emit(self._attempt(request, response, interim, after, time, reason,
                                 gap_before_response=gap_before_response))

    def _attempt(
        self,
        request: PendingRequest | None,
        response: Message | None,
        interim: tuple[Message, ...],
        after: AfterSwitch | None,
        time: float,
        reason: str,
        promoted: Promotion | None = None,
        gap_before_response: bool = False,
    ) -> Attempt:
        client = self._client_side()
        server_state = self._sides[1 - client]
        if response is None:
            response_gap = gap_before_response or server_state.mode in (_LOST, _DEAD) and any(
                g[0] != client for g in self._tcp.gaps)
        else:
            response_gap = gap_before_response
        client_end, server_end = self._tcp.endpoints(client)
        # made through the slots (`exchange/made.py`), positionally in field order: kind,
        # client, server, tcp, request, response, interim, after, sequence, request_gap,
        # response_gap, tls, transport, stream_id, h2, other_answer, promoted
        return made_attempt(
            _HTTP, client_end, server_end, self._tcp.facts(client, time, reason),
            request.message() if request is not None else None, response, interim, after,
            request.sequence if request is not None else self._sequence,
            request.gap_before if request is not None else self._client_gap, response_gap,
            None, "h1", None, None, self._other if response is None else None, promoted)

    def _emit_transport_attempt(self, time: float, reason: str) -> None:
        client, server = self._tcp.endpoints(0)
        self._emit(made_attempt(AttemptKind.TCP, client, server, self._tcp.facts(0, time, reason)))

    def _flush_unanswered(self, time: float, reason: str) -> None:
        """The connection ended: requests still waiting never got an answer."""
        while self._requests:
            request = self._requests.popleft()
            if request.reported:
                continue
            if request.offers:
                self._emit_http(request, None, tuple(self._interim), None, time, reason)
            else:
                self._counters.ordinary_exchanges += 1

    def _flush_unfinished_head(self, time: float, reason: str) -> None:
        """The connection ended inside a request head: the request is reported as far as it
        went when it offered an upgrade, or when a side closed (a client that stops mid-head
        is worth a line whatever it asked); a head cut by the capture's end is only counted."""
        if self._client is None or self._switch is not None:
            return
        state = self._sides[self._client]
        if state.mode is not _HEAD or not state.buf:
            return
        head = parse_request_head(bytes(state.buf))  # notes "unterminated_head"
        state.buf.clear()
        if head is None:
            return
        offers = request_offers_upgrade(head)
        if not offers and reason not in CONNECTION_ENDED:
            self._counters.ordinary_exchanges += 1
            return
        request = PendingRequest(head, state.buf_frame, state.buf_last, state.buf_time,
                                  self._sequence, gap_before=self._client_gap, offers=offers,
                                  complete=False)
        self._sequence += 1
        self._emit_http(request, None, (), None, time, reason)

    def _hold_plain(self, request: PendingRequest, pending: PendingResponse,
                    reader: BodyReader | None, body_complete: bool, end_time: float,
                    end_reason: str, head_complete: bool = True) -> None:
        """A plain request answered 4xx: held by the run's PlainRejections, and emitted as an
        attempt once its path shows WebSocket upgrades (or at once for a usual WS path).
        ``head_complete`` False: a hole cut the response's head (its `gap_before`)."""
        prefix, size = (reader.prefix, reader.size) if reader is not None else (b"", 0)

        def build(promotion: Promotion) -> Attempt:
            message = Message(pending.head, pending.first_frame, pending.last_frame,
                              pending.time, prefix, size, body_complete, head_complete)
            return self._attempt(request, message, pending.interim, None,
                                 end_time or pending.time, end_reason, promotion,
                                 gap_before_response=pending.gap_before and not head_complete)

        key = self._path_key(request)
        attempt = self._counters.plain.hold(key, build) if key is not None else None
        if attempt is not None:
            self._counters.ordinary_exchanges -= 1
            self._emit(attempt)

    def _promote_plain(self, request: PendingRequest) -> None:
        """A WebSocket upgrade request: the plain 4xx exchanges held for its path are attempts."""
        key = self._path_key(request)
        for held in self._counters.plain.upgraded(key) if key is not None else ():
            self._counters.ordinary_exchanges -= 1
            self._emit(held)

    def _path_key(self, request: PendingRequest) -> PathKey | None:
        a, ap, b, bp = self._conn.addresses
        return path_key((b, bp) if self._client == 0 else (a, ap), request.head.target)

    def _client_side(self) -> int:
        assert self._client is not None
        return self._client

    def _ignore(self) -> None:
        self._run.ignore(self._conn)
