"""The per-attempt fields (report/fields.py): the fast paths give what their plain twins give."""

from __future__ import annotations

import json
import random
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.life.model import Ended, attempt_key
from analyzer.pipeline import Analysis, analyze
from analyzer.report.fields import attempt_fields, iso_time, iso_time_plain
from analyzer.report.render import indented_json, json_attempt, json_attempt_plain
from analyzer.source import read_captures
from analyzer.tls.keylog import load_keylog
from analyzer.verdict import Diagnosis, with_life
from tests.helpers import analyze_pcap

CAPTURES = Path(__file__).resolve().parent.parent / "captures"

# Where the microseconds round or carry (half to even, at .5 µs), both sides of 1970, the
# first and last second datetime holds and just past them, and what is no number.
EDGES = [
    0.0, -0.0, 0.5e-6, 1.5e-6, 2.5e-6, -0.5e-6, -1e-7, 0.9999995, 0.99999949999, -0.9999995,
    1700000000.0000005, 1700000000.9999995, 1733349999.999999, -62135596800.0,
    -62135596801.0, 253402300799.999999, 253402300799.9999999, 253402300800.0,
    14475000000000.0, 1e20, -1e20, 1e-300, -1e-300, 2.0 ** 53, 2.0 ** 63, -(2.0 ** 63),
    float("inf"), float("-inf"), float("nan"),
]


def test_iso_time_equals_its_plain_twin_at_the_edges() -> None:
    for seconds in EDGES:
        assert iso_time(seconds) == iso_time_plain(seconds), seconds


def test_iso_time_equals_its_plain_twin_on_random_times() -> None:
    rng = random.Random(15)
    values = []
    for _ in range(20_000):
        values.append(1.7e9 + rng.random() * 1e6)  # capture-like, the cache's own case
        values.append(rng.uniform(-1e10, 1e10))
        values.append(rng.randint(0, 2 ** 33) + rng.randint(0, 999_999) / 1e6
                      + rng.choice((0.0, 5e-7, -5e-7, 4.9999e-7)))
        # any 64-bit pattern: subnormals, huge, negative, inf and nan among them
        values.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
    for seconds in values:
        assert iso_time(seconds) == iso_time_plain(seconds), seconds


def test_iso_time_equals_its_plain_twin_on_real_attempts() -> None:
    times = []
    for name in ("ws_ok_websockets.pcap", "nginx_error_pages.pcap", "websocket_lives.pcap"):
        times += [d.attempt.time for d in analyze_pcap(CAPTURES / name)]
    assert times
    for seconds in times:
        assert iso_time(seconds) == iso_time_plain(seconds)


# JSON-like trees: every scalar json.dumps writes plainly, containers nested a few levels.
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
            | st.text() | st.sampled_from([2 ** 70, -(2 ** 70), True, False, 0.1, -0.0]))
_TREES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.tuples(inner, inner)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_TREES, st.sampled_from(["\n", "\n    ", "\n  "]))
def test_indented_json_equals_json_dumps_with_indent_2(value: object, indent: str) -> None:
    assert indented_json(value, indent) == json.dumps(value, indent=2).replace("\n", indent)


def test_indented_json_leaves_what_is_not_plain_to_json_dumps() -> None:
    for value in ({1: "a", "b": [None, {2.5: True}]}, {"a": {None: 1, True: 2}}):
        assert indented_json(value) == json.dumps(value, indent=2)
    with pytest.raises(TypeError):  # as json.dumps: a set has no JSON form
        indented_json({"a": {1, 2}})


def test_json_attempt_equals_its_plain_twin_on_every_bundled_capture() -> None:
    """The JSON report's attempt laid out from its JSONL line (decode/_indent.pxi), and from
    its fields as a dict (the path without the compiled module), are json.dumps's text: every
    kind of attempt (TLS, HTTP/2, lifetimes, several files, secrets shown or not)."""
    from analyzer.report import render

    assert render._indent_json is not None  # (the test runs where setup.py built it)
    compared = 0
    for diagnosis in _every_bundled_diagnosis():
        for show in (False, True):
            plain = json_attempt_plain(diagnosis, show)
            assert json_attempt(diagnosis, show) == plain
            assert render.json_attempt_dict(diagnosis, show) == plain
            line = render.decided_line(diagnosis, show)  # (taken by the compiled layout)
            assert render._indent_json("{" + line[len(render._DECIDED_HEAD):], "\n    ") == plain
        compared += 1
    assert compared > 100


@settings(max_examples=2000, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(alphabet=st.sampled_from('ab,:{}[]" \\\n\té\u2603'), max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(alphabet=st.sampled_from('k,:{}[]"\\ é'), max_size=6), inner, max_size=4),
    max_leaves=30), st.sampled_from(["\n", "\n    ", "\n  "]))
def test_compact_json_laid_out_in_c_is_json_dumps_indented(value: object, indent: str) -> None:
    """Any document json.dumps writes compactly, laid out by `indent_json`, is what json.dumps
    writes with indent=2 (strings with commas, braces, quotes and escapes passed over whole,
    empty lists and objects kept on their line); text that is not such JSON gives None."""
    from analyzer.decode._fastpath import indent_json

    compact = json.dumps(value)
    assert indent_json(compact, indent) == json.dumps(value, indent=2).replace("\n", indent)
    if isinstance(value, (list, dict)):  # a container cut short, or closed once too often
        assert indent_json(compact[:-1], indent) is None
        assert indent_json(compact + "]", indent) is None




@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab -\t\n\u00a0\u2003\u200bé…x"), max_size=40)
       | st.text(max_size=30), st.integers(min_value=1, max_value=50))
def test_a_reason_that_fits_is_shortened_as_textwrap_would(text: str, width: int) -> None:
    """The table's reason column skips textwrap for a text that fits and has nothing for it
    to change (report/table.py `_shorten`): the same lines as `_wrapped`, its plain twin."""
    from analyzer.report.table import _shorten, _wrapped

    assert _shorten(text, width, "wrap") == _wrapped(text, width)


def test_every_reason_of_the_bundled_captures_is_shortened_as_textwrap_would() -> None:
    from analyzer.report.fields import reason_text
    from analyzer.report.safe import Cleaner
    from analyzer.report.table import _shorten, _wrapped

    for path in sorted(CAPTURES.glob("*.pcap*")):
        for diagnosis in analyze_pcap(path):
            text = Cleaner.for_attempt(diagnosis.attempt).text(reason_text(diagnosis))
            for width in (len(text), len(text) + 5, 20, 90):
                assert _shorten(text, width, "wrap") == _wrapped(text, width)


def _every_bundled_diagnosis() -> list[Diagnosis]:
    """Every bundled capture's attempts, decrypted with its key log where it has one, each
    also with an origin (several files read) and, for a connection that lived past its
    watch, with its lifetime (a sorted report's attempt)."""
    out: list[Diagnosis] = []
    for path in sorted(CAPTURES.glob("*.pcap*")):
        keys = next((k for k in (path.with_suffix(".keys"), Path(f"{path}.keys"))
                     if k.exists()), None)
        run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys else None, lifetimes=True)
        decided: dict[tuple[int, int, int], Diagnosis] = {}
        for d in analyze(read_captures([str(path)], [], run.add_secrets), run):
            if isinstance(d, Ended):
                first = decided.get(d.key)
                if first is not None:
                    out.append(with_life(first, d))
                continue
            a = d.attempt
            decided[attempt_key(a.first_frame, a.sequence, a.stream_id)] = d
            out += [d, replace(d, number=len(out) + 1, origin=(f"{path.name}\x1b\u202e", 7))]
    return out


def test_jsonl_line_equals_its_plain_twin_on_every_bundled_capture() -> None:
    """The JSONL `decided` line written directly (report/jsonl.py) is the text json.dumps
    gives for `attempt_fields`, every field of every kind of attempt (TLS, HTTP/2, lifetimes,
    several files, secrets shown or not)."""
    from analyzer.report.render import render_jsonl_line, render_jsonl_line_plain

    diagnoses = _every_bundled_diagnosis()
    for d in diagnoses:
        for show in (False, True):
            assert render_jsonl_line(d, show) == render_jsonl_line_plain(d, show), d.attempt
    seen = {key for d in diagnoses for key, value in attempt_fields(d).items()
            if value not in (None, [], {})}
    # every field of the schema was compared with a value in it at least once
    assert seen >= set(attempt_fields(diagnoses[0])) - {"stream_id"} | {"tls", "lifetime",
                                                                          "file", "file_frame"}
    assert any(d.attempt.transport == "h2" for d in diagnoses)


def test_jsonl_remembered_parts_equal_their_plain_twins() -> None:
    """The request's part, the attribution and the findings texts `decided_line` remembers
    (for attempts without secret values) are what their plain twins write, when first made
    and when remembered, for every bundled capture's attempts; an attempt with secret values
    is never remembered."""
    from analyzer.report import jsonl
    from analyzer.report.safe import Cleaner

    diagnoses = _every_bundled_diagnosis()
    jsonl._ATTRIBUTION_TEXTS.clear()
    jsonl._FINDING_STARTS.clear()
    jsonl._ASKED.clear()
    for _ in range(2):  # made, then remembered
        for d in diagnoses:
            for show in (False, True):
                clean = Cleaner.for_attempt(d.attempt, show)
                request, facts = d.facts.request_head, d.facts
                if request is not None:
                    host = request.headers.get("host")
                    asked = (request.method, request.target, host, facts.offered,
                             facts.protocol, clean)
                    assert jsonl._asked(*asked) == jsonl._asked_plain(*asked)
                assert jsonl._attribution(d, clean) == jsonl._attribution_plain(
                    d.attribution, clean)
                for finding in d.findings:
                    frames = ", ".join(str(n) for n in finding.frames)
                    assert jsonl._finding(finding, clean) == (
                        f"{jsonl._finding_start(finding, clean.text)}{frames}]}}")
    assert jsonl._ATTRIBUTION_TEXTS and jsonl._FINDING_STARTS and jsonl._ASKED
    secret = next(d for d in diagnoses if Cleaner.for_attempt(d.attempt).secrets)
    jsonl._ATTRIBUTION_TEXTS.clear()
    jsonl._attribution(secret, Cleaner.for_attempt(secret.attempt))
    assert not jsonl._ATTRIBUTION_TEXTS


_CELL = (st.text(alphabet=st.sampled_from("ab -\t\n\u00a0é…{}x"), max_size=12)
         | st.text(max_size=100))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({k: _CELL for k in (
    "#", "frame", "file:frame", "time", "client", "server", "request", "offered", "status",
    "verdict", "reason")}), max_size=6), st.booleans())
def test_a_piped_table_laid_out_by_format_is_its_plain_twin(
        rows: list[dict[str, str]], files: bool) -> None:
    """A piped table's rows laid out by one format string (report/table.py `_piped`) are what
    `_render_row` lays out: values with line breaks, tabs, braces, spaces at their ends,
    requests and reasons past their limits."""
    from analyzer.report.table import TableStyle, Widths

    widths = Widths(TableStyle(files=files))
    for row in rows:
        widths.add(row)
    assert list(widths.lines(iter(rows))) == list(widths.lines(iter(rows), plain=True))


def test_the_bundled_captures_piped_table_is_its_plain_twin() -> None:
    from analyzer.report.table import TableStyle, Widths, cells

    for files in (False, True):
        style = TableStyle(files=files)
        rows = [{k: str(v) for k, v in cells(d, style).items()}
                for d in _every_bundled_diagnosis()]
        widths = Widths(style)
        for row in rows:
            widths.add(row)
        fast = list(widths.lines(iter(rows)))
        assert len(fast) == len(rows) + 2
        assert fast == list(widths.lines(iter(rows), plain=True))
