"""The one TOML reader of the project's data files (profiles, efficiency factors, published results, quality
scores, scenarios): a dict, or a one-line UsageError naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.errors import UsageError

__all__ = ["read_toml"]


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict; a one-line UsageError naming the file when it cannot be read or parsed."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{what} {str(path)!r}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{what} {str(path)!r}: not valid TOML: {exc}") from None
