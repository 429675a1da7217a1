"""The typed status contract: writers cannot invent a state or a detail, readers get only what is written."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT
from kiosk.core.records import DETAILS, STATES, Component, SyncState, read_records
from kiosk.core.store import Store


def test_a_state_or_detail_outside_the_contract_is_refused(state_dir):
    store = Store.open(state_dir)
    with pytest.raises(ValueError, match="no state 'uploading' for component 'sync'"):
        store.set_status("sync", "uploading", {})
    with pytest.raises(ValueError, match="sync has no detail last_upload_ms"):
        store.set_status("sync", "online", {"last_upload_ms": 1})
    with pytest.raises(ValueError, match="component 'provisioning'"):
        store.set_status("provisioning", "pending", {})
    store.set_status(Component.SYNC, SyncState.ONLINE, {"last_success_ms": 5})
    # A row another version wrote (unknown state) is left out, never guessed at.
    store.db.execute("INSERT INTO status VALUES ('beacon', 'on', '{}', 1)")
    records = read_records(store.db.conn)
    assert set(records) == {Component.SYNC} and records[Component.SYNC].state is SyncState.ONLINE
    assert store.statuses() == {"sync": {"state": "online", "detail": {"last_success_ms": 5}, "updated_ms":
                                         records[Component.SYNC].updated_ms}}
    store.close()


def test_every_component_has_states_and_details():
    assert set(STATES) == set(Component) == set(DETAILS)
    assert {"camera", "store", "sync", "enrollment", "beacon", "clock", "config"} <= {c.value for c in Component}


def test_no_bare_state_strings_are_written():
    """Every set_status call in the code names its component and state through kiosk/core/records.py."""
    offenders = []
    for path in [*ROOT.glob("kiosk/**/*.py"), *ROOT.glob("sync/*.py"), *ROOT.glob("beacon/*.py"), *ROOT.glob("scanner/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("set_status", "status") \
                    and len(node.args) >= 2 and any(isinstance(a, ast.Constant) and isinstance(a.value, str)
                                                    for a in node.args[:2]):
                offenders.append(f"{Path(path).relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
