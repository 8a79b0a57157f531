# `Follow.take` and `_take` read and write about twenty fields of a followed connection and its
# two directions per segment (≈ 28,000 segments of the dense benchmark). Through Cython's
# attribute access each went by name (the type's look-up, then the member descriptor's call),
# ≈ 150 instructions; the fields are the slots of two slotted dataclasses
# (reassembly/connection.py `Connection`, `_Direction`), whose places their member descriptors
# give once. `_slot` reads one there and `_put_slot` writes one. A field that is not a plain
# object slot (a changed connection.py) makes `_load_slots` raise rather than read where it
# should not, and the callers check each object's class first (a `_Base` or a subclass takes
# the Python path). The plain twin is the attribute access itself: `Reassembler.take_plain`.

cdef extern from *:
    """
    #include <structmember.h>
    #define _slots_is_object(d) (Py_IS_TYPE((d), &PyMemberDescr_Type) && \
        ((PyMemberDescrObject*)(d))->d_member->type == T_OBJECT_EX)
    #define _slots_offset(d) (((PyMemberDescrObject*)(d))->d_member->offset)
    /* a slot's value, a new reference. Their makers fill every slot; an empty one (a field
       deleted, a maker that forgot one) raises AttributeError as Python's own read would,
       instead of handing Cython a NULL it would dereference. */
    static inline PyObject* _slots_get(PyObject* o, Py_ssize_t at) {
        PyObject* value = *(PyObject**)((char*)o + at);
        if (value == NULL) {
            PyErr_Format(PyExc_AttributeError, "a slot of %s is empty", Py_TYPE(o)->tp_name);
            return NULL;
        }
        Py_INCREF(value);
        return value;
    }
    static PyObject* _slots_alloc(PyObject* t) {
        return ((PyTypeObject*)t)->tp_alloc((PyTypeObject*)t, 0);
    }
    static inline void _slots_set(PyObject* o, Py_ssize_t at, PyObject* v) {
        PyObject** place = (PyObject**)((char*)o + at);
        PyObject* old = *place;
        Py_INCREF(v);
        *place = v;
        Py_XDECREF(old);
    }
    """
    bint _slots_is_object(object d)
    Py_ssize_t _slots_offset(object d)
    object _slots_get(object o, Py_ssize_t at)
    object _slots_alloc(object t)
    void _slots_set(object o, Py_ssize_t at, object v)


cdef object _CONNECTION = None  # reassembly.connection.Connection
cdef object _DIRECTION = None  # reassembly.connection._Direction
# Connection's slots
cdef Py_ssize_t _C_CLOSING, _C_SYNS, _C_SIDES, _C_LAST_TIME, _C_IGNORED, _C_LISTENER
cdef Py_ssize_t _C_LIFE, _C_PASSING, _C_FINISHED
# _Direction's slots
cdef Py_ssize_t _D_BASE, _D_NEXT, _D_PENDING, _D_FIN, _D_FIN_END, _D_RST, _D_RECENT
cdef Py_ssize_t _D_ACKED, _D_FIN_EVIDENCE, _D_HOLDING


cdef Py_ssize_t _slot_of(object cls, str name) except -1:
    descriptor = cls.__dict__[name]
    if not _slots_is_object(descriptor):
        raise TypeError(f"{cls.__name__}.{name} is not an object slot")
    return _slots_offset(descriptor)


cdef int _load_slots() except -1:
    global _CONNECTION, _DIRECTION, _C_CLOSING, _C_SYNS, _C_SIDES, _C_LAST_TIME, _C_IGNORED
    global _C_LISTENER, _C_LIFE, _C_PASSING, _C_FINISHED, _D_BASE, _D_NEXT, _D_PENDING, _D_FIN, _D_FIN_END
    global _D_RST, _D_RECENT, _D_ACKED, _D_FIN_EVIDENCE, _D_HOLDING
    if _CONNECTION is not None:
        return 0
    from analyzer.reassembly.connection import Connection, _Direction
    _C_CLOSING, _C_SYNS = _slot_of(Connection, "closing"), _slot_of(Connection, "syns")
    _C_SIDES, _C_LAST_TIME = _slot_of(Connection, "sides"), _slot_of(Connection, "last_time")
    _C_IGNORED, _C_LISTENER = _slot_of(Connection, "ignored"), _slot_of(Connection, "listener")
    _C_LIFE, _C_PASSING = _slot_of(Connection, "life"), _slot_of(Connection, "passing")
    _C_FINISHED = _slot_of(Connection, "finished")
    _D_BASE, _D_NEXT = _slot_of(_Direction, "base"), _slot_of(_Direction, "next_offset")
    _D_PENDING, _D_FIN = _slot_of(_Direction, "pending"), _slot_of(_Direction, "fin")
    _D_FIN_END, _D_RST = _slot_of(_Direction, "fin_end"), _slot_of(_Direction, "rst")
    _D_RECENT, _D_ACKED = _slot_of(_Direction, "recent"), _slot_of(_Direction, "acked")
    _D_FIN_EVIDENCE = _slot_of(_Direction, "fin_evidence")
    _D_HOLDING = _slot_of(_Direction, "holding")
    _CONNECTION, _DIRECTION = Connection, _Direction
    return 0


cdef inline object _slot(object o, Py_ssize_t at):
    """The value of the slot at ``at`` of ``o`` (of the class whose slot it is)."""
    return _slots_get(o, at)


def slots_read_compiled(conn):
    """For tests: the fields of a `Connection` and of its two `_Direction`s that `Follow`
    reads at their slots, as read there (``None`` for a side that is not a `_Direction`)."""
    _load_slots()
    if type(conn) is not _CONNECTION:
        raise TypeError("not a Connection")
    fields = tuple(_slot(conn, at) for at in (_C_CLOSING, _C_SYNS, _C_SIDES, _C_LAST_TIME,
                                              _C_IGNORED, _C_LISTENER, _C_LIFE, _C_PASSING))
    sides = tuple(
        tuple(_slot(side, at) for at in (_D_BASE, _D_NEXT, _D_PENDING, _D_FIN, _D_FIN_END,
                                         _D_RST, _D_RECENT, _D_ACKED, _D_FIN_EVIDENCE))
        if type(side) is _DIRECTION else None for side in fields[2])
    return fields, sides
