"""What the TLS stage reports of a session: the attempt of a session that broke at the TLS
layer, the `TlsInfo` every attempt of a TLS connection carries (decrypted ones too), and the
summary line of a session that could not be inspected.

A mixin of `TlsStage` (layer.py), which keeps the listener calls and the decisions; this part
only turns the session's facts into the report's values.
"""

from __future__ import annotations

from analyzer.exchange.handoff import MAX_LISTED_TLS_SESSIONS, RunContext
from analyzer.exchange.model import (
    NO_KEY,
    NOT_IN_EMBEDDED_KEYS,
    NOT_IN_KEY_LOG,
    Attempt,
    AttemptKind,
    CertificateInfo,
    Message,
    TlsAlert,
    TlsInfo,
    TlsSessionSummary,
)
from analyzer.exchange.tcplog import TcpLog
from analyzer.http.head import parse_response_head
from analyzer.http.start import find_head_end
from analyzer.tls.keylog import KeyStore
from analyzer.tls.names import version_name
from analyzer.tls.session import Decryption, TlsSession
from analyzer.tls.suites import suite_name

_KEY_STATE = {
    Decryption.NO_KEYS: "",
    Decryption.NO_KEY: "missing",
    Decryption.WAITING: "missing",
    Decryption.PENDING: "used",
    Decryption.DECRYPTED: "used",
    Decryption.FAILED: "used",
    Decryption.MISMATCH: "mismatch",
    Decryption.UNSUPPORTED: "unsupported",
}


class TlsReporting:
    """Mixin of TlsStage: the session's facts as attempts, `TlsInfo` and summary lines."""

    __slots__ = ("_counted",)  # the session was counted as not inspected

    # TlsStage's fields this part reads (declared in TlsStage.__slots__)
    _run: RunContext
    _tcp: TcpLog
    _session: TlsSession

    def _uninspected(self, why: str) -> None:
        session = self._session
        if why == NO_KEY and session.key_absent:
            # --keylog was given: asking for a key log again would not help; the user needs
            # the one written by the process that made this session. Keys embedded in the
            # capture only (no --keylog): --keylog with that process's key log; and where
            # they were embedded in another of the files read, this one's carried none.
            secrets = session.secrets
            if secrets is None or not secrets.embedded_only:
                why = NOT_IN_KEY_LOG
            elif self._embedded_here(secrets):
                why = NOT_IN_EMBEDDED_KEYS
        counters = self._run.counters
        counters.tls_uninspected += 1
        self._counted = True
        if len(counters.tls_uninspected_listed) >= MAX_LISTED_TLS_SESSIONS:
            return
        client = session.client_side if session.client_side is not None else 0
        hello = session.client_hello
        last = max(session.last_frame(0), session.last_frame(1))
        counters.tls_uninspected_listed.append(TlsSessionSummary(
            client=self._tcp.endpoint(client),
            server=self._tcp.endpoint(1 - client),
            sni=hello.sni if hello else "",
            alpn=session.alpn,
            alpn_offered=",".join(hello.alpn) if hello else "",
            version=version_name(session.version) if session.version else "",
            first_frame=self._session_first_frame(),
            last_frame=last,
            reason=why,
        ))

    def _embedded_here(self, secrets: KeyStore) -> bool:
        """Whether the session's own file carried some of the embedded ``secrets``."""
        source_of = self._run.source_of
        if source_of is None:  # one input: it carried them
            return True
        return source_of(self._session_first_frame()) in secrets.embedded_from

    def _session_first_frame(self) -> int:
        """The session's first frame: its ClientHello's, else its SYN's."""
        return self._session.client_hello_frame or self._first_frame()

    def _first_frame(self) -> int:
        syn = self._tcp.syn_seen
        return syn[0] if syn else 0


    def info(self, decrypted: bool) -> TlsInfo:
        session = self._session
        hello, server = session.client_hello, session.server_hello
        client = session.client_side if session.client_side is not None else 0
        names = {client: "client", 1 - client: "server"}
        alerts = [TlsAlert(names[seen.side], "fatal" if seen.alert.level == 2 else "warning",
                           seen.alert.name, seen.frame, seen.time) for seen in session.alerts]
        alerts += [TlsAlert(names[side], "encrypted", "", frame, time)
                   for side, frame, time in session.unreadable_alerts]
        alerts.sort(key=lambda alert: alert.frame)
        server_side = 1 - client
        answer = session.prefix(server_side) if session.problem_side == server_side else b""
        return TlsInfo(
            version=version_name(session.version) if server and not server.retry else "",
            cipher_suite=suite_name(server.suite) if server else "",
            sni=hello.sni if hello else "",
            alpn_offered=hello.alpn if hello else (),
            alpn=session.alpn,
            resumed=session.resumed,
            decrypted=decrypted,
            certificates=tuple(
                CertificateInfo(c.subject, c.issuer, c.names, c.not_before, c.not_after)
                for c in session.certificates),
            alerts=tuple(alerts),
            versions_offered=tuple(version_name(v) for v in (hello.versions if hello else ())
                                   if v & 0x0F0F != 0x0A0A),  # GREASE values (RFC 8701) left out
            retry=session.retry,
            client_hello_frame=session.client_hello_frame,
            client_hello_time=session.client_hello_time,
            server_hello_frame=session.server_hello_frame,
            server_hello_time=session.server_hello_time,
            server_flight_frame=session.server_flight_frame,
            certificate_request=session.certificate_request,
            client_certificate_empty=session.client_certificate_empty,
            client_finished=session.client_finished(),
            application_data=session.carried_application_data(),
            key=self._key_state(),
            key_frame=session.mismatch_frame,
            hole_side=names[session.handshake_hole[0]] if session.handshake_hole else "",
            hole_frame=session.handshake_hole[1] if session.handshake_hole else 0,
            hole_stop_frame=session.hole_stop_frame,
            stopped_after_unopened=session.hole_stop_cause == "decryption",
            early_data=session.early_data,
            server_answer=answer,
            problem=session.problem,
        )

    def _key_state(self) -> str:
        session = self._session
        if session.decryption is Decryption.NO_KEY and session.client_hello is not None \
                and not session.key_absent:
            return "present"  # in the log, but the handshake it needs was lost (a hole)
        if session.decryption is Decryption.NO_KEY and session.client_hello is None and (
                session.secrets is not None):
            # a ClientHello the capture cut (a snaplen) still shows its random, in its first
            # 43 bytes: record header, handshake header, version, random (RFC 8446 §4.1.2)
            side = session.client_side if session.client_side is not None else 0
            start = session.prefix(side)
            if len(start) >= 43 and start[0] == 0x16 and start[5] == 1 and (
                    start[11:43] in session.secrets):
                return "present"
        return _KEY_STATE[session.decryption]

    def _emit_tls(self, time: float, reason: str) -> None:
        session = self._session
        client = session.client_side if session.client_side is not None else 0
        self._run.emit(Attempt(
            kind=AttemptKind.TLS,
            client=self._tcp.endpoint(client),
            server=self._tcp.endpoint(1 - client),
            tcp=self._tcp.facts(client, time, reason),
            response=self._cleartext_answer(1 - client),
            tls=self.info(decrypted=session.decryption is Decryption.DECRYPTED),
        ))

    def _cleartext_answer(self, server: int) -> Message | None:
        """The HTTP response a cleartext server gave to a ClientHello (nginx, aiohttp: 400)."""
        session = self._session
        if session.problem_side != server:
            return None
        prefix = session.prefix(server)
        end = find_head_end(prefix)
        head = parse_response_head(prefix[:end]) if end is not None else None
        if head is None:
            return None
        frame, time = session.first_data(server)
        return Message(head, frame, frame, time, body_prefix=prefix[end:],
                       body_length=len(prefix) - (end or 0), body_complete=False)
