"""``./dev appliance``: the whole appliance on a real operating system, in a Debian 12 VM (docs/appliance.md).

Boots a cached Debian image under qemu (no network device), installs the kiosk from this working tree
with systemd/install.sh and a wheelhouse, and runs field checks inside over a virtio-serial channel
(tests/appliance/guest/agent.py). The base image is never modified: each run boots a qcow2 overlay of
it, several times (reboots and power cuts), then deletes it.

Prints one JSON line per check, then ``appliance: N passed, M failed``; exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import image  # tests/appliance/image.py, next to this file

REPO = Path(__file__).resolve().parents[2]
GUEST = Path(__file__).resolve().parent / "guest"
SOURCE_PARTS = ["pyproject.toml", "setup.py", "kiosk", "scanner", "beacon", "sync", "systemd", "docs"]
POWER_CUTS = 5
CHECK_ORDER = ["install", "boot-to-service", "notify-ready", "watchdog-restart", "crash-restart", "power-cut",
               "beacon-kernel-hci", "nearby-bluepy", "camera-v4l2", "camera-unplug", "display-kmsdrm",
               "upgrade-idempotent", "uninstall", "hardening"]
# Longest each boot may take, from qemu's start to the agent's "phase-done" (TCG on 2 loaded cores).
PHASE_TIMEOUT_S = {"first": 2700, "second": 1500, "powercut": 900, "last": 600}
SECOND_PHASE = ["boot-to-service", "hardening", "upgrade-idempotent"]  # the agent's phases (guest/agent.py)
LAST_PHASE = ["uninstall"]
HELLO_TIMEOUT_S = 420  # kernel start to the agent's first line
DISPLAY = ["-vga", "std"]


class StepFailed(RuntimeError):
    """A step of the run failed; the message names it and the log to read."""


class Vm:
    """One boot of the overlay disk under qemu, with the agent's channel and qemu's monitor (QMP)."""

    def __init__(self, work: Path, images: Path, disk: Path, payload: Path, accel: str, phase: str, number: int,
                 only: list[str] | None = None):
        self.console = work / f"console-{number}-{phase}.log"
        self.ctl_path = work / f"ctl-{number}.sock"
        self.qmp_path = work / f"qmp-{number}.sock"
        append = f"root=/dev/vda rw console=ttyS0 kiosk.phase={phase}"
        if only:
            append += f" kiosk.only={','.join(only)}"
        # -cpu max: the wheels (numpy's) use instructions qemu's default CPU model lacks (SIGILL).
        cmd = ["qemu-system-x86_64", "-accel", accel, "-cpu", "max", "-m", "1536", "-smp", "2",
               "-kernel", str(images / "vmlinuz"), "-initrd", str(images / "initrd.img"), "-append", append,
               "-drive", f"file={disk},if=virtio,format=qcow2",
               "-drive", f"file={payload},if=virtio,format=raw,readonly=on",
               # One display, the one qemu's screendump shows: the standard VGA card, bochs-drm in the
               # guest (virtio-gpu without virgl scanned out black frames for SDL's kmsdrm here).
               *DISPLAY, "-display", "none", "-nic", "none", "-no-reboot",
               "-serial", f"file:{self.console}",
               "-device", "virtio-serial-pci",
               "-chardev", f"socket,id=ctl,path={self.ctl_path},server=on,wait=on",
               "-device", "virtserialport,chardev=ctl,name=kiosk.ctl",
               "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        self.qemu_log = work / f"qemu-{number}.log"
        self.proc = subprocess.Popen(cmd, stdout=open(self.qemu_log, "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.sock = self._connect(self.ctl_path, 30)
        self.buffer = b""

    def _connect(self, path: Path, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise StepFailed(f"qemu exited at once (code {self.proc.returncode}); read {self.qemu_log}")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(path))
                return sock
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise StepFailed(f"qemu's socket {path} never opened; read {self.qemu_log}") from None
                time.sleep(0.1)

    def receive(self, timeout: float) -> dict | None:
        """The agent's next message, or None if qemu ended; StepFailed after ``timeout``."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepFailed(f"no word from the VM for {timeout:.0f} s; read {self.console}")
            self.sock.settimeout(min(left, 5))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                if self.proc.poll() is not None:
                    return None
                continue
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return {"log": f"unreadable line from the agent: {line[:200]!r}"}

    def send(self, message: dict) -> None:
        self.sock.sendall((json.dumps(message) + "\n").encode())

    def qmp(self, command: str, **arguments: object) -> dict:
        sock = self._connect(self.qmp_path, 10)
        with sock, sock.makefile("rw") as f:
            f.readline()  # greeting
            for msg in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}):
                f.write(json.dumps(msg) + "\n")
                f.flush()
                while True:
                    answer = json.loads(f.readline())
                    if "return" in answer or "error" in answer:
                        break
            return answer

    def power_cut(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.sock.close()

    def wait_off(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.sock.close()


class Run:
    def __init__(self, work: Path, images: Path, disk: Path, payload: Path, accel: str, verbose: bool,
                 seed: int | None = None, only: list[str] | None = None):
        self.work, self.images, self.disk, self.payload, self.accel = work, images, disk, payload, accel
        self.verbose = verbose
        self.results: dict[str, dict] = {}
        self.boots = 0
        self.acked: set[str] = set()
        self.cuts: list[dict] = []
        self.seed = seed if seed is not None else int(time.time())  # printed: --seed replays the cut moments
        self.random = random.Random(self.seed)
        self.only = only  # --only: these checks (and install, which the others need), nothing else

    def result(self, check: str, ok: bool, seconds: float, detail: object) -> None:
        if check in self.results:
            return
        self.results[check] = {"check": check, "ok": bool(ok), "seconds": round(seconds, 1), "detail": detail}
        print(json.dumps(self.results[check], ensure_ascii=False), flush=True)
        self.log(json.dumps(self.results[check], ensure_ascii=False))

    def log(self, text: str) -> None:
        with open(self.work / "run.log", "a", encoding="utf-8") as log:  # kept with a failed run's folder
            log.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    def say(self, text: str) -> None:
        self.log(text)
        if self.verbose:
            print(f"appliance: {text}", file=sys.stderr, flush=True)

    def boot(self, phase: str, power_cut: bool = False) -> bool:
        """One boot running ``phase``; with ``power_cut``, killed at a random moment while check-ins stream."""
        self.boots += 1
        started = time.monotonic()
        vm = Vm(self.work, self.images, self.disk, self.payload, self.accel, phase, self.boots, self.only)
        self.say(f"boot {self.boots} ({phase}); console: {vm.console}")
        deadline = started + PHASE_TIMEOUT_S[phase]
        hello = False
        cut_at = None
        try:
            while True:
                if cut_at is not None and time.monotonic() >= cut_at:
                    vm.power_cut()
                    self.cuts.append({"boot": self.boots, "acked": len(self.acked)})
                    self.say(f"power cut {len(self.cuts)} after {len(self.acked)} acknowledged check-ins")
                    return True
                wait = HELLO_TIMEOUT_S if not hello else deadline - time.monotonic()
                if cut_at is not None:
                    wait = max(0.05, min(wait, cut_at - time.monotonic()))
                    try:
                        msg = vm.receive(wait)
                    except StepFailed:
                        continue  # the moment to cut came first
                else:
                    msg = vm.receive(wait)
                if msg is None:
                    if power_cut:
                        raise StepFailed(f"boot {self.boots} ({phase}): the VM stopped before the power cut; read {vm.console}")
                    return True
                hello = True
                if "check" in msg:
                    self.result(msg["check"], msg["ok"], msg["seconds"], msg["detail"])
                elif "ack" in msg:
                    self.acked.add(msg["ack"])
                    if power_cut and cut_at is None:
                        cut_at = time.monotonic() + self.random.uniform(0.5, 12.0)  # a random moment mid-stream
                elif "db" in msg:
                    self.survived(msg["db"])
                elif msg.get("want") == "screendump":
                    vm.send(self.screendump(vm))
                elif "phase-done" in msg:
                    if power_cut:
                        raise StepFailed(f"boot {self.boots} ({phase}): the agent finished without streaming "
                                         f"check-ins; read {vm.console}")
                    vm.wait_off(120)
                    return True
                elif "log" in msg:
                    self.say(f"  {msg['log']}")
        except StepFailed as exc:
            print(f"appliance: {exc}", file=sys.stderr, flush=True)
            vm.power_cut() if vm.proc.poll() is None else None
            return False

    def survived(self, db: dict) -> None:
        """After a power cut: every acknowledged check-in is there, and the database is sound."""
        missing = self.acked - set(db["ids"])
        problems = []
        if missing:
            problems.append(f"{len(missing)} acknowledged check-in(s) missing")
        if db["integrity"] != "ok":
            problems.append(f"integrity_check: {db['integrity']}")
        if db["set_aside"]:
            problems.append(f"database set aside as unreadable: {db['set_aside']}")
        if not db["outbox_matches"]:
            problems.append("check-ins and outbox differ")
        if self.cuts:
            self.cuts[-1].update(stored=len(db["ids"]), problems=problems)

    def screendump(self, vm: Vm) -> dict:
        """qemu's picture of the guest's display, compared with `kiosk screenshot` of the ready screen."""
        shot = self.work / "screendump.ppm"
        answer = vm.qmp("screendump", filename=str(shot))
        if "error" in answer or not shot.exists():
            return {"screendump": f"qemu screendump failed: {answer}"}
        from compare_screens import compare_with_ready  # needs the venv's Pillow

        return compare_with_ready(shot, self.work)


def probe_kvm(work: Path, images: Path) -> str:
    """KVM only if a guest kernel prints under it here within 20 s (nested virtualisation may not); else TCG."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    log = work / "kvm-probe.log"
    proc = subprocess.Popen(["qemu-system-x86_64", "-accel", "kvm", "-m", "512", "-kernel", str(images / "vmlinuz"),
                             "-append", "console=ttyS0 panic=-1", "-display", "none", "-nic", "none", "-no-reboot",
                             "-serial", f"file:{log}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    printed = False
    while time.monotonic() < deadline and proc.poll() is None and not printed:
        time.sleep(1)
        printed = log.exists() and b"Linux version" in log.read_bytes()
    proc.kill()
    proc.wait()
    return "kvm" if printed else "tcg"


def make_payload(work: Path, logs: Path) -> Path:
    """The second disk: this tree's source, the wheelhouse, the agent, and the test venue's config."""
    root = work / "payload"
    (root / "src").mkdir(parents=True)
    for part in SOURCE_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, root / "src" / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
        elif src.exists():
            shutil.copy2(src, root / "src" / part)
    wheelhouse = image.ensure_wheelhouse(root / "src", REPO / ".venv/bin/python", logs)
    for junk in ("build", "venue_kiosk.egg-info"):  # left by pip wheel's in-tree build
        shutil.rmtree(root / "src" / junk, ignore_errors=True)
    shutil.copytree(wheelhouse, root / "wheelhouse")
    shutil.copytree(GUEST, root / "guest", ignore=shutil.ignore_patterns("__pycache__"))
    keys = work / "authority"
    out = subprocess.run([str(REPO / ".venv/bin/kiosk"), "authority-keys", str(keys)], capture_output=True,
                         text=True, check=True).stdout
    (root / "config").mkdir()
    (root / "config/kiosk.toml").write_text((GUEST / "kiosk.toml").read_text() + "\n" + out)
    payload = work / "payload.img"
    size_mb = 256 + sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) * 2 // 2**20
    subprocess.run(["mkfs.ext4", "-q", "-L", "payload", "-d", str(root), str(payload), f"{size_mb}M"], check=True,
                   stdout=subprocess.DEVNULL)
    return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev appliance", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (disks, logs) afterwards")
    parser.add_argument("--quiet", action="store_true", help="only the JSON lines and the summary")
    parser.add_argument("--seed", type=int, help="the power cuts' random moments (default: from the time)")
    parser.add_argument("--only", metavar="CHECK,...", type=lambda v: [c for c in v.split(",") if c],
                        help="run only these checks (install always runs first): a quicker loop while fixing one")
    args = parser.parse_args(argv)
    if args.only and (unknown := sorted(set(args.only) - set(CHECK_ORDER))):
        parser.error(f"unknown check(s) {', '.join(unknown)}; the checks: {', '.join(CHECK_ORDER)}")
    if args.only and "power-cut" in args.only:
        parser.error("power-cut needs the whole run (its boots are the run's second half): run without --only")
    work = Path(tempfile.mkdtemp(prefix="kiosk-appliance-"))
    logs = work / "logs"
    logs.mkdir()
    run = Run(work, Path(), Path(), Path(), "tcg", not args.quiet, args.seed, args.only)
    started = time.monotonic()
    try:
        try:
            run.say(f"logs in {work}")
            images = image.ensure_image(logs)
            run.say(f"image {images} ready after {time.monotonic() - started:.0f} s")
            payload = make_payload(work, logs)
            disk = work / "disk.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(images / "base.img"), "-F", "raw",
                            str(disk)], check=True)
            accel = probe_kvm(work, images)
            run.say(f"accelerator: {accel}")
        except (image.BuildError, subprocess.CalledProcessError, OSError) as exc:
            print(f"appliance: {exc}", file=sys.stderr)
            run.result("install", False, time.monotonic() - started, f"no VM to install into: {exc}")
            return finish(run, work, args.keep)
        run.images, run.disk, run.payload, run.accel = images, disk, payload, accel
        run.boot("first")
        wanted = set(args.only or CHECK_ORDER)
        if run.results.get("install", {}).get("ok") and not args.only:
            cut_started = time.monotonic()
            run.boot("second", power_cut=True)
            for _ in range(POWER_CUTS - 1):
                if not run.boot("powercut", power_cut=True):
                    break
            run.boot("last")
            problems = [c for c in run.cuts if c.get("problems")]
            unchecked = [c for c in run.cuts if "stored" not in c]
            run.result("power-cut", len(run.cuts) >= POWER_CUTS and not problems and not unchecked,
                       time.monotonic() - cut_started,
                       {"cuts": len(run.cuts), "acknowledged": len(run.acked), "seed": run.seed, "boots": run.cuts,
                        **({"unchecked": len(unchecked)} if unchecked else {})})
        elif run.results.get("install", {}).get("ok") and wanted & set(SECOND_PHASE + LAST_PHASE):
            run.boot("second")  # no power cuts with --only: boot, hardening, upgrade, then uninstall
            if wanted & set(LAST_PHASE):
                run.boot("last")
    finally:
        pass
    return finish(run, work, args.keep)


def finish(run: Run, work: Path, keep: bool) -> int:
    for check in [c for c in CHECK_ORDER if not run.only or c in run.only or c == "install"]:
        if check not in run.results:
            run.result(check, False, 0, f"did not run; read the logs in {work}")
    failed = [r for r in run.results.values() if not r["ok"]]
    print(f"appliance: {len(run.results) - len(failed)} passed, {len(failed)} failed", flush=True)
    if not failed and not keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        for name in ("disk.qcow2", "payload.img"):  # big, and not what anyone reads
            (work / name).unlink(missing_ok=True)
        print(f"appliance: logs kept in {work}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
