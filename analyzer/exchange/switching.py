"""The part of ConnectionTracker after a switch (a 101, or a 2xx to CONNECT): starting the watch
of the new protocol, feeding it both sides' bytes, and handing the attempt on when it ends."""

from __future__ import annotations

from analyzer.exchange.holes import HoleRecovery
from analyzer.exchange.model import Message
from analyzer.exchange.pending import Mode, PendingRequest, Switch
from analyzer.exchange.switch import SwitchWatch

# module globals for speed (see tracker.py): _observe runs on every segment of the window
_SWITCHED, _DEAD = Mode.SWITCHED, Mode.DEAD


class SwitchFollower(HoleRecovery):
    """Mixin of ConnectionTracker: the observation window after a switch (`SwitchWatch` does
    the watching itself)."""

    __slots__ = ()

    def _start_switch(
        self,
        request: PendingRequest | None,
        response: Message,
        interim: tuple[Message, ...],
        time: float,
    ) -> None:
        head = request.head if request is not None else None
        websocket = "websocket" in response.head.headers.tokens("upgrade") or (
            head is not None and "websocket" in head.headers.tokens("upgrade")
            and not response.head.headers.has("upgrade")
        )
        h2c = "h2c" in response.head.headers.tokens("upgrade")
        watch = SwitchWatch(response.time, time, websocket, self._run.window, h2c)
        self._switch = Switch(request, response, interim, watch, self._server_gap)
        client = self._client_side()
        state = self._sides[client]
        held, state.held, state.held_bytes = state.held, [], 0
        if state.held_gap:
            watch.complete = False
        state.mode = _SWITCHED
        self._sides[1 - client].mode = _SWITCHED
        for data, frame, when in held:
            if not data:  # HOLE: the frames after it cannot be read
                state.mode = _DEAD
                break
            watch.early(len(data), frame)
            self._observe(client, data, frame, when)

    def _observe(self, side: int, data: bytes, frame: int, time: float) -> None:
        switch = self._switch
        assert switch is not None
        if self._sides[side].mode is _DEAD:
            return
        while data and (switch.request is None or switch.replaceable) and (
                side == self._client and not switch.watch.client_seen):
            found, data = self._late_request(switch, data, frame, time)
            if found is None:  # wait for the rest of a head
                return
            if found:
                switch.request_after_hole = False
                continue
            if switch.request_after_hole and switch.request is None:
                return  # the rest of what the hole cut, or frames: a request may still come
            switch.replaceable = False  # the client's first bytes of the new protocol
            break
        if not data:
            return
        if time > switch.watch.deadline or switch.watch.observe(
            side == self._client, data, frame, time
        ):
            self._finish_switch(time, "observation window over")

    def _finish_switch(self, time: float, reason: str) -> None:
        switch = self._switch
        if switch is None or self._done:
            return
        after = switch.watch.result(time)
        self._emit_http(switch.request, switch.response, switch.interim, after, time, reason,
                        switch.gap_before)
        # Requests still queued (possible only when a hole made the pairing a guess) are
        # listed as unanswered rather than dropped with the connection.
        self._flush_unanswered(time, reason)
        self._done = True
        self._ignore()
