"""Making capture-derived text safe to print: neutralised controls, redacted secrets, CSV cells.

Everything a report shows that came from the wire (header values, paths, reasons, close
reasons, body texts) passes through here, in every format. Two separate concerns:

* **Neutralising**: a capture is attacker-controlled input. A header value holding
  ``ESC ] 8 ;;`` or ``ESC [ 2 J`` would drive the reader's terminal; a BEL rings it; a CR
  overwrites the line already printed. C0 and C1 controls, DEL, the Unicode line/paragraph
  separators and the bidirectional overrides are written as visible escapes (``\\x1b``,
  ``\\u202e``); printable Unicode is kept as is.
* **Redacting**: credentials in a capture (Authorization, cookies, ``?token=`` in a URL) must
  not end up in a ticket or a chat because someone pasted a report. They are replaced by
  ``[redacted]`` unless the user asks for them. ``Sec-WebSocket-Key`` is not a secret (it is a
  nonce, and needed to judge ``Sec-WebSocket-Accept``) and is kept. There is one redaction
  pass, ``_redact``: a ``Cleaner`` adds an attempt's own secret values to it, and text that
  belongs to no attempt (summary lines, warnings, errors) takes it through ``safe_text``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from analyzer.exchange.model import Attempt
from analyzer.http.message import RequestHead
from analyzer.remembered import Remembered

REDACTED = "[redacted]"

# Header fields whose values are credentials. The auth scheme and cookie names are kept: they
# say *what kind* of credential was sent, which is often the diagnosis ("Basic" to a Bearer
# endpoint, no session cookie), and are not secret themselves. X-Amz-Security-Token is the
# session token of temporary AWS credentials (SigV4 sends it as a header or a query parameter).
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token",
     "x-amz-security-token"}
)
# Header fields holding a URL whose query may carry a token.
URL_HEADERS = frozenset({"location", "content-location", "referer"})
# Query (or fragment) parameters that carry credentials, compared case-insensitively after
# percent-decoding the name (``%74oken`` is ``token`` to the server). OAuth 2.0 returns tokens
# in the fragment (RFC 6749 §4.2.2) and OpenID Connect adds ``id_token``; a presigned S3 URL
# carries ``X-Amz-Signature`` and, with temporary credentials, ``X-Amz-Security-Token``.
SECRET_PARAMS = frozenset(
    {"token", "access_token", "id_token", "refresh_token", "auth", "key", "apikey", "api_key",
     "password", "passwd", "secret", "client_secret", "sig", "signature", "jwt", "session",
     "x-amz-security-token", "x-amz-signature", "x-goog-signature",
     # login sessions carried in the URL when cookies are off: Java servlets' path parameter
     # ";jsessionid=" (URL rewriting), PHP's "PHPSESSID", and the usual names: whoever holds
     # one is logged in. (Socket.IO's "sid" stays: an Engine.IO transport session, the value
     # a user follows across requests to see a sticky-session failure.)
     "jsessionid", "phpsessid", "sessionid", "session_id"}
)
# Where an attempt's secret values come from, to scrub them from free text that quotes them.
_SECRET_SOURCES = SECRET_HEADERS | URL_HEADERS | {"sec-websocket-protocol"}
# Free text (finding details, body texts) is scrubbed of known secret values this long or
# longer; shorter ones (a cookie "lang=en") would hit unrelated text.
_MIN_SCRUB = 6

# Surrogates (U+D800-DFFF) come from file names that are not UTF-8 (Python's surrogateescape):
# printed raw they would end the report with a UnicodeEncodeError.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# name=value inside a query or a fragment; in free text quoting a target, a quote or ')' also
# ends the value.
_PARAM = re.compile(r"(?P<lead>[?&;#])(?P<name>[^=&;#\s?]+)=(?P<value>[^&;#\s]*)")
_PARAM_IN_TEXT = re.compile(r"(?P<lead>[?&;#])(?P<name>[^=&;#\s?]+)=(?P<value>[^&;#\s'\")]*)")
# userinfo in a URL (RFC 3986 §3.2.1 deprecates "user:password@", clients still send it, and
# "https://TOKEN@host" puts a token in the user name): everything between "//" and "@".
_USERINFO = re.compile(r"(?P<scheme>(?:[A-Za-z][A-Za-z0-9+.-]*:)?//)(?P<info>[^/@\s?#]+)@")
# Kubernetes carries a bearer token in Sec-WebSocket-Protocol as one subprotocol,
# "base64url.bearer.authorization.k8s.io.<token>" (browsers cannot set Authorization on a
# WebSocket): only the token goes, the subprotocol names stay readable evidence.
_K8S_BEARER = re.compile(r"(?P<name>base64url\.bearer\.authorization\.k8s\.io\.)[^\s,'\"()]+",
                         re.IGNORECASE)
# A JSON Web Token (RFC 7519 §3: three base64url parts, the first a JSON object, so "eyJ")
# wherever it appears: in a subprotocol, a body, a header we do not know.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def neutralise(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\x1b``), and
    UTF-8 from the wire shown as the characters it encodes (see `_as_utf8`)."""
    if text.isascii() and text.isprintable():  # the usual case: nothing in _UNSAFE
        return text
    return _UNSAFE.sub(_escape, _as_utf8(text))


def _as_utf8(text: str) -> str:
    """Wire bytes are decoded one character per byte (latin-1) so that none is lost; when
    those bytes are valid UTF-8 (a path "/café", a header in Japanese) they are shown as the
    characters they encode. Anything else (real latin-1, broken UTF-8) stays as it was; what
    the decoding gives is escaped like the rest (U+202E from UTF-8 is still an override)."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


# What Markdown (CommonMark, GitHub) would turn into markup: inline HTML, autolinks and
# entities ('<', '>', '&'), code spans, '|' (a new table cell), images and links ("![x](" and
# "](": "![t](https://tracker/pixel)" fetches when the report is viewed), and a backslash
# before punctuation (it would undo the escape that follows). A backslash makes each literal;
# other text, "[redacted]" and the "\x1b" escapes included, stays as it reads.
_MARKDOWN = re.compile(r"\\(?=[!-/:-@\[-`{-~])|[`<>&|]|(?<=!)\[|\](?=[(\[])")


def markdown_text(text: str) -> str:
    """Text for a Markdown document: the characters Markdown would interpret, escaped."""
    return _MARKDOWN.sub(lambda m: "\\" + m.group(), text)


def csv_cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP "CSV injection")."""
    return "'" + text if text.startswith(_CSV_FORMULA) else text


def is_secret_param(name: str) -> bool:
    """Whether a query parameter of this name carries a credential (percent-encoding undone,
    up to three times: ``%2574oken`` is still ``token`` to a server that decodes twice)."""
    lowered = name.lower()
    for _ in range(3):
        if lowered in SECRET_PARAMS:
            return True
        if "%" not in lowered:
            return False
        lowered = unquote(lowered).lower()
    return lowered in SECRET_PARAMS


def _redact_param(match: re.Match[str]) -> str:
    name = match.group("name")
    if not match.group("value") or not is_secret_param(name):
        return match.group()
    return f"{match.group('lead')}{name}={REDACTED}"


def _redact(text: str, pattern: re.Pattern[str] = _PARAM_IN_TEXT) -> str:
    """The one redaction pass over text: every known shape of credential, wherever it is.

    Each shape needs a character most texts (reasons, details, plain paths) lack, so its scan
    is skipped then (this function was 2.6 % of a big `read`).
    """
    if "=" in text:
        text = pattern.sub(_redact_param, text)
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    if "8s" in text or "8S" in text:
        text = _K8S_BEARER.sub(lambda m: m.group("name") + REDACTED, text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    return text


def redact_text(text: str) -> str:
    """Free text (a reason, a summary line, a warning) with credentials redacted."""
    return _redact(text)


def redact_target(target: str) -> str:
    """A request target (or URL, or a request line) with credential parameters, userinfo and
    tokens redacted. A parameter's value runs to the next '&', ';', '#' or space."""
    return _redact(target, _PARAM)


def safe_text(text: str, show_secrets: bool = False) -> str:
    """Text from the capture that belongs to no one attempt (a summary line, a warning, an
    error): redacted unless ``show_secrets``, always neutralised."""
    return neutralise(text if show_secrets else _redact(text))


def safe_target(target: str, show_secrets: bool = False) -> str:
    """A request line or URL from the capture, as `safe_text` (values end only at a space)."""
    return neutralise(target if show_secrets else _redact(target, _PARAM))


def redact_header(name: str, value: str) -> str:
    """A header value as it may be shown: credentials replaced, what kind of credential kept."""
    lowered = name.strip().lower()
    if lowered in URL_HEADERS:
        return redact_target(value)
    if lowered not in SECRET_HEADERS or not value:
        return _redact(value)
    if lowered in ("authorization", "proxy-authorization"):
        scheme, _, credentials = value.partition(" ")
        return f"{scheme} {REDACTED}" if credentials.strip() else REDACTED
    if lowered == "cookie":
        return "; ".join(_cookie_pair(pair) for pair in value.split(";"))
    if lowered == "set-cookie":
        first, sep, attributes = value.partition(";")
        return _cookie_pair(first) + sep + attributes
    return REDACTED


def _cookie_pair(pair: str) -> str:
    name, sep, _ = pair.strip().partition("=")
    return f"{name}={REDACTED}" if sep else REDACTED


def _url_secrets(url: str) -> list[str]:
    """The credential values in a URL: secret parameters' values and the userinfo."""
    values = []
    if "=" in url:  # no parameter can match without one
        values += [m.group("value") for m in _PARAM.finditer(url)
                   if is_secret_param(m.group("name"))]
    if "@" in url:
        for m in _USERINFO.finditer(url):
            info = m.group("info")
            values += [info, info.partition(":")[2]]
    return values


def secret_values(attempt: Attempt) -> tuple[str, ...]:
    """The credential strings an attempt carried, to scrub from free text that quotes them."""
    values: list[str] = []
    # (a loop over the messages, not a list of their heads first: every JSONL line asks)
    for message in (attempt.request, attempt.response, *attempt.interim):
        if message is None:
            continue
        headers = message.head.headers
        if _SECRET_SOURCES.isdisjoint(headers.names()):
            continue  # the usual head: no field to look at
        for field in headers.fields:
            lowered = field.name.lower()
            if lowered not in _SECRET_SOURCES:
                continue  # the usual field: one test instead of several
            if lowered in ("authorization", "proxy-authorization"):
                # the credentials after the scheme, whatever blank follows it (a tab too)
                scheme_and_credentials = field.value.split(None, 1)
                values.append(field.value)
                if len(scheme_and_credentials) == 2:
                    values.append(scheme_and_credentials[1].strip())
            elif lowered in ("cookie", "set-cookie"):
                pairs = field.value.split(";")
                if lowered == "set-cookie":
                    pairs = pairs[:1]
                for pair in pairs:
                    name, equals, value = pair.partition("=")
                    # a cookie without a name is all value (RFC 6265 §5.2, as redact_header
                    # hides it), and a cookie-value may be quoted (§4.1.1): a server
                    # echoing it quotes what is inside
                    value = (value if equals else name).strip()
                    values += [value, value.strip('"')]
            elif lowered in URL_HEADERS:
                values += _url_secrets(field.value)
            elif lowered == "sec-websocket-protocol":
                values += [m.group()[len(m.group("name")):]
                           for m in _K8S_BEARER.finditer(field.value)]
            else:
                values.append(field.value)
    request = attempt.request
    # (`attempt.request_head` without the property's call)
    head = request.head if request is not None else None
    if isinstance(head, RequestHead):
        target = head.target
        if "=" in target or "@" in target:  # (what _url_secrets needs to find anything)
            values += _url_secrets(target)
    if not values:
        return ()  # the usual attempt
    # Longest first, so a whole value is replaced before a part of it.
    kept = {v for v in values if len(v) >= _MIN_SCRUB}
    return tuple(sorted(kept, key=lambda v: (-len(v), v)))


# `Cleaner.text` of an attempt without secret values, by text: a JSONL line cleans a dozen
# texts, most of them repeated across attempts (methods, paths, hosts, reasons, the findings'
# expectations); a look-up is ≈ 1/4 of the redaction and neutralising passes. Bounded.
_cleaned: Remembered[str, str] = Remembered()
# `Cleaner.target`'s, likewise, for targets of at most 512 characters:
_targets: Remembered[str, str] = Remembered(longest=512)


@dataclass(frozen=True, slots=True)
class Cleaner:
    """Makes one attempt's capture-derived strings safe to print.

    ``show_secrets`` turns redaction off; neutralising is never turned off.
    """

    show_secrets: bool = False
    secrets: tuple[str, ...] = ()

    @classmethod
    def for_attempt(cls, attempt: Attempt, show_secrets: bool = False) -> Cleaner:
        if show_secrets:
            return _SHOWING
        secrets = secret_values(attempt)
        # the usual attempt carries no secret: one Cleaner serves them all (it is frozen)
        return cls(False, secrets) if secrets else _PLAIN

    def text(self, text: str) -> str:
        """Free text from the capture (a reason, a finding's detail, a body line)."""
        if not self.show_secrets:
            if not self.secrets:  # the usual attempt: a pure function of the text, remembered
                cleaned = _cleaned.get(text)
                if cleaned is None:
                    cleaned = neutralise(_redact(text))
                    _cleaned.keep(text, cleaned, len(cleaned))
                return cleaned
            for secret in self.secrets:  # _scrub, inline: a report cleans a dozen texts a line
                text = text.replace(secret, REDACTED)
            text = _redact(text)
        return neutralise(text)

    def text_plain(self, text: str) -> str:
        """`text` without the remembered results (its plain twin: tests/test_safe_output.py)."""
        if not self.show_secrets:
            text = _redact(self._scrub(text))
        return neutralise(text)

    def target(self, target: str) -> str:
        """A request target; its secrets are redacted by shape (the attempt's own values are
        not needed), so the result is remembered like `text`'s (paths repeat)."""
        if self.show_secrets:
            return neutralise(target)
        cleaned = _targets.get(target)
        if cleaned is None:
            cleaned = neutralise(redact_target(target))
            _targets.keep(target, cleaned, len(target))  # a hostile head's long one: not kept
        return cleaned

    def target_plain(self, target: str) -> str:
        """`target` without the remembered results (its plain twin: tests/test_safe_output.py)."""
        return neutralise(target if self.show_secrets else redact_target(target))

    def header(self, name: str, value: str) -> str:
        return neutralise(value if self.show_secrets else self._scrub(redact_header(name, value)))

    def texts(self, texts: Iterable[str]) -> list[str]:
        return [self.text(t) for t in texts]

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


_PLAIN = Cleaner()  # `Cleaner.for_attempt` of an attempt without secret values
_SHOWING = Cleaner(show_secrets=True)  # and of every attempt with --show-secrets
