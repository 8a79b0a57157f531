"""What the checks need to know about an attempt beyond its raw heads: which protocol it was."""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.attribution.texts import KnownText, match_words
from analyzer.exchange.model import Attempt, Message
from analyzer.exchange.relevance import is_websocket_path
from analyzer.http.message import RequestHead, ResponseHead
from analyzer.slotted import slot_setters


@dataclass(frozen=True, slots=True)
class Facts:
    """What the checks, the verdict and the attribution read of an attempt, worked out once."""
    offered: tuple[str, ...]  # Upgrade tokens of the request, lowercased, as listed
    protocol: str  # "websocket", "h2c", "connect", another token, or "" when nothing says
    websocket: bool  # judged by RFC 6455 rules
    # The known server text a rejection carries (attribution/texts.py), found once here for
    # the checks, the verdict and the attribution; None for a 101 and for unknown words.
    said: KnownText | None = None
    # The attempt's heads (`Attempt.request_head`, `response_head`), read once here: each
    # read of those properties costs ≈ 1 k instructions, and the rules, the attribution and
    # the JSONL line read them ≈ 17 times an attempt. Pure copies: left out of equality.
    request_head: RequestHead | None = field(default=None, compare=False, repr=False)
    response_head: ResponseHead | None = field(default=None, compare=False, repr=False)


# One Facts per attempt: stored through the slots' own descriptors, not the frozen
# ``__init__`` (the same value; tests/test_verdict.py compares the two).
_new_object = object.__new__
_SETTERS = slot_setters(Facts, (
    "offered", "protocol", "websocket", "said", "request_head", "response_head"))


def made_facts(offered: tuple[str, ...], protocol: str, websocket: bool,
               said: KnownText | None, request_head: RequestHead | None,
               response_head: ResponseHead | None) -> Facts:
    """``Facts(offered, protocol, websocket, said, request_head, response_head)`` without
    the frozen ``__init__``."""
    made = _new_object(Facts)
    s_offered, s_protocol, s_websocket, s_said, s_request, s_response = _SETTERS
    s_offered(made, offered)
    s_protocol(made, protocol)
    s_websocket(made, websocket)
    s_said(made, said)
    s_request(made, request_head)
    s_response(made, response_head)
    return made


def facts_of(attempt: Attempt) -> Facts:
    request = attempt.request_head
    response = attempt.response_head
    offered: tuple[str, ...] = ()
    protocol = ""
    if attempt.transport == "h2" and request is not None:
        # RFC 8441 §4: extended CONNECT names the protocol in :protocol
        named = request.headers.get(":protocol")
        if named is not None:
            offered = (named.strip().lower(),)
            protocol = offered[0]
        elif request.method.upper() == "CONNECT":
            protocol = "connect"
        elif _h2c_not_spoken(attempt):
            protocol = "h2c"
    elif request is not None:
        offered = tuple(request.headers.tokens("upgrade"))
        if request.method.upper() == "CONNECT":
            protocol = "connect"
        elif offers_websocket(offered) or any(
            f.name.lower().startswith("sec-websocket-") for f in request.headers.fields
        ):
            protocol = "websocket"
        elif "h2c" in offered or request.headers.has("http2-settings"):
            protocol = "h2c"
        elif offered:
            protocol = offered[0]
    elif _h2c_not_spoken(attempt):  # (no request on the connection)
        protocol = "h2c"
    said = None
    if response is not None and response.status >= 300 and attempt.response is not None:
        said = match_words(response, attempt.response.body_prefix)
    if not protocol and (attempt.promoted is not None or said is not None and said.names or (
        request is not None and is_websocket_path(request.target.split("?", 1)[0])
    )):
        # a plain request to a path other requests upgrade, to a usual WebSocket path, or
        # answered in the words a WebSocket server uses for a failed handshake
        protocol = "websocket"
    if not protocol and response is not None:
        switched = response.headers.tokens("upgrade")
        if switched:
            first = switched[0]
            protocol = first.split("/")[0] if first.startswith("websocket") else first
        elif _mentions_websocket(attempt.response):
            protocol = "websocket"
    return made_facts(offered, protocol, protocol == "websocket", said, request, response)


def _h2c_not_spoken(attempt: Attempt) -> bool:
    """HTTP/2 in cleartext with prior knowledge (RFC 9113 §3.3) to a server that answered
    in another protocol: an h2c attempt that failed (a successful one is no attempt)."""
    return attempt.transport == "h2" and attempt.other_answer is not None and attempt.tls is None


def offers_websocket(offered: tuple[str, ...]) -> bool:
    """Whether an Upgrade offer names WebSocket, with or without a version ("websocket/13")."""
    # (the plain token first: it is nearly every offer, and the generator costs ≈ 2 k)
    return "websocket" in offered or any(t.split("/")[0] == "websocket" for t in offered)


def _mentions_websocket(message: Message | None) -> bool:
    if message is None:
        return False
    head = message.head
    text = (getattr(head, "reason", "") + " ").lower().encode("latin-1", "replace")
    text += message.body_prefix[:1024].lower()
    return b"websocket" in text or any(
        f.name.lower().startswith("sec-websocket-") for f in head.headers.fields
    )


def frames_of(message: Message | None) -> tuple[int, ...]:
    """The frame numbers that carried a message's head."""
    if message is None:
        return ()
    if message.first_frame == message.last_frame:
        return (message.first_frame,)
    return (message.first_frame, message.last_frame)
