"""The host side of ``./dev appliance`` (tests/appliance/): what it decides without booting a VM.

The VM run itself is ``./dev appliance`` in CI; these tests cover the decisions that must hold on
any machine: the Debian mirror comes from apt's configuration, a half-built image is never used,
and the display check tells the kiosk's ready screen from anything else on the screen.
"""

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "appliance"))
import compare_screens
import image

DATA = Path(__file__).parent / "data" / "appliance"


def test_mirror_comes_from_apts_deb822_sources(tmp_path, monkeypatch):
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n")
    monkeypatch.setattr(image, "Path", _rooted(tmp_path))
    assert image.host_debian_mirror() == "http://mirror.example/debian"


def test_mirror_comes_from_a_one_line_sources_list(tmp_path, monkeypatch):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [signed-by=/k.gpg] http://other.example/debian bookworm main\n")
    monkeypatch.setattr(image, "Path", _rooted(tmp_path))
    assert image.host_debian_mirror() == "http://other.example/debian"


def test_no_bookworm_source_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://x.example/ubuntu jammy main\n")
    monkeypatch.setattr(image, "Path", _rooted(tmp_path))
    with pytest.raises(image.BuildError, match="no Debian bookworm archive"):
        image.host_debian_mirror()


def _rooted(root: Path):
    """Path, with /etc/apt/... redirected into ``root``."""
    def make(text, *rest):
        text = str(text)
        if text.startswith("/etc/apt/"):
            return Path(root, text[len("/etc/apt/"):], *rest)
        return Path(text, *rest)
    return make


def test_a_build_that_died_half_way_is_never_used(tmp_path):
    final = tmp_path / "image-abc"
    stale = tmp_path / "image-abc.tmp-999"
    stale.mkdir()
    (stale / "base.img").write_bytes(b"half")

    def dies(tmp: Path) -> None:
        (tmp / "base.img").write_bytes(b"partial")
        raise image.BuildError("image: mkfs.ext4: exit code 1; read image.log")

    with pytest.raises(image.BuildError):
        image._complete(final, dies)
    assert not final.exists(), "a failed build must not leave the folder a later run would reuse"
    assert not stale.exists(), "an earlier half-built folder is removed, not reused"

    built = image._complete(final, lambda tmp: (tmp / "base.img").write_bytes(b"whole"))
    assert built == final and (final / "base.img").read_bytes() == b"whole"
    again = image._complete(final, lambda tmp: pytest.fail("a complete image is reused, not rebuilt"))
    assert again == final


@pytest.mark.system
def test_ready_screen_is_recognised(tmp_path):
    shot = tmp_path / "shot.png"
    result = compare_screens.compare_with_ready(_ready_screenshot(tmp_path, shot), tmp_path)
    assert result["match"] is True, result
    assert result["panel_pixels_differing"] < 0.01


def test_a_login_console_is_not_the_ready_screen(tmp_path):
    # qemu's picture of a VM whose kiosk drew on another display: Debian's login prompt.
    result = compare_screens.compare_with_ready(DATA / "console-not-kiosk.png", tmp_path)
    assert result["match"] is False, result


def test_a_blank_screen_is_not_the_ready_screen(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (1280, 800), (0, 0, 0)).save(blank)
    assert compare_screens.compare_with_ready(blank, tmp_path)["match"] is False


def _ready_screenshot(tmp_path: Path, out: Path) -> Path:
    import subprocess

    subprocess.run([str(compare_screens.REPO / ".venv/bin/kiosk"), "screenshot", "--state", "ready", "--size",
                    "1280x800", str(out)], check=True, timeout=300)
    return out
