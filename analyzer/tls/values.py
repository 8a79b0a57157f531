"""What the TLS session tells the rest of the stage: how far decryption got (`Decryption`),
application data with its frame (`Plain`), the alerts seen (`SeenAlert`), and a record that
did not open (`DecryptError`, raised by decrypt.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from analyzer.slotted import slot_setters
from analyzer.tls.handshake import Alert


class Decryption(Enum):
    NO_KEYS = "no keys"  # no key store was given to the run
    NO_KEY = "no key"  # a key store, but nothing for this client random
    WAITING = "waiting"  # nothing yet, but the key log is still being written (live)
    PENDING = "pending"  # keys found, nothing protected opened yet
    DECRYPTED = "decrypted"
    MISMATCH = "key mismatch"  # the key did not open the first protected record
    FAILED = "failed"  # a later record did not open: decryption stopped there
    UNSUPPORTED = "unsupported suite"


@dataclass(frozen=True, slots=True)
class Plain:
    """Application data of one direction, carried by one frame."""

    side: int  # reassembly side (0 originator, 1 responder)
    offset: int  # offset in the direction's plaintext stream
    data: bytes
    frame: int
    time: float


# Made through its slots' descriptors, not the frozen ``__init__`` (see records.made_record;
# the constructor is its plain twin, compared in tests/test_made_values.py).
_set_side, _set_offset, _set_data, _set_frame, _set_time = slot_setters(Plain)


def made_plain(side: int, offset: int, data: bytes, frame: int, time: float) -> Plain:
    """``Plain(side, offset, data, frame, time)``."""
    made = object.__new__(Plain)
    _set_side(made, side)
    _set_offset(made, offset)
    _set_data(made, data)
    _set_frame(made, frame)
    _set_time(made, time)
    return made


@dataclass(frozen=True, slots=True)
class SeenAlert:
    """An alert as the capture showed it: which side, the frame, the time."""
    side: int
    alert: Alert
    frame: int
    time: float
    encrypted: bool  # read from a decrypted record


class DecryptError(Exception):
    """A record did not open with these keys (tag or MAC mismatch, bad padding, too short).
    Here rather than in decrypt.py, so that the session catches it without importing
    decrypt.py (and `cryptography`) at each protected record or at start-up."""
