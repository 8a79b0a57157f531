"""The attribution value: who was on each end of an attempt, and what each side said."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who was on each end, and what each most likely said in its own log or console."""

    server: str | None = None  # the implementation that answered, e.g. "actix-web", "nginx"
    confidence: str = ""  # "high", "medium" or "low"
    evidence: tuple[str, ...] = ()  # what on the wire points at it
    server_log: str | None = None  # what that server most likely logged
    client: str | None = None  # the client named from User-Agent, e.g. "Postman", "Chrome"
    client_errors: tuple[str, ...] = ()  # what clients print for this failure, one per client
