"""The one bounded memory (analyzer/remembered.py) that every stage's remembered texts use."""

from __future__ import annotations

from analyzer.remembered import DEFAULT_LIMIT, Remembered


def test_keep_returns_the_value_and_a_full_memory_starts_again() -> None:
    memory: Remembered[int, str] = Remembered(3)
    assert [memory.keep(n, str(n)) for n in range(3)] == ["0", "1", "2"]
    assert dict(memory) == {0: "0", 1: "1", 2: "2"}
    assert memory.keep(3, "3") == "3"  # full: emptied, then kept
    assert dict(memory) == {3: "3"}
    for n in range(10 * 3):
        memory.keep(n, str(n))
        assert len(memory) <= 3
    assert memory.get(29) == "29" and memory.get(0) is None


def test_the_default_bound() -> None:
    memory: Remembered[int, int] = Remembered()
    assert memory.limit == DEFAULT_LIMIT
    for n in range(DEFAULT_LIMIT * 2 + 1):
        memory.keep(n, n)
    assert 0 < len(memory) <= DEFAULT_LIMIT
