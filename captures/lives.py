"""The life of WebSockets after their first moments, for captures/generate.py: an idle timeout of
nginx, a server's Close 1011 after working, a normal Close 1000, and a server process killed
while it holds three connections. Every client talks past the 2 s watch window first. And the
same kind of ends within the first moments: a short idle timeout of nginx, a client killed.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from typing import Any

from generate import (
    V4,
    Expect,
    describe,
    endpoint,
    nginx,
    nginx_version,
    scenario,
    version,
    wait_for_listener,
    websockets_server,
    websockets_session,
)

PROXY = """            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";"""
# A server process killed (SIGKILL, like an OOM kill) while it holds connections.
DOOMED = """
import asyncio, sys, websockets
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with websockets.serve(echo, sys.argv[1], int(sys.argv[2]), ping_interval=None,
                                compression=None):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""
# A client process killed (SIGKILL) after one message echoed: its kernel closes the socket.
KILLED_CLIENT = """
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], ping_interval=None, compression=None) as ws:
        await ws.send("hello")
        await asyncio.wait_for(ws.recv(), 2)
        print("echoed", flush=True)
        await asyncio.sleep(30)
asyncio.run(main())
"""


async def talk(uri: str, then: str, wait: float = 10.0, delay: float = 0.0,
               messages: tuple[str, ...] = ("hello", "still here")) -> str:
    """Connects, exchanges ``messages`` (a message now and another 2.5 s later, or one), then
    ``then``: "close" (Close 1000) or "wait" (up to ``wait`` s for the server to end it);
    what happened."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    await asyncio.sleep(delay)
    started = time.monotonic()
    try:
        async with connect(uri, open_timeout=2, close_timeout=1, ping_interval=None,
                           compression=None) as ws:
            said = "connected"
            for n, message in enumerate(messages):
                await ws.send(message)
                await asyncio.wait_for(ws.recv(), 2)
                if n < len(messages) - 1:
                    await asyncio.sleep(2.5)
            said += ("; two messages echoed, 2.5 s apart" if len(messages) == 2
                     else "; one message echoed")
            if then == "close":
                return said + "; closed normally (1000)"
            try:
                await asyncio.wait_for(ws.recv(), wait)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
                return (f"{said}; then, {time.monotonic() - started:.1f} s in: "
                        f"{type(closed).__name__}: {closed} (code {code})")
            return said + "; still open"
    except Exception as exc:  # the point is to record it
        return describe(exc)


@scenario("websocket_lives", "WebSockets that worked past their first 2 s, then: nginx's "
          "proxy_read_timeout (5 s) closed a quiet one, a server closed one with 1011, a client "
          "closed one with 1000, and a killed server process ended three at once",
          (18180, 18181, 18182))
async def _lives() -> list[Expect]:
    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)
            if ws.request.path == "/crash" and message == "still here":
                await ws.close(1011, "boom")  # the application failed after working a while

    doomed = subprocess.Popen([sys.executable, "-c", DOOMED, V4, "18182"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert doomed.stdout is not None and doomed.stdout.readline() == b"ready\n"

        async def kill_later() -> str:
            await asyncio.sleep(4.5)
            doomed.send_signal(signal.SIGKILL)
            return "killed"

        async with websockets_server(V4, 18181, "lives", handler=handler) as book, \
                nginx(18180, 18181, PROXY) as log:
            await asyncio.to_thread(wait_for_listener, V4, 18180)
            said = await asyncio.gather(
                # staggered: the capture's SYNs to 18181 come in the order of the Expects
                talk(f"ws://{V4}:18180/quiet", "wait", delay=0.4),
                talk(f"ws://{V4}:18181/crash", "wait"),
                talk(f"ws://{V4}:18181/bye", "close", delay=0.2),
                *(talk(f"ws://{V4}:18182/feed", "wait", delay=n * 0.6) for n in range(3)),
                kill_later())
            await asyncio.sleep(0.3)
            proxy, backend = log(), websockets_session(book)
    finally:
        doomed.kill()
        doomed.wait(timeout=5)
    ws, server = version("websockets"), version("websockets")
    front = nginx_version() + " (proxy_read_timeout 5s) -> " + server
    return [
        Expect(endpoint(V4, 18180), "GET", "/quiet", "dropped", "idle_timeout_after_switch",
               "two messages, then 5 s of silence: nginx closed the client leg without a Close "
               "frame (the client saw 1006)", ws, front, said[0], proxy, status=101),
        Expect(endpoint(V4, 18181), "GET", "/crash", "dropped", "close_internal_error",
               "two messages, then the server's handler closed with 1011 'boom'", ws, server,
               said[1], backend, status=101),
        Expect(endpoint(V4, 18181), "GET", "/bye", "succeeded", None,
               "two messages 2.5 s apart, then the client's Close 1000 answered", ws, server,
               said[2], backend, status=101),
        Expect(endpoint(V4, 18181), "GET", "/quiet", "dropped", "closed_without_close_frame",
               "the backend leg of the same: nginx (its client) closed it without a Close frame",
               nginx_version(), server, said[0], backend, status=101),
        *(Expect(endpoint(V4, 18182), "GET", "/feed", "dropped", "server_reset_many",
                 "the server process was killed (SIGKILL) 4.5 s in, holding three connections "
                 "opened 0.6 s apart: the kernel closed them all at once, no Close frame", ws,
                 server + " (killed)", said[3 + n], "(killed: no log)", status=101)
          for n in range(3)),
    ]


@scenario("websocket_ended_early", "WebSockets that worked for a moment, then ended without a "
          "Close frame within their first 2 s: nginx's proxy_read_timeout (1 s) closed a quiet "
          "one after one message (both legs), and a client process was killed (SIGKILL) 1.2 s "
          "after connecting, after one message", (18183, 18184))
async def _ended_early() -> list[Expect]:
    async with websockets_server(V4, 18184, "early") as book, \
            nginx(18183, 18184, PROXY, read_timeout="1s") as log:
        await asyncio.to_thread(wait_for_listener, V4, 18183)
        said = await talk(f"ws://{V4}:18183/quiet", "wait", wait=3.0, messages=("hello",))
        client = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT,
                                   f"ws://{V4}:18184/killed"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(1.2)
            client.send_signal(signal.SIGKILL)
            out, _ = client.communicate(timeout=5)
        finally:
            client.kill()
            client.wait(timeout=5)
        killed = out.decode().strip() + "; then killed (SIGKILL) 1.2 s after it started"
        await asyncio.sleep(0.5)
        proxy, backend = log(), websockets_session(book)
    ws, server = version("websockets"), version("websockets")
    front = nginx_version() + " (proxy_read_timeout 1s) -> " + server
    return [
        Expect(endpoint(V4, 18183), "GET", "/quiet", "aborted",
               "ended_without_close_after_switch",
               "one message each way, then 1 s of silence: nginx closed the client leg without "
               "a Close frame within the first 2 s (the client saw 1006)", ws, front, said,
               proxy, status=101),
        Expect(endpoint(V4, 18184), "GET", "/quiet", "aborted",
               "ended_without_close_after_switch",
               "the backend leg of the same: nginx (its client) closed it without a Close "
               "frame", nginx_version(), server, said, backend, status=101),
        Expect(endpoint(V4, 18184), "GET", "/killed", "aborted",
               "ended_without_close_after_switch",
               "one message each way, then the client process was killed: its kernel closed "
               "the connection without a Close frame (the server saw 1006)", ws, server,
               killed, backend, status=101),
    ]
