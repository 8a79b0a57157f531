"""Values built through their slots' own descriptors instead of the frozen dataclass
``__init__`` (one or more per connection: `decode.segment.made_segment`, ...) against the
constructors they stand for, on the values the bundled captures give: every field, equality,
the hash, a pickle round trip and `dataclasses.replace`."""

from __future__ import annotations

import dataclasses
import itertools
import pickle
from pathlib import Path
from typing import Any

import pytest

from analyzer.decode.decoder import FASTPATH_COMPILED, decode_frame
from analyzer.decode.segment import Segment, made_segment, made_segment_plain
from analyzer.source import read_records
from analyzer.source.frame import Frame

REPO = Path(__file__).resolve().parents[1]
CAPTURES = sorted(p for p in (REPO / "captures").glob("*.pcap*"))


def _same_value(fast: Any, plain: Any, values: list[Any]) -> None:
    """``fast`` (made through the slots) is ``plain`` (the constructor's) in every way."""
    names = [f.name for f in dataclasses.fields(plain)]
    assert type(fast) is type(plain)
    assert [getattr(fast, name) for name in names] == values
    assert fast == plain and hash(fast) == hash(plain)
    assert pickle.loads(pickle.dumps(fast)) == plain
    if names:
        first = names[0]
        changed = dataclasses.replace(fast, **{first: getattr(plain, first)})
        assert changed == plain


def test_the_compiled_makers_are_in_use_when_built() -> None:
    from analyzer.exchange import made

    compiled = [made.made_attempt, made.made_tcp_facts, made.made_event, made.made_endpoint,
                made_segment]
    plain = [made.made_attempt_plain, made.made_tcp_facts_plain, made.made_event_plain,
             made.made_endpoint_plain, made_segment_plain]
    assert all((fast is not slow) == FASTPATH_COMPILED
               for fast, slow in zip(compiled, plain, strict=True))


def test_made_segment_is_the_constructors() -> None:
    """`made_segment` (the first SYN of a connection whose SYNs were kept,
    `InOrder._make_listener`), compiled and plain, on every TCP segment of the bundled
    captures."""
    compared = 0
    for path in CAPTURES:
        for number, (when, linktype, data, wire, source) in enumerate(
                read_records([str(path)], []), 1):
            segment = decode_frame(Frame(number, when, linktype, data, wire, source))
            if not isinstance(segment, Segment):
                continue
            values = [getattr(segment, f.name) for f in dataclasses.fields(Segment)]
            for make in (made_segment, made_segment_plain):
                _same_value(make(*values), Segment(*values), values)
            short = values[:-1]  # missing's default
            _same_value(made_segment(*short), Segment(*short), [*short, 0])
            compared += 1
    assert compared > 2_000


def test_made_exchange_values_are_the_constructors() -> None:
    """`exchange/made.py` (each attempt's Attempt, TcpFacts, TcpEvents and Endpoints, as
    the HTTP/1 tracker makes them) against the constructors, on every attempt of the bundled
    captures (their key logs given, so TLS and HTTP/2 attempts are among them)."""
    from analyzer.exchange import made
    from analyzer.exchange.model import Attempt, Endpoint, TcpEvent, TcpFacts
    from analyzer.pipeline import Analysis
    from analyzer.tls.keylog import load_keylog
    from analyzer.verdict import Diagnosis

    def fields(value: Any) -> list[Any]:
        return [getattr(value, f.name) for f in dataclasses.fields(value)]

    attempts = events = 0
    kinds = set()
    for path in CAPTURES:
        keys = Path(str(path).split(".pcap")[0] + ".keys")
        run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys.exists() else None)
        for diagnosis in [*run.feed_records(read_records([str(path)], [])), *run.finish()]:
            assert isinstance(diagnosis, Diagnosis)
            attempt = diagnosis.attempt
            tcp = attempt.tcp
            for make_attempt, make_facts, make_endpoint, make_event in (
                    (made.made_attempt, made.made_tcp_facts, made.made_endpoint,
                     made.made_event),
                    (made.made_attempt_plain, made.made_tcp_facts_plain,
                     made.made_endpoint_plain, made.made_event_plain)):
                values = fields(attempt)
                _same_value(make_attempt(*values), Attempt(*values), values)
                short = values[:4]  # the constructor's defaults for the rest
                _same_value(make_attempt(*short), Attempt(*short), fields(Attempt(*short)))
                values = fields(tcp)
                _same_value(make_facts(*values), TcpFacts(*values), values)
                for end in (attempt.client, attempt.server):
                    values = fields(end)
                    _same_value(make_endpoint(*values), Endpoint(*values), values)
                    # order=True
                    assert make_endpoint(*values) < Endpoint(values[0], values[1] + 1)
                for event in (tcp.syn, tcp.syn_ack, tcp.client_fin, tcp.server_fin,
                              tcp.client_rst, tcp.server_rst):
                    if event is not None:
                        values = fields(event)
                        _same_value(make_event(*values), TcpEvent(*values), values)
                        _same_value(make_event(*values[:2]), TcpEvent(*values[:2]),
                                    [*values[:2], False])
                        events += 1
            attempts += 1
            kinds.add((attempt.kind, attempt.transport, attempt.tls is not None))
    assert attempts > 100 and events > 300
    assert len(kinds) >= 4


def _same_state(fast: Any, plain: Any, again: Any) -> None:
    """Two mutable slotted values alike (``again``: the constructor's once more): every field
    equal and of the same type, a default object the constructor shares (its default, or a
    factory's shared value) the very same, and one it makes anew not shared."""
    assert type(fast) is type(plain)  # (a Connection compares by identity: field by field)
    for f in dataclasses.fields(plain):
        mine, theirs = getattr(fast, f.name), getattr(plain, f.name)
        assert type(mine) is type(theirs) and mine == theirs, f.name
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            if theirs is getattr(again, f.name):
                assert mine is theirs, f.name
            else:
                assert mine is not theirs, f.name


def test_fresh_state_is_the_constructors() -> None:
    """`FreshMaker`'s Connection, _Direction (its shared `_NOTHING_YET` kept) and Side
    against the constructors, with the keys, times and first sequence numbers of every
    connection of the bundled captures."""
    from analyzer.exchange.pending import Side, new_side, side_plain
    from analyzer.reassembly.connection import (
        _NO_BASE,
        _NOTHING_YET,
        _Base,
        connection_plain,
        deferred_connection_plain,
        direction_plain,
        new_connection,
        new_deferred_connection,
        new_direction,
    )
    from analyzer.reassembly.table import Reassembler

    bases: list[int | None] = [None]
    keys: list[tuple[bytes, float]] = []
    for path in CAPTURES:
        reassembler = Reassembler(lambda conn, seg: None, defer_syn=True)
        for number, (when, linktype, data, wire, source) in enumerate(
                read_records([str(path)], []), 1):
            segment = decode_frame(Frame(number, when, linktype, data, wire, source))
            if isinstance(segment, Segment):
                reassembler.feed(segment)
        for conn, side in reassembler.flows.values():
            if not side:
                keys.append((conn.key, conn.last_time))
                bases += [direction.base for direction in conn.sides]
    assert len(keys) > 100
    for base in bases:
        for make_direction in (new_direction, direction_plain):
            made = make_direction(base)
            _same_state(made, direction_plain(base), direction_plain(base))
            assert made.recent is _NOTHING_YET
    for key, time in keys:
        for make_connection in (new_connection, connection_plain):
            conn = make_connection(key, time)
            _same_state(conn, connection_plain(key, time), connection_plain(key, time))
            assert conn.sides[0] is not conn.sides[1]
            assert all(side.recent is _NOTHING_YET for side in conn.sides)
        sides = (_Base(None), _NO_BASE)
        for make_deferred in (new_deferred_connection, deferred_connection_plain):
            syns: list[int | float] = [1, time]
            deferred = make_deferred(key, time, sides, syns)
            assert deferred.sides is sides and deferred.syns is syns
            _same_state(deferred, deferred_connection_plain(key, time, sides, [1, time]),
                        deferred_connection_plain(key, time, sides, [1, time]))
    for make_side in (new_side, side_plain):
        one, two = make_side(), make_side()
        _same_state(one, Side(), Side())
        assert one.buf is not two.buf and one.held is not two.held
    with pytest.raises(TypeError):
        new_direction()  # type: ignore[call-arg]


def test_pending_values_are_the_constructors() -> None:
    """`FreshMaker`'s PendingRequest, PendingResponse and Switch (exchange/pending.py, one
    or more per connection) against the constructors, with the heads, frames, times and
    interim answers of every attempt of the bundled captures."""
    from analyzer.exchange.pending import (
        PendingRequest,
        PendingResponse,
        Switch,
        new_pending_request,
        new_pending_response,
        new_switch,
        pending_request_plain,
        pending_response_plain,
        switch_plain,
    )
    from analyzer.exchange.switch import DEFAULT_WINDOW, SwitchWatch
    from analyzer.pipeline import Analysis
    from analyzer.verdict import Diagnosis

    assert (new_pending_request is not pending_request_plain) == FASTPATH_COMPILED
    assert (new_switch is not switch_plain) == FASTPATH_COMPILED
    made = 0
    for path in CAPTURES:
        run = Analysis()
        events = [*run.feed_records(read_records([str(path)], [])), *run.finish()]
        for event in events:
            attempt = getattr(event, "attempt", None) if isinstance(event, Diagnosis) else None
            if attempt is None or attempt.request is None or attempt.response is None:
                continue
            ask, answer = attempt.request, attempt.response
            for gap in (False, True):
                args = (ask.head, ask.first_frame, ask.last_frame, ask.time, made, gap, not gap)
                for make_request in (new_pending_request, pending_request_plain):
                    _same_state(make_request(*args), PendingRequest(*args),
                                PendingRequest(*args))
                request = PendingRequest(*args)
                answers = (request, answer.head, answer.first_frame, answer.last_frame,
                           answer.time, attempt.interim, gap)
                for make_response in (new_pending_response, pending_response_plain):
                    _same_state(make_response(*answers), PendingResponse(*answers),
                                PendingResponse(*answers))
                watch = SwitchWatch(answer.time, answer.time, True, DEFAULT_WINDOW)
                switching = (request, answer, attempt.interim, watch, gap)
                for make_switch in (new_switch, switch_plain):
                    _same_state(make_switch(*switching), Switch(*switching),
                                Switch(*switching))
            made += 1
    assert made > 50


def test_made_base_is_the_constructors() -> None:
    """A deferred connection's side 0 (`reassembly.connection._Base`) as `_open_at_syn`
    makes it (decode/_handshake.pxi) against ``_Base(base)``, with the first sequence
    numbers of every connection of the bundled captures."""
    if not FASTPATH_COMPILED:
        pytest.skip("the compiled module is not built")

    from analyzer.decode._fastpath import made_base_compiled

    from analyzer.reassembly.connection import _Base

    bases = set()
    for path in CAPTURES:
        for number, (when, linktype, data, wire, source) in enumerate(
                read_records([str(path)], []), 1):
            segment = decode_frame(Frame(number, when, linktype, data, wire, source))
            if isinstance(segment, Segment) and segment.flags & 0x02:
                bases.add((segment.seq + 1) & 0xFFFFFFFF)
    assert len(bases) > 100
    names = ("base", "pending", "pending_order", "needs", "pending_bytes", "next_offset",
             "acked", "fin_end", "fin_evidence", "fin", "rst")
    for base in [*bases, 0, 0xFFFFFFFF, None]:
        made, plain = made_base_compiled(base), _Base(base)
        assert type(made) is _Base
        assert [getattr(made, n) for n in names] == [getattr(plain, n) for n in names]
        made.base = 7  # a slot like any other
        assert made.base == 7


def test_made_tls_values_are_the_constructors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TLS stage's per-record values made through their slots (`records.made_record`,
    `decrypt.made_opened`, `values.made_plain`, `handshake.made_handshake_message`) against
    the constructors of the same arguments, on every one the bundled captures make (with
    their key logs: the decrypted records, handshake messages and plaintext too); the
    outputs are the same as with the constructors themselves."""
    from analyzer.pipeline import Analysis
    from analyzer.tls import decrypt, handshake, records, session, skipping, values
    from analyzer.tls.keylog import load_keylog

    makers = {(records, "made_record"): records.Record,
              (decrypt, "made_opened"): decrypt.Opened,
              (session, "made_plain"): values.Plain,
              (skipping, "made_plain"): values.Plain,  # (a watch's records opened in C)
              (handshake, "made_handshake_message"): handshake.HandshakeMessage}
    seen: dict[str, list[tuple[Any, ...]]] = {name: [] for _module, name in makers}

    def spy(make: Any, name: str) -> Any:
        def spied(*arguments: Any) -> Any:
            made = make(*arguments)
            seen[name].append((made, arguments))
            return made
        return spied

    def outputs(plain: bool) -> list[Any]:
        with monkeypatch.context() as patch:
            for (module, name), cls in makers.items():
                patch.setattr(module, name, cls if plain else spy(getattr(module, name), name))
            found: list[Any] = []
            # compiled, and per segment: the skip opens most records of a watch window and of
            # life itself, so the per-segment path makes the values the compiled one does not
            for path, compiled in itertools.product(CAPTURES, (True, False)):
                keys = Path(str(path).split(".pcap")[0] + ".keys")
                run = Analysis(secrets=load_keylog(keys.read_bytes()) if keys.exists() else None,
                               compiled=compiled)
                found += [*run.feed_records(read_records([str(path)], [])), *run.finish()]
                found.append(run.stats)
            return found

    assert outputs(plain=False) == outputs(plain=True)
    for (_module, name), cls in makers.items():
        assert len(seen[name]) > 100, name
        for made, arguments in seen[name]:
            _same_value(made, cls(*arguments), list(arguments))
