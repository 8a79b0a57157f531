# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The pipeline's fast path compiled: skip the pcap records of ignored connections in C.

`PcapRecords` (analyzer/source/pcap.py) walks the records of a classic pcap file and asks
`ignored_frame_test` (analyzer/decode/decoder.py) of each whether its frame belongs to a
connection the analyzer ignores. On a busy capture that is 93 % of the frames, and in CPython
the walk and the test cost about 0.6 µs per frame, a third of the whole run. This module does
the same two steps in one C loop (≈ 0.05 µs per frame) for as many records as it can, and
stops at the first record that needs Python: one it would not drop, one not whole in the
buffer, or one whose length is over the reader's limit. The reader then handles that record
exactly as without this module, so the module only ever decides "drop", and only for records
the Python test drops too (tests/test_decode.py compares them on every frame of the test
captures and on the benchmark mix).

Built by setup.py with Cython when a C compiler is there; without it the pure-Python path runs
and gives the same results, more slowly (`analyzer.decode.decoder.FASTPATH_COMPILED`).
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.math cimport INFINITY
from libc.string cimport memcmp, memcpy
from cpython.dict cimport PyDict_GetItem, PyDict_GetItemWithError
from cpython.object cimport PyObject, PyObject_GenericSetAttr

cdef extern from *:
    # PyTuple_GET_ITEM on a borrowed PyObject* without Cython's reference counting.
    PyObject* PyTuple_GET_ITEM(PyObject* p, Py_ssize_t pos)


cdef inline unsigned int _u32(const unsigned char* p, bint little) noexcept nogil:
    if little:
        return p[0] | (p[1] << 8) | (p[2] << 16) | (<unsigned int>p[3] << 24)
    return (<unsigned int>p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]


cdef inline Py_ssize_t _l3(int linktype) noexcept nogil:
    # decoder.PEEK_LINKS: Ethernet (1) and Linux cooked v1 (113).
    if linktype == 1:
        return 14
    if linktype == 113:
        return 16
    return -1


cdef inline const unsigned char* _tcp_over_ipv4(const unsigned char* frame, Py_ssize_t size,
                                                Py_ssize_t l3) noexcept nogil:
    """The IPv4 header of a frame `decoder.peek_flow_at` gives a key (IPv4 without options,
    not a fragment, TCP with its whole header present), or NULL."""
    cdef const unsigned char* ip
    cdef Py_ssize_t packet_end, hlen, total
    if size < l3 + 40:
        return NULL
    ip = frame + l3
    if frame[l3 - 2] != 0x08 or frame[l3 - 1] != 0x00 or ip[0] != 0x45 or ip[9] != 6:
        return NULL
    if ((ip[6] << 8) | ip[7]) & 0x3FFF:
        return NULL
    total = (ip[2] << 8) | ip[3]
    packet_end = l3 + total if total and l3 + total < size else size
    hlen = (ip[32] >> 4) << 2
    if hlen < 20 or packet_end - l3 - 20 < hlen:
        return NULL
    return ip


# The flow keys of recent frames (`decoder.flow_key`: 12 bytes, the addresses and ports as
# the frame has them), each a bytes object whose hash its first look-up computed and cached.
# Every frame not skipped at its IP header looks its key up in ``flows``; a fresh bytes key
# was an allocation, a copy, a free and a siphash of 12 bytes (≈ 280 instructions) each
# time, for a key its connection's previous frame already had. Direct-mapped (a key's place:
# the top bits of one 64-bit multiplicative mix of its bytes, which every byte reaches): a
# collision only replaces the slot's key. Until the twenty-first session the place was the
# low bits of 32-bit products of the little-endian words, which the addresses' last bytes
# (those words' top bytes) hardly reached: on the TLS benchmark captures 46-59 % of frames
# missed (a session's hosts differ in their last byte), against 6 % and 0.1 % now.
# `flow_key_compiled` is the test's door; its plain twin is the bytes themselves.
cdef enum:
    _KEY_BITS = 12
    _KEY_SLOTS = 1 << _KEY_BITS
cdef PyObject* _KEYS[_KEY_SLOTS]


cdef inline Py_ssize_t _key_slot(const unsigned char* at) noexcept nogil:
    """`_KEYS`' place for the 12-byte flow key at ``at``."""
    cdef unsigned long long addresses
    cdef unsigned int ports
    memcpy(&addresses, at, 8)
    memcpy(&ports, at + 8, 4)
    return <Py_ssize_t>(((addresses ^ (<unsigned long long>ports << 17) ^ ports)
                         * 0x9E3779B97F4A7C15ULL) >> (64 - _KEY_BITS))


def flow_key_slot(bytes data):
    """`_key_slot` of ``data``'s first 12 bytes (tests: how keys spread over the cache)."""
    if len(data) < 12:
        raise ValueError("a flow key is 12 bytes")
    return _key_slot(<const unsigned char*>data)


cdef inline object _flow_key(const unsigned char* at):
    """The flow key of the 12 bytes at ``at`` (IPv4 source and destination addresses, then
    the ports): the same bytes, from `_KEYS` when a recent frame had them."""
    cdef Py_ssize_t slot = _key_slot(at)
    cdef PyObject* cached = _KEYS[slot]
    if cached is not NULL and memcmp(PyBytes_AS_STRING(<object>cached), at, 12) == 0:
        return <object>cached
    key = PyBytes_FromStringAndSize(<const char*>at, 12)
    Py_INCREF(key)
    Py_XDECREF(cached)
    _KEYS[slot] = <PyObject*>key
    return key


def flow_key_compiled(bytes data):
    """`_flow_key` of ``data``'s first 12 bytes, for tests (the same bytes, maybe cached)."""
    if len(data) < 12:
        raise ValueError("a flow key is 12 bytes")
    return _flow_key(<const unsigned char*>data)


cdef inline bint _ignored(const unsigned char* frame, Py_ssize_t size, Py_ssize_t l3,
                          dict flows, double t, Py_ssize_t index, LifeTable lives,
                          Follow follow):
    """`ignored_frame_test` on the frame at ``frame`` (``size`` bytes), or a frame that a
    `Passing` connection's state, the life table ``lives`` or ``follow`` (a followed
    connection's next segment, `_follow.pxi`) takes (time ``t``), or that ``follow`` feeds
    to the reassembler whole (`Follow.feed`: the full path, SYNs and FINs mostly)."""
    cdef const unsigned char* ip = _tcp_over_ipv4(frame, size, l3)
    cdef PyObject* entry
    cdef object conn, passing
    cdef int side
    if ip is NULL:
        return False
    if ip[33] & 0x02:  # a SYN may open a new connection: never skipped, but maybe fed
        return follow is not None and follow.feed(frame, size, l3, t, index, flows, ip)
    # (WithError: a flow key's look-up raises nothing, and this one saves the exception
    # state PyDict_GetItem keeps around every look-up; every frame not skipped earlier)
    entry = PyDict_GetItemWithError(flows, _flow_key(ip + 12))
    if entry is NULL:  # a connection in life is in the life table, not in ``flows``
        if lives is not None and lives.count and lives._find(ip + 12, 12) >= 0:
            return lives.take_frame(ip, size, l3, t, index)
        return follow is not None and follow.feed(frame, size, l3, t, index, flows, ip)
    conn = <object>PyTuple_GET_ITEM(entry, 0)
    if type(conn) is _CONNECTION:  # read at its slots (`_slots.pxi`, once a `Follow` is made)
        if _slot(conn, _C_IGNORED):
            return True
        passing = _slot(conn, _C_PASSING)
    else:
        if conn.ignored:
            return True
        passing = conn.passing
    if passing is None:
        return follow is not None and (
            follow.take(conn, <int><object>PyTuple_GET_ITEM(entry, 1), frame, size, l3, ip, t,
                        index) or follow.feed(frame, size, l3, t, index, flows, ip))
    if type(passing) is Watching:  # a switched connection's watch (`_watching.pxi`)
        side = <int><object>PyTuple_GET_ITEM(entry, 1)
        if (<Watching>passing).take(side, frame, size, l3, ip, t, index):
            return True
        (<Watching>passing).release()  # brought up to date: the eager way from here
        return follow is not None and (
            follow.take(conn, side, frame, size, l3, ip, t, index)
            or follow.feed(frame, size, l3, t, index, flows, ip))
    side = <int><object>PyTuple_GET_ITEM(entry, 1)
    if side != (<Passing>passing).side and (<Passing>passing).peer is not None:
        return (<Passing>passing).take_by_peer(side, frame, size, l3, ip, t, index)
    return (<Passing>passing).take(side, frame, size, l3, ip, t, index)


cdef inline bint _before(double t, double bound, bint inclusive) noexcept nogil:
    return t < bound or (inclusive and t == bound)


cdef int _failed_after(BaseException error, Py_ssize_t count) except -1:
    """An exception raised while a skip took a record (a bug in what it calls) notes the
    records it took before that one (``frames_before``): the reader counts them, so that the
    error names the frame it was on (`pcap.PcapRecords`, `pcapng.PcapngRecords`)."""
    try:
        error.frames_before = count
    except AttributeError:  # (an exception type without a __dict__)
        pass
    return 0


def skip_ignored(Py_ssize_t l3, dict flows, bytes buf, Py_ssize_t pos, bint little,
                 unsigned int limit, double units, double bound, bint inclusive,
                 unsigned int last_sec=0, unsigned int last_frac=0,
                 LifeTable lives=None, Follow follow=None):
    """Skip the records from ``buf[pos:]`` that `PcapRecords` would drop with
    `ignored_frame_test` for link-layer header size ``l3`` and flow table ``flows``, as long
    as their time (``sec + frac / units``, computed as Python computes it) is before
    ``bound`` (or equal to it, if ``inclusive``): when several files are merged, only the
    records that come before every other file's next one may be skipped unseen.

    Returns ``(pos, count, sec, frac, stepped)``: the offset of the first record not
    skipped, how many were skipped, the raw timestamp fields of the last one skipped (0, 0 if
    none), and None, or for the skipped records whose time is earlier than the record's before
    them (``last_sec, last_frac`` for the first: the record before ``pos``) ``(how many, which
    of those skipped was the first, from 1, the largest step back in seconds)``, as the reader
    counts them (`PcapRecords.backsteps`: a compare and a store a record here).
    ``little`` is the file's byte order, ``limit`` the reader's largest believable record.
    ``lives``: the run's life table, whose connections' segments are taken too.
    ``follow``: the run's `Follow`, which takes a followed connection's next segment; the
    loop stops after one that decided an attempt (the pipeline hands it on first).
    """
    cdef const unsigned char* p = buf
    cdef Py_ssize_t end = len(buf)
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t size, stop
    cdef unsigned int sec = 0, frac = 0, record_sec, record_frac
    cdef unsigned int before_sec = last_sec, before_frac = last_frac  # the record before
    cdef Py_ssize_t back = 0, back_first = 0
    cdef double t, back_most = 0.0
    if pos < 0 or (follow is not None and follow.decided):
        return pos, 0, 0, 0, None
    try:
        while end - pos >= 16:
            size = _u32(p + pos + 8, little)  # captured length
            if size > limit:
                break
            stop = pos + 16 + size
            if stop > end:
                break
            record_sec = _u32(p + pos, little)
            record_frac = _u32(p + pos + 4, little)
            t = <double>record_sec + <double>record_frac / units
            # the bound first: a Passing connection's state changes when it takes a frame
            if not _before(t, bound, inclusive) or not _ignored(
                    p + pos + 16, size, l3, flows, t, count + 1, lives, follow):
                break
            if record_sec < before_sec or (record_sec == before_sec and record_frac < before_frac):
                back += 1  # earlier than the record before it: rare
                if back == 1:
                    back_first = count + 1
                # (the reader's expression, `PcapRecords`: the fields' differences, exact)
                back_most = max(back_most, <double>(<long long>before_sec - record_sec) + <double>(
                    <long long>before_frac - <long long>record_frac) / units)
            before_sec = sec = record_sec
            before_frac = frac = record_frac
            count += 1
            pos = stop
            if follow is not None and follow.decided:
                break
    except BaseException as error:  # a bug: the frame it was on, for its report
        _failed_after(error, count)
        raise
    return pos, count, sec, frac, (back, back_first, back_most) if back else None


def skip_ignored_blocks(dict flows, bytes buf, Py_ssize_t pos, bint little, tuple interfaces,
                        unsigned int max_record, unsigned int max_block, double bound,
                        bint inclusive, double last_time=-INFINITY, LifeTable lives=None,
                        Follow follow=None):
    """The same for a pcapng buffer (`PcapngRecords`): skip the Enhanced Packet Blocks from
    ``buf[pos:]`` whose frame `ignored_frame_test` drops for the link type of its interface,
    and whose time is before ``bound`` (as for `skip_ignored`). ``interfaces`` are the
    section's interfaces in order, as ``(link type, time units per second, time offset)``.

    Stops at any other block, and at any block the reader would question (length, trailer,
    interface, captured length against ``max_record`` and ``max_block``), which the reader
    then handles itself. Returns ``(pos, count, interface, ts_high, ts_low, stepped)``: the
    fields of the last block skipped (zeros if none), and ``stepped`` as `skip_ignored` gives
    it, ``last_time`` being the time of the record before ``pos``.
    """
    cdef const unsigned char* p = buf
    cdef Py_ssize_t end = len(buf)
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t blen, cap, l3
    cdef unsigned int iface, last_iface = 0, hi = 0, lo = 0
    cdef unsigned long long ticks
    cdef double t, before = last_time, back_most = 0.0  # the time of the record before
    cdef Py_ssize_t back = 0, back_first = 0
    cdef tuple interface
    if pos < 0 or (follow is not None and follow.decided):
        return pos, 0, 0, 0, 0, None
    try:
        while end - pos >= 32:
            if _u32(p + pos, little) != 6:  # not an EPB
                break
            blen = _u32(p + pos + 4, little)
            if blen < 32 or blen & 3 or blen > max_block or blen > end - pos:
                break
            if _u32(p + pos + blen - 4, little) != blen:  # the trailer
                break
            iface = _u32(p + pos + 8, little)
            cap = _u32(p + pos + 20, little)
            if iface >= len(interfaces) or cap > blen - 32 or cap > max_record:
                break
            interface = interfaces[iface]
            l3 = _l3(interface[0])
            if l3 < 0:
                break
            # The reader's time: ((hi << 32) | lo) / units + offset, with Python's float steps.
            ticks = (<unsigned long long>_u32(p + pos + 12, little) << 32) | _u32(p + pos + 16,
                                                                                   little)
            t = <double>ticks / <double>interface[1] + <double>interface[2]
            if not _before(t, bound, inclusive) or not _ignored(
                    p + pos + 28, cap, l3, flows, t, count + 1, lives, follow):
                break
            if t < before:  # earlier than the record before it: rare
                back += 1
                if back == 1:
                    back_first = count + 1
                back_most = max(back_most, before - t)
            before = t
            last_iface = iface
            hi = _u32(p + pos + 12, little)
            lo = _u32(p + pos + 16, little)
            count += 1
            pos += blen
            if follow is not None and follow.decided:
                break
    except BaseException as error:  # a bug: the frame it was on, for its report
        _failed_after(error, count)
        raise
    return pos, count, last_iface, hi, lo, (back, back_first, back_most) if back else None


# --- compiled twins of decoder.peek_flow, peek_payload and decode_frame (the peek's frames) ---
include "_peek.pxi"


# --- the run's ledger of frames taken in C, and passing: the records of a decrypted TLS
# direction whose plaintext no reader needs --------------------------------------------------
include "_ledger.pxi"
include "_passing_limits.pxi"
include "_passing.pxi"
include "_passing_buffer.pxi"
include "_opening.pxi"
include "_trust.pxi"


# --- the life table: connections in life, their segments taken in C -------------------------
include "_life_entries.pxi"
include "_life_table.pxi"


# --- a followed connection's fields at their slots ------------------------------------------------
include "_slots.pxi"
# --- the reassembler's sweep: the settled connections of its table passed over in C --------
include "_sweep.pxi"
# --- a connection's SYN and SYN-ACK, without Python ----------------------------------------
include "_handshake.pxi"
# --- and its usual end, after both FINs, and the ACKs after it --------------------------------
include "_close.pxi"


# --- following: a followed connection's next segment, handed to the reassembler ------------
include "_follow.pxi"
# --- and the tracker it reaches, read at its slots (a body's bytes, a switch's watch) ---------
include "_tracker_slots.pxi"


# --- WebSocket frames in the watch window: the header walk compiled -------------------------
include "_ws_frames.pxi"


# --- the watch window of a WebSocket switch, compiled -----------------------------------------
include "_switch_watch.pxi"
# --- a switched connection under its compiled watch: its segments taken in C -------------------
include "_watching.pxi"


# --- the header lines of a plain HTTP head -----------------------------------------------------
include "_heads.pxi"


# --- frozen values made per connection (a Segment, an attempt's values) without __init__ -------
include "_made.pxi"


# --- the JSON report's indentation, from the JSONL line's compact text --------------------------
include "_indent.pxi"


# --- a slotted dataclass value from its fields' values (pickled attempts, slotted.py) ----------
include "_rebuild.pxi"
