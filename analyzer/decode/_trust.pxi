# Records counted on trust in life (decode/_passing.pxi `Passing.pending`, `Passing.prior`;
# tls/passing.py `TRUST_IN_LIFE`): opened when the life's tail needs them, and taken back when
# one was not the application data it was counted as. Functions of a `Passing` (its `_open`
# counts the records and keeps them pending); tls/syncing.py `_reread` reads taken-back ones.


cdef bint _resolve(Passing self) except -1:
    """Trusting in life: open the pending record (see the fields) for the tail, before a
    sync reads it or when its bytes are in the way of a segment's, and if it is not the
    application data it was counted as, the prior one, which the tail then needs. False
    when one was not: it is taken back (`_take_back`), with the pending one."""
    if self.pending.at < 0:
        return True
    if _opens_as_counted(self, self.pending):
        self.pending = self.prior = _NO_RECORD
        return True
    if self.prior.at >= 0 and _opens_as_counted(self, self.prior):
        _take_back(self, self.pending, _NO_RECORD)
    else:
        _take_back(self, self.prior, self.pending)
    return False


cdef bint _opens_as_counted(Passing self, _Trusted record) except -1:
    """Whether ``record`` opens as the application data it was counted as; its
    plaintext then goes into the tail, as `_open` does."""
    cdef long long result = _application_length(
        self, <const unsigned char*>PyByteArray_AS_STRING(self.buf) + record.at,
        record.length, record.sequence)
    if result != record.plain:
        return False
    self.unconfirmed = 0
    self.clean += 1
    self.life_tail_length = _keep_tail(
        self.life_tail, self.life_tail_length,
        <const unsigned char*>PyByteArray_AS_STRING(_OUT), result)
    self.life_data_time = record.end_time
    return True


cdef int _take_back(Passing self, _Trusted first, _Trusted second) except -1:
    """Records counted on trust that did not open as application data (of another type,
    padded, damaged), ``first`` and, unless it is none, ``second`` after it (none
    counted after them: they were the last): their counts are taken back, and their
    bytes, with those after them, become the record reader's (`unread` gives them to
    Python at the sync, which reads them as the per-segment path would, `taken_back`).
    The state takes no more data."""
    cdef _Trusted record
    self.taken_back = []
    for record in (first, second):
        if record.at < 0:
            continue
        self.plain -= record.plain
        self.records -= 1
        self.pass_bytes -= record.length
        self.unconfirmed -= 1
        self.ledger.trusted -= 1
        self.taken_back.append((record.length, record.first_frame, record.first_time,
                                record.end_frame, record.end_time))
    record = first if first.at >= 0 else second
    self.sequence = record.sequence
    self.start = record.at
    self.held = 0
    self.to_header = 0
    self.after_frame, self.after_time = self.kept_frame, self.kept_time
    self.kept_frame, self.kept_time = record.first_frame, record.first_time
    self.pending = self.prior = _NO_RECORD
    self.deadline = -1.0
    return 0
