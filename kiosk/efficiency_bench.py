"""``kiosk bench efficiency``: what the kiosk costs a Pi-class machine, each figure beside its floor.

Every figure is measured in the same run as its floor, interleaved where it can be, so machine load
hits both alike; the ratio is what carries over to a Raspberry Pi (docs/efficiency.md):

- decoder: CPU time of the live decoder (scanner/live.py) on 640x480 frames against raw zxing-cpp's
  on the same frames: idle scenes filmed for a second each (fresh sensor noise every frame), and
  frames with a code seen for the first time;
- ``kiosk run`` idle at 15 fps: CPU seconds per second against a bare loop that reads the same
  frames from the same replay camera and runs raw zxing-cpp on each;
- start-up: CPU time of ``kiosk --help``, ``kiosk status`` and ``kiosk checkin`` against ``python -c pass``;
- the check-in commit: wall time (fsync-bound) of ``Store.record_checkin`` against a bare WAL +
  ``synchronous=FULL`` transaction writing the same rows, and the statements it runs;
- peak memory (VmHWM) of ``kiosk run`` (scanning visitors), ``kiosk sync`` and ``kiosk beacon``.
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import kiosk
from kiosk.sync_bench import _cpu_s

ROOT = Path(kiosk.__file__).resolve().parent.parent
TOKEN_PATTERN = r"(BENCH|DEMO-HQR)-[0-9A-F]{12}"  # DEMO-HQR: the synthetic camera's visitors
TARGETS = {"idle_frame_vs_zxing": 1.3, "frame_with_code_vs_before": 1.1, "run_idle_vs_bare_loop": 1.5,
           "help_vs_python": 2.0, "status_vs_python": 4.0, "checkin_vs_python": 4.0, "commit_vs_bare": 1.2,
           "run_peak_mb": 80, "sync_peak_mb": 50, "beacon_peak_mb": 40}


def bench_efficiency(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kiosk-bench-efficiency-"))
    config = write_config(work)
    load = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, Any] = {
        "decoder": decoder_costs(),
        "startup": startup_costs(config),
        "commit": commit_cost(work / "commit"),
        "run_idle": run_idle(work, config),
        "memory": peak_memory(work, config),
    }
    result["load_average"] = {"start": load, "end": [round(x, 2) for x in os.getloadavg()]}
    figures = {
        "idle_frame_vs_zxing": result["decoder"]["idle"]["ratio"],
        "frame_with_code_vs_before": result["decoder"]["with_code"]["ratio_to_single_image_path"],
        "run_idle_vs_bare_loop": result["run_idle"]["ratio"],
        "help_vs_python": result["startup"]["kiosk --help"]["ratio"],
        "status_vs_python": result["startup"]["kiosk status"]["ratio"],
        "checkin_vs_python": result["startup"]["kiosk checkin"]["ratio"],
        "commit_vs_bare": result["commit"]["ratio"],
        "run_peak_mb": result["memory"]["kiosk run --headless"],
        "sync_peak_mb": result["memory"]["kiosk sync --once"],
        "beacon_peak_mb": result["memory"]["kiosk beacon"],
    }
    result["targets"] = {name: {"figure": figures[name], "at_most": limit, "met": figures[name] <= limit}
                         for name, limit in TARGETS.items()}
    return result


# ---- helpers -------------------------------------------------------------------------------------
def write_config(work: Path, camera: str = "", name: str = "kiosk") -> Path:
    """A provisioned device's config (authority key, a token format) with its own state directory."""
    from nacl.public import PrivateKey

    path = work / f"{name}.toml"
    if not path.exists():
        key = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
        path.write_text(
            f'[device]\nid = "bench-device"\nvenue_id = "BENCH-VENUE"\nstate_dir = "{work / "state"}"\n'
            f'[clock]\nassume_synced = true\n[privacy]\nauthority_public_key = "{key}"\n'
            f"[[formats.personal]]\nname = \"bench\"\npattern = '{TOKEN_PATTERN}'\n"
            f"{camera}", encoding="utf-8")
    return path


def _kiosk_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from kiosk.cli import main; sys.exit(main())", *args]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}


def _cpu_of_child(argv: list[str], **popen: Any) -> float:
    """User + system CPU seconds of one child run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT, **popen)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _vmhwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _ratio(figure: float, floor: float) -> float:
    return round(figure / floor, 2) if floor > 0 else float("inf")


# ---- decoder ---------------------------------------------------------------------------------------
def decoder_costs(repeats: int = 3) -> dict[str, Any]:
    """Thread CPU time of the live decoder and of raw zxing-cpp, frame by frame in turn."""
    import numpy as np
    import zxingcpp

    from scanner.corpus import PAYLOADS
    from scanner.decode import decode_frame
    from scanner.live import LiveDecoder
    from scanner.render import Shot, render_shot

    def raw(frame: Any) -> list[bytes]:
        return [r.bytes for r in zxingcpp.read_barcodes(frame, formats=zxingcpp.BarcodeFormat.QRCode)]

    rng = np.random.default_rng(0)

    def filmed(scenes: int, seconds: float) -> list[list[Any]]:
        """Empty scenes as the corpus makes them, each filmed at 15 fps (fresh sensor noise per frame)."""
        clips = []
        for n in range(scenes):
            still = render_shot(None, Shot(640, 480, medium=("paper", "phone")[n % 2], px_per_module=3.0,
                                           rotation=float(rng.uniform(-30, 30)), tilt=float(rng.uniform(0, 30)), seed=n))
            clips.append([(still + rng.normal(0, 3, still.shape)).clip(0, 255).astype(np.uint8)
                          for _ in range(int(15 * seconds))])
        return clips

    def idle(clips: list[list[Any]]) -> dict[str, Any]:
        ratios, live_s, raw_s, passes = [], 0.0, 0.0, {}
        for _ in range(repeats):
            decoder, live_s, raw_s = LiveDecoder(), 0.0, 0.0
            for clip in clips:
                for frame in clip:
                    live_s += _thread_cpu(lambda: decoder.decode(frame))
                    raw_s += _thread_cpu(lambda: raw(frame))
            ratios.append(live_s / raw_s)
            passes = dict(decoder.passes)
        frames = sum(len(c) for c in clips)
        return {"frames": frames, "scenes": len(clips), "ratio": round(statistics.median(ratios), 2),
                "live_ms_per_frame": round(live_s / frames * 1000, 3),
                "zxing_ms_per_frame": round(raw_s / frames * 1000, 3), "passes": passes}

    coded, per_frame, per_frame_before = 0, [], []
    for n, (payload, error) in enumerate(p for p in PAYLOADS.values() for _ in range(4)):
        frame = render_shot(payload, Shot(640, 480, medium=("paper", "phone")[n % 2], px_per_module=4.0,
                                          rotation=float(rng.uniform(-10, 10)), tilt=float(rng.uniform(0, 15)),
                                          seed=100 + n), error)
        times: dict[str, list[float]] = {"live": [], "raw": [], "before": []}
        for _ in range(repeats):
            decoder = LiveDecoder()
            times["live"].append(_thread_cpu(lambda: decoder.decode(frame)))
            times["raw"].append(_thread_cpu(lambda: raw(frame)))
            times["before"].append(_thread_cpu(lambda: decode_frame(frame)))
        coded += payload in LiveDecoder().decode(frame)
        per_frame.append(min(times["live"]) / min(times["raw"]))
        per_frame_before.append(min(times["live"]) / min(times["before"]))
    return {
        "idle": idle(filmed(6, 10.0)),
        "passers_by": idle(filmed(16, 1.0)),
        "with_code": {"frames": len(per_frame), "read": coded, "ratio": round(statistics.median(per_frame), 2),
                      "ratio_to_single_image_path": round(statistics.median(per_frame_before), 2)},
        "how": "thread CPU time, live decoder vs raw zxing-cpp (default options) frame by frame in turn. idle: "
               "empty 640x480 scenes, 10 s each at 15 fps with fresh sensor noise (sigma 3) on every frame, as a "
               "kiosk between visitors sees them; passers_by: a new empty scene every second; with_code: the "
               "median of per-frame ratios, each frame the first a fresh decoder sees, against raw zxing-cpp and "
               "against decode_frame (every frame's path before the live decoder: it stops at the first stage "
               "that reads)",
    }


def _thread_cpu(call: Callable[[], Any]) -> float:
    start = time.thread_time()
    call()
    return time.thread_time() - start


# ---- start-up --------------------------------------------------------------------------------------
def startup_costs(config: Path, runs: int = 5) -> dict[str, Any]:
    """Median CPU time of each command over ``runs`` runs, all commands taken in turn.

    The tree's bytecode is compiled first, as pip leaves an installed kiosk: with
    PYTHONDONTWRITEBYTECODE set (as in CI and the development shells) every run would otherwise
    compile the kiosk's modules from source again, about 30 ms that no appliance spends.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(ROOT / p) for p in ("kiosk", "sync", "scanner", "beacon"))],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "kiosk --help": _kiosk_argv("--help"),
        "kiosk status": _kiosk_argv("--config", str(config), "status"),
        "kiosk checkin": None,  # a new visitor each run
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for run in range(runs + 1):
        for name, argv in commands.items():
            if argv is None:
                argv = _kiosk_argv("--config", str(config), "checkin", "--payload", f"BENCH-{run:012X}")
            cpu = _cpu_of_child(argv)
            if run:  # the first round warms the page cache
                times[name].append(cpu)
    floor = statistics.median(times["python -c pass"])
    return {name: {"cpu_ms": round(statistics.median(t) * 1000, 1), "ratio": _ratio(statistics.median(t), floor)}
            for name, t in times.items()}


# ---- the check-in commit ---------------------------------------------------------------------------
def commit_cost(work: Path, rows: int = 300) -> dict[str, Any]:
    """record_checkin against a bare BEGIN IMMEDIATE / two INSERTs / COMMIT on a WAL + FULL file."""
    from kiosk.core.store import CHECKIN_COLUMNS, CheckinRow, Store

    store = Store.open(work / "store")
    statements: list[str] = []
    bare = sqlite3.connect(work / "bare.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode = WAL")
    bare.execute("PRAGMA synchronous = FULL")
    for (sql,) in store.conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'status'"):
        bare.execute(sql)  # the same tables and indexes
    insert_checkin = f"INSERT INTO checkins ({', '.join(CHECKIN_COLUMNS)}) VALUES ({', '.join('?' * len(CHECKIN_COLUMNS))})"

    def row(n: int, tag: str) -> CheckinRow:
        return CheckinRow(id=f"{tag}-{n:08d}", venue_id="V", device_id="D", direction="entry", utc_ms=n * 1000,
                          monotonic_ns=n, boot_id="b", clock_synced=True, kind="personal",
                          visitor_ref=os.urandom(32).hex(), sealed_subject=os.urandom(80))

    def bare_commit(r: CheckinRow) -> None:
        bare.execute("BEGIN IMMEDIATE")
        bare.execute(insert_checkin, [getattr(r, c) if c != "clock_synced" else int(r.clock_synced) for c in CHECKIN_COLUMNS])
        bare.execute("INSERT INTO outbox (checkin_id, updated_ms) VALUES (?, ?)", [r.id, n])
        bare.execute("COMMIT")

    kiosk_ms, bare_ms = [], []
    for n in range(rows):
        mine, theirs = row(n, "k"), row(n, "b")
        if n == 0:
            store.conn.set_trace_callback(statements.append)
        for which in ((0, 1) if n % 2 else (1, 0)):  # in turn, each first half of the time
            start = time.perf_counter()
            store.record_checkin(mine, 900.0) if which == 0 else bare_commit(theirs)
            (kiosk_ms if which == 0 else bare_ms).append((time.perf_counter() - start) * 1000)
        if n == 0:
            store.conn.set_trace_callback(None)
    store.close()
    bare.close()
    p50 = statistics.median
    return {"rows": rows, "statements": len(statements), "record_checkin_ms_p50": round(p50(kiosk_ms), 3),
            "bare_transaction_ms_p50": round(p50(bare_ms), 3), "ratio": _ratio(p50(kiosk_ms), p50(bare_ms)),
            "how": "wall time per commit (each ends in an fsync), the two taken in turn; the bare transaction "
                   "has no duplicate check; statements counted by SQLite's trace callback"}


# ---- kiosk run, idle -------------------------------------------------------------------------------
BARE_LOOP = """
import sys, time, zxingcpp
from scanner.camera.replay import ReplayCamera
camera = ReplayCamera(sys.argv[1], fps=float(sys.argv[2]))
camera.open()
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    zxingcpp.read_barcodes(camera.read(1.0), formats=zxingcpp.BarcodeFormat.QRCode)
"""


def run_idle(work: Path, config: Path, seconds: float = 20.0, settle: float = 5.0, fps: float = 15.0) -> dict[str, Any]:
    """``kiosk run --headless`` on a replay of an empty scene (fresh noise per frame), beside the bare loop."""
    import numpy as np
    from PIL import Image

    from scanner.render import Shot, render_shot

    folder = work / "idle-frames"
    folder.mkdir(exist_ok=True)
    still = render_shot(None, Shot(640, 480, medium="paper", px_per_module=3.0, rotation=12.0, tilt=20.0, seed=7))
    rng = np.random.default_rng(1)
    for n in range(int(fps)):
        Image.fromarray((still + rng.normal(0, 3, still.shape)).clip(0, 255).astype(np.uint8)).save(folder / f"{n:02d}.pgm")
    replay = write_config(work, f'[camera]\nbackend = "replay"\nreplay_path = "{folder}"\nfps = {fps:g}\n', "replay")
    kiosk_proc = subprocess.Popen(_kiosk_argv("--config", str(replay), "--log-level", "WARNING", "run", "--headless",
                                              "--seconds", str(seconds + settle + 5)),
                                  env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare_proc = subprocess.Popen([sys.executable, "-c", BARE_LOOP, str(folder), str(fps), str(seconds + settle + 5)],
                                 env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)  # imports and start-up are not the idle cost
        start = {p.pid: _cpu_s(p.pid) for p in (kiosk_proc, bare_proc)}
        began = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - began
        used = {p.pid: _cpu_s(p.pid) - start[p.pid] for p in (kiosk_proc, bare_proc)}
        peak = _vmhwm_mb(kiosk_proc.pid)
    finally:
        for proc in (kiosk_proc, bare_proc):
            proc.terminate()
            proc.wait(20)
    kiosk_cpu, bare_cpu = used[kiosk_proc.pid] / elapsed, used[bare_proc.pid] / elapsed
    return {"fps": fps, "seconds": round(elapsed, 1), "kiosk_cpu_s_per_s": round(kiosk_cpu, 4),
            "bare_loop_cpu_s_per_s": round(bare_cpu, 4), "ratio": _ratio(kiosk_cpu, bare_cpu),
            "kiosk_peak_mb": peak,
            "how": "both processes at once, reading the same 15 noisy PGM frames of an empty scene through the replay "
                   "camera at 15 fps; CPU from /proc/PID/stat after 5 s of start-up"}


# ---- memory ----------------------------------------------------------------------------------------
def _peak_of(argv: list[str], seconds: float, **env: str) -> float:
    proc = subprocess.Popen(argv, env=_env(**env), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, end = 0.0, time.monotonic() + seconds
    try:
        while proc.poll() is None and time.monotonic() < end:
            peak = max(peak, _vmhwm_mb(proc.pid))
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(20)
    return peak


def peak_memory(work: Path, config: Path) -> dict[str, Any]:
    """VmHWM of each long-running command doing its work."""
    from nacl.public import PrivateKey

    from kiosk.core.store import Store
    from sync.backlog import seed_backlog
    from kiosk.sync_bench import VENUE, _stop, enrolled_device, start_upstream

    synthetic = write_config(work, '[camera]\nbackend = "synthetic"\nsynthetic_script = "unique"\nfps = 15\n',
                             "synthetic")
    result: dict[str, Any] = {
        "python -c pass": _peak_of([sys.executable, "-c", "import time; time.sleep(1)"], 5),
        "kiosk run --headless": _peak_of(_kiosk_argv("--config", str(synthetic), "--log-level", "WARNING", "run",
                                                     "--headless", "--seconds", "20"), 30),
        "kiosk run (screen, SDL dummy driver)": _peak_of(
            _kiosk_argv("--config", str(synthetic), "--log-level", "WARNING", "run", "--seconds", "20"), 30,
            SDL_VIDEODRIVER="dummy", SDL_AUDIODRIVER="dummy"),
        "kiosk beacon": _peak_of(_kiosk_argv("--config", str(config), "--log-level", "WARNING", "beacon", "--transport",
                                             f"pcap:{work / 'beacon.pcap'}", "--assume-clock-synced", "--seconds", "8"), 15),
    }
    db = str(work / "upstream.db")
    upstream, url = start_upstream(db)
    try:
        (work / "sync").mkdir(exist_ok=True)
        sync_config = enrolled_device(work / "sync", db, url, "bench-sync")
        store = Store.open(work / "sync" / "state")
        seed_backlog(store, 5000, VENUE, "bench-sync", bytes(PrivateKey.generate().public_key))
        store.close()
        result["kiosk sync --once"] = _peak_of(_kiosk_argv("--config", str(sync_config), "--log-level", "WARNING",
                                                           "sync", "--once"), 120)
    finally:
        _stop(upstream)
    result["how"] = ("VmHWM (MB) sampled every 50 ms: kiosk run with the synthetic camera's queue of new visitors "
                     "(every code a check-in) for 20 s; kiosk sync uploading 5,000 check-ins; the beacon to a pcap file")
    return result
