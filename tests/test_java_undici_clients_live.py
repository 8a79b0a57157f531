"""Java's WebSocket client (java.net.http.HttpClient's newWebSocketBuilder) and Node's built-in
WebSocket (undici's, Node 20 with --experimental-websocket), run for real on ``lo`` against
the raw server of tests/helpers.py (FAILING_SERVER: each path fails one way) and captured by
tcpdump: for each failure, the attribution's line for that client (attribution/client_texts.py)
must be what the client printed, and the client must be named from its User-Agent
("Java-http-client/17...", "node").

What each prints: Java, the exception its buildAsync future failed with (or its Listener's
onError after the switch) as a stack trace shows it, "CLASS: MESSAGE (Caused by: CAUSE)";
Node, the message of the first error event (an ErrorEvent: a failed handshake fires no close
event in Node 20), or the uncaught exception that ended the process. A client that gives up
on its own does so after 1 s: Java's connectTimeout (it bounds the handshake too), Node's
application calling close() (undici has no timer of its own). "(accepts it: no error)": the
client opened the connection and nothing failed. A line's ``...`` stands for what varies, its
last ``(...)`` for what the client did first or may add (tests/helpers.py `printed_as`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.attribution.clients import JAVA_WITHOUT_UPGRADE
from analyzer.verdict import Diagnosis
from tests.helpers import (
    FAILING_SERVER,
    analyze_pcap,
    capture_ports,
    client_lines,
    free_port,
    printed_as,
    start_raw_server,
    stop_group,
)

HOST = "127.0.0.1"
JAVA, NODE = "Java HttpClient", "Node WebSocket (undici)"
ACCEPTS = "(accepts it: no error)"
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="capturing on lo needs root"),
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump"),
    pytest.mark.timeout(90),
]

# Each argument "URL|SUBPROTOCOLS|FOLLOW" is one case, run in turn with a client of its own
# (redirects followed when FOLLOW is "yes", never by default); prints one JSON object per case:
# {"url": URL, "printed": what it printed}, non-ASCII escaped (Java's own output encoding
# would turn it into "?").
JAVA_CLIENT = r"""
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.*;

public class Cases {
    static String shown(Throwable t) {
        while ((t instanceof CompletionException || t instanceof ExecutionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t.getCause() == null ? t.toString() : t + " (Caused by: " + t.getCause() + ")";
    }

    static String json(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') out.append('\\').append(c);
            else if (c < 0x20 || c > 0x7e) out.append(String.format("\\u%04x", (int) c));
            else out.append(c);
        }
        return out.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        for (String arg : args) {
            String[] c = arg.split("\\|", -1);
            HttpClient client = HttpClient.newBuilder().followRedirects(c[2].equals("yes")
                    ? HttpClient.Redirect.NORMAL : HttpClient.Redirect.NEVER).build();
            CompletableFuture<String> after = new CompletableFuture<>();
            WebSocket.Listener listener = new WebSocket.Listener() {
                public CompletionStage<?> onText(WebSocket ws, CharSequence d, boolean last) {
                    ws.request(1);
                    return null;
                }
                public CompletionStage<?> onClose(WebSocket ws, int code, String reason) {
                    after.complete(code == 1000 ? "(accepts it: no error)"
                                   : "Listener.onClose: " + code + " " + reason);
                    return null;
                }
                public void onError(WebSocket ws, Throwable error) {
                    after.complete("Listener.onError: " + shown(error));
                }
            };
            WebSocket.Builder builder = client.newWebSocketBuilder()
                    .connectTimeout(Duration.ofSeconds(1));
            if (!c[1].isEmpty()) {
                String[] offered = c[1].split(",");
                builder.subprotocols(offered[0], Arrays.copyOfRange(offered, 1, offered.length));
            }
            String printed;
            try {
                WebSocket ws = builder.buildAsync(URI.create(c[0]), listener)
                        .get(10, TimeUnit.SECONDS);
                ws.sendText("hello", true);
                try {
                    printed = after.get(1500, TimeUnit.MILLISECONDS);
                } catch (TimeoutException quiet) {
                    printed = "(accepts it: no error)";
                }
                Thread.sleep(300);  // (the JDK's own Close after an error goes first)
                ws.abort();
            } catch (ExecutionException | TimeoutException error) {
                printed = shown(error);
            }
            System.out.println("{\"url\": " + json(c[0]) + ", \"printed\": " + json(printed) + "}");
        }
    }
}
"""
# argv[1]: a JSON list of [url, subprotocols]; prints one JSON object per case as above. A case
# that neither opened nor failed after 1 s is given up (close(), as an application does).
NODE_CLIENT = r"""
const one = ([url, protocols]) => new Promise((resolve) => {
  let printed = null;
  const done = (text) => {
    if (printed !== null) return;
    printed = text;
    clearTimeout(giveUp);
    console.log(JSON.stringify({url, printed}));
    setTimeout(resolve, 100);  // (its last events)
  };
  const ws = new WebSocket(url, protocols ? protocols.split(',') : []);
  const giveUp = setTimeout(() => ws.close(), 1000);
  ws.onopen = () => {
    clearTimeout(giveUp);
    ws.send('hello');
    setTimeout(() => { done('(accepts it: no error)'); ws.close(); }, 1500);
  };
  ws.onerror = (event) => done(event.message);
  ws.onclose = (event) => done(event.code === 1000 ? '(accepts it: no error)'
                                                   : `close event: code ${event.code}`);
});
(async () => {
  for (const c of JSON.parse(process.argv[1])) await one(c);
})();
"""

# (path, subprotocols offered, follow redirects): the paths of FAILING_SERVER; "/refused" is a
# port nobody listens on. The subprotocol an undici client did not offer ends its process
# (the last case).
CASES = [
    ("/status403", "", ""), ("/status404", "", ""), ("/status426", "", ""),
    ("/status500", "", ""), ("/redirect301", "", ""), ("/redirect302", "", ""),
    ("/upgrade-missing", "", ""), ("/upgrade-wrong", "", ""), ("/connection-missing", "", ""),
    ("/connection-wrong", "", ""),
    ("/accept-wrong", "", ""), ("/accept-missing", "", ""),
    ("/protocol?offered", "chat.v1", ""), ("/none-chosen", "chat.v1", ""),
    ("/extension", "", ""), ("/deflate-params", "", ""), ("/rsv1", "", ""),
    ("/masked", "", ""), ("/close1005", "", ""), ("/utf8", "", ""), ("/closed", "", ""),
    ("/reset", "", ""), ("/silent", "", ""), ("/h2", "", ""), ("/refused", "", ""),
    ("/protocol", "", ""),
]
# Java only: a client built to follow redirects (it does, and fails where the Location leads)
JAVA_CASES = [*CASES, ("/redirect302?follow", "", "yes")]


@pytest.fixture(scope="module")
def java(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Java client, compiled once: the directory of its class."""
    if shutil.which("java") is None or shutil.which("javac") is None:
        pytest.skip("needs a JDK (java and javac: Debian's default-jdk-headless)")
    where = tmp_path_factory.mktemp("java")
    (where / "Cases.java").write_text(JAVA_CLIENT, encoding="utf-8")
    done = subprocess.run(["javac", "-d", str(where), str(where / "Cases.java")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return where


@pytest.fixture(scope="module")
def node() -> None:
    found = shutil.which("node") and subprocess.run(
        ["node", "--experimental-websocket", "-e",
         "process.exit(typeof WebSocket === 'function' ? 0 : 1)"],
        capture_output=True, timeout=20).returncode == 0
    if not found:
        pytest.skip("needs node 20 or newer (its WebSocket: --experimental-websocket)")


def _urls(cases: list[tuple[str, str, str]], port: int, refused: int) -> list[list[str]]:
    """Each case as [url, subprotocols, follow], its URL its own (by its query)."""
    out = []
    for path, protocols, follow in cases:
        base, _, query = path.partition("?")
        where = refused if base == "/refused" else port
        out.append([f"ws://{HOST}:{where}{base}?case{'-' + query if query else ''}", protocols,
                    follow])
    return out


def _said(client: str, where: Path | None, urls: list[list[str]]) -> dict[str, str]:
    """What the client printed for each URL."""
    if client == JAVA:
        command = ["java", "-cp", str(where), "Cases", *("|".join(each) for each in urls)]
    else:
        command = ["node", "--experimental-websocket", "-e", NODE_CLIENT,
                   json.dumps([each[:2] for each in urls])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    said = {case["url"]: case["printed"] for case in map(json.loads, done.stdout.splitlines())}
    if client == NODE:  # (the last case ended the process: what Node printed of it)
        assert done.returncode != 0 and urls[-1][0] not in said, done.stdout
        thrown = re.search(r"^(\w+Error: .*)$", done.stderr, re.MULTILINE)
        assert thrown is not None, done.stderr
        said[urls[-1][0]] = thrown.group(1)
    else:
        assert done.returncode == 0, done.stderr
    return said


@pytest.mark.parametrize("client", [JAVA, NODE])
def test_a_client_prints_what_the_attribution_says(
        request: pytest.FixtureRequest, tmp_path: Path, client: str) -> None:
    where = request.getfixturevalue("java") if client == JAVA else None
    if client == NODE:
        request.getfixturevalue("node")
    cases = JAVA_CASES if client == JAVA else CASES
    port, refused = free_port(), free_port()
    urls = _urls(cases, port, refused)
    server = start_raw_server(FAILING_SERVER, str(port), str(2 * len(urls)))
    capture = tmp_path / "clients.pcap"
    try:
        with capture_ports(capture, port, refused):
            said = _said(client, where, urls)
    finally:
        stop_group(server)
    assert len(said) == len(urls), said
    attempts: dict[str, list[Diagnosis]] = {}
    for diagnosis in analyze_pcap(capture):
        head = diagnosis.attempt.request_head
        url = f"ws://{diagnosis.attempt.server}{head.target}" if head else "refused"
        attempts.setdefault(url, []).append(diagnosis)
    wrong = []
    for url, printed in said.items():
        # (the redirect followed: Java printed what the Location's answer made it print)
        found = attempts["refused" if f":{refused}/" in url else
                         f"ws://{HOST}:{port}/status403" if url.endswith("-follow") else url]
        last = found[-1]
        lines = client_lines(last, client)
        if not any(printed_as(line, printed) or printed == ACCEPTS and line.startswith(
                ACCEPTS[:-1]) for line in lines):
            wrong.append((url, last.verdict.value, [f.check for f in last.findings], printed,
                          lines))
        elif "/refused" not in url and last.attribution.client != client:
            wrong.append((url, "named", last.attribution.client))
        elif any(client_lines(earlier, client) != lines for earlier in found[:-1]):
            wrong.append((url, "the first of the requests sent twice"))
    assert not wrong, "\n".join(map(repr, wrong))
    if client == JAVA:  # it sent the GET once more after a close or a reset, and followed
        assert [len(attempts[f"ws://{HOST}:{port}{path}?case"]) for path in (
            "/closed", "/reset", "/status403")] == [2, 2, 1], attempts
        # the redirect, followed with a GET without Upgrade: what its line says of that GET
        (followed,) = attempts[f"ws://{HOST}:{port}/status403"]
        assert followed.primary is not None and followed.primary.check == "upgrade_header_missing"
        assert client_lines(followed, JAVA)[0].endswith(JAVA_WITHOUT_UPGRADE)
