# A passing state's buffer (decode/_passing.pxi `Passing.buf`): where the bytes it takes are
# kept for as long as anything may read them (the recent bytes for retransmission compares,
# a record's start for the record reader, records counted on trust), how their copy is put
# off while nothing may (`_defer`, `_settle`), and how a capped state's buffer grows within
# the ledger's budget (`_fits`, `_grow`). Functions of a `Passing`, as decode/_trust.pxi's are:
# Cython allows no include inside a class body.


cdef int _room(Passing self, Py_ssize_t n) except -1:
    """Make room for ``n`` more bytes at ``end``: when they do not fit, what must be kept
    (the recent bytes, and from ``start`` on) moves down to the buffer's start."""
    cdef Py_ssize_t keep_from
    cdef char* buf
    cdef int i
    if self.end + n <= PyByteArray_GET_SIZE(self.buf):
        return 0
    keep_from = _needed_from(self)
    buf = PyByteArray_AS_STRING(self.buf)
    memmove(buf, buf + keep_from, self.end - keep_from)
    self.end -= keep_from
    self.start -= keep_from
    for i in range(self.ring_n):
        self.ring[i].at -= keep_from
    if self.places:
        _forget_below(self, keep_from)
        for i in range(self.place_first, self.places):
            self.place_to[i] -= keep_from
    if self.end + n > PyByteArray_GET_SIZE(self.buf):
        _grow(self, self.end + n)
    return 0


cdef inline bint _fits(Passing self, Py_ssize_t n):
    """Whether ``n`` more bytes fit in the buffer once what must be kept moved down
    (`_room`): always with _CAPACITY, not a long segment in life; in life or a watch
    window, not when its buffer would grow past the ledger's budget."""
    cdef Py_ssize_t need = self.end - _needed_from(self) + n
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(self.buf)
    if need <= size:
        return True
    return need <= self.capacity and _budget_allows(self, _grown(self, need))


cdef inline bint _budget_allows(Passing self, Py_ssize_t size):
    """Whether the state's buffer may become ``size`` bytes: always when it is not capped;
    else while the ledger's ``life_budget`` holds every capped buffer, this one that size."""
    cdef Py_ssize_t now = 0 if self.buf is None else PyByteArray_GET_SIZE(self.buf)
    return not self.capped or (
        self.ledger.life_buffer_bytes + size - now <= self.ledger.life_budget)


cdef inline Py_ssize_t _grown(Passing self, Py_ssize_t need):
    """The size a capped state's buffer grows to when it must hold ``need`` bytes: room
    for a segment more, at least half as much again (growing is a copy), at most the
    capacity unless ``need`` is more."""
    cdef Py_ssize_t size = need + _GROWTH
    cdef Py_ssize_t half_more = PyByteArray_GET_SIZE(self.buf) * 3 // 2
    if size < half_more:
        size = half_more
    if size > self.capacity:
        size = self.capacity if need <= self.capacity else need
    return size


cdef int _grow(Passing self, Py_ssize_t need) except -1:
    """The buffer made to hold ``need`` bytes (`_room`, after moving down), counted in
    the ledger when the state is."""
    cdef Py_ssize_t before = PyByteArray_GET_SIZE(self.buf)
    cdef Py_ssize_t size = _grown(self, need)
    PyByteArray_Resize(self.buf, size)
    self.ledger.grown += 1
    if self.capped:
        self.ledger.buffers_grew(size - before)
    return 0


cdef inline Py_ssize_t _needed_from(Passing self):
    """Where the bytes anything may still read begin: the recent bytes, and from
    ``start`` on (`_room` keeps the same)."""
    cdef Py_ssize_t keep_from = self.end - self.recent_length
    if self.start < keep_from:
        keep_from = self.start
    if self.ring_n and self.ring[0].at < keep_from:  # (trusting in life: their records)
        return self.ring[0].at
    return keep_from


cdef int _defer(Passing self, const unsigned char* data, Py_ssize_t n, Py_ssize_t to) except -1:
    """The ``n`` bytes at ``data`` belong at ``to`` in the buffer, but nothing may read
    them before a later segment pushes them out of what is kept (the recent bytes, and
    the record reader's from ``start``): most are never copied. The read buffer holding
    them stays alive in the ledger until the next one after it comes, when they are
    copied (`Ledger.pin`); so are they before Python reads the buffer (`_settle`).

    Why: copying every byte taken into the buffer was ≈ 6 % of a keyed TLS run's CPU
    (benchmarks/README.md, "Copies put off"), cache misses on bytes nothing reads."""
    cdef Ledger ledger = self.ledger
    cdef int i
    # too many small segments, or a small read buffer: copied now (`pin` may copy this
    # state's places first)
    if self.places == _PLACES and self.place_first:
        _compact(self)
    if self.places == _PLACES or not ledger.pin():
        memcpy(PyByteArray_AS_STRING(self.buf) + to, data, n)
        return 0
    i = self.places
    self.place_at[i] = data
    self.place_to[i] = to
    self.place_length[i] = n
    self.place_chunk[i] = ledger.chunk
    self.places = i + 1
    ledger.deferred += n
    if not self.deferring:
        self.deferring = True
        ledger.deferring.add(self)
    return 0


cdef void _forget_below(Passing self, Py_ssize_t keep_from) noexcept:
    """Places whose bytes lie wholly before ``keep_from`` are never read: dropped (a
    place across it keeps its part from there)."""
    cdef int first = self.place_first
    cdef Py_ssize_t cut
    while first < self.places and self.place_to[first] + self.place_length[first] <= keep_from:
        first += 1
    if first == self.places:
        self.places = self.place_first = 0
        return
    self.place_first = first
    if self.place_to[first] < keep_from:
        cut = keep_from - self.place_to[first]
        self.place_at[first] += cut
        self.place_to[first] = keep_from
        self.place_length[first] -= cut


cdef void _compact(Passing self) noexcept:
    """The places move to the front of their arrays (they are full up to the end)."""
    cdef int first = self.place_first, i
    for i in range(first, self.places):
        self.place_at[i - first] = self.place_at[i]
        self.place_to[i - first] = self.place_to[i]
        self.place_length[i - first] = self.place_length[i]
        self.place_chunk[i - first] = self.place_chunk[i]
    self.places -= first
    self.place_first = 0


cdef void _forget_from(Passing self, Py_ssize_t at) noexcept:
    """`_open` changed nothing after all: the places it added (from ``at``, the end of
    the buffer before it) are dropped."""
    while self.places > self.place_first and self.place_to[self.places - 1] >= at:
        self.places -= 1
        self.ledger.deferred -= self.place_length[self.places]
    if self.places == self.place_first:
        self.places = self.place_first = 0


cdef void _settle(Passing self) noexcept:
    """Copy what the places hold of the bytes anything may still read."""
    cdef Py_ssize_t keep_from, lo, hi
    cdef char* buf
    cdef int i
    if not self.places:
        _leave_ledger(self)
        return
    keep_from = _needed_from(self)
    buf = PyByteArray_AS_STRING(self.buf)
    for i in range(self.place_first, self.places):
        lo = self.place_to[i]
        hi = lo + self.place_length[i]
        if lo < keep_from:
            lo = keep_from
        if lo < hi:
            memcpy(buf + lo, self.place_at[i] + (lo - self.place_to[i]), hi - lo)
            self.ledger.copied += hi - lo
    self.places = self.place_first = 0
    _leave_ledger(self)


cdef void _leave_ledger(Passing self) noexcept:
    """No place held: out of the ledger's set, which would otherwise keep a state
    Python let go (and its 256 KiB buffer) alive until the next read buffer."""
    if self.deferring:
        self.deferring = False
        self.ledger.deferring.discard(self)


cdef int _keep_bytes(Passing self, const unsigned char* data, Py_ssize_t n) except -1:
    """`reassembly._Direction.advance`'s kept bytes: append, and keep the last 16 KiB
    once over 32 KiB. Opening put the bytes in the buffer already (`_open`); passing puts
    their copy off (`_defer`)."""
    if self.gather:  # gathered bytes are read back (`unread`)
        _room(self, n)
        memcpy(PyByteArray_AS_STRING(self.buf) + self.end, data, n)
    elif not self.opening:  # passing: nothing else to keep, the recent bytes put off
        _room(self, n)
        _defer(self, data, n, self.end)
        self.start = self.end + n
    self.end += n
    if self.keep_recent:
        self.recent_length += n
        if self.recent_length > 2 * _RECENT:
            self.recent_length = _RECENT
        self.recent_changed = True
    if self.places:
        _forget_below(self, _needed_from(self))
    return 0


cdef int _settle_before(Ledger ledger, long long chunk) except -1:
    """The states holding places in read buffers numbered below ``chunk`` copy them all
    (`Ledger.pin`); the others keep theirs."""
    cdef Passing state
    for item in list(ledger.deferring):
        state = <Passing>item
        if not state.places:  # (its places were dropped as the stream moved on)
            _leave_ledger(state)
        elif state.place_chunk[state.place_first] < chunk:
            _settle(state)
    return 0


cdef bint _load_recent(Passing self, recent) except -1:
    """`Passing.load_recent`: the buffer loaded with the direction's last bytes."""
    cdef Py_ssize_t length = PyByteArray_GET_SIZE(recent)
    cdef Py_ssize_t held = 0, need, size
    cdef bytes suffix = None
    cdef const char* kept = PyByteArray_AS_STRING(recent)
    _settle(self)
    self.trusted_record = False  # the reader read the current record's header
    if length > _KEPT:
        return False
    if self.opening and self.held_bytes is None and self.end > self.start:
        # Armed again after a segment went the usual way (a retransmission: the
        # reassembler unsets ``ready``): the reader still holds the current record's
        # bytes from ``start`` on (`unread` at the sync before it), which must stay in
        # front of the bytes to come. Without them the record was opened short and
        # failed (Python then read it); counted unopened, it would be miscounted.
        self.held_bytes = PyBytes_FromStringAndSize(
            PyByteArray_AS_STRING(self.buf) + self.start, self.end - self.start)
    if self.held_bytes is not None:
        held = len(self.held_bytes)
        if held > length:
            suffix = self.held_bytes
            if memcmp(<const char*>suffix + held - length, kept, length):
                return False
        elif memcmp(kept + length - held, <const char*>self.held_bytes, held):
            return False
    need = held if suffix is not None else length
    if self.buf is None:
        if self.capacity != _CAPACITY:
            size = max(need, min(self.capacity, need + _GROWTH))
            if not _budget_allows(self, size):
                # past the ledger's budget (a hard bound, as `_fits` keeps it): not armed,
                # the direction's segments go the usual way
                return False
            self.buf = PyByteArray_FromStringAndSize(NULL, size)
            if self.capped:
                self.ledger.buffers_grew(size)
        else:
            self.buf = (_SPARE.pop() if _SPARE
                        else PyByteArray_FromStringAndSize(NULL, _CAPACITY))
    elif PyByteArray_GET_SIZE(self.buf) < need:
        # Armed again: Python delivered nothing since (it drops the state when it
        # does), so its bytes are those the buffer held; but a buffer that grows must
        # never be written past its end on that belief alone (nor past the budget).
        if not _budget_allows(self, _grown(self, need)):
            return False
        _grow(self, need)
    if suffix is not None:
        memcpy(PyByteArray_AS_STRING(self.buf), <const char*>suffix, held)
        self.end = held
    else:
        memcpy(PyByteArray_AS_STRING(self.buf), PyByteArray_AS_STRING(recent), length)
        self.end = length
    self.start = self.end - held
    self.held = held
    self.held_bytes = None
    self.recent = recent
    self.recent_length = length
    self.recent_changed = False
    return True


cdef int _flush_recent(Passing self) except -1:
    """`Passing.flush_recent`: `recent` made what the appends since made it."""
    cdef Py_ssize_t length = self.recent_length
    _settle(self)
    if not self.recent_changed:
        return 0
    PyByteArray_Resize(self.recent, length)
    memcpy(PyByteArray_AS_STRING(self.recent),
           PyByteArray_AS_STRING(self.buf) + self.end - length, length)
    self.recent_changed = False
    return 0
