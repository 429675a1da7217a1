"""Opening the display: KMS on a Pi without a desktop, a window on a desktop, SDL's dummy driver in tests.

When the display cannot be opened, :class:`DisplayUnavailable` carries one message that names the
cause and what to change (driver, device node, groups), instead of SDL's bare error; the caller then
keeps scanning without a screen.
"""

from __future__ import annotations

import glob
import os

import pygame

from kiosk.core.config import ScreenConfig


class DisplayUnavailable(RuntimeError):
    """The display cannot be opened; the message says why and what to set."""


def choose_driver(environ: dict[str, str] | os._Environ = os.environ) -> str | None:
    """SDL_VIDEODRIVER to use: the one set, else kmsdrm when there is no desktop session at all."""
    if environ.get("SDL_VIDEODRIVER"):
        return environ["SDL_VIDEODRIVER"]
    if not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY"):
        return "kmsdrm"
    return None  # SDL picks x11 or wayland


def explain(driver: str | None, error: str) -> str:
    """A message naming the cause and the setting that fixes it."""
    shown = driver or "(SDL's choice)"
    lines = [f"cannot open the display with SDL_VIDEODRIVER={shown}: {error}."]
    if driver == "kmsdrm":
        cards = sorted(glob.glob("/dev/dri/card*"))
        if not cards:
            lines.append("No KMS device: /dev/dri/card* does not exist. On a Raspberry Pi enable the KMS driver "
                         "(dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt) and check the panel's cable.")
        elif not any(os.access(card, os.R_OK | os.W_OK) for card in cards):
            lines.append(f"No permission on {cards[0]}: add the kiosk's user to the groups video and render "
                         "(and input for the touch screen), e.g. usermod -aG video,render,input kiosk.")
        else:
            lines.append("The KMS device exists and is accessible: another program (a desktop session?) may hold "
                         "it. Stop it, or on a desktop set SDL_VIDEODRIVER=x11 or wayland.")
    elif driver in (None, "x11", "wayland"):
        lines.append("No desktop session answered: set DISPLAY or WAYLAND_DISPLAY, or SDL_VIDEODRIVER=kmsdrm "
                     "on the console of a Pi.")
    elif "not available" in error.lower():
        lines.append(f"SDL has no video driver '{driver}'. Use SDL_VIDEODRIVER=kmsdrm on a Pi without a desktop, "
                     "x11 or wayland on a desktop, or dummy to run the screen without any display.")
    lines.append("Scanning and the event stream carry on without a screen (use --headless to skip the screen).")
    return " ".join(lines)


def open_display(screen: ScreenConfig, force_dummy: bool = False, windowed: bool = False) -> pygame.Surface:
    """The display surface; raises DisplayUnavailable with a message a person can act on."""
    if force_dummy:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    driver = choose_driver()
    if driver:
        os.environ["SDL_VIDEODRIVER"] = driver
    if driver == "kmsdrm":
        # Under kmsdrm, SDL 2.26 shows pygame's window surface through its first accelerated renderer,
        # "opengl". Without the desktop libGL.so.1 (libgl1, which neither Raspberry Pi OS Lite nor plain
        # Debian installs: SDL does not depend on it) that renderer gets OpenGL ES's entry points, every
        # upload fails (GL_INVALID_OPERATION) and the panel stays black while SDL reports the KMSDRM mode
        # (found by the appliance VM, docs/appliance.md). OpenGL ES 2 is what a Pi's GPU speaks natively.
        os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "opengles2")
    try:
        pygame.display.init()
        if screen.fullscreen and not windowed and driver != "dummy":
            surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
            pygame.mouse.set_visible(False)
        else:
            surface = pygame.display.set_mode((screen.window_width, screen.window_height))
        pygame.display.set_caption("Kiosk")
    except pygame.error as exc:
        pygame.display.quit()
        raise DisplayUnavailable(explain(driver, str(exc).rstrip("."))) from None
    return surface
