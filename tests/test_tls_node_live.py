"""What Node prints when its TLS handshake fails, against the attribution's line for it: real
Node (its built-in ``tls``, which the ``ws`` client and ``https`` use) connects to a real
`openssl s_server` made to fail one way each (a version, an ALPN protocol, a client
certificate, a name it does not serve), to a cleartext HTTP server, and to a server that
closes after the ClientHello. Each run is captured with tcpdump on ``lo`` with Node's own key
log, read by the analyzer, and the attempt's Node line (attribution/client_texts_tls.py, the TLS
kinds; ``...`` stands for what changes between runs: an address, a source file's line) must
match what Node printed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.verdict import Verdict
from tests.helpers import RAW_SERVER, analyze_pcap
from tests.test_h2_live import HOST, _free_port, _stop, _wait_listening, tcpdump
from tests.test_h2_live import pytestmark as _live_marks
from tests.tls_memory import make_certificate

pytestmark = [*_live_marks,
              pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
              pytest.mark.skipif(shutil.which("node") is None, reason="needs node")]

# Node's client: argv port, SNI, maximum version ("" for Node's own), ALPN ("" for none), key
# log; prints "ERR <code> | <message>" for the error it raised, or "OK" and sends a request.
NODE_CLIENT = r"""
const tls = require('tls'), fs = require('fs');
const [port, sni, maxVersion, alpn, keylog] = process.argv.slice(1);
const options = {host: '127.0.0.1', port: +port, servername: sni, rejectUnauthorized: false};
if (maxVersion) options.maxVersion = maxVersion;
if (alpn) options.ALPNProtocols = [alpn];
const socket = tls.connect(options, () => {
  console.log('OK');
  socket.write('GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n' +
               'Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
               'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
});
socket.on('keylog', line => fs.appendFileSync(keylog, line));
socket.on('error', e => { console.log(`ERR ${e.code} | ${e.message}`); process.exit(0); });
setTimeout(() => process.exit(0), 5000);
"""

# A cleartext HTTP server's answer to the bytes of a ClientHello, and a server that closes
# (or resets) as soon as the ClientHello arrives.
CLEARTEXT = RAW_SERVER + r"""
conn, _ = server.accept()
conn.recv(4096)
if sys.argv[2] == "http":
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
elif sys.argv[2] == "reset":
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()
"""

# case: (server, its options, the client's maximum version, its ALPN protocol, the finding)
CASES = {
    "version": ("s_server", ["-tls1_3"], "TLSv1.2", "", "tls_protocol_version"),
    "alpn": ("s_server", ["-alpn", "h2"], "", "http/1.1", "tls_no_application_protocol"),
    "client_certificate": ("s_server", ["-Verify", "1", "-tls1_3"], "", "",
                           "tls_client_certificate_required"),
    "client_certificate_tls12": ("s_server", ["-Verify", "1", "-tls1_2"], "", "",
                                 "tls_client_certificate_required"),
    "name": ("s_server", ["-servername", "other.example", "-servername_fatal"], "", "",
             "tls_unrecognized_name"),
    "cleartext_port": ("http", [], "", "", "tls_client_hello_to_cleartext_port"),
    "closed": ("close", [], "", "", "tls_no_server_hello"),
    "reset": ("reset", [], "", "", "tls_no_server_hello"),
}


def _server(kind: str, options: list[str], port: int, tmp: Path) -> subprocess.Popen[bytes]:
    if kind != "s_server":
        process = subprocess.Popen([sys.executable, "-c", CLEARTEXT, str(port), kind],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        return process
    cert, key = make_certificate(tmp)
    second = ["-cert2", str(cert), "-key2", str(key)] if "-servername" in options else []
    process = subprocess.Popen(
        ["openssl", "s_server", "-quiet", "-accept", f"{HOST}:{port}", "-cert", str(cert),
         "-key", str(key), *second, *options],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    _wait_listening(port, process)
    time.sleep(0.1)  # (the probe's connection: s_server serves one at a time)
    return process


def _as_patterns(line: str) -> list[str]:
    """The attribution's line as patterns, one for it and one for its "(or: ...)" if it has
    one: its ``...`` stand for any text."""
    alternative = re.fullmatch(r"(.*) \(or: (.*)\)", line)
    lines = list(alternative.groups()) if alternative else [line]
    return [".*".join(re.escape(part) for part in each.split("...")) for each in lines]


@pytest.mark.parametrize("case", list(CASES))
def test_node_prints_what_the_attribution_says(tmp_path: Path, case: str) -> None:
    kind, options, max_version, alpn, finding = CASES[case]
    port = _free_port()
    path, keylog = tmp_path / f"{case}.pcap", tmp_path / f"{case}.keys"
    keylog.touch()
    server = _server(kind, options, port, tmp_path)
    try:
        with tcpdump(path, [port]):
            done = subprocess.run(
                ["node", "-e", NODE_CLIENT, str(port), "localhost", max_version, alpn,
                 str(keylog)], capture_output=True, text=True, timeout=20)
            time.sleep(0.3)
    finally:
        _stop(server)
    said = re.fullmatch(r"ERR (\S+) \| (.*)", done.stdout.strip().splitlines()[-1])
    assert said is not None, done.stdout
    code, message = said.groups()
    (diagnosis,) = analyze_pcap(path, keylog=keylog)
    assert diagnosis.verdict in (Verdict.FAILED, Verdict.NO_RESPONSE), diagnosis.verdict
    assert diagnosis.primary is not None and diagnosis.primary.check == finding, \
        diagnosis.primary
    lines = [line.removeprefix("Node: ") for line in diagnosis.attribution.client_errors
             if line.startswith("Node: ")]
    printed = f"Error: {message} ({code})"
    patterns = [pattern for line in lines for pattern in _as_patterns(line)]
    assert any(re.fullmatch(pattern, printed) for pattern in patterns), (printed, lines)
