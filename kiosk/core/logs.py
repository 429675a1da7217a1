"""Log lines for people: one line per event an operator looks for, with a level journald understands.

Under systemd, stderr goes to the journal (systemd sets ``$JOURNAL_STREAM`` to the stream's
``device:inode``). journald reads a leading ``<N>`` as the syslog priority (sd-daemon(3),
``SyslogLevelPrefix=`` defaults to on), so ``journalctl -p warning -u kiosk-scanner`` shows only
problems. Elsewhere lines start with the level name instead.

What is logged never includes a visitor: check-ins are named by their random id only.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

# Python level -> syslog priority (sd-daemon.h: SD_ERR 3, SD_WARNING 4, SD_NOTICE 5, SD_INFO 6, SD_DEBUG 7)
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def writes_to_journal(stream: TextIO) -> bool:
    """True when ``stream`` is the very stream systemd connected to journald."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``; every line of a traceback gets the prefix too."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)}>"
        return prefix + super().format(record).replace("\n", "\n" + prefix)


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if writes_to_journal(stream):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
