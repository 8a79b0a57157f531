"""Exchanges: HTTP messages of one connection paired into upgrade attempts."""
