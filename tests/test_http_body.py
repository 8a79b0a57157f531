"""Tests for analyzer.http.body: body framing (RFC 9112 §6) and the incremental BodyReader."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.http.body import (
    PREFIX_LIMIT,
    BodyReader,
    Framing,
    FramingKind,
    body_framing,
)
from analyzer.http.head import parse_request_head, parse_response_head
from analyzer.http.message import RequestHead, ResponseHead

NONE, LENGTH, CHUNKED, UNTIL_CLOSE = (
    FramingKind.NONE,
    FramingKind.LENGTH,
    FramingKind.CHUNKED,
    FramingKind.UNTIL_CLOSE,
)


def response(start: str, *fields: str) -> ResponseHead:
    head = parse_response_head("\r\n".join((start, *fields, "", "")).encode("latin-1"))
    assert head is not None
    return head


def request(start: str, *fields: str) -> RequestHead:
    head = parse_request_head("\r\n".join((start, *fields, "", "")).encode("latin-1"))
    assert head is not None
    return head


# --- body_framing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "method", "expected"),
    [
        # What follows a 101 is the new protocol, never a body.
        (response("HTTP/1.1 101 Switching Protocols", "Upgrade: websocket"), "GET", Framing(NONE)),
        (
            response("HTTP/1.1 101 Switching Protocols", "Content-Length: 5"),
            "GET",
            Framing(NONE, problems=("content_length_not_allowed",)),
        ),
        (
            response("HTTP/1.1 101 Switching Protocols", "Transfer-Encoding: chunked"),
            None,
            Framing(NONE, problems=("transfer_encoding_not_allowed",)),
        ),
        (response("HTTP/1.1 100 Continue"), None, Framing(NONE)),
        (response("HTTP/1.1 103 Early Hints", "Link: </a>"), None, Framing(NONE)),
        (response("HTTP/1.1 204 No Content"), None, Framing(NONE)),
        (
            response("HTTP/1.1 204 No Content", "Content-Length: 0"),
            None,
            Framing(NONE, problems=("content_length_not_allowed",)),
        ),
        (response("HTTP/1.1 304 Not Modified", "Content-Length: 42"), None, Framing(NONE)),
        (response("HTTP/1.1 200 OK", "Content-Length: 42"), "HEAD", Framing(NONE)),
        (response("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), "HEAD", Framing(NONE)),
        (response("HTTP/1.1 200 Connection established"), "CONNECT", Framing(NONE)),
        (
            response("HTTP/1.1 200 OK", "Content-Length: 0"),
            "CONNECT",
            Framing(NONE, problems=("content_length_not_allowed",)),
        ),
        (
            response("HTTP/1.1 407 Proxy Authentication Required", "Content-Length: 3"),
            "CONNECT",
            Framing(LENGTH, 3),
        ),
        # actix-web's rejection and an ordinary page
        (
            response("HTTP/1.1 400 No WebSocket Upgrade header found", "content-length: 0"),
            "GET",
            Framing(LENGTH, 0),
        ),
        (response("HTTP/1.1 200 OK", "Content-Length: 42"), None, Framing(LENGTH, 42)),
        (response("HTTP/1.1 200 OK", "Content-Length:  007 "), None, Framing(LENGTH, 7)),
        (
            response("HTTP/1.1 200 OK", "Content-Length: 42, 42"),
            None,
            Framing(LENGTH, 42, ("duplicate_content_length",)),
        ),
        (
            response("HTTP/1.1 200 OK", "Content-Length: 42", "Content-Length: 42"),
            None,
            Framing(LENGTH, 42, ("duplicate_content_length",)),
        ),
        (
            response("HTTP/1.1 200 OK", "Content-Length: 42", "Content-Length: 43"),
            None,
            Framing(UNTIL_CLOSE, problems=("conflicting_content_length",)),
        ),
        (
            response("HTTP/1.1 200 OK", "Content-Length: -1"),
            None,
            Framing(UNTIL_CLOSE, problems=("invalid_content_length",)),
        ),
        (
            response("HTTP/1.1 200 OK", "Content-Length: 0x10"),
            None,
            Framing(UNTIL_CLOSE, problems=("invalid_content_length",)),
        ),
        (
            response("HTTP/1.1 200 OK", "Content-Length:"),
            None,
            Framing(UNTIL_CLOSE, problems=("invalid_content_length",)),
        ),
        # Digits only in Unicode's sense ("²" is str.isdigit) are no Content-Length.
        (
            response("HTTP/1.1 200 OK", "Content-Length: \xb2"),
            None,
            Framing(UNTIL_CLOSE, problems=("invalid_content_length",)),
        ),
        (
            response("HTTP/1.1 200 OK", "Content-Length: 4 2"),
            None,
            Framing(UNTIL_CLOSE, problems=("invalid_content_length",)),
        ),
        (response("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"), None, Framing(CHUNKED)),
        (response("HTTP/1.1 200 OK", "Transfer-Encoding: gzip, Chunked"), None, Framing(CHUNKED)),
        (
            response("HTTP/1.1 200 OK", "Transfer-Encoding: gzip", "Transfer-Encoding: chunked"),
            None,
            Framing(CHUNKED),
        ),
        (
            response("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Length: 10"),
            None,
            Framing(CHUNKED, problems=("transfer_encoding_with_content_length",)),
        ),
        (
            response("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, chunked"),
            None,
            Framing(CHUNKED, problems=("chunked_repeated",)),
        ),
        (response("HTTP/1.1 200 OK", "Transfer-Encoding: gzip"), None, Framing(UNTIL_CLOSE)),
        (
            response("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, gzip"),
            None,
            Framing(UNTIL_CLOSE, problems=("chunked_not_final",)),
        ),
        (
            response("HTTP/1.0 200 OK", "Transfer-Encoding: chunked"),
            None,
            Framing(CHUNKED, problems=("transfer_encoding_in_http10",)),
        ),
        (response("HTTP/1.1 200 OK"), None, Framing(UNTIL_CLOSE)),
        (response("HTTP/1.0 403 Forbidden"), "GET", Framing(UNTIL_CLOSE)),
        # requests
        (request("GET /chat HTTP/1.1", "Upgrade: websocket"), None, Framing(NONE)),
        (request("POST / HTTP/1.1", "Content-Length: 3"), None, Framing(LENGTH, 3)),
        (request("POST / HTTP/1.1", "Content-Length: 0"), None, Framing(LENGTH, 0)),
        (request("POST / HTTP/1.1", "Transfer-Encoding: chunked"), None, Framing(CHUNKED)),
        (
            request("POST / HTTP/1.1", "Transfer-Encoding: gzip"),
            None,
            Framing(UNTIL_CLOSE, problems=("chunked_not_final",)),
        ),
        (
            request("POST / HTTP/1.1", "Content-Length: 3", "Transfer-Encoding: chunked"),
            None,
            Framing(CHUNKED, problems=("transfer_encoding_with_content_length",)),
        ),
        (
            request("POST / HTTP/1.1", "Content-Length: 3, 4"),
            None,
            Framing(UNTIL_CLOSE, problems=("conflicting_content_length",)),
        ),
        # request_method is only about the request a response answers
        (request("HEAD / HTTP/1.1", "Content-Length: 3"), "HEAD", Framing(LENGTH, 3)),
    ],
)
def test_body_framing(
    head: RequestHead | ResponseHead, method: str | None, expected: Framing
) -> None:
    assert body_framing(head, request_method=method) == expected


# --- BodyReader ----------------------------------------------------------------------------------


def _outcome(reader: BodyReader) -> tuple[object, ...]:
    return (
        reader.done,
        reader.error,
        reader.prefix,
        reader.size,
        reader.trailer_fields,
        reader.problems,
    )


def read(framing: Framing, pieces: list[bytes], *, eof: bool = False) -> tuple[int, BodyReader]:
    """Feed pieces as a connection would: stop at the first piece not wholly consumed."""
    reader = BodyReader(framing)
    consumed = 0
    for piece in pieces:
        n = reader.feed(piece)
        assert 0 <= n <= len(piece)
        consumed += n
        if n < len(piece):
            assert reader.done or reader.error is not None
            assert reader.feed(piece[n:]) == 0
            break
    if eof:
        reader.feed_eof()
    return consumed, reader


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


CHUNKED_FRAMING = Framing(CHUNKED)
NEXT = b"HTTP/1.1 200 OK\r\n\r\n"  # whatever follows the body must not be consumed

# (framing, body bytes, expected: done, error, prefix, trailer_fields, problems)
BodyCase = tuple[Framing, bytes, bool, str | None, bytes, int, tuple[str, ...]]
BODIES: list[BodyCase] = [
    (Framing(NONE), b"", True, None, b"", 0, ()),
    (Framing(LENGTH, 0), b"", True, None, b"", 0, ()),
    (Framing(LENGTH, 5), b"Hello", True, None, b"Hello", 0, ()),
    (
        Framing(LENGTH, 47),
        b"Missing or invalid Sec-WebSocket-Version header",  # Node ws' 400 body
        True,
        None,
        b"Missing or invalid Sec-WebSocket-Version header",
        0,
        (),
    ),
    (CHUNKED_FRAMING, b"5\r\nHello\r\n0\r\n\r\n", True, None, b"Hello", 0, ()),
    (CHUNKED_FRAMING, b"0\r\n\r\n", True, None, b"", 0, ()),
    (
        CHUNKED_FRAMING,
        b'4;name=value\r\nWiki\r\n5 ; ext="q;uoted"\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n'
        b"000;last\r\nExpires: never\r\nX-Trailer: 1\r\n\r\n",
        True,
        None,
        b"Wikipedia in\r\n\r\nchunks.",
        2,
        (),
    ),
    (CHUNKED_FRAMING, b"a\r\n0123456789\r\n0\r\n\r\n", True, None, b"0123456789", 0, ()),
    (CHUNKED_FRAMING, b"A\r\n0123456789\r\n0\r\n\r\n", True, None, b"0123456789", 0, ()),
    (
        CHUNKED_FRAMING,
        b"5\nHello\n0\n\n",
        True,
        None,
        b"Hello",
        0,
        ("bare_lf_in_chunked",),
    ),
    (CHUNKED_FRAMING, b"zz\r\nHello\r\n", False, "invalid_chunk_size", b"", 0, ()),
    (CHUNKED_FRAMING, b"\r\n", False, "invalid_chunk_size", b"", 0, ()),
    (CHUNKED_FRAMING, b" 5\r\nHello\r\n", False, "invalid_chunk_size", b"", 0, ()),
    (CHUNKED_FRAMING, b"-5\r\nHello\r\n", False, "invalid_chunk_size", b"", 0, ()),
    (CHUNKED_FRAMING, b"0x5\r\nHello\r\n", False, "invalid_chunk_size", b"", 0, ()),
    (
        CHUNKED_FRAMING,
        b"2\r\nHi\r\nQ\r\n",
        False,
        "invalid_chunk_size",
        b"Hi",
        0,
        (),
    ),
    (
        CHUNKED_FRAMING,
        b"1" * 17 + b"\r\n",
        False,
        "chunk_size_too_large",
        b"",
        0,
        (),
    ),
    (CHUNKED_FRAMING, b"5\r\nHelloXX", False, "missing_chunk_crlf", b"Hello", 0, ()),
    (CHUNKED_FRAMING, b"5\r\nHello\rX", False, "missing_chunk_crlf", b"Hello", 0, ()),
    (CHUNKED_FRAMING, b"1;" + b"x" * 9000 + b"\r\n", False, "chunk_line_too_long", b"", 0, ()),
]


@pytest.mark.parametrize(
    ("framing", "body", "done", "error", "prefix", "trailers", "problems"), BODIES
)
def test_body_reader(
    framing: Framing,
    body: bytes,
    done: bool,
    error: str | None,
    prefix: bytes,
    trailers: int,
    problems: tuple[str, ...],
) -> None:
    data = body + NEXT
    whole_consumed, whole = read(framing, [data])
    assert (whole.done, whole.error, whole.prefix) == (done, error, prefix)
    assert (whole.trailer_fields, whole.problems) == (trailers, problems)
    if done:
        assert whole_consumed == len(body)
        assert whole.size == len(prefix)
    bytewise_consumed, bytewise = read(framing, one_byte_at_a_time(data))
    assert bytewise_consumed == whole_consumed
    assert _outcome(bytewise) == _outcome(whole)


@given(st.sampled_from(BODIES), st.lists(st.integers(min_value=0, max_value=20_000), max_size=12))
def test_body_reader_any_split(case: BodyCase, cuts: list[int]) -> None:
    framing, body = case[0], case[1]
    data = body + NEXT
    whole_consumed, whole = read(framing, [data])
    consumed, reader = read(framing, split(data, cuts))
    assert consumed == whole_consumed
    assert _outcome(reader) == _outcome(whole)


@given(
    st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=10),
    st.booleans(),
)
def test_chunked_round_trip(chunks: list[bytes], cuts: list[int], extensions: bool) -> None:
    ext = b";a=b" if extensions else b""
    encoded = b"".join(b"%x%s\r\n%s\r\n" % (len(c), ext, c) for c in chunks) + b"0\r\nT: 1\r\n\r\n"
    consumed, reader = read(CHUNKED_FRAMING, split(encoded + NEXT, cuts))
    assert reader.done and reader.error is None
    assert consumed == len(encoded)
    assert reader.prefix == b"".join(chunks)[:PREFIX_LIMIT]
    assert reader.size == sum(map(len, chunks))
    assert reader.trailer_fields == 1


def test_prefix_is_bounded() -> None:
    body = bytes(range(256)) * 40  # 10240 bytes
    consumed, reader = read(Framing(LENGTH, len(body)), [body[:1000], body[1000:]])
    assert reader.done and consumed == len(body)
    assert reader.prefix == body[:PREFIX_LIMIT]
    assert reader.size == len(body)
    chunked = b"".join(b"400\r\n" + body[i : i + 1024] + b"\r\n" for i in range(0, len(body), 1024))
    consumed, reader = read(CHUNKED_FRAMING, [chunked + b"0\r\n\r\n"])
    assert reader.done and reader.prefix == body[:PREFIX_LIMIT] and reader.size == len(body)
    assert BodyReader(Framing(LENGTH, 10), keep=3).feed(b"abcdef") == 6


def test_until_close_takes_everything_until_eof() -> None:
    reader = BodyReader(Framing(UNTIL_CLOSE))
    assert reader.feed(b"<html>Bad Gateway") == 17
    assert reader.feed(b"</html>") == 7
    assert not reader.done
    reader.feed_eof()
    assert reader.done and reader.error is None
    assert reader.prefix == b"<html>Bad Gateway</html>"
    assert reader.feed(b"more") == 0


@pytest.mark.parametrize(
    ("framing", "data"),
    [(Framing(LENGTH, 10), b"short"), (CHUNKED_FRAMING, b"5\r\nHel")],
)
def test_eof_before_the_end_is_a_truncated_body(framing: Framing, data: bytes) -> None:
    consumed, reader = read(framing, [data], eof=True)
    assert consumed == len(data)
    assert not reader.done and reader.error == "body_truncated"


def test_error_stops_the_reader() -> None:
    reader = BodyReader(CHUNKED_FRAMING)
    reader.feed(b"nothex\r\n")
    assert reader.error == "invalid_chunk_size"
    assert reader.feed(b"5\r\nHello\r\n0\r\n\r\n") == 0
    reader.feed_eof()
    assert reader.error == "invalid_chunk_size" and not reader.done


def test_content_length_framings_are_shared_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The framings of plain Content-Length bodies come from a bounded table of built ones
    (`_length_framing`): equal to the one built each time, past the bound too."""
    from analyzer.http import body

    monkeypatch.setattr(body, "_LENGTH_FRAMINGS", {})
    monkeypatch.setattr(body, "_MAX_LENGTH_FRAMINGS", 2)
    for length in (0, 42, 42, 7, 150, 42):
        head = response("HTTP/1.1 200 OK", f"Content-Length: {length}")
        got = body_framing(head, request_method="GET")
        assert got == Framing(LENGTH, length)
        assert body_framing(request("POST / HTTP/1.1", f"Content-Length: {length}")) == got
    assert sorted(body._LENGTH_FRAMINGS) == [0, 42]
    flagged = body_framing(request("POST / HTTP/1.1", "Content-Length: 42, 42"))
    assert flagged == Framing(LENGTH, 42, ("duplicate_content_length",))
