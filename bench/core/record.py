"""The result record: what one cell produced, with its raw samples, as one versioned JSON object.

A record keeps the raw per-iteration samples (integers, nanoseconds) and never stores statistics derived from
them: `latency()`, `throughput()` and `generation()` recompute them, so a record cannot disagree with itself.

Schema history (bump SCHEMA_VERSION on any change that an older reader would misread):
  1  first version: spec, status, reason, simulated, environment, measurement (samples_ns, loop_wall_ns,
     token_marks_ns), memory, model, work (FLOPs and minimum bytes per call), accuracy (deviation from the
     fp32 CPU reference), timestamps. Later additions that older readers can ignore (optional fields, no bump):
     measurement.device_samples_ns and measurement.telemetry.
  2  `simulation`: a simulated record (simulated: true) has no measurement; it holds the device profile with each
     figure's status and source, the cost model version and efficiency factors, the point estimate with its band,
     the host validation (measured vs predicted on this host) and the trace digest. Version 1 records read as before.
  3  `spec.scenario` and `spec.load` (LoadGen scenarios) and `loadgen`: a LoadGen record has no measurement; it
     holds LoadGen's own figures read from its detail log (validity and why, results with percentiles in ns,
     early-stopping estimates, settings in force), the warm-up that set the expected latency, what the system
     under test did, the server search if any, and the paths of LoadGen's logs under the run directory.
     Versions 1-2 read as before (scenario "latency").
  Additions within version 3 that older readers ignore: `serving` (a serving engine measured over its API: the
  engine's identity, the load, failed requests; its measurement's samples are requests) and
  measurement.tokens_per_sample.

The type of every field a reader uses, and the check run on each record read, are in `bench.core.record_fields`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence, TypedDict

from bench.core.errors import UsageError
from bench.core.record_fields import FIELD_TYPES, STATUSES, check_fields
from bench.core.secrets import scrub_tree
from bench.core.spec import BenchmarkSpec
from bench.core.stats import LatencySummary, drift, median, summarize, throughput_interval

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "Measurement",
    "Record",
    "GenerationSummary",
    "EnvironmentSection",
    "WorkSection",
    "AccuracySection",
    "SimulationSection",
    "LoadGenSection",
    "ServingSection",
    "FIELD_TYPES",
    "check_fields",
    "storable",
]

SCHEMA_VERSION = 3


# -- typed sections ------------------------------------------------------------------------------------------
# Each section of a record is a JSON object read back as a dict typed by one of these TypedDicts (total=False:
# every key optional). Readers use .get() and never reject a key they do not know, so a record written by a newer
# minor version -- one that only added keys -- loads in an older reader; a change an older reader would misread
# bumps SCHEMA_VERSION instead, and older readers refuse that record with one line.


class EnvironmentSection(TypedDict, total=False):
    """Where a cell ran (bench.core.environment): the fingerprint digests the comparability-relevant keys."""

    cpu: dict[str, Any]
    memory: dict[str, Any]
    os: dict[str, Any]
    python: dict[str, Any]
    libraries: dict[str, str | None]  # the backend's declared libraries and numpy/scipy -> version (None: absent)
    threads: dict[str, Any]
    device: dict[str, Any]
    project: dict[str, Any]  # version, git_commit, git_dirty
    hostname: str
    fingerprint: str


class WorkSection(TypedDict, total=False):
    """Work per call: counted and analytic FLOPs, minimum bytes moved, and how FLOPs were counted."""

    flops_per_call: float | None
    flops_per_call_analytic: float | None
    min_bytes_per_call: float | None
    flop_counter: str


class AccuracySection(TypedDict, total=False):
    """Deviation from the fp32 CPU reference on the same seeded inputs, or why it was skipped."""

    reference: str
    cosine_similarity: float
    max_abs_error: float
    top1_agreement: float | None
    skipped: str


class SimulationSection(TypedDict, total=False):
    """A simulated record's projection (backends.simulated): never samples, always labelled simulated."""

    profile: dict[str, Any]  # the device profile with each figure's value, status and source
    mode: str
    efficiency: dict[str, Any]
    estimate: dict[str, Any]  # latency_s, items_per_s, ttft_s, tpot_s, per-chip token rates, band
    serving: dict[str, Any]  # the serving projection (bench.projection) where that path was used
    host_validation: dict[str, Any]  # measured vs predicted on this host, or the stored summary used as band
    traced_on: str
    trace_precision: str
    trace: dict[str, Any]


class ServingSection(TypedDict, total=False):
    """A serving engine measured over its API (bench.measure.requests): what served it and what failed."""

    server: dict[str, Any]  # /v1/models and the Server header: model ids, owner, engine name and version
    load: dict[str, Any]  # requests, concurrency, request_rate (Poisson) or closed loop, seed, warm-up requests
    max_tokens: int
    requests_sent: int
    requests_ok: int
    requests_failed: int
    failure_reasons: dict[str, int]
    failures: list[dict[str, Any]]
    output_tokens: list[int]
    prompt_tokens: list[int | None]
    chunks: list[int]
    duration_ns: int
    slo_ms: dict[str, float]  # goodput bounds: ttft, tpot, e2e
    requests_retried: int  # requests sent again after a failure before any response byte
    retry_reasons: dict[str, int]
    prompt_tokens_sent: list[int | None]  # the prompt tokens this client counted, per successful request
    engine_timings: list[dict[str, float] | None]  # the engine's own per-request timings (llama.cpp's stream)
    request: dict[str, Any]  # how requests were made: prompt method, fields, dropped fields, policy, prefix cache


class LoadGenSection(TypedDict, total=False):
    """LoadGen's own figures for a scenario cell, read from its detail log (bench.measure.loadgen)."""

    scenario: str
    mode: str
    validity: str
    invalid_reasons: list[str]
    results: dict[str, Any]  # LoadGen's result keys, latencies in ns
    early_stopping: dict[str, Any]
    settings: dict[str, Any]
    sut: dict[str, Any]
    warmup: dict[str, Any]
    expected_latency_ns: int
    expected_latency_from: str
    search: list[dict[str, Any]]
    logs: str
    accuracy_log: str


@dataclass(frozen=True)
class Measurement:
    """Raw output of the timed loop.

    samples_ns           wall time of each timed call, device synchronised before both stamps
    loop_wall_ns         from the first call's start stamp to the last call's end stamp
    items_per_iteration  items one call processes (sequences or images: the batch size)
    token_marks_ns       generation only: for each iteration, the time from its start at which each output
                         token step had finished (first entry = time to first token)
    tokens_per_iteration generation only: output tokens per call (batch size x new tokens)
    stopped_by           which rule ended the loop: "precision_reached" (median interval within ci_target),
                         "min_reached" (no ci_target), "max_iterations" or "max_time" (not converged)
    warmup_stable        True: warm-up windows settled; False: they never did before the cap; None: not judged
    device_samples_ns    device-side time of each timed call from timing events (CUDA/NPU), None without
    telemetry            power/energy/clock figures sampled over the timed loop (see backends/nvml.py), or None
    host_load            the rest of the host during the timed loop (bench/hostload.py): other processes' CPU
                         time and cores, steal, load average, `contended`; None where the counters are missing
    """

    samples_ns: list[int]
    loop_wall_ns: int
    items_per_iteration: int
    warmup_iterations: int
    warmup_ns: int
    stopped_by: str
    settings: dict[str, Any]
    token_marks_ns: list[list[int]] | None = None
    tokens_per_iteration: int | None = None
    warmup_stable: bool | None = None
    device_samples_ns: list[int] | None = None
    telemetry: dict[str, Any] | None = None
    host_load: dict[str, Any] | None = None
    #: requests to a serving engine: output tokens of each sample (iteration) as the server reported them, where
    #: a content chunk may carry several tokens; None where every step is one token (tokens_per_iteration)
    tokens_per_sample: list[int] | None = None  # bench.core.hostload: other processes' CPU use, steal, contended
    timer: str = "time.perf_counter_ns; device synchronize() before each stamp; gc disabled in the loop"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        """Rebuild from JSON; keys a newer minor version added are ignored (forward compatibility)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class GenerationSummary:
    """LM generation metrics, as vLLM's benchmarks define them.

    ttft  time to first token: request start to the first output token (the prefill and its sampling)
    tpot  time per output token, per request: (e2e - ttft) / (output tokens - 1)
    itl   inter-token latency: every gap between consecutive output tokens, pooled over requests
    output_tokens_per_s  all output tokens / the timed loop's wall time
    """

    ttft: LatencySummary
    tpot: LatencySummary | None
    itl: LatencySummary | None
    output_tokens_per_s: float
    new_tokens: int


@dataclass
class Record:
    """One cell's result. `status` is "ok", "failed" (with `reason`) or "unavailable" (with `reason`)."""

    spec: BenchmarkSpec
    status: str
    reason: str | None = None
    simulated: bool = False
    environment: EnvironmentSection = field(default_factory=dict)  # type: ignore[assignment]
    measurement: Measurement | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    work: WorkSection | None = None
    accuracy: AccuracySection | None = None
    simulation: SimulationSection | None = None
    loadgen: LoadGenSection | None = None
    serving: ServingSection | None = None
    started_at: str | None = None
    finished_at: str | None = None
    detail: str | None = None
    schema_version: int = SCHEMA_VERSION
    #: files the cell produced (relative path under the run directory -> bytes); written by the store beside the
    #: records when the record is appended, never serialised into the record itself
    attachments: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise UsageError(f"status: {self.status!r} is not allowed; expected one of {', '.join(STATUSES)}")
        if self.status != "ok" and not self.reason:
            raise UsageError(f"reason: a {self.status} record needs a reason")

    # -- derived statistics ------------------------------------------------------------------------------

    def converged(self) -> bool | None:
        """Whether the loop met its stopping rule (precision target, or the minimums when there was none); None
        where no stopping rule applies (a fixed number of requests to a serving engine)."""
        m = self.measurement
        if not m or m.stopped_by == "requests_sent":
            return None
        return m.stopped_by in ("precision_reached", "min_reached")

    def drift(self) -> dict | None:
        """First third against last third of the samples (see bench.core.stats.drift)."""
        return drift(self.measurement.samples_ns) if self.measurement else None

    def throughput_interval(self) -> tuple[float, float] | None:
        """95% interval of items per second from batch means of the call times. For a serving engine's request
        load, where requests overlap (concurrency > 1), the relative interval of the mean request time around the
        measured rate (items over the load's wall time): 1 / mean request time would be one stream's rate."""
        m = self.measurement
        interval = throughput_interval(m.samples_ns, m.items_per_iteration) if m else None
        rate = self.throughput()
        if interval is None or not self.serving or not rate:
            return interval
        centre = m.items_per_iteration * 1e9 * len(m.samples_ns) / sum(m.samples_ns)
        return interval[0] * rate / centre, interval[1] * rate / centre

    def latency(self) -> LatencySummary | None:
        """Per-call latency summary in nanoseconds (None without samples)."""
        return summarize(self.measurement.samples_ns) if self.measurement else None

    def throughput(self) -> float | None:
        """Items per second: items over the timed loop's wall time (not 1 / mean latency)."""
        m = self.measurement
        if not m or not m.samples_ns or m.loop_wall_ns <= 0:
            return None
        return m.items_per_iteration * len(m.samples_ns) / (m.loop_wall_ns / 1e9)

    def contended(self) -> bool:
        """Whether other processes or the hypervisor took a share of the CPUs during the timed loop."""
        return bool(((self.measurement.host_load if self.measurement else None) or {}).get("contended"))

    def generation(self) -> GenerationSummary | None:
        """TTFT / TPOT / ITL / output tokens per second, for generation workloads."""
        m = self.measurement
        if not m or not m.token_marks_ns:
            return None
        ttft = [marks[0] for marks in m.token_marks_ns]
        counts = m.tokens_per_sample or [len(marks) for marks in m.token_marks_ns]
        tpot = [
            (e2e - marks[0]) / (count - 1)
            for e2e, marks, count in zip(m.samples_ns, m.token_marks_ns, counts)
            if count > 1
        ]
        itl = [b - a for marks in m.token_marks_ns for a, b in zip(marks, marks[1:])]
        tokens = sum(m.tokens_per_sample) if m.tokens_per_sample else (m.tokens_per_iteration or 0) * len(m.samples_ns)
        return GenerationSummary(
            ttft=summarize(ttft),
            tpot=summarize(tpot),
            itl=summarize(itl),
            output_tokens_per_s=tokens / (m.loop_wall_ns / 1e9) if m.loop_wall_ns > 0 else 0.0,
            new_tokens=len(m.token_marks_ns[0]),
        )

    def device_latency(self) -> LatencySummary | None:
        """Per-call device time from timing events (None where the device has no events)."""
        m = self.measurement
        return summarize(m.device_samples_ns) if m and m.device_samples_ns else None

    def energy_per_item_j(self) -> float | None:
        """Joules per item (sequence or image) over the timed loop, where the device reports energy."""
        m = self.measurement
        energy = (m.telemetry or {}).get("energy_j") if m else None
        items = m.items_per_iteration * len(m.samples_ns) if m else 0
        return energy / items if energy is not None and items else None

    def energy_per_token_j(self) -> float | None:
        """Joules per output token over the timed loop, for generation workloads where energy is reported."""
        m = self.measurement
        energy = (m.telemetry or {}).get("energy_j") if m else None
        tokens = (m.tokens_per_iteration or 0) * len(m.samples_ns) if m else 0
        return energy / tokens if energy is not None and tokens else None

    def estimate(self) -> dict[str, Any] | None:
        """A simulated record's point estimate (latency_s, items_per_s, ttft_s, tpot_s, band), else None."""
        return (self.simulation or {}).get("estimate")

    def flops_per_call(self) -> float | None:
        """Counted FLOPs per call; the analytic figure where the call could not be counted (ONNX Runtime,
        quantized or compiled kernels) -- the work of the model is the same whatever runs it."""
        work = self.work or {}
        return work.get("flops_per_call") or work.get("flops_per_call_analytic")

    def achieved_flops_per_s(self) -> float | None:
        """FLOPs per call / median latency (the estimated latency for a simulated record)."""
        median = self.median_latency_ns() or ((self.estimate() or {}).get("latency_s") or 0) * 1e9 or None
        flops = self.flops_per_call()
        return flops / (median / 1e9) if flops and median else None

    def achieved_bytes_per_s(self) -> float | None:
        """Minimum bytes per call / median latency: a lower bound on the memory bandwidth the call used."""
        median = self.median_latency_ns()
        moved = (self.work or {}).get("min_bytes_per_call")
        return moved / (median / 1e9) if moved and median else None

    def median_latency_ns(self) -> float | None:
        """The cell's p50 (bench.core.stats.median): the same number in every table, comparison and report."""
        m = self.measurement
        return median(m.samples_ns) if m and m.samples_ns else None

    # -- JSON --------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "spec_key": self.spec.key,
            "spec": self.spec.to_dict(),
            "status": self.status,
            "reason": self.reason,
            "simulated": self.simulated,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "environment": self.environment,
            "model": self.model,
            "measurement": asdict(self.measurement) if self.measurement else None,
            "memory": self.memory,
            "work": self.work,
            "accuracy": self.accuracy,
            "simulation": self.simulation,
            "loadgen": self.loadgen,
            "serving": self.serving,
            "detail": self.detail,
        }

    def scrubbed(self, secrets: Sequence[str]) -> "Record":
        """This record with every secret (and every URL's credentials) scrubbed from its text
        (bench.core.secrets.scrub_tree); the spec is left as it is (it holds the redacted form already)."""
        data = self.to_dict()
        cleaned = {k: v if k in ("spec", "spec_key") else scrub_tree(v, secrets) for k, v in data.items()}
        record = Record.from_dict(cleaned)
        record.attachments = self.attachments
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Record":
        """Rebuild a record, refusing schema versions newer than this code understands."""
        version = data.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"schema_version: {version!r} is not a record schema version")
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version: {version} is newer than this catchup-bench reads ({SCHEMA_VERSION}); upgrade it"
            )
        check_fields(data)
        measurement = data.get("measurement")
        return cls(
            spec=BenchmarkSpec.from_dict(data["spec"]),
            status=data["status"],
            reason=data.get("reason"),
            simulated=bool(data.get("simulated", False)),
            environment=_section(data, "environment") or {},
            measurement=Measurement.from_dict(measurement) if measurement else None,
            memory=_section(data, "memory") or {},
            model=_section(data, "model") or {},
            work=_section(data, "work"),
            accuracy=_section(data, "accuracy"),
            simulation=_section(data, "simulation"),
            loadgen=_section(data, "loadgen"),
            serving=_section(data, "serving"),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            detail=data.get("detail"),
            schema_version=version,
        )


def _section(data: Mapping[str, Any], name: str) -> Any:
    """A record section as a dict (every key kept, known or not), None when absent; a non-object is refused."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{name}: {type(value).__name__} is not allowed; expected a JSON object or null")
    return dict(value)


def storable(record: Record) -> Record:
    """`record` if it can be written as JSON and read back by the readers (finite numbers, every field of its
    type: `check_fields`); else a `failed` record of the same cell saying why. A record that could not be read
    back is never written, so a hostile server costs at most its own cell."""
    try:
        Record.from_dict(json.loads(json.dumps(record.to_dict(), allow_nan=False)))
        return record
    except (ValueError, TypeError, RecursionError) as exc:
        return Record(
            record.spec,
            "failed",
            reason=f"the cell's record cannot be stored: {str(exc)[:300]}",
            started_at=record.started_at,
            finished_at=record.finished_at,
        )
