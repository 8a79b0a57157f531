"""Tolerantly parsing HTTP/1.x message heads (RFC 9112 §2-§5).

How it works: once ``http.start`` has recognised a message's start and found the empty line that
ends its head, that slice is handed to ``parse_request_head`` or ``parse_response_head``. The
parsers never refuse a message that has an HTTP start line: every deviation from the grammar is
kept as a short, stable problem name in ``problems`` so that the checks can judge it (a strict
server would have answered 400 where a lenient one went on). A head in the plain shape nearly all
software sends is recognised by one match and split without the line-by-line walk, which would
have found nothing to note in it (see ``_PLAIN_REQUEST_HEAD``).

Problem names used here (stable, snake_case):

- ``leading_empty_line``: empty line(s) before the start line
- ``bare_lf_line_ending``: a line ended by LF without CR
- ``bare_cr``: a CR inside a line, not followed by LF
- ``unterminated_head``: no empty line at the end (capture or snaplen cut the head)
- ``start_line_extra_spaces``: separators other than exactly one SP in the start line
- ``control_char_in_start_line``
- ``invalid_method``: the method is not a token
- ``missing_target``: only a method and a version
- ``whitespace_in_target``: SP or HTAB inside the request-target
- ``junk_after_version``: words after the version of a request line
- ``invalid_version``: not ``HTTP/`` DIGIT ``.`` DIGIT exactly (e.g. lowercase, ``HTTP/11``)
- ``missing_status``, ``non_numeric_status``, ``invalid_status`` (not 3 digits),
  ``status_out_of_range`` (3 digits outside 100-599)
- ``whitespace_after_start_line``: a line starting with whitespace right after the start line
- ``obs_fold``: a continuation line (unfolded into the previous field)
- ``header_without_colon``: line dropped
- ``empty_header_name``
- ``whitespace_before_colon``: the name is kept without it
- ``invalid_header_name``: the name is not a token
- ``nul_in_value``, ``control_char_in_value``
"""

from __future__ import annotations

import re

from analyzer.http.message import Header, Headers, RequestHead, ResponseHead, header
from analyzer.http.start import TOKEN, find_head_end

_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # HTAB is allowed in values and start lines
_SP_OR_HTAB = re.compile(rb"[ \t]")
_REQUEST_LINE = re.compile(
    rb"[ \t]*(?P<method>[^ \t]+)[ \t]+(?:(?P<target>.*?)[ \t]+)?(?P<version>[^ \t]+)[ \t]*", re.S
)
_REQUEST_LINE_WITH_JUNK = re.compile(
    rb"[ \t]*(?P<method>[^ \t]+)[ \t]+(?:(?P<target>.*?)[ \t]+)?"
    rb"(?P<version>[Hh][Tt][Tt][Pp]/[^ \t]*)(?P<junk>[ \t].*)",
    re.S,
)
_STATUS_LINE = re.compile(
    rb"(?P<lead>[ \t]*)(?P<version>[^ \t]+)(?P<sep1>[ \t]*)(?P<code>[^ \t]*)(?P<sep2>[ \t]?)"
    rb"(?P<reason>.*)",
    re.S,
)


# The lean path. Almost every head on the wire is well formed: lines ended by CRLF, no control
# bytes, single spaces in the start line, a token method, an HTTP/x.y version, a status 100-599,
# and field lines "token:value" with nothing before the name or between the name and its colon. For
# such a head the tolerant walk below would note nothing, so one match tells the parsers they may
# take it apart with a split; anything else (even one stray byte) takes the walk that notes every
# anomaly. The patterns are matched against the head decoded as latin-1, which maps each byte to
# the character of the same value, so they read as byte patterns and the groups come out decoded.
_PLAIN_TOKEN = TOKEN.pattern.decode("latin-1")  # RFC 9110 §5.6.2 token
# Not a CTL, with HTAB allowed (as _CTL), and so neither CR nor LF: a line ends only at CRLF.
_PLAIN_TEXT = r"[^\x00-\x08\x0a-\x1f\x7f]*"
# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, every line ended by CRLF (§2.1),
# and the empty line ending the head right after the last one.
_PLAIN_FIELDS = rf"(?P<fields>(?:{_PLAIN_TOKEN}:{_PLAIN_TEXT}\r\n)*)\r\n"
_PLAIN_VERSION = _VERSION.pattern.decode("latin-1")  # RFC 9112 §2.3
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version (a target without
# whitespace or control bytes).
_PLAIN_REQUEST_HEAD = re.compile(
    rf"(?P<method>{_PLAIN_TOKEN}) (?P<target>[^\x00-\x20\x7f]+) (?P<version>{_PLAIN_VERSION})"
    rf"\r\n{_PLAIN_FIELDS}"
)
# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ], with a code the
# parser would not note (3 digits, 100-599); a missing reason phrase or its SP are tolerated there.
_PLAIN_RESPONSE_HEAD = re.compile(
    rf"(?P<version>{_PLAIN_VERSION}) (?P<code>[1-5][0-9][0-9])(?: (?P<reason>{_PLAIN_TEXT}))?"
    rf"\r\n{_PLAIN_FIELDS}"
)



def _split_lines(raw: bytes, problems: list[str]) -> list[bytes]:
    """The lines of a head without their terminators, noting line-ending anomalies."""
    end = find_head_end(raw)
    if end is None:
        _note(problems, "unterminated_head")
        end = len(raw)
    lines = raw[:end].split(b"\n")
    # After the final LF, split() leaves an empty element that is not a line.
    last_has_lf = lines[-1] == b""
    if last_has_lf:
        lines.pop()
    out = []
    for n, line in enumerate(lines):
        if line.endswith(b"\r"):
            line = line[:-1]
        elif n < len(lines) - 1 or last_has_lf:
            _note(problems, "bare_lf_line_ending")
        if b"\r" in line:
            # RFC 9112 §2.2: "A recipient of such a bare CR MUST consider that element to be
            # invalid or replace each bare CR with SP before processing the element".
            _note(problems, "bare_cr")
        out.append(line)
    return out


def _note(problems: list[str], name: str) -> None:
    if name not in problems:
        problems.append(name)


def _start_line(raw: bytes, problems: list[str]) -> tuple[bytes, list[bytes]] | None:
    """The start line and the header lines after it, skipping leading empty lines."""
    lines = _split_lines(raw, problems)
    n = 0
    while n < len(lines) and lines[n] == b"":
        n += 1
    if n:
        _note(problems, "leading_empty_line")
    if n >= len(lines):
        return None
    start = lines[n]
    rest = []
    for line in lines[n + 1 :]:
        if line == b"":
            break
        rest.append(line)
    if _CTL.search(start.replace(b"\r", b" ")):
        _note(problems, "control_char_in_start_line")
    return start, rest


def _headers(lines: list[bytes], problems: list[str]) -> Headers:
    fields: list[Header] = []
    for n, line in enumerate(lines):
        if line[:1] in (b" ", b"\t"):
            if n == 0 or not fields:
                # RFC 9112 §2.2: "A recipient that receives whitespace between the start-line and
                # the first header field MUST either reject the message as invalid or consume each
                # whitespace-preceded line without further processing of it".
                _note(problems, "whitespace_after_start_line" if n == 0 else "obs_fold")
                continue
            # RFC 9112 §5.2: "A user agent that receives an obs-fold in a response message [...]
            # MUST replace each received obs-fold with one or more SP octets prior to
            # interpreting the field value."
            _note(problems, "obs_fold")
            prev = fields[-1]
            more = line.strip(b" \t").decode("latin-1")
            value = f"{prev.value} {more}" if prev.value and more else prev.value + more
            fields[-1] = Header(prev.name, value)
            _check_value(line, problems)
            continue
        colon = line.find(b":")
        if colon < 0:
            _note(problems, "header_without_colon")
            continue
        name = line[:colon]
        if name.rstrip(b" \t") != name:
            # RFC 9112 §5.1: "No whitespace is allowed between the field name and colon. [...] A
            # server MUST reject, with a response status code of 400 (Bad Request), any received
            # request message that contains whitespace between a header field name and colon."
            _note(problems, "whitespace_before_colon")
            name = name.rstrip(b" \t")
        if not name:
            _note(problems, "empty_header_name")
        elif not TOKEN.fullmatch(name):
            _note(problems, "invalid_header_name")
        raw_value = line[colon + 1 :]
        _check_value(raw_value, problems)
        # RFC 9112 §5.1: "field-line = field-name ":" OWS field-value OWS"
        fields.append(Header(name.decode("latin-1"), raw_value.strip(b" \t").decode("latin-1")))
    return Headers(tuple(fields))


def _check_value(value: bytes, problems: list[str]) -> None:
    # RFC 9110 §5.5: "Field values containing CR, LF, or NUL characters are invalid and dangerous
    # [...] a recipient of CR, LF, or NUL within a field value MUST either reject the message or
    # replace each of those characters with SP". Other CTLs are outside the grammar too.
    if _CTL.search(value) is None:  # the usual case; _CTL covers NUL and CR as well
        return
    if b"\x00" in value:
        _note(problems, "nul_in_value")
    if _CTL.search(value.replace(b"\x00", b"").replace(b"\r", b"")):
        _note(problems, "control_char_in_value")


def _plain_headers(lines: str) -> Headers:
    """The fields of a head that matched a _PLAIN_ pattern: what ``_headers`` makes of them."""
    fields = []
    index: dict[str, list[str]] = {}  # Headers' look-up index, built in the same pass
    for line in lines.split("\r\n")[:-1]:  # the text after the last CRLF is not a line
        name, _, value = line.partition(":")
        # RFC 9112 §5.1: "field-line = field-name ":" OWS field-value OWS"
        value = value.strip(" \t")
        fields.append(header(name, value))
        values = index.get(key := name.lower())
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
    return Headers.indexed(tuple(fields), index)


def _plain_request(text: str) -> tuple[str, str, str, Headers] | None:
    """Method, target, version and fields of a head that matches _PLAIN_REQUEST_HEAD at the
    start of ``text``, else None."""
    plain = _PLAIN_REQUEST_HEAD.match(text)
    if plain is None:
        return None
    method, target, version, fields = plain.groups()
    return method, target, version, _plain_headers(fields)


def _plain_response(text: str) -> tuple[str, str, str | None, Headers] | None:
    """Version, status code, reason phrase (None without the SP after the code) and fields of
    a head that matches _PLAIN_RESPONSE_HEAD at the start of ``text``, else None."""
    plain = _PLAIN_RESPONSE_HEAD.match(text)
    if plain is None:
        return None
    version, code, reason, fields = plain.groups()
    return version, code, reason, _plain_headers(fields)


def _plain_request_head(raw: bytes) -> RequestHead | None:
    """The RequestHead of a head in the plain shape (`_plain_request`), else None."""
    plain = _plain_request(raw.decode("latin-1"))
    if plain is None:
        return None
    method, target, version, headers = plain
    return RequestHead(method=method, target=target, version=version, headers=headers,
                       raw=bytes(raw))


def _plain_response_head(raw: bytes) -> ResponseHead | None:
    """The ResponseHead of a head in the plain shape (`_plain_response`), else None."""
    plain = _plain_response(raw.decode("latin-1"))
    if plain is None:
        return None
    version, code, reason, headers = plain
    return ResponseHead(
        version=version,
        status=int(code),
        reason=(reason or "").strip(" \t"),  # None: no SP after the code
        headers=headers,
        raw=bytes(raw),
    )


def _plain_request_head_at(data: bytes) -> tuple[RequestHead, int] | None:
    """``(head, end)`` of a plain request head at the start of ``data`` (which may go on past
    it), its bytes being ``data[:end]``, else None: the tracker's look at a segment that
    begins a head, before it cuts one out of its buffer."""
    end = find_head_end(data)
    head = _plain_request_head(data[:end]) if end is not None else None
    return None if head is None else (head, end)  # type: ignore[return-value]


def _plain_response_head_at(data: bytes) -> tuple[ResponseHead, int] | None:
    """``(head, end)`` of a plain response head at the start of ``data``, else None (as
    `_plain_request_head_at`)."""
    end = find_head_end(data)
    head = _plain_response_head(data[:end]) if end is not None else None
    return None if head is None else (head, end)  # type: ignore[return-value]


# Their compiled twins (analyzer/decode/_heads.pxi, built by setup.py with the fast path): one
# pass over the head where the pattern, its groups and the split of the field lines took
# three, and the head's values made without their frozen ``__init__``
# (tests/test_http_head_compiled.py compares them).
try:
    from analyzer.decode._fastpath import plain_request_head as _request_head
    from analyzer.decode._fastpath import plain_request_head_at as request_head_at
    from analyzer.decode._fastpath import plain_response_head as _response_head
    from analyzer.decode._fastpath import plain_response_head_at as response_head_at
except ImportError:  # pragma: no cover - exercised by the pure-Python install
    _request_head, _response_head = _plain_request_head, _plain_response_head
    request_head_at, response_head_at = _plain_request_head_at, _plain_response_head_at


def _is_http_version(word: bytes) -> bool:
    return word[:5].upper() == b"HTTP/"


def parse_request_head(raw: bytes) -> RequestHead | None:
    """Parse a request head tolerantly; None only if the start line is not an HTTP request line.

    ``raw`` is the head up to and including its empty line (bytes after it are ignored); a head
    without the empty line is parsed anyway and marked ``unterminated_head``.
    """
    # match, not fullmatch: bytes after the empty line are ignored, as by the walk (no line before
    # that empty line is empty, so it is also the one find_head_end finds).
    head = _request_head(raw)
    return _walk_request_head(raw) if head is None else head


def _walk_request_head(raw: bytes) -> RequestHead | None:
    """``parse_request_head`` line by line, noting every anomaly."""
    problems: list[str] = []
    found = _start_line(raw, problems)
    if found is None:
        return None
    start, lines = found
    m = _REQUEST_LINE.fullmatch(start)
    if m is None or not _is_http_version(m["version"]):
        # "GET / HTTP/1.1 junk": still the request line classify_start recognised.
        m = _REQUEST_LINE_WITH_JUNK.fullmatch(start)
        if m is None:
            return None
        _note(problems, "junk_after_version")
        start = start[: m.start("junk")]
    method, target, version = m["method"], m["target"] or b"", m["version"]
    if not target:
        _note(problems, "missing_target")
    elif _SP_OR_HTAB.search(target):
        _note(problems, "whitespace_in_target")
    if start != b" ".join(part for part in (method, target, version) if part):
        _note(problems, "start_line_extra_spaces")
    if not TOKEN.fullmatch(method):
        _note(problems, "invalid_method")
    if not _VERSION.fullmatch(version):
        _note(problems, "invalid_version")
    headers = _headers(lines, problems)
    return RequestHead(
        method=method.decode("latin-1"),
        target=target.decode("latin-1"),
        version=version.decode("latin-1"),
        headers=headers,
        raw=bytes(raw),
        problems=tuple(problems),
    )


def parse_response_head(raw: bytes) -> ResponseHead | None:
    """Parse a response head tolerantly; None only if the start line is not an HTTP status line.

    A missing reason phrase is fine (RFC 9112 §4: "A client SHOULD ignore the reason-phrase
    content"). A status that is not a number gives ``status`` 0 and ``non_numeric_status``.
    """
    head = _response_head(raw)  # a match: as in parse_request_head
    return _walk_response_head(raw) if head is None else head


def _walk_response_head(raw: bytes) -> ResponseHead | None:
    """``parse_response_head`` line by line, noting every anomaly."""
    problems: list[str] = []
    found = _start_line(raw, problems)
    if found is None:
        return None
    start, lines = found
    m = _STATUS_LINE.fullmatch(start)
    if m is None or not _is_http_version(m["version"]):
        return None
    version, code, reason = m["version"], m["code"], m["reason"]
    if not _VERSION.fullmatch(version):
        _note(problems, "invalid_version")
    # RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]. The reason
    # phrase may itself begin with SP, so only the separators around the code are judged.
    if m["lead"] or m["sep1"] not in (b" ", b""):
        _note(problems, "start_line_extra_spaces")
    if m["sep2"] == b"\t":
        _note(problems, "start_line_extra_spaces")
    status = 0
    if not code:
        _note(problems, "missing_status")
    elif not code.isdigit():
        _note(problems, "non_numeric_status")
    else:
        status = int(code)
        if len(code) != 3:
            _note(problems, "invalid_status")
        elif not 100 <= status <= 599:
            _note(problems, "status_out_of_range")
    headers = _headers(lines, problems)
    return ResponseHead(
        version=version.decode("latin-1"),
        status=status,
        reason=reason.strip(b" \t").decode("latin-1"),
        headers=headers,
        raw=bytes(raw),
        problems=tuple(problems),
    )
