"""The values the life stage hands on: how a switched connection ended (`Lifetime`), and the
event that says so (`Ended`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from analyzer.exchange.model import Endpoint

if TYPE_CHECKING:
    from analyzer.checks.catalogue import Finding
    from analyzer.verdict import Verdict

# How a connection in life ended (Lifetime.how).
CLOSE_HANDSHAKE = "close_handshake"  # both sides sent a Close frame (RFC 6455 §7.1.2)
CLOSE_FRAME = "close_frame"  # one side sent a Close frame, the other never answered it
FIN = "fin"  # a TCP FIN, no Close frame
RST = "rst"  # a TCP RST, no Close frame
OPEN = "open"  # still open when the capture ended (or silent for LIFE_IDLE_TIMEOUT)


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long a switched connection lived and how it ended."""

    duration_s: float  # from the switch (the 101's first byte) to the end
    closed_by: str  # "client", "server", or "" when still open
    how: str  # CLOSE_HANDSHAKE, CLOSE_FRAME, FIN, RST or OPEN
    idle_before_end_s: float  # silence (no byte either way) before the end
    close_code: int | None  # the first Close frame's code, when the end had one
    closer: Endpoint | None = None  # the address that ended it (its FIN, RST or first Close)
    close_side: str = ""  # who sent the first Close frame
    close_reason: str = ""  # its reason text (at most 123 bytes, RFC 6455 §5.5)
    client_bytes: int = 0  # bytes each side sent over the whole connection
    server_bytes: int = 0
    client_first: float = 0.0  # time of each side's first and last packet
    client_last: float = 0.0
    server_first: float = 0.0
    server_last: float = 0.0
    end_frame: int = 0  # the FIN or RST that ended it (0: still open)
    end_time: float = 0.0
    # a WebSocket (the life rules and groups read only those: an h2c or CONNECT tunnel has
    # no Close frame to miss)
    websocket: bool = True
    # the first Close frame's frame (0: not known, e.g. read in C from TLS records) and time
    close_frame: int = 0
    close_time: float = 0.0
    # a keepalive ping of the side that ended it which the other side never answered (no
    # byte) before that side closed, at least KEEPALIVE_MIN_WAIT before (0: none)
    ping_frame: int = 0
    ping_time: float = 0.0
    # an HTTP/2 stream's: the side that sent a graceful GOAWAY before the end ("" without)
    shut_down_by: str = ""

    @property
    def ended(self) -> bool:
        return self.how != OPEN

    @property
    def close_after_s(self) -> float:
        """Seconds from the switch to the first Close frame (to the end when its time is not
        known): a Close sent just past the watch window and a FIN seconds later are apart."""
        if not self.close_time:
            return self.duration_s
        return round(max(self.close_time - (self.end_time - self.duration_s), 0.0), 6)


@dataclass(frozen=True, slots=True)
class Ended:
    """A connection in life ended (or the capture did): the final word on its attempt.

    ``key`` names the attempt decided at the end of the watch (`attempt_key`); the CLI maps
    it to that attempt's number (``number``, 0 until then)."""

    key: tuple[int, int, int]
    lifetime: Lifetime
    findings: tuple[Finding, ...]  # the life phase's findings
    verdict: Verdict  # the final verdict (the decided one, or `dropped`)
    decided: Verdict  # the verdict decided at the end of the watch
    client: Endpoint
    server: Endpoint
    target: str  # the request target (clipped), for the grouping summary line
    time: float  # the attempt's time (its request)
    number: int = 0
    # the attempt's file and frame number within it, when several files are read (as
    # `Diagnosis.origin`)
    origin: tuple[str, int] | None = None

    @property
    def primary(self) -> Finding | None:
        return self.findings[0] if self.findings else None


def attempt_key(first_frame: int, sequence: int, stream_id: int | None) -> tuple[int, int, int]:
    """What names one attempt across its two events: its first frame, its place on the
    connection and its HTTP/2 stream."""
    return first_frame, sequence, stream_id or 0


def living_key(first_frame: int, sequence: int,
               stream_id: int | None) -> int | tuple[int, int, int]:
    """`attempt_key` packed (`packed_key`): what the CLI keeps for an attempt in life."""
    return packed_key(attempt_key(first_frame, sequence, stream_id))


def packed_key(key: tuple[int, int, int]) -> int | tuple[int, int, int]:
    """``key`` as one number while its parts fit (always, but for a connection of 2^32
    exchanges), as the CLI keeps it for each attempt in life: a dict entry under a tuple of
    three was ≈ 180 bytes, under one number ≈ 120 (benchmarks/README.md, "Memory")."""
    frame, sequence, stream = key
    if 0 <= sequence < 1 << 32 and 0 <= stream < 1 << 32:
        return frame << 64 | sequence << 32 | stream
    return key
