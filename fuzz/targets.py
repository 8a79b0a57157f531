"""Fuzz targets: one function per stage, each taking arbitrary bytes and checking invariants.

A target returns normally for any input; anything else it raises is a bug (the fuzzers report
it with the input). Besides "does not crash", most targets check a property the stage
promises (STYLE.md: the same result whatever the segmentation; the fast path agrees with the
full decoder; a gzip wrapper changes nothing). The same functions are driven by atheris for
long runs (``python -m fuzz``) and by hypothesis in the test suite (``tests/test_fuzz.py``).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import lz4.frame

from analyzer.checks import run_checks
from analyzer.correlate import correlate
from analyzer.decode.decoder import Decoder, QuicDatagram, decode_frame, peek_flow
from analyzer.decode.fragments import Fragments
from analyzer.decode.segment import Segment, flow_key
from analyzer.exchange.first_bytes import H2_PREFACE
from analyzer.exchange.handoff import ExchangeCounters, RunContext
from analyzer.exchange.model import Attempt
from analyzer.exchange.tracker import ConnectionTracker
from analyzer.http.head import parse_request_head, parse_response_head
from analyzer.http.start import classify_start, find_head_end, only_empty_lines, read_start
from analyzer.http2 import H2Reader
from analyzer.life.model import Ended
from analyzer.pipeline import Analysis, protocol_handlers
from analyzer.reassembly import Connection, Reassembler
from analyzer.report.detail import render_detail
from analyzer.report.render import (
    render_csv,
    render_json,
    render_jsonl_ended,
    render_jsonl_line,
    render_table,
)
from analyzer.source import CaptureError, CaptureWarning, Frame, read_bytes, read_records
from analyzer.source.stream import compression_of
from analyzer.tls import passing
from analyzer.tls.keylog import KeyStore
from analyzer.tls.session import TlsSession
from analyzer.verdict import Diagnosis, diagnose
from analyzer.websocket.frames import WsFrameParser, frame_parser
from fuzz import tls_plaintext

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd

CAPTURES = Path(__file__).parents[1] / "captures"

# Link types the decoder knows, so that fuzzed frames reach past the link layer.
LINKTYPES = (1, 113, 276, 0, 101, 228, 229, 12, 14, 108)


# --- capture readers ------------------------------------------------------------------------


def _read(data: bytes) -> tuple[list[Frame], list[CaptureWarning]] | None:
    warnings: list[CaptureWarning] = []
    try:
        frames = list(read_bytes(data, warnings))
    except CaptureError as error:
        message = str(error)
        assert message and "\n" not in message, message
        return None
    numbers = [f.number for f in frames]
    assert numbers == list(range(1, len(frames) + 1)), numbers[:10]
    for warning in warnings:
        assert "\n" not in warning.message and warning.where, warning
    assert len(warnings) <= 1, warnings  # reading stops at the first damage
    return frames, warnings


def capture_reader(data: bytes) -> None:
    """pcap / pcapng / gzip bytes: frames or one CaptureError, at most one one-line warning."""
    _read(data)


# Each compressor the readers undo (analyzer/source/stream.py), at its fastest setting
_COMPRESSIONS: tuple[Callable[[bytes], bytes], ...] = (
    lambda data: gzip.compress(data, mtime=0), lambda data: lzma.compress(data, preset=0),
    lambda data: bz2.compress(data, compresslevel=1), lambda data: zstd.compress(data, level=1),
    lz4.frame.compress)


def gzip_reader(data: bytes) -> None:
    """A gzip (xz, bzip2, zstd, lz4) wrapper around any bytes gives the same frames and warnings as
    the bytes (except around compressed data: one layer is decompressed, not two)."""
    if compression_of(data):
        return
    plain = _read(data)
    for compress in _COMPRESSIONS:
        wrapped = _read(compress(data))
        if plain is None or wrapped is None:
            assert plain is None and wrapped is None
            continue
        assert [(f.time, f.linktype, f.data) for f in plain[0]] == [
            (f.time, f.linktype, f.data) for f in wrapped[0]
        ]
        assert [(w.where, w.message) for w in plain[1]] == [
            (w.where, w.message) for w in wrapped[1]]


# --- link / IP / TCP decoding ---------------------------------------------------------------


def decoder(data: bytes) -> None:
    """Any frame decodes to a Segment or a reason; the fast path's peek agrees with it."""
    if not data:
        return
    linktype = LINKTYPES[data[0] % len(LINKTYPES)]
    frame = Frame(1, 0.0, linktype, data[1:], len(data) - 1)
    result = decode_frame(frame)
    assert isinstance(result, (Segment, QuicDatagram, str)), result
    peeked = peek_flow(linktype, frame.data)
    if peeked is not None:
        assert isinstance(result, Segment), (peeked, result)
        key = flow_key(result.src, result.sport, result.dst, result.dport)
        assert peeked == (key, result.flags), (peeked, key, result.flags)


# One fragment of `fragments`' input: version (low bit) and identification (the rest: few
# datagrams, so pieces meet), offset in 8-byte units, flags (bit 0 MF/M; bits 1-3 the 4-byte
# words of options in an IPv4 header, so fragments' headers differ in length; bits 4-7 how
# many times more the payload is repeated, so datagrams near 64 KiB take few bytes of input),
# time step, length.
FRAGMENT = struct.Struct("!BHBBB")
FRAGMENT_TCP = struct.pack("!HHIIHHHH", 40000, 80, 1, 1, 0x5018, 65535, 0, 0)  # for seeds


def fragments(data: bytes) -> None:
    """IP fragments made from the input (overlapping, duplicated, too large, late, in any
    order) through one Decoder with small caps: each frame gives a Segment or None, the
    table stays within its caps, and every fragment frame is counted once in the end.
    Input: records of FRAGMENT, each followed by its `length` bytes of IP payload."""
    decoder = Decoder()
    decoder.fragments = Fragments(timeout=30.0, max_datagrams=8, max_bytes=4096)
    pos, number, when, segments = 0, 0, 0.0, 0
    while pos + FRAGMENT.size <= len(data):
        kind, offset, flags, step, length = FRAGMENT.unpack_from(data, pos)
        pos += FRAGMENT.size
        part = data[pos : pos + length]
        pos += length
        part *= 1 + (flags >> 4)
        ident = kind >> 1
        if kind & 1:  # IPv6 with a Fragment header
            header = struct.pack("!BBHI", 6, 0, (offset << 3) & 0xFFF8 | flags & 1, ident)
            ip = struct.pack("!IHBB", 6 << 28, 8 + len(part), 44, 64) + bytes(15) + b"\1" \
                + bytes(15) + b"\2" + header + part
            frame = bytes(12) + b"\x86\xdd" + ip
        else:
            words = flags >> 1 & 7
            ip = struct.pack("!BBHHHBBH4s4s", 0x45 + words, 0, 20 + 4 * words + len(part),
                             ident, (flags & 1) << 13 | offset & 0x1FFF, 64, 6, 0,
                             b"\n\0\0\1", b"\n\0\0\2") + b"\1" * 4 * words + part
            frame = bytes(12) + b"\x08\x00" + ip
        when += step / 16
        number += 1
        result = decoder.decode(Frame(number, when, 1, frame, len(frame)))
        assert result is None or isinstance(result, Segment), result
        segments += result is not None
        table = decoder.fragments
        assert len(table) <= table.max_datagrams
        assert table.held <= max(table.max_bytes, 65_535 + 64 * 8192), table.held
    assert sum(decoder.skipped.values()) + segments == number


# --- reassembly and the exchange tracker ----------------------------------------------------

OPERATION = struct.Struct("!BHBH")  # side+flags, sequence offset, ack offset / 256, payload length
_CLIENT = (b"\x0a\x00\x00\x01", 40000)
_SERVER = (b"\x0a\x00\x00\x02", 80)


class _Recorder:
    """A listener that checks the reassembler's promises about one connection."""

    def __init__(self) -> None:
        self.next = [0, 0]
        self.ended = False
        self.fins = [0, 0]

    def on_syn(self, side: int, frame: int, time: float, with_ack: bool) -> None:
        assert not self.ended

    def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        assert not self.ended and data
        assert offset == self.next[side], (side, offset, self.next[side])
        self.next[side] = offset + len(data)

    def on_gap(self, side: int, offset: int, length: int, frame: int, time: float,
               cause: str = "capture") -> None:
        assert not self.ended and length > 0
        assert offset == self.next[side], (side, offset, self.next[side])
        self.next[side] = offset + length

    def on_conflict(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        assert not self.ended and length > 0
        assert offset + length <= self.next[side], (side, offset, length, self.next[side])

    def on_resent(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        assert not self.ended and length > 0
        assert offset + length <= self.next[side], (side, offset, length, self.next[side])

    def on_fin(self, side: int, frame: int, time: float, lost: bool = False) -> None:
        assert not self.ended
        self.fins[side] += 1  # a FIN (seen, or proved lost: delivery.py `_lost_fin`) once
        assert self.fins[side] == 1, (side, lost)

    def on_rst(self, side: int, frame: int, time: float) -> None:
        assert not self.ended

    def on_end(self, time: float, reason: str) -> None:
        assert not self.ended
        self.ended = True

    def on_tick(self, now: float, patience: float) -> None:
        pass


def segments_from(data: bytes) -> list[Segment]:
    """Decode fuzz bytes into segments of one connection (plus a port-reuse or two).

    Each operation is 6 bytes (side and flags, 16-bit sequence offset, ack offset, payload
    length) followed by the payload, taken from the rest of the input. Sequence numbers start
    near the wrap-around so that unwrapping is exercised.
    """
    out: list[Segment] = []
    base = (0xFFFFFF00, 0x7FFFFFF0)
    pos = 0
    n = 0
    while pos + OPERATION.size <= len(data):
        head, seq, ack, length = OPERATION.unpack_from(data, pos)
        pos += OPERATION.size
        payload = data[pos : pos + (length % 1500)]
        pos += len(payload)
        side = head >> 7
        flags = head & 0x1F  # FIN SYN RST PSH ACK
        src, dst = (_CLIENT, _SERVER) if side == 0 else (_SERVER, _CLIENT)
        n += 1
        out.append(
            Segment(
                n,
                1_700_000_000 + n * 0.01,
                src[0],
                src[1],
                dst[0],
                dst[1],
                (base[side] + seq) & 0xFFFFFFFF,
                (base[1 - side] + ack * 256) & 0xFFFFFFFF,
                flags,
                payload,
                missing=length >> 14,
            )
        )
    return out


def reassembly(data: bytes) -> None:
    """Delivered bytes and holes tile each direction in order; every connection ends once."""
    recorders: list[_Recorder] = []

    def listener(conn: Connection, seg: Segment) -> _Recorder:
        recorders.append(_Recorder())
        return recorders[-1]

    reassembler = Reassembler(listener, sweep_every=7, max_connections=1)
    for seg in segments_from(data):
        reassembler.feed(seg)
    reassembler.close()
    assert all(r.ended for r in recorders)


def tracker(data: bytes) -> None:
    """The exchange tracker (and the stages it hands connections to: HTTP/2) and every check
    on whatever bytes arrive in whatever order."""
    counters = ExchangeCounters()
    attempts: list[Attempt] = []

    run = RunContext(attempts.append, counters, handlers=protocol_handlers())

    def listener(conn: Connection, seg: Segment) -> ConnectionTracker:
        return ConnectionTracker(conn, run)

    reassembler = Reassembler(listener)
    # Half the input drives the segments' shapes; the other half is an HTTP-looking prefix
    # so that the tracker gets past "is this HTTP?" often.
    segs = segments_from(data)
    for seg in segs:
        reassembler.feed(seg)
        if seg.frame % 5 == 0:
            reassembler.tick(seg.time + 10.0, 5.0)
    reassembler.close()
    for attempt in attempts:
        run_checks(attempt)
        diagnose(attempt)


# --- HTTP heads and WebSocket frames --------------------------------------------------------


def http_head(data: bytes) -> None:
    """The head parsers never refuse bytes they were handed; the incremental end-of-head
    search agrees with a search of the whole buffer, and the start line read on from where
    it was left (`read_start`) with one read whole (`classify_start`)."""
    parse_request_head(data)
    parse_response_head(data)
    whole = find_head_end(data)
    buf = bytearray()
    found = None
    scanned = 0
    step = 1 + (data[0] % 7 if data else 0)
    so_far = None
    for i in range(min(step, len(data)), len(data) + step, step):
        kind, so_far = read_start(data[:i], so_far)
        assert kind == classify_start(data[:i]), (i, kind)
        if kind != "need_more":
            break
    for i in range(0, len(data), step):
        buf += data[i : i + step]
        found = find_head_end(buf, scanned)
        if found is not None:
            break
        scanned = 0 if only_empty_lines(buf) else len(buf)
    assert found == whole, (found, whole)


def websocket_frames(data: bytes) -> None:
    """The same frames whether the bytes come whole or in pieces of any size, and the same
    frames and state from the compiled twin (`_fastpath.CompiledFrameParser`), when built."""
    whole = WsFrameParser()
    expected = whole.feed(data) + whole.flush()
    step = 1 + (data[0] % 5 if data else 0)
    for parser in (WsFrameParser, frame_parser(True)):
        pieces = parser()
        got = []
        for i in range(0, len(data), step):
            got += pieces.feed(data[i : i + step])
        got += pieces.flush()
        assert got == expected
        assert (pieces.offset, pieces.stopped) == (whole.offset, whole.stopped)
    assert whole.offset == len(data) or whole.stopped


def http2(data: bytes) -> None:
    """The HTTP/2 reader gives the same events whether each direction comes whole or in
    pieces of any size, and never raises. Input: a piece size byte, a 2-byte length of the
    client's bytes (after the preface), the client's bytes, the server's."""
    if len(data) < 3:
        return
    step = 1 + data[0] % 11
    split = 3 + int.from_bytes(data[1:3], "big") % max(1, len(data) - 2)
    sides = (H2_PREFACE + data[3:split], data[split:])

    def read(size: int | None, sink: bool = False) -> list[object]:
        events: list[object] = []
        reader = H2Reader(sink=events.append) if sink else H2Reader()
        for side, stream in enumerate(sides):
            piece = size or len(stream) or 1
            for i in range(0, len(stream), piece):
                events += reader.feed(side, stream[i : i + piece], 1, 0.0)
            events += reader.end(side, 1, 0.0)
        return events

    whole = read(None)
    assert read(step) == whole
    assert read(step, sink=True) == whole


def _bundled_keys() -> KeyStore:
    """Every key log bundled beside the captures: seeds cut from keyed captures decrypt."""
    store = KeyStore()
    for path in sorted(CAPTURES.glob("*.keys")):
        store.add_text(path.read_bytes())
    store.finish()
    return store


_KEYS: KeyStore | None = None


def tls(data: bytes) -> None:
    """The TLS stage's session (records, handshake facts, key schedule, decryption) gives the
    same plaintext and facts whether each direction comes whole or in pieces of any size, and
    never raises. Input as for http2: a piece size byte, a 2-byte length of the client's
    bytes, the client's bytes, the server's; keys are the bundled key logs."""
    global _KEYS
    if len(data) < 3:
        return
    if _KEYS is None:
        _KEYS = _bundled_keys()
    step = 1 + data[0] % 13
    split = 3 + int.from_bytes(data[1:3], "big") % max(1, len(data) - 2)
    sides = (data[3:split], data[split:])

    def read(size: int | None) -> tuple[object, ...]:
        session = TlsSession(_KEYS)
        plain = [bytearray(), bytearray()]
        frame = 0
        for side, stream in enumerate(sides):  # the client's flight, then the server's
            piece = size or len(stream) or 1
            for i in range(0, len(stream), piece):
                frame += 1
                for p in session.feed(side, i, stream[i : i + piece], frame, 0.0):
                    assert p.offset == len(plain[p.side])  # in order, nothing twice
                    plain[p.side] += p.data
        # A record's plaintext comes in one piece per frame that carried it, so the pieces
        # differ with the segmentation; the bytes and the facts must not.
        return (bytes(plain[0]), bytes(plain[1]), session.version, session.alpn,
                session.decryption, session.problem,
                [(a.side, a.alert) for a in session.alerts], session.certificates,
                session.client_hello, session.server_hello)

    assert read(step) == read(None)


# --- the whole pipeline ---------------------------------------------------------------------


def pipeline(data: bytes) -> None:
    """Capture bytes through every stage to every report format."""
    warnings: list[CaptureWarning] = []
    try:
        frames = read_bytes(data, warnings)
        analysis = Analysis()
        diagnoses = []
        for frame in frames:
            diagnoses += analysis.feed(frame)
        diagnoses += analysis.finish()
    except CaptureError:
        return
    diagnoses = correlate(diagnoses)
    render_table(diagnoses, analysis.stats, warnings)
    render_json(diagnoses, analysis.stats, warnings)
    render_csv(diagnoses)
    for diagnosis in diagnoses:
        render_detail(diagnosis)


def fast_path(data: bytes) -> None:
    """Capture bytes read with the compiled fast path (`analyzer/decode/_fastpath.pyx`, when
    built) and with its pure-Python twin: C code reading hostile bytes must neither crash nor
    read out of bounds, and must decide exactly what the Python path decides. The bytes are
    read from a file, as `read` reads one: the compiled skip follows connections (opens,
    answers, closes them in C: decode/_follow.pxi) only in a regular file, whose next record
    never waits for a writer; in memory it did not, and was not fuzzed."""
    with tempfile.NamedTemporaryFile(suffix=".pcap") as file:
        file.write(data)
        file.flush()
        _fast_path_both_ways(file.name)


def _fast_path_both_ways(path: str) -> None:
    results = []
    for compiled in (True, False):
        warnings: list[CaptureWarning] = []
        try:
            records = read_records([path], warnings)
        except CaptureError:
            return
        analysis = Analysis(compiled=compiled)
        out = list(analysis.feed_records(records)) + analysis.finish()
        stats = analysis.stats
        results.append((
            [(d.attempt.first_frame, d.verdict, [(f.check, f.frames) for f in d.findings])
             for d in out],
            (stats.frames, stats.tcp_segments, stats.connections, stats.ordinary_exchanges,
             stats.first_time, stats.last_time, stats.timestamps_backwards,
             stats.timestamps_backwards_first_frame, stats.timestamps_backwards_largest_s,
             stats.connections_captured_twice),
            warnings,
        ))
    assert results[0] == results[1]


_TEMPLATES: list[tls_plaintext.Template] = []


def tls_plain(data: bytes) -> None:
    """Decrypted TLS: the plaintext of a bundled keyed connection's records, in any shape
    (fuzz/tls_plaintext.py: records opened, mutated, sealed again with the same keys), through
    the whole pipeline with its key log, followed into life as `read` follows it, to every
    report format. The compiled fast path (which opens TLS records in its watch window and
    in life itself) decides exactly what the Python path decides, with every record opened;
    counting large ones on trust (`TRUST_IN_LIFE` in life, `TRUST_FROM` in a body or the
    watch window's frame, as `read` does) it must not crash, and may differ by design where
    one is not application data (a damaged record counted as data, then a hole where the
    next fails; or a later large one replaced it unopened: tls/passing.py's docstring,
    docs/architecture.md "its life on trust"; the eighteenth fuzz round found the first)."""
    if len(data) < 2:
        return
    if not _TEMPLATES:
        _TEMPLATES.extend(tls_plaintext.templates())
    template, pcap = tls_plaintext.build(data, _TEMPLATES)
    secrets = KeyStore()
    secrets.add_text(template.keylog)
    secrets.finish()
    with tempfile.NamedTemporaryFile(suffix=".pcap") as file:
        file.write(pcap)
        file.flush()
        trusting = passing.TRUST_IN_LIFE, passing.TRUST_FROM
        try:
            passing.TRUST_IN_LIFE, passing.TRUST_FROM = False, 0
            results = [_keyed_run(file.name, secrets, compiled) for compiled in (True, False)]
        finally:
            passing.TRUST_IN_LIFE, passing.TRUST_FROM = trusting
        _keyed_run(file.name, secrets, True)
    assert results[0] == results[1], (results[0], results[1])


def _keyed_run(path: str, secrets: KeyStore, compiled: bool) -> object:
    """What a keyed `read` of ``path`` decides, every report rendered on the way."""
    warnings: list[CaptureWarning] = []
    analysis = Analysis(secrets=secrets, lifetimes=True, compiled=compiled)
    decided = list(analysis.feed_records(read_records([path], warnings)))
    decided += analysis.finishing()
    diagnoses = correlate([d for d in decided if isinstance(d, Diagnosis)])
    ended = [d for d in decided if isinstance(d, Ended)]
    render_table(diagnoses, analysis.stats, warnings)
    render_json(diagnoses, analysis.stats, warnings)
    render_csv(diagnoses)
    for diagnosis in diagnoses:
        render_detail(diagnosis)
        render_jsonl_line(diagnosis)
    for end in ended:
        render_jsonl_ended(end)
    return ([(d.attempt.first_frame, d.verdict, [(f.check, f.frames) for f in d.findings])
             for d in diagnoses],
            [(e.key, e.verdict, [(f.check, f.frames) for f in e.findings]) for e in ended],
            warnings)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "capture": capture_reader,
    "gzip": gzip_reader,
    "decode": decoder,
    "fragments": fragments,
    "reassembly": reassembly,
    "tracker": tracker,
    "http": http_head,
    "websocket": websocket_frames,
    "http2": http2,
    "tls": tls,
    "tls_plaintext": tls_plain,
    "pipeline": pipeline,
    "fast_path": fast_path,
}
