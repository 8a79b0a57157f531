"""The compiled header lines of a plain head (`_fastpath.plain_headers`,
analyzer/decode/_heads.pxi) against their Python twin (`http.head._plain_headers`): the same
fields, values, look-up index and index order, on every head of the repository's captures and
on generated text."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.decode.decoder import FASTPATH_COMPILED, peek_flow, peek_payload
from analyzer.http import head
from analyzer.http.message import Headers
from analyzer.source import read_records

REPO = Path(__file__).resolve().parents[1]
CAPTURES = sorted(p for p in (REPO / "captures").glob("*.pcap*"))

pytestmark = pytest.mark.skipif(not FASTPATH_COMPILED, reason="the compiled module is not built")


def _same(lines: str) -> Headers:
    from analyzer.decode._fastpath import plain_headers

    fast, plain = plain_headers(lines), head._plain_headers(lines)
    assert fast == plain
    assert hash(fast.fields) == hash(plain.fields)
    assert list(fast._index.items()) == list(plain._index.items())
    return fast


def test_the_parsers_use_the_compiled_twin() -> None:
    from analyzer.decode._fastpath import plain_headers

    assert head._fields_of_plain is plain_headers


def test_every_plain_head_of_the_captures() -> None:
    seen = 0
    for path in CAPTURES:
        for _when, linktype, data, _wire, _source in read_records([str(path)], []):
            if peek_flow(linktype, data) is None:
                continue
            payload = peek_payload(linktype, data)[2].decode("latin-1")
            for pattern in (head._PLAIN_REQUEST_HEAD, head._PLAIN_RESPONSE_HEAD):
                found = pattern.match(payload)
                if found is not None:
                    seen += len(_same(found["fields"]).fields)
    assert seen > 1000  # header fields


_LINE_CHARS = st.sampled_from(list(" \t:\r\nAaZz09-_.\x7f\x80\xa0\xc0\xe9\xff@[`{"))


@settings(max_examples=2000)
@given(st.lists(st.text(_LINE_CHARS, max_size=12), max_size=8), st.booleans())
def test_generated_lines(parts: list[str], ended: bool) -> None:
    """Any text of these characters, CRLF-ended or not: names with upper-case, Latin-1 and
    no colon, values with blanks around them, empty lines, lone CR and LF."""
    _same("\r\n".join(parts) + ("\r\n" if ended else ""))


def test_text_stored_wider_than_a_byte_goes_to_the_python_function() -> None:
    """(A head decoded from Latin-1 never is; the function still answers the same.)"""
    assert _same("Host: \u20ac\r\nX-A: b\r\n").fields[0].value == "\u20ac"
