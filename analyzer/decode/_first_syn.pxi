# Nearly every connection begins with its client's bare SYN, which the reassembler only notes:
# a deferred connection (`Connection.syns`) under both flow keys, its listener made at its
# next segment (`Reassembler(defer_syn=True)`). In Python that SYN cost ≈ 35 k instructions
# (a Segment, `feed`'s look-ups, `_finished_peer`, `_open` with its four flow keys, and
# `_segment`'s first branch) for a dict entry and two small objects. `_open_at_syn` makes the
# same entries from the frame's bytes. Its plain twin is that Python path: a run with
# compiled=False never makes a `Follow`, and tests/test_follow.py compares the two.


cdef object _DEFERRED_CONNECTION = None  # reassembly.connection.new_deferred_connection
cdef object _BASE = None  # reassembly.connection._Base
cdef object _NO_BASE = None  # reassembly.connection._NO_BASE


cdef int _load_opening() except -1:
    global _DEFERRED_CONNECTION, _BASE, _NO_BASE
    if _DEFERRED_CONNECTION is None:
        from analyzer.reassembly.connection import _NO_BASE as no_base, _Base, new_deferred_connection
        _DEFERRED_CONNECTION, _BASE, _NO_BASE = new_deferred_connection, _Base, no_base
    return 0


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
    back = PyBytes_FromStringAndSize(<const char*>reverse, 12)
    if PyDict_GetItem(flows, back) is not NULL:  # a finished connection's side 1 (reuse)
        return False
    lives = reassembler._lives
    if lives is not None and (type(lives) is not LifeTable
                              or (<LifeTable>lives)._find(ip + 12, 12) >= 0):
        return False
    _load_opening()
    reassembler.now = t
    reassembler._until_sweep -= 1
    conn = _DEFERRED_CONNECTION(key, t, (_BASE((_u32(ip + 24, False) + 1) & 0xFFFFFFFF),
                                         _NO_BASE), [number, t])
    flows[key] = (conn, 0)
    flows[back] = (conn, 1)
    reassembler.connections_seen += 1
    return True
