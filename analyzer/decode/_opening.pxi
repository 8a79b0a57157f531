# Opening (decode/_passing.pxi, `Passing._open`): one gathered TLS 1.3 record decrypted and
# authenticated by the direction's `cryptography` AEAD, and its inner content type read. Kept
# apart from the state's bookkeeping: this is the one place C calls the cipher library.


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
