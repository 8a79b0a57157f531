"""The catalogue's entries for the life of a switched connection, after its watch window
(analyzer/life): how it ended, and what that usually means.

Plain data like ``catalogue_h2.py``: ``catalogue.py`` turns each entry into a ``Check`` and
places them last, in the ``life`` phase. Fields: id, severity, effect, RFC section, title,
explanation, fix. Their order breaks ties between primary reasons: the causes that need several
connections (a mass reset, a maximum lifetime) first, the generic "no Close frame" last.
"""

from __future__ import annotations

Entry = tuple[str, str, str, str, str, str, str]

LIFE: tuple[Entry, ...] = (
    ("server_reset_many", "error", "dropped", "RFC 9293 §3.10.7.4",
     "the server ended many connections at the same moment (a restart or a deploy)",
     "Several switched connections to the same server ended within the same second, by a "
     "reset or a close without a Close frame, after living for different times. That is "
     "not the clients: the server process (or the proxy in front of it) went away or was "
     "restarted, and every connection it held went with it.",
     "Look at what happened on the server at that time (a deploy, a crash, an OOM kill, a "
     "proxy reload). Make the server close WebSockets with Close 1001 (going away) or 1012 "
     "(service restart) on shutdown, and make clients reconnect with a random delay so "
     "they do not all come back at once."),
    ("max_lifetime_reached", "error", "dropped", "RFC 6455 §7.1.7",
     "many connections ended at the same age: a maximum lifetime",
     "Several switched connections to the same server ended after nearly the same time "
     "since their switch, whatever they were doing. Something limits a connection's whole "
     "life: a proxy's or load balancer's maximum connection duration, a token that "
     "expires, or an application timer.",
     "Find the limit named by the age (e.g. an ingress or load balancer maximum connection "
     "age, a session or token lifetime) and raise it, or make clients reconnect before it."),
    ("keepalive_ping_unanswered", "error", "dropped", "RFC 6455 §5.5.2, §5.5.3",
     "a keepalive ping got no answer: the side that pinged gave up and closed",
     "One side sent a keepalive ping (a Ping frame, or Engine.IO's ping packet \"2\", which "
     "must be answered \"3\"), the other side sent nothing at all after it (no Pong, no "
     "data), and the pinging side then closed the connection, with a Close frame or a "
     "bare FIN or RST. \"Upon receipt of a Ping frame, an endpoint MUST send a Pong frame "
     "in response\" (§5.5.2); the pinging side's keepalive timer ran out: python "
     "websockets and uvicorn close with 1011 'keepalive ping timeout', tornado with 1000 "
     "'ping timed out', aiohttp's heartbeat closes the TCP connection without a Close "
     "frame, Socket.IO after pingTimeout. The silent side was stalled (a blocked event "
     "loop, a long synchronous task, a process suspended or paused in a debugger, a "
     "phone's app in the background), overloaded, or a proxy or middlebox on the path "
     "dropped the frames.",
     "Look at the silent side at that moment: its event loop, CPU and memory, its network "
     "path (and whether a proxy passes Ping and Pong frames). If it is only slow, raise the "
     "pinging side's ping timeout (websockets ping_timeout, tornado "
     "websocket_ping_timeout, aiohttp heartbeat, Socket.IO pingTimeout). Pinging more "
     "often does not help."),
    ("idle_timeout_after_switch", "error", "dropped", "RFC 6455 §5.5.2",
     "closed after a silence, without a Close frame: most likely an idle timeout",
     "After working past its first moments, the connection carried nothing for N seconds "
     "and was then closed by a FIN or a RST without any Close frame. Clients report this as "
     "1006 (abnormal closure). Proxies and load balancers close quiet connections: nginx "
     "proxy_read_timeout (60 s by default), AWS ALB (60 s), Heroku's router (55 s), "
     "Cloudflare (100 s), AWS NLB (350 s), HAProxy timeout tunnel (or timeout client / "
     "timeout server), and home or cellular NAT (30-300 s). The address that closed is the "
     "hop whose timer expired (a proxy closes toward both sides). An application can close "
     "quiet connections the same way (a heartbeat check that terminates the socket, as "
     "Node ws apps do with terminate()): with no proxy on the path, read its timers.",
     "Send WebSocket pings (or application heartbeats) more often than the shortest idle "
     "timeout on the path, e.g. every 20-30 s, or raise the timeout on each hop (nginx "
     "proxy_read_timeout/proxy_send_timeout, HAProxy timeout tunnel, the load balancer's "
     "idle timeout)."),
    ("proxy_passed_client_end", "info", "note", "RFC 9110 §7.6.1",
     "the proxy closed this back leg because its client left the front leg",
     "This is a proxy's connection to its backend (a back leg paired with the client's front "
     "leg). The end client closed or reset the front leg first, and the proxy ended this "
     "connection right after, with a FIN or a RST and no Close frame of its own: it passed "
     "its client's end on, as nginx, HAProxy and Apache httpd do. The backend sees a "
     "WebSocket that ended without a Close frame; the cause, if any, is on the front leg.",
     "Read the front leg's end (the client's side: a closed tab, a killed process, a lost "
     "network, a client that gave up waiting). Nothing to fix between the proxy and the "
     "backend."),
    ("close_message_too_big", "error", "dropped", "RFC 6455 §7.4.1",
     "closed with 1009: a message was too big for the receiver",
     "1009 \"indicates that an endpoint is terminating the connection because it has "
     "received a message that is too big for it to process\". Node ws closes so past "
     "maxPayload (100 MiB by default), python websockets past max_size (1 MiB by default).",
     "Raise the receiver's message size limit (ws maxPayload, websockets max_size, Spring "
     "setMaxTextMessageBufferSize) or send smaller messages."),
    ("close_internal_error", "error", "dropped", "RFC 6455 §7.4.1",
     "closed with 1011: the side that closed hit an unexpected condition",
     "1011 \"indicates that a server is terminating the connection because it encountered "
     "an unexpected condition that prevented it from fulfilling the request\"; clients send "
     "it too (the Close's side says who): usually an "
     "exception in the application's WebSocket handler (starlette/uvicorn apps that raise "
     "after accepting close with 1011; python websockets also sends 1011 'keepalive ping "
     "timeout' when its pings go unanswered).",
     "Read the server's log at that time for the exception; if the reason says keepalive "
     "ping timeout, find who stopped answering pings (a stalled client, a proxy)."),
    ("close_service_restart", "warning", "dropped", "RFC 6455 §11.7",
     "closed with 1012: the service is restarting",
     "1012 (IANA WebSocket Close Code Registry) says the server is restarting; a client "
     "may reconnect, with a randomised delay of 5-30 s.",
     "Expected during deploys; make clients reconnect with jitter and servers drain "
     "connections gradually."),
    ("close_try_again_later", "warning", "dropped", "RFC 6455 §11.7",
     "closed with 1013: try again later (the server is overloaded)",
     "1013 (IANA WebSocket Close Code Registry) says the server is overloaded or rate "
     "limiting and the client should reconnect later.",
     "Look at the server's load and limits; make clients back off before reconnecting."),
    ("close_bad_gateway", "error", "dropped", "RFC 6455 §11.7",
     "closed with 1014: a gateway lost its upstream",
     "1014 (IANA WebSocket Close Code Registry) is sent by a gateway or proxy that got an "
     "invalid response from, or lost, the upstream server behind it.",
     "Look at the upstream server behind the proxy that sent it (crash, restart, timeout)."),
    ("close_application_error", "error", "dropped", "RFC 6455 §7.4.2",
     "closed with an application code (4000-4999)",
     "Codes 4000-4999 are private: the application defines them (4001 'unauthorized' or "
     "4003 'forbidden' are common, e.g. an expired token). The reason text usually says "
     "which.",
     "Read the close reason and the application's documentation for that code."),
    ("close_error_in_life", "error", "dropped", "RFC 6455 §7.4.1",
     "closed with an error code after working for a while",
     "A Close frame with an error code: 1002 protocol error, 1003 unsupported data, 1007 "
     "invalid payload (e.g. text that is not UTF-8), 1008 policy violation, 1010 a missing "
     "extension. The session worked, then one side refused what the other sent.",
     "Read the close reason and the closing side's log; fix what the other side sent."),
    ("close_going_away", "info", "note", "RFC 6455 §7.4.1",
     "closed with 1001: going away",
     "1001 \"indicates that an endpoint is 'going away', such as a server going down or a "
     "browser having navigated away from a page\". A normal end.",
     "Nothing to fix; many at once from the server mean a restart."),
    ("h2_shutdown_in_life", "error", "dropped", "RFC 9113 §6.8",
     "the HTTP/2 connection was shut down under the WebSocket (GOAWAY, then its end)",
     "The WebSocket lived on an HTTP/2 stream (RFC 8441). One side sent a graceful GOAWAY "
     "(NO_ERROR: no new streams) and then ended the whole connection, with this stream "
     "still open and no Close frame on it: the server (or the proxy in front of it) "
     "shutting down, for a restart, a deploy or a maximum connection age (Hypercorn sends "
     "GOAWAY then close_notify when it stops). Clients report 1006 (abnormal closure).",
     "Make the server close its WebSockets with Close 1001 (going away) or 1012 (service "
     "restart) before it shuts down, and let clients reconnect with a random delay."),
    ("closed_without_close_frame", "error", "dropped", "RFC 6455 §7.1.5",
     "closed without a Close frame (clients report 1006)",
     "The connection ended with a FIN or a RST and no Close frame from either side, while "
     "it was still carrying data. \"If _The WebSocket Connection is Closed_ and no Close "
     "control frame was received by the endpoint ... the WebSocket connection close code "
     "is considered to be 1006\": browsers and clients report an abnormal closure. Usual "
     "causes: the process crashed or was killed, a proxy cut the connection, a network "
     "path failed (the RST of a NAT or firewall that forgot the flow).",
     "Look at the closing address's logs at that time; make both sides send a Close frame "
     "when they shut down."),
)
