"""The one TOML reader: sweep files, device profiles, efficiency factors, engines, published results, quality
scores, scenarios. A dict, or a one-line UsageError naming the file and what is wrong with it.

Guards, for files that come from users as well as from the project: at most MAX_TOML_BYTES are read (a device
such as /dev/zero or a huge file is refused without being read to the end), the bytes must be UTF-8, the text
valid TOML (deep nesting included: a RecursionError is a refusal, not a crash), and every number finite -- a
figure of 1e308 * 10 or `inf` would otherwise print as "inf GB" and write `Infinity` into JSON.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from bench.core.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["read_toml", "parse_toml", "MAX_TOML_BYTES"]

#: The largest TOML file read (the project's own data files are a few tens of KiB).
MAX_TOML_BYTES = 1 << 20


def _non_finite(value: Any, where: str = "") -> str | None:
    """The dotted key of the first non-finite number in `value`, or None."""
    if isinstance(value, float) and not math.isfinite(value) and not math.isnan(value):
        return where or "(top level)"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where and not str(key).startswith("[") else f"{where}{key}")
        if found:
            return found
    return None


def parse_toml(raw: bytes, what: str, path: str) -> dict[str, Any]:
    """Bytes of a TOML file as a dict, with the module's guards; `what` and `path` name it in errors."""
    if len(raw) > MAX_TOML_BYTES:
        raise UsageError(
            f"{what} {path!r}: more than {MAX_TOML_BYTES // 1024} KiB is not allowed; expected a small TOML file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {path!r}: not UTF-8 text (byte {exc.start}); expected TOML") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise UsageError(f"{what} {path!r}: not valid TOML: {str(exc)[:200]}") from None
    bad = _non_finite(data)
    if bad:
        raise UsageError(f"{what} {path!r}: {bad}: a non-finite number is not allowed; expected a finite figure")
    return data


def read_toml(path: Path | str, what: str) -> dict[str, Any]:
    """A TOML file as a dict (module docstring); a one-line UsageError naming the file when it cannot be read,
    is too large, is not UTF-8 or not TOML, or holds a non-finite number (nan is allowed: "no figure")."""
    try:
        with open(path, "rb") as fh:  # bounded: a device or a huge file is refused, never read to the end
            raw = fh.read(MAX_TOML_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{what} {str(path)!r}: cannot read: {exc.strerror or exc}") from None
    return parse_toml(raw, what, str(path))
