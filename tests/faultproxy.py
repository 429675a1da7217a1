"""A fault-injecting TCP proxy for HTTP/1.1, between the real sync client and the real upstream.

Per request it chooses (seeded, so a failing run can be replayed) one of:
  pass          forward the request and the answer
  refuse        reset the connection without an answer, nothing forwarded (as a dead port would)
  http500       answer 500 itself, the request never reaches the upstream
  http503       answer 503 with Retry-After itself
  stall         read the request, never answer (the client's read timeout must fire)
  cut_request   forward half of the request, then cut both sides (the upstream never sees all of it)
  cut_response  forward the request, wait for the upstream's full answer (it has committed), then cut
                the client off before it reads a byte: the case only idempotency keys can save
It can also go down (stop listening: connections refused) and come back on the same port.
Only what a proxy needs of HTTP is parsed: the head and a Content-Length body.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

FAULTS = ("refuse", "http500", "http503", "stall", "cut_request", "cut_response")


@dataclass
class ProxyStats:
    modes: Counter = field(default_factory=Counter)
    paths: Counter = field(default_factory=Counter)
    bodies: list = field(default_factory=list)         # (path, body) of every request answered by the upstream
    arrivals: list = field(default_factory=list)       # (loop time, path, mode) of every request

    @property
    def total(self) -> int:
        return sum(self.modes.values())

    @property
    def faulted(self) -> int:
        return self.total - self.modes["pass"]


class FaultProxy:
    def __init__(self, upstream_port: int, faults: dict[str, float] | None = None, seed: int = 6,
                 retry_after_s: int = 1, stall_s: float = 30.0):
        self.upstream_port = upstream_port
        self.faults = faults or {}
        assert set(self.faults) <= set(FAULTS) and sum(self.faults.values()) < 1
        self.random = random.Random(seed)
        self.retry_after_s = retry_after_s
        self.stall_s = stall_s
        self.stats = ProxyStats()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._lock = threading.Lock()

    # ---- control (from the test's thread) --------------------------------------------------------
    def start(self) -> "FaultProxy":
        self._thread.start()
        self._call(self._listen())
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def down(self) -> None:
        """Stop listening and drop every open connection: the client sees refused connections."""
        self._call(self._close())

    def up(self) -> None:
        self._call(self._listen())

    def stop(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def set_faults(self, faults: dict[str, float]) -> None:
        with self._lock:
            self.faults = dict(faults)

    def _call(self, coro) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ---- the proxy (in its own event loop) -------------------------------------------------------
    async def _listen(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._handle, sock=sock)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    def _choose(self) -> str:
        with self._lock:
            roll = self.random.random()
            for mode, share in self.faults.items():
                if roll < share:
                    return mode
                roll -= share
        return "pass"

    def _record(self, mode: str, path: str) -> None:
        self.stats.modes[mode] += 1
        self.stats.paths[path] += 1
        self.stats.arrivals.append((self._loop.time(), path, mode))

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self._writers.add(client_w)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await _read_message(client_r)
                if request is None:
                    return
                head, body = request
                path = head.split(b" ", 2)[1].decode("latin-1")
                mode = self._choose()
                self._record(mode, path)
                if mode == "refuse":
                    _reset(client_w)
                    return
                if mode == "http500":
                    client_w.write(_canned(500, "Internal Server Error"))
                elif mode == "http503":
                    client_w.write(_canned(503, "Service Unavailable", f"Retry-After: {self.retry_after_s}\r\n"))
                elif mode == "stall":
                    try:
                        await asyncio.wait_for(client_r.read(1), self.stall_s)  # returns when the client gives up
                    except asyncio.TimeoutError:
                        pass
                    return
                else:
                    if upstream is None:
                        upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                    up_r, up_w = upstream
                    if mode == "cut_request":
                        up_w.write(head + body[: len(body) // 2])
                        await up_w.drain()
                        _reset(up_w)
                        _reset(client_w)
                        return
                    up_w.write(head + body)
                    await up_w.drain()
                    answer = await _read_message(up_r)
                    if answer is None:  # the upstream went away (restart): the client sees a cut
                        return
                    if mode == "cut_response":
                        _reset(client_w)
                        return
                    self.stats.bodies.append((path, body))
                    client_w.write(answer[0] + answer[1])
                await client_w.drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            return
        finally:
            self._writers.discard(client_w)
            if upstream is not None:
                upstream[1].close()
            client_w.close()


async def _read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One HTTP/1.1 message with a Content-Length body (all the kiosk and uvicorn send)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding":
            raise AssertionError("the fault proxy does not speak chunked encoding")
    body = await reader.readexactly(length) if length else b""
    return head, body


def _canned(status: int, text: str, extra: str = "") -> bytes:
    body = ('{"reason": "proxy-%d", "message": "%s", "server_time_ms": 0}' % (status, text)).encode()
    return (f"HTTP/1.1 {status} {text}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.close()
