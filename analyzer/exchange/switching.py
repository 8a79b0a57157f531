"""The part of ConnectionTracker after a switch (a 101, or a 2xx to CONNECT): starting the watch
of the new protocol, feeding it both sides' bytes, and handing the attempt on when it ends."""

from __future__ import annotations

from analyzer.exchange.holes import HoleRecovery
from analyzer.exchange.model import WINDOW_OVER, AfterSwitch, Message
from analyzer.exchange.pending import Mode, PendingRequest, Switch, new_switch
from analyzer.exchange.switch import switch_watch
from analyzer.life.model import attempt_key
from analyzer.reassembly import let_go

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
        answered = response.head.headers.tokens("upgrade")
        websocket = "websocket" in answered or (
            head is not None and "websocket" in head.headers.tokens("upgrade")
            and not response.head.headers.has("upgrade")
        )
        h2c = "h2c" in answered
        watch = switch_watch(response.time, time, websocket, self._run.window, h2c,
                             self._run.frame_parser)
        self._switch = new_switch(request, response, interim, watch, self._server_gap)
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
        if time > switch.watch.deadline:
            if self._past_watch(time):  # in life now: these bytes are its first
                life = self._conn.life
                if life is not None:
                    life.seen(side, data, time, frame)
                return
            self._finish_switch(time, WINDOW_OVER)
        elif switch.watch.observe(side == self._client, data, frame, time):
            self._finish_switch(time, WINDOW_OVER)

    def _past_watch(self, time: float) -> bool:
        """True when the watch window had ended before ``time`` and the connection has now
        gone into life (it ends the watch at its deadline, as a tick would have): what
        happens at ``time`` belongs to the life. False without the life stage."""
        switch = self._switch
        if (switch is None or self._done or self._run.life_sink is None
                or time <= switch.watch.deadline):
            return False
        self._finish_switch(switch.watch.deadline, WINDOW_OVER)
        return self._conn.life is not None

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
        if reason == WINDOW_OVER and self._run.life_sink is not None:
            self._live_on(switch, after)
        else:
            self._ignore()

    def _live_on(self, switch: Switch, after: AfterSwitch) -> None:
        """The watch is over and the connection still open: it is let go into the life
        state (analyzer/life/state.py), which follows it cheaply to its end."""
        from analyzer.life.state import pending_pings, start_life

        conn = self._conn
        client = self._client_side()
        request = switch.request
        head = request.head if request is not None else None
        target = getattr(head, "target", "") if head is not None else ""
        response = switch.response
        first = (request.time if request is not None else response.time, response.time)
        key = attempt_key(request.first_frame if request is not None else response.first_frame,
                          request.sequence if request is not None else self._sequence, None)
        sink = self._run.life_sink
        assert sink is not None
        seen = switch.watch.last_seen
        last = (seen[0] or first[0], seen[1] or first[1])  # each side's last bytes (client, server)
        pings = pending_pings(after, str(target), (seen[0], seen[1])) \
            if switch.watch.websocket and after.frames else (None, None)
        life = start_life(conn, self._tcp, client, switch.watch.switch_time, str(target),
                          switch.watch.websocket, first if client == 0 else first[::-1],
                          last if client == 0 else last[::-1], sink, key,
                          pings if client == 0 else (pings[1], pings[0]))
        let_go(conn, life)
