"""`upgrade-analyzer live`: capture on interfaces, report each attempt the moment it is
decided, and the summary when stopped (Ctrl-C, SIGTERM, --duration, --count). The options
are declared with the other commands in cli.py; this is what runs them."""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
from types import FrameType
from typing import Any

import click

from analyzer.cli_options import terminal_width
from analyzer.cli_status import ExitStatus, print_line, say_error
from analyzer.filters import Selection
from analyzer.life.fold import WINDOW_OVER, with_groups
from analyzer.life.model import Ended, attempt_key
from analyzer.pipeline import DEFAULT_MAX_CONNECTIONS, Analysis, Decided
from analyzer.report.clock import Clock
from analyzer.report.render import iter_json, render_jsonl_ended, render_jsonl_line, render_table
from analyzer.report.stream import Tally, csv_head, csv_line, tally_summary_text
from analyzer.report.table import StreamedTable, TableStyle
from analyzer.source.frame import CaptureError
from analyzer.verdict import Diagnosis, with_life

KEYLOG_WAIT = 10.0  # seconds a TLS session waits for its key to appear in the key log


@dataclasses.dataclass(frozen=True, slots=True)
class LiveOptions:
    """What `live` was asked to do (its command-line options)."""
    interfaces: tuple[str, ...]
    bpf: str | None
    duration: float | None  # seconds
    count: int | None  # attempts reported
    response_timeout: float  # seconds
    write_path: str | None
    write_limit: int  # bytes per file, 0: one file
    write_files: int  # files kept, 0: all
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    keylog: str | None = None  # a key log followed as it grows


def run_live_command(options: LiveOptions, fmt: str, selection: Selection, clock: Clock) -> int:
    from analyzer.live import run_live
    from analyzer.source.live import SNAPLEN, LiveCapture
    from analyzer.source.writer import RotatingPcapngWriter

    try:
        capture = LiveCapture(options.interfaces, options.bpf)
    except CaptureError as error:
        say_error(str(error))
        return ExitStatus.INPUT_ERROR
    follower = None
    secrets = None
    if options.keylog is not None:
        from analyzer.tls.keylog import KeyStore

        secrets = KeyStore(wait=KEYLOG_WAIT)
    analysis = Analysis(max_connections=options.max_connections, secrets=secrets, lifetimes=True)
    output = LiveOutput(fmt, TableStyle(clock, terminal_width()))
    stop = StopOnSignals()
    status = ExitStatus.OK
    writer: RotatingPcapngWriter | None = None
    numbers = iter(range(1, sys.maxsize))
    counted_out = False
    living: dict[tuple[int, int, int], int] = {}  # listed attempts whose connection lives on

    def report(diagnosis: Decided) -> bool:
        """Prints one attempt (or the end of one); True when --count is reached."""
        if isinstance(diagnosis, Ended):
            number = living.pop(diagnosis.key, None)
            if number is not None:
                output.ended(dataclasses.replace(diagnosis, number=number), selection)
            return False
        if not selection.listed(diagnosis):  # never reached HTTP, no --tcp: counted only
            if selection.keep(diagnosis):
                output.tally.apart[diagnosis.verdict.value] += 1
            return False
        diagnosis = dataclasses.replace(diagnosis, number=next(numbers))
        a = diagnosis.attempt
        if a.tcp.end_reason == WINDOW_OVER:
            living[attempt_key(a.first_frame, a.sequence, a.stream_id)] = diagnosis.number
        if selection.keep(diagnosis):
            output.add(diagnosis)
        return options.count is not None and output.tally.attempts >= options.count

    try:
        if options.write_path:
            writer = RotatingPcapngWriter(
                options.write_path, [(i.name, i.linktype) for i in capture.interfaces],
                SNAPLEN, options.write_limit, options.write_files)
        if options.keylog is not None and secrets is not None:
            from analyzer.source.keylog_file import FollowedKeyLog, WholeLines

            sink = secrets if writer is None else WholeLines(secrets, writer.write_secrets)
            follower = FollowedKeyLog(options.keylog, sink)
            follower.poll()
        where = ", ".join(i.name for i in capture.interfaces)
        click.echo(f"upgrade-analyzer: listening on {where}"
                   + (f" with filter {options.bpf!r}" if options.bpf else "")
                   + "; Ctrl-C stops", err=True)
        deadline = time.time() + options.duration if options.duration else None
        stop.install()
        for diagnosis in run_live(capture, analysis, options.response_timeout,
                                  should_stop=stop.requested, deadline=deadline, sink=writer,
                                  on_tick=follower.poll if follower is not None else None):
            if counted_out := report(diagnosis):
                break
    except CaptureError as error:  # the interface went away, or --write's disk is full
        say_error(str(error))
        status = ExitStatus.INPUT_ERROR
    except BrokenPipeError:
        raise  # the reader went away: _stop_on_closed_pipe ends the run (after the finally)
    except Exception as error:  # a bug: keep what was found, say so in one line
        status = ExitStatus.INTERNAL_ERROR
        say_error(f"internal error at frame {analysis.stats.frames}: {type(error).__name__}: "
               f"{error} (results so far are shown; please report this)")
    finally:
        stop.restore()
        if follower is not None:
            # The key log's last lines: a session that ended just before the stop waits for
            # its key, and is judged with it below (`Analysis.finish`).
            try:
                follower.poll()
            except CaptureError as error:  # --write could not embed them
                if status is ExitStatus.OK:
                    say_error(str(error))
                    status = ExitStatus.INPUT_ERROR
            follower.close()
        counters = capture.counters()
        capture.close()
        if writer is not None:
            try:
                writer.close()
            except CaptureError as error:  # the last buffered packets did not fit either
                if status is ExitStatus.OK:
                    say_error(str(error))
                    status = ExitStatus.INPUT_ERROR
    if not counted_out and status is not ExitStatus.INTERNAL_ERROR:
        # Stopped by Ctrl-C, --duration or an error: what is still open is judged as it stands.
        for diagnosis in analysis.finish():
            if report(diagnosis):
                break
    output.finish(analysis, counters.received, counters.dropped)
    return status


class StopOnSignals:
    """Ctrl-C (SIGINT) and SIGTERM ask the live loop to stop; a second Ctrl-C kills."""

    def __init__(self) -> None:
        self._requested = False
        self._saved: dict[int, Any] = {}

    def install(self) -> None:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._saved[number] = signal.signal(number, self._handle)

    def restore(self) -> None:
        for number, handler in self._saved.items():
            signal.signal(number, handler)
        self._saved.clear()

    def requested(self) -> bool:
        return self._requested

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self._requested = True
        signal.signal(number, signal.SIG_DFL)


class LiveOutput:
    """A live run's report: jsonl, table and csv print each attempt as it comes (and keep only
    counts); json and markdown keep the attempts and print once at the end."""

    def __init__(self, fmt: str, style: TableStyle) -> None:
        self.fmt = fmt
        self.tally = Tally()
        self._kept: list[Diagnosis] = []
        self._style = style
        self._table = StreamedTable(style)
        self._shown: set[int] = set()  # printed attempts whose connection lives on

    def ended(self, ended: Ended, selection: Selection) -> None:
        """An attempt's connection ended after its watch: jsonl prints the `ended` line, the
        table the row again only when the verdict changed; kept formats update the attempt."""
        was_shown = ended.number in self._shown
        self._shown.discard(ended.number)
        if self.fmt in ("json", "markdown"):
            for i, d in enumerate(self._kept):
                if d.number == ended.number:
                    self._kept[i] = with_life(d, ended)
                    self.tally.ended(ended, True)
            return
        # still open when the run stopped: the decided line said it all
        if not ended.lifetime.ended or not (was_shown or selection.keep_ended(ended)):
            return
        self.tally.ended(ended, was_shown)
        if self.fmt == "jsonl":
            print_line(render_jsonl_ended(ended))
        elif self.fmt == "table" and (ended.verdict is not ended.decided or not was_shown):
            click.echo(self._table.ended_line(ended))
            sys.stdout.flush()

    def add(self, diagnosis: Diagnosis) -> None:
        if diagnosis.attempt.tcp.end_reason == WINDOW_OVER:
            self._shown.add(diagnosis.number)
        self.tally.add(diagnosis)
        if self.fmt in ("json", "markdown"):
            self._kept.append(diagnosis)
            return
        first = self.tally.attempts == 1
        if self.fmt == "jsonl":
            print_line(render_jsonl_line(diagnosis))
            return
        if self.fmt == "csv":
            click.echo((csv_head() + "\n" if first else "") + csv_line(diagnosis))
        else:
            click.echo((self._table.head() + "\n" if first else "")
                       + self._table.line(diagnosis))
        sys.stdout.flush()

    def finish(self, analysis: Analysis, received: int, dropped: int) -> None:
        """The summary, with the packets received and the packets the kernel dropped."""
        stats = analysis.stats
        if self.fmt in ("json", "markdown"):  # sorted: the rules over several ends apply
            self._kept = with_groups(self._kept)
        if self.fmt == "json":
            document = json.loads("".join(iter_json(self._kept, stats, [],
                                                    apart=self.tally.apart)))
            document["summary"].update(packets_received=received, packets_dropped=dropped)
            click.echo(json.dumps(document, indent=2))
        elif self.fmt == "markdown":
            click.echo(render_table(self._kept, stats, [], markdown=True, style=self._style,
                                    apart=self.tally.apart))
            click.echo(f"Packets: {received} received, {dropped} dropped by the kernel")
        elif self.fmt == "table":
            click.echo(("\n" if self.tally.attempts else "No upgrade attempts found.\n")
                       + tally_summary_text(self.tally, stats, received, dropped,
                                            clock=self._style.clock))
        else:  # jsonl, csv: standard output stays machine-readable
            if self.fmt == "csv" and not self.tally.attempts:
                click.echo(csv_head())
            click.echo(tally_summary_text(self.tally, stats, received, dropped,
                                          clock=self._style.clock), err=True)
