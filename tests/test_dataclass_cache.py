"""The cache of dataclass methods' code (analyzer/dataclass_cache.py): every dataclass of the
package gets the same methods with it as without it, and a bad file changes nothing."""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer import dataclass_cache

ROOT = Path(__file__).resolve().parent.parent

# Imports every module of the package (optional extras skipped) and prints, for every
# dataclass it defines, everything about the methods `dataclasses` generated: their code
# (recursively: bytecode, constants, names, flags, file name, lines), annotations, defaults
# and qualified names. With "cached" the cache at argv[2] is installed first, as
# `python -m analyzer` does; the counts of texts it served and missed come last.
_DIGEST = r"""
import dataclasses, importlib, json, pkgutil, re, sys, types

mode, path = sys.argv[1], sys.argv[2]
if mode == "cached":
    from analyzer import dataclass_cache
    assert dataclass_cache.install(path)
import analyzer

def code_facts(code):
    return [code.co_name, code.co_qualname, code.co_filename, code.co_firstlineno,
            code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
            code.co_flags, code.co_code.hex(), code.co_linetable.hex(),
            code.co_exceptiontable.hex(), list(code.co_names), list(code.co_varnames),
            list(code.co_freevars), list(code.co_cellvars),
            [code_facts(c) if isinstance(c, types.CodeType) else repr(c)
             for c in code.co_consts]]

def text(value):  # a repr without the addresses that differ from one process to the next
    return re.sub(" at 0x[0-9a-f]+", "", repr(value))

def function_facts(function):
    # __repr__ is dataclasses' recursion guard around the generated one, in its closure
    if not isinstance(function, types.FunctionType):
        return text(function)
    return [code_facts(function.__code__), function.__qualname__,
            text(function.__annotations__), text(function.__defaults__),
            text(function.__kwdefaults__), function.__globals__.get("__name__"),
            [function_facts(c.cell_contents) for c in function.__closure__ or ()]]

METHODS = ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__",
           "__lt__", "__le__", "__gt__", "__ge__")
out = {}
for info in pkgutil.walk_packages(analyzer.__path__, "analyzer."):
    if info.name.endswith("__main__"):
        continue
    try:
        module = importlib.import_module(info.name)
    except ImportError:
        continue
    for name, value in sorted(vars(module).items()):
        if not (isinstance(value, type) and dataclasses.is_dataclass(value)
                and value.__module__ == module.__name__):
            continue
        facts = {}
        for method in METHODS:
            facts[method] = function_facts(value.__dict__.get(method))
        out[f"{module.__name__}.{name}"] = facts
if mode == "cached":
    out["(served, missed)"] = [len(dataclass_cache._used), len(dataclass_cache._missed)]
print(json.dumps(out, sort_keys=True))
"""


def _digest(mode: str, path: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _DIGEST, mode, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def _build(path: Path) -> int:
    script = ("import sys; from analyzer import dataclass_cache; "
              "print(dataclass_cache.build(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout)


def test_every_dataclass_gets_the_same_methods_from_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "methods.marshal"
    texts = _build(path)
    assert texts > 300  # the package's ≈ 90 dataclasses, ≈ 5 methods each
    plain = _digest("plain", path)
    cached = _digest("cached", path)
    served, missed = cached.pop("(served, missed)")  # type: ignore[misc]
    assert missed == 0 and served > 300  # the cache did serve them
    assert len(plain) > 80
    assert cached == plain


def test_cached_code_is_what_exec_compiles(tmp_path: Path) -> None:
    path = tmp_path / "methods.marshal"
    _build(path)
    codes = dataclass_cache.read_all(str(path))
    assert codes
    for text, code in codes.items():
        assert code == dataclass_cache.compile_like_exec(text)
        namespace: dict[str, object] = {}
        _exec_plain(text, namespace)
        plain = namespace["__create_fn__"].__code__  # type: ignore[attr-defined]
        inner = [c for c in code.co_consts if isinstance(c, type(code))]
        assert inner == [plain]


# exec from a module without `from __future__ import annotations`, as `dataclasses` calls it
# (this module has it, and exec of a text inherits the caller's future flags).
_exec_plain = eval(compile("lambda text, ns: exec(text, {}, ns)", "<test>", "eval",
                           dont_inherit=True))


def _with_magic(groups: object) -> bytes:
    from importlib.util import MAGIC_NUMBER

    return MAGIC_NUMBER + marshal.dumps(groups)


@pytest.mark.parametrize("content", [
    None, b"", b"junk", b"\x00\x00\r\n" + marshal.dumps({"m": marshal.dumps({"a": 1})}),
    _with_magic([1, 2]), _with_magic({"m": b"not marshal"}), _with_magic({"m": {"t": 1}}),
    _with_magic({"m": marshal.dumps({"text": "not code"})}), _with_magic({1: b""}),
])
def test_a_bad_file_reads_as_empty(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "methods.marshal"
    if content is not None:
        path.write_bytes(content)
    assert dataclass_cache.read_all(str(path)) == {}


def test_a_run_writes_what_it_compiled_only_when_bytecode_may_be_written(
        tmp_path: Path) -> None:
    path = tmp_path / "cache" / "methods.marshal"
    script = (
        "import sys, dataclasses\n"
        "from analyzer import dataclass_cache as c\n"
        "assert c.install(sys.argv[1])\n"
        "Point = dataclasses.make_dataclass('Point', [sys.argv[2], ('y', int, 2)],\n"
        "                                   frozen=True)\n"
        "assert Point(1) == Point(1, 2) and hash(Point(1)) == hash(Point(1, 2))\n"
        "print(len(c._used), len(c._missed), c.save_if_new(sys.argv[1]))\n")

    def run(*flags: str, field: str = "x") -> list[str]:
        done = subprocess.run([sys.executable, *flags, "-c", script, str(path), field],
                              cwd=ROOT, capture_output=True, text=True, timeout=60,
                              check=True, env={"PATH": "/usr/bin:/bin"})
        return done.stdout.split()

    # six methods: __init__, __repr__, __eq__, __hash__, __setattr__, __delattr__
    assert run("-B") == ["0", "6", "False"] and not path.exists()
    assert run() == ["0", "6", "True"] and path.exists()
    assert run() == ["6", "0", "False"]  # all six served from the file, nothing new
    first = set(dataclass_cache.read_all(str(path)))
    # The class changes (a field renamed): its module's group is what this run made of it.
    assert run(field="z") == ["0", "6", "True"]  # every method's text names the fields
    second = set(dataclass_cache.read_all(str(path)))
    assert len(first) == len(second) == 6 and not first & second
    assert run(field="z") == ["6", "0", "False"]
