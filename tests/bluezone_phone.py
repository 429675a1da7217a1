"""A simulated Bluezone phone on an emulated controller, written independently of beacon.hci/ids.

It speaks H4 itself, scans the way Bluezone's Android scanner does (keeps adverts listing service
0x4E56, takes the ID from manufacturer data 0x22B5), logs (ID, RSSI, time) like the app's trace table,
and matches an F0 message the way ``BluezoneIdTrace.checkContactF`` does: regenerate each slot's ID from
the daily key and look it up in the log within that slot's time window, both ends inclusive.
"""

from __future__ import annotations

import hashlib
import select
import socket
import struct
import time
from dataclasses import dataclass

from beacon.advert import bluezone_id_from_ad  # the parser the issue asks to share with the tests

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Record:
    bluezone_id: bytes
    rssi: int
    time_ms: int


class Phone:
    def __init__(self, socket_path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(socket_path)
        self.buffer = b""
        self.log: list[Record] = []
        self.other_adverts = 0
        self.addresses: set[tuple[int, bytes]] = set()  # (address type, address as on the wire) of Bluezone adverts
        self.command(0x0C03)  # Reset

    def close(self) -> None:
        self.sock.close()

    # ---- H4 --------------------------------------------------------------------------------------
    def command(self, opcode: int, params: bytes = b"") -> bytes:
        self.sock.sendall(struct.pack("<BHB", 1, opcode, len(params)) + params)
        deadline = time.monotonic() + 3
        answer = None
        while answer is None and time.monotonic() < deadline:
            for code, body in self._events(0.2):  # handle everything, even what follows the answer
                if code == 0x0E and struct.unpack_from("<H", body, 1)[0] == opcode:
                    assert body[3] == 0, f"phone: command 0x{opcode:04X} failed with 0x{body[3]:02X}"
                    answer = body[4:]
                elif code == 0x0F and struct.unpack_from("<H", body, 2)[0] == opcode:
                    assert body[0] == 0, f"phone: command 0x{opcode:04X} status 0x{body[0]:02X}"
                    answer = b""
                else:
                    self._handle(code, body)
        if answer is not None:
            return answer
        raise TimeoutError(f"phone: no answer to 0x{opcode:04X}")

    def _events(self, timeout: float) -> list[tuple[int, bytes]]:
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if ready:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("phone: emulator closed the connection")
            self.buffer += chunk
        events = []
        while len(self.buffer) >= 3 and len(self.buffer) >= 3 + self.buffer[2]:
            assert self.buffer[0] == 0x04, f"phone: unexpected packet type {self.buffer[0]}"
            code, length = self.buffer[1], self.buffer[2]
            events.append((code, self.buffer[3:3 + length]))
            self.buffer = self.buffer[3 + length:]
        return events

    def _handle(self, code: int, body: bytes) -> None:
        if code != 0x3E or body[0] != 0x02:
            return
        pos = 2
        for _ in range(body[1]):
            address_type, address, length = body[pos + 1], bytes(body[pos + 2:pos + 8]), body[pos + 8]
            data = body[pos + 9:pos + 9 + length]
            rssi = struct.unpack_from("<b", body, pos + 9 + length)[0]
            pos += 10 + length
            bluezone_id = bluezone_id_from_ad(data)
            if bluezone_id is None:
                self.other_adverts += 1
                continue
            self.addresses.add((address_type, address))
            self.log.append(Record(bluezone_id, rssi, time.time_ns() // 1_000_000))

    # ---- the phone's jobs ----------------------------------------------------------------------
    def listen(self, seconds: float) -> list[Record]:
        self.command(0x0C01, struct.pack("<Q", 0x20001FFFFFFFFFFF))  # Set Event Mask: + LE Meta
        self.command(0x2001, struct.pack("<Q", 0x1F))                 # LE Set Event Mask
        self.command(0x200B, struct.pack("<BHHBB", 0, 0x0010, 0x0010, 0, 0))  # passive, 10 ms / 10 ms
        self.command(0x200C, b"\x01\x00")                             # scan on, keep duplicates
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for code, body in self._events(0.1):
                self._handle(code, body)
        self.command(0x200C, b"\x00\x00")
        return self.log

    def advertise(self, bluezone_id: bytes, address: bytes) -> None:
        """Broadcast like a Bluezone phone (used to give the kiosk's nearby counter phones to count)."""
        data = bytes.fromhex("020106030356 4E0FFFB522".replace(" ", "")) + bluezone_id
        self.command(0x2005, address)
        self.command(0x2006, struct.pack("<HHBBB6sBB", 0x00A0, 0x00A0, 3, 1, 0, bytes(6), 7, 0))
        self.command(0x2008, bytes([len(data)]) + data.ljust(31, b"\0"))
        self.command(0x200A, b"\x01")

    def matches(self, f0: dict) -> bool:
        """checkContactF over every entry of the F0 message's "data" list."""
        return any(self._match_entry(e["daily_key"], e["time_start"], e["max"], e["time_end"]) for e in f0["data"])

    def _match_entry(self, daily_key_hex: str, time_start_s: int, max_roll: int, time_end_s: int) -> bool:
        salt = b"bluzonesubkey"
        daily_key = bytes.fromhex(daily_key_hex)
        subkey_input = daily_key + salt
        time_next, time_end = time_start_s * 1000, time_end_s * 1000
        delta = DAY_MS // max_roll
        i = 0
        while time_next <= time_end:
            subkey_input = hashlib.sha256(subkey_input).digest()
            bluezone_id = bytes(subkey_input[k] for k in (0, 4, 8, 12, 16, 18, 20, 22, 24, 26, 28, 30))
            start, time_next = time_next, time_next + delta
            if any(r.bluezone_id == bluezone_id and start <= r.time_ms <= time_next for r in self.log):
                return True
            i += 1
            if i == max_roll:
                daily_key = hashlib.sha256(daily_key).digest()
                subkey_input = daily_key + salt
                i = 0
        return False
