"""`exchange.pending.message` against its plain twin, the frozen ``Message(...)``: the same
value, of the same hash and repr, for requests and responses, with and without their bodies'
fields (the whole run's Messages are compared through the outputs: notes/identity.sh)."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from analyzer.exchange.model import Message
from analyzer.exchange.pending import message, message_plain
from analyzer.http.head import parse_request_head, parse_response_head

REQUEST = (b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
RESPONSE = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\n"


@pytest.mark.parametrize("args", [
    (1, 2, 0.5),
    (7, 7, 1.25, b"forbidden", 9, True),
    (3, 4, 2.0, b"cut", 100, False, True),
    (3, 3, 2.0, b"", 0, True, False),
])
@pytest.mark.parametrize("raw", [REQUEST, RESPONSE])
def test_message_is_the_frozen_message(raw: bytes, args: tuple[object, ...]) -> None:
    head = parse_request_head(raw) if raw.startswith(b"GET") else parse_response_head(raw)
    plain = Message(head, *args)  # type: ignore[arg-type]
    for make in (message, message_plain):  # the compiled one (when built) and Python's
        fast = make(head, *args)  # type: ignore[arg-type]
        assert type(fast) is Message
        assert fast == plain and hash(fast) == hash(plain) and repr(fast) == repr(plain)
        assert pickle.loads(pickle.dumps(fast)) == plain
        assert dataclasses.replace(fast, time=plain.time) == plain

