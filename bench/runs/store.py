"""The run directory: `records.jsonl`, one JSON record per line, append-only.

Durability: each record is serialised first, then written with a single `write` of the whole line, flushed
and fsynced before `append` returns, so a run that is killed keeps every cell that finished. A line torn by a
crash mid-write is at worst the last one; reading warns about it and skips it, and the next append starts on a
fresh line, so the torn fragment never corrupts a later record. Nothing is ever rewritten or deleted.

Files a cell produced besides its record (LoadGen's logs: `Record.attachments`) are written under the run
directory (`artifacts/<spec key>/...`) before the record that names them is appended.

When a spec appears more than once (a failed cell re-run with --resume), the last record wins in `latest()`;
`read()` returns them all.

One writer at a time: `bench run` holds an exclusive flock on `RUN_DIR/.lock` while it appends; a second writer is
refused with one line naming the holder, and the lock of a run that died is free at once (the kernel releases
it), so taking it over is atomic. Only the store writes `records.jsonl`: other commands refuse an output path that
is one, or has its inode (`refuse_records_path`, bench.core.outfile).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from bench.core.errors import UsageError
from bench.core.record import Record

__all__ = [
    "RECORDS_FILE",
    "LOCK_FILE",
    "RunStore",
    "ReadResult",
    "StoreWarning",
    "latest_per_spec",
    "read_run_dirs",
    "refuse_records_path",
    "process_start_time",
]

RECORDS_FILE = "records.jsonl"
LOCK_FILE = ".lock"


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def _holder(fd: int) -> dict:
    """What the lock file says about its holder ({} when it says nothing readable)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _elsewhere(holder: dict) -> str:
    host = holder.get("host")
    return f" on host {host}" if isinstance(host, str) and host != socket.gethostname() else ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def refuse_records_path(path: str | os.PathLike, flag: str) -> None:
    """A one-line UsageError if `path` is (or would replace) a run's records.jsonl: only the store appends there."""
    target = Path(path)
    if target.name == RECORDS_FILE or (target.is_file() and target.parent.joinpath(RECORDS_FILE) == target):
        raise UsageError(
            f"{flag}: {str(path)!r} is not allowed; only `bench run` writes a run's {RECORDS_FILE} "
            "(append-only); choose another file"
        )


class StoreWarning(UserWarning):
    """A line of records.jsonl was skipped (torn by a crash, or not a record)."""


@dataclass
class ReadResult:
    records: list[Record] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one message per skipped line


class RunStore:
    """One run directory. Creating the object touches nothing; `prepare()` checks it can be written."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / RECORDS_FILE

    def exists(self) -> bool:
        return self.path.is_file()

    def prepare(self) -> None:
        """Create the directory and prove we can append to records.jsonl, or raise a one-line UsageError."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab"):
                pass
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UsageError(f"--out: {str(self.directory)!r} cannot be written: {reason}") from None

    @contextlib.contextmanager
    def lock(self):
        """Hold the run directory for this process while it writes; a live holder means a one-line refusal.

        The lock is an exclusive `flock` on RUN_DIR/.lock, taken without waiting. The kernel drops it when its
        holder exits however it exits, so a lock left by a dead run is free at once, and taking it over is one
        atomic call: two contenders cannot both hold it. The file names its holder (pid, start time, host) for
        the refusal message; it is removed on release (a contender that opened the removed file sees that it is
        no longer the lock's file and tries again)."""
        path = self.directory / LOCK_FILE
        fd = self._acquire(path)
        me = {"pid": os.getpid(), "start": process_start_time(os.getpid()), "host": socket.gethostname()}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me).encode())
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()  # while still holding it, so no contender locks a file that is then removed
            os.close(fd)

    def _acquire(self, path: Path, attempts: int = 50) -> int:
        """An open descriptor of `path` holding its exclusive flock, or a one-line UsageError naming the holder."""
        import fcntl

        for _ in range(attempts):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise UsageError(f"--out: {str(path)!r} cannot be opened as the run lock: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise UsageError(
                    f"--out: {str(self.directory)!r} is in use by another bench run (pid {holder.get('pid')}"
                    f"{_elsewhere(holder)}); wait for it to finish or choose another directory"
                ) from None
            if _same_file(fd, path):
                return fd
            os.close(fd)  # the holder removed the file between our open and our lock: take the new one
        raise UsageError(f"--out: {str(self.directory)!r} is being taken by other bench runs; try again")

    def append(self, record: Record) -> None:
        """Write the record's attachments, then append the record as one line, flush and fsync."""
        self.write_attachments(record)
        line = json.dumps(record.to_dict(), separators=(",", ":"), allow_nan=False) + "\n"
        with open(self.path, "ab+") as fh:
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # a torn last line: keep it, start ours on a new line
                    line = "\n" + line
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())

    def write_attachments(self, record: Record) -> None:
        """Each attachment to its relative path under the run directory (paths that would leave it are refused)."""
        root = self.directory.resolve()
        for relative, data in record.attachments.items():
            target = (root / relative).resolve()
            if root not in target.parents:
                raise ValueError(f"attachment path {relative!r} leaves the run directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)

    def read(self, warn: bool = True) -> ReadResult:
        """Every record in file order; unreadable lines are skipped with a warning naming the line."""
        result = ReadResult()
        if not self.path.is_file():
            return result
        with open(self.path, "rb") as fh:
            lines = fh.read().split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
                if not isinstance(data, dict):
                    raise ValueError(f"a JSON {type(data).__name__}, not a record object")
                result.records.append(Record.from_dict(data))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                torn = number == len(lines)  # no newline after it: cut short by a crash
                what = "truncated last line" if torn else "unreadable line"
                message = f"{self.path}:{number}: skipped {what}: {str(exc)[:200]}"
                result.skipped.append(message)
                if warn:
                    warnings.warn(message, StoreWarning, stacklevel=2)
        return result

    def latest(self, warn: bool = True) -> list[Record]:
        """One record per spec, the last written, in order of first appearance."""
        return latest_per_spec(self.read(warn=warn).records)

    def ok_keys(self) -> set[str]:
        """Spec keys that already have an `ok` record (what --resume skips)."""
        return {r.spec.key for r in self.read(warn=False).records if r.status == "ok"}


def latest_per_spec(records: Iterable[Record]) -> list[Record]:
    """One record per spec key, the last one seen, in order of first appearance."""
    by_key: dict[str, Record] = {}
    for record in records:
        by_key[record.spec.key] = record
    return list(by_key.values())


def read_run_dirs(directories: Iterable[str | os.PathLike], field: str = "RUN_DIR") -> ReadResult:
    """The latest record per spec of each run directory, in the order given, and every skipped line.

    A directory without records.jsonl, or without one readable record in it, is bad input (one-line UsageError
    naming `field`, the argument or flag that gave it)."""
    combined = ReadResult()
    for directory in directories:
        store = RunStore(directory)
        if not store.exists():
            raise UsageError(f"{field}: {str(directory)!r} holds no {RECORDS_FILE}")
        result = store.read(warn=False)
        if not result.records:
            detail = f" ({len(result.skipped)} unreadable lines; first: {result.skipped[0]})" if result.skipped else ""
            raise UsageError(f"{field}: {str(directory)!r} holds no readable record{detail}")
        combined.records += latest_per_spec(result.records)
        combined.skipped += result.skipped
    return combined
