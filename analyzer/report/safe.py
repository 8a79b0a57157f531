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
  nonce, and needed to judge ``Sec-WebSocket-Accept``) and is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from analyzer.exchange.model import Attempt

REDACTED = "[redacted]"

# Header fields whose values are credentials. The auth scheme and cookie names are kept: they
# say *what kind* of credential was sent, which is often the diagnosis ("Basic" to a Bearer
# endpoint, no session cookie), and are not secret themselves.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)
# Header fields holding a URL whose query may carry a token.
URL_HEADERS = frozenset({"location", "content-location", "referer"})
# Query parameters that carry credentials, compared case-insensitively.
SECRET_PARAMS = frozenset(
    {"token", "access_token", "auth", "key", "apikey", "api_key", "password", "secret", "sig",
     "signature", "jwt", "session"}
)
# Free text (finding details, body texts) is scrubbed of known secret values this long or
# longer; shorter ones (a cookie "lang=en") would hit unrelated text.
_MIN_SCRUB = 6

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# name=value inside a query; in free text quoting a target, a quote or ')' also ends the value.
_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s?]+)=(?P<value>[^&;#\s]*)")
_PARAM_IN_TEXT = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s?]+)=(?P<value>[^&;#\s'\")]*)")
# user:password@ in an absolute-form target or a URL (RFC 3986 §3.2.1 deprecates it, clients
# still send it).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/@\s]*:[^/@\s]*)@")
_CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def neutralise(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\x1b``)."""
    if text.isascii() and text.isprintable():  # the usual case: nothing in _UNSAFE
        return text
    return _UNSAFE.sub(_escape, text)


def csv_cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP "CSV injection")."""
    return "'" + text if text.startswith(_CSV_FORMULA) else text


def _redact_param(match: re.Match[str]) -> str:
    name = match.group("name")
    if name.lower() not in SECRET_PARAMS or not match.group("value"):
        return match.group()
    return f"{match.group('lead')}{name}={REDACTED}"


def _redact_params(text: str, pattern: re.Pattern[str] = _PARAM) -> str:
    # Most texts (reasons, details, plain paths) have no "=" or no "@", which both patterns
    # need: skip the scans then (this function was 2.6 % of a big `read`).
    if "=" in text:
        text = pattern.sub(_redact_param, text)
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    return text


def redact_target(target: str) -> str:
    """A request target (or URL) with credential query parameters and userinfo redacted."""
    return _redact_params(target)


def redact_header(name: str, value: str) -> str:
    """A header value as it may be shown: credentials replaced, what kind of credential kept."""
    lowered = name.strip().lower()
    if lowered in URL_HEADERS:
        return redact_target(value)
    if lowered not in SECRET_HEADERS or not value:
        return value
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


def secret_values(attempt: Attempt) -> tuple[str, ...]:
    """The credential strings an attempt carried, to scrub from free text that quotes them."""
    values: list[str] = []
    heads = [m.head for m in (attempt.request, attempt.response, *attempt.interim) if m]
    for head in heads:
        for field in head.headers.fields:
            lowered = field.name.lower()
            if lowered not in SECRET_HEADERS:
                continue  # the usual field: one test instead of three
            if lowered in ("authorization", "proxy-authorization"):
                scheme, _, credentials = field.value.partition(" ")
                values += [field.value, credentials.strip()]
            elif lowered in ("cookie", "set-cookie"):
                pairs = field.value.split(";")
                if lowered == "set-cookie":
                    pairs = pairs[:1]
                values += [p.partition("=")[2].strip() for p in pairs]
            else:
                values.append(field.value)
    request = attempt.request_head
    if request is not None and "=" in request.target:  # no parameter can match without one
        for match in _PARAM.finditer(request.target):
            if match.group("name").lower() in SECRET_PARAMS:
                values.append(match.group("value"))
    # Longest first, so a whole value is replaced before a part of it.
    kept = {v for v in values if len(v) >= _MIN_SCRUB}
    return tuple(sorted(kept, key=lambda v: (-len(v), v)))


@dataclass(frozen=True, slots=True)
class Cleaner:
    """Makes one attempt's capture-derived strings safe to print.

    ``show_secrets`` turns redaction off; neutralising is never turned off.
    """

    show_secrets: bool = False
    secrets: tuple[str, ...] = ()

    @classmethod
    def for_attempt(cls, attempt: Attempt, show_secrets: bool = False) -> Cleaner:
        return cls(show_secrets, () if show_secrets else secret_values(attempt))

    def text(self, text: str) -> str:
        """Free text from the capture (a reason, a finding's detail, a body line)."""
        if not self.show_secrets:
            for secret in self.secrets:  # _scrub, inline: a report cleans a dozen texts a line
                text = text.replace(secret, REDACTED)
            text = _redact_params(text, _PARAM_IN_TEXT)
        return neutralise(text)

    def target(self, target: str) -> str:
        return neutralise(target if self.show_secrets else redact_target(target))

    def header(self, name: str, value: str) -> str:
        return neutralise(value if self.show_secrets else self._scrub(redact_header(name, value)))

    def texts(self, texts: Iterable[str]) -> list[str]:
        return [self.text(t) for t in texts]

    def _scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text
