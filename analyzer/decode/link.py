"""Link layers: find where the network-layer packet starts in a frame, and what it is.

Every function here returns either (ethertype, offset of the packet) or a short skip reason.
IP version is expressed as its ethertype (0x0800 / 0x86DD) whatever the link layer says.
"""

from __future__ import annotations

import struct

# Link-layer header type values (https://www.tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the capturing host's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
DLT_RAW_12 = 12  # DLT_RAW on most BSDs, found as-is in old pcap files
DLT_RAW_14 = 14  # DLT_RAW on OpenBSD
LINKTYPE_LOOP = 108  # OpenBSD loopback: address family always in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_TEB = 0x6558  # transparent Ethernet bridging: an Ethernet frame follows (GRE, VXLAN)

# 802.1Q C-tag, 802.1ad S-tag, and the pre-standard QinQ S-tags some switches still send.
VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
MAX_VLAN_TAGS = 8

# BSD AF_INET6 differs by system: NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30 (Wireshark's list).
AF_INET = 2
AF_INET6 = frozenset((24, 28, 30))

ETHERTYPE_NAMES = {
    0x0806: "arp",
    0x8035: "rarp",
    0x88CC: "lldp",
    0x888E: "eapol",
    0x8863: "pppoe discovery",
    0x8864: "pppoe session",
    0x8847: "mpls",
    0x8848: "mpls",
    0x88E5: "macsec",
    0x8809: "slow protocols",
    0x88F7: "ptp",
    0x9000: "ethernet loopback",
    0x22F0: "avtp",
    0x893A: "ieee 1905",
}

_U16 = struct.Struct("!H").unpack_from
_U32_BE = struct.Struct("!I").unpack_from
_U32_LE = struct.Struct("<I").unpack_from


def not_ip(ethertype: int) -> str:
    """The skip reason for a link payload that is not IP."""
    if ethertype < 0x0600:  # IEEE 802.3 length field: an LLC frame, not an ethertype
        return "not ip (802.3 llc)"
    name = ETHERTYPE_NAMES.get(ethertype)
    return f"not ip ({name})" if name else f"not ip (ethertype {ethertype:#06x})"


def ethertype_at(data: bytes, pos: int, limit: int) -> tuple[int, int] | str:
    """Read the ethertype field at `pos`, stepping over any stack of VLAN tags after it."""
    if limit - pos < 2:
        return "truncated link header"
    return _skip_tags(data, _U16(data, pos)[0], pos + 2, limit)


def _skip_tags(data: bytes, ethertype: int, pos: int, limit: int) -> tuple[int, int] | str:
    """Step over stacked VLAN tags (QinQ) that start at `pos`, announced by `ethertype`."""
    tags = 0
    while ethertype in VLAN_TPIDS:
        # A tag is TCI (2 bytes) + the next ethertype (2 bytes).
        tags += 1
        if tags > MAX_VLAN_TAGS:
            return "too many vlan tags"
        if limit - pos < 4:
            return "truncated vlan tag"
        ethertype = _U16(data, pos + 2)[0]
        pos += 4
    return ethertype, pos


def ethernet(data: bytes, pos: int, limit: int) -> tuple[int, int] | str:
    """An Ethernet II header at `pos` (outer frame, or inside VXLAN / GRE bridging)."""
    if limit - pos < 14:
        return "truncated ethernet header"
    return ethertype_at(data, pos + 12, limit)


def ip_version(data: bytes, pos: int, limit: int) -> tuple[int, int] | str:
    """Raw IP: the version nibble says which."""
    if pos >= limit:
        return "empty ip packet"
    version = data[pos] >> 4
    if version == 4:
        return ETHERTYPE_IPV4, pos
    if version == 6:
        return ETHERTYPE_IPV6, pos
    return f"not ip (version {version})"


def _family(family: int, pos: int) -> tuple[int, int] | str:
    if family == AF_INET:
        return ETHERTYPE_IPV4, pos
    if family in AF_INET6:
        return ETHERTYPE_IPV6, pos
    return f"not ip (address family {family})"


def link_layer(linktype: int, data: bytes) -> tuple[int, int] | str:
    """Where the network packet of a frame starts, by the frame's link type."""
    size = len(data)
    if linktype == LINKTYPE_ETHERNET:
        if size < 14:
            return "truncated ethernet header"
        return ethertype_at(data, 12, size)
    if linktype == LINKTYPE_LINUX_SLL:
        # packet type(2) ARPHRD type(2) address length(2) address(8) protocol(2)
        if size < 16:
            return "truncated sll header"
        return ethertype_at(data, 14, size)
    if linktype == LINKTYPE_LINUX_SLL2:
        # protocol(2) reserved(2) interface index(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
        if size < 20:
            return "truncated sll2 header"
        return _skip_tags(data, _U16(data, 0)[0], 20, size)
    if linktype in (LINKTYPE_RAW, DLT_RAW_12, DLT_RAW_14, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return ip_version(data, 0, size)
    if linktype == LINKTYPE_NULL:
        if size < 4:
            return "truncated loopback header"
        # The capturing host's byte order is not recorded; families are small numbers, so a
        # value that only makes sense swapped was written big-endian.
        family = _U32_LE(data, 0)[0]
        if family > 0xFFFF:
            family = _U32_BE(data, 0)[0]
        return _family(family, 4)
    if linktype == LINKTYPE_LOOP:
        if size < 4:
            return "truncated loopback header"
        return _family(_U32_BE(data, 0)[0], 4)
    return f"unknown link type {linktype}"
