"""The kiosk's screen: bilingual, colour + icon + words + sound for every state, never in the scanner's way.

Modules: ``catalogue`` (every visible string, vi/en), ``fonts`` (Vietnamese-capable fonts, glyph
check), ``text`` (text that never leaves its box), ``layout`` (sizes and places per screen size),
``icons`` (drawn shapes), ``states`` (outcome -> what to show), ``render`` (drawing), ``statusbar``
(database snapshot at 1 Hz), ``sounds``, ``maintenance``, ``app`` (state machine, dirty rectangles),
``display`` (opening SDL with clear errors), ``run`` (threads for ``kiosk run`` / ``kiosk demo``).
pygame is imported by these modules, so import them only where a screen is wanted.
"""

import os

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame's banner would pollute stdout (JSON, paths)
