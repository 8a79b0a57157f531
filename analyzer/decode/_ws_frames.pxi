# `WsFrameParser` (analyzer/websocket/frames.py) compiled: the watch window of the
# handshake-dense benchmark reads ≈ 16,000 WebSocket frames per 100 MB, and the Python parser's
# header walk cost ≈ 10 µs a frame (a third of that benchmark's per-segment work). Same state,
# same steps, the same `WsFrame` values; the plain parser is its twin, and
# tests/test_websocket_frames.py feeds both the same bytes whole, byte by byte and in random
# pieces and compares every frame and every state they report.

cdef enum:
    _WS_HEADER = 0
    _WS_PREFIX = 1
    _WS_SKIP = 2
    _WS_STOPPED = 3
    _WS_PREFIX_LIMIT = 125  # frames.PAYLOAD_PREFIX_LIMIT


cdef object _WsFrame = None
# WsFrame's slots (decode/_slots.pxi): each watched frame is made by writing them, not through
# the descriptors by name (≈ 1,500 instructions a frame, 16,312 frames of the dense mix)
cdef Py_ssize_t _WF_FIN, _WF_RSV, _WF_OPCODE, _WF_MASKED, _WF_LENGTH, _WF_HEADER_LENGTH
cdef Py_ssize_t _WF_PAYLOAD, _WF_OFFSET


cdef int _load_ws_frame() except -1:
    global _WsFrame, _WF_FIN, _WF_RSV, _WF_OPCODE, _WF_MASKED, _WF_LENGTH, _WF_HEADER_LENGTH
    global _WF_PAYLOAD, _WF_OFFSET
    if _WsFrame is not None:
        return 0
    from analyzer.websocket.frames import WsFrame
    _WF_FIN, _WF_RSV = _slot_of(WsFrame, "fin"), _slot_of(WsFrame, "rsv")
    _WF_OPCODE, _WF_MASKED = _slot_of(WsFrame, "opcode"), _slot_of(WsFrame, "masked")
    _WF_LENGTH = _slot_of(WsFrame, "length")
    _WF_HEADER_LENGTH = _slot_of(WsFrame, "header_length")
    _WF_PAYLOAD, _WF_OFFSET = _slot_of(WsFrame, "payload_prefix"), _slot_of(WsFrame, "offset")
    _WsFrame = WsFrame
    return 0


cdef class CompiledFrameParser:
    """`WsFrameParser`, compiled (``feed``, ``room``, ``pass_bytes``, ``flush``, ``stopped``,
    ``offset``, ``frames_seen``, ``max_frames``)."""

    cdef public long long max_frames
    cdef public long long frames_seen
    cdef public long long offset
    cdef int stage
    cdef unsigned char header[14]
    cdef Py_ssize_t header_filled
    cdef unsigned char prefix[_WS_PREFIX_LIMIT]
    cdef Py_ssize_t prefix_filled
    cdef long long frame_offset
    cdef Py_ssize_t want_prefix
    cdef unsigned long long skip
    # the fields of the frame being read
    cdef bint fin, masked
    cdef int rsv, opcode
    cdef unsigned long long length
    cdef Py_ssize_t header_length
    cdef unsigned char key[4]

    def __init__(self, *, long long max_frames=10_000):
        _load_ws_frame()
        self.max_frames = max_frames
        self.frames_seen = 0
        self.offset = 0
        self.stage = _WS_HEADER if max_frames > 0 else _WS_STOPPED
        self.header_filled = 0
        self.prefix_filled = 0
        self.frame_offset = 0
        self.want_prefix = 0
        self.skip = 0

    @property
    def stopped(self):
        return self.stage == _WS_STOPPED

    def feed(self, data):
        cdef list frames = []
        self._feed_into(data if type(data) is bytes else bytes(data), frames, None, None, None)
        return frames

    cdef int _feed_into(self, bytes whole, list frames, object side, object number,
                        object time) except -1:
        """`feed`, appending to ``frames`` each frame it completes: a `WsFrame`, or with a
        ``side`` the watch's `SeenFrame` of it (`CompiledSwitchWatch.observe`)."""
        cdef const unsigned char* p = whole
        cdef Py_ssize_t pos = 0, end = len(whole), n
        while pos < end and self.stage != _WS_STOPPED:
            if self.stage == _WS_HEADER:
                pos = self._read_header(p, pos, end)
                # A frame without payload is complete the moment its header is.
                if self.stage == _WS_PREFIX and self.want_prefix == 0:
                    frames.append(self._emit() if side is None
                                  else _seen_frame(side, number, time, self._emit()))
            elif self.stage == _WS_PREFIX:
                n = self.want_prefix - self.prefix_filled
                if end - pos < n:
                    n = end - pos
                memcpy(self.prefix + self.prefix_filled, p + pos, n)
                self.prefix_filled += n
                pos += n
                if self.prefix_filled == self.want_prefix:
                    frames.append(self._emit() if side is None
                                  else _seen_frame(side, number, time, self._emit()))
            else:
                n = end - pos
                if self.skip < <unsigned long long>n:
                    n = <Py_ssize_t>self.skip
                pos += n
                self.skip -= n
                if self.skip == 0:
                    self.stage = _WS_HEADER
        self.offset += pos
        return 0

    def room(self):
        return self.skip if self.stage == _WS_SKIP else 0

    def pass_bytes(self, count):
        self.skip -= <unsigned long long>count
        self.offset += count

    def flush(self):
        if self.stage == _WS_PREFIX:
            self.skip = 0
            return [self._emit()]
        return []

    cdef inline Py_ssize_t _header_size(self):
        cdef unsigned char second
        cdef Py_ssize_t size
        if self.header_filled < 2:
            return 2
        second = self.header[1]
        size = 2 + (2 if second & 0x7F == 126 else 8 if second & 0x7F == 127 else 0)
        return size + 4 if second & 0x80 else size

    cdef Py_ssize_t _read_header(self, const unsigned char* p, Py_ssize_t pos, Py_ssize_t end):
        cdef Py_ssize_t need, n, ext, i
        cdef unsigned char* h = self.header
        cdef unsigned long long length
        if not self.header_filled:
            self.frame_offset = self.offset + pos
        need = self._header_size()
        while self.header_filled < need and pos < end:
            n = need - self.header_filled
            if end - pos < n:
                n = end - pos
            memcpy(h + self.header_filled, p + pos, n)
            self.header_filled += n
            pos += n
            need = self._header_size()
        if self.header_filled < need:
            return pos
        # RFC 6455 §5.2, as `WsFrameParser._read_header` reads it
        self.fin = h[0] & 0x80 != 0
        self.rsv = (h[0] >> 4) & 0x7
        self.opcode = h[0] & 0x0F
        self.masked = h[1] & 0x80 != 0
        length = h[1] & 0x7F
        ext = 2 if length == 126 else 8 if length == 127 else 0
        if ext:
            length = 0
            for i in range(ext):
                length = (length << 8) | h[2 + i]
        if self.masked:
            memcpy(self.key, h + 2 + ext, 4)
        self.length = length
        self.header_length = self.header_filled
        self.header_filled = 0
        self.want_prefix = <Py_ssize_t>(length if length < _WS_PREFIX_LIMIT else _WS_PREFIX_LIMIT)
        self.skip = length - <unsigned long long>self.want_prefix
        self.stage = _WS_PREFIX
        return pos

    cdef object _emit(self):
        cdef Py_ssize_t n = self.prefix_filled, i
        cdef object payload
        if self.masked:  # RFC 6455 §5.3, unmasked in place (the prefix is copied out below)
            for i in range(n):
                self.prefix[i] ^= self.key[i & 3]
        payload = PyBytes_FromStringAndSize(<const char*>self.prefix, n)
        # the WsFrame without the frozen dataclass's ``__init__``: its slots written where
        # their descriptors would store the same values (the twin: `WsFrameParser`'s frames,
        # equal, tests/test_websocket_frames_compiled.py)
        frame = _slots_alloc(_WsFrame)
        _slots_set(frame, _WF_FIN, self.fin)
        _slots_set(frame, _WF_RSV, self.rsv)
        _slots_set(frame, _WF_OPCODE, self.opcode)
        _slots_set(frame, _WF_MASKED, self.masked)
        _slots_set(frame, _WF_LENGTH, self.length)
        _slots_set(frame, _WF_HEADER_LENGTH, self.header_length)
        _slots_set(frame, _WF_PAYLOAD, payload)
        _slots_set(frame, _WF_OFFSET, self.frame_offset)
        self.prefix_filled = 0
        self.frames_seen += 1
        if self.frames_seen >= self.max_frames:
            self.stage = _WS_STOPPED
        else:
            self.stage = _WS_SKIP if self.skip else _WS_HEADER
        return frame
