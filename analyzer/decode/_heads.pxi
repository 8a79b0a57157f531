# The header lines of a plain HTTP head, compiled (`http.head._plain_headers`'s twin).
#
# A head that matched the plain pattern (`_PLAIN_REQUEST_HEAD`, `_PLAIN_RESPONSE_HEAD`) is split
# into its fields here: on the handshake-dense benchmark 6,933 heads of ≈ 7 fields cost
# ≈ 5 µs each in Python (a WebSocket request head of 9 fields 8.2 µs), a third of
# `parse_request_head`. Same values, same Header and Headers (equal, of equal hash, and the
# same look-up index); tests/test_http_head.py compares the two on every head of the test
# captures and on generated ones.

from cpython.bytes cimport PyBytes_AS_STRING
from cpython.unicode cimport PyUnicode_DecodeLatin1, PyUnicode_Substring

cdef extern from *:
    """
    #include <structmember.h>
    #define _heads_is_1byte(s) (PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND)
    #define _heads_data(s) ((const unsigned char*)PyUnicode_1BYTE_DATA(s))
    #define _heads_ascii(n) PyUnicode_New((n), 127)
    #define _heads_write(s) ((unsigned char*)PyUnicode_1BYTE_DATA(s))
    /* a slot of a __slots__ class: its place in the object, read from its member descriptor */
    #define _heads_is_object_slot(d) (Py_IS_TYPE((d), &PyMemberDescr_Type) && \
        ((PyMemberDescrObject*)(d))->d_member->type == T_OBJECT_EX)
    #define _heads_slot_at(d) (((PyMemberDescrObject*)(d))->d_member->offset)
    static PyObject* _heads_alloc(PyObject* t) {
        return ((PyTypeObject*)t)->tp_alloc((PyTypeObject*)t, 0);
    }
    static void _heads_put(PyObject* o, Py_ssize_t at, PyObject* v) {
        Py_INCREF(v);
        *(PyObject**)((char*)o + at) = v;
    }
    """
    bint _heads_is_1byte(object s)
    const unsigned char* _heads_data(object s)
    object _heads_ascii(Py_ssize_t n)
    unsigned char* _heads_write(object s)
    bint _heads_is_object_slot(object d)
    Py_ssize_t _heads_slot_at(object d)
    object _heads_alloc(object t)
    void _heads_put(object o, Py_ssize_t at, object v)

# The values a head is made of (http/message.py), built here the way `message.header` builds a
# Header: an empty object of the class, its slots filled, without the frozen dataclass's
# ``__init__`` (which stores each field through ``object.__setattr__``: a RequestHead's
# ≈ 8 k machine instructions, a Header's ≈ 2 k). The slots' places are read once from the
# classes' own member descriptors; a class whose field is not a plain object slot (a changed
# message.py) makes `_heads_classes` raise rather than write where it should not.
cdef object _Header = None
cdef object _Headers = None
cdef object _RequestHead = None
cdef object _ResponseHead = None
cdef Py_ssize_t _HEADER_AT[2]  # name, value
cdef Py_ssize_t _HEADERS_AT[2]  # fields, _index
cdef Py_ssize_t _HEAD_AT[6]  # RequestHead: method, target, version, headers, raw, problems
cdef Py_ssize_t _RESPONSE_AT[6]  # ResponseHead: version, status, reason, headers, raw, problems


cdef int _slots_of(object cls, tuple names, Py_ssize_t* at) except -1:
    cdef Py_ssize_t i
    if len(names) != len(cls.__slots__) or set(names) != set(cls.__slots__):
        raise TypeError(f"{cls.__name__} has the slots {cls.__slots__}, not {names}")
    for i in range(len(names)):
        descriptor = cls.__dict__[names[i]]
        if not _heads_is_object_slot(descriptor):
            raise TypeError(f"{cls.__name__}.{names[i]} is not an object slot")
        at[i] = _heads_slot_at(descriptor)
    return 0


cdef int _heads_classes() except -1:
    global _Header, _Headers, _RequestHead, _ResponseHead
    from analyzer.http.message import Header, Headers, RequestHead, ResponseHead
    _slots_of(Header, ("name", "value"), _HEADER_AT)
    _slots_of(Headers, ("fields", "_index"), _HEADERS_AT)
    _slots_of(RequestHead, ("method", "target", "version", "headers", "raw", "problems"),
              _HEAD_AT)
    _slots_of(ResponseHead, ("version", "status", "reason", "headers", "raw", "problems"),
              _RESPONSE_AT)
    _Header, _Headers, _RequestHead, _ResponseHead = Header, Headers, RequestHead, ResponseHead
    return 0


cdef object _lowered(object name, const unsigned char* p, Py_ssize_t n):
    """``name.lower()`` (``name`` is the ``n`` characters at ``p``): the name itself when it
    has no upper-case ASCII letter, lowered here when it is ASCII (a token's usual case)."""
    cdef Py_ssize_t i
    cdef bint upper = False
    cdef object lowered
    cdef unsigned char* out
    for i in range(n):
        if p[i] >= 0x80:
            return name.lower()  # Unicode's rules for the Latin-1 letters
        if 0x41 <= p[i] <= 0x5A:
            upper = True
    if not upper:
        return name
    lowered = _heads_ascii(n)
    out = _heads_write(lowered)
    for i in range(n):
        out[i] = p[i] + 32 if 0x41 <= p[i] <= 0x5A else p[i]
    return lowered


def plain_headers(str lines):
    """`http.head._plain_headers` of ``lines`` (the fields of a plain head, each line ended by
    CRLF); a ``lines`` not stored one byte a character (a head decoded from latin-1 always
    is) goes to that Python function."""
    cdef const unsigned char* p
    cdef Py_ssize_t n, pos, end, colon, start, stop
    cdef list fields
    cdef dict index
    cdef object name, value, made, key, values
    if not _heads_is_1byte(lines):
        from analyzer.http.head import _plain_headers
        return _plain_headers(lines)
    if _Header is None:
        _heads_classes()
    p = _heads_data(lines)
    n = len(lines)
    fields = []
    index = {}
    pos = 0
    while True:
        # the next CRLF: the text after the last one is not a line (``split("\r\n")[:-1]``)
        end = pos
        while end + 1 < n and not (p[end] == 13 and p[end + 1] == 10):
            end += 1
        if end + 1 >= n:
            break
        # ``line.partition(":")``
        colon = pos
        while colon < end and p[colon] != 58:
            colon += 1
        name = PyUnicode_Substring(lines, pos, colon)
        # ``value.strip(" \t")``
        start = colon + 1 if colon < end else end
        stop = end
        while start < stop and (p[start] == 32 or p[start] == 9):
            start += 1
        while stop > start and (p[stop - 1] == 32 or p[stop - 1] == 9):
            stop -= 1
        value = PyUnicode_Substring(lines, start, stop)
        made = _heads_alloc(_Header)
        _heads_put(made, _HEADER_AT[0], name)
        _heads_put(made, _HEADER_AT[1], value)
        fields.append(made)
        key = _lowered(name, p + pos, colon - pos)
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
        pos = end + 2
    made = _heads_alloc(_Headers)  # `Headers.indexed(tuple(fields), index)`
    _heads_put(made, _HEADERS_AT[0], tuple(fields))
    _heads_put(made, _HEADERS_AT[1], index)
    return made


# --- the plain patterns themselves (`_PLAIN_REQUEST_HEAD`, `_PLAIN_RESPONSE_HEAD`) -------------
# The parsers matched each head against its plain pattern (≈ 3.3 µs for a WebSocket request
# head), then split its field lines; here one pass does both. The patterns are deterministic
# (a token never holds SP or a colon, a target never SP, a text never CR or LF), so a walk
# that fails where the pattern cannot go on gives the pattern's answer.

cdef bint _TCHARS[256]  # RFC 9110 §5.6.2 tchar (`http.head._TCHAR`)


cdef void _tchars() noexcept:
    cdef const unsigned char* chars = (
        b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    cdef Py_ssize_t i = 0
    for i in range(256):
        _TCHARS[i] = False
    i = 0
    while chars[i]:
        _TCHARS[chars[i]] = True
        i += 1


_tchars()


cdef inline bint _text_char(unsigned char c) noexcept nogil:
    """`_PLAIN_TEXT`'s characters: not a CTL (HTAB allowed), so neither CR nor LF."""
    return c == 9 or (c >= 0x20 and c != 0x7F)


cdef inline Py_ssize_t _token_end(const unsigned char* p, Py_ssize_t pos,
                                  Py_ssize_t n) noexcept nogil:
    while pos < n and _TCHARS[p[pos]]:
        pos += 1
    return pos


cdef inline Py_ssize_t _version_end(const unsigned char* p, Py_ssize_t pos,
                                    Py_ssize_t n) noexcept nogil:
    """The end of ``HTTP/[0-9].[0-9]`` at ``pos``, or -1."""
    if (pos + 8 <= n and p[pos] == 72 and p[pos + 1] == 84 and p[pos + 2] == 84
            and p[pos + 3] == 80 and p[pos + 4] == 47 and 48 <= p[pos + 5] <= 57
            and p[pos + 6] == 46 and 48 <= p[pos + 7] <= 57):
        return pos + 8
    return -1


cdef inline bint _crlf(const unsigned char* p, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    return pos + 1 < n and p[pos] == 13 and p[pos + 1] == 10


cdef Py_ssize_t _fields_end(const unsigned char* p, Py_ssize_t pos,
                            Py_ssize_t n) noexcept nogil:
    """`_PLAIN_FIELDS` from ``pos``: the end of the field lines (where the empty line's CRLF
    starts), or -1 when they are not plain."""
    cdef Py_ssize_t name
    while not _crlf(p, pos, n):
        name = pos
        pos = _token_end(p, pos, n)
        if pos == name or pos >= n or p[pos] != 58:
            return -1
        pos += 1
        while pos < n and _text_char(p[pos]):
            pos += 1
        if not _crlf(p, pos, n):
            return -1
        pos += 2
    return pos


cdef Py_ssize_t _request_line(const unsigned char* p, Py_ssize_t n,
                              Py_ssize_t* at) noexcept nogil:
    """`_PLAIN_REQUEST_HEAD` at the start of ``p``: the ends of the method, the target, the
    version and the field lines in ``at`` (0 when it matches), else -1."""
    cdef Py_ssize_t method, target, version, fields, end
    method = _token_end(p, 0, n)
    if method == 0 or method >= n or p[method] != 32:
        return -1
    target = method + 1
    while target < n and p[target] > 32 and p[target] != 0x7F:
        target += 1
    if target == method + 1 or target >= n or p[target] != 32:
        return -1
    version = _version_end(p, target + 1, n)
    if version < 0 or not _crlf(p, version, n):
        return -1
    fields = version + 2
    end = _fields_end(p, fields, n)
    if end < 0:
        return -1
    at[0], at[1], at[2], at[3] = method, target, version, end
    return 0


cdef Py_ssize_t _status_line(const unsigned char* p, Py_ssize_t n,
                             Py_ssize_t* at) noexcept nogil:
    """`_PLAIN_RESPONSE_HEAD` at the start of ``p``: the ends of the version, the code, the
    reason phrase (-1 without the SP after the code) and the field lines in ``at`` (0 when
    it matches), else -1."""
    cdef Py_ssize_t version, reason, fields, end, reason_end
    version = _version_end(p, 0, n)
    if (version < 0 or version + 4 > n or p[version] != 32 or not 49 <= p[version + 1] <= 53
            or not 48 <= p[version + 2] <= 57 or not 48 <= p[version + 3] <= 57):
        return -1
    reason = version + 4
    if reason < n and p[reason] == 32:  # `(?: (?P<reason>text))?`
        fields = reason + 1
        while fields < n and _text_char(p[fields]):
            fields += 1
        if not _crlf(p, fields, n):
            return -1
        reason_end = fields
    else:
        fields = reason
        if not _crlf(p, fields, n):
            return -1
        reason_end = -1
    fields += 2
    end = _fields_end(p, fields, n)
    if end < 0:
        return -1
    at[0], at[1], at[2], at[3] = version, reason, reason_end, end
    return 0


def plain_request(str text):
    """`http.head._plain_request` (its twin): ``(method, target, version, Headers)`` of a
    head that `_PLAIN_REQUEST_HEAD` matches at the start of ``text``, else None."""
    cdef Py_ssize_t at[4]
    if not _heads_is_1byte(text):
        from analyzer.http.head import _plain_request
        return _plain_request(text)
    if _request_line(_heads_data(text), len(text), at) < 0:
        return None
    return (PyUnicode_Substring(text, 0, at[0]), PyUnicode_Substring(text, at[0] + 1, at[1]),
            PyUnicode_Substring(text, at[1] + 1, at[2]),
            plain_headers(PyUnicode_Substring(text, at[2] + 2, at[3])))


def plain_response(str text):
    """`http.head._plain_response` (its twin): ``(version, code, reason, Headers)`` of a head
    that `_PLAIN_RESPONSE_HEAD` matches at the start of ``text`` (reason None without the SP
    after the code), else None."""
    cdef Py_ssize_t at[4]
    if not _heads_is_1byte(text):
        from analyzer.http.head import _plain_response
        return _plain_response(text)
    if _status_line(_heads_data(text), len(text), at) < 0:
        return None
    return (PyUnicode_Substring(text, 0, at[0]), PyUnicode_Substring(text, at[0] + 1, at[1]),
            PyUnicode_Substring(text, at[1] + 1, at[2]) if at[2] >= 0 else None,
            plain_headers(PyUnicode_Substring(text, at[2] + 2 if at[2] >= 0 else at[1] + 2,
                                              at[3])))


# --- whole heads: the parsers' plain case (`http.head._plain_request_head`, `_plain_response_head`)
# The head decoded, matched and split as above, and its RequestHead or ResponseHead made here
# too (see `_heads_classes`): what `parse_request_head` made of `plain_request`'s parts.

cdef object _head_bytes(object raw):
    """``bytes(raw)``: the head itself when it is bytes already (the tracker's usual case)."""
    return raw if type(raw) is bytes else bytes(raw)


cdef object _request_head(object text, object raw, Py_ssize_t* at):
    """The RequestHead of the plain head in ``text`` (``at``: `_request_line`'s ends)."""
    cdef object made = _heads_alloc(_RequestHead)
    _heads_put(made, _HEAD_AT[0], PyUnicode_Substring(text, 0, at[0]))
    _heads_put(made, _HEAD_AT[1], PyUnicode_Substring(text, at[0] + 1, at[1]))
    _heads_put(made, _HEAD_AT[2], PyUnicode_Substring(text, at[1] + 1, at[2]))
    _heads_put(made, _HEAD_AT[3], plain_headers(PyUnicode_Substring(text, at[2] + 2, at[3])))
    _heads_put(made, _HEAD_AT[4], raw)
    _heads_put(made, _HEAD_AT[5], ())
    return made


cdef object _response_head(object text, object raw, Py_ssize_t* at):
    """The ResponseHead of the plain head in ``text`` (``at``: `_status_line`'s ends)."""
    cdef Py_ssize_t start, stop
    cdef const unsigned char* p = _heads_data(text)
    cdef object made = _heads_alloc(_ResponseHead)
    _heads_put(made, _RESPONSE_AT[0], PyUnicode_Substring(text, 0, at[0]))
    _heads_put(made, _RESPONSE_AT[1],
               (p[at[0] + 1] - 48) * 100 + (p[at[0] + 2] - 48) * 10 + p[at[0] + 3] - 48)
    if at[2] >= 0:  # ``reason.strip(" \t")``
        start, stop = at[1] + 1, at[2]
        while start < stop and (p[start] == 32 or p[start] == 9):
            start += 1
        while stop > start and (p[stop - 1] == 32 or p[stop - 1] == 9):
            stop -= 1
        _heads_put(made, _RESPONSE_AT[2], PyUnicode_Substring(text, start, stop))
        start = at[2] + 2
    else:
        _heads_put(made, _RESPONSE_AT[2], "")
        start = at[1] + 2
    _heads_put(made, _RESPONSE_AT[3], plain_headers(PyUnicode_Substring(text, start, at[3])))
    _heads_put(made, _RESPONSE_AT[4], raw)
    _heads_put(made, _RESPONSE_AT[5], ())
    return made


cdef object _head_at(bytes data, bint request):
    """``(head, end)`` of the plain head at the start of ``data``, the head's bytes being
    ``data[:end]`` (what the tracker's `_take_head` would have cut: in a plain head every LF
    ends a non-empty line until the empty one, so the first empty line is its end), else
    None. The bytes are walked as they are and only the head is decoded."""
    cdef Py_ssize_t at[4]
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = len(data), end
    if _Header is None:
        _heads_classes()
    if (_request_line(p, n, at) if request else _status_line(p, n, at)) < 0:
        return None
    end = at[3] + 2
    text = PyUnicode_DecodeLatin1(<const char*>p, end, NULL)
    raw = data if end == n else PyBytes_FromStringAndSize(<const char*>p, end)
    return (_request_head(text, raw, at) if request else _response_head(text, raw, at)), end


def plain_request_head_at(data):
    """`http.head._plain_request_head_at` (its twin): ``(RequestHead, end)`` of a plain
    request head at the start of ``data``, else None."""
    if type(data) is not bytes:
        from analyzer.http.head import _plain_request_head_at
        return _plain_request_head_at(data)
    return _head_at(data, True)


def plain_response_head_at(data):
    """`http.head._plain_response_head_at` (its twin): ``(ResponseHead, end)`` of a plain
    response head at the start of ``data``, else None."""
    if type(data) is not bytes:
        from analyzer.http.head import _plain_response_head_at
        return _plain_response_head_at(data)
    return _head_at(data, False)


def plain_request_head(raw):
    """`http.head._plain_request_head` (its twin): the RequestHead of a head in the plain
    shape, else None (the parser then walks it)."""
    cdef Py_ssize_t at[4]
    cdef object text = raw.decode("latin-1")
    if _Header is None:
        _heads_classes()
    if _request_line(_heads_data(text), len(text), at) < 0:
        return None
    return _request_head(text, _head_bytes(raw), at)


def plain_response_head(raw):
    """`http.head._plain_response_head` (its twin): the ResponseHead of a head in the plain
    shape, else None (the parser then walks it)."""
    cdef Py_ssize_t at[4]
    cdef object text = raw.decode("latin-1")
    if _Header is None:
        _heads_classes()
    if _status_line(_heads_data(text), len(text), at) < 0:
        return None
    return _response_head(text, _head_bytes(raw), at)
