"""Rules about the response: its status in context, and what a 101 must carry (RFC 6455 §4.1)."""

from __future__ import annotations

from analyzer.attribution.servers import origin_server, squid_error
from analyzer.checks.catalogue import Finding
from analyzer.checks.facts import Facts, frames_of
from analyzer.exchange.model import Attempt
from analyzer.http.message import RequestHead, ResponseHead
from analyzer.websocket.handshake import accept_for_key


def check_response(attempt: Attempt, facts: Facts) -> list[Finding]:
    head = facts.response_head
    other = attempt.other_answer
    if head is None and other is not None:
        return [Finding("response_not_http", "an HTTP/1.1 status line", other.what,
                        frames_of(attempt.request) + (other.frame,))]
    if head is None:
        return []
    ev = frames_of(attempt.response)
    request = facts.request_head
    if request is not None and request.method.upper() == "CONNECT":
        if 200 <= head.status < 300:
            return []
        if facts.protocol == "connect" and head.status >= 400:  # (not an RFC 8441 one)
            return [_tunnel_refused(attempt, head, request, ev)]
        return [status_finding(head, facts, ev)]
    if head.status == 101:
        if attempt.response is not None and not attempt.response.head_complete:
            return []  # a head a hole cut lacks fields it had (capture_gap_response says so)
        return _switch(attempt, head, facts, ev)
    findings = [status_finding(head, facts, ev)]
    if request is not None and facts.websocket and _uvicorn_served_as_http(request, head):
        findings.append(Finding("uvicorn_websocket_unsupported",
                                "a WebSocket library in uvicorn (websockets or wsproto)",
                                f"{head.status} {head.reason} with uvicorn's own Server "
                                f"header: its HTTP protocol answered the upgrade", ev))
    if request is not None and _engineio_upgrade(request.target):
        findings.append(Finding("engineio_stays_on_polling", "101 (the WebSocket transport)",
                                f"{head.status}: the session goes on over long polling", ev))
    if head.status == 426 and not head.headers.has("upgrade"):
        findings.append(Finding("upgrade_required_without_upgrade", "an Upgrade header",
                                "426 without Upgrade", ev))
    return findings


def _tunnel_refused(attempt: Attempt, head: ResponseHead, request: RequestHead,
                    ev: tuple[int, ...]) -> Finding:
    """A forward proxy's refusal of a CONNECT (a status of 400 or more): its policy (4xx),
    its credentials (407), or a target it could not reach (5xx), with the proxy's own word
    for it when it gives one (Squid's X-Squid-Error)."""
    status = head.status
    found = f"{status} {head.reason}".strip()
    body = attempt.response.body_prefix if attempt.response is not None else b""
    said = squid_error(head, body)
    if status == 407:
        return _proxy_auth(head, found, "2xx (the tunnel)", ev)
    if said is not None:
        found += f" (Squid: {said[0]}{', ' + said[1] if said[1] else ''})"
    if status < 500:
        _, _, port = request.target.rpartition(":")
        if status == 403 and port.isdigit() and port != "443":
            # (the first rule of Squid's default configuration, Debian's too)
            found += (f"; the target's port {port} is not 443, the one port a proxy's "
                      f"default rules (Squid's SSL_ports) let a CONNECT reach")
        return Finding("proxy_tunnel_denied", "2xx (the tunnel)", found, ev)
    return Finding("proxy_tunnel_failed", f"2xx (the tunnel to {request.target})", found, ev)


def _proxy_auth(head: ResponseHead, found: str, expected: str,
                ev: tuple[int, ...]) -> Finding:
    """`proxy_auth_required`, with the challenge the proxy sent."""
    challenge = head.headers.get("proxy-authenticate")
    return Finding("proxy_auth_required", expected,
                   f"{found} (Proxy-Authenticate: {challenge.strip()})" if challenge
                   else f"{found} without Proxy-Authenticate", ev)


def _uvicorn_served_as_http(request: RequestHead, head: ResponseHead) -> bool:
    """uvicorn answered a WebSocket upgrade it would have switched (Upgrade: websocket,
    Connection: upgrade) from its HTTP protocol: only that one writes "server: uvicorn" on
    an answer other than a 101 (its WebSocket protocols' refusals carry no Server header:
    sweep30b s1, s12). It does so when no WebSocket library is installed (or with --ws
    none): "Unsupported upgrade request." and the application's HTTP answer (404 for a
    WebSocket-only route)."""
    return head.headers.get("server") == "uvicorn" and "websocket" in (
        request.headers.tokens("upgrade")) and "upgrade" in request.headers.tokens("connection")


def _engineio_upgrade(target: str) -> bool:
    """An Engine.IO request upgrading a session it opened with long polling (sid in the query)."""
    _, _, query = target.partition("?")
    if "EIO" not in query:
        return False  # (most targets: no parameter to split)
    params = {part.split("=", 1)[0] for part in query.split("&")}
    return "EIO" in params and "sid" in params and "transport=websocket" in query


# The statuses whose finding says no more than the status line (and, for a 426, what it wants).
_SIMPLE_STATUS = {
    400: "response_bad_request",
    403: "response_forbidden",
    404: "response_not_found",
    405: "response_method_not_allowed",
    414: "request_target_too_long",
    426: "response_upgrade_required",
    431: "request_headers_too_large",
    502: "response_gateway_error",
    503: "response_gateway_error",
    504: "response_gateway_error",
}


def status_finding(head: ResponseHead, facts: Facts, ev: tuple[int, ...]) -> Finding:
    status = head.status
    found = f"{status} {head.reason}".strip()
    headers = head.headers
    if 300 <= status < 400:
        location = headers.get("location")
        where = f" to {location}" if location else ""
        return Finding("response_redirect", "101", f"{found}{where}", ev)
    if status == 407:  # (only a proxy sends one: RFC 9110 §15.5.8)
        return _proxy_auth(head, found, "101", ev)
    if status == 401:
        challenge = headers.get("www-authenticate")
        detail = f" ({challenge})" if challenge else ""
        return Finding("response_unauthorized", "101", f"{found}{detail}", ev)
    if status in (429, 503):
        retry = headers.get("retry-after")
        extra = f" (Retry-After: {retry.strip()})" if retry else ""
        if status == 429:
            return Finding("response_rate_limited", "101", f"{found}{extra}", ev)
        origin = origin_server(head, facts.said)
        if origin is not None:
            return Finding("response_service_unavailable", "101",
                           f"{found} from {origin}{extra}", ev)
    simple = _SIMPLE_STATUS.get(status)
    if simple is not None:
        extra = ""
        if status == 426:
            wanted = ", ".join(headers.all("upgrade") + headers.all("sec-websocket-version"))
            extra = f" (wants {wanted})" if wanted else ""
        return Finding(simple, "101", f"{found}{extra}", ev)
    if 400 <= status < 500:
        return Finding("response_client_error", "101", found, ev)
    if status >= 500:
        return Finding("response_server_error", "101", found, ev)
    if facts.websocket or not facts.offered:
        return Finding("response_ordinary", "101", found, ev)
    return Finding("upgrade_declined", "101 or an ordinary answer", found, ev)


def _switch(
    attempt: Attempt, head: ResponseHead, facts: Facts, ev: tuple[int, ...]
) -> list[Finding]:
    findings: list[Finding] = []
    headers = head.headers
    switched = headers.tokens("upgrade")
    request = facts.request_head
    if request is not None and not facts.offered:
        findings.append(Finding("switch_not_offered", "an Upgrade offer in the request",
                                "the request offered none", frames_of(attempt.request) + ev))
    if not switched:
        findings.append(Finding("switch_without_upgrade", "Upgrade header",
                                "101 without Upgrade", ev))
    elif facts.offered and not all(_offered(t, facts.offered) for t in switched):
        findings.append(Finding("switch_to_unoffered", " or ".join(facts.offered),
                                ", ".join(headers.all("upgrade")), ev))
    # RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in any response
    # with a status code of 1xx (Informational)"; §6.4.1: 1xx responses have no content. A
    # client that believed the length would eat the new protocol's first bytes as a body.
    framing = [f"{f.name}: {f.value}" for f in headers.fields
               if f.name.lower() in _FRAMING_FIELDS
               ] if not _FRAMING_FIELDS.isdisjoint(headers.names()) else []
    if head.status == 101 and framing:
        findings.append(Finding("switch_with_body", "no Content-Length or Transfer-Encoding",
                                "; ".join(framing[:2]), ev))
    if facts.websocket:
        findings.extend(_websocket_switch(attempt, head, facts.request_head, ev))
    return findings


_FRAMING_FIELDS = frozenset(("content-length", "transfer-encoding"))


def _offered(token: str, offered: tuple[str, ...]) -> bool:
    # A protocol version in the offer ("websocket/13") still matches the plain name.
    return token in offered or token.split("/")[0] in {o.split("/")[0] for o in offered}


def _websocket_switch(attempt: Attempt, head: ResponseHead, request: RequestHead | None,
                      ev: tuple[int, ...]) -> list[Finding]:
    headers = head.headers
    findings: list[Finding] = []
    if "upgrade" not in headers.tokens("connection"):
        findings.append(Finding("switch_connection_without_upgrade", "Connection: Upgrade",
                                ", ".join(headers.all("connection")) or "no Connection header",
                                ev))
    accepts = headers.all("sec-websocket-accept")
    keys = request.headers.all("sec-websocket-key") if request is not None else []
    if not accepts:
        findings.append(Finding("ws_accept_missing", "Sec-WebSocket-Accept",
                                "101 without Accept", ev))
    elif len(accepts) > 1:
        findings.append(Finding("ws_accept_repeated", "one Sec-WebSocket-Accept",
                                f"{len(accepts)} headers", ev))
    elif len(keys) == 1:
        expected = accept_for_key(keys[0])
        if accepts[0].strip() != expected:
            findings.append(Finding("ws_accept_mismatch", expected, accepts[0],
                                    frames_of(attempt.request) + ev))
    if request is not None:
        findings.extend(subprotocol_findings(request, head, ev))
        findings.extend(extension_findings(request, head, ev))
    return findings


def subprotocol_findings(request: RequestHead, head: ResponseHead,
                         ev: tuple[int, ...]) -> list[Finding]:
    """Sec-WebSocket-Protocol negotiation (RFC 6455 §4.1; the same over HTTP/2, RFC 8441 §5)."""
    return _negotiation(request.headers.tokens("sec-websocket-protocol"),
                        head.headers.all("sec-websocket-protocol"), head, ev)


def extension_findings(request: RequestHead, head: ResponseHead,
                       ev: tuple[int, ...]) -> list[Finding]:
    """Sec-WebSocket-Extensions negotiation (RFC 6455 §9.1, RFC 7692 §7.1)."""
    answered = head.headers.tokens("sec-websocket-extensions")
    if not answered:
        return []  # (most answers: nothing chosen, so nothing to compare with the offer)
    findings: list[Finding] = []
    offered = request.headers.tokens("sec-websocket-extensions")
    offered_ext = {_ext_name(e) for e in offered}
    for ext in answered:
        if _ext_name(ext) not in offered_ext:
            findings.append(Finding("ws_extension_not_offered",
                                    ", ".join(sorted(offered_ext)) or "no extension", ext, ev))
        elif _ext_name(ext) == "permessage-deflate":
            problem = _deflate_problem(ext, offered)
            if problem:
                findings.append(Finding("ws_deflate_params_invalid", "valid RFC 7692 "
                                        "parameters", f"{ext} ({problem})", ev))
    return findings


def _negotiation(offered: list[str], chosen_fields: list[str], head: ResponseHead,
                 ev: tuple[int, ...]) -> list[Finding]:
    if not offered and not chosen_fields:
        return []  # (most handshakes: no subprotocol on either side)
    chosen = [t.strip() for v in chosen_fields for t in v.split(",") if t.strip()]
    if len(chosen) > 1:
        return [Finding("ws_protocol_repeated", "at most one subprotocol",
                        ", ".join(chosen), ev)]
    if chosen and chosen[0].lower() not in offered:
        return [Finding("ws_protocol_not_offered", ", ".join(offered) or "no subprotocol",
                        chosen[0], ev)]
    if offered and not chosen:
        return [Finding("ws_protocol_not_chosen", "one of " + ", ".join(offered),
                        "none", ev)]
    return []


_DEFLATE_PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
                   "server_max_window_bits", "client_max_window_bits")


def _deflate_problem(answer: str, offers: list[str]) -> str | None:
    """What is wrong with a server's permessage-deflate answer (RFC 7692 §7.1), if anything."""
    seen: set[str] = set()
    for part in answer.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        name, value = name.strip(), value.strip().strip('"')
        if name not in _DEFLATE_PARAMS:
            return f"unknown parameter {name}"
        if name in seen:
            return f"{name} repeated"
        seen.add(name)
        if name.endswith("max_window_bits") and not (value.isdigit() and 8 <= int(value) <= 15):
            return f"{name}={value or '(none)'} is not 8-15"
        if name == "client_max_window_bits" and not any(
            "client_max_window_bits" in offer for offer in offers
            if _ext_name(offer) == "permessage-deflate"
        ):
            return "client_max_window_bits not offered by the client"
    return None


def _ext_name(extension: str) -> str:
    return extension.split(";")[0].strip().lower()
