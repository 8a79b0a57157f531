# The run's ledger of what the compiled skip took (analyzer/tls/passing.py `wrap_skip`): the
# passing states of decrypted TLS directions (_passing.pxi), the followed connections
# (_follow.pxi) and the life table (_life_table.pxi) count their frames in it.


cdef class Ledger:
    """What the passing connections of one run took during one skip call: the frames (the
    reassembler's sweep counts them), at most ``limit``; ``dirty`` lists the states with
    something to bring into the Python state."""

    cdef public Py_ssize_t limit
    cdef public Py_ssize_t passed
    cdef public double last_time
    cdef public list dirty
    cdef public long long total  # frames passed in the whole run
    cdef public long long trusted  # TLS 1.3 records counted unopened in the whole run
    cdef public long long turned  # passing states turned to gathering in the whole run
    cdef public long long base  # the frame number before the skip call's first record

    def __init__(self):
        self.total = self.trusted = self.turned = 0
        self.base = 0
        self.limit = 0
        self.passed = 0
        self.last_time = 0.0
        self.dirty = []
