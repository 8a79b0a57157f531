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


@dataclass(slots=True)
class Backsteps:
    """The records of a capture whose timestamp is earlier than the record's before them (an
    unsorted merge, ``mergecap -a`` of overlapping files, the capturing host's clock stepped
    back): durations, waits and watch windows measured across them are wrong. The readers
    count them over every record they read, those the compiled skip passes over too
    (`pcap.PcapRecords`, `pcapng.PcapngRecords`); `Analysis.feed` over the frames it is given."""

    count: int = 0
    first_frame: int = 0  # the frame number of the first of them (0: none)
    largest: float = 0.0  # the largest step back, in seconds

    def add(self, frame: int, step: float, count: int = 1) -> None:
        """``count`` records stepped back, the first at frame ``frame``, by at most ``step``
        seconds each."""
        if not self.count or frame < self.first_frame:
            self.first_frame = frame
        self.count += count
        self.largest = max(self.largest, step)

    def add_all(self, other: Backsteps, before: int = 0) -> None:
        """``other``'s, whose frames are numbered from ``before`` + 1 here."""
        if other.count:
            self.add(before + other.first_frame, other.largest, other.count)
