"""Attribution: who answered a handshake, and what each side most likely logged or printed."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from analyzer.attribution.client_texts import H2_WEBSOCKET_CLIENTS, NAMED_ONLY, REDIRECT_STATUSES
from analyzer.attribution.clients import (
    H2C_KIND_OF_FINDING,
    JAVA_WITHOUT_UPGRADE,
    KIND_OF_FINDING,
    SERVER_SENT_KINDS,
    aiohttp_redirect,
    canonical_reason,
    client_errors,
    client_name,
    client_without_agent,
    clients_of,
    java_close_code,
    negotiation_values,
    proxy_of_back_leg,
    python_reason,
    rsv_values,
    websockets_redirect,
)
from analyzer.attribution.closing import closing_values, life_closing_values
from analyzer.attribution.model import Attribution, attribution
from analyzer.attribution.servers import (
    GORILLA,
    ServerMatch,
    apache_log,
    caddy_dial_refused,
    gorilla_log,
    haproxy_log,
    haproxy_state,
    match_known,
    match_silent_close,
    nginx_upstream_refused,
    passed_on_author,
    refused_backend,
    refused_retries,
    squid_log,
    timed_out_backend,
)
from analyzer.attribution.texts import (
    APACHE_TEMPLATES,
    NGINX_H2_PROTOCOL_PSEUDO_HEADER,
    SQUID,
    TORNADO,
    match_words,
)
from analyzer.checks.catalogue import REQUEST_FAULTS, Finding
from analyzer.checks.finding import found_alone
from analyzer.exchange.model import Attempt
from analyzer.http.message import ResponseHead
from analyzer.websocket.frames import NEVER_ON_WIRE

if TYPE_CHECKING:  # analyzer.checks.facts reads this package's table of server texts
    from analyzer.checks.facts import Facts
    from analyzer.life.model import Lifetime

_SILENT = ("no_response_server_closed", "no_response_server_reset")
_HOW_THE_WAIT_ENDED = frozenset((*_SILENT, "no_response_client_gave_up", "h2_stream_refused"))
_H2C_KINDS = frozenset(H2C_KIND_OF_FINDING.values())
# kinds whose lines say how long the client waited
_WAITS = ("no_response_gave_up", "gave_up_after_switch", "tls_gave_up")
# kinds whose lines depend on what the client offered and the server chose
_NEGOTIATION = ("protocol_not_offered", "extension", "deflate_params")


def attribute(
    attempt: Attempt, facts: Facts, verdict: str, findings: tuple[Finding, ...],
    lifetime: Lifetime | None = None,
) -> Attribution:
    """Who answered and what each side most likely printed; ``lifetime``: how the
    connection ended after its watch window, when it was followed (analyzer/life)."""
    request = facts.request_head
    response = facts.response_head
    client = None
    if request is not None:
        agent = request.headers.get("user-agent")
        client = client_name(agent) if agent else client_without_agent(request.headers)
    match: ServerMatch | None = None
    if response is not None:
        body = attempt.response.body_prefix if attempt.response is not None else b""
        # the facts hold the rejection's known words (facts_of: a status of 300 or more)
        said = facts.said if response.status >= 300 else match_words(response, body)
        match = match_known(response, body, said)
    elif any(f.check in _SILENT for f in findings):
        fault = next((f.check for f in findings if f.check in REQUEST_FAULTS), None)
        match = match_silent_close(attempt, fault)
    passed = next((f for f in findings if f.check == "proxy_passed_on"), None)
    if passed is not None and (match is None or match.evidence.startswith("Server: ")):
        # the backend wrote it (its leg is in the capture): the Server header is the proxy's
        match = ServerMatch(passed_on_author(passed.found), "medium", passed.found)
    kind = _failure_kind(attempt, facts, verdict, findings, client)
    back_leg = next((f for f in findings if f.check == "proxy_back_leg"), None)
    if back_leg is not None:
        # The client of a proxy's back leg is the proxy: the User-Agent is the end client's,
        # forwarded, and so would be the lines its library prints (the front leg has them).
        client, kind = proxy_of_back_leg(back_leg.found), None
    if kind == "closed":  # (its lines say what the Close frames say: closing.py)
        errors = client_errors(kind, client, **closing_values(attempt.after))
    elif kind in _LIFE_KINDS:
        errors = _end_lines(kind, client, lifetime)
    elif kind:  # (the values are worked out only for a failure clients report)
        extra: dict[str, str] = {}
        location = response.headers.get("location") if response is not None else None
        value = _value_for(kind, findings) or (found_alone(findings[0].found) if findings
                                               else "")
        if kind == "status" and location and response is not None and (
                response.status in REDIRECT_STATUSES and attempt.transport != "h2"):
            kind = "redirect"
            url = _url(attempt)
            extra = {"websockets_redirect": websockets_redirect(url, location),
                     "aiohttp_redirect": aiohttp_redirect(url, response.status, location)}
        elif kind == "status" and response is not None and response.status == 401 and (
                attempt.transport == "h2"):
            kind = "h2_unauthorized"
        elif kind == "status" and response is not None and 200 <= response.status < 300:
            kind = "status_2xx"  # (over HTTP/1.1: over HTTP/2 a 2xx is a switch)
        elif kind == "connection" and value == _NO_CONNECTION:
            kind = "connection_missing"
        elif kind in _WAITS:  # (only then: a value of its own each time)
            extra = {"waited_ms": _waited_ms(attempt)}
        elif kind in _NEGOTIATION and request is not None and response is not None:
            extra = negotiation_values(
                bool(request.headers.tokens("sec-websocket-protocol")),
                bool(request.headers.tokens("sec-websocket-extensions")),
                response.headers.tokens("sec-websocket-extensions"),
                tuple(response.headers.all("sec-websocket-extensions")))
        elif kind == "rsv":  # (python websockets' line is its Closes', as for "closed")
            extra = {**rsv_values(_rsv_bits(findings)), **closing_values(attempt.after)}
        elif kind == "close_code_reserved":
            extra = {"java_close_code": java_close_code(value)}
        errors = client_errors(
            kind, client, **extra,
            status=response.status if response else "",
            java_note=JAVA_WITHOUT_UPGRADE if any(
                f.check == "upgrade_header_missing" for f in findings) else "",
            reason=response.reason if response else "",
            canonical_reason=canonical_reason(response.status) if response else "",
            tornado_reason=(response.reason or python_reason(response.status)) if response
            else "",
            url=_url(attempt),
            value=value,
            server=str(attempt.server),
            port=attempt.server.port,
            host=(attempt.tls.sni if attempt.tls is not None and attempt.tls.sni
                  else attempt.server.ip),
        )
    else:
        errors = ()
    if errors and attempt.transport == "h2" and kind not in _H2C_KINDS:
        # Over HTTP/2 (RFC 8441) only the clients that send an extended CONNECT can have
        # printed anything: the HTTP/1.1-only libraries' lines are not theirs
        errors = tuple(line for line in errors if line.startswith(H2_WEBSOCKET_CLIENTS))
    if match is None:
        return attribution(None, "", (), None, client, errors)
    return attribution(match.server, match.confidence, (match.evidence,),
                       _server_log(match, attempt, findings), client, errors)


def ended_client_errors(findings: tuple[Finding, ...], lifetime: Lifetime) -> tuple[str, ...]:
    """What clients print for the end of a connection followed past its watch window, from
    its life findings alone (the JSONL ``ended`` event: its attempt's line, with the client's
    name, is out already): `attribute`'s lines for that end, in the templates' order."""
    for finding in findings:
        kind = KIND_OF_FINDING.get(finding.check)
        if kind in _LIFE_KINDS:
            return _end_lines(kind, None, lifetime)
    return ()


_LIFE_KINDS = ("closed_in_life", "abnormal_close")  # the ends of connections in life
# switch_connection_without_upgrade's text for a 101 without Connection (checks/response.py)
_NO_CONNECTION = "no Connection header"


def _end_lines(kind: str, client: str | None, lifetime: Lifetime | None) -> tuple[str, ...]:
    """The lines of a life kind: an abnormal end's, or an error Close's from the lifetime
    (none without it)."""
    if kind == "abnormal_close":
        return client_errors(kind, client)
    return (client_errors(kind, client, **life_closing_values(lifetime))
            if lifetime is not None else ())


def _server_log(match: ServerMatch, attempt: Attempt,
                findings: tuple[Finding, ...]) -> str | None:
    """The server's likely log line, with this request's path (and, for uvicorn, its access
    log line, which names the client, the request and the status)."""
    request, response = attempt.request_head, attempt.response_head
    if request is None:
        return match.log
    if match.server == "nginx" and match.log is None and response is not None and (
            response.status == 400) and any(
            f.check == "h2_connect_protocol_not_enabled" for f in findings):
        return NGINX_H2_PROTOCOL_PSEUDO_HEADER
    # the proxy's connection to the backend, refused, in the capture too (correlate.py):
    # the proxy's own line for it, with that backend's address
    refused = next((f for f in findings if f.check == "proxy_backend_refused"), None)
    if match.server == "HAProxy" and response is not None and (
            state := haproxy_state(response.status, refused is not None)):
        return _haproxy_log(state, attempt, refused)
    if refused is not None and match.server == "nginx":
        return nginx_upstream_refused(refused_backend(refused.found), attempt.client.ip,
                                      request.method, request.target, request.version,
                                      request.headers.get("host"))
    if refused is not None and match.server == "Caddy":
        return caddy_dial_refused(refused_backend(refused.found))
    if match.server == GORILLA and response is not None:
        return gorilla_log(request, response.status)  # (the request says which check failed)
    if match.server == SQUID and match.log is not None and attempt.response is not None:
        answer = attempt.response
        assert isinstance(answer.head, ResponseHead)
        return squid_log(match.log, answer.head.status, attempt.client.ip, request,
                         len(answer.head.raw) + answer.body_length)
    path = request.target.split("?", 1)[0]
    if match.log in APACHE_TEMPLATES:  # (Apache's own pages: its lines name the client)
        assert attempt.response is not None
        timeout = next((f for f in findings if f.check == "proxy_backend_timeout"), None)
        return apache_log(match.log, str(attempt.client), path, attempt.response.body_prefix,
                          refused_backend(refused.found) if refused is not None else None,
                          timed_out_backend(timeout.found) if timeout is not None else None)
    if match.log is not None:
        return match.log.replace("/PATH", path)
    if match.server == "uvicorn" and response is not None and response.status != 101:
        access = (f'INFO: {attempt.client} - "{request.method} {request.target} '
                  f'{request.version}" {response.status} {response.reason}')
        if any(f.check == "uvicorn_websocket_unsupported" for f in findings):
            return _UVICORN_NO_LIBRARY + access
        return access
    if match.server == TORNADO and response is not None and response.status != 101:
        return _tornado_access(response.status, request.method, request.target,
                               attempt.client.ip)
    return None


def _haproxy_log(state: str, attempt: Attempt, refused: Finding | None) -> str:
    """HAProxy's log line for its own answer, with what the capture holds: the request as
    it logs it (an RFC 8441 CONNECT as the GET it makes of it, with its absolute URI) and
    the retries refused."""
    request, response = attempt.request_head, attempt.response_head
    assert request is not None and response is not None
    method, target, version = request.method, request.target, request.version
    if attempt.transport == "h2":
        authority = request.headers.get(":authority") or str(attempt.server)
        scheme = request.headers.get(":scheme") or "https"
        method, target, version = "GET", f"{scheme}://{authority}{target}", "HTTP/2.0"
    # (retries only when some were paired: none paired may be none made, or some not told
    # apart from another client's, correlate._retries)
    retries = refused_retries(refused.found) if refused else 0
    return haproxy_log(state, attempt.client, response.status, method, target, version,
                       retries or None)


# uvicorn's warnings for an upgrade it cannot make (its ws setting "auto" without websockets
# or wsproto; protocols/http/*_impl.py, _should_upgrade_to_ws), before its access line
_UVICORN_NO_LIBRARY = (
    "WARNING: Unsupported upgrade request. / WARNING: No supported WebSocket library "
    "detected. Please use \"pip install 'uvicorn[standard]'\", or install 'websockets' or "
    "'wsproto' manually. / ")


def _tornado_access(status: int, method: str, target: str, client_ip: str) -> str:
    """tornado's access log line (web.Application.log_request; logging's basic format): the
    only line it logs for a refused handshake (the body's words go to gen_log at debug)."""
    level = "INFO" if status < 400 else "WARNING" if status < 500 else "ERROR"
    return f"{level}:tornado.access:{status} {method} {target} ({client_ip}) N.NNms"


def _failure_kind(attempt: Attempt, facts: Facts, verdict: str,
                  findings: tuple[Finding, ...], client: str | None) -> str | None:
    primary = findings[0].check if findings else ""
    if primary.startswith("tls_") and verdict != "succeeded":
        if attempt.response_head is not None and facts.websocket and (
                primary == "tls_client_certificate_required"):
            return "status"  # (nginx refuses it with an HTTP 400 page: what clients print)
        if primary == "tls_client_certificate_required" and _server_alert(attempt) == (
                "handshake_failure"):
            return "tls_client_certificate_handshake_failure"  # (OpenSSL servers, TLS 1.2)
        return KIND_OF_FINDING.get(primary)  # what the client's TLS library said
    if verdict == "refused":
        return "refused"
    if verdict == "no_response":
        if not facts.websocket and attempt.request is not None:
            return None
        ended = next((f for f in findings if f.check in _HOW_THE_WAIT_ENDED), None)
        if ended is None:
            return "no_response"
        if ended.check == "h2_stream_refused" and "GOAWAY" in ended.found:
            return None  # (what Chrome logs for a stream a GOAWAY left unprocessed: not known)
        return KIND_OF_FINDING[ended.check]  # how the wait ended
    if facts.protocol == "connect":
        # a forward proxy's refusal of the tunnel: what the clients' proxy support prints
        response = attempt.response_head
        if response is None or response.status < 400:
            return None
        return "proxy_auth" if response.status == 407 else "tunnel"
    if facts.protocol == "h2c" and verdict != "succeeded":
        # (h2c's clients are not the WebSocket ones: clients.H2C_KIND_OF_FINDING)
        return next((H2C_KIND_OF_FINDING[f.check] for f in findings
                     if f.check in H2C_KIND_OF_FINDING), None)
    if not facts.websocket or verdict == "succeeded":
        return None
    response = attempt.response_head
    h2 = attempt.transport == "h2"  # over HTTP/2 a 2xx switches (RFC 8441 §5)
    if response is not None and not (200 <= response.status < 300 if h2 else
                                     response.status == 101):
        return "status"
    for finding in findings:
        kind = KIND_OF_FINDING.get(finding.check)
        if kind in NAMED_ONLY and client not in clients_of(kind):
            continue  # (said only of the clients it names)
        if kind is not None and (kind not in SERVER_SENT_KINDS or finding.side == "server"):
            if kind == "closed" and finding.side == "server" and _reserved_code(finding):
                return "close_code_reserved"  # (clients reject it: not the code they print)
            return kind
    return None


def _server_alert(attempt: Attempt) -> str | None:
    """The description of the server's fatal alert, when the session has one."""
    if attempt.tls is None:
        return None
    return next((alert.description for alert in attempt.tls.alerts
                 if alert.level == "fatal" and alert.side == "server"), None)


def _reserved_code(finding: Finding) -> str:
    """The code of a Close finding (``... Close 1005 ...``) when it is one that may never be
    sent (RFC 6455 §7.4.1), else ""."""
    code = _CLOSE_CODE.search(finding.found)
    return code.group(1) if code and int(code.group(1)) in NEVER_ON_WIRE else ""


_CLOSE_CODE = re.compile(r"Close (\d+)")


def _rsv_bits(findings: tuple[Finding, ...]) -> int:
    """The RSV bits of the server's frame a ws_rsv_without_extension finding names
    ("RSV=100 on a server frame"), 0 when none does."""
    for finding in findings:
        if finding.check == "ws_rsv_without_extension":
            bits = _RSV.search(finding.found)
            return int(bits.group(1), 2) if bits else 0
    return 0


_RSV = re.compile(r"RSV=([01]{3})")


def _value_for(kind: str | None, findings: tuple[Finding, ...]) -> str:
    if kind == "close_code_reserved":
        return next((code for code in map(_reserved_code, findings) if code), "")
    for finding in findings:  # (the "closed" lines read the Close frames: closing.py)
        if KIND_OF_FINDING.get(finding.check) == kind:
            return found_alone(finding.found)  # (not what the other side did next)
    return ""


def _waited_ms(attempt: Attempt) -> str:
    """How long the client waited before it gave up, in milliseconds from the start of its
    transfer as curl counts them: its SYN for the connection's first exchange, the request
    for a later one; "N" when the capture has neither end."""
    tcp = attempt.tcp
    end = tcp.client_fin or tcp.client_rst
    start = tcp.syn.time if tcp.syn is not None and attempt.sequence == 0 else (
        attempt.request.time if attempt.request is not None else None)
    if start is None or end is None:
        return "N"
    return str(round((end.time - start) * 1000))


def _url(attempt: Attempt) -> str:
    request = attempt.request_head
    scheme = "wss" if attempt.tls is not None else "ws"
    if request is None:
        return f"{scheme}://{attempt.server}/"
    target = request.target
    if request.method == "CONNECT" and not request.headers.has(":protocol"):
        # the tunnel's target, as browsers write it (no default port: wss:// on 443, ws://
        # on 80; either elsewhere: browsers tunnel ws:// too); the path went inside, unseen
        host, _, port = target.rpartition(":")
        default = {"443": "wss", "80": "ws"}.get(port)
        return f"{default}://{host}/..." if default else f"...://{target}/..."
    if "://" in target:  # (the absolute form a proxy is sent: http://host/path)
        absolute = target.split("://", 1)
        return f"{'wss' if absolute[0].lower() == 'https' else 'ws'}://{absolute[1]}"
    host = request.headers.get("host") or request.headers.get(":authority") or str(attempt.server)
    return f"{scheme}://{host}{request.target}"
