"""A WebSocket handshake whose URL is longer than nginx accepts, with real software: the
`websockets` client against nginx (default large_client_header_buffers, 8 KiB), captured with
tcpdump on ``lo``. The request line is 16 KiB, past the start-line window the HTTP detector
had (http/start.py MAX_START_LINE): the attempt must be reported, with nginx's 414 as its
cause, not dropped as "not HTTP"."""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from analyzer.verdict import Verdict
from tests.helpers import analyze_pcap, nginx_conf, start_nginx
from tests.test_h2_live import HOST, _free_port, _stop, _wait_listening, tcpdump

websockets_client = pytest.importorskip("websockets.sync.client")
pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")

QUERY = "subscribe=" + "orders.eu-west," * 1100  # ≈ 16 KiB of query string


def test_nginx_refuses_a_16_kib_url_and_the_attempt_says_so() -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="long-target-") as tmp:
        conf = Path(tmp, "nginx.conf")
        conf.write_text(nginx_conf(tmp, f"""        listen {HOST}:{port};
        location / {{ return 200 "plain\\n"; }}"""))
        nginx = start_nginx(tmp, conf)
        path = Path(tmp, "long.pcap")
        try:
            _wait_listening(port, nginx)
            # whatever the client raises: what it printed is checked below
            with tcpdump(path, [port]), pytest.raises(Exception) as refused:
                websockets_client.connect(f"ws://{HOST}:{port}/chat?{QUERY}",
                                          open_timeout=10).close()
        finally:
            _stop(nginx, signal.SIGQUIT)
        said = str(refused.value)
        assert "414" in said, said  # what the client printed
        diagnoses = analyze_pcap(path)

    assert len(diagnoses) == 1, [d.attempt.request_head for d in diagnoses]
    (diagnosis,) = diagnoses
    request = diagnosis.attempt.request_head
    assert request is not None and len(request.target) > 16_000
    assert diagnosis.attempt.response_head is not None
    assert diagnosis.attempt.response_head.status == 414
    assert diagnosis.verdict is Verdict.FAILED
    assert diagnosis.findings[0].check == "request_target_too_long"
    assert diagnosis.attribution.server == "nginx"
    assert any("python websockets" in line and "414" in line
               for line in diagnosis.attribution.client_errors), diagnosis.attribution
