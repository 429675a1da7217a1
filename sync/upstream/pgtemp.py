"""A throwaway PostgreSQL server (initdb + pg_ctl from Debian's postgresql package), for the tests and
``kiosk bench fleet --pg-temp``: real PostgreSQL without touching any cluster the machine runs."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def pg_bin() -> Path:
    """The newest installed server binaries (Debian keeps each major version in its own directory)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL cluster on a private socket directory and a loopback port.

    initdb refuses to run as root, so as root every server command runs as the ``postgres`` user.
    ``settings`` are extra ``-c name=value`` server settings (the fleet bench raises max_connections).
    """

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.bin = pg_bin()
        self.base = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
        self.port = free_port()
        self.settings = settings or {}
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pg = pwd.getpwnam("postgres")
            os.chown(self.base, pg.pw_uid, pg.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.base / "data"
        self.url = f"postgresql://kiosk@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr or result.stdout}")

    def start(self) -> "PostgresServer":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "kiosk", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.resume()
        return self

    def resume(self) -> None:
        extra = "".join(f" -c {k}={v}" for k, v in self.settings.items())
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"), "-w", "-t", "60", "-o",
                  f"-k {self.base} -p {self.port} -c listen_addresses=127.0.0.1{extra}", "start")

    def pause(self) -> None:
        """Stop the server but keep its data (a database restart, as the upstream sees it)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        try:
            self.pause()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new database on this server; returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name
