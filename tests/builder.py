"""Test-side conversation builder: scripts TCP conversations and writes them as real captures.

This module is the independent side of the tests. It never imports the ``analyzer`` package:
it encodes IP/TCP/link headers with ``struct`` and writes pcap/pcapng files byte by byte, so
a bug in the analyzer's decoders cannot hide behind the same bug here.

How it works:
  * A ``Conversation`` records one TCP connection as a list of ``Segment`` values. Every send
    method (``client``, ``server``, ``client_fin``...) appends segments with the right sequence
    and acknowledgement numbers (modulo 2**32) and a timestamp in integer nanoseconds.
  * ``Conversation.segments(...)`` returns those segments, optionally transformed the way a
    network and a capture point mangle them: loss (``drop``), retransmission (``duplicate``),
    overlapping retransmission (``overlap``) and reordering (``reorder``). Transforms never
    touch sequence numbers: only which segments appear and in which order. Timestamps stay
    non-decreasing in output order, like a real capture.
  * ``pcap_bytes``/``write_pcap`` wrap each segment in a link-layer header and interleave
    several conversations by time.

Usage::

    conv = Conversation(client=("10.0.0.1", 51000), server=("10.0.0.2", 80))
    conv.handshake()
    conv.client(websocket_request("example.com", "/chat"), split=[10])
    conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.003)
    conv.client_ws_frame(Opcode.TEXT, b"hi")
    conv.client_ws_close(1000)
    conv.client_fin()
    frames = write_pcap(tmp_path / "ws.pcap", [conv], linktype="sll", reorder=7)
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import gzip as gzip_module
import hashlib
import io
import ipaddress
import itertools
import os
import random
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypedDict, Unpack

__all__ = [
    "DEFAULT_MASK_KEY",
    "DEFAULT_WS_KEY",
    "LINKTYPES",
    "WS_GUID",
    "Conversation",
    "Opcode",
    "Segment",
    "TcpFlags",
    "apply_transforms",
    "encapsulate",
    "fragment_frame",
    "http_request",
    "http_response",
    "pcap_bytes",
    "websocket_accept",
    "websocket_request",
    "websocket_response",
    "write_pcap",
    "ws_close_payload",
    "ws_frame",
]

SEQ_MOD = 2**32

# Link types by the names tests use. "vlan" and "qinq" are Ethernet (1) with 802.1Q tags.
LINKTYPES: dict[str, int] = {
    "null": 0,
    "ethernet": 1,
    "vlan": 1,
    "qinq": 1,
    "raw": 101,
    "sll": 113,
    "sll2": 276,
}
VLAN_ID = 100  # the single 802.1Q tag, and the inner tag of QinQ
QINQ_OUTER_VLAN_ID = 200  # the 802.1ad (0x88a8) service tag of QinQ

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_8021Q = 0x8100
ETHERTYPE_8021AD = 0x88A8
# BSD loopback (DLT_NULL) address families; 30 is AF_INET6 on macOS/FreeBSD-derived hosts.
NULL_AF_INET = 2
NULL_AF_INET6 = 30
# Linux cooked capture packet types: we pretend the capture runs on the client host.
SLL_HOST = 0
SLL_OUTGOING = 4
ARPHRD_ETHER = 1

PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_EPB = 0x00000006
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_OPT_ENDOFOPT = 0
PCAPNG_OPT_SHB_USERAPPL = 4
PCAPNG_OPT_IF_TSRESOL = 9

# RFC 6455 section 1.3 / 4.2.2: the GUID concatenated to Sec-WebSocket-Key.
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# RFC 6455 section 1.3 sample nonce; its accept value is "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
DEFAULT_WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
# RFC 6455 section 5.7 example masking key.
DEFAULT_MASK_KEY = b"\x37\xfa\x21\x3d"

DEFAULT_GAP = 0.001  # seconds between one send and the previous packet
SEGMENT_GAP_NS = 10_000  # 10 microseconds between segments of one send
CLIENT_WINDOW = 64240
SERVER_WINDOW = 65160
# SYN options: MSS 1460, SACK permitted, NOP, window scale 7 (what a Linux stack sends, minus
# timestamps, which nothing in this project reads).
SYN_OPTIONS = b"\x02\x04\x05\xb4" + b"\x04\x02" + b"\x01" + b"\x03\x03\x07"


class TcpFlags(enum.IntFlag):
    """TCP header flags (RFC 9293 section 3.1)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20


class Opcode(enum.IntEnum):
    """WebSocket frame opcodes (RFC 6455 section 5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


Endpoint = tuple[str, int]
Seconds = float | int | Decimal


class Transforms(TypedDict, total=False):
    """Keyword options of ``Conversation.segments`` and the writers (see ``apply_transforms``)."""

    reorder: int | None
    reorder_window: int
    duplicate: int | None
    drop: Iterable[int]
    overlap: int | None


class FrameOptions(TypedDict, total=False):
    """Keyword options of the ``*_ws_frame`` and ``*_ws_close`` methods (see ``ws_frame``)."""

    fin: bool
    rsv: int
    mask: bool | bytes | None
    length_form: int | None
    split: Sequence[int] | None
    max_segment: int | None
    delay: Seconds | None


def _to_ns(seconds: Seconds) -> int:
    """Seconds to integer nanoseconds without float rounding (repr gives the shortest form)."""
    if isinstance(seconds, float):
        seconds = Decimal(repr(seconds))
    return int(Decimal(seconds) * 1_000_000_000)


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


# --------------------------------------------------------------------------------------------
# HTTP and WebSocket payload helpers
# --------------------------------------------------------------------------------------------

Header = tuple[str | bytes, str | bytes]


def _without(headers: Iterable[Header], omit: Iterable[str]) -> list[Header]:
    dropped = {name.lower() for name in omit}
    return [(n, v) for n, v in headers if _as_bytes(n).decode("latin-1").lower() not in dropped]


def _head(start_line: bytes, headers: Iterable[Header], omit: Iterable[str]) -> bytes:
    lines = [start_line]
    lines += [_as_bytes(name) + b": " + _as_bytes(value) for name, value in _without(headers, omit)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def http_request(
    method: str = "GET",
    target: str = "/",
    headers: Iterable[Header] = (),
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
    omit: Iterable[str] = (),
) -> bytes:
    """An HTTP/1.x request, headers in the order given (no header is added implicitly)."""
    start = f"{method} {target} {version}".encode("latin-1")
    return _head(start, headers, omit) + body


def http_response(
    status: int = 200,
    reason: str = "OK",
    headers: Iterable[Header] = (),
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
    omit: Iterable[str] = (),
) -> bytes:
    """An HTTP/1.x response, headers in the order given (no header is added implicitly)."""
    start = f"{version} {status} {reason}".encode("latin-1")
    return _head(start, headers, omit) + body


def websocket_accept(key: str | bytes) -> str:
    """Sec-WebSocket-Accept for a key (RFC 6455 section 4.2.2 item 5.4)."""
    key_s = key.decode("latin-1") if isinstance(key, bytes) else key
    digest = hashlib.sha1((key_s.strip() + WS_GUID).encode("latin-1")).digest()
    return base64.b64encode(digest).decode("ascii")


def websocket_request(
    host: str,
    path: str = "/",
    *,
    key: str = DEFAULT_WS_KEY,
    version: str = "13",
    protocols: Sequence[str] = (),
    extensions: Sequence[str] = (),
    origin: str | None = None,
    extra_headers: Iterable[Header] = (),
    omit: Iterable[str] = (),
    method: str = "GET",
    http_version: str = "HTTP/1.1",
) -> bytes:
    """A WebSocket opening handshake request (RFC 6455 section 4.1).

    ``omit`` drops default headers by case-insensitive name; ``extra_headers`` are appended
    last and never omitted, so replacing a header is
    ``omit=("Upgrade",), extra_headers=[("Upgrade", "foo")]``.
    """
    headers: list[Header] = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", version),
    ]
    if origin is not None:
        headers.append(("Origin", origin))
    if protocols:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
    if extensions:
        headers.append(("Sec-WebSocket-Extensions", ", ".join(extensions)))
    headers = _without(headers, omit) + list(extra_headers)
    return http_request(method, path, headers, version=http_version)


def websocket_response(
    key: str = DEFAULT_WS_KEY,
    *,
    accept: str | None = None,
    protocol: str | None = None,
    extensions: str | None = None,
    status: int = 101,
    reason: str = "Switching Protocols",
    extra_headers: Iterable[Header] = (),
    omit: Iterable[str] = (),
    body: bytes | None = None,
    http_version: str = "HTTP/1.1",
) -> bytes:
    """A WebSocket opening handshake response (RFC 6455 section 4.2.2).

    ``accept`` defaults to the value computed from ``key``. ``body`` (for refusals such as a
    403) adds a Content-Length header and the body.
    """
    headers: list[Header] = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", websocket_accept(key) if accept is None else accept),
    ]
    if protocol is not None:
        headers.append(("Sec-WebSocket-Protocol", protocol))
    if extensions is not None:
        headers.append(("Sec-WebSocket-Extensions", extensions))
    if body is not None:
        headers.append(("Content-Length", str(len(body))))
    headers = _without(headers, omit) + list(extra_headers)
    return http_response(status, reason, headers, body or b"", version=http_version)


def ws_frame(
    opcode: int,
    payload: bytes | str = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool | bytes = False,
    length_form: int | None = None,
) -> bytes:
    """One WebSocket frame (RFC 6455 section 5.2).

    ``mask=True`` uses ``DEFAULT_MASK_KEY``; bytes give the 4-byte key. ``rsv`` is the 3-bit
    RSV1..RSV3 value (4 = RSV1). ``length_form`` forces the 7, 16 or 64-bit length encoding
    (a non-minimal form violates section 5.2); None picks the minimal one.
    """
    data = _as_bytes(payload)
    key = DEFAULT_MASK_KEY if mask is True else (mask or b"")
    if key and len(key) != 4:
        raise ValueError("a masking key is 4 bytes")
    first = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0x0F)
    mask_bit = 0x80 if key else 0
    n = len(data)
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    if form == 7:
        if n > 125:
            raise ValueError("payload too long for the 7-bit length form")
        head = struct.pack("!BB", first, mask_bit | n)
    elif form == 16:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    elif form == 64:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    else:
        raise ValueError("length_form is 7, 16 or 64")
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return head + key + data


def ws_close_payload(code: int | None = 1000, reason: bytes | str = b"") -> bytes:
    """Close frame body: 2-byte code then UTF-8 reason (RFC 6455 section 5.5.1)."""
    if code is None:
        return _as_bytes(reason)
    return struct.pack("!H", code) + _as_bytes(reason)


# --------------------------------------------------------------------------------------------
# Segments and packet encoding
# --------------------------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment as it will appear in the capture."""

    time_ns: int
    from_client: bool
    src: Endpoint
    dst: Endpoint
    seq: int
    ack: int
    flags: TcpFlags
    payload: bytes = b""
    window: int = 65535
    options: bytes = b""
    ip_id: int = 0
    index: int = -1  # position in Conversation.records; transforms keep it, copies share it
    note: str = ""  # "retransmission", "overlap"... for debugging failing tests

    @property
    def time(self) -> float:
        return self.time_ns / 1e9

    @property
    def ipv6(self) -> bool:
        return ":" in self.src[0]

    @property
    def seq_len(self) -> int:
        """Sequence space consumed: payload plus one for SYN and one for FIN."""
        return (
            len(self.payload)
            + (1 if self.flags & TcpFlags.SYN else 0)
            + (1 if self.flags & TcpFlags.FIN else 0)
        )

    @property
    def end_seq(self) -> int:
        return (self.seq + self.seq_len) % SEQ_MOD

    def tcp_bytes(self) -> bytes:
        options = self.options + b"\x00" * (-len(self.options) % 4)
        offset_flags = ((20 + len(options)) // 4) << 12 | int(self.flags)
        header = struct.pack(
            "!HHIIHHHH",
            self.src[1],
            self.dst[1],
            self.seq % SEQ_MOD,
            self.ack % SEQ_MOD,
            offset_flags,
            self.window,
            0,
            0,
        )
        segment = header + options + self.payload
        src = ipaddress.ip_address(self.src[0]).packed
        dst = ipaddress.ip_address(self.dst[0]).packed
        if self.ipv6:
            pseudo = src + dst + struct.pack("!I3xB", len(segment), 6)
        else:
            pseudo = src + dst + struct.pack("!xBH", 6, len(segment))
        csum = _checksum(pseudo + segment)
        return segment[:16] + struct.pack("!H", csum) + segment[18:]

    def ip_bytes(self) -> bytes:
        tcp = self.tcp_bytes()
        src = ipaddress.ip_address(self.src[0]).packed
        dst = ipaddress.ip_address(self.dst[0]).packed
        if self.ipv6:
            return struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + src + dst + tcp
        header = (
            struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), self.ip_id & 0xFFFF, 0x4000, 64, 6, 0)
            + src
            + dst
        )
        csum = _checksum(header)
        return header[:10] + struct.pack("!H", csum) + header[12:] + tcp

    def frame(self, linktype: str = "ethernet", *, big_endian: bool = False) -> bytes:
        return encapsulate(self, linktype, big_endian=big_endian)


def _mac(ip: str) -> bytes:
    """A stable locally-administered MAC address per IP address."""
    return b"\x02" + hashlib.sha1(ip.encode()).digest()[:5]


def encapsulate(segment: Segment, linktype: str, *, big_endian: bool = False) -> bytes:
    """The frame bytes of ``segment`` for a link type name in ``LINKTYPES``.

    ``big_endian`` only matters for "null", whose 4-byte family is in the writer's host order.
    """
    ip = segment.ip_bytes()
    ethertype = ETHERTYPE_IPV6 if segment.ipv6 else ETHERTYPE_IPV4
    src_mac, dst_mac = _mac(segment.src[0]), _mac(segment.dst[0])
    if linktype == "raw":
        return ip
    if linktype == "ethernet":
        return dst_mac + src_mac + struct.pack("!H", ethertype) + ip
    if linktype == "vlan":
        tags = struct.pack("!HH", ETHERTYPE_8021Q, VLAN_ID)
        return dst_mac + src_mac + tags + struct.pack("!H", ethertype) + ip
    if linktype == "qinq":
        tags = struct.pack("!HHHH", ETHERTYPE_8021AD, QINQ_OUTER_VLAN_ID, ETHERTYPE_8021Q, VLAN_ID)
        return dst_mac + src_mac + tags + struct.pack("!H", ethertype) + ip
    if linktype == "null":
        family = NULL_AF_INET6 if segment.ipv6 else NULL_AF_INET
        return struct.pack(">I" if big_endian else "<I", family) + ip
    packet_type = SLL_OUTGOING if segment.from_client else SLL_HOST
    if linktype == "sll":
        # packet type, ARPHRD, address length, address (8, zero padded), protocol
        return struct.pack("!HHH8sH", packet_type, ARPHRD_ETHER, 6, src_mac, ethertype) + ip
    if linktype == "sll2":
        # protocol, reserved, interface index, ARPHRD, packet type, address length, address
        header = struct.pack("!HHIHBB8s", ethertype, 0, 1, ARPHRD_ETHER, packet_type, 6, src_mac)
        return header + ip
    raise ValueError(f"unknown link type {linktype!r}; known: {sorted(LINKTYPES)}")


_fragment_ids = itertools.count(0x100)


def fragment_frame(frame: bytes, size: int, ident: int | None = None) -> list[bytes]:
    """An Ethernet frame's IP packet (IPv4, or IPv6 with a Fragment header) cut into
    fragments carrying `size` payload bytes (a multiple of 8) each, in order; the frame
    itself when its payload fits."""
    assert size % 8 == 0
    ident = next(_fragment_ids) if ident is None else ident
    eth, ip = frame[:14], frame[14:]
    if eth[12:14] == b"\x08\x00":
        hlen = (ip[0] & 15) << 2
        (total,) = struct.unpack_from("!H", ip, 2)
        payload = ip[hlen:total]
        if len(payload) <= size:
            return [frame]
        out = []
        for off in range(0, len(payload), size):
            part = payload[off : off + size]
            more = 0x2000 if off + size < len(payload) else 0
            head = (ip[:2] + struct.pack("!HHH", hlen + len(part), ident & 0xFFFF,
                                         more | off >> 3) + ip[8:hlen])
            out.append(eth + head + part)
        return out
    (plen,) = struct.unpack_from("!H", ip, 4)
    payload, nxt = ip[40 : 40 + plen], ip[6]
    if len(payload) <= size:
        return [frame]
    out = []
    for off in range(0, len(payload), size):
        part = payload[off : off + size]
        more = 1 if off + size < len(payload) else 0
        header = struct.pack("!BBHI", nxt, 0, off | more, ident)
        out.append(eth + ip[:4] + struct.pack("!HB", 8 + len(part), 44) + ip[7:40]
                   + header + part)
    return out


# --------------------------------------------------------------------------------------------
# Conversation
# --------------------------------------------------------------------------------------------


def _stable_rng(*parts: object) -> random.Random:
    return random.Random(zlib.crc32(repr(parts).encode()))


class Conversation:
    """A scripted TCP connection between a client and a server.

    Every method appends packets after the previous one; ``delay`` (seconds) is the gap before
    the first new packet, defaulting to ``gap``. Send methods return the indexes of the
    segments they appended (positions in ``records``), which ``drop=`` takes.

    Sending data without calling ``handshake()`` first behaves as if the handshake happened
    before the capture started (sequence numbers continue from ISN + 1).
    """

    def __init__(
        self,
        client: Endpoint = ("10.0.0.1", 51000),
        server: Endpoint = ("10.0.0.2", 80),
        *,
        start: Seconds = 1_700_000_000,
        isn_client: int | None = None,
        isn_server: int | None = None,
        gap: Seconds = DEFAULT_GAP,
        mss: int | None = None,
        auto_ack: bool = False,
        linktype: str | None = None,
    ) -> None:
        v_client = ipaddress.ip_address(client[0]).version
        v_server = ipaddress.ip_address(server[0]).version
        if v_client != v_server:
            raise ValueError("client and server must both be IPv4 or both IPv6")
        if linktype is not None and linktype not in LINKTYPES:
            raise ValueError(f"unknown link type {linktype!r}")
        # Normalise the address text so Segment.ipv6 and MACs are stable.
        self.client_endpoint: Endpoint = (str(ipaddress.ip_address(client[0])), client[1])
        self.server_endpoint: Endpoint = (str(ipaddress.ip_address(server[0])), server[1])
        rng = _stable_rng(self.client_endpoint, self.server_endpoint, str(start))
        self.isn_client = rng.randrange(SEQ_MOD) if isn_client is None else isn_client % SEQ_MOD
        self.isn_server = rng.randrange(SEQ_MOD) if isn_server is None else isn_server % SEQ_MOD
        self.gap_ns = _to_ns(gap)
        self.mss = mss
        self.auto_ack = auto_ack
        self.linktype = linktype
        self.records: list[Segment] = []
        self._next_seq = {
            True: (self.isn_client + 1) % SEQ_MOD,
            False: (self.isn_server + 1) % SEQ_MOD,
        }
        self._ip_id = {True: rng.randrange(0x10000), False: rng.randrange(0x10000)}
        self._stream = {True: bytearray(), False: bytearray()}
        self._start_ns = _to_ns(start)
        self._last_ns: int | None = None
        self._capture_from = 0
        self._capture_until: int | None = None

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def ipv6(self) -> bool:
        return ":" in self.client_endpoint[0]

    @property
    def client_bytes(self) -> bytes:
        """Everything the client sent so far (what reassembly of its direction should give)."""
        return bytes(self._stream[True])

    @property
    def server_bytes(self) -> bytes:
        return bytes(self._stream[False])

    def next_seq(self, from_client: bool) -> int:
        return self._next_seq[from_client]

    def _time(self, delay: Seconds | None) -> int:
        if self._last_ns is None:
            return self._start_ns + (0 if delay is None else _to_ns(delay))
        return self._last_ns + (self.gap_ns if delay is None else _to_ns(delay))

    def _emit(
        self,
        from_client: bool,
        time_ns: int,
        flags: TcpFlags,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        options: bytes = b"",
    ) -> int:
        src, dst = (
            (self.client_endpoint, self.server_endpoint)
            if from_client
            else (self.server_endpoint, self.client_endpoint)
        )
        seg = Segment(
            time_ns=time_ns,
            from_client=from_client,
            src=src,
            dst=dst,
            seq=self._next_seq[from_client] if seq is None else seq % SEQ_MOD,
            ack=self._next_seq[not from_client] if ack is None else ack % SEQ_MOD,
            flags=flags,
            payload=payload,
            window=CLIENT_WINDOW if from_client else SERVER_WINDOW,
            options=options,
            ip_id=self._ip_id[from_client],
            index=len(self.records),
        )
        self._ip_id[from_client] = (self._ip_id[from_client] + 1) & 0xFFFF
        self.records.append(seg)
        self._last_ns = time_ns
        if seq is None:
            self._next_seq[from_client] = seg.end_seq
        return seg.index

    # -- connection setup --------------------------------------------------------------------

    def _require_fresh(self, what: str) -> None:
        if self.records:
            raise RuntimeError(f"{what}() must be the first packets of the conversation")

    def handshake(self, delay: Seconds | None = None, rtt: Seconds | None = None) -> list[int]:
        """SYN, SYN-ACK, ACK; ``rtt`` (default ``gap``) separates them."""
        self._require_fresh("handshake")
        step = self.gap_ns if rtt is None else _to_ns(rtt)
        t = self._time(delay)
        syn = self._emit(True, t, TcpFlags.SYN, seq=self.isn_client, ack=0, options=SYN_OPTIONS)
        syn_ack = self._emit(
            False,
            t + step,
            TcpFlags.SYN | TcpFlags.ACK,
            seq=self.isn_server,
            ack=self.isn_client + 1,
            options=SYN_OPTIONS,
        )
        ack = self._emit(True, t + 2 * step, TcpFlags.ACK)
        return [syn, syn_ack, ack]

    def fast_open(self, payload: bytes, delay: Seconds | None = None,
                  rtt: Seconds | None = None) -> list[int]:
        """A TCP Fast Open handshake (RFC 7413): the SYN carries ``payload`` (a request, a
        ClientHello), which starts at the sequence number after the SYN's; the SYN-ACK
        acknowledges both."""
        self._require_fresh("fast_open")
        step = self.gap_ns if rtt is None else _to_ns(rtt)
        t = self._time(delay)
        syn = self._emit(True, t, TcpFlags.SYN, payload, seq=self.isn_client, ack=0,
                         options=SYN_OPTIONS)
        after = (self.isn_client + 1 + len(payload)) % SEQ_MOD
        self._next_seq[True] = after
        self._stream[True] += payload
        syn_ack = self._emit(False, t + step, TcpFlags.SYN | TcpFlags.ACK, seq=self.isn_server,
                             ack=after, options=SYN_OPTIONS)
        ack = self._emit(True, t + 2 * step, TcpFlags.ACK)
        return [syn, syn_ack, ack]

    def syn_only(self, retries: int = 0, delay: Seconds | None = None) -> list[int]:
        """An unanswered connection attempt: SYN plus ``retries`` retransmissions (1 s, 2 s...)."""
        self._require_fresh("syn_only")
        t = self._time(delay)
        out = []
        for attempt in range(retries + 1):
            at = t + (2**attempt - 1) * 1_000_000_000
            out.append(
                self._emit(True, at, TcpFlags.SYN, seq=self.isn_client, ack=0, options=SYN_OPTIONS)
            )
            if attempt:
                self.records[-1] = dataclasses.replace(self.records[-1], note="retransmission")
        return out

    def syn_rst(self, delay: Seconds | None = None, rtt: Seconds | None = None) -> list[int]:
        """A refused connection: SYN answered by RST-ACK (nothing listening on the port)."""
        self._require_fresh("syn_rst")
        step = self.gap_ns if rtt is None else _to_ns(rtt)
        t = self._time(delay)
        syn = self._emit(True, t, TcpFlags.SYN, seq=self.isn_client, ack=0, options=SYN_OPTIONS)
        rst = self._emit(
            False, t + step, TcpFlags.RST | TcpFlags.ACK, seq=0, ack=self.isn_client + 1
        )
        return [syn, rst]

    # -- data --------------------------------------------------------------------------------

    def _cuts(self, size: int, split: Sequence[int] | None, max_segment: int | None) -> list[int]:
        limit = max_segment or self.mss
        if split is not None:
            cuts = sorted(set(split))
            if any(not 0 < c < size for c in cuts):
                raise ValueError(f"split offsets must be inside (0, {size}): {split}")
        else:
            cuts = []
        bounds = [0, *cuts, size]
        if limit:
            finer = [0]
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                finer.extend(range(lo + limit, hi, limit))
                finer.append(hi)
            bounds = finer
        return bounds

    def send(
        self,
        from_client: bool,
        data: bytes | str,
        *,
        split: Sequence[int] | None = None,
        max_segment: int | None = None,
        delay: Seconds | None = None,
    ) -> list[int]:
        """Send ``data`` in one or more segments; PSH is set on the last one.

        ``split`` gives byte offsets where a new segment starts; ``max_segment`` (or the
        conversation ``mss``) caps each segment's size. Both can be combined.
        """
        payload = _as_bytes(data)
        if not payload:
            raise ValueError("nothing to send")
        bounds = self._cuts(len(payload), split, max_segment)
        t = self._time(delay)
        out = []
        pairs = list(zip(bounds, bounds[1:], strict=False))
        for i, (lo, hi) in enumerate(pairs):
            flags = TcpFlags.ACK | (TcpFlags.PSH if i == len(pairs) - 1 else 0)
            out.append(self._emit(from_client, t + i * SEGMENT_GAP_NS, flags, payload[lo:hi]))
        self._stream[from_client] += payload
        if self.auto_ack:
            self.ack(not from_client)
        return out

    def client(
        self,
        data: bytes | str,
        *,
        split: Sequence[int] | None = None,
        max_segment: int | None = None,
        delay: Seconds | None = None,
    ) -> list[int]:
        """Client sends ``data`` (see ``send``)."""
        return self.send(True, data, split=split, max_segment=max_segment, delay=delay)

    def server(
        self,
        data: bytes | str,
        *,
        split: Sequence[int] | None = None,
        max_segment: int | None = None,
        delay: Seconds | None = None,
    ) -> list[int]:
        """Server sends ``data`` (see ``send``)."""
        return self.send(False, data, split=split, max_segment=max_segment, delay=delay)

    def ack(self, from_client: bool, delay: Seconds | None = None) -> list[int]:
        """A pure ACK of everything the other side sent so far."""
        return [self._emit(from_client, self._time(delay), TcpFlags.ACK)]

    def client_ack(self, delay: Seconds | None = None) -> list[int]:
        return self.ack(True, delay)

    def server_ack(self, delay: Seconds | None = None) -> list[int]:
        return self.ack(False, delay)

    # -- WebSocket frames ------------------------------------------------------------------

    def ws_frame(
        self,
        from_client: bool,
        opcode: int,
        payload: bytes | str = b"",
        *,
        fin: bool = True,
        rsv: int = 0,
        mask: bool | bytes | None = None,
        length_form: int | None = None,
        split: Sequence[int] | None = None,
        max_segment: int | None = None,
        delay: Seconds | None = None,
    ) -> list[int]:
        """Send one WebSocket frame; ``mask`` defaults to the RFC rule (clients mask)."""
        frame = ws_frame(
            opcode,
            payload,
            fin=fin,
            rsv=rsv,
            mask=from_client if mask is None else mask,
            length_form=length_form,
        )
        return self.send(from_client, frame, split=split, max_segment=max_segment, delay=delay)

    def client_ws_frame(
        self, opcode: int = Opcode.TEXT, payload: bytes | str = b"", **options: Unpack[FrameOptions]
    ) -> list[int]:
        """Client sends a frame, masked with ``DEFAULT_MASK_KEY`` unless ``mask`` says otherwise."""
        return self.ws_frame(True, opcode, payload, **options)

    def server_ws_frame(
        self, opcode: int = Opcode.TEXT, payload: bytes | str = b"", **options: Unpack[FrameOptions]
    ) -> list[int]:
        """Server sends a frame, unmasked unless ``mask`` says otherwise."""
        return self.ws_frame(False, opcode, payload, **options)

    def client_ws_close(
        self, code: int | None = 1000, reason: bytes | str = b"", **options: Unpack[FrameOptions]
    ) -> list[int]:
        """Client sends a Close frame; ``code=None`` sends an empty close body."""
        return self.ws_frame(True, Opcode.CLOSE, ws_close_payload(code, reason), **options)

    def server_ws_close(
        self, code: int | None = 1000, reason: bytes | str = b"", **options: Unpack[FrameOptions]
    ) -> list[int]:
        """Server sends a Close frame; ``code=None`` sends an empty close body."""
        return self.ws_frame(False, Opcode.CLOSE, ws_close_payload(code, reason), **options)

    # -- teardown ----------------------------------------------------------------------------

    def fin(self, from_client: bool, delay: Seconds | None = None) -> list[int]:
        """FIN-ACK; it consumes one sequence number."""
        out = [self._emit(from_client, self._time(delay), TcpFlags.FIN | TcpFlags.ACK)]
        if self.auto_ack:
            out += self.ack(not from_client)
        return out

    def client_fin(self, delay: Seconds | None = None) -> list[int]:
        return self.fin(True, delay)

    def server_fin(self, delay: Seconds | None = None) -> list[int]:
        return self.fin(False, delay)

    def rst(
        self, from_client: bool, delay: Seconds | None = None, *, ack: bool = True
    ) -> list[int]:
        """An abortive close: RST (with ACK unless ``ack=False``) at the next sequence number."""
        flags = TcpFlags.RST | (TcpFlags.ACK if ack else 0)
        return [self._emit(from_client, self._time(delay), flags, ack=None if ack else 0)]

    def client_rst(self, delay: Seconds | None = None, *, ack: bool = True) -> list[int]:
        return self.rst(True, delay, ack=ack)

    def server_rst(self, delay: Seconds | None = None, *, ack: bool = True) -> list[int]:
        return self.rst(False, delay, ack=ack)

    # -- capture window ----------------------------------------------------------------------

    def capture_starts_mid_stream(self) -> None:
        """Leave everything recorded so far out of the capture (the capture started later)."""
        self._capture_from = len(self.records)

    def capture_stops(self) -> None:
        """Leave everything recorded from now on out of the capture (the capture ended)."""
        self._capture_until = len(self.records)

    # -- output ------------------------------------------------------------------------------

    def segments(
        self,
        *,
        reorder: int | None = None,
        reorder_window: int = 3,
        duplicate: int | None = None,
        drop: Iterable[int] = (),
        overlap: int | None = None,
    ) -> list[Segment]:
        """The captured segments in capture order, after optional transforms.

        See ``apply_transforms``; ``drop`` takes indexes into ``records`` (as returned by the
        send methods), and the capture window is applied after dropping.
        """
        dropped = set(drop)
        unknown = dropped - set(range(len(self.records)))
        if unknown:
            raise IndexError(f"no such segment index: {sorted(unknown)}")
        kept = [s for s in self.records if s.index not in dropped]
        kept = [
            s
            for s in kept
            if s.index >= self._capture_from
            and (self._capture_until is None or s.index < self._capture_until)
        ]
        return apply_transforms(
            kept,
            reorder=reorder,
            reorder_window=reorder_window,
            duplicate=duplicate,
            overlap=overlap,
        )

    def packets(
        self, linktype: str | None = None, **transforms: Unpack[Transforms]
    ) -> list[tuple[float, bytes]]:
        """``(time, frame_bytes)`` per captured segment; transforms as in ``segments``."""
        lt = linktype or self.linktype or "ethernet"
        return [(s.time, encapsulate(s, lt)) for s in self.segments(**transforms)]


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------


def _retime(ordered: list[Segment], nominal: list[int]) -> list[Segment]:
    """Give the k-th output segment the k-th smallest nominal time (captures are in time order)."""
    times = sorted(nominal)
    return [dataclasses.replace(s, time_ns=t) for s, t in zip(ordered, times, strict=True)]


def apply_transforms(
    segments: Sequence[Segment],
    *,
    reorder: int | None = None,
    reorder_window: int = 3,
    duplicate: int | None = None,
    overlap: int | None = None,
) -> list[Segment]:
    """Mangle a list of segments the way a network does; each argument is an RNG seed.

    * ``overlap``: some data segment B that directly follows A (same direction, contiguous)
      is replaced by one starting inside A: it re-sends A's tail and carries B's bytes.
    * ``duplicate``: some data segments are sent again one to three packets later.
    * ``reorder``: non-SYN segments move up to ``reorder_window`` places.

    Each transform that is asked for changes at least one segment when it can. The bytes
    covered per direction never change, so reassembly must give the original streams.
    """
    segs = list(segments)
    nominal = [s.time_ns for s in segs]

    if overlap is not None:
        rng = random.Random(overlap)
        last: dict[bool, int] = {}
        candidates: list[tuple[int, int]] = []
        for j, s in enumerate(segs):
            if not s.payload:
                continue
            i = last.get(s.from_client)
            if i is not None and segs[i].end_seq == s.seq and not segs[i].flags & TcpFlags.SYN:
                candidates.append((i, j))
            last[s.from_client] = j
        chosen = [c for c in candidates if rng.random() < 0.5]
        if candidates and not chosen:
            chosen = [rng.choice(candidates)]
        for i, j in chosen:
            a, b = segs[i], segs[j]
            k = rng.randrange(1, len(a.payload)) if len(a.payload) > 1 else 0
            segs[j] = dataclasses.replace(
                b, seq=(a.seq + k) % SEQ_MOD, payload=a.payload[k:] + b.payload, note="overlap"
            )

    if duplicate is not None:
        rng = random.Random(duplicate)
        data = [j for j, s in enumerate(segs) if s.payload]
        picked = [j for j in data if rng.random() < 0.3]
        if data and not picked:
            picked = [rng.choice(data)]
        # Insert from the back so earlier positions stay valid.
        for j in sorted(picked, reverse=True):
            at = min(len(segs), j + 1 + rng.randrange(3))
            copy = dataclasses.replace(segs[j], note="retransmission")
            previous = nominal[at - 1]
            segs.insert(at, copy)
            nominal.insert(at, previous + 200_000)

    if reorder is not None:
        rng = random.Random(reorder)
        movable = [j for j, s in enumerate(segs) if not s.flags & TcpFlags.SYN]
        keys = {pos: rank + rng.uniform(0, reorder_window) for rank, pos in enumerate(movable)}
        keyed = sorted(movable, key=keys.__getitem__)
        if keyed == movable and len(movable) >= 2:
            swap = rng.randrange(len(movable) - 1)
            keyed[swap], keyed[swap + 1] = keyed[swap + 1], keyed[swap]
        moved = list(segs)
        for slot, source in zip(movable, keyed, strict=True):
            moved[slot] = segs[source]
        segs = moved

    return _retime(segs, nominal)


# --------------------------------------------------------------------------------------------
# pcap / pcapng writers
# --------------------------------------------------------------------------------------------

Item = Conversation | Sequence[Segment]


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _pcapng_block(end: str, block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack(end + "II", block_type, total) + body + struct.pack(end + "I", total)


def _pcapng_option(end: str, code: int, value: bytes) -> bytes:
    return struct.pack(end + "HH", code, len(value)) + _pad4(value)


def _render(
    items: Iterable[Item],
    linktype: str,
    snaplen: int,
    nanosecond: bool,
    big_endian: bool,
    pcapng: bool,
    transforms: Transforms,
) -> tuple[bytes, list[Segment]]:
    if linktype not in LINKTYPES:
        raise ValueError(f"unknown link type {linktype!r}; known: {sorted(LINKTYPES)}")
    tagged: list[tuple[int, Segment, str]] = []
    for item in items:
        if isinstance(item, Conversation):
            segs, lt = item.segments(**transforms), item.linktype or linktype
        else:
            segs, lt = list(item), linktype
        tagged.extend((s.time_ns, s, lt) for s in segs)
    # A stable sort keeps each conversation's (possibly reordered) order among equal times.
    tagged.sort(key=lambda t: t[0])
    used = list(dict.fromkeys(lt for _, _, lt in tagged)) or [linktype]
    end = ">" if big_endian else "<"
    out = io.BytesIO()
    if pcapng:
        shb = struct.pack(end + "IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1)
        shb += _pcapng_option(end, PCAPNG_OPT_SHB_USERAPPL, b"upgrade-analyzer tests/builder.py")
        shb += _pcapng_option(end, PCAPNG_OPT_ENDOFOPT, b"")
        out.write(_pcapng_block(end, PCAPNG_SHB, shb))
        for lt in used:
            idb = struct.pack(end + "HHI", LINKTYPES[lt], 0, snaplen)
            if nanosecond:
                idb += _pcapng_option(end, PCAPNG_OPT_IF_TSRESOL, b"\x09")
            idb += _pcapng_option(end, PCAPNG_OPT_ENDOFOPT, b"")
            out.write(_pcapng_block(end, PCAPNG_IDB, idb))
    else:
        if len(used) > 1:
            raise ValueError(f"classic pcap has one link type per file, got {used}")
        magic = PCAP_MAGIC_NSEC if nanosecond else PCAP_MAGIC_USEC
        out.write(struct.pack(end + "IHHiIII", magic, 2, 4, 0, 0, snaplen, LINKTYPES[used[0]]))
    for time_ns, seg, lt in tagged:
        frame = encapsulate(seg, lt, big_endian=big_endian)
        captured = frame[:snaplen]
        if pcapng:
            ticks = time_ns if nanosecond else time_ns // 1000
            epb = struct.pack(
                end + "IIIII",
                used.index(lt),
                ticks >> 32,
                ticks & 0xFFFFFFFF,
                len(captured),
                len(frame),
            )
            out.write(_pcapng_block(end, PCAPNG_EPB, epb + _pad4(captured)))
        else:
            sec, frac = divmod(time_ns, 1_000_000_000)
            if not nanosecond:
                frac //= 1000
            out.write(struct.pack(end + "IIII", sec, frac, len(captured), len(frame)))
            out.write(captured)
    return out.getvalue(), [seg for _, seg, _ in tagged]


def pcap_bytes(
    items: Iterable[Item],
    *,
    linktype: str = "ethernet",
    snaplen: int = 65535,
    nanosecond: bool = False,
    big_endian: bool = False,
    pcapng: bool = False,
    **transforms: Unpack[Transforms],
) -> bytes:
    """Capture file bytes for conversations (or segment lists), interleaved by time.

    ``linktype`` applies to items without their own ``Conversation.linktype``; classic pcap
    allows one link type per file, pcapng writes one interface (IDB) per link type used.
    ``snaplen`` truncates frames (captured length < wire length). ``transforms`` (see
    ``Conversation.segments``) apply to every Conversation item; to transform only one of
    several, pass ``conv.segments(...)`` as its item instead.
    """
    data, _ = _render(items, linktype, snaplen, nanosecond, big_endian, pcapng, transforms)
    return data


def write_pcap(
    path: str | os.PathLike[str],
    items: Iterable[Item],
    *,
    linktype: str = "ethernet",
    snaplen: int = 65535,
    nanosecond: bool = False,
    big_endian: bool = False,
    pcapng: bool = False,
    gzip: bool = False,
    **transforms: Unpack[Transforms],
) -> list[Segment]:
    """Write a capture file (see ``pcap_bytes``), gzip-compressed if asked.

    Returns the segments in file order: frame number N (1-based, as Wireshark counts) is
    ``frames[N - 1]``.
    """
    data, frames = _render(items, linktype, snaplen, nanosecond, big_endian, pcapng, transforms)
    if gzip:
        data = gzip_module.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
    return frames


def busy_proxy(clients: int = 40) -> list[Conversation]:
    """``clients`` WebSocket handshakes through one proxy (front legs to 10.0.0.2:80, back
    legs from it to 10.0.0.3:8080); every other back leg carries a key of the proxy's own."""
    convs = []
    t = 1_700_000_000.0
    for i in range(clients):
        key = f"client-key-{i:02d}-AAAAAA=="
        back_key = key if i % 2 else f"proxy-key-{i:02d}-AAAAAAA=="
        front = Conversation(client=(f"10.0.1.{i + 1}", 50000 + i), server=("10.0.0.2", 80),
                             start=t + 0.05 * i)
        front.handshake()
        front.client(websocket_request("chat.example.com", "/ws", key=key))
        back = Conversation(client=("10.0.0.2", 41000 + i), server=("10.0.0.3", 8080),
                            start=t + 0.05 * i + 0.01)
        back.handshake()
        back.client(websocket_request("chat.example.com", "/ws", key=back_key))
        back.server(websocket_response(back_key), delay=0.002)
        front.server(websocket_response(key), delay=0.03)
        convs += [front, back]
    return convs
