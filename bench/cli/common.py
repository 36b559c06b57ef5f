"""Pieces every command shares: exit codes, the one-line-error parser, number and path checks, reading runs."""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from bench.core.errors import UsageError, invalid_value
from bench.core.outfile import check_output

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE, EXIT_STORE_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


DEFAULT_RESULTS_ROOT = Path("results")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_number(flag: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        expected = "a whole number" if kind is int else "a number of seconds"
        raise invalid_value(flag, raw, expected) from None


def checked_dir(flag: str, raw: str) -> Path:
    """A directory path given by the user: not empty, no component longer than the filesystem allows."""
    if not raw.strip():
        raise UsageError(f"{flag}: '' is not allowed; expected a directory path")
    path = Path(raw)
    too_long = next((part for part in path.parts if len(part.encode()) > 255), None)
    if too_long is not None:
        raise UsageError(
            f"{flag}: a path component of {len(too_long.encode())} bytes is not allowed; expected at "
            "most 255 per component"
        )
    return path


def checked_output_file(flag: str, raw: str | os.PathLike) -> Path:
    """An output file path, checked before any work: not a run's records.jsonl, not a directory, writable."""
    from bench.runs.store import refuse_records_path

    path = checked_dir(flag, str(raw))
    refuse_records_path(path, flag)
    if path.is_dir():
        raise UsageError(f"{flag}: {str(path)!r} is a directory; expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag}: {str(path)!r} cannot be written: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag}: {str(path)!r} cannot be written: permission denied")
    check_output(path, flag)  # a symlink, a hard link or a run's records: refused before any work
    return path


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def run_dirs_of(field: str, value: str) -> list[str]:
    dirs = [part.strip() for part in value.split(",") if part.strip()]
    if not dirs:
        raise invalid_value(field, value, "one or more run directories, comma-separated")
    return dirs


def refuse_future_schema(field: str, skipped: list[str]) -> None:
    """A command must not silently leave out records it cannot read because they are newer than this code."""
    unknown = [m for m in skipped if "is newer than this catchup-bench reads" in m]
    if unknown:
        where, _, what = unknown[0].partition(": skipped ")
        raise UsageError(f"{field}: {where}: {what.partition(': ')[2]}")


def records_of(field: str, dirs: list[str]):
    from bench.runs.store import read_run_dirs

    try:
        result = read_run_dirs(dirs)
    except UsageError as exc:
        raise UsageError(str(exc).replace("RUN_DIR", field, 1)) from None
    refuse_future_schema(field, result.skipped)
    for message in result.skipped:
        print(f"warning: {message}", file=sys.stderr)
    return result.records
