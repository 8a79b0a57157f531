"""What the reassembler talks to: the listener of a followed connection, and, after the
watch window, the life follower and the life table a connection let go moves into.

Listeners are plain objects with ``on_*`` methods (see ``StreamListener``): the reassembler does
no I/O and knows nothing about HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from analyzer.reassembly.connection import Connection


class StreamListener(Protocol):
    """What the layer above the reassembler is told about one connection.

    ``side`` is 0 for the connection's originator (the SYN sender, or the sender of the first
    segment seen when the capture started mid-connection) and 1 for the responder.
    """

    def on_syn(self, side: int, frame: int, time: float, with_ack: bool) -> None: ...

    def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None: ...

    def on_gap(self, side: int, offset: int, length: int, frame: int, time: float,
               cause: str = "capture") -> None:
        """Bytes ``offset`` to ``offset + length`` of ``side`` will never come: the capture
        lost them (``cause`` "capture"; "snaplen" when the record says the capture's snapshot
        length cut them off the end of its segment), or (``cause`` "decryption", from the TLS
        stage to its inner reader) the session stopped decrypting there."""

    def on_conflict(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        """A segment re-sent ``length`` delivered bytes from ``offset`` with different bytes."""

    def on_resent(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        """A segment sent ``length`` delivered bytes from ``offset`` again before the capture
        saw the other side acknowledge them (a retransmission that was needed, as far as
        the capture shows: its first copy, or the acknowledgement, was lost after the
        capture point)."""

    def on_fin(self, side: int, frame: int, time: float, lost: bool = False) -> None:
        """``lost``: the capture lost the FIN; ``frame`` acknowledged it (delivery.py)."""

    def on_rst(self, side: int, frame: int, time: float) -> None: ...

    def on_end(self, time: float, reason: str) -> None: ...

    def on_tick(self, now: float, patience: float) -> None: ...


class LifeTable(Protocol):
    """Where connections in life are kept once let go (`analyzer/life/table.py`): compiled,
    or its plain twin."""

    def __len__(self) -> int: ...

    def adopt(self, conn: Connection) -> bool: ...

    def side_of(self, key: bytes) -> int: ...

    def take(self, key: bytes, seq: int, ack: int, payload: bytes, frame: int,
             time: float) -> bool: ...

    def segment(self, key: bytes, flags: int, seq: int, ack: int, payload: bytes, frame: int,
                time: float) -> str | None: ...

    def reused(self, key: bytes, seq: int) -> bool: ...

    def syn_base(self, key: bytes) -> int | None: ...

    def pop(self, key: bytes) -> tuple[LifeFollower, bytes]: ...

    def idle(self, cutoff: float) -> list[bytes]: ...

    def ages(self) -> list[tuple[float, bytes]]: ...


class LifeFollower(Protocol):
    """What follows a connection after the layer above let it go in the life state
    (`analyzer/life/state.py`): each segment's bytes and time, its FIN or RST, its end. No
    reassembly: the segments come as the capture shows them."""

    def take(self, side: int, seq: int, payload: bytes, time: float, frame: int = 0) -> None: ...

    def seen(self, side: int, data: bytes, time: float, frame: int = 0) -> None:
        """Bytes already reassembled when the life began (they ended the watch)."""

    def fin(self, side: int, frame: int, time: float, lost: bool = False) -> bool:
        """True once both directions have sent their FIN."""

    def acked(self, side: int, ack: int, frame: int, time: float) -> bool:
        """``side`` acknowledged ``ack`` of the other side's stream (a lost FIN's proof);
        True once both directions have ended."""

    def rst(self, side: int, frame: int, time: float, seq: int = -1) -> None: ...

    def end(self, addresses: tuple[bytes, int, bytes, int], time: float, reason: str) -> None: ...

    def took(self, side: int, count: int, tail: bytes, data_time: float,
             last_time: float) -> None:
        """New bytes of ``side`` read elsewhere (a decrypted direction's records opened in C,
        tls/passing.py), with the tail they leave and their times."""

    def tail(self, side: int) -> bytes:
        """The bytes ``side`` keeps where a final Close frame may be."""
