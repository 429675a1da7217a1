"""The upstream URL rule, shared by the config check and the uploader: https, or http to loopback only."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses: the only hosts plain http may reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_upstream_url(url: str) -> str:
    """Return the URL without a trailing slash, or raise ValueError saying why it cannot be used.

    Plain http only reaches loopback (development); anything else must be https, always verified.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"upstream URL {url!r} must look like https://host[:port][/path]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"upstream URL {url!r} must not carry credentials, a query or a fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"upstream URL {url!r}: plain http is allowed only to a loopback address "
                         "(127.0.0.1, ::1, localhost); use https")
    return url.rstrip("/")
