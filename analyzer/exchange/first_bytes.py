"""What a TCP direction starts with: the one classifier every stage asks (HTTP/1, HTTP/2, TLS...).

The tracker asks it for the first bytes of each direction to pick the stage that reads the
connection (HTTP/1 itself, or the TLS or HTTP/2 stage through a hand-off, see ``handoff.py``);
the checks ask it to name what answered instead of HTTP/1 ("an HTTP/2 SETTINGS frame", "a TLS
alert record"). Deciding needs a few bytes at most, except for HTTP/1, whose start line is
recognised by ``http.start.classify_start``.
"""

from __future__ import annotations

from enum import Enum

from analyzer.http.start import StartRead, classify_start, read_start

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4
H2_SETTINGS = 0x4
_H2_FRAME_TYPES = range(0x0, 0xA)  # DATA..CONTINUATION (RFC 9113 §6)

# RFC 8446 §5.1 / RFC 5246 §6.2.1: ContentType change_cipher_spec(20), alert(21), handshake(22),
# application_data(23); ProtocolVersion 0x0300 (SSL 3.0, still used in ClientHello records by
# some clients) to 0x0304.
TLS_CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}
_TLS_VERSIONS = range(0x00, 0x05)
_SSH = b"SSH-"  # RFC 4253 §4.2: the identification string


class Start(Enum):
    NEED_MORE = "need_more"  # too few bytes to say
    HTTP1_REQUEST = "http1_request"
    HTTP1_RESPONSE = "http1_response"
    H2_PREFACE = "h2_preface"  # the HTTP/2 client connection preface (prior knowledge, h2c)
    H2_FRAMES = "h2_frames"  # a SETTINGS frame on stream 0: an HTTP/2 server speaking first
    TLS = "tls"  # a TLS record header (a ClientHello, or a server's alert or handshake)
    SSH = "ssh"  # an SSH identification string
    OTHER = "other"


# The members as module names for classify_first_bytes, run on every connection's first bytes:
# on Python 3.11 each `Start.X` goes through the Enum metaclass (≈ 100 ns, as in tracker.py).
_NEED_MORE, _TLS, _OTHER, _H2_PREFACE, _H2_FRAMES, _SSH_KIND, _HTTP1_REQUEST, _HTTP1_RESPONSE = (
    Start.NEED_MORE, Start.TLS, Start.OTHER, Start.H2_PREFACE, Start.H2_FRAMES, Start.SSH,
    Start.HTTP1_REQUEST, Start.HTTP1_RESPONSE,
)


_KINDS = {"request": _HTTP1_REQUEST, "response": _HTTP1_RESPONSE, "need_more": _NEED_MORE,
          "not_http": _OTHER}


def classify_first_bytes(prefix: bytes | bytearray) -> Start:
    """What ``prefix``, the first bytes of one direction, begins. NEED_MORE only while it could
    still become more than one kind; the answer never changes once it is not NEED_MORE."""
    if not prefix:
        return _NEED_MORE
    first = prefix[0]
    if first in TLS_CONTENT_TYPES:
        if len(prefix) < 3:
            return _NEED_MORE
        return _TLS if prefix[1] == 0x03 and prefix[2] in _TLS_VERSIONS else _OTHER
    if first == 0x50:  # "P": the HTTP/2 preface, or an HTTP/1 method such as POST or PUT
        head = bytes(prefix[: len(H2_PREFACE)])
        if H2_PREFACE.startswith(head):
            return _H2_PREFACE if len(head) >= 5 else _NEED_MORE  # "PRI *"
    if first == 0x00:  # an HTTP/2 frame header: a 24-bit length starting with a zero byte
        if len(prefix) < 9:
            return _NEED_MORE
        if prefix[3] == H2_SETTINGS and prefix[5:9] == b"\0\0\0\0":
            return _H2_FRAMES
        return _OTHER
    if first == 0x53 and _SSH.startswith(bytes(prefix[:4])):
        return _SSH_KIND if len(prefix) >= 4 else _NEED_MORE
    return _KINDS[classify_start(prefix)]


def read_first_bytes(prefix: bytes | bytearray, so_far: StartRead | None
                     ) -> tuple[Start, StartRead | None]:
    """``classify_first_bytes(prefix)`` (its plain twin, compared in tests/test_first_bytes.py),
    and while that is NEED_MORE for an HTTP/1 start line still growing, where the line was
    left (http/start.py `read_start`), for the next call's ``so_far``: a line sent a byte at
    a time is read on, not read whole at every byte. The other protocols are told by their
    first bytes, all within the HTTP/2 preface's length: until then the prefix is read whole
    (a prefix that was an HTTP/1 line still growing past it is none of them)."""
    if so_far is None or so_far.length < len(H2_PREFACE):
        kind = classify_first_bytes(prefix)
        if kind is not _NEED_MORE:
            return kind, None
        return kind, read_start(prefix, so_far)[1]
    start, left = read_start(prefix, so_far)
    return _KINDS[start], left


def describe_start(kind: Start, prefix: bytes | bytearray) -> str:
    """The first bytes in words, for a finding's "found" ("an HTTP/2 SETTINGS frame")."""
    if kind is Start.TLS:
        name = TLS_CONTENT_TYPES.get(prefix[0], "unknown")
        return f"a TLS {name.replace('_', ' ')} record"
    if kind is Start.H2_PREFACE:
        return "the HTTP/2 client preface"
    if kind is Start.H2_FRAMES:
        return "an HTTP/2 SETTINGS frame"
    if kind is Start.SSH:
        banner = bytes(prefix[:64]).split(b"\r", 1)[0].split(b"\n", 1)[0]
        return f"an SSH banner {banner.decode('ascii', 'backslashreplace')!r}"
    if kind is Start.HTTP1_REQUEST:
        return "an HTTP/1.x request"
    if kind is Start.HTTP1_RESPONSE:
        return "an HTTP/1.x response"
    head = bytes(prefix[:4])
    if head in (b"220 ", b"220-"):
        return "an SMTP greeting"
    if head.upper() in (b"EHLO", b"HELO"):
        return "SMTP"
    shown = " ".join(f"{b:02x}" for b in prefix[:8])
    return f"{len(prefix)}+ bytes of another protocol ({shown}{' ...' if len(prefix) > 8 else ''})"
