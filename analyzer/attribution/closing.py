"""What a client's close event and exception say of a WebSocket closed right after its switch,
read from the Close frames the watch kept: the values of the "closed" lines of
attribution/client_texts.py.

Why not the finding's text: a client reports the Close it *received* (Chrome's and Node ws's
close event give its code; 1005 when it had none, 1006 when none came), and python websockets
prints both Closes in the order they went, each as ``CODE (words) reason``: "received 1008
(policy violation) why; then sent 1008 (policy violation) why" when the server closed first,
"sent 4000 (private use) bye; then received 4000 (private use) bye" when the client did (a
keepalive timeout: "sent 1011 (internal error) keepalive ping timeout; no close frame
received"). tests/test_captures.py holds these lines to what the real python websockets client
printed in the bundled captures (captures/expected.json). gorilla/websocket's ReadMessage
returns the server's Close as a CloseError ("websocket: close 1008 (policy violation): why"),
or refuses a code it does not take (tests/test_gorilla_nodews_live.py).
"""

from __future__ import annotations

from analyzer.exchange.model import AfterSwitch
from analyzer.exchange.switch import looked_frames
from analyzer.life.model import CLOSE_HANDSHAKE, Lifetime
from analyzer.websocket.frames import CloseInfo, Opcode, parse_close

_CLOSE = int(Opcode.CLOSE)

# python websockets' words for each code (websockets.frames CLOSE_CODE_EXPLANATIONS, and
# `Close.__str__`'s ranges: 3000-3999 "registered", 4000-4999 "private use", else "unknown")
_WEBSOCKETS_WORDS = {
    1000: "OK", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
    1005: "no status received [internal]", 1006: "abnormal closure [internal]",
    1007: "invalid frame payload data", 1008: "policy violation", 1009: "message too big",
    1010: "mandatory extension", 1011: "internal error", 1012: "service restart",
    1013: "try again later", 1014: "bad gateway", 1015: "TLS handshake failure [internal]",
}


# gorilla's words for each code (conn.go `CloseError.Error`), and the codes its reader takes
# (`isValidReceivedCloseCode`: any other is "bad close code N", a protocol error)
_GORILLA_WORDS = {
    1000: "normal", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
    1005: "no status", 1006: "abnormal closure", 1007: "invalid payload data",
    1008: "policy violation", 1009: "message too big", 1010: "mandatory extension missing",
    1011: "internal server error", 1015: "TLS handshake error",
}
_GORILLA_TAKES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013))
# what its ReadMessage returns when the connection ends without a Close frame
GORILLA_ABNORMAL = "websocket: close 1006 (abnormal closure): unexpected EOF"


def closing_values(after: AfterSwitch | None) -> dict[str, str]:
    """``received``: the code a client's close event gives; ``closing``: python websockets'
    ConnectionClosedError text (empty when no Close was seen); ``gorilla_closing``: gorilla's
    ReadMessage error."""
    first = ""
    closes: dict[str, CloseInfo] = {}
    if after is not None:
        for index in looked_frames(after):  # (a Close is never a usual frame)
            seen = after.frames[index]
            if seen.ws.opcode == _CLOSE and seen.side not in closes:
                closes[seen.side] = parse_close(seen.ws.payload_prefix)
                first = first or seen.side
    return _values(first, closes.get("server"), closes.get("client"))


def life_closing_values(life: Lifetime) -> dict[str, str]:
    """`closing_values` of a connection that closed with a Close frame after its watch window
    (analyzer/life): its first Close as the lifetime keeps it (code, reason, side), the other
    side's answer taken to be the same Close (a client echoes the one it received; python
    websockets and Node ws do) when the closing handshake completed."""
    close = CloseInfo(life.close_code, life.close_reason, ())
    if life.close_side == "server":
        return _values("server", close, None)
    return _values(life.close_side, close if life.how == CLOSE_HANDSHAKE else None, close)


def _values(first: str, server: CloseInfo | None, client: CloseInfo | None) -> dict[str, str]:
    """The two values, from who sent the first Close and each side's Close (None: none)."""
    received = "1006" if server is None else str(1005 if server.code is None else server.code)
    if first == "server" and server is not None:
        # (it answers a Close with the same frame: the one it sent, if the capture lost it)
        closing = f"received {_said(server)}; then sent {_said(client or server)}"
    elif first == "client" and client is not None:
        closing = f"sent {_said(client)}; " + (f"then received {_said(server)}" if server
                                               else "no close frame received")
    else:
        closing = ""
    return {"received": received, "closing": closing, "gorilla_closing": _gorilla(server)}


def _gorilla(server: CloseInfo | None) -> str:
    """What gorilla's ReadMessage returns for the server's Close (None: none came)."""
    if server is None:
        return GORILLA_ABNORMAL
    code = 1005 if server.code is None else server.code  # (an empty Close: "no status")
    if server.code is not None and code not in _GORILLA_TAKES and not 3000 <= code <= 4999:
        return f"websocket: bad close code {code}"
    words = _GORILLA_WORDS.get(code)
    said = f"websocket: close {code}" + (f" ({words})" if words else "")
    return f"{said}: {server.reason}" if server.reason else said


def _said(close: CloseInfo) -> str:
    """A Close as python websockets prints it (`Close.__str__`)."""
    code = 1005 if close.code is None else close.code
    words = ("registered" if 3000 <= code < 4000 else "private use" if 4000 <= code < 5000
             else _WEBSOCKETS_WORDS.get(code, "unknown"))
    return f"{code} ({words}) {close.reason}" if close.reason else f"{code} ({words})"
