# A tracker's fields read at their slots by the compiled paths: the bytes of a body it does not
# read counted as it counts them (`_unread`, for `Follow._deliver`), and the step of a
# switch's compiled watch (`_watching_switch`, `_watch_step`, for `Follow._deliver` and a
# watching TLS state). Each has its plain twin in the tracker, named at the function.

cdef object _TRACKER = None  # exchange.tracker.ConnectionTracker
cdef object _SWITCHED_MODE = None  # exchange.pending.Mode.SWITCHED
cdef object _BODY_MODE = None  # exchange.pending.Mode.BODY
cdef object _WINDOW_OVER = None  # exchange.model.WINDOW_OVER
cdef object _BODY_READER = None  # http.body.BodyReader
cdef object _SIDE = None  # exchange.pending.Side
cdef object _LENGTH_KIND = None  # http.body.FramingKind.LENGTH
cdef object _UNTIL_CLOSE_KIND = None  # http.body.FramingKind.UNTIL_CLOSE
cdef long long _UNTIL_CLOSE_ROOM = 0  # http.body.UNTIL_CLOSE_ROOM
# `_unread` runs at every segment handed to a tracker (≈ 10,700 on the dense benchmark): its
# fields are read at their slots (`_slots.pxi`), not by name (≈ 200 instructions each,
# ≈ 15 M in all, which ate what the bodies saved): the tracker's (`TrackerState`'s slots),
# its sides' (`Side`), a body reader's (`BodyReader`) and its framing's (`Framing`).
cdef Py_ssize_t _T_SWITCH, _T_CLIENT, _T_SIDES, _S_MODE, _S_BODY, _F_KIND
cdef Py_ssize_t _B_DONE, _B_ERROR, _B_PREFIX, _B_KEEP, _B_FRAMING, _B_REMAINING, _B_SIZE


cdef Py_ssize_t _slot_in(object cls, str name) except -1:
    """`_slot_of` for the class of ``cls``'s MRO that defines the slot ``name``."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return _slot_of(klass, name)
    raise TypeError(f"{cls.__name__} has no slot {name}")


cdef int _load_tracker() except -1:
    global _TRACKER, _SWITCHED_MODE, _BODY_MODE, _WINDOW_OVER, _BODY_READER, _SIDE
    global _LENGTH_KIND, _UNTIL_CLOSE_KIND, _UNTIL_CLOSE_ROOM
    global _T_SWITCH, _T_CLIENT, _T_SIDES, _S_MODE, _S_BODY, _F_KIND
    global _B_DONE, _B_ERROR, _B_PREFIX, _B_KEEP, _B_FRAMING, _B_REMAINING, _B_SIZE
    if _TRACKER is None:
        from analyzer.exchange.tracker import ConnectionTracker
        from analyzer.exchange.pending import Mode, Side
        from analyzer.exchange.model import WINDOW_OVER as over
        from analyzer.exchange.switching import _SWITCHED
        from analyzer.http.body import BodyReader, Framing, FramingKind, UNTIL_CLOSE_ROOM
        _T_SWITCH, _T_CLIENT = _slot_in(ConnectionTracker, "_switch"), _slot_in(
            ConnectionTracker, "_client")
        _T_SIDES = _slot_in(ConnectionTracker, "_sides")
        _S_MODE, _S_BODY = _slot_in(Side, "mode"), _slot_in(Side, "body")
        _F_KIND = _slot_in(Framing, "kind")
        _B_DONE, _B_ERROR = _slot_in(BodyReader, "done"), _slot_in(BodyReader, "error")
        _B_PREFIX, _B_KEEP = _slot_in(BodyReader, "_prefix"), _slot_in(BodyReader, "_keep")
        _B_FRAMING = _slot_in(BodyReader, "framing")
        _B_REMAINING, _B_SIZE = _slot_in(BodyReader, "_remaining"), _slot_in(BodyReader, "size")
        _TRACKER, _SWITCHED_MODE, _WINDOW_OVER = ConnectionTracker, _SWITCHED, over
        _BODY_MODE, _BODY_READER, _SIDE = Mode.BODY, BodyReader, Side
        _LENGTH_KIND, _UNTIL_CLOSE_KIND = FramingKind.LENGTH, FramingKind.UNTIL_CLOSE
        _UNTIL_CLOSE_ROOM = UNTIL_CLOSE_ROOM
    return 0


cdef bint _unread(object tracker, int side, Py_ssize_t n) except -1:
    """``tracker.on_data`` of ``n`` bytes of ``side`` inside a body it does not read (fewer
    than `ConnectionTracker.body_room`: past the prefix it keeps, short of its end), done
    here: counted as `BodyReader.pass_bytes` counts them, which is all that ``feed`` does
    with them (its plain twin: ``on_data``, `_client_data`/`_server_data`, ``feed``, three
    Python frames). 3,933 of the 14,608 segments the dense benchmark gives the tracker: the
    bodies of its keep-alive exchanges, but for the chunked ones and their first bytes."""
    cdef object state, reader
    if _slot(tracker, _T_SWITCH) is not None or _slot(tracker, _T_CLIENT) is None:
        return False  # (``tracker`` is a `ConnectionTracker`: `_deliver` asks)
    state = (<tuple>_slot(tracker, _T_SIDES))[side]
    if type(state) is not _SIDE or _slot(state, _S_MODE) is not _BODY_MODE:
        return False
    reader = _slot(state, _S_BODY)
    if type(reader) is not _BODY_READER or _body_room(reader) <= n:  # (Python ints: a
        return False  # Content-Length may be any number of digits, `body_framing`)
    _slots_set(reader, _B_SIZE, _slot(reader, _B_SIZE) + n)
    if _slot(_slot(reader, _B_FRAMING), _F_KIND) is _LENGTH_KIND:
        _slots_set(reader, _B_REMAINING, _slot(reader, _B_REMAINING) - n)
    return True


cdef object _body_room(object reader):
    """`BodyReader.room` (its plain twin; compared in tests/test_follow.py through
    `body_room_compiled`) of ``reader``, a `BodyReader`: a Python int, as large as the
    Content-Length sent."""
    if (_slot(reader, _B_DONE) or _slot(reader, _B_ERROR) is not None
            or len(_slot(reader, _B_PREFIX)) < _slot(reader, _B_KEEP)):
        return 0
    kind = _slot(_slot(reader, _B_FRAMING), _F_KIND)
    if kind is _LENGTH_KIND:
        return _slot(reader, _B_REMAINING)
    return _UNTIL_CLOSE_ROOM if kind is _UNTIL_CLOSE_KIND else 0


def body_room_compiled(reader):
    """`_body_room` for tests: what `Follow` reads as ``reader.room()``."""
    _load_tracker()
    return _body_room(reader)


cdef object _watching_switch(object tracker, int side, double t):
    """The switch of ``tracker`` (a `ConnectionTracker`) when bytes of ``side`` at ``t`` take
    `exchange/switching.py` `_observe`'s ordinary step, its plain twin: a `CompiledSwitchWatch`
    on, before its deadline, ``side`` switched, and not the client's side while a late request
    may still come. Else None: the tracker reads them (`on_data`). `Follow._deliver` and a
    watching TLS state (`_watching.pxi` `_watch_record`) ask it, both after `_load_tracker`:
    the tracker's fields are read at their slots, as `_unread` reads them."""
    cdef object switch = _slot(tracker, _T_SWITCH), watch, client, state
    if switch is None:
        return None
    watch = switch.watch
    if type(watch) is not CompiledSwitchWatch or t > <double>(<CompiledSwitchWatch>watch).deadline:
        return None
    state = (<tuple>_slot(tracker, _T_SIDES))[side]
    if type(state) is not _SIDE or _slot(state, _S_MODE) is not _SWITCHED_MODE:
        return None
    client = _slot(tracker, _T_CLIENT)
    if (client is not None and <int>client == side
            and (<CompiledSwitchWatch>watch)._client_first is None
            and (switch.request is None or switch.replaceable)):
        return None
    return switch


cdef int _watch_step(object tracker, object switch, int side, bytes data, object frame,
                     double t) except -1:
    """That step (`_watching_switch` said it applies): the bytes to the watch, whose last
    frame ends it through `_finish_switch`, as there. 2 when it ended, else 1."""
    cdef object client = tracker._client
    if (<CompiledSwitchWatch>switch.watch)._observe(
            client is not None and <int>client == side, data, frame, t):
        tracker._finish_switch(t, _WINDOW_OVER)
        return 2
    return 1
