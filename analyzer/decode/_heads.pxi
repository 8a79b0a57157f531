# The header lines of a plain HTTP head, compiled (`http.head._plain_headers`'s twin).
#
# A head that matched the plain pattern (`_PLAIN_REQUEST_HEAD`, `_PLAIN_RESPONSE_HEAD`) is split
# into its fields here: on the handshake-dense benchmark 6,933 heads of ≈ 7 fields cost
# ≈ 5 µs each in Python (a WebSocket request head of 9 fields 8.2 µs), a third of
# `parse_request_head`. Same values, same Header and Headers (equal, of equal hash, and the
# same look-up index); tests/test_http_head.py compares the two on every head of the test
# captures and on generated ones.

from cpython.unicode cimport PyUnicode_Substring

cdef extern from *:
    """
    #define _heads_is_1byte(s) (PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND)
    #define _heads_data(s) ((const unsigned char*)PyUnicode_1BYTE_DATA(s))
    #define _heads_ascii(n) PyUnicode_New((n), 127)
    #define _heads_write(s) ((unsigned char*)PyUnicode_1BYTE_DATA(s))
    """
    bint _heads_is_1byte(object s)
    const unsigned char* _heads_data(object s)
    object _heads_ascii(Py_ssize_t n)
    unsigned char* _heads_write(object s)

cdef object _Header = None
cdef object _indexed = None


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
    global _Header, _indexed
    cdef const unsigned char* p
    cdef Py_ssize_t n, pos, end, colon, start, stop
    cdef list fields
    cdef dict index
    cdef object name, value, made, key, values
    if not _heads_is_1byte(lines):
        from analyzer.http.head import _plain_headers
        return _plain_headers(lines)
    if _Header is None:
        from analyzer.http.message import Header, Headers
        _Header = Header
        _indexed = Headers.indexed
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
        made = _new_object(_Header)
        PyObject_GenericSetAttr(made, "name", name)
        PyObject_GenericSetAttr(made, "value", value)
        fields.append(made)
        key = _lowered(name, p + pos, colon - pos)
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
        pos = end + 2
    return _indexed(tuple(fields), index)
