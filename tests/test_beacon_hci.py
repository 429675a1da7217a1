"""The HCI layer against broken, hostile and silent controllers."""

import socket
import struct
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.hci import (ADV_NONCONN_IND, Controller, ControllerTimeout, H4Reader, HciError, ParameterError,
                        adv_params, command_packet, non_resolvable_address, parse_adv_reports)
from beacon.transport import AdapterMissing, UnixH4Transport, open_transport

RESET_DONE = bytes.fromhex("040E0401030C00")


def test_command_packets_are_h4_framed():
    assert command_packet(0x0C03) == bytes.fromhex("01030C00")
    assert command_packet(0x200A, b"\x01") == bytes.fromhex("010A200101")
    with pytest.raises(ParameterError, match="at most 255"):
        command_packet(0x2008, bytes(256))


@pytest.mark.parametrize("interval, version, words", [
    (0x001F, 9, "outside 20 ms to 10.24 s"),
    (0x4001, 9, "outside 20 ms to 10.24 s"),
    (0x009F, 8, "below 100 ms"),
])
def test_advertising_parameters_are_checked_before_sending(interval, version, words):
    with pytest.raises(ParameterError, match=words):
        adv_params(interval, ADV_NONCONN_IND, version)


def test_fast_adverts_are_fine_on_bluetooth_5():
    params = adv_params(0x0020, ADV_NONCONN_IND, 9)
    assert struct.unpack("<HHBBB6sBB", params) == (0x20, 0x20, 3, 1, 0, bytes(6), 7, 0)


def test_random_addresses_are_non_resolvable_and_fresh():
    addresses = {non_resolvable_address() for _ in range(200)}
    assert len(addresses) == 200
    assert all(a[5] >> 6 == 0 and len(a) == 6 for a in addresses)


def test_reader_skips_garbage_and_truncated_packets():
    reader = H4Reader()
    truncated = RESET_DONE[:5]
    events = reader.feed(b"\x00\xff\x01garbage" + truncated + b"\x03\x02" + RESET_DONE)
    # the truncated event swallows two bytes and is passed on as an answer to no command we sent;
    # the genuine answer after it still comes out whole
    assert (events[-1].code, events[-1].params) == (0x0E, bytes.fromhex("01030C00"))
    assert reader.skipped > 0 and not reader.buffer
    # a packet split across reads is put back together
    assert reader.feed(RESET_DONE[:2]) == [] and len(reader.feed(RESET_DONE[2:])) == 1
    # a partial packet left when the stream goes quiet is dropped
    reader.feed(RESET_DONE[:4])
    assert reader.flush() == 4 and reader.feed(RESET_DONE)[0].code == 0x0E


@settings(max_examples=400)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
def test_reader_never_crashes_and_recovers_after_quiet(garbage, chunk):
    reader = H4Reader()
    for i in range(0, len(garbage), chunk):
        for event in reader.feed(garbage[i:i + chunk]):
            assert 0 <= len(event.params) <= 255
    reader.flush()
    assert [e.code for e in reader.feed(RESET_DONE)] == [0x0E]


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_advertising_report_parser_survives_hostile_events(params):
    for report in parse_adv_reports(b"\x02" + params):
        assert len(report.address) == 6 and -128 <= report.rssi <= 127 and len(report.data) <= 255


class HostileController:
    """A unix-socket peer that answers each command with whatever the test scripts."""

    def __init__(self, path, answers):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.answers = list(answers)
        self.received = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn:
            for answer in self.answers:
                self.received.append(conn.recv(300))
                for part in answer:
                    if isinstance(part, float):
                        time.sleep(part)
                    else:
                        conn.sendall(part)
            time.sleep(2.0)


def test_driver_finds_the_answer_in_a_hostile_stream(tmp_path):
    path = tmp_path / "hostile"
    version = bytes.fromhex("040E0C01011000") + struct.pack("<BHBHH", 8, 0, 8, 0x000F, 0)
    HostileController(path, [
        [b"\x07\x07\x07", RESET_DONE[:5], 0.3, b"\xde\xad" + RESET_DONE],  # garbage, truncated, pause, answer
        [version[:6], 0.02, version[6:]],                                # one event in two writes
        [bytes.fromhex("040F04") + b"\x0C\x01\x0A\x20"],                 # Command Status with an error
    ])
    controller = Controller(UnixH4Transport(str(path)))
    controller.reset()
    assert controller.read_local_version().bluetooth == "4.2"
    with pytest.raises(HciError, match=r"LE Set Advertising Enable \(0x200A\) failed: Command Disallowed \(0x0C\)"):
        controller.set_adv_enable(True)
    assert controller.reader.skipped >= 5
    controller.close()


def test_silent_controller_times_out_as_missing(tmp_path):
    path = tmp_path / "silent"
    HostileController(path, [[]])
    controller = Controller(UnixH4Transport(str(path)), timeout=0.5)
    with pytest.raises(ControllerTimeout, match="no answer to Reset within 0.5 s"):
        controller.reset()
    assert isinstance(ControllerTimeout("x"), AdapterMissing)
    controller.close()


def test_unknown_error_codes_still_read_clearly():
    message = str(HciError(0x2006, 0x99))
    assert message.startswith("LE Set Advertising Parameters (0x2006) failed: error (0x99)")


@pytest.mark.parametrize("spec, words", [("unix:/nonexistent/bt", "no controller at /nonexistent/bt"),
                                         ("pcap:/nonexistent/dir/x.pcap", "cannot write")])
def test_transports_that_cannot_open_say_why(spec, words):
    with pytest.raises(AdapterMissing, match=words):
        open_transport(spec)
    with pytest.raises(ValueError, match="hciN, unix:PATH, pcap:FILE"):
        open_transport("usb:1")
