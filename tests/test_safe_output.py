"""Safe output in every format: capture text cannot drive a terminal, secrets stay hidden.

A capture is attacker-controlled input: a header value, a path or a close reason may carry ANSI
escape sequences (ESC, or the one-byte C1 CSI 0x9b) and BELs. Every format must print them as
visible escapes. Credentials (Authorization, cookies, ``?token=``) are redacted unless
``--show-secrets``. CSV cells that a spreadsheet would run as a formula are defused.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from markupsafe import escape

from analyzer.report.safe import (
    REDACTED,
    csv_cell,
    markdown_text,
    neutralise,
    redact_header,
    redact_target,
)
from tests.builder import (
    DEFAULT_WS_KEY,
    Conversation,
    http_request,
    http_response,
    websocket_request,
    websocket_response,
    write_pcap,
)
from tests.helpers import analyze_pcap, run_cli
from tests.test_html import unpacked

CAPTURES = Path(__file__).resolve().parent.parent / "captures"

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("table", "json", "jsonl", "csv", "markdown", "html")
VIEWS = [("-F", f) for f in FORMATS] + [("--detail",)]
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\x85")

BEARER = "s3cr3t-bearer-value"
COOKIE = "c00kie-secret-value"


# -- the pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "shown"), [
    ("a\x1b[31mred\x07", "a\\x1b[31mred\\x07"),
    ("cr\rlf\nnul\x00tab\tdel\x7f", "cr\\x0dlf\\x0anul\\x00tab\\x09del\\x7f"),
    ("c1 \x9b2J \x85", "c1 \\x9b2J \\x85"),
    ("bidi \u202eevil\u2066", "bidi \\u202eevil\\u2066"),
    ("café ünïcode 日本 😀", "café ünïcode 日本 😀"),  # printable Unicode is kept
    # wire bytes arrive one character per byte: valid UTF-8 is shown as its characters
    ("/caf\xc3\xa9 \xe6\x97\xa5", "/café 日"),
    ("\xe2\x80\xaeevil \xc2\x85", "\\u202eevil \\x85"),  # still escaped once decoded
    ("caf\xe9", "café"),  # latin-1, not UTF-8: as it was
    ("file\udcff.pcap", "file\\udcff.pcap"),  # a file name that is not UTF-8
])
def test_neutralise(raw: str, shown: str) -> None:
    assert neutralise(raw) == shown


@pytest.mark.parametrize(("text", "shown"), [
    ("<img src=x onerror=alert(1)>", "\\<img src=x onerror=alert(1)\\>"),
    ("![t](http://evil/t.png)", "!\\[t\\](http://evil/t.png)"),
    ("a|b & `c`", "a\\|b \\& \\`c\\`"),
    ("\\<b>", "\\\\\\<b\\>"),  # a backslash cannot undo the escape after it
    (f"GET /?token={REDACTED} \\x1b", f"GET /?token={REDACTED} \\x1b"),  # left as it reads
])
def test_markdown_text(text: str, shown: str) -> None:
    assert markdown_text(text) == shown


@pytest.mark.parametrize(("cell", "shown"), [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("GET", "GET"), ("a=b", "a=b"), ("", ""),
])
def test_csv_cell(cell: str, shown: str) -> None:
    assert csv_cell(cell) == shown


@pytest.mark.parametrize(("target", "shown"), [
    ("/chat?token=abc", f"/chat?token={REDACTED}"),
    ("/chat?room=1&TOKEN=abc&x=2", f"/chat?room=1&TOKEN={REDACTED}&x=2"),
    ("/?access_token=a&api_key=b&apikey=c&key=d&auth=e", f"/?access_token={REDACTED}&api_key="
     f"{REDACTED}&apikey={REDACTED}&key={REDACTED}&auth={REDACTED}"),
    ("/?password=p&secret=s&sig=g&signature=h&jwt=j&session=k", f"/?password={REDACTED}&secret="
     f"{REDACTED}&sig={REDACTED}&signature={REDACTED}&jwt={REDACTED}&session={REDACTED}"),
    ("/?monkey=1&tokens=2&room=key", "/?monkey=1&tokens=2&room=key"),  # whole names only
    ("http://user:pw@example.com/ws", f"http://{REDACTED}@example.com/ws"),
    ("/chat", "/chat"),
    # a value may hold "?" (a query's may): what follows a path parameter goes with it
    ("/app/chat;jsessionid=0A1B2C?room=1", f"/app/chat;jsessionid={REDACTED}"),
    ("/?PHPSESSID=a&sessionid=b&session_id=c", f"/?PHPSESSID={REDACTED}&sessionid="
     f"{REDACTED}&session_id={REDACTED}"),
    ("/socket.io/?EIO=4&transport=websocket&sid=Cl5l", "/socket.io/?EIO=4&transport=websocket"
     "&sid=Cl5l"),  # Engine.IO's transport session: followed across requests, not a login
    ("/?token=a\"b)c&x=1", f"/?token={REDACTED}&x=1"),  # quotes and ')' are part of a value
    ("/?%74oken=a&%2574OKEN=b", f"/?%74oken={REDACTED}&%2574OKEN={REDACTED}"),  # encoded names
    ("/?%74okens=a", "/?%74okens=a"),
    ("/?id_token=a&client_secret=b&refresh_token=c", f"/?id_token={REDACTED}&client_secret="
     f"{REDACTED}&refresh_token={REDACTED}"),
    ("/o.bin?X-Amz-Credential=AKIA&X-Amz-Signature=s&X-Amz-Security-Token=t",
     f"/o.bin?X-Amz-Credential=AKIA&X-Amz-Signature={REDACTED}&X-Amz-Security-Token={REDACTED}"),
    ("/cb#access_token=a&token_type=bearer", f"/cb#access_token={REDACTED}&token_type=bearer"),
    ("https://tok3n@github.com/x", f"https://{REDACTED}@github.com/x"),  # a token as user name
    ("//u:p@h/x", f"//{REDACTED}@h/x"),
    ("/?mail=a@b.example", "/?mail=a@b.example"),
    ("/?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln&x=1", f"/?t={REDACTED}&x=1"),  # a JWT
])
def test_redact_target(target: str, shown: str) -> None:
    assert redact_target(target) == shown


@pytest.mark.parametrize(("name", "value", "shown"), [
    ("Authorization", "Bearer abc.def", f"Bearer {REDACTED}"),
    ("proxy-authorization", "Basic dXNlcjpwdw==", f"Basic {REDACTED}"),
    ("Authorization", "opaque", REDACTED),
    ("Cookie", "sid=1; theme=dark", f"sid={REDACTED}; theme={REDACTED}"),
    ("Set-Cookie", "sid=1; Path=/; HttpOnly", f"sid={REDACTED}; Path=/; HttpOnly"),
    ("Location", "/login?next=/&token=t", f"/login?next=/&token={REDACTED}"),
    ("Sec-WebSocket-Key", DEFAULT_WS_KEY, DEFAULT_WS_KEY),  # a nonce, not a secret
    ("Host", "example.com", "example.com"),
    ("X-Amz-Security-Token", "FwoGZXIvYXdzE", REDACTED),
    # Kubernetes: only the token after the bearer subprotocol's name goes
    ("Sec-WebSocket-Protocol", "base64url.bearer.authorization.k8s.io.dG9rZW4, channel.k8s.io",
     f"base64url.bearer.authorization.k8s.io.{REDACTED}, channel.k8s.io"),
    ("Sec-WebSocket-Protocol", "v4.channel.k8s.io, base64.channel.k8s.io",
     "v4.channel.k8s.io, base64.channel.k8s.io"),
    ("Referer", "https://u:pw@app.example/#id_token=x", f"https://{REDACTED}@app.example/#id_token"
     f"={REDACTED}"),
])
def test_redact_header(name: str, value: str, shown: str) -> None:
    assert redact_header(name, value) == shown


# -- through the command line --------------------------------------------------------------


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A switch whose request carries a token, a bearer token and a cookie; and a plain GET
    (its finding quotes the path) rejected with a 400 whose body echoes the bearer token."""
    good = Conversation(client=("10.0.0.1", 50000), server=("10.0.0.2", 8080),
                        start=1_700_000_000)
    good.handshake()
    good.client(websocket_request("example.com", "/chat?token=abc&room=1", extra_headers=[
        ("Authorization", f"Bearer {BEARER}"), ("Cookie", f"sid={COOKIE}; theme=dark")]))
    good.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    good.client_ws_close(1000, delay=3.0)
    good.server_ws_close(1000)
    good.client_fin()
    good.server_fin()
    plain = Conversation(client=("10.0.0.3", 50001), server=("10.0.0.2", 8080),
                         start=1_700_000_010)
    plain.handshake()
    plain.client(http_request("GET", "/chat?token=abc", [
        ("Host", "example.com"), ("Authorization", f"Bearer {BEARER}")]))
    body = f"invalid token {BEARER}".encode()
    plain.server(http_response(400, "No WebSocket Upgrade header found", [
        ("Content-Length", str(len(body))), ("Set-Cookie", f"sid={COOKIE}; Path=/")], body),
        delay=0.001)
    plain.server_fin()
    plain.client_fin()
    path = tmp_path_factory.mktemp("safe") / "secrets.pcap"
    write_pcap(path, [good, plain])
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ANSI escapes and BELs in a header value, in the path and in a close reason.

    A request target cannot hold ESC or BEL (the request would not be HTTP at all), but bytes
    from 0x80 can: 0x9b is the one-byte C1 CSI that starts an escape sequence on 8-bit
    terminals, 0x85 is NEL.
    """
    conv = Conversation(client=("10.0.0.5", 50005), server=("10.0.0.2", 8080),
                        start=1_700_000_000)
    conv.handshake()
    conv.client(websocket_request(
        "example.com", "/\x9b31mfeed\x85x", omit=("Upgrade",),
        extra_headers=[("Upgrade", "websocket, x\x1b[31m\x07"),
                       ("User-Agent", "evil\x1b]8;;http://x\x07link")]))
    conv.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    conv.server_ws_close(1008, "bye\x1b]0;owned\x07", delay=0.003)
    conv.client_ws_close(1008)
    conv.server_fin()
    conv.client_fin()
    formula = Conversation(client=("10.0.0.6", 50006), server=("10.0.0.2", 8080),
                           start=1_700_000_001)
    formula.handshake()
    formula.client(websocket_request('=HYPERLINK("http://evil")', "/"))
    formula.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    formula.client_fin(delay=3)
    formula.server_fin()
    path = tmp_path_factory.mktemp("safe") / "hostile.pcap"
    write_pcap(path, [conv, formula])
    return path


def _out(path: Path, *args: str) -> str:
    result = run_cli("read", path, *args)
    assert result.exit_code == 0, result.output
    # the HTML page packs the postmortems (gzip, base64): check them as the browser shows them
    return unpacked(result.stdout) if "html" in args else result.stdout


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v[-1].lstrip("-"))
def test_secrets_redacted_by_default(secrets: Path, view: tuple[str, ...]) -> None:
    text = _out(secrets, *view)
    assert "token=abc" not in text and BEARER not in text and COOKIE not in text
    assert f"token={REDACTED}" in text


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v[-1].lstrip("-"))
def test_secrets_shown_when_asked(secrets: Path, view: tuple[str, ...]) -> None:
    text = _out(secrets, *view, "--show-secrets")
    assert "token=abc" in text and REDACTED not in text


def test_detail_redacts_headers_and_keeps_what_they_were(secrets: Path) -> None:
    text = _out(secrets, "--detail")
    assert f"Authorization: Bearer {REDACTED}" in text
    assert f"Cookie: sid={REDACTED}; theme={REDACTED}" in text
    assert f"Set-Cookie: sid={REDACTED}; Path=/" in text
    assert f"Sec-WebSocket-Key: {DEFAULT_WS_KEY}" in text  # needed to judge the Accept
    assert f"invalid token {REDACTED}" in text  # the body echoed the credential
    shown = _out(secrets, "--detail", "--show-secrets")
    assert f"Authorization: Bearer {BEARER}" in shown
    assert f"Cookie: sid={COOKIE}; theme=dark" in shown
    assert f"invalid token {BEARER}" in shown


def test_json_redacts_path_and_reason_but_not_host(secrets: Path) -> None:
    attempts = json.loads(_out(secrets, "-F", "json"))["attempts"]
    assert attempts[0]["path"] == f"/chat?token={REDACTED}&room=1"
    assert f"(plain GET /chat?token={REDACTED};" in attempts[1]["reason"]
    assert attempts[0]["host"] == "example.com"


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v[-1].lstrip("-"))
def test_controls_neutralised_in_every_format(hostile: Path, view: tuple[str, ...]) -> None:
    text = _out(hostile, *view)
    for control in RAW_CONTROLS:
        assert control not in text, (control, text)

    def shown(value: str) -> str:  # as the format writes it: JSON doubles the backslashes
        if view[-1] == "html":
            return str(escape(value))  # and HTML escapes quotes and brackets
        return json.dumps(value)[1:-1] if view[-1] in ("json", "jsonl") else value

    assert shown("x\\x1b[31m\\x07") in text  # the Upgrade header's value, as offered
    assert shown("/\\x9b31mfeed\\x85x") in text  # the path
    if view[-1] not in ("table", "markdown"):  # the table clips the reason before it
        assert shown("'bye\\x1b]0;owned\\x07'") in text  # the close reason


def test_controls_neutralised_for_jq_raw_output(hostile: Path) -> None:
    # `jq -r .attempts[].reason` prints the decoded string: it must be harmless too
    (first, _) = json.loads(_out(hostile, "-F", "json"))["attempts"]
    strings = [first["path"], first["reason"], *first["offered"],
               *(f["found"] for f in first["findings"])]
    for value in strings:
        assert not any(c in value for c in RAW_CONTROLS), value


def test_detail_neutralises_header_lines_and_the_ladder(hostile: Path) -> None:
    text = _out(hostile, "--attempt", "1")
    assert "  User-Agent: evil\\x1b]8;;http://x\\x07link\n" in text
    assert "<-- Close 1008 'bye\\x1b]0;owned\\x07', unmasked" in text
    coloured = run_cli("read", hostile, "--attempt", "1", "--color").stdout
    # the only escapes are our own colour codes
    assert "\x07" not in coloured and "\x1b]" not in coloured and "\x1b[31m" not in coloured


def test_csv_formula_cells_are_prefixed(hostile: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(_out(hostile, "-F", "csv"))))
    assert rows[1]["host"] == "'=HYPERLINK(\"http://evil\")"
    assert rows[0]["method"] == "GET"
    # JSON keeps the value as it was (only control characters are escaped)
    attempts = json.loads(_out(hostile, "-F", "json"))["attempts"]
    assert attempts[1]["host"] == '=HYPERLINK("http://evil")'


# -- every format, every output path, through the real command -----------------------------

# Each secret is a byte string that must appear nowhere in any output unless --show-secrets.
SECRETS = {
    "pct": "PCTENCODEDTOKEN01", "id": "IDTOKENVALUE02", "client": "CLIENTSECRET03",
    "amzq": "AMZQUERYTOKEN04", "amzsig": "AMZSIGNATURE05", "amzh": "AMZHEADERTOKEN06",
    "k8s": "K8SBEARERTOKEN07", "jwtp": "JWTPARAMVALUE08", "locpw": "LOCPASSWORD09",
    "locpass": "LOCPASSPARAM10", "locjwt": "LOCJWTPARAM11", "frag": "FRAGMENTTOKEN12",
    "storm": "STORMTOKEN13", "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxNCJ9.SIGJWT14",
    "bearer": BEARER, "cookie": COOKIE,
}
K8S_PROTOCOLS = f"base64url.bearer.authorization.k8s.io.{SECRETS['k8s']}, channel.k8s.io"


@pytest.fixture(scope="module")
def full_of_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Secrets in every place a report quotes: a Kubernetes exec switch (token in the
    subprotocol, percent-encoded and AWS parameters in the target, headers); the same rejected
    with a body echoing the token; a redirect with credentials in its Location followed by the
    client; one to wss:// (the Location itself is the last step); and a storm of three."""
    s = SECRETS
    target = (f"/api/exec?%74oken={s['pct']}&id_token={s['id']}&client_secret={s['client']}"
              f"&X-Amz-Security-Token={s['amzq']}&X-Amz-Signature={s['amzsig']}")
    headers = [("Authorization", f"Bearer {s['bearer']}"), ("Cookie", f"sid={s['cookie']}"),
               ("X-Amz-Security-Token", s["amzh"]), ("X-Trace", s["jwt"])]
    convs = []

    def conv(n: int, at: float) -> Conversation:
        c = Conversation(client=("10.0.0.1", 50000 + n), server=("10.0.0.2", 8080),
                         start=1_700_000_000 + at)
        c.handshake()
        convs.append(c)
        return c

    switch = conv(0, 0)
    switch.client(websocket_request("k8s.example", target, protocols=[K8S_PROTOCOLS],
                                    extra_headers=headers))
    switch.server(websocket_response(DEFAULT_WS_KEY, protocol="channel.k8s.io"), delay=0.002)
    switch.client_ws_close(1000, delay=3)  # a Close handshake: it succeeded (not dropped)
    switch.server_ws_close(1000)
    switch.client_fin()
    switch.server_fin()
    refused = conv(1, 1)
    refused.client(websocket_request("k8s.example", target, protocols=[K8S_PROTOCOLS],
                                     extra_headers=headers))
    body = f"token {s['k8s']} expired; jwt {s['jwt']}".encode()
    refused.server(websocket_response(status=403, reason="Forbidden", body=body,
                                      omit=("Upgrade", "Connection", "Sec-WebSocket-Accept")))
    refused.server_fin()
    refused.client_fin()
    new = f"/new?password={s['locpass']}&jwt={s['locjwt']}"
    moved = conv(2, 2)
    moved.client(websocket_request("example.com", f"/old?jwt={s['jwtp']}"))
    moved.server(http_response(302, "Found", [
        ("Location", f"http://user:{s['locpw']}@example.com{new}#access_token={s['frag']}"),
        ("Content-Length", "0")]))
    follow = conv(3, 2.5)
    follow.client(websocket_request("example.com", new))
    follow.server(websocket_response(DEFAULT_WS_KEY), delay=0.002)
    away = conv(4, 4)
    away.client(websocket_request("example.com", "/elsewhere"))
    away.server(http_response(301, "Moved Permanently", [
        ("Location", f"wss://user:{s['locpw']}@chat.example/ws?password={s['locpass']}"
                     f"#id_token={s['frag']}"), ("Content-Length", "0")]))
    for n in range(3):
        storm = conv(5 + n, 6 + n)
        storm.client(websocket_request("example.com", f"/storm?token={s['storm']}"))
        storm.server(http_response(400, "Bad Request", [("Content-Length", "0")]))
    path = tmp_path_factory.mktemp("safe") / "full-of-secrets.pcap"
    write_pcap(path, convs)
    return path


def _run(path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`python3 -m analyzer read` as a user runs it; output as bytes, both streams."""
    done = subprocess.run([sys.executable, "-m", "analyzer", "read", str(path), *args],
                          capture_output=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v[-1].lstrip("-"))
def test_no_secret_byte_in_any_format(full_of_secrets: Path, view: tuple[str, ...]) -> None:
    done = _run(full_of_secrets, *view)
    # the HTML page packs its postmortems (gzip, base64): read them as the browser shows them
    out = unpacked(done.stdout.decode()).encode() if view[-1] == "html" else done.stdout
    for name, secret in SECRETS.items():
        assert secret.encode() not in out + done.stderr, (name, out.decode())
    text = out.decode()
    # the summary lines that used to leak, and the evidence that must stay readable
    if view[-1] != "jsonl":  # JSONL streams: its summary (on stderr) has no redirects
        assert ("Redirected" in text or '"redirects"' in text or "Redirects followed" in text
                or view[-1] == "csv")
    if view[-1] in ("table", "markdown", "--detail"):
        as_shown = markdown_text if view[-1] == "markdown" else str
        assert as_shown(f"Repeated: 3 x 10.0.0.1 -> 10.0.0.2:8080 GET /storm?token={REDACTED}"
                        ) in text
        assert f"wss://{REDACTED}@chat.example/ws?password={REDACTED}#id_token={REDACTED}" in text
    if view[-1] in ("json", "jsonl", "csv", "--detail"):
        assert "channel.k8s.io" in text


def test_secrets_shown_in_every_path_with_show_secrets(full_of_secrets: Path) -> None:
    shown = b"".join(_run(full_of_secrets, *view, "--show-secrets").stdout for view in VIEWS
                     if view[-1] != "html")
    page = unpacked(_run(full_of_secrets, "-F", "html", "--show-secrets").stdout.decode())
    assert all(secret in page for secret in SECRETS.values())
    for name, secret in SECRETS.items():
        assert secret.encode() in shown, name
    summary = json.loads(_run(full_of_secrets, "-F", "json", "--show-secrets").stdout)["summary"]
    assert summary["repeated"][0]["request"] == f"GET /storm?token={SECRETS['storm']}"
    assert any(SECRETS["locpw"] in step for c in summary["redirects"] for step in c["steps"])


def test_detail_keeps_the_subprotocol_names(full_of_secrets: Path) -> None:
    text = _run(full_of_secrets, "--attempt", "1").stdout.decode()
    assert (f"Sec-WebSocket-Protocol: base64url.bearer.authorization.k8s.io.{REDACTED}, "
            "channel.k8s.io") in text
    assert f"X-Amz-Security-Token: {REDACTED}" in text
    assert f"X-Trace: {REDACTED}" in text


def test_no_secret_byte_when_streamed_from_stdin(full_of_secrets: Path) -> None:
    # `read -` prints the table row by row and a streamed summary (report/stream.py)
    with open(full_of_secrets, "rb") as capture:
        done = subprocess.run([sys.executable, "-m", "analyzer", "read", "-"], stdin=capture,
                              capture_output=True, timeout=60, cwd=ROOT, check=True)
    assert b"Attempts: 8" in done.stdout and b"Repeated: 3 x" in done.stdout
    for name, secret in SECRETS.items():
        assert secret.encode() not in done.stdout + done.stderr, name


# Texts the redaction and neutralising passes change, and ones they leave alone.
_CLEANER_TEXTS = [
    "", "GET", "/chat", "example.com:8080", "Switching Protocols", "websocket",
    "/ws?token=abc123&room=1", "/ws?%74oken=abc123", "https://user:hunter22@host/x",
    "a\x1b[2Jb\x07c\x9bd", "\u202eevil", "caf\xc3\xa9", "caf\xe9", "\ud800",
    "base64url.bearer.authorization.k8s.io.c2VjcmV0dG9rZW4, chat",
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_part", "x=1; session=deadbeefcafe",
    "server sent Close 1008 (policy violation) 'bad key=abc' 3 ms after the 101",
]


def test_cleaner_text_equals_its_plain_twin() -> None:
    from analyzer.report import safe
    from analyzer.report.safe import Cleaner

    cleaners = [Cleaner(), Cleaner(show_secrets=True),
                Cleaner(secrets=("hunter22", "deadbeefcafe", "abc123"))]
    for cleaner in cleaners:
        for _ in range(2):  # the second round reads what the first remembered
            for text in _CLEANER_TEXTS:
                assert cleaner.text(text) == cleaner.text_plain(text), (cleaner, text)
    # past its bound the memory starts again: same results, bounded size
    plain = Cleaner()
    for n in range(safe._cleaned.limit + 10):
        text = f"/path/{n}?token=t{n}\x1b"
        assert plain.text(text) == plain.text_plain(text)
    assert len(safe._cleaned) <= safe._cleaned.limit


def test_cleaner_target_equals_its_plain_twin() -> None:
    from analyzer.report import safe
    from analyzer.report.safe import Cleaner

    long_target = "/ws?token=" + "x" * 600 + "\x1b"
    for cleaner in (Cleaner(), Cleaner(show_secrets=True), Cleaner(secrets=("abc123",))):
        for _ in range(2):  # the second round reads what the first remembered
            for text in [*_CLEANER_TEXTS, long_target]:
                assert cleaner.target(text) == cleaner.target_plain(text), (cleaner, text)
    assert long_target not in safe._targets  # too long to be kept
    plain = Cleaner()
    for n in range(safe._targets.limit + 10):
        text = f"/path/{n}?token=t{n}\x1b"
        assert plain.target(text) == plain.target_plain(text)
    assert len(safe._targets) <= safe._targets.limit


def test_cleaner_for_attempt_shares_the_plain_cleaner_only_without_secrets() -> None:
    """`Cleaner.for_attempt` gives every attempt without secret values one shared Cleaner:
    equal to the one it built before, and never to an attempt that carries a secret."""
    from analyzer.report.safe import Cleaner, secret_values

    seen = with_secrets = 0
    for path in sorted(CAPTURES.glob("*.pcap*")):
        for d in analyze_pcap(path):
            values = secret_values(d.attempt)
            assert Cleaner.for_attempt(d.attempt) == Cleaner(False, values)
            assert Cleaner.for_attempt(d.attempt, True) == Cleaner(True, ())
            with_secrets += bool(values)
            seen += 1
    assert seen > 100 and with_secrets > 0


@pytest.mark.parametrize("field", [
    ("Cookie", 'sid="QUOTEDCOOKIE01"'),  # RFC 6265 §4.1.1: a cookie-value may be quoted
    ("Cookie", "NAMELESSCOOKIE02"),  # a cookie without a name (RFC 6265 §5.2: all value)
    ("Authorization", "Bearer\tTABBEDBEARER03"),  # a tab after the scheme
], ids=["quoted cookie", "nameless cookie", "tab after the scheme"])
def test_a_credential_the_server_echoes_is_scrubbed_whatever_its_shape(
        tmp_path: Path, field: tuple[str, str]) -> None:
    """fuzzhunt: the header itself was redacted, but the value scrubbed from the free text
    that quotes it (a body echoing it) kept the DQUOTEs, was empty for a cookie without a
    name, or kept the scheme when a tab followed it: the body showed the credential."""
    secret = field[1].split("=")[-1].split("\t")[-1].strip('"')
    conv = Conversation()
    conv.handshake()
    conv.client(websocket_request("example.com", "/chat", extra_headers=[field]))
    conv.server(http_response(403, "Forbidden", [("Content-Length", str(len(secret) + 12))],
                              body=f"bad session {secret}".encode()))
    conv.server_fin()
    conv.client_fin()
    path = tmp_path / "echoed.pcap"
    write_pcap(path, [conv])
    for view in VIEWS:
        out = run_cli("read", path, *view).output
        out = unpacked(out) if view[-1] == "html" else out
        assert secret not in out, (view, out)
    detail = run_cli("read", path, "--detail").output
    assert f"bad session {REDACTED}" in detail
    assert secret in run_cli("read", path, "--detail", "--show-secrets").output


def test_a_credential_field_without_its_colon_is_redacted_in_the_heads(tmp_path: Path) -> None:
    """fuzzhunt: a head line that is not a field (no colon) is shown as it came, as evidence
    of the malformed head; "Authorization Bearer <token>" showed the token."""
    conv = Conversation()
    conv.handshake()
    conv.client(websocket_request("example.com", "/chat", extra_headers=[
        ("Authorization Bearer NOCOLONBEARER04\r\nX-Next", "1")]))
    conv.client_fin()
    conv.server_fin()
    path = tmp_path / "no-colon.pcap"
    write_pcap(path, [conv])
    detail = run_cli("read", path, "--detail").output
    assert "NOCOLONBEARER04" not in detail
    assert f"  Authorization Bearer {REDACTED}\n" in detail
    page = unpacked(run_cli("read", path, "-F", "html").output)
    assert "NOCOLONBEARER04" not in page and "Authorization Bearer" in page
    assert "Authorization Bearer NOCOLONBEARER04" in run_cli("read", path, "--detail",
                                                             "--show-secrets").output
