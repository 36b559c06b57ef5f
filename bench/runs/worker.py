"""What runs inside one isolated worker process: build, warm up, measure, and write one record.

Invoked by the local executor as ``python -m bench.runs.worker JOB.json RESULT.json``. JOB holds the spec, the
measurement settings and a directory for files the cell leaves besides its record (LoadGen's logs); the record
is written to RESULT atomically (temporary file, then rename), so the parent
either finds a whole record or none. Any exception becomes a `failed` record with its reason; a crash that
kills the process is turned into a `failed` record by the parent.

Test hook (documented, off unless set): ``BENCH_FAULT_INJECT=KIND@MODEL`` makes cells of workload MODEL fail
after the model is built, with KIND one of ``segfault`` (SIGSEGV), ``exit`` (exit status 3 without a record),
``hang`` (sleep past any timeout) or ``raise`` (a Python exception). Tests use it to prove that a crashing
worker leaves a `failed` record and the sweep goes on.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.stats import median
from bench.runs import cell_facts

FAULT_ENV = "BENCH_FAULT_INJECT"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _peak_rss_bytes() -> int | None:
    """Peak resident set size of this process over its life (build included), from getrusage."""
    try:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    except (ImportError, OSError):  # pragma: no cover - Windows
        return None


def _inject_fault(workload: str) -> None:
    value = os.environ.get(FAULT_ENV, "")
    kind, _, target = value.partition("@")
    if not value or target != workload:
        return
    if kind == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "exit":
        os._exit(3)
    elif kind == "hang":
        time.sleep(1e6)
    elif kind == "raise":
        raise RuntimeError(f"fault injected by {FAULT_ENV}={value}")


def _simulated_record(backend, workload, spec, settings, environment, started, cache_dir):
    """A simulated cell: trace (and validate on the host), project onto the profile; no timed loop here."""
    from bench.core.calls import SimulationContext
    from bench.core.record import Record
    from bench.measure.loop import run_timed_loop
    from models.accuracy import REFERENCE

    context = SimulationContext(cache_dir=cache_dir, time_call=run_timed_loop)
    result = backend.simulate(workload, spec, settings, context)
    if result.not_projected:
        return Record(
            spec,
            "unavailable",
            reason=result.not_projected,
            simulated=True,
            environment=environment,
            model=result.facts,
            work=result.work,
            simulation=result.simulation,
            started_at=started,
            finished_at=_now(),
        )
    if result.output is not None:
        accuracy = cell_facts.accuracy(workload, spec, type(backend), result.output)
    else:
        accuracy = {"reference": REFERENCE, "skipped": result.accuracy_note or "no output"}
    return Record(
        spec,
        "ok",
        simulated=True,
        environment=environment,
        model=result.facts,
        work=result.work,
        accuracy=accuracy,
        simulation=result.simulation,
        started_at=started,
        finished_at=_now(),
    )


def _memory(backend) -> dict[str, Any]:
    import psutil

    return {
        "peak_rss_bytes": _peak_rss_bytes(),
        "rss_after_bytes": psutil.Process().memory_info().rss,
        **backend.memory_stats(),
    }


def _loadgen_record(backend, workload, spec, settings, prepared, environment, started, artifacts):
    """A LoadGen scenario cell: LoadGen's figures (no timed loop of ours), then its AccuracyOnly run's deviation."""
    from bench.core.record import Record
    from bench.measure.loadgen import accuracy_view, run_loadgen_cell

    check = (
        settings.loadgen.accuracy and prepared.output is not None and not cell_facts.is_reference(spec, type(backend))
    )
    run = run_loadgen_cell(spec, settings, workload, backend, prepared, artifacts, check)
    memory = _memory(backend)
    with backend.execution_context():
        work = (
            None if type(backend).capabilities.remote else cell_facts.work_per_call(workload, spec, prepared, backend)
        )
    facts = prepared.facts
    del prepared
    accuracy = (
        cell_facts.accuracy(workload, spec, type(backend), run.accuracy_output, view=accuracy_view(workload))
        if check
        else None
    )
    if accuracy:
        accuracy["source"] = "LoadGen AccuracyOnly run (mlperf_log_accuracy.json)"
    return Record(
        spec,
        "ok",
        environment=environment,
        memory=memory,
        model=facts,
        work=work,
        accuracy=accuracy,
        loadgen=run.section,
        started_at=started,
        finished_at=_now(),
    )


def _remote_record(backend, workload, spec, settings, environment, started):
    """A serving engine measured from outside: the request load of `bench.measure.requests` through the backend's
    client; the engine's identity and every failed request are in the record's `serving` section."""
    from bench.core.record import Record
    from bench.measure.requests import LoadShape, run_request_load

    option = spec.option
    shape = LoadShape(
        int(option("requests", 32)),
        int(option("concurrency", 1)),
        float(option("request_rate", 0.0)),
        int(option("seed", 0)),
    )
    max_tokens = spec.new_tokens or workload.default_new_tokens or 16
    if hasattr(backend, "probe_engine"):  # identity, refused fields, token-id prompts: once, before the load
        backend.probe_engine()
        prompts, warmup = backend.prompt_sets(shape.requests, shape.warmup)
    else:
        prompts, warmup = backend.prompts(min(shape.requests, 256)), None
    measurement, section = run_request_load(backend.client, prompts, max_tokens, shape, settings.to_dict(), warmup)
    if hasattr(backend, "request_section"):
        section["request"] = backend.request_section()
    section["slo_ms"] = {k: option(f"slo_{k}_ms") for k in ("ttft", "tpot", "e2e") if option(f"slo_{k}_ms")}
    model = {"technique": backend.technique(spec), "served_model": backend.served_model}
    if measurement is None:
        reasons = ", ".join(f"{k} x{v}" for k, v in section["failure_reasons"].items())
        return Record(
            spec,
            "failed",
            reason=f"every request failed ({reasons})",
            environment=environment,
            model=model,
            serving=section,
            started_at=started,
            finished_at=_now(),
        )
    return Record(
        spec,
        "ok",
        environment=environment,
        measurement=measurement,
        model=model,
        serving=section,
        started_at=started,
        finished_at=_now(),
    )


def progress_writer(path: Path | None):
    """A callback writing the cell's phase (and running median) to `path` for the parent's progress display:
    a few bytes, atomically, at phase changes and precision checks only; a no-op without a path."""
    started = time.monotonic()

    def write(phase: str, calls: int = 0, median_ns: float | None = None) -> None:
        if path is None:
            return
        data = {
            "phase": phase,
            "calls": calls,
            "median_ms": median_ns / 1e6 if median_ns else None,
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        try:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
        except OSError:
            pass

    return write


@dataclass
class _Cell:
    """One cell in this worker: what the record-making functions of each backend kind share."""

    spec: Any
    settings: Any
    backend: Any
    workload: Any
    environment: dict[str, Any]
    started: str
    artifacts: Path | None
    cache_dir: Path | None
    report: Any

    @property
    def kind(self) -> type:
        return type(self.backend)


def _simulated_cell(cell: _Cell):
    return _simulated_record(
        cell.backend, cell.workload, cell.spec, cell.settings, cell.environment, cell.started, cell.cache_dir
    )


def _remote_cell(cell: _Cell):
    """A server measured from outside: the request load (latency), or LoadGen through the network SUT."""
    if cell.spec.scenario == "latency":
        return _remote_record(cell.backend, cell.workload, cell.spec, cell.settings, cell.environment, cell.started)
    return _prepared_cell(cell)


def _measured_cell(cell: _Cell):
    """A runtime on a device here: refused before building if the model cannot fit, else prepared and timed."""
    from bench.core.record import Record

    too_big = cell_facts.does_not_fit(cell.workload, cell.spec, cell.backend)
    if too_big:
        return Record(
            cell.spec,
            "unavailable",
            reason=too_big,
            environment=cell.environment,
            started_at=cell.started,
            finished_at=_now(),
        )
    return _prepared_cell(cell)


def _prepared_cell(cell: _Cell):
    """Prepare the call, then hand it to LoadGen (a LoadGen scenario) or the timed loop."""
    prepared = cell.backend.prepare(cell.workload, cell.spec)
    _inject_fault(cell.workload.name)
    cell.backend.reset_memory_stats()
    if cell.spec.scenario != "latency":
        artifacts = cell.artifacts or Path(tempfile.mkdtemp(prefix="bench-loadgen-"))
        return _loadgen_record(
            cell.backend, cell.workload, cell.spec, cell.settings, prepared, cell.environment, cell.started, artifacts
        )
    return _timed_record(cell, prepared)


def _timed_record(cell: _Cell, prepared):
    """The timed loop, then one untimed call for the work and one output for the accuracy guard."""
    from bench.core.record import Record
    from bench.measure.loop import run_timed_loop

    backend, spec, cls = cell.backend, cell.spec, cell.kind
    with backend.execution_context():
        measurement = run_timed_loop(
            prepared,
            backend.synchronize,
            cell.settings,
            device_timer=backend.event_timer(),
            telemetry=backend.telemetry(),
            on_progress=cell.report,
        )
    cell.report("finish", len(measurement.samples_ns), median(measurement.samples_ns))
    memory = _memory(backend)
    with backend.execution_context():
        work = cell_facts.work_per_call(cell.workload, spec, prepared, backend)
        # the compared output costs a full forward pass: only where there is a reference to compare with
        output = prepared.output() if prepared.output and not cell_facts.is_reference(spec, cls) else None
    facts = prepared.facts
    del prepared  # free the measured model before the accuracy reference is built
    accuracy = cell_facts.accuracy(cell.workload, spec, cls, output)
    return Record(
        spec,
        "ok",
        environment=cell.environment,
        measurement=measurement,
        memory=memory,
        model=facts,
        work=work,
        accuracy=accuracy,
        started_at=cell.started,
        finished_at=_now(),
    )


#: What the worker does with a cell, by the backend's declared kind (`Capabilities.kind`).
_BY_KIND = {"simulated": _simulated_cell, "remote": _remote_cell, "measured": _measured_cell}


def stored_spec(spec):
    """The spec as records hold it: secrets in its options redacted (`Backend.redacted`; every URL in a string
    option when the backend is unknown)."""
    from dataclasses import replace

    from backends.registry import backend_class
    from bench.core.secrets import redact_urls_in

    try:
        return backend_class(spec.backend).redacted(spec)
    except Exception:  # an unknown backend: redact every URL in its string options
        options = tuple((k, redact_urls_in(v) if isinstance(v, str) else v) for k, v in spec.options)
        return replace(spec, options=options)


def run_cell(
    spec, settings, artifacts: Path | None = None, cache_dir: Path | None = None, progress: Path | None = None
):
    """Measure one cell in this process and return its Record (never raises for a cell-level problem).
    LoadGen scenarios write their logs under `artifacts` (the executor keeps them beside the records).
    `spec` holds the real option values (an endpoint's credentials); the record holds the redacted spec
    (`stored_spec`) and none of the secrets (`Backend.secret_values`) in any of its text."""
    stored = stored_spec(spec)
    record = _run_cell(spec, stored, settings, artifacts, cache_dir, progress)
    secrets = secrets_of(spec)
    return record.scrubbed(secrets) if secrets or stored != spec else record


def secrets_of(spec) -> tuple[str, ...]:
    """What no stored text may hold for this (real) spec: `Backend.secret_values` (none for an unknown backend)."""
    from backends.registry import backend_class

    try:
        return backend_class(spec.backend).secret_values(spec)
    except Exception:  # an unknown backend has no secrets of its own; its URLs are redacted by `stored_spec`
        return ()


def _run_cell(real, spec, settings, artifacts, cache_dir, progress):
    from backends.registry import backend_class
    from bench.core.environment import collect_environment
    from bench.core.record import Record
    from models.catalogue import get_workload

    started = _now()
    environment: dict[str, Any] = {}
    report = progress_writer(progress)
    try:
        report("build")
        cls = backend_class(spec.backend)
        availability = cls.availability(real)
        if not availability.available:
            return Record(spec, "unavailable", reason=availability.reason, started_at=started, finished_at=_now())
        workload = get_workload(spec.workload)
        backend = cls(real)
        environment = collect_environment(backend.thread_info(), backend.device_info(), cls.libraries)
        cell = _Cell(spec, settings, backend, workload, environment, started, artifacts, cache_dir, report)
        return _BY_KIND[cls.capabilities.kind](cell)
    except MemoryError:
        return Record(
            spec,
            "failed",
            reason="out of memory (MemoryError)",
            environment=environment,
            started_at=started,
            finished_at=_now(),
            detail=traceback.format_exc(limit=-8),
        )
    except Exception as exc:  # a cell-level failure: record it, let the sweep go on
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return Record(
            spec,
            "failed",
            reason=f"{type(exc).__name__}: {first_line}"[:500],
            environment=environment,
            started_at=started,
            finished_at=_now(),
            detail=traceback.format_exc(limit=-8),
        )


def main(argv: list[str]) -> int:
    from bench.core.settings import MeasureSettings
    from bench.core.spec import BenchmarkSpec

    job_path, result_path = Path(argv[0]), Path(argv[1])
    job = json.loads(job_path.read_text())
    spec = BenchmarkSpec.from_dict(job["spec"])
    settings = MeasureSettings.from_dict(job["settings"])
    artifacts = Path(job["artifacts"]) if job.get("artifacts") else None
    cache_dir = Path(job["cache_dir"]) if job.get("cache_dir") else None
    progress = Path(job["progress"]) if job.get("progress") else None
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except Exception:
        pass
    from bench.core.record import storable

    record = storable(run_cell(spec, settings, artifacts, cache_dir, progress))
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record.to_dict(), allow_nan=False))
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
