"""Classic libpcap files: the 24-byte file header and the records that follow it."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator

from .frame import Backsteps, CaptureError, CaptureWarning
from .stream import MAX_RECORD, READ_ERRORS, Input, Record, fill, read_exact

# First four bytes of the file -> (struct byte order, fraction units per second).
# The writer stores 0xa1b2c3d4 (microseconds) or 0xa1b23c4d (nanoseconds) in its own byte order.
MAGICS: dict[bytes, tuple[str, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}

# A reader's `bound` when it may drop any record (it is not merged with other files).
UNBOUNDED = (math.inf, True)


def before(time: float, bound: float, inclusive: bool) -> bool:
    """Whether a record of this time comes before the bound (`PcapRecords.bound`)."""
    return time < bound or (inclusive and time == bound)


HEADER_SIZE = 24
RECORD_HEADER_SIZE = 16

# The upper bits of the link-type field carry FCS information (pcap spec, "LinkType and
# additional information"); the link type proper is the low 16 bits.
LINKTYPE_MASK = 0xFFFF


def read_pcap(inp: Input, source: int, warnings: list[CaptureWarning]) -> PcapRecords:
    """Check the file header now (CaptureError if unusable); return the file's records."""
    order, units = MAGICS[inp.head[:4]]
    try:
        head = inp.head + read_exact(inp.read, HEADER_SIZE - len(inp.head))
    except READ_ERRORS as exc:
        inp.close()
        raise CaptureError(f"{inp.name}: cannot read pcap file header: {exc}") from None
    if len(head) < HEADER_SIZE:
        inp.close()
        raise CaptureError(
            f"{inp.name}: pcap file header truncated ({len(head)} of {HEADER_SIZE} bytes)"
        )
    snaplen, network = struct.unpack_from(order + "II", head, 16)
    # Some writers store a snaplen smaller than the records they write (e.g. 1500 with
    # 1514-byte Ethernet frames) and Wireshark reads them fine, so the declared snaplen only
    # tightens the limit when it is large; below 64 KiB we allow up to 64 KiB.
    limit = min(max(snaplen, 65535), MAX_RECORD)
    return PcapRecords(inp, head[HEADER_SIZE:], order, units, limit, network & LINKTYPE_MASK,
                       source, warnings)


class PcapRecords:
    """The records of one classic pcap file, iterable once, as `Record` tuples.

    A consumer that drops most records after a glance (`Analysis.feed_records`: frames of
    ignored connections) may set `drop` before iterating: a test of the record's bytes in the
    read buffer, ``drop(buf, start, stop)``. A record it accepts is only counted: no slice,
    no tuple, no time, no yield (≈ 0.4 µs per record, 93 % of a bulk capture). `number` is
    then the frame number of the record last yielded (and, once the iteration has ended, of
    the last record read), `dropped` counts the records dropped before it (or in all), and
    `dropped_time` is the time of the last one dropped (current at each yield and at the end).

    `skip`, when set too, is a compiled loop that drops the same records faster:
    ``skip(buf, pos, little_endian, limit, units, *bound, sec, frac)`` walks the records from
    ``pos`` and returns ``(pos, skipped, sec, frac, stepped)``, stopping at the first record it
    would not drop, or that is not whole in the buffer or over ``limit``
    (`decode.decoder.ignored_record_skip`). The record it stops at goes through the loop below
    as usual, and `drop` is asked only about records `skip` has not seen whole. The ``sec,
    frac`` it is given are the time of the record before ``pos``, and ``stepped`` (None when
    none did) says how many it skipped stepped back in time from the record before them:
    ``(count, which of those skipped was the first, the largest step in seconds)``.

    `backsteps` counts the records whose time is earlier than the previous record's, over
    every record read, dropped, skipped or yielded (current once the iteration has ended).

    `bound` limits both to the records before a time: ``(time, inclusive)``. Dropped records
    still count as frames, so when several files are merged by time (`capture.MergedRecords`)
    a file may drop only what comes before every other file's next record; alone, it may
    drop anything.
    """

    def __init__(self, inp: Input, buf: bytes, order: str, units: int, limit: int,
                 linktype: int, source: int, warnings: list[CaptureWarning]) -> None:
        self.linktype = linktype
        self.drop: Callable[[bytes, int, int], bool] | None = None
        self.skip: Callable[[bytes, int, bool, int, int, float, bool, int, int],
                            tuple[int, int, int, int, tuple[int, int, float] | None]] | None = None
        self.bound: tuple[float, bool] = UNBOUNDED
        self.number = 0
        self.dropped = 0
        self.dropped_time = 0.0
        self.backsteps = Backsteps()
        # A regular file: its next record never waits for a writer (a pipe's may).
        self.regular = inp.size is not None
        self._args = (inp, buf, order, units, limit, linktype, source, warnings)

    def __iter__(self) -> Iterator[Record]:
        return self._records(*self._args)

    def _records(
        self,
        inp: Input,
        buf: bytes,
        order: str,
        units: int,
        limit: int,
        linktype: int,
        source: int,
        warnings: list[CaptureWarning],
    ) -> Iterator[Record]:
        # The per-packet hot path: one unpack_from and one slice per record, no exceptions.
        unpack = struct.Struct(order + "IIII").unpack_from
        read = inp.read
        drop = self.drop
        skip = self.skip
        little = order == "<"
        base = HEADER_SIZE  # file offset of buf[0]
        pos = 0
        end = len(buf)
        number = 0  # records read whole
        dropped = 0
        drop_sec = drop_frac = 0  # the time of the last record dropped
        last_sec = last_frac = 0  # the time of the last record read (dropped or not)
        # records earlier than the one before them: how many, the first, the largest step (a
        # merged capture's interleaved flows can make a third of its records step back)
        back = back_first = 0
        back_most = 0.0

        def warn(where: str, message: str) -> None:
            warnings.append(CaptureWarning(inp.name, where, message))

        try:
            while True:
                bound, inclusive = self.bound
                seen = skip is not None  # the compiled skip saw the next record, if whole
                if skip is not None:
                    self.number = number  # a passing TLS state numbers what it took from here
                    try:
                        pos, skipped, skipped_sec, skipped_frac, stepped = skip(
                            buf, pos, little, limit, units, bound, inclusive, last_sec,
                            last_frac)
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
                        drop_sec, drop_frac = skipped_sec, skipped_frac
                        last_sec, last_frac = skipped_sec, skipped_frac
                if end - pos < RECORD_HEADER_SIZE:
                    seen = False
                    buf, err = fill(read, buf, pos, RECORD_HEADER_SIZE)
                    base += pos
                    pos = 0
                    end = len(buf)
                    if end < RECORD_HEADER_SIZE:
                        if err:
                            warn(f"byte offset {base + end}", err)
                        elif end:
                            warn(
                                f"frame {number + 1}",
                                f"truncated record header at byte offset {base}: "
                                f"{end} of {RECORD_HEADER_SIZE} bytes",
                            )
                        return
                    if skip is not None:
                        continue  # a new chunk: the compiled skip reads it from its start
                sec, frac, incl, orig = unpack(buf, pos)
                if incl > limit:
                    warn(
                        f"frame {number + 1}",
                        f"record length {incl} at byte offset {base + pos} is larger than "
                        f"the limit of {limit} bytes: corrupt record header",
                    )
                    return
                stop = pos + RECORD_HEADER_SIZE + incl
                if stop > end:
                    seen = False
                    buf, err = fill(read, buf, pos, RECORD_HEADER_SIZE + incl)
                    base += pos
                    pos = 0
                    end = len(buf)
                    stop = RECORD_HEADER_SIZE + incl
                    if stop > end:
                        warn(
                            f"frame {number + 1}",
                            err
                            or f"truncated record at byte offset {base}: "
                            f"{end - RECORD_HEADER_SIZE} of {incl} bytes present",
                        )
                        return
                    if skip is not None:
                        # the record the last read cut is whole now: the compiled skip may
                        # take it (a passing TLS record otherwise cost a Python round,
                        # ≈ 0.1 ms, at every read: tls/passing.py)
                        continue
                number += 1
                # earlier than the record before it (the compiled skip's twin, _fastpath.pyx)
                if sec < last_sec or sec == last_sec and frac < last_frac:
                    back += 1
                    back_first = back_first or number
                    back_most = max(back_most, (last_sec - sec) + (last_frac - frac) / units)
                last_sec, last_frac = sec, frac
                if (drop is not None and not seen and drop(buf, pos + RECORD_HEADER_SIZE, stop)
                        and (bound == UNBOUNDED[0]
                             or before(sec + frac / units, bound, inclusive))):
                    dropped += 1
                    drop_sec, drop_frac = sec, frac
                    pos = stop
                    continue
                self.number, self.dropped = number, dropped
                if dropped:  # kept current for a merge (`capture.MergedRecords`)
                    self.dropped_time = drop_sec + drop_frac / units
                yield (sec + frac / units, linktype, buf[pos + RECORD_HEADER_SIZE : stop],
                       orig, source)
                pos = stop
        finally:
            self.number = number
            self.dropped = dropped
            # The same expression as a yielded record's time, so the value is identical.
            self.dropped_time = drop_sec + drop_frac / units
            self.backsteps = Backsteps(back, back_first, back_most)
            inp.close()
