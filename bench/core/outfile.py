"""Writing an output file (a report, its images, noise.json, a self-check's JSON) without ever destroying records.

Only the store writes a run's `records.jsonl`. A path that names it is refused by name; this module refuses the
ways around the name, at the moment of writing, on the descriptor that is then written (no gap between the check
and the write):
- the destination is opened with O_NOFOLLOW: a symbolic link there is refused, not followed;
- a destination with the inode of a protected file (the records of the runs being read) is refused, and so is one
  with other hard links (any of them could be a run's records) or one whose content is a run's records;
- only then is it truncated and written.
Each refusal is a one-line UsageError naming the flag and the path.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Iterable

from bench.core.errors import UsageError

__all__ = ["write_output", "check_output", "RECORD_LINE_PREFIX"]

#: How the store begins every record line (compact JSON, the schema version first).
RECORD_LINE_PREFIX = b'{"schema_version":'


def _refusal(flag: str, path: Path, why: str) -> UsageError:
    return UsageError(f"{flag}: {str(path)!r} is not allowed: {why}; choose another file")


def _identity(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _open_checked(path: Path, flag: str, protect: Iterable[str | os.PathLike]) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refusal(flag, path, "it is a symbolic link") from None
        raise UsageError(f"{flag}: {str(path)!r} cannot be written: {exc.strerror or exc}") from None
    try:
        found = os.fstat(fd)
        protected = {identity for identity in map(_identity, protect) if identity}
        if (found.st_dev, found.st_ino) in protected:
            raise _refusal(flag, path, "it is the records.jsonl of a run being read (the same file)")
        if found.st_nlink > 1:
            raise _refusal(
                flag, path, f"it has {found.st_nlink - 1} other hard link(s), which could be a run's records"
            )
        if os.pread(fd, len(RECORD_LINE_PREFIX), 0) == RECORD_LINE_PREFIX:
            raise _refusal(flag, path, "it holds a run's records (only `bench run` writes those)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_output(path: str | os.PathLike, flag: str, protect: Iterable[str | os.PathLike] = ()) -> None:
    """The checks of `write_output` on an existing destination, before any work (nothing is written); the
    write repeats them on the descriptor it writes."""
    target = Path(path)
    if target.is_symlink():
        raise _refusal(flag, target, "it is a symbolic link")
    if target.is_file():
        os.close(_open_checked(target, flag, protect))


def write_output(
    path: str | os.PathLike, data: bytes | str, flag: str, protect: Iterable[str | os.PathLike] = ()
) -> Path:
    """Write `data` (str: UTF-8) to `path` as the module docstring says; `protect`: files that must not be
    overwritten whatever name reaches them (the records.jsonl of the runs read). Returns the path."""
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = _open_checked(target, flag, protect)
    try:
        os.ftruncate(fd, 0)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise UsageError(f"{flag}: {str(target)!r} cannot be written: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return target
