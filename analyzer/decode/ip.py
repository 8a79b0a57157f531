"""IPv4 and IPv6 headers: find the transport header, the addresses and the packet's end.

`ipv4` and `ipv6` return (protocol, transport offset, end of packet, address offset, address
length) or a short skip reason. The end is where the IP header says the packet ends, which may
be before the end of the frame (Ethernet padding) or after it (snaplen cut).
"""

from __future__ import annotations

import struct

IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_GRE = 47

# `ipv4`'s answer for a fragment (a string, as the other skip reasons; the decoder compares
# it by identity and hands the fragment to decode/fragments.py).
IPV4_FRAGMENT = "ipv4 fragment"

PROTO_NAMES = {
    1: "icmp",
    2: "igmp",
    17: "udp",
    50: "esp",
    51: "ah",
    58: "icmpv6",
    59: "no next header",
    88: "eigrp",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    132: "sctp",
    136: "udplite",
}

# IPv6 extension headers whose length byte counts 8-octet units beyond the first 8
# (RFC 8200 §4.3 hop-by-hop, §4.4 routing, §4.6 destination options; RFC 6275 mobility,
# RFC 7401 HIP, RFC 5533 shim6).
_EXT_8 = frozenset((0, 43, 60, 135, 139, 140))
IPV6_FRAGMENT = 44  # RFC 8200 §4.5, fixed 8 bytes
IPV6_AH = 51  # RFC 4302 §2.2: length in 4-octet units, minus 2

_IPV4 = struct.Struct("!BxH2xHxB").unpack_from  # version+IHL, total length, flags+offset, proto
_IPV6 = struct.Struct("!IHB").unpack_from  # version+class+label, payload length, next header
_U16 = struct.Struct("!H").unpack_from

IpHeader = tuple[int, int, int, int, int]


def not_tcp(proto: int) -> str:
    """The skip reason for an IP payload that is not TCP (nor a tunnel we open)."""
    name = PROTO_NAMES.get(proto)
    return f"not tcp ({name})" if name else f"not tcp (ip proto {proto})"


def ipv4(data: bytes, pos: int, limit: int) -> IpHeader | str:
    """An IPv4 header at `pos`; `limit` is where the enclosing layer's bytes end."""
    if limit - pos < 20:
        return "truncated ipv4 header"
    vihl, total, frag, proto = _IPV4(data, pos)
    if vihl >> 4 != 4:
        return "bad ip version"
    hlen = (vihl & 0x0F) << 2
    if hlen < 20:
        return "bad ipv4 header length"
    if limit - pos < hlen:
        return "truncated ipv4 header"
    if total == 0:
        # Linux captures TCP segmentation offload packets before the NIC splits them and
        # leaves total length 0; Wireshark then uses the captured length, and so do we.
        end = limit
    elif total < hlen:
        return "bad ipv4 total length"
    else:
        end = pos + total
    # "Fragment Offset [...] indicates where in the datagram this fragment belongs" and MF set
    # means more follow (RFC 791 §3.1): either way we hold only part of the datagram, which
    # the decoder puts together (fragments.py).
    if frag & 0x3FFF:
        return IPV4_FRAGMENT
    return proto, pos + hlen, end, pos + 12, 4


def ipv6(data: bytes, pos: int, limit: int) -> IpHeader | str:
    """An IPv6 header at `pos` and its extension headers up to the upper-layer header; for a
    fragment, up to its Fragment header: protocol IPV6_FRAGMENT, that header's offset."""
    if limit - pos < 40:
        return "truncated ipv6 header"
    first, plen, nxt = _IPV6(data, pos)
    if first >> 28 != 6:
        return "bad ip version"
    # Payload length 0 means a jumbogram (RFC 2675) or, again, a TSO packet.
    end = pos + 40 + plen if plen else limit
    p = pos + 40
    # Each extension header is at least 8 bytes long, so this loop ends within the frame.
    while True:
        if nxt in _EXT_8:
            if limit - p < 8:
                return "truncated ipv6 extension header"
            nxt, hlen = data[p], (data[p + 1] + 1) << 3
        elif nxt == IPV6_FRAGMENT:
            if limit - p < 8:
                return "truncated ipv6 extension header"
            # An "atomic fragment" (offset 0, M=0, RFC 6946) holds the whole packet: go on.
            if _U16(data, p + 2)[0] & 0xFFF9:
                return IPV6_FRAGMENT, p, end, pos + 8, 16
            nxt, hlen = data[p], 8
        elif nxt == IPV6_AH:
            if limit - p < 8:
                return "truncated ipv6 extension header"
            nxt, hlen = data[p], (data[p + 1] + 2) << 2
        else:
            return nxt, p, end, pos + 8, 16
        if limit - p < hlen:
            return "truncated ipv6 extension header"
        p += hlen
