# Frozen values made once or more per connection, compiled: `decode.segment.made_segment` and
# `exchange/made.py`'s Attempt, TcpFacts, TcpEvent and Endpoint, and `exchange.pending.message`. The frozen ``__init__``
# stores each field through ``object.__setattr__`` (≈ 1.9 k machine instructions a field,
# callgrind: an Attempt ≈ 33 k, a TcpFacts ≈ 22 k); the Python slot setters of those modules
# ≈ 850 a field. Here each value is an empty object of its class with its slots filled, as
# `_heads.pxi` makes a head (the slots' places read from the classes' member descriptors; a
# class whose fields changed makes `_made_classes` raise). The Python functions are the
# twins (the pure-Python install's), and the constructors theirs: tests/test_made_values.py
# compares all three on the values of every bundled capture.

cdef object _Segment_made = None
cdef object _Endpoint = None
cdef object _Event = None
cdef object _TcpFacts = None
cdef object _Attempt = None
cdef object _Message = None
cdef Py_ssize_t _SEGMENT_AT[11]
cdef Py_ssize_t _ENDPOINT_AT[2]
cdef Py_ssize_t _EVENT_AT[3]
cdef Py_ssize_t _FACTS_AT[12]
cdef Py_ssize_t _ATTEMPT_AT[17]
cdef Py_ssize_t _MESSAGE_AT[8]


cdef int _made_classes() except -1:
    global _Segment_made, _Endpoint, _Event, _TcpFacts, _Attempt, _Message
    from analyzer.decode.segment import Segment
    from analyzer.exchange.model import Attempt, Endpoint, Message, TcpEvent, TcpFacts
    _slots_of(Segment, ("frame", "time", "src", "sport", "dst", "dport", "seq", "ack", "flags",
                        "payload", "missing"), _SEGMENT_AT)
    _slots_of(Endpoint, ("address", "port"), _ENDPOINT_AT)
    _slots_of(TcpEvent, ("frame", "time", "lost"), _EVENT_AT)
    _slots_of(TcpFacts, ("syn", "syn_count", "syn_ack", "client_fin", "server_fin",
                         "client_rst", "server_rst", "gaps", "conflicts", "end_reason",
                         "end_time", "resent"), _FACTS_AT)
    _slots_of(Attempt, ("kind", "client", "server", "tcp", "request", "response", "interim",
                        "after", "sequence", "request_gap", "response_gap", "tls", "transport",
                        "stream_id", "h2", "other_answer", "promoted"), _ATTEMPT_AT)
    _slots_of(Message, ("head", "first_frame", "last_frame", "time", "body_prefix",
                        "body_length", "body_complete", "head_complete"), _MESSAGE_AT)
    _Segment_made, _Endpoint, _Event, _TcpFacts, _Attempt, _Message = (
        Segment, Endpoint, TcpEvent, TcpFacts, Attempt, Message)
    return 0


def compiled_made_segment(frame, time, src, sport, dst, dport, seq, ack, flags, payload,
                          missing=0):
    """`decode.segment.made_segment`, compiled."""
    if _Segment_made is None:
        _made_classes()
    cdef object made = _heads_alloc(_Segment_made)
    _heads_put(made, _SEGMENT_AT[0], frame)
    _heads_put(made, _SEGMENT_AT[1], time)
    _heads_put(made, _SEGMENT_AT[2], src)
    _heads_put(made, _SEGMENT_AT[3], sport)
    _heads_put(made, _SEGMENT_AT[4], dst)
    _heads_put(made, _SEGMENT_AT[5], dport)
    _heads_put(made, _SEGMENT_AT[6], seq)
    _heads_put(made, _SEGMENT_AT[7], ack)
    _heads_put(made, _SEGMENT_AT[8], flags)
    _heads_put(made, _SEGMENT_AT[9], payload)
    _heads_put(made, _SEGMENT_AT[10], missing)
    return made


def compiled_made_endpoint(address, port):
    """`exchange.made.made_endpoint`, compiled."""
    if _Endpoint is None:
        _made_classes()
    cdef object made = _heads_alloc(_Endpoint)
    _heads_put(made, _ENDPOINT_AT[0], address)
    _heads_put(made, _ENDPOINT_AT[1], port)
    return made


def compiled_made_event(frame, time, lost=False):
    """`exchange.made.made_event`, compiled."""
    if _Event is None:
        _made_classes()
    cdef object made = _heads_alloc(_Event)
    _heads_put(made, _EVENT_AT[0], frame)
    _heads_put(made, _EVENT_AT[1], time)
    _heads_put(made, _EVENT_AT[2], lost)
    return made


def compiled_made_tcp_facts(syn, syn_count, syn_ack, client_fin, server_fin, client_rst,
                            server_rst, gaps, conflicts, end_reason, end_time, resent=()):
    """`exchange.made.made_tcp_facts`, compiled."""
    if _TcpFacts is None:
        _made_classes()
    cdef object made = _heads_alloc(_TcpFacts)
    _heads_put(made, _FACTS_AT[0], syn)
    _heads_put(made, _FACTS_AT[1], syn_count)
    _heads_put(made, _FACTS_AT[2], syn_ack)
    _heads_put(made, _FACTS_AT[3], client_fin)
    _heads_put(made, _FACTS_AT[4], server_fin)
    _heads_put(made, _FACTS_AT[5], client_rst)
    _heads_put(made, _FACTS_AT[6], server_rst)
    _heads_put(made, _FACTS_AT[7], gaps)
    _heads_put(made, _FACTS_AT[8], conflicts)
    _heads_put(made, _FACTS_AT[9], end_reason)
    _heads_put(made, _FACTS_AT[10], end_time)
    _heads_put(made, _FACTS_AT[11], resent)
    return made


def compiled_made_attempt(kind, client, server, tcp, request=None, response=None, interim=(),
                          after=None, sequence=0, request_gap=False, response_gap=False,
                          tls=None, transport="h1", stream_id=None, h2=None, other_answer=None,
                          promoted=None):
    """`exchange.made.made_attempt`, compiled."""
    if _Attempt is None:
        _made_classes()
    cdef object made = _heads_alloc(_Attempt)
    _heads_put(made, _ATTEMPT_AT[0], kind)
    _heads_put(made, _ATTEMPT_AT[1], client)
    _heads_put(made, _ATTEMPT_AT[2], server)
    _heads_put(made, _ATTEMPT_AT[3], tcp)
    _heads_put(made, _ATTEMPT_AT[4], request)
    _heads_put(made, _ATTEMPT_AT[5], response)
    _heads_put(made, _ATTEMPT_AT[6], interim)
    _heads_put(made, _ATTEMPT_AT[7], after)
    _heads_put(made, _ATTEMPT_AT[8], sequence)
    _heads_put(made, _ATTEMPT_AT[9], request_gap)
    _heads_put(made, _ATTEMPT_AT[10], response_gap)
    _heads_put(made, _ATTEMPT_AT[11], tls)
    _heads_put(made, _ATTEMPT_AT[12], transport)
    _heads_put(made, _ATTEMPT_AT[13], stream_id)
    _heads_put(made, _ATTEMPT_AT[14], h2)
    _heads_put(made, _ATTEMPT_AT[15], other_answer)
    _heads_put(made, _ATTEMPT_AT[16], promoted)
    return made


def compiled_message(head, first_frame, last_frame, time, body_prefix=b"", body_length=0,
                     body_complete=True, head_complete=True):
    """`exchange.pending.message`, compiled (an attempt's request and response)."""
    if _Message is None:
        _made_classes()
    cdef object made = _heads_alloc(_Message)
    _heads_put(made, _MESSAGE_AT[0], head)
    _heads_put(made, _MESSAGE_AT[1], first_frame)
    _heads_put(made, _MESSAGE_AT[2], last_frame)
    _heads_put(made, _MESSAGE_AT[3], time)
    _heads_put(made, _MESSAGE_AT[4], body_prefix)
    _heads_put(made, _MESSAGE_AT[5], body_length)
    _heads_put(made, _MESSAGE_AT[6], body_complete)
    _heads_put(made, _MESSAGE_AT[7], head_complete)
    return made


# Mutable per-connection state made at every connection's start (a `Connection`, its two
# `_Direction`s, the tracker's two `Side`s): slotted dataclasses whose generated ``__init__``
# costs ≈ 3.5-7 k machine instructions each (a call with keywords, a store per field, a
# default factory's call). `FreshMaker` fills the same slots with the same values in C: the
# given arguments, each default (the very object the constructor stores), and a new object
# from each default factory (a new bytearray or list; any other factory is called).
cdef int _GIVEN = 0, _DEFAULT = 1, _NEW_BYTEARRAY = 2, _NEW_LIST = 3, _FACTORY = 4


cdef class FreshMaker:
    """``cls(**dict(zip(names, args)))`` of a slotted dataclass ``cls`` without ``__init__``
    or ``__post_init__``, its other fields at their defaults: call it with the values of
    ``names``, positionally."""

    cdef object cls
    cdef Py_ssize_t count
    cdef Py_ssize_t given
    cdef Py_ssize_t at[24]
    cdef int kind[24]
    cdef list values  # per slot: the argument's index, the default, or the factory

    def __init__(self, cls, tuple names):
        import dataclasses
        cdef Py_ssize_t i
        fields = dataclasses.fields(cls)
        slots = cls.__slots__
        if hasattr(cls, "__post_init__") or len(fields) > 24 or (
                {f.name for f in fields} != set(slots) or not set(names) <= set(slots)):
            raise TypeError(f"{cls.__name__}: not a plain slotted dataclass of {names}")
        self.cls, self.count, self.given, self.values = cls, len(fields), len(names), []
        for i, f in enumerate(fields):
            descriptor = cls.__dict__[f.name]
            if not _heads_is_object_slot(descriptor):
                raise TypeError(f"{cls.__name__}.{f.name} is not an object slot")
            self.at[i] = _heads_slot_at(descriptor)
            if f.name in names:
                self.kind[i] = _GIVEN
                self.values.append(names.index(f.name))
            elif f.default is not dataclasses.MISSING:
                self.kind[i] = _DEFAULT
                self.values.append(f.default)
            elif f.default_factory is bytearray or f.default_factory is list:
                self.kind[i] = _NEW_BYTEARRAY if f.default_factory is bytearray else _NEW_LIST
                self.values.append(None)
            elif f.default_factory is not dataclasses.MISSING:
                self.kind[i] = _FACTORY
                self.values.append(f.default_factory)
            else:
                raise TypeError(f"{cls.__name__}.{f.name} has no default")

    def __call__(self, *args):
        cdef Py_ssize_t i
        cdef int kind
        cdef object made, value
        if len(args) != self.given:
            raise TypeError(f"{self.cls.__name__}: {self.given} arguments, not {len(args)}")
        made = _heads_alloc(self.cls)
        for i in range(self.count):
            kind = self.kind[i]
            value = self.values[i]
            if kind == _GIVEN:
                value = args[<Py_ssize_t>value]
            elif kind == _NEW_BYTEARRAY:
                value = bytearray()
            elif kind == _NEW_LIST:
                value = []
            elif kind == _FACTORY:
                value = value()
            _heads_put(made, self.at[i], value)
        return made
