"""The check agent inside the appliance VM (Debian's python3, run as root by appliance-agent.service).

The host names a phase on the kernel command line (``kiosk.phase=...``); the agent runs that phase's
checks and reports over the virtio-serial port ``kiosk.ctl``, one JSON object per line:
``{"check": ...}`` results, ``{"ack": ID}`` for each committed check-in (power-cut), ``{"db": ...}``
what survived the last power cut, ``{"want": "screendump"}`` (the host answers ``{"done": ...}``),
``{"log": ...}`` progress, and ``{"phase-done": ...}`` before powering off.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

PORT = Path("/dev/virtio-ports/kiosk.ctl")
PAYLOAD = Path("/mnt/payload")
INSTALL = [str(PAYLOAD / "src/systemd/install.sh"), "--extras", "pi", "--wheelhouse", str(PAYLOAD / "wheelhouse")]
LOGS = Path("/var/log/appliance")
STATE = Path("/var/lib/kiosk")
DB = STATE / "kiosk.db"
SERVICES = ["kiosk-scanner.service", "kiosk-sync.service", "kiosk-beacon.service"]
UNITS = ["kiosk.target", *SERVICES]
VENV_PY = "/opt/kiosk/venv/bin/python"
BT_HELPER = str(PAYLOAD / "guest/bt.py")
VIVID = "/sys/bus/platform/drivers/vivid"


class Failed(Exception):
    """A check's expectation did not hold; the message is the detail the host prints."""


class Channel:
    def __init__(self) -> None:
        deadline = time.monotonic() + 60
        while not PORT.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"agent: {PORT} never appeared")
            time.sleep(0.2)
        self.fd = os.open(PORT, os.O_RDWR)
        self.buffer = b""
        self.lock = threading.Lock()

    def send(self, **message: object) -> None:
        data = (json.dumps(message) + "\n").encode()
        with self.lock:
            while data:
                data = data[os.write(self.fd, data):]

    def receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise Failed(f"the host did not answer within {timeout:.0f} s")
            self.buffer += os.read(self.fd, 65536)
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def sh(*cmd: str, timeout: float = 60, check: bool = True, log: str | None = None) -> str:
    """Run a command; its output (also appended to LOGS/log); Failed naming it if it fails."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"{' '.join(cmd)}: no result after {timeout:.0f} s") from None
    out = proc.stdout + proc.stderr
    if log:
        with open(LOGS / log, "a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{out}\n[exit {proc.returncode}]\n")
    if check and proc.returncode != 0:
        raise Failed(f"{' '.join(cmd)}: exit {proc.returncode}: {out.strip()[-400:]}")
    return proc.stdout


def show(unit: str, *props: str) -> dict[str, str]:
    out = sh("systemctl", "show", unit, "-p", ",".join(props))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(what: str, predicate, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Failed as exc:
            last = str(exc)
            result = None
        else:
            result = last
        if result:
            return result
        time.sleep(every)
    raise Failed(f"{what}: not within {timeout:.0f} s (last: {str(last)[:900]})")


def status() -> dict:
    out = sh("/usr/local/bin/kiosk", "status", "--json", check=False, timeout=120)
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        raise Failed(f"kiosk status --json printed no JSON: {out[-300:]!r}") from None


def component(name: str) -> dict:
    """A service's own report in the status table (cheaper than `kiosk status` under emulation)."""
    try:
        with sqlite3.connect(f"file:{DB}?mode=ro", uri=True, timeout=10) as db:
            row = db.execute("SELECT state, detail FROM status WHERE component = ?", [name]).fetchone()
    except sqlite3.Error as exc:
        raise Failed(f"status table: {exc}") from None
    return {"state": row[0], **json.loads(row[1] or "{}")} if row else {}


def all_active() -> bool:
    states = {s: show(s, "ActiveState", "SubState", "NRestarts") for s in SERVICES}
    down = {s: p for s, p in states.items() if p["ActiveState"] != "active"}
    if down:  # why, in the words of the service's own last log lines
        raise Failed("; ".join(f"{s} {p['ActiveState']}/{p['SubState']} after {p['NRestarts']} restarts: "
                               + " | ".join(sh("journalctl", "-u", s, "-n", "3", "--no-pager", "-o", "cat",
                                               check=False).strip().splitlines()[-3:])[-300:]
                               for s, p in down.items()))
    return True


# ---- checks --------------------------------------------------------------------------------------

def bluetooth_hardware() -> str:
    """The VM's four controllers, made again once the boot has settled.

    Under emulation, while the VM boots, btvirt can answer the kernel's first HCI_Reset after its
    2 s timeout ("Opcode 0x0c03 failed: -110"); that controller then stays unusable through mgmt
    (bluepy's "Invalid Index"). A Pi's chip does not do that, so the VM's hardware is plugged in
    again before the checks.
    """
    sh("systemctl", "restart", "appliance-btvirt.service", timeout=60)
    deadline = time.monotonic() + 60
    while len(found := sorted(p.name for p in Path("/sys/class/bluetooth").glob("hci*"))) < 4:
        if time.monotonic() > deadline:
            raise Failed(f"btvirt's controllers did not all come back: {found}")
        time.sleep(1)
    time.sleep(5)  # bluetoothd powers them up
    return f"controllers {found} made again after the boot"


def vm_gpu() -> str:
    """The VM's GPU: Mesa's softpipe, written as a drop-in for the scanner before install.sh runs.

    The VM has no GPU, so Mesa draws SDL's OpenGL ES on the CPU. Its default there, llvmpipe, crashed
    the kiosk's process in set_mode or in the first display update here (a segfault, with or without
    llvmpipe's threads); softpipe, Mesa's plain rasteriser, draws the same picture. A Pi's v3d GPU
    uses neither. The drop-in belongs to the VM's hardware, as btvirt does: install.sh neither writes
    nor removes it, so an upgrade leaves it as it was.
    """
    dropin = Path("/etc/systemd/system/kiosk-scanner.service.d/appliance-vm-gpu.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("# The VM's GPU is Mesa on the CPU: softpipe (llvmpipe crashed here), see tests/appliance/guest/agent.py\n"
                      "[Service]\nEnvironment=GALLIUM_DRIVER=softpipe\n")
    return f"{dropin}: GALLIUM_DRIVER=softpipe"


def check_install() -> dict:
    Path("/etc/kiosk").mkdir(exist_ok=True)
    # The venue manager writes the authority's keys before installing; install.sh must keep the file.
    config = (PAYLOAD / "config/kiosk.toml").read_text()
    Path("/etc/kiosk/kiosk.toml").write_text(config)
    out = sh(*INSTALL, timeout=1500, log="install.log")
    enabled = {u: sh("systemctl", "is-enabled", u, check=False).strip() for u in UNITS}
    if any(v != "enabled" for v in enabled.values()):
        raise Failed(f"not every unit of kiosk.target is enabled: {enabled}")
    if Path("/etc/kiosk/kiosk.toml").read_text() != config:
        raise Failed("install.sh changed the existing /etc/kiosk/kiosk.toml")
    picamera = [line for line in out.splitlines() if "picamera2" in line]
    if not picamera:
        raise Failed("install.sh said nothing about python3-picamera2, which plain Debian lacks")
    return {"enabled": enabled, "said": picamera[0][:200]}


def check_notify_ready() -> dict:
    wait_for("kiosk services active", all_active, 300, every=2)
    found = {}
    for unit in SERVICES:
        p = show(unit, "Type", "NotifyAccess", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
        if p["Type"] != "notify":
            raise Failed(f"{unit}: Type={p['Type']}, not notify")
        gap = (int(p["ActiveEnterTimestampMonotonic"]) - int(p["ExecMainStartTimestampMonotonic"])) / 1e6
        if gap <= 0:
            raise Failed(f"{unit}: active before its process started")
        found[unit] = {"start_to_ready_s": round(gap, 2)}
    # Watch one restart as systemd sees it: "activating" until the service sends READY=1.
    unit = "kiosk-sync.service"
    sh("systemctl", "restart", "--no-block", unit)
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = show(unit, "ActiveState", "SubState")
        label = f"{state['ActiveState']}/{state['SubState']}"
        if not seen or seen[-1] != label:
            seen.append(label)
        if state["ActiveState"] == "active" and len(seen) > 1:
            break
        time.sleep(0.1)
    if "activating/start" not in seen or seen[-1] != "active/running":
        raise Failed(f"{unit} restart went {seen}: expected activating/start, then active/running after READY")
    found["restart_states"] = seen
    return found


def main_pid(unit: str) -> int:
    return int(show(unit, "MainPID")["MainPID"])


def check_watchdog() -> dict:
    unit = "kiosk-scanner.service"
    wait_for("scanner active", lambda: show(unit, "ActiveState")["ActiveState"] == "active", 180)
    pid = main_pid(unit)
    since = sh("date", "+%Y-%m-%d %H:%M:%S").strip()
    os.kill(pid, 19)  # SIGSTOP: frozen, as a process stuck in a driver call would be
    started = time.monotonic()
    wait_for("systemd to kill the frozen scanner", lambda: main_pid(unit) != pid, 120)
    killed_after = time.monotonic() - started
    wait_for("scanner active again", lambda: show(unit, "ActiveState")["ActiveState"] == "active", 240)
    journal = sh("journalctl", "-u", unit, "--since", since, "--no-pager", "-o", "cat")
    if "watchdog" not in journal.lower():
        raise Failed(f"the journal of {unit} does not mention the watchdog: {journal[-400:]}")
    line = next(entry for entry in journal.splitlines() if "watchdog" in entry.lower())
    return {"unit": unit, "watchdog_sec": show(unit, "WatchdogUSec")["WatchdogUSec"],
            "killed_after_s": round(killed_after, 1), "journal": line.strip()[:200]}


def checkin(payload: str) -> str:
    out = sh("/usr/local/bin/kiosk", "checkin", "--payload", payload, timeout=120)
    return out.strip()


def check_crash() -> dict:
    unit = "kiosk-scanner.service"
    before = int(show(unit, "NRestarts")["NRestarts"])
    pid = main_pid(unit)
    os.kill(pid, 9)
    wait_for("scanner restarted", lambda: main_pid(unit) not in (0, pid)
             and show(unit, "ActiveState")["ActiveState"] == "active", 240)
    after = int(show(unit, "NRestarts")["NRestarts"])
    checkin_id = checkin(f"APPLIANCE-CRASH-{uuid.uuid4().hex}")
    with sqlite3.connect(f"file:{DB}?mode=ro", uri=True) as db:
        stored = db.execute("SELECT count(*) FROM checkins WHERE id = ?", [checkin_id]).fetchone()[0]
    if after <= before or not stored:
        raise Failed(f"NRestarts {before} -> {after}, check-in after the crash stored: {bool(stored)}")
    return {"unit": unit, "restarts": after - before, "checkin_after": bool(stored)}


def beacon_id() -> str:
    return sh("/usr/local/bin/kiosk", "beacon", "id", timeout=60).strip()


def check_beacon_hci() -> dict:
    wait_for("beacon advertising", lambda: component("beacon").get("state") == "advertising", 180, every=3)
    before = beacon_id()
    heard = json.loads(sh(VENV_PY, BT_HELPER, "listen", "hci1", "8", timeout=90))
    after = beacon_id()
    if before not in heard and after not in heard:
        raise Failed(f"hci1 heard {heard or 'no Bluezone advert'}, not the beacon's ID {before}")
    return {"id": before, "heard_on": "hci1", "ids_heard": len(heard),
            "kernel_controllers": sorted(p.name for p in Path("/sys/class/bluetooth").glob("hci*"))}


def check_nearby() -> dict:
    phones = subprocess.Popen([VENV_PY, BT_HELPER, "phones", "hci2", "hci3"], stdout=subprocess.PIPE, text=True)
    try:
        ids = json.loads(phones.stdout.readline() or "[]")
        if len(ids) != 2:
            raise Failed(f"the simulated phones did not start: {ids}")
        started = time.monotonic()

        def counted():
            nearby = component("nearby")
            if nearby.get("phones") != 2:
                raise Failed(f"nearby status {nearby or 'not reported yet'}")
            return nearby

        try:
            nearby = wait_for("the beacon's bluepy scan to count the 2 phones", counted, 240, every=3)
        except Failed as exc:  # were the phones on the air at all, and what did the beacon's scans say?
            heard = sh(VENV_PY, BT_HELPER, "listen", "hci1", "6", timeout=90, check=False).strip()
            journal = sh("journalctl", "-u", "kiosk-beacon.service", "-n", "5", "--no-pager", "-o", "cat", check=False)
            raise Failed(f"{exc}; phones {ids}, hci1 hears {heard}; beacon's journal: "
                         f"{' | '.join(journal.strip().splitlines())[-400:]}") from None
        return {"phones": nearby.get("phones"), "scanner": "bluepy:hci0",
                "seconds_to_count": round(time.monotonic() - started, 1)}
    finally:
        phones.terminate()
        phones.wait(10)


def camera_state() -> dict:
    return component("camera")


def check_camera() -> dict:
    caps = sh("v4l2-ctl", "-d", "/dev/video0", "--info", timeout=20)
    driver = re.search(r"Driver name\s*:\s*(\S+)", caps)
    cam = wait_for("camera ok with frames", lambda: (c := camera_state()).get("state") == "ok" and c, 180, every=3)
    if cam.get("backend") != "uvc":
        raise Failed(f"the scanner uses the {cam.get('backend')!r} camera, not uvc")
    return {"device": "/dev/video0", "driver": driver.group(1) if driver else None,
            **{k: cam[k] for k in ("backend", "fps", "frames") if k in cam},
            "qr": "not shown: vivid's capture carries test patterns only"}


def check_unplug() -> dict:
    wait_for("camera ok", lambda: camera_state().get("state") == "ok", 180, every=3)
    Path(f"{VIVID}/unbind").write_text("vivid.0")  # the device goes away under the open camera
    started = time.monotonic()
    lost = wait_for("status to say the camera is lost",
                    lambda: (c := camera_state()).get("state") in ("lost", "stalled") and c, 120, every=2)
    said = status()
    attention = [a for a in said.get("attention", []) if a.startswith("camera")]
    lost_after = time.monotonic() - started
    if not attention:
        raise Failed(f"kiosk status shows camera {lost.get('state')} but no attention line: {said.get('attention')}")
    Path(f"{VIVID}/bind").write_text("vivid.0")  # plugged back in
    back = time.monotonic()
    wait_for("the kiosk to recover the camera by itself", lambda: camera_state().get("state") == "ok", 180, every=2)
    return {"lost_state": lost.get("state"), "lost_after_s": round(lost_after, 1), "status_said": attention[0][:160],
            "recovered_after_s": round(time.monotonic() - back, 1),
            "scanner_restarts": int(show("kiosk-scanner.service", "NRestarts")["NRestarts"])}


def check_display(chan: Channel) -> dict:
    wait_for("scanner active", lambda: show("kiosk-scanner.service", "ActiveState")["ActiveState"] == "active", 180)
    card = sorted(Path("/sys/class/drm").glob("card*-*"))
    connected = {c.name: (c / "status").read_text().strip() for c in card if (c / "status").exists()}
    pid = main_pid("kiosk-scanner.service")
    fds = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir() if os.path.exists(f)]
    dri = sorted({f for f in fds if f.startswith("/dev/dri/")})
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    driver = next((e.decode() for e in env if e.startswith(b"SDL_VIDEODRIVER=")), "")
    x = sh("sh", "-c", "ls /tmp/.X11-unix 2>/dev/null; pgrep -c Xorg || true", check=False).strip()
    time.sleep(10)  # let the ready screen settle after the camera checks
    chan.send(want="screendump")
    answer = chan.receive(120)
    if not dri:
        raise Failed(f"the scanner (pid {pid}) holds no /dev/dri device; {driver}")
    if not answer.get("match"):
        raise Failed(f"qemu's screendump does not show the ready screen: {answer}")
    return {"driver": driver, "dri": dri, "connectors": connected, "x_server": x or "none", **answer}


def snapshot() -> dict:
    """What an upgrade must keep or leave alone: program tree, config, keys, check-ins."""
    def tree(root: str) -> str:
        h = hashlib.sha256()
        for dirpath, dirnames, filenames in sorted(os.walk(root)):
            dirnames.sort()
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                if os.path.islink(p):
                    h.update(f"{p}->{os.readlink(p)}".encode())
                elif os.path.isfile(p):
                    st = os.stat(p)
                    h.update(f"{p}:{oct(st.st_mode)}:".encode() + hashlib.sha256(Path(p).read_bytes()).digest())
        return h.hexdigest()[:16]

    with sqlite3.connect(f"file:{DB}?mode=ro", uri=True) as db:
        ids = sorted(r[0] for r in db.execute("SELECT id FROM checkins"))
    keys = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in sorted(STATE.iterdir())
            if p.is_file() and not p.name.startswith("kiosk.db")}
    return {"program": tree("/opt/kiosk"), "units": tree("/etc/systemd/system"),
            "config": hashlib.sha256(Path("/etc/kiosk/kiosk.toml").read_bytes()).hexdigest()[:16],
            "keys": keys, "checkins": hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16], "count": len(ids)}


def check_upgrade() -> dict:
    checkin(f"APPLIANCE-UPGRADE-{uuid.uuid4().hex}")
    before = snapshot()
    out = sh(*INSTALL, timeout=1500, log="install-again.log")
    after = snapshot()
    changed = [k for k in before if before[k] != after[k]]
    if changed:
        raise Failed(f"install.sh run again changed {changed}")
    wait_for("kiosk services active after the upgrade", all_active, 300, every=2)
    return {"unchanged": sorted(before), "checkins": after["count"], "keys": sorted(after["keys"]),
            "said": out.strip().splitlines()[-1][:160]}


def check_boot() -> dict:
    wait_for("kiosk services active after boot", all_active, 400, every=2)
    ready = {s: round(int(show(s, "ActiveEnterTimestampMonotonic")["ActiveEnterTimestampMonotonic"]) / 1e6, 1)
             for s in SERVICES}
    said = status()
    if said.get("healthy") is not True and any(not a.startswith("sync") and "upload" not in a
                                               for a in said.get("attention", [])):
        raise Failed(f"kiosk status needs attention: {said.get('attention')}")
    kernel = sh("systemd-analyze", "time", check=False, timeout=60).strip().splitlines()
    return {"kernel_to_ready_s": max(ready.values()), "per_service_s": ready,
            "status_attention": said.get("attention"), "systemd_analyze": kernel[0][:200] if kernel else ""}


def check_hardening() -> dict:
    scores = {}
    for unit in SERVICES:
        out = sh("systemd-analyze", "security", "--no-pager", unit, check=False, timeout=120)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out)
        if not m:
            raise Failed(f"systemd-analyze security {unit}: no exposure level in {out[-200:]!r}")
        scores[unit] = f"{m.group(1)} {m.group(2)}"
    worst = max(float(v.split()[0]) for v in scores.values())
    if worst >= 7.0:
        raise Failed(f"exposure {scores}: a unit is rated EXPOSED or UNSAFE")
    return scores


def check_uninstall() -> dict:
    sh(*INSTALL[:1], "--uninstall", timeout=300, log="uninstall.log")
    gone = ["/opt/kiosk", "/usr/local/bin/kiosk", *(f"/etc/systemd/system/{u}" for u in UNITS)]
    left = [p for p in gone if os.path.lexists(p)]
    kept = [p for p in ("/var/lib/kiosk/kiosk.db", "/etc/kiosk/kiosk.toml") if os.path.exists(p)]
    if left or len(kept) != 2:
        raise Failed(f"--uninstall left {left} and kept {kept} (expected /var/lib/kiosk/kiosk.db and the config)")
    running = [s for s in SERVICES if show(s, "ActiveState")["ActiveState"] == "active"]
    sh(*INSTALL[:1], "--uninstall", "--purge", timeout=300, log="uninstall.log")
    purged = [p for p in ("/var/lib/kiosk", "/etc/kiosk") if os.path.lexists(p)]
    user = sh("getent", "passwd", "kiosk", check=False).strip()
    if running or purged or user:
        raise Failed(f"after --purge: still running {running}, left {purged}, user {user!r}")
    return {"uninstall_kept": kept, "purge_left": []}


# ---- power cuts ----------------------------------------------------------------------------------

def report_db(chan: Channel) -> None:
    """What survived: every check-in id, integrity, and any database set aside as unreadable."""
    try:  # the services open it first: SQLite's recovery of a cut-off write is theirs to do
        wait_for("kiosk services active", all_active, 400, every=2)
    except Failed as exc:
        chan.send(log=str(exc))
    with sqlite3.connect(f"file:{DB}?mode=ro", uri=True) as db:  # read-only: recovery is the services' job
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        ids = [r[0] for r in db.execute("SELECT id FROM checkins")]
        outbox = {r[0] for r in db.execute("SELECT checkin_id FROM outbox")}
    corrupt = sorted(p.name for p in STATE.glob("*.corrupt*"))
    chan.send(db={"integrity": integrity, "ids": ids, "outbox_matches": set(ids) == outbox, "set_aside": corrupt})


def stream_checkins(chan: Channel) -> None:
    """Check-ins through `kiosk checkin --from-file` on a FIFO; each id goes out once committed.

    A FIFO rather than a pipe on stdin: the wrapper runs kiosk as the kiosk user, who may not reopen
    root's pipe through /dev/stdin.
    """
    wait_for("kiosk services active", all_active, 400, every=2)
    fifo = Path("/run/appliance-stream")
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo, 0o644)
    proc = subprocess.Popen(["/usr/local/bin/kiosk", "--log-level", "ERROR", "checkin", "--from-file", str(fifo)],
                            stdout=subprocess.PIPE, text=True, bufsize=1)
    deadline = time.monotonic() + 180
    while True:  # the writer's open waits for the reader: poll, so a kiosk that dies cannot hang us
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise Failed(f"kiosk checkin --from-file never opened {fifo} (exit {proc.poll()})") from None
            time.sleep(0.2)
    os.set_blocking(fd, True)
    chan.send(log="streaming check-ins")
    with os.fdopen(fd, "w", buffering=1) as feed:
        while True:  # until the host pulls the plug
            feed.write(f"APPLIANCE-POWER-{uuid.uuid4().hex}\n")
            line = proc.stdout.readline()
            if not line:
                raise Failed(f"kiosk checkin --from-file stopped (exit {proc.wait(10)})")
            result = json.loads(line)
            if result.get("event") != "accepted":
                raise Failed(f"check-in not accepted: {result}")
            chan.send(ack=result["checkin_id"])


# ---- phases --------------------------------------------------------------------------------------

def run_check(chan: Channel, name: str, fn, *args) -> bool:
    chan.send(log=f"check {name}")
    started = time.monotonic()
    try:
        detail, ok = fn(*args), True
    except Failed as exc:
        detail, ok = str(exc), False
    except Exception as exc:  # noqa: BLE001 - a bug in a check is a failed check with its reason, never a silent hang
        detail, ok = f"{type(exc).__name__}: {exc}", False
    chan.send(check=name, ok=ok, seconds=round(time.monotonic() - started, 1), detail=detail)
    return ok


PHASES = {
    "first": [("install", check_install), ("notify-ready", check_notify_ready),
              ("beacon-kernel-hci", check_beacon_hci), ("nearby-bluepy", check_nearby),
              ("camera-v4l2", check_camera), ("display-kmsdrm", check_display),
              ("camera-unplug", check_unplug), ("watchdog-restart", check_watchdog),
              ("crash-restart", check_crash)],
    "second": [("boot-to-service", check_boot), ("hardening", check_hardening),
               ("upgrade-idempotent", check_upgrade)],
    "last": [("uninstall", check_uninstall)],
}


def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    args = dict(re.findall(r"kiosk\.(\w+)=(\S+)", Path("/proc/cmdline").read_text()))
    phase = args.get("phase", "")
    only = set(args["only"].split(",")) | {"install"} if args.get("only") else None  # ./dev appliance --only
    chan = Channel()
    chan.send(hello=phase, uptime_s=float(Path("/proc/uptime").read_text().split()[0]))
    if phase == "first":
        chan.send(log=vm_gpu())
        try:
            chan.send(log=bluetooth_hardware())
        except Failed as exc:
            chan.send(log=str(exc))
    if phase in ("powercut", "last"):
        report_db(chan)
    for name, fn in PHASES.get(phase, []):
        if only is not None and name not in only:
            continue
        ok = run_check(chan, name, *((fn, chan) if fn is check_display else (fn,)))
        if name == "install" and not ok:
            break  # nothing else can run without the appliance
    if phase in ("second", "powercut") and only is None:  # --only never cuts the power
        try:
            stream_checkins(chan)
        except Failed as exc:
            chan.send(log=f"streaming stopped: {exc}")
    chan.send(**{"phase-done": phase})
    subprocess.run(["systemctl", "poweroff", "--no-block"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
