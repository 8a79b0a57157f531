"""gorilla/websocket (Go) and Node's ws library, run for real on ``lo`` and captured by
tcpdump: what each server answered and logged, and what each client printed, must be what
the attribution says (attribution/servers.py and texts.py: who answered and its log line;
attribution/client_texts.py: the client's line). The servers meet raw requests that fail each of
their checks; the clients meet a raw server that fails each way a 101 can (a wrong Accept, no
Upgrade, an unoffered subprotocol or extension, an RSV1 frame, Close 1005...), and each other.

gorilla 1.5.0 and ws 8.11 are Debian's (golang-github-gorilla-websocket-dev built offline
with GOPATH=/usr/share/gocode; node-ws under /usr/share/nodejs): run-tests.sh installs them,
and the tests skip without them. "..." in a line stands for what varies (a client's
address, the bytes Go quotes); "(accepts it: no error)" means the client opened the
connection, which the raw server then closes with Close 1000."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.verdict import Diagnosis
from tests.helpers import (
    FAILING_SERVER,
    analyze_pcap,
    capture_ports,
    client_line,
    free_port,
    start_raw_server,
    stop_group,
)

HOST = "127.0.0.1"
GOPATH = "/usr/share/gocode"
GORILLA_SOURCE = Path(GOPATH, "src/github.com/gorilla/websocket")
NODE_PATH = os.pathsep.join(p for p in (os.environ.get("NODE_PATH"), "/usr/share/nodejs") if p)
pytestmark = [
    pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                       reason="capturing on lo needs root"),
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump"),
    pytest.mark.timeout(120),
]
ACCEPTS = "(accepts it: no error)"
GORILLA, NODE_WS = "gorilla/websocket", "Node ws"

# A gorilla server: /ws upgrades (subprotocol chat.v1 if offered; the default CheckOrigin),
# echoes one message and closes with Close 1000; what Upgrade returned is printed as
# "TARGET ERROR".
GO_SERVER = r"""package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	upgrader := websocket.Upgrader{Subprotocols: []string{"chat.v1"}}
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, r.URL.RequestURI(), err)
			return
		}
		defer conn.Close()
		if kind, message, err := conn.ReadMessage(); err == nil {
			conn.WriteMessage(kind, message)
			closing := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			conn.WriteControl(websocket.CloseMessage, closing, time.Now().Add(time.Second))
			conn.ReadMessage() // (until the client's Close)
		}
	})
	listener, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		panic(err)
	}
	time.AfterFunc(60*time.Second, func() { os.Exit(0) })
	fmt.Println("ready")
	http.Serve(listener, nil)
}
"""
# A gorilla client: argv[1] a JSON list of [url, subprotocols, origin, deflate]; prints a JSON
# object url -> Dial's error, or (opened) ReadMessage's after sending "hello".
GO_CLIENT = r"""package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	var cases [][4]string
	if err := json.Unmarshal([]byte(os.Args[1]), &cases); err != nil {
		panic(err)
	}
	said := map[string]string{}
	for _, c := range cases {
		dialer := websocket.Dialer{HandshakeTimeout: time.Second, EnableCompression: c[3] != ""}
		if c[1] != "" {
			dialer.Subprotocols = strings.Split(c[1], ",")
		}
		header := http.Header{}
		if c[2] != "" {
			header.Set("Origin", c[2])
		}
		conn, _, err := dialer.Dial(c[0], header)
		if err == nil {
			conn.WriteMessage(websocket.TextMessage, []byte("hello"))
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			for err == nil {
				_, _, err = conn.ReadMessage()
			}
			conn.Close()
		}
		said[c[0]] = err.Error()
	}
	out, _ := json.Marshal(said)
	fmt.Println(string(out))
}
"""
# A Node ws client: the same argument; prints url -> its first error's message, or its close
# event's code.
NODE_CLIENT = r"""
const WebSocket = require('ws');
const said = {};
const one = ([url, protocols, origin, deflate]) => new Promise((resolve) => {
  const options = {handshakeTimeout: 1000, perMessageDeflate: deflate !== ''};
  if (origin) options.origin = origin;
  const ws = new WebSocket(url, protocols ? protocols.split(',') : [], options);
  const timer = setTimeout(() => ws.terminate(), 3000);
  ws.on('open', () => ws.send('hello'));
  ws.on('error', (error) => { if (!(url in said)) said[url] = error.message; });
  ws.on('close', (code) => {
    clearTimeout(timer);
    if (!(url in said)) said[url] = `close event: code ${code}`;
    resolve();
  });
});
(async () => {
  for (const c of JSON.parse(process.argv[1])) await one(c);
  console.log(JSON.stringify(said));
})();
"""
# A Node ws server at /ws (permessage-deflate on, chat.v1 if offered, verifyClient refuses
# "?refuse" with 403), echoing one message; it prints nothing but "ready".
NODE_SERVER = r"""
const { WebSocketServer } = require('ws');
const server = new WebSocketServer({
  host: '127.0.0.1', port: +process.argv[1], path: '/ws', perMessageDeflate: true,
  verifyClient: ({ req }, done) => req.url.endsWith('?refuse') ? done(false, 403) : done(true),
  handleProtocols: (offered) => offered.has('chat.v1') ? 'chat.v1' : false,
});
server.on('listening', () => console.log('ready'));
server.on('connection', (ws) => ws.on('message', (data) => { ws.send(data); ws.close(1000); }));
setTimeout(() => process.exit(0), 60000);
"""

# (path, subprotocols offered, permessage-deflate offered), each client once: the paths of
# tests/helpers.py's FAILING_SERVER, the clients meet; "/refused" goes to a port nobody
# listens on
SCENARIOS = [
    ("/status403", "", False), ("/accept-wrong", "", False), ("/accept-missing", "", False),
    ("/upgrade-missing", "", False), ("/upgrade-wrong", "", False),
    ("/connection-missing", "", False), ("/protocol", "", False),
    ("/protocol?offered", "chat.v1", False), ("/none-chosen", "chat.v1", False),
    ("/extension", "", False), ("/extension?offered", "", True), ("/deflate", "", False),
    ("/deflate-params", "", True), ("/rsv1", "", False), ("/close1005", "", False),
    ("/close1008", "", False), ("/abnormal", "", False), ("/closed", "", False),
    ("/reset", "", False), ("/silent", "", False), ("/h2", "", False), ("/refused", "", False),
]


@pytest.fixture(scope="module")
def gorilla(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The gorilla server and client, built from Debian's gorilla sources without a network
    (GOPATH mode), in parallel."""
    if shutil.which("go") is None or not GORILLA_SOURCE.is_dir():
        pytest.skip("needs go and gorilla/websocket's sources (golang-go, "
                    "golang-github-gorilla-websocket-dev: run-tests.sh installs them)")
    where = tmp_path_factory.mktemp("gorilla")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOFLAGS": "",
           "GOPROXY": "off", "GOTOOLCHAIN": "local", "GOCACHE": str(where / "cache")}
    builds = {}
    for name, source in (("server", GO_SERVER), ("client", GO_CLIENT)):
        (where / f"{name}.go").write_text(source, encoding="utf-8")
        builds[name] = subprocess.Popen(["go", "build", "-o", name, f"{name}.go"], cwd=where,
                                        env=env, stderr=subprocess.PIPE, text=True)
    for name, build in builds.items():
        _, errors = build.communicate(timeout=120)
        assert build.returncode == 0, (name, errors)
    return {name: where / name for name in builds}


@pytest.fixture(scope="module")
def node_ws() -> None:
    found = shutil.which("node") and subprocess.run(
        ["node", "-e", "require('ws')"], env={**os.environ, "NODE_PATH": NODE_PATH},
        capture_output=True, timeout=20).returncode == 0
    if not found:
        pytest.skip("needs node and its ws library (nodejs, node-ws: run-tests.sh installs "
                    "them)")


@contextlib.contextmanager
def _serving(command: list[str], log: Path) -> Iterator[int]:
    """``command`` (its port appended) running until the block ends, its stderr in ``log``."""
    port = free_port()
    with log.open("wb") as stderr:
        process = subprocess.Popen([*command, str(port)], stdout=subprocess.PIPE, stderr=stderr,
                                   env={**os.environ, "NODE_PATH": NODE_PATH},
                                   start_new_session=True)
        try:
            assert process.stdout is not None and process.stdout.readline() == b"ready\n"
            yield port
        finally:
            stop_group(process)


def _clients_said(client: str, tools: dict[str, Path] | None, cases: list[list[str]]) -> dict[
        str, str]:
    """What the gorilla or Node ws client printed for each of ``cases``, by URL."""
    argument = json.dumps(cases)
    command = ([str(tools["client"]), argument] if tools is not None
               else ["node", "-e", NODE_CLIENT, argument])
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NODE_PATH": NODE_PATH})
    assert done.returncode == 0, done.stderr
    said: dict[str, str] = json.loads(done.stdout)
    return said


def _ask(port: int, request: bytes) -> bytes:
    """One request on its own connection: the response head and its body (by its
    Content-Length), read for at most 2 s."""
    with socket.create_connection((HOST, port), 5) as sock:
        sock.settimeout(2)
        sock.sendall(request)
        data = b""
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(4096):
                data += chunk
                head, done, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if done and len(body) >= (int(length.group(1)) if length else 0):
                    break
        return data


def _request(port: int, target: str, *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{port}", *headers, "", ""]
    return "\r\n".join(lines).encode()


_UPGRADE = ("Upgrade: websocket", "Connection: Upgrade")
_KEY, _V13 = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"
# (target, headers, method) sent to both servers, each failing one of their checks
REQUESTS = [
    ("/ws?plain", (), "GET"),
    ("/ws?keep-alive", ("Upgrade: websocket", "Connection: keep-alive", _KEY, _V13), "GET"),
    ("/ws?no-upgrade", ("Connection: Upgrade", _KEY, _V13), "GET"),
    ("/ws?upgrade-chat", ("Upgrade: chat", "Connection: Upgrade", _KEY, _V13), "GET"),
    ("/ws?post", (*_UPGRADE, _KEY, _V13, "Content-Length: 0"), "POST"),
    ("/ws?version8", (*_UPGRADE, _KEY, "Sec-WebSocket-Version: 8"), "GET"),
    ("/ws?version9", (*_UPGRADE, _KEY, "Sec-WebSocket-Version: 9"), "GET"),
    ("/ws?origin", (*_UPGRADE, _KEY, _V13, "Origin: http://elsewhere.example"), "GET"),
    ("/ws?no-key", (*_UPGRADE, _V13), "GET"),
    ("/ws?short-key", (*_UPGRADE, "Sec-WebSocket-Key: c2hvcnQ=", _V13), "GET"),
    ("/ws?bad-protocol", (*_UPGRADE, _KEY, _V13, "Sec-WebSocket-Protocol: chat v1"), "GET"),
    ("/ws?bad-extension", (*_UPGRADE, _KEY, _V13, "Sec-WebSocket-Extensions: "
                           "permessage-deflate; server_max_window_bits=99"), "GET"),
    ("/ws?refuse", (*_UPGRADE, _KEY, _V13), "GET"),
    ("/nothere", (*_UPGRADE, _KEY, _V13), "GET"),
]


def _by_target(path: Path) -> dict[str, Diagnosis]:
    return {d.attempt.request_head.target: d for d in analyze_pcap(path)
            if d.attempt.request_head is not None}


def _matches(line: str, printed: str) -> bool:
    """Whether ``printed`` is ``line``, its "..." standing for any text."""
    return re.fullmatch(".*".join(map(re.escape, line.split("..."))), printed) is not None


def test_gorilla_server_is_named_with_the_error_its_upgrade_returned(
        gorilla: dict[str, Path], tmp_path: Path) -> None:
    capture, log = tmp_path / "gorilla-server.pcap", tmp_path / "gorilla-server.log"
    with _serving([str(gorilla["server"])], log) as port, \
            capture_ports(capture, port):
        answers = {target: _ask(port, _request(port, target, *headers, method=method))
                   for target, headers, method in REQUESTS}
    returned = dict(line.split(" ", 1) for line in log.read_text().splitlines())
    assert set(returned) == {"/ws?plain", "/ws?keep-alive", "/ws?no-upgrade",
                             "/ws?upgrade-chat", "/ws?post", "/ws?version8", "/ws?version9",
                             "/ws?origin", "/ws?no-key"}, returned
    diagnoses = _by_target(capture)
    assert set(diagnoses) == set(answers), list(diagnoses)
    wrong = []
    for target, diagnosis in diagnoses.items():
        who = diagnosis.attribution
        if target == "/nothere":  # Go's mux: http.NotFound
            assert answers[target].endswith(b"\r\n\r\n404 page not found\n"), answers[target]
            assert who.server is not None and who.server.startswith("Go net/http"), who
        elif target not in returned:  # it switched (1.5.0 takes a short key)
            assert answers[target].startswith(b"HTTP/1.1 101 "), (target, answers[target])
        elif who.server != GORILLA or not (who.server_log == returned[target] or (
                target == "/ws?no-key" and (who.server_log or "").startswith(
                    returned[target] + " (1.5.0 and older) / "))):  # (then 1.5.1's text)
            wrong.append((target, returned[target], who.server, who.server_log))
    assert not wrong, "\n".join(map(repr, wrong))


def test_node_ws_server_is_named_and_logs_nothing(node_ws: None, tmp_path: Path) -> None:
    capture, log = tmp_path / "node-server.pcap", tmp_path / "node-server.log"
    with _serving(["node", "-e", NODE_SERVER], log) as port, \
            capture_ports(capture, port):
        answers = {target: _ask(port, _request(port, target, *headers, method=method))
                   for target, headers, method in REQUESTS}
    assert log.read_text() == ""  # (ws wrote nothing for any of them)
    # ws 8.11 takes version 8 as it takes 13 (and has no Origin check of its own)
    for target in ("/ws?version8", "/ws?origin"):
        assert answers[target].startswith(b"HTTP/1.1 101 "), answers[target]
    diagnoses = _by_target(capture)
    wrong = []
    for target, diagnosis in diagnoses.items():
        who, status = diagnosis.attribution, answers[target][9:12]
        if status == b"101":
            continue
        named = "Node ws (standalone server: Node's HTTP server)" if status == b"426" else NODE_WS
        if who.server != named or not (who.server_log or "").startswith("nothing"):
            wrong.append((target, answers[target], who.server, who.server_log))
    assert not wrong, "\n".join(map(repr, wrong))
    assert len(diagnoses) == len(REQUESTS)


def _cases(port: int, refused: int, tag: str) -> list[list[str]]:
    cases = []
    for path, protocols, deflate in SCENARIOS:
        base, _, query = path.partition("?")
        where = refused if base == "/refused" else port
        cases.append([f"ws://{HOST}:{where}{base}?{tag}{query}", protocols, "",
                      "yes" if deflate else ""])
    return cases


@pytest.mark.parametrize("client", [GORILLA, NODE_WS])
def test_a_client_prints_what_the_attribution_says(
        request: pytest.FixtureRequest, tmp_path: Path, client: str) -> None:
    tools = request.getfixturevalue("gorilla") if client == GORILLA else None
    if client == NODE_WS:
        request.getfixturevalue("node_ws")
    port, refused = free_port(), free_port()
    cases = _cases(port, refused, "go" if tools else "node")
    server = start_raw_server(FAILING_SERVER, str(port), str(len(cases) - 1))
    capture = tmp_path / "clients.pcap"
    try:
        with capture_ports(capture, port, refused):
            said = _clients_said(client, tools, cases)
    finally:
        stop_group(server)
    diagnoses = {f"ws://{d.attempt.server}{d.attempt.request_head.target}"
                 if d.attempt.request_head else "refused": d for d in analyze_pcap(capture)}
    opened = "websocket: close 1000 (normal)" if tools else "close event: code 1000"
    wrong = []
    for url, printed in said.items():
        diagnosis = diagnoses["refused" if f":{refused}/" in url else url]
        line = client_line(diagnosis, client)
        if line is None or not (_matches(line, printed) or line == ACCEPTS and printed == opened):
            wrong.append((url, diagnosis.verdict.value, printed, line))
    assert not wrong, "\n".join(map(repr, wrong))
    assert len(said) == len(SCENARIOS)
    # each request named: gorilla by Go's User-Agent, Node ws (none) by its fields' order
    named = NODE_WS if client == NODE_WS else "Go net/http (gorilla, coder/websocket)"
    assert not [(url, d.attribution.client) for url, d in diagnoses.items()
                if d.attempt.request_head is not None and d.attribution.client != named]


def test_node_ws_and_gorilla_meet(gorilla: dict[str, Path], node_ws: None,
                                  tmp_path: Path) -> None:
    """Node ws's client at gorilla's server and gorilla's at Node ws's: a foreign Origin
    (gorilla's 403), a subprotocol neither server chooses, a refusal of verifyClient."""
    capture = tmp_path / "meet.pcap"
    with _serving([str(gorilla["server"])], tmp_path / "gorilla.log") as go, \
            _serving(["node", "-e", NODE_SERVER], tmp_path / "node.log") as node, \
            capture_ports(capture, go, node):
        node_said = _clients_said(NODE_WS, None, [
            [f"ws://{HOST}:{go}/ws?origin", "", "http://elsewhere.example", ""],
            [f"ws://{HOST}:{go}/ws?v2", "chat.v2", "", ""],
            [f"ws://{HOST}:{go}/ws?ok", "chat.v1", "", "yes"]])
        go_said = _clients_said(GORILLA, gorilla, [
            [f"ws://{HOST}:{node}/ws?refuse", "", "", ""],
            [f"ws://{HOST}:{node}/ws?v2", "chat.v2", "", ""],
            [f"ws://{HOST}:{node}/ws?ok", "chat.v1", "", "yes"]])
    returned = (tmp_path / "gorilla.log").read_text()
    diagnoses = {f"ws://{d.attempt.server}{d.attempt.request_head.target}": d
                 for d in analyze_pcap(capture) if d.attempt.request_head is not None}
    origin = diagnoses[f"ws://{HOST}:{go}/ws?origin"]
    assert origin.attribution.server == GORILLA
    assert f"/ws?origin {origin.attribution.server_log}\n" == returned, returned
    refused = diagnoses[f"ws://{HOST}:{node}/ws?refuse"]
    assert refused.attribution.server == NODE_WS
    assert refused.attribution.server_log == "nothing from ws: the application's verifyClient " \
                                             "refused it"
    for said, client in ((node_said, NODE_WS), (go_said, GORILLA)):
        for url, printed in said.items():
            diagnosis = diagnoses[url]
            if url.endswith("?ok"):
                assert diagnosis.verdict.value == "succeeded", (url, diagnosis.findings)
                continue
            line = client_line(diagnosis, client)
            assert line == printed or line == ACCEPTS and printed.endswith("1000 (normal)"), (
                url, printed, line)
