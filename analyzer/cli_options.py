"""The options `read` and `live` share (the filters) and what the command line reads from its
terminal and environment: colour, width, where the report goes, which file an attempt is in."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator

import click

from analyzer.cli_status import ExitStatus, say_error
from analyzer.filters import Selection, check_ids, near_ids, parse_time
from analyzer.pipeline import Decided
from analyzer.report.digest import first_frame_of, in_file
from analyzer.verdict import Verdict


def complete_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return [i for i in check_ids() if i.startswith(incomplete.lower())]


def filter_options(command: Callable[..., None]) -> Callable[..., None]:
    """The filters, the same for `read` and `live` (analyzer/filters.py)."""
    options = [
        click.option("--failed", is_flag=True, help="Only attempts that did not succeed."),
        click.option("--verdict", "verdicts", multiple=True, metavar="VERDICT",
                     type=click.Choice([v.value for v in Verdict], case_sensitive=False),
                     help="Only attempts with this verdict; repeat for several."),
        click.option("--reason", "reasons", multiple=True, metavar="ID",
                     shell_complete=complete_ids,
                     help="Only attempts with this finding (see 'checks'); repeat for several."),
        click.option("--host", help="Only attempts whose Host header or IP address is this."),
        click.option("--port", type=int, help="Only attempts with this client or server port."),
        click.option("--since", metavar="TIME",
                     help="Only attempts at or after TIME: ISO 8601 (no zone: UTC) or Unix "
                          "seconds."),
        click.option("--until", metavar="TIME", help="Only attempts at or before TIME."),
        click.option("--min-lifetime", type=click.FloatRange(min=0), metavar="SECONDS",
                     help="Only switched connections that lived at least SECONDS after the "
                          "switch (to their end, or the end of the capture)."),
        click.option("--max-lifetime", type=click.FloatRange(min=0), metavar="SECONDS",
                     help="Only switched connections that lived at most SECONDS after the "
                          "switch."),
        click.option("--tcp", is_flag=True,
                     help="Also list connection attempts that never reached HTTP (refused, "
                          "unanswered SYN); otherwise they are only counted, and --fail-on "
                          "ignores them."),
        click.option("--local-time", is_flag=True,
                     help="Print times in the local zone instead of UTC (tables, summary)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def selection_of(failed: bool, verdicts: tuple[str, ...], reasons: tuple[str, ...],
               host: str | None, port: int | None, since: str | None, until: str | None,
               tcp: bool, local_time: bool, min_lifetime: float | None = None,
               max_lifetime: float | None = None) -> Selection:
    """The filters from their options; a usage error (status 2) for an unknown id or time."""
    ids = set(check_ids())
    for reason in reasons:
        if reason.lower() not in ids:
            raise click.BadParameter(unknown_id(reason), param_hint="--reason")
    times: list[float | None] = []
    for name, text in (("--since", since), ("--until", until)):
        try:
            times.append(parse_time(text, local_time) if text is not None else None)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint=name) from None
    return Selection(failed, host, port, frozenset(v.lower() for v in verdicts),
                     frozenset(r.lower() for r in reasons), times[0], times[1], tcp,
                     min_lifetime, max_lifetime)


def unknown_id(text: str) -> str:
    near = near_ids(text)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    return f"unknown check id {text!r}{hint} (see 'upgrade-analyzer checks')"


def colour(explicit: bool | None) -> bool | None:
    """--color/--no-color win; otherwise NO_COLOR (any value but empty, no-color.org) and
    TERM=dumb turn colour off; otherwise click colours when standard output is a terminal."""
    if explicit is not None:
        return explicit
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return None


def terminal_width() -> int | None:
    """The terminal's width when standard output is one (the table fits it); None when piped."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    import shutil

    return shutil.get_terminal_size().columns


def with_origin(d: Decided, paths: list[str],
                 origin: Callable[[int], tuple[int, int]] | None) -> Decided:
    """The attempt (or its end) with its file and frame number within that file (several
    inputs)."""
    if origin is None:
        return in_file(d, paths[0])
    index, frame = origin(first_frame_of(d))
    return dataclasses.replace(d, origin=(paths[index], frame))


def scheduler_address(ctx: click.Context, param: click.Parameter,
                      value: str | None) -> str | None:
    """``--scheduler``: a Dask scheduler's address, tcp:// or tls:// (no default scheme:
    a typo must not send captures somewhere unexpected)."""
    if value is not None and not value.startswith(("tcp://", "tls://")):
        raise click.BadParameter(f"{value!r}: give tcp://HOST:PORT or tls://HOST:PORT")
    return value


@contextlib.contextmanager
def output_to(path: str | None) -> Iterator[None]:
    """Standard output goes to ``path`` (-o FILE) while the report is written."""
    if path is None or path == "-":
        yield
        return
    try:
        out = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as error:  # before anything is read: the one-line error of every input
        say_error(f"--output {path}: {error.strerror or error}")
        sys.exit(ExitStatus.INPUT_ERROR)
    with out, contextlib.redirect_stdout(out):
        yield
