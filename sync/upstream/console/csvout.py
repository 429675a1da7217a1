"""One CSV of a venue's trace, written the same way by the console and by `kiosk upstream trace
--format csv`, so the two match row for row.

Times are ISO 8601 with Vietnam's +07:00 offset. Sealed identities stay sealed (base64), as in the
JSON trace: only the authority's offline `kiosk upstream export` opens them.
"""

from __future__ import annotations

import base64
import csv
import io
from typing import Any, Iterable

from sync.upstream.console.localtime import iso_local

COLUMNS = ("checkin_id", "venue_id", "device_id", "direction", "scanned_at", "clock_synced", "kind",
           "visitor_ref", "sealed_subject", "received_at")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """A spreadsheet would run a cell starting with '=', '+', '-' or '@' as a formula (a base64
    sealed identity can start with '+'); a leading apostrophe keeps it text."""
    return "'" + value if value.startswith(_FORMULA_START) else value


EXPORT_COLUMNS = tuple("subject" if c == "sealed_subject" else c for c in COLUMNS)


def _row(row: dict[str, Any], identity: str) -> list[str]:
    return [_cell(str(v)) for v in (
        row["id"], row["venue_id"], row["device_id"], row["direction"], iso_local(row["utc_ms"]),
        "true" if row["clock_synced"] else "false", row["kind"], row["visitor_ref"], identity,
        iso_local(row["received_ms"]))]


def _write(header: tuple[str, ...], rows: Iterable[list[str]]) -> str:
    """Header first, CRLF line ends as RFC 4180 has them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def trace_csv(rows: Iterable[dict[str, Any]]) -> str:
    """A trace as stored: identities sealed (base64), or empty for a check-in without one."""
    return _write(COLUMNS, (_row(r, base64.b64encode(r["sealed_subject"]).decode("ascii")
                                 if r["sealed_subject"] is not None else "") for r in rows))


def export_csv(rows: Iterable[dict[str, Any]]) -> str:
    """The authority's export: ``subject`` is the unsealed identity (rows from `kiosk upstream export`)."""
    return _write(EXPORT_COLUMNS, (_row(r, r["subject"] or "") for r in rows))
