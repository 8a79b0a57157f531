"""The start-up cache (analyzer/startup_cache.py): every dataclass of the package gets the same
methods with it as without it, every pattern the same compiled form, and a bad file changes
nothing."""

from __future__ import annotations

import _sre
import json
import marshal
import re
import subprocess
import sys
from importlib.util import MAGIC_NUMBER
from pathlib import Path
from re import _compiler  # type: ignore[attr-defined]
from typing import Any

import pytest

from analyzer import startup_cache

ROOT = Path(__file__).resolve().parent.parent
# Python 3.13's dataclasses compiles a class's methods in one text (3.11 and 3.12: one text a
# method), and only 3.11's `re` is served compiled patterns (the module's docstring)
TEXTS_A_CLASS = 1 if sys.version_info >= (3, 13) else 5
PATTERNS = sys.version_info[:2] == (3, 11)
needs_patterns = pytest.mark.skipif(not PATTERNS, reason="the start-up cache serves compiled "
                                    "patterns to Python 3.11's re only")

# Imports every module of the package (optional extras skipped) and prints, for every
# dataclass it defines, everything about the methods `dataclasses` generated: their code
# (recursively: bytecode, constants, names, flags, file name, lines), annotations, defaults
# and qualified names. With "cached" the cache at argv[2] is installed first, as
# `python -m analyzer` does; the counts of texts it served and missed come last, and of the
# patterns it served.
_DIGEST = r"""
import dataclasses, importlib, json, pkgutil, re, sys, types

mode, methods, patterns = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "cached":
    from analyzer import startup_cache
    assert startup_cache.install(methods, patterns)
import analyzer

def code_facts(code):
    return [code.co_name, code.co_qualname, code.co_filename, code.co_firstlineno,
            code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
            code.co_flags, code.co_code.hex(), code.co_linetable.hex(),
            code.co_exceptiontable.hex(), list(code.co_names), list(code.co_varnames),
            list(code.co_freevars), list(code.co_cellvars),
            [code_facts(c) if isinstance(c, types.CodeType) else constant(c)
             for c in code.co_consts]]

def constant(value):  # a frozenset's repr follows the process's string hashes (3.13's fields)
    return sorted(map(repr, value)) if isinstance(value, frozenset) else repr(value)

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
    out["(served, missed)"] = [len(startup_cache._used), len(startup_cache._missed)]
    out["(patterns served)"] = len(startup_cache._patterns_used)
print(json.dumps(out, sort_keys=True))
"""


def _digest(mode: str, methods: Path, patterns: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _DIGEST, mode, str(methods), str(patterns)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def _build(methods: Path, patterns: Path) -> list[int]:
    script = ("import sys; from analyzer import startup_cache; "
              "print(*startup_cache.build(sys.argv[1], sys.argv[2]))")
    done = subprocess.run([sys.executable, "-c", script, str(methods), str(patterns)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return [int(n) for n in done.stdout.split()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int]]:
    directory = tmp_path_factory.mktemp("startup")
    methods, patterns = directory / "methods.marshal", directory / "patterns.marshal"
    return methods, patterns, _build(methods, patterns)


def test_every_dataclass_gets_the_same_methods_from_the_cache(
        built: tuple[Path, Path, list[int]]) -> None:
    methods, patterns, (texts, compiled) = built
    assert texts > 60 * TEXTS_A_CLASS  # the package's ≈ 90 dataclasses, ≈ 5 methods each
    assert compiled > 50 or not PATTERNS
    plain = _digest("plain", methods, patterns)
    cached = _digest("cached", methods, patterns)
    served, missed = cached.pop("(served, missed)")  # type: ignore[misc]
    assert missed == 0 and served > 60 * TEXTS_A_CLASS  # the cache did serve them
    assert cached.pop("(patterns served)") > 50 or not PATTERNS  # type: ignore[operator]
    assert len(plain) > 80
    assert cached == plain


def test_cached_code_is_what_exec_compiles(built: tuple[Path, Path, list[int]]) -> None:
    codes = startup_cache.read_methods(str(built[0]))
    assert codes
    for text, code in codes.items():
        assert code == startup_cache.compile_like_exec(text)
        namespace: dict[str, object] = {}
        _exec_plain(text, namespace)
        plain = namespace["__create_fn__"].__code__  # type: ignore[attr-defined]
        inner = [c for c in code.co_consts if isinstance(c, type(code))]
        assert inner == [plain]


def _same_pattern(cached: re.Pattern[Any], plain: re.Pattern[Any]) -> None:
    # Pattern equality compares the pattern, the flags and the compiled code
    assert cached == plain
    assert (cached.flags, cached.groups, cached.groupindex) == (
        plain.flags, plain.groups, plain.groupindex)


@needs_patterns
def test_cached_patterns_are_what_re_compiles(built: tuple[Path, Path, list[int]]) -> None:
    patterns = startup_cache.read_patterns(str(built[1]))
    assert len(patterns) > 50
    for (pattern, flags), compiled in patterns.items():
        _same_pattern(_sre.compile(pattern, *compiled), _compiler.compile(pattern, flags))


# Named groups, back references, look-arounds, inline and global flags, bytes, verbose,
# Unicode classes, possessive-like and lazy repeats, conditionals.
ZOO: list[tuple[str | bytes, int]] = [
    (r"(?P<a>x)(?P=a)(?<=x)(?!y)", 0), (r"(?i)abc|d[e-g]+?", 0), ("abc", re.IGNORECASE),
    (rb"\x00[\x80-\xff]{2,5}", 0), (r"""(?x) a  # comment
                                       b""", 0), (r"\w+\s*\d", re.ASCII),
    (r"^(a)?(?(1)b|c)$", re.MULTILINE), (r".*", re.DOTALL), (r"[^\W\d_]+", re.UNICODE),
    (r"(?:ab){3,}?", 0), (r"\bfoo\b", re.IGNORECASE | re.VERBOSE), ("", 0),
]


@pytest.mark.parametrize(("pattern", "flags"), ZOO)
def test_compile_pattern_gives_what_re_compiles(pattern: str | bytes, flags: int) -> None:
    compiled = startup_cache.compile_pattern(pattern, int(flags))
    marshal.dumps(compiled)  # what the file holds
    _same_pattern(_sre.compile(pattern, *compiled), _compiler.compile(pattern, flags))


@needs_patterns
def test_a_run_compiles_a_pattern_the_file_lacks_and_keeps_none(tmp_path: Path) -> None:
    methods, patterns = tmp_path / "m.marshal", tmp_path / "p.marshal"
    script = (
        "import re, sys\n"
        "from analyzer import startup_cache as c\n"
        "assert c.install(sys.argv[1], sys.argv[2])\n"
        "assert re.compile('(?P<n>[0-9]+)x').match('12x')['n'] == '12'\n"
        "assert re.compile(b'ab+', re.I).fullmatch(b'ABB')\n"
        "print(len(c._patterns_used), len(c._patterns_missed), c.save_if_new(sys.argv[1]))\n")
    # a file with a good entry for one pattern and bad code for the other
    good = startup_cache.compile_pattern("(?P<n>[0-9]+)x", 0)
    bad = (2, [99999, 1, 2], 0, {}, (None,))
    patterns.write_bytes(MAGIC_NUMBER + marshal.dumps(
        (startup_cache._SRE_VERSION, {("(?P<n>[0-9]+)x", 0): good, (b"ab+", 2): bad})))
    done = subprocess.run([sys.executable, "-c", script, str(methods), str(patterns)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.stdout.split() == ["1", "0", "False"]  # the bad one compiled as before
    assert not methods.exists()


# exec from a module without `from __future__ import annotations`, as `dataclasses` calls it
# (this module has it, and exec of a text inherits the caller's future flags).
_exec_plain = eval(compile("lambda text, ns: exec(text, {}, ns)", "<test>", "eval",
                           dont_inherit=True))


def _with_magic(groups: object) -> bytes:
    return MAGIC_NUMBER + marshal.dumps(groups)


@pytest.mark.parametrize("content", [
    None, b"", b"junk", b"\x00\x00\r\n" + marshal.dumps({"m": marshal.dumps({"a": 1})}),
    _with_magic([1, 2]), _with_magic({"m": b"not marshal"}), _with_magic({"m": {"t": 1}}),
    _with_magic({"m": marshal.dumps({"text": "not code"})}), _with_magic({1: b""}),
    _with_magic(((0, 0, "another Python"), {("a", 0): (0, [1], 0, {}, (None,))})),
])
def test_a_bad_file_reads_as_empty(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "methods.marshal"
    if content is not None:
        path.write_bytes(content)
    assert startup_cache.read_methods(str(path)) == {}
    assert startup_cache.read_patterns(str(path)) == {}


def test_a_run_writes_what_it_compiled_only_when_bytecode_may_be_written(
        tmp_path: Path) -> None:
    path = tmp_path / "cache" / "methods.marshal"
    script = (
        "import sys, dataclasses\n"
        "from analyzer import startup_cache as c\n"
        "assert c.install(sys.argv[1], sys.argv[2])\n"
        "Point = dataclasses.make_dataclass('Point', [sys.argv[3], ('y', int, 2)],\n"
        "                                   frozen=True)\n"
        "assert Point(1) == Point(1, 2) and hash(Point(1)) == hash(Point(1, 2))\n"
        "print(len(c._used), len(c._missed), c.save_if_new(sys.argv[1]))\n")

    def run(*flags: str, field: str = "x") -> list[str]:
        done = subprocess.run([sys.executable, *flags, "-c", script, str(path),
                               str(tmp_path / "patterns.marshal"), field],
                              cwd=ROOT, capture_output=True, text=True, timeout=60,
                              check=True, env={"PATH": "/usr/bin:/bin"})
        return done.stdout.split()

    # six methods: __init__, __repr__, __eq__, __hash__, __setattr__, __delattr__ (each a
    # text of its own before Python 3.13, one text for all of them since)
    n = "6" if TEXTS_A_CLASS > 1 else "1"
    assert run("-B") == ["0", n, "False"] and not path.exists()
    assert run() == ["0", n, "True"] and path.exists()
    assert run() == [n, "0", "False"]  # all served from the file, nothing new
    first = set(startup_cache.read_methods(str(path)))
    # The class changes (a field renamed): its module's group is what this run made of it.
    assert run(field="z") == ["0", n, "True"]  # every method's text names the fields
    second = set(startup_cache.read_methods(str(path)))
    assert len(first) == len(second) == int(n) and not first & second
    assert run(field="z") == [n, "0", "False"]


def test_every_dataclass_of_the_package_has_a_docstring() -> None:
    """`dataclasses` gives a class without a docstring one made by `inspect.signature` at
    import (≈ 0.15 ms a class, 6 M instructions of a cleartext run's start-up): every
    dataclass of the package says what it is instead."""
    import ast

    missing = []
    for path in sorted((Path(startup_cache.__file__).parent).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ClassDef)
                    and any("dataclass" in ast.unparse(d) for d in node.decorator_list)
                    and ast.get_docstring(node) is None):
                missing.append(f"{path.name}:{node.name}")
    assert missing == []
