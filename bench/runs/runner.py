"""Running a sweep: one isolated worker process per cell, records appended as each cell finishes.

Isolation. Each cell runs in a fresh `python -m bench.runs.worker` process (fresh allocator, thread pools and JIT
state; a crash cannot take the sweep down). The parent *blocks in the kernel* while the worker measures: it
waits on a pidfd with `select()` and a timeout, so it takes no CPU. (A parent that polls in a loop steals a core
from a 2-core machine and makes models read slower than they run.) Where pidfd is missing the fallback is
`Popen.wait(timeout)`, which sleeps between checks.

Failures. A worker that raises writes a `failed` record itself. A worker that dies (signal, exit without a
result) or passes `timeout_s` becomes a `failed` record written by the parent, with the signal or exit status
and the last lines the worker printed. The sweep goes on either way.

Executors. Anything with `run(spec, settings) -> Record` can run a sweep one cell at a time (`LocalExecutor`,
the default). An executor that runs cells concurrently elsewhere (`bench.runs.ray_executor.RayExecutor`) has
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
from typing import Callable, Iterator, Mapping, Sequence

from backends.registry import backend_class
from bench.core.record import Record, storable
from bench.core.settings import MeasureSettings
from bench.core.spec import BenchmarkSpec
from bench.runs.store import RunStore
from bench.runs.worker import secrets_of

__all__ = [
    "Executor",
    "LocalExecutor",
    "InProcessExecutor",
    "SweepProgress",
    "SweepResult",
    "run_sweep",
    "wait_blocking",
    "collect_attachments",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Lines of worker output kept in a failed record's `detail`.
LOG_TAIL_LINES = 20
CELL_DIR_PREFIX = "bench-cell-"
OWNER_FILE = "owner.json"
#: `-P`: do not prepend the working directory to sys.path (Python >= 3.11; PYTHONSAFEPATH is set as well).
SAFE_PATH_FLAG = ("-P",) if sys.version_info >= (3, 11) else ()


def _start_time(pid: int) -> float | None:
    from bench.runs.store import process_start_time

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


#: Under the run directory: where simulated cells of one run share host validations and traces.
SIMULATION_CACHE_DIR = ".simulation-cache"


class Executor:
    """Where cells run. A subclass implements `run` (one cell at a time, progress per cell) or sets `streams` and
    implements `stream` (every cell submitted at once, records yielded as they finish).

    `connect()`/`close()` bracket a sweep; `cluster_devices()` names device kinds that nodes beyond this machine
    offer (the planner then keeps cells this machine cannot run); `scratch_dir` is where this run's workers
    share intermediate results (set by `run_sweep` to the run directory's simulation cache); `real(spec)` is the
    spec a worker is given (`secrets`)."""

    streams: bool = False
    scratch_dir: Path | None = None
    #: cells whose options hold secrets -> the spec with the real values (`Plan.secrets`; set by `run_sweep`):
    #: what the worker gets, while records and progress hold the redacted spec
    secrets: Mapping[BenchmarkSpec, BenchmarkSpec] = {}
    #: called with the running cell's {"phase", "calls", "median_ms", "elapsed_s"} as the worker reports it
    progress_hook: Callable[[dict], None] | None = None

    def real(self, spec: BenchmarkSpec) -> BenchmarkSpec:
        """The spec with its real option values, for the worker only (the spec itself without secrets)."""
        return self.secrets.get(spec, spec)

    def connect(self) -> None:
        """Join the resources cells run on (a no-op on this machine)."""

    def close(self) -> None:
        """Leave them again."""

    def cluster_devices(self) -> frozenset[str]:
        """Device kinds ("gpu", "npu"; bench.core.vocabulary) offered beyond this machine; none for a local executor."""
        return frozenset()

    def run(self, spec: BenchmarkSpec, settings: MeasureSettings) -> Record:
        raise NotImplementedError(f"{type(self).__name__} streams; call stream()")

    def stream(self, specs: Sequence[BenchmarkSpec], settings: MeasureSettings) -> Iterator[tuple[Record, float]]:
        raise NotImplementedError(f"{type(self).__name__} runs one cell at a time; call run()")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


#: How often a waiting parent wakes to refresh the progress display (it sleeps in select() in between).
PROGRESS_INTERVAL_S = 1.0


def wait_blocking(proc: subprocess.Popen, timeout: float, tick: Callable[[], None] | None = None) -> int:
    """Wait for `proc` to exit without spinning; raise subprocess.TimeoutExpired after `timeout` seconds.
    With `tick`, wake once per PROGRESS_INTERVAL_S to call it (a progress refresh: a file read, no polling loop)."""
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return proc.wait(timeout)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            ready, _, _ = select.select([pidfd], [], [], min(remaining, PROGRESS_INTERVAL_S) if tick else remaining)
            if ready:
                return proc.wait()
            if tick:
                tick()
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
    return {
        f"{prefix}/{path.relative_to(directory).as_posix()}": path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class LocalExecutor(Executor):
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

    def _ticker(self, path: Path) -> Callable[[], None] | None:
        hook = self.progress_hook
        if hook is None:
            return None

        def tick() -> None:
            try:
                hook(json.loads(path.read_text()))
            except (OSError, ValueError):
                pass

        return tick

    def run(self, spec: BenchmarkSpec, settings: MeasureSettings) -> Record:
        from bench.runs.worker import stored_spec

        started, real = utc_now(), self.real(spec)
        spec = stored_spec(real)  # what a record made here holds (a Ray task passes the real spec)
        remove_stale_cell_dirs()
        with tempfile.TemporaryDirectory(prefix=CELL_DIR_PREFIX) as tmp:
            Path(tmp, OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": _start_time(os.getpid())}))
            job = self._write_job(Path(tmp), real, settings)
            result, log = Path(tmp, "result.json"), Path(tmp, "worker.log")
            with open(log, "wb") as log_fh:
                proc = subprocess.Popen(
                    [self.python, *SAFE_PATH_FLAG, "-m", "bench.runs.worker", str(job), str(result)],
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    env=self.worker_env(spec),
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                )
                try:
                    returncode = wait_blocking(proc, settings.timeout_s, self._ticker(Path(tmp, "progress.json")))
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    reason, tail = f"timed out after {settings.timeout_s:g} s (timeout_s)", _log_tail(log) or None
                    return Record(spec, "failed", reason=reason, started_at=started, finished_at=utc_now(), detail=tail)
                except BaseException:  # Ctrl-C or SIGTERM: never leave a worker behind
                    _kill_group(proc)
                    raise
            return _worker_record(spec, result, log, Path(tmp, "artifacts"), returncode, started)

    def _write_job(self, tmp: Path, real: BenchmarkSpec, settings: MeasureSettings) -> Path:
        """The worker's job file, in the cell's private temporary directory (0700): it holds the real spec."""
        job = tmp / "job.json"
        job.write_text(
            json.dumps(
                {
                    "spec": real.to_dict(),
                    "settings": settings.to_dict(),
                    "artifacts": str(tmp / "artifacts"),
                    "cache_dir": str(self.scratch_dir) if self.scratch_dir else None,
                    "progress": str(tmp / "progress.json"),
                }
            )
        )
        return job


def _worker_record(spec: BenchmarkSpec, result: Path, log: Path, artifacts: Path, returncode: int, started: str):
    """The record the worker wrote (with its attachments), or a failed record saying why there is none."""
    if not result.is_file():
        tail = _log_tail(log)
        reason = _death_reason(returncode, tail)
        return Record(spec, "failed", reason=reason, started_at=started, finished_at=utc_now(), detail=tail or None)
    try:
        record = Record.from_dict(json.loads(result.read_text()))
    except (ValueError, TypeError, KeyError, RecursionError) as exc:  # never expected: say so
        reason = f"the worker's record cannot be read: {str(exc)[:300]}"
        return Record(spec, "failed", reason=reason, started_at=started, finished_at=utc_now())
    record.attachments = collect_attachments(artifacts, f"artifacts/{spec.key}")
    return record


class InProcessExecutor(Executor):
    """Runs each cell in this process (`bench.runs.worker.run_cell`), one at a time: no worker start-up, no
    isolation. For the Python API in notebooks and for tests of what a cell records; a cell's figures can depend
    on what ran before it in the same process (allocator state, threads, compiled kernels), so `bench run`
    always uses isolated workers."""

    def run(self, spec: BenchmarkSpec, settings: MeasureSettings) -> Record:
        from bench.runs.worker import run_cell

        with tempfile.TemporaryDirectory(prefix=CELL_DIR_PREFIX) as tmp:
            artifacts = Path(tmp, "artifacts")
            record = run_cell(self.real(spec), settings, artifacts, self.scratch_dir)
            record.attachments = collect_attachments(artifacts, f"artifacts/{spec.key}")
        return record


class SweepProgress:
    """What a sweep reports as it goes; this base reports nothing. The display on a terminal or in a log is
    `bench.output.progress.Progress` (rendering lives in the output layer)."""

    def submitted(self, count: int) -> None:
        """A streaming executor took `count` cells at once; records arrive as they finish."""

    def start(self, index: int, spec: BenchmarkSpec) -> None:
        """Cell `index` (0-based) starts."""

    def update(self, info: dict) -> None:
        """The running cell's phase, calls and running median, as its worker reports them."""

    def finish(self, index: int, record: Record, seconds: float) -> None:
        """Cell `index` ended with `record` after `seconds`."""

    def close(self) -> None:
        """The sweep is over (or interrupted)."""


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
    executor: Executor | None = None,
    resume: bool = False,
    progress: SweepProgress | None = None,
    on_record: Callable[[Record], None] | None = None,
    unavailable: Mapping[BenchmarkSpec, str] | None = None,
    secrets: Mapping[BenchmarkSpec, BenchmarkSpec] | None = None,
) -> SweepResult:
    """Run every spec not already ok in the store (with `resume`), appending each record as it finishes.

    Specs in `unavailable` (spec -> reason, from the planner) are not run: an `unavailable` record with the
    reason is written for each, so the run says what was asked for and why it has no figures. A streaming
    executor gets all the runnable specs at once and its records are appended in the order they finish.
    `secrets` (`Plan.secrets`) gives the executor the real option values of cells whose specs are redacted; every
    record is scrubbed of those secrets and checked (`storable`) before it is stored."""
    unavailable = unavailable or {}
    executor = executor or LocalExecutor()
    executor.secrets = dict(secrets or {})
    if executor.scratch_dir is None:
        executor.scratch_dir = store.directory.resolve() / SIMULATION_CACHE_DIR
    done = store.ok_keys() if resume else set()
    todo = [spec for spec in specs if spec.key not in done]
    progress = progress or SweepProgress()
    if executor.progress_hook is None:
        executor.progress_hook = progress.update
    records: list[Record] = []

    def keep_record(record: Record) -> None:
        real = executor.real(record.spec)
        secrets = secrets_of(real)
        if secrets or real != record.spec:
            record = record.scrubbed(secrets)
        record = storable(record)
        store.append(record)
        if on_record:
            on_record(record)

    try:
        return _run_cells(specs, todo, settings, executor, progress, keep_record, unavailable, records)
    finally:
        progress.close()


def _run_cells(specs, todo, settings, executor, progress, keep_record, unavailable, records) -> SweepResult:
    def keep(index: int, record: Record, seconds: float) -> None:
        keep_record(record)
        records.append(record)
        progress.finish(index, record, seconds)

    if executor.streams:
        for spec in todo:
            if spec in unavailable:
                keep(
                    len(records),
                    Record(spec, "unavailable", reason=unavailable[spec], started_at=utc_now(), finished_at=utc_now()),
                    0.0,
                )
        runnable = [spec for spec in todo if spec not in unavailable]
        progress.submitted(len(runnable))
        for record, seconds in executor.stream(runnable, settings):
            keep(len(records), record, seconds)
        return SweepResult(records=records, skipped=len(specs) - len(todo))
    for index, spec in enumerate(todo):
        progress.start(index, spec)
        began = time.monotonic()
        if spec in unavailable:
            record = Record(spec, "unavailable", reason=unavailable[spec], started_at=utc_now(), finished_at=utc_now())
        else:
            record = executor.run(spec, settings)
        keep(index, record, time.monotonic() - began)
    return SweepResult(records=records, skipped=len(specs) - len(todo))
