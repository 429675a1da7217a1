"""The logs of a real run: useful to an operator, with a journald level on every line, and nobody in them."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

from conftest import ROOT, kiosk_env, run_kiosk
from scanner.camera.synthetic import demo_token
from scanner.render import render_code, scene

NAME = "NGUYỄN VĂN AN"
CCCD_NUMBER = "001090654321"
OLD_CMND = "012345679"
ADDRESS = "Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh"
CCCD = f"{CCCD_NUMBER}|{OLD_CMND}|{NAME}|01011990|Nam|{ADDRESS}|15042021"
TOKENS = [demo_token(n).decode() for n in (1, 2, 3)]
WIFI = "WIFI:S:chocafe;T:WPA;P:matkhau-bi-mat;;"
SECRETS = [*TOKENS, CCCD_NUMBER, OLD_CMND, NAME, "NGUYEN VAN AN", "VĂN AN", ADDRESS, "Bến Nghé", "matkhau-bi-mat"]


def write_frames(folder: Path, payloads: list[str]) -> None:
    """What the camera saw: each code held for three frames, an empty scene between visitors."""
    folder.mkdir()
    frames = []
    for payload in payloads:
        code = render_code(payload.encode("utf-8"), module_px=4)
        frames += [scene(640, 480, code, seed=len(frames))] * 3 + [scene(640, 480, None, seed=len(frames))]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")


def test_logs_of_a_real_run_name_events_but_no_visitor(tmp_path, state_dir, authority_keys):
    frames = tmp_path / "frames"
    write_frames(frames, [TOKENS[0], CCCD, WIFI, TOKENS[1], TOKENS[0]])
    config = tmp_path / "kiosk.toml"
    config.write_text(f"""
[device]
id = "log-test"
venue_id = "VENUE-LOG"
state_dir = "{state_dir}"
[camera]
backend = "replay"
replay_path = "{frames}"
replay_loop = false
fps = 30
[clock]
assume_synced = true
[privacy]
authority_public_key = "{base64.b64encode(authority_keys[1]).decode()}"
[formats]
accept_unknown_as_opaque = true
[[formats.personal]]
name = "demo-health-qr"
pattern = 'DEMO-HQR-[0-9A-F]{{12}}'
""", encoding="utf-8")
    events = tmp_path / "events.jsonl"
    run = run_kiosk("--config", str(config), "--log-level", "DEBUG", "run", "--headless", "--events", str(events))
    assert run.returncode == 0, run.stderr
    typed = [run_kiosk("--config", str(config), "--log-level", "DEBUG", "checkin", "--payload", p)
             for p in (TOKENS[2], TOKENS[2], CCCD, "not a code " + NAME)]
    logs = run.stdout + run.stderr + "".join(r.stdout + r.stderr for r in typed)

    # The operator's lines are there: start, camera, one line per check-in naming only its id.
    outcomes = [json.loads(line) for line in events.read_text().splitlines()]
    accepted = [o["checkin_id"] for o in outcomes if o["event"] == "accepted"]
    assert len(accepted) >= 3, outcomes  # first token, the CCCD card, the second token (the Wi-Fi code too if opaque)
    assert "scanner started: kiosk 0.1.0, device log-test, venue VENUE-LOG (entry)" in logs
    assert "camera replay open" in logs
    recorded = re.findall(r"check-in ([0-9a-f-]{36}) recorded", run.stderr)
    assert recorded == accepted

    # ... and nobody is: not in the logs, the event stream, nor in clear in the database.
    stored = b"".join(p.read_bytes() for p in state_dir.iterdir() if p.name.startswith("kiosk.db"))
    for secret in SECRETS:
        assert secret not in logs, f"{secret!r} appears in the logs"
        assert secret not in events.read_text(encoding="utf-8"), f"{secret!r} appears in the events"
        assert secret.encode("utf-8") not in stored, f"{secret!r} is stored in clear"


def test_lines_carry_journald_priorities_under_systemd(tmp_path, state_dir):
    """With $JOURNAL_STREAM naming our stderr, each line starts with <N> (3 error, 4 warning, 6 info)."""
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[device]\nvenue_id = "V"\nstate_dir = "{state_dir}"\n'
                      f'[camera]\nbackend = "replay"\nreplay_path = "{tmp_path / "no-such-camera"}"\n')
    log_file = tmp_path / "stderr"
    with open(log_file, "w") as err:
        st = os.fstat(err.fileno())
        env = kiosk_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        subprocess.run([sys.executable, "-m", "kiosk", "--config", str(config), "run", "--headless", "--seconds", "2"],
                       stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT, timeout=60, check=True)
    lines = log_file.read_text().splitlines()
    assert lines and all(re.match(r"<[0-7]>", line) for line in lines), lines
    assert any(line.startswith("<6>kiosk.service: scanner started") for line in lines)
    assert any(line.startswith("<3>scanner.feed: camera unavailable") for line in lines)
    # The camera stays missing: an error once; the retries are only information.
    assert sum(line.startswith("<3>") and "camera unavailable" in line for line in lines) == 1

    # Not under systemd (or stderr redirected elsewhere): plain level names.
    result = run_kiosk("--config", str(config), "run", "--headless", "--seconds", "1", JOURNAL_STREAM="1:2")
    assert "ERROR scanner.feed: camera unavailable" in result.stderr
