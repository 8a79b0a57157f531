"""The value every capture source produces: one captured record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frame:
    """One record of a capture, numbered as Wireshark numbers it."""

    number: int  # 1-based over every record of the (merged) capture, readable or not
    time: float  # seconds since the Unix epoch, UTC
    linktype: int  # pcap LINKTYPE_* of the interface the record came from
    data: bytes  # the captured bytes (may be shorter than the packet: snaplen)
    wire_length: int  # length of the packet on the wire
    source: int = 0  # index of the input file the record came from


@dataclass(frozen=True, slots=True)
class CaptureWarning:
    """Damage found in an input that did not stop the reading of what could be read."""

    source: str  # file name, or "-" for standard input
    where: str  # "frame 1234" or "byte offset 5678"
    message: str  # one line, no trailing period


class CaptureError(Exception):
    """An input cannot be read at all; the message is one line meant for the user."""
