"""The exchange stage's values: what their fast paths give equals their plain twins."""

from __future__ import annotations

import socket

from analyzer.exchange import model
from analyzer.exchange.model import Endpoint, format_address


def test_cached_address_text_equals_inet_ntop_for_both_families() -> None:
    cases = [
        socket.inet_pton(socket.AF_INET, "10.1.0.1"),
        socket.inet_pton(socket.AF_INET, "0.0.0.0"),
        socket.inet_pton(socket.AF_INET6, "::1"),
        socket.inet_pton(socket.AF_INET6, "2001:db8::ff00:42:8329"),
        socket.inet_pton(socket.AF_INET6, "::ffff:192.0.2.1"),
    ]
    for address in cases:
        for _ in range(2):  # the first call fills the cache, the second reads it
            assert Endpoint(address, 80).ip == format_address(address)
    assert str(Endpoint(cases[0], 8080)) == "10.1.0.1:8080"
    assert str(Endpoint(cases[2], 443)) == "[::1]:443"


def test_address_cache_stays_bounded_and_right_after_it_is_cleared() -> None:
    addresses = [bytes([10, i >> 16 & 255, i >> 8 & 255, i & 255])
                 for i in range(model._ADDRESS_TEXTS.limit + 10)]
    for address in addresses:
        assert Endpoint(address, 1).ip == format_address(address)
    assert len(model._ADDRESS_TEXTS) <= model._ADDRESS_TEXTS.limit
    assert Endpoint(addresses[0], 1).ip == "10.0.0.0"


def test_format_address_equals_the_socket_modules_inet_ntop() -> None:
    """`format_address` uses socket's C half (`_socket`) to spare importing `socket`: the
    same text as `socket.inet_ntop`, for both families."""
    for text, family in (("192.0.2.200", socket.AF_INET), ("fe80::1:2", socket.AF_INET6),
                         ("::ffff:10.0.0.1", socket.AF_INET6), ("2001:db8::", socket.AF_INET6)):
        address = socket.inet_pton(family, text)
        assert format_address(address) == socket.inet_ntop(family, address) == text
