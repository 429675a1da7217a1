"""``kiosk bench credentials``: time to classify and verify each format, and a zlib bomb's memory cost."""

from __future__ import annotations

import argparse
import base64
import time
import tracemalloc
import zlib
from typing import Any


def bench_credentials(args: argparse.Namespace) -> dict[str, Any]:
    import base45

    from kiosk.bench import percentile
    from kiosk.core.config import Config
    from kiosk.credentials import FormatContext, default_registry
    from kiosk.credentials.hc1 import evaluate
    from kiosk.credentials.issuer import Issuer
    from kiosk.credentials.provisioning import ProvisioningCode, make_code, new_signing_keypair
    from kiosk.credentials.trust import TrustList

    issuer = Issuer.new()
    signing, verify = new_signing_keypair()
    now_ms = time.time_ns() // 1_000_000
    config = Config().replace(formats={"personal": [{"name": "demo", "pattern": r"DEMO-HQR-[0-9A-F]{12}"}]},
                              provisioning={"authority_key": base64.b64encode(verify).decode()})
    trust = TrustList.of([(issuer.cert, None)], "bench")
    registry = default_registry(config, trust=trust)
    payloads = {
        "cccd": "001090123456||NGUYỄN VĂN AN|01011990|Nam|Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh|15042021".encode(),
        "personal": b"DEMO-HQR-0000000000AB",
        "hc1": issuer.hc1(),
        "provisioning": make_code(signing, ProvisioningCode("V-1", "Chợ", "entry", "https://up.example.vn",
                                                            "enroll-0123456789abcdef", now_ms // 1000)).encode(),
        "unknown": b"WIFI:S:cafe;T:WPA;P:secret;;",
    }
    ctx = FormatContext(now_utc_ms=now_ms, config=config)
    result: dict[str, Any] = {"iterations": args.scans}
    for kind, payload in payloads.items():
        registry.classify(payload, ctx)  # warm caches (schema, imports)
        times = []
        for _ in range(args.scans):
            start = time.perf_counter()
            registry.classify(payload, ctx)
            times.append((time.perf_counter() - start) * 1e6)
        result[kind] = {"payload_bytes": len(payload), "us_p50": round(percentile(times, 50), 1),
                        "us_p99": round(percentile(times, 99), 1)}
    result["hostile_pattern"] = _hostile_pattern(result["personal"]["us_p50"])
    bomb = b"HC1:" + base45.b45encode(zlib.compress(b"A" * (50 * 2**20), 9))
    evaluate(bomb, trust, now_ms)
    start = time.perf_counter()
    refused = evaluate(bomb, trust, now_ms)
    elapsed = time.perf_counter() - start
    tracemalloc.start()  # memory in a second run: tracing slows every allocation down
    evaluate(bomb, trust, now_ms)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result["zlib_bomb"] = {"inflates_to_mb": 50, "payload_bytes": len(bomb), "refused_at": refused.facts.get("layer"),
                           "ms": round(elapsed * 1000, 2), "traced_peak_mb": round(peak / 2**20, 2)}
    return result


def _hostile_pattern(floor_us: float) -> dict[str, Any]:
    """A nested-repetition pattern on codes made to backtrack: RE2's cost against Python's ``re``.

    The floor is the ordinary personal pattern's p50 from the same run; Python's ``re`` is timed once
    on a short code only (each added byte doubles its time)."""
    import re

    from kiosk.core.patterns import compile_linear

    nested = r"PC-([0-9A-F]+)+-OK"
    linear = compile_linear(nested)
    out: dict[str, Any] = {"pattern": nested}
    for size in (27, 2953):
        text = "PC-" + "A" * (size - 4) + "!"
        start = time.perf_counter()
        for _ in range(100):
            linear.fullmatch(text)
        us = (time.perf_counter() - start) / 100 * 1e6
        out[f"re2_us_{size}_bytes"] = round(us, 1)
        out[f"re2_{size}_bytes_to_floor"] = round(us / floor_us, 2) if floor_us else None
    start = time.perf_counter()
    re.fullmatch(nested, "PC-" + "A" * 20 + "!")
    out["python_re_ms_24_bytes"] = round((time.perf_counter() - start) * 1000, 1)
    return out
