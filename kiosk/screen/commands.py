"""``kiosk screenshot``: any screen state rendered to a PNG with representative data."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from kiosk.screen.states import SCREENSHOT_STATES


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must look like 800x480, not {text!r}")
    width, height = int(match[1]), int(match[2])
    if not (240 <= width <= 7680 and 240 <= height <= 7680):
        raise argparse.ArgumentTypeError(f"size {width}x{height} is outside 240..7680 pixels per side")
    return width, height


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("screenshot", help="render a screen state to a PNG (representative data, no display needed)")
    p.add_argument("--state", required=True, choices=SCREENSHOT_STATES)
    p.add_argument("--size", type=parse_size, default=(800, 480), metavar="WxH", help="default 800x480")
    p.add_argument("--lang", choices=("vi", "en"), default="vi")
    p.add_argument("out", type=Path, metavar="OUT.png")
    p.set_defaults(func=cmd_screenshot)


def render_state(state: str, size: tuple[int, int], lang: str, out: Path) -> None:
    """Render ``state`` through the real screen code on SDL's dummy driver and save it as PNG."""
    os.environ["SDL_VIDEODRIVER"] = "dummy"  # a screenshot never opens a window
    import pygame

    from kiosk.screen.samples import staged_app

    pygame.display.init()
    try:
        surface = pygame.display.set_mode(size)
        with tempfile.TemporaryDirectory(prefix="kiosk-screenshot-") as state_dir:
            app = staged_app(state, surface, lang, Path(state_dir))
            app.step([])
            app.step([])  # second frame: the preview and status bar as they settle
            try:
                pygame.image.save(surface, str(out))
            except pygame.error as exc:
                raise OSError(str(exc)) from None
    finally:
        pygame.display.quit()


def cmd_screenshot(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() != ".png":
        print(f"kiosk: screenshot: {args.out} must end in .png", file=sys.stderr)
        return 2
    if not args.out.parent.is_dir():
        print(f"kiosk: screenshot: folder {args.out.parent} does not exist", file=sys.stderr)
        return 2
    from kiosk.screen.fonts import FontMissing

    try:
        render_state(args.state, args.size, args.lang, args.out)
    except FontMissing as exc:
        print(f"kiosk: screenshot: {exc}", file=sys.stderr)
        return 3
    except OSError as exc:
        print(f"kiosk: screenshot: cannot write {args.out}: {exc}", file=sys.stderr)
        return 3
    print(args.out)
    return 0
