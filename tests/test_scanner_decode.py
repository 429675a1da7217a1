"""The decoder on real rendered QR images: exact bytes, inverted, phone screens, dense and binary codes."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import segno
from pyzbar import pyzbar

from scanner import decode
from scanner.corpus import HC1
from scanner.decode import FrameError, decode_frame, zbar_read
from scanner.images import UNREADABLE, load_luma
from scanner.render import QUIET_ZONE, Shot, render_code, render_shot, scene

DGC_TESTDATA = Path(__file__).parent / "data" / "dgc-testdata"
# Their PNG holds another certificate than their PREFIX field (zbar reads the same as we do).
IMAGE_IS_NOT_PREFIX = {"ES/2DCode/raw/501.json", "ES/2DCode/raw/502.json", "ES/2DCode/raw/503.json"}


def issuer_images() -> list[Path]:
    return sorted(p for p in DGC_TESTDATA.glob("*/2DCode/raw/*.json") if json.loads(p.read_text()).get("2DCODE"))
SHORT_VIETNAMESE = ["Ngọc", "Ổi", "Vũ Ả|Nữ", "Đặng Thị Ánh Tuyết", "Hồ Chí Minh"]


def code_image(code: segno.QRCode, px: int = 4, dark: int = 0, light: int = 255) -> np.ndarray:
    modules = np.pad(np.array([list(r) for r in code.matrix], dtype=bool), QUIET_ZONE)
    return np.kron(np.where(modules, dark, light).astype(np.uint8), np.ones((px, px), np.uint8))


@pytest.mark.parametrize("text", SHORT_VIETNAMESE)
def test_short_vietnamese_comes_back_as_the_exact_utf8_bytes(text):
    payload = text.encode()
    frame = scene(640, 480, render_code(payload, module_px=5), seed=1)
    assert decode_frame(frame) == [payload]
    assert zbar_read(frame) == [payload], "the pyzbar stage alone must return exact bytes too"


def test_raw_pyzbar_garbles_them_which_is_why_the_decoder_asks_zbar_for_binary():
    frame = scene(640, 480, render_code("Ngọc".encode(), module_px=5), seed=1)
    raw = pyzbar.decode(frame, symbols=[pyzbar.ZBarSymbol.QRCODE])[0].data
    assert raw != "Ngọc".encode() and raw.decode() == "Ng盻皇"


@pytest.mark.parametrize("code, expected", [
    (segno.make("Ngọc", encoding="utf-8", eci=True, micro=False), "Ngọc".encode()),  # with an ECI UTF-8 header
    (segno.make("日本".encode("shift_jis"), micro=False), "日本".encode("shift_jis")),     # kanji mode
    (segno.make(HC1, error="q", micro=False), HC1.encode()),                               # alphanumeric mode
    (segno.make("001090123456", micro=False), b"001090123456"),                           # numeric mode
    (segno.make(b"caf\xe9 \xff\xfe\x00\x01", micro=False), b"caf\xe9 \xff\xfe\x00\x01"),  # Latin-1, control bytes
], ids=["eci-utf8", "kanji", "alphanumeric", "numeric", "latin1-binary"])
def test_every_qr_mode_returns_the_bytes_the_symbol_holds(code, expected):
    assert decode_frame(code_image(code, px=4)) == [expected]


def test_all_256_byte_values_and_a_full_2953_byte_binary_payload_pass_intact():
    every_byte = bytes(range(256))
    assert decode_frame(code_image(segno.make(every_byte, micro=False), px=3)) == [every_byte]
    largest = np.random.default_rng(7).integers(0, 256, 2953, dtype=np.uint8).tobytes()
    code = segno.make(largest, error="l", micro=False, boost_error=False)
    assert code.version == 40
    frame = scene(640, 640, code_image(code, px=3, dark=20, light=235), seed=3)
    assert decode_frame(frame) == [largest]


def test_a_payload_one_byte_over_the_qr_maximum_cannot_even_be_made():
    with pytest.raises(segno.DataOverflowError):
        segno.make(b"\x00" * 2954, error="l", micro=False)


def test_inverted_codes_are_read():
    payload = "Phạm Văn Đồng".encode()
    frame = render_shot(payload, Shot(640, 480, medium="phone", px_per_module=5, inverted=True, seed=4))
    assert decode_frame(frame) == [payload]
    assert pyzbar.decode(frame, symbols=[pyzbar.ZBarSymbol.QRCODE]) == []


@pytest.mark.parametrize("condition", [
    {"glare": 0.8}, {"contrast": 0.25}, {"tilt": 35.0}, {"rotation": 45.0}, {"noise": 14.0}, {"blur": 1.5},
    {"tilt": 25.0, "blur": 1.0, "noise": 8.0, "glare": 0.4, "contrast": 0.6},
], ids=["glare", "low-contrast", "tilted", "rotated", "noisy", "blurred", "all-at-once"])
def test_a_phone_screen_with_moire_and_more(condition):
    cccd = "079190012345|012345678|NGUYỄN THỊ NGỌC ÁNH|01011990|Nữ|Quận 1, TP. Hồ Chí Minh|15042021".encode()
    frame = render_shot(cccd, Shot(640, 480, medium="phone", px_per_module=4, seed=11, **condition))
    assert decode_frame(frame) == [cccd]


@pytest.mark.parametrize("case", issuer_images(), ids=lambda p: str(p.relative_to(DGC_TESTDATA)))
def test_every_issuers_certificate_image_in_the_eu_test_data(case):
    """The QR images national issuers made for the EU DCC test suite (tests/data/dgc-testdata)."""
    data = json.loads(case.read_text())
    image = io.BytesIO(base64.b64decode(data["2DCODE"]))
    if data.get("EXPECTEDRESULTS", {}).get("EXPECTEDPICTUREDECODE") is False:  # Q1: "QR encoding broken"
        with pytest.raises(UNREADABLE):
            load_luma(image)
        return
    frame = load_luma(image)
    found = decode_frame(frame)
    if str(case.relative_to(DGC_TESTDATA)) in IMAGE_IS_NOT_PREFIX:
        assert found == [s.data for s in pyzbar.decode(frame, symbols=[pyzbar.ZBarSymbol.QRCODE])]
    else:
        assert found == [data["PREFIX"].encode()]


@pytest.mark.parametrize("px", [3.0, 4.0])
def test_a_dense_version_19_certificate_filmed_on_a_phone(px):
    frame = render_shot(HC1.encode(), Shot(640, 480, medium="phone", px_per_module=px, tilt=20, seed=5), error="q")
    assert decode_frame(frame) == [HC1.encode()]


def test_two_visitors_in_one_frame_give_both_codes():
    a, b = render_code(b"DEMO-HQR-000000000001", module_px=4), render_code("Lê Thị B".encode(), module_px=4)
    frame = scene(640, 480, seed=2)
    frame[40:40 + a.shape[0], 40:40 + a.shape[1]] = a
    frame[240:240 + b.shape[0], 360:360 + b.shape[1]] = b
    assert sorted(decode_frame(frame)) == sorted([b"DEMO-HQR-000000000001", "Lê Thị B".encode()])


def test_empty_scenes_give_nothing():
    for seed in range(40):
        frame = render_shot(None, Shot(640, 480, medium=("paper", "phone")[seed % 2], px_per_module=3,
                                       inverted=seed % 5 == 0, glare=0.5 * (seed % 3 == 0), seed=seed))
        assert decode_frame(frame) == [], f"false positive on empty scene {seed}"


def test_without_zxing_cpp_zbar_alone_still_returns_exact_bytes(monkeypatch):
    monkeypatch.setattr(decode, "_zxing", lambda: None)
    payload = "Ổi".encode()
    assert decode_frame(scene(640, 480, render_code(payload, module_px=4), seed=5)) == [payload]


def test_colour_and_odd_layouts_of_a_valid_frame_are_accepted():
    grey = scene(320, 240, render_code(b"DEMO-HQR-000000000002", module_px=3), seed=6)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    assert decode_frame(rgb) == [b"DEMO-HQR-000000000002"]
    assert decode_frame(grey[..., None]) == [b"DEMO-HQR-000000000002"]  # (h, w, 1), as OpenCV gives
    padded = np.zeros((240, 384), np.uint8)
    padded[:, :320] = grey
    assert decode_frame(padded[:, :320]) == [b"DEMO-HQR-000000000002"]  # a strided view, like picamera2's


@pytest.mark.parametrize("frame, problem", [
    ("not an array", "not a numpy array"),
    (np.zeros((480, 640), np.float32), "2-D uint8"),
    (np.zeros((480, 640), np.uint16), "2-D uint8"),
    (np.zeros((480, 640), bool), "2-D uint8"),
    (np.zeros((480, 640, 2), np.uint8), "2-D uint8"),
    (np.zeros(640, np.uint8), "2-D uint8"),
    (np.zeros((2, 480, 640, 3), np.uint8), "2-D uint8"),
    (np.zeros((10, 640), np.uint8), "outside what a camera gives"),
    (np.zeros((0, 0), np.uint8), "outside what a camera gives"),
    (np.zeros((4097, 4097), np.uint8), "outside what a camera gives"),
], ids=["str", "float", "uint16", "bool", "2-channel", "1-D", "4-D", "sliver", "empty", "huge"])
def test_frames_no_camera_gives_are_refused_clearly(frame, problem):
    with pytest.raises(FrameError, match=problem):
        decode_frame(frame)


def test_the_largest_accepted_frame_decodes_without_trouble():
    frame = np.full((4096, 4096), 128, np.uint8)
    code = render_code(b"DEMO-HQR-000000000003", module_px=12)
    frame[1000:1000 + code.shape[0], 3000:3000 + code.shape[1]] = code
    assert decode_frame(frame) == [b"DEMO-HQR-000000000003"]


def test_random_noise_frames_give_nothing():
    rng = np.random.default_rng(12)
    for _ in range(10):
        assert decode_frame(rng.integers(0, 256, (480, 640), dtype=np.uint8)) == []
