"""curl's HTTP/2 in cleartext meeting a server that does not speak it that way, with real
software on ``lo``, captured by tcpdump; the report's line for curl must be what curl printed
(attribution/client_texts.py, the h2c kinds).

- ``curl --http2-prior-knowledge`` to a port that speaks HTTP/1.1 only: nginx without
  ``http2`` answers the preface ("PRI * HTTP/2.0") with 400, python's http.server with an
  error page without a status line. The connection was counted as an ordinary exchange and
  nothing was said; it is now an h2c attempt failed by `h2_answer_not_http2`.
- ``curl --http2`` (h2c by Upgrade) to a port that speaks HTTP/2 only (nginx's ``listen ...
  http2`` without TLS): its SETTINGS frame instead of a 101, `response_not_http`, which gave
  lines for WebSocket clients only.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.verdict import Verdict
from tests.helpers import analyze_pcap, nginx_conf, printed_as, start_nginx
from tests.test_h2_live import HOST, _free_port, _stop, _wait_listening, tcpdump
from tests.test_h2_live import pytestmark as _live_marks

pytestmark = [*_live_marks,
              pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")]


@contextlib.contextmanager
def server(kind: str, tmp: str) -> Iterator[int]:
    """``kind`` listening on a free port, stopped by its PID: "nginx" (HTTP/1.1 only),
    "nginx http2" (``listen ... http2`` without TLS: HTTP/2 with prior knowledge only) or
    "http.server" (python's)."""
    port = _free_port()
    if kind == "http.server":
        process = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", HOST, str(port)], cwd=tmp,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    else:
        if shutil.which("nginx") is None:
            pytest.skip("needs nginx")
        listen = "http2" if kind == "nginx http2" else ""
        conf = Path(tmp, "nginx.conf")
        conf.write_text(nginx_conf(tmp, f"""        listen {HOST}:{port} {listen};
        location / {{ return 200 "plain\\n"; }}"""))
        process = start_nginx(tmp, conf)
    try:
        _wait_listening(port, process)
        yield port
    finally:
        _stop(process, signal.SIGQUIT if kind.startswith("nginx") else signal.SIGTERM)


@pytest.mark.parametrize(("kind", "option", "check"), [
    ("nginx", "--http2-prior-knowledge", "h2_answer_not_http2"),
    ("http.server", "--http2-prior-knowledge", "h2_answer_not_http2"),
    ("nginx http2", "--http2", "response_not_http"),
])
def test_curls_h2c_to_the_wrong_server_prints_what_the_report_says(
        kind: str, option: str, check: str) -> None:
    with tempfile.TemporaryDirectory(prefix="curl-h2c-") as tmp:
        path = Path(tmp, "curl.pcap")
        with server(kind, tmp) as port, tcpdump(path, [port]):
            done = subprocess.run(["curl", "-sS", "-m", "5", option, f"http://{HOST}:{port}/"],
                                  capture_output=True, text=True, timeout=20)
        printed = done.stderr.strip()
        diagnoses = analyze_pcap(path)
    assert done.returncode != 0 and printed.startswith("curl: ("), printed
    (diagnosis,) = diagnoses
    assert diagnosis.verdict is Verdict.FAILED, diagnosis.verdict
    assert diagnosis.primary is not None and diagnosis.primary.check == check
    assert diagnosis.facts.protocol == "h2c"
    assert diagnosis.attribution.client == "curl"
    # (the one line curl printed among curl's: which of them depends on a race, below)
    lines = diagnosis.attribution.client_errors
    assert all(line.startswith("curl: ") for line in lines), lines
    assert any(printed_as(line, printed) for line in lines), (printed, lines)
