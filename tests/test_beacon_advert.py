import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.advert import AdvertError, bluezone_advert, bluezone_id_from_ad, check_length, parse_ad

ID = bytes.fromhex("B9A665D754FE65E665D76A45")


def test_advert_bytes_are_exactly_bluezones_layout():
    assert bluezone_advert(ID) == bytes.fromhex("020106" "0303564E" "0FFFB522") + ID
    assert len(bluezone_advert(ID)) == 23


@pytest.mark.parametrize("bad", [b"", ID[:11], ID + b"\x00"])
def test_only_twelve_byte_ids_are_advertised(bad):
    with pytest.raises(AdvertError, match="12 bytes"):
        bluezone_advert(bad)


def test_thirty_one_byte_limit():
    check_length(bytes(31))
    with pytest.raises(AdvertError, match="at most 31"):
        check_length(bytes(32))


def test_our_advert_reads_back_as_our_id():
    assert bluezone_id_from_ad(bluezone_advert(ID)) == ID


@pytest.mark.parametrize("ad, expected", [
    # the order of structures does not matter, padding after them is ignored
    (bytes.fromhex("0FFFB522") + ID + bytes.fromhex("0303564E020106") + bytes(8), ID),
    # an incomplete UUID list with other services still counts; longer manufacturer data: first 12 bytes
    (bytes.fromhex("05020F18564E") + bytes.fromhex("11FFB522") + ID + b"\x01\x02", ID),
    # no 0x4E56 in the service list: Android's scan filter drops it
    (bytes.fromhex("0303AAFE0FFFB522") + ID, None),
    # right service, other company
    (bytes.fromhex("0303564E0FFF4C00") + ID, None),
    # manufacturer data too short for an ID
    (bytes.fromhex("0303564E0BFFB522") + ID[:8], None),
    # a structure overrunning the data: parsing stops there, nothing is invented
    (bytes.fromhex("0303564E1FFFB522") + ID, None),
    # zero length ends the data
    (bytes.fromhex("00") + bluezone_advert(ID), None),
    (b"", None),
    (b"\xff" * 31, None),
])
def test_hostile_and_odd_adverts(ad, expected):
    assert bluezone_id_from_ad(ad) == expected


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_parser_never_raises_and_never_reads_past_the_data(data):
    structures = parse_ad(data)
    assert sum(len(v) + 2 for _, v in structures) <= len(data)
    found = bluezone_id_from_ad(data)
    assert found is None or (len(found) == 12 and found in data)


@given(st.binary(min_size=12, max_size=12), st.binary(max_size=8))
def test_any_id_survives_a_round_trip_with_trailing_bytes(bluezone_id, tail):
    assert bluezone_id_from_ad(bluezone_advert(bluezone_id) + tail) == bluezone_id
