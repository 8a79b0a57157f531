"""The postmortem view of one attempt: header, ladder diagram, heads as sent, findings, who.

``render_detail`` is a pure function from a ``Diagnosis`` to text. Colour is a plain flag
(ANSI SGR codes written here); whether the reader's stdout can show it is the CLI's business.
Everything that came from the capture goes through ``Cleaner`` (analyzer/report/safe.py).
The HTML report (analyzer/report/html.py) draws the same ladder events, heads and findings.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.checks.catalogue import Finding, lookup
from analyzer.exchange.model import Attempt, Message, SeenFrame, TcpEvent, TlsInfo
from analyzer.http.message import RequestHead, ResponseHead
from analyzer.life.model import Lifetime
from analyzer.report.fields import iso_time, reason_text
from analyzer.report.safe import SECRET_HEADERS, URL_HEADERS, Cleaner, redact_target
from analyzer.verdict import Attribution, Diagnosis, Verdict
from analyzer.websocket.frames import Opcode, parse_close

LADDER_WIDTH = 58  # columns between the two lifelines
MAX_WS_FRAMES = 8  # WebSocket frames drawn after the switch; the rest are counted
BODY_LINES = 6  # lines of a response body shown
LINE_LIMIT = 200  # longest head or body line shown, in characters
_WRAP = 88

_SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
_VERDICT_COLOUR = {
    Verdict.SUCCEEDED: "green",
    Verdict.DECLINED: "yellow",
    Verdict.INCONCLUSIVE: "yellow",
}
_SEVERITY_COLOUR = {"error": "red", "warning": "yellow", "info": "cyan"}


@dataclass(frozen=True, slots=True)
class LadderEvent:
    """One row of the ladder: a packet (or message) going one way."""

    frame: int
    time: float
    from_client: bool
    label: str
    last_frame: int = 0  # when a message spans several frames


def render_detail(diagnosis: Diagnosis, *, show_secrets: bool = False,
                  color: bool = False) -> str:
    """The full postmortem of one attempt, as text."""
    paint = _Painter(color)
    clean = Cleaner.for_attempt(diagnosis.attempt, show_secrets)
    sections = [
        _header(diagnosis, clean, paint),
        _ladder(diagnosis.attempt, clean, paint),
        _tls_section(diagnosis.attempt, clean, paint),
        _life_section(diagnosis.lifetime, clean, paint),
        _heads(diagnosis.attempt, clean, paint),
        _findings(diagnosis.findings, clean, paint),
        _attribution(diagnosis.attribution, clean, paint),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


class _Painter:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        codes = ";".join(_SGR[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


# -- header ------------------------------------------------------------------------------------


def _header(d: Diagnosis, clean: Cleaner, paint: _Painter) -> str:
    a = d.attempt
    verdict = paint(d.verdict.value.upper(), "bold", _VERDICT_COLOUR.get(d.verdict, "red"))
    reason = clean.text(reason_text(d))
    if d.primary is not None and d.verdict is not Verdict.SUCCEEDED:
        reason = f"{d.primary.check}: {reason}"
    protocol = clean.text(d.facts.protocol) or "-"
    if a.transport == "h2":
        protocol += " over HTTP/2" + (f", stream {a.stream_id}" if a.stream_id is not None
                                      else " (no stream: the client's preface alone)")
    return paint(f"#{d.number}", "bold") + f" {verdict}  {reason}\n" + (
        f"   {a.client} → {a.server}  protocol {protocol}"
    )


def _life_section(life: Lifetime | None, clean: Cleaner, paint: _Painter) -> str:
    """How the connection lived after its first moments (analyzer/life), in one or two lines."""
    if life is None:
        return ""
    if not life.ended:
        end = "still open at the end of the capture"
    else:
        end = f"ended by the {life.closed_by} ({life.closer}) with {_HOW[life.how]}"
        if life.close_code is not None:
            end += f", Close {life.close_code}"
            if life.close_reason:
                end += f" {clean.text(life.close_reason)!r}"
        if life.close_frame:  # the Close's own frame and time, then the TCP end's frame
            end += (f" at frame {life.close_frame} ({life.close_after_s:.1f} s after the "
                    f"switch)")
            end += f", TCP end at frame {life.end_frame}" if life.end_frame else ""
        else:
            end += f" at frame {life.end_frame}" if life.end_frame else ""
    return (paint("Life", "bold") + f": {life.duration_s:.1f} s after the switch, {end}; "
            f"{life.idle_before_end_s:.1f} s of silence before the end\n"
            f"   bytes: client {life.client_bytes}, server {life.server_bytes}")


_HOW = {"close_handshake": "a Close handshake", "close_frame": "a Close frame never answered",
        "fin": "a FIN, no Close frame", "rst": "a reset, no Close frame", "open": "no end"}


# -- ladder ------------------------------------------------------------------------------------


def _ladder(a: Attempt, clean: Cleaner, paint: _Painter) -> str:
    events = ladder_events(a, clean)
    if not events:
        return "(no packets of this connection were seen)"
    start = ladder_start(a, events)
    client, server = f"client {a.client}", f"server {a.server}"
    gap = max(1, LADDER_WIDTH + 2 - len(client) - len(server))
    lines = [paint(f"{'ms':>10} {'frame':>7}  {client}{' ' * gap}{server}", "bold")]
    for e in events:
        frames = f"{e.frame}" if e.last_frame <= e.frame else f"{e.frame}-{e.last_frame}"
        lines.append(f"{(e.time - start) * 1000:>10.3f} {frames:>7}  "
                     + _arrow(e.label, e.from_client, paint))
    more = frames_not_drawn(a)
    if more:
        lines.append(f"{'':>19}{paint(f'… {more} more WebSocket frames', 'dim')}")
    if a.tcp.end_reason:
        lines.append(f"{'':>19}{paint('connection: ' + clean.text(a.tcp.end_reason), 'dim')}")
    return "\n".join(lines)


def _arrow(label: str, from_client: bool, paint: _Painter) -> str:
    room = LADDER_WIDTH - 8
    if len(label) > room:
        label = label[: room - 1] + "…"
    text = f" {label} "
    left = 3
    right = LADDER_WIDTH - left - len(text)
    if from_client:
        body = "-" * left + text + "-" * (right - 1) + ">"
    else:
        body = "<" + "-" * (left - 1) + text + "-" * right
    return "|" + paint(body, "cyan" if from_client else "yellow") + "|"


def ladder_start(a: Attempt, events: Sequence[LadderEvent]) -> float:
    """Time zero of the ladder: the SYN, else the first event drawn."""
    return a.tcp.syn.time if a.tcp.syn is not None else min(e.time for e in events)


def ladder_events(a: Attempt, clean: Cleaner) -> list[LadderEvent]:
    tcp = a.tcp
    events: list[LadderEvent] = []

    def add(event: TcpEvent | None, from_client: bool, label: str) -> None:
        if event is not None:
            if event.lost:  # the frame is the other side's, which acknowledged it
                label += " (lost; acknowledged here)"
            events.append(LadderEvent(event.frame, event.time, from_client, label))

    syn = "SYN" if tcp.syn_count <= 1 else f"SYN (sent {tcp.syn_count} times)"
    add(tcp.syn, True, syn)
    add(tcp.syn_ack, False, "SYN-ACK")
    if a.tls is not None:
        events.extend(_tls_events(a.tls, clean))
    h2 = a.transport == "h2"
    if a.request is not None:
        events.append(_message_event(a.request, True, clean, h2))
    for interim in a.interim:
        events.append(_message_event(interim, False, clean, h2))
    if a.response is not None:
        events.append(_message_event(a.response, False, clean, h2))
    first: list[LadderEvent] = []  # drawn first in their frame
    if a.h2 is not None:  # SETTINGS, DATA, RST_STREAM, GOAWAY, END_STREAM with their frames
        for n in a.h2.notes:
            event = LadderEvent(n.frame, n.time, n.side == "client", clean.text(n.label))
            # (the client's SETTINGS (the preface's) come before its first HEADERS in the
            # bytes: one segment often carries both)
            (first if n.side == "client" and n.label.startswith("SETTINGS") else events).append(
                event)
    if a.after is not None:
        for seen in a.after.frames[:MAX_WS_FRAMES]:
            events.append(LadderEvent(seen.frame, seen.time, seen.side == "client",
                                 _ws_label(seen, clean)))
    add(tcp.client_fin, True, "FIN")
    add(tcp.server_fin, False, "FIN")
    add(tcp.client_rst, True, "RST")
    add(tcp.server_rst, False, "RST")
    for hole in tcp.gaps:
        events.append(LadderEvent(hole.frame, hole.time, hole.side == "client",
                                  "[decryption stopped here]" if hole.cause == "decryption"
                                  else f"[snaplen cut {hole.length} bytes here]"
                                  if hole.cause == "snaplen"
                                  else f"[capture lost {hole.length} bytes here]"))
    if tcp.resent:  # copies sent again before an acknowledgement, within this attempt's span
        start = min((e.frame for e in first + events), default=0)
        stop = max((e.frame for e in first + events), default=0)
        for copy in tcp.resent:
            if start <= copy.frame <= stop:
                events.append(LadderEvent(copy.frame, copy.time, copy.side == "client",
                                          f"(sent again: {copy.length} bytes, not acked)"))
    # Stable: two events in one frame (a response and its FIN) keep the order above.
    return sorted(first + events, key=lambda e: (e.frame, e.time))


def _tls_events(tls: TlsInfo, clean: Cleaner) -> list[LadderEvent]:
    """The TLS handshake's lines: ClientHello, ServerHello, alerts (analyzer/tls)."""
    events = []
    if tls.client_hello_frame:
        offered = f", ALPN {','.join(clean.texts(tls.alpn_offered))}" if tls.alpn_offered else ""
        sni = f" SNI {clean.text(tls.sni)}" if tls.sni else " (no SNI)"
        events.append(LadderEvent(tls.client_hello_frame, tls.client_hello_time, True,
                             f"TLS ClientHello{sni}{offered}"))
    if tls.server_hello_frame:
        chosen = f", ALPN {clean.text(tls.alpn)}" if tls.alpn else ""
        label = "HelloRetryRequest, then ServerHello" if tls.retry else "ServerHello"
        events.append(LadderEvent(tls.server_hello_frame, tls.server_hello_time, False,
                             f"TLS {label} {tls.version} {tls.cipher_suite}{chosen}"))
    for alert in tls.alerts:
        label = (f"TLS alert {alert.level} {alert.description}" if alert.description
                 else "TLS alert (encrypted)")
        events.append(LadderEvent(alert.frame, alert.time, alert.side == "client", label))
    return events


def _tls_section(a: Attempt, clean: Cleaner, paint: _Painter) -> str:
    tls = a.tls
    if tls is None:
        return ""
    lines = [paint("TLS:", "bold")]
    state = "decrypted with the key log" if tls.decrypted else {
        "": "not decrypted (no --keylog)", "missing": "not decrypted (no key in the key log)",
        "present": "not decrypted (its key is in the key log, but the capture lost part of "
                   "the handshake)",
        "mismatch": "the logged key does not decrypt it",
        "unsupported": "not decrypted (cipher suite not supported)",
    }.get(tls.key, "not decrypted")
    lines.append(f"  {tls.version or 'no version agreed'}"
                 + (f", {tls.cipher_suite}" if tls.cipher_suite else "")
                 + (", resumed" if tls.resumed else ", resumption unknown" if tls.resumed is None
                    else "") + f"; {state}")
    if tls.hole_stop_frame and tls.stopped_after_unopened:
        lines.append(f"  decryption stopped at frame {tls.hole_stop_frame}: it did not "
                     "authenticate after large records counted as data unopened (one was "
                     "likely a padded KeyUpdate)")
    elif tls.hole_stop_frame:
        lines.append(f"  decryption stopped at frame {tls.hole_stop_frame}: nothing after a "
                     "capture hole authenticated")
    if tls.decrypted and tls.hole_side and not tls.server_hello_frame:
        # (tls/keying.py `server_hello_lost`: the records, not a guess, gave the suite)
        lines.append("  the capture lost the ServerHello" + (
            f" (hole at frame {tls.hole_frame})" if tls.hole_frame else "")
            + ": the suite is the offered one whose keys authenticated the records")
    if tls.versions_offered:
        lines.append(f"  client offered: {', '.join(tls.versions_offered)}")
    for index, cert in enumerate(tls.certificates[:3]):
        role = "certificate" if index == 0 else "  issued by"
        lines.append(f"  {role}: {clean.text(cert.subject)} (issuer {clean.text(cert.issuer)});"
                     f" names {', '.join(clean.texts(cert.san_names)) or '-'};"
                     f" valid {iso_time(cert.not_before)[:10]} to {iso_time(cert.not_after)[:10]}")
    if tls.certificate_request:
        lines.append("  the server asked for a client certificate"
                     + ("; the client sent none" if tls.client_certificate_empty else ""))
    return "\n".join(lines)


def _message_event(message: Message, from_client: bool, clean: Cleaner,
                   h2: bool = False) -> LadderEvent:
    head = message.head
    if h2 and isinstance(head, RequestHead):  # an HTTP/2 HEADERS frame (and CONTINUATIONs)
        protocol = head.headers.get(":protocol")
        label = f"HEADERS {clean.text(head.method)} {clean.target(head.target)}"
        label += f" :protocol {clean.text(protocol)}" if protocol else ""
    elif h2 and isinstance(head, ResponseHead):
        label = f"HEADERS :status {head.status if head.status else '?'}"
    elif isinstance(head, RequestHead):
        label = f"{clean.text(head.method)} {clean.target(head.target)} {clean.text(head.version)}"
    else:
        label = f"{head.status} {clean.text(head.reason)}"
    if not isinstance(head, RequestHead) and message.body_length:
        label += f" (+{message.body_length} body bytes)"
    return LadderEvent(message.first_frame, message.time, from_client, label, message.last_frame)


def _ws_label(seen: SeenFrame, clean: Cleaner) -> str:
    ws = seen.ws
    try:
        name = Opcode(ws.opcode).name.capitalize()
    except ValueError:
        name = f"opcode 0x{ws.opcode:x}"
    parts = [f"{name} {ws.length} B", "masked" if ws.masked else "unmasked"]
    if not ws.fin:
        parts.append("FIN=0")
    if ws.rsv:
        parts.append(f"RSV={ws.rsv:03b}")
    label = ", ".join(parts)
    if ws.opcode == Opcode.CLOSE:
        close = parse_close(ws.payload_prefix)
        if close.code is None:
            label = f"Close (no code), {parts[1]}"
        else:
            reason = f" '{clean.text(close.reason)}'" if close.reason else ""
            label = f"Close {close.code}{reason}, {parts[1]}"
    return label


def frames_not_drawn(a: Attempt) -> int:
    return max(0, len(a.after.frames) - MAX_WS_FRAMES) if a.after is not None else 0


# -- heads -------------------------------------------------------------------------------------


def _heads(a: Attempt, clean: Cleaner, paint: _Painter) -> str:
    parts = []
    for title, message in messages_of(a):
        frames = (f"frame {message.first_frame}" if message.last_frame <= message.first_frame
                  else f"frames {message.first_frame}-{message.last_frame}")
        lines = [paint(f"{title} ({frames}, {len(message.head.raw)} bytes of head):", "bold")]
        body = head_lines(message.head, clean) + body_lines(message, clean)
        lines += [f"  {line}" if line else "" for line in body]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def messages_of(a: Attempt) -> list[tuple[str, Message]]:
    """The heads shown, each with its title, in the order they were sent."""
    messages: list[tuple[str, Message]] = []
    if a.request is not None:
        messages.append(("Request", a.request))
    messages += [("Interim response", m) for m in a.interim]
    if a.response is not None:
        messages.append(("Response", a.response))
    return messages


def head_lines(head: RequestHead | ResponseHead, clean: Cleaner) -> list[str]:
    # Split on LF only: str.splitlines() also breaks on \x1c-\x1e and \x85, which must stay
    # visible (escaped) inside the value that carried them.
    raw = head.raw.decode("latin-1").split("\n")
    lines: list[str] = []
    secret = ""  # the field an obs-fold continuation line belongs to
    for number, line in enumerate(raw):
        line = line.removesuffix("\r")
        if number == 0:
            if isinstance(head, RequestHead) and head.target and not clean.show_secrets:
                line = line.replace(head.target, redact_target(head.target), 1)
            lines.append(clean.text(line))
            continue
        if not line:
            continue
        if line[0] in " \t":  # obs-fold: part of the previous field's value
            lines.append(clean.header(secret, line) if secret else clean.text(line))
            continue
        name, colon, value = line.partition(":")
        if not colon:
            # not a field (a malformed line, shown as evidence), but one that begins with a
            # credential field's name still carries its value: "Authorization Bearer <token>"
            # (a line of whitespace alone, \x0b or \x1c say, splits into no word at all)
            words = line.split(None, 1)
            if len(words) == 2 and words[0].lower() in SECRET_HEADERS:
                lines.append(clean.text(line[: len(line) - len(words[1])])
                             + clean.header(words[0], words[1]))
            else:
                lines.append(clean.text(line))
            continue
        lowered = name.strip().lower()
        secret = name if lowered in SECRET_HEADERS or lowered in URL_HEADERS else ""
        lines.append(clean.text(name) + ":" + _value(name, value, clean))
    return [_clip(line) for line in lines]


def _value(name: str, value: str, clean: Cleaner) -> str:
    stripped = value.strip(" \t")
    lead = value[: len(value) - len(value.lstrip(" \t"))]
    return clean.text(lead) + clean.header(name, stripped)


def body_lines(message: Message, clean: Cleaner) -> list[str]:
    prefix = message.body_prefix
    if not prefix:
        return []
    text = prefix.decode("utf-8", errors="replace")
    odd = sum(1 for c in text if c == "\ufffd" or (ord(c) < 0x20 and c not in "\r\n\t"))
    more = message.body_length > len(prefix) or not message.body_complete
    if odd > len(text) // 10:
        return ["", f"(body: {message.body_length} bytes, binary)"]
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    shown = [_clip(clean.text(line)) for line in lines[:BODY_LINES]]
    if len(lines) > BODY_LINES or more:
        shown.append(f"… (body: {message.body_length} bytes)")
    return ["", *shown]


def _clip(line: str) -> str:
    return line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - 1] + "…"


# -- findings ----------------------------------------------------------------------------------


def _findings(findings: Sequence[Finding], clean: Cleaner, paint: _Painter) -> str:
    if not findings:
        return paint("Findings:", "bold") + " none"
    lines = [paint("Findings:", "bold")]
    wrap = textwrap.TextWrapper(width=_WRAP, initial_indent="    fix:      ",
                                subsequent_indent=" " * 14)
    for f in findings:
        check = lookup(f.check)
        severity = check.severity.value
        lines.append(f"  {paint(severity.upper(), 'bold', _SEVERITY_COLOUR[severity])} "
                     f"{paint(check.id, 'bold')} ({check.rfc}): {check.title}")
        if f.expected:
            lines.append(f"    expected: {clean.text(f.expected)}")
        if f.found:
            lines.append(f"    found:    {clean.text(f.found)}")
        if f.frames:
            lines.append("    frames:   " + ", ".join(str(n) for n in f.frames))
        lines.append(wrap.fill(check.fix))
    return "\n".join(lines)


# -- attribution -------------------------------------------------------------------------------


def _attribution(who: Attribution, clean: Cleaner, paint: _Painter) -> str:
    lines: list[str] = []
    if who.server:
        confidence = f" (confidence {who.confidence})" if who.confidence else ""
        lines.append(f"  answered by: {clean.text(who.server)}{confidence}")
    lines += [f"    evidence: {clean.text(e)}" for e in who.evidence]
    if who.server_log:
        lines.append(f"  server log (most likely): {clean.text(who.server_log)}")
    if who.client:
        lines.append(f"  client: {clean.text(who.client)}")
    if who.client_errors:
        lines.append("  what clients print:")
        lines += [f"    {clean.text(e)}" for e in who.client_errors]
    if not lines:
        return ""
    return "\n".join([paint("Attribution:", "bold"), *lines])
