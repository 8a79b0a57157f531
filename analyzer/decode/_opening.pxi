# Opening: the segment an opening or watching state takes (`_open`, called by decode/
# _passing.pxi's `Passing.take`), each record that ends in it decrypted and authenticated by
# the direction's `cryptography` AEAD where it lies, and its inner content type read
# (`_application_length`). Kept apart from the state's bookkeeping: this is the one place C
# calls the cipher library.


cdef long long _application_length(Passing state, const unsigned char* record,
                                   Py_ssize_t length,
                                   long long sequence) except -2:
    """The plaintext length of the whole TLS 1.3 ``record`` (header, body) when it opens
    as record ``sequence`` and its inner content type is application data (RFC 8446
    §5.4: the type is the last non-zero byte), else -1."""
    cdef unsigned char nonce[12]
    cdef const unsigned char* iv = state.iv
    cdef const unsigned char* inner
    cdef Py_ssize_t i, end, inner_length
    cdef object opened
    if state.lead >= 0:
        return _application_length12(state, record, length, sequence)
    for i in range(12):
        nonce[i] = iv[i]
    for i in range(8):
        nonce[11 - i] ^= (sequence >> (8 * i)) & 0xFF
    try:
        # a view, not a copy, of the gathered body: the buffer is never resized (the
        # 5-byte header is copied: a bytes object costs a fifth of a view)
        if state.decrypt_into is not None:
            # the plaintext is the body less the 16-byte tag (`openable` asks for it)
            end = length - 5 - 16
            state.decrypt_into(
                PyBytes_FromStringAndSize(<const char*>nonce, 12),
                PyMemoryView_FromMemory(<char*>record + 5, length - 5, PyBUF_READ),
                PyBytes_FromStringAndSize(<const char*>record, 5), _out_view(end))
            inner = <const unsigned char*>PyByteArray_AS_STRING(_OUT)
        else:
            opened = state.decrypt(
                PyBytes_FromStringAndSize(<const char*>nonce, 12),
                PyMemoryView_FromMemory(<char*>record + 5, length - 5, PyBUF_READ),
                PyMemoryView_FromMemory(<char*>record, 5, PyBUF_READ))
            inner = <bytes>opened
            end = len(<bytes>opened)
    except Exception as error:
        if isinstance(error, state.invalid):
            return -1
        raise
    inner_length = end
    while end and inner[end - 1] == 0:
        end -= 1
    if end != inner_length:  # padded: this sender pads, so no record of its is trusted any more
        state.padded = True
        state.trust_from = 0
    if not end or inner[end - 1] != 23:
        return -1
    return end - 1


cdef long long _application_length12(Passing state, const unsigned char* record,
                                     Py_ssize_t length, long long sequence) except -2:
    """`_application_length` of a TLS 1.2 AEAD record (outer type application data, read by
    the caller): its plaintext length when it opens as record ``sequence``, else -1.
    `decrypt.RecordOpener._open_aead12` is its plain twin."""
    cdef unsigned char nonce[12]
    cdef unsigned char aad[13]
    cdef const unsigned char* iv = state.iv
    cdef Py_ssize_t i, lead = state.lead
    cdef Py_ssize_t plain = length - 5 - lead - 16  # (`openable` asks for a 16-byte tag)
    if plain < 0:
        return -1
    if lead:  # RFC 5288 §3: the 4-byte implicit part, then the record's explicit nonce
        memcpy(nonce, iv, 4)
        memcpy(nonce + 4, record + 5, 8)
    else:  # RFC 7905 §2: the IV XOR the sequence number
        for i in range(12):
            nonce[i] = iv[i]
        for i in range(8):
            nonce[11 - i] ^= (sequence >> (8 * i)) & 0xFF
    for i in range(8):  # RFC 5246 §6.2.3.3: seq_num, type, version, length
        aad[7 - i] = (sequence >> (8 * i)) & 0xFF
    aad[8] = 23
    aad[9] = (state.aad_version >> 8) & 0xFF
    aad[10] = state.aad_version & 0xFF
    aad[11] = (plain >> 8) & 0xFF
    aad[12] = plain & 0xFF
    try:
        state.decrypt_into(
            PyBytes_FromStringAndSize(<const char*>nonce, 12),
            PyMemoryView_FromMemory(<char*>record + 5 + lead, length - 5 - lead, PyBUF_READ),
            PyBytes_FromStringAndSize(<const char*>aad, 13), _out_view(plain))
    except Exception as error:
        if isinstance(error, state.invalid):
            return -1
        raise
    return plain


cdef Py_ssize_t _keep_tail(unsigned char* tail, Py_ssize_t length, const unsigned char* new,
                           Py_ssize_t n) noexcept:
    """life/state.py `keep_tail` (its plain twin) in place: what a direction keeps when the
    ``n`` bytes at ``new`` follow its ``length`` bytes of ``tail`` (room for 2 * _TAIL_BYTES):
    from the first Close byte (0x88) among the last _TAIL_BYTES to the end, or nothing.
    Returns the new length."""
    cdef unsigned char both[2 * _TAIL_BYTES]
    cdef Py_ssize_t total, at
    if n >= _TAIL_BYTES:  # the last _TAIL_BYTES are all new
        new += n - _TAIL_BYTES
        n = _TAIL_BYTES
        length = 0
    memcpy(both, tail, length)
    memcpy(both + length, new, n)
    total = length + n
    at = total - _TAIL_BYTES if total > _TAIL_BYTES else 0
    while at < total and both[at] != 0x88:
        at += 1
    memcpy(tail, both + at, total - at)
    return total - at


def keep_tail(bytes tail, bytes new):
    """`_keep_tail` on bytes objects, for its comparison with life/state.py `keep_tail`
    (tests/test_tls_passing.py); ``tail`` as that one leaves it (at most _TAIL_BYTES)."""
    cdef unsigned char kept[2 * _TAIL_BYTES]
    cdef Py_ssize_t length = len(tail)
    if length > _TAIL_BYTES:
        raise ValueError("a life's tail is at most TAIL_BYTES long")
    memcpy(kept, <const char*>tail, length)
    length = _keep_tail(kept, length, <const unsigned char*><const char*>new, len(new))
    return PyBytes_FromStringAndSize(<const char*>kept, length)


cdef inline Py_ssize_t _fold_tail(Passing self, unsigned char* tail, Py_ssize_t tail_length,
                                  bint* copied, long long n) noexcept:
    """`_keep_tail` of the ``n`` bytes just opened into ``_OUT`` onto ``tail``, an `_open`
    call's copy of the life's tail, made at its first use (``copied``): in life most calls
    open nothing now (records counted on trust), and copying the tail in and out of every
    one was ≈ 1 % of a keyed chat run."""
    if not copied[0]:
        memcpy(tail, self.life_tail, self.life_tail_length)
        copied[0] = True
    return _keep_tail(tail, tail_length, <const unsigned char*>PyByteArray_AS_STRING(_OUT), n)


cdef inline bint _opens_here(Passing self, const unsigned char* buf, _Trusted* record,
                             unsigned char* tail, Py_ssize_t* tail_length,
                             bint* tail_copied) except -1:
    """Whether ``record`` of the ring, counted on trust, opens as the application data it
    was counted as; its plaintext then goes into ``tail`` (`_fold_tail`): an `_open` call's
    copy, or the state's own (`_opens_as_counted`, with ``tail_copied`` set)."""
    cdef long long length = _application_length(self, buf + record.at, record.length,
                                                record.sequence)
    if length != record.plain:
        return False
    tail_length[0] = _fold_tail(self, tail, tail_length[0], tail_copied, length)
    return True


cdef bint _open(Passing self, const unsigned char* q, Py_ssize_t n, long long frame,
                double t) except -1:
    """Opening (see `Passing`'s fields, decode/_passing.pxi): take the ``n`` bytes at ``q``
    when every record that ends in them opens as application data within the budget;
    otherwise change nothing the reader or the counts see, and return False. The bytes go
    into the buffer (the one copy: `_took_bytes` finds them there) and each record is opened
    where it lies; the bytes of a record counted unopened, which nothing opens, have their
    copy put off (`_defer`)."""
    cdef unsigned char* buf
    cdef Py_ssize_t before, at, pos, start, take, length
    cdef Py_ssize_t to_header = self.to_header
    cdef Py_ssize_t held = self.held
    cdef long long plain = self.plain, records = 0, pass_bytes = 0
    cdef long long sequence = self.sequence
    cdef bint absorbed = self.absorbed
    cdef bint trusted_record = self.trusted_record
    cdef long long result, clean = self.clean, unconfirmed = self.unconfirmed, trusted = 0
    cdef unsigned char tail[2 * _TAIL_BYTES]  # in life: ``life_tail``, kept if all opens
    cdef Py_ssize_t tail_length = self.life_tail_length
    cdef bint tail_copied = False  # (`_fold_tail`)
    cdef double data_time = self.life_data_time
    cdef list opened = None  # watching: the records' plaintext, given if all open
    # trusting in life: the ring (see the fields) as the call leaves it, kept if all opens
    cdef _Trusted ring[_RING]
    cdef int count = self.ring_n, i
    before = self.end - self.start  # the current record's bytes so far
    _room(self, n)
    if count:  # (after `_room`, which moves them)
        memcpy(ring, self.ring, count * sizeof(_Trusted))
    buf = <unsigned char*>PyByteArray_AS_STRING(self.buf)
    at = self.end  # the buffer's place of q[0]
    pos = 0
    start = self.start
    while pos < n:
        if not to_header:
            # a header split between frames, or not application data: the usual way
            if n - pos < 5 or q[pos] != 23 or q[pos + 1] != 3 or q[pos + 2] != 3:
                _forget_from(self, at)
                return False
            length = (q[pos + 3] << 8) | q[pos + 4]
            if length <= 16 or length > _MAX_RECORD:
                _forget_from(self, at)
                return False
            to_header = 5 + length
            # counted unopened at its end (below), as its length and ``clean`` say now
            trusted_record = (self.trust_from and clean >= self.trust_after
                              and length >= self.trust_from)
        take = to_header if to_header < n - pos else n - pos
        if trusted_record:
            _defer(self, q + pos, take, at + pos)
        else:
            memcpy(buf + at + pos, q + pos, take)
        pos += take
        to_header -= take
        if to_header:
            break
        length = at + pos - start
        if self.trust_from and clean >= self.trust_after and length - 5 >= self.trust_from:
            result = length - 5 - 17  # trusted: the tag and the inner type byte
            unconfirmed += 1
            trusted += 1
        elif (self.life_trust_from and clean >= self.trust_after and not self.padded
              and length - 5 >= self.life_trust_from and not (start == self.start and held)):
            # trusted in life: the ring's last record from now on
            if count == _RING:  # records too small to cover the tail: the first opened now
                if not _opens_here(self, buf, &ring[0], tail, &tail_length, &tail_copied):
                    _forget_from(self, at)  # not what it was counted as: Python reads this
                    return False  # segment (the state's stay)
                clean += 1
                data_time = ring[0].end_time
                count -= 1
                memmove(ring, ring + 1, count * sizeof(_Trusted))
                unconfirmed = count  # (those after it)
            result = length - 5 - (17 if self.lead < 0 else self.lead + 16)
            unconfirmed += 1
            trusted += 1
            ring[count].at = start
            ring[count].length = length
            ring[count].sequence = sequence
            ring[count].plain = result
            ring[count].end_frame = frame
            ring[count].end_time = t
            if start < at:  # it began before this segment
                ring[count].first_frame = self.kept_frame
                ring[count].first_time = self.kept_time
            else:
                ring[count].first_frame, ring[count].first_time = frame, t
            count = _trim(ring, count + 1)
        else:
            if count:  # a smaller record: the tail needs the ring's records first
                for i in range(_tail_start(ring, count), count):
                    if not _opens_here(self, buf, &ring[i], tail, &tail_length, &tail_copied):
                        _forget_from(self, at)  # not what it was counted as: Python reads
                        return False  # this segment (the state's stay, for `_resolve`)
                    clean += 1
                    data_time = ring[i].end_time
                unconfirmed = 0
                count = 0
            if trusted_record:  # (never: the same test at its header) its bytes first
                _settle(self)
            result = _application_length(self, buf + start, length, sequence)
            if result >= 0:
                unconfirmed = 0
                clean += 1
                if self.life:  # (opened into ``_OUT``: `offer_open_in_life` asks for it)
                    tail_length = _fold_tail(self, tail, tail_length, &tail_copied, result)
                    data_time = t
                elif self.watching:
                    if start == self.start and held:  # the reader has its first frame:
                        _forget_from(self, at)  # Python reads it
                        return False
                    if opened is None:
                        opened = []
                    _watched_plain(opened, plain, result, start < at, self.kept_frame,
                                   self.kept_time, frame, t)
        trusted_record = False
        if result < 0 or plain + result >= self.budget:  # not data, or the body's end
            _forget_from(self, at)
            return False
        plain += result
        sequence += 1
        if start == self.start and held:  # the reader holds its start: that record is dropped
            absorbed = True
            pass_bytes += length - held
            held = 0
        else:
            records += 1
            pass_bytes += length
        start = at + pos
    # the opened records go: the next one starts at ``start`` (and `_keep` moves ``end``)
    if at + n - start > held and (start != self.start or before == self.held):
        self.kept_frame = frame  # the first byte the reader does not have yet
        self.kept_time = t
    self.start = start
    self.to_header = to_header
    self.trusted_record = trusted_record
    self.held = held
    if count:
        memcpy(self.ring, ring, count * sizeof(_Trusted))
    self.ring_n = count
    self.plain = plain
    self.records += records
    self.pass_bytes += pass_bytes
    self.sequence = sequence
    self.absorbed = absorbed
    self.clean = clean
    self.unconfirmed = unconfirmed
    self.ledger.trusted += trusted
    if self.life:
        if tail_copied:
            memcpy(self.life_tail, tail, tail_length)
            self.life_tail_length = tail_length
        self.life_data_time = data_time
        self.life_last_time = t
        self.life_taken = True
    elif opened is not None:
        _watched(self, opened)
    return True
