"""Tests for analyzer.http.start and analyzer.http.head: finding, recognising and tolerantly
parsing HTTP/1.x heads."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.http.head import (
    _walk_request_head,
    _walk_response_head,
    parse_request_head,
    parse_response_head,
)
from analyzer.http.message import Header, header
from analyzer.http.start import (
    MAX_REQUEST_LINE,
    MAX_START_LINE,
    _start_by_patterns,
    _walk_start,
    classify_start,
    find_head_end,
    only_empty_lines,
    read_start,
)

WS_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
WS_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)
# actix-http's HandshakeError::NoWebsocketUpgrade, with its custom reason phrase.
ACTIX_400 = b"HTTP/1.1 400 No WebSocket Upgrade header found\r\ncontent-length: 0\r\n\r\n"
# Node ws abortHandshake for a bad version: the supported versions in one field.
NODE_WS_400 = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Connection: close\r\n"
    b"Content-Type: text/html\r\n"
    b"Content-Length: 47\r\n"
    b"Sec-WebSocket-Version: 13, 8\r\n"
    b"\r\n"
)
H2C_REQUEST = (
    b"GET / HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Connection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
    b"\r\n"
)
TLS_CLIENT_HELLO = bytes.fromhex("1603010200010001fc0303") + bytes(32)
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


# --- find_head_end -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("buf", "expected"),
    [
        (WS_REQUEST, len(WS_REQUEST)),
        (WS_RESPONSE + b"\x81\x05Hello", len(WS_RESPONSE)),
        (b"HTTP/1.1 200 OK\r\n\r\n", 19),
        (b"GET / HTTP/1.1\nHost: a\n\n", 24),  # bare LF throughout
        (b"GET / HTTP/1.1\r\nHost: a\r\n\nbody", 26),  # CRLF then LF
        (b"GET / HTTP/1.1\nHost: a\n\r\nbody", 25),  # LF then CRLF
        (b"GET / HTTP/1.1\r\nHost: a\r\n", None),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r", None),
        (b"", None),
        (b"\r\n\r\n", None),  # empty lines before a start line end nothing
        (b"\r\nGET / HTTP/1.1\r\n\r\n", 20),
        (b"GET / HTTP/1.1\r\nX: a\r\rb\r\n\r\n", 27),
    ],
)
def test_find_head_end(buf: bytes, expected: int | None) -> None:
    assert find_head_end(buf) == expected
    assert find_head_end(bytearray(buf)) == expected


def _grow(data: bytes, cuts: list[int]) -> int | None:
    """Call find_head_end as a reassembler would, passing the previous length as the hint
    (0 while the buffer held only empty lines)."""
    buf = bytearray()
    for piece in _pieces(data, cuts):
        previous = 0 if only_empty_lines(buf) else len(buf)
        buf += piece
        end = find_head_end(buf, previous)
        if end is not None:
            return end
    return None


def _pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


HEADS = [WS_REQUEST, WS_RESPONSE, ACTIX_400, b"GET / HTTP/1.1\nA: b\n\n", b"HTTP/1.0 200\r\n\n",
         b"\r\n\r\n\nGET / HTTP/1.1\r\n\r\n", b"\r\r\n\rHTTP/1.1 200\n\r\n", b"\nG\n\n"]


@pytest.mark.parametrize("head", HEADS)
def test_find_head_end_one_byte_at_a_time(head: bytes) -> None:
    data = head + b"trailing junk\r\n\r\n"
    assert _grow(data, list(range(len(data)))) == len(head)


@given(st.sampled_from(HEADS), st.lists(st.integers(min_value=0, max_value=500), max_size=20))
def test_find_head_end_any_split(head: bytes, cuts: list[int]) -> None:
    data = head + b"\r\n\r\nmore"
    assert _grow(data, cuts) == find_head_end(data) == len(head)


# --- classify_start ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (WS_REQUEST, "request"),
        (b"GET / HTTP/1.1", "request"),  # decided before the line ends
        (b"GET / HTTP/1.0\r\n", "request"),
        (b"CONNECT example.com:443 HTTP/1.1\r\n", "request"),
        (b"OPTIONS * HTTP/1.1\r\n", "request"),
        (b"M-SEARCH * HTTP/1.1\r\n", "request"),  # SSDP: any token is a method
        (b"FOO /x HTTP/1.1\r\n", "request"),
        (b"\r\nGET / HTTP/1.1\r\n", "request"),  # RFC 9112 §2.2 leading empty line
        (b"GET  /a  HTTP/1.1\r\n", "request"),  # whitespace-delimited words
        (b"GET /a b HTTP/1.1\r\n", "request"),  # a server answers 400: worth parsing
        (b"GET / http/1.1\r\n", "request"),  # wrong case, still worth parsing
        (WS_RESPONSE, "response"),
        (ACTIX_400, "response"),
        (b"HTTP/1.0 404", "response"),
        (b"HTTP/1.1 999 Whatever", "response"),
        (H2_PREFACE, "not_http"),
        (b"PRI * HTTP/2", "not_http"),
        (TLS_CLIENT_HELLO, "not_http"),
        (b"\x16", "not_http"),
        (b"\x00\x00\x12\x04", "not_http"),  # an HTTP/2 frame header
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not_http"),
        (b"220 mail.example.com ESMTP Postfix\r\n", "not_http"),
        (b"EHLO client.example.com\r\n", "not_http"),
        (b"GET /\r\n", "not_http"),  # HTTP/0.9 has no headers and no upgrade
        (b"GET / HTTP/2.0\r\n", "not_http"),
        (b"HTTP/2 200\r\n", "not_http"),
        (b"HTTP/1.1 OK\r\n", "not_http"),
        (b"HTTP/1.1200\r\n", "not_http"),
        (b"GET\r\n", "not_http"),
        (b" GET / HTTP/1.1\r\n", "not_http"),
        (b"GET /\x00 HTTP/1.1\r\n", "not_http"),
        (b"GET /ws4\x1b[31m HTTP/1.1\r\n", "request"),  # listed, escaped, judged
        (b"GET /\x7f\x01 HTTP/1.1\r\n", "request"),
        (b"", "need_more"),
        (b"\r\n", "need_more"),
        (b"G", "need_more"),
        (b"GET", "need_more"),
        (b"GET /chat", "need_more"),
        (b"GET /chat HTTP/1", "need_more"),
        (b"GET /chat HTTP/1.", "need_more"),
        (b"HTTP", "need_more"),  # could still be a method named HTTP, or a status line
        (b"HTTP/1.1", "need_more"),
        (b"HTTP/1.1 10", "need_more"),
        (b"PRI * HTTP/", "need_more"),
    ],
)
def test_classify_start(prefix: bytes, expected: str) -> None:
    assert classify_start(prefix) == expected
    assert classify_start(bytearray(prefix)) == expected


def test_classify_start_gives_up_on_a_long_first_line() -> None:
    assert classify_start(b"GET /" + b"a" * 100) == "need_more"
    assert classify_start(b"\r\n" * MAX_START_LINE) == "not_http"
    target = b"/" + b"a" * (MAX_START_LINE - 100)
    assert classify_start(b"GET " + target + b" HTTP/1.1\r\n") == "request"
    # past the walk's window only a plain request line waits, and only up to MAX_REQUEST_LINE
    assert classify_start(b"GET /" + b"a" * MAX_START_LINE) == "need_more"
    assert classify_start(b"GET /" + b"a" * MAX_REQUEST_LINE) == "not_http"
    assert classify_start(b"GET /" + b"a" * MAX_START_LINE + b"\x00") == "not_http"
    assert classify_start(b"GET /" + b"a" * MAX_START_LINE + b" HTTP/2.0") == "not_http"
    assert classify_start(b"A" * (MAX_START_LINE + 1)) == "not_http"
    # byte by byte across the window's end (a sender of one-byte segments): never given up on
    line = b"GET /" + b"a" * MAX_START_LINE + b" HTTP/1.1\r\n"
    for cut in range(MAX_START_LINE - 3, MAX_START_LINE + 3):
        assert classify_start(line[:cut]) == "need_more", cut


def test_a_request_line_too_long_for_nginx_is_still_a_request_segment_by_segment() -> None:
    """A 16 KiB target (nginx answers 414 past 8 KiB): each 1,400-byte prefix waits, the whole
    line is a request, so the attempt and the server's refusal are reported, not ignored."""
    line = b"GET /chat/" + b"p" * (16 * 1024) + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    version_end = line.index(b"HTTP/1.1") + len(b"HTTP/1.1")
    for cut in [*range(1400, len(line), 1400), *range(version_end - 9, len(line) + 1)]:
        expected = "request" if cut >= version_end else "need_more"
        assert classify_start(line[:cut]) == expected, cut
        assert classify_start(bytearray(line[:cut])) == expected, cut


def test_a_long_request_line_after_empty_lines_is_still_a_request() -> None:
    """fuzzhunt: RFC 9112 §2.2 lets empty lines come before the request-line, and a short
    one after them was a request; a long one (past MAX_START_LINE) was "not_http", and its
    attempt (nginx's 414 to it) was dropped."""
    line = b"\r\nGET /chat/" + b"p" * (16 * 1024) + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    version_end = line.index(b"HTTP/1.1") + len(b"HTTP/1.1")
    for cut in [*range(1400, len(line), 1400), *range(version_end - 9, len(line) + 1)]:
        expected = "request" if cut >= version_end else "need_more"
        assert classify_start(line[:cut]) == expected, cut
    assert classify_start(b"\r\n" * (MAX_START_LINE // 2 + 1)) == "not_http"  # nothing else


@pytest.mark.parametrize("stream", [WS_REQUEST, WS_RESPONSE, H2C_REQUEST, ACTIX_400])
def test_classify_start_settles_once_and_stays(stream: bytes) -> None:
    verdicts = [classify_start(stream[:n]) for n in range(len(stream) + 1)]
    settled = verdicts.index(verdicts[-1])
    assert set(verdicts[:settled]) <= {"need_more"}
    assert set(verdicts[settled:]) == {verdicts[-1]}
    assert settled <= stream.index(b"\n")  # never waits beyond the first line


@pytest.mark.parametrize("stream", [TLS_CLIENT_HELLO, b"SSH-2.0-x\r\n", H2_PREFACE, b"\x00" * 20])
def test_classify_start_rejects_non_http_before_the_line_ends(stream: bytes) -> None:
    verdicts = [classify_start(stream[:n]) for n in range(1, len(stream) + 1)]
    assert "not_http" in verdicts
    assert set(verdicts[verdicts.index("not_http") :]) == {"not_http"}


@given(st.binary(max_size=64))
def test_classify_start_is_stable_once_decided(data: bytes) -> None:
    first = classify_start(data)
    if first != "need_more":
        assert classify_start(data + b"GET / HTTP/1.1\r\n") == first


# --- parse_request_head --------------------------------------------------------------------------


def test_parse_websocket_request() -> None:
    head = parse_request_head(WS_REQUEST)
    assert head is not None
    assert (head.method, head.target, head.version) == ("GET", "/chat", "HTTP/1.1")
    assert head.headers.get("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ=="
    assert head.headers.tokens("Sec-WebSocket-Protocol") == ["chat", "superchat"]
    assert head.headers.fields[0] == Header("Host", "server.example.com")
    assert head.raw == WS_REQUEST
    assert head.problems == ()


def test_parse_request_keeps_case_order_and_duplicates() -> None:
    raw = (
        b"GET / HTTP/1.1\r\nupgrade: websocket\r\nUPGRADE: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Key: b\r\n\r\n"
    )
    head = parse_request_head(raw)
    assert head is not None
    assert [f.name for f in head.headers.fields] == [
        "upgrade",
        "UPGRADE",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Key",
    ]
    assert head.headers.all("Sec-WebSocket-Key") == ["a", "b"]
    assert head.headers.tokens("connection") == ["keep-alive", "upgrade"]
    assert head.problems == ()


@pytest.mark.parametrize(
    ("raw", "method", "target", "version", "problems"),
    [
        (H2C_REQUEST, "GET", "/", "HTTP/1.1", ()),
        (b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", "CONNECT", "example.com:443", "HTTP/1.1", ()),
        (b"OPTIONS * HTTP/1.0\r\n\r\n", "OPTIONS", "*", "HTTP/1.0", ()),
        (b"GET / HTTP/1.1\nHost: a\n\n", "GET", "/", "HTTP/1.1", ("bare_lf_line_ending",)),
        (
            b"GET / HTTP/1.1\r\nHost: a\n\r\n",
            "GET",
            "/",
            "HTTP/1.1",
            ("bare_lf_line_ending",),
        ),
        (b"\r\nGET / HTTP/1.1\r\n\r\n", "GET", "/", "HTTP/1.1", ("leading_empty_line",)),
        (b"GET  /  HTTP/1.1\r\n\r\n", "GET", "/", "HTTP/1.1", ("start_line_extra_spaces",)),
        (b"GET\t/ HTTP/1.1\r\n\r\n", "GET", "/", "HTTP/1.1", ("start_line_extra_spaces",)),
        (
            b"GET /a b HTTP/1.1\r\n\r\n",
            "GET",
            "/a b",
            "HTTP/1.1",
            ("whitespace_in_target",),
        ),
        (b"GET HTTP/1.1\r\n\r\n", "GET", "", "HTTP/1.1", ("missing_target",)),
        (b"G(T / HTTP/1.1\r\n\r\n", "G(T", "/", "HTTP/1.1", ("invalid_method",)),
        (b"GET / http/1.1\r\n\r\n", "GET", "/", "http/1.1", ("invalid_version",)),
        (b"GET / HTTP/11\r\n\r\n", "GET", "/", "HTTP/11", ("invalid_version",)),
        (b"GET / HTTP/2.0\r\n\r\n", "GET", "/", "HTTP/2.0", ()),  # the judge decides
        (
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            "GET",
            "/\x01",
            "HTTP/1.1",
            ("control_char_in_start_line",),
        ),
        (b"GET /caf\xe9 HTTP/1.1\r\n\r\n", "GET", "/caf\xe9", "HTTP/1.1", ()),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", "GET", "/", "HTTP/1.1", ("unterminated_head",)),
        (b"GET / HTTP/1.1", "GET", "/", "HTTP/1.1", ("unterminated_head",)),
        (b"GET / HTTP/1.1 x y\r\n\r\n", "GET", "/", "HTTP/1.1", ("junk_after_version",)),
        (
            b"GET /a b HTTP/1.1 x\r\n\r\n",
            "GET",
            "/a b",
            "HTTP/1.1",
            ("junk_after_version", "whitespace_in_target"),
        ),
    ],
)
def test_parse_request_start_line(
    raw: bytes, method: str, target: str, version: str, problems: tuple[str, ...]
) -> None:
    head = parse_request_head(raw)
    assert head is not None
    assert (head.method, head.target, head.version) == (method, target, version)
    assert head.problems == problems


@pytest.mark.parametrize(
    ("lines", "fields", "problems"),
    [
        (b"Upgrade: websocket\r\n", [("Upgrade", "websocket")], ()),
        (b"Upgrade:websocket\r\n", [("Upgrade", "websocket")], ()),
        (b"Upgrade: \t websocket \t\r\n", [("Upgrade", "websocket")], ()),
        (b"X-Empty:\r\n", [("X-Empty", "")], ()),
        (b"X-Colon: a: b\r\n", [("X-Colon", "a: b")], ()),
        (b"Upgrade : websocket\r\n", [("Upgrade", "websocket")], ("whitespace_before_colon",)),
        (b"Upgrade\t: websocket\r\n", [("Upgrade", "websocket")], ("whitespace_before_colon",)),
        (b": nothing\r\n", [("", "nothing")], ("empty_header_name",)),
        (b"Bad Name: x\r\n", [("Bad Name", "x")], ("invalid_header_name",)),
        (b"Upgrade websocket\r\nHost: a\r\n", [("Host", "a")], ("header_without_colon",)),
        (
            b"X-Long: first\r\n  second\r\n\tthird\r\nHost: a\r\n",
            [("X-Long", "first second third"), ("Host", "a")],
            ("obs_fold",),
        ),
        (b"X-Fold:\r\n value\r\n", [("X-Fold", "value")], ("obs_fold",)),
        (b" Host: a\r\nX: b\r\n", [("X", "b")], ("whitespace_after_start_line",)),
        (b"X: a\x00b\r\n", [("X", "a\x00b")], ("nul_in_value",)),
        (b"X: a\x1bb\r\n", [("X", "a\x1bb")], ("control_char_in_value",)),
        (b"X: a\x7f\r\n", [("X", "a\x7f")], ("control_char_in_value",)),
        (b"X: a\rb\r\n", [("X", "a\rb")], ("bare_cr",)),
        (b"X: a\tb\r\n", [("X", "a\tb")], ()),
        (b"X: caf\xe9\r\n", [("X", "caf\xe9")], ()),  # obs-text, latin-1
        (
            b"Upgrade : websocket\nbroken\r\n",
            [("Upgrade", "websocket")],
            ("bare_lf_line_ending", "whitespace_before_colon", "header_without_colon"),
        ),
    ],
)
def test_parse_header_fields(
    lines: bytes, fields: list[tuple[str, str]], problems: tuple[str, ...]
) -> None:
    for start in (b"GET / HTTP/1.1\r\n", b"HTTP/1.1 200 OK\r\n"):
        parse = parse_request_head if start.startswith(b"GET") else parse_response_head
        head = parse(start + lines + b"\r\n")
        assert head is not None
        assert [(f.name, f.value) for f in head.headers.fields] == fields
        assert head.problems == problems


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        TLS_CLIENT_HELLO,
        b"GET /\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"GET\r\n\r\n",
    ],
)
def test_parse_request_head_refuses_what_is_not_a_request(raw: bytes) -> None:
    assert parse_request_head(raw) is None


# --- parse_response_head -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "reason", "problems"),
    [
        (WS_RESPONSE, 101, "Switching Protocols", ()),
        (ACTIX_400, 400, "No WebSocket Upgrade header found", ()),
        (b"HTTP/1.1 200\r\n\r\n", 200, "", ()),  # missing reason phrase is fine
        (b"HTTP/1.1 200 \r\n\r\n", 200, "", ()),
        (b"HTTP/1.1 426 Upgrade  Required\r\n\r\n", 426, "Upgrade  Required", ()),
        (b"HTTP/1.1  200 OK\r\n\r\n", 200, "OK", ("start_line_extra_spaces",)),
        (b" HTTP/1.1 200 OK\r\n\r\n", 200, "OK", ("start_line_extra_spaces",)),
        (b"HTTP/1.1\t200\tOK\r\n\r\n", 200, "OK", ("start_line_extra_spaces",)),
        (b"HTTP/1.1 abc Weird\r\n\r\n", 0, "Weird", ("non_numeric_status",)),
        (b"HTTP/1.1\r\n\r\n", 0, "", ("missing_status",)),
        (b"HTTP/1.1 20 OK\r\n\r\n", 20, "OK", ("invalid_status",)),
        (b"HTTP/1.1 0200 OK\r\n\r\n", 200, "OK", ("invalid_status",)),
        (b"HTTP/1.1 999 Odd\r\n\r\n", 999, "Odd", ("status_out_of_range",)),
        (b"HTTP/1.1 200 OK\n\n", 200, "OK", ("bare_lf_line_ending",)),
        (b"HTTP/1.1 200 OK\r\nX: y", 200, "OK", ("unterminated_head",)),
        (b"HTTP/1.1 200 Caf\xe9\r\n\r\n", 200, "Caf\xe9", ()),
        (b"http/1.1 200 OK\r\n\r\n", 200, "OK", ("invalid_version",)),
    ],
)
def test_parse_response_start_line(
    raw: bytes, status: int, reason: str, problems: tuple[str, ...]
) -> None:
    head = parse_response_head(raw)
    assert head is not None
    assert (head.status, head.reason) == (status, reason)
    assert head.problems == problems
    assert head.raw == raw


def test_parse_node_ws_version_rejection() -> None:
    head = parse_response_head(NODE_WS_400)
    assert head is not None
    assert head.version == "HTTP/1.1"
    assert head.headers.get("Sec-WebSocket-Version") == "13, 8"
    assert head.headers.tokens("sec-websocket-version") == ["13", "8"]
    assert head.headers.get("connection") == "close"


def test_parse_response_ignores_bytes_after_the_head() -> None:
    head = parse_response_head(WS_RESPONSE + b"\x81\x05Hello")
    assert head is not None
    assert len(head.headers.fields) == 4
    assert head.problems == ()


@pytest.mark.parametrize(
    "raw", [b"", b"\r\n", b"GET / HTTP/1.1\r\n\r\n", b"HTTP2 200\r\n\r\n", H2_PREFACE]
)
def test_parse_response_head_refuses_what_is_not_a_response(raw: bytes) -> None:
    assert parse_response_head(raw) is None


@given(st.binary(max_size=200))
def test_parsers_never_raise(data: bytes) -> None:
    for prefix in (b"", b"GET / HTTP/1.1\r\n", b"HTTP/1.1 101 \r\n"):
        request = parse_request_head(prefix + data)
        response = parse_response_head(prefix + data)
        if prefix.startswith(b"GET"):
            assert request is not None
        if prefix.startswith(b"HTTP"):
            assert response is not None


@given(
    st.lists(
        st.tuples(
            st.text(alphabet="abcXYZ-_", min_size=1, max_size=8),
            st.text(alphabet="abc ,;=\t\xe9", max_size=12),
        ),
        max_size=6,
    )
)
def test_parse_round_trips_well_formed_fields(fields: list[tuple[str, str]]) -> None:
    lines = b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in fields)
    head = parse_request_head(b"GET / HTTP/1.1\r\n" + lines + b"\r\n")
    assert head is not None
    assert [(f.name, f.value) for f in head.headers.fields] == [
        (n, v.strip(" \t")) for n, v in fields
    ]
    assert head.problems == ()


start_lines = st.tuples(
    st.sampled_from([b"GET", b"CONNECT", b"M-SEARCH", b"HTTP"]),
    st.sampled_from([b" ", b"  ", b"\t", b" \t"]),
    st.sampled_from([b"/", b"*", b"/a?b=c", b"host:443", b"/caf\xe9", b"/a b"]),
    st.sampled_from([b" ", b"  ", b"\t"]),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"http/1.1", b"HTTP/1.1x", b"HTTP/1.9"]),
    st.sampled_from([b"", b" ", b" junk", b"\t1", b"\x0b"]),
)


@given(start_lines, st.sampled_from([b"\r\n", b"\n"]))
def test_what_classify_start_calls_a_request_parses_as_one(
    parts: tuple[bytes, ...], eol: bytes
) -> None:
    line = b"".join(parts)
    assert classify_start(line + eol) == "request"
    head = parse_request_head(line + eol + b"Host: a" + eol + eol)
    assert head is not None
    assert head.headers.get("host") == "a"


@given(
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"http/1.1"]),
    st.sampled_from([b" ", b"  ", b"\t"]),
    st.sampled_from([b"101", b"400", b"999", b"000"]),
    st.sampled_from([b"", b" ", b" OK", b"\tOK", b"0"]),
)
def test_what_classify_start_calls_a_response_parses_as_one(
    version: bytes, sep: bytes, code: bytes, rest: bytes
) -> None:
    line = version + sep + code + rest
    assert classify_start(line + b"\r\n") == "response"
    head = parse_response_head(line + b"\r\n\r\n")
    assert head is not None
    assert head.version == version.decode()


# --- the lean path gives what the walk gives -----------------------------------------------------

# Pieces on both sides of the plain shape the parsers split without the line-by-line walk: each
# head built from them must parse exactly as the walk parses it, problems and their order included.
_near_plain_eol = st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"])
_near_plain_field = st.tuples(
    st.sampled_from([b"Host", b"X-A", b"", b" Host", b"\tX", b"Bad Name", b"B(d", b"Up\xe9"]),
    st.sampled_from([b":", b":", b" :", b"\t:", b""]),
    st.sampled_from(
        [b" a", b"a", b"", b" \t a b \t", b"a: b", b"caf\xe9", b"a\x00", b"a\x1b", b"a\x7f"]
    ),
    _near_plain_eol,
).map(b"".join)
_near_plain_tail = st.tuples(
    st.lists(_near_plain_field, max_size=4).map(b"".join),
    _near_plain_eol,
    st.sampled_from([b"", b"body", b"\r\n", b"X: after\r\n\r\n"]),
).map(b"".join)


@given(
    st.tuples(
        st.sampled_from([b"", b"\r\n", b" "]),
        st.sampled_from([b"GET", b"M-SEARCH", b"G(T", b"G\x01T"]),
        st.sampled_from([b" ", b"  ", b"\t"]),
        st.sampled_from([b"/", b"*", b"/caf\xe9", b"/a b", b"/\x7f", b""]),
        st.sampled_from([b" ", b"  ", b"\t"]),
        st.sampled_from([b"HTTP/1.1", b"HTTP/2.0", b"http/1.1", b"HTTP/11", b"HTTP/1.1 x"]),
        _near_plain_eol,
    ).map(b"".join),
    _near_plain_tail,
)
def test_plain_requests_parse_as_the_walk_parses_them(start: bytes, tail: bytes) -> None:
    raw = start + tail
    parsed, walked = parse_request_head(raw), _walk_request_head(raw)
    assert parsed == walked
    if parsed is not None and walked is not None:  # the look-up index too (compare=False)
        assert parsed.headers._index == walked.headers._index


@given(
    st.tuples(
        st.sampled_from([b"", b"\r\n", b" "]),
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"http/1.1", b"HTTP/11"]),
        st.sampled_from([b" ", b"  ", b"\t", b""]),
        st.sampled_from([b"101", b"200", b"599", b"600", b"099", b"20", b"0200", b"abc", b""]),
        st.sampled_from([b"", b" ", b" OK", b"  OK \t", b"\tOK", b"OK", b" Caf\xe9", b" a\x01"]),
        _near_plain_eol,
    ).map(b"".join),
    _near_plain_tail,
)
def test_plain_responses_parse_as_the_walk_parses_them(start: bytes, tail: bytes) -> None:
    raw = start + tail
    parsed, walked = parse_response_head(raw), _walk_response_head(raw)
    assert parsed == walked
    if parsed is not None and walked is not None:  # the look-up index too (compare=False)
        assert parsed.headers._index == walked.headers._index


@given(
    st.tuples(
        st.sampled_from([b"", b"\r\n", b" "]),
        st.sampled_from([b"GET", b"G(T", b"HTTP", b"HTTP/1.1", b"http/1.0", b"HTTP/2.0", b"\x16"]),
        st.sampled_from([b" ", b"  ", b"\t", b""]),
        st.sampled_from([b"/", b"/a b", b"200", b"20", b"/caf\xe9", b"/\x7f", b""]),
        st.sampled_from([b" ", b"\t", b""]),
        st.sampled_from([b"HTTP/1.1", b"HTTP/1.", b"HTTP/2.0", b"http/1.1", b"OK", b""]),
        st.sampled_from([b"\r\n", b"\n", b""]),
    ).map(b"".join)
)
def test_plain_start_lines_classify_as_the_walk_classifies_them(prefix: bytes) -> None:
    for cut in range(len(prefix) + 1):
        assert classify_start(prefix[:cut]) == _walk_start(prefix[:cut])


_START_PIECES = [b"GET", b"G", b"HTTP", b"http", b"HTTP/", b"HTTP/1.", b"HTTP/1.1", b"HTTP/2",
                 b"hTtP/1.0", b"/", b"/a", b"a", b" ", b"  ", b"\t", b"\r", b"\n", b"\r\n",
                 b"\x00", b"1", b"200", b"20", b"H", b"T", b"P", b".", b"\x7f", b"\xe9", b"(",
                 b"OK"]


_START_LINES = st.tuples(
    st.sampled_from([b"", b"\r\n", b"\n"]),
    st.sampled_from([b"GET", b"G(T", b"HTTP", b"HTTP/1.1", b"hTtP/1.0", b"\x16", b""]),
    st.lists(st.tuples(st.sampled_from([b" ", b"\t", b" \t", b""]),
                       st.sampled_from([b"/", b"/a", b"HTTP/1.1", b"HTTP/1.1x", b"HTTP/2",
                                        b"http/1.", b"HTTPX", b"HT", b"200", b"20", b"\x00",
                                        b"a\x7f", b"\r"])).map(b"".join), max_size=4),
    st.sampled_from([b"", b"\r\n", b" ", b"\n"]),
).map(lambda parts: parts[0] + parts[1] + b"".join(parts[2]) + parts[3])


@settings(max_examples=400)
@given(st.one_of(_START_LINES, st.lists(st.sampled_from(_START_PIECES), max_size=12)
                 .map(b"".join)))
def test_the_start_patterns_answer_as_the_walk(prefix: bytes) -> None:
    """`_start_by_patterns` is the walk in C (its twin): the same answer for every prefix."""
    for cut in range(len(prefix) + 1):
        assert _start_by_patterns(prefix[:cut]) == _walk_start(prefix[:cut]), prefix[:cut]
        assert _start_by_patterns(bytearray(prefix[:cut])) == _walk_start(prefix[:cut])


@pytest.mark.parametrize("line", [b"GET /", b"\r\n", b"GET a ", b"HTTP/1.1 ", b"GET a\t"])
def test_the_start_patterns_answer_as_the_walk_at_the_window(line: bytes) -> None:
    for length in range(MAX_START_LINE - 12, MAX_START_LINE + 4):
        body = (line * (length // len(line) + 1))[:length]
        for prefix in (body, body + b" HTTP/1.1", body + b" HTTP/1."):
            assert _start_by_patterns(prefix) == _walk_start(prefix), (len(prefix), line)


def test_plain_start_lines_stop_at_the_same_length_as_the_walk() -> None:
    """Within MAX_START_LINE the one match and the walk agree; past it a plain request line is
    still a request (up to MAX_REQUEST_LINE), where the walk's window has given up."""
    for length in range(8175, 8185):  # the version ends just before, at, or after MAX_START_LINE
        line = b"GET /" + b"a" * length + b" HTTP/1.1"
        if len(line) <= MAX_START_LINE:
            assert classify_start(line) == _walk_start(line)
        else:
            assert (classify_start(line), _walk_start(line)) == ("request", "not_http")


@given(st.text(max_size=20), st.text(max_size=20))
def test_a_header_built_through_its_slots_equals_one_built_by_init(name: str, value: str) -> None:
    fast, plain = header(name, value), Header(name, value)
    assert fast == plain and hash(fast) == hash(plain) and repr(fast) == repr(plain)
    assert type(fast) is Header and (fast.name, fast.value) == (name, value)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.name = "x"  # type: ignore[misc]


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=8)), max_size=12))
def test_header_names_are_the_lowercased_names_of_the_fields(pairs: list[tuple[str, str]]) -> None:
    """`Headers.names()` lets the checks and the redaction skip walking the fields for names
    that are absent: it must hold exactly the lowercased field names, whichever way the
    Headers were built (the plain parser builds the index itself: `Headers.indexed`)."""
    from analyzer.http.message import Headers

    fields = tuple(header(name, value) for name, value in pairs)
    expected = {name.lower() for name, _ in pairs}
    assert set(Headers(fields).names()) == expected
    index: dict[str, list[str]] = {}
    for name, value in pairs:
        index.setdefault(name.lower(), []).append(value)
    assert set(Headers.indexed(fields, index).names()) == expected


def test_header_look_ups_equal_their_plain_twins() -> None:
    """`Headers.tokens` (each value's tokens remembered) gives what `tokens_plain` gives, and
    get/count/has/all (the name tried as given first) what the lowered name's index entry
    says: every field of every head of the bundled captures, asked as sent, lowercased and
    uppercased, made and remembered; and crafted values (empty items, tabs, 0xA0, a long
    value that is not remembered, repeated fields)."""
    from pathlib import Path

    from analyzer.http import message
    from analyzer.http.message import Headers
    from analyzer.pipeline import Analysis, analyze
    from analyzer.source import read_captures
    from analyzer.verdict import Diagnosis

    heads: list[Headers] = []
    for path in sorted((Path(__file__).resolve().parent.parent / "captures").glob("*.pcap*")):
        for d in analyze(read_captures([str(path)], []), Analysis()):
            if isinstance(d, Diagnosis):
                for m in (d.attempt.request, d.attempt.response, *d.attempt.interim):
                    if m is not None:
                        heads.append(m.head.headers)
    long_value = "a, " * 200 + "Upgrade"
    heads.append(Headers((
        header("Connection", " keep-alive ,, Upgrade\t"), header("connection", "\xa0Upgrade"),
        header("Upgrade", "WebSocket/13,h2c"), header("X-Long", long_value),
        header("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
    )))
    assert len(heads) > 100
    message._TOKENS.clear()
    for _ in range(2):  # made, then remembered
        for headers in heads:
            names = {f.name for f in headers.fields} | {"absent", "Absent"}
            for name in names:
                for asked in (name, name.lower(), name.upper()):
                    lowered = headers._index.get(asked.lower())
                    assert headers.tokens(asked) == headers.tokens_plain(asked), asked
                    assert headers.all(asked) == list(lowered or ())
                    assert headers.get(asked) == (lowered[0] if lowered else None)
                    assert headers.count(asked) == len(lowered or ())
                    assert headers.has(asked) == (lowered is not None)
    assert long_value not in message._TOKENS and message._TOKENS


@pytest.mark.parametrize("line", [
    b"GET /chat?room=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"PROPFIND /a HTTP/1.0\r\n",
    b"GET HTTP/1.1 HTTP/1.1\r\n",  # the first word may look like a version
    b"GET /a\tHTTP/1.1\r\n",  # not plain: the walk still takes it
    b"GET /a b HTTP/1.1\r\n",
    b"GET /a http/1.1\r\n",
    b"GET /a HTTP/2.0\r\n",
    b"GET /a HTX /b HTTP/1.1\r\n",
    b"GET /a\x00 HTTP/1.1\r\n",
    b"GET /ab\r\n\r\n",  # HTTP/0.9
    b"\r\n\r\nGET /a HTTP/1.1\r\n",  # empty lines first (RFC 9112 §2.2)
])
def test_a_short_line_read_on_from_where_it_was_left_answers_as_read_whole(line: bytes) -> None:
    """The tracker reads a start line on from where it left it (`read_start`), plain or not;
    where it stops being plain (a tab, a second word, another version), or never was one,
    the answer is still `classify_start`'s: read a byte at a time, and in two pieces cut
    anywhere."""
    _read_on(line, list(range(1, len(line) + 1)))
    for cut in range(1, len(line)):
        _read_on(line, [cut, len(line)])


@pytest.mark.parametrize("line", [
    b"GET /" + b"a" * MAX_START_LINE + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /" + b"a" * MAX_START_LINE + b" HTTP/2.0\r\n",  # not HTTP/1: given up on
    b"GET /" + b"a" * MAX_START_LINE + b" HTX",
    b"GET /" + b"a" * MAX_START_LINE + b"\x00rest",
    b"GET /" + b"a" * MAX_START_LINE + b" /second-word HTTP/1.1\r\n",
    b"GET /" + b"a" * (MAX_REQUEST_LINE + 10),  # past the longest request line waited for
    b"\r\n\r\nGET /" + b"a" * MAX_START_LINE + b" HTTP/1.1\r\nHost: a\r\n\r\n",
])
def test_classify_start_after_is_classify_start_read_from_where_it_was_left(line: bytes) -> None:
    """The tracker reads a long request line still growing from where it left it
    (`classify_start_after`); its twin reads it whole each time. Every later prefix, from
    every earlier one that was still "need_more" past the window, gives the same answer."""
    from analyzer.http.start import classify_start_after

    cuts = [*range(MAX_START_LINE - 2, MAX_START_LINE + 40), *range(len(line) - 30, len(line) + 1),
            MAX_REQUEST_LINE - 1, MAX_REQUEST_LINE, MAX_REQUEST_LINE + 1]
    cuts = sorted({c for c in cuts if MAX_START_LINE <= c <= len(line)})
    growing = [c for c in cuts if classify_start(line[:c]) == "need_more"]
    assert growing, "a case that never waits tests nothing"
    for known in growing[:: max(1, len(growing) // 12)]:
        for cut in (c for c in cuts if c >= known):
            assert classify_start_after(line[:cut], known) == classify_start(line[:cut]), \
                (known, cut)


def _read_on(line: bytes, cuts: list[int]) -> None:
    """`read_start` at each cut of ``line``, each call from where the one before left it
    (as the tracker calls it, with its joined buffer, a bytearray, or the data itself), gives
    `classify_start`'s answer, its twin reading every prefix whole; until it decides, what the
    next call reads again of the bytes already read is bounded (a version begun, 8 bytes)."""
    so_far = None
    for n, cut in enumerate(cuts):
        prefix = line[:cut] if n % 2 else bytearray(line[:cut])
        kind, so_far = read_start(prefix, so_far)
        assert kind == classify_start(line[:cut]), (cut, so_far)
        if kind != "need_more":
            assert so_far is None
            return
        assert so_far is not None and so_far.length == cut
        if so_far.stand_in is not None:
            assert cut - 8 <= so_far.at <= cut and len(so_far.stand_in) <= 9


@settings(max_examples=400)
@given(st.one_of(_START_LINES, st.lists(st.sampled_from(_START_PIECES), max_size=12)
                 .map(b"".join)), st.lists(st.integers(1, 6), max_size=24))
def test_a_start_line_read_on_from_where_it_was_left_answers_as_read_whole(
        line: bytes, steps: list[int]) -> None:
    """A start line still growing is read on from where it was left (`read_start`), however
    it is cut: a byte at a time, or in the given steps (then the rest at once)."""
    _read_on(line, list(range(1, len(line) + 1)))
    cuts = [sum(steps[: i + 1]) for i in range(len(steps))]
    _read_on(line, [c for c in cuts if c < len(line)] + [len(line)])


@pytest.mark.parametrize("line", [b"GET /", b"GET a ", b"GET\t/a\t", b"\r\n", b"\r\nGET a ",
                                  b"HTTP/1.1 ", b"HTTP/1.1\t", b"G", b"GET  ", b"GET /\x01",
                                  b"GET /a HTTP/1.", b"GET a HTTPX "])
@pytest.mark.parametrize("tail", [b" HTTP/1.1\r\n", b" HTTP/1.", b" HTTP/2.0", b"\r\n",
                                  b" x HTTP/1.1", b"HTTP/1.1", b"200 OK", b" http/1.0"])
def test_a_start_line_read_on_answers_as_read_whole_at_the_window(line: bytes,
                                                                   tail: bytes) -> None:
    """Across MAX_START_LINE a line read on from where it was left is classified whole once
    (past it, only a plain request line still waits, read on by `classify_start_after`)."""
    for length in (MAX_START_LINE - 12, MAX_START_LINE - 1, MAX_START_LINE, MAX_START_LINE + 3):
        body = (line * (length // len(line) + 1))[:length]
        whole = body + tail + b"a" * 12
        for first in (1, MAX_START_LINE - 30, MAX_START_LINE - 1):
            _read_on(whole, [first, *range(max(first + 1, MAX_START_LINE - 20),
                                           len(whole) + 1)])


@pytest.mark.parametrize("line", [
    b"GET /" + b"a" * MAX_START_LINE + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /" + b"a" * MAX_START_LINE + b" /second-word HTTP/1.1\r\n",
    b"GET /" + b"a" * (MAX_REQUEST_LINE + 10),  # past the longest request line waited for
    b"\r\n\r\nGET /" + b"a" * MAX_START_LINE + b" HTTP/2.0\r\n",
    b"GET /" + b"a" * MAX_START_LINE + b"\tHTTP/1.1\r\n",
])
def test_a_long_request_line_read_on_answers_as_read_whole(line: bytes) -> None:
    """Past MAX_START_LINE a plain request line is read on by `classify_start_after`."""
    _read_on(line, [*range(1, len(line) - 40, 1021), *range(len(line) - 40, len(line) + 1)])
