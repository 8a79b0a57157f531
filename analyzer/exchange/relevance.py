"""Decides which HTTP exchanges are upgrade attempts (listed) and which are ordinary (counted)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from analyzer.exchange.model import Attempt, Promotion
from analyzer.http.message import RequestHead, ResponseHead
from analyzer.remembered import digest_key

# Request fields that only make sense as part of an upgrade offer: a request carrying one of them
# without `Upgrade` is an attempt whose offer was damaged on the way (a proxy stripped it).
OFFER_FIELDS = (
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "http2-settings",
)

# Words servers put in the status line or body of a rejected WebSocket handshake
# (see docs/architecture.md, "relevance"): enough to list a plain GET that a WebSocket
# endpoint refused, which is the most common failure of all.
_REJECTION_HINTS = (
    b"websocket",
    b"upgrade",
    b"sec-websocket",
)


def request_offers_upgrade(head: RequestHead) -> bool:
    """True when the request offers (or tried to offer) a protocol switch or opens a tunnel."""
    headers = head.headers
    if head.method.upper() == "CONNECT":
        return True
    # the names present (lowercased) against the offer fields, in one C-level walk
    if not headers.names().isdisjoint(OFFER_FIELDS):
        return True
    return "upgrade" in headers.tokens("connection")


def response_talks_about_upgrade(head: ResponseHead, body_prefix: bytes = b"") -> bool:
    """True when the response switches, demands a switch, or rejects a handshake by its words."""
    if head.status in (101, 426):
        return True
    headers = head.headers
    if head.status >= 400 and (
        headers.has("sec-websocket-version") or headers.has("sec-websocket-accept")
    ):
        return True
    if head.status >= 400:
        text = (head.reason.encode("latin-1", "replace") + b" " + body_prefix[:1024]).lower()
        return any(hint in text for hint in _REJECTION_HINTS)
    return False


def is_upgrade_attempt(
    request_offers: bool, response: ResponseHead | None, body_prefix: bytes = b"",
    request: RequestHead | None = None,
) -> bool:
    """An exchange is an upgrade attempt when its request offers an upgrade
    (`request_offers_upgrade`, which the tracker decides once, when the request is parsed) or
    its response talks about one, unless the request was a browser's fetch of a subresource;
    any other is ordinary HTTP, only counted."""
    return request_offers or (
        response is not None and response_talks_about_upgrade(response, body_prefix)
        and not (request is not None and fetches_subresource(request))
    )


# What a browser's fetch is for (Fetch's Sec-Fetch-Dest) when it loads a part of a page by
# itself: its favicon, an image, a script. A WebSocket-only server answers those 426 too
# (Chromium's favicon over HTTP/2 in the sweep of the thirtieth session), which says nothing
# of the page's WebSockets (a WebSocket's is "websocket"; an address bar's "document").
_SUBRESOURCES = frozenset({"image", "script", "style", "font", "manifest", "audio", "video",
                           "track", "object", "embed", "worker", "sharedworker",
                           "serviceworker", "paintworklet", "audioworklet", "xslt"})


def fetches_subresource(head: RequestHead) -> bool:
    destination = head.headers.get("sec-fetch-dest")
    return destination is not None and destination.strip().lower() in _SUBRESOURCES


# --- plain requests to WebSocket endpoints ---------------------------------------------------
# A plain `GET /ws` (Postman in HTTP mode, a browser address bar, a health check) answered 404 by
# uvicorn/starlette or 400 by Flask-Sock says nothing about upgrading: neither side mentions it.
# It is still a failed WebSocket attempt when the same server and path are upgraded by other
# requests, or when the path is a usual WebSocket endpoint. Such exchanges are held here (not
# built into attempts: most 4xx never matter) and promoted when an upgrade on their path shows.

MAX_HELD = 1024  # plain 4xx exchanges held at once, over all paths (oldest path dropped first)
MAX_PATHS = 4096  # (server, path) pairs whose upgrade count is remembered (least recent out)
_WEBSOCKET_SEGMENTS = frozenset({"ws", "wss", "websocket", "websockets", "cable"})

PathKey = tuple[bytes, int, str]  # server address, server port, path without the query

# A longer path is remembered by a digest of it and its last segment (what
# `is_websocket_path` reads): MAX_PATHS paths of up to 64 KiB each (a head's limit) would
# otherwise be kept whole, 33 MB for 4,096 paths of 8 KB (benchmarks/memory.py --cases long).
MAX_KEPT_PATH = 256


def path_key(server: tuple[bytes, int], target: str) -> PathKey | None:
    """The (server, path) a plain request is held under; None for one that is plain by design
    (Engine.IO's long polling shares its path, /socket.io/, with the WebSocket upgrade)."""
    path, _, query = target.partition("?")
    if "transport=polling" in query:
        return None
    if len(path) > MAX_KEPT_PATH:
        path = f"{digest_key(path)}/{path.rstrip('/').rsplit('/', 1)[-1][:64]}"
    return server[0], server[1], path


def offers_websocket(head: RequestHead) -> bool:
    """True when the request asks for a WebSocket (what makes its path a WebSocket endpoint)."""
    headers = head.headers
    return "sec-websocket-key" in headers.names() or "websocket" in headers.tokens("upgrade")


def is_websocket_path(path: str) -> bool:
    """A path (without its query) whose last segment names a WebSocket endpoint by custom.
    Not /socket.io/: Engine.IO's long-polling requests are plain by design."""
    return path.rstrip("/").rsplit("/", 1)[-1].lower() in _WEBSOCKET_SEGMENTS


class PlainRejections:
    """Plain requests answered 4xx, per (server, path), until an upgrade shows they matter.

    Bounded: at most `max_held` held exchanges in all (the least recently touched path's go
    first) and `max_paths` remembered upgrade counts. A held exchange is a callable that builds
    its attempt, so an exchange that is never promoted costs a dict entry, not an Attempt."""

    def __init__(self, max_held: int = MAX_HELD, max_paths: int = MAX_PATHS) -> None:
        self._held: OrderedDict[PathKey, list[Callable[[Promotion], Attempt]]] = OrderedDict()
        self._count = 0
        self._upgrades: OrderedDict[PathKey, int] = OrderedDict()
        self._max_held = max_held
        self._max_paths = max_paths
        self.promoted = 0  # exchanges promoted so far (they were counted as ordinary first)

    def hold(self, key: PathKey, build: Callable[[Promotion], Attempt]) -> Attempt | None:
        """A plain request answered 4xx: its attempt at once when its path is known to be a
        WebSocket endpoint, else None (held until `upgraded` is called for its path)."""
        upgrades = self._upgrades.get(key, 0)
        if upgrades or is_websocket_path(key[2]):
            self.promoted += 1
            return build(Promotion(upgrades, is_websocket_path(key[2])))
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = []
        else:
            self._held.move_to_end(key)
        held.append(build)
        self._count += 1
        while self._count > self._max_held:
            _, dropped = self._held.popitem(last=False)
            self._count -= len(dropped)
        return None

    def upgraded(self, key: PathKey) -> list[Attempt]:
        """A WebSocket upgrade request to `key`: the held exchanges of that path, promoted."""
        upgrades = self._upgrades.pop(key, 0) + 1
        self._upgrades[key] = upgrades  # (re)inserted last: least recently used goes first
        if len(self._upgrades) > self._max_paths:
            self._upgrades.popitem(last=False)
        held = self._held.pop(key, None)
        if not held:
            return []
        self._count -= len(held)
        self.promoted += len(held)
        promotion = Promotion(upgrades, is_websocket_path(key[2]))
        return [build(promotion) for build in held]
