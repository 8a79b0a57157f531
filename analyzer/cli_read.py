"""`upgrade-analyzer read` once its options are checked: the run, its signals, its output.

`cli.py` declares the commands; `run_read` feeds the capture through `Analysis`, streams or
keeps what is decided (`report/kept.py`), prints the report and returns the exit status.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

import click

from analyzer.cli_options import output_to, terminal_width, with_origin
from analyzer.cli_status import (
    ExitStatus,
    flush_lines,
    no_space,
    print_line,
    say_error,
    say_no_space,
    say_warning,
)
from analyzer.correlate import CLOCK_SKEW
from analyzer.filters import Selection
from analyzer.life.fold import WINDOW_OVER
from analyzer.life.model import Ended, living_key, packed_key
from analyzer.pipeline import DEFAULT_MAX_CONNECTIONS, Analysis, Decided
from analyzer.report.clock import Clock
from analyzer.report.digest import Digest, Digesting, Streamed
from analyzer.report.render import (
    iter_json,
    render_csv,
    render_jsonl_ended,
    render_jsonl_line,
    render_table,
    summary_document,
    summary_fields,
    summary_text,
)
from analyzer.report.safe import neutralise
from analyzer.report.stream import NumberSet, Tally, tally_summary_text
from analyzer.report.table import StreamedTable, TableStyle
from analyzer.source import read_records
from analyzer.source.capture import MergedRecords, check_capture, expand_inputs
from analyzer.source.frame import CaptureError, CaptureWarning
from analyzer.source.stream import Input
from analyzer.verdict import Diagnosis, Verdict, made

if TYPE_CHECKING:  # imported where used: JSONL and streamed tables keep no attempts
    from analyzer.report.spilled import SpilledReport


class _Terminated(BaseException):
    """SIGTERM during `read`: not an Exception, so no handler mistakes it for a bug."""


@dataclasses.dataclass(frozen=True, slots=True)
class View:
    """How `read` shows what it found, beyond the format."""

    show_secrets: bool = False  # no redaction (control characters are escaped regardless)
    detail: bool = False  # the postmortem view instead of the table
    attempt: int | None = None  # only this attempt (detail view)
    color: bool | None = None  # None: when standard output is a terminal (click decides)
    summary_only: bool = False
    local_time: bool = False


def run_read(captures: tuple[str, ...], fmt: str, selection: Selection,
          fail_on_failed: bool, view: View = View(), jobs: int | None = None,
          max_connections: int = DEFAULT_MAX_CONNECTIONS, output: str | None = None,
          secrets: object | None = None, scheduler: str | None = None) -> int:
    warnings: list[CaptureWarning] = []
    analysis = Analysis(max_connections=max_connections, secrets=secrets, lifetimes=True)
    kept: list[Diagnosis] | SpilledReport = []
    tally = Tally()  # streamed runs keep counts, not attempts: memory stays flat
    apart = tally.apart  # attempts that never reached HTTP, counted only (no --tcp)
    status = ExitStatus.OK
    # From a pipe (`tcpdump -w - | upgrade-analyzer read -`) the table grows row by row too.
    streaming = not view.summary_only and (
        fmt == "jsonl" or (fmt == "table" and "-" in captures and not view.detail))
    opened: list[Input] = []
    try:  # every input is opened (and a directory listed) before any output
        paths = expand_inputs(captures)
        if jobs == 1 and len(paths) == 1 and scheduler is None:
            # One capture in one process is the plain read: a pool of one worker only added
            # a process and folded the `ended` lines into their attempts.
            jobs = None
        if jobs is None and scheduler is None:
            records = read_records(paths, warnings, opened)
        else:
            for path in paths:
                check_capture(path)
    except CaptureError as error:
        say_error(str(error))
        return ExitStatus.INPUT_ERROR
    several = len(paths) > 1
    # A JSON line is flushed at once only when the run may wait for more input (a pipe, a
    # FIFO, standard input) or for a cluster: there, nothing decided may sit in the buffer
    # while the run waits. From regular files it never waits, and a flush per line was a
    # system call an attempt (≈ 1 % of the dense benchmark's run). With workers (`--jobs`),
    # the merge flushes before it waits for them (`scale.local.Gathering`).
    shards = jobs if jobs is not None and jobs > 1 and len(paths) == 1 and not scheduler else 0
    flush_each_line = waits_for_input(opened) or scheduler is not None
    clock = Clock(local=view.local_time)
    style = TableStyle(clock, terminal_width(), several, view.show_secrets)
    table = StreamedTable(style) if streaming and fmt == "table" else None

    def decided() -> Iterator[Streamed]:
        if scheduler is not None:  # a Dask cluster: analyzer/scale/cluster.py
            from analyzer.scale.cluster import analyze_on_cluster

            yield from analyze_on_cluster(scheduler, paths, jobs or 1, analysis, warnings,
                                          max_connections,
                                          Digesting(selection, view.show_secrets, store))
            return
        if shards:  # one file sharded by flow
            from analyzer.scale.local import ShardedRead

            # The workers send each attempt's line or record made (report/digest.py)
            yield from ShardedRead(paths[0], shards, analysis, warnings, max_connections,
                                   Digesting(selection, view.show_secrets, store))
            return
        if jobs is not None:  # independent inputs in parallel: see analyzer/scale/files.py
            # imported only here: it brings in multiprocessing, which a plain read never uses
            from analyzer.scale.files import FilesRead

            yield from FilesRead(paths, jobs, analysis, warnings, max_connections,
                                 Digesting(selection, view.show_secrets, store))
            return
        origin = records.origin if isinstance(records, MergedRecords) else None
        for d in analysis.feed_records(records):
            yield with_origin(d, paths, origin) if several else d
        for d in analysis.finishing():
            yield with_origin(d, paths, origin) if several else d

    def rebuild() -> Iterator[Diagnosis]:  # the same attempts again (report/kept.py)
        # Configured as the first run, lifetimes included: connections held in life change
        # when others are decided (the table's cap, flows that two merged files share), and
        # a rebuild is matched to the first run by order of decision. Its diagnoses are the
        # decided ones either way (an `Ended` comes apart and is dropped below).
        again = Analysis(max_connections=max_connections, secrets=secrets, lifetimes=True)
        if shards:  # the same merged order again
            from analyzer.scale.local import ShardedRead

            yield from (d for d in numbered(
                iter(ShardedRead(paths[0], shards, again, [], max_connections)), selection,
                Counter()) if isinstance(d, Diagnosis))
            return
        if jobs is not None:
            from analyzer.scale.files import FilesRead

            yield from (d for d in numbered(
                iter(FilesRead(paths, jobs, again, [], max_connections)), selection,
                Counter()) if isinstance(d, Diagnosis))
            return
        records = read_records(paths, [], [])
        origin = records.origin if isinstance(records, MergedRecords) else None

        def run() -> Iterator[Decided]:
            for d in again.feed_records(records):
                yield with_origin(d, paths, origin) if several else d
            for d in again.finishing():
                yield with_origin(d, paths, origin) if several else d

        yield from (d for d in numbered(run(), selection, Counter())
                    if isinstance(d, Diagnosis))

    # Sorted formats keep every attempt to the end: compactly, on disk past a point.
    store = None
    if not streaming:
        from analyzer.report.kept import KeptAttempts  # here: streamed runs never import it

        store = KeptAttempts(fmt, selection.keep, show_secrets=view.show_secrets, style=style,
                             whole=view.detail or view.attempt is not None or fmt == "html",
                             # a cluster returns files as they complete: no second run
                             # would decide them in the same order, so they are kept whole
                             rebuild=None if "-" in captures or scheduler else rebuild,
                             # independent captures (one per host): proxy legs across clocks
                             skew=CLOCK_SKEW if several and (jobs or scheduler) else 0.0)
    progress = None
    if jobs is None and scheduler is None and not (streaming and terminal_width() is not None):
        from analyzer import progress as progress_module

        if progress_module.wanted():
            progress = progress_module.Progress(opened, lambda: getattr(records, "number", 0))
    with output_to(output):
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            if progress is not None:
                progress.start()
            shown = NumberSet()  # numbers of printed attempts whose connection lives on
            for diagnosis in numbered(decided(), selection, apart,
                                      store.set_aside if store is not None else None):
                if isinstance(diagnosis, Digest):  # made by a `--jobs` worker
                    if store is not None:  # not streaming
                        store.add_digest(diagnosis)
                        continue
                    if not diagnosis.kept:
                        continue
                    if diagnosis.living is not None:
                        shown.add(diagnosis.number)
                    assert diagnosis.group is not None  # (made for a streamed run)
                    tally.count(diagnosis.verdict, diagnosis.group, diagnosis.time)
                    print_line(diagnosis.line(), flush_each_line)
                    continue
                if isinstance(diagnosis, Ended):  # the attempt's connection ended after its watch
                    if store is not None:  # not streaming
                        store.update(diagnosis)  # the attempt once, with its final verdict
                        continue
                    was_shown = diagnosis.number in shown
                    shown.discard(diagnosis.number)
                    # still open when the capture ended: the decided line said it all
                    if not diagnosis.lifetime.ended or not (
                            was_shown or selection.keep_ended(diagnosis)):
                        continue
                    tally.ended(diagnosis, was_shown)
                    if table is not None:
                        if diagnosis.verdict is not diagnosis.decided or not was_shown:
                            click.echo(table.ended_line(diagnosis))
                    else:
                        print_line(render_jsonl_ended(diagnosis, view.show_secrets),
                                   flush_each_line)
                    continue
                if store is not None:  # not streaming
                    store.add(diagnosis)  # filtered after correlation, which needs every leg
                    continue
                if not selection.keep(diagnosis):
                    continue
                if diagnosis.attempt.tcp.end_reason == WINDOW_OVER:
                    shown.add(diagnosis.number)
                tally.add(diagnosis)
                if table is not None:
                    if tally.attempts == 1:
                        click.echo(table.head())
                    click.echo(table.line(diagnosis))
                    sys.stdout.flush()
                else:
                    print_line(render_jsonl_line(diagnosis, view.show_secrets), flush_each_line)
        except CaptureError as error:
            say_error(str(error))
            return ExitStatus.INPUT_ERROR
        except KeyboardInterrupt:
            status = ExitStatus.INTERRUPTED
        except _Terminated:  # what was decided so far, and the summary, are printed below
            status = ExitStatus.TERMINATED
        except BrokenPipeError:
            raise  # the reader went away: _stop_on_closed_pipe ends the run
        except Exception as error:  # a bug: keep what was found, say so in one line
            if no_space(error):  # (a full disk: sorted reports cannot be made from here)
                say_no_space()
                return ExitStatus.INPUT_ERROR
            status = ExitStatus.INTERNAL_ERROR
            say_error(f"internal error at frame {analysis.stats.frames}: {type(error).__name__}: "
                   f"{error} (results so far are shown; please report this capture)",
                   view.show_secrets)
        finally:
            if progress is not None:
                progress.stop()
            # A second SIGTERM while the report is printed ends the process (the default).
            signal.signal(signal.SIGTERM,
                          previous if previous is not _terminate else signal.SIG_DFL)
        if status is ExitStatus.INTERRUPTED:
            say_warning(f"interrupted at frame {analysis.stats.frames}: the results are partial "
                  f"(only what was read before Ctrl-C)")
        elif status is ExitStatus.TERMINATED:
            say_warning(f"terminated at frame {analysis.stats.frames}: the results are partial "
                  f"(only what was read before SIGTERM)")
        # Damage is said once, here on standard error; the text summaries do not repeat it.
        for warning in warnings:
            say_warning(f"{warning.source}: {warning.where}: {warning.message}", view.show_secrets)
        listed: list[Diagnosis] = []
        if store is not None:  # not streaming
            try:
                kept = store.close()  # sorted, correlated, filtered (report/kept.py)
            except OSError as error:
                if not no_space(error):
                    raise
                say_no_space()
                return ExitStatus.INPUT_ERROR
            listed = store.listed
        if streaming:
            summary = tally_summary_text(tally, analysis.stats, show_secrets=view.show_secrets,
                                         clock=clock)
            if table is not None:
                click.echo(("\n" if tally.attempts else "No upgrade attempts found.\n") + summary)
            else:
                flush_lines()
                click.echo(summary, err=True)
        else:
            try:
                emitted = _emit(fmt, kept, analysis, warnings, view, style, apart, listed,
                                tuple(paths))
            except BrokenPipeError:
                raise  # the reader went away: _stop_on_closed_pipe ends the run
            except Exception as error:  # a bug in a report: one line, as while reading
                if no_space(error):
                    say_no_space()
                    return ExitStatus.INPUT_ERROR
                say_error(f"internal error while writing the report: {type(error).__name__}: "
                          f"{error} (please report this capture)", view.show_secrets)
                return ExitStatus.INTERNAL_ERROR
            if not emitted:
                return ExitStatus.USAGE
    failed = (tally.failed if streaming else kept.failed if not isinstance(kept, list)
              else any(d.verdict is not Verdict.SUCCEEDED for d in kept))
    if status is ExitStatus.OK and fail_on_failed and failed:
        status = ExitStatus.FAILED_FOUND
    return status


def waits_for_input(opened: list[Input]) -> bool:
    """Whether reading ``opened`` may wait for data that is not there yet: standard input, a
    pipe, a FIFO, a device (no size: `open_input` gives one to regular files only)."""
    return any(inp.size is None for inp in opened)


def _terminate(number: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one is not waited for
    raise _Terminated


def numbered(diagnoses: Iterator[Streamed], selection: Selection, apart: Counter[str],
             aside: Callable[[Diagnosis | Digest], None] | None = None) -> Iterator[Streamed]:
    """The attempts the report lists, numbered 1..; the others (never reached HTTP, without
    --tcp) are counted in ``apart`` when the filters would have kept them, and given to
    ``aside`` (a sorted report's `KeptAttempts.set_aside`: a refused connection may be a
    proxy's back leg). An `Ended` gets the number of its attempt (and is dropped when that
    attempt was not listed)."""
    number = 0
    # attempts whose connection lives on (≈ 120 bytes each: the key packed)
    living: dict[int | tuple[int, int, int], int] = {}
    for d in diagnoses:
        if isinstance(d, Digest):  # made by a `--jobs` worker (report/digest.py)
            if d.living is not None and d.listed:
                living[d.living] = number + 1
            if not d.listed:
                if d.kept:
                    apart[d.verdict] += 1
                if aside is not None:
                    aside(d)
                continue
            number += 1
            d.number = number  # (the parent's own copy, loaded from the worker's message)
            yield d
            continue
        if isinstance(d, Ended):
            listed = living.pop(packed_key(d.key), None)
            if listed is not None:
                yield dataclasses.replace(d, number=listed)
            continue
        if d.attempt.tcp.end_reason == WINDOW_OVER and selection.listed(d):
            a = d.attempt
            living[living_key(a.first_frame, a.sequence, a.stream_id)] = number + 1
        if not selection.listed(d):
            if selection.keep(d):
                apart[d.verdict.value] += 1
            if aside is not None:
                aside(d)
            continue
        number += 1
        yield _renumber(d, number)


def _renumber(d: Diagnosis, number: int) -> Diagnosis:
    """``dataclasses.replace(d, number=number)`` through `verdict.made` (no frozen
    ``__init__``): replace walks the fields and passes them by keyword (≈ 0.7 µs an attempt
    more, every listed attempt is renumbered). Every field is copied (tests/test_cli.py
    compares the two)."""
    return made(number, d.attempt, d.facts, d.verdict, d.findings, d.who, d.origin, d.lifetime)


def _emit(fmt: str, kept: list[Diagnosis] | SpilledReport, analysis: Analysis,
          warnings: list[CaptureWarning], view: View, style: TableStyle,
          apart: Counter[str], listed: list[Diagnosis], captures: tuple[str, ...] = ()) -> bool:
    """Print the report; False (after a one-line error) when --attempt names no attempt.
    ``listed``: every attempt before the filters (redirect chains end where they ended)."""
    stats = analysis.stats
    if not isinstance(kept, list):  # a SpilledReport
        from analyzer.report.spilled import emit_spilled

        return emit_spilled(kept, fmt, stats, warnings, view, _detail_text, style, apart,
                            captures)
    secrets = view.show_secrets
    if view.summary_only:
        if fmt in ("json", "jsonl"):
            fields = summary_fields(kept, stats, warnings, secrets, apart=apart, context=listed)
            click.echo(summary_document(fields, fmt))
        else:
            click.echo(summary_text(kept, stats, (), secrets, clock=style.clock, apart=apart,
                                    context=listed))
    elif view.attempt is not None:
        chosen = [d for d in kept if d.number == view.attempt]
        if not chosen:
            say_error(f"no attempt {view.attempt}: this report has {len(listed)} "
                   f"(see the table without --attempt)")
            return False
        # Colour is produced unless refused; click strips it when stdout is not a terminal.
        click.echo(_detail_text(chosen[0], view), nl=False, color=view.color)
    elif view.detail:
        for d in kept:
            click.echo(_detail_text(d, view), color=view.color)
        click.echo(summary_text(kept, stats, (), secrets, clock=style.clock, apart=apart,
                                context=listed))
    elif fmt == "json":
        for piece in iter_json(kept, stats, warnings, secrets, apart=apart, context=listed):
            sys.stdout.write(piece)
        sys.stdout.write("\n")
    elif fmt == "csv":
        click.echo(render_csv(kept, secrets), nl=False)
    elif fmt == "html":
        from analyzer.report.html import iter_html  # jinja2 is imported only for this format

        for piece in iter_html(kept, stats, warnings, captures, secrets, apart=apart,
                               context=listed):
            sys.stdout.write(piece)
    else:
        click.echo(render_table(kept, stats, (), markdown=fmt == "markdown", style=style,
                                apart=apart, context=listed))
    return True


def _detail_text(diagnosis: Diagnosis, view: View) -> str:
    # Imported here, as the live modules are in _live: only the postmortem view needs it.
    from analyzer.report.detail import render_detail

    text = render_detail(diagnosis, show_secrets=view.show_secrets,
                         color=view.color is not False)
    if diagnosis.origin is None:
        return text
    first, second, rest = (text.split("\n", 2) + ["", ""])[:3]
    where = (f"   file {neutralise(diagnosis.origin[0])}, frame {diagnosis.origin[1]} in that "
             f"file (frame {diagnosis.attempt.first_frame} of the merged capture)")
    return "\n".join((first, second, where, rest))
