"""MLPerf LoadGen scenarios: single-stream, multi-stream, server and offline, served by any measured backend.

LoadGen (the `mlcommons-loadgen` package, imported as `mlperf_loadgen`) is MLPerf Inference's load generator: a
C++ library that issues queries on the scenario's schedule, times every sample from issue to completion, and
judges the run VALID or INVALID against the scenario's rules (minimum duration and query count, latency bounds,
and its binomial early-stopping test at 99% confidence). This module is the system under test (SUT) that answers
those queries with a `PreparedCall`, and the reader of LoadGen's logs. Nothing here times anything: every figure
in a LoadGen record is LoadGen's own, copied from its detail log (`mlperf_log_detail.txt`, one JSON entry per
line), which holds the same numbers as its human-readable summary.

Query sample library (QSL). The samples are the rows of the cell's seeded inputs: `batch_size` samples, built on
the device with the model, before LoadGen starts (so "loading" a sample moves nothing and the load callbacks are
no-ops). LoadGen draws the sample of each query from them with its seeded generator.

System under test. `issue` only puts the query's samples on a queue and returns. One serving thread takes them,
together with any other queued samples, and runs them in batches of at most `batch_size` rows gathered from the
inputs (`PreparedCall.take`): a query of multi-stream (batch_size samples) is one batch, the single query of
offline is split into batches, and server queries that arrive while a batch runs are batched together (dynamic
batching, up to batch_size). Runtimes with a fixed batch shape (exported graphs, CUDA graphs) run a whole batch
for a partial one (padding); the record counts the padded samples. Each sample is completed with
`QuerySamplesComplete` once its batch has finished on the device (the call synchronises); generation workloads
also report their first token with `FirstTokenComplete` as soon as the prefill's token exists, so LoadGen measures
time to first token and time per output token as MLPerf does for LLMs.

Expected latency. Single-stream, multi-stream and offline plan their schedule from an expected latency (or
samples per second). Unless given (`--lg-expected-latency`), it is the median latency of a full-batch call over
the warm-up, which runs just before LoadGen starts (warm-up rules of `MeasureSettings`).

Server search. `target_qps = "max"` runs the server scenario first at the rate the warm-up predicts a saturated
SUT could sustain (batch_size / median call latency), then bisects between the highest VALID and the lowest
INVALID rate for `search_steps` more runs (stopping early when they are within 5%, or when the next rate would need
longer than max_duration_s to issue min_queries queries, which could only end INVALID). The record keeps every run
of the search and reports the highest VALID one (or, if none was valid, the lowest rate tried).

Accuracy. After the performance run, an AccuracyOnly run has LoadGen issue every sample once; the SUT answers with
the output the accuracy guard compares (float32; for language models the logits of the last prompt position,
whose argmax is the first generated token). The responses are read back from LoadGen's `mlperf_log_accuracy.json`
and compared with the fp32 CPU reference on the same samples.
"""

from __future__ import annotations

import array
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from bench.core.calls import PreparedCall
from bench.core.scenarios import LOADGEN_SCENARIOS
from bench.core.settings import LoadGenSettings, MeasureSettings
from bench.core.spec import SEARCH_QPS, BenchmarkSpec
from bench.core.stats import median
from bench.measure.loadgen_logs import parse_detail_log, read_accuracy_log, summarize_run

__all__ = [
    "INSTALL_HINT",
    "loadgen_unavailable_reason",
    "run_loadgen_cell",
    "SCENARIO_NAMES",
]

INSTALL_HINT = "pip install 'catchup-bench[loadgen]' (the mlcommons-loadgen package, imported as mlperf_loadgen)"

#: Our scenario names -> LoadGen's TestScenario members.
SCENARIO_NAMES = {s.name: s.loadgen_name for s in LOADGEN_SCENARIOS.values()}

#: Server latency bounds when the spec gives none: LoadGen's default p99 bound, and MLPerf's Llama 2 70B limits.
DEFAULT_LATENCY_MS = 100.0
DEFAULT_TTFT_MS = 2000.0
DEFAULT_TPOT_MS = 200.0

#: The server search stops when the highest valid and lowest invalid rates are within this fraction.
SEARCH_RESOLUTION = 0.05


def loadgen_unavailable_reason() -> str | None:
    """Why LoadGen scenarios cannot run here (the package is not installed), or None."""
    try:
        import mlperf_loadgen  # noqa: F401
    except ImportError as exc:
        return f"LoadGen scenarios need MLPerf LoadGen ({exc.name or 'mlperf_loadgen'} not importable): {INSTALL_HINT}"
    return None


# ---------------------------------------------------------------------------------------------------------
# Settings


def loadgen_test_settings(
    lg,
    spec: BenchmarkSpec,
    settings: LoadGenSettings,
    expected_latency_ns: float,
    generates: bool,
    accuracy: bool,
    target_qps: float | None = None,
):
    """LoadGen TestSettings for one run of the spec's scenario (`target_qps` overrides the spec's for a search)."""
    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, SCENARIO_NAMES[spec.scenario])
    s.mode = lg.TestMode.AccuracyOnly if accuracy else lg.TestMode.PerformanceOnly
    min_duration_s, min_queries, max_duration_s = settings.run_length(spec.scenario)
    s.min_duration_ms = int(min_duration_s * 1000)
    s.min_query_count = min_queries
    s.max_duration_ms = int(max_duration_s * 1000)
    s.qsl_rng_seed = s.sample_index_rng_seed = s.schedule_rng_seed = settings.seed
    expected = int(expected_latency_ns)
    s.single_stream_expected_latency_ns = expected
    s.multi_stream_expected_latency_ns = expected
    s.multi_stream_samples_per_query = spec.batch_size
    s.offline_expected_qps = spec.batch_size / (expected / 1e9)
    load = dict(spec.load)
    if spec.scenario == "server":
        s.server_target_qps = float(target_qps if target_qps is not None else load["target_qps"])
        s.server_target_latency_ns = int(float(load.get("latency_ms", DEFAULT_LATENCY_MS)) * 1e6)
    if generates:
        s.use_token_latencies = True
        s.ttft_latency = int(float(load.get("ttft_ms", DEFAULT_TTFT_MS)) * 1e6)
        s.tpot_latency = int(float(load.get("tpot_ms", DEFAULT_TPOT_MS)) * 1e6)
    return s


# ---------------------------------------------------------------------------------------------------------
# The system under test


@dataclass
class ServeStats:
    """What the SUT did: batches run, samples padded to a fixed batch, the largest batch, any error, and how long
    its batches took to run (start to completion, device synchronised): the service time under load, to set
    beside the warm-up's latency of the same call alone (a gap is interference from the load generator)."""

    batches: int = 0
    samples: int = 0
    padded_samples: int = 0
    largest_batch: int = 0
    error: str | None = None
    service_ns: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        service = sorted(self.service_ns)
        return {
            "batches": self.batches,
            "samples": self.samples,
            "padded_samples": self.padded_samples,
            "largest_batch": self.largest_batch,
            "error": self.error,
            "service_p50_ns": int(median(service)) if service else None,
            "service_max_ns": service[-1] if service else None,
        }


class SystemUnderTest:
    """Answers LoadGen's queries with `prepared` from one serving thread (see the module docstring).

    The thread lives for the whole cell: the warm-up runs on it too (`on_thread`), so the warm-up latency and the
    service time under load come from the same thread (a call's cost depends on the thread that makes it: its
    OpenMP team is per thread). `begin_run(accuracy_view)` starts each LoadGen run with fresh statistics;
    `accuracy_view(output)` turns a batch's output into the per-sample float32 rows to return in AccuracyOnly
    mode; None = performance mode (a 4-byte response, not logged by LoadGen)."""

    def __init__(
        self,
        lg,
        prepared: PreparedCall,
        synchronize: Callable[[], None],
        context: Callable[[], Any],
        max_batch: int,
        new_tokens: int | None,
    ) -> None:
        self.lg, self.prepared, self.synchronize, self.context = lg, prepared, synchronize, context
        self.max_batch, self.new_tokens = max_batch, new_tokens
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.stats = ServeStats()
        self.accuracy_view: Callable[[Any], Any] | None = None
        self.sample_shape: tuple[int, ...] | None = None  # accuracy mode: the shape of one sample's output
        self._calls: dict[tuple[int, ...], PreparedCall] = {}
        self._token = array.array("i", [0])  # the performance-mode response: 4 bytes LoadGen does not keep
        self._thread = threading.Thread(target=self._serve, name="loadgen-sut", daemon=True)

    # LoadGen's callbacks (called from LoadGen's threads): hand the work over and return at once
    def issue(self, samples) -> None:
        self.queue.put(list(samples))

    def flush(self) -> None:
        pass

    def __enter__(self) -> "SystemUnderTest":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.queue.put(None)
        self._thread.join()

    def begin_run(self, accuracy_view: Callable[[Any], Any] | None = None) -> None:
        self.stats, self.accuracy_view, self.sample_shape = ServeStats(), accuracy_view, None

    def on_thread(self, work: Callable[[], Any]) -> Any:
        """Run `work()` on the serving thread (between LoadGen runs) and return its result; the caller blocks."""
        done, box = threading.Event(), {}

        def job() -> None:
            try:
                box["value"] = work()
            except BaseException as exc:  # re-raised in the caller
                box["error"] = exc
            done.set()

        self.queue.put(job)
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _serve(self) -> None:
        with self.context():
            while True:
                pending = self.queue.get()
                if pending is None:
                    return
                if callable(pending):
                    pending()
                    continue
                while len(pending) < self.max_batch:  # batch what else has arrived (server)
                    try:
                        more = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None or callable(more):
                        self.queue.put(more)
                        break
                    pending += more
                for start in range(0, len(pending), self.max_batch):
                    self._run_batch(pending[start : start + self.max_batch])

    def _call_for(self, rows: tuple[int, ...]) -> tuple[PreparedCall, bool]:
        """The call that runs these rows, and whether it runs rows that were not asked for (a padded batch)."""
        prepared = self.prepared
        if rows == tuple(range(prepared.items_per_call)) or prepared.take is None:
            return prepared, len(rows) < prepared.items_per_call
        if rows not in self._calls:
            if len(self._calls) >= 256:
                self._calls.clear()
            self._calls[rows] = prepared.take(rows)
        return self._calls[rows], False

    def _run_batch(self, batch: list) -> None:
        rows = tuple(sample.index for sample in batch)
        call, padded = self._call_for(rows)
        self.stats.batches += 1
        self.stats.samples += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        if padded:
            self.stats.padded_samples += call.items_per_call - len(batch)
        began = time.perf_counter_ns()
        try:
            if self.accuracy_view is not None:
                self._answer_with_outputs(batch, call, rows, padded)
            else:
                self._answer_after_call(batch, call)
                self.stats.service_ns.append(time.perf_counter_ns() - began)
        except Exception as exc:  # never leave LoadGen waiting: complete the samples, report the error afterwards
            if self.stats.error is None:
                self.stats.error = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            ptr, _ = self._token.buffer_info()
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(s.id, ptr, 0) for s in batch])

    def _answer_after_call(self, batch: list, call: PreparedCall) -> None:
        lg, ptr = self.lg, self._token.buffer_info()[0]
        first_token_sent = False

        def stamp() -> int:  # the generation loop stamps after each token step, the device synchronised
            nonlocal first_token_sent
            self.synchronize()
            if not first_token_sent:
                first_token_sent = True
                lg.FirstTokenComplete([lg.QuerySampleResponse(s.id, ptr, 4, 1) for s in batch])
            return time.perf_counter_ns()

        call.call(stamp)
        self.synchronize()
        if self.new_tokens:
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, ptr, 4, self.new_tokens) for s in batch])
        else:
            lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, ptr, 4) for s in batch])

    def _answer_with_outputs(self, batch: list, call: PreparedCall, rows: tuple[int, ...], padded: bool) -> None:
        import numpy as np

        output = self.accuracy_view(call.output())
        if call is self.prepared and (padded or rows != tuple(range(call.items_per_call))):
            output = output[list(rows)]  # a fixed-batch runtime ran every row; answer with the asked ones
        self.sample_shape = tuple(output.shape[1:])
        keep = [np.ascontiguousarray(output[i].detach().float().cpu().numpy()) for i in range(len(batch))]
        responses = [self.lg.QuerySampleResponse(s.id, a.ctypes.data, a.nbytes) for s, a in zip(batch, keep)]
        self.lg.QuerySamplesComplete(responses)
        del keep  # the buffers had to live until QuerySamplesComplete returned


# ---------------------------------------------------------------------------------------------------------
# Running LoadGen and reading its logs


def _start_test(lg, sut: SystemUnderTest, sample_count: int, test: Any, log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = lg.LogSettings()
    log.log_output.outdir = str(log_dir)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    handle = lg.ConstructSUT(sut.issue, sut.flush)
    # the samples are already on the device: loading and unloading them moves nothing
    qsl = lg.ConstructQSL(sample_count, sample_count, lambda indices: None, lambda indices: None)
    try:
        lg.StartTestWithLogSettings(handle, qsl, test, log)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(handle)
    if sut.stats.error:
        raise RuntimeError(f"the system under test failed while serving LoadGen: {sut.stats.error}")


def warm_up(prepared: PreparedCall, synchronize: Callable[[], None], settings: MeasureSettings) -> dict[str, Any]:
    """Full-batch calls for at least warmup_iterations and warmup_time_s (capped by warmup_max_time_s); the
    median of the second half's latencies is the expected latency LoadGen plans with."""
    from bench.core.calls import make_stamp

    stamp = make_stamp(synchronize)
    durations: list[int] = []
    began = stamp()
    need_ns, cap_ns = settings.warmup_time_s * 1e9, settings.warmup_max_time_s * 1e9
    while (
        len(durations) < max(settings.warmup_iterations, 2) or stamp() - began < need_ns
    ) and stamp() - began < cap_ns:
        t0 = stamp()
        prepared.call(stamp)
        durations.append(stamp() - t0)
    settled = durations[len(durations) // 2 :]
    return {
        "calls": len(durations),
        "median_latency_ns": int(median(settled)),
        "time_s": round((stamp() - began) / 1e9, 3),
    }


@dataclass
class LoadGenRun:
    """What `run_loadgen_cell` returns to the worker: the record's `loadgen` section and the accuracy output."""

    section: dict[str, Any]
    accuracy_output: Any = None


def _perf_run(lg, sut, spec, settings, new_tokens, expected_ns, log_dir, target_qps=None):
    sut.begin_run()
    test = loadgen_test_settings(lg, spec, settings.loadgen, expected_ns, bool(new_tokens), False, target_qps)
    _start_test(lg, sut, sut.prepared.items_per_call, test, log_dir)
    run = summarize_run(parse_detail_log(log_dir / "mlperf_log_detail.txt"))
    run["sut"] = sut.stats.to_dict()
    return run


def _server_search(lg, sut, spec, settings, new_tokens, expected_ns, logs: Path, rel: str):
    """Bisection for the highest VALID server rate (see the module docstring); returns (chosen run, trail)."""
    capacity = spec.batch_size / (expected_ns / 1e9)
    _, min_queries, max_duration_s = settings.loadgen.run_length(spec.scenario)
    low, high, rate = 0.0, None, capacity
    trail: list[dict[str, Any]] = []
    best, lowest = None, None
    for step in range(1 + settings.loadgen.search_steps):
        run = _perf_run(lg, sut, spec, settings, new_tokens, expected_ns, logs / f"search-{step}", target_qps=rate)
        run["logs"] = f"{rel}/search-{step}"
        valid = run["validity"] == "VALID"
        trail.append(
            {
                "target_qps": round(rate, 4),
                "validity": run["validity"],
                "logs": run["logs"],
                "invalid_reasons": run["invalid_reasons"],
            }
        )
        if valid:
            low, best = rate, run
        else:
            high = rate
            lowest = run if lowest is None or rate < lowest["settings"].get("target_qps", rate) else lowest
        if high is None:
            rate = rate * 2
        elif high - low <= SEARCH_RESOLUTION * high:
            break
        else:
            rate = (low + high) / 2 if low else high / 2
        if max_duration_s and min_queries / rate > max_duration_s:
            trail.append(
                {
                    "target_qps": round(rate, 4),
                    "validity": None,
                    "logs": None,
                    "invalid_reasons": [
                        f"not run: {min_queries} queries at this rate need {min_queries / rate:.0f} s, more than "
                        f"max_duration_s ({max_duration_s:g} s)"
                    ],
                }
            )
            break
    return best or lowest, trail


def run_loadgen_cell(
    spec: BenchmarkSpec,
    settings: MeasureSettings,
    workload,
    backend,
    prepared: PreparedCall,
    artifacts: Path,
    check_accuracy: bool,
) -> LoadGenRun:
    """Warm up, run the spec's scenario under LoadGen (a search for server target_qps="max"), then, with
    `check_accuracy`, an AccuracyOnly run. Logs go under artifacts/ (kept beside the run's records)."""
    import mlperf_loadgen as lg

    rel = f"artifacts/{spec.key}"
    new_tokens = (spec.new_tokens or workload.default_new_tokens or 1) if workload.generates else None
    with SystemUnderTest(
        lg, prepared, backend.synchronize, backend.execution_context, spec.batch_size, new_tokens
    ) as sut:
        warm = sut.on_thread(lambda: warm_up(prepared, backend.synchronize, settings))
        given = settings.loadgen.expected_latency_ms
        expected_ns = given * 1e6 if given else warm["median_latency_ns"]
        if dict(spec.load).get("target_qps") == SEARCH_QPS:
            run, trail = _server_search(lg, sut, spec, settings, new_tokens, expected_ns, artifacts, rel)
        else:
            run = _perf_run(lg, sut, spec, settings, new_tokens, expected_ns, artifacts / "performance")
            run["logs"] = f"{rel}/performance"
            trail = None
        accuracy_output = (
            _accuracy_run(lg, sut, spec, settings, workload, expected_ns, artifacts / "accuracy")
            if check_accuracy
            else None
        )
    section = {
        "scenario": spec.scenario,
        "mode": "PerformanceOnly",
        **run,
        "expected_latency_ns": int(expected_ns),
        "expected_latency_from": "--lg-expected-latency" if given else "warm-up median",
        "warmup": warm,
        "token_latencies": bool(new_tokens),
        "new_tokens": new_tokens,
        "max_batch": spec.batch_size,
        "qsl_samples": prepared.items_per_call,
        "official_rules": settings.loadgen.official,
    }
    if trail is not None:
        section["search"] = trail
    if check_accuracy:
        section["accuracy_log"] = f"{rel}/accuracy/mlperf_log_accuracy.json"
    return LoadGenRun(section=section, accuracy_output=accuracy_output)


def accuracy_view(workload) -> Callable[[Any], Any]:
    """The per-sample output compared in accuracy mode: language models' last-position logits, else the output."""
    if workload.generates:
        return lambda output: output[:, -1, :]
    return lambda output: output


def _accuracy_run(lg, sut, spec, settings, workload, expected_ns, log_dir: Path):
    sut.begin_run(accuracy_view(workload))
    count = sut.prepared.items_per_call
    load = (
        spec.load
        if spec.scenario != "server" or dict(spec.load).get("target_qps") != SEARCH_QPS
        else tuple((k, v if k != "target_qps" else 1.0) for k, v in spec.load)
    )
    test = loadgen_test_settings(lg, replace(spec, load=load), settings.loadgen, expected_ns, False, True)
    _start_test(lg, sut, count, test, log_dir)
    flat = read_accuracy_log(log_dir / "mlperf_log_accuracy.json", count)
    return flat.reshape(count, *(sut.sample_shape or ()))
