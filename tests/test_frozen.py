"""kiosk/core/frozen.py: a record declared ``@dataclass(frozen=True, repr=False, eq=False)`` on ``Frozen``
has the repr, equality and hash ``@dataclass(frozen=True)`` would generate, field options included
(a field with ``repr=False`` never shown: the credential's subject and display name are personal data)."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from kiosk.core.frozen import Frozen

MODULES = ("kiosk.core.config", "kiosk.core.clock", "kiosk.core.records", "kiosk.core.store", "kiosk.events",
           "kiosk.credentials.base", "kiosk.credentials.cccd", "kiosk.credentials.personal",
           "kiosk.credentials.provisioning", "kiosk.credentials.trust", "sync.protocol", "sync.identity", "sync.enroll")


def frozen_classes() -> list[type]:
    for module in MODULES:
        importlib.import_module(module)
    found, todo = [], list(Frozen.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def generated_twin(cls: type) -> type:
    """The same fields under a plain ``@dataclass(frozen=True)``: what the class would be without Frozen."""
    fields = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory, repr=f.repr,
                                                 compare=f.compare, hash=f.hash)) for f in dataclasses.fields(cls)]
    twin = dataclasses.make_dataclass(cls.__name__, fields, frozen=True)
    twin.__qualname__ = cls.__qualname__
    return twin


def sample_values(cls: type, variant: int) -> dict:
    return {f.name: f"{f.name}-{variant}" if f.name != "facts" else {"n": variant} for f in dataclasses.fields(cls)}


def test_every_frozen_record_is_found():
    names = {cls.__qualname__ for cls in frozen_classes()}
    assert {"Config", "DeviceConfig", "Credential", "Outcome", "CheckinRow", "Record", "Instant"} <= names


@pytest.mark.parametrize("cls", frozen_classes(), ids=lambda c: c.__qualname__)
def test_repr_equality_and_hash_are_what_dataclass_generates(cls):
    twin = generated_twin(cls)
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    base = sample_values(cls, 0)
    mine, theirs = cls(**base), twin(**base)
    assert repr(mine) == repr(theirs)
    assert mine == cls(**base) and not (mine != cls(**base))
    assert mine != theirs and mine.__eq__(object()) is NotImplemented  # another class is never equal
    for f in dataclasses.fields(cls):  # one field changed at a time
        changed = {**base, f.name: sample_values(cls, 1)[f.name]}
        assert (mine == cls(**changed)) == (theirs == twin(**changed)), f.name
        assert repr(cls(**changed)) == repr(twin(**changed))
    try:
        expected = hash(theirs)
    except TypeError:  # a field holds a dict or a list: unhashable either way
        with pytest.raises(TypeError):
            hash(mine)
    else:
        assert hash(mine) == expected
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(mine, dataclasses.fields(cls)[0].name, "changed")


def test_a_credentials_personal_data_stays_out_of_its_repr():
    from kiosk.credentials.base import Credential

    shown = repr(Credential(kind="cccd", verdict="accepted", reason="ok", subject="001234567890|NGUYEN VAN AN",
                            display_name="Nguyễn V. A."))
    assert "NGUYEN" not in shown and "Nguyễn" not in shown and shown.startswith("Credential(kind='cccd'")
