# The pipeline's per-record peeks, compiled (`decoder.peek_functions`, `segment_function`).

# --- compiled twins of decoder.peek_flow and decoder.peek_payload ----------------------------
# The pipeline calls these for each record it keeps (7 % of a bulk capture, every packet of a
# followed connection): in Python the two cost ≈ 1.5 µs per record, here ≈ 0.1 µs. Same
# arguments, same results; tests/test_decode.py compares them on every frame of the test
# captures, cut at every length, and on random bytes.

def peek_flow(int linktype, bytes data):
    """`decoder.peek_flow`, compiled: (flow key, TCP flags) or None."""
    cdef Py_ssize_t l3 = _l3(linktype)
    cdef const unsigned char* ip
    if l3 < 0:
        return None
    ip = _tcp_over_ipv4(data, len(data), l3)
    if ip is NULL:
        return None
    return _flow_key(ip + 12), ip[33]  # the key a recent frame had, its hash known


def peek_payload(int linktype, bytes data):
    """`decoder.peek_payload`, compiled: (seq, ack, payload, missing) of a frame that
    `peek_flow` gave a key (ValueError, not a wrong answer, for any other frame too short)."""
    cdef Py_ssize_t l3 = _l3(linktype)
    cdef Py_ssize_t size = len(data)
    cdef const unsigned char* ip
    cdef Py_ssize_t total, packet_end, present, start
    if l3 < 0 or size < l3 + 33:
        raise ValueError("peek_payload: not a frame peek_flow accepts")
    ip = (<const unsigned char*>data) + l3
    total = (ip[2] << 8) | ip[3]
    packet_end = l3 + total if total else size
    present = packet_end if packet_end < size else size
    start = l3 + 20 + ((ip[32] >> 4) << 2)
    return (_u32(ip + 24, False), _u32(ip + 28, False),
            data[start:present] if start < present else b"", packet_end - present)


cdef object _Segment = None
cdef object _new_object = object.__new__


cdef object _segment_at(const unsigned char* frame, Py_ssize_t size, Py_ssize_t l3,
                        long long number, double time):
    """`decode_frame`'s Segment of the frame at ``frame`` (``size`` bytes, IPv4 at ``l3``),
    which `_tcp_over_ipv4` accepted. Built without the frozen dataclass's ``__init__``: it
    stores each field through ``object.__setattr__`` (≈ 1.2 µs a Segment), where
    `PyObject_GenericSetAttr` stores the same values through the slots' descriptors (the
    values, equality and hash are the constructor's; tests/test_follow.py compares them
    with `decode_frame` on every frame of the test captures)."""
    global _Segment
    cdef const unsigned char* ip = frame + l3
    cdef const unsigned char* tcp = ip + 20
    cdef Py_ssize_t total, packet_end, present, start
    cdef object made
    if _Segment is None:
        from analyzer.decode.segment import Segment
        _Segment = Segment
    total = (ip[2] << 8) | ip[3]
    packet_end = l3 + total if total else size
    present = packet_end if packet_end < size else size
    start = l3 + 20 + ((ip[32] >> 4) << 2)
    made = _new_object(_Segment)
    PyObject_GenericSetAttr(made, "frame", number)
    PyObject_GenericSetAttr(made, "time", time)
    PyObject_GenericSetAttr(made, "src", PyBytes_FromStringAndSize(<const char*>ip + 12, 4))
    PyObject_GenericSetAttr(made, "sport", (tcp[0] << 8) | tcp[1])
    PyObject_GenericSetAttr(made, "dst", PyBytes_FromStringAndSize(<const char*>ip + 16, 4))
    PyObject_GenericSetAttr(made, "dport", (tcp[2] << 8) | tcp[3])
    PyObject_GenericSetAttr(made, "seq", _u32(tcp + 4, False))
    PyObject_GenericSetAttr(made, "ack", _u32(tcp + 8, False))
    PyObject_GenericSetAttr(made, "flags", tcp[13])
    PyObject_GenericSetAttr(made, "payload", PyBytes_FromStringAndSize(
        <const char*>frame + start, present - start) if start < present else b"")
    PyObject_GenericSetAttr(made, "missing", packet_end - present)
    return made


def peek_segment(int linktype, bytes data, long long number, double time):
    """`decode_frame`'s Segment of a frame that `peek_flow` gave a key (frame ``number`` at
    ``time``), built from the bytes the peek read: the pipeline's full path for the SYNs,
    FINs and RSTs of such frames skips the Frame and the Python decoder (tests/test_follow.py
    compares the two on every frame of the test captures)."""
    cdef Py_ssize_t l3 = _l3(linktype)
    cdef Py_ssize_t size = len(data)
    if l3 < 0 or _tcp_over_ipv4(data, size, l3) is NULL:
        raise ValueError("peek_segment: not a frame peek_flow accepts")
    return _segment_at(data, size, l3, number, time)
