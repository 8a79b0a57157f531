"""The TLS stage's side of the compiled skip: which state a connection is offered after each
Python round (tls/passing.py: passing a body, gathering a record, opening records in a watch
window or in life), and what the skip's `sync` (and its watching states, at once) hands back:
records passed, bytes gathered, a watched record, a life's counts, a record read again.

A mixin of `TlsStage` (layer.py), which keeps the listener calls and the decisions; this part
only talks to the skip. The pure-Python run (`Analysis(compiled=False)`) never offers, and
the tests compare the two (tests/test_tls_passing.py, tests/test_tls_life_trust.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer.exchange.tracker import ConnectionTracker
from analyzer.reassembly import Connection, LifeFollower, StreamListener
from analyzer.tls import passing
from analyzer.tls.passable import gatherable, openable, passable
from analyzer.tls.passable import passed as count_passed
from analyzer.tls.session import TlsSession
from analyzer.tls.values import made_plain

if TYPE_CHECKING:
    from analyzer.tls.decrypt import RecordOpener
    from analyzer.tls.values import Plain


class TlsSkipping:
    """Mixin of TlsStage: the offers to the compiled skip, and what it hands back."""

    __slots__ = ()

    # TlsStage's fields and methods this part uses (declared in TlsStage)
    _conn: Connection
    _session: TlsSession
    _ledger: Any
    _done: bool

    if TYPE_CHECKING:
        def _inner_listener(self) -> StreamListener | None: ...
        def _life(self) -> LifeFollower | None: ...
        def _deliver(self, plains: list[Plain]) -> None: ...
        def _packet(self, side: int, time: float) -> None: ...
        def _read(self, side: int, offset: int, data: bytes, frame: int,
                  time: float) -> None: ...
        def _records_judged(self) -> None: ...

    def _offer(self, side: int) -> None:
        """After a Python round of ``side``'s segment: the state the connection is offered
        (at most one, or a pair)."""
        if passing.GATHER_UNDER_WAY_IN_LIFE and self._life() is not None:
            if not (passing.OPEN_IN_LIFE and self._offer_open_in_life()):
                self._offer_gather_in_life(side)
        elif not (self._offer_pass(side) or self._offer_pass(1 - side)):
            if passing.GATHER_UNDER_WAY_IN_LIFE and self._switched():
                if not (passing.OPEN_IN_WATCH and self._offer_open_in_watch()):
                    self._offer_gather_in_life(side)  # (the watch's frames: as in life)
            else:
                self._offer_gather(side)

    def _offer_gather(self, side: int) -> None:
        """Let the segments inside a direction's records gather in C (tls/passing.py):
        ``side``'s while one of its records is under way, else the other side's, who speaks
        next in a request-response exchange (a response's first segment gathered that way
        instead of taking a Python round of its own: one in eight of a TLS 1.3 download's)."""
        to_header = gatherable(self._session, side)
        if not to_header:
            other = gatherable(self._session, 1 - side)
            if other is not None:
                side, to_header = 1 - side, other
        if to_header is not None:
            passing.offer_gather(self._ledger, self._conn, side, to_header)

    def _switched(self) -> bool:
        """Whether the inner reader watches the first moments after a switch (a WebSocket's
        first frames: no request waits for a response there)."""
        inner = self._inner_listener()
        return isinstance(inner, ConnectionTracker) and inner._switch is not None

    def _offer_open_in_life(self) -> bool:
        """In life, a session's records are opened in C (tls/passing.py `offer_open_in_life`,
        TLS 1.3 and TLS 1.2 AEAD): both directions' when both can be, else the one that sent the
        more plaintext so far (a feed's server), whose records then need no Python round.
        True when offered."""
        life = self._life()
        if life is None or not passing.room_in_life(self._ledger):
            return False
        directions = [(*direction, life.tail(direction[0]))
                      for direction in self._openable_directions()]
        return bool(directions) and passing.offer_open_in_life(self._ledger, self._conn,
                                                               directions)

    def _offer_open_in_watch(self) -> bool:
        """In the watch window after a switch, the records are opened in C as in life, each
        one handed to the inner reader as it opens (tls/passing.py `offer_open_in_watch`,
        `watched_record`), until the watch's deadline. True when offered."""
        inner = self._inner_listener()
        if (not isinstance(inner, ConnectionTracker) or inner._switch is None
                or not passing.room_in_life(self._ledger)):
            return False
        directions = self._openable_directions()
        return bool(directions) and passing.offer_open_in_watch(
            self._ledger, self._conn, directions, inner._switch.watch.deadline)

    def _openable_directions(self) -> list[tuple[int, int, bytes, RecordOpener]]:
        """The directions whose records C can open (side, bytes to the next header, the
        reader's bytes of the current record, opener), the one that sent the more plaintext
        so far first."""
        session = self._session
        busier = 0 if session.plain_offset(0) >= session.plain_offset(1) else 1
        directions = []
        for side in (busier, 1 - busier):
            opening = openable(session, side, tls12=passing.OPEN_TLS12_IN_LIFE)
            if opening is not None:
                directions.append((side, *opening))
        return directions

    def _offer_gather_in_life(self, side: int) -> None:
        """In life (a WebSocket past its watch): gather only a record under way, ``side``'s
        or else the other side's. A WebSocket message is mostly one record in one segment,
        so a state offered between records (as `_offer_gather` does, for the response a
        request calls for) rarely took a byte, yet it took the peer's bare ACKs, which then
        cost a Python `sync` at the next segment, and was made and armed at every one: a
        third of a keyed run on a WebSocket chat capture (benchmarks/README.md, "Sixteenth
        session"). A record spanning segments still gathers from its second one."""
        for speaker in (side, 1 - side):
            to_header = gatherable(self._session, speaker)
            if to_header:
                passing.offer_gather(self._ledger, self._conn, speaker, to_header)
                return

    def _offer_pass(self, side: int) -> bool:
        """Let ``side``'s records go by unread while the inner reader is inside a body it
        does not read (tls/passing.py); True when offered."""
        inner = self._inner_listener()
        if not isinstance(inner, ConnectionTracker):
            return False
        room, deadline = inner.body_room(side)
        if room <= 0 or self._session.in_server_flight(side):
            # (a body before the client's first record after the hellos: a damaged or
            # fuzzed capture; each record moves the flight's last frame, read in Python)
            return False
        opening = openable(self._session, side)
        if opening is not None:
            to_header, held, opener = opening
            passing.offer_open(self._ledger, self._conn, side, room, to_header, held, opener,
                               deadline)
            return True
        state = passable(self._session, side)
        if state is None or state[2] >= room:
            return False
        overhead, to_header, carry = state
        passing.offer(self._ledger, self._conn, side, overhead, room, to_header, carry,
                      deadline)
        return True

    def gathered(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        """Segments the compiled skip gathered (tls/syncing.py `sync`), as one chunk: no record
        ends in it, so the session only buffers it (what `on_data` would do with each)."""
        plains = self._session.feed(side, offset, data, frame, time)
        assert not plains
        self._packet(side, time)

    def passed(self, side: int, count: int, records: int, plain: int, to_header: int,
               absorbed: bool, body: bool = True) -> None:
        """What the compiled skip took of ``side`` (tls/syncing.py `sync`): the session and
        the inner reader (of a ``body``; else the plaintext follows, `watched`) count it as
        if it had been read."""
        count_passed(self._session, side, count, records, plain, to_header, absorbed)
        self._records_judged()
        inner = self._inner_listener()
        if body and isinstance(inner, ConnectionTracker) and plain:
            inner.pass_body(side, plain)

    def watched_record(self, side: int, since: int, data: bytes, frame: int,
                       time: float) -> bool:
        """A record of ``side`` the compiled skip opened in the watch window (tls/passing.py
        `offer_open_in_watch`), ``since`` plaintext bytes after what the session counted at
        the last sync: delivered as `on_data` would deliver it. True once the watch is over
        (the inner reader decided, or stopped): C then leaves the next data segment to
        `on_data`, where the life (or nothing) takes it."""
        if self._done:
            return True
        offset = self._session.plain_offset(side) + since
        self._deliver([made_plain(side, offset, data, frame, time)])
        inner = self._inner_listener()
        return not (isinstance(inner, ConnectionTracker) and inner._switch is not None
                    and not inner._done)

    def lived(self, side: int, plain: int, tail: bytes, data_time: float,
              last_time: float) -> None:
        """What the compiled skip opened of ``side`` in life (tls/syncing.py `sync`): the life
        counts it as `_deliver` and `_packet` would have, segment by segment."""
        life = self._life()
        if life is not None:
            life.took(side, plain, tail, data_time, last_time)

    def reread(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        """The last byte of a record the compiled skip counted on trust in life but that
        did not open as such (tls/syncing.py `_reread`): read as `on_data` reads a segment,
        without offering a state (the one that took it is brought up to date)."""
        if not self._done:
            self._read(side, offset, data, frame, time)

    def last_packet(self, side: int, time: float) -> None:
        """``side``'s last packet was at ``time`` (tls/syncing.py `_reread`)."""
        if not self._done:
            self._packet(side, time)
