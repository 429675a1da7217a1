"""The provisioning sheet and poster a venue manager gets, read back as a person and a kiosk would."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import run_kiosk

ISSUED = "2024-06-01T08:00:00+07:00"
VENUE = "Chợ Bến Thành – Cổng chính số 1"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("authority") / "keys"
    result = run_kiosk("authority-keys", str(folder))
    assert result.returncode == 0, result.stderr
    return folder


def make(keys, *extra: str, venue_id: str = "CHO-BEN-THANH-01", config: str | None = None):
    return run_kiosk(*(("--config", config) if config else ()), "provisioning-code", "make",
                     "--key", str(keys / "provisioning.key"), "--venue-id", venue_id, "--venue-name", VENUE,
                     "--direction", "exit", "--upstream", "https://checkin.example.vn", "--token",
                     "kt_abcdefghijklmnop1234", "--issued-at", ISSUED, *extra)


def pdf_text(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def test_the_sheet_holds_venue_direction_expiry_steps_and_a_code_a_kiosk_reads(keys, tmp_path):
    sheet = tmp_path / "sheet.pdf"
    result = make(keys, "--sheet", str(sheet))
    assert result.returncode == 0, result.stderr
    code = result.stdout.strip()
    text = pdf_text(sheet)
    assert VENUE in text and "CHO-BEN-THANH-01" in text
    assert "Lối ra" in text and "Exit" in text
    assert "Valid until: 04/06/2024 08:00" in text  # issued + 72 h (provisioning.max_age_s), Vietnam time
    assert "Có hiệu lực đến" in text
    for step in ("1. Bật kiosk", "2. Đưa mã QR", "3. Khi màn hình", "Power the kiosk on", "press “Confirm”"):
        assert step in " ".join(text.split()), step
    assert "kt_abcdefghijklmnop1234" not in text  # the token travels in the code only
    # the printed QR code, as the kiosk's decoder reads it from the page
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(sheet), str(tmp_path / "page")], check=True)
    scanned = run_kiosk("scan-image", str(tmp_path / "page.png"))
    assert scanned.returncode == 0, scanned.stderr
    texts = [c.get("text") for line in scanned.stdout.splitlines() for c in json.loads(line).get("codes", [])]
    assert texts == [code]


def test_valid_until_follows_the_configured_max_age(keys, tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text("[provisioning]\nmax_age_s = 3600\n", encoding="utf-8")
    sheet = tmp_path / "sheet.pdf"
    result = make(keys, "--sheet", str(sheet), config=str(config))
    assert result.returncode == 0, result.stderr
    assert "Valid until: 01/06/2024 09:00" in pdf_text(sheet)


def test_the_poster_says_check_in_here_in_both_languages(keys, tmp_path):
    poster = tmp_path / "poster.pdf"
    result = make(keys, "--poster", str(poster))
    assert result.returncode == 0, result.stderr
    text = pdf_text(poster)
    assert "Ghi nhận tại đây" in text and "Check in here" in text and VENUE in text
    assert "Lối ra · Exit" in text


def test_a_public_key_is_refused_with_the_file_to_use(keys, tmp_path):
    sheet = tmp_path / "sheet.pdf"
    for key in (keys / "provisioning.pub", tmp_path / "renamed.key"):
        if key.name == "renamed.key":
            key.write_text((keys / "provisioning.pub").read_text())
            (tmp_path / "provisioning.pub").write_text((keys / "provisioning.pub").read_text())
        result = run_kiosk("provisioning-code", "make", "--key", str(key), "--venue-id", "V1", "--venue-name", "V",
                           "--upstream", "https://a.example.vn", "--token", "kt_abcdefghijklmnop1234",
                           "--sheet", str(sheet))
        assert result.returncode == 2 and "public key" in result.stderr and "provisioning.key" in result.stderr
        assert "Traceback" not in result.stderr and not result.stdout and not sheet.exists()


@pytest.mark.parametrize("args, accepted", [
    (["--venue-id", "CHỢ BẾN THÀNH"], "1 to 64 of A-Z a-z 0-9 . _ -"),
    (["--venue-id", "X" * 65], "1 to 64 of A-Z a-z 0-9 . _ -"),
    (["--upstream", "http://checkin.example.vn"], "https://"),
    (["--token", "short"], "16 to 256 of A-Z a-z 0-9 _ -"),
    (["--issued-at", "yesterday"], "2024-06-01T08:00:00+07:00"),
    (["--sheet", "sheet.txt"], ".pdf"),
])
def test_every_refusal_says_what_is_accepted(keys, tmp_path, args, accepted):
    base = {"--venue-id": "V1", "--venue-name": VENUE, "--upstream": "https://a.example.vn",
            "--token": "kt_abcdefghijklmnop1234"}
    base.update(dict(zip(args[::2], args[1::2])))
    if "--sheet" in base:
        base["--sheet"] = str(tmp_path / base["--sheet"])
    result = run_kiosk("provisioning-code", "make", "--key", str(keys / "provisioning.key"),
                       *[part for item in base.items() for part in item])
    assert result.returncode == 2 and accepted in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_long_or_strange_venue_name_still_makes_one_readable_page(keys, tmp_path):
    name = ("Bến xe Miền Đông mới – Cổng số 2 😀 שלום " * 8)[:200]
    sheet, poster = tmp_path / "sheet.pdf", tmp_path / "poster.pdf"
    result = run_kiosk("provisioning-code", "make", "--key", str(keys / "provisioning.key"), "--venue-id", "BX-MD",
                       "--venue-name", name, "--upstream", "https://a.example.vn", "--token", "kt_abcdefghijklmnop1234",
                       "--issued-at", ISSUED, "--sheet", str(sheet), "--poster", str(poster))
    assert result.returncode == 0, result.stderr
    for pdf in (sheet, poster):
        info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
        assert "Pages:           1" in info
        assert "Bến xe Miền Đông mới" in pdf_text(pdf)
    assert "Valid until: 04/06/2024 08:00" in pdf_text(sheet)
