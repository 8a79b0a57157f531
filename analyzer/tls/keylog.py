"""NSS key logs (the `SSLKEYLOGFILE` format, RFC 9850): secrets by client random, never shown.

One line per secret: `LABEL <client random, 64 hex digits> <secret, hex>`; `#` starts a
comment. Lines that do not fit are ignored and counted (a key log written by several processes
at once can hold torn lines). The `KeyStore` never shows a secret: its repr and str give counts
only, so a key store that ends up in a log line or a traceback leaks nothing.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable

# RFC 9850 §3 labels: TLS 1.2 (CLIENT_RANDOM: the 48-byte master secret) and TLS 1.3.
LABELS = frozenset({
    "CLIENT_RANDOM",
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EARLY_EXPORTER_SECRET",
    "EXPORTER_SECRET",
})
MAX_LINE = 1024  # the longest valid line is under 300 characters


class KeyStore:
    """Secrets of a run, looked up by client random. Fed lines or text; shows only counts."""

    __slots__ = ("_secrets", "lines", "ignored", "_partial", "wait", "embedded_only",
                 "embedded_from")

    def __init__(self, wait: float = 0.0) -> None:
        # Made for secrets a capture carries (a pcapng Decryption Secrets Block), with no
        # --keylog: a session missing from it needs --keylog, not "another" key log.
        self.embedded_only = False
        # The inputs (their places among the files read together) whose secrets it holds: a
        # session of another file read with them was in a capture that embedded none.
        self.embedded_from: set[int] = set()
        # Seconds a session waits for its secrets to appear (live capture following a key
        # log that is still being written); 0: the store is complete.
        self.wait = wait
        self._secrets: dict[bytes, dict[str, bytes]] = {}
        self.lines = 0  # secret lines kept
        self.ignored = 0  # lines that were neither a secret nor a comment nor blank
        self._partial = b""  # an unfinished last line of a growing file

    def __repr__(self) -> str:
        return (f"KeyStore({len(self._secrets)} client randoms, {self.lines} secrets, "
                f"{self.ignored} lines ignored)")

    __str__ = __repr__

    def __len__(self) -> int:
        return len(self._secrets)

    def __bool__(self) -> bool:
        return True  # an empty store is still a store (--keylog was given)

    def add_line(self, line: str) -> bool:
        """Keep the secret on one line; False (and counted) when the line is not one."""
        line = line.strip()
        if not line or line.startswith("#"):
            return False
        parts = line.split()
        if len(parts) != 3 or parts[0] not in LABELS or len(parts[1]) != 64 or len(line) > MAX_LINE:
            self.ignored += 1
            return False
        try:
            client_random = binascii.unhexlify(parts[1])
            secret = binascii.unhexlify(parts[2])
        except (binascii.Error, ValueError):
            self.ignored += 1
            return False
        if parts[0] == "CLIENT_RANDOM" and len(secret) != 48:
            self.ignored += 1
            return False
        self._secrets.setdefault(client_random, {})[parts[0]] = secret
        self.lines += 1
        return True

    def add_text(self, text: bytes | str) -> None:
        """Add a whole key log (or the next part of a growing one: an unfinished line waits)."""
        data = text.encode("utf-8", "replace") if isinstance(text, str) else text
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE:
            self._partial = b""
            self.ignored += 1
        self.add_lines(line.decode("ascii", "replace") for line in lines)

    def finish(self) -> None:
        """The file ended: its last line, even without a newline, counts."""
        if self._partial:
            self.add_line(self._partial.decode("ascii", "replace"))
            self._partial = b""

    def add_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.add_line(line)

    def secrets_for(self, client_random: bytes) -> dict[str, bytes] | None:
        """Every secret logged for the connection whose ClientHello carried ``client_random``."""
        return self._secrets.get(client_random)

    def __contains__(self, client_random: object) -> bool:
        return client_random in self._secrets


def load_keylog(data: bytes) -> KeyStore:
    store = KeyStore()
    store.add_text(data)
    store.finish()
    return store
