"""Which records of a decrypted TLS session may go by in the compiled skip, and their count.

`tls/passing.py` lets the compiled skip take a decrypted direction's records without Python
(passing, opening, gathering); these functions are the session's side of it: whether its
state allows each mode right now (`passable`, `openable`, `gatherable`), and, after the skip,
counting what went by (`passed`) as `TlsSession._record` and `_protected` would have.
They read the session's per-direction state and are used only by `tls/skipping.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer.tls.records import ContentType
from analyzer.tls.session import Decryption
from analyzer.tls.suites import Cipher

if TYPE_CHECKING:  # `cryptography` is imported only by a run that has keys
    from analyzer.tls.decrypt import RecordOpener
    from analyzer.tls.session import TlsSession

_APPLICATION = ContentType.APPLICATION_DATA
# (read off their classes once: ≈ 90 ns a class lookup, and each Python round of a decrypted
# session asks two or three of these functions)
_DECRYPTED = Decryption.DECRYPTED
_AES_CBC = Cipher.AES_CBC
_CHACHA20_POLY1305 = Cipher.CHACHA20_POLY1305


def passable(session: TlsSession, side: int) -> tuple[int, int, int] | None:
    """(overhead, bytes still to come of the buffered record, its plaintext length or -1
    when none is buffered) when ``side``'s records may go by unread: decrypted TLS 1.2
    with an AEAD suite, whose plaintext is the record minus a constant (RFC 5288 §3,
    RFC 6655 §3: an 8-byte explicit nonce and the tag; RFC 7905 §2: the tag alone)."""
    if session.tls13 or session.decryption is not _DECRYPTED:
        return None
    direction = session._dirs[side]
    if direction.stopped or not direction.protected or len(direction.openers) != 1:
        return None
    suite = direction.openers[0].suite
    if suite.cipher is _AES_CBC:
        return None
    overhead = suite.tag_length + (0 if suite.cipher is _CHACHA20_POLY1305 else 8)
    state = direction.records.partial()
    if state is None:
        return None
    to_come, kind, length = state
    if not length:
        return overhead, to_come, -1
    if kind != _APPLICATION or length <= overhead:
        return None
    return overhead, to_come, length - overhead

def openable(session: TlsSession, side: int, tls12: bool = False,
             ) -> tuple[int, bytes, RecordOpener] | None:
    """(bytes still to come of the buffered record, its buffered bytes, the opener of
    the next record) when ``side``'s TLS 1.3 records may be opened in the compiled skip
    and counted as passed (tls/passing.py); with ``tls12``, TLS 1.2 AEAD records too (in
    life: a body is passed unread instead, `passable`)."""
    if (not session.tls13 and not tls12) or session.decryption is not _DECRYPTED:
        return None
    direction = session._dirs[side]
    if direction.stopped or not direction.protected or not direction.openers:
        return None
    opener = direction.openers[0]
    if opener.suite.tag_length != 16:  # the skip's bound on a record's length
        return None
    if not session.tls13 and (len(direction.openers) != 1 or opener.suite.cipher is _AES_CBC):
        return None
    state = direction.records.partial()
    if state is None or (state[0] and not state[2]):  # unknown, or discarding
        return None
    return state[0], direction.records.held(), opener

def gatherable(session: TlsSession, side: int) -> int | None:
    """Bytes still to come of ``side``'s buffered record (0 between records) when the
    segments inside its records may gather in C (tls/passing.py): a decrypted direction
    whose reader knows where the next record ends; None otherwise."""
    direction = session._dirs[side]
    if (session.decryption is not _DECRYPTED or direction.stopped
            or not direction.protected or not direction.openers):
        return None
    state = direction.records.partial()
    return None if state is None else state[0]

def passed(session: TlsSession, side: int, count: int, records: int, plain: int, to_header: int,
           absorbed: bool) -> None:
    """``count`` bytes of ``side`` went by unread: ``records`` application-data records
    (one more if the buffered one was ``absorbed``) holding ``plain`` bytes of plaintext,
    as `_record` and `_protected` would have counted them."""
    direction = session._dirs[side]
    direction.records.passed(count, records, to_header, absorbed)
    records += absorbed
    session.records += records
    direction.records_after_hello += records
    direction.application_records += records
    direction.opened += records
    direction.openers[0].sequence += records
    direction.plain_offset += plain
