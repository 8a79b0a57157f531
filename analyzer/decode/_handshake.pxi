# Nearly every connection begins with its client's bare SYN, which the reassembler only notes:
# a deferred connection (`Connection.syns`) under both flow keys, its listener made at its
# next segment (`Reassembler(defer_syn=True)`), usually the server's SYN-ACK. In Python the SYN
# cost ≈ 35 k instructions (a Segment, `feed`'s look-ups, `_finished_peer`, `_open` with its
# four flow keys, `_segment`'s first branch) for a dict entry and two small objects, and the
# SYN-ACK's way to its listener (`feed`, `_segment`, `_make_listener`, `_peer_acked`) more
# again than the listener's own making. `_open_at_syn` and `_listen_at_answer` do the same
# from the frame's bytes, calling only the listener factory and the listener in Python. Their
# plain twin is that Python path: a run with compiled=False never makes a `Follow`, and
# tests/test_follow.py compares the two.


cdef object _DEFERRED_CONNECTION = None  # reassembly.connection.new_deferred_connection
cdef object _BASE = None  # reassembly.connection._Base
cdef object _NO_BASE = None  # reassembly.connection._NO_BASE
cdef object _NEW_DIRECTION = None  # reassembly.connection.new_direction
cdef Py_ssize_t _BASE_AT = 0  # the slot of `_Base.base`


cdef int _load_opening() except -1:
    global _DEFERRED_CONNECTION, _BASE, _NO_BASE, _NEW_DIRECTION, _BASE_AT
    if _DEFERRED_CONNECTION is None:
        from analyzer.reassembly.connection import (
            _NO_BASE as no_base, _Base, new_deferred_connection, new_direction)
        _BASE_AT = _slot_of(_Base, "base")
        _DEFERRED_CONNECTION, _BASE, _NO_BASE = new_deferred_connection, _Base, no_base
        _NEW_DIRECTION = new_direction
        _load_slots()
    return 0


cdef object _new_base(object base):
    """``_Base(base)``, its one slot filled in C (`_slots.pxi`), without its ``__init__``."""
    made = _slots_alloc(_BASE)
    _slots_set(made, _BASE_AT, base)
    return made


cdef bint _open_at_syn(object reassembler, dict flows, const unsigned char* frame,
                       Py_ssize_t size, Py_ssize_t l3, const unsigned char* ip,
                       long long number, double t) except -1:
    """`Reassembler.feed` of the frame's segment when it is a bare SYN (no ACK, FIN, RST nor
    payload, whole in the capture) of a flow that neither of its keys names in ``flows`` nor
    the life table holds, with deferred listeners and the sweep not due: `_open`'s deferred
    connection (its side 0 starting at the SYN's sequence number + 1, `_segment`'s first
    branch) under both keys, in `_open`'s order. False, with nothing changed, otherwise."""
    cdef Py_ssize_t total = (ip[2] << 8) | ip[3]
    cdef Py_ssize_t packet_end = l3 + total if total else size
    cdef unsigned char reverse[12]
    cdef object lives
    if ip[33] & 0x17 != 0x02 or packet_end > size:  # SYN alone; the snaplen cut nothing
        return False
    if l3 + 20 + ((ip[32] >> 4) << 2) < packet_end:  # it carries bytes
        return False
    if not reassembler._defer_syn or reassembler._until_sweep <= 1:
        return False
    key = _flow_key(ip + 12)
    if PyDict_GetItem(flows, key) is not NULL:
        return False
    memcpy(reverse, ip + 16, 4)  # the other direction's key: addresses and ports swapped
    memcpy(reverse + 4, ip + 12, 4)
    memcpy(reverse + 8, ip + 22, 2)
    memcpy(reverse + 10, ip + 20, 2)
    back = _flow_key(reverse)  # (the cache's object: the skip's look-ups find it by identity)
    if PyDict_GetItem(flows, back) is not NULL:  # a finished connection's side 1 (reuse)
        return False
    lives = reassembler._lives
    if lives is not None and (type(lives) is not LifeTable
                              or (<LifeTable>lives)._find(ip + 12, 12) >= 0):
        return False
    _load_opening()
    reassembler.now = t
    reassembler._until_sweep -= 1
    conn = _DEFERRED_CONNECTION(key, t, (_new_base((_u32(ip + 24, False) + 1) & 0xFFFFFFFF),
                                         _NO_BASE), [number, t])
    flows[key] = (conn, 0)
    flows[back] = (conn, 1)
    reassembler.connections_seen += 1
    return True


cdef bint _listen_at_answer(object reassembler, dict flows, const unsigned char* frame,
                            Py_ssize_t size, Py_ssize_t l3, const unsigned char* ip,
                            long long number, double t) except -1:
    """`Reassembler.feed` of the frame's segment when it is side 1's first (no FIN, RST nor
    payload, whole in the capture: the SYN-ACK) of a connection whose listener waits for it
    (`Connection.syns`), the sweep not due: `InOrder._make_listener` (the listener told of
    the kept SYNs), then `_segment`'s SYN and ACK steps. False, with nothing changed,
    otherwise."""
    cdef Py_ssize_t total = (ip[2] << 8) | ip[3]
    cdef Py_ssize_t packet_end = l3 + total if total else size
    cdef unsigned char flags = ip[33]
    cdef unsigned int base
    cdef Py_ssize_t n
    cdef PyObject* entry
    if flags & 0x05 or packet_end > size:  # FIN or RST; the snaplen cut it
        return False
    if l3 + 20 + ((ip[32] >> 4) << 2) < packet_end:  # it carries bytes
        return False
    if reassembler._until_sweep <= 1:
        return False
    entry = PyDict_GetItem(flows, _flow_key(ip + 12))
    if entry is NULL or <object>PyTuple_GET_ITEM(entry, 1) != 1:
        return False
    conn = <object>PyTuple_GET_ITEM(entry, 0)
    _load_opening()
    if type(conn) is not _CONNECTION:
        return False
    syns = _slot(conn, _C_SYNS)  # (its fields at their slots, `_slots.pxi`)
    if (syns is None or _slot(conn, _C_IGNORED) or _slot(conn, _C_FINISHED)
            or _slot(conn, _C_LIFE) is not None or _slot(conn, _C_PASSING) is not None
            or _slot(conn, _C_CLOSING) or len(conn.key) != 12
            or conn.sides[0].base is None):
        return False
    reassembler.now = t
    reassembler._until_sweep -= 1
    _slots_set(conn, _C_LAST_TIME, t)
    # `_make_listener`: the directions made anew, the listener from the first SYN's Segment
    conn.syns = None
    key = <bytes>conn.key
    base = conn.sides[0].base
    conn.sides = (_NEW_DIRECTION(base), _NEW_DIRECTION(conn.sides[1].base))
    first = compiled_made_segment(
        int(syns[0]), syns[1], key[:4], (key[8] << 8) | key[9], key[4:8],
        (key[10] << 8) | key[11], (base - 1) & 0xFFFFFFFF, 0, 0x02, b"")
    listener = reassembler._new_listener(conn, first)
    if listener is None:
        conn.ignore()
        return True
    conn.listener = listener
    for n in range(0, len(syns), 2):
        listener.on_syn(0, int(syns[n]), syns[n + 1], False)
    # `_segment`'s steps for this segment of side 1
    here = conn.sides[1]
    if flags & 0x02:
        if here.base is None:
            here.base = (_u32(ip + 24, False) + 1) & 0xFFFFFFFF
        listener.on_syn(1, number, t, bool(flags & 0x10))
    elif here.base is None:
        here.base = _u32(ip + 24, False)
    if flags & 0x10 and not conn.ignored:
        there = conn.sides[0]
        if there.base is not None:
            _peer_acked(there, there.base, _u32(ip + 28, False), number, t, here.next_offset)
    return True


def made_base_compiled(base):
    """`_new_base` for tests: ``_Base(base)`` made as `_open_at_syn` makes it."""
    _load_opening()
    return _new_base(base)
