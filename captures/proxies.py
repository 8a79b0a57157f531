"""Proxy scenarios for captures/generate.py: HAProxy, Apache, Caddy and nginx, from real traffic.

HAProxy, Apache httpd (mod_proxy_wstunnel, mod_proxy_http) and Caddy in front of a python
websockets backend (both legs recorded with `-i any`), nginx's own error pages, and socket.io
nodes behind HAProxy. Same rules as generate.py and frameworks.py (whose process helpers this
uses): loopback only, fixed ports, every process stopped in a `finally`, what each side said
recorded at run time. generate.py imports this module in main().
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

from frameworks import (
    NODE_MODULES,
    SOCKETIO_CLIENT,
    SOCKETIO_SERVER,
    WS_CLIENT,
    node,
    node_package,
    serving,
    tool_version,
)
from generate import (
    V4,
    Expect,
    endpoint,
    nginx_command,
    nginx_conf,
    nginx_said,
    scenario,
    version,
    wait_for_listener,
    websockets_client,
    websockets_rejection,
    websockets_server,
    websockets_session,
)

# --- HAProxy and Apache httpd in front of python websockets -------------------------------------

HAPROXY_CONF = """
global
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    retries 0
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout tunnel 10s
frontend ok
    bind {v4}:18140
    default_backend websockets
frontend down
    bind {v4}:18142
    default_backend gone
backend websockets
    server ws1 {v4}:18141
backend gone
    server ws2 {v4}:18143
"""


@scenario("haproxy_websockets", "HAProxy in front of a python websockets backend: an upgrade "
          "through it (both legs), and a backend that is down (HAProxy's 503)",
          (18140, 18141, 18142, 18143), interface="any")
async def _haproxy() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-haproxy-") as tmp:
        conf = Path(tmp, "haproxy.cfg")
        conf.write_text(HAPROXY_CONF.format(v4=V4))
        async with websockets_server(V4, 18141, "haproxy-backend") as book, \
                serving(["haproxy", "-f", str(conf), "-db"], 18140, Path(tmp),
                        ) as proxy:
            await asyncio.to_thread(wait_for_listener, V4, 18142)
            ok = await websockets_client(f"ws://{V4}:18140/chat")
            down = await websockets_client(f"ws://{V4}:18142/chat")
        log = proxy.said(keep=lambda line: "GET" in line or "server" in line.lower())
    haproxy = tool_version(["haproxy", "-v"], r"HAProxy version \S+")
    # HAProxy is the client of its backend legs: its log line is what that client said
    refused_leg = "haproxy: " + " | ".join(line for line in log.split(" | ") if " SC" in line)
    backend = websockets_session(book)
    return [
        Expect(endpoint(V4, 18140), "GET", "/chat", "succeeded", None,
               "client leg: HAProxy relayed the backend's 101; echo, Close 1000", WS_CLIENT,
               f"{haproxy} -> {version('websockets')}", ok, f"haproxy: {log} || backend: "
               f"{backend}", notes=["ws_closed_normally"], status=101),
        Expect(endpoint(V4, 18141), "GET", "/chat", "succeeded", None,
               "backend leg of the same handshake", haproxy, version("websockets"), ok,
               backend, notes=["ws_closed_normally"], status=101),
        Expect(endpoint(V4, 18142), "GET", "/chat", "failed", "response_gateway_error",
               "nothing listens behind this frontend; HAProxy answered 503", WS_CLIENT,
               haproxy, down, f"haproxy: {log}", status=503),
        Expect(endpoint(V4, 18143), None, None, "refused", "tcp_refused",
               "HAProxy's connection to the missing backend (retries 0): its log's "
               "termination state SC is 'the server refused the connection'", haproxy,
               "(nothing listens)", refused_leg, f"client of this leg: {WS_CLIENT}: {down}"),
    ]


APACHE_CONF = """
ServerRoot "/etc/apache2"
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
LoadModule proxy_wstunnel_module /usr/lib/apache2/modules/mod_proxy_wstunnel.so
User www-data
Group www-data
Listen {v4}:18150
ServerName localhost
PidFile {tmp}/httpd.pid
ErrorLog {tmp}/error.log
LogLevel warn proxy:info proxy_wstunnel:info
LogFormat "%h \\"%r\\" %>s" short
CustomLog {tmp}/access.log short
ProxyPass /tunnel/ ws://{v4}:18151/tunnel/
ProxyPass /upgrade/ http://{v4}:18151/upgrade/ upgrade=websocket
ProxyPass /plain/ http://{v4}:18151/plain/
"""


@scenario("apache_proxy", "Apache httpd in front of a python websockets backend: "
          "mod_proxy_wstunnel (ws://), mod_proxy_http with upgrade=websocket, and a plain "
          "ProxyPass http:// without it (the Upgrade does not reach the backend)",
          (18150, 18151), interface="any")
async def _apache() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-apache-") as tmp:
        os.chmod(tmp, 0o755)
        conf = Path(tmp, "httpd.conf")
        conf.write_text(APACHE_CONF.format(v4=V4, tmp=tmp))
        async with websockets_server(V4, 18151, "apache-backend") as book, \
                serving(["apache2", "-f", str(conf), "-DFOREGROUND"], 18150, Path(tmp),
                        ) as _:
            tunnel = await websockets_client(f"ws://{V4}:18150/tunnel/")
            upgrade = await websockets_client(f"ws://{V4}:18150/upgrade/")
            plain = await websockets_client(f"ws://{V4}:18150/plain/")
            await asyncio.sleep(0.3)
            log = " | ".join(Path(tmp, name).read_text().strip().replace("\n", " | ")
                             for name in ("error.log", "access.log"))
    apache = tool_version(["apache2", "-v"], r"Apache/\S+")
    backend = websockets_rejection(book) + " | " + websockets_session(book)
    front, back = endpoint(V4, 18150), endpoint(V4, 18151)
    both = f"apache: {log} || backend: {backend}"
    status = re.search(r'"GET /plain/ HTTP/1.1" (\d+)', log)
    plain_status = int(status[1]) if status else None
    return [
        Expect(front, "GET", "/tunnel/", "succeeded", None, "mod_proxy_wstunnel: 101 relayed",
               WS_CLIENT, f"{apache} -> {version('websockets')}", tunnel, both,
               notes=["ws_closed_normally"], status=101),
        Expect(back, "GET", "/tunnel/", "succeeded", None, "its backend leg", apache,
               version("websockets"), tunnel, backend, notes=["ws_closed_normally"],
               status=101),
        Expect(front, "GET", "/upgrade/", "succeeded", None,
               "mod_proxy_http upgrade=websocket: 101 relayed", WS_CLIENT,
               f"{apache} -> {version('websockets')}", upgrade, both,
               notes=["ws_closed_normally"], status=101),
        Expect(back, "GET", "/upgrade/", "succeeded", None, "its backend leg", apache,
               version("websockets"), upgrade, backend, notes=["ws_closed_normally"],
               status=101),
        # On this leg alone the client sees the backend's 426 (its Upgrade header dropped on
        # the way back too); correlating both legs (table, JSON) adds proxy_stripped_upgrade.
        Expect(front, "GET", "/plain/", "failed", "response_upgrade_required",
               f"ProxyPass http:// without upgrade=websocket: Apache dropped Upgrade and "
               f"Connection, the backend answered {plain_status} and Apache relayed it",
               WS_CLIENT, f"{apache} -> {version('websockets')}", plain, both,
               notes=["upgrade_required_without_upgrade"], status=plain_status),
        Expect(back, "GET", "/plain/", "failed", "upgrade_header_missing",
               "the backend leg: the request arrived without Upgrade", apache,
               version("websockets"), plain, backend, status=plain_status),
    ]


# --- the server's own words: nginx's error pages, websockets' negotiation, Engine.IO sessions ---

def nginx_errors_conf(tmp: str) -> str:
    return nginx_conf(tmp, f"""    large_client_header_buffers 2 1k;
    server {{
        listen {V4}:18160 ssl;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        location / {{ return 200 "tls\\n"; }}
    }}
    server {{
        listen {V4}:18161;
        location / {{
            proxy_pass http://{V4}:18162;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }}
    }}""")


@scenario("nginx_error_pages", "nginx's own rejections: a ws:// client on its TLS port (400 "
          "'The plain HTTP request was sent to HTTPS port') and a 2 KB Cookie over "
          "large_client_header_buffers 1k (400 'Request Header Or Cookie Too Large')",
          (18160, 18161, 18162))
async def _nginx_errors() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-nginx-") as tmp:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", "/CN=localhost", "-keyout", f"{tmp}/key.pem", "-out",
                        f"{tmp}/cert.pem"], check=True, capture_output=True, timeout=30)
        Path(tmp, "nginx.conf").write_text(nginx_errors_conf(tmp))
        cookie = "; ".join(f"c{i}={os.urandom(16).hex()}" for i in range(50))  # ~2 KB
        async with websockets_server(V4, 18162, "nginx-errors") as book, \
                serving(nginx_command(tmp), 18160, Path(tmp), sig=signal.SIGQUIT):
            await asyncio.to_thread(wait_for_listener, V4, 18161)
            plain = await websockets_client(f"ws://{V4}:18160/chat")
            large = await websockets_client(f"ws://{V4}:18161/chat",
                                            additional_headers={"Cookie": cookie})
            await asyncio.sleep(0.3)
            log = nginx_said(tmp, lambda line: "client" in line, access=False)
    nginx = tool_version(["nginx", "-v"], r"nginx/\S+")
    return [
        Expect(endpoint(V4, 18160), "GET", "/chat", "failed", "tls_plain_http_to_tls_port",
               "cleartext WebSocket handshake to a port with `listen ... ssl`: nginx answered "
               "400 'The plain HTTP request was sent to HTTPS port'", WS_CLIENT, nginx,
               plain, log, notes=["response_bad_request"], status=400),
        Expect(endpoint(V4, 18161), "GET", "/chat", "failed", "request_headers_too_large",
               f"a {len(cookie)}-byte Cookie over large_client_header_buffers 2 1k: nginx "
               "answered 400 'Request Header Or Cookie Too Large' without asking the backend",
               WS_CLIENT + f" (Cookie of {len(cookie)} bytes)", nginx, large,
               log + " || backend: " + (websockets_rejection(book) or "(no request)"),
               notes=["response_bad_request"], status=400),
    ]


HAPROXY_ROUND_ROBIN = """
global
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    retries 0
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout tunnel 10s
frontend socketio
    bind {v4}:18165
    use_backend ws_pool if {{ urlp(transport) -m str websocket }}
    default_backend polling_pool
backend polling_pool
    server n1 {v4}:18166
backend ws_pool
    server n2 {v4}:18167
"""


@scenario("socketio_no_sticky_sessions", "two socket.io nodes behind HAProxy, WebSocket "
          "requests routed to another pool than the polls (no shared sessions): the upgrade "
          "reaches the node that does not know the session ('Session ID unknown') and the "
          "client stays on long polling", (18165, 18166, 18167), interface="any")
async def _socketio_sticky() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-sticky-") as tmp:
        conf = Path(tmp, "haproxy.cfg")
        conf.write_text(HAPROXY_ROUND_ROBIN.format(v4=V4))
        env = {"NODE_PATH": str(NODE_MODULES)}
        async with serving(["node", "-e", SOCKETIO_SERVER, "18166", "polling,websocket"],
                           18166, Path(tmp), env=env) as n1, \
                serving(["node", "-e", SOCKETIO_SERVER, "18167", "polling,websocket"],
                        18167, Path(tmp), env=env) as n2, \
                serving(["haproxy", "-f", str(conf), "-db"], 18165, Path(tmp)) as proxy:
            said = await node(SOCKETIO_CLIENT, f"http://{V4}:18165", "polling,websocket")
        logs = f"haproxy: {proxy.said()} || n1: {n1.said()} || n2: {n2.said()}"
    return _session_unknown_expectations(said, logs)


def _session_unknown_expectations(said: str, logs: str) -> list[Expect]:
    """The upgrade request HAProxy relayed to n2 (its target read from HAProxy's log), on
    both legs."""
    server, client = node_package("socket.io"), node_package("socket.io-client")
    haproxy = tool_version(["haproxy", "-v"], r"HAProxy version \S+")
    match = re.search(r"(\S+):(\d+) \[[^]]+\] socketio ws_pool/n2 \S+ 400 .*?\"GET (\S+) "
                      r"HTTP/1\.1\"", logs)
    if match is None:
        raise RuntimeError(f"socketio_no_sticky_sessions: no 400 from n2 in the logs: {logs}")
    why = ("the polls went to n1, the WebSocket upgrade to n2, which did not make the session: "
           "400 Session ID unknown; the client stayed on long polling")
    return [
        Expect(endpoint(V4, 18165), "GET", match[3], "failed", "engineio_session_unknown", why,
               client, f"{haproxy} -> {server}", said, logs,
               notes=["response_bad_request", "engineio_stays_on_polling"],
               status=400, client=endpoint(match[1], int(match[2]))),
        Expect(endpoint(V4, 18167), "GET", match[3], "failed", "engineio_session_unknown",
               why + " (the node's leg)", haproxy, server, said, logs,
               notes=["response_bad_request", "engineio_stays_on_polling"], status=400),
    ]


CADDYFILE = """
{{
    admin off
    auto_https off
}}
http://{v4}:18170 {{
    bind {v4}
    reverse_proxy {v4}:18171
}}
http://{v4}:18172 {{
    bind {v4}
    reverse_proxy {v4}:18173
}}
"""


@scenario("caddy_websockets", "Caddy's reverse_proxy in front of a python websockets backend: "
          "an upgrade through it (both legs), and a backend that is down (Caddy's 502)",
          (18170, 18171, 18172, 18173), interface="any")
async def _caddy() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-caddy-") as tmp:
        conf = Path(tmp, "Caddyfile")
        conf.write_text(CADDYFILE.format(v4=V4))
        env = {"HOME": tmp, "XDG_DATA_HOME": tmp, "XDG_CONFIG_HOME": tmp}
        async with websockets_server(V4, 18171, "caddy-backend") as book, \
                serving(["caddy", "run", "--config", str(conf), "--adapter", "caddyfile"],
                        18170, Path(tmp), env=env) as proxy:
            await asyncio.to_thread(wait_for_listener, V4, 18172)
            ok = await websockets_client(f"ws://{V4}:18170/chat")
            down = await websockets_client(f"ws://{V4}:18172/chat")
        log = proxy.said(keep=lambda line: '"error"' in line)
    caddy = tool_version(["caddy", "version"], r"v\S+")
    caddy = f"Caddy {caddy}"
    backend = websockets_session(book)
    if "connect: connection refused" not in log:
        raise RuntimeError(f"caddy_websockets: Caddy did not log the refused dial: {log}")
    refused_leg = f"caddy: {log}"  # Caddy is the client of its backend legs
    return [
        Expect(endpoint(V4, 18170), "GET", "/chat", "succeeded", None,
               "client leg: Caddy relayed the backend's 101; echo, Close 1000", WS_CLIENT,
               f"{caddy} -> {version('websockets')}", ok,
               f"caddy: {log or '(nothing)'} || backend: {backend}",
               notes=["ws_closed_normally"], status=101),
        Expect(endpoint(V4, 18171), "GET", "/chat", "succeeded", None,
               "backend leg of the same handshake", caddy, version("websockets"), ok, backend,
               notes=["ws_closed_normally"], status=101),
        Expect(endpoint(V4, 18172), "GET", "/chat", "failed", "response_gateway_error",
               "nothing listens behind this site; Caddy answered 502 with an empty body",
               WS_CLIENT, caddy, down, f"caddy: {log}", status=502),
        Expect(endpoint(V4, 18173), None, None, "refused", "tcp_refused",
               "Caddy's dial to the missing backend", caddy, "(nothing listens)", refused_leg,
               f"client of this leg: {WS_CLIENT}: {down}"),
    ]
