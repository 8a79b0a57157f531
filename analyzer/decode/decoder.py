"""The decoder: walk a frame from its link layer through tunnels to the innermost TCP segment."""

# How it works: the link layer gives (ethertype, offset); then a loop reads one IP header per
# turn. TCP ends the walk; a tunnel (GRE, VXLAN, GTP-U, IP-in-IP) gives the next
# (ethertype, offset) and the loop goes round again, at most MAX_TUNNELS times. `limit`
# narrows at each layer to where the enclosing packet ends, so an inner header can never be
# read out of the outer packet's padding or the next record. Every header read is preceded
# by a length check, so no input raises; what cannot be decoded is counted in `skipped`.

from __future__ import annotations

import struct
from collections import Counter

from ..source.frame import Frame
from .ip import (
    IPPROTO_GRE,
    IPPROTO_IPIP,
    IPPROTO_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    ipv4,
    ipv6,
    not_tcp,
)
from .link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_TEB,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    ethernet,
    link_layer,
    not_ip,
)
from .segment import Segment
from .tunnels import gre, udp

# Real deployments nest at most two or three (e.g. VXLAN in GRE in GTP-U); a crafted packet
# could nest hundreds to make us loop.
MAX_TUNNELS = 4

_TCP = struct.Struct("!HHIIH").unpack_from  # ports, seq, ack, data offset + flags


# --- the fast path's peek -------------------------------------------------------------------
# Most frames of a big capture belong to connections the analyzer already ignores, and for
# those the pipeline only needs the flow key and the SYN flag. `peek_flow` reads them straight
# from the bytes for the common shape (Ethernet or Linux cooked, IPv4 without options, TCP),
# without building a Segment (about 1.2 µs) or walking the layers.

# Link types whose IP header is at a fixed offset right after a 2-byte ethertype field.
PEEK_LINKS = {LINKTYPE_ETHERNET: 14, LINKTYPE_LINUX_SLL: 16}
# From the ethertype: ethertype, version+IHL, total length, flags+fragment offset, protocol,
# then TCP data offset and flags (IPv4 header of exactly 20 bytes).
_PEEK = struct.Struct("!HBxH2xHxB22xBB").unpack_from


def peek_flow(linktype: int, data: bytes) -> tuple[bytes, int] | None:
    """(flow key, TCP flags) of a frame that `decode_frame` would turn into a TCP segment
    with that flow key (see `segment.flow_key`), or None when the frame does not have the
    common shape and only the full decoder can tell.

    The checks are those of `decode_frame` for this shape, so a frame gets a key here exactly
    when the full decoder gives it a Segment.
    """
    l3 = PEEK_LINKS.get(linktype)
    if l3 is None or len(data) < l3 + 40:
        return None
    ethertype, vihl, total, frag, proto, offset, flags = _PEEK(data, l3 - 2)
    if ethertype != ETHERTYPE_IPV4 or vihl != 0x45 or proto != IPPROTO_TCP or frag & 0x3FFF:
        return None
    size = len(data)
    # Where the IP packet's bytes end in this frame: its total length (0 = TSO, the frame),
    # cut by the frame's end; the TCP header must fit before that.
    stop = l3 + total if total and l3 + total < size else size
    hlen = (offset >> 4) << 2
    if hlen < 20 or stop - l3 - 20 < hlen:
        return None
    return data[l3 + 12 : l3 + 24], flags


# After the ethertype: total length; after the addresses and ports: sequence number,
# acknowledgement number, data offset.
_PEEK_TOTAL = struct.Struct("!H").unpack_from
_PEEK_TCP = struct.Struct("!IIB").unpack_from


def peek_payload(linktype: int, data: bytes) -> tuple[int, int, bytes, int]:
    """(seq, ack, payload, missing) of a frame that `peek_flow` gave a key: the values
    `decode_frame` would put in its Segment. For the pipeline's fast path on connections that
    are followed (`Reassembler.take_plain`)."""
    l3 = PEEK_LINKS[linktype]
    (total,) = _PEEK_TOTAL(data, l3 + 2)
    size = len(data)
    end = l3 + total if total else size  # total length 0: TSO, as in `ipv4`
    present = end if end < size else size
    seq, ack, offset = _PEEK_TCP(data, l3 + 24)
    return seq, ack, data[l3 + 20 + ((offset >> 4) << 2) : present], end - present


class Decoder:
    """Turns Frames into TCP Segments; counts the frames it cannot use, by reason."""

    def __init__(self) -> None:
        self.skipped: Counter[str] = Counter()

    def decode(self, frame: Frame) -> Segment | None:
        """The innermost TCP segment of `frame`, or None (and a count in `skipped`)."""
        result = decode_frame(frame)
        if isinstance(result, str):
            self.skipped[result] += 1
            return None
        return result


def decode_frame(frame: Frame) -> Segment | str:
    """The innermost TCP segment of `frame`, or the reason there is none."""
    data = frame.data
    step = link_layer(frame.linktype, data)
    if isinstance(step, str):
        return step
    ethertype, pos = step
    limit = len(data)
    tunnels = 0
    while True:
        if ethertype == ETHERTYPE_IPV4:
            ip = ipv4(data, pos, limit)
        elif ethertype == ETHERTYPE_IPV6:
            ip = ipv6(data, pos, limit)
        elif ethertype == ETHERTYPE_TEB:
            step = ethernet(data, pos, limit)
            if isinstance(step, str):
                return step
            ethertype, pos = step
            continue
        else:
            return not_ip(ethertype)
        if isinstance(ip, str):
            return ip
        proto, l4, end, addr, alen = ip
        if proto == IPPROTO_TCP:
            return _tcp(frame, data, l4, end, limit, addr, alen)
        tunnels += 1
        if tunnels > MAX_TUNNELS:
            return "tunnel nesting too deep"
        if end < limit:
            limit = end
        if proto == IPPROTO_UDP:
            step = udp(data, l4, limit)
        elif proto == IPPROTO_GRE:
            step = gre(data, l4, limit)
        elif proto == IPPROTO_IPIP:
            step = (ETHERTYPE_IPV4, l4)
        elif proto == IPPROTO_IPV6:
            step = (ETHERTYPE_IPV6, l4)
        else:
            return not_tcp(proto)
        if isinstance(step, str):
            return step
        ethertype, pos = step


def _tcp(
    frame: Frame, data: bytes, pos: int, end: int, limit: int, addr: int, alen: int
) -> Segment | str:
    # `end` is where the IP header says the packet ends, `limit` where its bytes end in this
    # frame: the difference, if positive, is what the snaplen cut off.
    present = end if end < limit else limit
    if present - pos < 20:
        return "truncated tcp header" if end - pos >= 20 else "ip payload shorter than tcp header"
    sport, dport, seq, ack, offset_flags = _TCP(data, pos)
    hlen = (offset_flags >> 12) << 2
    if hlen < 20:
        return "bad tcp header length"
    if present - pos < hlen:
        return "truncated tcp header" if end - pos >= hlen else "ip payload shorter than tcp header"
    return Segment(
        frame.number,
        frame.time,
        data[addr : addr + alen],
        sport,
        data[addr + alen : addr + 2 * alen],
        dport,
        seq,
        ack,
        offset_flags & 0xFF,
        data[pos + hlen : present],
        end - present,
    )
