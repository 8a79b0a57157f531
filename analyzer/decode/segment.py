"""The value the decoder produces: one TCP segment with its addresses."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag

_PORTS = struct.Struct("!HH").pack


class TcpFlags(IntFlag):
    """TCP header flags (RFC 9293 §3.1)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment, from the innermost IP header of a frame (tunnels removed)."""

    frame: int  # Frame.number it came from
    time: float  # Frame.time
    src: bytes  # packed IP address: 4 bytes (IPv4) or 16 bytes (IPv6)
    sport: int
    dst: bytes
    dport: int
    seq: int
    ack: int
    flags: int  # TcpFlags bits, kept as a plain int on the hot path
    payload: bytes  # the TCP payload bytes present in the capture
    missing: int = 0  # payload bytes the snaplen cut off (0 when the whole payload is present)


# The frozen ``__init__`` stores each of the 11 fields through object.__setattr__ (≈ 1.9 µs);
# `made_segment` stores them through the slots' own descriptors (as `verdict.made` does), the
# same value for less, and its compiled twin (decode/_made.pxi) fills the slots in C. The
# reassembly makes one per connection whose SYNs it kept (`InOrder._make_listener`);
# tests/test_made_values.py compares the three.
_new_object = object.__new__
(_set_frame, _set_time, _set_src, _set_sport, _set_dst, _set_dport, _set_seq, _set_ack,
 _set_flags, _set_payload, _set_missing) = (Segment.__dict__[name].__set__
                                            for name in Segment.__slots__)


def made_segment_plain(frame: int, time: float, src: bytes, sport: int, dst: bytes,
                       dport: int, seq: int, ack: int, flags: int, payload: bytes,
                       missing: int = 0) -> Segment:
    """``Segment(...)`` of the same arguments (its plain twin), without the frozen
    ``__init__``: `made_segment` in the pure-Python install."""
    made = _new_object(Segment)
    _set_frame(made, frame)
    _set_time(made, time)
    _set_src(made, src)
    _set_sport(made, sport)
    _set_dst(made, dst)
    _set_dport(made, dport)
    _set_seq(made, seq)
    _set_ack(made, ack)
    _set_flags(made, flags)
    _set_payload(made, payload)
    _set_missing(made, missing)
    return made


def flow_key(src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    """One direction of a connection as bytes: source and destination address, then ports.

    This is the byte order of the wire: in an IPv4 packet without options the key is exactly
    the 12 bytes from the source address to the TCP destination port, so the pipeline's fast
    path can slice it out of a frame without decoding it (see ``analyzer/pipeline.py``).
    """
    return src + dst + _PORTS(sport, dport)


def table_key_plain(key: bytes) -> bytes:
    """`table_key`'s plain twin: the key itself."""
    return key


def _table_key_cached(key: bytes) -> bytes:
    """An IPv4 flow key as the compiled skip's cache of recent keys holds it (the same
    bytes): the object it looks a frame's key up with, so that the reassembly table, keyed
    by it, finds it by identity. A key made here was another object of the same bytes, and
    every look-up of it compared them (≈ 130 instructions; ≈ 2 % of a keyless TLS run)."""
    return _cached_flow_key(key) if len(key) == 12 else key


try:  # (the compiled module imports nothing at its own import: no cycle)
    from analyzer.decode._fastpath import compiled_made_segment as made_segment
    from analyzer.decode._fastpath import flow_key_compiled as _cached_flow_key
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    made_segment = made_segment_plain
    table_key = table_key_plain
else:
    table_key = _table_key_cached
