"""`slot_setters`: how the values made by the thousand are built without their frozen
``__init__``.

A frozen dataclass's ``__init__`` stores each field through ``object.__setattr__`` (about
9 k machine instructions for an 11-field value, callgrind); the ``__set__`` of each slot's
own member descriptor stores the same value for about half. The values a run makes per
record, per head or per attempt (`exchange/made.py`, `tls/records.py` `made_record`, the
verdict's `made`...) are built with ``object.__new__`` and these setters; each such maker
keeps the constructor as its plain twin, compared in tests (tests/test_made_values.py and
the tests its module names).
"""

from __future__ import annotations

from typing import Any


def slot_setters(cls: type, names: tuple[str, ...] | None = None) -> tuple[Any, ...]:
    """The ``__set__`` of each slot of the slotted class ``cls``: of ``names`` in that order,
    or of every slot in field order."""
    slots: tuple[str, ...] = cls.__slots__  # type: ignore[attr-defined]
    return tuple(cls.__dict__[name].__set__ for name in (slots if names is None else names))
