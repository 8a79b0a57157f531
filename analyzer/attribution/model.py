"""The attribution value: who was on each end of an attempt, and what each side said."""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.slotted import slot_setters


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who was on each end, and what each most likely said in its own log or console."""

    server: str | None = None  # the implementation that answered, e.g. "actix-web", "nginx"
    confidence: str = ""  # "high", "medium" or "low"
    evidence: tuple[str, ...] = ()  # what on the wire points at it
    server_log: str | None = None  # what that server most likely logged
    client: str | None = None  # the client named from User-Agent, e.g. "Postman", "Chrome"
    client_errors: tuple[str, ...] = ()  # what clients print for this failure, one per client


# One Attribution per listed attempt: `attribution` stores its six fields through the slots'
# own descriptors instead of the frozen ``__init__``'s object.__setattr__ (the same value,
# tests/test_attribution.py compares the two).
_new_object = object.__new__
_SETTERS = slot_setters(Attribution, (
    "server", "confidence", "evidence", "server_log", "client", "client_errors"))


def attribution(server: str | None, confidence: str, evidence: tuple[str, ...],
                server_log: str | None, client: str | None,
                client_errors: tuple[str, ...]) -> Attribution:
    """``Attribution(server, confidence, ...)`` without the frozen ``__init__`` (its twin)."""
    made = _new_object(Attribution)
    s_server, s_confidence, s_evidence, s_log, s_client, s_errors = _SETTERS
    s_server(made, server)
    s_confidence(made, confidence)
    s_evidence(made, evidence)
    s_log(made, server_log)
    s_client(made, client)
    s_errors(made, client_errors)
    return made
