"""Reads both directions of one HTTP/2 connection, as an observer: bytes in, frame events out.

How it works
------------
Each direction is a small state machine fed with the bytes of one TCP (or TLS plaintext)
direction in order: the client's starts with the 24-byte connection preface (RFC 9113 §3.4),
then both are a sequence of frames, a 9-byte header and a body (§4.1). Frame bodies other than
DATA are collected whole (they are small: the receiver's SETTINGS_MAX_FRAME_SIZE bounds them)
and parsed with ``hyperframe``; DATA payloads are passed on in pieces at fixed offsets of the
frame (``DATA_PIECE``), never held whole, so the events do not depend on segmentation and a
long stream costs no memory. Header blocks (HEADERS or PUSH_PROMISE plus CONTINUATION frames)
are decoded in order with one ``hpack.Decoder`` per direction, since HPACK's dynamic table is
per direction (RFC 7541 §2.2).

Unlike an endpoint (``h2.H2Connection``, which refuses a stream opened by "the wrong peer" when
fed one side only), nothing here stops at the first violation: a frame that is too long, a
header block that does not decode or a frame hyperframe refuses becomes a ``Problem`` event.
After a decoding error the direction's HPACK state is unknown, so its later header blocks are
reported undecoded; after a frame too long (or a hole) the direction's framing is lost and it is
no longer read.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from enum import Enum, auto
from typing import Any

import hpack
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import Frame

from analyzer.exchange.first_bytes import H2_PREFACE
from analyzer.http2.events import (
    Data,
    GoAway,
    H2Event,
    HeaderBlock,
    OtherFrame,
    Ping,
    Preface,
    Priority,
    Problem,
    RstStream,
    Setting,
    Settings,
    WindowUpdate,
)

DEFAULT_MAX_FRAME_SIZE = 16_384  # RFC 9113 §6.5.2, the initial SETTINGS_MAX_FRAME_SIZE
FRAME_BUFFER_CAP = 1 << 20  # a non-DATA frame is buffered whole only up to this (memory bound)
MAX_HEADER_BLOCK = 64 * 1024  # compressed header block (HEADERS + CONTINUATION) kept at most
MAX_HEADER_LIST = 64 * 1024  # decoded header list (RFC 7541 §4.1 sizes), as HTTP/1 heads
DATA_PIECE = 16_384  # DATA payload is passed on in pieces of this size at most
DEBUG_BYTES = 256  # GOAWAY debug data kept
_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")
_BLOCK_PROBLEMS = ("hpack_error", "header_list_too_large")  # about the block, not the frame

_HEADER = struct.Struct(">HBBBL")  # 24-bit length as 16 + 8 bits, type, flags, stream id
_SETTING = struct.Struct(">HL")
_DATA, _HEADERS, _PRIORITY, _RST, _SETTINGS, _PUSH, _PING, _GOAWAY, _WINDOW, _CONT = range(10)
_END_STREAM, _END_HEADERS, _PADDED, _ACK = 0x1, 0x4, 0x8, 0x1


class _Stage(Enum):
    PREFACE = auto()  # the client's connection preface
    HEADER = auto()  # a frame header
    BODY = auto()  # a frame body other than DATA, collected whole
    DATA = auto()  # a DATA payload, passed on in pieces
    DEAD = auto()  # framing lost: nothing more is read


class _Direction:
    """One direction's framing and HPACK state."""

    def __init__(self, side: int) -> None:
        self.side = side
        self.stage = _Stage.PREFACE if side == 0 else _Stage.HEADER
        self.buf = bytearray()
        self.first_frame = 0  # capture frame of the current frame's first byte
        self.time = 0.0
        self.length = self.type = self.flags = self.stream = 0
        # set by the other side's SETTINGS (RFC 9113 §4.2: a frame longer than the receiver's
        # SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR)
        self.max_frame = DEFAULT_MAX_FRAME_SIZE
        self.decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST)
        self.headers_lost = False  # after an HPACK error: later blocks cannot be decoded
        # the header block being collected
        self.block: bytearray | None = None
        self.block_stream = 0
        self.block_end_stream = False
        self.block_promised = 0
        self.block_first = 0
        self.block_time = 0.0
        self.block_too_big = False
        # the DATA frame being read
        self.data_left = 0
        self.pad: int | None = 0  # None until a padded frame's pad length byte is read
        self.piece = bytearray()
        self.piece_first = 0
        self.piece_time = 0.0
        self.pieces = 0  # pieces of the current frame passed on
        self.skip = False  # the current DATA frame is counted, not copied (keep_data)


class _Sink(list[H2Event]):
    """An event list that hands each event on the moment it is made (``H2Reader.sink``)."""

    def __init__(self, sink: Callable[[H2Event], None]) -> None:
        super().__init__()
        self._sink = sink

    def append(self, event: H2Event) -> None:
        self._sink(event)


class H2Reader:
    """Both directions of one HTTP/2 connection; side 0 is the client, 1 the server.

    Events are returned by each call, or, with ``sink``, handed to it one by one as they are
    made (then the calls return empty lists): a consumer that answers ``keep_data(side,
    stream_id)`` from what the events told it so far is then up to date at every DATA frame,
    whatever the segmentation. A DATA frame whose stream ``keep_data`` declines is counted,
    not copied: one ``Data`` event with no bytes and ``skipped`` set (bulk streams cost
    nothing but their frame headers)."""

    def __init__(self, sink: Callable[[H2Event], None] | None = None,
                 keep_data: Callable[[int, int], bool] | None = None) -> None:
        self._dirs = (_Direction(0), _Direction(1))
        self._sink = sink
        self._keep_data = keep_data

    def _events(self) -> list[H2Event]:
        return _Sink(self._sink) if self._sink is not None else []

    def feed(self, side: int, data: bytes, frame: int, time: float) -> list[H2Event]:
        """Takes the next bytes of one direction; returns the events they complete."""
        d = self._dirs[side]
        out = self._events()
        pos, end = 0, len(data)
        while pos < end and d.stage is not _Stage.DEAD:
            stage = d.stage
            if stage is _Stage.DATA:
                pos = self._data(d, data, pos, frame, time, out)
                continue
            if not d.buf and stage is not _Stage.BODY:  # a body keeps its header's frame
                d.first_frame, d.time = frame, time
            want = 24 if stage is _Stage.PREFACE else 9 if stage is _Stage.HEADER else d.length
            take = min(want - len(d.buf), end - pos)
            d.buf += data[pos : pos + take]
            pos += take
            if stage is _Stage.PREFACE:
                if not H2_PREFACE.startswith(d.buf):
                    shown = bytes(d.buf[:24])
                    self._die(d, out, frame, "no_preface", f"{shown!r}")
                elif len(d.buf) == 24:
                    out.append(Preface(0, d.first_frame, frame, d.time))
                    d.buf.clear()
                    d.stage = _Stage.HEADER
            elif len(d.buf) == want:
                if stage is _Stage.HEADER:
                    self._frame_header(d, out, frame, time)
                else:
                    self._frame_body(d, out, frame)
        return out

    def gap(self, side: int, frame: int, time: float) -> list[H2Event]:
        """Bytes of ``side`` are missing: its framing is lost from here on."""
        d = self._dirs[side]
        if d.stage is _Stage.DEAD:
            return []
        out = self._events()
        self._die(d, out, frame, "hole", "bytes missing from the capture", time)
        return out

    def end(self, side: int, frame: int, time: float) -> list[H2Event]:
        """The direction ended (FIN, RST or end of capture): a frame cut short is reported."""
        d = self._dirs[side]
        out = self._events()
        if d.stage is _Stage.DATA and d.piece:
            out.append(Data(side, d.piece_first, frame, d.piece_time, d.stream, bytes(d.piece),
                            d.length, False, False))
            d.piece.clear()
        if d.stage is _Stage.DATA or (d.stage is not _Stage.DEAD and d.buf):
            what = {_Stage.PREFACE: "the connection preface", _Stage.HEADER: "a frame header"}
            where = what.get(d.stage, f"a frame of type {d.type} ({d.length} bytes)")
            self._die(d, out, frame, "truncated", f"ended inside {where}", time)
        return out

    # --- frames -------------------------------------------------------------------------------

    def _frame_header(self, d: _Direction, out: list[H2Event], frame: int, time: float) -> None:
        high, low, d.type, d.flags, stream = _HEADER.unpack(d.buf)
        d.length = (high << 8) | low
        d.stream = stream & 0x7FFFFFFF  # RFC 9113 §4.1: the reserved bit "MUST be ignored"
        d.buf.clear()
        # RFC 9113 §4.2: "An endpoint MUST send an error code of FRAME_SIZE_ERROR if a frame
        # exceeds the size defined in SETTINGS_MAX_FRAME_SIZE". The connection is then over.
        if d.length > d.max_frame or (d.type != _DATA and d.length > FRAME_BUFFER_CAP):
            self._die(d, out, frame, "frame_too_large",
                      f"type {d.type}, {d.length} bytes (limit {d.max_frame})")
            return
        # RFC 9113 §6.10: a header block "MUST be followed by a CONTINUATION frame for the
        # same stream"; anything else "MUST" be a connection error (PROTOCOL_ERROR).
        if d.block is not None and (d.type != _CONT or d.stream != d.block_stream):
            self._problem(d, out, frame, "continuation_expected",
                          f"type {d.type} on stream {d.stream} inside the header block of "
                          f"stream {d.block_stream}")
            d.block = None
            d.headers_lost = True
        if d.type == _DATA:
            d.stage = _Stage.DATA
            d.data_left = d.length
            d.pad = None if d.flags & _PADDED else 0
            d.pieces = 0
            d.skip = self._keep_data is not None and not self._keep_data(d.side, d.stream)
            if d.length == 0:
                self._data(d, b"", 0, frame, time, out)
            return
        d.stage = _Stage.BODY
        if d.length == 0:
            self._frame_body(d, out, frame)

    def _frame_body(self, d: _Direction, out: list[H2Event], frame: int) -> None:
        body = bytes(d.buf)
        d.buf.clear()
        d.stage = _Stage.HEADER
        header = _HEADER.pack(d.length >> 8, d.length & 0xFF, d.type, d.flags, d.stream)
        try:
            parsed: Any  # the hyperframe subclass of the type (its fields differ)
            parsed, _ = Frame.parse_frame_header(memoryview(header))
            parsed.parse_body(memoryview(body))
        except (HyperframeError, ValueError, struct.error) as error:
            self._problem(d, out, frame, "frame_malformed",
                          f"type {d.type} on stream {d.stream}: {error}")
            if d.type in (_HEADERS, _PUSH, _CONT):
                d.block = None
                d.headers_lost = True
            return
        side, first, time = d.side, d.first_frame, d.time
        kind = d.type
        if kind in (_HEADERS, _PUSH, _CONT):
            self._header_fragment(d, out, frame, parsed)
        elif kind == _SETTINGS:
            values = tuple(_SETTING.unpack_from(body, i) for i in range(0, len(body), 6))
            ack = bool(d.flags & _ACK)
            out.append(Settings(side, first, frame, time, ack, values))
            self._apply_settings(d, values)
        elif kind == _RST:
            out.append(RstStream(side, first, frame, time, d.stream, parsed.error_code))
        elif kind == _GOAWAY:
            out.append(GoAway(side, first, frame, time, parsed.last_stream_id,
                              parsed.error_code, bytes(parsed.additional_data[:DEBUG_BYTES])))
        elif kind == _PING:
            out.append(Ping(side, first, frame, time, bool(d.flags & _ACK)))
        elif kind == _WINDOW:
            out.append(WindowUpdate(side, first, frame, time, d.stream, parsed.window_increment))
        elif kind == _PRIORITY:
            out.append(Priority(side, first, frame, time, d.stream, parsed.depends_on))
        else:
            out.append(OtherFrame(side, first, frame, time, d.stream, kind, d.length))

    def _apply_settings(self, d: _Direction, values: tuple[tuple[int, int], ...]) -> None:
        """What one side's SETTINGS change for the frames the other side sends it."""
        other = self._dirs[1 - d.side]
        for identifier, value in values:
            if identifier == Setting.MAX_FRAME_SIZE and DEFAULT_MAX_FRAME_SIZE <= value < 1 << 24:
                other.max_frame = value
            elif identifier == Setting.HEADER_TABLE_SIZE:
                # RFC 7541 §4.2: the encoder may use a table up to the size the decoder's side
                # announced; hpack refuses a size update above max_allowed_table_size.
                other.decoder.max_allowed_table_size = value

    # --- header blocks ------------------------------------------------------------------------

    def _header_fragment(self, d: _Direction, out: list[H2Event], frame: int,
                         parsed: Any) -> None:
        fragment = bytes(parsed.data)
        if d.type != _CONT:
            d.block = bytearray()
            d.block_stream = d.stream
            d.block_end_stream = bool(d.flags & _END_STREAM) and d.type == _HEADERS
            d.block_promised = getattr(parsed, "promised_stream_id", 0) if d.type == _PUSH else 0
            d.block_first, d.block_time = d.first_frame, d.time
            d.block_too_big = False
        elif d.block is None:
            self._problem(d, out, frame, "continuation_expected",
                          f"CONTINUATION on stream {d.stream} without a HEADERS frame")
            return
        if len(d.block) + len(fragment) > MAX_HEADER_BLOCK:
            if not d.block_too_big:
                self._problem(d, out, frame, "header_list_too_large",
                              f"header block of stream {d.block_stream} over "
                              f"{MAX_HEADER_BLOCK} bytes")
            d.block_too_big = True
            d.block.clear()
        elif not d.block_too_big:
            d.block += fragment
        if not d.flags & _END_HEADERS:
            return
        block, d.block = d.block, None
        fields: tuple[tuple[str, str], ...] = ()
        decoded = not d.headers_lost and not d.block_too_big
        if decoded:
            try:
                pairs = d.decoder.decode(bytes(block), raw=True)
                fields = tuple((bytes(n).decode("latin-1"), bytes(v).decode("latin-1"))
                               for n, v in pairs)
            except hpack.OversizedHeaderListError:
                self._problem(d, out, frame, "header_list_too_large",
                              f"header list of stream {d.block_stream} over {MAX_HEADER_LIST} "
                              "bytes decoded")
                decoded = False
            except (hpack.HPACKError, ValueError, IndexError) as error:
                # hpack's texts may quote a memoryview ("<memory at 0x7f...>"): not evidence
                text = _ADDRESS.sub("", str(error)).strip(" :") or type(error).__name__
                self._problem(d, out, frame, "hpack_error", f"stream {d.block_stream}: {text}")
                decoded = False
            if not decoded:
                d.headers_lost = True  # the dynamic table may be half updated
        if d.block_too_big:
            d.headers_lost = True  # the block was not decoded: the table missed its updates
        out.append(HeaderBlock(d.side, d.block_first, frame, d.block_time, d.block_stream,
                               fields, d.block_end_stream, d.block_promised, decoded))

    # --- DATA -----------------------------------------------------------------------------------

    def _data(self, d: _Direction, data: bytes, pos: int, frame: int, time: float,
              out: list[H2Event]) -> int:
        end = len(data)
        if d.skip:  # counted, not copied: the consumer does not need these bytes
            take = min(d.data_left, end - pos)
            pos += take
            d.data_left -= take
            if d.data_left == 0:
                out.append(Data(d.side, d.first_frame, frame, d.time, d.stream, b"", d.length,
                                bool(d.flags & _END_STREAM), True, d.length))
                d.stage = _Stage.HEADER
            return pos
        while pos < end and d.data_left:
            if d.pad is None:
                d.pad = data[pos]
                pos += 1
                d.data_left -= 1
                # RFC 9113 §6.1: "If the length of the padding is the length of the frame
                # payload or greater, the recipient MUST treat this as a connection error".
                if d.pad > d.data_left:
                    self._problem(d, out, frame, "padding_invalid",
                                  f"pad length {d.pad} in a {d.length}-byte DATA frame")
                    d.pad = d.data_left
                continue
            payload_left = d.data_left - d.pad
            if payload_left <= 0:
                take = min(d.data_left, end - pos)  # padding: skipped
                pos += take
                d.data_left -= take
                continue
            take = min(payload_left, end - pos, DATA_PIECE - len(d.piece))
            if not d.piece:
                d.piece_first = frame if d.pieces else d.first_frame
                d.piece_time = time if d.pieces else d.time
            d.piece += data[pos : pos + take]
            pos += take
            d.data_left -= take
            if len(d.piece) == DATA_PIECE and d.data_left - d.pad > 0:
                self._piece(d, out, frame, last=False)
        if d.data_left == 0:
            if not d.piece:
                d.piece_first = frame if d.pieces else d.first_frame
                d.piece_time = time if d.pieces else d.time
            self._piece(d, out, frame, last=True)
            d.stage = _Stage.HEADER
        return pos

    def _piece(self, d: _Direction, out: list[H2Event], frame: int, *, last: bool) -> None:
        end_stream = last and bool(d.flags & _END_STREAM)
        out.append(Data(d.side, d.piece_first, frame, d.piece_time, d.stream, bytes(d.piece),
                        d.length, end_stream, last))
        d.piece.clear()
        d.pieces += 1

    # --- problems ---------------------------------------------------------------------------

    def _problem(self, d: _Direction, out: list[H2Event], frame: int, kind: str, detail: str,
                 time: float | None = None) -> None:
        stream = d.block_stream if kind in _BLOCK_PROBLEMS else d.stream
        out.append(Problem(d.side, frame, frame, d.time if time is None else time, kind, detail,
                           stream))

    def _die(self, d: _Direction, out: list[H2Event], frame: int, kind: str, detail: str,
             time: float | None = None) -> None:
        self._problem(d, out, frame, kind, detail, time)
        d.stage = _Stage.DEAD
        d.buf.clear()
        d.block = None
        d.piece.clear()
