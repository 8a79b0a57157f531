"""Records counted on trust in life (tls/passing.py `TRUST_IN_LIFE`): a decrypted WebSocket's
large records past its watch window are counted unopened, and opened only when the life's tail
needs them; and the watch window's records, handed from C to the compiled watch
(`WATCH_IN_C`). These captures are a bundled keyed connection (wss_tls13_aes256_gcm, through
fuzz/tls_plaintext.py: its records opened and sealed again with its own keys) with records
added in life, where a record counted so turns out not to be application data: it must be
taken back and read as the per-segment path reads it, with the same attempts, lives and
findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from analyzer.decode.decoder import FASTPATH_COMPILED
from analyzer.life.model import Ended
from analyzer.pipeline import Analysis
from analyzer.report.fields import attempt_fields
from analyzer.source import read_records
from analyzer.tls import passing, syncing
from analyzer.tls.keylog import KeyStore
from fuzz import tls_plaintext

pytestmark = pytest.mark.skipif(not (FASTPATH_COMPILED and passing.AVAILABLE),
                                reason="the compiled module is not built")

_SERVER_DATA = tls_plaintext.SERVER | 1 << tls_plaintext.PHASE_SHIFT  # application keys
_BIG = 300  # a WebSocket message whose record is counted on trust (`LIFE_TRUST_FROM`)


def _frame(payload: bytes) -> bytes:
    """A server's (unmasked) WebSocket text frame."""
    if len(payload) < 126:
        return bytes((0x81, len(payload))) + payload
    return bytes((0x81, 126)) + len(payload).to_bytes(2, "big") + payload


def _entry(content_type: int, plaintext: bytes, coalesced: bool = False) -> bytes:
    flags = _SERVER_DATA | (tls_plaintext.COALESCE if coalesced else 0)
    return tls_plaintext.MAGIC + bytes((flags, content_type)) + plaintext


def _ticket(size: int) -> bytes:
    """A post-handshake NewSessionTicket (RFC 8446 §4.6.1) of ``size`` bytes in all."""
    body = (600).to_bytes(4, "big") + b"\0\0\0\1" + b"\1\7" + (size - 16).to_bytes(2, "big")
    body += b"t" * (size - 16) + b"\0\0"
    return b"\x04" + len(body).to_bytes(3, "big") + body


def _capture(tmp_path: Path, added: list[bytes], at_end: bool = False,
             shape: int = 0x10) -> tuple[Path, KeyStore]:
    """The template's connection with ``added`` entries after its server's first message
    and ten more (0.3 s between packets: past the 2 s watch), before its Close frames (or
    after its last record); segments and times as ``shape`` says (fuzz/tls_plaintext.py)."""
    templates = tls_plaintext.templates()
    index = next(i for i, t in enumerate(templates) if t.name == "wss_tls13_aes256_gcm.pcap#0")
    template = templates[index]
    entries = [tls_plaintext.MAGIC + e for e in template.seed_entries]
    hello = next(i for i, e in enumerate(template.seed_entries) if e[2:] == b"\x81\x05hello")
    warm = [_entry(23, _frame(b"tick %d" % i)) for i in range(10)]
    if at_end:
        entries = entries[:hello + 1] + warm + entries[hello + 1:] + added
    else:
        entries = entries[:hello + 1] + warm + added + entries[hello + 1:]
    data = bytes((index, shape)) + b"".join(entries)
    path = tmp_path / "life.pcap"
    path.write_bytes(tls_plaintext.build(data, templates)[1])
    secrets = KeyStore()
    secrets.add_text(template.keylog)
    secrets.finish()
    return path, secrets


def _lives(path: Path, secrets: KeyStore, compiled: bool) -> tuple[Any, Any, Analysis]:
    run = Analysis(lifetimes=True, compiled=compiled, secrets=secrets)
    events = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
    ended = [(e.key, e.lifetime, e.verdict, [(f.check, f.frames) for f in e.findings])
             for e in events if isinstance(e, Ended)]
    decided = [attempt_fields(e) for e in events if not isinstance(e, Ended)]
    return decided, ended, run


_BIG_DATA = _entry(23, _frame(b"b" * _BIG))
_SMALL_DATA = _entry(23, _frame(b"hi"))  # a record of 21 bytes: always opened
# records of 25 bytes, counted on trust (`LIFE_TRUST_FROM`), 8 bytes of plaintext each
_SMALL_RUN = [_entry(23, _frame(b"msg %02d" % i)) for i in range(10)]
_PADDED_DATA = _entry(0, _frame(b"p" * _BIG) + b"\x17")  # type 23, then one byte of padding
# a close_notify alert padded to a record counted on trust
_PADDED_ALERT = _entry(0, b"\x01\x00\x15" + bytes(_BIG))
# a record's header and its first bytes, the rest never sent
_PARTIAL = tls_plaintext.MAGIC + bytes((tls_plaintext.SERVER | tls_plaintext.RAW, 0)) + (
    b"\x17\x03\x03\x01\x90" + bytes(120))


@pytest.mark.parametrize(("case", "added", "at_end", "shape"), [
    # a ticket after two trusted messages, then a small one, which needs it opened
    ("ticket then small", [_BIG_DATA, _BIG_DATA, _entry(22, _ticket(_BIG)), _SMALL_DATA,
                           _BIG_DATA], False, 0x10),
    # ... in the same segment as the small one
    ("ticket with small", [_BIG_DATA, _BIG_DATA, _entry(22, _ticket(_BIG)),
                           _entry(23, _frame(b"hi"), coalesced=True), _BIG_DATA], False, 0x10),
    # a ticket last before the client's Close
    ("ticket last", [_BIG_DATA, _BIG_DATA, _entry(22, _ticket(_BIG))], False, 0x10),
    # a padded alert after the last records, then a record that never ends: the alert is
    # opened when the state is brought up to date (the end), and read again at its frame
    ("alert at the end", [_BIG_DATA, _BIG_DATA, _PADDED_ALERT, _PARTIAL], True, 0x10),
    # ... in segments of 97 bytes, 3 s apart, ended by the client's RST (the server's last
    # packet is then its last segment, after the alert's)
    ("alert at the end, cut", [_BIG_DATA, _BIG_DATA, _PADDED_ALERT, _PARTIAL], True, 0x25),
    # a padded message (the sender pads: nothing is trusted after it)
    ("padded", [_BIG_DATA, _BIG_DATA, _PADDED_DATA, _SMALL_DATA, _BIG_DATA, _SMALL_DATA],
     False, 0x10),
    # only application data: the trusted ones replaced one another, unopened
    ("data", [_BIG_DATA] * 6 + [_SMALL_DATA, _BIG_DATA, _BIG_DATA], False, 0x10),
    # small messages, each counted on trust too: so small that the ring of those the tail
    # may need fills (decode/_trust.pxi), and its first is opened to make room
    ("small data", _SMALL_RUN * 3 + [_SMALL_DATA], False, 0x10),
    # a small ticket among small messages, then a smaller one, which needs it opened
    ("small ticket", _SMALL_RUN[:3] + [_entry(22, _ticket(60))] + _SMALL_RUN[:3]
     + [_SMALL_DATA, _BIG_DATA], False, 0x10),
    # ... and before so many small ones that the ring fills while it is still its first
    ("small ticket, ring full", [_entry(22, _ticket(40))] + _SMALL_RUN + [_BIG_DATA],
     False, 0x10),
])
def test_a_record_counted_on_trust_in_life_that_is_not_data_is_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, added: list[bytes],
        at_end: bool, shape: int) -> None:
    """Whether the record counted on trust is opened in the skip (a smaller record follows
    it, or the ring is full), when the state is brought up to date, or in the same segment
    as the record that needs it: the same attempts, in the same order, the same lives and
    findings as the per-segment path and as every record opened in life; where it was not
    application data, it was taken back and read in Python (`_reread`)."""
    path, secrets = _capture(tmp_path, added, at_end, shape)
    reread: list[int] = []
    original = syncing._reread
    monkeypatch.setattr(syncing, "_reread", lambda *args: (reread.append(1),
                                                           original(*args))[1])
    trusted, trusted_ended, run = _lives(path, secrets, True)
    took = run._ledger.trusted
    monkeypatch.setattr(passing, "TRUST_IN_LIFE", False)
    opened, opened_ended, _ = _lives(path, secrets, True)
    plain, plain_ended, _ = _lives(path, secrets, False)
    assert trusted == opened == plain
    assert trusted_ended == opened_ended == plain_ended
    # (messages after the server's Close: its Close is no longer what ended the connection)
    assert len(plain_ended) == 1
    assert plain_ended[0][1].how == ("close_frame" if at_end else "close_handshake")
    assert plain_ended[0][1].end_frame > 0
    assert took > 0
    if case == "small data":  # (all but the first two after the watch: `TRUST_AFTER`)
        assert took >= 25, took
    # (with small: in one segment with the record that needed it, which went to Python)
    if case in ("ticket with small", "data", "small data"):
        assert not reread, case
    else:
        assert reread, case


@pytest.mark.parametrize("in_c", [True, False])
def test_a_close_read_in_the_watch_window_is_the_lifes_tail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_c: bool) -> None:
    """A short conversation that closes within its watch window, its FINs after the window's
    end (five tickets delay them): the life begins at the deadline with the watch's last
    bytes as its tail (`start_life`), which the compiled watch keeps as the TLS stage would
    (decode/_watching.pxi `_watch_record`, and `TlsStage.watched_record`, its twin): a Close
    handshake, as the per-segment path says."""
    monkeypatch.setattr(passing, "WATCH_IN_C", in_c)
    templates = tls_plaintext.templates()
    index = next(i for i, t in enumerate(templates) if t.name == "wss_tls13_aes256_gcm.pcap#0")
    template = templates[index]
    entries = [tls_plaintext.MAGIC + e for e in template.seed_entries]
    tickets = [_entry(22, _ticket(60)) for _ in range(5)]
    data = bytes((index, 0x10)) + b"".join(entries[:-2] + tickets + entries[-2:])
    path = tmp_path / "short.pcap"
    path.write_bytes(tls_plaintext.build(data, templates)[1])
    secrets = KeyStore()
    secrets.add_text(template.keylog)
    secrets.finish()
    fast, fast_ended, run = _lives(path, secrets, True)
    plain, plain_ended, _ = _lives(path, secrets, False)
    assert fast == plain and fast_ended == plain_ended
    assert [(e[1].how, e[1].close_code) for e in plain_ended] == [("close_handshake", 1000)]
    assert run._ledger.total >= 4  # the watch's records were opened in C
