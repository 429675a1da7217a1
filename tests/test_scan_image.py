"""``kiosk scan-image``: one JSON line per file, exact bytes, and it keeps going past broken files."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import segno
from PIL import Image

from conftest import run_kiosk
from scanner.corpus import HC1
from scanner.render import QUIET_ZONE, Shot, render_code, render_shot, scene

AT_1 = Path(__file__).parent / "data" / "dgc-testdata" / "AT" / "2DCode" / "raw" / "1.json"  # HC1 is its PREFIX


def scan(*files: Path | str) -> tuple[int, list[dict]]:
    result = run_kiosk("scan-image", *map(str, files))
    assert result.stderr == "" or "Traceback" not in result.stderr, result.stderr
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def payloads(record: dict) -> list[bytes]:
    return [base64.b64decode(c["bytes_b64"]) for c in record["codes"]]


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims to be width x height (a decompression bomb) with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    return path


def test_image_formats_pillow_opens(tmp_path):
    name = "Trần Thị Ngọc Ổi".encode()
    frame = scene(400, 400, render_code(name, module_px=5), seed=1)
    files = []
    for suffix, mode in ((".png", "L"), (".jpg", "RGB"), (".gif", "P"), (".bmp", "RGB"), (".webp", "RGB"),
                         (".tiff", "CMYK"), (".ppm", "RGB")):
        path = tmp_path / f"card{suffix}"
        Image.fromarray(frame).convert(mode).save(path)
        files.append(path)
    sixteen = tmp_path / "card-16bit.png"
    Image.fromarray(frame.astype(np.uint16) * 257).save(sixteen)  # I;16
    files.append(sixteen)
    status, records = scan(*files)
    assert status == 0
    assert [r["file"] for r in records] == [str(f) for f in files]
    for record in records:
        assert "error" not in record, record
        assert payloads(record) == [name] and record["codes"][0]["text"] == name.decode()
        assert isinstance(record["ms"], float) and record["ms"] >= 0


def test_a_code_saved_on_a_transparent_background(tmp_path):
    """Black modules on transparent pixels (a common export): laid on white, not read as black on black."""
    code = segno.make(b"DEMO-HQR-0000000000AA", micro=False)
    modules = np.pad(np.array([list(r) for r in code.matrix], bool), QUIET_ZONE)
    alpha = np.kron(np.where(modules, 255, 0).astype(np.uint8), np.ones((6, 6), np.uint8))
    rgba = np.zeros(alpha.shape + (4,), np.uint8)
    rgba[..., 3] = alpha
    path = tmp_path / "transparent.png"
    Image.fromarray(rgba, "RGBA").save(path)
    status, [record] = scan(path)
    assert status == 0 and payloads(record) == [b"DEMO-HQR-0000000000AA"]


def test_a_real_vaccine_certificate_and_a_full_size_binary_payload(tmp_path):
    certificate = tmp_path / "certificate.png"
    certificate.write_bytes(base64.b64decode(json.loads(AT_1.read_text())["2DCODE"]))
    blob = np.random.default_rng(3).integers(0, 256, 2953, dtype=np.uint8).tobytes()
    path = tmp_path / "binary.png"
    segno.make(blob, error="l", micro=False, boost_error=False).save(str(path), scale=3)
    status, records = scan(certificate, path)
    assert status == 0
    assert payloads(records[0]) == [HC1.encode()] and records[0]["codes"][0]["text"] == HC1
    assert payloads(records[1]) == [blob]
    assert records[1]["codes"][0]["text"] == blob.decode("utf-8", errors="replace")


def test_broken_files_get_an_error_and_the_scan_goes_on(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(render_shot(b"DEMO-HQR-0000000000BB", Shot(640, 480, medium="phone", px_per_module=4, seed=2))).save(good)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    truncated = tmp_path / "truncated.jpg"
    Image.open(good).convert("RGB").save(truncated, quality=95)
    truncated.write_bytes(truncated.read_bytes()[:1500])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    bomb = png_header_only(tmp_path / "bomb.png", 40000, 40000)
    nothing = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(nothing)
    files = [corrupt, truncated, empty, text, bomb, tmp_path / "missing.png", tmp_path, nothing, good]
    status, records = scan(*files)
    assert status == 1
    assert [r["file"] for r in records] == [str(f) for f in files]
    errors = {Path(r["file"]).name: r.get("error") for r in records}
    assert all(errors[f.name] for f in files[:7]), errors
    assert errors["missing.png"] == "No such file or directory" and errors[tmp_path.name] == "Is a directory"
    assert "decompression bomb" in errors["bomb.png"]
    assert all(r["codes"] == [] for r in records[:8])
    assert errors["blank.png"] is None  # readable, just no code in it
    assert payloads(records[-1]) == [b"DEMO-HQR-0000000000BB"]


def test_a_photo_larger_than_any_camera_frame_is_shrunk_and_still_read(tmp_path):
    photo = np.full((4800, 6400), 140, np.uint8)  # 30 Mpx, a phone camera's photo
    code = render_code("Lý Thị Hoa".encode(), module_px=40)
    photo[1000:1000 + code.shape[0], 2000:2000 + code.shape[1]] = code
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo).save(path, quality=85)
    status, [record] = scan(path)
    assert status == 0 and payloads(record) == ["Lý Thị Hoa".encode()]


@pytest.mark.parametrize("argv", [[], ["--no-such-option", "x.png"]])
def test_usage_errors(argv):
    result = run_kiosk("scan-image", *argv)
    assert result.returncode == 2 and "usage:" in result.stderr
