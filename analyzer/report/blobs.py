"""Byte strings appended once and read back by their offset, many times: in memory up to a
budget, then in an unnamed temporary file (a spilled report's records, report/kept.py).

Why memory first: each record of a sorted report is read back three or four times (the
summary's pass, correlation, redirects, the rows), and from the file every read was a seek and
two reads, system calls that took a fifth of the report's end (benchmarks/README.md,
"Twenty-sixth session"). A table's record is ≈ 370 bytes, so the budget holds tens of
thousands of attempts; a storm of millions still goes to the file and costs its offset only.
"""

from __future__ import annotations

import struct
import tempfile
from typing import IO

_LENGTH = struct.Struct("<I")


class Blobs:
    """Append-only byte strings, each read back by the offset `append` gave it."""

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self._memory: bytearray | None = bytearray()  # None once moved to the file
        self._file: IO[bytes] | None = None
        self._end = 0  # the next offset (the file's end: it moves back there after a read)
        self._moved = False  # the file's position is not its end (a read moved it)

    @property
    def in_memory(self) -> bool:
        return self._memory is not None

    def append(self, data: bytes) -> int:
        at = self._end
        entry = _LENGTH.pack(len(data)) + data
        self._end = at + len(entry)
        memory = self._memory
        if memory is not None:
            memory += entry
            if len(memory) > self.memory_bytes:
                self._to_file(memory)
            return at
        assert self._file is not None
        if self._moved:
            self._file.seek(at)
            self._moved = False
        self._file.write(entry)
        return at

    def _to_file(self, memory: bytearray) -> None:
        """Past the budget: what is in memory goes to the file, and every later string."""
        # unnamed: the system removes it when the process ends, however it ends
        self._file = tempfile.TemporaryFile(prefix="upgrade-analyzer-")  # noqa: SIM115
        self._file.write(memory)
        self._memory = None

    def read(self, at: int) -> bytes | bytearray:
        memory = self._memory
        if memory is not None:
            (length,) = _LENGTH.unpack_from(memory, at)
            return memory[at + 4:at + 4 + length]  # a copy: the buffer may grow after
        assert self._file is not None
        self._moved = True
        self._file.seek(at)
        (length,) = _LENGTH.unpack(self._file.read(4))
        return self._file.read(length)
