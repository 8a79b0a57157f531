"""pcapng files: sections, interfaces and the packet blocks (EPB, SPB, obsolete PB)."""

# How it works: a pcapng file is a sequence of blocks (type, total length, body, total length
# again). Each Section Header Block (SHB) starts a new section with its own byte order and an
# empty interface list; each Interface Description Block (IDB) appends an interface with its
# link type, snaplen and timestamp resolution; packet blocks name an interface by index.
# dpkt's pcapng.Reader only understands one interface, so blocks are walked here directly.
# Reference: draft-ietf-opsawg-pcapng (sections 4.1 SHB, 4.2 IDB, 4.3 EPB, 4.4 SPB, A.1 PB).

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator

from .frame import Backsteps, CaptureError, CaptureWarning
from .pcap import UNBOUNDED
from .stream import MAX_RECORD, READ_ERRORS, Input, Record, fill, read_exact

MAGIC = b"\x0a\x0d\x0d\x0a"  # SHB block type; the same in both byte orders

SHB = 0x0A0D0D0A
IDB = 0x00000001
PB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003
EPB = 0x00000006
DSB = 0x0000000A  # Decryption Secrets Block (section 4.7): secrets type, length, data

BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14

# Non-packet blocks (name resolution, statistics, secrets...) can be large, but a length in the
# gigabytes is a corrupt field. Wireshark caps blocks at 16 MiB for the same reason.
MAX_BLOCK = 16 * 1024 * 1024

_U32 = {o: struct.Struct(o + "I") for o in "<>"}
_BLOCK_HEAD = {o: struct.Struct(o + "II") for o in "<>"}  # type, total length
_EPB = {o: struct.Struct(o + "IIIII") for o in "<>"}  # interface, ts high, ts low, caplen, len
_PB = {o: struct.Struct(o + "HHIIII") for o in "<>"}  # interface, drops, ts high/low, caplen, len
_IDB = {o: struct.Struct(o + "HHI") for o in "<>"}  # link type, reserved, snaplen
_OPT = {o: struct.Struct(o + "HH") for o in "<>"}  # option code, length
_TSOFFSET = {o: struct.Struct(o + "q") for o in "<>"}


def _byte_order(block: bytes, pos: int) -> str | None:
    """The byte order an SHB at `pos` declares, or None if its byte-order magic is wrong."""
    if _U32["<"].unpack_from(block, pos + 8)[0] == BYTE_ORDER_MAGIC:
        return "<"
    if _U32[">"].unpack_from(block, pos + 8)[0] == BYTE_ORDER_MAGIC:
        return ">"
    return None


def read_pcapng(inp: Input, source: int, warnings: list[CaptureWarning]) -> PcapngRecords:
    """Check the first section header now (CaptureError if unusable); return the records."""
    try:
        head = inp.head + read_exact(inp.read, 12 - len(inp.head))
    except READ_ERRORS as exc:
        inp.close()
        raise CaptureError(f"{inp.name}: cannot read pcapng section header: {exc}") from None
    if len(head) < 12:
        inp.close()
        raise CaptureError(f"{inp.name}: pcapng section header truncated ({len(head)} bytes)")
    if _byte_order(head, 0) is None:
        inp.close()
        raise CaptureError(f"{inp.name}: starts like pcapng but the byte-order magic is wrong")
    return PcapngRecords(inp, head, source, warnings)


class _Interface:
    __slots__ = ("linktype", "snaplen", "units", "offset")

    def __init__(self, linktype: int, snaplen: int, units: float, offset: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.units = units  # timestamp units per second
        self.offset = offset  # seconds to add (if_tsoffset)


def _interface(buf: bytes, pos: int, blen: int, order: str) -> _Interface:
    linktype, _, snaplen = _IDB[order].unpack_from(buf, pos + 8)
    units = 1_000_000.0
    offset = 0
    unpack_opt = _OPT[order].unpack_from
    p = pos + 16
    stop = pos + blen - 4
    # Options are optional and a malformed one costs us nothing but the option: stop looking.
    while p + 4 <= stop:
        code, length = unpack_opt(buf, p)
        if code == OPT_ENDOFOPT or p + 4 + length > stop:
            break
        if code == OPT_IF_TSRESOL and length >= 1:
            # "If the Most Significant Bit is equal to zero, the remaining bits indicates the
            # resolution of the timestamp as a negative power of 10 [...] If the Most
            # Significant Bit is equal to one, [...] as negative power of 2" (section 4.2)
            res = buf[p + 4]
            units = float(2 ** (res & 0x7F)) if res & 0x80 else float(10**res)
        elif code == OPT_IF_TSOFFSET and length >= 8:
            offset = _TSOFFSET[order].unpack_from(buf, p + 4)[0]
        p += 4 + ((length + 3) & ~3)
    return _Interface(linktype, snaplen, units, offset)


# skip(buf, pos, little_endian, interfaces, max_record, max_block, bound, inclusive, time)
#   -> (pos, skipped, interface, ts_high, ts_low, stepped): see `PcapngRecords`. An interface
# is given as (link type, time units per second, time offset).
BlockSkip = Callable[
    [bytes, int, bool, tuple[tuple[int, float, int], ...], int, int, float, bool, float],
    tuple[int, int, int, int, int, tuple[int, int, float] | None],
]


class PcapngRecords:
    """The records of one pcapng file, iterable once, as `Record` tuples.

    Like `pcap.PcapRecords`, a consumer that drops most records after a glance may set
    `skip` before iterating: a compiled loop (`decode.decoder.ignored_block_skip`) that walks
    the Enhanced Packet Blocks from ``pos`` and skips those of ignored connections, stopping
    at the first block it would keep or that the loop below must look at (any other block
    type, a questionable length, trailer or interface). Skipped blocks are only counted:
    `number` is the frame number of the record last yielded (once the iteration has ended,
    of the last record read), `dropped` counts the records skipped before it (or in all),
    and `dropped_time`, set at the end, is the time of the last one skipped. `bound` limits
    skipping to records before a time, as for `PcapRecords.bound`; ``time``, the time of the
    record before ``pos``, and ``stepped`` are `PcapRecords.skip`'s ``sec, frac`` and
    ``stepped``, and `backsteps` its `backsteps` (a Simple Packet Block has no time: it steps
    neither back nor forward).
    """

    def __init__(self, inp: Input, buf: bytes, source: int,
                 warnings: list[CaptureWarning]) -> None:
        self.skip: BlockSkip | None = None
        # Called with (secrets type, secrets) for each Decryption Secrets Block, if set.
        self.secrets: Callable[[int, bytes], None] | None = None
        self.bound: tuple[float, bool] = UNBOUNDED
        self.number = 0
        self.dropped = 0
        self.dropped_time = 0.0
        self.backsteps = Backsteps()
        # A regular file: its next block never waits for a writer (a pipe's may).
        self.regular = inp.size is not None
        self._args = (inp, buf, source, warnings)

    def __iter__(self) -> Iterator[Record]:
        return self._records(*self._args)

    def _records(
        self, inp: Input, buf: bytes, source: int, warnings: list[CaptureWarning]
    ) -> Iterator[Record]:
        read = inp.read
        base = 0  # file offset of buf[0]
        pos = 0
        end = len(buf)
        number = 0  # records yielded or skipped; a damaged block is named frame number + 1
        dropped = 0  # records the skip passed over
        skip = self.skip
        # The section's interfaces as skip needs them: (link type, units, offset).
        timing: tuple[tuple[int, float, int], ...] = ()
        order = "<"
        interfaces: list[_Interface] = []
        last_time = 0.0
        previous = -math.inf  # the time of the last record read that had one (skipped or not)
        back = back_first = 0  # records earlier than the one before them (`PcapRecords`)
        back_most = 0.0
        block_head = _BLOCK_HEAD[order].unpack_from
        epb = _EPB[order].unpack_from

        def warn(where: str, message: str) -> None:
            warnings.append(CaptureWarning(inp.name, where, message))

        try:
            while True:
                if skip is not None:
                    self.number = number  # a passing TLS state numbers what it took from here
                    try:
                        pos, skipped, iface, hi, lo, stepped = skip(
                            buf, pos, order == "<", timing, MAX_RECORD, MAX_BLOCK, *self.bound,
                            previous)
                    except Exception as error:  # a bug in what it calls: name the frame it
                        number += getattr(error, "frames_before", 0) + 1  # was on (_fastpath)
                        raise
                    if skipped:
                        if stepped is not None:  # some stepped back in time
                            back += stepped[0]
                            back_first = back_first or number + stepped[1]
                            back_most = max(back_most, stepped[2])
                        number += skipped
                        dropped += skipped
                        ifc = interfaces[iface]
                        last_time = previous = ((hi << 32) | lo) / ifc.units + ifc.offset
                        self.dropped_time = last_time
                if end - pos < 12:
                    buf, err = fill(read, buf, pos, 12)
                    base += pos
                    pos = 0
                    end = len(buf)
                    if end < 12:
                        if err:
                            warn(f"byte offset {base + end}", err)
                        elif end:
                            warn(f"byte offset {base}", f"truncated block header: {end} bytes")
                        return
                    if skip is not None:
                        continue  # a new chunk: the compiled skip reads it from its start
                btype, blen = block_head(buf, pos)
                if btype == SHB:
                    new_order = _byte_order(buf, pos)
                    if new_order is None:
                        warn(
                            f"byte offset {base + pos}",
                            "section header with a wrong byte-order magic: garbage or "
                            "corruption",
                        )
                        return
                    order = new_order
                    block_head = _BLOCK_HEAD[order].unpack_from
                    epb = _EPB[order].unpack_from
                    btype, blen = block_head(buf, pos)
                    interfaces = []
                    timing = ()
                if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                    warn(
                        f"byte offset {base + pos}",
                        f"corrupt block length {blen} (block type {btype:#x})",
                    )
                    return
                if end - pos < blen:
                    buf, err = fill(read, buf, pos, blen)
                    base += pos
                    pos = 0
                    end = len(buf)
                    if end < blen:
                        warn(
                            f"byte offset {base}",
                            err or f"truncated block (type {btype:#x}): {end} of {blen} bytes",
                        )
                        return
                    if skip is not None and btype == EPB:
                        continue  # whole now: the compiled skip may take it (pcap.py says why)
                if block_head(buf, pos + blen - 8)[1] != blen:
                    warn(
                        f"byte offset {base + pos}",
                        f"block length {blen} (type {btype:#x}) does not match its trailer: "
                        "corrupt block",
                    )
                    return

                if btype in (EPB, PB):
                    if blen < 32:
                        warn(f"byte offset {base + pos}", f"packet block too short ({blen} bytes)")
                        return
                    if btype == EPB:
                        iface, hi, lo, cap, orig = epb(buf, pos + 8)
                    else:
                        iface, _, hi, lo, cap, orig = _PB[order].unpack_from(buf, pos + 8)
                    if iface >= len(interfaces):
                        warn(
                            f"frame {number + 1}",
                            f"packet block names interface {iface}, but the "
                            f"section describes {len(interfaces)}",
                        )
                        return
                    if cap > blen - 32 or cap > MAX_RECORD:
                        warn(
                            f"frame {number + 1}",
                            f"captured length {cap} does not fit its block "
                            f"of {blen} bytes at byte offset {base + pos}: corrupt block",
                        )
                        return
                    ifc = interfaces[iface]
                    last_time = ((hi << 32) | lo) / ifc.units + ifc.offset
                    number += 1
                    if last_time < previous:  # (the compiled skip's twin, _fastpath.pyx)
                        back += 1
                        back_first = back_first or number
                        back_most = max(back_most, previous - last_time)
                    previous = last_time
                    self.number, self.dropped = number, dropped
                    yield (last_time, ifc.linktype, buf[pos + 28 : pos + 28 + cap], orig, source)
                elif btype == SPB:
                    if not interfaces:
                        warn(f"frame {number + 1}", "simple packet block before any interface")
                        return
                    orig = _U32[order].unpack_from(buf, pos + 8)[0]
                    # "the Captured Packet Length [is] the minimum value among the Original Packet
                    # Length and the value of the SnapLen field of the IDB" (section 4.4); an SPB
                    # has no timestamp, so it keeps the time of the record before it.
                    cap = min(orig, blen - 16)
                    if interfaces[0].snaplen:
                        cap = min(cap, interfaces[0].snaplen)
                    number += 1
                    self.number, self.dropped = number, dropped
                    yield (
                        last_time,
                        interfaces[0].linktype,
                        buf[pos + 12 : pos + 12 + cap],
                        orig,
                        source,
                    )
                elif btype == IDB:
                    if blen < 20:
                        warn(f"byte offset {base + pos}",
                             f"interface block too short ({blen} bytes)")
                        return
                    interfaces.append(_interface(buf, pos, blen, order))
                    timing = tuple((i.linktype, i.units, i.offset) for i in interfaces)
                elif btype == DSB and self.secrets is not None and blen >= 20:
                    kind, length = _BLOCK_HEAD[order].unpack_from(buf, pos + 8)
                    self.secrets(kind, bytes(buf[pos + 16 : pos + 16 + min(length, blen - 20)]))
                # Every other block (statistics, name resolution, secrets, custom) carries no
                # packet, and an unknown type is skippable by design of the format.
                pos += blen
        finally:
            self.number, self.dropped = number, dropped
            self.backsteps = Backsteps(back, back_first, back_most)
            inp.close()
