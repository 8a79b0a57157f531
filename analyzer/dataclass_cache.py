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

# By module (the ``__name__`` of the globals `dataclasses` passes): the code of its texts, kept
# marshalled until a class of that module is made, so a run loads only what it imports
# (unmarshalling every group cost ≈ 40 M instructions, a third of them for modules a plain
# `read` never imports).
_groups: dict[str | None, dict[str, CodeType] | bytes] = {}
_used: set[tuple[str | None, str]] = set()
_missed: list[tuple[str | None, str]] = []


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


def install(path: str = PATH) -> bool:
    """Reads the file (if any) and makes `dataclasses` use it; False when this interpreter's
    `dataclasses` does not compile through ``exec`` in its module (then nothing changes)."""
    import dataclasses

    if vars(dataclasses).get("exec", _exec) is not _exec:
        return False  # someone else's hook: leave it alone
    if not _compiles_through_exec(dataclasses):
        return False
    _groups.update(_read(path))
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


def _read(path: str) -> dict[str | None, bytes]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return {}
    if not data.startswith(MAGIC_NUMBER):
        return {}
    groups = _unmarshal(memoryview(data)[len(MAGIC_NUMBER):])
    if not isinstance(groups, dict):
        return {}
    return {module: group for module, group in groups.items()
            if (module is None or type(module) is str) and type(group) is bytes}


def _unmarshal(data: bytes | memoryview) -> object:
    try:
        return marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None


def _unmarshal_group(data: bytes) -> dict[str, CodeType]:
    codes = _unmarshal(data)
    if not isinstance(codes, dict):
        return {}
    return {text: code for text, code in codes.items()
            if type(text) is str and type(code) is CodeType}


def read_all(path: str = PATH) -> dict[str, CodeType]:
    """Every text the file holds with its code (for tests and inspection)."""
    codes: dict[str, CodeType] = {}
    for group in _read(path).values():
        codes.update(_unmarshal_group(group))
    return codes


def save_if_new(path: str = PATH) -> bool:
    """At the end of a run: writes the file when this run compiled texts it lacked and Python
    may write bytecode. Never raises for a directory it cannot write."""
    if not _missed or sys.dont_write_bytecode:
        return False
    return _write(path)


def _write(path: str) -> bool:
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
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "wb") as file:
            file.write(MAGIC_NUMBER + marshal.dumps(groups))
        os.replace(temporary, path)  # readers see the old file or the new one, whole
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return False
    _groups.update(fresh)
    _missed.clear()
    return True


def build(path: str = PATH) -> int:
    """Imports every module of the package with the cache empty and writes what their
    dataclasses compile (and only that); returns how many texts."""
    import importlib
    import pkgutil

    import analyzer

    _groups.clear()
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
    count = len(set(_missed))
    return count if _write(path) else 0


if __name__ == "__main__":
    texts = build()
    print(f"{PATH}: {texts} texts" if texts else f"{PATH}: not written")
