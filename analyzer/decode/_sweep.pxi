# The reassembler's periodic sweep (reassembly/table.py `Reassembler.sweep`) visits every
# connection of its table, and most of them are finished ones kept a minute for late
# retransmissions (`_finish`): on 1 GB of the dense benchmark mix, 955,000 of the 1.1 million
# entries its 72 sweeps visited, 0.33 s of a 3.9 s run in the Python loop (benchmarks/
# README.md, "Twenty-seventh session"). `sweep_split` reads the table in C, at the slots
# (_slots.pxi), and gives the Python loop only the connections it may act on. Its plain twin
# is `reassembly.table.sweep_split_plain` (tests/test_sweep.py compares them, and whole
# runs with either).


from cpython.dict cimport PyDict_Next
from cpython.float cimport PyFloat_AS_DOUBLE


def sweep_split(dict table, double stale_before):
    """The side-0 connections of ``table`` (values: (connection, side)) in its order: those a
    sweep must look at, the settled ones last seen before ``stale_before`` (a sweep drops
    them), and how many settled ones stay. Settled: a `Connection` finished, out of life,
    its listener let go and not closing, as `_finish` leaves one: a sweep only drops it once
    it is stale, or counts it."""
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* value
    cdef list look = [], stale = []
    cdef Py_ssize_t kept = 0
    cdef object entry, conn, last, closing
    _load_slots()
    while PyDict_Next(table, &pos, &key, &value):
        entry = <object>value
        if type(entry) is not tuple or len(<tuple>entry) != 2:
            raise TypeError("a table entry is not (connection, side)")
        if (<tuple>entry)[1]:
            continue
        conn = (<tuple>entry)[0]
        if (type(conn) is not _CONNECTION or _slot(conn, _C_FINISHED) is not True
                or _slot(conn, _C_LIFE) is not None or _slot(conn, _C_LISTENER) is not None):
            look.append(conn)
            continue
        closing = _slot(conn, _C_CLOSING)
        last = _slot(conn, _C_LAST_TIME)
        if type(closing) is not int or closing != 0 or type(last) is not float:
            look.append(conn)
        elif PyFloat_AS_DOUBLE(last) < stale_before:
            stale.append(conn)
        else:
            kept += 1
    return look, stale, kept
