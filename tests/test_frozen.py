"""kiosk/core/frozen.py: a record declared ``@frozen`` on ``Frozen`` is built, compared, hashed, shown and
kept from change as ``@dataclass(frozen=True)`` would make it, field options included (a field with
``repr=False`` never shown: the credential's subject and display name are personal data)."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from kiosk.core.frozen import Frozen, frozen

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
    assert dataclasses.is_dataclass(cls)
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
    for name in (dataclasses.fields(cls)[0].name, "not_a_field"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(mine, name, "changed")
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(mine, name)


@pytest.mark.parametrize("cls", frozen_classes(), ids=lambda c: c.__qualname__)
def test_built_as_dataclass_builds_it(cls):
    """By position, by keyword, with defaults and fresh default factories; refusing what it would refuse."""
    twin = generated_twin(cls)
    fields = dataclasses.fields(cls)
    required = {f.name: f"{f.name}-r" for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert repr(cls(**required)) == repr(twin(**required))
    assert cls(**required) == cls(**required) and dataclasses.asdict(cls(**required)) == dataclasses.asdict(twin(**required))
    positional = [f"{f.name}-p" for f in fields]
    assert repr(cls(*positional)) == repr(twin(*positional))
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:  # each instance its own list or dict
            assert getattr(cls(**required), f.name) is not getattr(cls(**required), f.name)
    bad_calls = [((*positional, "one too many"), {}), ((), {**required, "no_such_field": 1}),
                 ((positional[0],), {fields[0].name: "twice"})]
    if required:
        bad_calls.append(((), {k: v for k, v in list(required.items())[1:]}))
    for args, kwargs in bad_calls:
        with pytest.raises(TypeError):
            twin(*args, **kwargs)
        with pytest.raises(TypeError):
            cls(*args, **kwargs)
    changed = dataclasses.replace(cls(**required), **{fields[-1].name: "replaced"})
    assert repr(changed) == repr(dataclasses.replace(twin(**required), **{fields[-1].name: "replaced"}))


def test_frozen_wants_the_base_class():
    with pytest.raises(TypeError):
        frozen(type("Plain", (), {"__annotations__": {"x": "int"}}))


def test_a_credentials_personal_data_stays_out_of_its_repr():
    from kiosk.credentials.base import Credential

    shown = repr(Credential(kind="cccd", verdict="accepted", reason="ok", subject="001234567890|NGUYEN VAN AN",
                            display_name="Nguyễn V. A."))
    assert "NGUYEN" not in shown and "Nguyễn" not in shown and shown.startswith("Credential(kind='cccd'")
