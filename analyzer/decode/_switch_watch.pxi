# `SwitchWatch` (analyzer/exchange/switch.py) of a WebSocket switch, compiled: the watch window
# of the handshake-dense benchmark takes ≈ 21,000 segments per 100 MB, and the Python watch
# cost ≈ 2.9 µs a segment, of which the frozen dataclasses made per WebSocket frame (`WsFrame`
# and `SeenFrame`, each storing every field through ``object.__setattr__``) ≈ 1.2 µs. Same
# state, same steps, the same values; `SwitchWatch` is its twin (`switch.switch_watch` picks
# this one only for a WebSocket switch of a run with the compiled frame parser), and
# tests/test_switch_watch.py feeds both the same segments and compares what they report.

cdef Py_ssize_t _WATCH_PREFIX = 256  # switch.PREFIX_BYTES
cdef object _SeenFrame = None
cdef object _TcpEvent = None
cdef object _AfterSwitch = None
cdef object _CLIENT = "client"  # switch._SIDES
cdef object _SERVER = "server"


cdef Py_ssize_t _SF_SIDE, _SF_FRAME, _SF_TIME, _SF_WS  # SeenFrame's slots (_slots.pxi)


cdef object _seen_frame(object side, object frame, object time, object ws):
    """`SeenFrame(side, frame, time, ws)` without the frozen dataclass's ``__init__``: its
    slots written where their descriptors would store the same values (`_emit`'s way)."""
    cdef object made = _slots_alloc(_SeenFrame)
    _slots_set(made, _SF_SIDE, side)
    _slots_set(made, _SF_FRAME, frame)
    _slots_set(made, _SF_TIME, time)
    _slots_set(made, _SF_WS, ws)
    return made


cdef object _tcp_event(object frame, object time):
    """`TcpEvent(frame, time)` without the frozen dataclass's ``__init__`` (each side's first
    bytes after the switch: two a watch)."""
    cdef object made = _new_object(_TcpEvent)
    PyObject_GenericSetAttr(made, "frame", frame)
    PyObject_GenericSetAttr(made, "time", time)
    PyObject_GenericSetAttr(made, "lost", False)
    return made


cdef bint _usual(object ws, bint from_client) except -1:
    """websocket/frames.py `usual_frame` (its twin) of a `WsFrame` made by the compiled
    parser, read at its slots."""
    cdef long long opcode = _slot(ws, _WF_OPCODE), header = _slot(ws, _WF_HEADER_LENGTH)
    cdef bint masked = _slot(ws, _WF_MASKED)
    cdef unsigned long long length
    cdef bytes payload
    cdef const unsigned char* p
    cdef Py_ssize_t i, n
    cdef unsigned long long word
    if opcode > 2 or <long long>_slot(ws, _WF_RSV) or masked != from_client:
        return False
    length = _slot(ws, _WF_LENGTH)  # (up to 2**64 - 1: the 64-bit form's top bit may be set)
    if masked:
        header -= 4
    if not (header == 2 or (length > 125 if header == 4 else
                            header == 10 and 65535 < length < (1ULL << 63))):
        return False
    if opcode != 1:
        return True
    payload = _slot(ws, _WF_PAYLOAD)
    p = payload
    n = len(payload)
    i = 0
    while i + 8 <= n:  # ASCII (`bytes.isascii`), eight bytes at a time
        memcpy(&word, p + i, 8)
        if word & 0x8080808080808080ULL:
            return False
        i += 8
    while i < n:
        if p[i] & 0x80:
            return False
        i += 1
    return True


cdef tuple _unusual_frames(list frames):
    """exchange/switch.py `unusual_frames` (its twin) of the watch's `SeenFrame`s."""
    cdef list looked = []
    cdef Py_ssize_t i
    cdef object side
    for i in range(len(frames)):
        seen = frames[i]
        side = _slot(seen, _SF_SIDE)  # (the watch's own "client", or an equal one)
        if not _usual(_slot(seen, _SF_WS), side is _CLIENT or side == _CLIENT):
            looked.append(i)
    return tuple(looked)


cdef class CompiledSwitchWatch:
    """`SwitchWatch` of a WebSocket switch (not h2c), compiled (``early``, ``client_seen``,
    ``lost``, ``observe``, ``room``, ``pass_bytes``, ``result``; ``switch_time``,
    ``websocket``, ``deadline``, ``last_seen``, ``complete``, ``h2_status``)."""

    cdef public object switch_time
    cdef public bint websocket
    cdef public object deadline
    cdef public list last_seen
    cdef public bint complete
    cdef public int h2_status
    cdef Py_ssize_t _frame_limit
    cdef CompiledFrameParser _client_parser
    cdef CompiledFrameParser _server_parser
    cdef list _frames
    cdef bytearray _client_prefix
    cdef bytearray _server_prefix
    cdef object _client_first
    cdef object _server_first
    cdef object _early_bytes
    cdef object _early_frame

    def __init__(self, switch_time, seen_at, window):
        global _SeenFrame, _TcpEvent, _AfterSwitch, _SF_SIDE, _SF_FRAME, _SF_TIME, _SF_WS
        if _SeenFrame is None:
            from analyzer.exchange.model import AfterSwitch, SeenFrame, TcpEvent
            _SF_SIDE, _SF_FRAME = _slot_of(SeenFrame, "side"), _slot_of(SeenFrame, "frame")
            _SF_TIME, _SF_WS = _slot_of(SeenFrame, "time"), _slot_of(SeenFrame, "ws")
            _SeenFrame, _TcpEvent, _AfterSwitch = SeenFrame, TcpEvent, AfterSwitch
        self.switch_time = switch_time
        self.websocket = True
        self.deadline = seen_at + window.seconds
        self._frame_limit = 2 * window.frames
        self._client_parser = CompiledFrameParser(max_frames=window.frames)
        self._server_parser = CompiledFrameParser(max_frames=window.frames)
        self._frames = []
        self._client_prefix = bytearray()
        self._server_prefix = bytearray()
        self._client_first = None
        self._server_first = None
        self.last_seen = [0.0, 0.0]
        self._early_bytes = 0
        self._early_frame = 0
        self.complete = True
        self.h2_status = 0

    def early(self, length, frame):
        if self._early_frame == 0:
            self._early_frame = frame
        self._early_bytes += length

    @property
    def client_seen(self):
        return self._client_first is not None

    def lost(self, client, frame, time):
        self.complete = False
        if client:
            if self._client_first is None:
                self._client_first = _tcp_event(frame, time)
        elif self._server_first is None:
            self._server_first = _tcp_event(frame, time)

    def observe(self, client, data, frame, time):
        return self._observe(client, data if type(data) is bytes else bytes(data), frame, time)

    cdef bint _observe(self, bint side, bytes data, object frame, object time) except -1:
        """`observe`, callable from C: `Follow._take` hands a switched connection's next
        in-order segment here without the tracker's Python `on_data` and `_observe`."""
        cdef bytearray prefix
        cdef CompiledFrameParser parser
        cdef Py_ssize_t have
        if side:
            if self._client_first is None:
                self._client_first = _tcp_event(frame, time)
            self.last_seen[0] = time
            prefix, parser = self._client_prefix, self._client_parser
        else:
            if self._server_first is None:
                self._server_first = _tcp_event(frame, time)
            self.last_seen[1] = time
            prefix, parser = self._server_prefix, self._server_parser
        have = len(prefix)
        if have < _WATCH_PREFIX:
            prefix.extend(data[: _WATCH_PREFIX - have])
        parser._feed_into(data, self._frames, _CLIENT if side else _SERVER, frame, time)
        return len(self._frames) >= self._frame_limit

    def room(self, client):
        if client:
            if self._client_first is None or len(self._client_prefix) < _WATCH_PREFIX:
                return 0
            return self._client_parser.room()
        if self._server_first is None or len(self._server_prefix) < _WATCH_PREFIX:
            return 0
        return self._server_parser.room()

    def pass_bytes(self, client, count):
        (self._client_parser if client else self._server_parser).pass_bytes(count)

    def result(self, time):
        """`SwitchWatch.result`'s AfterSwitch, stored through the slots' descriptors rather
        than the frozen ``__init__`` (12 fields through ``object.__setattr__``; one an
        attempt after a switch): the same value."""
        cdef object made = _new_object(_AfterSwitch)
        PyObject_GenericSetAttr(made, "switch_time", self.switch_time)
        PyObject_GenericSetAttr(made, "frames", tuple(self._frames))
        PyObject_GenericSetAttr(made, "client_prefix", bytes(self._client_prefix))
        PyObject_GenericSetAttr(made, "server_prefix", bytes(self._server_prefix))
        PyObject_GenericSetAttr(made, "client_first", self._client_first)
        PyObject_GenericSetAttr(made, "server_first", self._server_first)
        PyObject_GenericSetAttr(made, "early_client_bytes", self._early_bytes)
        PyObject_GenericSetAttr(made, "early_client_frame", self._early_frame)
        PyObject_GenericSetAttr(made, "complete", self.complete)
        PyObject_GenericSetAttr(made, "h2c_status", self.h2_status)
        PyObject_GenericSetAttr(made, "h2c_status_event", None)
        PyObject_GenericSetAttr(made, "looked", _unusual_frames(self._frames))
        return made
