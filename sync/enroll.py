"""``kiosk provision``'s network half: enroll this device with an upstream using a one-time token.

The device makes its Ed25519 key pair itself (the private key never leaves the state directory),
signs the enrollment request with it (proof of possession), and only after the upstream accepted
writes the venue and upstream URL into the device-made settings.
"""

from __future__ import annotations

import base64
import logging

from kiosk import __version__
from kiosk.config import Config, save_overrides
from sync import protocol as p
from sync.identity import Enrollment, load_or_create_key, save_enrollment
from sync.transport import BadReply, Unreachable, UpstreamSession

log = logging.getLogger("kiosk.sync")


class EnrollError(RuntimeError):
    """``reason`` is the upstream's refusal (bad-token, token-used, ...) or "unreachable" (retry later)."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason


def provision(config: Config, upstream_url: str, token: str, venue_id: str, ca_bundle: str = "",
              direction: str | None = None) -> Enrollment:
    """Enroll and persist; raises ValueError (bad URL) or EnrollError (refused, unreachable)."""
    from kiosk.pipeline import device_id

    url = p.check_upstream_url(upstream_url)
    settings = {"device": {"venue_id": venue_id, **({"direction": direction} if direction else {})},
                "sync": {"upstream_url": url, **({"ca_bundle": ca_bundle} if ca_bundle else {})}}
    config.replace(**settings)  # refuse a bad venue id or direction before touching the network
    state_dir = config.state_dir
    key = load_or_create_key(state_dir)
    me = device_id(config)
    session = UpstreamSession(url, me, key, ca_bundle or config.sync.ca_bundle,
                              config.sync.connect_timeout_s, config.sync.read_timeout_s)
    public_key = base64.b64encode(p.public_key_bytes(key)).decode("ascii")
    try:
        session.sync_clock()
        reply = session.post(p.PATH_ENROLL, {"token": token, "device_id": me, "venue_id": venue_id,
                                             "public_key": public_key, "software_version": __version__})
    except Unreachable as exc:
        raise EnrollError("unreachable", str(exc)) from None
    except BadReply as exc:
        reply = exc.reply
    finally:
        session.close()
    if reply.status >= 500 or reply.status == 429:  # the upstream's trouble, not a refusal: try again later
        raise EnrollError("unreachable", f"HTTP {reply.status} {reply.reason}")
    if reply.status != 200:
        raise EnrollError(reply.reason, reply.message)
    enrollment = Enrollment(device_id=me, venue_id=venue_id, upstream_url=url, public_key=public_key,
                            enrolled_ms=int(reply.body.get("enrolled_ms", 0)))
    save_enrollment(state_dir, enrollment)
    save_overrides(state_dir, settings)
    log.info("enrolled as %s at venue %s with %s", me, venue_id, url)
    return enrollment
