"""Columns of numbers a spilled report keeps per attempt, and the orders sorted from them
(report/kept.py): memory that stays small and unfragmented at a million attempts."""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Callable, Iterator
from typing import Any


class Column:
    """A growing array of numbers in chunks of _CHUNK: one array of a million grew by
    reallocation, and glibc placed each copy (up to 8 MB) past the last, so three of them
    left ~20 MB of holes in the heap at a million attempts (benchmarks/README.md)."""

    __slots__ = ("_chunks", "_code")

    def __init__(self, code: str) -> None:
        self._code = code
        self._chunks: list[array[Any]] = [array(code)]

    def append(self, value: Any) -> None:
        last = self._chunks[-1]
        if len(last) == _CHUNK:
            last = array(self._code)
            self._chunks.append(last)
        last.append(value)

    def __len__(self) -> int:
        return (len(self._chunks) - 1) * _CHUNK + len(self._chunks[-1])

    def __iter__(self) -> Iterator[Any]:
        for chunk in self._chunks:
            yield from chunk

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            index += len(self)
        return self._chunks[index >> _CHUNK_BITS][index & (_CHUNK - 1)]

    def __setitem__(self, index: int, value: Any) -> None:
        if index < 0:
            index += len(self)
        self._chunks[index >> _CHUNK_BITS][index & (_CHUNK - 1)] = value


_CHUNK_BITS = 16
_CHUNK = 1 << _CHUNK_BITS  # 512 KB of 8-byte numbers


def report_order(frame: Column, time: Column) -> array[int]:
    """Attempt indexes in report order: by first frame, then time, then order of decision
    (what a stable sort of the decided list by (first_frame, time) gives)."""
    return _sort(len(frame), lambda i: (frame[i], time[i], i))


def time_order(order: array[int], time: Column) -> array[int]:
    """Ranks (positions in ``order``) by time, ties in report order (a stable sort by time
    of the report, as correlation and redirect following read it)."""
    return _sort(len(order), lambda rank: (time[order[rank]], rank))


_RUN = 65_536  # items sorted at once


def _sort(count: int, key: Callable[[int], Any]) -> array[int]:
    """0..count-1 sorted by ``key`` (unique keys), in runs of _RUN merged: a plain sort of a
    million held a million keys at once (~100 MB), this holds one run's."""
    code = index_code(count)
    runs = [array(code, sorted(range(start, min(start + _RUN, count)), key=key))
            for start in range(0, count, _RUN)]
    if len(runs) == 1:
        return runs[0]
    return array(code, heapq.merge(*runs, key=key))


def index_code(count: int) -> str:
    """The array type of indexes below ``count``: 4 bytes while they fit (a million
    attempts' report order and time order were 16 MB as 8-byte numbers)."""
    return "I" if count < 1 << 32 else "q"
