"""Plain requests answered 4xx become attempts when their path upgrades (exchange/relevance.py).

Real captures of the frameworks that answer a plain `GET /ws` without a word about upgrading
(uvicorn/starlette 404, Flask-Sock 400, Channels 404) are in captures/ (test_captures.py);
here each rule is driven by built conversations, with the near misses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from analyzer.exchange.model import Attempt, AttemptKind, Endpoint, Promotion, TcpFacts
from analyzer.exchange.relevance import MAX_HELD, PlainRejections, is_websocket_path
from analyzer.pipeline import Analysis, analyze
from analyzer.source import read_captures
from analyzer.verdict import Diagnosis
from tests.builder import (
    Conversation,
    http_request,
    http_response,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import run_cli

SERVER = ("10.0.0.2", 8000)
NOT_FOUND = http_response(404, "Not Found", [("server", "uvicorn"), ("content-length", "9"),
                                             ("content-type", "text/plain; charset=utf-8")],
                          b"Not Found")
OK_PAGE = http_response(200, "OK", [("content-length", "2")], b"ok")


def plain(port: int, start: float, path: str = "/chat", answer: bytes = NOT_FOUND,
          server: tuple[str, int] = SERVER) -> Conversation:
    conv = Conversation(("10.0.0.1", port), server, start=start)
    conv.handshake()
    conv.client(http_request("GET", path, [("Host", "app.example"),
                                           ("User-Agent", "PostmanRuntime/7.39.0")]))
    conv.server(answer, delay=0.002)
    conv.client_fin(0.01)
    conv.server_fin(0.001)
    return conv


def upgrade(port: int, start: float, path: str = "/chat") -> Conversation:
    conv = Conversation(("10.0.0.1", port), SERVER, start=start)
    conv.handshake()
    conv.client(websocket_request("app.example", path))
    conv.server(websocket_response(), delay=0.002)
    return conv


def run(tmp_path: Path, *convs: Conversation) -> tuple[list[Diagnosis], Analysis]:
    write_pcap(tmp_path / "c.pcap", list(convs))
    analysis = Analysis()
    found = list(analyze(read_captures([str(tmp_path / "c.pcap")], []), analysis))
    return found, analysis


def plain_attempts(found: list[Diagnosis]) -> list[Diagnosis]:
    return [d for d in found if d.attempt.request_head is not None
            and not d.attempt.request_head.headers.has("upgrade")]


def test_plain_404_promoted_when_its_path_upgrades_later(tmp_path: Path) -> None:
    found, analysis = run(tmp_path, plain(50001, 1_700_000_000), upgrade(50002, 1_700_000_001),
                          upgrade(50003, 1_700_000_002))
    assert len(found) == 3
    # decided when the first upgrade request appeared (before that upgrade's own attempt,
    # which waits for its switch to be watched)
    assert [d.attempt.client.port for d in found] == [50001, 50002, 50003]
    (d,) = plain_attempts(found)
    assert d.verdict.value == "failed"
    assert [f.check for f in d.findings] == ["request_without_upgrade", "response_not_found"]
    assert d.primary is not None
    assert d.primary.found == "plain GET /chat, where 1 other request in this capture upgrades"
    assert analysis.stats.ordinary_exchanges == 0


def test_plain_404_after_upgrades_is_promoted_at_once_with_the_count(tmp_path: Path) -> None:
    found, _ = run(tmp_path, upgrade(50002, 1_700_000_000), upgrade(50003, 1_700_000_001),
                   plain(50001, 1_700_000_002))
    (d,) = plain_attempts(found)
    assert d.primary is not None and d.primary.check == "request_without_upgrade"
    assert "where 2 other requests in this capture upgrade" in d.primary.found


def test_plain_404_to_a_usual_websocket_path_is_an_attempt_without_upgrades(
    tmp_path: Path,
) -> None:
    found, _ = run(tmp_path, plain(50001, 1_700_000_000, path="/ws"))
    (d,) = found
    assert d.verdict.value == "failed"
    assert d.primary is not None and d.primary.check == "request_without_upgrade"
    assert d.primary.found == "plain GET /ws, a usual WebSocket path"


def test_query_is_not_part_of_the_path(tmp_path: Path) -> None:
    found, _ = run(tmp_path, plain(50001, 1_700_000_000, path="/chat?room=1"),
                   upgrade(50002, 1_700_000_001, path="/chat?room=2"))
    assert len(plain_attempts(found)) == 1


# --- near misses ----------------------------------------------------------------------------


def test_plain_404_on_a_path_never_upgraded_stays_ordinary(tmp_path: Path) -> None:
    found, analysis = run(tmp_path, plain(50001, 1_700_000_000), plain(50002, 1_700_000_001))
    assert found == []
    assert analysis.stats.ordinary_exchanges == 2


def test_plain_404_on_another_path_stays_ordinary(tmp_path: Path) -> None:
    found, analysis = run(tmp_path, plain(50001, 1_700_000_000, path="/index.html"),
                          upgrade(50002, 1_700_000_001))
    assert plain_attempts(found) == []
    assert analysis.stats.ordinary_exchanges == 1


def test_plain_404_on_another_server_port_stays_ordinary(tmp_path: Path) -> None:
    found, _ = run(tmp_path, plain(50001, 1_700_000_000, server=("10.0.0.2", 8001)),
                   upgrade(50002, 1_700_000_001))
    assert plain_attempts(found) == []


def test_plain_200_on_an_upgraded_path_stays_ordinary(tmp_path: Path) -> None:
    found, analysis = run(tmp_path, plain(50001, 1_700_000_000, answer=OK_PAGE),
                          upgrade(50002, 1_700_000_001), plain(50003, 1_700_000_002,
                                                               path="/ws", answer=OK_PAGE))
    assert plain_attempts(found) == []
    assert analysis.stats.ordinary_exchanges == 2


def test_engineio_polls_answered_400_stay_ordinary(tmp_path: Path) -> None:
    # long polling shares /socket.io/ with the WebSocket upgrade and is plain by design
    poll = "/socket.io/?EIO=4&transport=polling&sid=abc"
    found, analysis = run(tmp_path, upgrade(50002, 1_700_000_000, path="/socket.io/?EIO=4&"
                                            "transport=websocket&sid=abc"),
                          plain(50001, 1_700_000_001, path=poll))
    assert plain_attempts(found) == []
    assert analysis.stats.ordinary_exchanges == 1


def test_usual_websocket_paths() -> None:
    for path in ("/ws", "/ws/", "/api/WebSocket", "/cable", "/phoenix/socket/websocket"):
        assert is_websocket_path(path), path
    for path in ("/", "/wsx", "/news", "/socket.io/", "/ws/room/1"):
        assert not is_websocket_path(path), path


# --- bounds -----------------------------------------------------------------------------------


def _attempt(port: int) -> Attempt:
    return Attempt(AttemptKind.HTTP, Endpoint(b"\x0a\0\0\x01", port),
                   Endpoint(b"\x0a\0\0\x02", 80), TcpFacts())


def test_held_exchanges_are_bounded_and_the_oldest_path_goes_first() -> None:
    table = PlainRejections(max_held=3, max_paths=2)
    built: list[int] = []

    def builder(port: int) -> Callable[[Promotion], Attempt]:
        def build(promotion: Promotion) -> Attempt:
            built.append(port)
            return _attempt(port)
        return build

    for port, path in ((1, "/a"), (2, "/a"), (3, "/b"), (4, "/c")):
        assert table.hold((b"\x0a\0\0\x02", 80, path), builder(port)) is None
    assert built == []  # nothing is built while held
    assert table.upgraded((b"\x0a\0\0\x02", 80, "/a")) == []  # /a was the oldest: dropped
    assert [a.client.port for a in table.upgraded((b"\x0a\0\0\x02", 80, "/c"))] == [4]
    assert built == [4]
    # two upgrade counts are remembered: /a and /c; a third path pushes /a out
    table.upgraded((b"\x0a\0\0\x02", 80, "/d"))
    assert table.hold((b"\x0a\0\0\x02", 80, "/a"), builder(5)) is None
    promoted = table.hold((b"\x0a\0\0\x02", 80, "/c"), builder(6))
    assert promoted is not None and built == [4, 6]
    assert MAX_HELD >= 256


def test_jsonl_streams_the_promoted_attempt(tmp_path: Path) -> None:
    write_pcap(tmp_path / "c.pcap", [plain(50001, 1_700_000_000), upgrade(50002, 1_700_000_001)])
    result = run_cli("read", tmp_path / "c.pcap", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [line["reasons"][0] if line["reasons"] else None for line in lines] == [
        "request_without_upgrade", None]
    assert lines[0]["path"] == "/chat" and lines[0]["status"] == 404


def test_a_long_path_is_remembered_by_a_digest_and_its_last_segment() -> None:
    """A path past MAX_KEPT_PATH is not kept whole (a head may be 64 KiB): its key is a digest
    that tells two long paths apart and keeps the last segment `is_websocket_path` reads."""
    from analyzer.exchange.relevance import MAX_KEPT_PATH, path_key

    server = (b"\x7f\x00\x00\x01", 80)
    long_ws = "/" + "a" * 8000 + "/ws"
    other = "/" + "a" * 7999 + "b/ws"
    key, other_key = path_key(server, long_ws + "?x=1"), path_key(server, other)
    assert key is not None and other_key is not None
    assert len(key[2]) < MAX_KEPT_PATH and key != other_key
    assert key == path_key(server, long_ws)  # the query is not part of it
    assert is_websocket_path(key[2]) and is_websocket_path(long_ws)
    long_plain = "/" + "a" * 8000 + "/chat"
    plain_key = path_key(server, long_plain)
    assert plain_key is not None and not is_websocket_path(plain_key[2])
    assert path_key(server, "/short/ws") == (*server, "/short/ws")


@pytest.mark.parametrize(("destination", "listed"), [("image", False), ("document", True),
                                                     (None, True)])
def test_a_browsers_own_fetch_answered_426_is_no_attempt(tmp_path: Path,
                                                         destination: str | None,
                                                         listed: bool) -> None:
    """Chromium fetches a page's favicon by itself (Sec-Fetch-Dest: image); a WebSocket-only
    server answers it 426, which was listed as a failed WebSocket attempt with a line Chrome
    never printed (the sweep of the thirtieth session). The near misses: the address bar's
    request (document) and a tool's, which are plain requests to a WebSocket endpoint."""
    conv = Conversation(("10.0.0.1", 51000), SERVER)
    conv.handshake()
    fields = [("Host", "app.example"), ("User-Agent", "Mozilla/5.0 Chrome/156.0")]
    if destination is not None:
        fields.append(("Sec-Fetch-Dest", destination))
    conv.client(http_request("GET", "/favicon.ico", fields))
    conv.server(http_response(426, "Upgrade Required", [("Upgrade", "websocket"),
                                                       ("Content-Length", "0")]), delay=0.002)
    conv.client_fin(0.01)
    found, analysis = run(tmp_path, conv)
    assert len([d for d in found if isinstance(d, Diagnosis)]) == int(listed)
    assert analysis.stats.ordinary_exchanges == int(not listed)
