"""HTTP/2 bytes for test conversations: frames built by hand, header blocks by hpack.

Hand-built on purpose: endpoints (the h2 library) refuse to send the broken requests and
answers the checks must recognise (``:protocol`` without the server's setting, Upgrade in
HTTP/2, a 101). One HPACK encoder per direction, as on a real connection.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
ENABLE_CONNECT_PROTOCOL = 0x8
REFUSED_STREAM, CANCEL, PROTOCOL_ERROR, NO_ERROR, INTERNAL_ERROR = 0x7, 0x8, 0x1, 0x0, 0x2

Fields = list[tuple[str, str]]


def frame(kind: int, flags: int, stream: int, body: bytes = b"") -> bytes:
    n = len(body)
    return struct.pack(">HBBBL", n >> 8, n & 0xFF, kind, flags, stream) + body


def settings(values: Iterable[tuple[int, int]] = (), ack: bool = False) -> bytes:
    body = b"".join(struct.pack(">HL", i, v) for i, v in values)
    return frame(SETTINGS, ACK if ack else 0, 0, body)


def rst_stream(stream: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream, struct.pack(">L", code))


def goaway(last_stream: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">LL", last_stream, code) + debug)


def data(stream: int, payload: bytes, end_stream: bool = False) -> bytes:
    return frame(DATA, END_STREAM if end_stream else 0, stream, payload)


class H2Conversation:
    """The HPACK state of one connection: encodes each side's header blocks in order."""

    def __init__(self) -> None:
        self._encoders = {True: hpack.Encoder(), False: hpack.Encoder()}

    def headers(self, from_client: bool, stream: int, fields: Fields,
                end_stream: bool = False) -> bytes:
        block = self._encoders[from_client].encode(fields)
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        return frame(HEADERS, flags, stream, block)


def websocket_connect(path: str = "/chat", *, protocol: str = "websocket",
                      extra: Fields | None = None, omit: Iterable[str] = ()) -> Fields:
    """An RFC 8441 extended CONNECT, as browsers send it."""
    fields = [(":method", "CONNECT"), (":protocol", protocol), (":scheme", "https"),
              (":path", path), (":authority", "example.com"),
              ("sec-websocket-version", "13"), ("origin", "https://example.com"),
              ("user-agent", "Mozilla/5.0 Chrome/126.0")]
    fields += extra or []
    return [f for f in fields if f[0] not in set(omit)]
