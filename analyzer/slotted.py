"""`slot_setters`: how the values made by the thousand are built without their frozen
``__init__``; and `register_pickling`: how slotted values are pickled by their fields and
rebuilt the same way when loaded (below).

A frozen dataclass's ``__init__`` stores each field through ``object.__setattr__`` (about
9 k machine instructions for an 11-field value, callgrind); the ``__set__`` of each slot's
own member descriptor stores the same value for about half. The values a run makes per
record, per head or per attempt (`exchange/made.py`, `tls/records.py` `made_record`, the
verdict's `made`...) are built with ``object.__new__`` and these setters; each such maker
keeps the constructor as its plain twin, compared in tests (tests/test_made_values.py and
the tests its module names).
"""

from __future__ import annotations

import sys
from typing import Any


def slot_setters(cls: type, names: tuple[str, ...] | None = None) -> tuple[Any, ...]:
    """The ``__set__`` of each slot of the slotted class ``cls``: of ``names`` in that order
    (a base class's slots too), or of every slot of its own in field order."""
    slots: tuple[str, ...] = cls.__slots__  # type: ignore[attr-defined]
    return tuple(next(k.__dict__[name] for k in cls.__mro__ if name in k.__dict__).__set__
                 for name in (slots if names is None else names))


# --- pickling ----------------------------------------------------------------------------
# A slotted dataclass pickles through the `__getstate__`/`__setstate__` that `dataclasses`
# gives it, Python that calls `dataclasses.fields` for every value it loads (≈ 8 µs each, and
# a diagnosis holds ≈ 47 values): loading the attempts of `read --jobs` workers was most of
# the parent's CPU (1,810 attempts: 1.9 s of 3.5 s profiled, benchmarks/README.md,
# "Twenty-fourth session"). `register_pickling` gives each such class a reducer through
# `copyreg`: its fields' values read by one `attrgetter`, and a value rebuilt as the makers
# build values (`_rebuilt`: its slots filled in C, decode/_rebuild.pxi, or through each
# slot's setter, `rebuilt_plain`). The stream is the same objects; tests/test_pickling.py
# compares both ways on every bundled capture's diagnoses, and the two rebuilds.

_REBUILT: dict[type, tuple[Any, ...]] = {}  # class -> its slots' setters, in field order
try:
    from analyzer.decode._fastpath import compiled_rebuilt as _compiled
except ImportError:  # pragma: no cover - the pure-Python install
    _compiled = None


# "module:qualname" -> the class: its values are rebuilt by that name, not by the class. A
# class given to pickle is a global the loader looks up through the import system (≈ 1.5 µs
# more than a string, and a diagnosis names 10-20 classes); a name is a string and one dict
# look-up here (a message's loading 53 -> 44 µs, benchmarks/README.md).
_CLASSES: dict[str, type] = {}


def _rebuilt(name: str, values: tuple[Any, ...]) -> Any:
    """A value of the slotted dataclass named ``name`` ("module:qualname") with its fields'
    ``values`` (in field order): the other half of `_reducer`'s reduction. Compiled when the
    module is built (the stream names this function either way, so any install loads it)."""
    cls = _CLASSES.get(name)
    if cls is None:
        cls = _CLASSES[name] = _class_named(name)
    if _compiled is not None:
        made = _compiled(cls, values)
        if made is not None:
            return made
    return rebuilt_plain(cls, values)


def _class_named(name: str) -> type:
    """The class a "module:qualname" name names (imported as pickle would import it): a
    slotted dataclass, or TypeError."""
    import dataclasses
    import importlib

    module, _, qualname = name.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and dataclasses.is_dataclass(found)
            and "__slots__" in found.__dict__):
        raise TypeError(f"{name} names no slotted dataclass")
    return found


def rebuilt_plain(cls: type, values: tuple[Any, ...]) -> Any:
    """`_rebuilt`'s plain twin (the pure-Python install's), through each slot's setter."""
    setters = _REBUILT.get(cls)
    if setters is None:
        import dataclasses

        names = tuple(f.name for f in dataclasses.fields(cls))
        setters = _REBUILT[cls] = slot_setters(cls, names)
    made: Any = object.__new__(cls)
    for set_value, value in zip(setters, values, strict=True):
        set_value(made, value)
    return made


def _reducer(cls: type) -> Any:
    """The `copyreg` reduction function of the slotted dataclass ``cls``."""
    import dataclasses
    from operator import attrgetter

    names = tuple(f.name for f in dataclasses.fields(cls))
    # (one string object for all its values: pickle writes it once a message)
    named = f"{cls.__module__}:{cls.__qualname__}"
    if len(names) < 2:  # (attrgetter of one name gives the value, not a tuple; of none, fails)

        def reduce_few(value: Any) -> tuple[Any, ...]:
            return _rebuilt, (named, tuple(getattr(value, name) for name in names))

        return reduce_few
    values_of = attrgetter(*names)

    def reduce(value: Any) -> tuple[Any, ...]:
        return _rebuilt, (named, values_of(value))

    return reduce


_modules_seen = [0]  # how many modules were loaded at the last walk (`register_pickling`)


def register_pickling(package: str = "analyzer") -> int:
    """Give every slotted dataclass of ``package``'s modules loaded so far the reducer above
    (those `dataclasses` gave its generic state functions: a class with its own keeps them);
    the classes of modules loaded later pickle as before until the next call. Cheap when no
    module was loaded since the last call (called before each value a worker sends). How
    many classes it registered."""
    if len(sys.modules) == _modules_seen[0]:  # (before any import statement: ≈ 4 µs less)
        return 0
    import copyreg
    import dataclasses

    _modules_seen[0] = len(sys.modules)
    generic = getattr(dataclasses, "_dataclass_setstate", None)
    registered = 0
    for name, module in list(sys.modules.items()):
        if module is None or not (name == package or name.startswith(package + ".")):
            continue
        for value in list(vars(module).values()):
            if (isinstance(value, type) and value.__module__ == name
                    and dataclasses.is_dataclass(value) and "__slots__" in value.__dict__
                    and generic is not None and value.__dict__.get("__setstate__") is generic
                    and value not in copyreg.dispatch_table):
                copyreg.pickle(value, _reducer(value))
                registered += 1
    return registered
