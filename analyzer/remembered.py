"""`Remembered`: the one bounded memory of values made from their keys (a cleaned text, an
address's text, a Close's parse), shared by every stage that keeps a pure function's results.

Why not `functools.lru_cache`: the callers build the key from part of their arguments (a
report line's cleaner is not in it) and decide per call whether a value may be kept at all
(only for an attempt without secret values, only short texts, so a hostile capture's long
values are never kept). Why emptied all at once rather than one value at a time: the values
that repeat in a run (a handful of paths, statuses, Close payloads) come back within a few
thousand look-ups, so an emptied memory refills at once, and keeping no order costs nothing
per hit; the bound is what matters, for memory however large the capture.
"""

from __future__ import annotations

from typing import TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")

DEFAULT_LIMIT = 4096


class Remembered(dict[Key, Value]):
    """A dict of at most ``limit`` values: `keep` empties it when it is full. Read it with
    ``get`` (the dict's own, so a hit costs what a dict's look-up costs)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: Key, value: Value) -> Value:
        """Keeps ``value`` for ``key`` and returns it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
