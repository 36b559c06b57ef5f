"""The one exception type that means "the user asked for something we cannot do".

The CLI prints it as a single line and exits with status 2, without a traceback. Everything else that
escapes is a bug in the harness and keeps its traceback.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

__all__ = ["UsageError", "invalid_value"]


class UsageError(ValueError):
    """Bad input: an unknown name, a bad number, a malformed file, an unwritable path, missing hardware."""


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
