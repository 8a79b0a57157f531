"""IP fragment reassembly: fragments in, whole datagrams out (RFC 791 for IPv4, RFC 8200 §4.5
for IPv6), in bounded memory and capture time."""

# How it works: a fragment is a `Piece` (where its bytes belong in the datagram, whether more
# follow, the bytes). `Fragments.add` files it under its datagram's key, (version, source,
# destination, protocol, identification), in a table of `_Datagram`s, each a sorted list of
# non-overlapping pieces. When the last fragment has told the length and the pieces cover
# it, the datagram is returned whole (its first fragment's IP header, fields fixed) and
# forgotten; the decoder then decodes it as if it had arrived whole, in the frame of the
# fragment that completed it.
#
# What the table holds is bounded: MAX_DATAGRAMS datagrams (the oldest is dropped to make
# room), MAX_DATAGRAM bytes a datagram, MAX_BYTES in all; a datagram not completed within
# TIMEOUT seconds of capture time from its first fragment is dropped. Every fragment frame
# that does not end in a datagram is counted in `counts` under the reason it did not;
# those of a datagram still held are counted by `pending` (the capture ended first).

from __future__ import annotations

import bisect
import struct
from collections import Counter
from dataclasses import dataclass, field

# "The current recommendation for the initial timer setting is 15 seconds" (RFC 791 §3.2);
# Linux waits 30 s (net.ipv4.ipfrag_time, net.ipv6.ip6frag_time), and what matters is
# whether the receiver, usually Linux, would have put the datagram together.
TIMEOUT = 30.0
# "The maximal total length of a datagram is 65,535 octets" (RFC 791 §3.1); IPv6's payload
# length is 16 bits too (RFC 8200 §3; jumbograms, RFC 2675, are never fragmented).
MAX_DATAGRAM = 65_535
MAX_DATAGRAMS = 1_024
MAX_BYTES = 4 * 1024 * 1024  # all datagrams' pieces, each counted with PIECE_COST more
PIECE_COST = 64  # what a piece costs beyond its bytes: 8-byte fragments cannot flood us
# Where the held fragments go when the table is cut short (reason suffixes, see `reason`).
EXPIRED = "expired"
OVERLAPPING = "overlapping"
TOO_LARGE = "too large"
TABLE_FULL = "table full"
INCOMPLETE = "incomplete at end"
MALFORMED = "malformed"
CUT = "cut by snaplen"
REASSEMBLED = "reassembled"

_IPV4_FRAG = struct.Struct("!BxHHH").unpack_from  # version+IHL, total, identification, frag
_IPV6_FRAG = struct.Struct("!BxHI").unpack_from  # next header, offset+M, identification


def reason(version: int, what: str) -> str:
    """The skip reason for a fragment frame: e.g. 'ipv4 fragment (expired)'."""
    return f"ipv{version} fragment ({what})"


@dataclass(frozen=True, slots=True)
class Piece:
    """One fragment as read from its frame."""

    version: int  # 4 or 6
    key: bytes  # version, source, destination, protocol (IPv4), identification
    offset: int  # where `data` belongs in the datagram's payload, in bytes
    more: bool  # more fragments follow (MF, M)
    data: bytes  # the fragment's payload
    head: bytes  # the IP header to put before the whole payload (used from offset 0)


def ipv4_piece(data: bytes, pos: int, limit: int) -> Piece | str:
    """The fragment whose IPv4 header at `pos` the decoder found valid (`ip.ipv4` said
    'ipv4 fragment'), or the skip reason when its bytes cannot be used."""
    vihl, total, ident, frag = _IPV4_FRAG(data, pos)
    hlen = (vihl & 0x0F) << 2
    end = pos + total
    if total == 0 or end > limit:
        return reason(4, CUT)  # a snaplen cut (or TSO, which is never fragmented)
    more = bool(frag & 0x2000)
    offset = (frag & 0x1FFF) << 3
    payload = data[pos + hlen : end]
    # "the fragment offset [...] is measured in units of 8 octets" (RFC 791 §3.1), so every
    # fragment but the last carries a multiple of 8 bytes.
    if more and (not payload or len(payload) & 7):
        return reason(4, MALFORMED)
    key = b"\x04" + data[pos + 12 : pos + 20] + data[pos + 9 : pos + 10] + data[pos + 4 : pos + 6]
    return Piece(4, key, offset, more, payload, data[pos : pos + hlen])


def ipv6_piece(data: bytes, pos: int, at: int, end: int, limit: int) -> Piece | str:
    """The fragment whose IPv6 header is at `pos` and Fragment header at `at` (`ip.ipv6`
    found them), `end` where the packet ends; or the skip reason."""
    if end > limit:
        return reason(6, CUT)
    nxt, offset_more, ident = _IPV6_FRAG(data, at)
    more = bool(offset_more & 1)
    payload = data[at + 8 : end]
    # "each complete fragment, except possibly the last ("rightmost") one, [is] an integer
    # multiple of 8 octets long" (RFC 8200 §4.5)
    if more and (not payload or len(payload) & 7):
        return reason(6, MALFORMED)
    key = b"\x06" + data[pos + 8 : pos + 40] + struct.pack("!I", ident)
    # The whole datagram is decoded from its fixed header with the Fragment header's Next
    # Header: the headers before the Fragment header (hop-by-hop, routing, destination
    # options) say nothing the decoder uses, and are not kept.
    head = data[pos : pos + 6] + bytes([nxt]) + data[pos + 7 : pos + 40]
    return Piece(6, key, offset_more & 0xFFF8, more, payload, head)


def _whole(piece_head: bytes, version: int, payload: bytes) -> bytes:
    """A datagram's IP header (from its first fragment) and payload, as if never fragmented."""
    if version == 4:
        total = len(piece_head) + len(payload)
        return piece_head[:2] + struct.pack("!H", total) + piece_head[4:6] + b"\0\0" \
            + piece_head[8:] + payload
    return piece_head[:4] + struct.pack("!H", len(payload)) + piece_head[6:] + payload


@dataclass(slots=True)
class _Datagram:
    """One datagram's fragments while it is put together: its pieces by offset, and what the
    last fragment told of its length."""

    first: float  # capture time of its first fragment seen: it expires TIMEOUT after
    frames: int = 0  # fragment frames it has taken (counted under its fate)
    starts: list[int] = field(default_factory=list)  # the pieces' offsets, sorted
    pieces: list[bytes] = field(default_factory=list)  # their bytes, in the same order
    held: int = 0  # bytes in `pieces`
    length: int = -1  # the payload's length once the last fragment told it
    head: bytes = b""  # the first fragment's IP header
    dropped: str = ""  # why it is dropped (its later fragments are counted so, until expiry)


class Fragments:
    """The reassembly table of one run; `add` each fragment in capture order."""

    def __init__(self, timeout: float = TIMEOUT, max_datagrams: int = MAX_DATAGRAMS,
                 max_bytes: int = MAX_BYTES) -> None:
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.counts: Counter[str] = Counter()  # fragment frames by what became of them
        self._table: dict[bytes, _Datagram] = {}  # in order of first fragment
        self._bytes = 0  # what the table holds, pieces at their cost

    @property
    def held(self) -> int:
        """Bytes held now, each piece counted with PIECE_COST more."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._table)

    def pending(self) -> Counter[str]:
        """The fragment frames of datagrams still held, as the capture ended before they
        were completed (dropped ones under their reason)."""
        out: Counter[str] = Counter()
        for key, datagram in self._table.items():
            out[reason(key[0], datagram.dropped or INCOMPLETE)] += datagram.frames
        return out

    def add(self, piece: Piece, time: float) -> bytes | None:
        """Takes one fragment seen at capture time `time`; returns the whole datagram (IP
        header and payload) when this fragment completed it, else None."""
        self._expire(time)
        table = self._table
        datagram = table.get(piece.key)
        if datagram is None:
            while len(table) >= self.max_datagrams:
                self._drop_oldest(TABLE_FULL)
            datagram = table[piece.key] = _Datagram(time)
        datagram.frames += 1
        if datagram.dropped:
            return None
        problem = self._file(datagram, piece)
        if problem:
            self._discard(datagram)
            datagram.dropped = problem
            return None
        while self._bytes > self.max_bytes and len(table) > 1:
            self._drop_oldest(TABLE_FULL, spare=datagram)
        if datagram.length < 0 or datagram.held != datagram.length:
            return None
        del table[piece.key]
        self._bytes -= datagram.held + PIECE_COST * len(datagram.pieces)
        self.counts[reason(piece.version, REASSEMBLED)] += datagram.frames - 1
        return _whole(datagram.head, piece.version, b"".join(datagram.pieces))

    def _file(self, datagram: _Datagram, piece: Piece) -> str:
        """Puts `piece` among the datagram's; the reason to drop the datagram, or ''."""
        start, data = piece.offset, piece.data
        stop = start + len(data)
        if piece.version == 4:
            # The whole datagram gets its first fragment's header, which may be longer (more
            # options) than the others': its total length, that header and the furthest
            # byte, must fit in 16 bits whichever fragment came first (until the first does,
            # each is measured with its own header).
            head = len(datagram.head or piece.head)
            held = datagram.starts[-1] + len(datagram.pieces[-1]) if datagram.starts else 0
            if max(stop, held, datagram.length) > MAX_DATAGRAM - head:
                return TOO_LARGE
        elif stop > MAX_DATAGRAM:
            return TOO_LARGE
        if not piece.more:
            # "the last fragment [...] sets the length" (RFC 815 §6): a second, different
            # end is an overlap (RFC 5722 §4 for IPv6), as is a byte held past it.
            if datagram.length >= 0 and datagram.length != stop:
                return OVERLAPPING
            if datagram.starts and datagram.starts[-1] + len(datagram.pieces[-1]) > stop:
                return OVERLAPPING
            datagram.length = stop
        elif datagram.length >= 0 and stop > datagram.length:
            return OVERLAPPING
        starts = datagram.starts
        at = bisect.bisect_left(starts, start)
        # An exact duplicate (a capture's second copy) is ignored; any other overlap drops
        # the datagram: "if any of the fragments being reassembled overlap with any other
        # fragments [...] the entire datagram [...] MUST be silently discarded" (RFC 5722
        # §4, with erratum 3089 for duplicates; Linux does the same for IPv4 since 4.19),
        # so two readers never see different bytes.
        if at < len(starts) and starts[at] == start and datagram.pieces[at] == data:
            return ""
        if at > 0 and starts[at - 1] + len(datagram.pieces[at - 1]) > start:
            return OVERLAPPING
        if at < len(starts) and starts[at] < stop:
            return OVERLAPPING
        starts.insert(at, start)
        datagram.pieces.insert(at, data)
        datagram.held += len(data)
        self._bytes += len(data) + PIECE_COST
        if start == 0:
            datagram.head = piece.head
        return ""

    def _discard(self, datagram: _Datagram) -> None:
        """Frees a datagram's pieces (it stays in the table, dropped, until it expires)."""
        self._bytes -= datagram.held + PIECE_COST * len(datagram.pieces)
        datagram.starts, datagram.pieces, datagram.held = [], [], 0

    def _drop_oldest(self, why: str, spare: _Datagram | None = None) -> None:
        """Drops the datagram held longest (but `spare`), its frames counted under `why`."""
        key = next((k for k, d in self._table.items() if d is not spare), None)
        if key is None:
            return
        datagram = self._table.pop(key)
        self._discard(datagram)
        self.counts[reason(key[0], datagram.dropped or why)] += datagram.frames

    def _expire(self, now: float) -> None:
        """Drops the datagrams whose first fragment came TIMEOUT or more before `now`. The
        table is in order of first fragment, so only its front is looked at (a capture whose
        time steps back keeps one a little longer: the caps still hold)."""
        table = self._table
        deadline = now - self.timeout
        while table:
            key, datagram = next(iter(table.items()))
            if datagram.first > deadline:
                return
            self._discard(datagram)
            del table[key]
            self.counts[reason(key[0], datagram.dropped or EXPIRED)] += datagram.frames
