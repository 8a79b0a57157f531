"""Tests for analyzer.source: pcap/pcapng/gzip/xz/bzip2/zstd/lz4/stdin reading, merging, damage
and errors."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import random
import re
import select
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import lz4.frame
import pytest

try:
    from compression import zstd  # Python 3.14
except ImportError:
    from backports import zstd

from analyzer.source import CaptureError, CaptureWarning, Frame, read_captures, stream

REPO = Path(__file__).parents[1]
REAL_WORLD = Path(__file__).parents[1].parent / "shared" / "real-world"
needs_real_world = pytest.mark.skipif(
    not REAL_WORLD.is_dir(), reason=f"real-world capture corpus not found at {REAL_WORLD}"
)


# --- capture builders ------------------------------------------------------------------------

Rec = tuple[float, bytes]  # (time, data); wire length = len(data) unless given separately


def pcap(
    records: Iterable[Rec | tuple[float, bytes, int]],
    *,
    order: str = "<",
    nano: bool = False,
    linktype: int = 1,
    snaplen: int = 65535,
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    units = 1_000_000_000 if nano else 1_000_000
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for rec in records:
        t, data = rec[0], rec[1]
        wire = rec[2] if len(rec) > 2 else len(data)
        sec = int(t)
        frac = round((t - sec) * units)
        out.append(struct.pack(order + "IIII", sec, frac, len(data), wire) + data)
    return b"".join(out)


def block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def shb(order: str = "<") -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def idb(
    order: str = "<",
    linktype: int = 1,
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += option(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += option(order, 0, b"")
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(order: str, iface: int, ts: int, data: bytes, wire: int | None = None) -> bytes:
    head = struct.pack(
        order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), wire or len(data)
    )
    return block(order, 6, head + data)


def spb(order: str, data: bytes, wire: int | None = None) -> bytes:
    return block(order, 3, struct.pack(order + "I", wire or len(data)) + data)


def old_pb(order: str, iface: int, ts: int, data: bytes) -> bytes:
    head = struct.pack(order + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
    return block(order, 2, head + data)


def write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def read(paths: Sequence[str]) -> tuple[list[Frame], list[CaptureWarning]]:
    warnings: list[CaptureWarning] = []
    frames = list(read_captures(paths, warnings))
    return frames, warnings


def pkt(i: int, size: int = 60) -> bytes:
    return bytes([i % 256]) * size


# --- classic pcap ----------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path: Path, order: str, nano: bool) -> None:
    recs = [(1700000000.25, pkt(1)), (1700000001.000125, pkt(2, 100)), (1700000001.5, pkt(3))]
    path = write(tmp_path, "a.pcap", pcap(recs, order=order, nano=nano, linktype=113))
    frames, warnings = read([path])
    assert warnings == []
    assert [f.number for f in frames] == [1, 2, 3]
    assert [f.data for f in frames] == [r[1] for r in recs]
    assert [f.time for f in frames] == pytest.approx([r[0] for r in recs], abs=1e-9)
    assert {f.linktype for f in frames} == {113}
    assert {f.source for f in frames} == {0}


def test_pcap_nanoseconds_are_kept(tmp_path: Path) -> None:
    raw = pcap([(0, pkt(1))], nano=True)
    raw = raw[:28] + struct.pack("<I", 123456789) + raw[32:]
    frames, _ = read([write(tmp_path, "n.pcap", raw)])
    assert frames[0].time == pytest.approx(0.123456789, abs=1e-12)


def test_pcap_wire_length_and_linktype_fcs_bits(tmp_path: Path) -> None:
    # Upper bits of the link-type field describe the FCS, not the link type.
    raw = pcap([(1.0, pkt(1, 68), 1514)], linktype=0x14000001, snaplen=68)
    frames, warnings = read([write(tmp_path, "f.pcap", raw)])
    assert warnings == []
    assert (frames[0].linktype, frames[0].wire_length, len(frames[0].data)) == (1, 1514, 68)


def test_pcap_header_only_is_an_empty_capture(tmp_path: Path) -> None:
    assert read([write(tmp_path, "h.pcap", pcap([]))]) == ([], [])


@pytest.mark.parametrize("chunk", [1, 7, 16, 4096])
def test_same_frames_whatever_the_read_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    recs = [(float(i), pkt(i, 1 + i * 37 % 300)) for i in range(200)]
    ng = shb() + idb() + b"".join(epb("<", 0, i * 1_000_000, d) for i, (_, d) in enumerate(recs))
    paths = [write(tmp_path, "a.pcap", pcap(recs)), write(tmp_path, "b.pcapng", ng)]
    expected = [read([p])[0] for p in paths]
    monkeypatch.setattr(stream, "CHUNK", chunk)
    for path, want in zip(paths, expected, strict=True):
        frames, warnings = read([path])
        assert warnings == []
        assert frames == want
        assert [f.data for f in frames] == [d for _, d in recs]


def test_file_larger_than_one_read(tmp_path: Path) -> None:
    recs = [(float(i), pkt(i, 1500)) for i in range(2000)]  # 3 MB: several 1 MiB reads
    frames, warnings = read([write(tmp_path, "big.pcap", pcap(recs))])
    assert warnings == []
    assert len(frames) == 2000
    assert frames[-1].data == recs[-1][1]
    assert frames[1234].number == 1235


# --- pcapng ----------------------------------------------------------------------------------


def test_pcapng_interfaces_link_types_and_resolutions(tmp_path: Path) -> None:
    o = "<"
    raw = (
        shb(o)
        + idb(o, linktype=1, snaplen=9)  # default resolution: microseconds
        + idb(o, linktype=113, tsresol=9)  # nanoseconds
        + idb(o, linktype=101, tsresol=0x80 | 10, tsoffset=1000)  # 2^-10 s, +1000 s
        + epb(o, 1, 1_700_000_000_123_456_789, pkt(1))
        + block(o, 5, b"\0" * 16)  # interface statistics: skipped
        + block(o, 0x0BAD, b"custom")  # custom / unknown: skipped
        + epb(o, 2, 512, pkt(2))
        + spb(o, pkt(3, 20), 40)  # SPB: interface 0, snaplen 9 cuts it
        + old_pb(o, 0, 2_000_000, pkt(4))
        + epb(o, 0, 3_000_000, pkt(5), 1500)
    )
    frames, warnings = read([write(tmp_path, "m.pcapng", raw)])
    assert warnings == []
    assert [f.number for f in frames] == [1, 2, 3, 4, 5]
    assert [f.linktype for f in frames] == [113, 101, 1, 1, 1]
    assert frames[0].time == pytest.approx(1_700_000_000.123456789, abs=1e-6)
    assert frames[1].time == 1000.5
    assert frames[2].time == frames[1].time  # SPB has no timestamp: keeps the previous one
    assert (frames[2].data, frames[2].wire_length) == (pkt(3, 9), 40)
    assert frames[3].time == 2.0
    assert (frames[4].time, frames[4].wire_length, frames[4].data) == (3.0, 1500, pkt(5))


def test_pcapng_sections_with_both_byte_orders(tmp_path: Path) -> None:
    raw = (
        shb("<")
        + idb("<", linktype=1)
        + epb("<", 0, 1_000_000, pkt(1))
        + shb(">")
        + idb(">", linktype=228, tsresol=3)
        + epb(">", 0, 2500, pkt(2))
        + shb("<")
        + idb("<", linktype=229)
        + idb("<", linktype=276)
        + epb("<", 1, 3_000_000, pkt(3))
    )
    frames, warnings = read([write(tmp_path, "s.pcapng", raw)])
    assert warnings == []
    assert [(f.number, f.time, f.linktype, f.data) for f in frames] == [
        (1, 1.0, 1, pkt(1)),
        (2, 2.5, 228, pkt(2)),
        (3, 3.0, 276, pkt(3)),
    ]


def test_pcapng_new_section_forgets_interfaces(tmp_path: Path) -> None:
    raw = shb() + idb() + epb("<", 0, 0, pkt(1)) + shb() + epb("<", 0, 0, pkt(2))
    frames, warnings = read([write(tmp_path, "s.pcapng", raw)])
    assert [f.data for f in frames] == [pkt(1)]
    assert len(warnings) == 1 and warnings[0].where == "frame 2"
    assert "interface 0" in warnings[0].message


# --- gzip and standard input -----------------------------------------------------------------


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    recs = [(1.0, pkt(1)), (2.0, pkt(2))]
    a = write(tmp_path, "plain-name.pcap", gzip.compress(pcap(recs)))
    b = write(tmp_path, "b.bin", gzip.compress(shb() + idb() + epb("<", 0, 5, pkt(9))))
    frames, warnings = read([a])
    assert warnings == [] and [f.data for f in frames] == [pkt(1), pkt(2)]
    frames, warnings = read([b])
    assert warnings == [] and [f.data for f in frames] == [pkt(9)]


def test_truncated_gzip_keeps_what_was_decompressed(tmp_path: Path) -> None:
    recs = [(float(i), pkt(i, 1000)) for i in range(300)]
    packed = gzip.compress(pcap(recs))
    frames, warnings = read([write(tmp_path, "t.pcap.gz", packed[: len(packed) // 2])])
    assert 0 < len(frames) < 300
    assert [f.data for f in frames] == [d for _, d in recs[: len(frames)]]
    assert len(warnings) == 1


def test_concatenated_gzip_members(tmp_path: Path) -> None:
    raw = pcap([(1.0, pkt(1)), (2.0, pkt(2))])
    packed = gzip.compress(raw[:50]) + b"\0" * 8 + gzip.compress(raw[50:])
    frames, warnings = read([write(tmp_path, "c.gz", packed)])
    assert warnings == [] and [f.data for f in frames] == [pkt(1), pkt(2)]


def test_garbage_after_gzip_stream_warns(tmp_path: Path) -> None:
    raw = pcap([(1.0, pkt(1)), (2.0, pkt(2))])
    frames, warnings = read([write(tmp_path, "g.gz", gzip.compress(raw) + b"junk" * 10)])
    assert [f.data for f in frames] == [pkt(1), pkt(2)]
    assert len(warnings) == 1 and "read error" in warnings[0].message


# xz, bzip2, zstd and lz4 (rotated captures: `tcpdump -z xz`), compressed by liblzma, libbz2,
# libzstd and liblz4, which xz(1), bzip2(1), zstd(1) and lz4(1) are built on; bzip2 at level 1
# (100 kB blocks), so that a cut file still holds whole blocks
_PACK = {"xz": lzma.compress, "bzip2": lambda data: bz2.compress(data, compresslevel=1),
         "zstd": zstd.compress, "lz4": lz4.frame.compress}
_KINDS = list(_PACK)


@pytest.mark.parametrize("kind", _KINDS)
def test_xz_and_bzip2_read_as_gzip_is(tmp_path: Path, kind: str) -> None:
    pack = _PACK[kind]
    recs = [(1.0, pkt(1)), (2.0, pkt(2))]
    frames, warnings = read([write(tmp_path, "plain-name.pcap", pack(pcap(recs)))])
    assert warnings == [] and [f.data for f in frames] == [pkt(1), pkt(2)]
    pcapng = shb() + idb() + epb("<", 0, 5, pkt(9))
    frames, warnings = read([write(tmp_path, "b.bin", pack(pcapng))])
    assert warnings == [] and [f.data for f in frames] == [pkt(9)]
    raw = pcap(recs)  # concatenated streams (zstd frames), with xz's stream padding between
    padding = b"\0" * 8 if kind == "xz" else b""
    frames, warnings = read([write(tmp_path, "c", pack(raw[:50]) + padding + pack(raw[50:]))])
    assert warnings == [] and [f.data for f in frames] == [pkt(1), pkt(2)]
    frames, warnings = read([write(tmp_path, "g", pack(raw) + b"junk" * 10)])
    assert [f.data for f in frames] == [pkt(1), pkt(2)]
    assert len(warnings) == 1 and "read error" in warnings[0].message


@pytest.mark.parametrize("kind", _KINDS)
def test_truncated_xz_and_bzip2_keep_what_was_decompressed(tmp_path: Path, kind: str) -> None:
    # (bytes that do not repeat: bzip2 squeezes runs before it cuts its blocks)
    recs = [(float(i), random.Random(i).randbytes(1000)) for i in range(300)]
    packed = _PACK[kind](pcap(recs))
    frames, warnings = read([write(tmp_path, "t", packed[: len(packed) * 3 // 4])])
    assert 0 < len(frames) < 300
    assert [f.data for f in frames] == [d for _, d in recs[: len(frames)]]
    assert len(warnings) == 1 and f"end of the {kind} stream" in warnings[0].message


@pytest.mark.parametrize("kind", _KINDS)
def test_xz_and_bzip2_bombs_are_read_a_piece_at_a_time(kind: str) -> None:
    """A small file that expands to far more than a read asks for gives no more than asked."""
    packed = _PACK[kind](pcap([]) + b"\0" * (64 << 20))
    inp = stream.open_bytes("bomb", packed)
    assert inp.compressed == kind and inp.head == pcap([])[:4]
    assert all(len(inp.read(4096)) <= 4096 for _ in range(100))


def test_compressed_bundled_capture_reports_as_the_capture(tmp_path: Path) -> None:
    """A real capture's JSON report is the same read from gzip, xz, bzip2, zstd and lz4 of it."""
    raw = (REPO / "captures" / "websocket_lives.pcap").read_bytes()

    def report(name: str, content: bytes) -> str:
        path = write(tmp_path, name, content)
        done = subprocess.run([sys.executable, "-m", "analyzer", "read", path, "-F", "json"],
                              cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    plain = report("lives.pcap", raw)
    assert '"verdict": "succeeded"' in plain
    for name, pack in [("gz", gzip.compress), ("xz", lzma.compress), ("bz2", bz2.compress),
                       ("zst", zstd.compress), ("lz4", lz4.frame.compress)]:
        assert report(f"lives.pcap.{name}", pack(raw)) == plain, name


def test_stdin_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    recs = [(1.0, pkt(1)), (2.0, pkt(2))]

    class FakeStdin:
        buffer = io.BufferedReader(io.BytesIO(gzip.compress(pcap(recs))))

    monkeypatch.setattr(sys, "stdin", FakeStdin)
    frames, warnings = read(["-"])
    assert warnings == []
    assert [(f.number, f.data) for f in frames] == [(1, pkt(1)), (2, pkt(2))]


_STREAM_READER = """
import sys
from analyzer.source import read_captures
for frame in read_captures(["-"], []):
    print(frame.number, len(frame.data), flush=True)
print("end", flush=True)
"""


def _stream(chunks: list[bytes]) -> None:
    """Write each chunk to a reader on a pipe and expect one frame out before the next chunk."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _STREAM_READER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for i, chunk in enumerate(chunks, 1):
            proc.stdin.write(chunk)
            proc.stdin.flush()
            # The writer is still running: the frame must come out now, not at end of input.
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            assert ready, f"frame {i} was not produced while the input stayed open"
            assert proc.stdout.readline().split()[0] == str(i).encode()
        proc.stdin.close()
        assert proc.stdout.readline() == b"end\n"
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_stdin_pcap_yields_frames_as_they_arrive() -> None:
    raw = pcap([(1.0, pkt(1)), (2.0, pkt(2, 70)), (3.0, pkt(3, 80))])
    _stream([raw[: 24 + 16 + 60], raw[100 : 100 + 86], raw[186:]])


def test_stdin_pcapng_yields_frames_as_they_arrive() -> None:
    blocks = [shb() + idb() + epb("<", 0, 1, pkt(1)), epb("<", 0, 2, pkt(2)), spb("<", pkt(3))]
    _stream(blocks)


def test_stdin_gzip_stream_yields_frames_as_they_arrive() -> None:
    raw = pcap([(1.0, pkt(1)), (2.0, pkt(2))])
    z = zlib.compressobj(wbits=31)  # gzip container
    first = z.compress(raw[:100]) + z.flush(zlib.Z_SYNC_FLUSH)
    second = z.compress(raw[100:]) + z.flush(zlib.Z_SYNC_FLUSH) + z.flush()
    _stream([first, second])


# --- merging ---------------------------------------------------------------------------------


def test_merge_in_time_order_stable_for_ties(tmp_path: Path) -> None:
    a = write(tmp_path, "a.pcap", pcap([(1.0, b"a1"), (3.0, b"a3"), (5.0, b"a5")]))
    b = write(
        tmp_path,
        "b.pcapng",
        shb()
        + idb(linktype=113)
        + b"".join(
            epb("<", 0, t, d)
            for t, d in [(2_000_000, b"b2"), (3_000_000, b"b3"), (6_000_000, b"b6")]
        ),
    )
    frames, warnings = read([a, b])
    assert warnings == []
    assert [(f.number, f.data, f.source) for f in frames] == [
        (1, b"a1", 0),
        (2, b"b2", 1),
        (3, b"a3", 0),  # tie at 3.0: the earlier path first
        (4, b"b3", 1),
        (5, b"a5", 0),
        (6, b"b6", 1),
    ]
    assert [f.linktype for f in frames] == [1, 113, 1, 113, 1, 113]
    frames, _ = read([b, a])
    assert [f.data for f in frames][2:4] == [b"b3", b"a3"]
    assert [f.source for f in frames][:2] == [1, 0]


def test_merge_keeps_each_files_order_when_its_clock_steps_back(tmp_path: Path) -> None:
    a = write(tmp_path, "a.pcap", pcap([(5.0, b"a5"), (1.0, b"a1")]))
    b = write(tmp_path, "b.pcap", pcap([(3.0, b"b3")]))
    frames, _ = read([a, b])
    assert [f.data for f in frames] == [b"b3", b"a5", b"a1"]


# --- damage: a warning, and everything before it is kept -------------------------------------

RECS = [(float(i), pkt(i, 100)) for i in range(1, 5)]
GOOD = pcap(RECS)  # 24 + 4 * 116 bytes


def _damaged_pcaps() -> list[tuple[str, bytes, int, str, str]]:
    """(case, bytes, frames kept, where, message fragment)."""
    huge = bytearray(GOOD)
    struct.pack_into("<I", huge, 24 + 2 * 116 + 8, 300_000)
    beyond = bytearray(GOOD)
    struct.pack_into("<I", beyond, 24 + 3 * 116 + 8, 5000)
    return [
        ("truncated last record", GOOD[:-30], 3, "frame 4", "70 of 100 bytes"),
        ("truncated record header", GOOD + b"\1\2\3\4\5", 4, "frame 5", "record header"),
        ("absurd record length", bytes(huge), 2, "frame 3", "larger than the limit"),
        ("record longer than the rest of the file", bytes(beyond), 3, "frame 4", "truncated"),
        ("garbage after the records", GOOD + os.urandom(3) + b"\xff" * 40, 4, "frame 5", ""),
    ]


@pytest.mark.parametrize("case", _damaged_pcaps(), ids=lambda c: c[0])
def test_pcap_damage_warns_and_keeps_earlier_frames(
    tmp_path: Path, case: tuple[str, bytes, int, str, str]
) -> None:
    _, raw, kept, where, fragment = case
    path = write(tmp_path, "d.pcap", raw)
    frames, warnings = read([path])
    assert [f.data for f in frames] == [d for _, d in RECS[:kept]]
    assert len(warnings) == 1
    assert (warnings[0].source, warnings[0].where) == (path, where)
    assert fragment in warnings[0].message
    assert "\n" not in warnings[0].message


NG = shb() + idb() + b"".join(epb("<", 0, int(t * 1e6), d) for t, d in RECS)
EPB_SIZE = 28 + 100 + 4
FIRST_EPB = len(shb()) + len(idb())


def _damaged_pcapngs() -> list[tuple[str, bytes, int, str, str]]:
    bad_len = bytearray(NG)
    struct.pack_into("<I", bad_len, FIRST_EPB + 2 * EPB_SIZE + 4, 131)  # not a multiple of 4
    bad_trailer = bytearray(NG)
    struct.pack_into("<I", bad_trailer, FIRST_EPB + 2 * EPB_SIZE + EPB_SIZE - 4, 136)
    bad_cap = bytearray(NG)
    struct.pack_into("<I", bad_cap, FIRST_EPB + EPB_SIZE + 20, 101)
    bad_iface = bytearray(NG)
    struct.pack_into("<I", bad_iface, FIRST_EPB + 3 * EPB_SIZE + 8, 7)
    huge = bytearray(NG)
    struct.pack_into("<I", huge, FIRST_EPB + 3 * EPB_SIZE + 4, 0x7FFFFFF0)
    third = f"byte offset {FIRST_EPB + 2 * EPB_SIZE}"
    return [
        ("truncated last block", NG[:-10], 3, f"byte offset {FIRST_EPB + 3 * EPB_SIZE}", "of 132"),
        ("truncated block header", NG + b"\6\0\0\0", 4, f"byte offset {len(NG)}", "header"),
        ("block length not a multiple of 4", bytes(bad_len), 2, third, "corrupt block length"),
        ("block trailer mismatch", bytes(bad_trailer), 2, third, "trailer"),
        ("captured length beyond the block", bytes(bad_cap), 1, "frame 2", "does not fit"),
        ("unknown interface", bytes(bad_iface), 3, "frame 4", "interface 7"),
        ("absurd block length", bytes(huge), 3, f"byte offset {FIRST_EPB + 3 * EPB_SIZE}", ""),
        ("garbage after the blocks", NG + b"\x00\x11" * 50, 4, f"byte offset {len(NG)}", ""),
        (
            "section with a bad byte-order magic",
            NG + shb()[:8] + b"XXXX" + shb()[12:],
            4,
            f"byte offset {len(NG)}",
            "byte-order",
        ),
    ]


@pytest.mark.parametrize("case", _damaged_pcapngs(), ids=lambda c: c[0])
def test_pcapng_damage_warns_and_keeps_earlier_frames(
    tmp_path: Path, case: tuple[str, bytes, int, str, str]
) -> None:
    _, raw, kept, where, fragment = case
    frames, warnings = read([write(tmp_path, "d.pcapng", raw)])
    assert [f.data for f in frames] == [d for _, d in RECS[:kept]]
    assert len(warnings) == 1
    assert warnings[0].where == where
    assert fragment in warnings[0].message


def test_damage_in_one_merged_file_keeps_the_others(tmp_path: Path) -> None:
    a = write(tmp_path, "a.pcap", GOOD[:-30])
    b = write(tmp_path, "b.pcap", pcap([(10.0, b"late")]))
    frames, warnings = read([a, b])
    assert [f.data for f in frames] == [d for _, d in RECS[:3]] + [b"late"]
    assert [w.source for w in warnings] == [a]


# --- inputs that cannot be read at all -------------------------------------------------------

ERF_RECORD = struct.pack("<II", 0, 1700000000) + bytes([2, 4]) + struct.pack(">HHH", 80, 0, 60)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty", b"", "empty file"),
        (
            "text",
            b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "not a capture file: looks like text",
        ),
        ("utf8", "Grüße, this is a note\n".encode(), "looks like text"),
        ("erf", ERF_RECORD + b"\0" * 64, "looks like ERF"),
        (
            "gzip-text",
            gzip.compress(b"hello world\n" * 10),
            "gzip of something that is not a capture: looks like text",
        ),
        ("gzip-empty", gzip.compress(b""), "gzip of an empty file"),
        ("gzip-broken", b"\x1f\x8b\x08\x00" + b"\xff" * 40, "damaged gzip"),
        ("xz-text", lzma.compress(b"hello world\n" * 10),
         "xz of something that is not a capture: looks like text"),
        ("xz-empty", lzma.compress(b""), "xz of an empty file"),
        ("xz-broken", b"\xfd7zXZ\x00" + b"\xff" * 40, "damaged xz file"),
        ("bzip2-text", bz2.compress(b"hello world\n" * 10),
         "bzip2 of something that is not a capture: looks like text"),
        ("bzip2-broken", b"BZh9" + b"\xff" * 40, "damaged bzip2 file"),
        # "BZh" without its block size is no bzip2 stream: not named (nor read) as one
        ("bzip2-like", b"BZhx" + b"\xff" * 40, "unknown binary data (starts 42 5a 68 78"),
        ("bzip2-like-text", b"BZh? a note\n", "not a capture file: looks like text"),
        ("zstd-text", zstd.compress(b"hello world\n" * 10),
         "zstd of something that is not a capture: looks like text"),
        ("zstd-broken", b"\x28\xb5\x2f\xfd" + b"\xff" * 40, "damaged zstd file"),
        ("lz4-broken", b"\x04\x22\x4d\x18" + b"\xff" * 40, "damaged lz4 file"),
        ("zip", b"PK\x03\x04" + b"\0" * 40, "zip archive"),
        ("snoop", b"snoop\0\0\0\0\0\0\2\0\0\0\4", "snoop"),
        ("binary", bytes(range(200, 256)), "unknown binary data"),
        ("short-pcap", pcap([])[:20], "pcap file header truncated"),
        ("bad-bom", shb()[:8] + b"\0\0\0\0" + shb()[12:], "byte-order magic"),
    ],
    ids=lambda v: "" if isinstance(v, bytes) else None,
)
def test_unreadable_inputs_raise_capture_error(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(CaptureError) as info:
        read_captures([path], [])
    text = str(info.value)
    assert message in text
    assert text.startswith(path) and "\n" not in text


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        read_captures([str(tmp_path / "nope.pcap")], [])
    with pytest.raises(CaptureError, match="is a directory"):
        read_captures([str(tmp_path)], [])


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_permission_denied(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.pcap", pcap([]))
    os.chmod(path, 0)
    with pytest.raises(CaptureError, match="permission denied"):
        read_captures([path], [])


def test_permission_denied_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs even as root, where chmod 0 does not stop reading.
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(stream, "open", refuse, raising=False)
    with pytest.raises(CaptureError, match="permission denied"):
        read_captures([write(tmp_path, "x.pcap", pcap([]))], [])


def test_a_bad_file_among_several_fails_before_any_frame(tmp_path: Path) -> None:
    good = write(tmp_path, "good.pcap", GOOD)
    bad = write(tmp_path, "notes.txt", b"just some notes\n")
    with pytest.raises(CaptureError, match=re.escape(bad)):
        read_captures([good, bad], [])


# --- real captures ---------------------------------------------------------------------------


def _inventory() -> list[tuple[str, int]]:
    if not REAL_WORLD.is_dir():
        return []
    table = (REAL_WORLD / "INVENTORY.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| \d+ \| (.+?) \| .+? \| .+? \| (\d+) \|", table, re.MULTILINE)
    return [(name, int(count)) for name, count in rows]


@needs_real_world
@pytest.mark.parametrize(
    ("name", "count", "linktypes"),
    [
        ("arkime/websocket.pcap", 19, {1}),
        ("zeek/oversized-close-frame.pcapng", 8, {1}),
        ("nDPI/false_positives.pcapng", 120, {1}),
        ("suricata-verify/websocket-ping/input.pcap", 19, {113}),
        ("CheckOCPP/capt.pcapng", 261, {113}),
        ("zeek/connect-with-header.pcap", 58, {0}),
        ("websocket_test/websocket.pcap", 16, {0}),  # pcapng although named .pcap
        ("nDPI/1kxun.pcap", 1723, {1}),
    ],
)
def test_real_capture_frame_counts(name: str, count: int, linktypes: set[int]) -> None:
    frames, warnings = read([str(REAL_WORLD / name)])
    assert warnings == []
    assert len(frames) == count
    assert [f.number for f in frames] == list(range(1, count + 1))
    assert {f.linktype for f in frames} == linktypes
    assert all(len(f.data) <= f.wire_length or f.wire_length == 0 for f in frames)


@needs_real_world
def test_every_inventory_capture_has_the_inventory_frame_count() -> None:
    rows = _inventory()
    assert len(rows) >= 40
    for name, count in rows:
        frames, warnings = read([str(REAL_WORLD / name)])
        assert (name, len(frames), warnings) == (name, count, [])


@needs_real_world
def test_real_captures_merge(tmp_path: Path) -> None:
    a = str(REAL_WORLD / "arkime/websocket.pcap")
    b = str(REAL_WORLD / "suricata-verify/websocket-ping/input.pcap")
    frames, warnings = read([a, b])
    assert warnings == [] and len(frames) == 38
    times = [f.time for f in frames]
    assert times == sorted(times)
    assert {f.source: f.linktype for f in frames} == {0: 1, 1: 113}


@needs_real_world
def test_real_capture_gzipped_and_damaged(tmp_path: Path) -> None:
    raw = (REAL_WORLD / "arkime/websocket.pcap").read_bytes()
    frames, _ = read([str(REAL_WORLD / "arkime/websocket.pcap")])
    gz = write(tmp_path, "ws.pcap.gz", gzip.compress(raw))
    assert read([gz]) == (frames, [])
    cut, warnings = read([write(tmp_path, "cut.pcap", raw[:-1])])
    assert cut == frames[:-1]
    assert [w.where for w in warnings] == ["frame 19"]


@pytest.mark.parametrize("pcapng", [False, True])
@pytest.mark.parametrize("skip", [False, True])
def test_merged_frames_know_their_file_and_number_within_it(
        tmp_path: Path, pcapng: bool, skip: bool) -> None:
    """`MergedRecords.origin`: interleaved files (frames alternate) and rotated ones, with and
    without the readers dropping records unseen (the pipeline's fast path sets `skip`)."""
    from analyzer.pipeline import Analysis
    from analyzer.source.capture import MergedRecords, read_records
    from tests.builder import Conversation, websocket_request, write_pcap

    def conv(port: int, start: float) -> Conversation:
        c = Conversation(client=("10.0.0.1", port), server=("10.0.0.2", 80), start=start)
        c.handshake()
        c.client(websocket_request("h", "/") if port % 2 else b"\x00 not HTTP")
        for _ in range(5):  # ignored connections' frames: dropped unseen by the fast path
            c.server(b"\x00" * 100)
        c.client_fin()
        c.server_fin()
        return c

    segments = [s for n in range(6) for s in conv(40000 + n, 1_700_000_000.0 + n).segments()]
    segments.sort(key=lambda s: s.time)
    files = {"even": segments[0::2], "odd": segments[1::2],
             # dropped frames (a connection that is not HTTP), another file, this one again
             "later": conv(41000, 1_700_000_100.0).segments()
             + conv(41001, 1_700_000_300.0).segments(),
             "between": conv(41003, 1_700_000_200.0).segments()}
    paths = []
    for name, items in files.items():
        path = tmp_path / f"{name}.cap"
        write_pcap(path, [items], pcapng=pcapng)
        paths.append(str(path))
    merged = read_records(paths, [])
    assert isinstance(merged, MergedRecords)
    expected = []  # (input, number within it) of every merged frame, in merged order
    for index, items in enumerate(files.values()):
        expected += [(s.time, index, n) for n, s in enumerate(items, start=1)]
    expected.sort(key=lambda e: (e[0], e[1]))
    if skip:
        run = Analysis()
        list(run.feed_records(merged))
        assert run.stats.frames == len(expected) and merged.dropped > 0
    else:
        assert len(list(merged)) == len(expected)
    got = [merged.origin(number) for number in range(1, len(expected) + 1)]
    assert got == [(index, n) for _, index, n in expected]
