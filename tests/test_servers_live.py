"""Who answered a refused handshake, and what it logged, read from real servers on ``lo``:
tornado and python websockets (its ``process_request`` hook), each started with its log on
stderr, sent raw requests by the test, captured by tcpdump and read by the whole pipeline.
The attribution must name the server and predict the line the server itself logged (the
sweep of the thirtieth session found tornado's answers attributed to Spring, B8)."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.verdict import Diagnosis
from tests.helpers import analyze_pcap
from tests.test_h2_live import HOST, _free_port, _stop, _wait_listening, tcpdump
from tests.test_h2_live import pytestmark as _live_marks

pytest.importorskip("tornado")
pytestmark = _live_marks

# A tornado application with one WebSocketHandler at /ws (its default check_origin refuses
# another host's Origin), logging with logging's basic format on stderr.
TORNADO_APP = r"""
import asyncio, logging, sys
import tornado.web, tornado.websocket

logging.basicConfig(level=logging.INFO)


class Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, message):
        self.write_message(message)


async def main():
    tornado.web.Application([("/ws", Echo)]).listen(int(sys.argv[1]), "127.0.0.1")
    await asyncio.sleep(60)

asyncio.run(main())
"""


@contextlib.contextmanager
def _server(code: str, stderr: Path) -> Iterator[int]:
    port = _free_port()
    with stderr.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-c", code, str(port)],
                                   stdout=subprocess.DEVNULL, stderr=log,
                                   start_new_session=True)
        try:
            _wait_listening(port, process)
            yield port
        finally:
            _stop(process)


def _ask(port: int, request: bytes) -> bytes:
    """Sends one request on its own connection; the response head and its body (by its
    Content-Length), read for at most 5 s."""
    with socket.create_connection((HOST, port), 5) as sock:
        sock.settimeout(5)
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            head, sep, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if sep and len(body) >= (int(length.group(1)) if length else 0):
                break
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def _request(port: int, path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_HANDSHAKE = ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13")


def _by_path(path: Path) -> dict[str, Diagnosis]:
    return {d.attempt.request_head.target: d for d in analyze_pcap(path)
            if d.attempt.request_head is not None}


def test_tornado_is_named_with_its_own_access_line(tmp_path: Path) -> None:
    capture, log = tmp_path / "tornado.pcap", tmp_path / "tornado.log"
    with _server(TORNADO_APP, log) as port, tcpdump(capture, [port]):
        answers = {
            # a plain GET: 400 with Spring's words (Can "Upgrade" only to "WebSocket".)
            "/ws?plain": _ask(port, _request(port, "/ws?plain")),
            "/ws?origin": _ask(port, _request(
                port, "/ws?origin", "Upgrade: websocket", "Connection: Upgrade",
                "Origin: http://elsewhere.example", *_HANDSHAKE)),
            "/ws?connection": _ask(port, _request(
                port, "/ws?connection", "Upgrade: websocket", "Connection: keep-alive",
                *_HANDSHAKE)),
            "/nothere": _ask(port, _request(port, "/nothere", "Upgrade: websocket",
                                            "Connection: Upgrade", *_HANDSHAKE)),
        }
    logged = log.read_text()
    assert b'Can "Upgrade" only to "WebSocket".' in answers["/ws?plain"], answers
    assert b"Cross origin websockets not allowed" in answers["/ws?origin"], answers
    assert b'"Connection" must be "Upgrade".' in answers["/ws?connection"], answers
    diagnoses = _by_path(capture)
    assert set(diagnoses) == set(answers), list(diagnoses)
    for target, diagnosis in diagnoses.items():
        who = diagnosis.attribution
        assert who.server == "tornado", (target, who)
        assert who.server_log is not None, (target, who)
        # the line tornado logged, its request time aside
        pattern = re.escape(who.server_log).replace("N\\.NNms", r"\d+\.\d\dms")
        assert re.search(pattern, logged), (who.server_log, logged)
    assert diagnoses["/ws?plain"].primary is not None
    assert diagnoses["/ws?plain"].primary.check == "request_without_upgrade"
    assert diagnoses["/ws?connection"].primary is not None
    assert diagnoses["/ws?connection"].primary.check == "connection_without_upgrade"
    assert "the server said" in diagnoses["/ws?connection"].primary.found


# python websockets refusing in process_request: 503 with Retry-After (the application's own
# overload answer) and 429 (sweep30b s4: the 503 was "a gateway failed to reach the backend")
WEBSOCKETS_APP = r"""
import asyncio, http, sys
from websockets.asyncio.server import serve


def process_request(connection, request):
    if request.path == "/busy":
        response = connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "overloaded\n")
        response.headers["Retry-After"] = "30"
        return response
    if request.path == "/limit":
        response = connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "slow down\n")
        response.headers["Retry-After"] = "120"
        return response


async def handler(websocket):
    await websocket.wait_closed()


async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), process_request=process_request):
        await asyncio.sleep(60)

asyncio.run(main())
"""


def test_an_origin_servers_503_and_429_are_its_own_refusals(tmp_path: Path) -> None:
    pytest.importorskip("websockets.asyncio.server")
    capture = tmp_path / "websockets.pcap"
    with _server(WEBSOCKETS_APP, tmp_path / "websockets.log") as port, \
            tcpdump(capture, [port]):
        for path in ("/busy", "/limit"):
            answer = _ask(port, _request(port, path, "Upgrade: websocket",
                                         "Connection: Upgrade", *_HANDSHAKE))
            assert b"Retry-After" in answer, answer
    diagnoses = _by_path(capture)
    busy, limit = diagnoses["/busy"], diagnoses["/limit"]
    assert busy.attribution.server == "python websockets"
    assert busy.primary is not None and busy.primary.check == "response_service_unavailable"
    assert "from python websockets (Retry-After: 30)" in busy.primary.found
    assert limit.primary is not None and limit.primary.check == "response_rate_limited"
    assert "(Retry-After: 120)" in limit.primary.found


def test_a_server_that_closes_without_answering_is_not_guessed_from_the_close_alone(
        tmp_path: Path) -> None:
    """python websockets closes without a word on a handshake with a body (its request
    parser: "unsupported request body"), between two handshakes it answers with its own
    Server header: the silent close names nobody, not tungstenite (sweep30b B11)."""
    pytest.importorskip("websockets.asyncio.server")
    capture = tmp_path / "websockets.pcap"
    handshake = ("Upgrade: websocket", "Connection: Upgrade", *_HANDSHAKE)
    with _server(WEBSOCKETS_APP, tmp_path / "websockets.log") as port, \
            tcpdump(capture, [port]):
        assert _ask(port, _request(port, "/before", *handshake)).startswith(b"HTTP/1.1 101")
        silent = _request(port, "/body", *handshake, "Content-Length: 5") + b"hello"
        assert _ask(port, silent) == b""
        assert _ask(port, _request(port, "/after", *handshake)).startswith(b"HTTP/1.1 101")
    diagnoses = _by_path(capture)
    assert diagnoses["/before"].attribution.server == "python websockets"
    closed = diagnoses["/body"]
    assert closed.verdict.value == "no_response", closed.verdict
    assert closed.attribution.server is None, closed.attribution
