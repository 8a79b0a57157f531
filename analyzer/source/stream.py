"""Byte input for the capture readers: files, standard input, and gzip, xz, bzip2, zstd or lz4
of either, read forward only."""

# How it works: a reader keeps one `bytes` buffer and an offset into it, and parses records with
# precompiled structs straight out of that buffer. Only when the next record is not complete in
# the buffer does it call `fill`, which keeps the unread tail and appends what completes that
# record (or, when nothing is left, returns a whole new chunk as read).
# `Read` has `read1` semantics (return what is available, block only when nothing is), so a
# pipe that is still being written yields each record as soon as it is complete, while a
# regular file is read in large chunks. Nothing here ever seeks.

from __future__ import annotations

import contextlib
import functools
import io
import os
import stat
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .frame import CaptureError

# Read(n) returns between 1 and n bytes, or b"" at the end of the input.
Read = Callable[[int], bytes]

# What the format readers yield before the merge numbers the frames:
# (time, linktype, data, wire_length, source index).
Record = tuple[float, int, bytes, int, int]

CHUNK = 1 << 20

# The largest record we believe. libpcap's own MAXIMUM_SNAPLEN is 262144; anything larger is a
# corrupt length field, and trusting it would make us buffer garbage up to the end of the file.
MAX_RECORD = 262144

# Errors a read can raise once the input is open: I/O errors, and a damaged compressed stream
# (truncation is EOFError; corrupt data, a bad CRC or trailing garbage an OSError with the
# decompressor's words, `_Unpack`).
READ_ERRORS = (OSError, EOFError)


def fill(read: Read, buf: bytes, pos: int, need: int) -> tuple[bytes, str | None]:
    """Return buf[pos:] extended to at least `need` bytes, or shorter if the input ends first.

    The second value is a one-line description of the read error that ended the input early,
    or None at a clean end of input.

    Only an empty remainder gets a whole CHUNK, returned as read (a one-item join is the item
    itself); a remainder (the start of a record cut by the last read) gets just the bytes that
    complete it. So the next call starts empty and no chunk is ever copied into a joined buffer:
    that copy, of every byte of the capture, took 0.3 s of 5.3 s on the 1 GB benchmark
    (benchmarks/README.md), for one or two extra small reads per chunk.
    """
    rest = buf[pos:]
    parts = [rest] if rest else []
    have = len(rest)
    while have < need:
        try:
            chunk = read(need - have if have else max(CHUNK, need))
        except READ_ERRORS as exc:
            return b"".join(parts), f"read error: {exc}"
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts), None


def read_exact(read: Read, n: int) -> bytes:
    """Read up to n bytes, fewer only at the end of the input; read errors propagate.

    Used for file headers, where an error means the input cannot be read at all.
    """
    parts: list[bytes] = []
    have = 0
    while have < n:
        chunk = read(n - have)
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


class _Gzip:
    """zlib's gzip decompressor (a member's header and trailer, its CRC checked) with the
    interface of ``lzma``'s and ``bz2``'s that `_Unpack` reads through: zlib leaves the input
    its ``max_length`` held back in ``unconsumed_tail`` for the caller to give again, theirs
    keep it."""

    __slots__ = ("_inflate", "_tail")

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(wbits=31)
        self._tail = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._inflate.decompress(self._tail + data if self._tail else data, max_length)
        self._tail = self._inflate.unconsumed_tail
        return out

    @property
    def needs_input(self) -> bool:
        return not self._tail

    @property
    def eof(self) -> bool:
        return self._inflate.eof

    @property
    def unused_data(self) -> bytes:
        return self._inflate.unused_data


class _Unpack:
    """A forward-only decompressor with read1 semantics, for gzip, xz, bzip2, zstd and lz4
    (rotated captures: ``tcpdump -z xz``, ``logrotate``; Wireshark writes zstd and lz4),
    through decompressors of one interface (the standard library's ``lzma`` and ``bz2``, zlib
    through `_Gzip`, ``compression.zstd``, Python 3.14's, or its backport before, and
    ``lz4.frame``).

    gzip.GzipFile (and lzma.LZMAFile...) are not used: after a short read they ask their file
    for the rest of a buffer and so block on a pipe until more input arrives, holding back
    records already complete. Here input is read only when no decompressed byte can be
    produced without it. Concatenated streams (gzip members, zstd and lz4 frames) are read in
    turn, as gzip(1) and xz(1) do (NUL padding between them skipped, anything else after one
    reported as damage), and a call gives at most ``n`` bytes (``max_length``: a small file
    that expands to gigabytes is read a piece at a time).

    Truncation is an EOFError, damaged data an OSError with the decompressor's words."""

    def __init__(self, head: bytes, read: Read, kind: str) -> None:
        self._read = read
        self._kind = kind
        self._pending = head  # compressed bytes not yet given to the decompressor
        self._new: Callable[[], Any] = _DECOMPRESSORS[kind]()
        self._unpack = self._new()
        self._stream_ended = False

    def read(self, n: int) -> bytes:
        while True:
            unpack = self._unpack
            if self._stream_ended or unpack.needs_input:
                data, self._pending = self._pending, b""
                if not data:
                    data = self._read(CHUNK)
                    if not data:
                        if self._stream_ended:
                            return b""
                        raise EOFError(
                            f"compressed data ends before the end of the {self._kind} stream")
                if self._stream_ended:
                    data = data.lstrip(b"\0")
                    if not data:
                        continue
                    self._unpack = unpack = self._new()
                    self._stream_ended = False
            else:  # output held back by the last call's max_length
                data = b""
            try:
                out: bytes = unpack.decompress(data, n if n > 0 else CHUNK)
            except Exception as exc:  # noqa: BLE001 - lzma.LZMAError, bz2's OSError/ValueError
                raise OSError(str(exc) or type(exc).__name__) from None
            if unpack.eof:
                self._stream_ended = True
                self._pending = unpack.unused_data
            if out:
                return out


def _xz() -> Callable[[], Any]:
    import lzma  # here: a run reads xz only when given one (start-up)

    return functools.partial(lzma.LZMADecompressor, format=lzma.FORMAT_XZ)


def _bzip2() -> Callable[[], Any]:
    import bz2

    return bz2.BZ2Decompressor


def _zstd() -> Callable[[], Any]:
    """ImportError when neither module is there (an install without its dependencies)."""
    try:
        from compression import zstd  # Python 3.14
    except ImportError:
        from backports import zstd
    decompressor: Callable[[], Any] = zstd.ZstdDecompressor
    return decompressor


def _lz4() -> Callable[[], Any]:
    import lz4.frame

    decompressor: Callable[[], Any] = lz4.frame.LZ4FrameDecompressor
    return decompressor


# The compressed formats read (told by `compression_of`), each one's decompressor class
_DECOMPRESSORS: dict[str, Callable[[], Callable[[], Any]]] = {
    "gzip": lambda: _Gzip, "xz": _xz, "bzip2": _bzip2, "zstd": _zstd, "lz4": _lz4}
_MAGIC_XZ = b"\xfd7zX"  # (the first four of "\xfd7zXZ\0": the sniffed head)
_MAGIC_ZSTD = b"\x28\xb5\x2f\xfd"  # a zstd frame's (RFC 8878 §3.1.1)
_MAGIC_LZ4 = b"\x04\x22\x4d\x18"  # an LZ4 frame's
# (the package a decompressor comes from, for an install without it)
_PACKAGE = {"zstd": "backports.zstd", "lz4": "lz4"}


def compression_of(head: bytes) -> str:
    """The compressed format the first bytes of an input announce (its magic number; bzip2's
    ``BZh`` then the block size digit), or ""."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == _MAGIC_XZ:
        return "xz"
    if head[:4] == _MAGIC_ZSTD:
        return "zstd"
    if head[:4] == _MAGIC_LZ4:
        return "lz4"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0":
        return "bzip2"
    return ""


@dataclass(slots=True)
class Input:
    """An open input positioned after `head`, the bytes already read to identify it."""

    name: str  # as the user wrote it; "-" for standard input
    head: bytes
    read: Read
    close: Callable[[], None]
    compressed: str = ""  # "gzip", "xz", "bzip2", "zstd", "lz4": read through its decompressor
    size: int | None = None  # bytes, for a regular file (progress: the time left)
    tell: Callable[[], int] | None = None  # bytes read from the file so far (progress)


def open_input(path: str, sniff: int = 4) -> Input:
    """Open a path (or "-" for standard input) and read its first `sniff` bytes.

    Raises CaptureError if it cannot be opened or is empty.
    """
    if path == "-":
        stdin = sys.stdin.buffer
        # read1, not read: return each record as soon as the writer has flushed it.
        read1 = getattr(stdin, "read1", stdin.read)
        count = [0]  # bytes read so far (progress); a pipe has no position to ask

        def counted(n: int) -> bytes:
            data: bytes = read1(n)
            count[0] += len(data)
            return data

        inp = Input("-", b"", counted, lambda: None, tell=lambda: count[0])
    else:
        try:
            # Unbuffered: FileIO.read(n) is one system call, which is exactly the read1
            # behaviour we need, and it works for named pipes and character devices too.
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the record iterator
        except FileNotFoundError:
            raise CaptureError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{path}: is a directory, not a capture file") from None
        except PermissionError:
            raise CaptureError(f"{path}: permission denied") from None
        except OSError as exc:
            raise CaptureError(f"{path}: cannot open: {exc.strerror or exc}") from None
        info = os.fstat(f.fileno())
        size = info.st_size if stat.S_ISREG(info.st_mode) else None
        inp = Input(path, b"", f.read, f.close, size=size, tell=f.tell)
    return _sniff(inp, sniff)


def open_bytes(name: str, data: bytes, sniff: int = 4) -> Input:
    """An in-memory capture as an Input (fuzzing and tests); same checks as `open_input`."""
    return _sniff(Input(name, b"", io.BytesIO(data).read, lambda: None), sniff)


def _sniff(inp: Input, sniff: int) -> Input:
    path = inp.name
    try:
        inp.head = read_exact(inp.read, sniff)
    except READ_ERRORS as exc:  # e.g. EISDIR on systems that let open() succeed on a directory
        inp.close()
        raise CaptureError(f"{path}: cannot read: {exc}") from None
    if not inp.head:
        inp.close()
        raise CaptureError(f"{path}: empty file" if path != "-" else "-: empty input")
    kind = compression_of(inp.head)
    if kind:
        inp = _decompressed(inp, sniff, kind)
    return inp


def _decompressed(inp: Input, sniff: int, kind: str) -> Input:
    """``inp`` read through its decompressor, its first ``sniff`` bytes read (``size`` and
    ``tell`` stay the compressed file's: the progress line's share of it read)."""
    try:
        unpack = _Unpack(inp.head, inp.read, kind)
    except ImportError:  # (zstd, lz4: an install without that package)
        inp.close()
        package = _PACKAGE.get(kind, kind)
        raise CaptureError(f"{inp.name}: {kind}-compressed data: reading it needs the {package} "
                           f"package (pip install {package}); or decompress it first") from None
    return decompressed_input(inp.name, unpack.read, inp.close, kind, sniff, inp.size, inp.tell)


def decompressed_input(name: str, read: Read, close: Callable[[], None], kind: str,
                       sniff: int = 4, size: int | None = None,
                       tell: Callable[[], int] | None = None) -> Input:
    """The input of ``name`` whose ``read`` gives its ``kind``-compressed data decompressed
    (its own `_Unpack`, or a `read --jobs` feeder's pipe: analyzer/scale/fanout.py), its
    first ``sniff`` bytes read; damaged data or none at all is a CaptureError, the input
    closed."""
    try:
        head = read_exact(read, sniff)
    except READ_ERRORS as exc:
        close()
        raise CaptureError(f"{name}: damaged {kind} file ({exc})") from None
    if not head:
        close()
        raise CaptureError(f"{name}: {kind} of an empty file")
    return Input(name, head, read, close, compressed=kind, size=size, tell=tell)


def more_head(inp: Input, n: int) -> bytes:
    """Extend inp.head to n bytes if the input has them (used to describe unknown formats)."""
    with contextlib.suppress(*READ_ERRORS):  # a description is best effort
        inp.head += read_exact(inp.read, n - len(inp.head))
    return inp.head
