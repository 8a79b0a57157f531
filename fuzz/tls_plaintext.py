"""Decrypted TLS as fuzz input: the bundled keyed captures' records opened, their plaintext
mutated, sealed again with the same keys, and written back as a capture.

The `tls` target mutates ciphertext, so nearly every mutation fails authentication and the
readers behind decryption (HTTP/1 heads and bodies, the WebSocket watch, life after the switch,
HTTP/2) never see it. Here the input is the plaintext itself.

How it works: each keyed TLS connection of the bundled captures is a *template*: its TCP ends,
its key log, its traffic keys (made with the analyzer's own key schedule, tls/keys.py) and the
records before any protected one (ClientHello, ServerHello), kept as they were. The fuzz input
says what follows, one *entry* per record, in the order they were sent:

    input  = template byte, shape byte, then entries each led by MAGIC
    entry  = flags byte, content type byte, plaintext (TLS 1.2 AES-GCM: the record's 8-byte
             explicit nonce first, any value; shorter entries take the sequence number)
    flags  = bit 0: sent by the server; bit 1: raw (the bytes go out as they are: an
             unprotected record such as a ChangeCipherSpec, or junk); bits 2-3: TLS 1.3 key
             phase (0 handshake keys, 1 application keys); bit 4: in the same TCP segment as
             the sender's previous entry
    shape  = bits 0-1: segment size (1448, 97, 30000); bits 2-3: how the connection ends
             (both FIN, client RST, nothing, server FIN); bits 4-5: time between packets
             (1 ms, 0.3 s, 3 s: the longer ones take a connection past its watch into life)

A protected entry becomes one record (or several, 2^14 bytes of plaintext each) sealed with
`cryptography`'s AEAD: TLS 1.3 (RFC 8446 §5.2) with the inner content type after the
plaintext, nonce `iv XOR sequence`, the record header as additional data; TLS 1.2 AES-GCM
(RFC 5288 §3) with the entry's explicit nonce and `seq || type || version || length` as
additional data; ChaCha20-Poly1305 (RFC 7905 §2) with the TLS 1.3-style nonce.
Sequence numbers count per sender and key phase; a TLS 1.3 KeyUpdate sent in an entry moves
its sender to the next secret, as the analyzer does. The records are cut into TCP segments
with sequence numbers that follow their lengths, in a classic pcap (Ethernet, IPv4: the
link type the compiled skip reads, so its states that open records are fuzzed too).

A template's seed (`seed`) is its own records opened with the analyzer's RecordOpener; built
back (`build`), it gives each direction's bytes exactly as captured (tests/test_fuzz.py).
Only TLS 1.3 and TLS 1.2 AEAD connections are templates (CBC suites are not).
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from analyzer.decode.decoder import decode_frame
from analyzer.decode.segment import Segment
from analyzer.source import read_bytes
from analyzer.tls.decrypt import RecordOpener, _make_aead
from analyzer.tls.keylog import KeyStore
from analyzer.tls.keys import (
    TrafficKeys,
    tls12_traffic_keys,
    tls13_next_secret,
    tls13_traffic_keys,
)
from analyzer.tls.records import made_record
from analyzer.tls.session import TlsSession
from analyzer.tls.suites import SUITES, Cipher, Suite
from analyzer.tls.values import DecryptError

CAPTURES = Path(__file__).parents[1] / "captures"
MAGIC = b"\xa7\x1c\xe2\x5d"  # leads each entry: mutations inside one plaintext stay there

SERVER, RAW, PHASE_SHIFT, COALESCE = 0x01, 0x02, 2, 0x10
_MAX_PLAIN = 1 << 14  # RFC 8446 §5.1, RFC 5246 §6.2.1: a record's plaintext at most 2^14
_SEGMENT_SIZES = (1448, 97, 30000)
_TIME_STEPS = (0.001, 0.3, 3.0)  # seconds between packets: past the 2 s watch into life
# Each frame's Ethernet header (LINKTYPE_ETHERNET; a raw-IPv4 capture, LINKTYPE_RAW, never
# went through the compiled skip, whose states open records in life)
_ETHERNET = bytes(6) + bytes((2, 0, 0, 0, 0, 1)) + b"\x08\x00"
_APPLICATION, _HANDSHAKE, _CHANGE_CIPHER_SPEC = 23, 22, 20
_KEY_UPDATE = 24  # handshake message type (RFC 8446 §4.6.3)
_LABELS = (("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"),
           ("SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"))


@dataclass(frozen=True, slots=True)
class Phase:
    """One sender's keys for one key phase: the secret (TLS 1.3) and what it made."""

    keys: TrafficKeys
    secret: bytes = b""


@dataclass(frozen=True, slots=True)
class Template:
    """A keyed TLS connection of a bundled capture, ready to take new plaintext."""

    name: str  # capture file and connection, for messages
    keylog: bytes
    suite: Suite
    version: int  # 0x0304, or the TLS 1.2 record version
    ends: tuple[tuple[bytes, int], tuple[bytes, int]]  # (IPv4 address, port): client, server
    prefix: tuple[tuple[int, bytes, bool], ...]  # (side, record bytes, coalesce), as captured
    phases: tuple[tuple[Phase, ...], tuple[Phase, ...]]  # per side: its key phases
    streams: tuple[bytes, bytes]  # each direction's bytes as captured (client, server)
    seed_entries: tuple[bytes, ...] = field(default=())


# --- sealing -----------------------------------------------------------------------------------


def _aead(suite: Suite, key: bytes) -> AESGCM | ChaCha20Poly1305 | AESCCM:
    """The suite's AEAD with ``key``, as the analyzer's openers make it."""
    aead = _make_aead(suite, key)
    if aead is None:
        raise ValueError(f"not an AEAD suite: {suite.name}")
    return aead


class Sealer:
    """Seals one sender's records, key phase by key phase, in order."""

    def __init__(self, suite: Suite, version: int, phases: tuple[Phase, ...]) -> None:
        self.suite, self.version = suite, version
        self.phases = list(phases)
        self.sequences = [0] * len(phases)

    def seal(self, phase: int, content_type: int, plaintext: bytes) -> bytes:
        """The whole record (header included) for ``plaintext`` in key phase ``phase``."""
        phase %= len(self.phases)
        keys, sequence = self.phases[phase].keys, self.sequences[phase]
        self.sequences[phase] += 1
        aead = _aead(self.suite, keys.key)
        iv = int.from_bytes(keys.iv, "big")
        tag = self.suite.tag_length
        if self.suite.tls13:  # RFC 8446 §5.2: outer type application_data, version 1.2
            inner = plaintext + bytes((content_type,))
            header = struct.pack("!BHH", _APPLICATION, 0x0303, len(inner) + tag)
            nonce = (iv ^ sequence).to_bytes(len(keys.iv), "big")
            record = header + aead.encrypt(nonce, inner, header)
            # the record's type is its last byte that is not padding (RFC 8446 §5.4): an
            # entry of type 0 ending in 22 is a padded handshake record, a KeyUpdate too
            content = inner.rstrip(b"\0")
            if content[-1:] == bytes((_HANDSHAKE,)) and content[:1] == bytes((_KEY_UPDATE,)):
                self._key_update(phase)
            return record
        aad = struct.pack("!QBHH", sequence, content_type, self.version, len(plaintext))
        if self.suite.cipher == Cipher.CHACHA20_POLY1305:  # RFC 7905 §2
            body = aead.encrypt((iv ^ sequence).to_bytes(len(keys.iv), "big"), plaintext, aad)
        else:  # RFC 5288 §3: the fixed IV, then an explicit part sent before the ciphertext
            explicit = plaintext[:8] if len(plaintext) >= 8 else sequence.to_bytes(8, "big")
            plaintext = plaintext[8:] if len(plaintext) >= 8 else plaintext
            aad = aad[:-2] + len(plaintext).to_bytes(2, "big")
            body = explicit + aead.encrypt(keys.iv + explicit, plaintext, aad)
        return struct.pack("!BHH", content_type, self.version, len(body)) + body

    def _key_update(self, phase: int) -> None:
        """RFC 8446 §4.6.3: the sender moves to the next traffic secret, from sequence 0."""
        secret = tls13_next_secret(self.suite, self.phases[phase].secret)
        self.phases[phase] = Phase(tls13_traffic_keys(self.suite, secret), secret)
        self.sequences[phase] = 0


# --- from fuzz input to a capture ----------------------------------------------------------------


def entries(data: bytes) -> list[tuple[int, int, bytes]]:
    """(flags, content type, plaintext) of each entry of a fuzz input (after its 2 bytes)."""
    out = []
    for chunk in data[2:].split(MAGIC)[1:]:
        if len(chunk) >= 2:
            out.append((chunk[0], chunk[1], chunk[2:]))
    return out


def writes(template: Template, data: bytes) -> list[tuple[int, bytes, bool]]:
    """What each side sends, in order: (side, bytes, in the same segment as the last write)."""
    sealers = [Sealer(template.suite, template.version, template.phases[side])
               for side in (0, 1)]
    out = list(template.prefix)
    for flags, content_type, plaintext in entries(data):
        side = flags & SERVER
        coalesce = bool(flags & COALESCE)
        if flags & RAW:
            out.append((side, plaintext, coalesce))
            continue
        phase = (flags >> PHASE_SHIFT) & 3
        pieces = [plaintext[i : i + _MAX_PLAIN] for i in range(0, len(plaintext), _MAX_PLAIN)]
        for piece in pieces or [b""]:
            out.append((side, sealers[side].seal(phase, content_type, piece), coalesce))
            coalesce = True
    return out


def build(data: bytes, templates: list[Template]) -> tuple[Template, bytes]:
    """The template a fuzz input names and the capture (pcap bytes) it describes."""
    template = templates[data[0] % len(templates)]
    shape = data[1] if len(data) > 1 else 0
    return template, capture(template, writes(template, data), shape)


def capture(template: Template, sent: list[tuple[int, bytes, bool]], shape: int) -> bytes:
    """A classic pcap (Ethernet, IPv4) of one TCP connection: handshake, ``sent``, end.
    Consecutive writes of one side marked as coalesced share segments."""
    size = _SEGMENT_SIZES[shape % 4 % 3]
    step = _TIME_STEPS[(shape >> 4) % 4 % 3]
    (client, cport), (server, sport) = template.ends
    ends = ((client, cport, server, sport), (server, sport, client, cport))
    isn = [0x1000_0000, 0x7FFF_FF00]  # the server's wraps around 2^32 in a long run
    nxt = [isn[0] + 1, isn[1] + 1]
    packets: list[bytes] = []

    def packet(side: int, flags: int, payload: bytes = b"", seq: int | None = None) -> None:
        src, sp, dst, dp = ends[side]
        seq = nxt[side] if seq is None else seq
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq & 0xFFFFFFFF, nxt[1 - side] & 0xFFFFFFFF,
                          5 << 4, flags, 65535, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), len(packets) & 0xFFFF,
                         0x4000, 64, 6, 0, src, dst)
        frame = _ETHERNET + ip + tcp + payload
        time = 1_700_000_000 + len(packets) * step
        packets.append(struct.pack("<IIII", int(time), round(time % 1 * 1e6) % 1_000_000,
                                   len(frame), len(frame)) + frame)

    packet(0, 0x02, seq=isn[0])  # SYN
    packet(1, 0x12, seq=isn[1])  # SYN-ACK
    packet(0, 0x10)
    merged: list[tuple[int, bytearray]] = []
    for side, payload, coalesce in sent:
        if merged and coalesce and merged[-1][0] == side:
            merged[-1][1].extend(payload)
        else:
            merged.append((side, bytearray(payload)))
    for side, written in merged:
        for i in range(0, len(written), size):
            piece = bytes(written[i : i + size])
            packet(side, 0x18, piece)
            nxt[side] += len(piece)
    ending = (shape >> 2) & 3
    if ending == 0:
        packet(0, 0x11)
        nxt[0] += 1
        packet(1, 0x11)
        nxt[1] += 1
        packet(0, 0x10)
    elif ending == 1:
        packet(0, 0x14)
    elif ending == 3:
        packet(1, 0x11)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    return header + b"".join(packets)


# --- templates and seeds from the bundled captures ------------------------------------------------


def templates() -> list[Template]:
    """Every TLS 1.3 or TLS 1.2 AEAD connection of the bundled captures that has a key log
    (captures/NAME.keys beside NAME.pcap or NAME.pcapng), with its seed."""
    out = []
    for keys in sorted(CAPTURES.glob("*.keys")):
        for path in sorted(CAPTURES.glob(keys.stem + ".pcap*")):
            for number, connection in enumerate(_connections(path.read_bytes())):
                template = _template(f"{path.name}#{number}", keys.read_bytes(), connection)
                if template is not None:
                    out.append(template)
    return out


def seed(index: int, template: Template, shape: int = 0) -> bytes:
    """The fuzz input that builds ``template``'s connection back as captured (the bytes of
    each direction; segments and times as ``shape`` says)."""
    return bytes((index, shape)) + b"".join(MAGIC + e for e in template.seed_entries)


_Event = tuple[int, bytes, bool]  # (side, record, coalesced with the sender's last record)


_End = tuple[bytes, int]  # (IPv4 address, port)


@dataclass
class _Connection:
    """One TCP connection being read back into records."""

    ends: list[_End] = field(default_factory=list)  # the first to send payload first
    events: list[_Event] = field(default_factory=list)
    expected: dict[_End, int] = field(default_factory=dict)  # each end's next sequence number
    buffers: tuple[bytearray, bytearray] = field(default_factory=lambda: (bytearray(),
                                                                           bytearray()))


def _connections(raw: bytes) -> list[tuple[tuple[_End, ...], list[_Event]]]:
    """Each IPv4 TCP connection of a capture: its ends, the one that sent the first payload
    first, and its records in the order they were completed. Bytes out of order or sent
    again are left out (the bundled captures have hardly any)."""
    found: dict[frozenset[_End], _Connection] = {}
    for frame in read_bytes(raw, []):
        s = decode_frame(frame)
        if not isinstance(s, Segment) or len(s.src) != 4:
            continue
        me = (s.src, s.sport)
        conn = found.setdefault(frozenset((me, (s.dst, s.dport))), _Connection())
        if s.flags & 0x02:  # SYN
            conn.expected[me] = s.seq + 1
            continue
        if not s.payload or conn.expected.setdefault(me, s.seq) != s.seq:
            continue
        conn.expected[me] = s.seq + len(s.payload)
        if me not in conn.ends:
            conn.ends.append(me)
        side = conn.ends.index(me)
        buffer = conn.buffers[side]
        buffer += s.payload
        fresh = True  # records completed by this segment after the first share it
        while len(buffer) >= 5 and len(buffer) >= 5 + int.from_bytes(buffer[3:5], "big"):
            length = 5 + int.from_bytes(buffer[3:5], "big")
            conn.events.append((side, bytes(buffer[:length]), not fresh))
            del buffer[:length]
            fresh = False
    return [(tuple(c.ends), c.events) for c in found.values() if len(c.ends) == 2]


def _template(name: str, keylog: bytes,
              connection: tuple[tuple[_End, ...], list[_Event]]) -> Template | None:
    ends, events = connection
    streams = [b"".join(r for side, r, _ in events if side == s) for s in (0, 1)]
    if streams[0][:1] != b"\x16" or streams[0][5:6] != b"\x01":  # not a ClientHello first
        return None
    session = TlsSession(None)
    for side in (0, 1):
        session.feed(side, 0, streams[side], 1, 0.0)
    hello, server = session.client_hello, session.server_hello
    suite = SUITES.get(server.suite) if server is not None else None
    if hello is None or server is None or suite is None or suite.cipher == Cipher.AES_CBC:
        return None
    store = KeyStore()
    store.add_text(keylog)
    store.finish()
    secrets = store.secrets_for(hello.random) or {}
    phases: list[tuple[Phase, ...]] = []
    if suite.tls13:
        for labels in _LABELS:
            if not all(label in secrets for label in labels):
                return None
            phases.append(tuple(Phase(tls13_traffic_keys(suite, secrets[label]), secrets[label])
                                for label in labels))
        version = 0x0304
    else:
        if "CLIENT_RANDOM" not in secrets:
            return None
        version = server.version
        keys = tls12_traffic_keys(suite, version, secrets["CLIENT_RANDOM"], hello.random,
                                  server.random)
        phases = [(Phase(keys[0]),), (Phase(keys[1]),)]
    # The records up to the ServerHello's stay as captured; the rest become entries.
    cut = next((i for i, (side, record, _) in enumerate(events)
                if side == 1 and record[:1] == b"\x16" and record[5:6] == b"\x02"), None)
    if cut is None:
        return None
    template = Template(name, keylog, suite, version, (ends[0], ends[1]),
                        tuple(events[: cut + 1]), (phases[0], phases[1]),
                        (streams[0], streams[1]))
    return dataclasses.replace(template, seed_entries=tuple(_opened(template, events[cut + 1 :])))


def _opened(template: Template, events: list[_Event]) -> list[bytes]:
    """The entries that give ``events`` back: each protected record opened with the
    analyzer's RecordOpener (the next key phase when the current one does not open it)."""
    suite = template.suite
    openers = [[RecordOpener(suite, template.version, p.keys, secret=p.secret)
                for p in template.phases[side]] for side in (0, 1)]
    phase = [0, 0]
    protected = [suite.tls13, suite.tls13]  # TLS 1.2: from the sender's ChangeCipherSpec
    out = []
    for side, record, coalesce in events:
        flags = side | (COALESCE if coalesce else 0)
        kind = record[0]
        if not protected[side] or (suite.tls13 and kind != _APPLICATION):
            if kind == _CHANGE_CIPHER_SPEC and not suite.tls13:
                protected[side] = True
            out.append(bytes((flags | RAW, 0)) + record)
            continue
        parsed = made_record(kind, int.from_bytes(record[1:3], "big"), record[5:], 0, 1, 1,
                             0.0, ())
        for tried in range(phase[side], len(openers[side])):
            opener = openers[side][tried]
            try:
                opened = opener.open(parsed)
            except DecryptError:
                continue
            phase[side] = tried
            if opened.content_type == _HANDSHAKE and opened.plaintext[:1] == bytes((_KEY_UPDATE,)):
                opener.key_update()
            out.append(bytes((flags | tried << PHASE_SHIFT, opened.content_type))
                       + record[5 : 5 + opened.lead] + opened.plaintext)
            break
        else:  # not opened with its keys: kept as captured
            out.append(bytes((flags | RAW, 0)) + record)
    return out
