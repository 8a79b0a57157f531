"""Passing: the records of a decrypted TLS direction that no reader needs skip Python entirely.

How it works
------------
A decrypted HTTPS download is a response body of known length (or one that runs until the
close) inside application-data records. Past the body's first 4 KiB (what the report keeps)
nothing reads that plaintext, but the per-segment path still walks every TCP segment in
Python (≈ 4 µs each) to count the records (their sequence numbers are in the AEAD nonce).
So the TLS stage offers the connection a `Passing` state (`offer`) when the inner HTTP/1
tracker is inside such a body; the compiled skip (`decode/_fastpath.pyx`, beside the skip
of ignored connections) then takes, in C, each in-order segment of that direction whose
records it can count exactly without opening them, and the other direction's bare ACKs:

- TLS 1.2 suites whose plaintext length is the record length minus a constant: AES-GCM and
  AES-CCM (8-byte explicit nonce + tag) and ChaCha20-Poly1305 (tag) pass unread;
- TLS 1.3 records hide their inner content type and padding at the end of the encrypted
  plaintext (RFC 8446 §5.2, §5.4) and may be handshake messages (a KeyUpdate changes the
  keys), so they are opened instead (`offer_open`): C gathers each record whole and calls the
  direction's `cryptography` AEAD ``decrypt`` on it (a view, no copy; the nonce is the IV XOR
  the sequence number, §5.3). A record that authenticates and whose inner type is
  application data counts as passed (sequence, plaintext length); any other (a KeyUpdate, an
  alert, padding only, a record that does not open) has its last segment go the usual way,
  which opens and reads it from its gathered bytes. A peek at the last block (AES-CTR or
  ChaCha20 at the right counter) was the other way, but made a cipher context per record
  (≈ 4 µs) where the whole authenticated open of a 16 KiB record costs 1.4 µs (AES-128-GCM)
  to 4.8 µs (ChaCha20-Poly1305) with AES-NI/AVX2;
- Records counted unopened (TLS 1.3): opening was the whole difference between a keyed TLS
  1.3 run and a TLS 1.2 one (≈ 0.3 s of CPU a GB, more than the instruction count says). So
  once ``TRUST_AFTER`` records under the direction's current keys opened without padding, a
  record whose encrypted body is ``TRUST_FROM`` bytes or more counts as application data of
  its length less the tag and the type byte, unopened, as a TLS 1.2 record does. The rest are
  still opened: small records (an unpadded KeyUpdate is 22 bytes, an alert 19), the record
  that reaches the body's end, and every record of a sender seen padding (OpenSSL's
  ``-record_padding``; padding seen in C or in Python ends the trust for good). What is taken
  on trust, and how a wrong guess shows: a KeyUpdate or alert padded past ``TRUST_FROM``, or
  a damaged record, is counted as data. A missed KeyUpdate makes the next opened record fail;
  the session then stops decrypting that direction with the finding `tls_decryption_stopped`
  (tls/session.py `_protected`), never a wrong plaintext. A damaged large record inside a
  body goes unseen, as in TLS 1.2. The per-segment path opens every record; the twins agree
  on every intact capture (tests/test_tls_passing.py, tests/test_tls_passing_live.py);
- records of outer type application_data only, and only while the sum of their plaintext
  stays below the body's remaining length, so the record holding the body's last byte (and
  everything after it) is decrypted and read as before. When that record goes on past the
  segment holding its header, the state turns to gathering there (``TURN``): the record's
  bytes gather in C and its last segment goes the usual way, which reads it whole, as a
  gathering state offered by Python would have; `sync` counts what passed before it, then
  gives the gathered bytes;
- no body passes while the server's flight goes on (`TlsSession.in_server_flight`: after its
  hello, before any record of the client's; each server record moves `server_flight_frame`,
  which Python reads record by record): only a damaged capture has a response body then;
- a segment that is not the next in-order one, carries SYN/FIN/RST, was cut by the snaplen,
  waits for the other side's bytes, or comes from the other side with data, goes the usual
  way, and so does the periodic sweep's segment (the ledger's limit).

Right after each compiled skip call, `sync` (tls/syncing.py) brings the Python state where
the per-segment path would have left it: the reassembler's offsets, kept bytes (C keeps
them, with the records it gathers, in one buffer per state, and writes them back,
`flush_recent`: resizing `recent` per segment cost a fifth of a decrypted TLS 1.3 run; the
bytes of passed and trusted records are not copied there as they are taken but left in the
read buffers, which the ledger keeps, and copied only when something may read them: ≈ 2-3 %
of them, decode/_passing_buffer.pxi `_defer`), ACKs, last time and sweep count; the record
reader's position; the opener's sequence number; the plaintext offset; the body reader's
count. Frames of the connection that Python handles disarm the state (`disarm`); it is
checked again (`arm`) after the next segment the cheap path takes. The pure-Python path
never passes; tests/test_tls_passing.py compares the two (and
tests/test_tls_passing_live.py, on OpenSSL's TLS 1.3 with a KeyUpdate in the body).

This is also the one point where a TLS session's later life is left to C: the "life" state
of a switched connection (wave2-decisions.md) hooks in beside `sync`. A decrypted WebSocket
gets a pair of opening states (one a direction) in its watch window (`offer_open_in_watch`:
each opened record goes to the TLS stage at once, `TlsStage.watched_record`) and in its life
(`offer_open_in_life`: the life's counts, times and tail at `sync`; records counted on
trust but the smallest, `TRUST_IN_LIFE`, opened only for the tail, and read again in Python
when one was not application data, tls/syncing.py `_reread`). docs/architecture.md says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from analyzer.decode.decoder import FASTPATH_COMPILED
from analyzer.reassembly import _MASK, _NOT_KEPT, _NOTHING_YET, Connection, Reassembler
from analyzer.tls.suites import Cipher

if TYPE_CHECKING:
    from analyzer.tls.decrypt import RecordOpener

try:
    from analyzer.decode._fastpath import (
        LIFE_CAPACITY,
        WATCH_CAPACITY,
        Ledger,
        Passing,
        Watching,
    )
except ImportError:  # pragma: no cover - the pure-Python install never passes
    Ledger = Passing = Watching = None
    LIFE_CAPACITY = WATCH_CAPACITY = 0

AVAILABLE = FASTPATH_COMPILED and Ledger is not None

# Opened TLS 1.3 records are decrypted into one reused buffer (the AEAD's `decrypt_into`)
# rather than into a new bytes object each (`decrypt`): 2.2 µs against 2.9 µs a 16 KiB
# AES-256-GCM record. False: `decrypt`, the twin tests/test_tls_passing.py compares it with.
OPEN_INTO = True

# Records counted unopened (module docstring): a TLS 1.3 record whose encrypted body is at
# least TRUST_FROM bytes, once TRUST_AFTER records under the same keys opened without
# padding. An unpadded KeyUpdate is 22 bytes, an alert 19. 0: every record is opened.
TRUST_FROM = 1024
TRUST_AFTER = 2

# Turning (module docstring): a passing state gathers, in C, the record that reaches the
# body's end from its header on, so Python reads it once, whole, at its last segment;
# without it, the segment holding its header went to Python only for an offer to gather
# the rest (one Python round of a TLS 1.2 response's eight). False: that round, the twin
# tests/test_tls_passing.py compares it with.
TURN = True

# In life (a decrypted WebSocket past its watch window), and in its watch window, a gathering
# state is offered only for a record under way (tls/skipping.py `_offer_gather_in_life`), not
# between records as for a response to come. False: offered after every segment, the twin
# tests/test_tls_passing.py compares it with.
GATHER_UNDER_WAY_IN_LIFE = True

# In life, a session's records are opened in C (`offer_open_in_life`), both directions'
# when both can be. False: read in Python (with gathering), the twin tests/test_tls_passing.py
# compares it with. (Read only with GATHER_UNDER_WAY_IN_LIFE: its twin is the earlier code.)
OPEN_IN_LIFE = True
# ... and so are TLS 1.2 sessions' AEAD records (AES-GCM, ChaCha20-Poly1305). False: TLS 1.2
# records in life are read in Python, the twin tests/test_tls_passing.py compares it with.
OPEN_TLS12_IN_LIFE = True

# In the watch window after a decrypted WebSocket's switch, its records are opened in C too
# (`offer_open_in_watch`) and each one's plaintext handed to the inner reader as it opens,
# without the Python round of its segment (reassembly, record reader, AEAD). False: read in
# Python (with gathering), the twin tests/test_tls_passing.py compares it with.
OPEN_IN_WATCH = True
# ... and each record's plaintext goes straight to the inner tracker's compiled watch where
# the tracker would only hand it on (decode/_watching.pxi `_watch_record`, as `Follow` does
# for cleartext). False: through `TlsStage.watched_record`, the twin tests/test_tls_passing.py
# compares it with.
WATCH_IN_C = True

# In life, a record whose encrypted body is at least LIFE_TRUST_FROM bytes counts as
# application data of its length less the overhead, unopened, once TRUST_AFTER records
# under the same keys opened without padding (as TRUST_FROM does for bodies). The life reads
# no plaintext but its tail (TAIL_BYTES, 131: where a final Close frame may begin), so such
# records are opened only when the tail needs them: the last ones, whose plaintext covers
# the tail (decode/_trust.pxi), when a smaller record follows them or at the next sync; the
# others are never opened. Should one then not open as that much application data, it is
# taken back with those after it and read in Python (`_reread`). 23: an unpadded KeyUpdate
# is 22 bytes, an alert 19, so both are always opened (a padded one is the risk TRUST_FROM
# takes, above; so is a NewSessionTicket sent in life that the tail does not reach: its
# bytes count as the life's data). It was 160 (a record whose plaintext fills the tail
# alone) until the twenty-first session: a chat's small messages were all opened, ≈ 16 % of
# a keyed chat run's instructions. False: every record opened in life, the twin
# tests/test_tls_passing.py compares it with.
TRUST_IN_LIFE = True
LIFE_TRUST_FROM = 23

# A budget no body has: in life, nothing ends what may be opened but the records themselves.
# Also the most a state takes as its budget (a C long long): a body's length comes from a
# Content-Length, which a capture may make any size (fuzzing found one past 2^63, an
# OverflowError where the state was offered).
_NO_BUDGET = 1 << 62

# At most this many states in life or in a watch window at once (each ≈ 3 KB), their buffers
# at most this many bytes in all (each grows with what it holds, up to 26 KiB in life and
# 40 KiB in a watch window; in life most hold a few hundred bytes): a capture of thousands of
# open decrypted WebSockets would otherwise grow with them. Past either, a direction's
# records are read in Python, as before (a buffer that would grow past the budget lets its
# segment go the usual way, and a state whose first buffer would pass it is not armed: the
# budget is a hard bound).
MAX_LIFE_STATES = 8192
LIFE_BUFFER_BUDGET = 64 * 1024 * 1024


def new_ledger() -> Any:
    """The run's ledger when the compiled module is there, else None (nothing passes)."""
    if not AVAILABLE:
        return None
    ledger = Ledger()
    ledger.life_budget = LIFE_BUFFER_BUDGET
    return ledger


def offer(ledger: Any, conn: Connection, side: int, overhead: int, budget: int,
          to_header: int, carry_plain: int, deadline: float) -> None:
    """Let ``side``'s records pass (see the module's docstring) until ``deadline`` (a
    segment after it goes the usual way: a watch window ends there); armed at the next
    `arm`."""
    passing = Passing(conn, ledger, side)
    passing.deadline = deadline
    passing.overhead = overhead
    passing.budget = min(budget, _NO_BUDGET)
    passing.to_header = to_header
    passing.carry_plain = carry_plain
    passing.turn = TURN
    conn.passing = passing


def offer_open(ledger: Any, conn: Connection, side: int, budget: int, to_header: int,
               held: bytes, opener: RecordOpener, deadline: float) -> None:
    """Let ``side``'s TLS 1.3 records be opened in the compiled skip (module docstring)."""
    conn.passing = _opening(ledger, conn, side, budget, to_header, held, opener, deadline)


def _opening(ledger: Any, conn: Connection, side: int, budget: int, to_header: int,
             held: bytes, opener: RecordOpener, deadline: float) -> Any:
    """An opening state for ``side`` (`offer_open`)."""
    passing = Passing(conn, ledger, side)
    passing.opening = True
    passing.start_record(held)
    passing.to_header = to_header
    passing.sequence = opener.sequence
    passing.decrypt, decrypt_into, passing.iv = opener.aead()
    if OPEN_INTO:
        passing.decrypt_into = decrypt_into
    passing.invalid = opener.invalid_tag
    passing.opener = opener
    passing.unconfirmed = opener.unconfirmed
    if not opener.padding_seen:  # (module docstring, "Records counted unopened")
        passing.trust_from = TRUST_FROM
        passing.trust_after = TRUST_AFTER
        passing.clean = opener.sequence
    passing.budget = min(budget, _NO_BUDGET)
    passing.deadline = deadline
    return passing


def room_in_life(ledger: Any) -> bool:
    """Whether one more state in life or in a watch window may be made (`MAX_LIFE_STATES`):
    when not, the TLS stage need not look for directions to offer (a capture of thousands
    of open sessions asks at almost every Python round)."""
    return bool(ledger.life_states < MAX_LIFE_STATES
                and ledger.life_buffer_bytes < ledger.life_budget)


def offer_open_in_life(ledger: Any, conn: Connection,
                       directions: list[tuple[int, int, bytes, RecordOpener, bytes]]) -> bool:
    """Let TLS 1.3 and TLS 1.2 AEAD records be opened in the compiled skip while their
    WebSocket is in life (module docstring): ``directions`` are one or two (side, bytes to
    the next header, the reader's bytes of the current record, opener, the life's tail,
    life/state.py), the first one's state in ``conn.passing``, the second its ``peer``,
    which takes the other direction's segments. Every record is opened, none counted on
    trust, for the plaintext's tail where a final Close frame may be, which `sync` gives the
    life with the counts and times. False (nothing offered) when the AEAD cannot open into a
    reused buffer, where the tail is read from."""
    states = _capped_states(ledger, conn, [direction[:4] for direction in directions],
                            float("inf"), LIFE_CAPACITY)
    if states is None:
        return False
    for state, direction in zip(states, directions, strict=True):
        state.life = True
        state.set_life_tail(direction[4])
        if TRUST_IN_LIFE and state.trust_after:  # (unset once the opener saw padding)
            state.life_trust_from = LIFE_TRUST_FROM
    return True


def offer_open_in_watch(ledger: Any, conn: Connection,
                        directions: list[tuple[int, int, bytes, RecordOpener]],
                        deadline: float) -> bool:
    """Let the records of a decrypted WebSocket in its watch window be opened in the
    compiled skip (`OPEN_IN_WATCH`), as in life, until ``deadline`` (the watch's): each one
    opened as application data goes at once to the TLS stage (`TlsStage.watched_record`),
    hence to the inner reader and its watch, in capture order, so an attempt is decided at
    the frame it would be without C. A record of any other kind, and data once the watch is
    over, go the usual way. False (nothing offered) as for `offer_open_in_life`."""
    states = _capped_states(ledger, conn, directions, deadline, WATCH_CAPACITY)
    if states is None:
        return False
    for state in states:
        state.watching = True
        state.watch_in_c = WATCH_IN_C
    return True


def _capped_states(ledger: Any, conn: Connection,
                   directions: list[tuple[int, int, bytes, RecordOpener]], deadline: float,
                   capacity: int) -> list[Any] | None:
    """The opening states (one or a pair) of `offer_open_in_life` and `offer_open_in_watch`,
    counted against `MAX_LIFE_STATES`, the first in ``conn.passing``; None when over the cap
    or an AEAD cannot open into a reused buffer."""
    if (ledger.life_states + len(directions) > MAX_LIFE_STATES
            or ledger.life_buffer_bytes >= ledger.life_budget):
        return None
    states = []
    for side, to_header, held, opener in directions:
        state = _opening(ledger, conn, side, _NO_BUDGET, to_header, held, opener, deadline)
        if state.decrypt_into is None:
            return None
        state.trust_from = 0
        state.capped = True
        ledger.life_states += 1
        state.capacity = capacity
        if not opener.suite.tls13:  # TLS 1.2 AEAD (decode/_passing.pxi ``lead``)
            state.lead = 0 if opener.suite.cipher is Cipher.CHACHA20_POLY1305 else 8
            state.aad_version = opener.version
        states.append(state)
    if len(states) == 2:
        states[0].peer = states[1]
        states[1].follower = True
    conn.passing = states[0]
    return states


def offer_gather(ledger: Any, conn: Connection, side: int, to_header: int) -> None:
    """Let the segments inside ``side``'s records gather in C (module docstring)."""
    passing = Passing(conn, ledger, side)
    passing.gather = True
    passing.to_header = to_header
    conn.passing = passing


def disarm(conn: Connection) -> None:
    conn.passing = None


def arm(conn: Connection) -> None:
    """The reassembler's side of the conditions, checked after a segment the cheap path took
    (`Reassembler.take_plain`'s own: nothing waits, no close, the listener made)."""
    passing: Any = conn.passing
    if passing is None:
        return
    if type(passing) is Watching:  # a switched connection's watch (decode/_watching.pxi)
        passing.arm()
        return
    _arm(conn, passing)
    if passing.peer is not None:
        _arm(conn, passing.peer)


def _arm(conn: Connection, passing: Any) -> None:
    if passing.ready:
        return
    here, there = conn.sides[passing.side], conn.sides[1 - passing.side]
    if (conn.ignored or conn.closing or conn.syns is not None or here.base is None
            or there.base is None or here.pending or there.pending or here.fin or there.fin):
        return
    if here.recent is _NOTHING_YET:
        here.recent = bytearray()
    if not passing.load_recent(here.recent):
        return
    passing.keep_recent = here.recent is not _NOT_KEPT
    passing.next_seq = (here.base + here.next_offset) & _MASK
    passing.peer_seq = (there.base + there.next_offset) & _MASK
    passing.ready = True


# A frame that goes the full way (`Reassembler.feed`: the sweep's segment, a retransmission,
# a bare ACK the cheap path left) unsets its connection's state's ``ready``; armed again only
# after the next segment the cheap path takes, the connection's next data segment went to
# Python for nothing but a new offer (about one in three TLS sessions, passing or opening).
# So a passing state is armed right after such a frame. False: the next segment arms it, the
# twin tests/test_tls_passing.py compares it with.
ARM_AFTER_FEED = True


def arm_after_feed(flows: dict[Any, Any], key: Any) -> None:
    """Arm the passing state of ``key``'s connection (if any) after its frame went the full
    way (`ARM_AFTER_FEED`); `arm` checks the reassembler's side as after any segment."""
    if not ARM_AFTER_FEED:
        return
    entry = flows.get(key)
    if entry is not None:
        state = entry[0].passing
        if state is not None and type(state) is Passing:
            arm(entry[0])


def wrap_skip(skip: Callable[..., Any], ledger: Any, reassembler: Reassembler,
              frame_base: Callable[[], int]) -> Callable[..., Any]:
    """A compiled skip (pcap or pcapng) that counts what passing states took where the
    reassembler's sweep counts segments; ``frame_base()`` is the frame number before the
    skip's first record. The states themselves are brought up to date when Python next
    touches their connection (tls/syncing.py `sync`) or the whole table (`sync_all`)."""

    def skip_and_count(*args: Any) -> Any:
        ledger.limit = reassembler._until_sweep - 1  # the sweep's segment goes the usual way
        ledger.base = frame_base()
        ledger.enter(args[0])  # the read buffer: copies put off keep it (`_defer`)
        try:
            result = skip(*args)
        finally:
            ledger.leave()
        if ledger.passed:
            reassembler._until_sweep -= ledger.passed
            reassembler.now = ledger.last_time
            ledger.passed = 0
        return result

    return skip_and_count
