# The compiled life table's entries (decode/_life_table.pxi `LifeTable`): one per connection in
# life, its two directions' `_LifeFlow`s, and what a segment, an ACK or a lost FIN does to them
# (the `Life` and `_Flow` methods of life/state.py, their plain twins). The table finds the
# entries by flow key and calls these.

from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memchr, memcmp, memmove

cdef enum:
    _LIFE_TAIL = 131  # life.state.TAIL_BYTES: the longest Close frame, 2 + 4 + 125 bytes
    _LIFE_KEY = 36  # the longest flow key (IPv6: two addresses, two ports)
    _CLOSE = 0x88  # a Close frame's first byte (FIN + opcode 8)
    _LONE_PING = 1  # life.state.PING, CLOSE: what `_lone_frame` says
    _LONE_CLOSE = 2


cdef struct _LifeFlow:
    double first, last, data, end
    long long end_frame
    unsigned long long sent
    long long conn_base  # the reassembler's first sequence number (-1: none seen)
    unsigned int base  # the life's (0 when none was seen)
    int tail_len
    unsigned char* tail  # NULL unless tail_len (or kept for reuse)
    bint reset
    # 1: ``end`` and ``end_frame`` hold a lost FIN's proof (`_Flow.proof`: the first ACK one
    # past the bytes), not an end; 2: the end is a lost FIN told from it (`_Flow.lost`). In
    # the struct's padding, so it costs nothing.
    unsigned char lost
    # `_Flow.ping_held` and `_Flow.eio` (in the padding too)
    unsigned char ping_held, eio
    long long data_frame  # the frame of the last new byte (0: not known)
    double ping  # its first keepalive ping not answered by a byte yet (0.0: none)
    long long ping_frame


cdef struct _LifeEntry:
    _LifeFlow flows[2]
    double switch_time, last_time
    long long key_frame, key_seq, key_stream  # the attempt key (life/model.attempt_key)
    int target, decided, sink  # value ids (LifeTable._values)
    int prev, next  # insertion order (the twin's dict order); next: free list when unused
    unsigned char client, websocket, used, key_len
    unsigned char key[_LIFE_KEY]  # side 0's flow key


cdef inline unsigned long long _hash(const unsigned char* k, Py_ssize_t n) noexcept nogil:
    cdef unsigned long long h = 1469598103934665603ULL  # FNV-1a
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ k[i]) * 1099511628211ULL
    return h ^ (h >> 29)


cdef inline void _reverse_key(const unsigned char* k, Py_ssize_t n, unsigned char* out) noexcept nogil:
    """The other direction's flow key (segment.flow_key: addresses, then ports)."""
    cdef Py_ssize_t a = (n - 4) // 2
    memcpy(out, k + a, a)
    memcpy(out + a, k, a)
    memcpy(out + 2 * a, k + 2 * a + 2, 2)
    memcpy(out + 2 * a + 2, k + 2 * a, 2)


cdef int _tail_add(_LifeFlow* f, const unsigned char* p, Py_ssize_t n) except -1:
    """`life.state.keep_tail`: of the bytes so far and ``p``, keep from the first Close byte
    among the last _LIFE_TAIL (a Close frame that ends at the end starts there or later)."""
    cdef Py_ssize_t start, j
    cdef const unsigned char* hit
    if n < _LIFE_TAIL and f.tail_len:
        start = f.tail_len - (_LIFE_TAIL - n)
        if start < 0:
            start = 0
        hit = <const unsigned char*>memchr(f.tail + start, _CLOSE, f.tail_len - start)
        if hit is not NULL:
            j = hit - f.tail
            memmove(f.tail, f.tail + j, f.tail_len - j)
            f.tail_len -= j
            memcpy(f.tail + f.tail_len, p, n)
            f.tail_len += n
            return 0
    start = n - _LIFE_TAIL if n > _LIFE_TAIL else 0
    hit = <const unsigned char*>memchr(p + start, _CLOSE, n - start)
    if hit is NULL:
        f.tail_len = 0
        if f.tail is not NULL:  # a quiet connection keeps nothing
            free(f.tail)
            f.tail = NULL
        return 0
    if f.tail is NULL:
        f.tail = <unsigned char*>malloc(_LIFE_TAIL)
        if f.tail is NULL:
            raise MemoryError()
    j = hit - p
    memcpy(f.tail, hit, n - j)
    f.tail_len = n - j
    return 0


cdef inline bint _life_ended(_LifeFlow* f) noexcept:
    return f.end != 0.0 and f.lost != 1


cdef inline int _lone_frame(const unsigned char* p, Py_ssize_t n, bint eio) noexcept:
    """`life.state.lone_frame`: _LONE_PING or _LONE_CLOSE when the bytes are exactly one
    final Ping (``eio``: or text "2") or Close frame with a 7-bit length, else 0."""
    cdef int opcode, masked, length
    if n < 2 or n > 131 or not p[0] & 0x80:
        return 0
    opcode = p[0] & 0x0F
    masked = p[1] & 0x80
    length = p[1] & 0x7F
    if length > 125 or n != 2 + (4 if masked else 0) + length:
        return 0
    if opcode == 0x9:
        return _LONE_PING
    if opcode == 0x8:
        return _LONE_CLOSE
    if eio and opcode == 0x1 and length == 1 and not p[0] & 0x70:
        return _LONE_PING if ((p[6] ^ p[2]) if masked else p[2]) == 0x32 else 0
    return 0


cdef inline void _life_pinged(_LifeEntry* e, int side, const unsigned char* p, Py_ssize_t n,
                              long long frame, double t) noexcept:
    """`Life._pinged`: new bytes of ``side`` answer the other side's waiting ping, and may
    be a keepalive ping of its own or the Close that ends its wait."""
    cdef _LifeFlow* f = &e.flows[side]
    cdef _LifeFlow* o = &e.flows[1 - side]
    cdef int kind
    if o.ping != 0.0 and not o.ping_held and not _life_ended(o):
        o.ping = 0.0
        o.ping_frame = 0
    if f.ping_held or not frame or n > 131:
        return
    kind = _lone_frame(p, n, f.eio)
    if kind == _LONE_PING and f.ping == 0.0:
        f.ping = t
        f.ping_frame = frame
    elif kind == _LONE_CLOSE and f.ping != 0.0:
        f.ping_held = 1


cdef int _life_take(_LifeEntry* e, int side, unsigned int seq, const unsigned char* p,
                    Py_ssize_t n, double t, long long frame) except -1:
    """`Life.take`: a segment of ``side`` (frame ``frame``), its time and its new bytes."""
    cdef _LifeFlow* f = &e.flows[side]
    cdef unsigned long long ahead
    e.last_time = t
    f.last = t
    if not n:
        return 0
    ahead = (<unsigned long long>seq + <unsigned long long>n - f.base - f.sent) & 0xFFFFFFFFULL
    if not ahead or ahead >= 0x80000000ULL:
        return 0  # a retransmission or an old segment
    f.sent += ahead
    f.data = t
    f.data_frame = frame
    if f.lost == 1:  # the number acknowledged was a byte (`Life.take`)
        f.lost = 0
        f.end = 0.0
        f.end_frame = 0
    if <Py_ssize_t>ahead < n:
        p += n - <Py_ssize_t>ahead
        n = <Py_ssize_t>ahead
    _life_pinged(e, side, p, n, frame, t)
    return _tail_add(f, p, n)


cdef inline bint _life_answers(_LifeEntry* e, int side, long long ack) noexcept:
    """`Life.answers`: an ACK of ``side`` (ended) tells the other side's lost FIN at once."""
    cdef _LifeFlow* o = &e.flows[1 - side]
    return (ack >= 0 and _life_ended(&e.flows[side]) and not _life_ended(o) and
            ((<unsigned long long>ack - o.base - o.sent) & 0xFFFFFFFFULL) == 1)


cdef inline bint _life_ack(_LifeEntry* e, int side, long long ack, long long frame,
                           double t) noexcept:
    """`Life.acked`: a lost FIN's proof kept, or told at once (True: both sides ended)."""
    cdef _LifeFlow* o = &e.flows[1 - side]
    if (ack < 0 or _life_ended(o)
            or ((<unsigned long long>ack - o.base - o.sent) & 0xFFFFFFFFULL) != 1):
        return False
    if _life_ended(&e.flows[side]):  # the FIN that answered this side's close
        o.end, o.end_frame, o.lost = t, frame, 0
        return True
    if not o.lost:  # (not ended: 0 or 1)
        o.end, o.end_frame, o.lost = t, frame, 1
    return False


cdef inline void _life_lost_fin(_LifeFlow* f) noexcept:
    """`Life._lost_fin`: the proof, if any, is the end."""
    if f.lost == 1:
        f.lost = 2
