"""A capture that lost a FIN, and nothing else: the FIN's sequence number (the other side
acknowledged it) is not a byte of the stream, so it is never a hole in the TLS handshake or
in the data (delivery.py `_lost_fin`). FINs cut with `editcap` from bundled real captures;
the near misses lose a real byte."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.life.model import Ended
from analyzer.pipeline import Analysis, analyze
from analyzer.source import read_captures, read_records
from analyzer.tls.keylog import load_keylog
from analyzer.verdict import Diagnosis, Verdict

CAPTURES = Path(__file__).resolve().parent.parent / "captures"

pytestmark = pytest.mark.skipif(
    shutil.which("editcap") is None,
    reason="frames are cut with editcap (apt-get install wireshark-common)")


def analyse(path: Path, keys: str | None) -> tuple[list[Diagnosis], Analysis]:
    secrets = load_keylog((CAPTURES / f"{keys}.keys").read_bytes()) if keys else None
    run = Analysis(secrets=secrets)
    diagnoses = [d for d in analyze(read_captures([str(path)], []), run)
                 if isinstance(d, Diagnosis)]
    return sorted(diagnoses, key=lambda d: (d.attempt.client.port, d.number)), run


def cut(tmp_path: Path, name: str, *frames: int) -> Path:
    out = tmp_path / f"{name}-{'-'.join(map(str, frames))}.pcap"
    subprocess.run(["editcap", str(CAPTURES / f"{name}.pcap"), str(out), *map(str, frames)],
                   check=True, capture_output=True, timeout=30)
    return out


def summary(diagnoses: list[Diagnosis]) -> list[tuple[Verdict, list[str]]]:
    return [(d.verdict, [f.check for f in d.findings]) for d in diagnoses]


def no_hole(diagnoses: list[Diagnosis]) -> bool:
    return not any(f.check.startswith("capture_gap") for d in diagnoses for f in d.findings) \
        and not any(d.attempt.tcp.gaps for d in diagnoses)


# (capture, the frame carrying a FIN, whose side, key log): each FIN of each bundled TLS
# conversation that ends with FINs, first and second closer alike.
CASES = [
    ("tls_client_unknown_ca", 8, "client", "tls_client_unknown_ca"),  # the silent close
    ("tls_client_unknown_ca", 9, "server", "tls_client_unknown_ca"),
    ("tls12_cert_expired", 8, "client", None),
    ("tls12_cert_expired", 9, "server", None),
    ("tls_nginx_wrong_sni", 8, "server", None),
    ("tls_nginx_wrong_sni", 9, "client", None),
    ("tls_mtls_no_client_cert", 11, "server", "tls_mtls_no_client_cert"),
    ("tls_mtls_no_client_cert", 12, "client", "tls_mtls_no_client_cert"),
    ("tls_mtls_no_client_cert", 22, "server", "tls_mtls_no_client_cert"),
    ("tls_mtls_no_client_cert", 23, "client", "tls_mtls_no_client_cert"),
    ("wss_tls13_aes128_gcm", 21, "client", "wss_tls13_aes128_gcm"),
    ("wss_tls13_aes128_gcm", 22, "server", "wss_tls13_aes128_gcm"),
    ("wss_tls12_ecdhe_rsa_chacha20", None, "client", "wss_tls12_ecdhe_rsa_chacha20"),
    ("wss_aiohttp", 22, "client", "wss_aiohttp"),
]


def _first_fin(name: str, side_port_is_server: bool) -> int:
    """The frame of the first FIN sent by the client (or the server) in a capture."""
    out = subprocess.run(
        ["tshark", "-r", str(CAPTURES / f"{name}.pcap"), "-Y", "tcp.flags.fin==1", "-T",
         "fields", "-e", "frame.number", "-e", "tcp.srcport", "-e", "tcp.dstport"],
        check=True, capture_output=True, text=True, timeout=30).stdout.split("\n")
    for line in out:
        if line:
            frame, source, destination = map(int, line.split("\t"))
            if (source < destination) == side_port_is_server:
                return frame
    raise AssertionError("no FIN")


@pytest.mark.parametrize(("name", "frame", "side", "keys"), CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_lost_fin_changes_no_verdict(tmp_path: Path, name: str, frame: int | None, side: str,
                                     keys: str | None) -> None:
    """A FIN lost by the capture: the same attempts, verdicts and findings as the whole
    capture, with and without the key log, and no hole anywhere."""
    if frame is None:
        if shutil.which("tshark") is None:
            pytest.skip("tshark finds the FIN")
        frame = _first_fin(name, side == "server")
    for secrets in {keys, None}:
        whole, whole_run = analyse(CAPTURES / f"{name}.pcap", secrets)
        lossy, lossy_run = analyse(cut(tmp_path, name, frame), secrets)
        assert summary(lossy) == summary(whole), (secrets, summary(whole))
        assert no_hole(lossy)
        assert lossy_run.stats.tls_uninspected == whole_run.stats.tls_uninspected
        assert lossy_run.stats.tls_decrypted == whole_run.stats.tls_decrypted


def test_silent_close_with_its_fin_lost_names_the_acknowledging_frame(tmp_path: Path) -> None:
    """The client rejected the certificate by closing silently, and that FIN was lost: the
    server's FIN acknowledged it, so the client closed first (the verdict stands), and the
    evidence is the server's frame, said to carry no client FIN of its own."""
    diagnoses, _run = analyse(cut(tmp_path, "tls_client_unknown_ca", 8), None)
    [rejected] = diagnoses
    fin = rejected.attempt.tcp.client_fin
    assert fin is not None and fin.lost and rejected.attempt.tcp.server_fin is not None
    assert fin.frame == rejected.attempt.tcp.server_fin.frame == 8  # the server's FIN/ACK
    assert rejected.findings[0].check == "tls_certificate_rejected"
    assert "FIN (not captured)" in rejected.findings[0].found
    whole, _run = analyse(CAPTURES / "tls_client_unknown_ca.pcap", None)
    assert whole[0].attempt.tcp.client_fin is not None
    assert not whole[0].attempt.tcp.client_fin.lost  # the near miss: the FIN was captured


def test_server_data_after_the_lost_fin_is_read_after_it(tmp_path: Path) -> None:
    """The server acknowledged the client's lost FIN in the segment that carries its Close
    (jetty answers the hang-up), then the client reset one past its bytes: that segment
    waited for the number it acknowledged (`delivery._unseen`), and once the RST proved it
    a FIN, the FIN was told first and the Close after it, so the client hung up after the
    switch, as in the whole capture (it was a hole, and "closed normally", before)."""
    diagnoses, _run = analyse(cut(tmp_path, "jetty9_websocket", 67), None)
    whole, _run = analyse(CAPTURES / "jetty9_websocket.pcap", None)
    assert summary(diagnoses) == summary(whole) and no_hole(diagnoses)
    [last] = [d for d in diagnoses if d.attempt.client.port == 60188]
    assert last.findings[-1].check == "client_hung_up_after_switch"
    fin = last.attempt.tcp.client_fin
    assert fin is not None and fin.lost and fin.frame == 67  # the server's Close (68 whole)
    [captured] = [d for d in whole if d.attempt.client.port == 60188]
    assert captured.attempt.tcp.client_fin is not None  # the near miss: its FIN captured
    assert not captured.attempt.tcp.client_fin.lost


# --- the near misses: a real byte lost (tests.builder writes the capture) ---------------


def _tls13_conversation(tmp_path: Path, lose: str) -> tuple[list[Diagnosis], Analysis]:
    """A real TLS 1.3 WebSocket handshake (OpenSSL in memory), its server's last byte in a
    segment of its own; ``lose`` names what the capture lost: "byte" (that last byte, the
    FIN captured), "byte+fin" (that byte and the FIN), or "fin" (the FIN only)."""
    from tests.builder import Conversation, write_pcap
    from tests.tls_memory import SERVER, recorded

    chunks, keylog = recorded("ws13")
    conv = Conversation(server=("10.0.0.2", 443))
    conv.handshake()
    lost: list[int] = []
    for number, (side, data) in enumerate(chunks):
        last = number == max(n for n, (s, _d) in enumerate(chunks) if s == SERVER)
        sent = conv.send(side != SERVER, data, split=[len(data) - 1] if last else None)
        if last and "byte" in lose:
            lost += sent[-1:]
    lost += [i for i in conv.server_fin() if "fin" in lose]
    conv.client_fin()
    path = tmp_path / f"{lose}.pcap"
    write_pcap(path, [conv], drop=lost)
    run = Analysis(secrets=load_keylog(keylog))
    return list(analyze(read_captures([str(path)], []), run)), run


def test_server_fin_lost_in_a_built_conversation_is_no_hole(tmp_path: Path) -> None:
    whole, _run = _tls13_conversation(tmp_path, "")
    lossy, _run = _tls13_conversation(tmp_path, "fin")
    assert summary(lossy) == summary(whole) and no_hole(lossy)
    assert whole[0].attempt.response_head is not None  # the 101 was read
    assert lossy[0].attempt.tcp.server_fin is not None and lossy[0].attempt.tcp.server_fin.lost


@pytest.mark.parametrize("lose", ["byte", "byte+fin"])
def test_last_byte_lost_is_still_a_hole(tmp_path: Path, lose: str) -> None:
    """One real byte lost at the end of the server's bytes (with its FIN captured after it,
    or lost with it): a hole of one byte, never read as a FIN."""
    diagnoses, _run = _tls13_conversation(tmp_path, lose)
    [attempt] = diagnoses
    assert {gap.length for gap in attempt.attempt.tcp.gaps if gap.side == "server"} == {
        1 if lose == "byte" else 2}
    assert attempt.verdict is Verdict.INCONCLUSIVE
    server_fin = attempt.attempt.tcp.server_fin
    assert server_fin is None or not server_fin.lost


def test_a_lost_fin_before_an_answering_close_notify_is_a_fin(tmp_path: Path) -> None:
    """curl's FIN lost, the server's close_notify acknowledged it, then curl's RST one past
    its bytes: the close_notify waited for that number, so the FIN is told first (it was a
    1-byte hole before); judged as the whole capture. The near miss: curl's RST lost too,
    so nothing proves a FIN and the hole stays (a lost byte reads the same)."""
    name = "tls12_curl_wrong_host"
    for secrets in (name, None):
        whole, _run = analyse(CAPTURES / f"{name}.pcap", secrets)
        lossy, _run = analyse(cut(tmp_path, name, 11), secrets)
        assert summary(lossy) == summary(whole) != []
        assert no_hole(lossy) and lossy[0].attempt.tcp.client_fin is not None
        assert lossy[0].attempt.tcp.client_fin.lost
        unproved, _run = analyse(cut(tmp_path, name, 11, 13), secrets)
        assert [gap.length for gap in unproved[0].attempt.tcp.gaps] == [1]
        assert unproved[0].attempt.tcp.client_fin is None


# --- connections in life (past their watch window: no reassembly, analyzer/life/) --------


def _ends(path: Path, how: str) -> dict[int, tuple[object, ...]]:
    """Each connection in life's end by client port: its final verdict, life findings, how
    it ended and who closed it. ``how``: "compiled" (the compiled skip and life table),
    "plain" (the twin table, Python's per-record path) or "frames" (`analyze`, a frame at a
    time: `Reassembler.feed`)."""
    run = Analysis(lifetimes=True, compiled=how == "compiled")
    if how == "frames":
        events = list(analyze(read_captures([str(path)], []), run))
    else:
        events = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
    return {e.client.port: (e.verdict, [f.check for f in e.findings], e.lifetime.how,
                            e.lifetime.closed_by)
            for e in events if isinstance(e, Ended)}


# websocket_lives.pcap: every FIN of its five connections that end in life (first closer
# and answering side alike); ws_ping_timeout.pcap: the server's FIN answering the client's
# Close 1011 and FIN
LIFE_CASES = [("websocket_lives", frame) for frame in (80, 81, 103, 104, 106, 107, 109, 110,
                                                         112, 113, 114, 116)] + [
    ("ws_ping_timeout", 13)]


@pytest.mark.parametrize(("name", "frame"), LIFE_CASES, ids=[f"{n}-{f}" for n, f in LIFE_CASES])
def test_a_lost_fin_in_life_ends_the_connection_as_the_whole_capture(
        tmp_path: Path, name: str, frame: int) -> None:
    """A FIN lost after the watch window: the other side acknowledged one number past the
    side's bytes and closed (or had closed): the same ends, verdicts and closers as the
    whole capture, by the compiled table, its twin and the per-frame path."""
    lossy = cut(tmp_path, name, frame)
    whole = _ends(CAPTURES / f"{name}.pcap", "compiled")
    assert whole and all(end[2] != "open" for end in whole.values())
    for how in ("compiled", "plain", "frames"):
        assert _ends(lossy, how) == whole, how


def test_a_lost_server_fin_in_life_keeps_the_restart_group(tmp_path: Path) -> None:
    """The server closed three WebSockets within 1 s (`server_reset_many`) and the capture
    lost the first FIN: the client's FIN acknowledged it, so the server still closed first
    (a lost FIN comes before the frame that acknowledged it), and the group stands."""
    def reasons(path: Path) -> list[tuple[str, list[str]]]:
        out = subprocess.run([sys.executable, "-m", "analyzer", "read", "-F", "json",
                              str(path)], check=True, capture_output=True, text=True,
                             timeout=60, cwd=CAPTURES.parent).stdout
        return [(a["verdict"], a["reasons"]) for a in json.loads(out)["attempts"]]

    whole = reasons(CAPTURES / "websocket_lives.pcap")
    assert sum("server_reset_many" in r for _v, r in whole) == 3
    assert reasons(cut(tmp_path, "websocket_lives", 103)) == whole


def test_near_miss_in_life_the_other_side_never_closed(tmp_path: Path) -> None:
    """Both FINs of the /crash connection lost: the server's last ACK acknowledged one
    number past the client's bytes, but the server never closed (its own FIN lost too):
    nothing proves a FIN, so the connection is still open at the end, as before."""
    lossy = _ends(cut(tmp_path, "websocket_lives", 80, 81), "compiled")
    whole = _ends(CAPTURES / "websocket_lives.pcap", "compiled")
    assert whole[42710][2] == "close_handshake"
    assert lossy[42710][2] == "open" and lossy[42710][0] is Verdict.SUCCEEDED
    assert {p: e for p, e in lossy.items() if p != 42710} == {
        p: e for p, e in whole.items() if p != 42710}


def test_a_fin_shown_after_its_acknowledgement_is_no_hole(tmp_path: Path) -> None:
    """The near miss of a lost FIN: the client's FIN captured, but after jetty's Close that
    acknowledges it (frames 67 and 68 swapped, as a capture on two interfaces may show
    them): the Close waits for the FIN (`delivery._unseen`), and the number it acknowledged
    is the FIN's, not a byte (it was a 1-byte hole before). The checks still order the ends
    by frame number, so the Close is judged as sent before the FIN here."""
    data = (CAPTURES / "jetty9_websocket.pcap").read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"  # little-endian, microseconds
    at, records = 24, []
    while at + 16 <= len(data):
        size = int.from_bytes(data[at + 8:at + 12], "little")
        records.append(data[at:at + 16 + size])
        at += 16 + size
    records[66], records[67] = records[67], records[66]  # frames 67 and 68
    swapped = tmp_path / "swapped.pcap"
    swapped.write_bytes(data[:24] + b"".join(records))
    whole, _run = analyse(CAPTURES / "jetty9_websocket.pcap", None)
    diagnoses, _run = analyse(swapped, None)
    assert no_hole(diagnoses)
    others = [[d for d in run if d.attempt.client.port != 60188] for run in (diagnoses, whole)]
    assert summary(others[0]) == summary(others[1]) != []  # the other connections
    [last] = [d for d in diagnoses if d.attempt.client.port == 60188]
    fin = last.attempt.tcp.client_fin
    assert fin is not None and not fin.lost and fin.frame == 68
