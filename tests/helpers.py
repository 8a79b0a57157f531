"""Shared test helpers: run the real pipeline, or the real command line, on capture files."""

from __future__ import annotations

import os

from click.testing import CliRunner, Result

from analyzer.cli import cli
from analyzer.pipeline import Analysis, analyze
from analyzer.source import CaptureWarning, read_captures
from analyzer.verdict import Diagnosis


def analyze_pcap(
    path: str | os.PathLike[str], warnings: list[CaptureWarning] | None = None
) -> list[Diagnosis]:
    """Every diagnosis of one capture file, read and analyzed as the CLI does."""
    collected: list[CaptureWarning] = [] if warnings is None else warnings
    run = Analysis()  # a pcapng's embedded TLS key log is used, as the CLI does
    # without lifetimes the run yields diagnoses only
    return [d for d in analyze(read_captures([os.fspath(path)], collected, run.add_secrets), run)
            if isinstance(d, Diagnosis)]


def run_cli(*args: str | os.PathLike[str]) -> Result:
    """``upgrade-analyzer ARGS...`` in-process; exceptions propagate instead of being caught."""
    return CliRunner().invoke(cli, [os.fspath(a) for a in args], catch_exceptions=False)


def nginx_conf(tmp: str, server: str) -> str:
    """An nginx configuration whose files all live in ``tmp`` (run as a test, unprivileged
    paths, one worker, no access log), with ``server`` as its one `server { ... }` block's
    body: the capture generator's configuration (captures/generate.py), so both start nginx
    alike."""
    from captures.generate import nginx_conf as nginx_http_conf

    return nginx_http_conf(tmp, f"    server {{\n{server}\n    }}", access_log=False)
