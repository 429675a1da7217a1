"""One truth about the device's state: each scenario a new venue manager ran into, end to end.

Real `kiosk run`, `kiosk sync`, `kiosk provision` and `kiosk status` processes, real upstreams on
loopback, the real settings file in a shared state directory; the screen scenario runs the real
ScreenApp and scanner loop in one process, as `kiosk run` does.
"""

from __future__ import annotations

import base64
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pygame
import pytest

from conftest import ROOT, kiosk_env, run_kiosk, start_kiosk, wait_until
from kiosk.core.config import load_config, save_overrides
from kiosk.credentials.provisioning import ProvisioningCode, make_code, new_signing_keypair
from kiosk.pipeline import Pipeline
from kiosk.provisioning import ProvisioningFlow
from kiosk.screen.app import ScreenApp
from kiosk.service import run_scanner
from kiosk.core.store import Store
from scanner.camera.base import Camera
from scanner.render import render_code, scene
from sync.enroll import INTENT_FILE
from upstream_helpers import AUTHORITY_KEYS, free_port, start_upstream, token, upstream_ids

SIGNER = new_signing_keypair()


def device_config(path: Path, state_dir: Path, camera: str = 'backend = "synthetic"\nsynthetic_script = "idle"',
                  extra: str = "") -> Path:
    """A freshly installed kiosk: no venue, the authority's two keys, a quick uploader."""
    path.write_text(f"""
[device]
id = "gate-kiosk"
state_dir = "{state_dir}"
[camera]
{camera}
fps = 10
[clock]
assume_synced = true
[privacy]
authority_public_key = "{base64.b64encode(AUTHORITY_KEYS[1]).decode()}"
[provisioning]
authority_key = "{base64.b64encode(SIGNER[1]).decode()}"
[screen]
pin = "2468"
[sync]
wake_check_s = 0.05
backoff_base_s = 0.05
backoff_cap_s = 0.5
heartbeat_interval_s = 3600
[[formats.personal]]
name = "demo-health-qr"
pattern = 'DEMO-HQR-[0-9A-F]{{12}}'
{extra}""", encoding="utf-8")
    return path


def code_for(venue: str, upstream: str, enrollment_token: str, direction: str = "entry", name: str = "Bến xe Miền Tây") -> str:
    return make_code(SIGNER[0], ProvisioningCode(venue, name, direction, upstream, enrollment_token, int(time.time())))


def wait_for(what, timeout: float = 30.0):  # the suite's wait_until, with this file's timeout
    return wait_until(what, timeout)


def events(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    except FileNotFoundError:
        return []


def status(config_file: Path) -> tuple[int, dict]:
    result = run_kiosk("--config", str(config_file), "status", "--json")
    return result.returncode, json.loads(result.stdout)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class HeldCodes(Camera):
    """A visitor or a manager holding codes up to the camera when the test says so (a live camera)."""

    name = "held-codes"

    def __init__(self) -> None:
        self.codes: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.holding: list[np.ndarray] = []
        self.empty = scene(640, 480, None, seed=1)

    @classmethod
    def from_config(cls, config):
        return cls()

    def open(self) -> None:
        pass

    def read(self, timeout: float) -> np.ndarray:
        time.sleep(0.05)
        if not self.holding:
            try:
                code = render_code(self.codes.get_nowait().encode(), module_px=3)
                self.holding = [scene(640, 480, code, seed=2)] * 4 + [self.empty] * 2
            except queue.Empty:
                return self.empty
        return self.holding.pop(0)

    def close(self) -> None:
        pass


# ---- the screen: provisioning, then a change on the maintenance page --------------------------
def test_screen_provisioning_then_a_maintenance_change_keeps_the_venue(tmp_path):
    state_dir = tmp_path / "state"
    config_file = device_config(tmp_path / "kiosk.toml", state_dir)
    pygame.display.init()
    pipeline = Pipeline(load_config(config_file))
    flow = ProvisioningFlow(pipeline, auto=False)  # the screen asks, as in `kiosk run`
    seen: list = []
    camera, halt = HeldCodes(), threading.Event()
    app = ScreenApp(pygame.Surface((800, 480)), pipeline.config, on_provisioning=flow.confirm)
    pipeline.sinks += [flow, app.post_outcome, seen.append]
    scanner = threading.Thread(target=run_scanner, args=(pipeline, halt),
                               kwargs={"camera_factory": lambda: camera, "on_frame": app.post_frame})
    scanner.start()

    def step(*events: pygame.event.Event) -> None:
        app.step(list(events))

    def key(k: int, char: str = "") -> None:
        step(pygame.event.Event(pygame.KEYDOWN, key=k, unicode=char))

    try:
        step()
        assert app._shown_name == "out-of-service"  # no venue: the visitor is not invited to scan
        camera.codes.put(code_for("GATE-9", "http://127.0.0.1:9", "t" * 24, "entry"))
        wait_for(lambda: step() or app.provisioning is not None)
        key(pygame.K_RETURN, "\r")
        assert app.result.title == "provisioning.applied"
        assert app._drawn_bar["venue"][1] == "Bến xe Miền Tây"  # the status bar knows at once, no restart
        wait_for(lambda: pipeline.config.device.venue_id == "GATE-9")

        app.open_maintenance()
        for digit in "2468":
            key(pygame.K_0 + int(digit), digit)
        key(pygame.K_RETURN, "\r")
        app.maintenance.click("direction", app.now())
        app.maintenance.click("language", app.now())
        app.maintenance.click("close", app.now())
        step()
        wait_for(lambda: pipeline.config.device.direction == "exit")

        camera.codes.put("DEMO-HQR-0000000000E1")
        checkin = wait_for(lambda: [o for o in seen if o.event == "accepted"])[0]
        assert checkin.direction == "exit"
        store = Store.open(state_dir)
        row = store.checkin(checkin.checkin_id)
        store.close()
        assert (row["venue_id"], row["direction"]) == ("GATE-9", "exit")  # never the old venue-less copy
        settings = load_config(config_file)
        assert (settings.device.venue_id, settings.device.direction, settings.screen.language) == ("GATE-9", "exit", "en")
        assert not [o for o in seen if o.reason == "not-provisioned"]
    finally:
        halt.set()
        flow.close()
        scanner.join(20)
        pipeline.close()
        pygame.display.quit()


# ---- a settings change reaches every running process ----------------------------------------
@pytest.mark.system
def test_a_settings_change_reaches_the_running_scanner_and_uploader(tmp_path):
    state_dir = tmp_path / "state"
    config_file = device_config(tmp_path / "kiosk.toml", state_dir, 'backend = "synthetic"\nsynthetic_script = "unique"')
    first = start_upstream(str(tmp_path / "upstream.db"))
    second = start_upstream(first.db)  # another address of the same service
    events_file = tmp_path / "events.jsonl"
    run = sync = None
    try:
        assert run_kiosk("--config", str(config_file), "provision", "--upstream", first.url,
                         "--token", token(first.db, "GATE-1"), "--venue", "GATE-1").returncode == 0
        run = start_kiosk("--config", str(config_file), "run", "--headless", "--events", str(events_file),
                          stderr=open(tmp_path / "run.log", "w"))  # a file: a full pipe would stall the process
        sync = start_kiosk("--config", str(config_file), "sync", stderr=open(tmp_path / "sync.log", "w"))
        wait_for(lambda: len(upstream_ids(first.db)) >= 2)

        changed_ms = time.time_ns() // 1_000_000
        first.stop()  # from now on only the second address answers
        save_overrides(state_dir, {"device": {"direction": "exit"}, "sync": {"upstream_url": second.url}})
        exits = wait_for(lambda: [e for e in events(events_file) if e["direction"] == "exit"])
        print(f"first check-in with the new direction {exits[0]['at_utc_ms'] - changed_ms} ms after the change")
        later = [e for e in events(events_file) if e["at_utc_ms"] > exits[0]["at_utc_ms"]]
        assert all(e["direction"] == "exit" for e in later)

        def uploaded_through_second() -> bool:
            store = Store.reader(state_dir)
            try:
                record = store.statuses().get("sync", {})
            finally:
                store.close()
            return record.get("detail", {}).get("upstream") == second.url and record.get("state") == "online"
        wait_for(uploaded_through_second)
        exit_id = exits[0]["checkin_id"]
        wait_for(lambda: exit_id in upstream_ids(second.db))
    finally:
        for process in (run, sync):
            if process is not None:
                stop(process)
        first.stop()
        second.stop()
    assert "device settings changed: device.direction, sync.upstream_url" in (tmp_path / "run.log").read_text()
    assert "uploading to " + second.url in (tmp_path / "sync.log").read_text()


# ---- provisioning scanned, then the power is cut --------------------------------------------
@pytest.mark.system
def test_a_code_scanned_just_before_a_power_cut_is_enrolled_after_restart(tmp_path):
    state_dir = tmp_path / "state"
    frames = tmp_path / "frames"
    frames.mkdir()
    port = free_port()
    upstream_url = f"http://127.0.0.1:{port}"
    db = str(tmp_path / "upstream.db")
    start_upstream(db).stop()  # the upstream's database exists, to issue the venue's token from
    enrollment_token = token(db, "MARKET-3")
    code = render_code(code_for("MARKET-3", upstream_url, enrollment_token).encode(), module_px=3)
    for n in range(40):
        from PIL import Image

        Image.fromarray(scene(640, 480, code if n < 3 else None, seed=n)).save(frames / f"{n:04d}.png")
    config_file = device_config(tmp_path / "kiosk.toml", state_dir,
                                f'backend = "replay"\nreplay_path = "{frames}"\nreplay_loop = true')
    run = start_kiosk("--config", str(config_file), "run", "--headless", stderr=open(tmp_path / "run.log", "w"))
    try:
        wait_for(lambda: (state_dir / INTENT_FILE).exists())
        run.kill()  # the power is cut: no clean stop, whatever the enrollment thread was doing
        run.wait(10)
    finally:
        if run.poll() is None:
            run.kill()
    assert (state_dir / INTENT_FILE).exists()
    assert enrollment_token not in (tmp_path / "run.log").read_text()  # the token is never logged

    # After the restart (the network still down) the kiosk is in service at the venue of the code ...
    sync = start_kiosk("--config", str(config_file), "sync", stderr=open(tmp_path / "sync.log", "w"))
    upstream = None
    try:
        wait_for(lambda: load_config(config_file).device.venue_id == "MARKET-3" or sync.poll() is not None)
        assert sync.poll() is None, (tmp_path / "sync.log").read_text()
        code_now, report = status(config_file)
        assert code_now == 1 and any("MARKET-3 is saved and not completed yet" in a for a in report["attention"])
        checkin = run_kiosk("--config", str(config_file), "checkin", "--payload", "DEMO-HQR-0000000000F1")
        assert checkin.returncode == 0, checkin.stderr  # visitors are checked in meanwhile, at the right venue
        # ... and once the network is back the uploader enrolls it and uploads, without a person.
        upstream = start_upstream(db, f"127.0.0.1:{port}")
        wait_for(lambda: checkin.stdout.strip() in upstream_ids(db))
    finally:
        stop(sync)
        if upstream is not None:
            upstream.stop()
    assert not (state_dir / INTENT_FILE).exists()
    assert enrollment_token not in (tmp_path / "sync.log").read_text()
    _, report = status(config_file)
    assert report["enrollment"]["state"] == "enrolled"
    assert not any("enroll" in a for a in report["attention"]), report["attention"]


@pytest.mark.system
def test_provision_offline_saves_and_says_what_happens_next(tmp_path):
    state_dir = tmp_path / "state"
    config_file = device_config(tmp_path / "kiosk.toml", state_dir)
    url = f"http://127.0.0.1:{free_port()}"
    result = run_kiosk("--config", str(config_file), "provision", "--upstream", url, "--token", "kt_" + "s" * 30,
                       "--venue", "CHO-LON-1")
    assert result.returncode == 75
    assert f"cannot reach {url}: check the network and the address" in result.stderr
    assert "the enrollment is saved too and the uploader (kiosk sync) retries it" in result.stderr
    assert "Traceback" not in result.stderr and "HTTPConnectionPool" not in result.stderr
    assert "s" * 30 not in result.stderr
    assert load_config(config_file).device.venue_id == "CHO-LON-1"
    assert (state_dir / INTENT_FILE).exists()


@pytest.mark.system
def test_provision_with_a_used_or_wrong_token_says_to_ask_for_a_new_code(tmp_path):
    state_dir = tmp_path / "state"
    config_file = device_config(tmp_path / "kiosk.toml", state_dir)
    upstream = start_upstream(str(tmp_path / "upstream.db"))
    try:
        result = run_kiosk("--config", str(config_file), "provision", "--upstream", upstream.url,
                           "--token", "kt_not-a-token-at-all-xxxxxxxxxx", "--venue", "CHO-LON-1")
        assert result.returncode == 1
        assert "refused this enrollment code (bad-token): ask the health authority for a new code" in result.stderr
        other = token(upstream.db, "ANOTHER-VENUE")
        result = run_kiosk("--config", str(config_file), "provision", "--upstream", upstream.url, "--token", other,
                           "--venue", "CHO-LON-1")
        assert "(venue-mismatch): the code was issued for another venue" in result.stderr
    finally:
        upstream.stop()
    assert not (state_dir / INTENT_FILE).exists()  # refused: nothing left to retry
    code, report = status(config_file)
    assert code == 1 and any("enrollment refused by" in a for a in report["attention"])


# ---- broken files -----------------------------------------------------------------------------
@pytest.mark.system
@pytest.mark.parametrize("damage", [b"", b"[device]\nvenue_id = \"GATE", b"\xff\xfe\x00", b"[device]\nvenue_id = 7\n",
                                    b"device = 1\n"])
def test_a_damaged_settings_file_keeps_the_last_good_settings(tmp_path, damage):
    state_dir = tmp_path / "state"
    config_file = device_config(tmp_path / "kiosk.toml", state_dir)
    save_overrides(state_dir, {"device": {"venue_id": "GATE-2", "direction": "exit"}})
    (state_dir / "settings.toml").write_bytes(damage)  # edited by hand, or cut short
    config = load_config(config_file)
    assert (config.device.venue_id, config.device.direction) == ("GATE-2", "exit")  # the last good copy
    assert config.settings_problem
    checkin = run_kiosk("--config", str(config_file), "checkin", "--payload", "DEMO-HQR-0000000000A9")
    assert checkin.returncode == 0, checkin.stderr
    store = Store.open(state_dir)
    assert store.checkin(checkin.stdout.strip())["venue_id"] == "GATE-2"
    store.close()
    code, report = status(config_file)
    assert code == 1 and any(a.startswith("device settings damaged, the last good ones are in use") for a in report["attention"])
    # The next change by the device repairs the file; the damaged one is kept for a person to look at.
    save_overrides(state_dir, {"screen": {"language": "en"}})
    repaired = load_config(config_file)
    assert not repaired.settings_problem and repaired.device.venue_id == "GATE-2" and repaired.screen.language == "en"
    if damage.strip():  # an empty file is not worth keeping: still kept, like the others
        assert list(state_dir.glob("settings.toml.damaged-*"))


@pytest.mark.system
def test_a_settings_file_broken_while_running_is_logged_and_the_venue_kept(tmp_path):
    state_dir = tmp_path / "state"
    config_file = device_config(tmp_path / "kiosk.toml", state_dir, 'backend = "synthetic"\nsynthetic_script = "unique"')
    save_overrides(state_dir, {"device": {"venue_id": "GATE-5"}})
    events_file = tmp_path / "events.jsonl"
    run = start_kiosk("--config", str(config_file), "run", "--headless", "--events", str(events_file),
                      stderr=open(tmp_path / "run.log", "w"))
    try:
        wait_for(lambda: events(events_file))
        (state_dir / "settings.toml").write_text('[device]\nvenue_id = "GATE-5"\ndirection = "sideways"\n')
        broke_ms = time.time_ns() // 1_000_000
        wait_for(lambda: [e for e in events(events_file) if e["at_utc_ms"] > broke_ms + 2000])
    finally:
        stop(run)
    log = (tmp_path / "run.log").read_text()
    assert "device settings not applied" in log and "'device.direction' = 'sideways' is not allowed" in log
    said = [line for line in log.splitlines() if "device settings not applied" in line]
    assert said and len(said) == len(set(said)) <= 2  # once per change of the file (an editor may truncate first), not per frame
    store = Store.open(state_dir)
    venues = {r["venue_id"] for r in store.db["checkins"].rows}
    directions = {r["direction"] for r in store.db["checkins"].rows}
    store.close()
    assert venues == {"GATE-5"} and directions == {"entry"}


@pytest.mark.system
def test_two_writers_at_once_both_take_effect(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    writer = ("import sys; from pathlib import Path; from kiosk.core.config import save_overrides\n"
              "for n in range(40): save_overrides(Path(sys.argv[1]), {sys.argv[2]: {sys.argv[3]: sys.argv[4 + n % 2]}})\n")
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(state_dir), *args], env=kiosk_env(), cwd=ROOT)
             for args in (("device", "direction", "exit", "entry"), ("screen", "language", "en", "vi"))]
    seen_problems = []
    while any(p.poll() is None for p in procs):
        seen_problems.append(load_config(None, str(state_dir)).settings_problem)
    assert [p.returncode for p in procs] == [0, 0]
    assert not any(seen_problems)  # a reader never meets a half-written file
    final = load_config(None, str(state_dir))
    assert (final.device.direction, final.screen.language) == ("entry", "vi")  # each writer's last word


# ---- kiosk status: non-zero for every condition that refuses visitors or stops uploads ----------
@pytest.mark.system
def test_status_names_each_refusing_condition(tmp_path):
    state_dir = tmp_path / "state"
    Store.open(state_dir).close()
    config_file = device_config(tmp_path / "kiosk.toml", state_dir)
    code, report = status(config_file)
    assert code == 1 and any(a.startswith("not provisioned: visitors are refused") for a in report["attention"])

    save_overrides(state_dir, {"device": {"venue_id": "GATE-7"}})
    code, report = status(config_file)
    assert code == 1 and any(a.startswith("not enrolled with an upstream") for a in report["attention"])

    unreadable = device_config(tmp_path / "k2.toml", state_dir, extra="").read_text().replace(
        base64.b64encode(AUTHORITY_KEYS[1]).decode(), str(tmp_path / "no-such-key.pub"))
    (tmp_path / "k2.toml").write_text(unreadable)
    code, report = status(tmp_path / "k2.toml")
    assert code == 1 and any("privacy.authority_public_key" in a and "cannot read the key file" in a
                             and str(tmp_path / "k2.toml") in a for a in report["attention"])

    (tmp_path / "k3.toml").write_text(config_file.read_text().replace("[clock]", f'[formats]\nhc1_trust = "{tmp_path}/gone.pem"\n[clock]'))
    code, report = status(tmp_path / "k3.toml")
    assert code == 1 and any("formats.hc1_trust" in a and "`kiosk run` will not start" in a for a in report["attention"])
    run = run_kiosk("--config", str(tmp_path / "k3.toml"), "run", "--headless", "--seconds", "1")
    assert run.returncode == 2  # the same check stops the scanner


@pytest.mark.system
def test_status_on_read_only_storage(tmp_path, config_file, state_dir):
    Store.open(state_dir).close()
    script = 'mount --bind "$STATE" "$STATE"\nmount -o remount,bind,ro "$STATE"\nexec "$@"\n'
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", script, "sh",
                             sys.executable, "-m", "kiosk", "--config", str(config_file), "status"],
                            env=kiosk_env(STATE=str(state_dir)), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"ATTENTION: storage read-only: {state_dir} cannot be written, so check-ins are refused" in result.stdout


@pytest.mark.system
@pytest.mark.parametrize("damage", [b"", b'{"device_id": "gate-kiosk", "venue_id": "GA', b"[1, 2]"])
def test_a_damaged_enrollment_file_is_attention_and_nothing_uploads_as_someone_else(tmp_path, damage):
    state_dir = tmp_path / "state"
    config_file = device_config(tmp_path / "kiosk.toml", state_dir)
    Store.open(state_dir).close()
    save_overrides(state_dir, {"device": {"venue_id": "GATE-8"}})
    (state_dir / "sync-enrollment.json").write_bytes(damage)
    code, report = status(config_file)
    assert code == 1 and any("sync-enrollment.json is damaged" in a for a in report["attention"]), report["attention"]
    result = run_kiosk("--config", str(config_file), "sync", "--once")  # kiosk/core/statefiles.py: exit 3, the file named
    assert result.returncode == 3 and "sync-enrollment.json" in result.stderr and "Traceback" not in result.stderr
