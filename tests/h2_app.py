"""An ASGI WebSocket app served by hypercorn over cleartext HTTP/2 (prior knowledge), and an
RFC 8441 client on the h2 library, for the live tests and captures/generate.py:
``python -m tests.h2_app PORT`` serves 127.0.0.1:PORT until SIGTERM;
``python -m tests.h2_app PORT CERT KEY`` serves it over TLS (hypercorn offers ALPN h2).

Paths: ``/echo`` accepts and echoes until the client closes; ``/deny`` closes before
accepting (hypercorn answers 403); ``/policy`` accepts and closes with 1008; ``/crash`` echoes,
and closes with 1011 after echoing "still here" (an application that failed after working a
while); any other path answers 404 through the ``websocket.http.response`` extension.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import struct
import sys
import time
from typing import Any

# A page that opens a WebSocket over the page's own connection (RFC 8441 when the server
# enables it), says one message, and closes with 1000 once it is echoed
# (tests/test_chromium_tls_live.py)
CHROMIUM_PAGE = b"""<!doctype html><script>
const ws = new WebSocket("wss://" + location.host + "/echo");
ws.onopen = () => ws.send("hi");
ws.onmessage = () => ws.close(1000);
ws.onclose = e => { document.title = "closed " + e.code; };
</script>"""


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        page = scope["path"] == "/chromium.html"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html")] if page else []})
        await send({"type": "http.response.body", "body": CHROMIUM_PAGE if page else b"plain\n"})
        return
    await receive()  # websocket.connect
    path = scope["path"]
    if path == "/deny":
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/policy":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1008, "reason": "policy"})
    elif path in ("/echo", "/crash"):
        await send({"type": "websocket.accept", "subprotocol": None})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
            if path == "/crash" and message.get("text") == "still here":
                await send({"type": "websocket.close", "code": 1011, "reason": "boom"})
                return
    else:
        await send({"type": "websocket.http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"no such endpoint\n"})


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.2), payload < 126 bytes."""
    key = b"\x01\x02\x03\x04"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + masked


def extended_connect(host: str, port: int, path: str,
                     context: ssl.SSLContext | None = None, server_name: str = "",
                     linger: float = 0.0, ending: str = "close") -> str:
    """An RFC 8441 client on the h2 library: preface, the server's SETTINGS, extended CONNECT
    on stream 1 (sent whether or not the server enabled it); after a 200, one text message and
    a Close 1000. With ``context``, over TLS (the context chooses ALPN and the key log), SNI
    ``server_name``. Returns what happened: "connected: ..." when the echo came back, else the
    status or the Close the server sent, then the h2 events seen.

    ``linger`` > 0: after the echo, wait that long (past the watch window), send "still here"
    and read its echo (or the server's Close), then end by ``ending``: "close" (Close 1000 and
    END_STREAM), "reset" (RST_STREAM CANCEL), "drop" (close the socket: a TCP FIN, no
    GOAWAY), or "wait" (read until the server ends the stream, the connection or 5 s)."""
    import h2.config
    import h2.connection
    import h2.events

    h2_events = h2.events
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    seen: list[str] = []
    received = bytearray()
    scheme = "http" if context is None else "https"
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((host, port), timeout=5))
        if context is not None:
            sock = stack.enter_context(
                context.wrap_socket(sock, server_hostname=server_name or host))
            if sock.selected_alpn_protocol() != "h2":
                return f"ALPN {sock.selected_alpn_protocol()!r}, not h2"
        sock.settimeout(1.0)
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())

        def pump(until: type, limit: float = 3.0) -> bool:
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    seen.append("closed")
                    return False
                outcome: bool | None = None  # every event of the batch is taken first
                for event in conn.receive_data(data):
                    seen.append(type(event).__name__)
                    if isinstance(event, h2_events.ResponseReceived):
                        seen.append(dict(event.headers)[":status"])
                    if isinstance(event, h2_events.DataReceived):
                        received.extend(event.data)
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                    if outcome is None and isinstance(event, until | h2_events.StreamReset
                                                      | h2_events.ConnectionTerminated):
                        outcome = isinstance(event, until)
                with contextlib.suppress(OSError):
                    sock.sendall(conn.data_to_send())
                if outcome is not None:
                    return outcome
            return False

        pump(h2_events.RemoteSettingsChanged)
        conn.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"),
                              (":scheme", scheme), (":path", path),
                              (":authority", f"{host}:{port}"),
                              ("sec-websocket-version", "13"),
                              ("origin", f"{scheme}://{host}")])
        sock.sendall(conn.data_to_send())
        if pump(h2_events.ResponseReceived) and seen[-1] == "200":
            conn.send_data(1, _ws_frame(0x1, b"hello"))
            sock.sendall(conn.data_to_send())
            pump(h2_events.DataReceived, 1.0)
            if linger:
                time.sleep(linger)
                conn.send_data(1, _ws_frame(0x1, b"still here"))
                sock.sendall(conn.data_to_send())
                pump(h2_events.DataReceived, 1.0)
            if ending == "drop":
                return f"dropped the connection ({' '.join(seen)})"
            if ending == "reset":
                conn.reset_stream(1, 8)  # CANCEL (RFC 9113 §7)
                sock.sendall(conn.data_to_send())
                time.sleep(0.2)
            elif ending == "wait":
                pump(h2_events.StreamEnded, 5.0)
            else:
                conn.send_data(1, _ws_frame(0x8, struct.pack(">H", 1000)), end_stream=True)
                sock.sendall(conn.data_to_send())
                pump(h2_events.StreamEnded, 1.0)
        with contextlib.suppress(Exception):
            conn.close_connection()
            sock.sendall(conn.data_to_send())
    events = " ".join(seen)
    statuses = [s for s in seen if s.isdigit()]
    if received[:2] == b"\x81\x05" and received[2:7] == b"hello":
        return f"connected: 200, echo 'hello', Close 1000 ({events})"
    if received[:1] == b"\x88" and len(received) >= 4:
        code = struct.unpack(">H", received[2:4])[0]
        return f"HTTP/2 200, then the server sent Close {code} ({events})"
    return f"HTTP/2 {statuses[0] if statuses else 'no response'} ({events})"


async def main(port: int, cert: str = "", key: str = "") -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 1
    if cert:
        config.certfile, config.keyfile = cert, key  # ALPN h2 and http/1.1 by default
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await serve(app, config, shutdown_trigger=stopped.wait)  # type: ignore[arg-type]


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), *sys.argv[2:4]))
