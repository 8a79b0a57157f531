"""uvicorn's refusals of a WebSocket handshake, with each of its WebSocket back ends: an ASGI
application that sends a denial response (``websocket.http.response.start``, the ASGI
WebSocket Denial Response extension: a 401 with headers and a body of its own, and one with
neither) and one that closes before accepting (uvicorn answers 403). Real uvicorn on
127.0.0.1, python websockets as the client, captured with tcpdump on ``lo``: the attempt is
attributed to uvicorn and its back end, and the predicted log line is in what uvicorn logged
(attribution/texts.py `_uvicorn_denial`, SHAPES)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import analyze_pcap
from tests.test_h2_live import HOST, _free_port, _stop, _wait_listening, tcpdump
from tests.test_h2_live import pytestmark as _live_marks

pytest.importorskip("uvicorn", reason="needs uvicorn (setup.cfg's test extra)")
websockets_client = pytest.importorskip("websockets.sync.client")
pytestmark = _live_marks

APP = r'''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()  # websocket.connect
    if scope["path"] == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "websocket.http.response.body", "body": b"unauthorized"})
    elif scope["path"] == "/deny-bare":
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b""})
    else:
        await send({"type": "websocket.close", "code": 1008})
'''
PATHS = {"/deny": "response_unauthorized", "/deny-bare": "response_unauthorized",
         "/close": "ws_rejected_before_accept"}


@pytest.mark.parametrize("backend", ["websockets", "websockets-sansio", "wsproto"])
def test_uvicorns_refusals_are_attributed_to_it_with_its_log(tmp_path: Path,
                                                             backend: str) -> None:
    (tmp_path / "denying.py").write_text(APP)
    port = _free_port()
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "denying:app", "--app-dir", str(tmp_path),
             "--host", HOST, "--port", str(port), "--ws", backend],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    path = tmp_path / "uvicorn.pcap"
    try:
        _wait_listening(port, server)
        with tcpdump(path, [port]):
            for target in PATHS:
                with pytest.raises(Exception, match="server rejected WebSocket connection"), \
                        websockets_client.connect(f"ws://{HOST}:{port}{target}", open_timeout=5):
                    pass
    finally:
        _stop(server, signal.SIGTERM)
    logged = log.read_text(errors="replace")
    found = [d for d in analyze_pcap(path) if d.attempt.request_head is not None]
    assert [d.attempt.request_head.target for d in found if d.attempt.request_head] == list(
        PATHS), found
    for diagnosis in found:
        target = diagnosis.attempt.request_head.target if diagnosis.attempt.request_head \
            else ""
        assert diagnosis.primary is not None and diagnosis.primary.check == PATHS[target]
        who = diagnosis.attribution
        assert who.server == f"uvicorn ({backend})", (target, who)
        assert who.server_log is not None, who
        for part in who.server_log.split(" / "):  # (its access line, its own line after)
            assert part in logged, (part, logged)
