"""The server's own words: a rejection whose text names its cause (attribution/texts.py)."""

from __future__ import annotations

from dataclasses import replace

from analyzer.attribution.texts import quote
from analyzer.checks.catalogue import Finding
from analyzer.checks.facts import Facts, frames_of
from analyzer.exchange.model import Attempt

# What the request should have carried, for the causes only the server's words reveal.
_EXPECTED = {
    "ws_protocol_required": "a Sec-WebSocket-Protocol the server accepts",
    "ws_protocol_unsupported": "a subprotocol the server supports",
    "ws_rejected_before_accept": "the application to accept the WebSocket",
    "tls_plain_http_to_tls_port": "TLS (wss:// or https://) on this port",
    "request_headers_too_large": "a request head within the server's limit",
    "request_target_too_long": "a request line within the server's limit",
    "engineio_transport_unknown": "a transport the Engine.IO server allows",
    "engineio_session_unknown": "a session id this server process knows",
    "engineio_request_refused": "the application's allowRequest to accept the request",
}


def with_server_words(attempt: Attempt, facts: Facts,
                      findings: list[Finding]) -> list[Finding]:
    """The findings, with the cause the rejection's text names: an existing finding of that
    cause gets the quotation (and the response's frames) as evidence; a cause no other check
    can see (the server's policy) becomes a finding of its own."""
    said = facts.said
    response = attempt.response
    if said is None or not said.names or response is None:
        return findings
    head = facts.response_head
    assert head is not None
    words = quote(said, head, response.body_prefix)
    ev = frames_of(response)
    for index, finding in enumerate(findings):
        if finding.check in said.names:
            frames = finding.frames + tuple(f for f in ev if f not in finding.frames)
            findings[index] = replace(finding, found=f"{finding.found}; the server said {words}",
                                      frames=frames)
            return findings
    if said.adds:
        cause = said.names[0]
        findings.append(Finding(cause, _EXPECTED.get(cause, "101"), words, ev))
    return findings
