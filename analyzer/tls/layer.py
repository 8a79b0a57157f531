"""The TLS stage as a connection's listener: ciphertext in; attempts, counts and plaintext out.

How it works
------------
The HTTP/1 tracker hands a connection over when a direction starts with a TLS record
(`exchange/handoff.py`). From then on the reassembler calls this stage, which feeds a
`TlsSession` and decides what the connection becomes:

- With a key for the session, the plaintext goes to an inner HTTP/1 `ConnectionTracker` (or,
  after an HTTP/2 preface, to the HTTP/2 stage through the inner tracker's own hand-off) that
  shares the connection's `TcpLog`; its attempts leave with `tls=TlsInfo(decrypted=True)`.
  The inner readers see a shadow `Connection` (same addresses): a hand-off inside the
  plaintext replaces the shadow's listener, never the real connection's.
- Without a key, a session whose client sent application data is counted and summarised
  (SNI, ALPN, frames) and the connection is ignored from then on, as bulk traffic is.
- A session that broke at the TLS layer (no ServerHello, a fatal alert, a client that hung up
  after the server's flight, a server that answered in cleartext, a key that does not open
  the records) becomes an `AttemptKind.TLS` attempt; the `tls` checks say why.
- A decrypted WebSocket (or other switched protocol) outlives its watch window in the life
  state like a cleartext one: the inner tracker lets the shadow go with a `Life`
  (`analyzer/life/state.py`), and from then on this stage gives it the plaintext (its bytes
  and tail, so a final Close frame is read), the real connection's FIN and RST, and its end.
  Every record is still decrypted (gathered in C when the compiled module is there): a Close
  frame's code is only in the plaintext.

How a session's facts become attempts, `TlsInfo` and summary lines is `reporting.py`'s part
(the `TlsReporting` mixin); what the compiled skip is offered and hands back, `skipping.py`'s
(the `TlsSkipping` mixin).
"""

from __future__ import annotations

from dataclasses import replace

from analyzer.exchange.first_bytes import Start
from analyzer.exchange.handoff import HandlerFactory, RunContext
from analyzer.exchange.model import (
    NO_KEY,
    Attempt,
)
from analyzer.exchange.tcplog import TcpLog
from analyzer.exchange.tracker import ConnectionTracker
from analyzer.http.start import find_head_end
from analyzer.life.state import TAIL_BYTES
from analyzer.reassembly import Connection, LifeFollower, StreamListener
from analyzer.tls.keylog import KeyStore
from analyzer.tls.reporting import TlsReporting
from analyzer.tls.session import PREFIX, Decryption, Plain, TlsSession
from analyzer.tls.skipping import TlsSkipping


def _is_grease(value: int) -> bool:
    """A GREASE value (RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA), which BoringSSL's clients
    (Chromium and the browsers built on it) put in every ClientHello and OpenSSL's never."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


_UNREADABLE = (Decryption.NO_KEYS, Decryption.NO_KEY, Decryption.UNSUPPORTED)
_MISMATCH = Decryption.MISMATCH  # (read off its class once: `_after_records` runs each round)
# A stage remembers that its ticks are idle for good (`ticks_idle`). False: it asks every
# time, the twin tests/test_tls_passing.py compares it with.
IDLE_FOR_GOOD = True


def tls_handler(run: RunContext, conn: Connection, tcp: TcpLog, kind: Start) -> StreamListener:
    """The factory `pipeline.protocol_handlers` registers for `Start.TLS`."""
    return TlsStage(run, conn, tcp)


class TlsStage(TlsReporting, TlsSkipping):
    """StreamListener for one TLS connection (see the module's docstring)."""

    __slots__ = ("_run", "_conn", "_tcp", "_session", "_shadow", "_inner_run", "_done",
                 "_idle_for_good", "_inner_stopped", "_inner_emitted", "_judged", "_ledger",
                 "_alerts_told", "_stop_told", "_keeps_recent", "_ends_waited", "_end_waited")

    def __init__(self, run: RunContext, conn: Connection, tcp: TcpLog) -> None:
        self._run = run
        self._conn = conn
        self._tcp = tcp
        secrets = run.secrets if isinstance(run.secrets, KeyStore) else None
        self._session = TlsSession(secrets)
        for side, offset, length, frame, _time, _cause in tcp.gaps:  # holes before the hand-off
            self._session.gap(side, offset, length, frame)
        self._shadow: Connection | None = None  # what the inner readers see, made on first use
        self._inner_run: RunContext | None = None
        self._done = False  # decided: nothing more to read
        # `ticks_idle` is True from now on (the stage or its inner tracker done, or its
        # shadow let go: each for good): a sweep among thousands of open decrypted
        # WebSockets asks each one
        self._idle_for_good = False
        self._inner_stopped = False
        self._inner_emitted = False
        self._counted = False
        self._judged = -1  # the session's record count when _after_records last looked
        self._ledger = run.passing  # set when records may pass unread (tls/passing.py)
        self._alerts_told = 0  # the session's alerts already given to the life
        self._stop_told = False  # the inner reader knows a side stopped after a hole
        self._keeps_recent = True  # reassembly keeps delivered bytes (until life: `_in_life`)
        # FINs and RSTs that came while the records waited for their key (live, a key log
        # still being written): (frame, side, time, lost; None for a RST), told to the
        # plaintext's readers once the held records are read (`_released`)
        self._ends_waited: list[tuple[int, int, float, bool | None]] = []
        self._end_waited: tuple[float, str] | None = None  # the end itself, (time, reason)

    # --- StreamListener -----------------------------------------------------------------

    def on_syn(self, side: int, frame: int, time: float, with_ack: bool) -> None:
        self._tcp.syn(frame, time, with_ack)

    def on_data(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        if self._done:
            return
        if self._ledger is not None:
            self._conn.passing = None
        self._read(side, offset, data, frame, time)
        if self._keeps_recent and not self._done and self._life() is not None:
            self._in_life()  # (not once the session finished: reassembly let it go)
        if self._ledger is not None and not self._done:
            self._offer(side)

    def _read(self, side: int, offset: int, data: bytes, frame: int, time: float) -> None:
        """A segment's bytes read: the session's records, their plaintext delivered, what
        the records decide."""
        self._packet(side, time)
        self._deliver(self._session.feed(side, offset, data, frame, time))
        if self._ends_waited and self._session.decryption is not Decryption.WAITING:
            self._tell_ends_waited()
        if len(self._session.alerts) > self._alerts_told:
            self._alerts_end_streams()
        if self._session.hole_stop_side is not None and not self._stop_told:
            self._hole_stopped(frame, time)
        self._after_records(time)

    def _in_life(self) -> None:
        """The inner reader let its WebSocket go into life: its attempt is out, so re-sent
        bytes are no longer compared, and reassembly keeps none of the connection's bytes,
        as for a cleartext one in life (which leaves reassembly altogether, `let_go`; this
        one stays, since its records must still be read)."""
        self._keeps_recent = False
        self._conn.stop_keeping_recent()

    def _deliver(self, plains: list[Plain]) -> None:
        for plain in plains:
            listener = self._inner()
            if listener is None:
                life = self._life()
                if life is None:
                    break
                # (no frame: the records the compiled skip opens in life give none, and
                # both paths must agree; tests/test_life_tls.py)
                life.take(plain.side, plain.offset, plain.data, plain.time)
                continue
            if self._inner_stopped:
                break
            shadow = self._shadow
            assert shadow is not None
            # What the reassembler keeps of a direction, as the life state reads it when the
            # inner tracker lets the shadow go (`start_life`): the offset reached and the
            # last bytes, counted before the listener sees them, as `_Direction.advance` does.
            here = shadow.sides[plain.side]
            here.base = 0
            here.next_offset = plain.offset + len(plain.data)
            here.recent = (here.recent + plain.data)[-TAIL_BYTES:]
            listener.on_data(plain.side, plain.offset, plain.data, plain.frame, plain.time)

    def _hole_stopped(self, frame: int, time: float) -> None:
        """A side's records no longer open after a hole: its plaintext has a hole from here
        on, which the inner reader must know (the hole itself may have been in the handshake,
        which its `TcpLog` leaves out)."""
        self._stop_told = True
        session = self._session
        side = session.hole_stop_side
        inner = self._inner_listener()
        if side is not None and inner is not None and not self._done:
            inner.on_gap(side, session.plain_offset(side), 1, frame, time,
                         session.hole_stop_cause)

    def _alerts_end_streams(self) -> None:
        """In life, a side's alert (a close_notify, mostly) ends its stream there: the close
        began with it, and the TCP FINs after it may come in either order. nginx, on its idle
        timeout, sends close_notify and waits for the client's, whose FIN can then come
        first: the server closed, not the client."""
        alerts = self._session.alerts
        life = self._life()
        if life is not None:
            for seen in alerts[self._alerts_told:]:
                life.fin(seen.side, seen.frame, seen.time)
            self._alerts_told = len(alerts)
            return
        # An HTTP/2 stage inside follows its streams' lives itself: a close_notify ends its
        # side of every stream in life (Hypercorn shutting down: GOAWAY, close_notify, then
        # the browser's FIN first). `H2Stage.close_notify` is found by name: importing the
        # stage here would cost every TLS run hpack.
        inner = self._inner_listener()
        close_notify = getattr(inner, "close_notify", None)
        if inner is None or close_notify is None:
            return  # (told when the life begins: a watch whose window ran out in the silence
            # before the alert ends only at the next FIN, `on_fin`)
        inner.on_tick(alerts[-1].time, float("inf"))  # (watches run out before it are over)
        if getattr(inner, "in_life", False):
            for seen in alerts[self._alerts_told:]:
                close_notify(seen.side, seen.frame, seen.time)
            self._alerts_told = len(alerts)

    def _life(self) -> LifeFollower | None:
        """The life the inner tracker let the shadow go into (None before, and without the
        life stage)."""
        shadow = self._shadow
        return shadow.life if shadow is not None else None

    def _packet(self, side: int, time: float) -> None:
        """A packet of ``side`` (its last packet's time, which the life reports)."""
        shadow = self._shadow
        if shadow is not None and shadow.life is not None:
            shadow.life.take(side, 0, b"", time)

    @property
    def in_life(self) -> bool:
        """Whether the connection is followed in life (the reassembler keeps it through
        LIFE_IDLE_TIMEOUT of silence, as a cleartext one; an HTTP/2 stage inside follows
        its streams' lives itself)."""
        shadow = self._shadow
        return shadow is not None and (
            shadow.life is not None or getattr(shadow.listener, "in_life", False))

    def on_gap(self, side: int, offset: int, length: int, frame: int, time: float,
               cause: str = "capture") -> None:
        self._conn.passing = None
        self._tcp.gap(side, offset, length, frame, time, cause)
        plain_offset = self._session.plain_offset(side)
        self._session.gap(side, offset, length, frame)
        inner = self._inner_listener()
        if inner is not None and not self._done:
            inner.on_gap(side, plain_offset, length, frame, time)

    def on_conflict(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        self._tcp.conflict(side, offset, length, frame, time)

    def on_resent(self, side: int, offset: int, length: int, frame: int, time: float) -> None:
        self._tcp.resend(side, offset, length, frame, time)

    def on_fin(self, side: int, frame: int, time: float, lost: bool = False) -> None:
        self._conn.passing = None
        self._tcp.fin_of(side, frame, time, lost)
        if self._session.decryption is Decryption.WAITING:
            self._ends_waited.append((frame, side, time, lost))
            return
        self._fin_inside(side, frame, time, lost)

    def _fin_inside(self, side: int, frame: int, time: float, lost: bool) -> None:
        """A FIN told to the plaintext's readers (the inner tracker, or the life)."""
        inner = self._inner_listener()
        if inner is not None:
            inner.on_fin(side, frame, time, lost)
        life = self._life()  # in life already, or since the FIN ended the watch just now
        if life is not None:
            if len(self._session.alerts) > self._alerts_told:
                self._alerts_end_streams()  # a close_notify before the FIN began the close
            life.take(side, 0, b"", time)
            life.fin(side, frame, time, lost)  # the end itself comes with on_end

    def on_rst(self, side: int, frame: int, time: float) -> None:
        self._conn.passing = None
        self._tcp.rst_of(side, frame, time)
        if self._session.decryption is Decryption.WAITING:
            self._ends_waited.append((frame, side, time, None))
            return
        self._rst_inside(side, frame, time)

    def _rst_inside(self, side: int, frame: int, time: float) -> None:
        inner = self._inner_listener()
        if inner is not None:
            inner.on_rst(side, frame, time)
        life = self._life()
        if life is not None:
            if len(self._session.alerts) > self._alerts_told:
                self._alerts_end_streams()
            life.take(side, 0, b"", time)
            life.rst(side, frame, time)

    def on_tick(self, now: float, patience: float) -> None:
        if self._idle_for_good and not self._keeps_recent:
            return  # (the stage or its inner tracker done, and already in life)
        if self._session.decryption is Decryption.WAITING and not self._done:
            plains: list[Plain] = []
            self._session.look_for_key(now, plains)
            if self._session.decryption is not Decryption.WAITING:
                self._released(plains, now)
        inner = self._inner_listener()
        if inner is not None and not self._done:
            inner.on_tick(now, patience)
            if self._keeps_recent and not self._done and self._life() is not None:
                self._in_life()  # (the watch's time ended)

    def ticks_idle(self, now: float) -> bool:
        """Whether `on_tick` with infinite patience (a sweep's) does nothing at ``now``: then a
        sweep need not bring this connection's passing state up to date (tls/passing.py)."""
        if self._idle_for_good:
            return True
        if self._done:
            self._idle_for_good = IDLE_FOR_GOOD
            return True
        if self._session.decryption is Decryption.WAITING:
            return False
        inner = self._inner_listener()
        if inner is None:
            # for good once the inner reader was stopped, or let its shadow go (ignored, or
            # into life); not before the shadow is made
            shadow = self._shadow
            self._idle_for_good = IDLE_FOR_GOOD and (self._inner_stopped or (
                shadow is not None and (shadow.ignored or (
                    shadow.listener is None and shadow.life is not None))))
            return True
        if not isinstance(inner, ConnectionTracker):
            return False
        if inner._done:  # (a decrypted session's key is found: never WAITING again)
            self._idle_for_good = IDLE_FOR_GOOD
            return True
        return inner.ticks_idle(now)

    def on_end(self, time: float, reason: str) -> None:
        if self._wait_for_key(time, reason):
            return
        self._end(time, reason)
        # Nothing reads the inner state after the end: let it go by reference counting. The
        # shadow and its tracker point at each other, and the inner `RunContext` holds this
        # stage's bound methods, so each finished session was garbage in cycles (≈ 66
        # objects) until a collection found it: 4 young collections in the 1 GB TLS 1.3 run
        # with keys, none without (benchmarks/README.md, the `tlskeyed2` round).
        shadow = self._shadow
        if shadow is not None:
            shadow.listener = None
        self._shadow = None
        self._inner_run = None

    # --- a key still to come (live) --------------------------------------------------------

    def _wait_for_key(self, time: float, reason: str) -> bool:
        """The connection ended while its records wait for their key (live, a key log still
        being written: the client writes its key lines as it goes, the capture has the
        session first). Judged from the handshake alone, a short wss session that succeeded
        read as a certificate rejection ("client FIN right after the server's flight",
        sweep30a B3). So the end waits as the records do: True when it does, and the run
        calls `_settle` at each tick until the key is there or the wait is over."""
        session = self._session
        if session.decryption is not Decryption.WAITING or self._done:
            return False
        plains: list[Plain] = []
        session.look_for_key(time, plains)  # (the key may have come since the last record)
        if session.decryption is not Decryption.WAITING:
            self._released(plains, time)
            return False
        self._end_waited = (time, reason)
        self._run.awaiting_keys.append(self._settle)
        return True

    def _settle(self, now: float) -> bool:
        """An end that waits for its key, at ``now``: once the key is there, or the wait is
        over (then the session is without key), its records are read and the session is
        judged as at its end. True when done; False: still waiting."""
        plains: list[Plain] = []
        self._session.look_for_key(now, plains)
        if self._session.decryption is Decryption.WAITING:
            return False
        assert self._end_waited is not None
        time, reason = self._end_waited
        self._released(plains, time)
        self.on_end(time, reason)
        return True

    def _released(self, plains: list[Plain], time: float) -> None:
        """The records held for the key were read (decrypted, or not, past the wait): their
        plaintext goes in, then the FINs and RSTs that came meanwhile, then what they decide."""
        self._deliver(plains)
        self._tell_ends_waited()
        self._after_records(time)

    def _tell_ends_waited(self) -> None:
        ends, self._ends_waited = sorted(self._ends_waited), []
        for frame, side, time, lost in ends:
            if lost is None:
                self._rst_inside(side, frame, time)
            else:
                self._fin_inside(side, frame, time, lost)

    def _end(self, time: float, reason: str) -> None:
        self._conn.passing = None
        inner = self._inner_listener()
        if inner is not None and not self._inner_stopped:
            inner.on_end(time, reason)
        life = self._life()
        if life is not None:
            assert self._shadow is not None
            self._shadow.life = None
            life.end(self._conn.addresses, time, reason)
        if self._done:
            return
        self._done = True
        if self._inner_emitted or self._counted:
            return
        self._decide_at_end(time, reason)

    # --- what the session becomes -------------------------------------------------------

    def _after_records(self, time: float) -> None:
        session = self._session
        # no new record (mid-record segment) and no new breakage: nothing can have changed.
        # A side whose bytes stopped being records adds no record, so the breakage counts:
        # without it a TLS-looking stream answered by non-TLS bulk was followed to its end.
        judged = session.records + (1 << 40 if session.problem else 0)
        if judged == self._judged and not self._inner_stopped:
            return
        self._judged = judged
        if self._inner_stopped and not self._done:
            self._finish()
            return
        if session.hello_unreadable:
            self._finish()  # bytes that only look like TLS: nothing to say, nothing to read
            return
        if session.handshake_hole is not None and self._hole_decides(time):
            return
        if session.started_mid_session:
            if self._tcp.syn_seen is not None and not session.first_data(0)[0]:
                # The capture saw the connection open and its opener say nothing: the
                # server's record (an alert) answered a client that never spoke, such as a
                # browser's preconnect closed unused. No session, nothing to inspect.
                self._finish()
                return
            self._uninspected("the capture started after the handshake")
            self._finish()
            return
        if session.problem and self._answer_complete():
            # The server answered a ClientHello with something that is not TLS (an HTTP 400),
            # or the records stopped making sense: what the session was is decided now.
            if session.client_hello is not None and session.problem_side != session.client_side:
                self._emit_tls(time, "not TLS")
            self._finish()
            return
        state = session.decryption
        if state is _MISMATCH:
            self._emit_tls(time, "key mismatch")
            self._finish()
        elif state in _UNREADABLE and session.carried_application_data():
            self._uninspected(NO_KEY if state is not Decryption.UNSUPPORTED
                              else "cipher suite not supported")
            self._finish()

    def _records_judged(self) -> None:
        """The records counted so far need no new look (the compiled skip's, `passed`)."""
        self._judged = self._session.records

    def _hole_decides(self, time: float) -> bool:
        """A hole in the handshake, and the session is not being decrypted: once the client
        sent application data, say what keeps it unread (True when decided). Without a key
        log, or with one that lacks the ClientHello's random, that is the key, as for any
        session; otherwise it is the hole (never "no key" when the key is there)."""
        session = self._session
        state = session.decryption
        if state in (Decryption.DECRYPTED, Decryption.FAILED, Decryption.PENDING,
                     Decryption.WAITING) or not session.carried_application_data():
            return False
        if not self._hole_explains():
            self._uninspected(NO_KEY)
        elif state is Decryption.UNSUPPORTED:
            self._uninspected("cipher suite not supported")
        else:
            self._emit_tls(time, "capture hole")
        self._finish()
        return True

    def _hole_explains(self) -> bool:
        """Whether a hole in the handshake, not a missing key, keeps the session unread: the
        key log was given and does not lack the ClientHello's random."""
        session = self._session
        return session.handshake_hole is not None and not (
            session.decryption is Decryption.NO_KEYS or session.key_absent)

    def _answer_complete(self) -> bool:
        """Whether the non-TLS answer is all there is to read (its head, or PREFIX bytes)."""
        session = self._session
        if session.problem_side is None or session.problem_side == session.client_side:
            return True
        prefix = session.prefix(session.problem_side)
        return len(prefix) >= PREFIX or find_head_end(prefix) is not None

    def _decide_at_end(self, time: float, reason: str) -> None:
        session = self._session
        if session.client_hello is None and session.handshake_hole is None:
            return  # not a TLS client we saw start (mid-session capture): nothing to judge
        if session.decryption in (Decryption.DECRYPTED, Decryption.FAILED):
            if session.alpn == "h2" and Start.H2_PREFACE not in self._run.handlers:
                self._uninspected("HTTP/2 not analysed")
                return
            if (session.carried_application_data() and not self._any_fatal_alert()
                    and self._client_plaintext()):
                return  # decrypted, and the plaintext said nothing the inner tracker kept
            # (the client sent none: its records after the handshake were alerts, a TLS 1.3
            # client's close_notify among them: judged as the handshake's end below)
        elif session.carried_application_data() and not self._any_fatal_alert() and (
                not self._hole_explains()):
            self._uninspected(NO_KEY)
            return
        if self._unused():
            self._run.counters.tls_unused += 1
            self._counted = True
            return
        self._emit_tls(time, reason)

    def _unused(self) -> bool:
        """Whether the session was opened and never used: its client completed the handshake,
        then sent no application data and no alert, the certificate it accepted shows nothing
        wrong, and either the client is a browser (GREASE in its ClientHello, RFC 8701:
        Chromium races two connections and drops one without a word, and preconnects) or the
        server closed it first (an idle connection's close_notify). Not attempts: counted
        (`tls_unused`). Other clients stay attempts (`checks/tls.py`): Node checks the
        server's certificate after the handshake and closes without an alert when it does not
        trust it, and curl says close_notify after a name it rejects."""
        session = self._session
        client = session.client_side
        if client is None or not session.client_finished() or self._client_plaintext():
            return False
        if session.decryption is not Decryption.DECRYPTED and (
                session.carried_application_data()):
            return False  # (unread records: data, or an alert that cannot be told apart)
        # (a server's alert that answered the client's FIN or RST is the server's word on a
        # connection already abandoned: toy servers say decode_error)
        gone = self._client_end_frame()
        alerts = [seen for seen in session.alerts if seen.frame < gone]
        if any(seen.side == client or seen.alert.fatal for seen in alerts) or any(
                side == client for side, _, _ in session.unreadable_alerts):
            return False
        hello = session.client_hello
        browser = hello is not None and any(map(_is_grease, hello.suites))
        server_closed = bool(alerts) or any(  # (the server's, before the client went)
            frame < gone for _, frame, _ in session.unreadable_alerts)
        return (browser or server_closed) and not self._certificate_doubtful()

    def _client_end_frame(self) -> float:
        """The frame of the client's FIN or RST, whichever came first (infinity without)."""
        client = self._session.client_side
        ends = [end[0] for end in (self._tcp.fin[client], self._tcp.rst[client])
                if end is not None] if client is not None else []
        return min(ends, default=float("inf"))

    def _client_plaintext(self) -> bool:
        """Whether the client's decrypted records carried application data (an HTTP/2
        server speaks first: its SETTINGS alone is no use of the connection)."""
        client = self._session.client_side
        return client is not None and self._session.plain_offset(client) > 0

    def _certificate_doubtful(self) -> bool:
        """Whether the leaf certificate (when readable) does not cover the name the client
        asked for, or was not valid at the capture's time: a reason a client may close."""
        certificates = self._session.certificates
        if not certificates:
            return False
        leaf = certificates[0]
        hello = self._session.client_hello
        client = self._session.client_side or 0
        host = (hello.sni if hello is not None and hello.sni else
                self._tcp.endpoint(1 - client).ip)
        syn = self._tcp.syn_seen
        moment = syn[1] if syn else 0.0
        return not leaf.covers(host) or bool(moment) and not (
            leaf.not_before <= moment <= leaf.not_after)

    def _any_fatal_alert(self) -> bool:
        """Whether a fatal alert ended the session: not a server's that answered the client's
        FIN or RST (the client had left)."""
        gone, client = self._client_end_frame(), self._session.client_side
        return any(seen.alert.fatal and (seen.side == client or seen.frame < gone)
                   for seen in self._session.alerts)

    def _finish(self) -> None:
        """Nothing more is needed from this connection: reassembly stops here."""
        self._done = True
        self._run.ignore(self._conn)

    # --- the inner (plaintext) readers --------------------------------------------------

    def _inner(self) -> StreamListener | None:
        shadow = self._shadow
        if shadow is None:
            self._run.counters.tls_decrypted += 1
            shadow = self._shadow = Connection(key=self._conn.key)
            handlers: dict[Start, HandlerFactory] = {
                k: v for k, v in self._run.handlers.items() if k is not Start.TLS}
            self._inner_run = RunContext(self._emit_inner, self._run.counters, self._run.window,
                                         handlers, None, self._stop_inner,
                                         life_sink=self._run.life_sink,
                                         frame_parser=self._run.frame_parser)
            # The handshake's holes (if any) left the plaintext whole: the inner reader
            # must not count them as holes in the request or the response.
            tcp = self._tcp.without_gaps(self._session.handshake_gaps) \
                if self._session.handshake_gaps else self._tcp
            shadow.listener = ConnectionTracker(shadow, self._inner_run, tcp)
        if shadow.ignored or shadow.listener is None:  # a reader that let the shadow go itself
            if shadow.life is None:  # (into life: the plaintext goes there, `_deliver`)
                self._stop_inner(shadow)
            return None
        return shadow.listener

    def _inner_listener(self) -> StreamListener | None:
        if self._shadow is None or self._inner_stopped or self._shadow.ignored:
            return None
        return self._shadow.listener

    def _emit_inner(self, attempt: Attempt) -> None:
        self._inner_emitted = True
        self._run.emit(replace(attempt, tls=self.info(decrypted=True)))

    def _stop_inner(self, conn: Connection) -> None:
        """The inner reader needs no more plaintext (judged, or not HTTP)."""
        if self._inner_stopped:
            return
        self._inner_stopped = True
        if (not self._inner_emitted and self._session.alpn == "h2"
                and Start.H2_PREFACE not in self._run.handlers):
            self._uninspected("HTTP/2 not analysed")
