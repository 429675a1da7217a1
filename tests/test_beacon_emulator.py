"""End to end on BlueZ's emulated controllers: the kiosk advertises, a simulated Bluezone phone listens."""

import signal
import sqlite3
import threading

import pytest

from beacon.hci import Controller, HciError
from beacon.ids import id_at, load_base_key
from beacon.register import f0_message
from beacon.transport import open_transport
from bluezone_phone import Phone
from conftest import start_kiosk, wait_until

H = 3_600_000


def status(state_dir, component="beacon"):
    try:
        with sqlite3.connect(f"file:{state_dir / 'kiosk.db'}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT state, detail FROM status WHERE component = ?", [component]).fetchone()
    except sqlite3.Error:
        return None
    return row


def test_phone_records_the_kiosk_and_matches_its_exposure_window(bt_emulator, state_dir):
    kiosk = start_kiosk("--state-dir", str(state_dir), "beacon", "--transport", bt_emulator.transport,
                        "--assume-clock-synced", "--seconds", "60")
    try:
        wait_until(lambda: (status(state_dir) or ("",))[0] == "advertising", 20.0, "the kiosk to advertise")
        phone = Phone(str(bt_emulator.le_socket))
        records = phone.listen(3.0)
        phone.close()
    finally:
        kiosk.send_signal(signal.SIGTERM)
        assert kiosk.wait(timeout=20) == 0
    assert records, "the phone heard no Bluezone advert"
    base = load_base_key(state_dir)
    # every record carries the ID the kiosk's key gives for that moment (or the second before, at a boundary)
    for record in records:
        assert record.bluezone_id in (id_at(base, record.time_ms), id_at(base, record.time_ms - 1000))
    assert {r.rssi for r in records} == {127}  # the emulator reports "RSSI not available"
    # a non-resolvable private address: random address type, two top bits 00
    assert phone.addresses and all(t == 1 and a[5] >> 6 == 0 for t, a in phone.addresses)
    now = records[-1].time_ms
    assert phone.matches(f0_message(base.key, base.day, now - H, now + H))
    assert not phone.matches(f0_message(base.key, base.day, now + 24 * H, now + 26 * H))
    assert not phone.matches(f0_message(bytes(32), base.day, now - H, now + H))
    if now % 86_400_000 > 2 * H:  # a window that ended well before the visit, on the same day
        assert not phone.matches(f0_message(base.key, base.day, now - (now % 86_400_000), now - 2 * H))
    assert status(state_dir)[0] == "stopped"


def test_controller_errors_become_clear_messages(bt_emulator):
    controller = Controller(open_transport(bt_emulator.transport))
    try:
        controller.reset()
        controller.set_adv_params(0x00A0, controller.read_local_version().hci_version)
        with pytest.raises(HciError, match=r"Invalid HCI Command Parameters \(0x12\).*random address that was never set"):
            controller.set_adv_enable(True)  # own address type random, but no random address given
        controller.set_adv_enable(False)
        controller.set_random_address(bytes.fromhex("112233445506"))
        controller.set_adv_enable(True)
        with pytest.raises(HciError, match=r"LE Set Random Address \(0x2005\) failed: Command Disallowed \(0x0C\)"):
            controller.set_random_address(bytes.fromhex("665544332211"))
        with pytest.raises(HciError, match=r"Unknown HCI Command \(0x01\)"):
            controller.command(0xFC99)
        controller.set_adv_enable(False)  # the service's order: stop, then change the address
        controller.set_random_address(bytes.fromhex("665544332211"))
    finally:
        controller.close()


def test_beacon_survives_the_adapter_disappearing_and_returning(tmp_path, state_dir):
    from beacon.emulator import Emulator
    from beacon.service import BeaconService
    from kiosk.core.config import BeaconConfig

    emulator = Emulator(tmp_path / "bt").start()
    states = []
    stop = threading.Event()
    service = BeaconService(BeaconConfig(retry_max_s=1.0), state_dir, transport=emulator.transport,
                            assume_synced=True, stop=stop,
                            status=lambda component, state, detail: states.append((state, detail)))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: states and states[-1][0] == "advertising", 20.0, "advertising")
        emulator.stop()
        wait_until(lambda: states[-1][0] == "adapter-missing", 20.0, "the missing adapter to be noticed")
        assert "the controller is gone" in states[-1][1]["error"] or "no controller at" in states[-1][1]["error"]
        emulator.start()
        wait_until(lambda: states[-1][0] == "advertising", 20.0, "advertising again")
        phone = Phone(str(emulator.le_socket))
        records = phone.listen(2.0)
        phone.close()
        assert records and records[-1].bluezone_id == service.current_id
    finally:
        stop.set()
        thread.join(timeout=10)
        emulator.stop()
    sequence = [s for s, _ in states]
    assert sequence[0] == "advertising" and "adapter-missing" in sequence and sequence[-1] == "stopped"
