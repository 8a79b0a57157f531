"""Tunnels we open to reach the inner TCP connection: GRE, VXLAN and GTP-U.

Each function takes the tunnel header's offset and the end of its bytes, and returns
(ethertype of the inner packet, its offset) or a short skip reason. ETHERTYPE_TEB as the
inner type means an Ethernet frame follows.
"""

from __future__ import annotations

import struct

from .link import ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB, ip_version

VXLAN_PORT = 4789  # RFC 7348 §5 (IANA)
GTPU_PORT = 2152  # 3GPP TS 29.281 §4.4.2.3

_GRE_C = 0x8000  # checksum present
_GRE_R = 0x4000  # routing present (RFC 1701 only)
_GRE_K = 0x2000  # key present (RFC 2890)
_GRE_S = 0x1000  # sequence number present (RFC 2890)
_GRE_INNER = frozenset((ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB))

_GTP_T_PDU = 0xFF  # "G-PDU": carries a user packet (TS 29.281 §6.1)

_U16_PAIR = struct.Struct("!HH").unpack_from
_UDP = struct.Struct("!HHH").unpack_from  # source port, destination port, length


def gre(data: bytes, pos: int, limit: int) -> tuple[int, int] | str:
    """GRE version 0 (RFC 2784 with RFC 2890 key and sequence number)."""
    if limit - pos < 4:
        return "truncated gre header"
    flags, proto = _U16_PAIR(data, pos)
    version = flags & 0x7
    if version != 0:
        return f"gre version {version}"  # 1 is PPTP's enhanced GRE, which carries PPP
    if flags & _GRE_R:
        return "gre with routing"  # RFC 1701 source routing, deprecated by RFC 2784
    # "If either the Checksum Present bit or the Routing Present bit are set, BOTH the
    # Checksum and Offset fields are present" (RFC 1701 §2.1): 4 bytes either way.
    hlen = 4 + 4 * (bool(flags & _GRE_C) + bool(flags & _GRE_K) + bool(flags & _GRE_S))
    if limit - pos < hlen:
        return "truncated gre header"
    if proto not in _GRE_INNER:
        return f"not ip (gre protocol {proto:#06x})"
    return proto, pos + hlen


def udp(data: bytes, pos: int, limit: int) -> tuple[int, int] | str:
    """A UDP datagram: open it if it is VXLAN or GTP-U, else it is not for us."""
    if limit - pos < 8:
        return "truncated udp header"
    sport, dport, length = _UDP(data, pos)
    if length >= 8:
        limit = min(limit, pos + length)
    if dport == VXLAN_PORT:
        return _vxlan(data, pos + 8, limit)
    if dport == GTPU_PORT or sport == GTPU_PORT:
        return _gtpu(data, pos + 8, limit)
    if is_quic_long_header(data, pos + 8, limit):
        return QUIC
    return "not tcp (udp)"


QUIC = "quic (http/3, not analysed)"
# RFC 9000 §17.2: a long header has the Header Form and Fixed bits set and a 32-bit Version;
# v1 (RFC 9000), v2 (RFC 9369), 0 (Version Negotiation, §17.2.1) and the drafts 0xff0000xx.
_QUIC_VERSIONS = frozenset((0x00000001, 0x6B3343CF))


def is_quic_long_header(data: bytes, pos: int, limit: int) -> bool:
    """True when a UDP payload starts like a QUIC long header packet of a known version (an
    Initial is what opens every QUIC connection, HTTP/3 ones included)."""
    if limit - pos < 7:
        return False
    first = data[pos]
    if not first & 0x80:  # Header Form 0: a short header, which looks like anything
        return False
    version = int.from_bytes(data[pos + 1 : pos + 5], "big")
    if data[pos + 5] > 20:  # Destination Connection ID Length: at most 20 (§17.2)
        return False
    if version == 0:  # Version Negotiation: the other bits are unused there
        return True
    return bool(first & 0x40) and (version in _QUIC_VERSIONS or version >> 8 == 0xFF0000)


def _vxlan(data: bytes, pos: int, limit: int) -> tuple[int, int] | str:
    # "I flag MUST be set to 1 for a valid VXLAN Network ID" (RFC 7348 §5); 8-byte header.
    if limit - pos < 8:
        return "truncated vxlan header"
    if not data[pos] & 0x08:
        return "vxlan without vni flag"
    return ETHERTYPE_TEB, pos + 8


def _gtpu(data: bytes, pos: int, limit: int) -> tuple[int, int] | str:
    # TS 29.281 §5.1: flags (version 3 bits, PT, spare, E, S, PN), message type, length, TEID,
    # then if any of E/S/PN: sequence number (2), N-PDU number (1), next extension type (1).
    if limit - pos < 8:
        return "truncated gtp-u header"
    flags = data[pos]
    if flags >> 5 != 1:
        return f"gtp version {flags >> 5}"
    if not flags & 0x10:
        return "not tcp (gtp')"  # PT=0 is GTP' (charging), never user traffic
    if data[pos + 1] != _GTP_T_PDU:
        return "not tcp (gtp-u signalling)"
    p = pos + 8
    if flags & 0x07:
        if limit - p < 4:
            return "truncated gtp-u header"
        next_type = data[p + 3]
        p += 4
        if flags & 0x04:
            # Extension headers: length in 4-octet units including the length byte itself,
            # the last byte names the next one; 0 ends the chain (§5.2.1). Each is at least
            # 4 bytes, so the chain ends within the packet.
            while next_type:
                if limit - p < 1:
                    return "truncated gtp-u extension header"
                size = data[p] << 2
                if size == 0:
                    return "bad gtp-u extension header"
                if limit - p < size:
                    return "truncated gtp-u extension header"
                next_type = data[p + size - 1]
                p += size
    step = ip_version(data, p, limit)
    if isinstance(step, str):
        return "not ip (gtp-u payload)"
    return step
