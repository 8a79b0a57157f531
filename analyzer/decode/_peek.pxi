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
    return PyBytes_FromStringAndSize(<const char*>ip + 12, 12), ip[33]


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


def peek_segment(int linktype, bytes data, long long number, double time):
    """`decode_frame`'s Segment of a frame that `peek_flow` gave a key (frame ``number`` at
    ``time``), built from the bytes the peek read: the pipeline's full path for the SYNs,
    FINs and RSTs of such frames skips the Frame and the Python decoder (tests/test_follow.py
    compares the two on every frame of the test captures)."""
    global _Segment
    cdef Py_ssize_t l3 = _l3(linktype)
    cdef Py_ssize_t size = len(data)
    cdef const unsigned char* ip
    cdef const unsigned char* tcp
    cdef Py_ssize_t total, packet_end, present, start
    if _Segment is None:
        from analyzer.decode.segment import Segment
        _Segment = Segment
    if l3 < 0 or _tcp_over_ipv4(data, size, l3) is NULL:
        raise ValueError("peek_segment: not a frame peek_flow accepts")
    ip = (<const unsigned char*>data) + l3
    tcp = ip + 20
    total = (ip[2] << 8) | ip[3]
    packet_end = l3 + total if total else size
    present = packet_end if packet_end < size else size
    start = l3 + 20 + ((ip[32] >> 4) << 2)
    return _Segment(number, time, data[l3 + 12:l3 + 16], (tcp[0] << 8) | tcp[1],
                    data[l3 + 16:l3 + 20], (tcp[2] << 8) | tcp[3], _u32(tcp + 4, False),
                    _u32(tcp + 8, False), tcp[13],
                    data[start:present] if start < present else b"", packet_end - present)
