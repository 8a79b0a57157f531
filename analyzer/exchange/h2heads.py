"""HTTP/2 header blocks read as HTTP/1 heads.

The status, subprotocol, extension and attribution rules read a ``RequestHead`` or a
``ResponseHead``; an HTTP/2 stream's HEADERS become one here, with the pseudo-header fields
kept as header fields (``:status``, ``:protocol``) so those rules need no HTTP/2 branch. The
``raw`` text is what the detail view draws: a first line naming the stream, then the fields.
"""

from __future__ import annotations

from analyzer.http.message import Header, Headers, RequestHead, ResponseHead
from analyzer.http2.events import HeaderBlock

_REQUEST_FIELDS_SHOWN = 64  # fields drawn in a head's raw text (all are kept in Headers)


def field_value(event: HeaderBlock, name: str) -> str | None:
    for field_name, value in event.fields:
        if field_name == name:
            return value
    return None


def _raw(first_line: str, event: HeaderBlock) -> bytes:
    lines = [first_line] + [f"{n}: {v}" for n, v in event.fields[:_REQUEST_FIELDS_SHOWN]]
    if not event.decoded:
        lines.append("(header block not decoded: the HPACK state was lost)")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _headers_of(event: HeaderBlock) -> Headers:
    return Headers(tuple(Header(n, v) for n, v in event.fields))


def request_head(event: HeaderBlock) -> RequestHead:
    method = field_value(event, ":method") or ""
    target = field_value(event, ":path") or field_value(event, ":authority") or ""
    raw = _raw(f"{method} {target} HTTP/2 (stream {event.stream_id})", event)
    return RequestHead(method, target, "HTTP/2", _headers_of(event), raw)


def response_head(event: HeaderBlock) -> ResponseHead:
    text = field_value(event, ":status") or ""
    status = int(text) if text.isdigit() and len(text) == 3 else 0
    raw = _raw(f"HTTP/2 {text or '(no :status)'} (stream {event.stream_id})", event)
    return ResponseHead("HTTP/2", status, "", _headers_of(event), raw)
