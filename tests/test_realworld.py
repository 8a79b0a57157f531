"""Captures made by other people (../shared/real-world): each runs cleanly and gets our verdicts.

The expectations below are our reading of each capture (see the folder's INVENTORY.md for the
RFC reading of every exchange); where we deliberately differ from the inventory, a comment says
why. Attempts are keyed by the frame of their request (or of their response when the request
was not captured).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from analyzer.pipeline import Analysis, analyze
from analyzer.source import CaptureWarning, read_captures

REAL_WORLD = Path(__file__).resolve().parents[1].parent / "shared" / "real-world"

S, F, D, U = "succeeded", "failed", "declined", "inconclusive"  # U: unknown
A = "aborted"

# file -> {request frame: (verdict, primary reason or None)}, and TCP-only attempts by verdict
EXPECTED: dict[str, tuple[dict[int, tuple[str, str | None]], dict[str, int]]] = {
    "CheckOCPP/capt.pcapng": ({6: (S, None), 40: (S, None), 102: (S, None), 167: (S, None)}, {}),
    # the charger connects to port 443 again and again and is refused each time; its stack
    # sends each connection's SYN again after the RST (the same port and first sequence
    # number, 3-5 times): one refused attempt per connection, not per SYN (the last SYN, 0 ms
    # before the end of the capture, is such a copy too)
    "CheckOCPP/extralargeOPENEVSE.pcapng": ({114: (S, None)}, {"refused": 31}),
    "arkime/websocket.pcap": ({4: (S, None)}, {}),
    "nDPI/1kxun.pcap": ({1033: (S, None), 1035: (S, None), 1037: (S, None)}, {}),
    # legal but a known trap: Chrome and Node ws fail on it, so it is noted
    "nDPI/false_positives.pcapng": ({3: (S, "ws_protocol_not_chosen")}, {}),
    # the two HTTP requests offering TLS/1.0 got 206: declined. The Gnutella handshakes
    # ("GNUTELLA CONNECT/0.6") are not HTTP/1.x and are not listed. Windows sends a refused
    # SYN twice more (the same port and sequence number): 7 refused connections, 21 SYNs
    "nDPI/gnutella.pcap": (
        {1972: (D, "upgrade_declined"), 1976: (D, "upgrade_declined")},
        {"no_response": 69, "refused": 7},
    ),
    "nDPI/http_origin_different_than_host.pcap": ({3: (S, None)}, {}),
    "nDPI/mpeg-dash.pcap": ({}, {}),  # a 200 advertising Upgrade: h2,h2c is not an attempt
    "nDPI/tls_heur__vmess-websocket.pcapng": ({17: (S, None)}, {}),
    "socket.io-sample/websocket.pcap": ({}, {}),  # WebSocket data without its handshake
    "suricata-verify/bug-2512/sample_10.62.112.41_62227.pcap": (
        {4: (U, "capture_gap_response")}, {}),
    "suricata-verify/bug-2769/issue_no_icmp.pcap": ({4: (S, "tunnel_carried")}, {}),
    # "CONNECT /": the proxy opened a tunnel for a target that is not host:port
    "suricata-verify/bug-7851-01/connect.pcap": ({4: (S, "connect_target_invalid")}, {}),
    "suricata-verify/drop-protocol-change/input.pcap": ({2: (U, "request_not_captured")}, {}),
    # the proxy sent 5 bytes of garbage through the tunnel and closed first: the tunnel itself
    # was established, and the client did not hang up on the 200
    "suricata-verify/http-connect/http-connect-fail/input.pcap": ({5: (S, "tunnel_carried")}, {}),
    "suricata-verify/http-connect/http-connect-fragmented/input.pcap": (
        {5: (S, "tunnel_carried")}, {}),
    "suricata-verify/http-evader/http-evader-448/input.pcap": ({4: (F, "switch_not_offered")}, {}),
    # the inventory calls this "no response"; the capture ends 0 ms after the request, too soon
    # to claim the server did not answer
    "suricata-verify/http-request-header-multi/input.pcap": (
        {4: (U, "capture_ended_too_soon")}, {}),
    "suricata-verify/http2-errorcode/input.pcap": ({5: (S, "tunnel_carried")}, {}),  # h2 inside
    # h2c: the answer to the upgraded request is read on stream 1 (200, 206)
    "suricata-verify/http2-keywords2/input.pcap": ({1: (S, "h2c_upgraded_request_status")}, {}),
    "suricata-verify/http2-range/http2-range.pcap": (
        {n: (S, "h2c_upgraded_request_status") for n in (5, 49, 91)}, {}),
    # the bogus 101 follows an SMTP banner on a connection that is not HTTP: not listed
    "suricata-verify/protocol-change-failed-event/input.pcap": ({}, {}),
    # fuzzed: the client acknowledges 71 server bytes that are not in the capture (Wireshark:
    # "ACKed unseen segment"), so what the server answered cannot be known. The inventory's
    # "failed" reads the mangled request; the capture itself cannot show the outcome.
    "suricata-verify/transform-base64-7296/input.pcap": ({5: (U, "capture_gap_response")}, {}),
    "suricata-verify/websocket-compressed/example_websocket.pcap": ({4: (S, None)}, {}),
    # an 18-byte key: the server switched anyway, so the fault is a note, not the verdict
    "suricata-verify/websocket-control-frag/input.pcap": ({4: (S, "ws_key_invalid")}, {}),
    # frame 8 is a client Ping without a mask (tshark agrees: websocket.mask == 0), noted; the
    # inventory's "succeeded" judges the handshake: the client (a monit health check) then sent
    # a FIN 1 ms after the switch without a Close frame, an abnormal closure (the server reports
    # 1006) within the first moments
    "suricata-verify/websocket-ping/input.pcap": (
        {4: (A, "ended_without_close_after_switch")}, {}),
    "suricata-verify/websocket/basic_websockets.pcap": ({4: (S, None)}, {}),
    "usenix-woot/sample deepred websocket.pcap": ({4: (S, None)}, {}),
    "websocket-dissector-plugin/test.pcapng": ({15: (S, None)}, {}),
    "websocket_test/websocket.pcap": ({9: (S, None)}, {"refused": 1}),
    "zeek/connect-with-header.pcap": ({5: (S, "tunnel_carried")}, {}),
    # "CONNECT host:25 / HTTP/1.0": a stray path after the authority
    "zeek/connect-with-smtp.pcap": ({4: (S, "connect_target_invalid")}, {}),
    "zeek/docker-http-upgrade.pcap": ({14: (S, None)}, {}),
    "zeek/fragmented-http-reply.pcap": ({4: (S, "ws_closed_normally")}, {}),
    # behind a proxy (X-Forwarded-For, X-Real-IP), closed normally soon after
    "zeek/jupyter-websocket.pcap": ({4: (S, "via_proxy")}, {}),
    # the server's Close carries 127 bytes of payload: control frames are limited to 125
    "zeek/oversized-close-frame.pcapng": ({4: (S, "ws_control_frame_invalid")}, {}),
    "zeek/reply-ping-coalesced.pcap": ({4: (S, "ws_closed_normally")}, {}),
    "zeek/websocket.pcap": ({4: (S, "connection_upgrade_with_others")}, {}),
    "zeek/wrong-accept-header.pcap": ({4: (F, "ws_accept_mismatch")}, {}),
    "zeek/wstunnel-ssh.pcap": ({4: (S, None), 46: (S, None)}, {}),
}

needs_corpus = pytest.mark.skipif(
    not REAL_WORLD.is_dir(), reason=f"real-world captures not present at {REAL_WORLD}"
)


@needs_corpus
def test_every_capture_in_the_corpus_has_an_expectation() -> None:
    present = {str(p.relative_to(REAL_WORLD)) for p in REAL_WORLD.rglob("*.pcap*")}
    assert present == set(EXPECTED)


@needs_corpus
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_capture(name: str) -> None:
    warnings: list[CaptureWarning] = []
    run = Analysis()
    diagnoses = list(analyze(read_captures([str(REAL_WORLD / name)], warnings), run))
    assert warnings == []
    http_expected, tcp_expected = EXPECTED[name]
    http = {}
    tcp: Counter[str] = Counter()
    for d in diagnoses:
        if d.attempt.kind.value == "tcp":
            tcp[d.verdict.value] += 1
            continue
        frame = d.attempt.first_frame
        primary = d.primary.check if d.primary else None
        http[frame] = (d.verdict.value, primary)
    assert http == http_expected
    assert dict(tcp) == tcp_expected
    assert run.stats.frames > 0


@needs_corpus
def test_a_copy_of_what_followed_the_answer_is_not_the_answer_sent_again() -> None:
    """zeek's connect-with-smtp: the proxy's 200 was acknowledged; 3 s later it re-sent the
    SMTP greeting that followed it through the tunnel. Not `response_resent` (the copy
    carries bytes past the answer), though the reassembler did see a needed copy."""
    run = Analysis()
    (diagnosis,) = analyze(read_captures([str(REAL_WORLD / "zeek/connect-with-smtp.pcap")], []),
                           run)
    assert [copy.frame for copy in diagnosis.attempt.tcp.resent if copy.side == "server"] == [9]
    assert not any(f.check.endswith("_resent") for f in diagnosis.findings)
