# The compiled life table: switched connections past their watch window, in C structs.
#
# Included by _fastpath.pyx (the skip of ignored connections looks connections in life up
# here and takes their segments without leaving C). Its plain twin, with the same methods and
# results, is `analyzer/life/table.py` (`PlainLifeTable`); docs/architecture.md says why and
# how, tests/test_life_table.py compares the two.
#
# One entry per connection, under both directions' flow keys in an open-addressing hash
# table: per direction its times, bytes and end (the `Life` fields, life/state.py), and the
# bytes a Close frame could still be read from (`keep_tail`: usually none, at most 131, kept
# in a malloc'ed buffer only while there are some). Nothing per connection is a Python
# object: the target, the decided verdict and the sink are shared values counted by use.
# The entries and what a segment does to them: _life_entries.pxi (included before this).

cdef class LifeTable:
    """Connections in life, by flow key (the plain twin: `analyzer.life.table.PlainLifeTable`).

    ``life_class`` and ``flow_class`` are `life.state.Life` and `_Flow`: a connection is
    adopted from a `Life` and given back as one when it ends (`pop`). ``ledger`` is the
    run's `Ledger` when the compiled skip may take segments (it counts them for the sweep)."""

    cdef _LifeEntry* entries
    cdef Py_ssize_t capacity, high, count
    cdef int first, last, free_head
    cdef unsigned long long* slots  # 0 empty, 1 deleted, else (hash high bits, entry*2+side+2)
    cdef Py_ssize_t slot_count, slot_used
    cdef list _values
    cdef list _refs
    cdef dict _ids
    cdef list _free_ids
    cdef object life_class, flow_class
    cdef public Ledger ledger
    cdef public long long taken  # segments the compiled skip took (tests read it)

    def __cinit__(self):
        self.entries = NULL
        self.slots = NULL
        self.capacity = self.high = self.count = 0
        self.first = self.last = self.free_head = -1
        self.slot_count = self.slot_used = 0

    def __init__(self, life_class, flow_class):
        self.life_class = life_class
        self.flow_class = flow_class
        self._values = []
        self._refs = []
        self._ids = {}
        self._free_ids = []
        self.ledger = None
        self.taken = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.entries is not NULL:
            for i in range(self.high):
                if self.entries[i].used:
                    free(self.entries[i].flows[0].tail)
                    free(self.entries[i].flows[1].tail)
            free(self.entries)
        free(self.slots)

    def __len__(self):
        return self.count

    def nbytes(self):
        """The C memory the table holds: entries (used or free), hash slots, tails."""
        cdef Py_ssize_t total = self.capacity * sizeof(_LifeEntry)
        cdef Py_ssize_t i
        total += self.slot_count * sizeof(unsigned long long)
        for i in range(self.high):
            if self.entries[i].used:
                total += _LIFE_TAIL * ((self.entries[i].flows[0].tail is not NULL)
                                       + (self.entries[i].flows[1].tail is not NULL))
        return total

    # --- shared values: the target, the decided verdict, the sink ------------------------

    cdef int _intern(self, object value) except -1:
        cdef object found = self._ids.get(value)
        cdef int i
        if found is not None:
            i = found
            self._refs[i] += 1
            return i
        if self._free_ids:
            i = self._free_ids.pop()
            self._values[i] = value
            self._refs[i] = 1
        else:
            i = len(self._values)
            self._values.append(value)
            self._refs.append(1)
        self._ids[value] = i
        return i

    cdef object _release(self, int i):
        cdef object value = self._values[i]
        self._refs[i] -= 1
        if not self._refs[i]:
            del self._ids[value]
            self._values[i] = None
            self._free_ids.append(i)
        return value

    # --- the hash table ----------------------------------------------------------------

    cdef long _find(self, const unsigned char* k, Py_ssize_t n) noexcept:
        """entry * 2 + side of flow key ``k``, or -1."""
        cdef unsigned long long h, s
        cdef Py_ssize_t mask, i
        cdef long v
        cdef _LifeEntry* e
        cdef unsigned char other[_LIFE_KEY]
        if not self.count or n > _LIFE_KEY or n < 4:
            return -1
        h = _hash(k, n)
        mask = self.slot_count - 1
        i = <Py_ssize_t>(h & <unsigned long long>mask)
        while True:
            s = self.slots[i]
            if not s:
                return -1
            if s != 1 and (s >> 32) == (h >> 32):
                v = <long>(s & 0xFFFFFFFFULL) - 2
                e = &self.entries[v >> 1]
                if e.key_len == n:
                    if v & 1:
                        _reverse_key(e.key, n, other)
                        if not memcmp(other, k, n):
                            return v
                    elif not memcmp(e.key, k, n):
                        return v
            i = (i + 1) & mask

    cdef int _place(self, const unsigned char* k, Py_ssize_t n, long v) except -1:
        cdef unsigned long long h = _hash(k, n)
        cdef Py_ssize_t mask = self.slot_count - 1
        cdef Py_ssize_t i = <Py_ssize_t>(h & <unsigned long long>mask)
        while self.slots[i] > 1:
            i = (i + 1) & mask
        if not self.slots[i]:
            self.slot_used += 1
        self.slots[i] = (h & 0xFFFFFFFF00000000ULL) | <unsigned long long>(v + 2)
        return 0

    cdef int _unplace(self, const unsigned char* k, Py_ssize_t n, long v) except -1:
        cdef unsigned long long h = _hash(k, n)
        cdef Py_ssize_t mask = self.slot_count - 1
        cdef Py_ssize_t i = <Py_ssize_t>(h & <unsigned long long>mask)
        while self.slots[i]:
            if self.slots[i] != 1 and <long>(self.slots[i] & 0xFFFFFFFFULL) - 2 == v:
                self.slots[i] = 1
                return 0
            i = (i + 1) & mask
        return 0

    cdef int _grow_slots(self) except -1:
        """Rehash (called when live and deleted slots pass 2/3): at most half full after."""
        cdef Py_ssize_t size = 1024
        cdef Py_ssize_t i
        cdef unsigned char other[_LIFE_KEY]
        cdef _LifeEntry* e
        while size < 4 * (self.count + 1):
            size *= 2
        free(self.slots)
        self.slots = <unsigned long long*>calloc(size, sizeof(unsigned long long))
        if self.slots is NULL:
            raise MemoryError()
        self.slot_count = size
        self.slot_used = 0
        for i in range(self.high):
            e = &self.entries[i]
            if e.used:
                self._place(e.key, e.key_len, 2 * i)
                _reverse_key(e.key, e.key_len, other)
                self._place(other, e.key_len, 2 * i + 1)
        return 0

    cdef int _new_entry(self) except -1:
        cdef int i
        cdef _LifeEntry* grown
        cdef Py_ssize_t size
        if self.free_head >= 0:
            i = self.free_head
            self.free_head = self.entries[i].next
        else:
            if self.high == self.capacity:
                size = self.capacity * 2 if self.capacity else 256
                grown = <_LifeEntry*>realloc(self.entries, size * sizeof(_LifeEntry))
                if grown is NULL:
                    raise MemoryError()
                self.entries = grown
                self.capacity = size
            i = <int>self.high
            self.high += 1
        self.entries[i].used = 1
        self.entries[i].flows[0].tail = NULL
        self.entries[i].flows[1].tail = NULL
        self.entries[i].flows[0].tail_len = self.entries[i].flows[1].tail_len = 0
        self.entries[i].prev = self.last
        self.entries[i].next = -1
        if self.last >= 0:
            self.entries[self.last].next = i
        else:
            self.first = i
        self.last = i
        self.count += 1
        return i

    cdef int _free_entry(self, int i) except -1:
        cdef _LifeEntry* e = &self.entries[i]
        cdef unsigned char other[_LIFE_KEY]
        self._unplace(e.key, e.key_len, 2 * i)
        _reverse_key(e.key, e.key_len, other)
        self._unplace(other, e.key_len, 2 * i + 1)
        if e.prev >= 0:
            self.entries[e.prev].next = e.next
        else:
            self.first = e.next
        if e.next >= 0:
            self.entries[e.next].prev = e.prev
        else:
            self.last = e.prev
        free(e.flows[0].tail)
        free(e.flows[1].tail)
        e.flows[0].tail = e.flows[1].tail = NULL
        e.used = 0
        e.next = self.free_head
        self.free_head = i
        self.count -= 1
        return 0

    cdef long _lookup(self, bytes key) except -2:
        return self._find(<const unsigned char*>key, len(key))

    cdef long _existing(self, bytes key) except -1:
        cdef long v = self._find(<const unsigned char*>key, len(key))
        if v < 0:
            raise KeyError(key)
        return v

    # --- what the reassembler calls ----------------------------------------------------

    def adopt(self, conn):
        """Take ``conn``'s `Life` into the table (True), or leave it where it is (False: not
        a plain `Life`, or the connection is closing, finished or still deferred)."""
        life = conn.life
        cdef bytes key = conn.key
        cdef Py_ssize_t n = len(key)
        cdef int i, side
        cdef _LifeEntry* e
        cdef _LifeFlow* f
        cdef unsigned char other[_LIFE_KEY]
        cdef bytes tail
        if (type(life) is not self.life_class or life.ended or conn.closing or conn.finished
                or conn.syns is not None or n > _LIFE_KEY or n < 4 or self._lookup(key) >= 0):
            return False
        if 3 * (self.slot_used + 2) > 2 * self.slot_count:
            self._grow_slots()
        i = self._new_entry()
        e = &self.entries[i]
        e.key_len = <unsigned char>n
        memcpy(e.key, <const unsigned char*>key, n)
        e.client = life.client
        e.websocket = bool(life.websocket)
        e.switch_time = life.switch_time
        e.last_time = conn.last_time
        e.key_frame, e.key_seq, e.key_stream = life.key
        e.target = self._intern(life.target)
        e.decided = self._intern(life.decided)
        e.sink = self._intern(life.sink)
        for side in range(2):
            flow = life.flows[side]
            f = &e.flows[side]
            base = conn.sides[side].base
            f.conn_base = -1 if base is None else base
            f.base = flow.base
            f.sent = flow.sent
            f.first, f.last, f.data, f.end = flow.first, flow.last, flow.data, flow.end
            f.end_frame = flow.end_frame
            f.reset = flow.reset
            f.lost = 2 if flow.lost else 0
            f.data_frame = flow.data_frame
            f.ping, f.ping_frame = flow.ping, flow.ping_frame
            f.ping_held, f.eio = flow.ping_held, flow.eio
            proof = flow.proof
            if proof is not None and not flow.end:
                f.end_frame, f.end = proof
                f.lost = 1
            tail = flow.tail
            f.tail_len = 0
            if tail:
                _tail_add(f, <const unsigned char*>tail, len(tail))
        self._place(e.key, n, 2 * i)
        _reverse_key(e.key, n, other)
        self._place(other, n, 2 * i + 1)
        return True

    def side_of(self, bytes key):
        """The side whose segments carry ``key`` (-1: no connection in life has it)."""
        cdef long v = self._lookup(key)
        return -1 if v < 0 else v & 1

    def take(self, bytes key, unsigned int seq, long long ack, bytes payload,
             long long frame, double time):
        """A segment without SYN, FIN or RST (``ack`` -1 without the ACK flag): False when
        ``key`` is not in the table, or when the segment ends the connection (`segment`
        takes it then)."""
        cdef long v = self._lookup(key)
        cdef _LifeEntry* e
        if v < 0:
            return False
        e = &self.entries[v >> 1]
        if _life_answers(e, v & 1, ack):
            return False
        _life_take(e, v & 1, seq, payload, len(payload), time, frame)
        _life_ack(e, v & 1, ack, frame, time)
        return True

    def segment(self, bytes key, int flags, unsigned int seq, long long ack, bytes payload,
                long long frame, double time):
        """Any segment of a connection in the table: "reset" or "closed" when it ends it."""
        cdef long v = self._existing(key)
        cdef int side = v & 1
        cdef _LifeEntry* e = &self.entries[v >> 1]
        cdef _LifeFlow* f = &e.flows[side]
        cdef _LifeFlow* o = &e.flows[1 - side]
        cdef bint answered
        _life_take(e, side, seq, payload, len(payload), time, frame)
        answered = _life_ack(e, side, ack, frame, time)
        if flags & 0x04:  # Life.rst
            if not _life_ended(f):
                _life_lost_fin(o)
                if f.lost == 1 and ((<unsigned long long>seq - f.base - f.sent)
                                    & 0xFFFFFFFFULL) == 1:
                    _life_lost_fin(f)  # its RST came after its FIN
            if f.lost == 1:  # a proof that proved nothing: no end
                f.lost = 0
                f.end = 0.0
                f.end_frame = 0
            f.reset = True
            if not f.end or f.end > time:
                f.end, f.end_frame, f.lost = time, frame, 0
            return "reset"
        if flags & 0x01:  # Life.fin
            if not _life_ended(f):
                _life_lost_fin(o)
                f.end, f.end_frame, f.lost = time, frame, 0
            if _life_ended(&e.flows[0]) and _life_ended(&e.flows[1]):
                return "closed"
        return "closed" if answered else None

    def reused(self, bytes key, unsigned int seq):
        """A SYN whose sequence number is not the one its direction started with: a new
        connection on the same ports (`Reassembler._is_new_incarnation`)."""
        cdef long v = self._existing(key)
        cdef long long base = self.entries[v >> 1].flows[v & 1].conn_base
        return base >= 0 and ((<unsigned long long>seq + 1) & 0xFFFFFFFFULL) != <unsigned long long>base

    def syn_base(self, bytes key):
        """Side 0's first sequence number + 1 (None when unknown): what a copy of the
        connection's SYN would carry (`Reassembler._is_new_incarnation`)."""
        cdef long v = self._existing(key)
        cdef long long base = self.entries[v >> 1].flows[0].conn_base
        return base if base >= 0 else None

    def pop(self, bytes key):
        """(the connection's `Life`, side 0's flow key), taken out of the table."""
        cdef long v = self._existing(key)
        cdef int i = v >> 1
        cdef _LifeEntry* e = &self.entries[i]
        cdef _LifeFlow* f
        flows = []
        for side in range(2):
            f = &e.flows[side]
            flow = self.flow_class(f.base, f.sent, f.first, f.last)
            flow.data, flow.reset = f.data, f.reset
            flow.data_frame = f.data_frame
            flow.ping, flow.ping_frame = f.ping, f.ping_frame
            flow.ping_held, flow.eio = bool(f.ping_held), bool(f.eio)
            if f.lost == 1:
                flow.proof = (f.end_frame, f.end)
            else:
                flow.end, flow.end_frame, flow.lost = f.end, f.end_frame, f.lost == 2
            flow.tail = (<char*>f.tail)[:f.tail_len] if f.tail_len else b""
            flows.append(flow)
        life = self.life_class((e.key_frame, e.key_seq, e.key_stream), e.client, e.switch_time,
                               self._release(e.target), bool(e.websocket),
                               (flows[0], flows[1]), self._release(e.sink))
        life.decided = self._release(e.decided)
        key0 = (<char*>e.key)[:e.key_len]
        self._free_entry(i)
        return life, key0

    def idle(self, double cutoff):
        """Side 0's flow keys of the connections silent since before ``cutoff``."""
        cdef int i = self.first
        out = []
        while i >= 0:
            if self.entries[i].last_time < cutoff:
                out.append((<char*>self.entries[i].key)[:self.entries[i].key_len])
            i = self.entries[i].next
        return out

    def ages(self):
        """(last packet time, side 0's flow key) of each connection, in insertion order."""
        cdef int i = self.first
        out = []
        while i >= 0:
            out.append((self.entries[i].last_time,
                        (<char*>self.entries[i].key)[:self.entries[i].key_len]))
            i = self.entries[i].next
        return out

    # --- the compiled skip's part ------------------------------------------------------

    cdef bint take_frame(self, const unsigned char* ip, Py_ssize_t size, Py_ssize_t l3,
                         double t, Py_ssize_t index) except -1:
        """A frame (``index`` in the skip call's records) of a connection in life taken
        here, as `Reassembler.take_life` would (no SYN, FIN or RST, whole in the capture,
        not the sweep's segment, not an ACK that ends the connection)."""
        cdef Ledger ledger = self.ledger
        cdef long v
        cdef long long ack = -1
        cdef _LifeEntry* e
        cdef _LifeFlow* o
        cdef Py_ssize_t total, packet_end, start, n
        if ledger is None or ledger.passed >= ledger.limit or ip[33] & 0x07:
            return False
        v = self._find(ip + 12, 12)
        if v < 0:
            return False
        total = (ip[2] << 8) | ip[3]
        packet_end = l3 + total if total else size
        if packet_end > size:  # the snaplen cut it: the per-segment path
            return False
        e = &self.entries[v >> 1]
        if ip[33] & 0x10:
            o = &e.flows[1 - (v & 1)]
            ack = _u32(ip + 28, False)
            # one past the other side's bytes (rare: a lost FIN's proof) goes the slow way
            if ((<unsigned long long>ack - o.base - o.sent) & 0xFFFFFFFFULL) != 1:
                ack = -1
            elif _life_answers(e, v & 1, ack):  # it ends the connection: Python's path
                return False
        start = l3 + 20 + ((ip[32] >> 4) << 2)
        n = packet_end - start if start < packet_end else 0
        _life_take(e, v & 1, _u32(ip + 24, False), ip - l3 + start, n, t, ledger.base + index)
        if ack >= 0:
            _life_ack(e, v & 1, ack, ledger.base + index, t)
        self.taken += 1
        ledger.passed += 1
        ledger.last_time = t
        return True

