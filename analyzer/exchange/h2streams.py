"""One HTTP/2 stream as the exchange stage follows it (exchange/h2.py `H2Stage`), and the
`Attempt` it becomes when it is decided: kept apart so that the stage reads as the order of
events, and this as what an attempt over HTTP/2 carries."""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.exchange.model import (
    Attempt,
    AttemptKind,
    H2End,
    H2Note,
    H2Problem,
    H2Stream,
    Message,
    OtherAnswer,
    TcpEvent,
)
from analyzer.exchange.switch import SwitchWatch
from analyzer.exchange.tcplog import TcpLog


@dataclass(slots=True)
class StreamState:
    """One HTTP/2 stream's messages as they are read."""
    id: int
    sequence: int
    request: Message | None = None
    response: Message | None = None
    interim: list[Message] = field(default_factory=list)
    method: str = ""
    protocol: str | None = None  # :protocol
    settings_seen: tuple[tuple[int, int], ...] | None = None
    connect_enabled: bool = False
    watch: SwitchWatch | None = None
    body: bytearray = field(default_factory=bytearray)
    data: list[int] = field(default_factory=lambda: [0, 0])
    ends: list[TcpEvent | None] = field(default_factory=lambda: [None, None])
    reset: H2End | None = None
    notes: list[H2Note] = field(default_factory=list)
    undecoded: bool = False  # a header block of the stream could not be read
    tails: list[bytes] = field(default_factory=lambda: [b"", b""])  # last DATA bytes, watched

    @property
    def is_attempt_shape(self) -> bool:
        # an unreadable stream is listed: whether it was an attempt cannot be told
        return self.method == "CONNECT" or self.undecoded


def stream_attempt(stream: StreamState, response: Message | None, tcp: TcpLog, client: int,
                   time: float, reason: str, goaway: H2End | None,
                   problems: list[H2Problem], notes: list[H2Note],
                   answer: OtherAnswer | None = None) -> Attempt:
    """The attempt of ``stream``, decided at ``time`` for ``reason``, with ``response`` (its
    body prefix gathered) and the connection's GOAWAY, problems and notes; ``answer``: what
    the server sent instead of HTTP/2. Stream 0 is none: a connection whose client sent no
    request (its attempt's ``stream_id`` is None)."""
    after = stream.watch.result(time) if stream.watch is not None else None
    # No answer, and the server's bytes have a hole: the answer may be in it, or after it
    # (a hole loses the HPACK state, so no later header block can be read): the checks
    # say "bytes of the response are missing" instead of "no response".
    lost = response is None and any(gap[0] != client for gap in tcp.gaps)
    return Attempt(
        kind=AttemptKind.HTTP,
        client=tcp.endpoint(client),
        server=tcp.endpoint(1 - client),
        tcp=tcp.facts(client, time, reason),
        request=stream.request,
        response=response,
        interim=tuple(stream.interim),
        after=after,
        sequence=stream.sequence,
        response_gap=lost,
        transport="h2",
        stream_id=stream.id or None,
        h2=H2Stream(
            server_settings=stream.settings_seen,
            connect_protocol=stream.connect_enabled,
            client_end=stream.ends[0],
            server_end=stream.ends[1],
            reset=stream.reset,
            goaway=goaway,
            problems=tuple(p for p in problems
                           if p.stream_id in (0, stream.id) or stream.undecoded),
            notes=tuple(notes + stream.notes),
            client_data=stream.data[0],
            server_data=stream.data[1],
        ),
        other_answer=answer,
    )
