"""Values built through their slots' own descriptors instead of the frozen dataclass
``__init__`` (one or more per connection: `decode.segment.made_segment`, ...) against the
constructors they stand for, on the values the bundled captures give: every field, equality,
the hash, a pickle round trip and `dataclasses.replace`."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

from analyzer.decode.decoder import decode_frame
from analyzer.decode.segment import Segment, made_segment
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


def test_made_segment_is_the_constructors() -> None:
    """`made_segment` (the first SYN of a connection whose SYNs were kept,
    `InOrder._make_listener`) on every TCP segment of the bundled captures."""
    compared = 0
    for path in CAPTURES:
        for number, (when, linktype, data, wire, source) in enumerate(
                read_records([str(path)], []), 1):
            segment = decode_frame(Frame(number, when, linktype, data, wire, source))
            if not isinstance(segment, Segment):
                continue
            values = [getattr(segment, f.name) for f in dataclasses.fields(Segment)]
            _same_value(made_segment(*values), Segment(*values), values)
            compared += 1
    assert compared > 2_000
