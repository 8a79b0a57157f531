"""Keeps the compiled code of the methods `dataclasses` generates, as Python keeps .pyc files,
so the command line does not compile them again on every start.

Why: Python 3.11 writes each generated method (``__init__``, ``__repr__``, ``__eq__``,
``__hash__``, a frozen class's ``__setattr__``/``__delattr__``) as text and compiles it with
its own ``exec``: ≈ 0.6 M instructions a method, ≈ 3.7 M a class, ≈ 310 M of the ≈ 610 M a
``read`` costs before its first packet (benchmarks/README.md, "Start-up: dataclass methods
compiled once").

How: `dataclasses` calls ``exec(text, globals, namespace)`` from its module; `install` gives
that module a global ``exec`` (a module global shadows the builtin) that runs the code
compiled earlier from the same text, when this cache holds it, and otherwise the builtin
``exec`` itself, unchanged. The code is what ``exec`` would compile from that text (the key is
the whole text; `compile_like_exec` is the compile, the test compares both), and it runs
with the same globals and namespace, so the classes are the same. Nothing changes but where
the compiled code comes from.

The file lives in ``analyzer/__pycache__``, named with the interpreter's cache tag, and
starts with its bytecode magic number: another interpreter neither reads nor trusts it. It is
written by ``python -m analyzer.dataclass_cache`` (every dataclass of the package; the
benchmark runner does it with its byte-compiling) and at the end of a command line run that
compiled methods the file lacked, unless Python may not write bytecode
(``PYTHONDONTWRITEBYTECODE``, ``-B``), the rule .pyc files follow.
"""

from __future__ import annotations

import builtins
import contextlib
import marshal
import os
import sys
from importlib.util import MAGIC_NUMBER
from types import CodeType
from typing import Any

_DIRECTORY = os.path.join(os.path.dirname(__file__), "__pycache__")
PATH = os.path.join(_DIRECTORY, f"dataclass-methods.{sys.implementation.cache_tag}.marshal")
# A run adds what it compiled to what the file held; past this many texts (edits leave old
# ones behind) the file keeps only what the run used.
MAX_TEXTS = 4096

_codes: dict[str, CodeType] = {}
_used: set[str] = set()
_missed: list[str] = []


def compile_like_exec(text: str) -> CodeType:
    """The code ``exec(text, ...)`` in `dataclasses` compiles: file name ``<string>``, no
    ``from __future__`` flag (that module has none; ``dont_inherit`` keeps ours out)."""
    return compile(text, "<string>", "exec", dont_inherit=True)


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    if type(source) is str:
        code = _codes.get(source)
        if code is not None:
            _used.add(source)
            builtins.exec(code, globals, locals)
            return
        _missed.append(source)
    builtins.exec(source, globals, locals)


def install(path: str = PATH) -> bool:
    """Loads the file (if any) and makes `dataclasses` use it; False when this interpreter's
    `dataclasses` does not compile through ``exec`` in its module (then nothing changes)."""
    import dataclasses

    if vars(dataclasses).get("exec", _exec) is not _exec:
        return False  # someone else's hook: leave it alone
    if not _compiles_through_exec(dataclasses):
        return False
    _codes.update(_read(path))
    dataclasses.exec = _exec  # type: ignore[attr-defined]
    return True


def uninstall() -> None:
    import dataclasses

    if vars(dataclasses).get("exec") is _exec:
        del dataclasses.exec  # type: ignore[attr-defined]


def _compiles_through_exec(module: Any) -> bool:
    # 3.11 and 3.12 call exec in _create_fn; the name must resolve to the builtin.
    create = getattr(module, "_create_fn", None)
    return create is not None and "exec" in create.__code__.co_names


def _read(path: str) -> dict[str, CodeType]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return {}
    if not data.startswith(MAGIC_NUMBER):
        return {}
    try:
        codes = marshal.loads(memoryview(data)[len(MAGIC_NUMBER):])
    except (ValueError, EOFError, TypeError):
        return {}
    if not isinstance(codes, dict):
        return {}
    return {text: code for text, code in codes.items()
            if type(text) is str and type(code) is CodeType}


def save_if_new(path: str = PATH) -> bool:
    """At the end of a run: writes the file when this run compiled texts it lacked and Python
    may write bytecode. Never raises for a directory it cannot write."""
    if not _missed or sys.dont_write_bytecode:
        return False
    return _write(path)


def _write(path: str) -> bool:
    new = {text: compile_like_exec(text) for text in _missed}
    codes = dict(_codes)
    if len(codes) + len(new) > MAX_TEXTS:
        codes = {text: _codes[text] for text in _used}
    codes.update(new)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "wb") as file:
            file.write(MAGIC_NUMBER + marshal.dumps(codes))
        os.replace(temporary, path)  # readers see the old file or the new one, whole
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False
    _codes.update(new)
    _missed.clear()
    return True


def build(path: str = PATH) -> int:
    """Imports every module of the package with the cache empty and writes what their
    dataclasses compile (and only that); returns how many texts."""
    import importlib
    import pkgutil

    import analyzer

    _codes.clear()
    _used.clear()
    _missed.clear()
    install(path="")
    for module in pkgutil.walk_packages(analyzer.__path__, "analyzer."):
        if module.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional extra (dask, scapy) that is not installed
            continue
    count = len(_missed)
    _codes.clear()
    _used.clear()
    return count if _write(path) else 0


if __name__ == "__main__":
    texts = build()
    print(f"{PATH}: {texts} texts" if texts else f"{PATH}: not written")
