"""Keeps what Python compiles anew at every start of the command line, the code of the methods
`dataclasses` generates and the regular expressions' compiled form, as Python keeps .pyc files.

Why: Python 3.11 writes each generated method (``__init__``, ``__repr__``, ``__eq__``,
``__hash__``, a frozen class's ``__setattr__``/``__delattr__``) as text and compiles it with
its own ``exec``: ≈ 0.6 M instructions a method, ≈ 3.7 M a class, ≈ 310 M of the ≈ 610 M a
``read`` cost before its first packet; and `re` parses and compiles every pattern in Python
(≈ 0.7 M instructions a pattern, ≈ 47 M of what was left). benchmarks/README.md, "Start-up
compiled once".

How, methods: `dataclasses` calls ``exec(text, globals, namespace)`` from its module;
`install` gives that module a global ``exec`` (a module global shadows the builtin) that runs
the code compiled earlier from the same text, when the cache holds it, and otherwise the
builtin ``exec`` itself, unchanged. The code is what ``exec`` compiles from that text (the key
is the whole text; `compile_like_exec` is that compile), run with the same globals and
namespace, so the classes are the same.

How, patterns: `re` compiles a pattern it has not seen with ``re._compiler.compile``, which
parses it and writes the code ``_sre.compile`` takes; `install` replaces that function by one
that gives ``_sre.compile`` the code the cache holds for the same pattern and flags (it
validates it), and otherwise calls the original. Only on Python 3.11, where the test checks
that the compiled patterns are equal (code, flags, groups, names).

The tests compare every dataclass and pattern of the package built both ways
(tests/test_startup_cache.py). The files live in ``analyzer/__pycache__``, named with the
interpreter's cache tag, and start with its bytecode magic number: another interpreter
neither reads nor trusts them. They are written by ``python -m analyzer.startup_cache``
(everything the package's modules make at import; the benchmark runner does it with its
byte-compiling); the methods' file also at the end of a command line run that compiled texts
it lacked, unless Python may not write bytecode (``PYTHONDONTWRITEBYTECODE``, ``-B``), the
rule .pyc files follow.
"""

from __future__ import annotations

import _sre
import builtins
import contextlib
import marshal
import os
import sys
from importlib.util import MAGIC_NUMBER
from types import CodeType
from typing import Any

_DIRECTORY = os.path.join(os.path.dirname(__file__), "__pycache__")
_TAG = sys.implementation.cache_tag
METHODS = os.path.join(_DIRECTORY, f"dataclass-methods.{_TAG}.marshal")
PATTERNS = os.path.join(_DIRECTORY, f"re-patterns.{_TAG}.marshal")

# By module (the ``__name__`` of the globals `dataclasses` passes): the code of its texts, kept
# marshalled until a class of that module is made, so a run unmarshals only what it imports.
_groups: dict[str | None, dict[str, CodeType] | bytes] = {}
_used: set[tuple[str | None, str]] = set()
_missed: list[tuple[str | None, str]] = []

# (pattern, flags) -> the arguments of _sre.compile after the pattern: flags with the inline
# ones, code, groups - 1, name -> group, group -> name.
Compiled = tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]
_patterns: dict[tuple[str | bytes, int], Compiled] = {}
_patterns_missed: list[tuple[str | bytes, int]] = []
_patterns_used: set[tuple[str | bytes, int]] = set()
_plain_compile: Any = None
_recording = False  # misses are kept by `build` only (see save_if_new): a run keeps none


def install(methods: str = METHODS, patterns: str = PATTERNS) -> bool:
    """Reads the files (if any) and makes `dataclasses` and `re` use them; False when this
    interpreter's `dataclasses` does not compile through ``exec`` in its module (then nothing
    changes). The patterns' part only on Python 3.11 (see the module's docstring)."""
    import dataclasses

    if vars(dataclasses).get("exec", _exec) is not _exec:
        return False  # someone else's hook: leave it alone
    if not _compiles_through_exec(dataclasses):
        return False
    _groups.update(_read_groups(methods))
    dataclasses.exec = _exec  # type: ignore[attr-defined]
    _install_patterns(patterns)
    return True


def uninstall() -> None:
    import dataclasses
    from re import _compiler  # type: ignore[attr-defined]

    global _plain_compile
    if vars(dataclasses).get("exec") is _exec:
        del dataclasses.exec  # type: ignore[attr-defined]
    if _plain_compile is not None and _compiler.compile is _compile:
        _compiler.compile = _plain_compile
        _plain_compile = None


def save_if_new(methods: str = METHODS) -> bool:
    """At the end of a run: writes the methods' file when this run compiled texts it lacked
    and Python may write bytecode. Never raises for a directory it cannot write. Patterns are
    written by `build` only: a run may compile patterns made of what it read (a filter, a
    name), which have no place on disk and would pile up."""
    if sys.dont_write_bytecode or not _missed:
        return False
    return _write_methods(methods)


# Modules of other packages that a run imports only when it needs them, whose import
# compiles patterns too: `cryptography.x509` (tls/handshake.py `certificate_info`, a decrypted
# session's certificate fields), whose RFC 4514 name parser compiles five patterns with
# Unicode classes at import, ≈ 5 ms of every run that reads a certificate.
IMPORTED_LATER = ("cryptography.x509",)


def build(methods: str = METHODS, patterns: str = PATTERNS) -> tuple[int, int]:
    """Imports every module of the package with the caches empty and writes what they make
    (and only that); returns how many texts and patterns were written."""
    import importlib
    import pkgutil

    import analyzer

    _groups.clear()
    _used.clear()
    _missed.clear()
    _patterns.clear()
    _patterns_missed.clear()
    install(methods="", patterns="")
    global _recording
    _recording = True
    try:
        names = [module.name for module in pkgutil.walk_packages(analyzer.__path__, "analyzer.")
                 if not module.name.endswith("__main__")]
        for name in [*names, *IMPORTED_LATER]:
            try:
                importlib.import_module(name)
            except Exception:  # an optional extra (dask, scapy) missing or failing to load
                continue
    finally:
        _recording = False
    texts, compiled = len(set(_missed)), len(set(_patterns_missed))
    return (texts if _write_methods(methods) else 0,
            compiled if _write_patterns(patterns) else 0)


# --- dataclass methods ---------------------------------------------------------------------

def compile_like_exec(text: str) -> CodeType:
    """The code ``exec(text, ...)`` in `dataclasses` compiles: file name ``<string>``, no
    ``from __future__`` flag (that module has none; ``dont_inherit`` keeps ours out)."""
    return compile(text, "<string>", "exec", dont_inherit=True)


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    if type(source) is str:
        module = globals.get("__name__") if type(globals) is dict else None
        group = _groups.get(module)
        if isinstance(group, bytes):
            group = _groups[module] = _unmarshal_group(group)
        if group is not None:
            code = group.get(source)
            if code is not None:
                _used.add((module, source))
                builtins.exec(code, globals, locals)
                return
        _missed.append((module, source))
    builtins.exec(source, globals, locals)


def _compiles_through_exec(module: Any) -> bool:
    # 3.11 and 3.12 call exec in _create_fn, a method's text at a time; 3.13 in
    # _FuncBuilder.add_fns_to_class, a class's methods in one text: the name must resolve to
    # the builtin (the module's global `exec` then shadows it).
    create = getattr(module, "_create_fn", None)
    if create is None:
        create = getattr(getattr(module, "_FuncBuilder", None), "add_fns_to_class", None)
    return create is not None and "exec" in create.__code__.co_names


def _read_groups(path: str) -> dict[str | None, bytes]:
    groups = _read(path)
    if not isinstance(groups, dict):
        return {}
    return {module: group for module, group in groups.items()
            if (module is None or type(module) is str) and type(group) is bytes}


def _unmarshal_group(data: bytes) -> dict[str, CodeType]:
    codes = _unmarshal(data)
    if not isinstance(codes, dict):
        return {}
    return {text: code for text, code in codes.items()
            if type(text) is str and type(code) is CodeType}


def read_methods(path: str = METHODS) -> dict[str, CodeType]:
    """Every text the file holds with its code (for tests and inspection)."""
    codes: dict[str, CodeType] = {}
    for group in _read_groups(path).values():
        codes.update(_unmarshal_group(group))
    return codes


def _write_methods(path: str) -> bool:
    # A module with a miss gets what this run made of it, and only that: every dataclass of
    # a module is made when it is imported, so the texts an edit left behind go.
    fresh: dict[str | None, dict[str, CodeType]] = {}
    for module, text in _missed:
        fresh.setdefault(module, {})[text] = compile_like_exec(text)
    for module, text in _used:
        group = _groups.get(module)
        if module in fresh and isinstance(group, dict):
            fresh[module][text] = group[text]
    groups: dict[str | None, bytes] = {
        module: group if type(group) is bytes else marshal.dumps(group)
        for module, group in _groups.items() if module not in fresh}
    groups.update((module, marshal.dumps(codes)) for module, codes in fresh.items())
    if not _write(path, groups):
        return False
    _groups.update(fresh)
    _missed.clear()
    return True


# --- regular expressions -------------------------------------------------------------------

def _install_patterns(path: str) -> None:
    global _plain_compile
    if sys.version_info[:2] != (3, 11) or _plain_compile is not None:
        return
    from re import _compiler  # type: ignore[attr-defined]

    _patterns.update(_read_patterns(path))
    _plain_compile = _compiler.compile
    _compiler.compile = _compile


def _compile(p: Any, flags: int = 0) -> Any:
    if type(p) in (str, bytes) and not flags & _DEBUG:
        key = (p, int(flags))
        compiled = _patterns.get(key)
        if compiled is not None:
            try:
                pattern = _sre.compile(p, *compiled)
                _patterns_used.add(key)
                return pattern
            except (RuntimeError, TypeError, ValueError, OverflowError):  # not valid code
                _patterns.pop(key, None)
        if _recording:
            _patterns_missed.append(key)
    return _plain_compile(p, flags)


_DEBUG = 128  # re.DEBUG: it prints while compiling, so it always compiles
_SRE_VERSION = (_sre.MAGIC, _sre.CODESIZE, sys.version)


def compile_pattern(pattern: str | bytes, flags: int) -> Compiled:
    """What ``re._compiler.compile`` passes to ``_sre.compile`` for a pattern, as plain data
    (its code holds named int constants, which marshal does not take)."""
    from re import _compiler, _parser  # type: ignore[attr-defined]

    parsed = _parser.parse(pattern, flags)
    code = [int(op) for op in _compiler._code(parsed, flags)]
    names = dict(parsed.state.groupdict)
    by_number: list[str | None] = [None] * parsed.state.groups
    for name, number in names.items():
        by_number[number] = name
    return (int(flags | parsed.state.flags), code, parsed.state.groups - 1, names,
            tuple(by_number))


def _read_patterns(path: str) -> dict[tuple[str | bytes, int], Compiled]:
    content = _read(path)
    # the regular expression engine's own version too: its code could change within 3.11.x
    if not (type(content) is tuple and len(content) == 2 and content[0] == _SRE_VERSION):
        return {}
    patterns = content[1]
    if not isinstance(patterns, dict):
        return {}
    return {key: compiled for key, compiled in patterns.items()
            if type(key) is tuple and len(key) == 2 and type(key[0]) in (str, bytes)
            and type(key[1]) is int and type(compiled) is tuple and len(compiled) == 5}


def read_patterns(path: str = PATTERNS) -> dict[tuple[str | bytes, int], Compiled]:
    """Every pattern the file holds (for tests and inspection)."""
    return _read_patterns(path)


def _write_patterns(path: str) -> bool:
    patterns = dict(_patterns)
    for key in _patterns_missed:
        try:
            patterns[key] = compile_pattern(*key)
        except Exception:  # a pattern `re` refused: nothing to keep
            continue
    if not _write(path, (_SRE_VERSION, patterns)):
        return False
    _patterns.update(patterns)
    _patterns_missed.clear()
    return True


# --- files ---------------------------------------------------------------------------------

def _read(path: str) -> object:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return None
    if not data.startswith(MAGIC_NUMBER):
        return None
    return _unmarshal(memoryview(data)[len(MAGIC_NUMBER):])


def _unmarshal(data: bytes | memoryview) -> object:
    try:
        return marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None


def _write(path: str, content: Any) -> bool:
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "wb") as file:
            file.write(MAGIC_NUMBER + marshal.dumps(content))
        os.replace(temporary, path)  # readers see the old file or the new one, whole
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False
    return True


if __name__ == "__main__":
    texts, compiled = build()
    print(f"{METHODS}: {texts} texts; {PATTERNS}: {compiled} patterns")
