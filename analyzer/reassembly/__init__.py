"""TCP reassembly: turns Segments into in-order byte streams, one pair per connection.

One module per job:
- `listeners.py`: what the reassembler tells the layer above (``StreamListener``), and what
  follows a connection after its watch window (``LifeFollower``, ``LifeTable``);
- `connection.py`: the connection model (``Connection``, its two directions) and ``let_go``;
- `delivery.py`: in-order delivery of one connection's bytes (holes, overlaps, causal order);
- `table.py`: the connection table and its sweep (``Reassembler``), and the pipeline's cheap
  path for the common segment (``take_plain``);
- `lives.py`: the routing of connections in life into and out of the life table.
"""

from __future__ import annotations

from analyzer.reassembly.connection import (
    _MASK,
    _NOT_KEPT,
    _NOTHING_YET,
    LATE_SECONDS,
    LATE_SEGMENTS,
    LIFE_IDLE_TIMEOUT,
    MAX_PENDING_BYTES,
    RECENT_BYTES,
    Connection,
    ListenerFactory,
    addresses_of,
    let_go,
)
from analyzer.reassembly.listeners import LifeFollower, LifeTable, StreamListener
from analyzer.reassembly.table import Reassembler

__all__ = [
    "LATE_SECONDS",
    "LATE_SEGMENTS",
    "LIFE_IDLE_TIMEOUT",
    "MAX_PENDING_BYTES",
    "RECENT_BYTES",
    "_MASK",
    "_NOT_KEPT",
    "_NOTHING_YET",
    "Connection",
    "LifeFollower",
    "LifeTable",
    "ListenerFactory",
    "Reassembler",
    "StreamListener",
    "addresses_of",
    "let_go",
]
