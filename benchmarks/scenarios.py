"""The handshake scenarios of the benchmark captures (generate.py `handshake`): each writes one
connection's upgrade attempt, whose verdict and primary reason `SCENARIOS` gives, with its
request delivered plain, split, reordered or retransmitted (`Handshake.request`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from wire import (
    ACK,
    PSH,
    RST,
    SYN,
    Conversation,
    Tcp,
    gap,
    response,
    tcp_close,
    ws_accept,
    ws_frame,
    ws_request,
    ws_switch,
)

if TYPE_CHECKING:  # the generator's context, which imports this module
    from generate import Context


H2C_REQUEST = (b"GET /api HTTP/1.1\r\nHost: grpc.example\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
H2C_SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # empty SETTINGS frame
H2_SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


class Handshake:
    """Helpers shared by the scenarios: send a request in the chosen delivery style."""

    def __init__(self, ctx: Context, tcp: Tcp, delivery: str) -> None:
        self.ctx, self.tcp, self.delivery = ctx, tcp, delivery

    def request(self, data: bytes) -> Conversation:
        rng, tcp = self.ctx.rng, self.tcp
        if self.delivery == "plain":
            for frame in tcp.segments(0, data):
                yield gap(rng), frame
            return
        cut = rng.randrange(10, len(data) - 10)
        first, second = tcp.segments(0, data, [cut, len(data)])
        if self.delivery == "split":
            yield gap(rng), first
            yield gap(rng, 1e-3, 5e-3), second
        elif self.delivery == "reordered":
            yield gap(rng), second
            yield gap(rng, 1e-4, 1e-3), first
        else:  # retransmitted: the first segment again, as after a lost ACK
            yield gap(rng), first
            yield gap(rng), second
            yield gap(rng, 2e-1, 3e-1), first

    def reply(self, data: bytes, side: int = 1) -> Conversation:
        rng = self.ctx.rng
        yield gap(rng, 1e-4, 2e-3), self.tcp.ack(1 - side)
        for frame in self.tcp.segments(side, data):
            yield gap(rng), frame


def scenario_ws_success(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield from h.request(ws_request(key))
    yield from h.reply(ws_switch(ws_accept(key)))
    if h.ctx.mix.conversations:
        yield from _conversation(h)
    else:
        for i in range(rng.randrange(1, 5)):
            mask = rng.randbytes(4)
            yield gap(rng, 1e-3, 1e-2), tcp.seg(
                0, PSH, ws_frame(1, b'{"op":"ping","n":%d}' % i, mask))
            yield gap(rng, 1e-4, 1e-3), tcp.seg(1, PSH, ws_frame(1, b'{"op":"pong"}', None))
    yield gap(rng), tcp.seg(0, PSH, ws_frame(8, b"\x03\xe8", rng.randbytes(4)))
    yield gap(rng), tcp.seg(1, PSH, ws_frame(8, b"\x03\xe8", None))
    yield from tcp_close(tcp, rng, first=1)


def _conversation(h: Handshake) -> Conversation:
    """The dense mix's WebSocket conversation: 2 to 30 messages (text and binary, 20 B to
    4 KB, the client's masked), either side speaking, an ACK now and then. Even at 30
    messages the Close handshake that follows is within the first 32 frames after the 101,
    the watch window's frame limit (analyzer/exchange/switch.py), so the verdict stays
    ``succeeded`` / ``ws_closed_normally``."""
    rng, tcp = h.ctx.rng, h.tcp
    for _ in range(rng.randrange(2, 31)):
        side = 0 if rng.random() < 0.45 else 1
        if rng.random() < 0.7:
            payload = b'{"op":"update","seq":%d,"data":"%s"}' % (
                rng.randrange(10**6), rng.randbytes(rng.randrange(8, 400)).hex().encode())
            opcode = 1
        else:
            payload, opcode = h.ctx.filler(rng.randrange(20, 4000)), 2
        frame = ws_frame(opcode, payload, rng.randbytes(4) if side == 0 else None)
        for segment in tcp.segments(side, frame):
            yield gap(rng, 1e-4, 5e-3), segment
        if rng.random() < 0.3:
            yield gap(rng, 2e-5, 2e-4), tcp.ack(1 - side)


def scenario_plain_get_400(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key, upgrade=False))
    yield from h.reply(response(400, "Bad Request", ["Content-Type: text/plain"],
                                b'Can "Upgrade" only to "WebSocket".'))
    yield from tcp_close(h.tcp, h.ctx.rng, first=0)


def scenario_ws_version_426(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key, version="8"))
    yield from h.reply(response(426, "Upgrade Required",
                                ["Sec-WebSocket-Version: 13", "Upgrade: websocket",
                                 "Connection: Upgrade"]))
    yield from tcp_close(h.tcp, h.ctx.rng, first=0)


def scenario_ws_wrong_accept(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key))
    yield from h.reply(ws_switch(ws_accept(key[::-1])))
    yield from tcp_close(h.tcp, h.ctx.rng, first=0)


def scenario_ws_close_1008(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield from h.request(ws_request(key))
    yield from h.reply(ws_switch(ws_accept(key)))
    yield gap(rng, 1e-3, 5e-3), tcp.seg(1, PSH, ws_frame(8, b"\x03\xf0policy", None))
    yield gap(rng), tcp.seg(0, PSH, ws_frame(8, b"\x03\xf0", rng.randbytes(4)))
    yield from tcp_close(tcp, rng, first=1)


def scenario_h2c_declined(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(H2C_REQUEST)
    yield from h.reply(response(200, "OK", ["Content-Type: application/json"], b'{"ok":true}'))
    yield from tcp_close(h.tcp, h.ctx.rng, first=0)


def scenario_h2c_success(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield from h.request(H2C_REQUEST)
    yield from h.reply(H2C_SWITCH + H2_SETTINGS)
    yield gap(rng), tcp.seg(0, PSH, H2_PREFACE + H2_SETTINGS + H2_SETTINGS_ACK)
    yield gap(rng), tcp.seg(1, PSH, H2_SETTINGS_ACK + b"\x00\x00\x00\x04\x00\x00\x00\x00\x01")
    yield from tcp_close(tcp, rng, first=0)


def scenario_no_response_server_fin(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield from h.request(ws_request(key))
    yield gap(rng, 1e-3, 1e-2), tcp.ack(1)
    yield from tcp_close(tcp, rng, first=1)


def scenario_refused(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    yield gap(rng), tcp.seg(0, SYN)
    tcp.acking[1] = True
    yield gap(rng, 1e-4, 1e-3), tcp.seg(1, RST | ACK)


def scenario_syn_unanswered(h: Handshake, key: bytes) -> Conversation:
    rng, tcp = h.ctx.rng, h.tcp
    first = tcp.seg(0, SYN)
    yield gap(rng), first
    yield 1.0, first
    yield 2.0, first


def scenario_redirect_302(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key))
    yield from h.reply(response(302, "Found", ["Location: https://chat.example/chat"]))
    yield from tcp_close(h.tcp, h.ctx.rng, first=0)


def scenario_forbidden_403(h: Handshake, key: bytes) -> Conversation:
    yield from h.request(ws_request(key))
    yield from h.reply(response(403, "Forbidden", ["Content-Type: text/plain"], b"origin denied"))
    yield from tcp_close(h.tcp, h.ctx.rng, first=0)


Scenario = Callable[[Handshake, bytes], Conversation]

# name -> (function, expected verdict, expected primary reason id or None, opens with a
# three-way handshake and an HTTP request that may be split/reordered/retransmitted).
SCENARIOS: dict[str, tuple[Scenario, str, str | None, bool]] = {
    "ws_success": (scenario_ws_success, "succeeded", "ws_closed_normally", True),
    "plain_get_400": (scenario_plain_get_400, "failed", "request_without_upgrade", True),
    "ws_version_426": (scenario_ws_version_426, "failed", "ws_version_not_13", True),
    "ws_wrong_accept": (scenario_ws_wrong_accept, "failed", "ws_accept_mismatch", True),
    "ws_close_1008": (scenario_ws_close_1008, "aborted", "ws_closed_with_error", True),
    "h2c_declined": (scenario_h2c_declined, "declined", "upgrade_declined", True),
    "h2c_success": (scenario_h2c_success, "succeeded", None, True),
    "no_response_server_fin": (scenario_no_response_server_fin, "no_response",
                               "no_response_server_closed", True),
    "refused": (scenario_refused, "refused", "tcp_refused", False),
    "syn_unanswered": (scenario_syn_unanswered, "no_response", "tcp_syn_unanswered", False),
    "redirect_302": (scenario_redirect_302, "failed", "response_redirect", True),
    "forbidden_403": (scenario_forbidden_403, "failed", "response_forbidden", True),
}
DELIVERIES = ("plain", "plain", "plain", "split", "reordered", "retransmitted")
