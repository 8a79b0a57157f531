"""Rules about the first moments after a switch: hang-ups, Close codes, framing (RFC 6455)."""

from __future__ import annotations

import codecs

from analyzer.checks.catalogue import Finding
from analyzer.checks.facts import Facts, frames_of
from analyzer.exchange.first_bytes import (
    H2_PREFACE,
    H2_SETTINGS,
    classify_first_bytes,
    describe_start,
)
from analyzer.exchange.model import WINDOW_OVER, AfterSwitch, Attempt, TcpEvent
from analyzer.exchange.switch import DEFAULT_WINDOW, looked_frames
from analyzer.life.state import KEEPALIVE_MIN_WAIT
from analyzer.remembered import Remembered
from analyzer.websocket.frames import (
    CloseCode,
    CloseInfo,
    Opcode,
    WsFrame,
    describe,
    parse_close,
)
from analyzer.websocket.keepalive import (
    close_fits_keepalive,
    engineio_pinger,
    is_keepalive_ping,
)

_KNOWN_OPCODES = frozenset(int(op) for op in Opcode)
# The opcodes as plain ints: the loops below run per frame seen after a switch (up to 32 per
# WebSocket), and reading a member off an Enum class costs ≈ 0.1 µs each time in Python 3.11.
_CLOSE, _PING, _PONG = int(Opcode.CLOSE), int(Opcode.PING), int(Opcode.PONG)
_TEXT = int(Opcode.TEXT)
_DATA_OPCODES = (int(Opcode.CONTINUATION), int(Opcode.TEXT), int(Opcode.BINARY))
_NORMAL_CLOSES = (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY)
_NEVER_SENT = (CloseCode.NO_STATUS_RCVD, CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE)


def check_after_switch(attempt: Attempt, facts: Facts) -> list[Finding]:
    after = attempt.after
    if after is None or facts.response_head is None:
        return []
    window = DEFAULT_WINDOW.seconds
    findings: list[Finding] = []
    if facts.websocket:
        findings.extend(websocket_frame_findings(attempt, after, window))
        keepalive = keepalive_timeout(attempt, after, window)
        # (the same unanswered Ping, with its consequence: said once)
        findings.extend(_unanswered_ping(after, attempt.tcp.end_time) if keepalive is None
                        else (keepalive,))
    if facts.protocol == "h2c":
        findings.extend(_h2c(attempt, after))
    if facts.protocol == "connect" and (after.client_prefix or after.server_prefix):
        carried = [f"{side}: {_what_is(prefix)}" for side, prefix in
                   (("client", after.client_prefix), ("server", after.server_prefix)) if prefix]
        first = after.client_first or after.server_first
        findings.append(Finding("tunnel_carried", "", "; ".join(carried),
                                (first.frame,) if first else ()))
    closed = [f for f in findings if f.check in ("ws_closed_with_error", "ws_closed_normally")]
    answer, answer_frames = "", ()  # type: tuple[str, tuple[int, ...]]
    if closed:
        # A Close sent after the other side hung up without a frame only answered that hang-up
        # (Tomcat sends Close 1002, Jetty Close 1001 when a Node ws client that rejected the
        # 101 closes its socket: captures/tomcat10_websocket.pcap): the hang-up is the story.
        reaction = _close_after_silent_hang_up(attempt, after, closed[0])
        if reaction is None:
            return findings
        findings.remove(closed[0])
        answer = f"; the {closed[0].found.replace(' after the 101', ' after the switch')}"
        answer_frames = closed[0].frames
    tcp = attempt.tcp
    ev = frames_of(attempt.response)
    # Only the side that closed first can have refused the switch; the other merely followed.
    # (A lost FIN has the time of the other side's end that acknowledged it: it came first.)
    hang_ups = sorted(
        (end.time, not end.lost, check, side, first_bytes, end,
         "RST" if end is rst else "close_notify" if end is said else "FIN")
        for check, side, first_bytes, fin, rst in (
            ("client_hung_up_after_switch", "client", after.client_first, tcp.client_fin,
             tcp.client_rst),
            ("server_hung_up_after_switch", "server", after.server_first, tcp.server_fin,
             tcp.server_rst),
        )
        # inside TLS a side's close_notify begins its close, before its FIN (which may come
        # after the other side's: nginx answers curl's close_notify with its FIN at once)
        if (end := _earliest(fin, rst, said := close_notify(attempt, side, after))) is not None
    )
    if hang_ups:
        when, _lost, check, side, first_bytes, end, how = hang_ups[0]
        if not 0 <= when - after.switch_time <= window:
            return findings  # (a later end is the life's: analyzer/life)
        if first_bytes is None:
            waited = when - after.switch_time
            findings.append(Finding(check, "WebSocket frames" if facts.websocket else "data",
                                    f"{how} {_ms(waited)} after the switch"
                                    + _after_a_wait(side, waited) + answer,
                                    ev + (end.frame,) + answer_frames, side))
        elif facts.websocket and after.complete and tcp.end_reason != WINDOW_OVER:
            # Frames went by, then an end within the window, and no Close came before it (a
            # Close in the window returned above): an abnormal closure within the first
            # moments, where the life's rules (checks/life.py) say `dropped` for one after
            # them. A connection that lived past its window (a half-close the other side
            # talked past) is the life's to judge, with its whole end.
            findings.append(ended_without_close(after, side, how, when, ev + (end.frame,)))
    return findings


# A side that refuses the switch (a handler that fails, a client that rejects the 101) hangs up
# at once; from this much silence on, a hang-up reads as a wait that ran out instead.
WAITED_S = 0.5
_WAITS = {
    "server": "; after that long a silence, more likely a short idle timeout (nginx "
              "proxy_read_timeout, HAProxy timeout tunnel) than a failed handler",
    "client": "; after that long a silence, more likely a client that gave up waiting for data "
              "(curl, which does not speak WebSocket, waits for --max-time) than one that "
              "rejected the 101",
}


def close_notify(attempt: Attempt, side: str, after: AfterSwitch) -> TcpEvent | None:
    """``side``'s first TLS alert after the switch (its close_notify, mostly), as an end."""
    tls = attempt.tls
    if tls is None or not tls.alerts:
        return None
    return next((TcpEvent(alert.frame, alert.time) for alert in tls.alerts
                 if alert.side == side and alert.time >= after.switch_time), None)


def _after_a_wait(side: str, waited: float) -> str:
    """What a hang-up by ``side`` ``waited`` seconds after the switch most likely was, when
    that is long enough to be a wait, not a refusal ("" otherwise)."""
    return _WAITS[side] if waited >= WAITED_S else ""


def ended_without_close(after: AfterSwitch, side: str, how: str, when: float,
                        evidence: tuple[int, ...], switch: str = "switch") -> Finding:
    """`ended_without_close_after_switch`: ``side`` ended the connection (or, over HTTP/2,
    the stream: checks/h2.py) at ``when`` after frames went by, and neither side had sent a
    Close frame; ``evidence``: the switch's frames and the end's (the last frame before the
    end goes before the end); ``switch``: what switched ("switch", or "200")."""
    before = [seen for seen in after.frames if seen.time <= when]
    silence = "" if not before else f", {_ms(when - before[-1].time)} after the last frame"
    frames = evidence[:-1] + tuple(seen.frame for seen in before[-1:]) + evidence[-1:]
    return Finding("ended_without_close_after_switch", "a Close frame before the TCP close",
                   f"{side} sent a {how} {_ms(when - after.switch_time)} after the {switch}"
                   f"{silence}, without a Close frame", frames, side)


def _close_after_silent_hang_up(attempt: Attempt, after: AfterSwitch,
                                closed: Finding) -> TcpEvent | None:
    """The other side's FIN or RST, when it came before this Close and that side had sent
    nothing since the switch; None when the Close came first."""
    if not closed.frames or closed.side not in ("client", "server"):
        return None
    frame = closed.frames[0]
    tcp = attempt.tcp
    if closed.side == "server":
        end, first = _earliest(tcp.client_fin, tcp.client_rst), after.client_first
    else:
        end, first = _earliest(tcp.server_fin, tcp.server_rst), after.server_first
    # (a lost FIN told at the Close's own frame came before it: that frame acknowledged it)
    if end is None or first is not None or end.frame > frame or (
            end.frame == frame and not end.lost):
        return None  # (the usual Close, told before the frames are walked for its time)
    sent_at = next((s.time for s in after.frames if s.frame == frame), None)
    if sent_at is None:
        return None
    return end if end.time <= sent_at else None


def websocket_frame_findings(attempt: Attempt, after: AfterSwitch, window: float,
                             switch: str = "101") -> list[Finding]:
    """Masking, framing and Close rules on the frames seen after the switch (``switch`` names
    the answer that switched: "101", or "200" over HTTP/2)."""
    findings: list[Finding] = []
    # whether RSV bits were looked at yet: the extensions' tokens are read only then (most
    # frames have none), and the finding is said once
    client_unmasked_reported = server_masked_reported = closed_said = rsv_said = False
    length_said: set[str] = set()  # the sides whose length encoding was said
    utf8_said: set[str] = set()  # ... and whose text that is not UTF-8
    frames = after.frames
    # The usual frame (`usual_frame`: data, masked as its side must mask, no RSV bit, its
    # length in the fewest bytes, text in ASCII) breaks none of the rules below, and the
    # watch lists the others (`AfterSwitch.looked`): only they are read (this loop ran for
    # every frame the watch kept, up to 32 a WebSocket, ≈ 15 µs an attempt on the dense
    # benchmark mix).
    for index in looked_frames(after):
        seen = frames[index]
        ws = seen.ws
        opcode = ws.opcode
        # RFC 6455 §5.2, the length in the fewest bytes: the header up to its masking key is
        # 2, 4 or 10 bytes as the 7-bit field, the 16-bit or the 64-bit form holds it
        form = ws.header_length - 4 if ws.masked else ws.header_length
        minimal = form == 2 or (ws.length > 125 if form == 4 else
                                form == 10 and 65535 < ws.length < _TOP_BIT)
        # `_not_utf8` only for text that is not ASCII (a compressed frame's text is not read:
        # RSV1 with permessage-deflate)
        bad_text = None if (opcode != _TEXT or ws.rsv or ws.payload_prefix.isascii()) \
            else _not_utf8(ws)
        if not minimal and seen.side not in length_said:
            length_said.add(seen.side)
            findings.append(Finding("ws_frame_length_not_minimal", "the fewest length bytes",
                                    f"{seen.side} frame {_length_form(ws)}", (seen.frame,),
                                    seen.side))
        if bad_text is not None and seen.side not in utf8_said:
            utf8_said.add(seen.side)
            findings.append(Finding("ws_text_not_utf8", "UTF-8",
                                    f"{seen.side} text frame of {ws.length} bytes: {bad_text}",
                                    (seen.frame,), seen.side))
        if seen.side == "client" and not ws.masked and not client_unmasked_reported:
            client_unmasked_reported = True
            findings.append(Finding("ws_client_frame_unmasked", "masked", "unmasked",
                                    (seen.frame,), "client"))
        if seen.side == "server" and ws.masked and not server_masked_reported:
            server_masked_reported = True
            findings.append(Finding("ws_server_frame_masked", "unmasked", "masked",
                                    (seen.frame,), "server"))
        if opcode >= _CLOSE and (ws.length > 125 or not ws.fin):
            findings.append(Finding("ws_control_frame_invalid", "FIN set, payload <= 125",
                                    f"{seen.side} opcode {opcode:#x}, FIN={int(ws.fin)}, "
                                    f"{ws.length} bytes", (seen.frame,), seen.side))
        if opcode not in _KNOWN_OPCODES:
            findings.append(Finding("ws_opcode_reserved", "opcode 0-2 or 8-10",
                                    f"{seen.side} opcode {opcode:#x}", (seen.frame,),
                                    seen.side))
        if ws.rsv and not rsv_said:
            rsv_said = True  # say it once (or never, when an extension was negotiated)
            head = attempt.response_head
            if not (head and head.headers.tokens("sec-websocket-extensions")):
                findings.append(Finding("ws_rsv_without_extension", "RSV bits 0",
                                        f"RSV={ws.rsv:03b} on a {seen.side} frame",
                                        (seen.frame,), seen.side))
        if opcode != _CLOSE:
            continue
        close = _close_of(ws.payload_prefix)
        code = close.code
        bad_reason = _not_utf8(ws, 2) if "close_reason_invalid_utf8" in close.problems \
            else None  # (a reason the kept prefix cuts is judged as far as it goes)
        if bad_reason is not None:
            findings.append(Finding("ws_close_reason_not_utf8", "UTF-8",
                                    f"{seen.side} Close reason: {bad_reason}", (seen.frame,),
                                    seen.side))
        if code is not None and (code in _NEVER_SENT or code < 1000):
            findings.append(Finding("ws_close_code_invalid", "a code that may be sent",
                                    str(code), (seen.frame,)))
        delay = seen.time - after.switch_time
        if delay > window or closed_said:  # the first Close in the window is the story
            continue
        closed_said = True  # (the text below only for it: most attempts see two Closes)
        reason = f" '{close.reason}'" if close.reason else ""
        meaning = "" if code is None else (
            # (1005's own meaning, "the Close frame had none", reads as a contradiction here)
            " (a code reserved for what a library reports: never sent in a Close frame)"
            if code in _NEVER_SENT else f" ({_meaning(code)})")
        described = f"{seen.side} sent Close {code if code is not None else '(no code)'}"
        described += f"{meaning}{reason} {_ms(delay)} after the {switch}"
        if code is None or code in _NORMAL_CLOSES:
            findings.append(Finding("ws_closed_normally", "", described, (seen.frame,),
                                    seen.side))
        else:
            findings.append(Finding("ws_closed_with_error", "1000 or 1001", described,
                                    (seen.frame,), seen.side))
    return findings


_TOP_BIT = 1 << 63  # of a 64-bit length: "the most significant bit MUST be 0"


def _length_form(ws: WsFrame) -> str:
    """How a frame whose length is not in the fewest bytes encoded it, in words."""
    form = ws.header_length - 4 if ws.masked else ws.header_length
    if form == 10 and ws.length >= _TOP_BIT:
        return f"length {ws.length} in the 64-bit form with its top bit set"
    bits = {2: 7, 4: 16, 10: 64}.get(form, 0)
    return f"of {ws.length} bytes with a {bits}-bit length"


def _not_utf8(ws: WsFrame, skip: int = 0) -> str | None:
    """Why the text the frame's kept payload carries (past ``skip`` bytes: a Close's code)
    is not UTF-8, in words, or None when it is, as far as the kept bytes go: a character
    the kept prefix cuts is not held against it (RFC 6455 §8.1 judges the whole message)."""
    text = ws.payload_prefix[skip:]
    if text.isascii():  # (the usual text, at C speed)
        return None
    whole = ws.fin and ws.length <= len(ws.payload_prefix)
    try:
        _utf8_decoder().decode(text, whole)
    except UnicodeDecodeError as error:
        return f"{error.reason} at byte {skip + error.start}"
    return None


_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _close_of(payload: bytes) -> CloseInfo:
    """`parse_close(payload)`, remembered: most WebSockets show two Closes, and a capture's
    Closes carry a handful of payloads (a code and a short reason, at most 125 bytes kept),
    while parsing one costs ≈ 1 µs. `CloseInfo` is frozen, so one serves every Close of that
    payload (tests/test_checks.py compares it with `parse_close`). Bounded."""
    close = _CLOSES.get(payload)
    if close is None:
        close = _CLOSES.keep(payload, parse_close(payload))
    return close


_CLOSES: Remembered[bytes, CloseInfo] = Remembered()


def _meaning(code: int) -> str:
    """`describe(code)`, remembered: ``CloseCode(code)`` costs ≈ 1 µs, and a capture's
    closes use a handful of codes (the memory is bounded by the 65,536 codes there are)."""
    meaning = _MEANINGS.get(code)
    if meaning is None:
        meaning = _MEANINGS[code] = describe(code)
    return meaning


_MEANINGS: dict[int, str] = {}


# A Pong may take this long (it goes "as soon as is practical"): a Ping seen closer to the end
# of the observation than this, with nothing else from the peer after it, says nothing.
PONG_PATIENCE = 1.0


def _unanswered_ping(after: AfterSwitch, end_time: float) -> list[Finding]:
    """The first Ping (before any Close) that the other side did not answer while watched:
    it sent data after it without a Pong, or stayed silent for PONG_PATIENCE."""
    frames = after.frames
    # (Pings and Closes are never usual frames: the listed ones hold them all, in order)
    for index in looked_frames(after):
        seen = frames[index]
        opcode = seen.ws.opcode
        if opcode == _CLOSE:
            return []
        if opcode != _PING:
            continue
        other = "server" if seen.side == "client" else "client"
        later = [s for s in frames[index + 1:] if s.side == other]
        if any(s.ws.opcode == _PONG for s in later):
            continue
        if sum(s.side == other for s in frames) >= DEFAULT_WINDOW.frames:
            return []  # the watch stopped reading that side: its Pong may have come later
        waited = max(end_time, later[-1].time if later else 0.0) - seen.time
        if waited < PONG_PATIENCE and not any(s.ws.opcode in _DATA_OPCODES for s in later):
            continue
        what = (f"{seen.side} Ping; the {other} sent {len(later)} frame(s) after it, no Pong"
                if later else f"{seen.side} Ping; nothing from the {other} in {_ms(waited)}")
        # side: who broke the rule (the silent one), so that the pinging side's close pairs
        # with it as its cause (verdict.causes_of)
        return [Finding("ws_ping_unanswered", f"a Pong from the {other}", what,
                        (seen.frame,), other)]
    return []


def keepalive_timeout(attempt: Attempt, after: AfterSwitch, window: float,
                      switch: str = "switch") -> Finding | None:
    """`keepalive_timeout_after_switch`: the side that closed first within the window (its
    Close frame, else its FIN or RST) had sent a keepalive ping (a Ping, or Engine.IO's
    "2") after the other side's last frame, at least KEEPALIVE_MIN_WAIT before it closed:
    its keepalive gave up. (Past the window the life's rule says it: checks/life.py.)"""
    frames = after.frames
    close = next((seen for seen in frames if seen.ws.opcode == _CLOSE), None)
    tcp = attempt.tcp
    ends = [(end.time, side, end.frame, how) for side, how, end in (
        ("client", "FIN", tcp.client_fin), ("server", "FIN", tcp.server_fin),
        ("client", "reset", tcp.client_rst), ("server", "reset", tcp.server_rst))
        if end is not None]
    if close is not None and not any(when < close.time for when, *_ in ends):
        code = _close_of(close.ws.payload_prefix)
        fits = close_fits_keepalive(code.code, code.reason or "")
        how = "Close" + (f" {code.code}" if code.code is not None else "") + (
            f" ('{code.reason}')" if code.reason else "")
        when, closer, frame = close.time, close.side, close.frame
    elif ends:
        when, closer, frame, how = min(ends)
        fits = True
    else:
        return None
    if not 0 <= when - after.switch_time <= window:
        return None
    silent = "server" if closer == "client" else "client"
    heard = [seen.time for seen in frames if seen.side == silent and seen.time <= when]
    if len(heard) >= DEFAULT_WINDOW.frames:
        return None  # the watch stopped reading that side
    eio = engineio_pinger(getattr(attempt.request_head, "target", "") or "") == closer
    last_heard = heard[-1] if heard else 0.0
    ping = next((seen for seen in frames if seen.side == closer and last_heard < seen.time < when
                 and is_keepalive_ping(seen.ws, eio)), None)
    if ping is None or when - ping.time < KEEPALIVE_MIN_WAIT:
        return None
    if not fits and ping.ws.opcode == _PING:  # (Engine.IO's timeout closes with no reason)
        return None
    return Finding("keepalive_timeout_after_switch", f"a Pong from the {silent}",
                   f"{closer} pinged {_ms(ping.time - after.switch_time)} after the {switch}; "
                   f"nothing from the {silent} for {_ms(when - ping.time)}; then the {closer} "
                   f"sent a {how} {_ms(when - after.switch_time)} after the {switch}",
                   (ping.frame, frame), silent)


def _h2c(attempt: Attempt, after: AfterSwitch) -> list[Finding]:
    findings: list[Finding] = []
    if after.client_prefix and not H2_PREFACE.startswith(after.client_prefix[: len(H2_PREFACE)]):
        findings.append(Finding("h2c_no_client_preface", "PRI * HTTP/2.0 preface",
                                repr(after.client_prefix[:24]),
                                (after.client_first.frame,) if after.client_first else ()))
    if len(after.server_prefix) >= 4 and after.server_prefix[3] != H2_SETTINGS:
        findings.append(Finding("h2c_no_server_settings", "a SETTINGS frame",
                                f"frame type {after.server_prefix[3]}",
                                (after.server_first.frame,) if after.server_first else ()))
    if after.h2c_status and after.h2c_status_event is not None:
        # RFC 7540 §3.2: "The HTTP/1.1 request that is sent prior to upgrade is assigned a
        # stream identifier of 1 ... the server sends the response on stream 1"
        findings.append(Finding("h2c_upgraded_request_status", "", f"{after.h2c_status} on "
                                "stream 1", (after.h2c_status_event.frame,)))
    return findings


def _what_is(prefix: bytes) -> str:
    """What the first bytes through a tunnel look like (for the reader, not for a verdict)."""
    return describe_start(classify_first_bytes(prefix), prefix)


def _earliest(*events: TcpEvent | None) -> TcpEvent | None:
    """The first of ``events`` by time (the first given of equal times), or None."""
    first = None
    for event in events:
        if event is not None and (first is None or event.time < first.time):
            first = event
    return first


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"
