"""Which client sent the handshake, and what clients print for each kind of failure: the lines
of the one table of client texts (client_texts.py), with the values each attempt fills in
(the URL, the status, what a client makes of an extension or a redirect).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

from analyzer.attribution.client_texts import (
    ACCEPTS,
    CLIENT_LINES,
    UNDICI_NO_OFFER,
    aiohttp_handshake,
)
from analyzer.http.message import Headers
from analyzer.remembered import Remembered

# User-Agent → client name, first match wins (Edge and Opera also say "Chrome").
_AGENTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), name)
    for pattern, name in (
        (r"PostmanRuntime/", "Postman"),
        (r"insomnia/", "Insomnia"),
        (r"\bcurl/", "curl"),
        (r"\bwget/", "Wget"),
        (r"Edg/", "Edge"),
        (r"OPR/", "Opera"),
        (r"Firefox/", "Firefox"),
        (r"Chrome/", "Chrome"),
        (r"Safari/", "Safari"),
        (r"\bwebsockets/", "python websockets"),
        (r"\baiohttp/", "aiohttp"),
        (r"^Tornado/", "tornado"),  # (tornado.simple_httpclient's default: "Tornado/6.6.1")
        (r"python-requests/", "python requests"),
        (r"Go-http-client/", "Go net/http (gorilla, coder/websocket)"),
        (r"okhttp/", "OkHttp"),
        (r"Java-http-client/", "Java HttpClient"),
        # (Node 20's WebSocket, undici's, says just "node"; Node ws sends no User-Agent)
        (r"^node$", "Node WebSocket (undici)"),
        (r"node-fetch|undici|axios/", "Node.js"),
        (r"k6/", "k6"),
        (r"kube-probe/|ELB-HealthChecker|GoogleHC/", "a health check"),
    )
)
def negotiation_values(protocols_offered: bool, extensions_offered: bool,
                       extensions_answered: list[str],
                       extension_fields: tuple[str, ...] = ()) -> dict[str, str]:
    """The lines of Node ws, gorilla, Java and undici for a 101 that chose what the client did
    not offer (or deflate parameters it cannot take), from ``extensions_answered`` (the
    answer's extensions) and ``extension_fields`` (its Sec-WebSocket-Extensions fields as
    sent): Node ws words a subprotocol or extension by whether the client offered any
    (websocket.js), gorilla refuses a permessage-deflate answer without both
    no_context_takeover parameters (the only mode it has) and takes any other extension or
    subprotocol without a word (client.go). Java lists the fields. undici, which offers
    permessage-deflate, takes any answer with a ";"-separated part named so (it cuts the
    fields, joined, at ";" only), and reads a chosen subprotocol against an offer it may not
    have made: without one, its check throws."""
    deflate = [extension for extension in extensions_answered
               if extension.split(";")[0].strip() == "permessage-deflate"]
    parts = ", ".join(extension_fields).split(";")
    undici_takes = any(part.split("=")[0].lstrip(" \t\r\n") == "permessage-deflate"
                       for part in parts)
    return {
        "node_ws_protocol": ("Server sent an invalid subprotocol" if protocols_offered else
                             "Server sent a subprotocol but none was requested"),
        "node_ws_extension": ("Server indicated an extension that was not requested"
                              if extensions_offered else "Server sent a "
                              "Sec-WebSocket-Extensions header but no extension was requested"),
        "gorilla_extension": ("websocket: invalid compression negotiation" if any(
            not {"server_no_context_takeover", "client_no_context_takeover"} <= {
                part.split("=")[0].strip() for part in extension.split(";")[1:]}
            for extension in deflate) else ACCEPTS),
        "java_extensions": f"[{', '.join(extension_fields)}]",
        "undici_extension": ACCEPTS if undici_takes else "Sec-WebSocket-Extensions header "
                                                          "does not match.",
        "undici_protocol": ("Protocol was not set in the opening handshake." if protocols_offered
                            else UNDICI_NO_OFFER),
    }


def rsv_values(bits: int) -> dict[str, str]:
    """Node ws's, gorilla's, Chromium's, Java's and undici's lines for a server frame with RSV
    bits ``bits`` (RSV1 = 4) set: Node ws checks RSV2 and RSV3 first (receiver.js), gorilla
    lists each bit set (conn.go), Chromium names all three ("reserved1 = 1, reserved2 = 0,
    ..."), Java names the first set (MessageDecoder), undici RSV1 alone, else all three."""
    node_ws = "RSV2 and RSV3 must be clear" if bits & 3 else "RSV1 must be clear"
    gorilla = ", ".join(f"RSV{n} set" for n, bit in ((1, 4), (2, 2), (3, 1)) if bits & bit)
    chrome = ", ".join(f"reserved{n} = {int(bool(bits & bit))}"
                       for n, bit in ((1, 4), (2, 2), (3, 1)))
    return {"node_ws_rsv": f"Invalid WebSocket frame: {node_ws}",
            "gorilla_rsv": f"websocket: {gorilla}", "chrome_rsv": chrome,
            "java_rsv": "1" if bits & 4 else "2" if bits & 2 else "3",
            "undici_rsv": ("Expected RSV1 to be clear." if bits & 4 else
                           "RSV1, RSV2, RSV3 must be clear")}


def java_close_code(code: str) -> str:
    """A Close code as the JDK's "Illegal status code" message has it: the code read as a
    Java char, and put in the text as that character (1005: "\u03ed")."""
    return chr(int(code)) if code.isdigit() and int(code) < 0x10000 else code


# Java's HttpClient, when built to follow redirects, sends the followed GET without Upgrade
# and Connection (JDK 17: only the first request carries them): a handshake of its without
# Upgrade is most likely such a GET, not one a proxy stripped
JAVA_WITHOUT_UPGRADE = (" (its GET had no Upgrade, as the one Java's client sends when it follows "
                        "a redirect: without Upgrade and Connection)")


def websockets_redirect(url: str, location: str) -> str:
    """What python websockets does with a redirect of ``url`` (ws:// or wss://, the request's)
    to ``location``: follow it (nothing printed), or the error it raises instead."""
    target = urljoin(url, location)
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("ws", "wss"):
        return f"InvalidURI: {target} isn't a valid URI: scheme isn't ws or wss"
    if url.startswith("wss:") and scheme == "ws":
        return f"SecurityError: cannot follow redirect to non-secure URI {target}"
    return f"(no error: follows the redirect to {target}, up to 10 in a row)"


_AIOHTTP_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def aiohttp_redirect(url: str, status: int, location: str) -> str:
    """What aiohttp's ws_connect does with a redirect of ``url`` (the request's) to
    ``location``: follow it, or the error it raises (aiohttp's ClientSession._request)."""
    if status not in _AIOHTTP_REDIRECTS:
        return aiohttp_handshake("Invalid response status", str(status)).replace(
            "{url}", url)
    scheme = urlsplit(location.strip()).scheme.lower()
    if scheme not in ("http", "https", ""):
        return f"NonHttpUrlRedirectClientError: {location.strip()}"
    return (f"(no error of its own: follows the redirect to {urljoin(url, location.strip())}, "
            "up to 10 in a row)")

# Finding id → the h2c failure kind (`attribute` asks it for an attempt whose protocol is h2c)
H2C_KIND_OF_FINDING = {"response_not_http": "h2c_not_http",
                       "h2_answer_not_http2": "h2_answer_not_http2"}

# Failure kinds a client reports about what the server sent: a finding of that kind on the
# client's own side (the client sent the bad text) is not what the client printed.
SERVER_SENT_KINDS = frozenset({"text_not_utf8", "server_frame_masked", "rsv"})

# Failure kind → the clients CLIENT_LINES quotes for it.
_CLIENTS = {kind: frozenset(name for name, _ in lines) for kind, lines in CLIENT_LINES.items()}

def clients_of(kind: str) -> frozenset[str]:
    """The clients whose lines a failure kind quotes."""
    return _CLIENTS.get(kind, frozenset())


# Finding id → failure kind in CLIENT_LINES.
KIND_OF_FINDING = {
    "switch_without_upgrade": "upgrade",
    "switch_to_unoffered": "upgrade_unoffered",
    "switch_connection_without_upgrade": "connection",
    "ws_accept_mismatch": "accept",
    "ws_accept_missing": "accept_missing",
    "ws_protocol_not_chosen": "protocol_not_chosen",
    "ws_protocol_not_offered": "protocol_not_offered",
    "ws_extension_not_offered": "extension",
    "ws_deflate_params_invalid": "deflate_params",
    "ws_closed_with_error": "closed",
    "ws_text_not_utf8": "text_not_utf8",
    "ws_server_frame_masked": "server_frame_masked",
    "ws_rsv_without_extension": "rsv",
    # the life rules (checks/life.py): how a connection followed past its watch window ended
    "close_message_too_big": "closed_in_life",
    "close_internal_error": "closed_in_life",
    "close_service_restart": "closed_in_life",
    "close_try_again_later": "closed_in_life",
    "close_bad_gateway": "closed_in_life",
    "close_application_error": "closed_in_life",
    "close_error_in_life": "closed_in_life",
    "ended_without_close_after_switch": "abnormal_close",
    "server_hung_up_after_switch": "abnormal_close",  # the client took the 101, then EOF
    "idle_timeout_after_switch": "abnormal_close",
    "closed_without_close_frame": "abnormal_close",
    "h2_shutdown_in_life": "abnormal_close",
    "server_reset_many": "abnormal_close",
    "tcp_refused": "refused",
    "response_not_http": "not_http",
    "no_response_server_closed": "no_response_closed",
    "no_response_server_reset": "no_response_reset",
    "no_response_client_gave_up": "no_response_gave_up",
    "h2_stream_refused": "h2_refused",
    "h2_stream_reset": "h2_reset",
    "client_hung_up_after_switch": "gave_up_after_switch",
    "tls_certificate_rejected": "tls_untrusted",
    "tls_certificate_name_mismatch": "tls_name",
    "tls_certificate_expired": "tls_expired",
    "tls_client_hello_to_cleartext_port": "tls_not_tls",
    "tls_no_server_hello": "tls_eof",
    "tls_client_gave_up": "tls_gave_up",
    "tls_client_closed_after_handshake": "tls_closed_after_handshake",
    "tls_server_closed_during_handshake": "tls_eof",
    "tls_plain_http_to_tls_port": "tls_plain_to_tls",
    "tls_client_certificate_required": "tls_client_certificate",
    "tls_unrecognized_name": "tls_unrecognized_name",
    "tls_protocol_version": "tls_version",
    "tls_handshake_failure": "tls_handshake_failure",
    "tls_no_application_protocol": "tls_alpn",
}


# The client of a proxy's back leg (correlate.py pairs the legs): the proxy, named in the
# `proxy_back_leg` finding's text, which these two functions write and read.
_FORWARDED = " forwarded the handshake of "
_TRIED = " tried to forward the handshake of "  # (a connection refused: nothing went through)


def back_leg_found(proxy: str, client: str, refused: bool = False) -> str:
    """The `proxy_back_leg` finding's text: the proxy at ``proxy`` (its address on the front
    leg) forwarded ``client``'s handshake (``refused``: its connection to the backend was
    refused). The proxy's software is not named: the front leg's answer names the server
    behind it as often as the proxy (nginx and HAProxy pass the backend's answers on)."""
    if refused:
        return f"the proxy at {proxy}{_TRIED}{client}: its connection was refused"
    return f"the proxy at {proxy}{_FORWARDED}{client}"


def proxy_of_back_leg(found: str) -> str:
    """Who the client of a back leg is, from its `proxy_back_leg` text: "proxy at
    ADDRESS"."""
    return found.split(_FORWARDED, 1)[0].split(_TRIED, 1)[0].removeprefix("the ")


# Node ws (8.x, the library under socket.io-client and most Node WebSocket code) sends no
# User-Agent; it writes these fields first, in this order, and Node's HTTP client adds Host
# last (read from the real client: tests/test_gorilla_nodews_live.py, captures/node_ws_*.pcap)
_NODE_WS_FIRST = ("sec-websocket-version", "sec-websocket-key", "connection", "upgrade")


def client_without_agent(headers: Headers) -> str | None:
    """The client of a request without a User-Agent, when the order of its fields tells it:
    Node ws. (Other clients without one, hand-written requests among them, stay unnamed.)"""
    fields = headers.fields
    if len(fields) < 5 or fields[-1].name.lower() != "host":
        return None
    first = tuple(field.name.lower() for field in fields[:4])
    return "Node ws" if first == _NODE_WS_FIRST else None


@lru_cache(maxsize=1024)  # a capture repeats a few User-Agents; each miss runs ~all _AGENTS
def client_name(user_agent: str | None) -> str | None:
    if not user_agent:
        return None
    for pattern, name in _AGENTS:
        if pattern.search(user_agent):
            return name
    words = user_agent.split()  # (a value of separators only, "\x1d" too, has no word)
    return words[0][:40] if words else None


# (kind, client) -> the lines "NAME: TEXT" as `client_errors` orders them: a failure's
# attempt formats ≈ 7 of them, and sorting and joining each time cost more than the
# formatting. A client name is a User-Agent's first word at worst: bounded.
_TEMPLATES: Remembered[tuple[str, str | None], tuple[str, ...]] = Remembered(1024)
# (the names hold no brace: "NAME: TEXT".format_map is "NAME: " + TEXT.format_map)
assert not any("{" in name or "}" in name for lines in CLIENT_LINES.values() for name, _ in lines)


# (kind, client, values) -> the lines `client_errors` gives: a run's failures repeat their
# status, URL and server (the dense benchmark mix: 102 distinct sets of lines for 714
# failures), and formatting ≈ 7 lines each time cost ≈ 5 µs a failure. The values are the
# attribution's texts and numbers (str, int): no two of them are equal with a different
# text, so their items are a key. Bounded, in number and length (a long URL is not kept).
_LINES: Remembered[tuple[object, ...], tuple[str, ...]] = Remembered(1024)


# The http crate's canonical reason phrases where they differ from Python's (RFC 9110's names)
_HTTP_CRATE_REASONS = {413: "Payload Too Large", 414: "URI Too Long",
                       416: "Range Not Satisfiable", 422: "Unprocessable Entity"}


def python_reason(status: int) -> str:
    """The reason phrase Python's http module has for a status ("Unknown" without one):
    tornado's client puts it in its HTTPClientError when the status line had none."""
    from http import HTTPStatus  # (only for a failed status, and cheap)

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def canonical_reason(status: int) -> str:
    """The reason phrase tungstenite prints for a status: the http crate's StatusCode shows
    its canonical reason, whatever the wire's reason phrase said (an empty one included)."""
    reason = _HTTP_CRATE_REASONS.get(status)
    if reason is None:
        from http import HTTPStatus  # (only for a failed status, and cheap)

        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "<unknown status code>"
    return reason


def client_errors(kind: str, client: str | None, **values: object) -> tuple[str, ...]:
    """What clients print for a failure kind; the named client's line first when it is known
    (`client_errors_plain` is the twin, tests/test_attribution.py)."""
    key = (kind, client, *values.items())
    lines = _LINES.get(key)
    if lines is None:
        lines = _formatted(kind, client, values)
        _LINES.keep(key, lines, sum(map(len, lines)))
    return lines


def _formatted(kind: str, client: str | None, values: dict[str, object]) -> tuple[str, ...]:
    """`client_errors`' lines, formatted from the templates remembered per kind and client."""
    key = (kind, client)
    templates = _TEMPLATES.get(key)
    if templates is None:
        lines = CLIENT_LINES.get(kind, ())
        if client in _CLIENTS.get(kind, ()):
            lines = tuple(sorted(lines, key=lambda line: line[0] != client))
        templates = _TEMPLATES.keep(key, tuple(map(_named, lines)))
    out = []
    for template in templates:
        try:
            out.append(template.format_map(values))  # `values` as is, not copied
        except (KeyError, IndexError):
            out.append(template)
    return tuple(out)


def client_errors_plain(kind: str, client: str | None, **values: object) -> tuple[str, ...]:
    """`client_errors` with the lines sorted and formatted each time (its plain twin)."""
    lines = CLIENT_LINES.get(kind, ())
    if client in _CLIENTS.get(kind, ()):
        lines = tuple(sorted(lines, key=lambda line: line[0] != client))
    out = []
    for name, text in lines:
        try:
            out.append(_named((name, text.format_map(values))))  # `values` as is, not copied
        except (KeyError, IndexError):
            out.append(_named((name, text)))
    return tuple(out)


def _named(line: tuple[str, str]) -> str:
    """"NAME: TEXT", or TEXT alone when it starts with the name already (curl prints
    "curl: (28) ...")."""
    name, text = line
    return text if text.startswith(f"{name}: ") else f"{name}: {text}"
