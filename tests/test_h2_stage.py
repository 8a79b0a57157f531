"""The HTTP/2 exchange stage on whole connections: many streams, bounds, plain requests."""

from __future__ import annotations

from pathlib import Path

from analyzer.exchange.h2 import MAX_STREAMS
from analyzer.pipeline import Analysis, analyze
from analyzer.source import read_captures
from analyzer.verdict import Diagnosis
from tests import h2builder as h2
from tests.builder import Conversation, Opcode, write_pcap, ws_frame


def _run(tmp_path: Path, conv: Conversation) -> tuple[list[Diagnosis], Analysis]:
    path = tmp_path / "h2.pcap"
    write_pcap(path, [conv])
    analysis = Analysis()
    return list(analyze(read_captures([str(path)], []), analysis)), analysis


def _open(conv: Conversation, state: h2.H2Conversation) -> None:
    conv.handshake()
    conv.client(h2.PREFACE + h2.settings())
    conv.server(h2.settings(((h2.ENABLE_CONNECT_PROTOCOL, 1),)) + h2.settings(ack=True))
    conv.client(h2.settings(ack=True))


def test_many_streams_on_one_connection_stay_separate_attempts(tmp_path: Path) -> None:
    conv, state = Conversation(), h2.H2Conversation()
    _open(conv, state)
    for stream, path in ((1, "/a"), (3, "/b"), (5, "/c"), (7, "/d")):
        conv.client(state.headers(True, stream, h2.websocket_connect(path)))
    conv.client(state.headers(True, 9, [(":method", "GET"), (":scheme", "https"),
                                        (":path", "/page"), (":authority", "example.com")],
                              end_stream=True))
    # answered out of order, each differently
    conv.server(state.headers(False, 5, [(":status", "403")], end_stream=True))
    conv.server(state.headers(False, 9, [(":status", "200")]) + h2.data(9, b"page", True))
    conv.server(state.headers(False, 1, [(":status", "200")]))
    conv.server(h2.rst_stream(3, h2.REFUSED_STREAM))
    conv.server(h2.data(1, ws_frame(Opcode.TEXT, "hi")))
    conv.client(h2.data(1, ws_frame(Opcode.TEXT, "yo", mask=True)))
    conv.server(h2.goaway(7, 0xB))  # stream 7 is covered: an explicit refusal
    conv.client_fin()
    conv.server_fin()
    diagnoses, analysis = _run(tmp_path, conv)
    got = sorted((d.attempt.stream_id, d.verdict.value,
                  d.primary.check if d.primary else None) for d in diagnoses)
    # (stream 1's WebSocket talked, then the connection closed under it without a Close frame
    # within its first moments: aborted, as a connection's FIN after frames is over HTTP/1)
    assert got == [(1, "aborted", "ended_without_close_after_switch"),
                   (3, "no_response", "h2_stream_refused"),
                   (5, "failed", "response_forbidden"), (7, "failed", "h2_goaway")]
    assert {d.attempt.sequence for d in diagnoses} == {0, 1, 2, 3}
    assert analysis.stats.ordinary_exchanges == 1  # the GET on stream 9
    assert analysis.stats.http_connections == 1


def test_streams_past_the_bound_are_counted_not_followed(tmp_path: Path) -> None:
    conv, state = Conversation(), h2.H2Conversation()
    _open(conv, state)
    count = MAX_STREAMS + 50
    block = b"".join(state.headers(True, 1 + 2 * i, h2.websocket_connect(f"/{i}"))
                     for i in range(count))
    conv.client(block)
    conv.client_fin()
    conv.server_fin()
    diagnoses, analysis = _run(tmp_path, conv)
    assert len(diagnoses) == MAX_STREAMS
    assert all(d.verdict.value == "no_response" for d in diagnoses)
    assert analysis.stats.ordinary_exchanges == count - MAX_STREAMS


def test_a_plain_http2_get_answered_about_websocket_is_listed(tmp_path: Path) -> None:
    """As for HTTP/1: a plain request whose answer talks about an upgrade is an attempt."""
    conv, state = Conversation(), h2.H2Conversation()
    _open(conv, state)
    conv.client(state.headers(True, 1, [(":method", "GET"), (":scheme", "https"),
                                        (":path", "/ws"), (":authority", "example.com")],
                              end_stream=True))
    conv.server(state.headers(False, 1, [(":status", "400")])
                + h2.data(1, b"Can \"Upgrade\" only to \"WebSocket\".", True))
    conv.client_fin()
    conv.server_fin()
    [diagnosis], _ = _run(tmp_path, conv)
    assert diagnosis.attempt.transport == "h2"
    assert diagnosis.verdict.value == "failed"
    assert [f.check for f in diagnosis.findings] == ["request_without_upgrade",
                                                     "response_bad_request"]
    assert diagnosis.attempt.response is not None
    assert b"WebSocket" in diagnosis.attempt.response.body_prefix


def test_live_a_connect_unanswered_past_the_patience_is_decided(tmp_path: Path) -> None:
    from analyzer.source import read_bytes
    from analyzer.source.frame import Frame
    from tests.builder import pcap_bytes

    conv, state = Conversation(), h2.H2Conversation()
    _open(conv, state)
    conv.client(state.headers(True, 1, h2.websocket_connect()))
    frames: list[Frame] = list(read_bytes(pcap_bytes([conv]), []))
    analysis = Analysis()
    decided = [d for f in frames for d in analysis.feed(f)]
    assert decided == []
    later = analysis.tick(frames[-1].time + 1.0, 5.0)
    assert later == []  # not yet past the patience
    [diagnosis] = analysis.tick(frames[-1].time + 10.0, 5.0)
    assert diagnosis.attempt.stream_id == 1
    assert diagnosis.verdict.value == "no_response"
    assert diagnosis.primary is not None
    assert diagnosis.primary.check == "no_response_capture_ended"


def test_a_client_goaway_does_not_refuse_its_own_streams(tmp_path: Path) -> None:
    """The client's GOAWAY names the last stream the *server* opened (push): its pending
    CONNECT was given up by the client, not refused by the server."""
    conv, state = Conversation(), h2.H2Conversation()
    _open(conv, state)
    conv.client(state.headers(True, 1, h2.websocket_connect()))
    conv.client(h2.goaway(0, h2.NO_ERROR), delay=3.0)
    conv.client_fin()
    conv.server_fin()
    [diagnosis], _ = _run(tmp_path, conv)
    assert diagnosis.verdict.value == "no_response"
    assert diagnosis.primary is not None
    assert diagnosis.primary.check == "no_response_client_gave_up"


def test_server_settings_first_then_an_http1_request(tmp_path: Path) -> None:
    """A server that sends its SETTINGS on accept, captured before the client's HTTP/1.1
    handshake: the HTTP/1 tracker takes the connection back and names the answer."""
    from tests.builder import websocket_request

    conv = Conversation()
    conv.handshake()
    conv.server(h2.settings(((3, 100),)))
    conv.client(websocket_request("example.com", "/chat"))
    conv.server(h2.goaway(0, h2.PROTOCOL_ERROR))
    conv.server_fin()
    conv.client_fin()
    [diagnosis], analysis = _run(tmp_path, conv)
    assert diagnosis.attempt.transport == "h1"
    assert diagnosis.verdict.value == "failed"
    assert diagnosis.primary is not None and diagnosis.primary.check == "response_not_http"
    assert "HTTP/2 SETTINGS" in diagnosis.primary.found
    assert analysis.stats.http_connections == 1
