# The records of followed connections (not ignored, not passing) took the Python record reader
# and the pipeline's per-record loop only to reach `Reassembler.take_plain`: ≈ 60,000 of the
# 147,000 records of the 100 MB handshake-dense benchmark, ≈ 4 µs each before any byte was
# read. `Follow.take` makes that call from the compiled skip instead, with the same arguments
# the pipeline gives it (`Analysis.feed_records`), so the reassembly and everything above it
# run exactly as before. The plain twin is that per-record loop: a run with compiled=False
# never makes a `Follow`, and tests/test_follow.py compares the two on real captures.


cdef class Follow:
    """Hands a followed connection's segment without SYN, FIN or RST, whole in the capture, to
    ``take_plain`` (`Reassembler.take_plain`) from the compiled skip. The skip counts what it
    took in ``ledger`` (the reassembler's sweep counts them, `tls/passing.wrap_skip`); a take
    here goes through the reassembler's own count, so the ledger's is brought into it first.
    ``decided`` is the run's queue of decided attempts: the skip stops once it is not empty,
    so that the pipeline hands them on before the next record, as after its own take."""

    cdef public object reassembler
    cdef public object take_plain
    cdef public object decided
    cdef public object arm  # tls.passing.arm, after a take that made the connection passing
    cdef public Ledger ledger
    cdef public long long taken

    def __init__(self, reassembler, decided, arm, Ledger ledger):
        self.reassembler = reassembler
        self.take_plain = reassembler.take_plain
        self.decided = decided
        self.arm = arm
        self.ledger = ledger
        self.taken = 0

    cdef bint take(self, object conn, int side, const unsigned char* frame, Py_ssize_t size,
                   Py_ssize_t l3, const unsigned char* ip, double t, Py_ssize_t index) except -1:
        cdef Ledger ledger = self.ledger
        cdef Py_ssize_t total, packet_end, start
        cdef object payload
        cdef object reassembler = self.reassembler
        if ip[33] & 0x07 or self.decided:  # SYN, FIN, RST: the full path
            return False
        # `peek_payload`'s payload, when nothing is missing (the snaplen cut nothing)
        total = (ip[2] << 8) | ip[3]
        packet_end = l3 + total if total else size
        if packet_end > size:
            return False
        start = l3 + 20 + ((ip[32] >> 4) << 2)
        if start < packet_end:
            payload = PyBytes_FromStringAndSize(<const char*>frame + start, packet_end - start)
        else:
            payload = b""
        if ledger.passed:  # what this skip call took so far, counted as `wrap_skip` would
            reassembler._until_sweep -= ledger.passed
            reassembler.now = ledger.last_time
            ledger.passed = 0
        if conn.life is None:
            taken = self._take(reassembler, conn, side, _u32(ip + 24, False),
                               _u32(ip + 28, False), ip[33], payload, ledger.base + index, t)
        else:  # after the watch: the life's facts, or into the life table (Python's own)
            taken = self.take_plain(conn, side, _u32(ip + 24, False), _u32(ip + 28, False),
                                    ip[33], payload, ledger.base + index, t)
        ledger.limit = reassembler._until_sweep - 1  # the sweep's segment goes the usual way
        if not taken:
            return False
        self.taken += 1
        if conn.passing is not None:
            self.arm(conn)
        return True

    cdef bint _take(self, object reassembler, object conn, int side, unsigned int seq,
                    unsigned int ack, unsigned char flags, object payload, long long frame,
                    double t) except -1:
        """`Reassembler.take_plain` of a connection not in life, step by step (its plain
        twin): False, with nothing changed, for any segment it would refuse."""
        cdef Py_ssize_t n = len(payload)
        cdef object here, there, base, there_base
        cdef long long next_offset, acked
        cdef unsigned int diff
        if reassembler._until_sweep <= 1 or conn.closing or conn.syns is not None:
            return False
        sides = conn.sides
        here = sides[side]
        base = here.base
        if base is None:
            return False
        if n and (here.pending or
                  (seq - <unsigned int>base - <unsigned int>(<long long>here.next_offset))):
            return False  # not the next bytes, or early bytes wait to be drained after them
        there = sides[1 - side]
        if there.pending:
            return False
        there_base = there.base
        if n and there_base is not None and flags & 0x10:
            diff = ack - <unsigned int>there_base - <unsigned int>(<long long>there.next_offset)
            if 1 < diff < _HALF:
                return False  # this side must wait for the other (causal order)
        reassembler.now = t
        reassembler._until_sweep -= 1
        conn.last_time = t
        if flags & 0x10 and there_base is not None and not conn.ignored:
            # `Reassembler._peer_acked(conn, 1 - side, ack)`, with `_Direction.offset_of`
            next_offset = there.next_offset
            diff = ack - <unsigned int>there_base - <unsigned int>next_offset
            acked = next_offset + <long long>diff
            if diff >= _HALF:
                acked -= 1LL << 32
            if there.fin:
                acked -= 1
            if acked > there.acked and acked - next_offset < _HALF:
                there.acked = acked
                if acked == next_offset + 1 and not there.fin:
                    # a lost FIN's proof, and where this side's bytes were then (_lost_fin)
                    there.fin_evidence = (frame, t, here.next_offset)
        if n:
            here.advance(payload)
            conn.listener.on_data(side, here.next_offset - n, payload, frame, t)
        return True
