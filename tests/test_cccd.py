"""CCCD card QR codes: fields checked against each other, the number as subject, a masked name."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timezone

import pytest

from credential_factory import CCCD, CCCD_FEMALE
from kiosk.credentials.base import FormatContext
from kiosk.credentials.cccd import CccdFormat, mask_name

NOW = FormatContext(now_utc_ms=int(datetime(2024, 6, 1, tzinfo=timezone.utc).timestamp() * 1000))


def parse(text: str | bytes):
    payload = text.encode("utf-8") if isinstance(text, str) else text
    fmt = CccdFormat()
    assert fmt.detect(payload)
    return fmt.parse(payload, NOW)


def with_field(index: int, value: str, base: str = CCCD) -> str:
    fields = base.split("|")
    fields[index] = value
    return "|".join(fields)


def test_valid_card_gives_number_as_subject_and_masked_name():
    cred = parse(CCCD)
    assert (cred.kind, cred.verdict, cred.reason) == ("cccd", "accepted", "ok")
    assert cred.subject == "001090123456"
    assert cred.display_name == "Nguyễn V. A."
    assert "NGUY" not in repr(cred) and "001090123456" not in repr(cred)  # never in logs by accident


def test_female_card_with_old_id_and_trailing_fields():
    cred = parse(CCCD_FEMALE + "|extra|fields")
    assert cred.accepted and cred.subject == "079191000123" and cred.display_name == "Trần T. N."


def test_decomposed_unicode_is_normalised():
    decomposed = unicodedata.normalize("NFD", CCCD)
    assert decomposed != CCCD
    cred = parse(decomposed)
    assert cred.accepted and cred.display_name == "Nguyễn V. A."


@pytest.mark.parametrize("name, shown", [
    ("NGUYỄN VĂN AN", "Nguyễn V. A."),
    ("LÊ THỊ", "Lê T."),
    ("H'HEN NIÊ", "H'Hen N."),
    ("PHẠM", "P."),  # a single word shows only its initial
    ("TÔN NỮ THỊ NINH", "Tôn N. T. N."),
    ("A" * 60 + " B", "A" + "a" * 22 + "… B."),
])
def test_masking(name, shown):
    assert mask_name(name) == shown


@pytest.mark.parametrize("index, value, field", [
    (0, "00109012345", "number"),          # 11 digits
    (0, "097090123456", "province"),       # province codes run 001-096
    (0, "000090123456", "province"),
    (0, "001290123456", "number-birth-year"),  # century digit 2 = born 2000s, DOB says 1990
    (0, "001091123456", "number-birth-year"),  # year digits 91, DOB says 1990
    (0, "001190123456", "number-gender"),      # odd century digit = female, card says Nam
    (1, "12345", "old-id"),
    (2, "", "name"),
    (2, "NGUYEN VAN 4N", "name"),
    (2, "<script>alert(1)</script>", "name"),
    (2, "ROBERT'); DROP TABLE checkins;--", "name"),
    (2, "A" * 101, "name"),
    (3, "31021990", "birth-date"),
    (3, "01011990x", "birth-date"),
    (3, "01012090", "birth-date"),          # in the future
    (3, "01011850", "birth-date"),
    (4, "Male", "gender"),
    (6, "15042031", "issue-date"),          # issued in the future
    (6, "01011980", "issue-date"),          # before birth
    (6, "", "issue-date"),
    (5, "x" * 301, "length"),
])
def test_field_errors_are_named(index, value, field):
    cred = parse(with_field(index, value))
    assert (cred.verdict, cred.reason, cred.facts) == ("rejected", "invalid-cccd", {"field": field})
    assert cred.subject == "" and cred.display_name == ""


@pytest.mark.parametrize("payload, field", [
    ("001090123456||NGUYEN VAN AN|01011990|Nam|Ha Noi".encode(), "fields"),
    (CCCD.encode("utf-16-le")[:0] + b"001090123456||NGUY\xff\xfeN|01011990|Nam|x|15042021", "encoding"),
    (CCCD.replace("NGUYỄN", "NGUY\u202eỄN").encode(), "characters"),   # bidi override
    (CCCD.replace("VĂN", "V\x00ĂN").encode(), "characters"),
    (CCCD.replace("VĂN", "V\u200bĂN").encode(), "characters"),        # zero-width space
])
def test_encoding_and_hidden_characters_rejected(payload, field):
    cred = parse(payload)
    assert (cred.reason, cred.facts) == ("invalid-cccd", {"field": field})


def test_card_dates_are_vietnamese_days():
    """Issued today in Hà Nội (07:30, still yesterday in UTC) is not 'issued in the future'."""
    morning = FormatContext(now_utc_ms=int(datetime(2024, 6, 1, 0, 30, tzinfo=timezone.utc).timestamp() * 1000))
    cred = CccdFormat().parse(with_field(6, "01062024").encode(), morning)
    assert cred.accepted


def test_detect_only_claims_card_like_payloads():
    fmt = CccdFormat()
    assert not fmt.detect(b"DEMO-HQR-000000000001")
    assert not fmt.detect(b"HC1:NCF")
    assert not fmt.detect(b"12345|x")
    assert not fmt.detect(with_field(0, "0010901234567").encode())       # 13 digits: not a card number
    assert not fmt.detect(with_field(0, "００１０９０１２３４５６").encode())  # full-width digits
