# The limits and shared buffers of the passing states (decode/_passing.pxi `Passing`): their
# buffers' capacities, the one plaintext buffer every state decrypts into, and the ring of
# records counted on trust in life.

cdef extern from *:
    int PyByteArray_Resize(object bytearray, Py_ssize_t size) except -1
    char* PyByteArray_AS_STRING(object bytearray)
    object PyByteArray_FromStringAndSize(const char* data, Py_ssize_t size)
    Py_ssize_t PyByteArray_GET_SIZE(object bytearray)

from libc.string cimport memcmp, memcpy, memmove
from cpython.buffer cimport PyBUF_READ, PyBUF_WRITE
from cpython.memoryview cimport PyMemoryView_FromMemory

cdef unsigned int _HALF = 0x80000000u
cdef Py_ssize_t _RECENT = 16 * 1024  # reassembly.RECENT_BYTES
cdef Py_ssize_t _MAX_RECORD = 2**14 + 2048  # tls.records.MAX_RECORD_LENGTH
cdef Py_ssize_t _KEPT = 2 * _RECENT  # reassembly keeps at most this many recent bytes
cdef enum:
    _TAIL_BYTES = 131  # life/state.py TAIL_BYTES: where a final Close frame may begin
# A state's buffer (see `Passing.buf`): what it must keep (at most _KEPT bytes: the recent
# bytes, or a record's start, which is shorter) and a segment (an IPv4 payload is < 64 KiB)
# always fit; the room beyond that makes the moves down rare (≈ 24 KiB moved per 230 KiB).
cdef Py_ssize_t _CAPACITY = 256 * 1024
# A state in life (`Passing.life`) takes mostly small segments for as long as its WebSocket
# lives, and there may be thousands at once: its buffer holds what must be kept (a record's
# start: in life no recent bytes are kept, `keep_recent`) and a segment of up to 8 KiB; a
# longer one, or one that does not fit after a longer record's start, goes the usual way
# (`_fits`).
cdef Py_ssize_t _LIFE_CAPACITY = _MAX_RECORD + 8 * 1024
LIFE_CAPACITY = _LIFE_CAPACITY  # (tls/passing.py sets it on the states it makes in life)
# A state in a watch window (`Passing.watching`): the direction keeps its recent bytes there
# (at most _KEPT), and a segment of up to 8 KiB.
WATCH_CAPACITY = _KEPT + 8 * 1024
# The buffer of a state in life or in a watch window (``capped``) starts at what it must hold
# and a segment (this much), and grows as it needs, up to its capacity, while the ledger's
# ``life_budget`` allows (`_fits`, `_grow`): in life most hold a few hundred bytes of a
# record, and a buffer of the full capacity each was 26 KiB a direction of every open
# decrypted WebSocket.
cdef Py_ssize_t _GROWTH = 4 * 1024
# Copies put off (decode/_passing_buffer.pxi `_defer`): at most this many places a state holds;
# past them a segment is copied at once (a state needs the last _KEPT bytes, ≈ 23 full
# segments).
cdef enum:
    _PLACES = 64
# Buffers of dropped states, reused by the next ones: a state is made at every offer (a few
# per session) and a fresh 256 KiB allocation each time is a mapping and its page faults.
cdef list _SPARE = []

# Where every state's records are decrypted into (`decrypt_into`): one bytearray of
# _MAX_RECORD bytes for the run, read right after each call (the inner type, the padding, a
# life's tail), so states need not hold one each. ``_OUT_VIEW``: a writable view of its first
# ``_OUT_LENGTH`` bytes (`decrypt_into` wants the plaintext's length exactly), kept while
# the records keep their length, as full ones do.
cdef object _OUT = PyByteArray_FromStringAndSize(NULL, _MAX_RECORD)
cdef object _OUT_VIEW = None
cdef Py_ssize_t _OUT_LENGTH = -1


cdef object _out_view(Py_ssize_t length):
    """A writable view of ``_OUT``'s first ``length`` bytes."""
    global _OUT_VIEW, _OUT_LENGTH
    if length != _OUT_LENGTH:
        _OUT_VIEW = PyMemoryView_FromMemory(PyByteArray_AS_STRING(_OUT), length, PyBUF_WRITE)
        _OUT_LENGTH = length
    return _OUT_VIEW


cdef struct _Trusted:
    # A record counted on trust in life, unopened (`Passing.ring`)
    Py_ssize_t at  # its first byte's place in the buffer (-1: none)
    Py_ssize_t length  # header and body
    long long sequence, plain  # its sequence number; the plaintext it was counted as
    long long first_frame, end_frame  # the frames of its first byte and of its end
    double first_time, end_time


cdef enum:
    # The most records counted on trust in life a state holds unopened (`Passing.ring`):
    # past them the first is opened (records so small that this many do not cover the
    # tail)
    _RING = 8
