# The reassembler's periodic sweep (reassembly/table.py `Reassembler.sweep`) visits every
# connection of its table, and most of them are finished ones kept a minute for late
# retransmissions (`_finish`): on 1 GB of the dense benchmark mix, 955,000 of the 1.1 million
# entries its 72 sweeps visited, 0.33 s of a 3.9 s run in the Python loop (benchmarks/
# README.md, "Twenty-seventh session"). `sweep_split` reads the table in C, at the slots
# (_slots.pxi), and gives the Python loop only the connections it may act on. Its plain twin
# is `reassembly.table.sweep_split_plain` (tests/test_sweep.py compares them, and whole
# runs with either).
#
# Reading an entry is three loads, each waiting for the one before (the entry's tuple, the
# connection it names, the float of its last time), and in a large table each is a cache
# miss: ≈ 180 ns an entry. The entries are read _BATCH at a time, in stages, each stage
# asking the processor for the next stage's memory of the whole batch first (a prefetch is
# only a hint: it changes no result).


from cpython.dict cimport PyDict_Next
from cpython.float cimport PyFloat_AS_DOUBLE

cdef extern from *:
    """
    #define _sweep_prefetch(p) __builtin_prefetch((const void*)(p), 0, 1)
    """
    void _sweep_prefetch(const void* p) noexcept nogil

cdef enum:
    _BATCH = 32


def sweep_split(dict table, double stale_before):
    """The side-0 connections of ``table`` (values: (connection, side)) in its order: those a
    sweep must look at, the settled ones last seen before ``stale_before`` (a sweep drops
    them), and how many settled ones stay. Settled: a `Connection` finished, out of life,
    its listener let go and not closing, as `_finish` leaves one: a sweep only drops it once
    it is stale, or counts it."""
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* value
    cdef PyObject* entries[_BATCH]
    cdef int n, i
    cdef list look = [], stale = []
    cdef Py_ssize_t kept = 0
    _load_slots()
    while True:
        # (borrowed references: nothing runs between the stages that could change the table)
        n = 0
        while n < _BATCH and PyDict_Next(table, &pos, &key, &value):
            entries[n] = value
            _sweep_prefetch(value)
            n += 1
        if n == 0:
            break
        for i in range(n):
            _prefetch_connection(<object>entries[i])
        for i in range(n):
            _prefetch_last_time(<object>entries[i])
        for i in range(n):
            kept += _split_one(<object>entries[i], stale_before, look, stale)
    return look, stale, kept


cdef inline void _prefetch_connection(object entry) noexcept:
    """The memory of the connection ``entry`` names: its header's line, and its slots'."""
    cdef PyObject* conn
    if type(entry) is tuple and len(<tuple>entry) == 2:
        conn = PyTuple_GET_ITEM(<PyObject*>entry, 0)
        _sweep_prefetch(conn)
        _sweep_prefetch(<char*>conn + _C_LAST_TIME)
        _sweep_prefetch(<char*>conn + _C_FINISHED)


cdef inline void _prefetch_last_time(object entry) noexcept:
    """The float of the last time of the connection ``entry`` names."""
    cdef PyObject* conn
    if type(entry) is tuple and len(<tuple>entry) == 2:
        conn = PyTuple_GET_ITEM(<PyObject*>entry, 0)
        if type(<object>conn) is _CONNECTION:
            _sweep_prefetch((<PyObject**>(<char*>conn + _C_LAST_TIME))[0])


cdef int _split_one(object entry, double stale_before, list look, list stale) except -1:
    """One entry of `sweep_split`: 1 when it is a settled connection that stays."""
    cdef object conn, last, closing
    if type(entry) is not tuple or len(<tuple>entry) != 2:
        raise TypeError("a table entry is not (connection, side)")
    if (<tuple>entry)[1]:
        return 0
    conn = (<tuple>entry)[0]
    if (type(conn) is not _CONNECTION or _slot(conn, _C_FINISHED) is not True
            or _slot(conn, _C_LIFE) is not None or _slot(conn, _C_LISTENER) is not None):
        look.append(conn)
        return 0
    closing = _slot(conn, _C_CLOSING)
    last = _slot(conn, _C_LAST_TIME)
    if type(closing) is not int or closing != 0 or type(last) is not float:
        look.append(conn)
    elif PyFloat_AS_DOUBLE(last) < stale_before:
        stale.append(conn)
    else:
        return 1
    return 0
