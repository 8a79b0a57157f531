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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from ..source.frame import Frame
from .fragments import Fragments, ipv4_piece, ipv6_piece
from .ip import (
    IPPROTO_GRE,
    IPPROTO_IPIP,
    IPPROTO_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV4_FRAGMENT,
    IPV6_FRAGMENT,
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
from .tunnels import QUIC, gre, udp

# Real deployments nest at most two or three (e.g. VXLAN in GRE in GTP-U); a crafted packet
# could nest hundreds to make us loop.
MAX_TUNNELS = 4

_TCP = struct.Struct("!HHIIH").unpack_from  # ports, seq, ack, data offset + flags
_SYN = 0x02


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
    return peek_flow_at(linktype, data, 0, len(data))


def peek_flow_at(linktype: int, buf: bytes, start: int, stop: int) -> tuple[bytes, int] | None:
    """`peek_flow` of the frame held in ``buf[start:stop]``, without slicing it out: the
    fast path's test of a record still in the pcap reader's buffer (`ignored_frame_test`)."""
    l3 = PEEK_LINKS.get(linktype)
    size = stop - start
    if l3 is None or size < l3 + 40:
        return None
    ethertype, vihl, total, frag, proto, offset, flags = _PEEK(buf, start + l3 - 2)
    if ethertype != ETHERTYPE_IPV4 or vihl != 0x45 or proto != IPPROTO_TCP or frag & 0x3FFF:
        return None
    # Where the IP packet's bytes end in this frame: its total length (0 = TSO, the frame),
    # cut by the frame's end; the TCP header must fit before that.
    end = l3 + total if total and l3 + total < size else size
    hlen = (offset >> 4) << 2
    if hlen < 20 or end - l3 - 20 < hlen:
        return None
    key = start + l3 + 12
    return buf[key : key + 12], flags


class _Followed(Protocol):
    ignored: bool
    passing: object | None  # the compiled skip reads it of a followed one (tls/passing.py)


def ignored_frame_test(
    linktype: int, flows: Mapping[bytes, tuple[_Followed, int]]
) -> Callable[[bytes, int, int], bool] | None:
    """For `PcapRecords.drop` (the pipeline's fast path): a test of the frame in
    ``buf[start:stop]`` that is true when `peek_flow_at` gives it a key, it is not a SYN, and
    its connection in ``flows`` (the reassembler's table) is ignored. None for link types
    that `peek_flow` does not handle."""
    l3 = PEEK_LINKS.get(linktype)
    if l3 is None:
        return None
    # The checks of `peek_flow_at`, inlined with `l3` fixed: that call would cost 0.17 µs
    # for each of 93 % of the frames (≈ 0.25 s per GB of the benchmark). tests/test_decode.py
    # compares the two on every frame of the test captures.
    smallest = l3 + 40
    at = l3 - 2
    first = l3 + 12
    peek = _PEEK

    def test(buf: bytes, start: int, stop: int) -> bool:
        size = stop - start
        if size < smallest:
            return False
        ethertype, vihl, total, frag, proto, offset, flags = peek(buf, start + at)
        if (ethertype != ETHERTYPE_IPV4 or vihl != 0x45 or proto != IPPROTO_TCP
                or frag & 0x3FFF or flags & _SYN):
            return False
        end = l3 + total if total and l3 + total < size else size
        hlen = (offset >> 4) << 2
        if hlen < 20 or end - l3 - 20 < hlen:
            return False
        key = start + first
        entry = flows.get(buf[key : key + 12])
        return entry is not None and entry[0].ignored

    return test


try:  # built from _fastpath.pyx by setup.py when a C compiler is there (see that file)
    from ._fastpath import Follow as _Follow
    from ._fastpath import peek_flow as _compiled_peek_flow
    from ._fastpath import peek_payload as _compiled_peek_payload
    from ._fastpath import peek_segment as _compiled_peek_segment
    from ._fastpath import skip_ignored as _skip_ignored
    from ._fastpath import skip_ignored_blocks as _skip_ignored_blocks
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    _compiled_peek_flow = _compiled_peek_payload = _skip_ignored = _skip_ignored_blocks = None
    _Follow = _compiled_peek_segment = None

# True when this install has the compiled fast path: the benchmark and the tests report it.
FASTPATH_COMPILED = _skip_ignored is not None

# What a skip says of the records it skipped whose time steps back from the record before
# them: None when none did, else (how many, which of those skipped was the first, from 1, the
# largest step back in seconds).
Stepped = tuple[int, int, float] | None
# skip(buf, pos, little_endian, limit, units, bound, inclusive, sec, frac)
#   -> (pos, skipped, sec, frac, stepped): see `ignored_record_skip`.
RecordSkip = Callable[[bytes, int, bool, int, int, float, bool, int, int],
                      tuple[int, int, int, int, Stepped]]


def ignored_record_skip(
    linktype: int, flows: Mapping[bytes, tuple[_Followed, int]], *, compiled: bool = True,
    lives: object | None = None, follow: object | None = None,
) -> RecordSkip | None:
    """For `PcapRecords.skip`: the compiled loop (`_fastpath.skip_ignored`) that walks a pcap
    buffer's records and skips, in C, every one `ignored_frame_test` would drop (and whose
    time is before the reader's bound), stopping at the first it would not. None when that
    module is not built, when ``compiled`` is False (the tests compare both paths), for link
    types `peek_flow` does not handle, or when ``flows`` is not a plain dict (the C code looks
    keys up with the dict API). ``lives``: the run's compiled life table (life/table.py),
    whose segments the loop takes too; only where the run's ledger counts them; ``follow``:
    the run's `new_follow`, which takes the next segments of followed connections too."""
    l3 = PEEK_LINKS.get(linktype)
    if l3 is None or _skip_ignored is None or not compiled or type(flows) is not dict:
        return None
    if lives is not None or follow is not None:
        return partial(_skip_ignored, l3, flows, lives=lives, follow=follow)
    return partial(_skip_ignored, l3, flows)  # a C call per use, no Python frame between


# An interface as the pcapng skip needs it: link type, time units per second, time offset.
Interface = tuple[int, float, int]
# skip(buf, pos, little_endian, interfaces, max_record, max_block, bound, inclusive, time)
#   -> (pos, skipped, interface, ts_high, ts_low, stepped): see `ignored_block_skip`.
BlockSkip = Callable[[bytes, int, bool, tuple[Interface, ...], int, int, float, bool, float],
                     tuple[int, int, int, int, int, Stepped]]


def ignored_block_skip(
    flows: Mapping[bytes, tuple[_Followed, int]], *, compiled: bool = True,
    lives: object | None = None, follow: object | None = None,
) -> BlockSkip | None:
    """For `PcapngRecords.skip`: the compiled loop (`_fastpath.skip_ignored_blocks`) that
    skips the Enhanced Packet Blocks whose frame `ignored_frame_test` would drop for its
    interface's link type. None when not built, not ``compiled``, or ``flows`` is not a dict;
    pcapng records then take the pipeline's per-record path, with the same results."""
    if _skip_ignored_blocks is None or not compiled or type(flows) is not dict:
        return None
    if lives is not None or follow is not None:
        return partial(_skip_ignored_blocks, flows, lives=lives, follow=follow)
    return partial(_skip_ignored_blocks, flows)


def new_follow(reassembler: object, decided: object, arm: Callable[..., object],
               ledger: object) -> object | None:
    """The compiled skip's hand-off of a followed connection's next segment to
    ``reassembler.take_plain`` (`_fastpath.Follow`, `_follow.pxi`), for the skip of the one
    file whose frames ``ledger`` numbers; ``decided``: the run's queue of decided attempts
    (the skip stops when it is not empty). None when the module is not built."""
    if _Follow is None or ledger is None:
        return None
    return _Follow(reassembler, decided, arm, ledger)


PeekFlow = Callable[[int, bytes], "tuple[bytes, int] | None"]
PeekSegment = Callable[[int, bytes, int, float], Segment]


def segment_function(compiled: bool = True) -> PeekSegment | None:
    """`_fastpath.peek_segment` when built and ``compiled``: `decode_frame`'s Segment of a
    frame `peek_flow` gave a key, without a Frame (the pipeline's full path for such frames);
    None otherwise, and such frames take `Decoder.decode`, its plain twin."""
    return _compiled_peek_segment if compiled else None
PeekPayload = Callable[[int, bytes], tuple[int, int, bytes, int]]


def peek_functions(compiled: bool = True) -> tuple[PeekFlow, PeekPayload]:
    """`peek_flow` and `peek_payload` for the pipeline's per-record path: their compiled
    twins from `_fastpath` when built and ``compiled`` (same results, ≈ 15x cheaper), else
    these Python functions."""
    if compiled and _compiled_peek_flow is not None and _compiled_peek_payload is not None:
        return _compiled_peek_flow, _compiled_peek_payload
    return peek_flow, peek_payload


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


MAX_QUIC_FLOWS = 100_000  # distinct QUIC flows remembered; later ones are counted as new


@dataclass(frozen=True, slots=True)
class QuicDatagram:
    """A UDP datagram that starts a QUIC long header (HTTP/3 lives there: not analysed)."""

    flow: bytes  # both endpoints, the smaller first: the same for both directions


class Decoder:
    """Turns Frames into TCP Segments; counts the frames it cannot use, by reason, and the
    QUIC flows it saw (the summary says they were seen and not analysed). IP fragments are
    put together in its `fragments` table (fragments.py): a datagram's TCP segment comes out
    of the frame of the fragment that completed it."""

    def __init__(self) -> None:
        self._skipped: Counter[str] = Counter()
        self.fragments = Fragments()
        self.quic_flows: set[bytes] = set()
        self.quic_flows_over = 0  # flows past MAX_QUIC_FLOWS (possibly repeats)

    @property
    def skipped(self) -> Counter[str]:
        """Frames without a TCP segment of their own, by reason: the fragments' counted by
        what became of their datagram (reassembled, expired, ...; still held: incomplete)."""
        skipped = self._skipped.copy()
        if self.fragments.counts or len(self.fragments):
            skipped.update(self.fragments.counts)
            skipped.update(self.fragments.pending())
        return skipped

    def decode(self, frame: Frame) -> Segment | None:
        """The innermost TCP segment of `frame`, or None (and a count in `skipped`)."""
        result = decode_frame(frame, self.fragments)
        if isinstance(result, Segment):
            return result
        if result is HELD:
            return None  # counted with its datagram, by `fragments`
        if isinstance(result, QuicDatagram):
            if result.flow not in self.quic_flows:
                if len(self.quic_flows) < MAX_QUIC_FLOWS:
                    self.quic_flows.add(result.flow)
                else:
                    self.quic_flows_over += 1
            result = QUIC
        self._skipped[result] += 1
        return None

    @property
    def quic_flow_count(self) -> int:
        return len(self.quic_flows) + self.quic_flows_over


# `decode_frame`'s answer for a fragment taken into the table without completing a datagram.
HELD = "ip fragment held"


def decode_frame(frame: Frame, fragments: Fragments | None = None
                 ) -> Segment | QuicDatagram | str:
    """The innermost TCP segment of `frame`, or the reason there is none. With `fragments`,
    an IP fragment (at any layer) goes into that table, and a datagram it completes is
    decoded on as if it had arrived whole (else: HELD); without, it is skipped."""
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
            if ip is not IPV4_FRAGMENT or fragments is None:
                return ip
            piece = ipv4_piece(data, pos, limit)
        else:
            proto, l4, end, addr, alen = ip
            if proto != IPV6_FRAGMENT:
                piece = None
            elif fragments is None:
                return "ipv6 fragment"
            else:
                piece = ipv6_piece(data, pos, l4, end, limit)
        if piece is not None:
            # Fragments are rare: only here, never in the compiled peeks (which leave them
            # to this decoder), so whole packets pay nothing for them.
            if isinstance(piece, str):
                return piece
            whole = fragments.add(piece, frame.time)  # type: ignore[union-attr]
            if whole is None:
                return HELD
            tunnels += 1  # (a reassembled datagram counts as a layer: it cannot loop)
            if tunnels > MAX_TUNNELS:
                return "tunnel nesting too deep"
            data, pos, limit = whole, 0, len(whole)
            continue
        if proto == IPPROTO_TCP:
            return _tcp(frame, data, l4, end, limit, addr, alen)
        tunnels += 1
        if tunnels > MAX_TUNNELS:
            return "tunnel nesting too deep"
        if end < limit:
            limit = end
        if proto == IPPROTO_UDP:
            step = udp(data, l4, limit)
            if step is QUIC:
                ends = sorted((data[addr : addr + alen] + data[l4 : l4 + 2],
                               data[addr + alen : addr + 2 * alen] + data[l4 + 2 : l4 + 4]))
                return QuicDatagram(ends[0] + ends[1])
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
