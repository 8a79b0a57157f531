"""How the command line ends and speaks: its exit statuses, its one-line errors and warnings
(every text from a capture made safe first), and JSON lines flushed as they come. Shared by
`read` (cli.py) and `live` (cli_live.py)."""

from __future__ import annotations

import errno
import sys
from enum import IntEnum

import click

from analyzer.report.safe import safe_text


class ExitStatus(IntEnum):
    OK = 0  # the analysis ran, whatever it found
    INPUT_ERROR = 1  # an input cannot be read at all
    USAGE = 2  # click's own status for bad usage
    FAILED_FOUND = 3  # --fail-on failed and a failed attempt was found
    INTERNAL_ERROR = 70  # a bug: the message says so
    INTERRUPTED = 130  # SIGINT (Ctrl-C) on `read`
    PIPE_CLOSED = 141  # the reader of standard output went away (| head): 128 + SIGPIPE
    TERMINATED = 143  # SIGTERM on `read` (timeout, systemd, docker stop): 128 + SIGTERM


# A full disk (or quota) under the report or its temporary files: not a bug, and said so.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in NO_SPACE


def say_no_space() -> None:
    """The one line for a full disk: sorted reports and `--jobs` keep results in temporary
    files (report/kept.py, scale/files.py), the report goes where standard output goes."""
    import tempfile  # (here: only this rare path needs it)

    say_error(f"no space left on device for the report or its temporary files (these go "
              f"to {tempfile.gettempdir()}: set TMPDIR to a larger directory, or use -F jsonl, "
              f"which keeps none)")


def print_line(line: str, flush: bool = True) -> None:
    """One JSON line on standard output, flushed at once so that `| jq` sees each attempt as it
    is decided (README: `read -`, `live`); ``flush`` False leaves it to the stream's buffer,
    for inputs that never keep the run waiting (`cli_read.waits_for_input`).

    Not click.echo: per line, that asks whether standard output is a terminal and scans the
    line for colour codes to strip, and a JSON line has none (json.dumps escapes every control
    character), so the bytes are the same.
    """
    sys.stdout.write(line + "\n")
    if flush:
        sys.stdout.flush()


def say_error(message: str, show_secrets: bool = False) -> None:
    flush_lines()
    click.echo(f"upgrade-analyzer: error: {safe_text(message, show_secrets)}", err=True)


def say_warning(message: str, show_secrets: bool = False) -> None:
    flush_lines()
    click.echo(f"upgrade-analyzer: warning: {safe_text(message, show_secrets)}", err=True)


def flush_lines() -> None:
    """The lines standard output still holds (`print_line` with ``flush`` False) go out
    before a message or summary on standard error: with both sent to one file (``2>&1``)
    the order stays the order things happened. (A reader gone away raises BrokenPipeError here as
    at the line's own flush: `cli._stop_on_closed_pipe` ends the run.)"""
    sys.stdout.flush()
