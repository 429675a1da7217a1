"""Every word the screen shows, in Vietnamese and English, in one table.

Keeping all visible text here lets one test render each string in every font size the layouts use
and fail on any glyph the font lacks, and lets a translator review the screen in one file.
Strings may hold ``{name}`` parameters; :data:`SAMPLE_PARAMS` gives a value for each, for that test.
"""

from __future__ import annotations

import string
import unicodedata

LANGUAGES = ("vi", "en")

# key -> (Vietnamese, English)
CATALOGUE: dict[str, tuple[str, str]] = {
    # ---- ready -----------------------------------------------------------------------------------
    "ready.title": ("Đưa mã QR vào khung", "Hold your QR code in the frame"),
    "ready.hint": ("Mã QR cá nhân, thẻ CCCD hoặc chứng nhận tiêm chủng",
                   "Personal QR, CCCD card or vaccine certificate"),
    "ready.direction.entry": ("Lối vào", "Entrance"),
    "ready.direction.exit": ("Lối ra", "Exit"),
    "preview.waiting": ("Đang chờ camera…", "Waiting for the camera…"),
    "ready.today": ("Hôm nay: {n} lượt ghi nhận", "Today: {n} check-ins"),
    "starting.title": ("Đang khởi động…", "Starting…"),
    "starting.detail": ("Máy sẽ sẵn sàng sau vài giây", "Ready in a few seconds"),
    # ---- typing an ID number (no working QR code) ------------------------------------------------
    "entry.staff": ("Nhân viên", "Staff"),
    "entry.visitor": ("Không có mã QR? Nhập số CCCD", "No QR code? Type your ID number"),
    "manual-entry.title": ("Nhập số CCCD", "Type the ID number"),
    "manual-entry.hint": ("12 số CCCD, hoặc 9 số CMND và năm sinh",
                          "12-digit CCCD, or 9-digit CMND and the birth year"),
    "manual-entry.year": ("Năm sinh (4 số)", "Birth year (4 digits)"),
    "manual-entry.need_digits": ("Cần 12 số (CCCD) hoặc 9 số (CMND)", "Type 12 digits (CCCD) or 9 (CMND)"),
    "manual-entry.need_year": ("Năm sinh có 4 số, ví dụ 1990", "A birth year has 4 digits, e.g. 1990"),
    "manual-entry.cancel": ("Hủy", "Cancel"),
    # ---- companions --------------------------------------------------------------------------------
    "companion.add": ("+ Trẻ em / người đi cùng", "+ Child / companion"),
    "companion.title": ("Đã ghi nhận người đi cùng", "Companion checked in"),
    "companion.count": ("Người đi cùng: {n}", "Companions: {n}"),
    # ---- results ---------------------------------------------------------------------------------
    "accepted.entry": ("Đã ghi nhận lượt vào", "Checked in"),
    "accepted.exit": ("Đã ghi nhận lượt ra", "Checked out"),
    "certificate-valid.entry": ("Chứng nhận hợp lệ, đã ghi nhận lượt vào", "Certificate valid: checked in"),
    "certificate-valid.exit": ("Chứng nhận hợp lệ, đã ghi nhận lượt ra", "Certificate valid: checked out"),
    "result.time": ("Lúc {time}", "At {time}"),
    "result.direction.entry": ("Lối vào", "Entry"),
    "result.direction.exit": ("Lối ra", "Exit"),
    "duplicate.title": ("Bạn đã được ghi nhận rồi", "Already checked in"),
    "duplicate.detail": ("Không cần quét lại", "No need to scan again"),
    "unrecognized.title": ("Không nhận ra mã này", "Code not recognised"),
    "unrecognized.detail": ("Hãy dùng mã QR cá nhân, thẻ CCCD hoặc chứng nhận tiêm chủng",
                            "Use your personal QR, CCCD card or vaccine certificate"),
    "expired.title": ("Chứng nhận đã hết hạn", "Certificate expired"),
    "not-yet-valid.title": ("Chứng nhận chưa có hiệu lực", "Certificate not yet valid"),
    "expired.detail": ("Vui lòng dùng mã QR cá nhân hoặc thẻ CCCD", "Please use your personal QR or CCCD card"),
    "untrusted.title": ("Không xác thực được chứng nhận", "Certificate could not be verified"),
    "untrusted.detail": ("Vui lòng gặp nhân viên", "Please see a staff member"),
    "rejected.title": ("Không được chấp nhận", "Not accepted"),
    "rejected.detail": ("Vui lòng gặp nhân viên", "Please see a staff member"),
    "rejected.code": ("Mã lỗi: {code}", "Reason: {code}"),  # maintenance screen only, never a visitor's
    # details for reason codes (kiosk/credentials); a code without an entry gets only the title
    "reason.empty": ("Mã QR trống", "The code is empty"),
    "reason.too-large": ("Mã QR quá lớn", "The code is too large"),
    "reason.malformed": ("Mã QR bị hỏng hoặc sai định dạng", "The code is damaged or malformed"),
    "reason.unreadable-frame": ("Không đọc được hình ảnh", "The picture could not be read"),
    "reason.untrusted-signer": ("Nơi cấp không có trong danh sách tin cậy", "The issuer is not on the trusted list"),
    "reason.invalid-signature": ("Chữ ký không hợp lệ", "The signature is not valid"),
    "reason.signer-not-valid": ("Chứng chỉ của nơi cấp không còn hiệu lực khi ký",
                                "The issuer's certificate was not valid when this was signed"),
    "reason.invalid-schema": ("Nội dung chứng nhận không đúng mẫu", "Its content is not in the certificate's form"),
    "reason.wrong-key-usage": ("Nơi cấp không được phép ký loại chứng nhận này",
                               "The issuer may not sign this kind of certificate"),
    "reason.invalid-cccd": ("Các thông tin trên mã thẻ CCCD không khớp nhau",
                            "The details in the CCCD card code do not agree"),
    "reason.not-yet-valid": ("Chưa đến ngày có hiệu lực", "It is not valid yet"),
    "reason.expired": ("Đã quá ngày hết hạn", "Its expiry date has passed"),
    "reason.not-recognised": ("Đây không phải mã dùng để ghi nhận", "This is not a check-in code"),
    "reason.not-provisioned": ("Thiết bị chưa sẵn sàng ghi nhận", "This kiosk is not ready to check people in"),
    "reason.no-authority-key": ("Thiết bị chưa sẵn sàng ghi nhận", "This kiosk is not ready to check people in"),
    "reason.invalid-number": ("Số CCCD không hợp lệ: kiểm tra lại 12 chữ số",
                              "The CCCD number is not valid: check the 12 digits"),
    "reason.invalid-birth-year": ("Năm sinh không khớp với số CCCD", "The birth year does not match the number"),
    "reason.other": ("Mã này không dùng được ở đây", "This code cannot be used here"),
    # ---- system problems -------------------------------------------------------------------------
    "camera-lost.title": ("Camera không hoạt động", "Camera not working"),
    "camera-lost.detail": ("Vui lòng báo nhân viên. Đang thử kết nối lại…",
                           "Please tell a staff member. Reconnecting…"),
    "storage-full.title": ("Không lưu được lượt ghi nhận", "Check-in could not be saved"),
    "storage-full.detail": ("Bộ nhớ đầy hoặc bị lỗi. Vui lòng báo nhân viên.",
                            "Storage is full or failing. Please tell a staff member."),
    "storage-full.banner": ("Lỗi bộ nhớ: lượt ghi nhận có thể không được lưu",
                            "Storage problem: check-ins may not be saved"),
    "clock-unset.title": ("Đồng hồ chưa được đặt", "Clock not set"),
    "clock-unset.banner": ("Đồng hồ chưa được đặt: lượt ghi nhận vẫn được lưu, giờ sẽ được chỉnh sau",
                           "Clock not set: check-ins are kept and their time corrected later"),
    "not-provisioned.title": ("Thiết bị chưa được cài đặt", "Device not set up"),
    "not-provisioned.detail": ("Quản lý: hãy quét mã QR cài đặt", "Manager: scan the setup QR code"),
    "out-of-service.title": ("Tạm ngừng phục vụ", "Out of service"),
    "out-of-service.detail": ("Vui lòng gặp nhân viên để được ghi nhận", "Please see a staff member to check in"),
    "error.title": ("Lỗi hệ thống", "System problem"),
    "error.detail": ("Vui lòng thử lại hoặc báo nhân viên", "Please try again or tell a staff member"),
    # ---- provisioning ----------------------------------------------------------------------------
    "provisioning.title": ("Cài đặt thiết bị này?", "Set up this device?"),
    "provisioning.venue": ("Địa điểm: {value}", "Venue: {value}"),
    "provisioning.venue_id": ("Mã địa điểm: {value}", "Venue ID: {value}"),
    "provisioning.direction": ("Hướng: {value}", "Direction: {value}"),
    "provisioning.upstream": ("Máy chủ: {value}", "Server: {value}"),
    "provisioning.confirm": ("Xác nhận", "Confirm"),
    "provisioning.cancel": ("Hủy", "Cancel"),
    "provisioning.applied": ("Đã lưu cài đặt", "Settings saved"),
    "provisioning.failed": ("Không áp dụng được cài đặt", "The settings could not be applied"),
    "provisioning.refused": ("Mã cài đặt bị từ chối", "Setup code refused"),
    "provisioning.cancelled": ("Đã hủy cài đặt", "Set-up cancelled"),
    "provisioning.unknown": ("(không có)", "(none)"),
    # ---- maintenance -----------------------------------------------------------------------------
    "maintenance.title": ("Bảo trì", "Maintenance"),
    "maintenance.pin": ("Nhập mã PIN", "Enter the PIN"),
    "maintenance.pin_wrong": ("Sai mã PIN", "Wrong PIN"),
    "maintenance.pin_locked": ("Thử lại sau {seconds} giây", "Try again in {seconds} s"),
    "maintenance.no_pin": ("Chưa đặt mã PIN (screen.pin trong tệp cấu hình)",
                           "No PIN is set (screen.pin in the config file)"),
    "maintenance.camera": ("Camera: {value}", "Camera: {value}"),
    "maintenance.store": ("Lưu trữ: {value}", "Storage: {value}"),
    "maintenance.sync": ("Đồng bộ: {value}", "Sync: {value}"),
    "maintenance.beacon": ("Phát Bluetooth: {value}", "Beacon: {value}"),
    "maintenance.clock": ("Đồng hồ: {value}", "Clock: {value}"),
    "maintenance.disk": ("Dung lượng trống: {mb} MB", "Free space: {mb} MB"),
    "maintenance.queue": ("Hàng đợi: {pending} chờ, {inflight} đang gửi, {dead} lỗi",
                          "Queue: {pending} waiting, {inflight} sending, {dead} failed"),
    "maintenance.today": ("Hôm nay: {today} lượt · từ khi bật máy: {since_start}",
                          "Today: {today} check-ins · since start: {since_start}"),
    "maintenance.out_of_service": ("Không ghi nhận được lượt vào: {reason}", "Cannot record check-ins: {reason}"),
    "out-of-service.not-provisioned": ("chưa có địa điểm, hãy quét mã QR cài đặt", "no venue set: scan the setup QR code"),
    "out-of-service.no-authority-key": ("thiếu khóa của cơ quan y tế (privacy.authority_public_key)",
                                        "the health authority's key is missing (privacy.authority_public_key)"),
    "out-of-service.storage-read-only": ("bộ nhớ không ghi được (kiểm tra thẻ nhớ)",
                                         "storage cannot be written (check the SD card)"),
    "maintenance.errors": ("Lỗi gần đây", "Recent errors"),
    "maintenance.no_errors": ("Không có", "None"),
    "maintenance.direction": ("Hướng: {value}", "Direction: {value}"),
    "maintenance.language": ("Ngôn ngữ: Tiếng Việt", "Language: English"),
    "maintenance.test_camera": ("Kiểm tra camera", "Test camera"),
    "maintenance.sync_now": ("Đồng bộ ngay", "Sync now"),
    "maintenance.sync_requested": ("Đã yêu cầu đồng bộ", "Sync requested"),
    "maintenance.sync_failed": ("Không yêu cầu được đồng bộ", "Could not request a sync"),
    "maintenance.saved": ("Đã lưu", "Saved"),
    "maintenance.save_failed": ("Không lưu được: {error}", "Could not save: {error}"),
    "maintenance.close": ("Đóng", "Close"),
    "maintenance.del": ("Xóa", "Delete"),
    "maintenance.ok": ("OK", "OK"),
    "maintenance.back": ("Quay lại", "Back"),
    "maintenance.frames": ("Khung hình: {frames} ({fps} hình/giây)", "Frames: {frames} ({fps} per second)"),
    "maintenance.unknown": ("chưa rõ", "unknown"),
    "maintenance.synced": ("đã đồng bộ", "synchronised"),
    "maintenance.not_synced": ("chưa đồng bộ", "not synchronised"),
    # component states written by the services (kiosk.core.store status table); others are shown as written
    "state.ok": ("hoạt động", "working"),
    "state.lost": ("mất kết nối", "lost"),
    "state.recovered": ("đã khôi phục", "recovered"),
    "state.online": ("trực tuyến", "online"),
    "state.offline": ("ngoại tuyến", "offline"),
    "state.advertising": ("đang phát", "advertising"),
    "state.missing": ("chưa có thông tin", "no report"),
    "state.waiting-for-clock": ("chờ đồng hồ được đặt", "waiting for the clock"),
    "state.adapter-missing": ("không thấy bộ Bluetooth", "no Bluetooth adapter"),
    "state.error": ("lỗi", "error"),
    "state.stopped": ("đã dừng", "stopped"),
    # ---- status bar ------------------------------------------------------------------------------
    "status.no_venue": ("Chưa có địa điểm", "No venue set"),
    "status.online": ("Trực tuyến", "Online"),
    "status.offline": ("Ngoại tuyến", "Offline"),
    "status.never_synced": ("Chưa gửi lần nào", "Nothing sent yet"),
    "status.sent_ago": ("đã gửi {age} trước", "sent {age} ago"),
    "status.sent_now": ("vừa gửi", "sent just now"),
    "status.queued": ("{n} chờ gửi", "{n} queued"),
    "status.beacon_on": ("Bluetooth bật", "Beacon on"),
    "status.beacon_off": ("Bluetooth tắt", "Beacon off"),
    "status.nearby": ("~{n} điện thoại", "~{n} phones"),
    "age.minutes": ("{n} phút", "{n} min"),
    "age.hours": ("{n} giờ", "{n} h"),
    "age.days": ("{n} ngày", "{n} d"),
    "lang.switch": ("English", "Tiếng Việt"),  # the button names the language it switches to
    # ---- what kind of code was read --------------------------------------------------------------
    "kind.cccd": ("Thẻ CCCD", "CCCD card"),
    "kind.personal": ("Mã QR cá nhân", "Personal health QR"),
    "kind.hc1": ("Chứng nhận tiêm chủng", "Vaccine certificate"),
    "kind.provisioning": ("Mã cài đặt", "Setup code"),
    "kind.cmnd": ("Số CMND", "Old ID number (CMND)"),
    "kind.companion": ("Người đi cùng", "Companion"),
    "kind.typed": ("Số CCCD nhập tay", "ID number typed in"),
    "kind.other": ("Mã QR", "QR code"),
}

# A representative value for every parameter, so every string can be rendered in tests.
SAMPLE_PARAMS = {"reason": "chưa có địa điểm", "time": "14:05", "code": "revoked", "value": "Chợ Bến Thành", "error": "lỗi ghi đĩa",
                 "seconds": 60, "mb": 1024, "pending": 3, "inflight": 1, "dead": 0, "frames": 120,
                 "fps": "15.0", "age": "5 phút", "n": 12, "today": 148, "since_start": 37}


def say(key: str, lang: str, **params: object) -> str:
    """The text for ``key`` in ``lang`` (NFC), with parameters filled in; unknown keys show the key."""
    entry = CATALOGUE.get(key)
    if entry is None:
        return key
    template = entry[LANGUAGES.index(lang) if lang in LANGUAGES else 0]
    try:
        text = template.format(**params) if params else template
    except (KeyError, IndexError, ValueError):
        text = template
    return unicodedata.normalize("NFC", text)


def other_language(lang: str) -> str:
    return LANGUAGES[1] if lang == LANGUAGES[0] else LANGUAGES[0]


def parameters(key: str) -> set[str]:
    """Names of the ``{parameters}`` the string ``key`` takes (in either language)."""
    return {name for template in CATALOGUE[key] for _, name, _, _ in string.Formatter().parse(template) if name}


def kind_label(kind: str, lang: str) -> str:
    return say(f"kind.{kind}" if f"kind.{kind}" in CATALOGUE else "kind.other", lang)


def age_text(seconds: float, lang: str) -> str:
    """A coarse age ("5 phút"): coarse so the status bar changes (and is redrawn) rarely."""
    minutes = int(seconds // 60)
    if minutes < 60:
        return say("age.minutes", lang, n=max(1, minutes))
    if minutes < 48 * 60:
        return say("age.hours", lang, n=minutes // 60)
    return say("age.days", lang, n=minutes // (24 * 60))
