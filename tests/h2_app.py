"""An ASGI WebSocket app served by hypercorn over cleartext HTTP/2 (prior knowledge), for the
live tests: ``python -m tests.h2_app PORT`` serves 127.0.0.1:PORT until SIGTERM.

Paths: ``/echo`` accepts and echoes until the client closes; ``/deny`` closes before
accepting (hypercorn answers 403); ``/policy`` accepts and closes with 1008; any other path
answers 404 through the ``websocket.http.response`` extension.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any


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
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain\n"})
        return
    await receive()  # websocket.connect
    path = scope["path"]
    if path == "/deny":
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/policy":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1008, "reason": "policy"})
    elif path == "/echo":
        await send({"type": "websocket.accept", "subprotocol": None})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    else:
        await send({"type": "websocket.http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "websocket.http.response.body", "body": b"no such endpoint\n"})


async def main(port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.graceful_timeout = 1
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await serve(app, config, shutdown_trigger=stopped.wait)  # type: ignore[arg-type]


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
