"""HCI over H4: command packets, a resynchronising event reader, and a small controller driver.

Only what a beacon and a passive scanner need (Core spec vol 4 part E): Reset, Read Local Version,
the LE advertising commands and the LE scan commands. Every parameter is checked before it is sent,
and every controller error becomes an :class:`HciError` whose message says what went wrong.
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Iterator

from beacon.advert import check_length
from beacon.transport import AdapterMissing, Transport

log = logging.getLogger("beacon.hci")

H4_COMMAND, H4_ACL, H4_EVENT = 0x01, 0x02, 0x04

OP_SET_EVENT_MASK = 0x0C01
OP_RESET = 0x0C03
OP_READ_LOCAL_VERSION = 0x1001
OP_LE_SET_EVENT_MASK = 0x2001
OP_LE_SET_RANDOM_ADDRESS = 0x2005
OP_LE_SET_ADV_PARAMS = 0x2006
OP_LE_SET_ADV_DATA = 0x2008
OP_LE_SET_ADV_ENABLE = 0x200A
OP_LE_SET_SCAN_PARAMS = 0x200B
OP_LE_SET_SCAN_ENABLE = 0x200C

OPCODE_NAMES = {
    OP_SET_EVENT_MASK: "Set Event Mask", OP_RESET: "Reset", OP_READ_LOCAL_VERSION: "Read Local Version Information",
    OP_LE_SET_EVENT_MASK: "LE Set Event Mask", OP_LE_SET_RANDOM_ADDRESS: "LE Set Random Address",
    OP_LE_SET_ADV_PARAMS: "LE Set Advertising Parameters", OP_LE_SET_ADV_DATA: "LE Set Advertising Data",
    OP_LE_SET_ADV_ENABLE: "LE Set Advertising Enable", OP_LE_SET_SCAN_PARAMS: "LE Set Scan Parameters",
    OP_LE_SET_SCAN_ENABLE: "LE Set Scan Enable",
}

EVT_DISCONNECTION_COMPLETE = 0x05
EVT_COMMAND_COMPLETE = 0x0E
EVT_COMMAND_STATUS = 0x0F
EVT_HARDWARE_ERROR = 0x10
EVT_NUM_COMPLETED_PACKETS = 0x13
EVT_DATA_BUFFER_OVERFLOW = 0x1A
EVT_LE_META = 0x3E
EVT_VENDOR = 0xFF
LE_ADVERTISING_REPORT = 0x02

ADV_IND, ADV_SCAN_IND, ADV_NONCONN_IND = 0x00, 0x02, 0x03
OWN_ADDRESS_PUBLIC, OWN_ADDRESS_RANDOM = 0x00, 0x01
CHANNELS_ALL = 0x07
HCI_VERSION_5_0 = 0x09
RSSI_UNAVAILABLE = 127
QUIET_S = 0.1  # a stream silent this long mid-packet lost the rest of that packet

# (name from the Core spec, what it usually means for a beacon)
HCI_ERRORS: dict[int, tuple[str, str]] = {
    0x01: ("Unknown HCI Command", "this controller does not implement the command"),
    0x02: ("Unknown Connection Identifier", "no such connection"),
    0x03: ("Hardware Failure", "the controller reported a hardware fault; it will be reset"),
    0x07: ("Memory Capacity Exceeded", "the controller has no room for this (advertising sets or data)"),
    0x0C: ("Command Disallowed", "not allowed in the controller's current state (e.g. changing the address "
           "while advertising or scanning, or legacy advertising after extended advertising was used; a reset "
           "clears it)"),
    0x11: ("Unsupported Feature or Parameter Value", "the controller does not support this value"),
    0x12: ("Invalid HCI Command Parameters", "a parameter is out of range for this controller (interval, "
           "address type, or advertising from a random address that was never set)"),
    0x1F: ("Unspecified Error", "the controller gave no reason"),
    0x3A: ("Controller Busy", "the controller is busy; try again"),
    0x45: ("Packet Too Long", "the data is longer than the controller accepts"),
}


class HciError(RuntimeError):
    """The controller answered a command with an error status."""

    def __init__(self, opcode: int, status: int):
        self.opcode, self.status = opcode, status
        name, hint = HCI_ERRORS.get(status, ("error", "see the Bluetooth Core spec, vol 1 part F"))
        command = OPCODE_NAMES.get(opcode, "HCI command")
        super().__init__(f"{command} (0x{opcode:04X}) failed: {name} (0x{status:02X}): {hint}")


class ParameterError(ValueError):
    """A parameter refused before sending: the controller would reject it, or misbehave."""


class ControllerTimeout(AdapterMissing):
    """No answer to a command: the controller is stuck or gone."""


def command_packet(opcode: int, params: bytes = b"") -> bytes:
    if not 0 <= opcode <= 0xFFFF:
        raise ParameterError(f"opcode 0x{opcode:X} is not 16 bits")
    if len(params) > 255:
        raise ParameterError(f"HCI command parameters are at most 255 bytes, not {len(params)}")
    return struct.pack("<BHB", H4_COMMAND, opcode, len(params)) + params


# ---- events ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    code: int
    params: bytes


@dataclass(frozen=True)
class AdvReport:
    event_type: int
    address_type: int
    address: bytes  # as on the wire: little-endian
    data: bytes
    rssi: int  # dBm; 127 = not available

    @property
    def address_text(self) -> str:
        return ":".join(f"{b:02X}" for b in reversed(self.address))


def _event_shape_ok(code: int, params: bytes) -> bool:
    """Lengths the spec fixes: a frame that fails this is garbage, and the reader resynchronises."""
    n = len(params)
    if code == EVT_COMMAND_COMPLETE:
        return n >= 3
    if code == EVT_COMMAND_STATUS:
        return n == 4
    if code == EVT_LE_META:
        return n >= 1
    if code == EVT_HARDWARE_ERROR or code == EVT_DATA_BUFFER_OVERFLOW:
        return n == 1
    if code == EVT_DISCONNECTION_COMPLETE:
        return n == 4
    if code == EVT_NUM_COMPLETED_PACKETS:
        return n >= 1 and n == 1 + 4 * params[0]
    return code == EVT_VENDOR


class H4Reader:
    """Turns a byte stream from a controller into events, skipping whatever is not one.

    A beacon host never has connections, so only event packets are expected; any other leading byte,
    an unknown event code or an impossible length is skipped one byte at a time until a well-formed
    event starts. A packet left incomplete when the stream goes quiet is dropped by :meth:`flush`.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> list[Event]:
        self.buffer += data
        events = []
        buf = self.buffer
        while buf:
            if buf[0] != H4_EVENT or (len(buf) >= 2 and not _known_event(buf[1])):
                del buf[0]
                self.skipped += 1
                continue
            if len(buf) < 3 or len(buf) < 3 + buf[2]:
                break  # wait for the rest
            code, length = buf[1], buf[2]
            params = bytes(buf[3:3 + length])
            if not _event_shape_ok(code, params):
                del buf[0]
                self.skipped += 1
                continue
            del buf[:3 + length]
            events.append(Event(code, params))
        if self.skipped:
            log.debug("skipped %d bytes of garbage from the controller", self.skipped)
        return events

    def flush(self) -> int:
        """Drop a partial packet (the stream went quiet mid-packet); returns the bytes dropped."""
        dropped = len(self.buffer)
        self.buffer.clear()
        self.skipped += dropped
        return dropped


def _known_event(code: int) -> bool:
    return code in (EVT_COMMAND_COMPLETE, EVT_COMMAND_STATUS, EVT_LE_META, EVT_HARDWARE_ERROR,
                    EVT_DATA_BUFFER_OVERFLOW, EVT_DISCONNECTION_COMPLETE, EVT_NUM_COMPLETED_PACKETS, EVT_VENDOR)


def parse_adv_reports(params: bytes) -> list[AdvReport]:
    """LE Advertising Report sub-event (interleaved per report, as controllers and Linux lay it out);
    a report overrunning the event ends the list, keeping the reports before it."""
    if len(params) < 2 or params[0] != LE_ADVERTISING_REPORT:
        return []
    reports = []
    pos = 2
    for _ in range(params[1]):
        if pos + 9 > len(params):
            break
        event_type, address_type = params[pos], params[pos + 1]
        address = params[pos + 2:pos + 8]
        length = params[pos + 8]
        end = pos + 9 + length
        if end + 1 > len(params):
            break
        rssi = struct.unpack_from("<b", params, end)[0]
        reports.append(AdvReport(event_type, address_type, bytes(address), bytes(params[pos + 9:end]), rssi))
        pos = end + 1
    return reports


# ---- parameters --------------------------------------------------------------------------------
def interval_units(ms: float) -> int:
    return round(ms / 0.625)


def adv_params(interval: int, adv_type: int, hci_version: int, own_address_type: int = OWN_ADDRESS_RANDOM) -> bytes:
    """LE Set Advertising Parameters, refused here rather than by the controller when out of range."""
    if not 0x0020 <= interval <= 0x4000:
        raise ParameterError(f"advertising interval {interval * 0.625:g} ms is outside 20 ms to 10.24 s")
    if adv_type in (ADV_SCAN_IND, ADV_NONCONN_IND) and hci_version < HCI_VERSION_5_0 and interval < 0x00A0:
        raise ParameterError(f"advertising interval {interval * 0.625:g} ms is below 100 ms, which controllers "
                             "older than Bluetooth 5.0 refuse for non-connectable adverts")
    if adv_type not in (ADV_IND, ADV_SCAN_IND, ADV_NONCONN_IND):
        raise ParameterError(f"advertising type {adv_type} is not a legacy undirected type")
    return struct.pack("<HHBBB6sBB", interval, interval, adv_type, own_address_type, 0, bytes(6), CHANNELS_ALL, 0)


def non_resolvable_address() -> bytes:
    """A fresh non-resolvable private address (two top bits 00, neither all zeros nor all ones)."""
    while True:
        addr = bytearray(secrets.token_bytes(6))
        addr[5] &= 0x3F
        random_part = int.from_bytes(addr, "little")
        if random_part not in (0, (1 << 46) - 1):
            return bytes(addr)


@dataclass(frozen=True)
class LocalVersion:
    hci_version: int
    hci_revision: int
    lmp_version: int
    manufacturer: int
    lmp_subversion: int

    @property
    def bluetooth(self) -> str:
        names = {6: "4.0", 7: "4.1", 8: "4.2", 9: "5.0", 10: "5.1", 11: "5.2", 12: "5.3", 13: "5.4"}
        return names.get(self.hci_version, f"HCI version {self.hci_version}")


# ---- the driver --------------------------------------------------------------------------------
class Controller:
    """One controller behind one transport; one command in flight at a time."""

    def __init__(self, transport: Transport, timeout: float = 2.0):
        self.transport = transport
        self.timeout = timeout
        self.reader = H4Reader()
        self.other_events: deque[Event] = deque(maxlen=1000)

    def close(self) -> None:
        self.transport.close()

    def command(self, opcode: int, params: bytes = b"") -> bytes:
        """Send one command and return its return parameters after the status byte."""
        self.transport.send(command_packet(opcode, params))
        deadline = time.monotonic() + self.timeout
        while True:
            events = self._events(min(QUIET_S, deadline - time.monotonic()))
            for i, event in enumerate(events):
                try:
                    answer = self._answer_to(opcode, event)
                except HciError:
                    self.other_events.extend(events[i + 1:])
                    raise
                if answer is not None:
                    self.other_events.extend(events[i + 1:])  # e.g. a report that came with the answer
                    return answer
                self.other_events.append(event)
            if time.monotonic() >= deadline:
                raise ControllerTimeout(f"no answer to {OPCODE_NAMES.get(opcode, hex(opcode))} within {self.timeout:g} s")

    def _events(self, timeout: float) -> list[Event]:
        data = self.transport.recv(max(0.0, timeout))
        if not data:
            if self.reader.buffer:
                log.warning("dropped %d bytes of an incomplete packet from the controller", self.reader.flush())
            return []
        return self.reader.feed(data)

    @staticmethod
    def _answer_to(opcode: int, event: Event) -> bytes | None:
        if event.code == EVT_COMMAND_COMPLETE:
            got = struct.unpack_from("<H", event.params, 1)[0]
            if got != opcode:
                return None
            status = event.params[3] if len(event.params) > 3 else 0
            if status:
                raise HciError(opcode, status)
            return event.params[4:]
        if event.code == EVT_COMMAND_STATUS:
            status, _, got = struct.unpack("<BBH", event.params)
            if got != opcode:
                return None
            if status:
                raise HciError(opcode, status)
            return b""
        if event.code == EVT_HARDWARE_ERROR:
            raise HciError(opcode, 0x03)
        return None

    def next_events(self, timeout: float) -> Iterator[Event]:
        """Events that are not command answers (advertising reports), waiting up to ``timeout``."""
        while self.other_events:
            yield self.other_events.popleft()
        yield from self._events(timeout)

    # ---- commands -----------------------------------------------------------------------------
    def reset(self) -> None:
        self.command(OP_RESET)

    def read_local_version(self) -> LocalVersion:
        ret = self.command(OP_READ_LOCAL_VERSION)
        if len(ret) < 8:
            raise HciError(OP_READ_LOCAL_VERSION, 0x1F)
        return LocalVersion(*struct.unpack_from("<BHBHH", ret))

    def set_random_address(self, address: bytes) -> None:
        if len(address) != 6:
            raise ParameterError("a Bluetooth address is 6 bytes")
        self.command(OP_LE_SET_RANDOM_ADDRESS, address)

    def set_adv_params(self, interval: int, hci_version: int, adv_type: int = ADV_NONCONN_IND) -> None:
        self.command(OP_LE_SET_ADV_PARAMS, adv_params(interval, adv_type, hci_version))

    def set_adv_data(self, data: bytes) -> None:
        check_length(data)
        self.command(OP_LE_SET_ADV_DATA, bytes([len(data)]) + data.ljust(31, b"\x00"))

    def set_adv_enable(self, enable: bool) -> None:
        self.command(OP_LE_SET_ADV_ENABLE, bytes([int(enable)]))

    def enable_le_events(self) -> None:
        """Let LE meta events (advertising reports) through: the default event mask blocks them."""
        self.command(OP_SET_EVENT_MASK, struct.pack("<Q", 0x20001FFFFFFFFFFF))
        self.command(OP_LE_SET_EVENT_MASK, struct.pack("<Q", 0x1F))

    def set_scan_params(self, interval: int = 0x0010, window: int = 0x0010, active: bool = False) -> None:
        if not (0x0004 <= window <= interval <= 0x4000):
            raise ParameterError("scan window must be within the scan interval, 2.5 ms to 10.24 s")
        self.command(OP_LE_SET_SCAN_PARAMS, struct.pack("<BHHBB", int(active), interval, window, OWN_ADDRESS_PUBLIC, 0))

    def set_scan_enable(self, enable: bool, filter_duplicates: bool = False) -> None:
        self.command(OP_LE_SET_SCAN_ENABLE, bytes([int(enable), int(filter_duplicates)]))

    def advertising_reports(self, seconds: float) -> Iterator[AdvReport]:
        """Reports arriving within ``seconds`` (scanning must be enabled)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for event in self.next_events(min(left, QUIET_S)):
                if event.code == EVT_LE_META:
                    yield from parse_adv_reports(event.params)
