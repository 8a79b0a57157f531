# Records counted on trust in life (decode/_passing.pxi `Passing.ring`; tls/passing.py
# `TRUST_IN_LIFE`): opened when the life's tail needs them, and taken back when one was not
# the application data it was counted as. Functions of a `Passing` (its `_open` counts the
# records and keeps them in its ring); tls/syncing.py `_reread` reads taken-back ones.
#
# Why a ring and not the last record alone: the tail is what the last _TAIL_BYTES of
# plaintext hold, so a record smaller than that needs those before it. Opening every small
# record (a chat's messages) was ≈ 15 % of a keyed chat run's instructions; the ring holds
# the few the tail may need, and the rest go by unopened, as large ones did.


cdef inline long long _covered(_Trusted* ring, int first, int end) noexcept:
    """The plaintext of records ``first`` to ``end`` (not included) of ``ring``."""
    cdef long long total = 0
    cdef int i
    for i in range(first, end):
        total += ring[i].plain
    return total


cdef inline int _tail_start(_Trusted* ring, int count) noexcept:
    """The first of the ``count`` records of ``ring`` that the tail needs: from the last
    one back until their plaintext covers _TAIL_BYTES (all of them if it does not). The
    tail of the bytes before them plus theirs is the tail of the bytes before the first of
    all plus all of theirs (life/state.py `keep_tail` reads the last _TAIL_BYTES only)."""
    cdef int first = count - 1
    cdef long long total = ring[first].plain
    while first > 0 and total < _TAIL_BYTES:
        first -= 1
        total += ring[first].plain
    return first


cdef inline int _trim(_Trusted* ring, int count) noexcept:
    """Drop ``ring``'s first records while those between the first and the last cover
    _TAIL_BYTES (so the tail never needs it, even should the last one not be application
    data); returns the count left."""
    while count >= 3 and _covered(ring, 1, count - 1) >= _TAIL_BYTES:
        count -= 1
        memmove(ring, ring + 1, count * sizeof(_Trusted))
    return count


cdef bint _resolve(Passing self) except -1:
    """Trusting in life: open the records of the ring the tail needs (`_tail_start`), in
    order, before a sync reads the tail or when their bytes are in the way of a segment's.
    False when one was not the application data it was counted as: it is taken back with
    those after it (`_take_back`), once the ones before it went into the tail (from the
    ring's first, should those after `_tail_start` not cover the tail alone)."""
    cdef int count = self.ring_n, first, failed = -1, i
    cdef unsigned char tail[2 * _TAIL_BYTES]
    cdef Py_ssize_t tail_length = self.life_tail_length
    cdef double data_time = self.life_data_time
    cdef long long clean = self.clean
    if not count:
        return True
    memcpy(tail, self.life_tail, tail_length)
    first = _tail_start(self.ring, count)
    for i in range(first, count):
        if not _opens_as_counted(self, self.ring[i]):
            failed = i
            break
    if failed < 0:
        self.ring_n = 0
        return True
    if first and _covered(self.ring, first, failed) < _TAIL_BYTES:
        memcpy(self.life_tail, tail, tail_length)  # made again from the ring's first
        self.life_tail_length = tail_length
        self.life_data_time = data_time
        self.clean = clean
        for i in range(failed):
            if not _opens_as_counted(self, self.ring[i]):
                failed = i
                break
    _take_back(self, failed)
    return False


cdef bint _opens_as_counted(Passing self, _Trusted record) except -1:
    """Whether ``record`` opens as the application data it was counted as; its
    plaintext then goes into the state's own tail (`_opens_here` on it: nothing to copy)."""
    cdef bint own = True
    if not _opens_here(self, <const unsigned char*>PyByteArray_AS_STRING(self.buf), &record,
                       self.life_tail, &self.life_tail_length, &own):
        return False
    self.unconfirmed = 0
    self.clean += 1
    self.life_data_time = record.end_time
    return True


cdef int _take_back(Passing self, int first) except -1:
    """Records counted on trust that did not open as application data (of another type,
    padded, damaged): the ring's from ``first`` on (none counted after them: they were the
    last). Their counts are taken back, and their bytes, with those after them, become the
    record reader's (`unread` gives them to Python at the sync, which reads them as the
    per-segment path would, `taken_back`). The state takes no more data."""
    cdef _Trusted record
    cdef int i
    self.taken_back = []
    for i in range(first, self.ring_n):
        record = self.ring[i]
        self.plain -= record.plain
        self.records -= 1
        self.pass_bytes -= record.length
        self.ledger.trusted -= 1
        self.taken_back.append((record.length, record.first_frame, record.first_time,
                                record.end_frame, record.end_time))
    # (the ones before them that opened confirmed every earlier one: `_opens_as_counted`)
    self.unconfirmed -= self.ring_n - first
    if self.unconfirmed < 0:
        self.unconfirmed = 0
    record = self.ring[first]
    self.sequence = record.sequence
    self.start = record.at
    self.held = 0
    self.to_header = 0
    self.after_frame, self.after_time = self.kept_frame, self.kept_time
    self.kept_frame, self.kept_time = record.first_frame, record.first_time
    self.ring_n = 0
    self.deadline = -1.0
    return 0
