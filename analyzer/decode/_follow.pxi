# The records of followed connections (not ignored, not passing) took the Python record reader
# and the pipeline's per-record loop only to reach `Reassembler.take_plain`: ≈ 60,000 of the
# 147,000 records of the 100 MB handshake-dense benchmark, ≈ 4 µs each before any byte was
# read. `Follow.take` makes that call from the compiled skip instead, with the same arguments
# the pipeline gives it (`Analysis.feed_records`), so the reassembly and everything above it
# run exactly as before. The plain twin is that per-record loop: a run with compiled=False
# never makes a `Follow`, and tests/test_follow.py compares the two on real captures.


cdef class Follow:
    """Hands a followed connection's segment without SYN, FIN or RST, whole in the capture, to
    ``take_plain`` (`Reassembler.take_plain`) from the compiled skip. The skip counts what it
    took in ``ledger`` (the reassembler's sweep counts them, `tls/passing.wrap_skip`); a take
    here goes through the reassembler's own count, so the ledger's is brought into it first.
    ``decided`` is the run's queue of decided attempts: the skip stops once it is not empty,
    so that the pipeline hands them on before the next record, as after its own take."""

    cdef public object reassembler
    cdef public object take_plain
    cdef public object decided
    cdef public object arm  # tls.passing.arm, after a take that made the connection passing
    cdef public Ledger ledger
    cdef public long long taken
    # The full path (`feed`): ``fed`` counts its segments; ``started`` once the run has
    # counted its first frame itself (`Analysis._saw`: the capture's first time)
    cdef public object feed_segment
    cdef public long long fed
    cdef public long long fins  # bare FINs taken (`_fin`), counted in ``taken`` too
    cdef public long long opened  # first SYNs made a connection in C (`_open_at_syn`), in ``fed``
    cdef public long long answered  # SYN-ACKs made its listener in C (`_listen_at_answer`), too
    cdef public long long closed  # of the ``fins``, ends that finished it in C (`_close_at_fin`)
    cdef public long long late  # segments after a connection's end, dropped (`_after_finish`)
    cdef public bint started
    cdef public long long watched  # segments given to a compiled watch without Python
    cdef public long long watching  # ... of them, and bare ACKs, taken by `Watching` states
    cdef public long long bodies  # segments inside a body the tracker does not read (`_unread`)

    def __init__(self, reassembler, decided, arm, Ledger ledger):
        self.reassembler = reassembler
        self.take_plain = reassembler.take_plain
        self.feed_segment = reassembler.feed
        self.decided = decided
        self.arm = arm
        self.ledger = ledger
        self.taken = 0
        self.fed = 0
        self.fins = 0
        self.opened = self.answered = self.closed = self.late = 0
        self.started = False
        self.watched = self.watching = self.bodies = 0
        _load_tracker()
        _load_slots()

    cdef bint feed(self, const unsigned char* frame, Py_ssize_t size, Py_ssize_t l3,
                   double t, Py_ssize_t index, dict flows, const unsigned char* ip) except -1:
        """The pipeline's full path for a frame `peek_flow` gives a key and neither the
        ignored test nor a take handles (SYNs, FINs, RSTs, a new connection's first frame,
        reordered or retransmitted bytes): `Reassembler.feed` of its `peek_segment`, as
        `Analysis.feed_records` does for it, without the round through the Python reader
        and loop. Not when something waits in Python first: a decided attempt (handed on
        before the next record), states with segments taken that a sweep may touch or
        a TLS passing state of the frame's own connection (`sync_before_feed`: Python brings
        them up to date), or the run's first frame (`Analysis._saw` keeps its time). Its
        own connection's `Watching` state is brought up to date and let go here. A
        connection's first bare SYN and its SYN-ACK (`_handshake.pxi`), and a late segment
        after its end (`_close.pxi`), take that step in C, with no Segment made."""
        cdef Ledger ledger = self.ledger
        cdef object reassembler = self.reassembler
        cdef PyObject* entry
        if not self.started or self.decided:
            return False
        if ledger.dirty:  # `sync_before_feed`, with the flows ``ip`` (IPv4 over TCP) names
            if reassembler._until_sweep - ledger.passed <= 1:  # the sweep runs at this one
                return False
            entry = PyDict_GetItem(flows, _flow_key(ip + 12))
            if entry is not NULL:
                passing = (<object>PyTuple_GET_ITEM(entry, 0)).passing
                if passing is not None and passing.frames:
                    if type(passing) is not Watching:
                        return False
                    (<Watching>passing).release()
        _count_passed(ledger, reassembler)
        if _open_at_syn(reassembler, flows, frame, size, l3, ip, ledger.base + index, t):
            self.opened += 1
        elif _listen_at_answer(reassembler, flows, frame, size, l3, ip, ledger.base + index, t):
            self.answered += 1
        elif _after_finish(flows, ip):  # (`feed` drops it, changing nothing)
            self.late += 1
        else:
            self.feed_segment(_segment_at(frame, size, l3, ledger.base + index, t))
        ledger.limit = reassembler._until_sweep - 1  # as after a take
        self.fed += 1
        return True

    cdef bint take(self, object conn, int side, const unsigned char* frame, Py_ssize_t size,
                   Py_ssize_t l3, const unsigned char* ip, double t, Py_ssize_t index) except -1:
        cdef Ledger ledger = self.ledger
        cdef Py_ssize_t total, packet_end, start
        cdef object payload
        cdef object reassembler = self.reassembler
        cdef unsigned char flags = ip[33]
        if flags & 0x06 or self.decided or type(conn) is not _CONNECTION:  # SYN, RST: the full path
            return False
        # `peek_payload`'s payload, when nothing is missing (the snaplen cut nothing)
        total = (ip[2] << 8) | ip[3]
        packet_end = l3 + total if total else size
        if packet_end > size:
            return False
        start = l3 + 20 + ((ip[32] >> 4) << 2)
        if start < packet_end:
            payload = PyBytes_FromStringAndSize(<const char*>frame + start, packet_end - start)
        else:
            payload = b""
        _count_passed(ledger, reassembler)
        if flags & 0x01:  # a FIN: without bytes, of a connection not in life
            if payload or _slot(conn, _C_LIFE) is not None:
                return False
            taken = self._fin(reassembler, conn, side, _u32(ip + 24, False),
                              _u32(ip + 28, False), flags, ledger.base + index, t)
            if taken:
                self.fins += 1
        elif _slot(conn, _C_LIFE) is None:
            taken = self._take(reassembler, conn, side, _u32(ip + 24, False),
                               _u32(ip + 28, False), flags, payload, ledger.base + index, t)
        else:  # after the watch: the life's facts, or into the life table (Python's own)
            taken = self.take_plain(conn, side, _u32(ip + 24, False), _u32(ip + 28, False),
                                    ip[33], payload, ledger.base + index, t)
        ledger.limit = reassembler._until_sweep - 1  # the sweep's segment goes the usual way
        if not taken:
            return False
        self.taken += 1
        passing = _slot(conn, _C_PASSING)
        if passing is not None and type(passing) is not Watching:  # armed when offered
            self.arm(conn)
        return True

    cdef bint _take(self, object reassembler, object conn, int side, unsigned int seq,
                    unsigned int ack, unsigned char flags, object payload, long long frame,
                    double t) except -1:
        """`Reassembler.take_plain` of a connection not in life, step by step (its plain
        twin): False, with nothing changed, for any segment it would refuse. The fields are
        read and written at their slots (`_slots.pxi`; ``conn`` is a `Connection`)."""
        cdef Py_ssize_t n = len(payload)
        cdef object here, there, base, there_base, here_next, there_next
        cdef long long next_offset, acked
        cdef unsigned int diff
        if (reassembler._until_sweep <= 1 or _slot(conn, _C_CLOSING)
                or _slot(conn, _C_SYNS) is not None):
            return False
        sides = <tuple>_slot(conn, _C_SIDES)
        here = sides[side]
        there = sides[1 - side]
        if type(here) is not _DIRECTION or type(there) is not _DIRECTION:
            return False
        base = _slot(here, _D_BASE)
        if base is None or _slot(here, _D_HOLDING):  # its held start ends here (`_end_hold`)
            return False
        here_next = _slot(here, _D_NEXT)
        if n and (_slot(here, _D_PENDING) or
                  (seq - <unsigned int>base - <unsigned int>(<long long>here_next))):
            return False  # not the next bytes, or early bytes wait to be drained after them
        if _slot(there, _D_PENDING):
            return False
        there_base = _slot(there, _D_BASE)
        if n and there_base is not None and flags & 0x10:
            there_next = _slot(there, _D_NEXT)
            diff = ack - <unsigned int>there_base - <unsigned int>(<long long>there_next)
            if 1 < diff < _HALF or diff == 1 and not (  # (`delivery._unseen`)
                    _slot(there, _D_RST)
                    or _slot(there, _D_FIN) and _slot(there, _D_FIN_END) <= there_next):
                return False  # this side must wait for the other (causal order)
        reassembler.now = t
        reassembler._until_sweep -= 1
        _slots_set(conn, _C_LAST_TIME, t)
        if flags & 0x10 and there_base is not None and not _slot(conn, _C_IGNORED):
            _peer_acked(there, there_base, ack, frame, t, here_next)
        if n:
            next_offset = <long long>here_next + n
            _advance(here, next_offset, payload, n)
            self._deliver(conn, _slot(conn, _C_LISTENER), side, next_offset - n, payload,
                          frame, t)
        return True

    cdef int _deliver(self, object conn, object listener, int side, long long offset,
                      bytes payload, long long frame, double t) except -1:
        """``listener.on_data(side, offset, payload, frame, t)``, except for a tracker
        watching a WebSocket switch with `CompiledSwitchWatch`: there the segment goes
        straight to the watch (`exchange/switching.py` `_observe`'s ordinary step, its plain
        twin) without the tracker's two Python frames. Anything `_observe` does more (a
        side whose reading stopped, a late request still possible, bytes past the deadline)
        takes `on_data`; the watch's last frame ends it through `_finish_switch`, as there.
        A watch still on after such a segment is offered a `Watching` state (`_watching.pxi`),
        which takes the connection's next segments in the skip itself."""
        cdef object switch
        if type(listener) is _TRACKER:
            switch = _watching_switch(listener, side, t)
            if switch is not None:
                _watch_step(listener, switch, side, payload, frame, t)
                self.watched += 1
                if conn.passing is None and not conn.ignored and conn.life is None:
                    _offer_watching(conn, listener, switch, <CompiledSwitchWatch>switch.watch,
                                    self)
                return 0
            if _unread(listener, side, len(payload)):
                self.bodies += 1
                return 0
        listener.on_data(side, offset, payload, frame, t)
        return 0


    cdef bint _fin(self, object reassembler, object conn, int side, unsigned int seq,
                   unsigned int ack, unsigned char flags, long long frame, double t) except -1:
        """`Reassembler.feed` of a FIN without bytes (nor SYN nor RST) of a connection not in
        life, step by step (its plain twin, with `InOrder._segment`'s FIN branch): the
        direction's end, the listener's `on_fin`, and the close when the other side had
        ended too (`_close_at_fin`, or `Reassembler._close`). False, with nothing changed, for a
        connection whose listener is still to be made, already closing, or before the sweep;
        the FIN's own bytes and reordering need no more here: a FIN carries its offset."""
        cdef object here, there, base, there_base, life
        cdef long long fin_end
        if (reassembler._until_sweep <= 1 or _slot(conn, _C_CLOSING)
                or _slot(conn, _C_SYNS) is not None):
            return False
        sides = <tuple>_slot(conn, _C_SIDES)
        here = sides[side]
        there = sides[1 - side]
        if type(here) is not _DIRECTION or type(there) is not _DIRECTION:
            return False
        base = _slot(here, _D_BASE)
        listener = _slot(conn, _C_LISTENER)
        if base is None or listener is None:
            return False
        if _slot(there, _D_PENDING):  # it may wait for this FIN (`delivery._unseen`):
            return False  # Python settles it
        if _slot(here, _D_HOLDING):  # its first bytes go before it (`delivery._end_hold`)
            return False
        there_base = _slot(there, _D_BASE)
        reassembler.now = t
        reassembler._until_sweep -= 1
        _slots_set(conn, _C_LAST_TIME, t)
        if flags & 0x10 and there_base is not None:
            _peer_acked(there, there_base, ack, frame, t, _slot(here, _D_NEXT))
        if (not _slot(here, _D_FIN) and not _slot(here, _D_RST) and there_base is not None
                and not _slot(there, _D_FIN) and not _slot(there, _D_RST)
                and _slot(there, _D_ACKED) == _slot(there, _D_NEXT) + 1):
            # `InOrder._segment` before a FIN: the other side's FIN, lost, may be proved now
            reassembler._lost_fin(conn, 1 - side, frame, t)
        if not _slot(here, _D_FIN):  # (still a `_Direction`: only `on_fin` may let it go)
            fin_end = _offset_of(seq, base, _slot(here, _D_NEXT))
            _slots_set(here, _D_FIN, True)
            _slots_set(here, _D_FIN_END, fin_end)
            if _slot(here, _D_ACKED) == fin_end + 1:  # acknowledged before the capture shows it
                _slots_set(here, _D_ACKED, fin_end)
            _slots_set(here, _D_FIN_EVIDENCE, (frame, t))
            listener.on_fin(side, frame, t)
            life = conn.life
            if life is not None:  # the listener let it go into life just now
                if life.fin(side, frame, t):
                    reassembler._finish(conn, t, "closed")
                return True
            if conn.sides[1 - side].fin:
                if _close_at_fin(reassembler, conn, t):
                    self.closed += 1
        if conn.closing and not conn.finished:  # it closed with bytes missing (`_close`)
            reassembler._closing_segment(conn, t)
        return True


cdef int _peer_acked(object there, object there_base, unsigned int ack, long long frame,
                     double t, long long here_offset) except -1:
    """`Reassembler._peer_acked(conn, side, ack, frame, t)` for the direction ``there`` (its
    plain twin) whose stream starts at sequence number ``there_base``, with
    `_Direction.offset_of`; ``here_offset``: the acknowledging direction's next offset.
    ``there`` is a `_Direction`, its fields read and written at their slots (`_slots.pxi`)."""
    if type(there) is not _DIRECTION:
        raise TypeError("a _Direction was expected")
    cdef long long next_offset = _slot(there, _D_NEXT)
    cdef long long acked = _offset_of(ack, there_base, next_offset)
    cdef bint fin = _slot(there, _D_FIN)
    if fin:
        acked -= 1
    if acked > <long long>_slot(there, _D_ACKED) and acked - next_offset < _HALF:
        _slots_set(there, _D_ACKED, acked)
        if acked == next_offset + 1 and frame and not fin:
            # a lost FIN's proof, and where the acknowledging side's bytes were then
            _slots_set(there, _D_FIN_EVIDENCE, (frame, t, here_offset))
    return 0


cdef inline long long _offset_of(unsigned int seq, object base, long long next_offset):
    """`_Direction.offset_of(seq)` (its plain twin) for a direction whose stream starts at
    sequence number ``base`` and is read up to ``next_offset``: the nearest offset either way."""
    cdef unsigned int diff = seq - <unsigned int>base - <unsigned int>next_offset
    cdef long long offset = next_offset + <long long>diff
    if diff >= _HALF:
        offset -= 1LL << 32
    return offset


cdef inline void _count_passed(Ledger ledger, object reassembler):
    """What this skip call took so far, counted in the reassembler as `wrap_skip` would,
    before a segment goes through the reassembler's own count."""
    if ledger.passed:
        reassembler._until_sweep -= ledger.passed
        reassembler.now = ledger.last_time
        ledger.passed = 0


cdef object _NOTHING_YET = None  # reassembly.connection._NOTHING_YET
cdef object _NOT_KEPT = None  # reassembly.connection._NOT_KEPT
cdef Py_ssize_t _KEEP = 0  # reassembly.connection.RECENT_BYTES


cdef int _advance(object here, long long next_offset, bytes payload, Py_ssize_t n) except -1:
    """`reassembly.connection._Direction.advance(payload)` (its plain twin) on ``here``, whose
    next offset becomes ``next_offset``: the delivered bytes are kept (`RECENT_BYTES`, twice
    that before a trim) without a Python call per segment (35,000 on the dense benchmark)."""
    cdef bytearray recent
    _load_recent_names()
    _slots_set(here, _D_NEXT, next_offset)  # (``here`` is a `_Direction`: `_slots.pxi`)
    kept = _slot(here, _D_RECENT)
    if kept is _NOT_KEPT:  # (a decrypted WebSocket in life, whose TLS stage Follow feeds)
        return 0
    if kept is _NOTHING_YET:
        recent = bytearray()
        _slots_set(here, _D_RECENT, recent)
    else:
        recent = kept
    _keep(recent, <const char*>payload, n)
    return 0


cdef int _load_recent_names() except -1:
    global _NOTHING_YET, _NOT_KEPT, _KEEP
    if _NOTHING_YET is None:
        from analyzer.reassembly.connection import (
            _NOTHING_YET as nothing, _NOT_KEPT as not_kept, RECENT_BYTES)
        _NOTHING_YET, _NOT_KEPT, _KEEP = nothing, not_kept, RECENT_BYTES
    return 0


cdef extern from *:
    """
    /* a bytearray's room: the bytes its buffer holds from its logical start, the trailing
       NUL included (Include/cpython/bytearrayobject.h) */
    #define _keep_room(b) (((PyByteArrayObject*)(b))->ob_alloc - \
        (((PyByteArrayObject*)(b))->ob_start - ((PyByteArrayObject*)(b))->ob_bytes))
    #define _keep_exported(b) (((PyByteArrayObject*)(b))->ob_exports > 0)
    /* the size set within the room, as PyByteArray_Resize's "minor downsize" sets it */
    static void _keep_set_size(PyObject* b, Py_ssize_t size) {
        Py_SET_SIZE(b, size);
        PyByteArray_AS_STRING(b)[size] = 0;
    }
    """
    Py_ssize_t _keep_room(object b)
    bint _keep_exported(object b)
    void _keep_set_size(object b, Py_ssize_t size)


cdef int _keep(bytearray recent, const char* data, Py_ssize_t n) except -1:
    """``n`` delivered bytes appended to a direction's kept bytes, trimmed as
    `_Direction.advance` trims them (its plain twin, compared in tests/test_reassembly.py
    through `kept_compiled`): past twice `RECENT_BYTES`, only the last `RECENT_BYTES`.

    The same bytes, without the reallocations: ``del recent[:k]`` advanced the array's start,
    and as its size fell below half its buffer, Python copied it into a buffer of its size;
    the next segments grew that again, 12.5 % at a time (each a realloc, most a copy). On
    the dense benchmark that was ≈ 19,000 reallocations copying ≈ 39 M instructions' worth.
    Here the buffer grows to twice its size at once (up to twice `RECENT_BYTES` and
    Python's 12.5 %, ≈ 37 KiB, what the array reached before trimming anyway), the trim moves
    the bytes kept to its start, and it is kept: a direction that reached the trim appends
    within it from then on.
    """
    cdef Py_ssize_t size = len(recent)
    cdef Py_ssize_t total = size + n
    cdef Py_ssize_t kept_old, room
    cdef char* start
    if n == 0:
        return 0
    if _keep_exported(recent):  # PyByteArray_Resize raises BufferError, as before
        PyByteArray_Resize(recent, total)
    if total <= 2 * _KEEP:
        if total >= _keep_room(recent):
            # Grown to twice the size (at most the trim's size) at once: Python's own growth
            # (to the size exactly below ≈ 12 KiB, then 12.5 % more) reallocated at almost
            # every segment of a direction's first 32 KiB, each time a copy.
            room = 2 * size if 2 * size > total else total
            PyByteArray_Resize(recent, room if room < 2 * _KEEP else 2 * _KEEP)
        memcpy(PyByteArray_AS_STRING(recent) + size, data, n)
        _keep_set_size(recent, total)
        return 0
    # The last _KEEP bytes of ``recent`` and ``data`` together; ``data`` is never in
    # ``recent``'s buffer (a frame's bytes).
    if _KEEP >= _keep_room(recent):  # only a segment larger than RECENT_BYTES gets here
        PyByteArray_Resize(recent, _KEEP)
    start = PyByteArray_AS_STRING(recent)
    if n >= _KEEP:
        memcpy(start, data + n - _KEEP, _KEEP)
    else:
        kept_old = _KEEP - n
        memmove(start, start + size - kept_old, kept_old)
        memcpy(start + kept_old, data, n)
    _keep_set_size(recent, _KEEP)
    return 0


def kept_compiled(recent: bytearray, data: bytes) -> None:
    """`_keep` for tests: ``data`` appended to ``recent`` and trimmed, in C (`RECENT_BYTES`
    read from analyzer.reassembly.connection, as `Follow` reads it)."""
    _load_recent_names()
    _keep(recent, <const char*>data, len(data))


def kept_room(recent: bytearray) -> int:
    """The bytes ``recent``'s buffer holds from its start (trailing NUL included): tests
    check that `_keep` keeps its buffer once it has trimmed."""
    return _keep_room(recent)
