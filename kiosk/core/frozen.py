"""``Frozen``: the ``repr``, ``==`` and ``hash`` that ``@dataclass(frozen=True)`` generates, written once.

``@dataclass`` compiles each generated method of each class with ``exec`` when the class is made, so at
import: for the two dozen records and config sections every command loads, that was a measurable part
of ``kiosk status`` and ``kiosk checkin``'s start. A class declared

    @dataclass(frozen=True, repr=False, eq=False)
    class Thing(Frozen): ...

behaves as ``@dataclass(frozen=True)`` would make it (same repr, fields with ``repr=False`` left out;
equal to an instance of its own class with equal compared fields; hashed on those fields), and only its
``__init__``, ``__setattr__`` and ``__delattr__`` are generated. tests/test_frozen.py compares the two.
"""

from __future__ import annotations

import dataclasses
from typing import Any


class Frozen:
    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return _compared(self) == _compared(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(_compared(self))


def _compared(record: Any) -> tuple:
    return tuple(getattr(record, f.name) for f in dataclasses.fields(record) if f.compare)
