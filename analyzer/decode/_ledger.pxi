# The run's ledger of what the compiled skip took (analyzer/tls/passing.py `wrap_skip`): the
# passing states of decrypted TLS directions (_passing.pxi), the followed connections
# (_follow.pxi) and the life table (_life_table.pxi) count their frames in it.


cdef enum:
    _PINNED = 2
    _PINNED_FROM = 64 * 1024


cdef class Ledger:
    """What the passing connections of one run took during one skip call: the frames (the
    reassembler's sweep counts them), at most ``limit``; ``dirty`` lists the states with
    something to bring into the Python state."""

    cdef public Py_ssize_t limit
    cdef public Py_ssize_t passed
    cdef public double last_time
    cdef public dict dirty  # (a dict as an ordered set: a state leaves it in O(1))
    cdef public long long total  # frames passed in the whole run
    cdef public long long trusted  # TLS 1.3 records counted unopened in the whole run
    cdef public long long turned  # passing states turned to gathering in the whole run
    cdef public long long life_states  # states in life now (tls/passing.py MAX_LIFE_STATES)
    # The bytes of those states' buffers now, which grow with what they hold
    # (decode/_passing_buffer.pxi `_grow`) up to ``life_budget`` in all (tls/passing.py
    # `new_ledger` sets LIFE_BUFFER_BUDGET; none until then)
    cdef public long long life_buffer_bytes
    cdef public long long life_budget
    cdef public long long grown  # buffers grown in the whole run (tests)
    cdef public long long life_buffer_peak  # the most ``life_buffer_bytes`` was in the run
    cdef public long long base  # the frame number before the skip call's first record
    # Copies put off (decode/_passing_buffer.pxi `_defer`): the states holding places in read
    # buffers, and the last _PINNED read buffers places were put in (``chunk`` numbers the
    # last), kept alive until every place in them is copied (`pin`): the places of a state must
    # outlive the next whole buffer. A small buffer (under _PINNED_FROM: the record a read cut,
    # completed, source/stream.py `fill`) is never kept, its bytes copied at once: keeping it as
    # a third made glibc trim the heap and fault its pages in again at every read
    # (benchmarks/README.md, "Copies put off"). ``current``: the skip call's read buffer,
    # borrowed (`enter`, `leave`): only a buffer a place is put in is kept.
    cdef set deferring  # (a state leaves it when its places are copied or dropped)
    cdef list pinned
    cdef long long chunk
    cdef void* current
    cdef void* last  # the last buffer kept (``pinned``'s last), to compare with ``current``
    cdef public long long deferred  # bytes taken whose copy was put off, in the whole run
    cdef public long long copied  # ... and of those, copied after all (`_settle`)

    def __init__(self):
        self.total = self.trusted = self.turned = self.life_states = 0
        self.life_buffer_bytes = self.grown = self.life_buffer_peak = 0
        self.life_budget = 1 << 62
        self.base = 0
        self.limit = 0
        self.passed = 0
        self.last_time = 0.0
        self.dirty = {}
        self.deferring = set()
        self.pinned = []
        self.chunk = 0
        self.current = self.last = NULL
        self.deferred = self.copied = 0

    cdef void buffers_grew(self, Py_ssize_t more) noexcept:
        """The buffers of states in life or in a watch window hold ``more`` bytes."""
        self.life_buffer_bytes += more
        if self.life_buffer_bytes > self.life_buffer_peak:
            self.life_buffer_peak = self.life_buffer_bytes

    def enter(self, bytes buf):
        """A skip call reads ``buf`` until `leave` (tls/passing.py `wrap_skip`)."""
        self.current = <void*>buf

    def leave(self):
        self.current = NULL

    @property
    def holding(self):
        """How many states hold places now (tests: none once all are synced)."""
        return len(self.deferring)

    cdef bint pin(self) except -1:
        """Keep the skip call's read buffer: a place is put in it. When it is a new one, the
        oldest kept may go: the states that still hold places in it copy them first. False
        for a small one (the record a read cut, completed), whose bytes are copied now."""
        cdef list pinned = self.pinned
        if self.current is self.last and self.current is not NULL:  # (nearly every call)
            return True
        if self.current is NULL or len(<object>self.current) < _PINNED_FROM:
            return False  # (no skip call: never, as `wrap_skip` makes every one)
        self.last = self.current
        self.chunk += 1
        pinned.append(<object>self.current)
        if len(pinned) > _PINNED:
            oldest = pinned.pop(0)  # alive until its places are copied
            _settle_before(self, self.chunk - _PINNED + 1)
            del oldest
        return True
