"""The TLS scenarios that break at the TLS layer, registered with generate_tls.py's others.

Each is real software failing the way it does in the field: a client refusing the certificate
(with or without an alert), a server refusing the name, the version, the ALPN protocol or a
missing client certificate, and cleartext and TLS crossed on the wire. The `tls_*` reasons are
proposals for the analyzer's TLS phase (captures/README.md lists them).
"""

from __future__ import annotations

import asyncio

from pki import NAME, OTHER_NAME
from tls_tools import (
    TLS12,
    Run,
    TlsExpect,
    aiohttp_tls_server,
    aiohttp_wss_client,
    client_context,
    curl_tls,
    curl_ws_headers,
    g,
    nginx_ssl_server,
    nginx_tls,
    openssl_version,
    s_client_alone,
    scenario,
    server_context,
    tls_said,
    wss_client,
)

V4 = g.V4


@scenario("tls_client_unknown_ca", "websockets client that does not trust the server's CA "
          "(TLS 1.3): it closes right after the server's flight, no alert", (18118,),
          tls_version="TLS 1.3")
async def _tls_unknown_ca(run: Run) -> list[TlsExpect]:
    async with g.websockets_server(V4, 18118, "unknown-ca",
                                   ssl=server_context(run.pki.rsa)) as book:
        said = await wss_client(18118, "/chat", client_context(run, ca=run.pki.other_ca))
        await asyncio.sleep(0.2)
    return [TlsExpect(g.endpoint(V4, 18118), None, None, "failed", "tls_certificate_rejected",
                      "the client's ssl refused the chain (unknown CA) and closed TCP after the "
                      "server's flight without an alert or any application data",
                      g.version("websockets") + " (trusting another CA)",
                      g.version("websockets"), said, tls_said(run, book))]


@scenario("tls12_curl_wrong_host", "curl --tls-max 1.2 asking for a name the certificate does "
          "not cover", (18119,), tls_version="TLS 1.2")
async def _tls_curl_wrong_host(run: Run) -> list[TlsExpect]:
    async with g.websockets_server(V4, 18119, "curl-host",
                                   ssl=server_context(run.pki.rsa)) as book:
        status, said = await curl_tls(run, OTHER_NAME, 18119, "/chat", "--tls-max", "1.2",
                                      "--tlsv1.2", *curl_ws_headers())
        await asyncio.sleep(0.2)
    return [TlsExpect(g.endpoint(V4, 18119), None, None, "failed",
                      "tls_certificate_name_mismatch",
                      f"the certificate names {NAME}, curl asked for {OTHER_NAME} (SNI); curl "
                      "finished the handshake, then refused the name and hung up before "
                      "sending its request", g.curl_version() + " (--tls-max 1.2)",
                      g.version("websockets"), said, tls_said(run, book),
                      notes=["tls_certificate_rejected"])]


@scenario("tls12_client_alert_unknown_ca", "openssl s_client -verify_return_error trusting "
          "another CA, TLS 1.2: fatal alert unknown_ca", (18120,), tls_version="TLS 1.2")
async def _tls_alert_unknown_ca(run: Run) -> list[TlsExpect]:
    async with g.websockets_server(V4, 18120, "alert-ca",
                                   ssl=server_context(run.pki.rsa)) as book:
        said = await s_client_alone(run, 18120, "-tls1_2", "-CAfile", str(run.pki.other_ca),
                                    "-verify_return_error")
        await asyncio.sleep(0.2)
    return [TlsExpect(g.endpoint(V4, 18120), None, None, "failed", "tls_certificate_rejected",
                      "the client sent the fatal alert unknown_ca after the server's "
                      "Certificate", openssl_version() + " s_client -verify_return_error",
                      g.version("websockets"), said, tls_said(run, book))]


@scenario("tls_nginx_wrong_sni", "nginx with ssl_reject_handshake on for unknown names; the "
          "client asks for another name: fatal alert unrecognized_name", (18121,))
async def _tls_wrong_sni(run: Run) -> list[TlsExpect]:
    servers = (f"""
    server {{
        listen {V4}:18121 ssl default_server;
        ssl_reject_handshake on;
    }}""" + nginx_ssl_server(run, 18121, "        location / { return 204; }"))
    async with nginx_tls(18121, servers) as log:
        said = await wss_client(18121, "/chat", client_context(run),
                                server_hostname=OTHER_NAME)
        await asyncio.sleep(0.2)
        proxy = log()
    return [TlsExpect(g.endpoint(V4, 18121), None, None, "failed", "tls_unrecognized_name",
                      f"SNI {OTHER_NAME} matches no server_name; nginx answered the "
                      "ClientHello with the fatal alert unrecognized_name",
                      g.version("websockets") + f" (server_hostname={OTHER_NAME})",
                      g.nginx_version() + " (ssl_reject_handshake on)", said, proxy)]


@scenario("tls12_cert_expired", "websockets client, TLS 1.2, server certificate expired "
          "yesterday: the chain is in cleartext; the client closes after the server's flight",
          (18122,), tls_version="TLS 1.2")
async def _tls_expired(run: Run) -> list[TlsExpect]:
    async with g.websockets_server(V4, 18122, "expired",
                                   ssl=server_context(run.pki.expired)) as book:
        said = await wss_client(18122, "/chat", client_context(run, maximum=TLS12))
        await asyncio.sleep(0.2)
    return [TlsExpect(g.endpoint(V4, 18122), None, None, "failed", "tls_certificate_expired",
                      "the leaf's notAfter is before the capture; Python's ssl refused it and "
                      "closed TCP without an alert", g.version("websockets") + " (max TLS 1.2)",
                      g.version("websockets"), said, tls_said(run, book),
                      notes=["tls_certificate_rejected"])]


@scenario("tls12_cert_wrong_name", "websockets client, TLS 1.2, certificate for another name "
          "than the SNI: the client closes after the server's flight", (18123,),
          tls_version="TLS 1.2")
async def _tls_wrong_name(run: Run) -> list[TlsExpect]:
    async with g.websockets_server(V4, 18123, "wrong-name",
                                   ssl=server_context(run.pki.wrong_name)) as book:
        said = await wss_client(18123, "/chat", client_context(run, maximum=TLS12))
        await asyncio.sleep(0.2)
    return [TlsExpect(g.endpoint(V4, 18123), None, None, "failed",
                      "tls_certificate_name_mismatch",
                      f"the certificate covers only {OTHER_NAME}; the SNI is {NAME}; Python's "
                      "ssl refused it and closed TCP without an alert",
                      g.version("websockets") + " (max TLS 1.2)", g.version("websockets"), said,
                      tls_said(run, book), notes=["tls_certificate_rejected"])]


@scenario("tls_plain_http_to_tls_port", "a ws:// (cleartext) WebSocket handshake sent to "
          "nginx's TLS port: 400 The plain HTTP request was sent to HTTPS port", (18124,),
          keylog=False)
async def _tls_plain_to_tls(run: Run) -> list[TlsExpect]:
    servers = nginx_ssl_server(run, 18124, "        location / { return 204; }")
    async with nginx_tls(18124, servers) as log:
        said = await g.websockets_client(f"ws://{V4}:18124/chat")
        await asyncio.sleep(0.2)
        proxy = log()
    return [TlsExpect(g.endpoint(V4, 18124), "GET", "/chat", "failed",
                      "tls_plain_http_to_tls_port",
                      "cleartext HTTP to a TLS port; nginx answered in cleartext with its 400 "
                      "page", g.version("websockets") + " (ws:// to a wss:// port)",
                      g.nginx_version() + " (listen ssl)", said, proxy, status=400)]


@scenario("tls_client_hello_to_aiohttp", "an aiohttp wss:// client to a cleartext aiohttp "
          "server: the ClientHello is answered with a cleartext 400", (18125,))
async def _tls_hello_to_aiohttp(run: Run) -> list[TlsExpect]:
    async with aiohttp_tls_server(18125, None) as book:
        said = await aiohttp_wss_client(f"wss://{NAME}:18125/ws", client_context(run))
        await asyncio.sleep(0.2)
    return [TlsExpect(g.endpoint(V4, 18125), None, None, "failed",
                      "tls_client_hello_to_cleartext_port",
                      "a ClientHello to a cleartext HTTP port; aiohttp answered 400 in "
                      "cleartext", g.version("aiohttp") + " (wss:// to a ws:// port)",
                      g.version("aiohttp") + " (no TLS)", said,
                      book.said() or "(nothing logged)", status=400)]


@scenario("tls_client_hello_to_websockets", "a websockets wss:// client to a cleartext "
          "websockets server: the ClientHello is not HTTP; the server closes", (18126,))
async def _tls_hello_to_websockets(run: Run) -> list[TlsExpect]:
    async with g.websockets_server(V4, 18126, "cleartext") as book:
        said = await wss_client(18126, "/chat", client_context(run))
        await asyncio.sleep(0.2)
    return [TlsExpect(g.endpoint(V4, 18126), None, None, "no_response", "tls_no_server_hello",
                      "a ClientHello to a cleartext WebSocket port; websockets could not parse "
                      "it as HTTP and hung up without a byte: on the wire, a server that never "
                      "sent a ServerHello (a cleartext port is one usual cause)",
                      g.version("websockets") + " (wss:// to a ws:// port)",
                      g.version("websockets") + " (no TLS)", said, g.websockets_rejection(book))]


@scenario("tls_mtls_no_client_cert", "servers that require a client certificate and a client "
          "without one: websockets over TLS 1.3 and TLS 1.2 (the server closes), nginx "
          "ssl_verify_client on (400 over TLS)", (18127, 18128, 18133))
async def _tls_mtls(run: Run) -> list[TlsExpect]:
    expects = []
    for port, maximum in ((18127, None), (18128, TLS12)):
        context = server_context(run.pki.rsa, require_client_cert=run.pki.ca)
        async with g.websockets_server(V4, port, f"mtls-{port}", ssl=context) as book:
            said = await wss_client(port, "/chat", client_context(run, maximum=maximum))
            await asyncio.sleep(0.2)
        tls = "TLS 1.2" if maximum else "TLS 1.3"
        # In TLS 1.3 the client finishes first and sends its request; the server refuses it
        # once it has read the client's empty Certificate.
        method, path = (None, None) if maximum else ("GET", "/chat")
        expects.append(TlsExpect(
            g.endpoint(V4, port), method, path, "failed", "tls_client_certificate_required",
            f"{tls}: the server asked for a certificate (CertificateRequest), the client had "
            "none and sent an empty Certificate; the server closed without an alert"
            + (" after the client's request arrived (TLS 1.3 lets the client finish first)"
               if not maximum else ""),
            g.version("websockets") + f" (no client certificate, {tls})",
            g.version("websockets") + " (CERT_REQUIRED)", said, tls_said(run, book)))
    servers = nginx_ssl_server(run, 18133, "        location / { return 204; }",
                               extra=f"        ssl_client_certificate {run.pki.ca};\n"
                                     "        ssl_verify_client on;")
    async with nginx_tls(18133, servers) as log:
        said = await wss_client(18133, "/chat", client_context(run))
        await asyncio.sleep(0.2)
        proxy = log()
    expects.append(TlsExpect(
        g.endpoint(V4, 18133), "GET", "/chat", "failed", "tls_client_certificate_required",
        "TLS 1.3: nginx finished the handshake without a client certificate, then answered "
        "the request with 400 No required SSL certificate was sent",
        g.version("websockets") + " (no client certificate)",
        g.nginx_version() + " (ssl_verify_client on)", said, proxy, status=400))
    return expects


@scenario("tls_nginx_no_common_alpn", "a client offering only an unknown ALPN protocol to "
          "nginx (http/1.1, h2): fatal alert no_application_protocol", (18129,))
async def _tls_no_alpn(run: Run) -> list[TlsExpect]:
    servers = nginx_ssl_server(run, 18129, "        location / { return 204; }")
    async with nginx_tls(18129, servers) as log:
        said = await wss_client(18129, "/chat", client_context(run, alpn=["x-unknown/1"]))
        await asyncio.sleep(0.2)
        proxy = log()
    return [TlsExpect(g.endpoint(V4, 18129), None, None, "failed",
                      "tls_no_application_protocol",
                      "no protocol in common: nginx refused the ClientHello with "
                      "no_application_protocol (RFC 7301 §3.2)",
                      g.version("websockets") + " (ALPN x-unknown/1 only)",
                      g.nginx_version(), said, proxy)]


@scenario("tls_version_mismatch", "a client limited to TLS 1.2 and nginx with ssl_protocols "
          "TLSv1.3: fatal alert protocol_version", (18130,))
async def _tls_version(run: Run) -> list[TlsExpect]:
    servers = nginx_ssl_server(run, 18130, "        location / { return 204; }",
                               extra="        ssl_protocols TLSv1.3;")
    async with nginx_tls(18130, servers) as log:
        said = await wss_client(18130, "/chat", client_context(run, maximum=TLS12))
        await asyncio.sleep(0.2)
        proxy = log()
    return [TlsExpect(g.endpoint(V4, 18130), None, None, "failed", "tls_protocol_version",
                      "client max TLS 1.2, server TLS 1.3 only: nginx refused the ClientHello "
                      "with protocol_version", g.version("websockets") + " (max TLS 1.2)",
                      g.nginx_version() + " (ssl_protocols TLSv1.3)", said, proxy)]
