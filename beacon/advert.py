"""Bluezone advertising data: building ours, and reading a phone's (shared by scanner and tests).

Layout (23 of the 31 bytes of a legacy advert): flags ``02 01 06``, complete 16-bit service UUID list
``03 03 56 4E`` (0x4E56), manufacturer data ``0F FF B5 22`` + 12-byte ID (company 0x22B5 = 8885).
"""

from __future__ import annotations

import struct

SERVICE_UUID = 0x4E56
COMPANY_ID = 0x22B5
ID_LEN = 12
MAX_ADV_DATA = 31  # legacy advertising PDU payload

AD_FLAGS = 0x01
AD_UUID16_INCOMPLETE = 0x02
AD_UUID16_COMPLETE = 0x03
AD_MANUFACTURER = 0xFF
FLAGS_LE_GENERAL_NO_BREDR = 0x06


class AdvertError(ValueError):
    """Advertising data that cannot be sent (wrong ID length, over 31 bytes)."""


def ad_structure(ad_type: int, value: bytes) -> bytes:
    if len(value) > 254:
        raise AdvertError(f"AD structure 0x{ad_type:02X} is {len(value)} bytes; at most 254")
    return bytes([len(value) + 1, ad_type]) + value


def bluezone_advert(bluezone_id: bytes) -> bytes:
    if len(bluezone_id) != ID_LEN:
        raise AdvertError(f"a Bluezone ID is {ID_LEN} bytes, not {len(bluezone_id)}")
    data = (ad_structure(AD_FLAGS, bytes([FLAGS_LE_GENERAL_NO_BREDR]))
            + ad_structure(AD_UUID16_COMPLETE, struct.pack("<H", SERVICE_UUID))
            + ad_structure(AD_MANUFACTURER, struct.pack("<H", COMPANY_ID) + bluezone_id))
    check_length(data)
    return data


def check_length(data: bytes) -> None:
    if len(data) > MAX_ADV_DATA:
        raise AdvertError(f"advertising data is {len(data)} bytes; legacy advertising carries at most {MAX_ADV_DATA}")


def parse_ad(data: bytes) -> list[tuple[int, bytes]]:
    """AD structures as (type, value). Stops at a zero length (padding) or a structure overrunning the
    data, keeping what came before, as Android's ScanRecord parser does; never raises."""
    out = []
    pos = 0
    while pos < len(data):
        length = data[pos]
        if length == 0 or pos + 1 + length > len(data):
            break
        out.append((data[pos + 1], bytes(data[pos + 2:pos + 1 + length])))
        pos += 1 + length
    return out


def service_uuids16(structures: list[tuple[int, bytes]]) -> set[int]:
    uuids = set()
    for ad_type, value in structures:
        if ad_type in (AD_UUID16_INCOMPLETE, AD_UUID16_COMPLETE):
            uuids.update(struct.unpack_from("<H", value, i)[0] for i in range(0, len(value) - 1, 2))
    return uuids


def manufacturer_data(structures: list[tuple[int, bytes]], company: int) -> bytes | None:
    for ad_type, value in structures:
        if ad_type == AD_MANUFACTURER and len(value) >= 2 and struct.unpack_from("<H", value)[0] == company:
            return value[2:]
    return None


def bluezone_id_from_ad(data: bytes) -> bytes | None:
    """The ID in a Bluezone advert, the way Bluezone's Android scanner finds it: the advert must list
    service 0x4E56, and its manufacturer data for company 0x22B5 carries the ID (first 12 bytes)."""
    structures = parse_ad(data)
    if SERVICE_UUID not in service_uuids16(structures):
        return None
    payload = manufacturer_data(structures, COMPANY_ID)
    if payload is None or len(payload) < ID_LEN:
        return None
    return payload[:ID_LEN]
