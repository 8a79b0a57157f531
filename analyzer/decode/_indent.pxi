# The JSON report's indentation, compiled (`report.render.json_attempt`): compact JSON text as
# ``json.dumps`` writes it (", " and ": " between items) made into the text
# ``json.dumps(value, indent=2)`` writes for the same value, each line after the first
# starting with ``indent`` (a newline, then the spaces of the level it sits in).
#
# Why: an attempt of the JSON report was its fields as a dict (`attempt_fields`, ≈ 50 µs for a
# refused handshake) indented in Python (`indented_json`, ≈ 60 µs); the JSONL line already
# writes the same fields as compact text in ≈ 20 µs (report/jsonl.py), and only its layout
# differs. Strings are passed over whole (a comma or brace in one is text), escapes included:
# ``ensure_ascii`` text has no raw newline in a string. tests/test_fields.py compares every
# bundled attempt with ``json.dumps(attempt_fields(d), indent=2)``, and random documents with
# ``json.dumps(value, indent=2)``.

cdef extern from *:
    """
    #define _indent_is_ascii(s) PyUnicode_IS_ASCII(s)
    #define _indent_data(s) ((const char*)PyUnicode_1BYTE_DATA(s))
    #define _indent_new(n) PyUnicode_New((n), 127)
    #define _indent_write(s) ((char*)PyUnicode_1BYTE_DATA(s))
    """
    bint _indent_is_ascii(object s)
    const char* _indent_data(object s)
    object _indent_new(Py_ssize_t n)
    char* _indent_write(object s)


cdef Py_ssize_t _indent_pass(const char* text, Py_ssize_t n, const char* indent,
                             Py_ssize_t indent_length, char* out) except -2:
    """The indented text's length, written to ``out`` unless it is NULL; -1 when ``text`` is
    not compact JSON as json.dumps writes it (then the caller indents another way)."""
    cdef Py_ssize_t i = 0, o = 0, depth = 0
    cdef char c
    cdef bint in_string = False
    while i < n:
        c = text[i]
        if in_string:
            if out != NULL:
                out[o] = c
            o += 1
            if c == b'\\':
                i += 1
                if i >= n:
                    return -1
                if out != NULL:
                    out[o] = text[i]
                o += 1
            elif c == b'"':
                in_string = False
            i += 1
            continue
        if c == b'"':
            in_string = True
        elif c == b'{' or c == b'[':
            if i + 1 < n and ((c == b'{' and text[i + 1] == b'}')
                              or (c == b'[' and text[i + 1] == b']')):
                if out != NULL:
                    out[o] = c
                    out[o + 1] = text[i + 1]
                o += 2
                i += 2
                continue
            depth += 1
            if out != NULL:
                out[o] = c
            o += 1
            o = _indent_line(out, o, indent, indent_length, depth)
            i += 1
            continue
        elif c == b'}' or c == b']':
            depth -= 1
            if depth < 0:
                return -1
            o = _indent_line(out, o, indent, indent_length, depth)
        elif c == b',':
            if i + 1 >= n or text[i + 1] != b' ':
                return -1
            if out != NULL:
                out[o] = c
            o += 1
            o = _indent_line(out, o, indent, indent_length, depth)
            i += 2
            continue
        elif c == b'\n':
            return -1
        if out != NULL:
            out[o] = c
        o += 1
        i += 1
    if in_string or depth:
        return -1
    return o


cdef inline Py_ssize_t _indent_line(char* out, Py_ssize_t o, const char* indent,
                                    Py_ssize_t indent_length, Py_ssize_t depth):
    """A new line at ``depth``: ``indent``, then two spaces a level."""
    cdef Py_ssize_t k
    if out != NULL:
        memcpy(out + o, indent, indent_length)
        for k in range(2 * depth):
            out[o + indent_length + k] = b' '
    return o + indent_length + 2 * depth


def indent_json(str text, str indent):
    """``text`` (compact JSON, ASCII, as json.dumps writes it) laid out as json.dumps writes
    it with ``indent=2``, every line after the first starting with ``indent``; None when it is
    not such text."""
    cdef Py_ssize_t n, length
    if not (_indent_is_ascii(text) and _indent_is_ascii(indent)):
        return None
    n = len(text)
    length = _indent_pass(_indent_data(text), n, _indent_data(indent), len(indent), NULL)
    if length < 0:
        return None
    out = _indent_new(length)
    _indent_pass(_indent_data(text), n, _indent_data(indent), len(indent), _indent_write(out))
    return out
