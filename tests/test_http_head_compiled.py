"""The compiled plain-head parts (`_fastpath.plain_request`, `plain_response` and
`plain_headers`, analyzer/decode/_heads.pxi) against their Python twins in `http.head`
(`_plain_request`, `_plain_response`: the plain pattern's match, then `_plain_headers`), and
the whole heads made from them (`plain_request_head`, `plain_response_head` against
`_plain_request_head`, `_plain_response_head`): the same answer (None, or the same parts,
fields, look-up index and index order, equal heads of equal hash) on every payload of the
repository's captures, on heads varied byte by byte, and on generated text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode.decoder import FASTPATH_COMPILED, peek_flow, peek_payload
from analyzer.http import head, start
from analyzer.source import read_records

REPO = Path(__file__).resolve().parents[1]
CAPTURES = sorted(p for p in (REPO / "captures").glob("*.pcap*"))

pytestmark = pytest.mark.skipif(not FASTPATH_COMPILED, reason="the compiled module is not built")

REQUEST = ("GET /chat?x=%C3 HTTP/1.1\r\nHost: a.example:8080\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "X-Latin: caf\xe9 \t\r\nsec-websocket-version:13\r\nX-Empty:\r\n\r\nbody")
RESPONSE = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello")


def _same_headers(fast: Any, plain: Any) -> None:
    assert fast == plain
    assert hash(fast.fields) == hash(plain.fields)
    assert list(fast._index.items()) == list(plain._index.items())


def _same_head(fast: Any, plain: Any) -> None:
    assert (fast is None) == (plain is None)
    if fast is not None:
        assert type(fast) is type(plain)
        assert fast == plain and hash(fast) == hash(plain) and repr(fast) == repr(plain)
        assert type(fast.raw) is bytes
        _same_headers(fast.headers, plain.headers)


def _same(text: str) -> int:
    """Both twins of both parsers on ``text``, as parts and as heads; how many heads were
    plain."""
    from analyzer.decode._fastpath import (
        plain_request,
        plain_request_head,
        plain_response,
        plain_response_head,
    )

    plain = 0
    for fast, slow in ((plain_request(text), head._plain_request(text)),
                       (plain_response(text), head._plain_response(text))):
        assert (fast is None) == (slow is None), text
        if fast is not None and slow is not None:
            assert fast[:3] == slow[:3]
            _same_headers(fast[3], slow[3])
            plain += 1
    if not all(ord(c) < 256 for c in text):
        return plain  # not bytes decoded (the text-wider-than-a-byte test)
    raw = text.encode("latin-1")
    _same_head(plain_request_head(raw), head._plain_request_head(raw))
    _same_head(plain_response_head(raw), head._plain_response_head(raw))
    _same_head(plain_request_head(bytearray(raw)), head._plain_request_head(bytearray(raw)))
    _same_head_at(raw)
    return plain


def _same_head_at(data: bytes) -> None:
    """`plain_request_head_at` and `plain_response_head_at` against their twins on ``data``,
    and against what the tracker makes without them (cut at find_head_end, then parsed)."""
    from analyzer.decode._fastpath import plain_request_head_at, plain_response_head_at

    end = start.find_head_end(data)
    for fast, slow, parse in (
            (plain_request_head_at(data), head._plain_request_head_at(data),
             head.parse_request_head),
            (plain_response_head_at(data), head._plain_response_head_at(data),
             head.parse_response_head)):
        assert (fast is None) == (slow is None), data
        if fast is not None and slow is not None:
            assert fast[1] == slow[1] == end
            _same_head(fast[0], slow[0])
            assert fast[0] == parse(data[:end])


def test_the_parsers_use_the_compiled_twins() -> None:
    from analyzer.decode._fastpath import (
        plain_request_head,
        plain_request_head_at,
        plain_response_head,
        plain_response_head_at,
    )

    assert head._request_head is plain_request_head
    assert head._response_head is plain_response_head
    assert _same(REQUEST) == 1 and _same(RESPONSE) == 1
    raw = REQUEST.encode("latin-1")
    assert head.parse_request_head(raw).raw is raw  # bytes already: not copied
    assert head.request_head_at is plain_request_head_at
    assert head.response_head_at is plain_response_head_at
    whole = raw[:raw.index(b"\r\n\r\n") + 4]
    found = plain_request_head_at(whole)
    assert found is not None and found[0].raw is whole and found[1] == len(whole)
    assert plain_request_head_at(bytearray(whole)) == head._plain_request_head_at(whole)


@pytest.mark.parametrize("status_line", ["HTTP/1.1 101 Switching Protocols", "HTTP/1.0 404",
                                         "HTTP/1.1 200 ", "HTTP/1.1 599 \t odd \t ",
                                         "HTTP/1.1 100 \t", "HTTP/1.1 302 Found \xe9"])
def test_status_and_reason_as_the_python_parser_reads_them(status_line: str) -> None:
    raw = (status_line + "\r\nA: b\r\n\r\n").encode("latin-1")
    from analyzer.decode._fastpath import plain_response_head

    fast, slow = plain_response_head(raw), head._plain_response_head(raw)
    assert fast is not None
    _same_head(fast, slow)
    assert fast.status == int(status_line.split()[1])


def test_every_payload_of_the_captures() -> None:
    plain = 0
    for path in CAPTURES:
        for _when, linktype, data, _wire, _source in read_records([str(path)], []):
            if peek_flow(linktype, data) is not None:
                plain += _same(peek_payload(linktype, data)[2].decode("latin-1"))
    assert plain > 100


@pytest.mark.parametrize("text", [REQUEST, RESPONSE])
def test_every_byte_of_a_head_replaced_cut_or_doubled(text: str) -> None:
    """Each position of a plain head replaced by each byte class the patterns tell apart,
    the head cut there, and the character there doubled: where the walk must stop."""
    for at in range(len(text)):
        for c in " \t:\r\n\x00\x1f\x7f\x80\xffAz0.-/H":
            _same(text[:at] + c + text[at + 1:])
        _same(text[:at])
        _same(text[:at] + text[at] + text[at:])


_CHARS = st.sampled_from(list(" \t:\r\nAaZz09-_./HTP\x00\x7f\x80\xa0\xe9\xff@[`{"))


@settings(max_examples=1000)
@given(st.lists(st.text(_CHARS, max_size=12), max_size=8), st.booleans())
def test_generated_field_lines(parts: list[str], ended: bool) -> None:
    """`plain_headers` on any text of these characters, CRLF-ended or not: names with
    upper-case, Latin-1 and no colon, values with blanks around them, empty lines, lone CR
    and LF."""
    from analyzer.decode._fastpath import plain_headers

    lines = "\r\n".join(parts) + ("\r\n" if ended else "")
    _same_headers(plain_headers(lines), head._plain_headers(lines))


@settings(max_examples=1000)
@given(st.sampled_from(["GET / HTTP/1.1\r\n", "HTTP/1.1 200 OK\r\n", "HTTP/1.0 404\r\n",
                        "POST /a HTTP/9.9\r\n", "HTTP/1.1 599 \r\n"]),
       st.lists(st.text(_CHARS, max_size=12), max_size=6), st.text(_CHARS, max_size=6))
def test_generated_heads(start: str, lines: list[str], tail: str) -> None:
    _same(start + "\r\n".join(lines) + "\r\n\r\n" + tail)


def test_text_stored_wider_than_a_byte_goes_to_the_python_functions() -> None:
    """(A head decoded from Latin-1 never is; the functions still answer the same.)"""
    from analyzer.decode._fastpath import plain_headers

    assert _same(REQUEST.replace("caf\xe9", "\u20ac")) == 1
    _same_headers(plain_headers("Host: \u20ac\r\n"), head._plain_headers("Host: \u20ac\r\n"))


def test_every_character_in_a_method_a_name_a_target_and_a_value() -> None:
    """The character classes (tchar, target, text) against the patterns', all 256 of them."""
    plain = 0
    for code in range(256):
        c = chr(code)
        plain += _same(f"G{c}T /x HTTP/1.1\r\nA{c}: v\r\n\r\n")
        plain += _same(f"GET /{c} HTTP/1.1\r\nA: v{c}v\r\n\r\n")
        plain += _same(f"HTTP/1.1 200 O{c}\r\nA{c}: v\r\n\r\n")
    assert plain > 300
