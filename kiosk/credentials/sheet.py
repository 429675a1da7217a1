"""Printable pages for a venue manager: the provisioning sheet and the "check in here" poster (A4 PDF).

A bare QR image tells a manager nothing; the sheet says, in Vietnamese and English, which venue and
direction the code sets up, until when it works (issue time + ``provisioning.max_age_s``, in Vietnam
time), and the three steps to follow. fpdf2 writes the PDF with the DejaVu fonts the screen ships,
embedded as subsets, so Vietnamese prints and copies as text (``pdftotext`` reads it back).
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from kiosk.core.clock import local_time
from kiosk.credentials.provisioning import ProvisioningCode

logging.getLogger("fontTools").setLevel(logging.WARNING)  # its font subsetting logs every glyph at INFO

FONT_DIR = Path(__file__).resolve().parent.parent / "screen" / "fonts"
FAMILY = "DejaVu"
INK = (20, 20, 20)
DIM = (80, 80, 80)

DIRECTION = {"entry": ("Lối vào", "Entrance"), "exit": ("Lối ra", "Exit")}
STEPS = (
    ("Bật kiosk và đợi màn hình quét mã (có dòng “Quản lý: hãy quét mã QR cài đặt”).",
     "Power the kiosk on and wait for the scanning screen (it says “Manager: scan the setup QR code”)."),
    ("Đưa mã QR trên tờ này vào khung camera. Kiểm tra tên địa điểm và hướng trên màn hình, rồi bấm “Xác nhận”.",
     "Hold the QR code on this sheet in the camera frame. Check the venue name and direction on screen, "
     "then press “Confirm”."),
    ("Khi màn hình báo “Đã lưu cài đặt”, kiosk đã sẵn sàng. Hủy tờ giấy này: mã chỉ cài đặt được một thiết bị.",
     "When the screen says “Settings saved”, the kiosk is ready. Destroy this sheet: the code sets up one device only."),
)


def valid_until_text(code: ProvisioningCode, max_age_s: float) -> str:
    """The expiry in Vietnam time, as the sheet prints it: "04/06/2024 08:00"."""
    return local_time(int((code.issued_at + max_age_s) * 1000)).strftime("%d/%m/%Y %H:%M")


def _pdf():  # fpdf's class, imported late: only the authority's tools need it
    from fpdf import FPDF

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(18, 16, 18)
    pdf.add_font(FAMILY, "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font(FAMILY, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    return pdf


def _text(pdf, size: float, text: str, bold: bool = False, colour: tuple[int, int, int] = INK,  # noqa: ANN001
          align: str = "L", height: float | None = None) -> None:
    from fpdf.enums import XPos, YPos

    pdf.set_font(FAMILY, "B" if bold else "", size)
    pdf.set_text_color(*colour)
    pdf.multi_cell(0, height or size * 0.5, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _fitting_size(pdf, text: str, size: float, bold: bool, max_lines: int) -> float:  # noqa: ANN001
    """The largest size, from ``size`` down to 9 pt, at which ``text`` takes at most ``max_lines`` lines."""
    from fpdf.enums import MethodReturnValue

    while size > 9:
        pdf.set_font(FAMILY, "B" if bold else "", size)
        lines = pdf.multi_cell(0, size * 0.5, text, dry_run=True, output=MethodReturnValue.LINES)
        if len(lines) <= max_lines:
            break
        size -= 1
    return size


def _qr(pdf, text: str, side_mm: float) -> None:  # noqa: ANN001
    import segno

    image = io.BytesIO()
    segno.make(text, error="m", micro=False).save(image, kind="png", scale=10, border=4)
    image.seek(0)
    pdf.image(image, x=(pdf.w - side_mm) / 2, y=pdf.get_y(), w=side_mm, h=side_mm)
    pdf.set_y(pdf.get_y() + side_mm + 2)


def _save(pdf, out: Path) -> None:  # noqa: ANN001
    """Written next to the target and renamed, so a half-written sheet never exists under its name."""
    data = bytes(pdf.output())
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def write_sheet(out: Path, code: ProvisioningCode, text: str, max_age_s: float) -> None:
    """The provisioning sheet for one venue: facts, QR code, expiry, steps; Vietnamese first."""
    pdf = _pdf()
    vi_dir, en_dir = DIRECTION[code.direction]
    _text(pdf, 11, "MÃ CÀI ĐẶT KIOSK GHI NHẬN · CHECK-IN KIOSK SETUP CODE", bold=True, colour=DIM, align="C")
    pdf.ln(3)
    size = _fitting_size(pdf, code.venue_name, 22, True, 2)  # a long name shrinks: the page keeps its layout
    _text(pdf, size, code.venue_name, bold=True, align="C", height=size * 0.45)
    _text(pdf, 11, f"Mã địa điểm / Venue ID: {code.venue_id}", align="C", height=6)
    _text(pdf, 11, f"Hướng / Direction: {vi_dir} / {en_dir}", align="C", height=6)
    pdf.ln(3)
    _qr(pdf, text, 88)
    until = valid_until_text(code, max_age_s)
    _text(pdf, 14, f"Có hiệu lực đến / Valid until: {until}", bold=True, align="C", height=7)
    _text(pdf, 10, "giờ Việt Nam (UTC+7) · Vietnam time (UTC+7)", colour=DIM, align="C", height=5)
    pdf.ln(4)
    _text(pdf, 13, "Cách cài đặt / How to set up the kiosk", bold=True, height=7)
    for number, (vi, en) in enumerate(STEPS, 1):
        pdf.ln(1.5)
        _text(pdf, 11, f"{number}. {vi}", height=5.4)
        _text(pdf, 10, f"    {en}", colour=DIM, height=5)
    pdf.ln(4)
    _text(pdf, 9, f"Máy chủ / Server: {code.upstream_url}", colour=DIM, height=4.6)
    _text(pdf, 9, "Giữ kín tờ giấy này: ai có mã đều cài đặt được một kiosk cho địa điểm này. "
                  "Keep this sheet private: whoever holds the code can set up a kiosk for this venue.",
          colour=DIM, height=4.6)
    _save(pdf, out)


def write_poster(out: Path, venue_name: str, direction: str) -> None:
    """The venue's poster beside the kiosk: "check in here", in Vietnamese and English."""
    pdf = _pdf()
    vi_dir, en_dir = DIRECTION[direction]
    pdf.ln(18)
    _text(pdf, 40, "Ghi nhận tại đây", bold=True, align="C", height=18)
    _text(pdf, 28, "Check in here", colour=DIM, align="C", height=14)
    pdf.ln(14)
    _text(pdf, 20, "Đưa mã QR cá nhân, thẻ CCCD hoặc chứng nhận tiêm chủng vào khung camera.", align="C", height=10)
    _text(pdf, 16, "Hold your personal QR code, CCCD card or vaccine certificate to the camera.", colour=DIM,
          align="C", height=8)
    pdf.ln(10)
    _text(pdf, 16, "Không có mã QR? Hãy gặp nhân viên.", align="C", height=8)
    _text(pdf, 14, "No QR code? Please see a staff member.", colour=DIM, align="C", height=7)
    size = _fitting_size(pdf, venue_name, 26, True, 2)
    pdf.set_y(pdf.h - 60)
    _text(pdf, size, venue_name, bold=True, align="C", height=size * 0.46)
    _text(pdf, 18, f"{vi_dir} · {en_dir}", align="C", height=9)
    _save(pdf, out)
