"""What aiohttp's client (`ClientSession.ws_connect`) and tornado's
(`tornado.websocket.websocket_connect`) raise for each way a handshake fails, against the
attribution's line for that client (attribution/client_texts.py). Each real client meets a raw
server on 127.0.0.1 that answers wrongly on purpose (a status, a 101 missing a header or
choosing what was not offered, silence, a close, a reset, HTTP/2 bytes, a certificate it
does not trust) or nothing that listens; the run is captured with tcpdump on ``lo`` and read
by the analyzer, and the attempt's line for that client must be what it printed: its
exception as a traceback's last line shows it (``...`` in a line stands for what changes
between runs; a line's last ``(...)`` may add what the client did first). tornado logs a 101
that fails its checks before it raises: that log's traceback ends the printed text. A
client that raised nothing is described as the lines say it: "(accepts it: no error; ...)".
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import signal
import ssl
import subprocess
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from analyzer.verdict import Diagnosis, Verdict
from tests.helpers import RAW_SERVER, analyze_pcap, printed_as, start_raw_server
from tests.test_h2_live import HOST, _free_port, _stop, tcpdump
from tests.test_h2_live import pytestmark as _live_marks
from tests.tls_memory import make_certificate

aiohttp = pytest.importorskip("aiohttp", reason="needs aiohttp (setup.cfg's test extra)")
tornado_websocket = pytest.importorskip("tornado.websocket",
                                        reason="needs tornado (setup.cfg's test extra)")
pytestmark = _live_marks

# Answers each request of up to four connections (aiohttp sends its GET once more on a new
# connection after a close or a reset) as argv[2] says, then waits for the client to go;
# argv[3:6], when given: certificate, key, highest TLS version ("1.2" or "1.3").
SERVER = RAW_SERVER + r"""
import ssl
how = sys.argv[2]
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\n"
UPGRADE, CONNECTION = b"Upgrade: websocket\r\n", b"Connection: Upgrade\r\n"
ANSWERS = {
    "403": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    "404": b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n"
           b"not found",
    "426": b"HTTP/1.1 426 Upgrade Required\r\n" + UPGRADE + CONNECTION
           + b"Content-Length: 0\r\n\r\n",
    "400 no reason": b"HTTP/1.1 400 \r\nContent-Length: 0\r\n\r\n",
    "200": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
    "accept wrong": SWITCH + UPGRADE + CONNECTION
                    + b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
    "accept missing": SWITCH + UPGRADE + CONNECTION + b"\r\n",
    "no upgrade": SWITCH + CONNECTION + b"Sec-WebSocket-Accept: {accept}\r\n\r\n",
    "upgrade h2c": SWITCH + b"Upgrade: h2c\r\n" + CONNECTION
                   + b"Sec-WebSocket-Accept: {accept}\r\n\r\n",
    "no connection": SWITCH + UPGRADE + b"Sec-WebSocket-Accept: {accept}\r\n\r\n",
    "connection keep-alive": SWITCH + UPGRADE + b"Connection: keep-alive\r\n"
                             b"Sec-WebSocket-Accept: {accept}\r\n\r\n",
    "protocol not offered": SWITCH + UPGRADE + CONNECTION
                            + b"Sec-WebSocket-Accept: {accept}\r\n"
                              b"Sec-WebSocket-Protocol: bogus\r\n\r\n",
    # permessage-deflate nobody offered, then "Hello" compressed (RFC 7692 §7.2.3.1)
    "deflate not offered": SWITCH + UPGRADE + CONNECTION
                           + b"Sec-WebSocket-Accept: {accept}\r\n"
                             b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
                           + bytes.fromhex("c107f248cdc9c90700"),
}
REDIRECTS = {"redirect": b"/final", "redirect to ws": b"ws://127.0.0.1:%d/final" % int(sys.argv[1])}
context = None
if len(sys.argv) > 3:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[3], sys.argv[4])
    if sys.argv[5] == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2


def head_of(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        data += chunk
    return data


def answer(conn):
    while True:  # (aiohttp follows a redirect on the same connection)
        head = head_of(conn)
        if not head:
            return
        if how == "closed":
            return
        if how == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if how == "silent":
            drain(conn)
            return
        if how == "not http":  # an HTTP/2-only server's SETTINGS, WINDOW_UPDATE and GOAWAY
            conn.sendall(bytes.fromhex("000012040000000000000300000080000400010000000500ffffff"
                                       "00000408000000000000ff0001"))
            time.sleep(0.2)
            conn.sendall(bytes.fromhex("0000080700000000000000000000000001"))
            return
        if how in REDIRECTS:
            target = head.split(b" ", 2)[1]
            conn.sendall(b"HTTP/1.1 301 Moved Permanently\r\nLocation: " + REDIRECTS[how]
                         + b"\r\nContent-Length: 0\r\n\r\n" if target == b"/ws" else
                         ANSWERS["403"])
            continue
        key = next((line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")), b"")
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        conn.sendall(ANSWERS[how].replace(b"{accept}", accept))
        if ANSWERS[how].startswith(SWITCH):
            drain(conn)
            return


for _ in range(4):
    try:
        conn, _ = server.accept()
    except OSError:
        break
    conn.settimeout(10)
    try:
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        answer(conn)
    except OSError:
        pass  # (a client that did not trust the certificate; a timeout)
    conn.close()
"""


@dataclass(frozen=True)
class Case:
    """One way to fail: the server's answer (SERVER's argv[2], "refused" for no server), the
    finding the attempt must have as its primary, and what the clients are told to do."""

    answer: str
    finding: str
    offer: str | None = None  # the subprotocol both clients offer
    give_up_s: float = 10  # the clients' own timeout
    tls: str = ""  # "1.3" or "1.2": wss:// to a server with a self-signed certificate
    trusted: bool = False  # the clients trust that certificate
    host: str = HOST  # the URL's host
    certificate_for: str = "localhost"


CASES = {
    "403": Case("403", "response_forbidden"),
    "404": Case("404", "response_not_found"),
    "426": Case("426", "response_upgrade_required"),
    "400 without a reason phrase": Case("400 no reason", "response_bad_request"),
    "200": Case("200", "response_ordinary"),
    "redirect": Case("redirect", "response_redirect"),
    "redirect to ws://": Case("redirect to ws", "response_redirect"),
    "accept wrong": Case("accept wrong", "ws_accept_mismatch"),
    "accept missing": Case("accept missing", "ws_accept_missing"),
    "101 without Upgrade": Case("no upgrade", "switch_without_upgrade"),
    "101 to h2c": Case("upgrade h2c", "switch_to_unoffered"),
    "101 without Connection": Case("no connection", "switch_connection_without_upgrade"),
    "101 with Connection: keep-alive": Case("connection keep-alive",
                                           "switch_connection_without_upgrade"),
    "subprotocol not offered": Case("protocol not offered", "ws_protocol_not_offered",
                                    offer="chat"),
    "permessage-deflate not offered": Case("deflate not offered", "ws_extension_not_offered"),
    "closed": Case("closed", "no_response_server_closed"),
    "reset": Case("reset", "no_response_server_reset"),
    "silent": Case("silent", "no_response_client_gave_up", give_up_s=1),
    "not HTTP": Case("not http", "response_not_http"),
    "refused": Case("refused", "tcp_refused"),
    "untrusted certificate, TLS 1.3": Case("403", "tls_certificate_rejected", tls="1.3"),
    # (aiohttp closes without an alert: checks/tls.py `_answers_client_end`)
    "untrusted certificate, TLS 1.2": Case("403", "tls_certificate_rejected", tls="1.2"),
    "certificate for another name, TLS 1.2": Case(
        "403", "tls_certificate_name_mismatch", tls="1.2", trusted=True, host="localhost",
        certificate_for="other.example"),
    "expired certificate, TLS 1.2": Case("403", "tls_certificate_expired", tls="1.2",
                                         trusted=True, certificate_for="expired"),
}


@dataclass
class Said:
    """What a client printed (its exception as a traceback ends with it, or what it did
    instead), and the URL of its last request."""

    printed: str = ""
    url: str = ""


def _raised(error: BaseException) -> str:
    """An exception as a traceback's last line shows it."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def _aiohttp(url: str, case: Case, context: ssl.SSLContext | None) -> Said:
    said = Said(url=url)
    timeout = aiohttp.ClientTimeout(total=case.give_up_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        try:
            async with session.ws_connect(url, protocols=(case.offer,) if case.offer else (),
                                          ssl=context if context is not None else True) as ws:
                said.printed = f"(accepts it: no error; ws.protocol is {ws.protocol!r})"
                if case.answer == "deflate not offered":
                    message = await ws.receive(timeout=5)
                    assert message.type is aiohttp.WSMsgType.ERROR, message
                    said.printed = ("(accepts it: no error; a compressed frame from the server "
                                    f"then fails it: {_raised(message.data)}, Close "
                                    f"{message.data.code})")
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            said.printed = _raised(error)
            if isinstance(error, aiohttp.ClientResponseError):
                said.url = str(error.request_info.real_url)
    return said


class _Logged(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _tornado_log() -> Iterator[_Logged]:
    """What tornado.application logs meanwhile."""
    logger, handler = logging.getLogger("tornado.application"), _Logged()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def _tornado(url: str, case: Case, ca_certs: str | None) -> Said:
    from tornado.httpclient import HTTPRequest

    said = Said(url=url)
    request = HTTPRequest(url, connect_timeout=5, request_timeout=case.give_up_s,
                          ca_certs=ca_certs)
    with _tornado_log() as logged:
        try:
            ws = await tornado_websocket.websocket_connect(
                request, subprotocols=[case.offer] if case.offer else None)
        except Exception as error:  # (what it raises is the point)
            said.printed = _raised(error)
        else:
            said.printed = ("(accepts it: no error; selected_subprotocol is "
                            f"{ws.selected_subprotocol!r})")
            ws.close()
            await asyncio.sleep(0.2)
    for record in logged.records:
        if record.exc_info:
            trace = "".join(traceback.format_exception(*record.exc_info)).strip()
            said.printed += f" (tornado.application logged first: {record.getMessage()}\n{trace})"
    return said


def _run(client: str, case: Case, port: int, certificate: Path | None) -> Said:
    scheme = "wss" if case.tls else "ws"
    url = f"{scheme}://{case.host}:{port}/ws"
    trusted = str(certificate) if certificate is not None and case.trusted else None
    if client == "aiohttp":
        context = ssl.create_default_context(cafile=trusted) if trusted else None
        return asyncio.run(_aiohttp(url, case, context))
    return asyncio.run(_tornado(url, case, trusted))


def _certificate(case: Case, tmp: Path) -> tuple[Path, Path]:
    """The server's certificate and key (self-signed: its own CA)."""
    if case.certificate_for == "expired":
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
        return make_certificate(tmp, "localhost", days=2, start=start)
    if case.certificate_for == "other.example":
        return make_certificate(tmp, "other.example", names=("other.example",))
    return make_certificate(tmp)


def _server(case: Case, port: int,
            certificate: tuple[Path, Path] | None) -> subprocess.Popen[bytes] | None:
    if case.answer == "refused":
        return None
    tls = (str(certificate[0]), str(certificate[1]), case.tls) if certificate else ()
    return start_raw_server(SERVER, str(port), case.answer, *tls)


def _lines(diagnosis: Diagnosis, names: tuple[str, ...]) -> list[str]:
    return [line.split(": ", 1)[1] for line in diagnosis.attribution.client_errors
            if line.split(": ", 1)[0] in names]


@pytest.mark.parametrize("client", ["aiohttp", "tornado"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_client_prints_what_the_attribution_says(tmp_path: Path, name: str,
                                                     client: str) -> None:
    case = CASES[name]
    port = _free_port()
    certificate = _certificate(case, tmp_path) if case.tls else None
    server = _server(case, port, certificate)
    path = tmp_path / "run.pcap"
    try:
        with tcpdump(path, [port]):
            said = _run(client, case, port, certificate[0] if certificate else None)
    finally:
        if server is not None:
            _stop(server, signal.SIGTERM)
    found = [d for d in analyze_pcap(path) if d.verdict is not Verdict.SUCCEEDED]
    assert found, said
    first, last = found[0], found[-1]  # (aiohttp may have asked again: a retry, a redirect)
    assert first.primary is not None and first.primary.check == case.finding, (
        first.primary, said)
    # Without a request read (refused, or a TLS handshake it rejected) the client is not
    # known: its lines are among all clients'; tornado's TLS errors are Python's `ssl`'s.
    names = ("python",) if client == "tornado" and case.tls else (client,)
    if not case.tls and case.answer != "refused":
        assert last.attribution.client == client, last.attribution
        assert last.attribution.client_errors[0].startswith(f"{client}: "), last.attribution
    lines = _lines(last, names)
    assert any(printed_as(line, said.printed) for line in lines), (said.printed, lines)
    for earlier in found[:-1]:  # aiohttp's retry of a GET, the redirect it followed
        (line,) = _lines(earlier, names)
        assert printed_as(line, said.printed) or line == (
            f"(no error of its own: follows the redirect to {said.url}, up to 10 in a row)"), (
            line, said)
