import re
from pathlib import Path

import pytest

from conftest import ROOT, run_kiosk
from kiosk.core.config import Config, ConfigError, documented_keys, load_config

EXAMPLE = ROOT / "kiosk" / "kiosk.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "k.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_documents_every_key_and_loads_as_the_defaults():
    text = EXAMPLE.read_text(encoding="utf-8")
    for key in documented_keys():
        section, name = key.split(".")
        assert re.search(rf"^\[{section}\]$", text, re.M), f"section [{section}] missing from the example"
        assert re.search(rf"^{name} = ", text, re.M), f"key {key} is not documented in the example"
    loaded = load_config(EXAMPLE)
    sections = [key.split(".")[0] for key in documented_keys()]
    assert {s: getattr(loaded, s) for s in sections} == {s: getattr(Config(), s) for s in sections}


@pytest.mark.parametrize("text, words", [
    ("[device]\ndirection = 'sideways'\n", ["device.direction", "'entry', 'exit'"]),
    ("[camera]\nfps = 'fast'\n", ["camera.fps", "a number"]),
    ("[camera]\nwidth = 10\n", ["camera.width", "160 to 4096"]),
    ("[camera]\ncolour = true\n", ["camera.colour", "allowed:"]),
    ("[screen2]\n", ["[screen2]", "allowed:"]),
    ("[device]\nvenue_id = 'a b'\n", ["device.venue_id", "letters"]),
    ("[[formats.personal]]\nname = 'x'\npattern = '(['\n", ["formats.personal[0].pattern", "regular expression"]),
    ("[scan\n", ["not valid TOML"]),
    ("device = 3\n", ["[device] must be a table"]),
])
def test_bad_value_names_file_key_and_what_is_allowed(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_binary_and_oversized_files_are_refused(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)
    path.write_bytes(b"# x\n" * 300_000)
    with pytest.raises(ConfigError, match="larger than 1 MB"):
        load_config(path)


def test_env_and_flag_choose_file_and_state_dir(tmp_path, monkeypatch):
    path = write(tmp_path, "[device]\nvenue_id = 'V9'\n")
    monkeypatch.setenv("KIOSK_CONFIG", str(path))
    monkeypatch.setenv("KIOSK_STATE_DIR", str(tmp_path / "s1"))
    config = load_config()
    assert config.device.venue_id == "V9" and config.state_dir == tmp_path / "s1"
    assert load_config(state_dir=str(tmp_path / "s2")).state_dir == tmp_path / "s2"


@pytest.mark.system
def test_service_does_not_start_half_configured(tmp_path):
    path = write(tmp_path, f"[device]\nstate_dir = '{tmp_path / 'state'}'\n[camera]\nbackend = 'webcam9000'\n")
    result = run_kiosk("--config", str(path), "run", "--headless", "--seconds", "1")
    assert result.returncode == 2
    assert "camera.backend" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.system
def test_missing_file_is_a_clear_error(tmp_path):
    result = run_kiosk("--config", str(tmp_path / "nope.toml"), "checkin", "--payload", "x")
    assert result.returncode == 2
    assert "nope.toml: cannot read config file" in result.stderr


def test_settings_made_on_the_device_override_the_file_and_survive_restart(config_file, state_dir):
    from kiosk.core.config import save_overrides

    save_overrides(state_dir, {"device": {"direction": "exit", "venue_name": 'Chợ "Lớn"'}})
    config = load_config(config_file)
    assert config.device.direction == "exit"
    assert config.device.venue_name == 'Chợ "Lớn"'
    assert config.device.venue_id == "VENUE-1"  # untouched keys still come from the file
    with pytest.raises(ConfigError, match="device.direction"):
        save_overrides(state_dir, {"device": {"direction": "up"}})
    assert load_config(config_file).device.direction == "exit"  # the refused change was not written
