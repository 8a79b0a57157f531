# The usual end of a followed connection is the second of its two FINs, taken in C by
# `Follow._fin`, with every byte before both ends delivered. `Reassembler._close` and
# `_finish` then tell the listener (`on_end`) and leave only the finished connection's side-0
# key in the table; in Python that way cost ≈ 20 k instructions a connection (two frames, the
# four `_waits` reads, the side-1 key sliced together from the side-0 key) around the
# listener's own `on_end`. `_close_at_fin` does the same steps in C. Its plain twin is
# `Reassembler._close`, which takes every other end (and every end of a run with
# compiled=False: tests/test_follow.py compares the two). The ACKs that answer the last FIN
# come after it, under the key the table no longer holds: `_after_finish` drops them as
# `Reassembler.feed` does (its twin), without a Segment made for it to look at.


cdef object _FINISHED_SIDES = None  # reassembly.connection._FINISHED_SIDES


cdef inline bint _waiting(object here) except -1:
    """`reassembly.connection._waits(here)` (its plain twin): bytes of this direction are
    known to be missing."""
    cdef object fin_end = here.fin_end
    cdef object acked = here.acked
    return bool(here.pending) or (fin_end if fin_end >= acked else acked) > here.next_offset


cdef bint _close_at_fin(object reassembler, object conn, double t) except -1:
    """`Reassembler._close(conn, t, "closed")` after the second FIN: when nothing is missing
    on either side, nothing waits to be flushed and the connection is a plain one (its
    listener made, not in life, not closing nor ignored), its `_finish` step by step: the
    listener's `on_end`, a life it started then ended, the connection ignored as finished and
    its side-1 key gone (True). Otherwise `_close` itself (False)."""
    global _FINISHED_SIDES
    cdef unsigned char reverse[12]
    cdef PyObject* entry
    sides = conn.sides
    listener = conn.listener
    key = conn.key
    if (conn.finished or conn.closing or conn.syns is not None or conn.life is not None
            or conn.ignored or listener is None or not reassembler.skip_idle_flush
            or len(key) != 12 or _waiting(sides[0]) or _waiting(sides[1])):
        reassembler._close(conn, t, "closed")
        return False
    if _FINISHED_SIDES is None:
        from analyzer.reassembly.connection import _FINISHED_SIDES as finished
        _FINISHED_SIDES = finished
    conn.finished = True
    listener.on_end(t, "closed")
    life = conn.life
    if life is not None:  # the end of a watch window let it go into life: that life ends too
        conn.life = None
        life.end(conn.addresses, t, "closed")
    conn.syn_base = conn.sides[0].base  # (a copy of the connection is told by it)
    conn.ignore(_FINISHED_SIDES)
    memcpy(reverse, <const char*>key + 4, 4)  # `Connection.keys`' second: side 1's key
    memcpy(reverse + 4, <const char*>key, 4)
    memcpy(reverse + 8, <const char*>key + 10, 2)
    memcpy(reverse + 10, <const char*>key + 8, 2)
    back = PyBytes_FromStringAndSize(<const char*>reverse, 12)
    table = reassembler._table
    entry = PyDict_GetItem(table, back)
    if entry is not NULL and <object>PyTuple_GET_ITEM(entry, 0) is conn:
        del table[back]
        reassembler._halves += 1
    return True


cdef bint _after_finish(dict flows, const unsigned char* ip) except -1:
    """Whether `Reassembler.feed` drops the frame's segment unseen as a late one of a finished
    connection: not a SYN, its flow key gone from ``flows`` (a finished connection keeps only
    its side-0 key), the other direction's key naming a finished, ignored connection as its
    side 0 (`Reassembler._finished_peer`). The late ACKs that answer the last FIN."""
    cdef unsigned char reverse[12]
    cdef PyObject* entry
    if ip[33] & 0x02 or PyDict_GetItem(flows, _flow_key(ip + 12)) is not NULL:
        return False
    memcpy(reverse, ip + 16, 4)
    memcpy(reverse + 4, ip + 12, 4)
    memcpy(reverse + 8, ip + 22, 2)
    memcpy(reverse + 10, ip + 20, 2)
    entry = PyDict_GetItem(flows, PyBytes_FromStringAndSize(<const char*>reverse, 12))
    if entry is NULL or <object>PyTuple_GET_ITEM(entry, 1) != 0:
        return False
    conn = <object>PyTuple_GET_ITEM(entry, 0)
    return conn.finished and conn.ignored
