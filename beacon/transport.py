"""How HCI bytes reach a controller: one small interface, three ways.

- ``hciN``: the kernel's raw HCI socket for adapter N (the Pi). Needs CAP_NET_RAW (and CAP_NET_ADMIN to
  bring the adapter up). Uses numeric constants because some Python builds lack ``socket.AF_BLUETOOTH``.
- ``unix:PATH``: H4 over a unix stream socket, as BlueZ's emulator ``btvirt -s`` serves it.
- ``pcap:FILE``: no controller at all: the command stream is written as a pcap (link type 201,
  BLUETOOTH_HCI_H4_WITH_PHDR) for Wireshark, and every command is answered with success.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import select
import socket
import struct
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

AF_BLUETOOTH = 31
BTPROTO_HCI = 1
SOL_HCI = 0
HCI_FILTER = 2
HCI_CHANNEL_RAW = 0
HCIDEVUP = 0x400448C9  # _IOW('H', 201, int)
H4_EVENT = 0x04
PCAP_LINKTYPE_H4_WITH_PHDR = 201
DIRECTION_SENT, DIRECTION_RECEIVED = 0, 1

TRANSPORT_PATTERN = r"hci[0-9]{1,3}|unix:.+|pcap:.+"


class AdapterMissing(ConnectionError):
    """No controller to talk to (not there, unplugged, emulator stopped); retrying may help."""


class CapabilityMissing(PermissionError):
    """The process lacks a privilege the transport needs; retrying cannot help."""


class Transport(ABC):
    """Bytes to and from one controller, H4-framed (packet type byte first)."""

    name: str

    @abstractmethod
    def send(self, packet: bytes) -> None: ...

    @abstractmethod
    def recv(self, timeout: float) -> bytes:
        """Bytes from the controller, or b"" if none came within ``timeout``; AdapterMissing if gone."""

    @abstractmethod
    def close(self) -> None: ...


def open_transport(spec: str, clock_ms: Callable[[], int] | None = None) -> Transport:
    if not re.fullmatch(TRANSPORT_PATTERN, spec):
        raise ValueError(f"transport {spec!r} is not one of hciN, unix:PATH, pcap:FILE")
    if spec.startswith("unix:"):
        return UnixH4Transport(spec[5:])
    if spec.startswith("pcap:"):
        return PcapTransport(Path(spec[5:]), clock_ms)
    return RawHciTransport(int(spec[3:]))


class _SocketTransport(Transport):
    sock: socket.socket

    def send(self, packet: bytes) -> None:
        try:
            self.sock.sendall(packet)
        except OSError as exc:
            if exc.errno == errno.ENETDOWN:
                raise AdapterMissing(f"{self.name} is down: bring it up (hciconfig {self.name} up) or give "
                                     "the beacon CAP_NET_ADMIN") from None
            raise AdapterMissing(f"{self.name}: the controller is gone (send: {exc.strerror or exc})") from None

    def recv(self, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return b""
            data = self.sock.recv(4096)
        except OSError as exc:
            raise AdapterMissing(f"{self.name}: the controller is gone (read: {exc.strerror or exc})") from None
        if not data:
            raise AdapterMissing(f"{self.name}: the controller is gone (it closed the connection)")
        return data

    def close(self) -> None:
        self.sock.close()


class UnixH4Transport(_SocketTransport):
    def __init__(self, path: str):
        self.name = f"unix:{path}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise AdapterMissing(f"no controller at {path} ({exc.strerror})") from None


class _SockaddrHci(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("dev", ctypes.c_ushort), ("channel", ctypes.c_ushort)]


def explain_socket_error(err: int, dev: int) -> Exception:
    """One clear message per way a raw HCI socket can fail; the privilege ones are not retried."""
    if err in (errno.EPERM, errno.EACCES):
        return CapabilityMissing(
            f"hci{dev}: a raw HCI socket needs the CAP_NET_RAW capability (and CAP_NET_ADMIN to bring the "
            "adapter up): run as root, or give the service AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN")
    if err in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT):
        return AdapterMissing("this kernel has no Bluetooth support (AF_BLUETOOTH sockets are unavailable)")
    if err == errno.ENODEV:
        return AdapterMissing(f"hci{dev}: no such Bluetooth adapter")
    if err == errno.ERFKILL:
        return AdapterMissing(f"hci{dev}: the adapter is blocked by rfkill (rfkill unblock bluetooth)")
    return AdapterMissing(f"hci{dev}: {os.strerror(err)}")


class RawHciTransport(_SocketTransport):
    """The kernel's raw HCI channel; bluetoothd keeps running beside it (see docs/beacon.md)."""

    def __init__(self, dev: int):
        self.name = f"hci{dev}"
        try:
            self.sock = socket.socket(AF_BLUETOOTH, socket.SOCK_RAW | socket.SOCK_CLOEXEC, BTPROTO_HCI)
        except OSError as exc:
            raise explain_socket_error(exc.errno, dev) from None
        try:
            self._up(dev)
            addr = _SockaddrHci(AF_BLUETOOTH, dev, HCI_CHANNEL_RAW)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.bind(self.sock.fileno(), ctypes.byref(addr), ctypes.sizeof(addr)) != 0:
                raise explain_socket_error(ctypes.get_errno(), dev)
            # struct hci_ufilter: packet types (events only), event mask (all), opcode (any), padded to
            # its C size of 16 bytes: kernels since 2024's hardening refuse anything shorter (EINVAL).
            self.sock.setsockopt(SOL_HCI, HCI_FILTER, struct.pack("<IIIH2x", 1 << H4_EVENT, 0xFFFFFFFF, 0xFFFFFFFF, 0))
        except BaseException:
            self.sock.close()
            raise

    def _up(self, dev: int) -> None:
        import fcntl

        try:
            fcntl.ioctl(self.sock.fileno(), HCIDEVUP, dev)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EACCES):
                return  # no CAP_NET_ADMIN: fine if the adapter is already up (sends say so otherwise)
            if exc.errno != errno.EALREADY:
                raise explain_socket_error(exc.errno, dev) from None


class PcapTransport(Transport):
    """Writes what would be sent (and the answers it makes up) to a pcap file; no controller needed.

    It answers like a Bluetooth 4.2 controller (the Raspberry Pi 3's), so the stricter pre-5.0 rules apply.
    """

    HCI_VERSION = 0x08

    def __init__(self, path: Path, clock_ms: Callable[[], int] | None = None):
        self.name = f"pcap:{path}"
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.pending = bytearray()
        try:
            self.fh = open(path, "wb")
        except OSError as exc:
            raise AdapterMissing(f"cannot write {path} ({exc.strerror})") from None
        # pcap global header: magic, version 2.4, GMT offset, accuracy, snapshot length, link type
        self.fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, PCAP_LINKTYPE_H4_WITH_PHDR))
        self.fh.flush()

    def _record(self, direction: int, packet: bytes) -> None:
        ms = self.clock_ms()
        frame = struct.pack(">I", direction) + packet
        self.fh.write(struct.pack("<IIII", ms // 1000, (ms % 1000) * 1000, len(frame), len(frame)) + frame)
        self.fh.flush()

    def send(self, packet: bytes) -> None:
        self._record(DIRECTION_SENT, packet)
        if len(packet) >= 4 and packet[0] == 0x01:
            opcode = struct.unpack_from("<H", packet, 1)[0]
            ret = b"\x00"
            if opcode == 0x1001:  # Read Local Version Information
                ret += struct.pack("<BHBHH", self.HCI_VERSION, 0, self.HCI_VERSION, 0xFFFF, 0)
            answer = bytes([H4_EVENT, 0x0E, 3 + len(ret), 1]) + struct.pack("<H", opcode) + ret
            self._record(DIRECTION_RECEIVED, answer)
            self.pending += answer

    def recv(self, timeout: float) -> bytes:
        if not self.pending:
            time.sleep(min(timeout, 0.05))
            return b""
        data = bytes(self.pending)
        self.pending.clear()
        return data

    def close(self) -> None:
        self.fh.close()
