"""The beacon service: clock gate, slot switch timing (injected clock), pcap output dissected by tshark."""

import errno
import re
import subprocess
import threading
import time

import pytest

from beacon.ids import SLOT_MS, id_at, load_base_key, slot_start_ms
from beacon.service import BeaconClock, BeaconService
from beacon.transport import CapabilityMissing, explain_socket_error
from bluezone_phone import Phone
from conftest import run_kiosk, wait_until
from kiosk.core.config import BeaconConfig


def real_ms():
    return time.time_ns() // 1_000_000


def start_service(state_dir, transport, clock=None, config=None, assume_synced=True):
    states = []
    stop = threading.Event()
    service = BeaconService(config or BeaconConfig(), state_dir, transport=transport, assume_synced=assume_synced,
                            clock=clock, stop=stop, status=lambda c, s, d: states.append((c, s, d)))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()

    def finish():
        stop.set()
        thread.join(timeout=10)
    return service, states, finish


def test_id_switches_within_one_second_after_the_slot_boundary(bt_emulator, state_dir):
    # An injected clock that reaches a 15-minute boundary 1.5 s after the service starts.
    now = real_ms()
    boundary = slot_start_ms(now) + SLOT_MS
    offset = boundary - 1500 - now
    clock = BeaconClock(now_ms=lambda: real_ms() + offset, synced=lambda: True)
    phone = Phone(str(bt_emulator.le_socket))
    service, states, finish = start_service(state_dir, bt_emulator.transport, clock)
    try:
        records = phone.listen(4.0)
    finally:
        finish()
        phone.close()
    base = load_base_key(state_dir)
    old_id, new_id = id_at(base, boundary - 1), id_at(base, boundary)
    heard = [(r.bluezone_id, r.time_ms + offset) for r in records]
    assert {i for i, _ in heard} == {old_id, new_id}
    assert all(t < boundary for i, t in heard if i == old_id)
    first_new = min(t for i, t in heard if i == new_id)
    assert boundary <= first_new < boundary + 1000, f"new ID on air {first_new - boundary} ms after the boundary"
    assert len(phone.addresses) == 2  # a fresh random address with the fresh ID
    slots = [d["slot"] for c, s, d in states if s == "advertising"]
    assert slots[:2] == [slot_start_ms(boundary - 1) % 86_400_000 // SLOT_MS, boundary % 86_400_000 // SLOT_MS]


def test_nothing_on_air_and_no_key_until_the_clock_is_trusted(bt_emulator, state_dir):
    synced = threading.Event()
    clock = BeaconClock(synced=synced.is_set)
    phone = Phone(str(bt_emulator.le_socket))
    service, states, finish = start_service(state_dir, bt_emulator.transport, clock, assume_synced=False)
    try:
        wait_until(lambda: states, 20.0, "a status")
        assert states[-1][1] == "waiting-for-clock" and "not synchronised" in states[-1][2]["reason"]
        assert phone.listen(1.0) == [] and load_base_key(state_dir) is None
        synced.set()
        wait_until(lambda: states[-1][1] == "advertising", 15, "advertising once the clock is trusted")
        assert load_base_key(state_dir) is not None
        assert phone.listen(1.0)
    finally:
        finish()
        phone.close()


def tshark_text(path):
    # -n: a random address that happens to match a vendor prefix is never printed as the vendor's name
    result = subprocess.run(["tshark", "-n", "-r", str(path), "-V"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.system
def test_pcap_output_dissected_by_tshark(tmp_path, state_dir):
    pcap = tmp_path / "beacon.pcap"
    result = run_kiosk("--state-dir", str(state_dir), "beacon", "--transport", f"pcap:{pcap}",
                       "--assume-clock-synced", "--seconds", "1")
    assert result.returncode == 0, result.stderr
    text = tshark_text(pcap)
    assert "Malformed" not in text and "Expert Info (Error" not in text
    frames = text.split("\nFrame ")
    commands = [re.search(r"Command Opcode: (.+) \((0x[0-9a-f]{4})\)", f) for f in frames]
    sent = [(m.group(1), m.group(2)) for f, m in zip(frames, commands) if m and "Direction: Sent" in f]
    assert sent == [("Reset", "0x0c03"), ("Read Local Version Information", "0x1001"),
                    ("LE Set Advertise Enable", "0x200a"), ("LE Set Random Address", "0x2005"),
                    ("LE Set Advertising Parameters", "0x2006"), ("LE Set Advertising Data", "0x2008"),
                    ("LE Set Advertise Enable", "0x200a"),
                    ("LE Set Advertise Enable", "0x200a")]  # on stopping
    enables = re.findall(r"Advertising Enable: (true|false)", text)
    assert enables == ["false", "true", "false"]
    # every command answered (made up: no controller), in link type 201 with a direction header
    assert len(re.findall(r"Direction: Rcvd", text)) == len(sent)
    assert "Bluetooth H4 with linux header" in text
    address = re.search(r"LE Set Random Address.*?BD_ADDR: ([0-9a-f:]{17})", text, re.S).group(1)
    assert int(address[:2], 16) >> 6 == 0  # non-resolvable private address
    params = text[text.index("Bluetooth HCI Command - LE Set Advertising Parameters"):]
    for line in ["Advertising Interval Min: 320 (200 msec)", "Advertising Interval Max: 320 (200 msec)",
                 "Advertising Type: Non-Connectable Undirected Advertising (0x03)",
                 "Own Address Type: Random Device Address (0x01)", "Channel 37: true", "Channel 38: true",
                 "Channel 39: true", "Advertising Filter Policy: Allow Scan Req from Any, Allow Connect Req from Any (0x00)"]:
        assert line in params.split("\nFrame ")[0], line
    data = text[text.index("Bluetooth HCI Command - LE Set Advertising Data"):].split("\nFrame ")[0]
    epoch = float(re.search(r"Epoch Time: ([0-9.]+)", frames[[i for i, m in enumerate(commands) if m and m.group(2) == "0x2008"][0]]).group(1))
    expected_id = id_at(load_base_key(state_dir), int(epoch * 1000)).hex()
    for line in ["Parameter Total Length: 32", "Data Length: 23", "Type: Flags (0x01)", "BR/EDR Not Supported: true",
                 "LE General Discoverable Mode: true", "Type: 16-bit Service Class UUIDs (0x03)", "UUID 16: Unknown (0x4e56)",
                 "Length: 15", "Type: Manufacturer Specific (0xff)", "Company ID: Unknown (0x22b5)", f"Data: {expected_id}"]:
        assert line in data, line


@pytest.mark.system
def test_too_fast_interval_is_refused_before_sending_on_a_pre_5_controller(tmp_path, state_dir):
    pcap = tmp_path / "fast.pcap"  # the pcap transport answers as a Bluetooth 4.2 controller
    service, states, finish = start_service(state_dir, f"pcap:{pcap}", config=BeaconConfig(interval_ms=50.0, retry_max_s=1))
    try:
        wait_until(lambda: states and states[-1][1] == "error", 20.0, "an error state")
    finally:
        finish()
    assert "below 100 ms" in states[-1][2]["error"] and "older than Bluetooth 5.0" in states[-1][2]["error"]
    text = tshark_text(pcap)
    assert "LE Set Advertising Parameters" not in text and "LE Set Advertising Data" not in text


@pytest.mark.system
def test_raw_hci_without_bluetooth_or_privilege_gives_one_clear_message(state_dir):
    result = run_kiosk("--state-dir", str(state_dir), "beacon", "--transport", "hci0", "--assume-clock-synced",
                       "--seconds", "2")
    assert "Traceback" not in result.stderr
    # without Bluetooth in the kernel or without hci0, the beacon says so and keeps retrying (an adapter may appear)
    clear = ["this kernel has no Bluetooth support (AF_BLUETOOTH", "hci0: no such Bluetooth adapter", "CAP_NET_RAW"]
    assert any(words in result.stderr for words in clear), result.stderr
    assert len([line for line in result.stderr.splitlines() if "WARNING" in line]) == 1  # said once, not per retry
    assert isinstance(explain_socket_error(errno.EPERM, 0), CapabilityMissing)
    message = str(explain_socket_error(errno.EPERM, 0))
    assert "CAP_NET_RAW" in message and "hci0" in message


def test_missing_capability_stops_the_service_with_one_message(state_dir, caplog):
    def no_privilege(spec):
        raise explain_socket_error(errno.EPERM, 0)
    stop = threading.Event()
    states = []
    service = BeaconService(BeaconConfig(), state_dir, transport="hci0", assume_synced=True, stop=stop,
                            status=lambda c, s, d: states.append((s, d)), transport_factory=no_privilege)
    assert service.run(seconds=5) == 1
    assert states == [("error", {"error": states[0][1]["error"], "transport": "hci0"})]
    assert "CAP_NET_RAW" in states[0][1]["error"]
    assert sum("CAP_NET_RAW" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.system
def test_bad_transport_option_is_a_usage_error(state_dir):
    result = run_kiosk("--state-dir", str(state_dir), "beacon", "--transport", "bluetooth!", "--seconds", "1")
    assert result.returncode == 2 and "hciN, unix:PATH or pcap:FILE" in result.stderr
