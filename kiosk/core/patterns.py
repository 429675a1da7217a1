"""Configured patterns matched in linear time, so no payload can make the scanner backtrack.

Python's ``re`` backtracks: a plausible pattern with nested repetition, such as ``(A+)+B``, takes
exponential time on a 27-byte code. RE2 (google-re2) guarantees time linear in the input and refuses
the features that would need backtracking (backreferences, look-around) when the pattern is
compiled, i.e. when the config is loaded, not at the first scan.
"""

from __future__ import annotations

from typing import Any


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


def compile_linear(pattern: str) -> Any:
    """The compiled RE2 pattern; raises PatternError for syntax RE2 lacks or patterns too large."""
    import re2

    options = re2.Options()
    options.log_errors = False  # the error reaches the user through the config message, not stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise PatternError(f"{detail}; RE2 syntax: no backreferences or look-around") from None
