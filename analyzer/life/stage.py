"""The life stage of a run: which attempt each connection in life belongs to, and the
`Ended` event each end becomes (the life findings and the final verdict)."""

from __future__ import annotations

from collections.abc import Callable

from analyzer.checks.life import check_life
from analyzer.exchange.model import Endpoint
from analyzer.life.model import Ended, Lifetime
from analyzer.life.state import Life
from analyzer.verdict import Verdict, after_life


class LifeStage:
    """Shared by the trackers of one run (`RunContext.life_sink`)."""

    __slots__ = ("_emit", "_unjudged")

    def __init__(self, emit: Callable[[Ended], None]) -> None:
        self._emit = emit
        # lives whose attempt is not diagnosed yet (the pipeline does so at once: `judged`)
        self._unjudged: dict[tuple[int, int, int], Life] = {}

    def started(self, life: Life) -> None:
        self._unjudged[life.key] = life

    def judged(self, key: tuple[int, int, int], verdict: Verdict) -> None:
        """The attempt ``key`` was decided ``verdict`` (its life's starting point)."""
        life = self._unjudged.pop(key, None)
        if life is not None:
            life.decided = verdict

    def ended(self, life: Life, lifetime: Lifetime,
              addresses: tuple[bytes, int, bytes, int]) -> None:
        self._unjudged.pop(life.key, None)
        decided = life.decided if isinstance(life.decided, Verdict) else Verdict.SUCCEEDED
        verdict, findings = after_life(decided, tuple(check_life(lifetime)))
        ends = (Endpoint(addresses[0], addresses[1]), Endpoint(addresses[2], addresses[3]))
        client, server = ends[life.client], ends[1 - life.client]
        first = life.flows[life.client].first
        self._emit(Ended(life.key, lifetime, findings, verdict, decided, client, server,
                         life.target, first))
