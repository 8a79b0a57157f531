# analyzer/tls/passing.py says when a connection gets a `Passing` and how the Python state is
# brought up to date afterwards (`sync`). The plain twin is the per-segment path: a run with
# compiled=False never makes one, and tests/test_tls_passing.py compares the two. Here: the
# state, what it takes and when. Beside it, its limits and shared buffers
# (_passing_limits.pxi), and functions of a state: its buffer (_passing_buffer.pxi), opening
# records (_opening.pxi), records counted on trust in life (_trust.pxi), and a watching
# state's records handed to the watch (_watching.pxi).


cdef class Passing:
    """One connection whose direction ``side`` carries TLS application-data records that may
    pass unread: a frame of the connection is taken when it is the next in-order segment of
    that direction (ACK set, no SYN/FIN/RST, whole in the capture, acknowledging nothing of
    the other direction not yet delivered) and every record it starts has outer type 23,
    version 3.3 and a plaintext of ``length - overhead`` bytes that keeps the sum below
    ``budget``; or a bare in-order ACK of the other direction. Anything else stops here."""

    cdef public object conn
    cdef public Ledger ledger
    cdef public int side
    cdef public bint ready  # the reassembler's state was checked (tls/passing.py, `arm`)
    cdef public unsigned int next_seq  # sequence number of the next byte of ``side``
    cdef public unsigned int peer_seq  # ... and of the other direction
    cdef public Py_ssize_t to_header  # bytes of the current record still to come
    cdef public Py_ssize_t overhead  # ciphertext bytes per record that are not plaintext
    cdef public long long budget  # plaintext bytes the passed records must stay below
    cdef public double deadline  # data of ``side`` after this time goes the usual way
    # Gathering instead (any suite, any version): segments inside a record are kept, and the
    # segment that ends a record goes the usual way, so Python reads every record whole.
    cdef public bint gather
    # Turning (passing only): the record that reaches the body's end is gathered in C from
    # its header on, rather than sent to Python for an offer to gather it (one Python round
    # less a response: tls/passing.py `TURN`). ``turned``: the bytes passed before that
    # record, not yet synced (-1: not turned).
    cdef public bint turn
    cdef public long long turned
    cdef public long long kept_frame  # the first byte's frame number of those not yet synced
    cdef public double kept_time
    # Opening instead (TLS 1.3, any AEAD suite: the inner type ends the encrypted record):
    # each record is gathered whole in ``buf`` and opened with ``decrypt(nonce, body,
    # header)`` (the direction's `cryptography` AEAD: authenticated, RFC 8446 §5.2), and
    # when its inner type is application data it counts as passed. Any other record (a
    # KeyUpdate, an alert, padding only, one that does not open) has its last segment go the
    # usual way, which reads the record from its bytes.
    cdef public bint opening
    cdef public object decrypt
    # ``decrypt_into(nonce, body, header, out)`` of the same AEAD when there is one (None:
    # ``decrypt``, which makes a new 16 KiB bytes object per record): the plaintext goes into
    # ``_OUT``, the run's one buffer, reused from record to record (tls/passing.py `offer_open`)
    cdef public object decrypt_into
    cdef public bytes iv  # RFC 8446 §5.3: the per-record nonce is this XOR the sequence number
    # TLS 1.2 AEAD instead (in life only: tls/passing.py `offer_open_in_life`): ``lead``, the
    # explicit nonce's bytes at the front of each record (8: AES-GCM, whose nonce is the
    # 4-byte ``iv`` and those, RFC 5288 §3; 0: ChaCha20-Poly1305, made as TLS 1.3's, RFC 7905
    # §2), and the protocol version the additional data names (RFC 5246 §6.2.3.3); -1: TLS 1.3
    cdef public int lead
    cdef public int aad_version
    cdef public object invalid  # the exception ``decrypt`` raises for a record that does not open
    cdef public object opener  # the direction's `RecordOpener` (tls/syncing.py `sync`)
    cdef public long long sequence  # the current record's sequence number
    # Trusting (tls/passing.py, "Records counted unopened"): once ``clean`` records of these
    # keys opened as unpadded (``trust_after`` of them), a record whose body is ``trust_from``
    # bytes or more (0: never) counts as application data of its length less the tag and the
    # inner type byte, unopened. ``unconfirmed``: records so counted since the last one that
    # opened (a record that then fails to open says one of them was not data). ``padded``: an
    # opened record had padding, which ends the trust (for good: tls/syncing.py `sync`).
    cdef public Py_ssize_t trust_from
    cdef public long long clean, trust_after, unconfirmed
    cdef public bint padded
    # In life (tls/passing.py `offer_open_in_life`): opening the records of a decrypted
    # WebSocket past its watch window, whose life keeps of a direction only its counts, times
    # and the bytes a final Close frame may be in (life/state.py): ``life_tail`` (its first
    # ``life_tail_length`` bytes: `keep_tail` of the plaintext opened so far),
    # ``life_data_time`` (the segment that completed the last record opened) and
    # ``life_last_time`` (the last segment of ``side`` taken); ``life_taken``: one was taken
    # since the last sync. Every record is opened then (no trust): each one's plaintext may
    # end the tail.
    cdef public bint life
    # Trusting in life (tls/passing.py `TRUST_IN_LIFE`): once ``trust_after`` records of these
    # keys opened unpadded, a record whose body is ``life_trust_from`` bytes or more (0:
    # never) counts as application data of its length less the overhead, and is opened only
    # if its plaintext is needed: for the tail, when a smaller record follows it or at the
    # next sync (decode/_trust.pxi). The ``ring_n`` records so counted last, in order, are
    # ``ring``'s first: those whose plaintext the tail may need, should the last of them not
    # be application data (the first is dropped, unopened, once those between it and the
    # last cover the tail, `_trim`); their bytes stay in the buffer. A record that does not
    # open as the application data it was counted as is taken back, with those after it,
    # and Python reads them (`_take_back`).
    cdef public Py_ssize_t life_trust_from
    cdef _Trusted ring[_RING]
    cdef int ring_n
    # `_take_back` left records for Python (tls/syncing.py `_reread`): each one's length and
    # the frames and times of its first byte and end, in order; the frame and time the bytes
    # after them had (`kept_frame`'s before)
    cdef public list taken_back
    cdef public long long after_frame
    cdef public double after_time
    # In a watch window (tls/passing.py `offer_open_in_watch`): each record opened as
    # application data goes to the TLS stage at once (`TlsStage.watched_record`, after the
    # segment's records all opened), which reads it as the per-segment path would; once the
    # watch is over, the next data segment goes the usual way.
    cdef public bint watching
    # ... and each one straight to the compiled watch where the inner tracker would only
    # hand it on (`_watch_record`; tls/passing.py `WATCH_IN_C`)
    cdef public bint watch_in_c
    # Counted in the ledger's ``life_states`` (states in life or in a watch window)
    cdef public bint capped
    # The most the buffer may hold: _CAPACITY, or in life or a watch window (``capped``: its
    # buffer grows, `_grow`) _LIFE_CAPACITY or WATCH_CAPACITY
    cdef public Py_ssize_t capacity
    cdef unsigned char life_tail[2 * _TAIL_BYTES]
    cdef Py_ssize_t life_tail_length
    cdef public double life_data_time, life_last_time
    cdef public bint life_taken
    # A pair (in life: tls/passing.py `offer_open_in_life`): the state in ``conn.passing``
    # holds in ``peer`` the ``follower``, which opens the other direction's records and takes
    # that direction's segments (`take` hands them to it, as its ``leader`` for the call: no
    # lasting reference back, so a pair let go is freed at once, not by the collector).
    # Each reads the other's position for its causal-order check, and the follower counts
    # its takes in the leader's ``frames`` too, which is what the pipeline reads before it
    # brings a connection up to date (`sync` then brings both). ``last_number``: the frame
    # number of the last take.
    cdef public Passing peer
    cdef public bint follower
    cdef Passing leader
    cdef public long long last_number
    # One buffer (bytearray of _CAPACITY bytes) per state holds every byte taken, copied once:
    # its last ``recent_length`` bytes up to ``end`` are what the direction's `recent` (the
    # bytes reassembly keeps for retransmission compares) would be, and from ``start`` on the
    # bytes the Python record reader has not all read: opening, the current record (the
    # reader holds its first ``held``); gathering, the bytes gathered (the reader holds the
    # first ``held`` of them, given at a `sync`). When a segment does not fit, what must be
    # kept moves down to the buffer's start. It replaced a ring for `recent` and a record
    # buffer, which copied every opened byte twice (benchmarks/README.md, `tls13one`).
    cdef object buf
    # Copies put off (`_defer`): the buffer's bytes from ``place_to[i]`` on, ``place_length[i]``
    # of them, are at ``place_at[i]`` in read buffer number ``place_chunk[i]`` (the ledger keeps
    # it alive), not yet copied; in the order of the stream, for ``place_first`` <= i <
    # ``places`` (both 0 when there is none: the places dropped from the front are skipped, not
    # moved, until the arrays are full). ``trusted_record``: opening, the
    # current record was found counted unopened at its header, so its bytes are put off too.
    cdef const unsigned char* place_at[_PLACES]
    cdef Py_ssize_t place_to[_PLACES]
    cdef Py_ssize_t place_length[_PLACES]
    cdef long long place_chunk[_PLACES]
    cdef int places, place_first
    cdef bint deferring  # in the ledger's set of states holding places
    cdef bint trusted_record
    cdef Py_ssize_t end
    cdef public Py_ssize_t start
    cdef public Py_ssize_t held
    cdef Py_ssize_t recent_length
    cdef bint recent_changed
    # False when the direction keeps no recent bytes (reassembly `_Direction.stop_keeping`:
    # a decrypted WebSocket in life): ``recent_length`` stays 0, `recent` is never written.
    cdef public bint keep_recent
    cdef bytes held_bytes  # opening: the reader's bytes of the current record until `load_recent`
    cdef public long long pass_bytes  # taken bytes of opened records the reader does not hold
    cdef public Py_ssize_t carry_plain  # the record the reader holds part of (-1: none)
    cdef public bint absorbed  # ... was passed: its buffered bytes are dropped
    cdef public object recent  # the direction's `recent` bytearray (reassembly)
    # taken since the last sync
    cdef public long long bytes
    cdef public long long records
    cdef public long long plain
    cdef public long long frames
    cdef public double last_time
    cdef public bint acked_here, acked_peer
    cdef public unsigned int ack_here  # highest ack of ``side``'s segments (of the peer's bytes)
    cdef public unsigned int ack_peer  # highest ack of the peer's ACKs (of ``side``'s bytes)
    # The frame and time of the segment that raised each ack to its value (the first to
    # acknowledge it: a lost FIN's proof, reassembly/delivery.py `_lost_fin`), and for
    # ``side``'s own, its bytes taken before that segment's
    cdef public long long ack_here_frame, ack_peer_frame, ack_here_bytes
    cdef public double ack_here_time, ack_peer_time

    def __init__(self, conn, Ledger ledger, int side):
        self.conn = conn
        self.ledger = ledger
        self.side = side
        self.ready = False
        self.carry_plain = -1
        self.absorbed = False
        self.recent = None
        self.gather = False
        self.turn = False
        self.turned = -1
        self.opening = False
        self.decrypt = None
        self.decrypt_into = None
        self.capacity = _CAPACITY
        self.iv = None
        self.lead = -1
        self.aad_version = 0
        self.invalid = None
        self.opener = None
        self.sequence = 0
        self.trust_from = 0
        self.clean = self.trust_after = self.unconfirmed = 0
        self.life_trust_from = 0
        self.ring_n = 0
        self.taken_back = None
        self.after_frame = 0
        self.after_time = 0.0
        self.padded = False
        self.life = self.life_taken = False
        self.watching = self.watch_in_c = False
        self.capped = False
        self.peer = self.leader = None
        self.follower = False
        self.last_number = 0
        self.life_tail_length = 0
        self.life_data_time = self.life_last_time = 0.0
        self.buf = None
        self.places = self.place_first = 0
        self.deferring = self.trusted_record = False
        self.end = self.start = self.held = 0
        self.recent_length = 0
        self.recent_changed = False
        self.keep_recent = True
        self.held_bytes = None
        self.pass_bytes = 0
        self.kept_frame = 0
        self.kept_time = 0.0
        self.deadline = float("inf")
        self.bytes = self.records = self.plain = self.frames = 0
        self.acked_here = self.acked_peer = False
        self.ack_here_frame = self.ack_peer_frame = self.ack_here_bytes = 0
        self.ack_here_time = self.ack_peer_time = 0.0

    cdef bint take(self, int side, const unsigned char* frame, Py_ssize_t size, Py_ssize_t l3,
                   const unsigned char* ip, double t, Py_ssize_t index) except -1:
        cdef unsigned char flags = ip[33]
        cdef unsigned int seq, ack, d
        cdef Py_ssize_t total, packet_end, start, n, pos, take, length
        cdef Py_ssize_t to_header, turn_at
        cdef long long plain, records, used
        cdef const unsigned char* q
        cdef Ledger ledger = self.ledger
        cdef unsigned int peer_seq
        cdef Passing other
        if not self.ready or ledger.passed >= ledger.limit:
            return False
        if flags & 0x07 or not flags & 0x10:  # FIN, SYN, RST, or no ACK: the full path
            return False
        total = (ip[2] << 8) | ip[3]
        packet_end = l3 + total if total else size
        if packet_end > size:  # the snaplen cut it
            return False
        start = l3 + 20 + ((ip[32] >> 4) << 2)
        n = packet_end - start if start < packet_end else 0
        seq = _u32(ip + 24, False)
        ack = _u32(ip + 28, False)
        if side != self.side:
            if n:  # the other direction speaks: a reader must see it
                return False
            if not self.acked_peer or (ack != self.ack_peer and ack - self.ack_peer < _HALF):
                self.ack_peer = ack
                self.ack_peer_frame = ledger.base + index
                self.ack_peer_time = t
            self.acked_peer = True
        else:
            if n:
                if seq != self.next_seq or t > self.deadline:
                    return False
                # (a pair's other direction moves on in C: its position is its state's)
                peer_seq = self.peer_seq
                other = self.peer if self.peer is not None else self.leader
                if other is not None and other.ready:
                    peer_seq = other.next_seq
                d = ack - peer_seq
                if 0 < d < _HALF:  # it waits for bytes (or a FIN: armed without) of the peer
                    # (reassembly's causal order, `delivery._unseen`)
                    return False
                q = frame + start
                if self.opening:
                    if not _fits(self, n) and self.ring_n and not _resolve(self):
                        return False
                    if not _fits(self, n) or not _open(self, q, n, ledger.base + index, t):
                        return False
                    return self._took_bytes(q, n, seq, ack, t, ledger.base + index)
                to_header = self.to_header
                if self.gather:
                    if not to_header:  # a record starts here: its header must be whole
                        if n < 5 or not 20 <= q[0] <= 24 or q[1] != 3 or q[2] > 4:
                            return False
                        to_header = 5 + ((q[3] << 8) | q[4])
                        if to_header > 5 + _MAX_RECORD:
                            return False
                    if to_header <= n:  # the record ends in this segment: Python reads it
                        return False
                    if self.start + self.held == self.end:
                        self.kept_frame = ledger.base + index
                        self.kept_time = t
                    self.to_header = to_header - n
                    return self._took_bytes(q, n, seq, ack, t, ledger.base + index)
                plain = self.plain
                if not self.absorbed and self.carry_plain >= 0:
                    plain += self.carry_plain
                records = 0
                pos = 0
                turn_at = -1
                while pos < n:
                    if to_header:
                        take = to_header if to_header < n - pos else n - pos
                        to_header -= take
                        pos += take
                        continue
                    if n - pos < 5:  # a header split between frames: read by the full path
                        return False
                    if q[pos] != 23 or q[pos + 1] != 3 or q[pos + 2] != 3:
                        return False
                    length = (q[pos + 3] << 8) | q[pos + 4]
                    if length <= self.overhead or length > _MAX_RECORD:
                        return False
                    used = length - self.overhead
                    if plain + used >= self.budget:  # this record reaches the body's end
                        # Python reads it whole: at its last segment when it goes on past
                        # this one and the state may turn to gathering, else from here
                        if not self.turn or 5 + length <= n - pos:
                            return False
                        turn_at = pos
                        to_header = 5 + length - (n - pos)
                        break
                    plain += used
                    records += 1
                    to_header = length
                    pos += 5
                self.absorbed = self.absorbed or self.carry_plain >= 0
                self.to_header = to_header
                self.plain = plain
                self.records += records
                if turn_at < 0:
                    return self._took_bytes(q, n, seq, ack, t, ledger.base + index)
                # gathering from the record's header on, this segment's first byte of it
                self.turned = self.bytes + turn_at
                self.gather = True
                self.held = 0
                self.kept_frame = ledger.base + index
                self.kept_time = t
                self._took_bytes(q, n, seq, ack, t, ledger.base + index)
                self.start = self.end - (n - turn_at)
                ledger.turned += 1
                return True
            self._acked_here(ack, ledger.base + index, t)
        return self._taken(t, ledger.base + index)

    cdef bint take_by_peer(self, int side, const unsigned char* frame, Py_ssize_t size,
                           Py_ssize_t l3, const unsigned char* ip, double t,
                           Py_ssize_t index) except -1:
        """`take` of a segment of the other direction, by this state's ``peer`` (the caller
        checked there is one), with this state as its ``leader`` for the call."""
        cdef Passing other = self.peer
        other.leader = self
        try:
            return other.take(side, frame, size, l3, ip, t, index)
        finally:
            other.leader = None

    def resolve_pending(self):
        """`_resolve` before a sync reads the counts and the tail (tls/passing.py
        `_sync_reading`)."""
        return _resolve(self)

    @property
    def pending_at(self):
        """The first byte's place of the records counted on trust in life (-1: none)."""
        return self.ring[0].at if self.ring_n else -1

    def load_recent(self, recent):
        """Start from the direction's `recent` bytearray (tls/passing.py `arm`), and when
        opening from the record reader's bytes of the current record (`start_record`): both
        are the last bytes of the direction, so the buffer starts with the longer of the
        two. False when they disagree (after a hole), or `recent` is longer than reassembly
        leaves it: the state is not armed, and its segments go the usual way."""
        return _load_recent(self, recent)

    def flush_recent(self):
        """Bring `recent` to what the appends since `load_recent` made it (tls/passing.py
        `sync`)."""
        _flush_recent(self)

    @property
    def buffer_size(self):
        """The bytes its buffer has room for (tests)."""
        return 0 if self.buf is None else PyByteArray_GET_SIZE(self.buf)

    def latest_time(self):
        """The time of the last segment this state took, of the later one of a pair (by
        frame number; the leader's on a tie): what a sweep reads of its connection
        (tls/syncing.py `latest_time`)."""
        cdef Passing leader, later
        if self.peer is not None:
            leader = self
        elif self.follower:
            found = self.conn.passing
            if not isinstance(found, Passing) or (<Passing>found).peer is not self:
                return self.last_time
            leader = <Passing>found
        else:
            return self.last_time
        later = leader.peer
        if later.last_number > leader.last_number:
            return later.last_time
        return leader.last_time

    def set_life_tail(self, bytes tail):
        """In life: the direction's tail so far (life/state.py `_Flow.tail`, at most
        TAIL_BYTES)."""
        if len(tail) > _TAIL_BYTES:
            raise ValueError("a life's tail is at most TAIL_BYTES long")
        memcpy(self.life_tail, <const char*>tail, len(tail))
        self.life_tail_length = len(tail)

    def life_tail_bytes(self):
        return PyBytes_FromStringAndSize(<const char*>self.life_tail, self.life_tail_length)

    def start_record(self, bytes held):
        """Opening: the current record's first bytes, as the Python record reader holds them
        (they go into the buffer at `load_recent`)."""
        self.held_bytes = held

    def unread(self):
        """The bytes taken that the record reader does not hold (opening: of the current
        record; gathering: since the last sync), as the reader now holds them (`sync`)."""
        cdef Py_ssize_t first = self.start + self.held
        _settle(self)
        rest = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self.buf) + first,
                                         self.end - first)
        self.held = self.end - self.start
        return rest

    def __dealloc__(self):
        if self.capped and self.ledger is not None:
            self.ledger.life_states -= 1
            if self.buf is not None:
                self.ledger.life_buffer_bytes -= PyByteArray_GET_SIZE(self.buf)
        if (self.buf is not None and len(_SPARE) < 16
                and PyByteArray_GET_SIZE(self.buf) == _CAPACITY):
            _SPARE.append(self.buf)

    cdef bint _took_bytes(self, const unsigned char* q, Py_ssize_t n, unsigned int seq,
                          unsigned int ack, double t, long long number) except -1:
        """``n`` bytes of ``side`` at ``seq`` went by in C (passed, opened or gathered):
        counted, kept for retransmission compares, with the ACK their segment carried."""
        self._acked_here(ack, number, t)  # before the bytes, as the per-segment path does
        self.bytes += n
        self.next_seq = seq + <unsigned int>n
        _keep_bytes(self, q, n)
        return self._taken(t, number)

    cdef void _acked_here(self, unsigned int ack, long long number, double t):
        if not self.acked_here or (ack != self.ack_here and ack - self.ack_here < _HALF):
            self.ack_here = ack
            self.ack_here_frame = number
            self.ack_here_time = t
            self.ack_here_bytes = self.bytes
        self.acked_here = True

    cdef inline bint _taken(self, double t, long long number) except -1:
        cdef Ledger ledger = self.ledger
        cdef Passing primary
        if not self.frames:
            ledger.dirty[self] = None
        self.frames += 1
        self.last_time = t
        self.last_number = number
        if self.follower:
            primary = self.leader
            if not primary.frames:
                ledger.dirty[primary] = None
            primary.frames += 1
        ledger.passed += 1
        ledger.total += 1
        ledger.last_time = t
        return True
