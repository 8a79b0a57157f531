"""Recognising the start of an HTTP/1.x message and finding where its head ends (RFC 9112 §2-§4).

The reassembler asks ``classify_start`` whether the first bytes of a TCP direction look like an
HTTP/1.x request or response at all (TLS, SMTP or binary traffic must be dropped at once), then
calls ``find_head_end`` each time data arrives until the empty line ending the head is there; the
parsers in ``http.head`` take the head apart. The token grammar lives here because both the start
line recogniser and the parsers use it.
"""

from __future__ import annotations

import re
from typing import Literal

# A start line longer than this is not worth waiting for: real clients stay far below it and
# common servers refuse longer request lines (nginx 8 KiB large_client_header_buffers).
MAX_START_LINE = 8192
# ... except a request line that is plainly one (a method, a space, a target of visible bytes):
# a server's refusal of a target too long for it (414 URI Too Long, RFC 9110 §15.5.15, or a
# reset) is a failure to show, not traffic to ignore. It waits as long as a head may be
# (exchange/pending.py MAX_HEAD_BYTES), and is recognised by one match in C however long.
MAX_REQUEST_LINE = 64 * 1024

# An empty line is LF, optionally preceded by CR, right after the LF of the previous line.
# RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line terminator and ignore any
# preceding CR", so LF LF, CRLF LF and LF CRLF end a head as well as CRLF CRLF.
HEAD_END = re.compile(rb"\n\r?\n")
_LONGEST_HEAD_END = 3

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
# / "`" / "|" / "~" / DIGIT / ALPHA
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset(b"0123456789")
_SP_HTAB = frozenset(b" \t")
_CR_LF = frozenset(b"\r\n")
_WORD_END = frozenset(b" \t\r\n\x00")  # what ends a word of a request line
# RFC 9110 §5.6.2: token = 1*tchar
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LEADING_EMPTY_LINES = re.compile(rb"[\r\n]*")

StartKind = Literal["request", "response", "not_http", "need_more"]


def find_head_end(buf: bytes | bytearray, start: int = 0) -> int | None:
    """Index just past the empty line that ends the head in ``buf``, or None if not there yet.

    ``start`` is where the previous unsuccessful call stopped looking: pass the length the buffer
    had then, and only the new bytes (plus the few that may begin a terminator) are scanned again.
    Empty lines before the start line do not end a head (see ``classify_start``).
    """
    leading = 0
    if buf and buf[0] in _CR_LF:  # rare: most heads begin with their start line
        empty = _LEADING_EMPTY_LINES.match(buf)
        leading = empty.end() if empty else 0
    m = HEAD_END.search(buf, max(leading, start - (_LONGEST_HEAD_END - 1)))
    return m.end() if m else None


# The start lines of nearly all HTTP/1.x traffic, recognised by one match in classify_start; the
# byte walk it saves would reach the same answer. RFC 9112 §4: HTTP-version SP status-code, and
# §3: method SP request-target SP HTTP-version. A method is a token, which has no "/", so the
# request alternative never takes what the walk would call a response.
_TARGET_BYTE = rb"[^\x00-\x20\x7f]"  # what a request-target is made of, for the one match
_VERSION = rb" HTTP/1\.[0-9]"
_PLAIN_START = re.compile(
    rb"(?P<response>HTTP/1\.[0-9][ \t]+[0-9]{3})"
    rb"|(?P<request>" + TOKEN.pattern + rb" " + _TARGET_BYTE + rb"+" + _VERSION + rb")"
)

# A request line past MAX_START_LINE, as _PLAIN_START's request alternative: its method, a
# space and a first target byte, then the rest from inside the target (or from the space before
# a version begun), whole or still growing (its target, or the version, not all there yet).
_METHOD_AND_TARGET = re.compile(TOKEN.pattern + rb" " + _TARGET_BYTE)
_REST_WHOLE = re.compile(_TARGET_BYTE + rb"*" + _VERSION)
_REST_SO_FAR = re.compile(_TARGET_BYTE + rb"*(?: (?:H(?:T(?:T(?:P(?:/(?:1\.?)?)?)?)?)?)?)?")

# Outcome of matching one grammar against a prefix: matched, could still match, cannot match.
_MATCH, _PARTIAL, _FAIL = 0, 1, 2


def _match_version(d: bytes, i: int) -> int:
    """``HTTP/1.`` DIGIT at ``i``; only HTTP/1.x counts (``PRI * HTTP/2.0`` is the h2 preface)."""
    lit = b"HTTP/1."
    for k, c in enumerate(lit):
        if i + k >= len(d):
            return _PARTIAL
        # RFC 9112 §2.3: "HTTP-name = %s"HTTP"" is case-sensitive; accepting "http/" anyway costs
        # nothing and lets the parser report it as invalid_version rather than missing the message.
        if d[i + k] != c and not (k < 4 and d[i + k] == c + 32):
            return _FAIL
    i += len(lit)
    if i >= len(d):
        return _PARTIAL
    return _MATCH if d[i] in _DIGITS else _FAIL


def _skip(d: bytes, i: int, chars: frozenset[int]) -> int:
    while i < len(d) and d[i] in chars:
        i += 1
    return i


def _match_response(d: bytes, i: int) -> int:
    # RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    r = _match_version(d, i)
    if r != _MATCH:
        return r
    i += len(b"HTTP/1.x")
    j = _skip(d, i, _SP_HTAB)
    if j >= len(d):
        return _PARTIAL
    if j == i:
        return _FAIL
    for k in range(3):
        if j + k >= len(d):
            return _PARTIAL
        if d[j + k] not in _DIGITS:
            return _FAIL
    return _MATCH


def _match_request(d: bytes, i: int) -> int:
    # RFC 9112 §3: request-line = method SP request-target SP HTTP-version. Separators are matched
    # as runs of SP/HTAB because §3 lets recipients "parse on whitespace-delimited word boundaries",
    # and a target with spaces in it still makes a request line (one a server answers with 400).
    j = _skip(d, i, _TCHAR)
    if j >= len(d):
        return _PARTIAL
    if j == i or d[j] not in _SP_HTAB:
        return _FAIL
    i = _skip(d, j, _SP_HTAB)
    words = 0
    while True:
        if words:
            version = _match_version(d, i)
            if version != _FAIL:
                return version
            if d[i : i + 5].upper() == b"HTTP/":
                return _FAIL  # another version: "PRI * HTTP/2.0" is the HTTP/2 preface
        # A target word is anything but whitespace and NUL: bytes >= 0x80 are tolerated (sloppy
        # clients), and so are other control bytes (an ESC in a target is a request a server
        # answers with 400 or 403, and an attempt to list, escaped; the judge notes it). NUL
        # stays a sign of binary data.
        j = i
        while j < len(d) and d[j] not in _WORD_END:
            j += 1
        if j >= len(d):
            return _PARTIAL
        # CR/LF here would be HTTP/0.9 ("GET /"), which has no headers and no upgrade.
        if j == i or d[j] not in _SP_HTAB:
            return _FAIL
        words += 1
        i = _skip(d, j, _SP_HTAB)


def classify_start(prefix: bytes | bytearray) -> StartKind:
    """Whether the first bytes of a TCP direction begin an HTTP/1.x request or response.

    Decides from the start line alone: "need_more" only while ``prefix`` is still a viable start,
    so TLS, SSH, SMTP or binary data are rejected within their first few bytes. A start line not
    recognised within ``MAX_START_LINE`` bytes is "not_http".
    """
    plain = _PLAIN_START.match(prefix, 0, MAX_START_LINE)  # endpos: what the walk looks at
    if plain is None:
        if len(prefix) >= MAX_START_LINE:  # where the walk gives up
            return _long_request_start(prefix)
        return _walk_start(prefix)
    return "response" if plain["response"] else "request"


def _long_request_start(prefix: bytes | bytearray) -> StartKind:
    """``classify_start`` of a prefix past ``MAX_START_LINE``: a plain request line up to
    ``MAX_REQUEST_LINE`` long, whole ("request") or still growing ("need_more"); anything else
    as the walk says within its window."""
    # RFC 9112 §2.2: empty lines before the request-line are ignored, as the walk does
    first = _LEADING_EMPTY_LINES.match(prefix).end() if prefix[0] in _CR_LF else 0  # type: ignore[union-attr]
    begun = _METHOD_AND_TARGET.match(prefix, first)
    if begun is not None:
        kind = _request_line_from(prefix, begun.end())
        if kind != "not_http":
            return kind
    return _walk_start(prefix)


def classify_start_after(prefix: bytes | bytearray, known: int) -> StartKind:
    """``classify_start(prefix)`` (its plain twin) when ``classify_start(prefix[:known])`` was
    "need_more" with ``known`` at least ``MAX_START_LINE``: a plain request line still growing.
    Only the bytes after ``known`` are read (and a version begun in its last 8), so a request
    line sent a byte at a time costs linear time: reading it whole at every byte was
    quadratic (60,000 one-byte segments, 36 s)."""
    space = prefix.rfind(b" ", known - len(b" HTTP/1."), known)  # a version begun
    return _request_line_from(prefix, space if space >= 0 else known)


def _request_line_from(prefix: bytes | bytearray, at: int) -> StartKind:
    """The rest of a plain request line from ``at`` (inside its target, or the space before
    its version): "request" when whole, "need_more" while it may still become one."""
    if _REST_WHOLE.match(prefix, at, MAX_REQUEST_LINE) is not None:
        return "request"
    if len(prefix) < MAX_REQUEST_LINE and _REST_SO_FAR.fullmatch(prefix, at) is not None:
        return "need_more"
    return "not_http"


def _walk_start(prefix: bytes | bytearray) -> StartKind:
    """``classify_start`` byte by byte, for what the one match did not recognise."""
    d = bytes(prefix[:MAX_START_LINE])
    # RFC 9112 §2.2: "a server that is expecting to receive and parse a request-line SHOULD ignore
    # at least one empty line (CRLF) received prior to the request-line."
    i = _skip(d, 0, _CR_LF)
    if i >= len(d):
        return "need_more" if len(d) < MAX_START_LINE else "not_http"
    response = _match_response(d, i)
    if response == _MATCH:
        return "response"
    request = _match_request(d, i)
    if request == _MATCH:
        return "request"
    if _PARTIAL in (response, request) and len(d) < MAX_START_LINE:
        return "need_more"
    return "not_http"
