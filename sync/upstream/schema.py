"""Request and answer bodies of the upstream API, as pydantic models (the OpenAPI document's source).

Strict: wrong types are refused rather than coerced, unknown fields are refused, every string and
list has a size limit, so nothing the server stores is larger than the protocol allows.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="device or venue id")]
Uuid = Annotated[str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                            description="lower-case UUID made on the device at scan time")]
Millis = Annotated[int, Field(ge=0, le=2**53, description="milliseconds since the Unix epoch, UTC")]
Base64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$")]
ShortText = Annotated[str, Field(max_length=200)]
Source = Literal["camera", "manual", "keypad", "companion"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Error(BaseModel):
    """Body of every 4xx and 5xx answer."""

    reason: str = Field(description="machine-readable reason, e.g. bad-signature, replay, invalid-field")
    message: str
    server_time_ms: int
    fields: Optional[list[dict]] = Field(None, description="for invalid-field: where and what")


class TimeReply(BaseModel):
    utc_ms: int


# ---- enrollment -------------------------------------------------------------------------------
class EnrollRequest(Strict):
    token: Annotated[str, Field(min_length=8, max_length=128)]
    device_id: Id
    venue_id: Id
    public_key: Annotated[Base64, Field(min_length=44, max_length=44, description="raw Ed25519 public key, base64")]
    software_version: Annotated[str, Field(min_length=1, max_length=64)]


class EnrollReply(BaseModel):
    device_id: str
    venue_id: str
    enrolled_ms: int
    server_time_ms: int


# ---- check-ins --------------------------------------------------------------------------------
class CheckinItem(Strict):
    """One row of the device's ``checkins`` table; never a clear identity."""

    id: Uuid
    venue_id: Id
    device_id: Id
    direction: Literal["entry", "exit"]
    utc_ms: Millis
    monotonic_ns: Annotated[int, Field(ge=0, le=2**63 - 1)]
    boot_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")]
    clock_synced: bool
    kind: Annotated[str, Field(pattern=r"^[a-z0-9_.-]{1,32}$")]
    visitor_ref: Annotated[str, Field(pattern=r"^[0-9a-f]{16,128}$", description="device-keyed hash of the visitor")]
    sealed_subject: Optional[Annotated[Base64, Field(max_length=8192)]] = Field(
        None, description="identity sealed to the health authority's key (libsodium sealed box), base64")
    source: Source = Field("camera", description="how the check-in was made: scanned, typed by staff, typed by "
                                                 "the visitor, or a companion checked in with an adult")
    companion_of: Optional[Uuid] = Field(None, description="for a companion: the id of the adult's check-in")


class CheckinBatch(Strict):
    checkins: Annotated[list[CheckinItem], Field(min_length=1, max_length=1000)]


class CheckinResult(BaseModel):
    id: str
    status: Literal["stored", "duplicate", "rejected"]
    reason: Optional[str] = None


class BatchReply(BaseModel):
    results: list[CheckinResult]
    stored: int
    duplicates: int
    rejected: int
    server_time_ms: int


# ---- heartbeat --------------------------------------------------------------------------------
Scalar = Union[Annotated[str, Field(max_length=200)], int, float, bool, None]


class ComponentState(Strict):
    state: Annotated[str, Field(min_length=1, max_length=32)]
    detail: Annotated[dict[Annotated[str, Field(max_length=64)], Scalar], Field(max_length=32)] = {}


class Heartbeat(Strict):
    software_version: Annotated[str, Field(min_length=1, max_length=64)]
    sent_utc_ms: Millis
    queue_depth: Annotated[int, Field(ge=0)]
    oldest_unsent_age_s: Optional[Annotated[float, Field(ge=0)]] = None
    clock_offset_ms: Annotated[int, Field(ge=-(2**53), le=2**53)]
    clock_synced: bool
    disk_free_bytes: Optional[Annotated[int, Field(ge=0)]] = None
    nearby_phones: Optional[Annotated[int, Field(ge=0, le=100000)]] = None
    components: Annotated[dict[Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")], ComponentState],
                          Field(max_length=16)] = {}


class Ack(BaseModel):
    ok: bool
    server_time_ms: int


# ---- beacon key -------------------------------------------------------------------------------
class BeaconKey(BaseModel):
    model_config = ConfigDict(extra="forbid")  # not strict: the date arrives as a JSON string

    base_key: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$", description="32-byte Bluezone base key, hex")]
    key_day: dt.date = Field(description="UTC day the key was made for (YYYY-MM-DD)")


class BeaconKeyReply(BaseModel):
    registered: bool = Field(description="false when this key was already registered")
    server_time_ms: int


# ---- operator views ---------------------------------------------------------------------------
class DeviceView(BaseModel):
    device_id: str
    venue_id: str
    enrolled_ms: int
    revoked_ms: Optional[int]
    last_seen_ms: Optional[int]
    last_heartbeat_ms: Optional[int]
    silent: bool = Field(description="no heartbeat for longer than silent_after_s (or never)")
    heartbeat: Optional[dict]


class Fleet(BaseModel):
    server_time_ms: int
    silent_after_s: int
    devices: list[DeviceView]


class TracedCheckin(BaseModel):
    id: str
    venue_id: str
    device_id: str
    direction: str
    utc_ms: int
    clock_synced: bool
    kind: str
    visitor_ref: str
    sealed_subject: Optional[str]
    source: str
    companion_of: Optional[str]
    received_ms: int


class Trace(BaseModel):
    venue_id: str
    start_ms: int
    end_ms: int
    checkins: list[TracedCheckin]


class Exposure(BaseModel):
    venue_id: str
    start_ms: int
    end_ms: int
    devices: list[str]
    f0: list[dict[str, Union[str, int]]] = Field(
        description="Bluezone F0 entries {daily_key, time_start, max, time_end} from the venue's beacon keys")


class Stats(BaseModel):
    total: int
    distinct: int
    devices: int
    venues: int
