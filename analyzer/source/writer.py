"""Writes captured frames to pcapng files, rotating them by size (``live --write``)."""

# Each file is a complete pcapng section: a Section Header Block, one Interface Description
# Block per capture interface (Frame.source is the interface id), then an Enhanced Packet Block
# per frame. Timestamps are in microseconds, the pcapng default, so no if_tsresol is written.
# Rotation names files like tcpdump -C/-W: FILE.pcapng, FILE.1.pcapng, FILE.2.pcapng..., and
# deletes the oldest when more than `keep` exist; `upgrade-analyzer read FILE*.pcapng` merges
# them back by timestamp.

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from .frame import CaptureError, Frame

_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_EPB = 0x00000006
_DSB = 0x0000000A  # Decryption Secrets Block
_TLS_KEY_LOG = 0x544C534B  # its secrets type "TLSK": NSS key log lines
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_IF_NAME = 2

_BLOCK_HEAD = struct.Struct("<II")
_SHB_BODY = struct.Struct("<IHHq")  # magic, major, minor, section length (-1: unknown)
_IDB_BODY = struct.Struct("<HHI")  # link type, reserved, snaplen
_EPB_BODY = struct.Struct("<IIIII")  # interface, timestamp high, low, captured, original length
_OPTION = struct.Struct("<HH")
_TRAILER = struct.Struct("<I")


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return _BLOCK_HEAD.pack(kind, length) + body + _TRAILER.pack(length)


def _header(interfaces: Sequence[tuple[str, int]], snaplen: int) -> bytes:
    parts = [_block(_SHB, _SHB_BODY.pack(_BYTE_ORDER_MAGIC, 1, 0, -1))]
    for name, linktype in interfaces:
        label = name.encode()
        options = (_OPTION.pack(_OPT_IF_NAME, len(label)) + _pad(label) + _OPTION.pack(0, 0))
        parts.append(_block(_IDB, _IDB_BODY.pack(linktype, 0, snaplen) + options))
    return b"".join(parts)


def packet_block(frame: Frame) -> bytes:
    micros = round(frame.time * 1_000_000)
    body = _EPB_BODY.pack(frame.source, micros >> 32, micros & 0xFFFFFFFF, len(frame.data),
                          frame.wire_length) + _pad(frame.data)
    return _block(_EPB, body)


class RotatingPcapngWriter:
    """Appends frames to FILE.pcapng; past `limit` bytes starts FILE.1.pcapng, and so on.

    `limit` 0 never rotates; `keep` is how many files exist at most (0: all of them).
    """

    def __init__(self, path: str, interfaces: Sequence[tuple[str, int]], snaplen: int,
                 limit: int = 0, keep: int = 0) -> None:
        self._base = Path(path)
        self._header = _header(interfaces, snaplen)
        self._limit = limit
        self._keep = keep
        self._index = 0
        self._size = 0
        self._failed = False  # a write failed and was reported (a full disk)
        self._secrets = b""  # key log lines written so far: every new file starts with them
        self._file: BinaryIO = self._open(self._base)

    def path_of(self, index: int) -> Path:
        if index == 0:
            return self._base
        suffix = self._base.suffix or ".pcapng"
        stem = self._base.name[: -len(self._base.suffix)] if self._base.suffix else self._base.name
        return self._base.with_name(f"{stem}.{index}{suffix}")

    def write(self, frame: Frame) -> None:
        block = packet_block(frame)
        if self._limit and self._size > len(self._header) and (
            self._size + len(block) > self._limit
        ):
            self._rotate()
        try:
            self._file.write(block)
        except OSError as error:
            self._failed = True
            raise CaptureError(f"cannot write {self.path_of(self._index)}: "
                               f"{error.strerror or error}") from None
        self._size += len(block)

    def write_secrets(self, lines: bytes) -> None:
        """Embed TLS key log lines (whole lines) before the packets that follow, as a Decryption
        Secrets Block (`live --keylog --write`: the file then decrypts on its own)."""
        if not lines:
            return
        self._secrets += lines
        block = _secrets_block(lines)
        try:
            self._file.write(block)
        except OSError as error:
            raise CaptureError(f"cannot write {self.path_of(self._index)}: "
                               f"{error.strerror or error}") from None
        self._size += len(block)

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as error:
            self._failed = True
            raise CaptureError(f"cannot write {self.path_of(self._index)}: "
                               f"{error.strerror or error}") from None

    def close(self) -> None:
        """Closes the file; a CaptureError when its last buffered bytes cannot be written
        (once: a file that failed is closed without another word)."""
        if self._file.closed:
            return
        try:
            self._file.close()
        except OSError as error:
            if not self._failed:
                self._failed = True
                raise CaptureError(f"cannot write {self.path_of(self._index)}: "
                                   f"{error.strerror or error}") from None

    def _rotate(self) -> None:
        self.close()
        self._index += 1
        self._file = self._open(self.path_of(self._index))
        if self._keep and self._index >= self._keep:
            old = self.path_of(self._index - self._keep)
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass
            except OSError as error:
                raise CaptureError(f"cannot remove {old}: {error.strerror or error}") from None

    def _open(self, path: Path) -> BinaryIO:
        try:
            handle = open(path, "wb")  # noqa: SIM115 - kept open across writes, closed in close()
            handle.write(self._header)
            secrets = _secrets_block(self._secrets) if self._secrets else b""
            handle.write(secrets)
        except OSError as error:
            raise CaptureError(f"cannot write {path}: {error.strerror or error}") from None
        self._size = len(self._header) + len(secrets)
        return handle


def _secrets_block(lines: bytes) -> bytes:
    return _block(_DSB, struct.pack("<II", _TLS_KEY_LOG, len(lines)) + _pad(lines))
