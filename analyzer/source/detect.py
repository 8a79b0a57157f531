"""Say what a file that is not a pcap/pcapng capture looks like, for the error message."""

from __future__ import annotations

import struct

from .stream import compression_of

# Leading bytes -> what to call the file. Capture formats first: a user who saved from another
# tool should learn which format to convert from.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xa1\xb2\xcd\x34", "a modified (Kuznetzov) pcap file, which is not supported"),
    (b"\x34\xcd\xb2\xa1", "a modified (Kuznetzov) pcap file, which is not supported"),
    (b"snoop\x00\x00\x00", "a Sun snoop capture, which is not supported"),
    (b"RTSS", "a Microsoft Network Monitor 1.x capture, which is not supported"),
    (b"GMBU", "a Microsoft Network Monitor 2.x capture, which is not supported"),
    (b"XCP\x00", "a NetXRay/Sniffer capture, which is not supported"),
    (b"TRSNIFF data", "a Sniffer capture, which is not supported"),
    (b"ObserverPktBuffer", "a Network Instruments Observer capture, which is not supported"),
    (b"PK\x03\x04", "a zip archive (extract it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive (extract it first)"),
    (b"\x7fELF", "an executable"),
    (b"%PDF", "a PDF document"),
)


def describe(head: bytes) -> str:
    """A short phrase for what `head` (the first bytes of a file) looks like."""
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    # The compressed formats by the reader's own test of their magic numbers (a file that
    # starts "BZh" without bzip2's block size is no bzip2, and is not called one): read
    # through their decompressors at the top, they are named here when one is inside another.
    kind = compression_of(head)
    if kind:
        return "gzip" if kind == "gzip" else f"{kind}-compressed data (decompress it first)"
    # Text first: the ERF guess has no magic to go by and printable bytes can pass it.
    if _looks_like_text(head):
        return "text"
    if _looks_like_erf(head):
        return "ERF (Endace), which is not supported (convert it with editcap -F pcap)"
    return f"unknown binary data (starts {head[:8].hex(' ')})"


def _looks_like_text(head: bytes) -> bool:
    # Cut at a character boundary: the sample may end in the middle of a UTF-8 sequence.
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    return bool(text) and all(c.isprintable() or c in "\t\r\n\f" for c in text)


def _looks_like_erf(head: bytes) -> bool:
    # ERF has no magic number. Its 16-byte record header is: little-endian 64-bit timestamp
    # (seconds in the upper 32 bits), type (low 7 bits, 1..48 are defined), flags, then
    # big-endian record length, loss counter and wire length. Wireshark guesses the same way.
    if len(head) < 16:
        return False
    (secs,) = struct.unpack_from("<I", head, 4)
    rtype = head[8]
    rlen, _, wlen = struct.unpack_from(">HHH", head, 10)
    return (
        1 <= rtype & 0x7F <= 48
        and 16 <= rlen <= 65536
        and wlen <= 65536
        and 315532800 <= secs <= 4102444800  # 1980 .. 2100
    )
