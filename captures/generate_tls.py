"""Records real TLS handshakes (wss://, https://) on loopback with the key logs the software wrote.

Run as root (tcpdump needs it):  python captures/generate_tls.py [--out DIR] [SCENARIO ...]

How it works (on top of generate.py, whose tcpdump, servers, clients and Expect it uses):
  * A throwaway CA and leaf certificates are made in a temp dir (captures/pki.py) and deleted at
    the end; only what the servers sent on the wire stays, inside the captures.
  * Each scenario starts real TLS servers (python `websockets`/`aiohttp` over `ssl`, nginx) and
    real clients (`websockets`, `aiohttp`, curl, `openssl s_client`) on 127.0.0.1 at fixed ports.
    The client writes the NSS key log (`ssl.SSLContext.keylog_filename`, `SSLKEYLOGFILE` for
    curl, `-keylogfile` for s_client) into the scenario's temp dir; it is kept as
    `captures/NAME.keys` beside `NAME.pcap` (or embedded in a pcapng Decryption Secrets Block).
  * What each side printed is recorded at run time, as in generate.py: the client's exception or
    its "connected (TLSv1.3 TLS_AES_256_GCM_SHA384) ...", the server library's log lines (the
    asyncio loop runs in debug mode, the only mode where it logs a refused handshake), nginx's
    error log, curl's and s_client's stderr.
  * What the TLS handshake showed (version, suite, SNI, ALPN, alerts) is read back from the
    capture by tshark with the key log (tls_facts.py), the way generate.py reads client ports
    back with tcpdump; a recording whose suite or version is not the one the scenario asked for is
    refused.
  * The verdict and primary reason are written by hand next to each scenario, with why (the
    handshakes that fail at the TLS layer are in tls_failures.py). The
    `tls_*` reason ids are proposals for the TLS stage: entries carry `"pending"` until that stage
    exists, and tests/test_captures.py does not check them yet. tests/test_tls_captures.py checks
    the files against tshark now.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The sibling modules, found through the line above (generate.py through tls_tools.g).
import pki as pki_module  # noqa: E402
import tls_facts  # noqa: E402
import tls_failures  # noqa: E402, F401  (registers the failing scenarios)
import tls_tools  # noqa: E402
from pki import NAME, Pki  # noqa: E402
from tls_tools import (  # noqa: E402
    SCENARIOS,
    TLS12,
    Run,
    Runner,
    TlsExpect,
    TlsScenario,
    aiohttp_get,
    aiohttp_tls_server,
    aiohttp_wss_client,
    asyncio_book,
    client_context,
    g,
    nginx_ssl_server,
    nginx_tls,
    openssl_version,
    proxy_location,
    s_client_websocket,
    scenario,
    server_context,
    wss_client,
)

HERE = g.HERE
V4 = g.V4
PENDING = ("TLS stage: expectations written for the analyzer's TLS stage (issue 11), not yet "
           "checked by tests/test_captures.py; tests/test_tls_captures.py checks the file "
           "against tshark")




# --- scenarios: succeeded ------------------------------------------------------------------------

@scenario("wss_websockets_tls13", "websockets client and server over TLS 1.3 (OpenSSL's "
          "default suite)", (18101,), suite="TLS_AES_256_GCM_SHA384", tls_version="TLS 1.3")
async def _wss_tls13(run: Run) -> list[TlsExpect]:
    async with g.websockets_server(V4, 18101, "wss13", ssl=server_context(run.pki.rsa)) as book:
        said = await wss_client(18101, "/chat", client_context(run))
    return [TlsExpect(g.endpoint(V4, 18101), "GET", "/chat", "succeeded", None,
                      "TLS 1.3, 101, one echoed message, Close 1000 from the client",
                      g.version("websockets"), g.version("websockets"), said,
                      g.websockets_session(book), notes=["ws_closed_normally"], status=101)]

# (file stem, OpenSSL name, IANA name, leaf): every TLS 1.2 suite the issue names that OpenSSL
# offers. OpenSSL negotiates encrypt_then_mac (RFC 7366) for the CBC suites by default.
SUITES_12 = [
    ("ecdhe_rsa_aes128_gcm", "ECDHE-RSA-AES128-GCM-SHA256",
     "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "rsa"),
    ("ecdhe_ecdsa_aes128_gcm", "ECDHE-ECDSA-AES128-GCM-SHA256",
     "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ecdsa"),
    ("ecdhe_rsa_aes256_gcm", "ECDHE-RSA-AES256-GCM-SHA384",
     "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "rsa"),
    ("ecdhe_rsa_chacha20", "ECDHE-RSA-CHACHA20-POLY1305",
     "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "rsa"),
    ("ecdhe_rsa_aes128_cbc_sha", "ECDHE-RSA-AES128-SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
     "rsa"),
    ("ecdhe_rsa_aes128_cbc_sha256", "ECDHE-RSA-AES128-SHA256",
     "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "rsa"),
    ("rsa_aes128_gcm", "AES128-GCM-SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256", "rsa"),
]


def _tls12_suite(port: int, openssl_name: str, leaf: str) -> Callable[
        [Run], Awaitable[list[TlsExpect]]]:
    async def run_suite(run: Run) -> list[TlsExpect]:
        # Python's default server list leaves out SHA-1 MACs and RSA key exchange; OpenSSL's
        # DEFAULT keeps them, as many servers do. The client offers the one suite.
        context = server_context(getattr(run.pki, leaf), ciphers="DEFAULT")
        async with g.websockets_server(V4, port, f"wss-{port}", ssl=context) as book:
            said = await wss_client(port, "/chat",
                                    client_context(run, maximum=TLS12, ciphers=openssl_name))
        return [TlsExpect(g.endpoint(V4, port), "GET", "/chat", "succeeded", None,
                          f"TLS 1.2 {openssl_name}; 101, one echoed message, Close 1000",
                          g.version("websockets") + f" (client: max TLS 1.2, {openssl_name})",
                          g.version("websockets"), said, g.websockets_session(book),
                          notes=["ws_closed_normally"], status=101)]

    return run_suite


for _index, (_stem, _openssl, _iana, _leaf) in enumerate(SUITES_12):
    scenario(f"wss_tls12_{_stem}", f"websockets over TLS 1.2 with {_openssl} ({_iana})",
             (18102 + _index,), suite=_iana, tls_version="TLS 1.2")(
        _tls12_suite(18102 + _index, _openssl, _leaf))


@scenario("wss_aiohttp", "aiohttp client and server over TLS 1.3: a WebSocket, then a plain GET "
          "to the same route (400)", (18109,), tls_version="TLS 1.3")
async def _wss_aiohttp(run: Run) -> list[TlsExpect]:
    context = server_context(run.pki.rsa)
    async with aiohttp_tls_server(18109, context) as book:
        said = await aiohttp_wss_client(f"wss://{NAME}:18109/ws", client_context(run))
        status, plain = await aiohttp_get(f"https://{NAME}:18109/ws", client_context(run))
    server = g.version("aiohttp")
    return [
        TlsExpect(g.endpoint(V4, 18109), "GET", "/ws", "succeeded", None,
                  "TLS 1.3, 101, one echoed message, Close 1000 from the client",
                  g.version("aiohttp"), server, said, book.said(), notes=["ws_closed_normally"],
                  status=101),
        TlsExpect(g.endpoint(V4, 18109), "GET", "/ws", "failed", "request_without_upgrade",
                  f"a plain GET (browser tab) to the WebSocket route over TLS: aiohttp "
                  f"answered {status}", g.version("aiohttp") + " (plain GET)", server, plain,
                  book.said(), status=status),
    ]


# Python's ssl cannot choose TLS 1.3 suites: openssl s_client offers only the one asked for.
SUITES_13 = [("aes128_gcm", "TLS_AES_128_GCM_SHA256"), ("aes256_gcm", "TLS_AES_256_GCM_SHA384"),
             ("chacha20", "TLS_CHACHA20_POLY1305_SHA256")]


def _tls13_suite(port: int, suite: str) -> Callable[[Run], Awaitable[list[TlsExpect]]]:
    async def run_suite(run: Run) -> list[TlsExpect]:
        async with g.websockets_server(V4, port, f"wss-{port}",
                                       ssl=server_context(run.pki.rsa)) as book:
            said = await s_client_websocket(run, port, "/chat", "-tls1_3", "-ciphersuites",
                                            suite)
        return [TlsExpect(g.endpoint(V4, port), "GET", "/chat", "succeeded", None,
                          f"TLS 1.3 {suite}; a WebSocket handshake typed into s_client, 101, "
                          "one echoed message, Close 1000 both ways",
                          openssl_version() + " s_client (a WebSocket request on stdin)",
                          g.version("websockets"), said, g.websockets_session(book),
                          notes=["ws_closed_normally"], status=101)]

    return run_suite


for _index, (_stem, _suite) in enumerate(SUITES_13):
    scenario(f"wss_tls13_{_stem}", f"openssl s_client -ciphersuites {_suite} sending a "
             "WebSocket handshake to a websockets server over TLS 1.3", (18111 + _index,),
             suite=_suite, tls_version="TLS 1.3")(_tls13_suite(18111 + _index, _suite))


def _resumption(port: int, version_option: str, tls: str) -> Runner:
    async def run_resumed(run: Run) -> list[TlsExpect]:
        session = run.tmp / "session.pem"
        context = server_context(run.pki.rsa)
        async with g.websockets_server(V4, port, f"resume-{port}", ssl=context) as book:
            first = await s_client_websocket(run, port, "/first", version_option,
                                             "-sess_out", str(session))
            first_said = g.websockets_session(book)
            book.clear()
            second = await s_client_websocket(run, port, "/resumed", version_option,
                                              "-sess_in", str(session))
        client = openssl_version() + " s_client (a WebSocket request on stdin)"
        return [
            TlsExpect(g.endpoint(V4, port), "GET", "/first", "succeeded", None,
                      f"{tls} full handshake; s_client saved the session (-sess_out); 101, "
                      "echo, Close 1000", client, g.version("websockets"), first, first_said,
                      notes=["ws_closed_normally"], status=101),
            TlsExpect(g.endpoint(V4, port), "GET", "/resumed", "succeeded", None,
                      f"{tls} resumed handshake (-sess_in): no certificate on the wire; the "
                      "key log has this connection's own client random; 101, echo, Close 1000",
                      client, g.version("websockets"), second, g.websockets_session(book),
                      notes=["ws_closed_normally"], status=101),
        ]

    return run_resumed


scenario("wss_tls13_resumed", "two s_client WebSocket handshakes to websockets over TLS 1.3, "
         "the second resuming the first's session (PSK from a ticket)", (18134,),
         tls_version="TLS 1.3", resumes=True)(_resumption(18134, "-tls1_3", "TLS 1.3"))
scenario("wss_tls12_resumed", "two s_client WebSocket handshakes to websockets over TLS 1.2, "
         "the second resuming the first's session (session ticket, abbreviated handshake)",
         (18135,), tls_version="TLS 1.2", resumes=True)(_resumption(18135, "-tls1_2", "TLS 1.2"))


# Run with `ip netns exec`, in separate processes: argv = captures dir, address, port, then
# the server's chain and key / the client's CA, key log and Cookie.
NETNS_TLS_SERVER = """
import asyncio, ssl, sys
sys.path.insert(0, sys.argv[1])
import tls_tools

context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[4], sys.argv[5])

async def main() -> None:
    async with tls_tools.g.websockets_server(sys.argv[2], int(sys.argv[3]), "netns-tls",
                                             ssl=context) as book:
        print("listening", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the generator closes stdin
    print(tls_tools.g.websockets_session(book), flush=True)

asyncio.run(asyncio.wait_for(main(), 20))
"""
NETNS_TLS_CLIENT = """
import asyncio, ssl, sys
sys.path.insert(0, sys.argv[1])
import tls_tools

context = ssl.create_default_context(cafile=sys.argv[4])
context.keylog_filename = sys.argv[5]
print(asyncio.run(tls_tools.wss_client(int(sys.argv[3]), "/big", context, address=sys.argv[2],
                                       additional_headers={"Cookie": sys.argv[6]})))
"""


@scenario("wss_large_headers_netns", "websockets over TLS 1.3 with a 6 KB Cookie across a veth "
          "pair with MTU 1500 (two network namespaces): the request's TLS record spans "
          "several TCP segments", (18136,), interface=g.VETH_CLIENT, netns=True,
          min_record_segments=3, tls_version="TLS 1.3")
async def _wss_large_headers(run: Run) -> list[TlsExpect]:
    cookie = "; ".join(f"c{i}={os.urandom(48).hex()}" for i in range(60))  # ~5.9 KB
    server = await g.in_namespace(g.NS_SERVER, NETNS_TLS_SERVER, g.NET_SERVER, "18136",
                                  str(run.pki.rsa.chain), str(run.pki.rsa.key))
    try:
        assert server.stdout is not None
        ready = await asyncio.wait_for(server.stdout.readline(), 10)
        if ready.strip() != b"listening":
            raise RuntimeError(f"wss_large_headers_netns: the server said {ready!r}")
        client = await g.in_namespace(g.NS_CLIENT, NETNS_TLS_CLIENT, g.NET_SERVER, "18136",
                                      str(run.pki.ca), str(run.keylog), cookie)
        assert client.stdin is not None
        client.stdin.close()
        said = await g.finish(client, g.CLIENT_TIMEOUT + 5)
        await asyncio.sleep(0.2)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server_said = await g.finish(server, 5)
    return [TlsExpect(g.endpoint(g.NET_SERVER, 18136), "GET", "/big", "succeeded", None,
                      f"a {len(cookie)}-byte Cookie in one TLS record split over MTU-sized "
                      "segments; websockets switched, echoed a message, Close 1000",
                      g.version("websockets") + f" (Cookie of {len(cookie)} bytes)",
                      g.version("websockets"), said, server_said, notes=["ws_closed_normally"],
                      status=101)]


@scenario("wss_nginx_proxy_ok", "nginx terminating TLS in front of a cleartext websockets "
          "backend, ALPN http/1.1 (as browsers offer for WebSockets); both legs (-i any)",
          (18114, 18115), tls_ports=(18114,), interface="any", tls_version="TLS 1.3")
async def _wss_nginx_ok(run: Run) -> list[TlsExpect]:
    servers = nginx_ssl_server(run, 18114, proxy_location(18115, upgrade=True))
    async with g.websockets_server(V4, 18115, "behind-nginx-tls") as book, \
            nginx_tls(18114, servers) as log:
        said = await wss_client(18114, "/chat", client_context(run, alpn=["http/1.1"]))
        await asyncio.sleep(0.2)
        proxy = log()
    both = f"nginx: {proxy} || backend: {g.websockets_session(book)}"
    return [
        TlsExpect(g.endpoint(V4, 18114), "GET", "/chat", "succeeded", None,
                  "client leg (TLS): 101 relayed by nginx, echo, Close 1000",
                  g.version("websockets"), g.nginx_version() + " -> " + g.version("websockets"),
                  said, both, notes=["ws_closed_normally"], status=101),
        TlsExpect(g.endpoint(V4, 18115), "GET", "/chat", "succeeded", None,
                  "backend leg (cleartext): nginx's request upgraded by websockets",
                  g.nginx_version(), g.version("websockets"), said, both,
                  notes=["ws_closed_normally"], status=101),
    ]


@scenario("wss_nginx_proxy_no_upgrade", "nginx terminating TLS without proxy_set_header "
          "Upgrade/Connection: the backend answers 426; both legs (-i any)", (18116, 18117),
          tls_ports=(18116,), interface="any", tls_version="TLS 1.3")
async def _wss_nginx_stripped(run: Run) -> list[TlsExpect]:
    servers = nginx_ssl_server(run, 18116, proxy_location(18117, upgrade=False))
    async with g.websockets_server(V4, 18117, "stripped-tls") as book, \
            nginx_tls(18116, servers) as log:
        said = await wss_client(18116, "/chat", client_context(run))
        await asyncio.sleep(0.2)
        proxy = log()
    both = f"nginx: {proxy} || backend: {g.websockets_rejection(book)}"
    return [
        TlsExpect(g.endpoint(V4, 18116), "GET", "/chat", "failed", "response_upgrade_required",
                  "client leg (TLS): a valid request; nginx relayed the backend's 426",
                  g.version("websockets"), g.nginx_version() + " -> " + g.version("websockets"),
                  said, both, status=426),
        TlsExpect(g.endpoint(V4, 18117), "GET", "/chat", "failed", "upgrade_header_missing",
                  "backend leg (cleartext): nginx dropped Upgrade and sent Connection: close; "
                  "websockets answered 426", g.nginx_version(), g.version("websockets"), said,
                  both, status=426),
    ]


@scenario("wss_dsb", "websockets over TLS 1.3, the key log embedded in the pcapng as a "
          "Decryption Secrets Block (editcap --inject-secrets)", (18131,), dsb=True,
          tls_version="TLS 1.3")
async def _wss_dsb(run: Run) -> list[TlsExpect]:
    async with g.websockets_server(V4, 18131, "dsb", ssl=server_context(run.pki.rsa)) as book:
        said = await wss_client(18131, "/dsb", client_context(run))
    return [TlsExpect(g.endpoint(V4, 18131), "GET", "/dsb", "succeeded", None,
                      "TLS 1.3, 101, echo, Close 1000; keys only inside the file (DSB)",
                      g.version("websockets"), g.version("websockets"), said,
                      g.websockets_session(book), notes=["ws_closed_normally"], status=101)]


@scenario("tls_no_keylog", "websockets over TLS 1.3 and over TLS 1.2, ALPN http/1.1, with no "
          "key log anywhere: two sessions that cannot be inspected", (18132, 18137),
          keylog=False)
async def _tls_no_keylog(run: Run) -> list[TlsExpect]:
    expects = []
    for port, maximum in ((18132, None), (18137, TLS12)):
        context = server_context(run.pki.rsa, alpn=["http/1.1"])
        async with g.websockets_server(V4, port, f"nokey-{port}", ssl=context) as book:
            said = await wss_client(port, "/hidden", client_context(run, alpn=["http/1.1"],
                                                                   maximum=maximum))
            await asyncio.sleep(0.2)
        tls = "TLS 1.2: SNI, certificate and selected ALPN in cleartext" if maximum else \
            "TLS 1.3: SNI and offered ALPN in cleartext, the rest encrypted"
        expects.append(TlsExpect(
            g.endpoint(V4, port), "GET", "/hidden", "succeeded", None,
            f"what the software did (101, echo, Close 1000); {tls}; without a key the analyzer "
            "lists no attempt: it counts an uninspected session",
            g.version("websockets") + " (ALPN http/1.1" + (", max TLS 1.2)" if maximum else ")"),
            g.version("websockets"), said, g.websockets_session(book),
            notes=["ws_closed_normally"], status=101))
    return expects


# --- running -------------------------------------------------------------------------------------


def run_scenario(item: TlsScenario, out: Path, pki: Pki) -> dict[str, Any]:
    """Records one scenario into `out` (capture and key log); returns its expected.json entry."""
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{item.name}.pcap"
    keys_file = out / f"{item.name}.keys"
    with tempfile.TemporaryDirectory(prefix=f"captures-{item.name}-") as tmp:
        run = Run(pki, Path(tmp), Path(tmp, "keys"), tls_tools.ServerLoopLog())
        hosts, namespace = ((g.NET_CLIENT, g.NET_SERVER), g.NS_CLIENT) if item.netns else \
            ((V4, g.V6), None)
        with g.veth_pair() if item.netns else contextlib.nullcontext(), \
                g.tcpdump(raw, item.interface, list(item.ports), hosts, namespace), \
                asyncio_book(run.loop_log):
            expects = asyncio.run(asyncio.wait_for(item.run(run), g.SCENARIO_TIMEOUT),
                                  debug=True)
        secrets = run.keylog.read_text() if run.keylog.exists() else ""
        logged = [line for line in secrets.splitlines() if line and not line.startswith("#")]
        keys_file.unlink(missing_ok=True)
        path, keylog, embedded = raw, None, False
        if item.dsb:
            path = raw.with_suffix(".pcapng")
            subprocess.run(["editcap", "--inject-secrets", f"tls,{run.keylog}", str(raw),
                            str(path)], check=True, capture_output=True, timeout=30)
            raw.unlink()
            embedded = True
        elif item.keylog and logged:
            keys_file.write_text(secrets)
            keylog = keys_file.name
        facts = tls_facts.sessions(path, keys_file if keylog else None, item.tls_ports)
        if keylog or embedded:  # whether the analyzer will find this session's key
            for session in facts.values():
                session["in_keylog"] = any(session["client_random"] in line for line in logged)
    opened = g.syns(path)
    for expect in expects:
        for index, (client, server) in enumerate(opened):
            if server == expect.server:
                expect.client = client
                del opened[index]
                break
        else:
            raise RuntimeError(f"{item.name}: no connection to {expect.server} in the capture")
        expect.tls = facts.get((expect.client or "", expect.server))
        tls_tools.check_outcome(item, expect)
    if item.min_record_segments:
        spans = tls_facts.record_segments(path, keys_file if keylog else None, item.tls_ports)
        if max(spans, default=0) < item.min_record_segments:
            raise RuntimeError(f"{item.name}: the longest client record took {max(spans)} "
                               f"segment(s), not the {item.min_record_segments}+ wanted")
        for expect in expects:
            expect.why += f" (client records spanning {sorted(set(spans))} segments, by tshark)"
    resumed = [bool(e.tls and e.tls["resumed"]) for e in expects]
    if item.resumes and resumed != [False] * (len(resumed) - 1) + [True]:
        raise RuntimeError(f"{item.name}: the second handshake did not resume the first")
    entry: dict[str, Any] = {
        "file": path.name,
        "generator": "captures/generate_tls.py",
        "description": item.description,
        "link": ("Linux cooked (tcpdump -i any)" if item.interface == "any" else
                 "Ethernet (veth, MTU 1500)" if item.netns else "loopback"),
        "format": "pcapng" if item.dsb else "pcap",
        "pending": PENDING,
        "keylog": keylog,
        "secrets_embedded": embedded,
        "tls_ports": list(item.tls_ports),
        "attempts": [asdict(expect) for expect in expects],
    }
    if not item.keylog and all(e.tls and e.tls["version"] for e in expects):
        # Sessions without a key: the analyzer is expected to count and summarise them, not
        # to list them as attempts. What the software did is kept with each one.
        entry["uninspected"] = entry.pop("attempts")
        entry["attempts"] = []
    return entry


def generate(names: list[str] | None, out: Path) -> list[dict[str, Any]]:
    """Records the named scenarios (all by default) into `out`; returns their entries."""
    chosen = [SCENARIOS[name] for name in (names or list(SCENARIOS))]
    with tempfile.TemporaryDirectory(prefix="captures-pki-") as tmp:
        pki = pki_module.make_pki(Path(tmp))
        return [run_scenario(item, out, pki) for item in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(SCENARIOS)}")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root: tcpdump needs it")
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    entries = generate(args.scenarios or None, args.out)
    index = args.out / "expected.json"
    document: dict[str, Any] = {"generated_by": "captures/generate.py", "captures": []}
    if index.exists():  # the cleartext entries (generate.py) and earlier TLS ones stay
        document = json.loads(index.read_text())
    previous = {e["file"]: e for e in document["captures"]}
    if not args.scenarios:  # a full run drops TLS entries of scenarios that no longer exist
        previous = {k: e for k, e in previous.items()
                    if e.get("generator") != "captures/generate_tls.py"}
    for entry in entries:
        previous[entry["file"]] = entry
        for attempt in entry["attempts"]:
            print(f"{entry['file']}: {attempt['server']} {attempt['verdict']} "
                  f"{attempt['reason']} {attempt['tls']}\n    client: {attempt['client_said']}"
                  f"\n    server: {attempt['server_said']}")
    document["captures"] = [previous[k] for k in sorted(previous)]
    index.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
