"""The scanner's subcommand: ``kiosk scan-image FILE...`` (``kiosk bench scanner`` lives in kiosk/bench.py)."""

from __future__ import annotations

import argparse
import base64
import json
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan-image", help="decode the QR codes in image files, one JSON line per file",
                       description="Decode the QR codes in image files (any format Pillow reads) with the "
                                   "kiosk's decoder. One JSON line per file: file, codes (text and exact "
                                   "bytes in base64), ms; a file that cannot be read gets an \"error\" and "
                                   "the next file is scanned. Exit status 1 if any file could not be read.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_scan_image)


def cmd_scan_image(args: argparse.Namespace) -> int:
    from scanner.decode import FrameError, decode_frame
    from scanner.images import UNREADABLE, load_luma

    status = 0
    for name in args.files:
        started = time.perf_counter()
        record: dict = {"file": name, "codes": []}
        try:
            payloads = decode_frame(load_luma(name, shrink=True))
        except (*UNREADABLE, FrameError) as exc:
            record["error"] = _describe(exc)
            status = 1
        else:
            record["codes"] = [{"text": p.decode("utf-8", errors="replace"),
                                "bytes_b64": base64.b64encode(p).decode("ascii")} for p in payloads]
        record["ms"] = round((time.perf_counter() - started) * 1000, 1)
        print(json.dumps(record, ensure_ascii=False), flush=True)
    return status


def _describe(exc: BaseException) -> str:
    """A one-line reason: the OS's words for file errors, Pillow's or ours for the rest."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
