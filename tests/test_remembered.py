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


def test_a_value_longer_than_longest_is_returned_but_not_kept() -> None:
    memory: Remembered[str, str] = Remembered(limit=8, longest=10)
    assert memory.keep("short", "x" * 10, 10) == "x" * 10
    long_text = "y" * 11
    assert memory.keep("long", long_text, len(long_text)) is long_text
    assert "short" in memory and "long" not in memory


def test_the_cleaners_memory_does_not_keep_a_hostile_heads_long_texts() -> None:
    """A capture of failed upgrades with long, distinct texts (64 KiB request targets) must
    not fill the report's memories with them: memory stays bounded by their `longest`."""
    from analyzer.report import safe
    from analyzer.report.safe import Cleaner

    plain = Cleaner()
    for n in range(20):
        text = f"/ws/{n}/" + "a" * 65_000
        assert plain.text(text) == plain.text_plain(text)
        assert plain.target(text) == plain.target_plain(text)
        assert text not in safe._cleaned and text not in safe._targets
    assert plain.text("/ws/short") == plain.text_plain("/ws/short")
    assert "/ws/short" in safe._cleaned


def test_digest_key_tells_long_texts_apart_and_is_short() -> None:
    from analyzer.remembered import digest_key

    one, other = "/ws/" + "p" * 8000, "/ws/" + "p" * 7999 + "q"
    assert digest_key(one) == digest_key(str(one)) and len(digest_key(one)) == 32
    assert digest_key(one) != digest_key(other)
    assert digest_key("/caf\udce9") != digest_key("/caf\udce8")  # undecodable bytes kept apart
