"""Byte strings appended once and read back by their offset, many times, from an unnamed
temporary file (a spilled report's records and the diagnoses it keeps whole, report/kept.py).

Why a read cache: each record of a sorted report is read back two to four times (the
summary's pass, correlation, redirects, the rows), and each read was a seek and two reads,
system calls that took a fifth of the report's end (benchmarks/README.md, "Twenty-sixth
session"). The passes go in report or time order, which is nearly the order the records were
written in, so one read of READ_AHEAD bytes serves the next hundred records or so. Memory
stays one chunk and the write buffer, however many attempts (a storm's million records are
on disk, not in memory).
"""

from __future__ import annotations

import os
import struct
import tempfile
from typing import IO

_LENGTH = struct.Struct("<I")
READ_AHEAD = 64 * 1024  # bytes read at once
# Bytes written at once. With the default buffer (8 KiB) a JSON report's records (≈ 2 KB an
# attempt on the dense benchmark mix) made a write system call every four: 11 µs an append,
# a third of what keeping an attempt cost (benchmarks/README.md, "Twenty-seventh session").
WRITE_BUFFER = 64 * 1024


class Blobs:
    """Append-only byte strings, each read back by the offset `append` gave it."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None  # made at the first append
        self._end = 0  # the next offset
        self._unflushed = False  # appended since the last read (the writer's buffer)
        self._chunk = b""  # READ_AHEAD bytes of the file from _chunk_at (or fewer, at its end)
        self._chunk_at = 0

    def append(self, data: bytes) -> int:
        if self._file is None:
            # unnamed: the system removes it when the process ends, however it ends
            self._file = tempfile.TemporaryFile(  # noqa: SIM115
                prefix="upgrade-analyzer-", buffering=WRITE_BUFFER)
        at = self._end
        write = self._file.write  # (always at the end: never seeked)
        write(_LENGTH.pack(len(data)))
        write(data)
        self._end = at + 4 + len(data)
        self._unflushed = True
        return at

    def read(self, at: int) -> bytes:
        assert self._file is not None
        if self._unflushed:
            self._file.flush()
            self._unflushed = False
        start = at - self._chunk_at
        chunk = self._chunk
        if start < 0 or start + 4 > len(chunk):
            chunk, start = self._load(at), 0
        (length,) = _LENGTH.unpack_from(chunk, start)
        if start + 4 + length > len(chunk):  # past the chunk: from its start again, or alone
            if 4 + length > READ_AHEAD:
                return os.pread(self._file.fileno(), length, at + 4)
            chunk, start = self._load(at), 0
        return chunk[start + 4:start + 4 + length]

    def _load(self, at: int) -> bytes:
        assert self._file is not None
        self._chunk = os.pread(self._file.fileno(), READ_AHEAD, at)
        self._chunk_at = at
        return self._chunk
