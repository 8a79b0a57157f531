"""The command line: `upgrade-analyzer read|live|checks|explain`. All user-facing I/O lives here.

`main()` turns every error into a one-line message and an exit status; the run of `read` is
`cli_read.run_read`, that of `live` `cli_live.run_live_command`.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from analyzer import __version__
from analyzer.checks.catalogue import CATALOGUE, lookup
from analyzer.cli_options import (
    colour,
    complete_ids,
    filter_options,
    scheduler_address,
    selection_of,
    unknown_id,
)
from analyzer.cli_read import View, run_read
from analyzer.cli_status import ExitStatus, say_error
from analyzer.pipeline import DEFAULT_MAX_CONNECTIONS
from analyzer.report.clock import Clock
from analyzer.report.render import FORMATS, READ_FORMATS


def _stop_on_closed_pipe(command: Callable[..., None]) -> Callable[..., None]:
    """A command whose standard output's reader went away (``| head -1``) stops at that
    write, quietly, with status 141, whatever the format (click's own handling says
    nothing but exits 1)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            try:
                command(*args, **kwargs)
            finally:
                sys.stdout.flush()  # the last buffered bytes fail here, not at interpreter exit
        except BrokenPipeError:
            _pipe_closed()

    return run


def _pipe_closed() -> None:
    # Writes that Python would still try at exit go nowhere instead of raising again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(ExitStatus.PIPE_CLOSED)


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
@click.argument("captures", nargs=-1, metavar="CAPTURE...")
@click.option("--read-file", "-r", "read_files", multiple=True, metavar="FILE",
              help="A capture to read, as tcpdump -r and tshark -r take it (the same as "
                   "CAPTURE); repeat for several.")
@click.option("--format", "-F", "fmt", type=click.Choice(READ_FORMATS), default="table",
              show_default=True,
              help="Output format; html is one self-contained page (timeline, sortable "
                   "table, every postmortem) to attach to an incident.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, allow_dash=True),
              metavar="FILE", help="Write the report to FILE instead of standard output.")
@filter_options
@click.option("--fail-on", type=click.Choice(["failed"]),
              help="Exit with status 3 when any attempt listed did not succeed.")
@click.option("--summary-only", is_flag=True,
              help="Print only the summary (JSON formats: {\"summary\": ...}).")
@click.option("--detail", is_flag=True,
              help="Postmortem of every attempt: ladder diagram, heads, findings, fixes.")
@click.option("--attempt", "attempt", type=click.IntRange(min=1), metavar="N",
              help="Postmortem of attempt N only (numbered as in the table); implies --detail.")
@click.option("--show-secrets", is_flag=True,
              help="Show Authorization, cookies and token query parameters as captured.")
@click.option("--color/--no-color", default=None,
              help="Colour the detail view (default: when standard output is a terminal and "
                   "neither NO_COLOR is set nor TERM=dumb).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), metavar="N",
              help="One file: shard its connections by server over N processes. Several "
                   "files: analyse each as an independent capture, N at a time (frame "
                   "numbers then count within each file).")
@click.option("--scheduler", metavar="ADDRESS", callback=scheduler_address,
              help="Run on a Dask cluster (tcp://HOST:8786 or tls://...; pip install "
                   "upgrade-analyzer[dask]): each file, or each of its --jobs shards, is a "
                   "task; the captures and the key log are sent to the workers.")
@_max_connections_option
@click.option("--keylog", type=click.Path(dir_okay=False), metavar="FILE",
              help="TLS key log (SSLKEYLOGFILE format) to decrypt wss:// and https:// with.")
@_stop_on_closed_pipe
def read_command(captures: tuple[str, ...], read_files: tuple[str, ...], fmt: str,
                 output: str | None, fail_on: str | None, summary_only: bool, detail: bool,
                 attempt: int | None, show_secrets: bool, color: bool | None,
                 jobs: int | None, max_connections: int, local_time: bool,
                 keylog: str | None = None, scheduler: str | None = None,
                 **filters: Any) -> None:
    """Analyze saved captures (pcap, pcapng, gzip; a directory: the captures in it; '-' for
    standard input).

    Several files are read as one capture in timestamp order.
    """
    inputs = read_files + captures
    if not inputs:
        raise click.UsageError("no capture given: read CAPTURE... (or -r FILE)")
    selection = selection_of(**filters, local_time=local_time)
    view = View(show_secrets, detail or attempt is not None, attempt, colour(color),
                summary_only, local_time)
    if view.detail and fmt != "table":
        raise click.UsageError("--detail and --attempt print text; drop --format " + fmt)
    if view.detail and summary_only:
        raise click.UsageError("--summary-only prints no attempt; drop --detail/--attempt")
    status = run_read(inputs, fmt, selection, fail_on is not None, view, jobs, max_connections,
                   output, _key_store(keylog), scheduler)
    sys.exit(status)


def _key_store(path: str | None) -> object | None:
    """The key log's secrets (analyzer/tls/keylog.py); its text is never printed."""
    if path is None:
        return None
    from analyzer.tls.keylog import load_keylog

    try:
        with open(path, "rb") as file:
            return load_keylog(file.read())
    except OSError as error:
        say_error(f"--keylog {path}: {error.strerror or error}")
        sys.exit(ExitStatus.INPUT_ERROR)


@cli.command("checks")
@click.option("--format", "-F", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="json: every entry in full, for scripts.")
@_stop_on_closed_pipe
def checks_command(fmt: str) -> None:
    """List the catalogue of findings."""
    if fmt == "json":
        entries = [{"id": c.id, "severity": c.severity.value, "effect": c.effect.value,
                    "rfc": c.rfc, "title": c.title, "explanation": c.explanation, "fix": c.fix}
                   for c in CATALOGUE]
        click.echo(json.dumps(entries, indent=2))
        return
    from tabulate import tabulate

    rows = [(c.id, c.severity.value, c.effect.value, c.rfc, c.title) for c in CATALOGUE]
    click.echo(tabulate(rows, headers=("id", "severity", "effect", "rfc", "title")))


@cli.command("explain")
@click.argument("check_id", shell_complete=complete_ids)
@_stop_on_closed_pipe
def explain_command(check_id: str) -> None:
    """Explain one catalogue entry in full (any case; a near miss gets suggestions)."""
    import textwrap  # here, like tabulate above: `read` never wraps text

    try:
        check = lookup(check_id.strip().lower())
    except KeyError:
        raise click.UsageError(unknown_id(check_id)) from None
    wrap = textwrap.TextWrapper(width=88, subsequent_indent="  ")
    click.echo(f"{check.id}: {check.title}")
    click.echo(f"  severity: {check.severity.value}; verdict effect: {check.effect.value}; "
               f"rule: {check.rfc}")
    click.echo(wrap.fill("what: " + check.explanation))
    click.echo(wrap.fill("fix: " + check.fix))


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
@filter_options
@_max_connections_option
@click.option("--keylog", type=click.Path(dir_okay=False), metavar="FILE",
              help="TLS key log to decrypt with, followed as it grows (a session waits up to "
                   "10 s for its key).")
@_stop_on_closed_pipe
def live_command(interfaces: tuple[str, ...], bpf: str | None, duration: float | None,
                 count: int | None, response_timeout: float, write_path: str | None,
                 write_limit: float, write_files: int, fmt: str, max_connections: int,
                 local_time: bool, keylog: str | None = None,
                 **filters: Any) -> None:
    """Capture on network interfaces and report each attempt the moment it is decided.

    Needs root or CAP_NET_RAW. Ctrl-C or the end of --duration prints the summary.
    """
    from analyzer.cli_live import LiveOptions, run_live_command  # not needed by `read`

    options = LiveOptions(interfaces, bpf, duration, count, response_timeout, write_path,
                          round(write_limit * 1_000_000), write_files, max_connections,
                          keylog)
    sys.exit(run_live_command(options, fmt, selection_of(**filters, local_time=local_time),
                              Clock(local=local_time)))


# The analysis allocates millions of short-lived objects and makes few reference cycles (a
# connection and its tracker, broken when the connection ends). At the default threshold (a
# young collection every 700 allocations) the collector kept walking what a run holds on to
# (the attempts kept for a sorted report): 0.35 s of 2.2 s on the 1 GB benchmark as a table,
# for no memory back (benchmarks/README.md). Cycles are still collected, just in larger steps.
# The middle generation is collected every 20 young collections (Python's default: 10): each
# of its collections walks the attempts a sorted report keeps whole (up to 2,000, ≈ 35-45 ms
# at 100 MB of the dense benchmark mix), and found nothing to free there.
GC_THRESHOLD = (10_000, 20, 10)


def main() -> None:
    # What the imports made (modules, classes, the catalogue: ≈ 30,000 objects the collector
    # tracks) lives until exit. Frozen, it is left out of every later collection (the few
    # hundred objects of garbage the imports left are frozen with it). python -m analyzer
    # and the console script import with the collector off (analyzer/__main__.run);
    # benchmarks/README.md, "the `densecost` round".
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    gc.enable()
    try:
        cli.main(prog_name="upgrade-analyzer", standalone_mode=True)
    except BrokenPipeError:  # the reader went away (| head) outside a command: nothing to say
        _pipe_closed()
