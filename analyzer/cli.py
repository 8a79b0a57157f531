"""The command line: `upgrade-analyzer read|checks|explain`. All user-facing I/O lives here.

`main()` turns every error into a one-line message and an exit status; `_read()` is the logic.
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from collections.abc import Callable, Iterator
from enum import IntEnum

import click

from analyzer import __version__
from analyzer.checks.catalogue import CATALOGUE, lookup
from analyzer.pipeline import Analysis
from analyzer.report.render import (
    FORMATS,
    render_csv,
    render_json,
    render_jsonl_line,
    render_table,
    summary_text,
)
from analyzer.source import read_captures
from analyzer.source.frame import CaptureError, CaptureWarning
from analyzer.verdict import Diagnosis, Verdict


class ExitStatus(IntEnum):
    OK = 0  # the analysis ran, whatever it found
    INPUT_ERROR = 1  # an input cannot be read at all
    USAGE = 2  # click's own status for bad usage
    FAILED_FOUND = 3  # --fail-on failed and a failed attempt was found
    INTERNAL_ERROR = 70  # a bug: the message says so
    INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="upgrade-analyzer")
def cli() -> None:
    """Tells why HTTP Upgrade handshakes (WebSocket, h2c, ...) in a capture failed."""


@cli.command("read")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@click.option("--format", "-F", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True, help="Output format.")
@click.option("--failed", is_flag=True, help="Only attempts that did not succeed.")
@click.option("--host", help="Only attempts whose Host header or IP address is this.")
@click.option("--port", type=int, help="Only attempts with this client or server port.")
@click.option("--fail-on", type=click.Choice(["failed"]),
              help="Exit with status 3 when any attempt did not succeed.")
def read_command(captures: tuple[str, ...], fmt: str, failed: bool, host: str | None,
                 port: int | None, fail_on: str | None) -> None:
    """Analyze saved captures (pcap, pcapng, gzip; '-' for standard input).

    Several files are read as one capture in timestamp order.
    """
    status = _read(captures, fmt, _filter(failed, host, port), fail_on is not None)
    sys.exit(status)


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
          fail_on_failed: bool) -> int:
    warnings: list[CaptureWarning] = []
    analysis = Analysis()
    kept: list[Diagnosis] = []
    status = ExitStatus.OK
    streaming = fmt == "jsonl"

    def decided() -> Iterator[Diagnosis]:
        for frame in read_captures(captures, warnings):
            yield from analysis.feed(frame)
        yield from analysis.finish()

    try:
        for number, diagnosis in enumerate(_numbered(decided()), start=1):
            del number
            if not keep(diagnosis):
                continue
            kept.append(diagnosis)
            if streaming:
                click.echo(render_jsonl_line(diagnosis))
                sys.stdout.flush()
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
        kept.sort(key=lambda d: (d.attempt.first_frame, d.attempt.time))
        kept = [_renumber(d, i) for i, d in enumerate(kept, start=1)]
    _emit(fmt, kept, analysis, warnings)
    if status is ExitStatus.OK and fail_on_failed and any(
        d.verdict is not Verdict.SUCCEEDED for d in kept
    ):
        status = ExitStatus.FAILED_FOUND
    return status


def _numbered(diagnoses: Iterator[Diagnosis]) -> Iterator[Diagnosis]:
    for number, d in enumerate(diagnoses, start=1):
        yield _renumber(d, number)


def _renumber(d: Diagnosis, number: int) -> Diagnosis:
    return dataclasses.replace(d, number=number)


def _emit(fmt: str, kept: list[Diagnosis], analysis: Analysis,
          warnings: list[CaptureWarning]) -> None:
    stats = analysis.stats
    if fmt == "jsonl":
        click.echo(summary_text(kept, stats, warnings), err=True)
    elif fmt == "json":
        click.echo(render_json(kept, stats, warnings))
    elif fmt == "csv":
        click.echo(render_csv(kept), nl=False)
    else:
        click.echo(render_table(kept, stats, warnings, markdown=fmt == "markdown"))


def _error(message: str) -> None:
    click.echo(f"upgrade-analyzer: error: {message}", err=True)


def _warn(message: str) -> None:
    click.echo(f"upgrade-analyzer: warning: {message}", err=True)


def main() -> None:
    try:
        cli.main(prog_name="upgrade-analyzer", standalone_mode=True)
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): nothing more to say
        sys.exit(ExitStatus.OK)
