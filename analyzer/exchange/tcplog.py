"""The TCP facts of one connection (SYN, SYN-ACK, FIN and RST of each side, holes, conflicts).

Kept apart from the HTTP/1 tracker because every stage that reads a connection needs them: when
the TLS or HTTP/2 stage takes a connection over (``handoff.py``), it is given the same log, so a
SYN seen before the hand-off is still on the attempts made after it.
"""

from __future__ import annotations

from analyzer.exchange.made import made_endpoint, made_event, made_tcp_facts
from analyzer.exchange.model import Conflict, Endpoint, Gap, Resend, TcpFacts
from analyzer.reassembly import Connection

MAX_CONFLICTS = 16  # overlap conflicts kept per connection (the first ones are the evidence)
MAX_RESENT = 16  # re-sent segments kept per connection (the last ones: a request's copies)


class TcpLog:
    """Events by reassembler side (0 originator, 1 responder), as (frame, time).

    The TcpEvents are made only for an attempt (a frozen dataclass costs ~4,000 machine
    instructions to build, and most connections, bulk TLS ones above all, never become one).
    """

    __slots__ = ("conn", "syn_seen", "syn_count", "syn_ack", "fin", "rst", "gaps", "conflicts",
                 "resent")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.syn_seen: tuple[int, float] | None = None  # the originator's first SYN
        self.syn_count = 0
        self.syn_ack: tuple[int, float] | None = None
        # (frame, time), or (frame, time, True) for a FIN the capture lost (delivery.py)
        self.fin: list[tuple[int, float] | tuple[int, float, bool] | None] = [None, None]
        self.rst: list[tuple[int, float] | None] = [None, None]
        # side, offset, length, frame, time, cause ("capture", "snaplen" or "decryption":
        # `Gap.cause`)
        self.gaps: list[tuple[int, int, int, int, float, str]] = []
        self.conflicts: list[tuple[int, int, int, int, float]] = []
        # side, offset, length, frame, time of bytes sent again before they were acknowledged
        # (a list from the first: most connections never re-send)
        self.resent: list[tuple[int, int, int, int, float]] | tuple[()] = ()

    # Recording: the first event of each kind is the one kept (retransmissions repeat it).

    def syn(self, frame: int, time: float, with_ack: bool) -> None:
        if with_ack:
            if self.syn_ack is None:
                self.syn_ack = (frame, time)
        else:
            self.syn_count += 1
            if self.syn_seen is None:
                self.syn_seen = (frame, time)

    def fin_of(self, side: int, frame: int, time: float, lost: bool = False) -> None:
        if self.fin[side] is None:
            self.fin[side] = (frame, time, True) if lost else (frame, time)

    def rst_of(self, side: int, frame: int, time: float) -> None:
        if self.rst[side] is None:
            self.rst[side] = (frame, time)

    def gap(self, side: int, offset: int, length: int, frame: int, time: float,
            cause: str = "capture") -> None:
        self.gaps.append((side, offset, length, frame, time, cause))

    def conflict(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        if len(self.conflicts) < MAX_CONFLICTS:
            self.conflicts.append((side, offset, length, frame, time))

    def resend(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        if isinstance(self.resent, tuple):
            self.resent = []
        elif len(self.resent) == MAX_RESENT:
            del self.resent[0]  # (an attempt reads those after its request began)
        self.resent.append((side, offset, length, frame, time))

    def without_gaps(self, lost: set[tuple[int, int]]) -> TcpLog:
        """A copy without the holes at these (side, offset)s: for a reader of bytes those
        holes did not touch (the plaintext after a TLS handshake that lost records)."""
        copy = TcpLog(self.conn)
        copy.syn_seen, copy.syn_count, copy.syn_ack = self.syn_seen, self.syn_count, self.syn_ack
        copy.fin, copy.rst, copy.conflicts = list(self.fin), list(self.rst), list(self.conflicts)
        copy.resent = list(self.resent)
        copy.gaps = [gap for gap in self.gaps if (gap[0], gap[1]) not in lost]
        return copy

    # Reading

    @property
    def unanswered_syn(self) -> bool:
        return self.syn_seen is not None and self.syn_ack is None

    def facts(self, client: int, time: float, reason: str) -> TcpFacts:
        """The facts as the checks read them, named from the HTTP client's point of view."""
        server = 1 - client
        gaps: tuple[Gap, ...] = ()
        conflicts: tuple[Conflict, ...] = ()
        resent: tuple[Resend, ...] = ()
        if self.gaps or self.conflicts or self.resent:  # (usually none of them)
            names = {client: "client", server: "server"}
            gaps = tuple(Gap(names[s], o, n, f, t, c) for s, o, n, f, t, c in self.gaps)
            conflicts = tuple(Conflict(names[s], o, n, f, t) for s, o, n, f, t in self.conflicts)
            resent = tuple(Resend(names[s], o, n, f, t) for s, o, n, f, t in self.resent)
        fin, rst = self.fin, self.rst
        syn_seen, syn_ack = self.syn_seen, self.syn_ack
        client_fin, server_fin, client_rst, server_rst = (
            fin[client], fin[server], rst[client], rst[server])
        # (made through the slots, `exchange/made.py`: one TcpFacts per attempt; `_event`
        # written out, seven calls fewer an attempt)
        return made_tcp_facts(
            made_event(*syn_seen) if syn_seen is not None else None, self.syn_count,
            made_event(*syn_ack) if syn_ack is not None else None,
            made_event(*client_fin) if client_fin is not None else None,
            made_event(*server_fin) if server_fin is not None else None,
            made_event(*client_rst) if client_rst is not None else None,
            made_event(*server_rst) if server_rst is not None else None,
            gaps, conflicts, reason, time, resent)

    def endpoint(self, side: int) -> Endpoint:
        a, ap, b, bp = self.conn.addresses
        return made_endpoint(a, ap) if side == 0 else made_endpoint(b, bp)

    def endpoints(self, client: int) -> tuple[Endpoint, Endpoint]:
        """``(endpoint(client), endpoint(1 - client))``, the addresses read once."""
        a, ap, b, bp = self.conn.addresses
        if client == 0:
            return made_endpoint(a, ap), made_endpoint(b, bp)
        return made_endpoint(b, bp), made_endpoint(a, ap)

