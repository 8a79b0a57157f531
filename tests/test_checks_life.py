"""The life catalogue entries (analyzer/checks/catalogue_life.py): a triggering case and a near
miss each, as scripted conversations written as real pcaps and read by the whole pipeline with
`lifetimes` on (as the CLI reads), each attempt folded with its end.

The meta test in ``test_checks.py`` counts these cases too. The entries that need several
connections (a mass reset, a maximum lifetime) are checked on captures of several
conversations (`GROUP_CASES`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from analyzer.life.fold import fold, with_groups
from analyzer.pipeline import Analysis, analyze
from analyzer.source import read_captures
from analyzer.verdict import Diagnosis, Verdict
from tests.builder import Conversation, Opcode, write_pcap
from tests.test_checks import (
    Case,
    Marks,
    client_frame,
    close,
    server_frame,
    switched,
    then,
)

SUCCEEDED, DROPPED = Verdict.SUCCEEDED, Verdict.DROPPED
# Past the watch window (2 s): frames on both sides first, so the watch saw the session work.
WORKED = (client_frame(), server_frame())


def analyze_life(path: Path) -> list[Diagnosis]:
    """Every attempt of a capture with its final verdict, as the sorted reports list them."""
    run = Analysis(lifetimes=True)
    return with_groups(fold(analyze(read_captures([str(path)], []), run)))


def both_close(first: str, code: int, delay: float, reason: str = "") -> tuple:
    """A Close handshake started by ``first`` after ``delay``, then both FINs."""
    other = "server" if first == "client" else "client"
    return (close(first, code, delay, reason),
            then("echo", lambda c: (c.client_ws_close if other == "client"
                                    else c.server_ws_close)(code, delay=0.001)),
            then("fin", lambda c: (c.server_fin(0.001) if first == "server"
                                   else c.client_fin(0.001))),
            then("fin2", lambda c: (c.client_fin(0.001) if first == "server"
                                    else c.server_fin(0.001))))


ALL_LIFE = ("keepalive_ping_unanswered", "idle_timeout_after_switch", "closed_without_close_frame",
            "close_message_too_big",
            "close_internal_error", "close_service_restart", "close_try_again_later",
            "close_bad_gateway", "close_application_error", "close_error_in_life",
            "close_going_away")


def _not(*ids: str) -> tuple[str, ...]:
    return tuple(i for i in ALL_LIFE if i not in ids)


def _code_case(code: int, check: str, verdict: Verdict = DROPPED) -> Case:
    return Case(f"server Close {code} after the watch window, then the handshake",
                switched(*WORKED, *both_close("server", code, 5.0)), verdict, check,
                absent=_not(check), evidence={check: ("close",)},
                found={check: (str(code), "after 5.0 s")})


LIFE_CASES: tuple[Case, ...] = (
    Case("server FIN after 60 s of silence, no Close frame",
         switched(*WORKED, then("fin", lambda c: c.server_fin(60.0)),
                  then("fin2", lambda c: c.client_fin(0.001))),
         DROPPED, "idle_timeout_after_switch", absent=_not("idle_timeout_after_switch"),
         evidence={"idle_timeout_after_switch": ("fin",)},
         found={"idle_timeout_after_switch": ("60.0 s of silence", "nginx", "10.0.0.2")}),
    Case("proxy RST after 3 s of silence (a short timeout: the measured N)",
         switched(*WORKED, then("rst", lambda c: c.server_rst(3.0))),
         DROPPED, "idle_timeout_after_switch", absent=_not("idle_timeout_after_switch"),
         found={"idle_timeout_after_switch": ("reset", "3.0 s of silence",
                                              "a timeout of that length")}),
    Case("server FIN right after a frame, 5 s in: no Close frame, not idle",
         switched(*WORKED, server_frame(delay=5.0),
                  then("fin", lambda c: c.server_fin(0.01)),
                  then("fin2", lambda c: c.client_fin(0.001))),
         DROPPED, "closed_without_close_frame", absent=_not("closed_without_close_frame"),
         evidence={"closed_without_close_frame": ("fin",)}),
    Case("still open at the end of the capture, 30 s later",
         switched(*WORKED, client_frame(delay=30.0)), SUCCEEDED, None, absent=ALL_LIFE),
    Case("client Close 1000 after the watch window, then the handshake",
         switched(*WORKED, *both_close("client", 1000, 5.0)), SUCCEEDED, None, absent=ALL_LIFE),
    Case("server Close 1001 (going away) after the watch window",
         switched(*WORKED, *both_close("server", 1001, 5.0)), SUCCEEDED, "close_going_away",
         absent=_not("close_going_away")),
    _code_case(1009, "close_message_too_big"),
    _code_case(1011, "close_internal_error"),
    _code_case(1012, "close_service_restart"),
    _code_case(1013, "close_try_again_later"),
    _code_case(1014, "close_bad_gateway"),
    _code_case(4001, "close_application_error"),
    _code_case(1008, "close_error_in_life"),
    # B6 (sweep30b): a Close just past the window, the FIN seconds later: the Close's own
    # time and frame, not the FIN's
    Case("client Close 1011 at 2.5 s, the server's FIN 8 s later",
         switched(*WORKED, close("client", 1011, 2.5, "keepalive ping timeout"),
                  then("fin", lambda c: c.server_fin(8.0)),
                  then("fin2", lambda c: c.client_fin(0.001))),
         DROPPED, "close_internal_error", absent=_not("close_internal_error"),
         evidence={"close_internal_error": ("close",)},
         found={"close_internal_error": ("after 2.5 s",)}),
    # Keepalive: the side that closes pinged, and the other side sent nothing after it
    Case("server Ping at 3 s, no answer, server Close 1000 'ping timed out' 1 s later "
         "(tornado)",
         switched(*WORKED, then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=3.0)),
                  *both_close("server", 1000, 1.0, "ping timed out")),
         DROPPED, "keepalive_ping_unanswered", absent=_not("keepalive_ping_unanswered"),
         evidence={"keepalive_ping_unanswered": ("ping", "close")},
         found={"keepalive_ping_unanswered": ("server pinged", "nothing from the client",
                                              "for 1.0 s", "'ping timed out'")}),
    Case("server Ping at 3 s, no answer, server FIN 0.5 s later (aiohttp's heartbeat)",
         switched(*WORKED, then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=3.0)),
                  then("fin", lambda c: c.server_fin(0.5)),
                  then("fin2", lambda c: c.client_fin(0.001))),
         DROPPED, "keepalive_ping_unanswered", absent=_not("keepalive_ping_unanswered"),
         evidence={"keepalive_ping_unanswered": ("ping", "fin")},
         found={"keepalive_ping_unanswered": ("then the server sent a FIN",)}),
    Case("client Ping (masked) at 3 s, no answer, client Close 1011 1 s later (websockets)",
         switched(*WORKED, then("ping", lambda c: c.client_ws_frame(Opcode.PING, b"abcd",
                                                                   delay=3.0)),
                  *both_close("client", 1011, 1.0, "keepalive ping timeout")),
         DROPPED, "keepalive_ping_unanswered",
         absent=_not("keepalive_ping_unanswered", "close_internal_error"),
         evidence={"keepalive_ping_unanswered": ("ping", "close")},
         found={"keepalive_ping_unanswered": ("client pinged", "nothing from the server")}),
    # near misses
    Case("client Ping at 3 s, a quiet server, client Close 1000 3 s later (wstunnel ends its "
         "tunnel; zeek's wstunnel-ssh capture)",
         switched(*WORKED, then("ping", lambda c: c.client_ws_frame(Opcode.PING, b"abcd",
                                                                   delay=3.0)),
                  *both_close("client", 1000, 3.0)),
         SUCCEEDED, None, absent=ALL_LIFE),
    Case("server Ping at 3 s answered by a Pong, then server Close 1000 1 s later",
         switched(*WORKED, then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=3.0)),
                  then("pong", lambda c: c.client_ws_frame(Opcode.PONG, b"", delay=0.01)),
                  *both_close("server", 1000, 1.0)),
         SUCCEEDED, None, absent=ALL_LIFE),
    Case("server Ping at 3 s, client data after it (no Pong), server Close 1000 1 s later",
         switched(*WORKED, then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=3.0)),
                  client_frame(delay=0.2), *both_close("server", 1000, 1.0)),
         SUCCEEDED, None, absent=ALL_LIFE),
    Case("server Ping then server Close 10 ms later: no wait, no timeout",
         switched(*WORKED, then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=3.0)),
                  *both_close("server", 1000, 0.01)),
         SUCCEEDED, None, absent=ALL_LIFE),
    Case("server Ping unanswered, but the client closes (Close 1000) 1 s later",
         switched(*WORKED, then("ping", lambda c: c.server_ws_frame(Opcode.PING, b"", delay=3.0)),
                  *both_close("client", 1000, 1.0)),
         SUCCEEDED, None, absent=ALL_LIFE),
    Case("server Close 1011 then RST without the echo",
         switched(*WORKED, close("server", 1011, 5.0, "boom"),
                  then("rst", lambda c: c.server_rst(0.01))),
         DROPPED, "close_internal_error", absent=_not("close_internal_error"),
         found={"close_internal_error": ("1011", "boom")}),
)


@pytest.mark.parametrize("case", LIFE_CASES, ids=[c.name for c in LIFE_CASES])
def test_life_case(case: Case, tmp_path: Path) -> None:
    conv = Conversation()
    marks: Marks = case.script(conv)
    path = tmp_path / "case.pcap"
    segments = write_pcap(path, [conv])
    [diagnosis] = analyze_life(path)
    ids = [f.check for f in diagnosis.findings]
    context = [(f.check, f.found, f.frames) for f in diagnosis.findings]
    assert diagnosis.verdict is case.verdict, context
    life_ids = [i for i in ids if i in ALL_LIFE]
    assert (life_ids[0] if life_ids else None) == case.primary, context
    assert not set(case.absent) & set(ids), context
    assert diagnosis.lifetime is not None
    for check, texts in case.found.items():
        found = next(f.found for f in diagnosis.findings if f.check == check)
        for text in texts:
            assert text in found, context
    frame_of = {s: n for n, s in enumerate(segments, start=1)}
    for check, names in case.evidence.items():
        finding = next(f for f in diagnosis.findings if f.check == check)
        wanted = {frame_of[segments[i]] for name in names for i in marks[name]}
        assert set(finding.frames) & wanted, context
    if case.primary is not None and case.verdict is DROPPED:
        assert diagnosis.primary is not None and diagnosis.primary.check == case.primary


@dataclass(frozen=True)
class GroupCase:
    """Several connections to one server; ``triggered`` on each, ``absent`` on none."""

    name: str
    ages: tuple[float, ...]  # each connection's switch time (s after the first)
    end_at: Callable[[int, float], float]  # connection index, start -> end time
    rst: bool
    primary: str | None
    absent: tuple[str, ...]
    busy: bool = False  # a frame every 5 s until just before the end (else silent)

    @property
    def triggered(self) -> set[str]:
        return {self.primary} if self.primary else set()


GROUP_CASES = (
    GroupCase("server reset 4 connections at one moment (a restart)", (0, 7, 13, 21),
              lambda i, start: 40.0, True, "server_reset_many", ("max_lifetime_reached",)),
    GroupCase("4 busy connections reset, each 30 s after its switch (a maximum lifetime)",
              (0, 7, 13, 21), lambda i, start: start + 30.0, True, "max_lifetime_reached",
              ("server_reset_many",), busy=True),
    GroupCase("4 silent connections reset, each 30 s after its switch: an idle timeout",
              (0, 7, 13, 21), lambda i, start: start + 30.0, True,
              "idle_timeout_after_switch", ("server_reset_many", "max_lifetime_reached")),
    GroupCase("4 connections that started and ended together: neither",
              (0, 0, 0, 0), lambda i, start: 30.0, False, None,
              ("server_reset_many", "max_lifetime_reached")),
)


@pytest.mark.parametrize("case", GROUP_CASES, ids=[c.name for c in GROUP_CASES])
def test_group_case(case: GroupCase, tmp_path: Path) -> None:
    conversations = []
    for i, start in enumerate(case.ages):
        conv = Conversation(client=("10.0.0.1", 50000 + i), server=("10.0.0.2", 80),
                            start=1_700_000_000 + start)
        switched(*WORKED)(conv)
        elapsed = 0.01
        while case.busy and elapsed + 5.0 < case.end_at(i, start) - start:
            conv.server_ws_frame(Opcode.TEXT, b"tick", delay=5.0)
            elapsed += 5.0
        silence = case.end_at(i, start) - (start + elapsed)
        if case.rst:
            conv.server_rst(silence)
        else:
            conv.server_fin(silence)
            conv.client_fin(0.001)
        conversations.append(conv)
    path = tmp_path / "group.pcap"
    write_pcap(path, conversations)
    diagnoses = analyze_life(path)
    assert len(diagnoses) == len(case.ages)
    for d in diagnoses:
        ids = [f.check for f in d.findings]
        assert d.verdict is DROPPED, ids
        if case.primary is not None:
            assert ids[0] == case.primary, [(f.check, f.found) for f in d.findings]
        assert not set(case.absent) & set(ids), ids


def test_a_close_frame_is_read_at_the_end_of_a_tail_whatever_came_before() -> None:
    from analyzer.life.close import close_at_end
    from tests.builder import ws_close_payload, ws_frame

    close_frame = ws_frame(Opcode.CLOSE, ws_close_payload(1011, "oops"), mask=True)
    data = ws_frame(Opcode.TEXT, b"\x88\x02" * 50)  # 0x88 bytes inside a data frame
    assert close_at_end((data + close_frame)[-256:]) == (1011, "oops")
    assert close_at_end(data[-256:]) is None
    assert close_at_end(ws_frame(Opcode.CLOSE, b"")) == (None, "")
