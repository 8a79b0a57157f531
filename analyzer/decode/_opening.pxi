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
    for i in range(12):
        nonce[i] = iv[i]
    for i in range(8):
        nonce[11 - i] ^= (sequence >> (8 * i)) & 0xFF
    if state.decrypt_into is not None and state.out is None:
        state.out = PyByteArray_FromStringAndSize(NULL, _MAX_RECORD)
    try:
        # a view, not a copy, of the gathered body: the buffer is never resized (the
        # 5-byte header is copied: a bytes object costs a fifth of a view)
        if state.decrypt_into is not None:
            # the plaintext is the body less the 16-byte tag (`openable` asks for it)
            end = length - 5 - 16
            if end != state.out_length:
                state.out_view = PyMemoryView_FromMemory(PyByteArray_AS_STRING(state.out),
                                                        end, PyBUF_WRITE)
                state.out_length = end
            state.decrypt_into(
                PyBytes_FromStringAndSize(<const char*>nonce, 12),
                PyMemoryView_FromMemory(<char*>record + 5, length - 5, PyBUF_READ),
                PyBytes_FromStringAndSize(<const char*>record, 5), state.out_view)
            inner = <const unsigned char*>PyByteArray_AS_STRING(state.out)
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
