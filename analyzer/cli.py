"""The command line: `upgrade-analyzer read|live|checks|explain`. All user-facing I/O lives here.

`main()` turns every error into a one-line message and an exit status; `_read()` is the logic.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from enum import IntEnum
from types import FrameType
from typing import Any

import click

from analyzer import __version__
from analyzer.checks.catalogue import CATALOGUE, lookup
from analyzer.pipeline import DEFAULT_MAX_CONNECTIONS, Analysis
from analyzer.report.kept import KeptAttempts
from analyzer.report.render import (
    FORMATS,
    iter_json,
    render_csv,
    render_json,
    render_jsonl_line,
    render_table,
    summary_text,
)
from analyzer.report.safe import neutralise
from analyzer.report.spilled import SpilledReport, emit_spilled
from analyzer.report.stream import (
    Tally,
    csv_head,
    csv_line,
    table_head,
    table_line,
    tally_summary_text,
)
from analyzer.source import read_records
from analyzer.source.frame import CaptureError, CaptureWarning
from analyzer.verdict import Diagnosis, Verdict


class ExitStatus(IntEnum):
    OK = 0  # the analysis ran, whatever it found
    INPUT_ERROR = 1  # an input cannot be read at all
    USAGE = 2  # click's own status for bad usage
    FAILED_FOUND = 3  # --fail-on failed and a failed attempt was found
    INTERNAL_ERROR = 70  # a bug: the message says so
    INTERRUPTED = 130


def _filter_options(command: Callable[..., None]) -> Callable[..., None]:
    """--failed, --host and --port, the same for `read` and `live`."""
    command = click.option("--port", type=int,
                           help="Only attempts with this client or server port.")(command)
    command = click.option("--host",
                           help="Only attempts whose Host header or IP address is this.")(command)
    return click.option("--failed", is_flag=True,
                        help="Only attempts that did not succeed.")(command)


_max_connections_option = click.option(
    "--max-connections", type=click.IntRange(min=100), default=DEFAULT_MAX_CONNECTIONS,
    show_default=True, metavar="N",
    help="Connections tracked at once; past it the oldest idle are evicted (counted in the "
         "summary). About 1 KB each.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="upgrade-analyzer")
def cli() -> None:
    """Tells why HTTP Upgrade handshakes (WebSocket, h2c, ...) in a capture failed."""


@cli.command("read")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "-F", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True, help="Output format.")
@_filter_options
@click.option("--fail-on", type=click.Choice(["failed"]),
              help="Exit with status 3 when any attempt did not succeed.")
@click.option("--detail", is_flag=True,
              help="Postmortem of every attempt: ladder diagram, heads, findings, fixes.")
@click.option("--attempt", "attempt", type=click.IntRange(min=1), metavar="N",
              help="Postmortem of attempt N only (numbered as in the table); implies --detail.")
@click.option("--show-secrets", is_flag=True,
              help="Show Authorization, cookies and token query parameters as captured.")
@click.option("--color/--no-color", default=None,
              help="Colour the detail view (default: when standard output is a terminal).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), metavar="N",
              help="Analyse each file as an independent capture, N files at a time in "
                   "parallel (frame numbers then count within each file).")
@_max_connections_option
def read_command(captures: tuple[str, ...], fmt: str, failed: bool, host: str | None,
                 port: int | None, fail_on: str | None, detail: bool, attempt: int | None,
                 show_secrets: bool, color: bool | None, jobs: int | None,
                 max_connections: int) -> None:
    """Analyze saved captures (pcap, pcapng, gzip; '-' for standard input).

    Several files are read as one capture in timestamp order.
    """
    view = View(show_secrets, detail or attempt is not None, attempt, color)
    if view.detail and fmt != "table":
        raise click.UsageError("--detail and --attempt print text; drop --format " + fmt)
    status = _read(captures, fmt, _filter(failed, host, port), fail_on is not None, view, jobs,
                   max_connections)
    sys.exit(status)


@dataclasses.dataclass(frozen=True, slots=True)
class View:
    """How `read` shows what it found, beyond the format."""

    show_secrets: bool = False  # no redaction (control characters are escaped regardless)
    detail: bool = False  # the postmortem view instead of the table
    attempt: int | None = None  # only this attempt (detail view)
    color: bool | None = None  # None: when standard output is a terminal (click decides)


@cli.command("checks")
def checks_command() -> None:
    """List the catalogue of findings."""
    from tabulate import tabulate

    rows = [(c.id, c.severity.value, c.effect.value, c.rfc, c.title) for c in CATALOGUE]
    click.echo(tabulate(rows, headers=("id", "severity", "effect", "rfc", "title")))


@cli.command("explain")
@click.argument("check_id")
def explain_command(check_id: str) -> None:
    """Explain one catalogue entry in full."""
    import textwrap  # here, like tabulate above: `read` never wraps text

    try:
        check = lookup(check_id)
    except KeyError:
        raise click.UsageError(
            f"unknown check id {check_id!r}; see 'upgrade-analyzer checks'"
        ) from None
    wrap = textwrap.TextWrapper(width=88, subsequent_indent="  ")
    click.echo(f"{check.id}: {check.title}")
    click.echo(f"  severity: {check.severity.value}; verdict effect: {check.effect.value}; "
               f"rule: {check.rfc}")
    click.echo(wrap.fill("what: " + check.explanation))
    click.echo(wrap.fill("fix: " + check.fix))


def _filter(failed: bool, host: str | None, port: int | None) -> Callable[[Diagnosis], bool]:
    def keep(d: Diagnosis) -> bool:
        a = d.attempt
        if failed and d.verdict is Verdict.SUCCEEDED:
            return False
        if port is not None and port not in (a.client.port, a.server.port):
            return False
        if host is not None:
            names = {a.client.ip, a.server.ip}
            request = a.request_head
            if request is not None and request.headers.get("host"):
                header = request.headers.get("host") or ""
                names.add(header)
                names.add(header.rsplit(":", 1)[0].strip("[]"))
            if host not in names:
                return False
        return True

    return keep


def _read(captures: tuple[str, ...], fmt: str, keep: Callable[[Diagnosis], bool],
          fail_on_failed: bool, view: View = View(), jobs: int | None = None,
          max_connections: int = DEFAULT_MAX_CONNECTIONS) -> int:
    warnings: list[CaptureWarning] = []
    analysis = Analysis(max_connections=max_connections)
    kept: list[Diagnosis] | SpilledReport = []
    tally = Tally()  # streamed runs keep counts, not attempts: memory stays flat
    status = ExitStatus.OK
    # From a pipe (`tcpdump -w - | upgrade-analyzer read -`) the table grows row by row too.
    streaming = fmt == "jsonl" or (fmt == "table" and "-" in captures and not view.detail)

    def decided() -> Iterator[Diagnosis]:
        if jobs is not None:  # independent inputs in parallel: see analyzer/parallel.py
            # imported only here: it brings in multiprocessing, which a plain read never uses
            from analyzer.parallel import analyze_in_parallel

            yield from analyze_in_parallel(captures, jobs, analysis, warnings, max_connections)
            return
        yield from analysis.feed_records(read_records(captures, warnings))
        yield from analysis.finish()

    def rebuild() -> Iterator[Diagnosis]:  # the same attempts again (report/kept.py)
        if jobs is not None:
            from analyzer.parallel import analyze_in_parallel

            yield from analyze_in_parallel(captures, jobs, Analysis(), [], max_connections)
            return
        again = Analysis(max_connections=max_connections)
        yield from again.feed_records(read_records(captures, []))
        yield from again.finish()

    # Sorted formats keep every attempt to the end: compactly, on disk past a point.
    store = KeptAttempts(fmt, keep, show_secrets=view.show_secrets, whole=view.detail,
                         rebuild=None if "-" in captures else rebuild)
    try:
        for diagnosis in _numbered(decided()):
            if not streaming:
                store.add(diagnosis)  # filtered after correlation, which needs every leg
                continue
            if not keep(diagnosis):
                continue
            tally.add(diagnosis)
            if fmt == "table":
                if tally.attempts == 1:
                    click.echo(table_head())
                click.echo(table_line(diagnosis, view.show_secrets))
                sys.stdout.flush()
            else:
                _print_line(render_jsonl_line(diagnosis, view.show_secrets))
    except CaptureError as error:
        _error(str(error))
        return ExitStatus.INPUT_ERROR
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except Exception as error:  # a bug: keep what was found, say so in one line
        status = ExitStatus.INTERNAL_ERROR
        _error(f"internal error at frame {analysis.stats.frames}: {type(error).__name__}: "
               f"{error} (results so far are shown; please report this capture)")
    for warning in warnings:
        _warn(f"{warning.source}: {warning.where}: {warning.message}")
    if not streaming:
        kept = store.close()  # sorted, correlated, filtered (report/kept.py)
    if streaming:
        summary = tally_summary_text(tally, analysis.stats, warnings=warnings)
        if fmt == "table":
            click.echo(("\n" if tally.attempts else "No upgrade attempts found.\n") + summary)
        else:
            click.echo(summary, err=True)
    elif not _emit(fmt, kept, analysis, warnings, view):
        return ExitStatus.USAGE
    failed = (tally.failed if streaming else kept.failed if isinstance(kept, SpilledReport)
              else any(d.verdict is not Verdict.SUCCEEDED for d in kept))
    if status is ExitStatus.OK and fail_on_failed and failed:
        status = ExitStatus.FAILED_FOUND
    return status


def _numbered(diagnoses: Iterator[Diagnosis]) -> Iterator[Diagnosis]:
    for number, d in enumerate(diagnoses, start=1):
        yield _renumber(d, number)


def _renumber(d: Diagnosis, number: int) -> Diagnosis:
    return dataclasses.replace(d, number=number)


def _emit(fmt: str, kept: list[Diagnosis] | SpilledReport, analysis: Analysis,
          warnings: list[CaptureWarning], view: View = View()) -> bool:
    """Print the report; False (after a one-line error) when --attempt names no attempt."""
    stats = analysis.stats
    if isinstance(kept, SpilledReport):
        return emit_spilled(kept, fmt, stats, warnings, view, _detail_text)
    secrets = view.show_secrets
    if view.attempt is not None:
        chosen = [d for d in kept if d.number == view.attempt]
        if not chosen:
            _error(f"no attempt {view.attempt}: this report has {len(kept)} "
                   f"(see the table without --attempt)")
            return False
        # Colour is produced unless refused; click strips it when stdout is not a terminal.
        click.echo(_detail_text(chosen[0], view), nl=False, color=view.color)
    elif view.detail:
        for d in kept:
            click.echo(_detail_text(d, view), color=view.color)
        click.echo(summary_text(kept, stats, warnings))
    elif fmt == "json":
        for piece in iter_json(kept, stats, warnings, secrets):
            sys.stdout.write(piece)
        sys.stdout.write("\n")
    elif fmt == "csv":
        click.echo(render_csv(kept, secrets), nl=False)
    else:
        click.echo(render_table(kept, stats, warnings, markdown=fmt == "markdown",
                                show_secrets=secrets))
    return True


def _detail_text(diagnosis: Diagnosis, view: View) -> str:
    # Imported here, as the live modules are in _live: only the postmortem view needs it.
    from analyzer.report.detail import render_detail

    return render_detail(diagnosis, show_secrets=view.show_secrets, color=view.color is not False)


@cli.command("live")
@click.option("--interface", "-i", "interfaces", multiple=True, required=True, metavar="IFACE",
              help="Interface to capture on; repeat for several; 'any' for all of them.")
@click.option("--filter", "-f", "bpf", metavar="EXPR",
              help="Capture filter (tcpdump syntax) applied in the kernel: -f 'tcp port 8080'.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop after this long (default: at Ctrl-C).")
@click.option("--count", type=click.IntRange(min=1), metavar="N",
              help="Stop after N attempts have been reported.")
@click.option("--response-timeout", type=click.FloatRange(min=0, min_open=True), default=5.0,
              show_default=True, metavar="SECONDS",
              help="How long a request or SYN waits for an answer before it is no_response.")
@click.option("--write", "write_path", type=click.Path(dir_okay=False), metavar="FILE.pcapng",
              help="Also save the raw packets, for a later 'read'.")
@click.option("--write-limit", type=click.FloatRange(min=0), default=100.0, show_default=True,
              metavar="MB", help="Past this size go on in FILE.1.pcapng, FILE.2... (0: never).")
@click.option("--write-files", type=click.IntRange(min=0), default=10, show_default=True,
              metavar="N", help="Keep at most N files, deleting the oldest (0: keep all).")
@click.option("--format", "-F", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True,
              help="Output format; json and markdown print at the end, the others as they go.")
@_filter_options
@_max_connections_option
def live_command(interfaces: tuple[str, ...], bpf: str | None, duration: float | None,
                 count: int | None, response_timeout: float, write_path: str | None,
                 write_limit: float, write_files: int, fmt: str, failed: bool,
                 host: str | None, port: int | None, max_connections: int) -> None:
    """Capture on network interfaces and report each attempt the moment it is decided.

    Needs root or CAP_NET_RAW. Ctrl-C or the end of --duration prints the summary.
    """
    options = LiveOptions(interfaces, bpf, duration, count, response_timeout, write_path,
                          round(write_limit * 1_000_000), write_files, max_connections)
    sys.exit(_live(options, fmt, _filter(failed, host, port)))


@dataclasses.dataclass(frozen=True, slots=True)
class LiveOptions:
    interfaces: tuple[str, ...]
    bpf: str | None
    duration: float | None  # seconds
    count: int | None  # attempts reported
    response_timeout: float  # seconds
    write_path: str | None
    write_limit: int  # bytes per file, 0: one file
    write_files: int  # files kept, 0: all
    max_connections: int = DEFAULT_MAX_CONNECTIONS


def _live(options: LiveOptions, fmt: str, keep: Callable[[Diagnosis], bool]) -> int:
    from analyzer.live import run_live
    from analyzer.source.live import SNAPLEN, LiveCapture
    from analyzer.source.writer import RotatingPcapngWriter

    try:
        capture = LiveCapture(options.interfaces, options.bpf)
    except CaptureError as error:
        _error(str(error))
        return ExitStatus.INPUT_ERROR
    analysis = Analysis(max_connections=options.max_connections)
    output = _LiveOutput(fmt)
    stop = _StopOnSignals()
    status = ExitStatus.OK
    writer: RotatingPcapngWriter | None = None
    numbers = iter(range(1, sys.maxsize))

    def report(diagnosis: Diagnosis) -> bool:
        """Prints one attempt; True when --count is reached."""
        diagnosis = _renumber(diagnosis, next(numbers))
        if keep(diagnosis):
            output.add(diagnosis)
        return options.count is not None and output.tally.attempts >= options.count

    try:
        if options.write_path:
            writer = RotatingPcapngWriter(
                options.write_path, [(i.name, i.linktype) for i in capture.interfaces],
                SNAPLEN, options.write_limit, options.write_files)
        where = ", ".join(i.name for i in capture.interfaces)
        click.echo(f"upgrade-analyzer: listening on {where}"
                   + (f" with filter {options.bpf!r}" if options.bpf else "")
                   + "; Ctrl-C stops", err=True)
        deadline = time.time() + options.duration if options.duration else None
        stop.install()
        counted_out = False
        for diagnosis in run_live(capture, analysis, options.response_timeout,
                                  should_stop=stop.requested, deadline=deadline, sink=writer):
            if counted_out := report(diagnosis):
                break
        if not counted_out:
            # Stopped by Ctrl-C or --duration: what is still open is judged as it stands.
            for diagnosis in analysis.finish():
                if report(diagnosis):
                    break
    except CaptureError as error:
        _error(str(error))
        status = ExitStatus.INPUT_ERROR
    except Exception as error:  # a bug: keep what was found, say so in one line
        status = ExitStatus.INTERNAL_ERROR
        _error(f"internal error at frame {analysis.stats.frames}: {type(error).__name__}: "
               f"{error} (results so far are shown; please report this)")
    finally:
        stop.restore()
        counters = capture.counters()
        capture.close()
        if writer is not None:
            writer.close()
    output.finish(analysis, counters.received, counters.dropped)
    return status


class _StopOnSignals:
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


class _LiveOutput:
    """A live run's report: jsonl, table and csv print each attempt as it comes (and keep only
    counts); json and markdown keep the attempts and print once at the end."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.tally = Tally()
        self._kept: list[Diagnosis] = []

    def add(self, diagnosis: Diagnosis) -> None:
        self.tally.add(diagnosis)
        if self.fmt in ("json", "markdown"):
            self._kept.append(diagnosis)
            return
        first = self.tally.attempts == 1
        if self.fmt == "jsonl":
            _print_line(render_jsonl_line(diagnosis))
            return
        if self.fmt == "csv":
            click.echo((csv_head() + "\n" if first else "") + csv_line(diagnosis))
        else:
            click.echo((table_head() + "\n" if first else "") + table_line(diagnosis))
        sys.stdout.flush()

    def finish(self, analysis: Analysis, received: int, dropped: int) -> None:
        """The summary, with the packets received and the packets the kernel dropped."""
        stats = analysis.stats
        if self.fmt == "json":
            document = json.loads(render_json(self._kept, stats, []))
            document["summary"].update(packets_received=received, packets_dropped=dropped)
            click.echo(json.dumps(document, indent=2))
        elif self.fmt == "markdown":
            click.echo(render_table(self._kept, stats, [], markdown=True))
            click.echo(f"Packets: {received} received, {dropped} dropped by the kernel")
        elif self.fmt == "table":
            click.echo(("\n" if self.tally.attempts else "No upgrade attempts found.\n")
                       + tally_summary_text(self.tally, stats, received, dropped))
        else:  # jsonl, csv: standard output stays machine-readable
            if self.fmt == "csv" and not self.tally.attempts:
                click.echo(csv_head())
            click.echo(tally_summary_text(self.tally, stats, received, dropped), err=True)


def _print_line(line: str) -> None:
    """One JSON line on standard output, flushed at once so that `| jq` sees each attempt as it
    is decided (README: `read -`, `live`).

    Not click.echo: per line, that asks whether standard output is a terminal and scans the
    line for colour codes to strip, and a JSON line has none (json.dumps escapes every control
    character), so the bytes are the same.
    """
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _error(message: str) -> None:
    click.echo(f"upgrade-analyzer: error: {neutralise(message)}", err=True)


def _warn(message: str) -> None:
    click.echo(f"upgrade-analyzer: warning: {neutralise(message)}", err=True)


# The analysis allocates millions of short-lived objects and makes few reference cycles (a
# connection and its tracker, broken when the connection ends). At the default threshold (a
# young collection every 700 allocations) the collector kept walking what a run holds on to
# (the attempts kept for a sorted report): 0.35 s of 2.2 s on the 1 GB benchmark as a table,
# for no memory back (benchmarks/README.md). Cycles are still collected, just in larger steps.
GC_THRESHOLD = (10_000, 10, 10)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLD)
    try:
        cli.main(prog_name="upgrade-analyzer", standalone_mode=True)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): nothing more to say
        sys.exit(ExitStatus.OK)
