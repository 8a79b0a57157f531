"""Reading a WebSocket Close frame at the very end of a direction's last bytes."""

from __future__ import annotations

_CLOSE = 0x88  # FIN + opcode 8 (RFC 6455 §5.5.1)


def close_at_end(tail: bytes) -> tuple[int | None, str] | None:
    """(code, reason) of a Close frame that ends exactly where ``tail`` ends, or None.

    The tail starts anywhere inside the stream, so frame boundaries are unknown: a Close
    frame is recognised by its first byte and a length that reaches the end exactly (a
    control frame's payload is at most 125 bytes, RFC 6455 §5.5). The code is None for a
    Close without one (RFC 6455 §7.1.5: 1005 is reported then, never sent). Bytes inside a
    data frame can look like a Close frame; a code outside 1000-4999 rules a candidate out."""
    size = len(tail)
    start = max(size - 131, 0)
    at = tail.rfind(b"\x88", start)
    while at >= 0:
        if at + 2 <= size:
            second = tail[at + 1]
            masked, length = second & 0x80, second & 0x7F
            header = 2 + (4 if masked else 0)
            if length <= 125 and at + header + length == size:
                payload = tail[at + header:]
                if masked:
                    key = tail[at + 2:at + 6]
                    payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
                if len(payload) < 2:
                    return None, ""
                code = int.from_bytes(payload[:2], "big")
                if 1000 <= code <= 4999:  # else not a Close frame (RFC 6455 §7.4.2): go on
                    return code, payload[2:].decode("utf-8", "replace")
        at = tail.rfind(b"\x88", start, at) if at > start else -1
    return None
