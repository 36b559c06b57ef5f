"""The one exception type that means "the user asked for something we cannot do".

The CLI prints it as a single line and exits with status 2, without a traceback. Everything else that
escapes is a bug in the harness and keeps its traceback.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

__all__ = ["UsageError", "invalid_value"]


class UsageError(ValueError):
    """Bad input: an unknown name, a bad number, a malformed file, an unwritable path, missing hardware.

    Always one line: control characters a user's input smuggles into the message (a newline in a key, an escape
    sequence) are shown escaped, so the message cannot span lines or drive a terminal."""

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            text = "".join(c if 32 <= ord(c) != 127 else repr(c)[1:-1] for c in text)
        super().__init__(text)


def invalid_value(field: str, value: Any, allowed: str | Iterable[str]) -> UsageError:
    """Build the standard message: which field, which value, and what would have been accepted -- with the
    closest allowed name ("did you mean ...?", difflib ratio >= 0.6) when a name was mistyped."""
    hint = ""
    if not isinstance(allowed, str):
        names = [str(a) for a in allowed]
        if isinstance(value, str):
            close = difflib.get_close_matches(value.lower(), names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close and close[0] != value else ""
        allowed = "one of " + ", ".join(names)
    return UsageError(f"{field}: {value!r} is not allowed; expected {allowed}{hint}")
