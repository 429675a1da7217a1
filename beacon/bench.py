"""``kiosk bench beacon``: ID derivation, F0 building, and one slot switch on an emulated controller."""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


def _timed(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": round(statistics.median(times), 3), "max_ms": round(max(times), 3)}


def bench_beacon(args: argparse.Namespace) -> dict[str, Any]:
    from beacon.emulator import Emulator, EmulatorUnavailable
    from beacon.hci import Controller, non_resolvable_address
    from beacon.ids import BaseKey, id_at
    from beacon.advert import bluezone_advert
    from beacon.register import f0_entries
    from beacon.transport import open_transport

    now = time.time_ns() // 1_000_000
    today = dt.date(1970, 1, 1) + dt.timedelta(days=now // 86_400_000)
    fresh = BaseKey(secrets.token_bytes(32), today)
    year_old = BaseKey(secrets.token_bytes(32), today - dt.timedelta(days=365))
    result: dict[str, Any] = {
        "id_at_key_made_today": _timed(lambda: id_at(fresh, now), 200),
        "id_at_key_made_a_year_ago": _timed(lambda: id_at(year_old, now), 200),
        "f0_entries_14_days": _timed(lambda: f0_entries(year_old.key, year_old.day, now - 14 * 86_400_000, now), 50),
    }
    try:
        with Emulator(Path(tempfile.mkdtemp(prefix="kiosk-bench-bt-"))) as emulator:
            controller = Controller(open_transport(emulator.transport))
            controller.reset()
            controller.set_random_address(non_resolvable_address())
            controller.set_adv_params(0x0140, 9)
            controller.set_adv_enable(True)  # so that every timed switch starts from "advertising"

            def switch() -> None:  # what the service sends at each 15-minute boundary
                controller.set_adv_enable(False)
                controller.set_random_address(non_resolvable_address())
                controller.set_adv_params(0x0140, 9)
                controller.set_adv_data(bluezone_advert(id_at(fresh, now)))
                controller.set_adv_enable(True)
            result["slot_switch_on_btvirt"] = _timed(switch, 50)
            controller.close()
    except EmulatorUnavailable as exc:
        result["slot_switch_on_btvirt"] = f"not measured: {exc}"
    return result
