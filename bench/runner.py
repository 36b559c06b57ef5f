"""Running a sweep: one isolated worker process per cell, records appended as each cell finishes.

Isolation. Each cell runs in a fresh `python -m bench.worker` process (fresh allocator, thread pools and JIT
state; a crash cannot take the sweep down). The parent *blocks in the kernel* while the worker measures: it
waits on a pidfd with `select()` and a timeout, so it takes no CPU. (A parent that polls in a loop steals a core
from a 2-core machine and makes models read slower than they run.) Where pidfd is missing the fallback is
`Popen.wait(timeout)`, which sleeps between checks.

Failures. A worker that raises writes a `failed` record itself. A worker that dies (signal, exit without a
result) or passes `timeout_s` becomes a `failed` record written by the parent, with the signal or exit status
and the last lines the worker printed. The sweep goes on either way.

Executors. `LocalExecutor` is the seam a remote executor (e.g. Ray) plugs into: anything with
`run(spec, settings) -> Record` can run a sweep.
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
from typing import Callable, Mapping, Protocol, Sequence, TextIO

from backends.registry import backend_class
from bench.record import Record
from bench.spec import BenchmarkSpec, MeasureSettings
from bench.store import RunStore

__all__ = ["CellExecutor", "LocalExecutor", "Progress", "SweepResult", "run_sweep", "wait_blocking"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Lines of worker output kept in a failed record's `detail`.
LOG_TAIL_LINES = 20


class CellExecutor(Protocol):
    def run(self, spec: BenchmarkSpec, settings: MeasureSettings) -> Record: ...


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


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class LocalExecutor:
    """Runs each cell in a fresh worker process on this machine, one at a time."""

    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)

    def worker_env(self, spec: BenchmarkSpec) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_VERBOSITY", "error")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.update(backend_class(spec.backend).worker_environment(spec))
        env.update(self.extra_env)
        return env

    def run(self, spec: BenchmarkSpec, settings: MeasureSettings) -> Record:
        started = _now()
        with tempfile.TemporaryDirectory(prefix="bench-cell-") as tmp:
            job, result, log = Path(tmp, "job.json"), Path(tmp, "result.json"), Path(tmp, "worker.log")
            job.write_text(json.dumps({"spec": spec.to_dict(), "settings": settings.to_dict()}))
            with open(log, "wb") as log_fh:
                proc = subprocess.Popen(
                    [self.python, "-m", "bench.worker", str(job), str(result)],
                    stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                    env=self.worker_env(spec), start_new_session=True,
                )
                try:
                    returncode = wait_blocking(proc, settings.timeout_s)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    return Record(spec, "failed", reason=f"timed out after {settings.timeout_s:g} s (timeout_s)",
                                  started_at=started, finished_at=_now(), detail=_log_tail(log) or None)
                except BaseException:  # Ctrl-C or SIGTERM: never leave a worker behind
                    _kill_group(proc)
                    raise
            if result.is_file():
                return Record.from_dict(json.loads(result.read_text()))
            tail = _log_tail(log)
            return Record(spec, "failed", reason=_death_reason(returncode, tail),
                          started_at=started, finished_at=_now(), detail=tail or None)


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
    executor: CellExecutor | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    on_record: Callable[[Record], None] | None = None,
    unavailable: Mapping[BenchmarkSpec, str] | None = None,
) -> SweepResult:
    """Run every spec not already ok in the store (with `resume`), appending each record as it finishes.

    Specs in `unavailable` (spec -> reason, from the planner) are not run: an `unavailable` record with the
    reason is written for each, so the run says what was asked for and why it has no figures."""
    unavailable = unavailable or {}
    executor = executor or LocalExecutor()
    done = store.ok_keys() if resume else set()
    todo = [spec for spec in specs if spec.key not in done]
    progress = progress or Progress(len(todo), enabled=False)
    records: list[Record] = []
    for index, spec in enumerate(todo):
        progress.start(index, spec)
        began = time.monotonic()
        if spec in unavailable:
            record = Record(spec, "unavailable", reason=unavailable[spec], started_at=_now(), finished_at=_now())
        else:
            record = executor.run(spec, settings)
        store.append(record)
        records.append(record)
        progress.finish(index, record, time.monotonic() - began)
        if on_record:
            on_record(record)
    return SweepResult(records=records, skipped=len(specs) - len(todo))
