"""The life rules: how a switched connection ended after its watch window (catalogue phase
``life``). Pure functions of a `Lifetime`; the rules that need several connections at once
(a mass reset, a maximum lifetime) are in analyzer/life/groups.py."""

from __future__ import annotations

from analyzer.checks.catalogue import Finding
from analyzer.life.model import CLOSE_FRAME, CLOSE_HANDSHAKE, FIN, OPEN, RST, Lifetime
from analyzer.websocket.keepalive import close_fits_keepalive

# Silence before an end without a Close frame from which it is called an idle timeout.
IDLE_MIN_S = 1.0
# Well-known idle timeouts (seconds) and who has them by default (reference:
# shared/reference/tls-http2-lifetime.md, "The life of an upgraded connection").
CULPRITS: tuple[tuple[float, str], ...] = (
    (55.0, "Heroku's router (55 s)"),
    (60.0, "nginx proxy_read_timeout (60 s by default) or an AWS ALB idle timeout (60 s)"),
    (100.0, "Cloudflare (100 s)"),
    (350.0, "an AWS NLB idle timeout (350 s)"),
)
_SPECIFIC = {1009: "close_message_too_big", 1011: "close_internal_error",
             1012: "close_service_restart", 1013: "close_try_again_later",
             1014: "close_bad_gateway"}
_ERRORS = frozenset({1002, 1003, 1007, 1008, 1010})


def culprit(seconds: float) -> str:
    """Who usually closes after ``seconds`` of silence; the measured time otherwise."""
    for value, who in CULPRITS:
        if abs(seconds - value) <= max(1.5, value * 0.02):
            return f"likely {who}"
    # (the measured time itself, not rounded again: "2.5 s ... about 3 s" read as a contradiction)
    return ("no well-known default: look for a timeout of that length on a proxy, load "
            "balancer or NAT on the path (HAProxy timeout tunnel or timeout client/server, "
            "nginx proxy_read_timeout), or a timer in the application that closed (a "
            "heartbeat check that terminates quiet sockets)")


def close_finding(life: Lifetime, frames: tuple[int, ...]) -> Finding | None:
    """The finding a Close code at the end names (None for 1000, or no code)."""
    code = life.close_code
    if code is None or code == 1000:
        return None
    said = f"{life.close_side} sent Close {code}" + (
        f" ({life.close_reason!r})" if life.close_reason else "") + (
        f" after {life.close_after_s:.1f} s")
    if code == 1001:
        check = "close_going_away"
    elif code in _SPECIFIC:
        check = _SPECIFIC[code]
    elif 4000 <= code <= 4999:
        check = "close_application_error"
    elif code in _ERRORS:
        check = "close_error_in_life"
    else:
        return None  # 3000-3999 (registered) and codes that must not be sent: not judged here
    return Finding(check, "Close 1000 (normal) or 1001 (going away)", said, frames,
                   side=life.close_side)


def _keepalive(life: Lifetime) -> list[Finding]:
    """`keepalive_ping_unanswered`: the side that ended the connection had sent a keepalive
    ping that the other side answered with no byte before it closed (life/state.py)."""
    if not life.ping_frame:
        return []
    pinger = life.closed_by
    silent = "server" if pinger == "client" else "client"
    if life.how in (CLOSE_HANDSHAKE, CLOSE_FRAME):
        if not close_fits_keepalive(life.close_code, life.close_reason):
            return []
        how = f"Close {life.close_code}" if life.close_code is not None else "Close"
        how += f" ({life.close_reason!r})" if life.close_reason else ""
        gave_up, frame = life.close_after_s, life.close_frame or life.end_frame
    else:
        how = "reset" if life.how == RST else "FIN"
        gave_up, frame = life.duration_s, life.end_frame
    start = life.end_time - life.duration_s
    pinged = max(life.ping_time - start, 0.0)
    return [Finding(
        "keepalive_ping_unanswered", f"a Pong from the {silent}",
        f"{pinger} pinged {pinged:.1f} s after the switch; nothing from the {silent} for "
        f"{gave_up - pinged:.1f} s; then the {pinger} sent a {how} "
        f"{gave_up:.1f} s after the switch",
        (life.ping_frame,) + ((frame,) if frame else ()), side=silent)]


def check_life(life: Lifetime, proxy_client: bool = False) -> list[Finding]:
    """The findings of one connection's end (none while it is open, or for a normal end);
    ``proxy_client``: its client is a proxy (a back leg, correlate.py), whose quiet end is its
    idle timeout as the server side's is."""
    if life.how == OPEN or not life.websocket:
        return []  # (an h2c or CONNECT tunnel: its end is recorded, not judged)
    frames = (life.end_frame,) if life.end_frame else ()
    keepalive = _keepalive(life)
    if life.how in (CLOSE_HANDSHAKE, CLOSE_FRAME):
        close_frames = (life.close_frame,) if life.close_frame else frames
        found = close_finding(life, close_frames)
        return keepalive + ([found] if found is not None else [])
    if keepalive:  # (its own cause: not an idle timeout, nor a close without a reason)
        return keepalive
    assert life.how in (FIN, RST)
    by_proxy = proxy_client and life.closed_by == "client"
    closer = "the proxy" if by_proxy else life.closed_by
    closer = f"{closer} {life.closer}" if life.closer else closer
    end = "reset" if life.how == RST else "FIN"
    # the server's side (the server, or an intermediary in front of it: what the client's
    # capture sees as the server), or a proxy on a back leg, closing a quiet connection
    if life.shut_down_by and life.shut_down_by == life.closed_by:
        # (an HTTP/2 connection shut down gracefully under the stream: its sender going
        # down, a restart or a deploy, however quiet the stream was before)
        return [Finding(
            "h2_shutdown_in_life", "a Close frame (1001, going away) before the shutdown",
            f"{closer} sent a GOAWAY (NO_ERROR), then a {end} {life.duration_s:.1f} s after "
            "the switch, without a Close frame", frames, side=life.closed_by)]
    if life.idle_before_end_s >= IDLE_MIN_S and (life.closed_by == "server" or by_proxy):
        idle = life.idle_before_end_s
        return [Finding(
            "idle_timeout_after_switch", "pings or data more often than the idle timeout",
            f"{closer} sent a {end} after {idle:.1f} s of silence, no Close frame "
            f"({life.duration_s:.1f} s after the switch); {culprit(idle)}",
            frames, side=life.closed_by)]
    return [Finding(
        "closed_without_close_frame", "a Close frame before the TCP close",
        f"{closer} sent a {end} {life.duration_s:.1f} s after the switch, "
        f"{life.idle_before_end_s:.1f} s after the last byte, without a Close frame",
        frames, side=life.closed_by)]
