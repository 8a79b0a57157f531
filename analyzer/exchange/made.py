"""The exchange values each attempt of the HTTP/1 tracker needs (its `Attempt`, `TcpFacts`,
their `TcpEvent`s and `Endpoint`s) built through their slots' own descriptors.

A frozen dataclass's ``__init__`` stores each field through ``object.__setattr__``: about
9 k machine instructions for an 11-field value (callgrind), and every attempt makes one
Attempt (17 fields), one TcpFacts (11), two Endpoints and up to seven TcpEvents. Storing the
same values through the slots' descriptors (as `verdict.made` and `pending.message` do)
gives the same value, equal and of equal hash, for less; the compiled module fills the slots
in C (decode/_made.pxi), and these Python functions (``*_plain``) are its twins and the
pure-Python install's. Their own plain twin is the constructor of the same arguments;
tests/test_made_values.py compares all three on the attempts of every bundled capture.
"""

from __future__ import annotations

from analyzer.exchange.model import (
    AfterSwitch,
    Attempt,
    AttemptKind,
    Conflict,
    Endpoint,
    Gap,
    H2Stream,
    Message,
    OtherAnswer,
    Promotion,
    Resend,
    TcpEvent,
    TcpFacts,
    TlsInfo,
)
from analyzer.slotted import slot_setters

_new_object = object.__new__


_set_address, _set_port = slot_setters(Endpoint)


def made_endpoint_plain(address: bytes, port: int) -> Endpoint:
    """``Endpoint(address, port)``."""
    made = _new_object(Endpoint)
    _set_address(made, address)
    _set_port(made, port)
    return made


_set_event_frame, _set_event_time, _set_event_lost = slot_setters(TcpEvent)


def made_event_plain(frame: int, time: float, lost: bool = False) -> TcpEvent:
    """``TcpEvent(frame, time, lost)``."""
    made = _new_object(TcpEvent)
    _set_event_frame(made, frame)
    _set_event_time(made, time)
    _set_event_lost(made, lost)
    return made


(_set_syn, _set_syn_count, _set_syn_ack, _set_client_fin, _set_server_fin, _set_client_rst,
 _set_server_rst, _set_gaps, _set_conflicts, _set_end_reason, _set_end_time, _set_resent) = \
    slot_setters(TcpFacts)


def made_tcp_facts_plain(syn: TcpEvent | None, syn_count: int, syn_ack: TcpEvent | None,
                   client_fin: TcpEvent | None, server_fin: TcpEvent | None,
                   client_rst: TcpEvent | None, server_rst: TcpEvent | None,
                   gaps: tuple[Gap, ...], conflicts: tuple[Conflict, ...], end_reason: str,
                   end_time: float, resent: tuple[Resend, ...] = ()) -> TcpFacts:
    """``TcpFacts(syn, syn_count, ...)`` of every field, in field order."""
    made = _new_object(TcpFacts)
    _set_syn(made, syn)
    _set_syn_count(made, syn_count)
    _set_syn_ack(made, syn_ack)
    _set_client_fin(made, client_fin)
    _set_server_fin(made, server_fin)
    _set_client_rst(made, client_rst)
    _set_server_rst(made, server_rst)
    _set_gaps(made, gaps)
    _set_conflicts(made, conflicts)
    _set_end_reason(made, end_reason)
    _set_end_time(made, end_time)
    _set_resent(made, resent)
    return made


(_set_kind, _set_client, _set_server, _set_tcp, _set_request, _set_response, _set_interim,
 _set_after, _set_sequence, _set_request_gap, _set_response_gap, _set_tls, _set_transport,
 _set_stream_id, _set_h2, _set_other_answer, _set_promoted) = slot_setters(Attempt)


def made_attempt_plain(kind: AttemptKind, client: Endpoint, server: Endpoint, tcp: TcpFacts,
                 request: Message | None = None, response: Message | None = None,
                 interim: tuple[Message, ...] = (), after: AfterSwitch | None = None,
                 sequence: int = 0, request_gap: bool = False, response_gap: bool = False,
                 tls: TlsInfo | None = None, transport: str = "h1",
                 stream_id: int | None = None, h2: H2Stream | None = None,
                 other_answer: OtherAnswer | None = None,
                 promoted: Promotion | None = None) -> Attempt:
    """``Attempt(kind, client, ...)``, with the constructor's defaults."""
    made = _new_object(Attempt)
    _set_kind(made, kind)
    _set_client(made, client)
    _set_server(made, server)
    _set_tcp(made, tcp)
    _set_request(made, request)
    _set_response(made, response)
    _set_interim(made, interim)
    _set_after(made, after)
    _set_sequence(made, sequence)
    _set_request_gap(made, request_gap)
    _set_response_gap(made, response_gap)
    _set_tls(made, tls)
    _set_transport(made, transport)
    _set_stream_id(made, stream_id)
    _set_h2(made, h2)
    _set_other_answer(made, other_answer)
    _set_promoted(made, promoted)
    return made



try:
    from analyzer.decode._fastpath import compiled_made_attempt as made_attempt
    from analyzer.decode._fastpath import compiled_made_endpoint as made_endpoint
    from analyzer.decode._fastpath import compiled_made_event as made_event
    from analyzer.decode._fastpath import compiled_made_tcp_facts as made_tcp_facts
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    made_endpoint, made_event = made_endpoint_plain, made_event_plain
    made_tcp_facts, made_attempt = made_tcp_facts_plain, made_attempt_plain
