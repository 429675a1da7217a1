"""Counting nearby Bluezone phones: the counter, and scanning real (emulated) adverts."""

import pytest

from beacon.ids import SLOT_MS, slot_start_ms
from beacon.nearby import MAX_TRACKED, HciScanner, NearbyCounter, Sighting, open_scanner, BluepyScanner, ScanError
from beacon.service import BeaconClock
from bluezone_phone import Phone
from kiosk.core.config import BeaconConfig
from conftest import wait_until
from test_beacon_service import real_ms, start_service

A, B, C = (bytes([n]) * 12 for n in (1, 2, 3))


def test_counts_distinct_ids_in_the_window_above_the_threshold():
    counter = NearbyCounter(window_ms=300_000, rssi_threshold=-75)
    t = 1_000_000
    assert counter.add(Sighting(A, -60, t)) and counter.add(Sighting(A, -50, t + 1000))  # same phone twice
    assert counter.add(Sighting(B, -75, t))  # exactly at the threshold counts
    assert not counter.add(Sighting(C, -90, t))  # too far away
    assert counter.count(t + 1000) == 2
    assert counter.count(t + 300_500) == 1  # B's only sighting has left the window; A was seen later
    assert counter.count(t + 301_001) == 0


def test_own_ids_and_unknown_rssi():
    counter = NearbyCounter(window_ms=60_000, rssi_threshold=-75)
    assert not counter.add(Sighting(A, -40, 5), own_ids=frozenset({A}))
    assert counter.add(Sighting(B, 127, 5))  # "RSSI not available": cannot be judged far, so it counts
    assert counter.count(10) == 1


def test_a_flood_of_made_up_ids_is_bounded():
    counter = NearbyCounter(window_ms=60_000, rssi_threshold=-100)
    for n in range(MAX_TRACKED + 500):
        counter.add(Sighting(n.to_bytes(12, "big"), -50, 1000 + n))
    assert len(counter.last_seen) == MAX_TRACKED
    assert (MAX_TRACKED + 499).to_bytes(12, "big") in counter.last_seen  # the newest are kept


def test_scanner_choice_and_bluepy_absent_is_a_clear_scan_error():
    assert open_scanner("off", real_ms) is None
    assert isinstance(open_scanner("unix:/x", real_ms), HciScanner)
    scanner = open_scanner("bluepy:hci0", real_ms)
    assert isinstance(scanner, BluepyScanner) and scanner.iface == 0
    import importlib.util
    if importlib.util.find_spec("bluepy") is None:  # bluepy is a Pi-only extra
        with pytest.raises(ScanError, match="bluepy is not installed"):
            scanner.scan(0.1)


def test_a_failing_scanner_never_stops_advertising(bt_emulator, state_dir):
    now = real_ms()
    offset = slot_start_ms(now) + SLOT_MS // 3 - now
    clock = BeaconClock(now_ms=lambda: real_ms() + offset, synced=lambda: True)
    config = BeaconConfig(scanner="unix:/nonexistent/bt-server-le", scan_seconds=1.0, scan_every_s=30.0)
    service, states, finish = start_service(state_dir, bt_emulator.transport, clock, config=config)
    try:
        wait_until(lambda: [d for c, s, d in states if c == "nearby"], 20.0, "the scan to fail")
        phone = Phone(str(bt_emulator.le_socket))
        heard = phone.listen(1.0)
        phone.close()
    finally:
        finish()
    nearby = [(s, d) for c, s, d in states if c == "nearby"]
    assert nearby[0][0] == "error" and "no controller at /nonexistent/bt-server-le" in nearby[0][1]["error"]
    assert heard and heard[-1].bluezone_id == service.current_id


def test_hci_scanner_on_the_emulator_hears_phones(bt_emulator):
    phones = [Phone(str(bt_emulator.le_socket)) for _ in range(2)]
    try:
        phones[0].advertise(A, bytes.fromhex("0100000000C0"))
        phones[1].advertise(B, bytes.fromhex("0200000000C0"))
        scanner = HciScanner(bt_emulator.transport, real_ms)
        sightings = scanner.scan(1.0)
        scanner.close()
    finally:
        for phone in phones:
            phone.close()
    assert {s.bluezone_id for s in sightings} >= {A, B}


def test_service_publishes_the_nearby_count_without_counting_itself(bt_emulator, state_dir):
    now = real_ms()
    offset = slot_start_ms(now) + SLOT_MS // 3 - now  # well inside a slot: scans are not deferred
    clock = BeaconClock(now_ms=lambda: real_ms() + offset, synced=lambda: True)
    phones = [Phone(str(bt_emulator.le_socket)) for _ in range(3)]
    for phone, bluezone_id, n in zip(phones, (A, B, C), range(3)):
        phone.advertise(bluezone_id, bytes([n + 1, 0, 0, 0, 0, 0xC0]))
    config = BeaconConfig(scanner=bt_emulator.transport, scan_seconds=1.0, scan_every_s=30.0)
    service, states, finish = start_service(state_dir, bt_emulator.transport, clock, config=config)
    try:
        nearby = wait_until(lambda: [d for c, s, d in states if c == "nearby"], 20, "a nearby count")
    finally:
        finish()
        for phone in phones:
            phone.close()
    assert nearby[0]["phones"] == 3  # three phones; the kiosk's own advert is heard too but not counted
    assert nearby[0]["rssi_threshold"] == -75 and nearby[0]["window_s"] == 300.0
    assert "ids" not in nearby[0] and all(len(str(v)) < 40 for v in nearby[0].values())  # a count, no IDs
    # advertising was re-programmed after the scan and carries on
    assert [s for c, s, d in states if c == "beacon"][-2:] == ["advertising", "stopped"]


def test_bluepy_rssi_not_available_still_counts_the_phone():
    # Controllers that measure no RSSI report 127; bluepy hands it on as -129 (HCI path) or as a huge
    # negative number (management path). Such a phone must count, like any other unmeasured one.
    from beacon.hci import RSSI_UNAVAILABLE
    from beacon.nearby import bluepy_rssi

    assert bluepy_rssi(-60) == -60 and bluepy_rssi(-127) == -127 and bluepy_rssi(20) == 20
    for odd in (-129, -4294967169, 127, None, "x"):
        assert bluepy_rssi(odd) == RSSI_UNAVAILABLE
    counter = NearbyCounter(window_ms=300_000, rssi_threshold=-75)
    assert counter.add(Sighting(b"\x01" * 12, bluepy_rssi(-129), 1000))
    assert counter.count(1000) == 1
