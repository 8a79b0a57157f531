"""What a keepalive ping is on a WebSocket: a Ping frame (RFC 6455 §5.5.2), or Engine.IO's
ping packet, the text "2" that the peer must answer with "3" (engine.io-protocol)."""

from __future__ import annotations

from analyzer.websocket.frames import WsFrame

_PING, _TEXT = 0x9, 0x1
EIO_PING = b"2"


def engineio_pinger(target: str) -> str:
    """Which side sends Engine.IO's pings on a WebSocket to ``target``: the server from
    protocol 4 on ("2", answered "3"), the client in protocol 3; "" when not Engine.IO."""
    if "transport=websocket" not in target:
        return ""
    if "EIO=4" in target:
        return "server"
    return "client" if "EIO=3" in target else ""


# Words of a Close reason that name a keepalive giving up (tornado: 1000 'ping timed out';
# python websockets and uvicorn: 1011 'keepalive ping timeout')
_GAVE_UP = ("ping", "pong", "timeout", "timed out", "keepalive", "keep-alive", "heartbeat")


def close_fits_keepalive(code: int | None, reason: str) -> bool:
    """Whether a Close can be a keepalive that gave up: any but a normal one (1000, 1001),
    or a normal one whose reason says so. wstunnel's client pings, and ends its tunnels with
    a plain Close 1000 while a quiet server has not answered yet (zeek's wstunnel-ssh
    capture): a normal end, not a timeout. Socket.IO's server closes with no code."""
    if code not in (1000, 1001):
        return True
    lowered = reason.lower()
    return any(word in lowered for word in _GAVE_UP)


def is_keepalive_ping(ws: WsFrame, eio: bool) -> bool:
    """A Ping, or (``eio``: its side sends Engine.IO's pings) a text frame "2"."""
    if ws.opcode == _PING:
        return True
    return (eio and ws.opcode == _TEXT and ws.fin and not ws.rsv and ws.length == 1
            and ws.payload_prefix == EIO_PING)
