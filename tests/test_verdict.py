"""The ranking that picks the primary reason: cause before symptom (analyzer/verdict.py).

End-to-end cases with real conversations are in test_checks.py; here the rule itself is driven
with findings alone, one combination per row, so each pairing and each near miss is visible.
"""

from __future__ import annotations

import pytest

from analyzer.checks.catalogue import Finding
from analyzer.checks.facts import Facts
from analyzer.exchange.model import Attempt, AttemptKind, Endpoint, TcpFacts
from analyzer.verdict import causes_of, judge

ATTEMPT = Attempt(AttemptKind.HTTP, Endpoint(b"\x0a\0\0\x01", 50000),
                  Endpoint(b"\x0a\0\0\x02", 80), TcpFacts())
FACTS = Facts(offered=("websocket",), protocol="websocket", websocket=True)


def f(check: str, side: str = "", found: str = "x") -> Finding:
    return Finding(check, "", found, (1,), side)


CLIENT_FIN = f("client_hung_up_after_switch", "client", "FIN 3 ms after the switch")
SERVER_FIN = f("server_hung_up_after_switch", "server", "FIN 2 ms after the switch")
CLIENT_CLOSE_1002 = f("ws_closed_with_error", "client", "client sent Close 1002 (...) 1 ms "
                      "after the 101")
SERVER_CLOSE_1002 = f("ws_closed_with_error", "server", "server sent Close 1002 (...) 1 ms "
                      "after the 101")
# (Node's WebSocket, undici's, and Java's end a connection so on a bad frame)
CLIENT_ENDED = f("ended_without_close_after_switch", "client", "client sent a RST 102 ms after "
                 "the switch, 1 ms after the last frame, without a Close frame")

# (findings in check order, verdict, primary, its found starts with)
COMBINATIONS = [
    # a 101 rule the client enforces, then the client hangs up: failed, the rule first
    ((f("ws_protocol_not_chosen", found="none"), CLIENT_FIN), "failed",
     "ws_protocol_not_chosen", "none; then client FIN 3 ms after the switch"),
    ((f("ws_deflate_params_invalid"), CLIENT_FIN), "failed", "ws_deflate_params_invalid",
     "x; then client FIN"),
    # ...but not when the server hung up: the server did not react to its own answer
    ((f("ws_protocol_not_chosen"), SERVER_FIN), "aborted", "server_hung_up_after_switch", "FIN"),
    # no symptom: the note stays a note
    ((f("ws_protocol_not_chosen"),), "succeeded", "ws_protocol_not_chosen", "x"),
    # a bad frame from one side, the other side closes: the frame is the reason
    ((f("ws_server_frame_masked", "server"), CLIENT_CLOSE_1002), "aborted",
     "ws_server_frame_masked", "x; then client sent Close 1002"),
    ((f("ws_client_frame_unmasked", "client"), SERVER_FIN), "aborted",
     "ws_client_frame_unmasked", "x; then server FIN"),
    # ... or ends the connection without a Close frame (undici, Java)
    ((f("ws_rsv_without_extension", "server"), CLIENT_ENDED), "aborted",
     "ws_rsv_without_extension", "x; then client sent a RST 102 ms after the switch"),
    # ...but an end without a Close after frames went by is no rejection of the 101
    ((f("ws_protocol_not_chosen"), CLIENT_ENDED), "aborted",
     "ended_without_close_after_switch", "client sent a RST"),
    # the server never answered the client's Ping: the client's keepalive closed with 1011
    ((f("ws_ping_unanswered", "server"), f("ws_closed_with_error", "client",
                                           "client sent Close 1011 (...)")), "aborted",
     "ws_ping_unanswered", "x; then client sent Close 1011"),
    # the side that broke the rule closed itself: no pairing
    ((f("ws_client_frame_unmasked", "client"), CLIENT_CLOSE_1002), "aborted",
     "ws_closed_with_error", "client sent"),
    ((f("ws_rsv_without_extension", "server"), SERVER_CLOSE_1002), "aborted",
     "ws_closed_with_error", "server sent"),
    # a server closing without a word: the request's fault is the reason, the verdict stays
    ((f("request_http10"), f("no_response_server_closed")), "no_response", "request_http10",
     "x"),
    # a root cause earlier in the catalogue stays first (the proxy made the Accept wrong)
    ((f("proxy_accept_forwarded"), f("ws_accept_mismatch"), CLIENT_FIN), "failed",
     "proxy_accept_forwarded", "x"),
]


@pytest.mark.parametrize(("findings", "verdict", "primary", "found"), COMBINATIONS,
                         ids=[" + ".join(x.check for x in c[0]) for c in COMBINATIONS])
def test_cause_before_symptom(findings: tuple[Finding, ...], verdict: str, primary: str,
                              found: str) -> None:
    for order in (findings, tuple(reversed(findings))):  # whatever order the checks gave
        d = judge(ATTEMPT, FACTS, order)
        assert d.verdict.value == verdict
        assert d.findings[0].check == primary
        assert d.findings[0].found.startswith(found)
        assert sorted(x.check for x in d.findings) == sorted(x.check for x in findings)


def test_judging_again_does_not_quote_the_symptom_twice() -> None:
    # correlation calls judge again with the ranked findings
    once = judge(ATTEMPT, FACTS, (f("ws_protocol_not_chosen", found="none"), CLIENT_FIN))
    twice = judge(ATTEMPT, FACTS, once.findings)
    assert twice.findings == once.findings


def test_pairs() -> None:
    findings = (f("ws_extension_not_offered"), f("ws_server_frame_masked", "server"), CLIENT_FIN)
    assert causes_of(findings) == [(0, 2), (1, 2)]
    assert causes_of((f("ws_extension_not_offered"), SERVER_FIN)) == []


def test_judge_of_none_or_one_finding_equals_the_ranking_twin() -> None:
    """`judge` skips the ranking for none or one finding: the same diagnosis as
    `judge_ranked`, on every bundled capture's attempts and on each of their findings alone
    (every effect, switched or not)."""
    from pathlib import Path

    from analyzer.checks import run_checks
    from analyzer.verdict import judge_ranked
    from tests.helpers import analyze_pcap

    compared = 0
    for path in sorted((Path(__file__).resolve().parent.parent / "captures").glob("*.pcap*")):
        for d in analyze_pcap(path):
            facts, findings = run_checks(d.attempt)
            cases = [findings] if len(findings) <= 1 else []
            cases += [(f,) for f in findings] + [()]
            for case in cases:
                fast, plain = judge(d.attempt, facts, case, 3), judge_ranked(d.attempt, facts,
                                                                             case, 3)
                assert (fast, fast.findings, fast.verdict) == (plain, plain.findings,
                                                               plain.verdict)
                compared += 1
    assert compared > 200


def test_values_made_without_the_frozen_init_equal_the_constructors() -> None:
    """`verdict.made`, `checks.facts.made_facts` and `attribution.model.attribution` store the
    fields through the slots' descriptors: on every bundled capture's attempts they give what
    the dataclass constructors give (every field, and a renumbered copy as
    `dataclasses.replace` makes it)."""
    import dataclasses
    import pickle
    from pathlib import Path

    from analyzer.attribution.model import Attribution, attribution
    from analyzer.checks.facts import made_facts
    from analyzer.verdict import Diagnosis, made
    from tests.helpers import analyze_pcap

    compared = 0
    for path in sorted((Path(__file__).resolve().parent.parent / "captures").glob("*.pcap*")):
        for d in analyze_pcap(path):
            fields = [getattr(d, f.name) for f in dataclasses.fields(Diagnosis)]
            fast, plain = made(*fields), Diagnosis(*fields)
            assert [getattr(fast, f.name) for f in dataclasses.fields(Diagnosis)] == fields
            assert fast == plain and hash(fast.facts) == hash(plain.facts)
            assert pickle.loads(pickle.dumps(fast)) == plain
            again = made(7, d.attempt, d.facts, d.verdict, d.findings, d.who, d.origin,
                         d.lifetime)
            assert again == dataclasses.replace(d, number=7) and again.who is d.who
            facts = d.facts
            values = [getattr(facts, f.name) for f in dataclasses.fields(Facts)]
            made_one = made_facts(*values)
            assert made_one == Facts(*values) and hash(made_one) == hash(facts)
            assert [getattr(made_one, f.name) for f in dataclasses.fields(Facts)] == values
            # the heads the facts hold are the attempt's (the rules read them there)
            assert facts.request_head is d.attempt.request_head
            assert facts.response_head is d.attempt.response_head
            who = d.attribution
            values = [getattr(who, f.name) for f in dataclasses.fields(Attribution)]
            assert attribution(*values) == Attribution(*values) == who
            compared += 1
    assert compared > 100
