# A switched WebSocket connection under its compiled watch (`CompiledSwitchWatch`): once
# `Follow._deliver` has given one of its segments to the watch itself, the connection is
# offered a `Watching` state in ``conn.passing``, the slot of the TLS `Passing` states
# (`_passing.pxi`), and follows their model: the compiled skip takes its next in-order
# segments of either side (and its bare ACKs), hands each one's bytes to the watch in C, and
# counts what the reassembler would have recorded (offsets, ACKs, last time; the kept bytes
# are appended at once); `sync` writes that back when Python next touches the connection
# (tls/syncing.py `sync`, `sync_before_feed`, `sync_all`, the pipeline's loop), and the
# segment the state refuses releases it first (`release`: synced, dropped) and goes the
# eager way (`Follow.take`, `Follow.feed`, or Python). No Python frame per segment: on the
# handshake-dense benchmark, ≈ 20,000 segments paid the tracker's `on_data` and `_observe`
# and ≈ 20 attribute reads and writes on Python objects each. The plain twin is the
# per-segment path: a run with compiled=False makes no `Follow` and no `Watching`, and
# tests/test_switch_watch_follow.py compares the two on real captures, damaged ones too.
#
# A decrypted WebSocket's watch window has the same shape inside TLS: its opening `Passing`
# states hand each record they open to the TLS stage or straight to the watch
# (`_watched`, `_watch_record`, at the end of this file).


cdef class Watching:
    """The watch window's segments of one connection, taken in C (see above). ``ready``:
    armed (the reassembler's side and the tracker's checked, `arm`; a segment Python feeds
    clears it, `Reassembler.feed`); ``frames``: taken since the last `sync`."""

    cdef public object conn
    cdef public Ledger ledger
    cdef public bint ready
    cdef public long long frames
    cdef public double last_time
    cdef object reassembler
    cdef Follow follow
    cdef object tracker
    cdef object switch
    cdef CompiledSwitchWatch watch
    cdef int client  # the HTTP client's side
    cdef bint late  # a late request may still come: client bytes before the watch saw any
    cdef double deadline
    cdef unsigned int next_seq[2]  # sequence number of each side's next byte
    cdef long long taken[2]  # bytes of each side taken since the last sync
    cdef bint acked[2]
    cdef unsigned int ack[2]  # highest ACK each side sent (of the other side's bytes)
    cdef bytearray recent0, recent1  # each side's kept bytes (reassembly's `recent`)

    def __init__(self, conn, tracker, switch, CompiledSwitchWatch watch, Follow follow):
        self.conn = conn
        self.tracker = tracker
        self.switch = switch
        self.watch = watch
        self.ledger = follow.ledger
        self.reassembler = follow.reassembler
        self.follow = follow
        self.ready = False
        self.frames = 0
        self.last_time = 0.0
        self.taken[0] = self.taken[1] = 0
        self.acked[0] = self.acked[1] = False

    cdef bint _arm(self) except -1:
        """Whether the per-segment path would take the next in-order segments of both sides
        the way `take` does (`Follow._take`'s conditions, and `_observe`'s ordinary step);
        the state is armed then, with each side's position and kept bytes."""
        cdef object conn = self.conn
        cdef object tracker = self.tracker
        cdef object switch = self.switch
        cdef object here, client
        cdef int s
        self.ready = False
        if (conn.ignored or conn.closing or conn.syns is not None or conn.life is not None
                or conn.listener is not tracker or tracker._done
                or tracker._switch is not switch or switch.watch is not self.watch):
            return False
        client = tracker._client
        if client is None:
            return False
        modes = tracker._sides
        if modes[0].mode is not _SWITCHED_MODE or modes[1].mode is not _SWITCHED_MODE:
            return False
        sides = conn.sides
        for s in range(2):
            here = sides[s]
            if (here.base is None or here.pending or here.fin or here.rst):
                return False
        _load_recent_names()
        for s in range(2):
            here = sides[s]
            if here.recent is _NOTHING_YET:
                here.recent = bytearray()
            self.next_seq[s] = <unsigned int>((here.base + here.next_offset) & 0xFFFFFFFF)
        self.recent0 = sides[0].recent
        self.recent1 = sides[1].recent
        self.client = client
        self.late = switch.request is None or switch.replaceable
        self.deadline = self.watch.deadline
        self.ready = True
        return True

    def arm(self):
        """tls/passing.py `arm`, after a segment Python took: armed again, or let go when the
        connection can no longer be watched this way (the eager path offers a new one)."""
        self._sync()
        if not self._arm() and self.conn.passing is self:
            self.conn.passing = None

    cdef bint take(self, int side, const unsigned char* frame, Py_ssize_t size, Py_ssize_t l3,
                   const unsigned char* ip, double t, Py_ssize_t index) except -1:
        """The segment whose IPv4 header is ``ip``, of ``side``, when it is the next in order
        (or a bare ACK), acknowledges nothing the other side has not sent, and comes before
        the deadline; False, with nothing changed, for any other."""
        cdef unsigned char flags = ip[33]
        cdef unsigned int seq, ack, d
        cdef Py_ssize_t total, packet_end, start, n
        cdef Ledger ledger = self.ledger
        cdef long long number
        cdef object payload
        if not self.ready or ledger.passed >= ledger.limit:
            return False
        if flags & 0x07 or not flags & 0x10:  # FIN, SYN, RST, or no ACK: the usual way
            return False
        total = (ip[2] << 8) | ip[3]
        packet_end = l3 + total if total else size
        if packet_end > size:  # the snaplen cut it
            return False
        start = l3 + 20 + ((ip[32] >> 4) << 2)
        n = packet_end - start if start < packet_end else 0
        seq = _u32(ip + 24, False)
        ack = _u32(ip + 28, False)
        d = ack - self.next_seq[1 - side]
        if 0 < d < _HALF:  # bytes (or a FIN) of the other side not seen yet: the usual way
            return False
        number = ledger.base + index
        if n:
            if seq != self.next_seq[side] or t > self.deadline:
                return False
            if side == self.client and self.late and self.watch._client_first is None:
                return False  # maybe a request after a hole (`_observe`'s loop)
            payload = PyBytes_FromStringAndSize(<const char*>frame + start, n)
        self._acked(side, ack)
        self._count(t)
        self.follow.watching += 1
        if not n:
            return True
        self.follow.watched += 1
        self.next_seq[side] = seq + <unsigned int>n
        self.taken[side] += n
        _keep(self.recent0 if side == 0 else self.recent1, <const char*>frame + start, n)
        if self.watch._observe(side == self.client, payload, number, t):
            # the window is full: Python ends the watch, the connection brought up to date
            self.release()
            _count_passed(ledger, self.reassembler)
            self.tracker._finish_switch(t, _WINDOW_OVER)
            ledger.limit = self.reassembler._until_sweep - 1
        return True

    cdef void _acked(self, int side, unsigned int ack):
        if not self.acked[side] or (ack != self.ack[side] and ack - self.ack[side] < _HALF):
            self.ack[side] = ack
        self.acked[side] = True

    cdef void _count(self, double t):
        cdef Ledger ledger = self.ledger
        if not self.frames:
            ledger.dirty[self] = None
        self.frames += 1
        self.last_time = t
        ledger.passed += 1
        ledger.total += 1
        ledger.last_time = t

    cdef int _sync(self) except -1:
        cdef object conn, here
        cdef int s
        if not self.frames:
            return 0
        del self.ledger.dirty[self]
        self.frames = 0
        conn = self.conn
        sides = conn.sides
        for s in range(2):
            if self.taken[s]:
                here = sides[s]
                here.next_offset = here.next_offset + self.taken[s]
                self.taken[s] = 0
        conn.last_time = self.last_time
        # every ACK taken was of bytes already seen: only the highest counts, and none is a
        # lost FIN's proof (`Reassembler._peer_acked`)
        for s in range(2):
            if self.acked[s]:
                self.acked[s] = False
                self.reassembler._peer_acked(conn, 1 - s, self.ack[s])
        return 0

    def sync(self):
        """tls/syncing.py `sync`: the reassembler's offsets, ACKs and last time where the
        per-segment path would have left them (the kept bytes are there already)."""
        self._sync()

    cpdef release(self):
        """Brought up to date and let go: the connection's segments go the eager way (and a
        watch segment there offers a new state, `Follow._deliver`)."""
        self._sync()
        self.ready = False
        if self.conn.passing is self:
            self.conn.passing = None


cdef int _offer_watching(object conn, object tracker, object switch, CompiledSwitchWatch watch,
                         Follow follow) except -1:
    cdef Watching state = Watching(conn, tracker, switch, watch, follow)
    if state._arm():
        conn.passing = state
    return 0


cdef int _watch_record(Passing state, object stage, long long since, bytes data,
                       long long frame, double t) except -1:
    """A record a watching TLS state opened (`_watched`, below), handed straight to the
    inner tracker's compiled watch when `TlsStage.watched_record` (its plain twin) would do
    no more: `TlsStage._deliver`'s bookkeeping of the shadow connection (the offset reached,
    the last TAIL_BYTES, which the life reads when it begins), then `_observe`'s ordinary
    step, as `Follow._deliver` does for a cleartext segment; the watch's last frame ends it
    through `_finish_switch`. 0: not taken (the stage reads it); 1: taken; 2: taken, and the
    watch is over."""
    cdef object shadow, tracker, switch, here
    cdef int side = state.side
    _load_tracker()
    _load_slots()
    if stage._done or stage._inner_stopped:
        return 0
    shadow = stage._shadow
    if (type(shadow) is not _CONNECTION or _slot(shadow, _C_IGNORED)
            or _slot(shadow, _C_LIFE) is not None):
        return 0
    tracker = _slot(shadow, _C_LISTENER)
    if type(tracker) is not _TRACKER or tracker._done:
        return 0
    switch = _watching_switch(tracker, side, t)
    if switch is None:
        return 0
    here = (<tuple>_slot(shadow, _C_SIDES))[side]
    _slots_set(here, _D_NEXT, stage._session.plain_offset(side) + since + len(data))
    _slots_set(here, _D_RECENT, (_slot(here, _D_RECENT) + data)[-_TAIL_BYTES:])
    return _watch_step(tracker, switch, side, data, frame, t)


cdef int _watched_plain(list opened, long long since, long long length, bint earlier,
                        long long first_frame, double first_time, long long frame,
                        double t) except -1:
    """A watched record's plaintext (``length`` bytes in ``_OUT``, ``since`` bytes after the
    last sync's offset) as the session's `_plain` gives it: when the record began in an
    ``earlier`` segment (at ``first_frame``, ``first_time``), all but its last byte in that
    frame and the last byte in the frame that completed it; else whole, in this one."""
    cdef const char* out = PyByteArray_AS_STRING(_OUT)
    if earlier and length > 1:
        opened.append((since, PyBytes_FromStringAndSize(out, length - 1), first_frame,
                       first_time))
        opened.append((since + length - 1, PyBytes_FromStringAndSize(out + length - 1, 1),
                       frame, t))
    else:
        opened.append((since, PyBytes_FromStringAndSize(out, length), frame, t))
    return 0


cdef int _watched(Passing self, list opened) except -1:
    """The plaintext a watching state opened in one segment, to the TLS stage in order;
    when it says the watch is over (its last frame ended it), later data segments go the
    usual way (the deadline passed), where the life takes them."""
    cdef int taken
    stage = self.conn.listener
    for since, data, frame, t in opened:
        if self.watch_in_c:
            taken = _watch_record(self, stage, since, data, frame, t)
            if taken:
                if taken == 2:
                    self.deadline = -1.0
                continue
        if stage.watched_record(self.side, since, data, frame, t):
            self.deadline = -1.0
    return 0
