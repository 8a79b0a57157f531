"""TLS records of one direction, cut from its reassembled bytes, with the frames that carried them.

How it works
------------
Every TLS record starts with a 5-byte header (RFC 8446 §5.1, RFC 5246 §6.2.1): content type,
legacy version (2 bytes), length (2 bytes). The reader appends each in-order chunk of a
direction to a buffer and cuts whole records off its front. For each chunk it remembers where
it starts in the stream and which frame carried it, so a record knows the frames of its first
and last byte (`Record.pieces` keeps where each carrying chunk starts).

A header that cannot start a record (unknown content type, a major version other than 3, a
length over the protocol's maximum) stops the reader: it says `broken` with the reason instead
of guessing where the next record would begin.

After a hole in the capture (`resume`) the bytes that follow may begin inside a record. The
reader then seeks: a position is taken as a record's start only when its header is plausible
(TLS 1.2/1.3 record version 0x0303) and the header right after that record is plausible too,
or the record ends exactly where the bytes seen so far end (a segment boundary). What it finds
is still only a candidate: the session authenticates it (decrypt.py) before trusting it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from enum import IntEnum

from analyzer.slotted import slot_setters


class ContentType(IntEnum):
    """RFC 8446 §5.1 (and RFC 6520 for heartbeat)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24


HEADER_LENGTH = 5
# RFC 8446 §5.2: "The length MUST NOT exceed 2^14 + 256 bytes"; RFC 5246 §6.2.3 allows
# 2^14 + 2048 for TLS 1.2 ciphertext. The larger bound serves both.
MAX_RECORD_LENGTH = 2**14 + 2048
_CONTENT_TYPES = frozenset(int(t) for t in ContentType)
_SEEK_LIMIT = 2 * (HEADER_LENGTH + MAX_RECORD_LENGTH)  # a record and a header fit in this


@dataclass(frozen=True, slots=True)
class Record:
    """One TLS record as it crossed the wire."""

    content_type: int
    version: int  # the legacy record version (0x0301..0x0303)
    body: bytes  # the fragment (ciphertext when protected)
    offset: int  # stream offset of the header's first byte
    first_frame: int  # frame carrying the header's first byte
    last_frame: int  # frame carrying the record's last byte
    time: float  # time of the frame carrying the last byte (when the record could be read)
    pieces: tuple[tuple[int, int, float], ...]  # (stream offset, frame, time) of each chunk start

    @property
    def end(self) -> int:
        return self.offset + HEADER_LENGTH + len(self.body)


# A frozen dataclass's ``__init__`` stores each field through ``object.__setattr__``: 1.2 µs
# for a Record's eight, ≈ 9 k instructions, and a decrypted session reads ≈ 14 records in
# Python. Its slots' own descriptors store the same values for half (as exchange/made.py does
# for attempts; also decrypt.made_opened, values.made_plain, handshake.made_handshake_message).
# `made_record` is that; its plain twin is the constructor, which tests/test_made_values.py
# compares it with on every record of the bundled captures.
(_set_content_type, _set_version, _set_body, _set_offset, _set_first_frame, _set_last_frame,
 _set_time, _set_pieces) = slot_setters(Record)
_new_object = object.__new__


def made_record(content_type: int, version: int, body: bytes, offset: int, first_frame: int,
                last_frame: int, time: float,
                pieces: tuple[tuple[int, int, float], ...]) -> Record:
    """``Record(content_type, version, body, offset, first_frame, last_frame, time, pieces)``."""
    made = _new_object(Record)
    _set_content_type(made, content_type)
    _set_version(made, version)
    _set_body(made, body)
    _set_offset(made, offset)
    _set_first_frame(made, first_frame)
    _set_last_frame(made, last_frame)
    _set_time(made, time)
    _set_pieces(made, pieces)
    return made


def header_problem(header: bytes) -> str:
    """Why these 5 bytes cannot be a TLS record header, or "" when they can."""
    return _header_fault(header[0], header[1], header[2], (header[3] << 8) | header[4])


def _header_fault(kind: int, major: int, minor: int, length: int) -> str:
    """`header_problem` of a header already taken apart (the reader's, once per record)."""
    if kind not in _CONTENT_TYPES:
        return f"content type {kind} is not a TLS record type"
    if major != 3 or minor > 4:
        return f"record version {major:#04x}{minor:02x} is not TLS"
    if length > MAX_RECORD_LENGTH:
        return f"record length {length} is over the maximum {MAX_RECORD_LENGTH}"
    return ""


# Most chunks a decrypting session reads in Python hold whole records (a flight, a request,
# a response head, gathered in C up to a record's end): cut where they lie, they need neither
# the buffer nor its chunk positions (`RecordReader._whole_records`). False: every chunk goes
# through the buffer, the plain twin tests/test_tls.py compares it with.
WHOLE_RECORDS = True


class RecordReader:
    """Cuts one direction's in-order bytes into TLS records."""

    __slots__ = ("_buffer", "_start", "_pieces", "broken", "records_read", "_need", "_discard",
                 "seeking")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start = 0  # stream offset of the buffer's first byte
        self._pieces: list[tuple[int, int, float]] = []  # chunks that the buffer holds bytes of
        self.broken = ""  # why the reader stopped ("" while it reads)
        self.records_read = 0
        self._need = HEADER_LENGTH  # buffered bytes needed before the next record can complete
        self._discard = 0  # bytes of a record that went by unread (`passed`) still to come
        self.seeking = False  # after a hole: looking for the next record's header

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete record waiting for the rest."""
        return len(self._buffer)

    @property
    def next_offset(self) -> int:
        """Stream offset of the first byte not yet cut into a record."""
        return self._start

    def feed(self, offset: int, data: bytes, frame: int, time: float) -> list[Record]:
        """Append the in-order chunk at stream ``offset``; return the records it completed."""
        if self.broken or not data:
            return []
        if self.seeking:
            return self._seek(offset, data, frame, time)
        if offset != self._start + len(self._buffer):
            # The reassembler delivers in order; anything else means bytes were skipped.
            self.broken = f"bytes out of order at offset {offset}"
            return []
        if self._discard:
            dropped = min(self._discard, len(data))
            self._discard -= dropped
            self._start += dropped
            data = data[dropped:]
            offset += dropped
            if not data:
                return []
        if WHOLE_RECORDS and not self._buffer and type(data) is bytes:
            whole = self._whole_records(offset, data, frame, time)
            if whole is not None:
                return whole
        self._buffer += data
        self._pieces.append((offset, frame, time))
        if len(self._buffer) < self._need:  # the usual case mid-record: nothing to cut yet
            return []
        records: list[Record] = []
        buffer = self._buffer
        position = 0
        while len(buffer) - position >= HEADER_LENGTH:
            kind, major, minor = buffer[position], buffer[position + 1], buffer[position + 2]
            length = (buffer[position + 3] << 8) | buffer[position + 4]
            problem = _header_fault(kind, major, minor, length)  # (no 5-byte copy per record)
            if problem:
                self.broken = problem
                break
            end = position + HEADER_LENGTH + length
            if end > len(buffer):
                self._need = end - position
                break
            start_offset = self._start + position
            records.append(self._record(kind, (major << 8) | minor,
                                        bytes(buffer[position + HEADER_LENGTH:end]),
                                        start_offset, self._start + end))
            position = end
        if len(buffer) - position < HEADER_LENGTH:
            self._need = HEADER_LENGTH
        if position:
            del buffer[:position]
            self._start += position
            self._drop_pieces_before(self._start)
        if self.broken:
            self._buffer.clear()
            self._pieces.clear()
        self.records_read += len(records)
        return records

    def _whole_records(self, offset: int, data: bytes, frame: int,
                       time: float) -> list[Record] | None:
        """The records of ``data`` when it holds whole ones and nothing else, cut from it
        where they lie (what `feed` makes of it through the buffer, which is empty); None
        otherwise (a record cut, or a header that stops the reader)."""
        size = len(data)
        position = 0
        while position < size:  # first the headers: all whole, none at fault
            if size - position < HEADER_LENGTH:
                return None
            end = position + HEADER_LENGTH + ((data[position + 3] << 8) | data[position + 4])
            if end > size or _header_fault(data[position], data[position + 1],
                                           data[position + 2], end - position - HEADER_LENGTH):
                return None
            position = end
        records: list[Record] = []
        piece = (offset, frame, time)
        position = 0
        while position < size:
            end = position + HEADER_LENGTH + ((data[position + 3] << 8) | data[position + 4])
            start = offset + position
            records.append(made_record(
                data[position], (data[position + 1] << 8) | data[position + 2],
                data[position + HEADER_LENGTH:end], start, frame, frame, time,
                (piece,) if not position else ((start, frame, time),)))
            position = end
        self._start = offset + size
        self._need = HEADER_LENGTH
        self.records_read += len(records)
        return records

    def partial(self) -> tuple[int, int, int] | None:
        """For tls/passing.py: (bytes still to come of the record being buffered, its outer
        content type, its length), (0, 23, 0) between records, (n, 23, 0) inside a record
        that went by unread with n bytes still to come (they pass on unread too), None when
        that is not known (a header not yet whole, a reader that stopped)."""
        if self.broken or self.seeking:
            return None
        buffer = self._buffer
        if not buffer:
            # Without the rest of a passed record here, a pass stopped mid-record (a sweep, a
            # request from the peer) left the record's other segments, one by one, to Python.
            return self._discard, ContentType.APPLICATION_DATA, 0
        if len(buffer) < HEADER_LENGTH or buffer[1] != 3 or buffer[2] != 3:
            return None
        length = (buffer[3] << 8) | buffer[4]
        if length > MAX_RECORD_LENGTH:
            return None
        return HEADER_LENGTH + length - len(buffer), buffer[0], length

    def held(self) -> bytes:
        """The buffered start of the next record (tls/passing.py)."""
        return bytes(self._buffer)

    def passed(self, count: int, records: int, to_header: int, absorbed: bool) -> None:
        """``count`` bytes went by unread (tls/passing.py): ``records`` records began in them
        (plus the one buffered, dropped now, when ``absorbed``), and the last one has
        ``to_header`` bytes still to come, which `feed` drops."""
        if not count and not absorbed:  # only ACKs went by: the reader stays where it was
            return
        if absorbed:
            self._start += len(self._buffer)
            self._buffer.clear()
            self._pieces.clear()
            records += 1
        self._start += count
        self._discard = to_header
        self._need = HEADER_LENGTH
        self.records_read += records

    def resume(self, offset: int) -> None:
        """Bytes before ``offset`` are missing (a hole in the capture): drop the record cut by
        it and seek the next record's header in what follows."""
        self._buffer.clear()
        self._pieces.clear()
        self._start = offset
        self._discard = 0
        self._need = HEADER_LENGTH
        self.broken = ""
        self.seeking = True

    def _seek(self, offset: int, data: bytes, frame: int, time: float) -> list[Record]:
        if not self._buffer:  # (an offset past the hole: more was lost, seek from there)
            self._start = max(offset, self._start)
        elif offset != self._start + len(self._buffer):
            self.broken = f"bytes out of order at offset {offset}"
            return []
        self._buffer += data
        self._pieces.append((offset, frame, time))
        buffer = self._buffer
        found = None
        for position in range(len(buffer) - HEADER_LENGTH + 1):
            verdict = _plausible_start(buffer, position)
            if verdict is None:  # cannot tell yet: wait for more bytes
                break
            if verdict:
                found = position
                break
        else:
            position = max(len(buffer) - HEADER_LENGTH + 1, 0)
        start = position if found is None else found
        if len(buffer) > _SEEK_LIMIT and found is None:
            self.broken = "no TLS record header found after the hole"
            self._buffer.clear()
            self._pieces.clear()
            return []
        if start:
            del buffer[:start]
            self._start += start
            self._drop_pieces_before(self._start)
        if found is None:
            return []
        self.seeking = False
        base, held, pieces = self._start, bytes(buffer), self._pieces[:]
        buffer.clear()
        self._pieces.clear()
        records: list[Record] = []
        for index, (chunk_offset, chunk_frame, chunk_time) in enumerate(pieces):
            begin = max(chunk_offset, base)  # replayed from the record found, chunk by chunk
            end = pieces[index + 1][0] if index + 1 < len(pieces) else base + len(held)
            if end > begin:
                records += self.feed(begin, held[begin - base:end - base], chunk_frame,
                                     chunk_time)
        return records

    def _record(self, content_type: int, version: int, body: bytes, start: int,
                end: int) -> Record:
        pieces = self._pieces
        if len(pieces) == 1:  # the usual case: one chunk holds the whole record
            piece = pieces[0]
            carried: tuple[tuple[int, int, float], ...] = (
                ((start, piece[1], piece[2]),) if piece[0] < start else (piece,))
        else:
            starts = [piece[0] for piece in pieces]
            first = max(bisect_right(starts, start) - 1, 0)
            last = max(bisect_right(starts, end - 1) - 1, 0)
            carried = tuple(pieces[first:last + 1])
            if carried[0][0] < start:  # the first chunk began in an earlier record
                carried = ((start, carried[0][1], carried[0][2]),) + carried[1:]
        ending = carried[-1]
        return made_record(content_type, version, body, start, carried[0][1], ending[1],
                           ending[2], carried)

    def _drop_pieces_before(self, offset: int) -> None:
        pieces = self._pieces
        keep = 0
        while keep + 1 < len(pieces) and pieces[keep + 1][0] <= offset:
            keep += 1
        if keep:
            del pieces[:keep]
        if pieces and not self._buffer:
            pieces.clear()


def _plausible_start(buffer: bytes | bytearray, position: int) -> bool | None:
    """Whether a record may start at ``position`` after a hole (the module's docstring);
    None when the bytes seen so far cannot tell."""
    header = bytes(buffer[position:position + HEADER_LENGTH])
    if header[1:3] != b"\x03\x03" or header_problem(header):
        return False
    end = position + HEADER_LENGTH + ((header[3] << 8) | header[4])
    if end == len(buffer):
        return True
    if end + HEADER_LENGTH > len(buffer):
        return None
    following = bytes(buffer[end:end + HEADER_LENGTH])
    return following[1:3] == b"\x03\x03" and not header_problem(following)


def find_record_start(data: bytes, limit: int = _SEEK_LIMIT) -> int | None:
    """Where in ``data`` (bytes after a hole) a TLS record plausibly starts, by the rule of
    `RecordReader` after a hole (a plausible header followed by another, or whose record ends
    where ``data`` does); None when no position within ``limit`` bytes can be told to."""
    for position in range(min(len(data), limit) - HEADER_LENGTH + 1):
        if _plausible_start(data, position):
            return position
    return None
