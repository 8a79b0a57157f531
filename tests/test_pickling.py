"""Slotted dataclasses pickled by `slotted.register_pickling`'s reducers (how `read --jobs`
workers, Dask tasks and the kept whole attempts send diagnoses) against the generic state
functions `dataclasses` gives them: the same values back, on every bundled capture."""

from __future__ import annotations

import copyreg
import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from analyzer import slotted
from analyzer.pipeline import Analysis
from analyzer.report.fields import attempt_fields
from analyzer.source import read_records
from analyzer.verdict import Diagnosis

REPO = Path(__file__).resolve().parent.parent
CAPTURES = sorted(p for p in (REPO / "captures").iterdir()
                  if p.suffix in (".pcap", ".pcapng"))


def _diagnoses(capture: Path) -> list[Diagnosis]:
    secrets = None
    keys = capture.with_suffix(".keys")
    if keys.exists():
        from analyzer.tls.keylog import load_keylog

        secrets = load_keylog(keys.read_bytes())
    analysis = Analysis(secrets=secrets, lifetimes=True)
    decided = [*analysis.feed_records(read_records([str(capture)], [])), *analysis.finishing()]
    diagnoses = [d for d in decided if isinstance(d, Diagnosis)]
    for d in diagnoses:
        d.attribution  # noqa: B018 - built, as the workers send them
    return diagnoses


def _generic(value: Any) -> bytes:
    """``value`` pickled with no reducer of ours (copyreg's table without them)."""
    ours = {cls: f for cls, f in copyreg.dispatch_table.items()
            if getattr(f, "__qualname__", "").startswith("_reducer.")}
    for cls in ours:
        del copyreg.dispatch_table[cls]
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        copyreg.dispatch_table.update(ours)


def _slotted_values(value: Any, seen: set[int]) -> list[Any]:
    """Every slotted dataclass value reachable from ``value`` through fields and containers."""
    if id(value) in seen:
        return []
    seen.add(id(value))
    found: list[Any] = []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if "__slots__" in type(value).__dict__:
            found.append(value)
        for field in dataclasses.fields(value):
            found += _slotted_values(getattr(value, field.name), seen)
    elif isinstance(value, (tuple, list, frozenset, set)):
        for item in value:
            found += _slotted_values(item, seen)
    elif isinstance(value, dict):
        for item in value.values():
            found += _slotted_values(item, seen)
    return found


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_diagnoses_come_back_the_same_by_either_pickling(capture: Path) -> None:
    diagnoses = _diagnoses(capture)
    slotted.register_pickling()
    for d in diagnoses:
        fast = pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL)
        assert b"_rebuilt" in fast  # our reducers made the stream
        ours, generic = pickle.loads(fast), pickle.loads(_generic(d))
        assert repr(ours) == repr(generic) == repr(d)
        assert json.dumps(attempt_fields(ours)) == json.dumps(attempt_fields(generic))
        assert ours.attempt == generic.attempt and ours.facts == generic.facts


def test_every_slotted_value_of_a_diagnosis_has_a_reducer() -> None:
    """Once registered, no slotted value of any bundled capture's diagnoses (TLS, HTTP/2,
    lifetimes) pickles through the generic state functions (a class the walk missed)."""
    values: list[Any] = []
    for capture in CAPTURES:
        for d in _diagnoses(capture):
            values += _slotted_values(d, set())
    slotted.register_pickling()
    kinds = {type(v) for v in values}
    assert len(kinds) > 20
    missing = sorted(k.__qualname__ for k in kinds if k not in copyreg.dispatch_table
                     and "__reduce__" not in k.__dict__)
    assert missing == []


def test_a_value_of_one_field_and_inherited_slots_come_back() -> None:
    from analyzer.http2.events import Ping

    slotted.register_pickling()
    ping = Ping(side=1, first_frame=3, last_frame=4, time=1.5, ack=True)  # fields of a base
    assert pickle.loads(pickle.dumps(ping)) == ping
    assert slotted.rebuilt_plain(Ping, (1, 3, 4, 1.5, True)) == ping
    assert b"_rebuilt" in pickle.dumps(ping)
    one = [c for c in copyreg.dispatch_table if dataclasses.is_dataclass(c)
           and len(dataclasses.fields(c)) == 1]
    for cls in one:
        field = dataclasses.fields(cls)[0]
        made = object.__new__(cls)
        object.__setattr__(made, field.name, ("a value",))
        assert getattr(pickle.loads(pickle.dumps(made)), field.name) == ("a value",)


def test_the_compiled_rebuild_equals_its_plain_twin() -> None:
    """`_fastpath.compiled_rebuilt` against `slotted.rebuilt_plain` on every slotted value
    of the bundled captures' diagnoses: equal values, of the same class, holding the very
    same field values; a wrong count of values is refused."""
    compiled = pytest.importorskip("analyzer.decode._fastpath").compiled_rebuilt
    values: list[Any] = []
    for capture in CAPTURES:
        for d in _diagnoses(capture):
            values += _slotted_values(d, set())
    built = 0
    for value in values:
        cls = type(value)
        fields = tuple(getattr(value, f.name) for f in dataclasses.fields(value))
        fast, plain = compiled(cls, fields), slotted.rebuilt_plain(cls, fields)
        if fast is None:  # a class with a field that is not a plain slot: the twin's
            continue
        built += 1
        assert type(fast) is type(plain) is cls
        assert repr(fast) == repr(plain) == repr(value)
        assert all(getattr(fast, f.name) is v
                   for f, v in zip(dataclasses.fields(value), fields, strict=True))
    assert built > 1000
    with pytest.raises(ValueError):
        compiled(type(values[0]), (1,) * (len(dataclasses.fields(values[0])) + 1))


def test_a_slotted_dataclass_without_fields_pickles_too() -> None:
    """A class of no fields gets a reducer too (`attrgetter` of no name fails)."""
    import sys
    import types

    module = types.ModuleType("analyzer._test_empty_value")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Empty:
        """Nothing at all."""

    Empty.__module__ = module.__name__
    Empty.__qualname__ = "Empty"
    module.Empty = Empty  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        assert slotted.register_pickling() >= 1
        assert Empty in copyreg.dispatch_table
        assert isinstance(pickle.loads(pickle.dumps(Empty())), Empty)
    finally:
        del sys.modules[module.__name__]
        copyreg.dispatch_table.pop(Empty, None)


def test_a_name_that_is_no_slotted_dataclass_is_refused() -> None:
    """Values are rebuilt by "module:qualname": a name of anything else is refused."""
    with pytest.raises(TypeError):
        slotted._rebuilt("analyzer.exchange.model:AttemptKind", ())
    with pytest.raises(TypeError):
        slotted._rebuilt("os:path", ())
    endpoint = slotted._rebuilt("analyzer.exchange.model:Endpoint", (b"\x7f\0\0\1", 80))
    assert str(endpoint) == "127.0.0.1:80"
