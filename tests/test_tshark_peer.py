"""Wireshark as referee: the upgrade exchanges tshark's HTTP dissector finds equal ours.

For every bundled capture (captures/) and every capture of ../shared/real-world, tshark is run
once with TCP reassembly (out-of-order included) and HTTP header desegmentation on, HTTP
forced on every port that may carry it (the server port of every SYN plus the server ports of
our own attempts, so no port table is kept by hand) and the HTTP heuristic on for the rest.
From its requests and responses we build the upgrade exchanges by *our* definition
(analyzer/exchange/relevance.py, restated here over tshark's fields and RFC 9110 list syntax),
pairing requests with final responses per TCP stream in order, and compare them with our
attempts: the frame that completed each head (tshark reports a reassembled PDU in its last
frame; body desegmentation is off so that is the end of the head, like our ``last_frame``),
method, target, status, and the Upgrade and Connection tokens of both heads. The ordinary
exchanges (which we only count) are compared by number.

Every difference must be explained in one of the tables below, keyed by file and frame:
EXCEPTIONS where tshark is wrong or we deliberately differ, ORDINARY_EXCEPTIONS for ordinary
exchanges only tshark counts, ANALYZER_BUGS where we are wrong (a strict xfail until fixed).
An entry that no longer matches a difference fails the test, so the tables cannot rot.
TCP-only attempts (refused or unanswered SYNs) carry no HTTP and are not compared.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# OFFER_FIELDS: our definition of an upgrade offer, applied to tshark's rows as well; the
# usual WebSocket paths, where a plain request answered 4xx is a failed attempt
from analyzer.exchange.relevance import OFFER_FIELDS, is_websocket_path
from analyzer.http.message import RequestHead, ResponseHead
from analyzer.pipeline import Analysis, analyze
from analyzer.source import CaptureWarning, read_captures

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
REAL_WORLD = ROOT.parent / "shared" / "real-world"
TSHARK = shutil.which("tshark")
TIMEOUT = 60  # seconds per tshark run; the largest capture (gnutella, 3905 frames) takes < 1 s

# (file as listed by _captures, key frame) -> why tshark and we differ on that upgrade
# exchange. The key frame completes the request head (the response head when no request).
EXCEPTIONS: dict[tuple[str, int], str] = {
    # "CONNECT mailin03.sul.t-online.de:25 / HTTP/1.0": a SP inside the request-target makes
    # the request-line invalid (RFC 9112 §3). tshark splits at the first SP only (target
    # "…:25", version "/ HTTP/1.0", not a version); we take the last SP as the end of the
    # target (version HTTP/1.0, target "…:25 /") and report connect_target_invalid.
    ("zeek/connect-with-smtp.pcap", 4):
        "SP inside the CONNECT target: tshark's version is '/ HTTP/1.0', ours HTTP/1.0",
    # Frames 4-6 are an SMTP banner, EHLO/STARTTLS and two 220s; frame 8 is the server
    # sending "HTTP/1.1 101\r\nUpgrade:h2c" (fuzzed). tshark only parses it because port 25 is
    # forced to HTTP here (every SYN's port is); the client never spoke HTTP, so there is no
    # HTTP exchange to list (RFC 9110 §15.2.2: 101 answers a request's Upgrade).
    ("suricata-verify/protocol-change-failed-event/input.pcap", 8):
        "a 101 on an SMTP connection: not HTTP, tshark only sees it because port 25 is forced",
}

# (file, frame tshark reports the ordinary exchange at) -> why only tshark counts it.
ORDINARY_EXCEPTIONS: dict[tuple[str, int], str] = {
    # After "CONNECT ... 200" the bytes are the client's conversation with the target, not
    # with the proxy; tshark keeps dissecting the tunnel as HTTP on the forced port 8001.
    ("suricata-verify/http-connect/http-connect-fragmented/input.pcap", 11):
        "a GET inside the established CONNECT tunnel (tunnelled traffic is not an exchange)",
    # "HTTP/1.1\x10101 Switching Protocols" (fuzzed: 0x10 instead of SP) is no status-line
    # (RFC 9112 §4: HTTP-version SP status-code SP [reason-phrase]); tshark makes it a
    # response with status 0 and reason "Protocols".
    ("suricata-verify/transform-base64-7296/input.pcap", 31):
        "a malformed status line tshark reads as status 0",
    # A TLS ClientHello sent to a cleartext aiohttp port, answered "HTTP/1.0 400 Bad Request ...
    # Received HTTPS traffic on an HTTP port": an answer with no HTTP request before it. tshark
    # counts the lone response; to us it belongs to the TLS stage (a ClientHello, then
    # cleartext), not to the HTTP exchanges.
    ("tls_client_hello_to_aiohttp.pcap", 6):
        "a cleartext 400 answering a TLS ClientHello: no request, so no exchange",
}

# (file, key frame) -> what we get wrong there. A strict xfail: once fixed, remove the entry.
ANALYZER_BUGS: dict[tuple[str, int], str] = {}


REJECTION_HINTS = ("websocket", "upgrade", "sec-websocket")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _text(value: str) -> str:
    """tshark prints bytes that are not UTF-8 as U+FFFD, we decode latin-1: compare as '?'."""
    return _NON_ASCII.sub("?", value)


def _tokens(values: list[str]) -> tuple[str, ...]:
    """RFC 9110 §5.6.1 list elements, lowercased: split at commas, OWS (SP / HTAB) removed."""
    return tuple(_text(t.strip(" \t").lower()) for v in values for t in v.split(",")
                 if t.strip(" \t"))


@dataclass(frozen=True, slots=True)
class Exchange:
    """One upgrade exchange as either side sees it; None where a head was not seen."""

    request_frame: int | None  # the frame that completed the request head
    method: str | None
    target: str | None
    offered: tuple[str, ...]  # Upgrade tokens of the request, lowercased
    request_connection: tuple[str, ...]  # Connection tokens of the request
    response_frame: int | None  # the frame that completed the final response head
    status: int | None
    switched: tuple[str, ...]  # Upgrade tokens of the response
    response_connection: tuple[str, ...]

    @property
    def key(self) -> int:
        frame = self.request_frame if self.request_frame is not None else self.response_frame
        assert frame is not None
        return frame

    def __str__(self) -> str:
        request = (f"f{self.request_frame} {self.method} {self.target} upgrade={list(self.offered)}"
                   f" connection={list(self.request_connection)}")
        response = (f"f{self.response_frame} {self.status} upgrade={list(self.switched)}"
                    f" connection={list(self.response_connection)}")
        return f"{request} -> {response}"


# --- tshark's side -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pdu:
    """One HTTP head as tshark dissected it."""

    frame: int  # the frame that completed it
    stream: int  # tcp.stream
    method: str | None  # requests
    target: str | None
    status: int | None  # responses
    reason: str
    headers: tuple[tuple[str, str], ...]  # (lowercased name, value) in wire order
    body: str  # the body bytes tshark shows with the head (http.file_data)
    server: str = ""  # requests: destination address and port

    def values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]


def _fields(node: Any, out: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Every ``http.*`` field anywhere under ``node`` (tshark nests some under the first line)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("http.") and not isinstance(value, dict):
                out.setdefault(key, []).extend(value if isinstance(value, list) else [value])
            else:
                _fields(value, out)
    elif isinstance(node, list):
        for item in node:
            _fields(item, out)
    return out


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(" \t").lower(), value.rstrip("\r\n").strip(" \t")


def _tshark(args: list[str]) -> str:
    assert TSHARK is not None
    done = subprocess.run([TSHARK, "-n", *args], capture_output=True, text=True,
                          errors="replace", timeout=TIMEOUT, check=True)
    return done.stdout


def _server_ports(path: Path) -> set[int]:
    """The server port of every SYN (and SYN-ACK) in the capture, by tshark's reading."""
    out = _tshark(["-r", str(path), "-Y", "tcp.flags.syn == 1", "-T", "fields",
                   "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.ack"])
    ports: set[int] = set()
    for line in out.splitlines():
        src, dst, ack = line.split("\t")
        ports.add(int(src) if ack in ("1", "True") else int(dst))
    return ports


def tshark_pdus(path: Path, ports: set[int]) -> list[Pdu]:
    """Every HTTP head tshark finds over TCP, in frame order (several per frame possible)."""
    args = [
        "-r", str(path),
        "-o", "tcp.reassemble_out_of_order:TRUE",
        "-o", "tcp.desegment_tcp_streams:TRUE",
        "-o", "http.desegment_headers:TRUE",
        "-o", "http.desegment_body:FALSE",  # report a head in the frame that completes it
        "--enable-heuristic", "http_tcp",
    ]
    for port in sorted(ports):
        args += ["-d", f"tcp.port=={port},http"]
    args += ["-Y", "tcp && (http.request || http.response)",
             "-T", "json", "-J", "frame ip ipv6 tcp http", "--no-duplicate-keys"]
    pdus: list[Pdu] = []
    for packet in json.loads(_tshark(args) or "[]"):
        layers = packet["_source"]["layers"]
        frame = int(layers["frame"]["frame.number"])
        tcp = layers["tcp"]
        inner = tcp[-1] if isinstance(tcp, list) else tcp
        stream = int(inner["tcp.stream"])
        ip = layers.get("ipv6") or layers.get("ip") or {}
        ip = ip[-1] if isinstance(ip, list) else ip
        server = f"{ip.get('ip.dst') or ip.get('ipv6.dst')}:{inner['tcp.dstport']}"
        http = layers["http"]
        for layer in http if isinstance(http, list) else [http]:
            f = _fields(layer, {})
            if "http.request.method" in f:
                lines = f.get("http.request.line", [])
                pdus.append(Pdu(frame, stream, f["http.request.method"][0],
                                f.get("http.request.uri", [""])[0], None, "",
                                tuple(_header(v) for v in lines), "", server))
            elif "http.response.code" in f:
                lines = f.get("http.response.line", [])
                pdus.append(Pdu(frame, stream, None, None, int(f["http.response.code"][0]),
                                f.get("http.response.phrase", [""])[0],
                                tuple(_header(v) for v in lines),
                                " ".join(f.get("http.file_data", []))))
    return pdus


def _offers(pdu: Pdu) -> bool:
    if pdu.method is not None and pdu.method.upper() == "CONNECT":
        return True
    if any(name in OFFER_FIELDS for name, _ in pdu.headers):
        return True
    return "upgrade" in _tokens(pdu.values("connection"))


def _talks_about_upgrade(pdu: Pdu) -> bool:
    assert pdu.status is not None
    if pdu.status in (101, 426):
        return True
    if pdu.status < 400:
        return False
    if pdu.values("sec-websocket-version") or pdu.values("sec-websocket-accept"):
        return True
    text = f"{pdu.reason} {pdu.body[:1024]}".lower()
    return any(hint in text for hint in REJECTION_HINTS)


def _path(request: Pdu) -> tuple[str, str]:
    return request.server, (request.target or "").split("?", 1)[0]


def _asks_websocket(request: Pdu) -> bool:
    return bool(request.values("sec-websocket-key")) or "websocket" in _tokens(
        request.values("upgrade"))


def tshark_exchanges(pdus: list[Pdu]) -> tuple[dict[int, list[Exchange]], list[int]]:
    """Requests paired with final responses per stream in order: the upgrade exchanges by key
    frame, and the key frames of the ordinary ones."""
    pending: dict[int, list[Pdu]] = {}
    pairs: list[tuple[Pdu | None, Pdu | None]] = []
    for pdu in pdus:
        queue = pending.setdefault(pdu.stream, [])
        if pdu.method is not None:
            queue.append(pdu)
        elif pdu.status is not None and 100 <= pdu.status < 200 and pdu.status != 101:
            continue  # interim: the final response is still to come
        else:
            pairs.append((queue.pop(0) if queue else None, pdu))
    pairs += [(request, None) for queue in pending.values() for request in queue]
    # A plain request answered 4xx is a failed attempt when WebSocket upgrade requests go to
    # the same server and path in the capture, or its path is a usual WebSocket one.
    upgraded = {_path(p) for p in pdus if p.method is not None and _asks_websocket(p)}
    upgrades: dict[int, list[Exchange]] = {}
    ordinary: list[int] = []
    for request, response in pairs:
        plain_to_websocket = (
            request is not None and response is not None and response.status is not None
            and 400 <= response.status < 500
            and (_path(request) in upgraded or is_websocket_path(_path(request)[1]))
            and "transport=polling" not in (request.target or "")  # Engine.IO's polls
        )
        if not ((request is not None and _offers(request))
                or (response is not None and _talks_about_upgrade(response))
                or plain_to_websocket):
            head = request or response
            assert head is not None
            ordinary.append(head.frame)
            continue
        exchange = Exchange(
            request.frame if request else None,
            request.method if request else None,
            _text(request.target or "") if request else None,
            _tokens(request.values("upgrade")) if request else (),
            _tokens(request.values("connection")) if request else (),
            response.frame if response else None,
            response.status if response else None,
            _tokens(response.values("upgrade")) if response else (),
            _tokens(response.values("connection")) if response else (),
        )
        upgrades.setdefault(exchange.key, []).append(exchange)
    return upgrades, ordinary


# --- our side ----------------------------------------------------------------------------


def our_exchanges(path: Path) -> tuple[dict[int, list[Exchange]], int, set[int]]:
    """Our HTTP attempts by key frame, how many ordinary exchanges we counted, and the server
    ports of all our attempts."""
    warnings: list[CaptureWarning] = []
    # HTTP/1 only, as tshark's HTTP dissector: the HTTP/2 stage has its own referee
    # (tests/test_h2_live.py), so connections starting with the HTTP/2 preface stay ignored.
    run = Analysis(handlers={})
    out: dict[int, list[Exchange]] = {}
    ports: set[int] = set()
    for d in analyze(read_captures([str(path)], warnings), run):
        a = d.attempt
        if a.tls is not None:  # at or inside the TLS layer: tshark without keys sees no HTTP
            continue
        ports.add(a.server.port)
        if a.kind.value == "tcp":
            continue
        request, response = a.request_head, a.response_head

        def tokens(name: str, head: RequestHead | ResponseHead | None) -> tuple[str, ...]:
            return tuple(_text(t) for t in head.headers.tokens(name)) if head else ()

        exchange = Exchange(
            a.request.last_frame if a.request else None,
            request.method if request else None,
            _text(request.target) if request else None,
            tuple(_text(t) for t in d.facts.offered),
            tokens("connection", request),
            a.response.last_frame if a.response else None,
            response.status if response else None,
            tokens("upgrade", response),
            tokens("connection", response),
        )
        out.setdefault(exchange.key, []).append(exchange)
    return out, run.stats.ordinary_exchanges, ports


# --- the comparison ----------------------------------------------------------------------


def _captures() -> list[tuple[str, Path]]:
    bundled = [(p.name, p) for p in sorted(CAPTURES.glob("*.pcap*"))]
    real = sorted(REAL_WORLD.rglob("*.pcap*")) if REAL_WORLD.is_dir() else []
    return bundled + [(str(p.relative_to(REAL_WORLD)), p) for p in real]


CAPTURE_LIST = _captures()


@dataclass(frozen=True, slots=True)
class Comparison:
    ours: dict[int, list[Exchange]]  # by key frame (pipelined heads may share one)
    theirs: dict[int, list[Exchange]]
    our_ordinary: int
    their_ordinary: list[int]  # key frames

    def differences(self) -> dict[int, tuple[list[Exchange], list[Exchange]]]:
        keys = self.ours.keys() | self.theirs.keys()
        return {k: (self.ours.get(k, []), self.theirs.get(k, []))
                for k in sorted(keys) if self.ours.get(k, []) != self.theirs.get(k, [])}


def _compare(path: Path) -> Comparison:
    ours, our_ordinary, ports = our_exchanges(path)
    theirs, their_ordinary = tshark_exchanges(tshark_pdus(path, ports | _server_ports(path)))
    return Comparison(ours, theirs, our_ordinary, their_ordinary)


_POOL = ThreadPoolExecutor(max_workers=4)
# tshark is started from these threads while others analyse. CPython starts children with
# vfork, and a vfork child shares the parent's memory while the other threads run on: about
# one run in two failed with "OSError: [Errno 14] Bad address" on /usr/bin/tshark once the
# TLS captures made the overlap longer. fork is slower by a few milliseconds a run and safe.
subprocess._USE_VFORK = False  # type: ignore[attr-defined]
_RUNS: dict[Path, Future[Comparison]] = {}
_AHEAD = 4


def compare(path: Path) -> Comparison:
    """The comparison for one capture. The next few captures are started meanwhile: tshark's
    start-up (~0.2 s a run) dominates, and the runs overlap well with our own analysis."""
    start = [p for _, p in CAPTURE_LIST].index(path)
    for _, ahead in CAPTURE_LIST[start : start + _AHEAD]:
        if ahead not in _RUNS:
            _RUNS[ahead] = _POOL.submit(_compare, ahead)
    return _RUNS[path].result()


def _show(exchanges: list[Exchange]) -> str:
    return " | ".join(map(str, exchanges)) or "-"


needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not on PATH")


@needs_tshark
@pytest.mark.parametrize("name,path", CAPTURE_LIST, ids=[n for n, _ in CAPTURE_LIST])
def test_tshark_finds_the_same_upgrade_exchanges(name: str, path: Path) -> None:
    c = compare(path)
    differences = c.differences()
    unexplained = [f"frame {k}:\n  ours   {_show(o)}\n  tshark {_show(t)}"
                   for k, (o, t) in differences.items()
                   if (name, k) not in EXCEPTIONS and (name, k) not in ANALYZER_BUGS]
    assert not unexplained, "\n".join(unexplained)

    stale = [k for (n, k) in [*EXCEPTIONS, *ANALYZER_BUGS] if n == name and k not in differences]
    assert not stale, f"EXCEPTIONS/ANALYZER_BUGS entries no longer needed: frames {stale}"

    only_tshark = [k for (n, k) in ORDINARY_EXCEPTIONS if n == name]
    assert set(only_tshark) <= set(c.their_ordinary), (
        f"ORDINARY_EXCEPTIONS entries no longer needed: frames {only_tshark}; "
        f"tshark's ordinary exchanges are at {c.their_ordinary}")
    assert c.our_ordinary == len(c.their_ordinary) - len(only_tshark), (
        f"ordinary exchanges: we count {c.our_ordinary}, tshark finds "
        f"{len(c.their_ordinary)} at frames {c.their_ordinary} ({len(only_tshark)} explained)")

    bugs = [ANALYZER_BUGS[(n, k)] for (n, k) in ANALYZER_BUGS if n == name]
    if bugs:
        pytest.xfail("; ".join(bugs))


@needs_tshark
def test_the_comparison_is_not_vacuous() -> None:
    """tshark's side really finds exchanges: a broken field name would make both sides empty
    only where we find nothing too."""
    found = sum(len(compare(path).theirs) for _, path in CAPTURE_LIST)
    assert found >= 30  # 36 in the bundled captures alone


def test_every_table_entry_names_a_capture() -> None:
    names = {n for n, _ in CAPTURE_LIST}
    keys = [*EXCEPTIONS, *ORDINARY_EXCEPTIONS, *ANALYZER_BUGS]
    if not REAL_WORLD.is_dir():
        pytest.skip(f"real-world captures not present at {REAL_WORLD}")
    assert {n for n, _ in keys} <= names
