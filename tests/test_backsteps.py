"""Timestamps that step back (`source.frame.Backsteps`): a capture whose records go back in
time (an unsorted merge of two files, `mergecap -a` of overlapping ones, the capturing
host's clock stepped back) makes durations, waits and watch windows wrong without a word.
The readers count such records over every record, the pipeline gathers them (a merge of
files in its own numbering, `read --jobs` once), and every summary says so, only when it
happened. The compiled skip's part is compared with the plain reader's in
tests/test_decode.py and, on the dense benchmark mix, in tests/test_follow.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.pipeline import Analysis
from analyzer.report.stream import Tally, tally_summary_text
from analyzer.source import read_captures, read_records
from tests.builder import (
    Conversation,
    Opcode,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import run_cli

START = 1_700_000_000.0
LINE = "Timestamps go backwards"


def _websocket(port: int, start: float) -> Conversation:
    """A WebSocket that says hello each way, then closes: 9 frames, 36 ms long."""
    conv = Conversation(client=("10.0.0.1", port), server=("10.0.0.2", 80), start=start)
    conv.handshake()
    conv.client(websocket_request("example.com", f"/ws{port}"))
    conv.server(websocket_response(), delay=0.002)
    conv.client_ws_frame(Opcode.TEXT, b"hello", delay=0.01)
    conv.server_ws_frame(Opcode.TEXT, b"hello", delay=0.01)
    conv.client_fin(0.01)
    conv.server_fin(0.001)
    return conv


def _appended(out: Path, first: Path, second: Path, pcapng: bool) -> None:
    """``second``'s records after ``first``'s, unsorted, as `mergecap -a` writes them (a
    pcapng file's second section stands as it is; a pcap file's header goes)."""
    tail = second.read_bytes()
    out.write_bytes(first.read_bytes() + (tail if pcapng else tail[24:]))


def _two_unsorted(tmp_path: Path, pcapng: bool = False) -> tuple[Path, int, float]:
    """A capture of two WebSockets, the later one's records first: its path, the frame where
    time steps back, and by how much."""
    later = _websocket(40001, START + 10.0)
    earlier = _websocket(40002, START)
    a, b = tmp_path / "later.pcap", tmp_path / "earlier.pcap"
    frames = write_pcap(a, [later], pcapng=pcapng)
    write_pcap(b, [earlier], pcapng=pcapng)
    out = tmp_path / ("unsorted.pcapng" if pcapng else "unsorted.pcap")
    _appended(out, a, b, pcapng)
    return out, len(frames) + 1, frames[-1].time - START


@pytest.mark.parametrize("pcapng", [False, True])
@pytest.mark.parametrize("compiled", [True, False])
def test_a_capture_whose_time_steps_back_is_counted(tmp_path: Path, pcapng: bool,
                                                    compiled: bool) -> None:
    """Two files appended, the later first: one record steps back, the first of the second
    file, by the first file's end less the second's start; the same with the compiled skip
    and without it, from pcap and pcapng."""
    path, frame, step = _two_unsorted(tmp_path, pcapng)
    run = Analysis(lifetimes=True, compiled=compiled)
    [*run.feed_records(read_records([str(path)], [])), *run.finish()]
    stats = run.stats
    assert (stats.timestamps_backwards, stats.timestamps_backwards_first_frame) == (1, frame)
    assert stats.timestamps_backwards_largest_s == pytest.approx(step, abs=1e-6)
    assert frame == 10 and step == pytest.approx(10.036, abs=1e-6)


def test_every_summary_says_so_and_only_then(tmp_path: Path) -> None:
    """The table's summary, the JSON summary, JSONL's summary (on standard error, and the
    summary line of --summary-only), Markdown's and the HTML page's Capture panel; and none
    of them for the same two WebSockets in time order."""
    path, _, _ = _two_unsorted(tmp_path)
    expected = ("Timestamps go backwards 1 time (first at frame 10, by up to 10 s): durations "
                "and timeouts near those frames may be wrong; sort the capture with reordercap")
    assert expected in run_cli("read", path).stdout.splitlines()
    assert expected in run_cli("read", path, "-F", "markdown").stdout
    streamed = run_cli("read", path, "-F", "jsonl")
    assert expected in streamed.stderr.splitlines()
    summary = json.loads(run_cli("read", path, "-F", "json").stdout)["summary"]
    assert (summary["timestamps_backwards"], summary["timestamps_backwards_first_frame"],
            summary["timestamps_backwards_largest_s"]) == (1, 10, 10.036)
    line = json.loads(run_cli("read", path, "-F", "jsonl", "--summary-only").stdout)
    assert line["summary"]["timestamps_backwards"] == 1
    page = tmp_path / "report.html"
    run_cli("read", path, "-F", "html", "-o", page)
    assert f'<p class="small notice">{expected}.</p>' in page.read_text()

    sorted_path = tmp_path / "sorted.pcap"
    write_pcap(sorted_path, [_websocket(40001, START + 10.0), _websocket(40002, START)])
    assert LINE not in run_cli("read", sorted_path).stdout
    assert LINE not in run_cli("read", sorted_path, "-F", "jsonl").stderr
    summary = json.loads(run_cli("read", sorted_path, "-F", "json").stdout)["summary"]
    assert (summary["timestamps_backwards"], summary["timestamps_backwards_first_frame"],
            summary["timestamps_backwards_largest_s"]) == (0, None, 0.0)
    run_cli("read", sorted_path, "-F", "html", "-o", page)
    assert LINE not in page.read_text()


@pytest.mark.skipif(shutil.which("mergecap") is None or shutil.which("editcap") is None
                    or shutil.which("reordercap") is None,
                    reason="needs mergecap, editcap and reordercap (wireshark-common)")
def test_files_merged_by_mergecap_a_after_editcap_t(tmp_path: Path) -> None:
    """Real tools: the second capture's clock set back 30 s with `editcap -t`, then the two
    appended with `mergecap -a` (pcapng, as it writes by default): the step is counted where
    the second file starts; `reordercap`, which the line advises, leaves none."""
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    first = write_pcap(a, [_websocket(40001, START)])
    write_pcap(b, [_websocket(40002, START + 20.0)])
    shifted, merged, fixed = (tmp_path / name for name in ("b30.pcap", "ab.pcapng",
                                                           "fixed.pcapng"))
    for command in (["editcap", "-t", "-30", b, shifted], ["mergecap", "-a", "-w", merged, a,
                                                          shifted],
                    ["reordercap", merged, fixed]):
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    summary = json.loads(run_cli("read", merged, "-F", "json").stdout)["summary"]
    # the second file starts at START - 10 s, after the first one's last record
    assert (summary["timestamps_backwards"], summary["timestamps_backwards_first_frame"]) == (
        1, len(first) + 1)
    assert summary["timestamps_backwards_largest_s"] == pytest.approx(
        first[-1].time - (START - 10.0), abs=1e-6)
    assert "Timestamps go backwards 1 time (first at frame 10, by up to 10 s)" in run_cli(
        "read", merged).stdout
    assert json.loads(run_cli("read", fixed, "-F", "json").stdout)["summary"][
        "timestamps_backwards"] == 0


def test_files_read_together_count_in_the_merged_numbering(tmp_path: Path) -> None:
    """Several files read as one capture are merged by time: a file that steps back on its
    own still does in the merge (a later file's records cannot come between), at the merged
    frame number of that record, whatever the other files' records around it."""
    path, _, step = _two_unsorted(tmp_path)
    other = tmp_path / "other.pcap"
    write_pcap(other, [_websocket(40003, START + 10.005)])
    for paths in ([path, other], [other, path]):
        frames = list(read_captures([str(p) for p in paths], []))
        backs = [f.number for previous, f in zip(frames, frames[1:], strict=False)
                 if f.time < previous.time]
        assert len(backs) == 1
        for compiled in (True, False):
            run = Analysis(lifetimes=True, compiled=compiled)
            [*run.feed_records(read_records([str(p) for p in paths], [])), *run.finish()]
            stats = run.stats
            assert (stats.timestamps_backwards, stats.timestamps_backwards_first_frame) == (
                1, backs[0]), (paths, compiled)
            assert stats.timestamps_backwards_largest_s == pytest.approx(step, abs=1e-6)


def test_read_jobs_counts_them_once(tmp_path: Path) -> None:
    """`read --jobs 2 FILE`: every shard reads the whole file, so the count is one shard's,
    not their sum; `read --jobs 2 FILES`: each file's own, added."""
    path, frame, _ = _two_unsorted(tmp_path)
    alone = json.loads(run_cli("read", path, "-F", "json").stdout)["summary"]
    sharded = json.loads(run_cli("read", "--jobs", "2", path, "-F", "json").stdout)["summary"]
    keys = ("timestamps_backwards", "timestamps_backwards_first_frame",
            "timestamps_backwards_largest_s")
    assert [sharded[k] for k in keys] == [alone[k] for k in keys] == [1, frame, 10.036]
    sorted_path = tmp_path / "sorted.pcap"
    write_pcap(sorted_path, [_websocket(40003, START)])
    files = json.loads(run_cli("read", "--jobs", "2", sorted_path, path, "-F", "json").stdout)
    assert [files["summary"][k] for k in keys] == [1, frame, 10.036]


class _Polled:
    """A live capture's source: the frames, a few at each poll."""

    def __init__(self, frames: list, batch: int) -> None:
        self.frames, self.batch = frames, batch

    def poll(self, timeout: float) -> list:
        out, self.frames = self.frames[:self.batch], self.frames[self.batch:]
        return out


def test_live_counts_them_and_says_so(tmp_path: Path) -> None:
    """`live -i lo -i any` sorts each read's packets by time, but a read of one interface can
    end after the other's next one began: frames fed one by one (`Analysis.feed`) are counted
    too, and `live`'s summary says so."""
    from analyzer.live import run_live

    path, frame, step = _two_unsorted(tmp_path)
    analysis = Analysis()
    source = _Polled(list(read_captures([str(path)], [])), batch=4)
    tally = Tally()
    for decided in run_live(source, analysis, 5.0, should_stop=lambda: not source.frames):
        tally.add(decided)  # type: ignore[arg-type]
    for decided in analysis.finish():
        tally.add(decided)  # type: ignore[arg-type]
    stats = analysis.stats
    assert (stats.timestamps_backwards, stats.timestamps_backwards_first_frame) == (1, frame)
    assert stats.timestamps_backwards_largest_s == pytest.approx(step, abs=1e-6)
    text = tally_summary_text(tally, stats, 22, 0)
    assert ("Timestamps go backwards 1 time (first at frame 10, by up to 10 s): durations and "
            "timeouts near those frames may be wrong; sort the capture with reordercap"
            ) in text.splitlines()


def test_a_step_back_of_microseconds_is_counted_but_not_said(tmp_path: Path) -> None:
    """Records of two queues or interfaces step back by microseconds (CheckOCPP's real
    capture: 2 µs once): JSON counts it, no summary line says durations may be wrong."""
    a, b, out = tmp_path / "later.pcap", tmp_path / "earlier.pcap", tmp_path / "both.pcap"
    write_pcap(a, [_websocket(40001, START)])
    last = max(record.time for record in read_captures([str(a)], []))
    write_pcap(b, [_websocket(40002, last - 0.000_005)])  # starts 5 µs before a's end
    _appended(out, a, b, pcapng=False)
    summary = json.loads(run_cli("read", out, "-F", "json").output)["summary"]
    assert summary["timestamps_backwards"] == 1
    assert 0 < summary["timestamps_backwards_largest_s"] < 0.001
    assert LINE not in run_cli("read", out).output
