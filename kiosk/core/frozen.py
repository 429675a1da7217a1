"""``@frozen``: what ``@dataclass(frozen=True)`` makes, without compiling any method at import.

``@dataclass`` writes each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``
and ``__delattr__`` as source text and compiles it with ``exec`` when the class is made: about half a
millisecond per class here (several on a Pi), and ``kiosk status`` and ``kiosk checkin`` load some
two dozen such records and config sections at every start. A class declared

    @frozen
    class Thing(Frozen):
        name: str
        size: int = 0

is a dataclass (``dataclasses.fields``, ``replace`` and ``asdict`` work) that behaves as
``@dataclass(frozen=True)`` would make it: constructed by position or keyword with the same defaults
and default factories; the same repr (fields with ``repr=False`` left out); equal to an instance of
its own class with equal compared fields, hashed on those fields; FrozenInstanceError on assignment.
Its methods are :class:`Frozen`'s, written once. tests/test_frozen.py compares each such class with
the class ``@dataclass(frozen=True)`` generates from the same fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def frozen(cls: T) -> T:
    """The fields of ``cls`` (a subclass of :class:`Frozen`) collected as ``@dataclass`` does, no method generated."""
    if not issubclass(cls, Frozen):
        raise TypeError(f"@frozen: {cls.__qualname__} must derive from Frozen")
    return dataclasses.dataclass(init=False, repr=False, eq=False)(cls)


class Frozen:
    def __init__(self, *args: Any, **kwargs: Any):
        fields = dataclasses.fields(self)
        name = type(self).__qualname__
        if len(args) > len(fields):
            raise TypeError(f"{name}.__init__() takes {len(fields) + 1} positional arguments but {len(args) + 1} were given")
        for f, value in zip(fields, args):
            if f.name in kwargs:
                raise TypeError(f"{name}.__init__() got multiple values for argument '{f.name}'")
            kwargs[f.name] = value
        known = {f.name for f in fields}
        for key in kwargs:
            if key not in known:
                raise TypeError(f"{name}.__init__() got an unexpected keyword argument '{key}'")
        missing = [f.name for f in fields if f.name not in kwargs
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise TypeError(f"{name}.__init__() missing {len(missing)} required argument(s): "
                            + ", ".join(repr(m) for m in missing))
        for f in fields:
            if f.name in kwargs:
                value = kwargs[f.name]
            elif f.default is not dataclasses.MISSING:
                value = f.default
            else:
                value = f.default_factory()
            object.__setattr__(self, f.name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

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
