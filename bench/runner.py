"""Running a sweep: one isolated worker process per cell, records appended as each cell finishes.

Isolation. Each cell runs in a fresh `python -m bench.worker` process (fresh allocator, thread pools and JIT
state; a crash cannot take the sweep down). The parent *blocks in the kernel* while the worker measures: it
waits on a pidfd with `select()` and a timeout, so it takes no CPU. (A parent that polls in a loop steals a core
from a 2-core machine and makes models read slower than they run.) Where pidfd is missing the fallback is
`Popen.wait(timeout)`, which sleeps between checks.

Failures. A worker that raises writes a `failed` record itself. A worker that dies (signal, exit without a
result) or passes `timeout_s` becomes a `failed` record written by the parent, with the signal or exit status
and the last lines the worker printed. The sweep goes on either way.

Executors. Anything with `run(spec, settings) -> Record` can run a sweep one cell at a time (`LocalExecutor`,
the default). An executor that runs cells concurrently elsewhere (`bench.ray_executor.RayExecutor`) has
`stream(specs, settings)` instead, yielding (record, seconds) as cells finish; either way the records come back
to this process and are appended here, so the store is written in one place.

A worker dies with its parent (PR_SET_PDEATHSIG on Linux): a runner killed outright (SIGKILL, a lost Ray worker)
does not leave a model running on the machine. Its temporary directory (`bench-cell-*`, holding `owner.json`
with the runner's pid and start time) is removed by the next run once that runner is gone.

Safe import path: workers start with `python -P` (and PYTHONSAFEPATH=1), so the directory `bench run` was started
in is not put on `sys.path`: a `psutil.py` lying there is not executed. The project root and any PYTHONPATH entries
are passed as absolute paths.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Protocol, Sequence, TextIO

from backends.registry import backend_class
from bench.record import Record
from bench.spec import BenchmarkSpec, MeasureSettings
from bench.store import RunStore

__all__ = ["CellExecutor", "StreamingExecutor", "LocalExecutor", "Progress", "SweepResult", "run_sweep",
           "wait_blocking", "collect_attachments"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Lines of worker output kept in a failed record's `detail`.
LOG_TAIL_LINES = 20
CELL_DIR_PREFIX = "bench-cell-"
OWNER_FILE = "owner.json"
#: `-P`: do not prepend the working directory to sys.path (Python >= 3.11; PYTHONSAFEPATH is set as well).
SAFE_PATH_FLAG = ("-P",) if sys.version_info >= (3, 11) else ()


def _start_time(pid: int) -> float | None:
    from bench.store import process_start_time

    return process_start_time(pid)


def remove_stale_cell_dirs(root: str | None = None) -> list[str]:
    """Remove `bench-cell-*` temporary directories whose runner is gone (killed before it could clean up):
    its pid is not running, or now belongs to a process started at another time. Returns what was removed."""
    import shutil

    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(CELL_DIR_PREFIX + "*"):
        try:
            owner = json.loads((path / OWNER_FILE).read_text())
            pid, start = int(owner["pid"]), owner.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours to judge (no owner file yet, or another tool's directory)
        now = _start_time(pid)
        if now is None or (start is not None and abs(now - float(start)) > 1.0):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


class CellExecutor(Protocol):
    def run(self, spec: BenchmarkSpec, settings: MeasureSettings) -> Record: ...


class StreamingExecutor(Protocol):
    def stream(self, specs: Sequence[BenchmarkSpec],
               settings: MeasureSettings) -> Iterator[tuple[Record, float]]: ...


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_blocking(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for `proc` to exit without spinning; raise subprocess.TimeoutExpired after `timeout` seconds."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return proc.wait(timeout)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        if not ready:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        return proc.wait()
    finally:
        os.close(pidfd)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _death_reason(returncode: int, tail: str) -> str:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        reason = f"worker killed by {name}"
        if name == "SIGKILL":
            reason += " (most often the kernel's out-of-memory killer)"
    else:
        reason = f"worker exited with status {returncode} without a result"
    last = tail.splitlines()[-1].strip() if tail else ""
    return f"{reason}; last output: {last[:300]}" if last else reason


def collect_attachments(directory: Path, prefix: str) -> dict[str, bytes]:
    """Every file under `directory` (a cell's artifacts) as {prefix/relative path: bytes}."""
    if not directory.is_dir():
        return {}
    return {f"{prefix}/{path.relative_to(directory).as_posix()}": path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class LocalExecutor:
    """Runs each cell in a fresh worker process on this machine, one at a time."""

    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)

    def worker_env(self, spec: BenchmarkSpec) -> dict[str, str]:
        env = dict(os.environ)
        inherited = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *inherited])
        env["PYTHONSAFEPATH"] = "1"
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.update(backend_class(spec.backend).worker_environment(spec))
        env.update(self.extra_env)
        return env

    def run(self, spec: BenchmarkSpec, settings: MeasureSettings) -> Record:
        started = utc_now()
        remove_stale_cell_dirs()
        with tempfile.TemporaryDirectory(prefix=CELL_DIR_PREFIX) as tmp:
            Path(tmp, OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": _start_time(os.getpid())}))
            job, result, log = Path(tmp, "job.json"), Path(tmp, "result.json"), Path(tmp, "worker.log")
            artifacts = Path(tmp, "artifacts")
            job.write_text(json.dumps({"spec": spec.to_dict(), "settings": settings.to_dict(),
                                       "artifacts": str(artifacts)}))
            with open(log, "wb") as log_fh:
                proc = subprocess.Popen(
                    [self.python, *SAFE_PATH_FLAG, "-m", "bench.worker", str(job), str(result)],
                    stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                    env=self.worker_env(spec), start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )
                try:
                    returncode = wait_blocking(proc, settings.timeout_s)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    return Record(spec, "failed", reason=f"timed out after {settings.timeout_s:g} s (timeout_s)",
                                  started_at=started, finished_at=utc_now(), detail=_log_tail(log) or None)
                except BaseException:  # Ctrl-C or SIGTERM: never leave a worker behind
                    _kill_group(proc)
                    raise
            if result.is_file():
                record = Record.from_dict(json.loads(result.read_text()))
                record.attachments = collect_attachments(artifacts, f"artifacts/{spec.key}")
                return record
            tail = _log_tail(log)
            return Record(spec, "failed", reason=_death_reason(returncode, tail),
                          started_at=started, finished_at=utc_now(), detail=tail or None)


class Progress:
    """Progress on stderr: a bar that redraws between cells on a terminal, one line per cell otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.started = time.monotonic()

    def _bar(self, done: int) -> str:
        width = 24
        filled = int(width * done / self.total) if self.total else width
        return "[" + "#" * filled + "." * (width - filled) + "]"

    def submitted(self, count: int) -> None:
        """A streaming executor took `count` cells at once; records arrive as they finish."""
        if self.enabled and count:
            self.stream.write(f"{count} cells submitted; each is reported as it finishes\n")
            self.stream.flush()

    def start(self, index: int, spec: BenchmarkSpec) -> None:
        if not self.enabled:
            return
        text = f"{self._bar(index)} {index + 1}/{self.total} running {spec.label}"
        if self.tty:
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, index: int, record: Record, seconds: float) -> None:
        if not self.enabled:
            return
        outcome = record.status if record.status == "ok" else f"{record.status}: {record.reason}"
        text = f"{self._bar(index + 1)} {index + 1}/{self.total} {outcome} ({seconds:.1f} s) {record.spec.label}"
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.stream.flush()


@dataclass
class SweepResult:
    records: list[Record]
    skipped: int  # cells already ok in the store (--resume)

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.status == "failed"]


def run_sweep(
    specs: Sequence[BenchmarkSpec],
    settings: MeasureSettings,
    store: RunStore,
    executor: CellExecutor | StreamingExecutor | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    on_record: Callable[[Record], None] | None = None,
    unavailable: Mapping[BenchmarkSpec, str] | None = None,
) -> SweepResult:
    """Run every spec not already ok in the store (with `resume`), appending each record as it finishes.

    Specs in `unavailable` (spec -> reason, from the planner) are not run: an `unavailable` record with the
    reason is written for each, so the run says what was asked for and why it has no figures. A streaming
    executor gets all the runnable specs at once and its records are appended in the order they finish."""
    unavailable = unavailable or {}
    executor = executor or LocalExecutor()
    done = store.ok_keys() if resume else set()
    todo = [spec for spec in specs if spec.key not in done]
    progress = progress or Progress(len(todo), enabled=False)
    records: list[Record] = []

    def keep(index: int, record: Record, seconds: float) -> None:
        store.append(record)
        records.append(record)
        progress.finish(index, record, seconds)
        if on_record:
            on_record(record)

    stream = getattr(executor, "stream", None)
    if stream is not None:
        for spec in todo:
            if spec in unavailable:
                keep(len(records), Record(spec, "unavailable", reason=unavailable[spec], started_at=utc_now(),
                                          finished_at=utc_now()), 0.0)
        runnable = [spec for spec in todo if spec not in unavailable]
        progress.submitted(len(runnable))
        for record, seconds in stream(runnable, settings):
            keep(len(records), record, seconds)
        return SweepResult(records=records, skipped=len(specs) - len(todo))
    for index, spec in enumerate(todo):
        progress.start(index, spec)
        began = time.monotonic()
        if spec in unavailable:
            record = Record(spec, "unavailable", reason=unavailable[spec], started_at=utc_now(),
                            finished_at=utc_now())
        else:
            record = executor.run(spec, settings)
        keep(index, record, time.monotonic() - began)
    return SweepResult(records=records, skipped=len(specs) - len(todo))
