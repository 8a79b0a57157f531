"""The WebSocket opening handshake computations (RFC 6455 §4)."""

from __future__ import annotations

import base64

try:  # CPython's own SHA-1: hashlib's loads OpenSSL first (≈ 11 M instructions, ≈ 2 ms)
    from _sha1 import sha1
except ImportError:  # a Python built without it (some distributions keep only OpenSSL's)
    from hashlib import sha1

# RFC 6455 §1.3: the server concatenates the key "with the Globally Unique Identifier (GUID,
# [RFC4122]) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" in string form".
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for_key(key: str) -> str:
    """The Sec-WebSocket-Accept a server must send for the client's Sec-WebSocket-Key.

    RFC 6455 §4.2.2: "concatenation of the Sec-WebSocket-Key [...] value (as a string, not
    base64-decoded) with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" [...] this concatenated
    value to obtain a 20-byte value and base64-encoding"; §4.1 takes the key "with leading and
    trailing whitespace removed".
    """
    # Header values are latin-1 decoded, so encoding back gives the bytes that were hashed on the
    # wire, even for a malformed non-ASCII key.
    material = (key.strip(" \t\r\n\f\v") + WEBSOCKET_GUID).encode("latin-1")
    return base64.b64encode(sha1(material).digest()).decode("ascii")
