"""Java server scenarios for captures/generate.py: Tomcat 10 and Jetty 9 from Debian, from real
traffic.

Tomcat 10 (`catalina.sh run`) serves Debian's tomcat10-examples webapp (its WebSocket echo
endpoints) and a one-class webapp of ours, compiled here with javac against Tomcat's WebSocket
API: an endpoint that supports the subprotocol chat.v1 and refuses the Origin
http://evil.example through its Configurator. Jetty 9.4 runs embedded (Debian's jetty9 jars)
with its native WebSocketServlet: the same subprotocol and Origin rules, the Origin refused with
`sendForbidden`. Same rules as generate.py: loopback only, fixed ports (18180, 18185), every
process in its own group and stopped in a `finally`, and what each side printed recorded at run
time: for each attempt, the lines the server logged while that attempt ran (catalina's console
and its access log; Jetty's StdErrLog and its request log).

The JVMs start in seconds on an idle machine but much slower on a loaded one, so these
scenarios wait up to JAVA_START seconds for the port and have a longer scenario bound.
Needs: `apt-get install tomcat10 tomcat10-examples jetty9 default-jdk-headless` (javac), and
`npm install` in captures/node (the Node ws client).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from frameworks import NODE_WS_CLIENT, WS_CLIENT, Process, node, node_package
from generate import (
    V4,
    Expect,
    aiohttp_request,
    endpoint,
    scenario,
    version,
    wait_for_listener,
    websockets_client,
    ws_headers,
)

JAVA_START = 60.0  # seconds to wait for a JVM's port
JAVA_SCENARIO = 120.0  # a whole Java scenario (two JVM starts on a loaded machine fit)
# The JVM's sockets are IPv6 sockets bound to ::ffff:127.0.0.1 otherwise, which
# wait_for_listener (reading /proc/net/tcp) would not see.
JAVA_OPTS = "-Djava.net.preferIPv4Stack=true"
TOMCAT_HOME = Path("/usr/share/tomcat10")
TOMCAT_EXAMPLES = Path("/usr/share/tomcat10-examples/examples")
JETTY_LIB = Path("/usr/share/jetty9/lib")
TOMCAT_PORT, JETTY_PORT = 18180, 18185
EVIL_ORIGIN = "http://evil.example"


def java_version() -> str:
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    match = re.search(r'version "([^"]+)"', out.stderr)
    return f"OpenJDK {match[1] if match else '?'}"


class Said:
    """What a server printed (its console and, for Tomcat, an access log file), one slice per
    attempt: `mark()` before the attempt, `since()` after it."""

    def __init__(self, process: Process, keep: Callable[[str], bool],
                 files: tuple[Path, ...] = ()) -> None:
        self.process, self.keep, self.files = process, keep, files
        self._seen = ""

    def _all(self) -> str:
        parts = [self.process.said(self.keep)]
        parts += [" | ".join(line.strip() for line in f.read_text().splitlines() if line.strip())
                  for f in self.files if f.exists()]
        return " | ".join(part for part in parts if part)

    def mark(self) -> None:
        self._seen = self._all()

    def since(self) -> str:
        now = self._all()
        # The console and the files grow at their ends; what is new is what is not in the mark.
        old = set(self._seen.split(" | "))
        return " | ".join(line for line in now.split(" | ") if line not in old)


async def attempt(said: Said, run: Awaitable[str]) -> tuple[str, str]:
    """Runs one client call; returns what the client said and what the server logged."""
    said.mark()
    client = await run
    await asyncio.sleep(0.4)  # the access log line of a closed WebSocket comes at its end
    return client, said.since() or "(nothing logged)"


@contextlib.asynccontextmanager
async def java_server(command: list[str], port: int, cwd: Path, env: dict[str, str],
                      started: str) -> AsyncIterator[Process]:
    """A JVM server, once its port listens and it printed `started`: Tomcat binds its port
    before it deploys the webapps and accepts only after ("Server startup in")."""
    process = Process(command, cwd, env)
    try:
        await asyncio.to_thread(wait_for_listener, V4, port, JAVA_START)
        deadline = time.monotonic() + JAVA_START
        while started not in process.said():
            if time.monotonic() > deadline or process.process.poll() is not None:
                raise RuntimeError(f"{command[0]} did not start: {process.said()[-2000:]}")
            await asyncio.sleep(0.1)
        yield process
        await asyncio.sleep(0.3)  # the last log lines
    finally:
        process.close()


# --- Tomcat 10 --------------------------------------------------------------------------------

TOMCAT_SERVER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Listener className="org.apache.catalina.startup.VersionLoggerListener" />
  <Service name="Catalina">
    <Connector address="{v4}" port="{port}" protocol="HTTP/1.1" connectionTimeout="5000" />
    <Engine name="Catalina" defaultHost="localhost">
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false">
        <Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs"
               prefix="access" suffix=".log" rotatable="false" buffered="false"
               pattern="%a:%{{remote}}p &quot;%r&quot; %s %b" />
      </Host>
    </Engine>
  </Service>
</Server>
"""
TOMCAT_LOGGING = """handlers = java.util.logging.ConsoleHandler
.handlers = java.util.logging.ConsoleHandler
java.util.logging.ConsoleHandler.level = FINE
java.util.logging.ConsoleHandler.formatter = org.apache.juli.OneLineFormatter
java.util.logging.ConsoleHandler.encoding = UTF-8
.level = INFO
"""
# A JSR 356 endpoint as an application writes one: a subprotocol it supports, and an Origin
# check in its Configurator (Tomcat answers 403 when checkOrigin says no).
TOMCAT_ENDPOINT = """package ua;

import jakarta.websocket.OnMessage;
import jakarta.websocket.server.ServerEndpoint;
import jakarta.websocket.server.ServerEndpointConfig;

@ServerEndpoint(value = "/chat", subprotocols = {"chat.v1"}, configurator = Chat.Origins.class)
public class Chat {
    public static class Origins extends ServerEndpointConfig.Configurator {
        @Override
        public boolean checkOrigin(String origin) {
            return origin == null || !origin.equals("@EVIL@");
        }
    }

    @OnMessage
    public String echo(String message) {
        return message;
    }
}
""".replace("@EVIL@", EVIL_ORIGIN)


def tomcat_base(tmp: Path) -> None:
    """A private CATALINA_BASE: our server.xml and logging, Debian's web.xml, the examples
    webapp (linked), and the compiled endpoint at /ua."""
    for name in ("conf", "logs", "temp", "work", "webapps/ua/WEB-INF/classes", "src"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    for name in ("web.xml", "catalina.properties", "context.xml"):
        (tmp / "conf" / name).write_bytes(Path("/etc/tomcat10", name).read_bytes())
    (tmp / "conf/server.xml").write_text(TOMCAT_SERVER_XML.format(v4=V4, port=TOMCAT_PORT))
    (tmp / "conf/logging.properties").write_text(TOMCAT_LOGGING)
    (tmp / "webapps/examples").symlink_to(TOMCAT_EXAMPLES)
    source = tmp / "src/Chat.java"
    source.write_text(TOMCAT_ENDPOINT)
    api = ":".join(str(TOMCAT_HOME / "lib" / jar)
                   for jar in ("websocket-api.jar", "websocket-client-api.jar"))
    subprocess.run(["javac", "-d", str(tmp / "webapps/ua/WEB-INF/classes"), "-cp", api,
                    str(source)], check=True, capture_output=True, timeout=120)


def _tomcat_console(line: str) -> bool:
    # startup and shutdown chatter is not what the server said about an attempt, and a stack
    # trace's frames add nothing to its first line
    return not line.startswith("at ") and not re.search(
        r"\] org\.apache\.(catalina\.(startup|core)|coyote|jasper)\.", line)


EXAMPLES_ECHO = "/examples/websocket/echoAnnotation"


@scenario("tomcat10_websocket", "Tomcat 10 (Debian): the examples' echo endpoint (upgrade, a "
          "plain GET, no Sec-WebSocket-Key, version 8), an endpoint with subprotocol chat.v1 "
          "and an Origin check (chat.v1 accepted, a Node ws client offering chat.v2, a foreign "
          "Origin), and an unknown path", (TOMCAT_PORT,), timeout=JAVA_SCENARIO)
async def _tomcat() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-tomcat-") as tmp:
        base = Path(tmp)
        tomcat_base(base)
        env = {"CATALINA_HOME": str(TOMCAT_HOME), "CATALINA_BASE": tmp,
               "CATALINA_TMPDIR": f"{tmp}/temp", "JAVA_OPTS": JAVA_OPTS}
        url = f"{V4}:{TOMCAT_PORT}"
        async with java_server([str(TOMCAT_HOME / "bin/catalina.sh"), "run"], TOMCAT_PORT,
                               base, env, "Server startup in") as server:
            said = Said(server, _tomcat_console, (base / "logs/access.log",))
            results = await _run_all(said, [
                lambda: websockets_client(f"ws://{url}{EXAMPLES_ECHO}"),
                lambda: _plain(f"http://{url}{EXAMPLES_ECHO}", {}),
                lambda: _plain(f"http://{url}{EXAMPLES_ECHO}",
                               ws_headers(Sec_WebSocket_Key=None)),
                lambda: _plain(f"http://{url}{EXAMPLES_ECHO}",
                               ws_headers(Sec_WebSocket_Version="8")),
                lambda: websockets_client(f"ws://{url}/ua/chat", subprotocols=["chat.v1"]),
                lambda: node(NODE_WS_CLIENT, f"ws://{url}/ua/chat", "chat.v2", "hello"),
                lambda: websockets_client(f"ws://{url}/ua/chat", origin=EVIL_ORIGIN),
                lambda: websockets_client(f"ws://{url}/examples/websocket/nope"),
            ])
            startup = server.said(keep=lambda line: "Starting Servlet engine" in line)
        tomcat = re.search(r"Apache Tomcat/[^\]]+", startup)
    software = f"{tomcat[0] if tomcat else 'Apache Tomcat 10'} on {java_version()}"
    return _expectations(endpoint(V4, TOMCAT_PORT), software, results, {
        "echo": EXAMPLES_ECHO, "chat": "/ua/chat", "nope": "/examples/websocket/nope",
        "plain": "the examples' echo endpoint: Tomcat's WsFilter only takes upgrade requests, "
                 "so a plain GET falls through to the default servlet: 404",
        "key": "no Sec-WebSocket-Key: Tomcat answered its bare 400 error page",
        "version": "version 8: Tomcat answered 426 with Sec-WebSocket-Version: 13, no body",
        "origin": "the Configurator's checkOrigin refused the Origin: Tomcat's 403 page",
        "nope_why": "no endpoint at that path: the default servlet's 404 page",
    }, key_status=400, version_status=426, plain_status=404,
        plain_notes=["response_not_found"], version_notes=["response_upgrade_required"])


# --- Jetty 9 ----------------------------------------------------------------------------------

# Jetty's native WebSocket API, as an embedded application writes it: the creator chooses
# chat.v1 when offered and refuses a foreign Origin with sendForbidden (Jetty's 403 page).
JETTY_SERVER = """
import java.util.List;
import org.eclipse.jetty.server.CustomRequestLog;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.websocket.api.WebSocketAdapter;
import org.eclipse.jetty.websocket.servlet.WebSocketServlet;
import org.eclipse.jetty.websocket.servlet.WebSocketServletFactory;

public class JettyWs {
    public static class Echo extends WebSocketAdapter {
        @Override
        public void onWebSocketText(String message) {
            getRemote().sendStringByFuture(message);
        }
    }

    public static class Chat extends WebSocketServlet {
        @Override
        public void configure(WebSocketServletFactory factory) {
            factory.setCreator((req, resp) -> {
                String origin = req.getOrigin();
                if (origin != null && origin.equals("@EVIL@")) {
                    try {
                        resp.sendForbidden("Origin not allowed");
                    } catch (java.io.IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                    return null;
                }
                List<String> offered = req.getSubProtocols();
                if (offered.contains("chat.v1")) resp.setAcceptedSubProtocol("chat.v1");
                return new Echo();
            });
        }
    }

    public static void main(String[] args) throws Exception {
        Server server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost(args[0]);
        connector.setPort(Integer.parseInt(args[1]));
        server.addConnector(connector);
        ServletContextHandler context = new ServletContextHandler();
        context.setContextPath("/");
        context.addServlet(Chat.class, "/ws");
        server.setHandler(context);
        server.setRequestLog(new CustomRequestLog(line -> System.err.println(line),
                "%{client}a:%{remote}p \\"%r\\" %s %O"));
        server.start();
        server.join();
    }
}
""".replace("@EVIL@", EVIL_ORIGIN)


def _jetty_console(line: str) -> bool:
    return not line.startswith("at ") and not re.search(
        r":INFO:(oejs\.|oejsh\.|:main: Logging)", line)


@scenario("jetty9_websocket", "Jetty 9.4 (Debian's jars, embedded) with a native "
          "WebSocketServlet at /ws: upgrade, a plain GET, no Sec-WebSocket-Key, version 8, a "
          "Node ws client offering chat.v2 (the servlet supports chat.v1), a foreign Origin, "
          "and an unknown path", (JETTY_PORT,), timeout=JAVA_SCENARIO)
async def _jetty() -> list[Expect]:
    with tempfile.TemporaryDirectory(prefix="captures-jetty-") as tmp:
        Path(tmp, "JettyWs.java").write_text(JETTY_SERVER)
        classpath = f"{JETTY_LIB}/*:{JETTY_LIB}/websocket/*"
        subprocess.run(["javac", "-d", tmp, "-cp", classpath, f"{tmp}/JettyWs.java"],
                       check=True, capture_output=True, timeout=120)
        command = ["java", JAVA_OPTS, "-Dorg.eclipse.jetty.LEVEL=INFO", "-cp",
                   f"{tmp}:{classpath}", "JettyWs", V4, str(JETTY_PORT)]
        url = f"{V4}:{JETTY_PORT}"
        async with java_server(command, JETTY_PORT, Path(tmp), {},
                               "oejs.Server:main: Started") as server:
            said = Said(server, _jetty_console)
            results = await _run_all(said, [
                lambda: websockets_client(f"ws://{url}/ws"),
                lambda: _plain(f"http://{url}/ws", {}),
                lambda: _plain(f"http://{url}/ws", ws_headers(Sec_WebSocket_Key=None)),
                lambda: _plain(f"http://{url}/ws", ws_headers(Sec_WebSocket_Version="8")),
                lambda: websockets_client(f"ws://{url}/ws", subprotocols=["chat.v1"]),
                lambda: node(NODE_WS_CLIENT, f"ws://{url}/ws", "chat.v2", "hello"),
                lambda: websockets_client(f"ws://{url}/ws", origin=EVIL_ORIGIN),
                lambda: websockets_client(f"ws://{url}/nope"),
            ])
            startup = server.said(keep=lambda line: "oejs.Server:main: jetty-" in line)
        jetty = re.search(r"jetty-(\S+);", startup)
    software = f"Jetty {jetty[1] if jetty else '9.4'} (embedded) on {java_version()}"
    return _expectations(endpoint(V4, JETTY_PORT), software, results, {
        "echo": "/ws", "chat": "/ws", "nope": "/nope",
        "plain": "a plain GET to the WebSocketServlet falls through to HttpServlet.doGet: "
                 "405 'HTTP method GET is not supported by this URL'",
        "key": "no Sec-WebSocket-Key: Jetty's 400 page 'Missing request header "
               "'Sec-WebSocket-Key''",
        "version": "version 8: Jetty's 400 'Unsupported websocket version specification' "
                   "with Sec-WebSocket-Version: 13",
        "origin": "the creator's sendForbidden: Jetty's 403 page 'Origin not allowed'",
        "nope_why": "no servlet at that path: Jetty's 404 page",
    }, key_status=400, version_status=400, plain_status=405,
        plain_notes=["response_method_not_allowed"], version_notes=["response_bad_request"])


# --- shared -----------------------------------------------------------------------------------


async def _plain(url: str, headers: dict[str, str]) -> str:
    try:
        _, said = await aiohttp_request("GET", url, headers)
    except Exception as exc:  # the point is to record it
        return f"{type(exc).__name__}: {exc}"
    # an HTML error page as its words, not its markup
    words = " ".join(html.unescape(_TAG.sub(" ", _STYLE.sub("", said))).split())
    return words[:300]


_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.S)
_TAG = re.compile(r"<[^>]*>")


async def _run_all(said: Said, calls: list[Callable[[], Awaitable[str]]]) -> list[
        tuple[str, str]]:
    """The client calls in order (one connection each), each with the server's lines."""
    results = []
    for call in calls:
        results.append(await attempt(said, call()))
    return results


def _expectations(here: str, software: str, results: list[tuple[str, str]],
                  paths: dict[str, str], *, key_status: int, version_status: int,
                  plain_status: int, plain_notes: list[str],
                  version_notes: list[str]) -> list[Expect]:
    """The same eight attempts on either server, in the order _run_all made them."""
    (ok, ok_log), (plain, plain_log), (key, key_log), (v8, v8_log), (chat, chat_log), \
        (hung_up, hung_up_log), (origin, origin_log), (nope, nope_log) = results
    echo, chat_path, aiohttp = paths["echo"], paths["chat"], version("aiohttp")
    return [
        Expect(here, "GET", echo, "succeeded", None, "101, echo, Close 1000", WS_CLIENT,
               software, ok, ok_log, notes=["ws_closed_normally"], status=101),
        Expect(here, "GET", echo, "failed", "request_without_upgrade",
               paths["plain"] + "; another request upgrades on this path in the capture",
               aiohttp + " (plain GET)", software, plain, plain_log, notes=plain_notes,
               status=plain_status),
        Expect(here, "GET", echo, "failed", "ws_key_missing", paths["key"],
               aiohttp + " (WebSocket headers without Sec-WebSocket-Key)", software, key,
               key_log, notes=["response_bad_request"], status=key_status),
        Expect(here, "GET", echo, "failed", "ws_version_not_13", paths["version"],
               aiohttp + " (Sec-WebSocket-Version: 8)", software, v8, v8_log,
               notes=version_notes, status=version_status),
        Expect(here, "GET", chat_path, "succeeded", None,
               "the client offered chat.v1, the endpoint chose it; echo, Close 1000",
               WS_CLIENT + " (subprotocols chat.v1)", software, chat, chat_log,
               notes=["ws_closed_normally"], status=101),
        Expect(here, "GET", chat_path, "failed", "ws_protocol_not_chosen",
               "the client offered chat.v2 only; the server switched without a subprotocol "
               "and Node ws failed the connection ('Server sent no subprotocol')",
               node_package("ws"), software, hung_up, hung_up_log,
               notes=["client_hung_up_after_switch"], status=101),
        Expect(here, "GET", chat_path, "failed", "response_forbidden", paths["origin"],
               WS_CLIENT + f" (Origin {EVIL_ORIGIN})", software, origin, origin_log,
               status=403),
        Expect(here, "GET", paths["nope"], "failed", "response_not_found", paths["nope_why"],
               WS_CLIENT, software, nope, nope_log, status=404),
    ]
