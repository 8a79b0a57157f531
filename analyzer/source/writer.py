"""Writes captured frames to pcapng files, rotating them by size (``live --write``)."""

# Each file is a complete pcapng section: a Section Header Block, one Interface Description
# Block per capture interface (Frame.source is the interface id), then an Enhanced Packet Block
# per frame. Timestamps are in microseconds, the pcapng default, so no if_tsresol is written.
# Rotation names files like tcpdump -C/-W: FILE.pcapng, FILE.1.pcapng, FILE.2.pcapng..., and
# deletes the oldest when more than `keep` exist; `upgrade-analyzer read FILE*.pcapng` merges
# them back by timestamp.
#
# Key log lines (`live --keylog`) go in as Decryption Secrets Blocks as they are read, which is
# after the handshakes they decrypt: a client writes its keys once it has them. Readers (ours,
# Wireshark) use a secrets block only for the packets after it, so when a file is closed (the
# end of the run, or a rotation) the blocks written among its packets are moved to just after
# its header (`_keys_first`): a copy in the same directory, synced, renamed over the file, so
# the file is whole in one layout or the other at every moment. A run that dies before the
# close (SIGKILL, a crash) leaves the file as written: it decrypts with --keylog only.

from __future__ import annotations

import contextlib
import os
import stat
import struct
import tempfile
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
        self._first_packet = 0  # the current file's first packet block's offset (0: none yet)
        # secrets blocks written after that, (offset, block): moved before it at the close
        self._late: list[tuple[int, bytes]] = []
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
        if not self._first_packet:
            self._first_packet = self._size
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
            self._failed = True
            raise CaptureError(f"cannot write {self.path_of(self._index)}: "
                               f"{error.strerror or error}") from None
        if self._first_packet:  # among the packets: moved before them at the close
            self._late.append((self._size, block))
        self._size += len(block)

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as error:
            self._failed = True
            raise CaptureError(f"cannot write {self.path_of(self._index)}: "
                               f"{error.strerror or error}") from None

    def close(self) -> None:
        """Closes the file, its secrets blocks moved before its packets; a CaptureError when
        its last buffered bytes cannot be written (once: a file that failed is closed without
        another word), or the blocks cannot be moved (the file is then kept as written)."""
        if self._file.closed:
            return
        late, self._late = self._late, []
        try:
            self._file.close()
        except OSError as error:
            if not self._failed:
                self._failed = True
                raise CaptureError(f"cannot write {self.path_of(self._index)}: "
                                   f"{error.strerror or error}") from None
        if late and not self._failed:
            path = self.path_of(self._index)
            try:
                _keys_first(path, self._first_packet, late)
            except OSError as error:
                self._failed = True
                raise CaptureError(f"cannot move the keys of {path} before its packets: "
                                   f"{error.strerror or error} (the file is kept as written: "
                                   "read it with --keylog)") from None

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
        self._first_packet = 0
        return handle


def _secrets_block(lines: bytes) -> bytes:
    return _block(_DSB, struct.pack("<II", _TLS_KEY_LOG, len(lines)) + _pad(lines))


_COPY = 1 << 20


def _keys_first(path: Path, first_packet: int, late: list[tuple[int, bytes]]) -> None:
    """Rewrites the pcapng at `path` with the secrets blocks `late` (their offsets and bytes,
    in order) moved to `first_packet`, the offset of its first packet block: a copy made in
    the same directory, synced, then renamed over it."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as out, open(path, "rb") as source:
            _copy(source, out, first_packet)
            for _, block in late:
                out.write(block)
            for offset, block in late:
                _copy(source, out, offset - source.tell())
                source.seek(len(block), os.SEEK_CUR)
            _copy(source, out, -1)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(temporary, path)
    except BaseException:  # an error, or Ctrl-C: the file stays as it was
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def _copy(source: BinaryIO, out: BinaryIO, length: int) -> None:
    """`length` bytes (-1: all that is left) of `source` onto `out`."""
    while length:
        chunk = source.read(_COPY if length < 0 else min(length, _COPY))
        if not chunk:
            return
        out.write(chunk)
        if length > 0:
            length -= len(chunk)
