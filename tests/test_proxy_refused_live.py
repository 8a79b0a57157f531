"""nginx in front of a WebSocket backend that is down, with real software: nothing listens on
the upstream port, so nginx's SYN to it is answered by RST and nginx answers the client 502.
Captured on ``lo`` (both legs: the client's request, nginx's refused connection, the 502) and
read as `read` reads it (correlated, the refused connection not listed without --tcp): the
cause is the refused back leg (`proxy_backend_refused`), nginx's log line is the one the
real nginx wrote to its error.log, and the refused connection's client is nginx (with --tcp),
not the end client whose library's "connection refused" lines it was given."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import matches_with_dots, nginx_conf, run_cli, start_nginx
from tests.test_h2_live import HOST, _free_port, _stop, _wait_listening, tcpdump
from tests.test_h2_live import pytestmark as _live_marks

websockets_client = pytest.importorskip("websockets.sync.client")
pytestmark = [*_live_marks,
              pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")]


@contextlib.contextmanager
def nginx_proxy(tmp: str, port: int, backend: int) -> Iterator[Path]:
    """nginx on ``port`` proxying WebSockets (the usual three lines) to 127.0.0.1:``backend``,
    stopped by its PID; yields its error log's path."""
    conf = Path(tmp, "nginx.conf")
    conf.write_text(nginx_conf(tmp, f"""        listen {HOST}:{port};
        location /ws {{
            proxy_pass http://{HOST}:{backend};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }}"""))
    process = start_nginx(tmp, conf)
    try:
        _wait_listening(port, process)
        yield Path(tmp, "error.log")
    finally:
        _stop(process, signal.SIGQUIT)


def _opening(port: int) -> str:
    """What python websockets raised opening ws://127.0.0.1:``port``/ws."""
    with pytest.raises(Exception) as failed, websockets_client.connect(
            f"ws://{HOST}:{port}/ws", open_timeout=5):
        pass
    return f"{type(failed.value).__name__}: {failed.value}"


def test_nginx_502_for_a_refused_backend_names_the_refused_leg_and_nginxs_line() -> None:
    port, backend = _free_port(), _free_port()  # (nothing listens on the backend's port)
    with tempfile.TemporaryDirectory(prefix="proxy-refused-") as tmp:
        path = Path(tmp, "refused.pcap")
        with nginx_proxy(tmp, port, backend) as error_log, tcpdump(path, [port, backend]):
            printed = _opening(port)
        logged = [line.split(": *", 1)[1].split(" ", 1)[1]
                  for line in error_log.read_text().splitlines()
                  if "while connecting to upstream" in line]
        report = run_cli("read", path, "-F", "json").output
        with_tcp = run_cli("read", path, "-F", "json", "--tcp").output
    assert printed == "InvalidStatus: server rejected WebSocket connection: HTTP 502", printed
    assert len(logged) == 1 and "(111: Connection refused)" in logged[0], logged

    # as `read` reports it: the refused connection is not listed, yet it is the cause
    (front,) = json.loads(report)["attempts"]
    assert front["status"] == 502 and front["reasons"][0] == "proxy_backend_refused", front
    (finding,) = [f for f in front["findings"] if f["id"] == "proxy_backend_refused"]
    assert finding["found"].startswith(f"{HOST}:{backend} refused the proxy's connection")
    attribution = front["attribution"]
    assert attribution["server"] == "nginx"
    assert matches_with_dots(attribution["server_log"], logged[0]), (
        attribution["server_log"], logged)
    assert "python websockets: server rejected WebSocket connection: HTTP 502" in \
        attribution["client_errors"]

    # with --tcp it is listed: nginx's back leg, nginx its client, no client's lines
    attempts = json.loads(with_tcp)["attempts"]
    (back,) = [a for a in attempts if a["server"] == f"{HOST}:{backend}"]
    assert back["verdict"] == "refused" and "proxy_back_leg" in back["reasons"], back
    assert back["attribution"]["client"] == f"proxy at {HOST}:{port}"
    assert back["attribution"]["client_errors"] == []
