"""A TLS key log file that is still being written (live capture): its new lines, as they come."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO, Protocol


class LineSink(Protocol):
    def add_text(self, text: bytes | str) -> None: ...


class FollowedKeyLog:
    """Reads what was appended to a key log since the last `poll` into a key store.

    The file may not exist yet (the client creates it when it first connects) and may be
    truncated or replaced (a new client run): then it is read again from its start. Its text is
    handed on, never printed.
    """

    def __init__(self, path: str, sink: LineSink) -> None:
        self._path = path
        self._sink = sink
        self._file: BinaryIO | None = None
        self._inode = 0

    def poll(self) -> None:
        try:
            status = os.stat(self._path)
        except OSError:
            return  # not there (yet)
        if self._file is not None and (status.st_ino != self._inode
                                       or status.st_size < self._file.tell()):
            self._file.close()
            self._file = None
        if self._file is None:
            try:
                self._file = open(self._path, "rb")  # noqa: SIM115 - kept open between polls
            except OSError:
                return
            self._inode = status.st_ino
        chunk = self._file.read(1 << 20)
        while chunk:
            self._sink.add_text(chunk)
            chunk = self._file.read(1 << 20)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class WholeLines:
    """Passes a growing key log's text on to several sinks; those that need whole lines (a
    Decryption Secrets Block in a written capture) get only complete ones."""

    def __init__(self, store: LineSink, lines: Callable[[bytes], None]) -> None:
        self._store = store
        self._lines = lines
        self._partial = b""

    def add_text(self, text: bytes | str) -> None:
        data = text.encode() if isinstance(text, str) else text
        self._store.add_text(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        if cut:
            self._lines(data[:cut])
