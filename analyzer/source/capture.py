"""The capture source: open every input, merge them by time and number the frames."""

from __future__ import annotations

import heapq
import math
import os
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence

from . import pcap, pcapng
from .detect import describe
from .frame import Backsteps, CaptureError, CaptureWarning, Frame
from .pcap import UNBOUNDED
from .stream import Input, Record, more_head, open_bytes, open_input

# How many leading bytes we look at to describe a file that is not a capture.
_DESCRIBE_BYTES = 64


SecretsSink = Callable[[int, bytes], None]  # (secrets type, secrets) of a pcapng DSB


def read_captures(paths: Sequence[str], warnings: list[CaptureWarning],
                  secrets: SecretsSink | None = None) -> Iterator[Frame]:
    """Read pcap/pcapng files (plain or gzip; "-" is standard input) as one capture.

    Every input is opened and identified before this returns, so an unreadable one raises
    CaptureError before any frame is produced. Damage found later is appended to `warnings`
    and ends the reading of that input only. Several inputs are merged in timestamp order
    (ties keep input order) and numbered 1.. over the merged stream, as mergecap + Wireshark
    would number them. ``secrets`` is given the pcapng Decryption Secrets Blocks' contents
    (type, bytes) as they are read (`Analysis.add_secrets`).
    """
    return _frames(read_records(paths, warnings, secrets=secrets))


def expand_inputs(paths: Sequence[str]) -> list[str]:
    """The paths with each directory replaced by the capture files in it, in name order (the
    files `tcpdump -C/-G -w DIR/name` rotated there): regular files whose first bytes are
    pcap or pcapng, plain or compressed (gzip, xz, bzip2, zstd, lz4: `-z`); hidden files and
    anything else in it are passed over.
    CaptureError for a directory that cannot be listed or holds no capture."""
    out: list[str] = []
    for path in paths:
        if path == "-" or not os.path.isdir(path):
            out.append(path)
            continue
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise CaptureError(f"{path}: cannot list directory: {exc.strerror or exc}") from None
        found = [os.path.join(path, name) for name in names
                 if not name.startswith(".") and _is_capture(os.path.join(path, name))]
        if not found:
            raise CaptureError(f"{path}: directory without capture files (pcap, pcapng)")
        out.extend(found)
    return out


def _is_capture(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        inp = open_input(path)
    except CaptureError:
        return False
    inp.close()
    return inp.head[:4] in pcap.MAGICS or inp.head[:4] == pcapng.MAGIC


def read_records(paths: Sequence[str], warnings: list[CaptureWarning],
                 opened: list[Input] | None = None,
                 secrets: SecretsSink | None = None) -> Iterable[Record]:
    """The records of `read_captures` as plain tuples (time, linktype, data, wire_length,
    source), merged in the same order; a record's frame number is its position, from 1.

    For the pipeline's bulk path (`Analysis.feed_records`): building a Frame costs about
    0.7 µs, as much as reading the record, and most records are dropped after one look-up.
    A single classic pcap file comes back as its `pcap.PcapRecords`, which can drop records
    without slicing them (see there). `opened`, when given, receives the open inputs (their
    sizes and read positions: progress).
    """
    iterators: list[Iterable[Record]] = []
    opened = [] if opened is None else opened
    try:
        for index, path in enumerate(paths):
            inp = open_input(path)
            opened.append(inp)
            records = _records(inp, index, warnings)
            if secrets is not None and isinstance(records, pcapng.PcapngRecords):
                records.secrets = secrets
            iterators.append(records)
    except CaptureError:
        for inp in opened:
            inp.close()
        raise
    if len(iterators) == 1:
        return iterators[0]
    return MergedRecords(iterators)


class MergedRecords:
    """Several inputs as one capture: their records in timestamp order, ties in input order,
    each input keeping its own record order even where its clock steps back (exactly as
    ``heapq.merge(*inputs, key=time)`` gives them). Iterable once.

    Each input's reader may drop records unseen (`pcap.PcapRecords.skip`, set on
    `inputs` by the pipeline), but dropped records are frames too, numbered by their place
    in the merged order. So before an input is read on, its `bound` is set to the next
    record of the other inputs: it may drop only what the merge would have given before
    that. With rotated files (``tcpdump -C/-G``), which follow each other in time, that is
    every record of ignored connections, and the compiled skip runs as for a single file.
    `number`, `dropped` and `dropped_time` mean what they mean for one reader, counted over
    the merged order.
    """

    def __init__(self, inputs: list[Iterable[Record]]) -> None:
        self.inputs = inputs
        self.number = 0
        self.dropped = 0
        self.dropped_time = 0.0
        # Runs of the merged order that come from one input (`origin`): the merged frame
        # number each starts at, its input, and its first frame number within that input. A
        # run per switch between inputs: a handful for rotated files, 24 bytes per switch for
        # interleaved ones.
        self._starts = array("q")
        self._sources = array("q")
        self._firsts = array("q")

    def origin(self, number: int) -> tuple[int, int]:
        """The input index of merged frame ``number`` (read so far) and its frame number
        within that input, as Wireshark numbers it when that file is opened alone."""
        run = bisect_right(self._starts, number) - 1
        if run < 0:
            return 0, number
        return self._sources[run], self._firsts[run] + number - self._starts[run]

    def backsteps(self) -> Backsteps:
        """The records whose time is earlier than the previous record's, numbered in the
        merged order (read so far). The merge steps back exactly where an input does, by as
        much: after an input's record every other input's next one is no earlier, so a
        record earlier than it is its own input's next, given at once. So these are the
        inputs' own (`pcap.PcapRecords.backsteps`), whatever was dropped unseen."""
        merged = Backsteps()
        for index, reader in enumerate(self.inputs):
            steps = getattr(reader, "backsteps", None)
            if steps is not None and steps.count:
                merged.add(self._merged_number(index, steps.first_frame), steps.largest,
                           steps.count)
        return merged

    def _merged_number(self, source: int, within: int) -> int:
        """`origin`'s inverse: the merged frame number of frame ``within`` of input ``source``
        (read so far): in the last of that input's runs that starts at or before it (an
        input's runs start further on in it one after the other). At the end of a read."""
        found = 0
        for run in range(len(self._starts)):
            if self._sources[run] == source:
                if self._firsts[run] > within:
                    break
                found = self._starts[run] + within - self._firsts[run]
        return found

    def __iter__(self) -> Iterator[Record]:
        return self._merge()

    def _merge(self) -> Iterator[Record]:
        # Readers that can drop records (and so take a bound), by input index; None for others.
        droppers = [reader if isinstance(reader, pcap.PcapRecords | pcapng.PcapngRecords)
                    else None for reader in self.inputs]
        iterators = [iter(reader) for reader in self.inputs]
        # The frame number within its input of each input's next record (dropped records count).
        within = [0] * len(iterators)
        last = -1  # the input of the record yielded last
        # (time, input index, record) of each input's next record: a tuple compares as
        # heapq.merge does, by time and then by input (indices differ, records are never
        # compared).
        heads: list[tuple[float, int, Record]] = []
        for index, iterator in enumerate(iterators):
            dropper = droppers[index]
            if dropper is not None:
                dropper.bound = _NOTHING  # nothing is dropped before all heads are known
            record = next(iterator, None)
            if record is not None:
                within[index] = dropper.number if dropper is not None else 1
                heads.append((record[0], index, record))
        heapq.heapify(heads)
        yielded = dropped = 0
        try:
            while heads:
                _, index, record = heads[0]
                yielded += 1
                self.number = yielded + dropped
                if index != last:
                    last = index
                    self._starts.append(self.number)
                    self._sources.append(index)
                    self._firsts.append(within[index])
                yield record
                dropper = droppers[index]
                if dropper is None:
                    record = next(iterators[index], None)
                    within[index] += 1
                else:
                    # The input's next record; before it, the reader may drop what precedes
                    # every other input's next record (the smaller of the root's children).
                    if len(heads) > 1:
                        time, other, _ = min(heads[1:3])
                        dropper.bound = (time, index < other)
                    else:
                        dropper.bound = UNBOUNDED
                    before = dropper.dropped
                    record = next(iterators[index], None)
                    within[index] = dropper.number
                    if dropper.dropped != before:  # the records just dropped are the latest
                        dropped += dropper.dropped - before
                        self.dropped_time = dropper.dropped_time
                if record is None:
                    heapq.heappop(heads)
                else:
                    heapq.heapreplace(heads, (record[0], index, record))
        finally:
            self.dropped = dropped
            self.number = yielded + dropped


# A bound before every time: no record may be dropped.
_NOTHING = (-math.inf, False)


def read_bytes(
    data: bytes, warnings: list[CaptureWarning], name: str = "<memory>"
) -> Iterator[Frame]:
    """One capture held in memory (pcap, pcapng, either compressed), read as `read_captures`
    reads a file: CaptureError at once when it cannot be read, damage appended to `warnings`."""
    return _frames(read_record_bytes(data, warnings, name))


def read_record_bytes(
    data: bytes, warnings: list[CaptureWarning], name: str = "<memory>"
) -> Iterable[Record]:
    """The records of `read_bytes` as `read_records` gives them (a single pcap or pcapng
    reader that can skip records unseen: the pipeline's fast path, for its tests)."""
    return _records(open_bytes(name, data), 0, warnings)


def records_of(inp: Input, warnings: list[CaptureWarning]) -> Iterable[Record]:
    """The records of one input opened elsewhere, as `read_records` gives one file's: a
    `read --jobs` worker's copy of a compressed capture decompressed once for all workers
    (analyzer/scale/fanout.py)."""
    return _records(inp, 0, warnings)


def check_capture(path: str) -> None:
    """Open and identify one input, then close it: CaptureError if it cannot be read."""
    inp = open_input(path)
    _records(inp, 0, [])  # reads the file header; closes the input itself when it raises
    inp.close()


def _records(inp: Input, source: int, warnings: list[CaptureWarning]) -> Iterable[Record]:
    magic = inp.head[:4]
    if magic in pcap.MAGICS:
        return pcap.read_pcap(inp, source, warnings)
    if magic == pcapng.MAGIC:
        return pcapng.read_pcapng(inp, source, warnings)
    what = describe(more_head(inp, _DESCRIBE_BYTES))
    inp.close()
    if inp.compressed:
        raise CaptureError(
            f"{inp.name}: {inp.compressed} of something that is not a capture: looks like {what}"
        )
    raise CaptureError(f"{inp.name}: not a capture file: looks like {what}")


def _frames(merged: Iterable[Record]) -> Iterator[Frame]:
    for number, (time, linktype, data, wire_length, source) in enumerate(merged, 1):
        yield Frame(number, time, linktype, data, wire_length, source)
