"""Decides which HTTP exchanges are upgrade attempts (listed) and which are ordinary (counted)."""

from __future__ import annotations

from analyzer.http.message import RequestHead, ResponseHead

# Request fields that only make sense as part of an upgrade offer: a request carrying one of them
# without `Upgrade` is an attempt whose offer was damaged on the way (a proxy stripped it).
OFFER_FIELDS = (
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "http2-settings",
)

# Words servers put in the status line or body of a rejected WebSocket handshake
# (see docs/architecture.md, "relevance"): enough to list a plain GET that a WebSocket
# endpoint refused, which is the most common failure of all.
_REJECTION_HINTS = (
    b"websocket",
    b"upgrade",
    b"sec-websocket",
)


def request_offers_upgrade(head: RequestHead) -> bool:
    """True when the request offers (or tried to offer) a protocol switch or opens a tunnel."""
    headers = head.headers
    if head.method.upper() == "CONNECT":
        return True
    for name in OFFER_FIELDS:  # a plain loop: any() over a generator costs more than the look-ups
        if headers.has(name):
            return True
    return "upgrade" in headers.tokens("connection")


def response_talks_about_upgrade(head: ResponseHead, body_prefix: bytes = b"") -> bool:
    """True when the response switches, demands a switch, or rejects a handshake by its words."""
    if head.status in (101, 426):
        return True
    headers = head.headers
    if head.status >= 400 and (
        headers.has("sec-websocket-version") or headers.has("sec-websocket-accept")
    ):
        return True
    if head.status >= 400:
        text = (head.reason.encode("latin-1", "replace") + b" " + body_prefix[:1024]).lower()
        return any(hint in text for hint in _REJECTION_HINTS)
    return False


def is_upgrade_attempt(
    request_offers: bool, response: ResponseHead | None, body_prefix: bytes = b""
) -> bool:
    """An exchange is an upgrade attempt when its request offers an upgrade
    (`request_offers_upgrade`, which the tracker decides once, when the request is parsed) or
    its response talks about one; any other is ordinary HTTP, only counted."""
    return request_offers or (
        response is not None and response_talks_about_upgrade(response, body_prefix)
    )
