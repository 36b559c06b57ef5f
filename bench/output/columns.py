"""The one column registry: a record as one flat row of derived figures (`summary_row`: what CSV, JSON, JSON
Lines, SQL, `bench.load` and the report read), and the terminal/Markdown table's columns over those rows
(`TABLE_COLUMNS`), each formatted with `bench.output.format.number`. Definitions: docs/METRICS.md.
"""

from __future__ import annotations

from typing import Any, Sequence

from bench.core.record import Record
from bench.core.scenarios import LOADGEN_SCENARIOS
from bench.core.stats import nearest_rank
from bench.output.format import accuracy_cell, number

__all__ = ["summary_row", "TABLE_COLUMNS", "median_with_ci", "DEFAULT_PERCENTILES", "IMPRECISE_HALFWIDTH"]

_MS = 1e6
_MIB = 1024 * 1024


def _ms(value: float | None) -> float | None:
    return None if value is None else value / _MS


#: Percentiles of TTFT, TPOT, ITL and end-to-end latency shown for serving-engine cells (`--percentiles`).
DEFAULT_PERCENTILES = (50.0, 90.0, 99.0)


def summary_row(record: Record, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, Any]:
    """One flat row of derived figures for a record (units in the key names): the cell, then each section's
    figures where the record has that section."""
    row = _cell_fields(record)
    latency = record.latency()
    if latency:
        row.update(_latency_fields(record, latency))
        row.update(_extra_intervals(record, latency))
    if record.simulation:
        row.update(_simulated_fields(record))
    if record.loadgen:
        row.update(_loadgen_fields(record))
    generation = record.generation()
    if generation:
        row.update(_generation_fields(generation))
    if record.serving:
        row.update(_serving_fields(record, percentiles))
    row.update(_work_and_accuracy_fields(record))
    row.update(_device_fields(record))
    return row


def _cell_fields(record: Record) -> dict[str, Any]:
    spec = record.spec
    return {
        "model": spec.workload,
        "backend": spec.backend,
        "precision": spec.precision,
        "batch_size": spec.batch_size,
        "seq_len": spec.seq_len,
        "new_tokens": spec.new_tokens,
        "options": ";".join(f"{k}={v}" for k, v in spec.options),
        "weights": record.model.get("weights"),
        "status": record.status,
        "simulated": record.simulated,
        "reason": record.reason,
        "spec_key": spec.key,
        "scenario": spec.scenario,
        "load": ";".join(f"{k}={v}" for k, v in spec.load),
    }


def _latency_fields(record: Record, latency) -> dict[str, Any]:
    return {
        "iterations": latency.n,
        "p50_ms": _ms(latency.p50),
        "p50_ci_low_ms": _ms(latency.p50_ci[0]) if latency.p50_ci else None,
        "p50_ci_high_ms": _ms(latency.p50_ci[1]) if latency.p50_ci else None,
        "p90_ms": _ms(latency.p90),
        "p95_ms": _ms(latency.p95),
        "p99_ms": _ms(latency.p99),
        "mean_ms": _ms(latency.mean),
        "std_ms": _ms(latency.std),
        "min_ms": _ms(latency.min),
        "max_ms": _ms(latency.max),
        "items_per_s": record.throughput(),
        "stopped_by": record.measurement.stopped_by,
        "converged": record.converged(),
        "p50_ci_halfwidth_rel": latency.p50_ci_halfwidth_rel,
        "warmup_stable": record.measurement.warmup_stable,
        "contended": record.contended(),
        "others_cores": ((record.measurement.host_load or {}).get("others_cores")),
    }


def _generation_fields(generation) -> dict[str, Any]:
    return {
        "ttft_p50_ms": _ms(generation.ttft.p50),
        "ttft_p90_ms": _ms(generation.ttft.p90),
        "tpot_p50_ms": _ms(generation.tpot.p50) if generation.tpot else None,
        "itl_p50_ms": _ms(generation.itl.p50) if generation.itl else None,
        "itl_p99_ms": _ms(generation.itl.p99) if generation.itl else None,
        "output_tokens_per_s": generation.output_tokens_per_s,
    }


def _work_and_accuracy_fields(record: Record) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if record.work:
        row["gflops_per_call"] = (record.flops_per_call() or 0) / 1e9 or None
        row["achieved_gflops_per_s"] = (record.achieved_flops_per_s() or 0) / 1e9 or None
        row["min_gb_per_s"] = (record.achieved_bytes_per_s() or 0) / 1e9 or None
    if record.accuracy and "skipped" not in record.accuracy:
        row["max_abs_error"] = record.accuracy["max_abs_error"]
        row["cosine_similarity"] = record.accuracy["cosine_similarity"]
        row["top1_agreement"] = record.accuracy["top1_agreement"]
    elif record.accuracy:
        row["accuracy_skipped"] = record.accuracy["skipped"]
    return row


def _device_fields(record: Record) -> dict[str, Any]:
    """Memory, device timing, telemetry (energy, power, throttling) and the technique's description."""
    row: dict[str, Any] = {}
    if record.memory.get("peak_rss_bytes") is not None:
        row["peak_rss_mib"] = record.memory["peak_rss_bytes"] / _MIB
    device = record.device_latency()
    if device:
        row["device_p50_ms"] = _ms(device.p50)
    if record.measurement and record.measurement.telemetry:
        telemetry = record.measurement.telemetry
        row["energy_per_item_j"] = record.energy_per_item_j()
        row["energy_per_token_j"] = record.energy_per_token_j()
        row["power_mean_w"] = (telemetry.get("power_w") or {}).get("mean")
        row["throttle_reasons"] = ",".join(telemetry.get("throttle_reasons") or []) or None
    row["technique"] = record.model.get("technique")
    if record.memory.get("device_peak_allocated_bytes") is not None:
        row["device_peak_mib"] = record.memory["device_peak_allocated_bytes"] / _MIB
    return row


def _percentile_key(q: float) -> str:
    return f"p{q:g}".replace(".", "_")


def _serving_fields(record: Record, percentiles: Sequence[float]) -> dict[str, Any]:
    """A serving engine measured over its API: vLLM's metrics at the chosen percentiles, failures, goodput and
    what served it. Goodput: requests per second that met every given SLO (TTFT, TPOT, end-to-end)."""
    section, m = record.serving, record.measurement
    server = section.get("server") or {}
    engine = server.get("engine_identity") or server.get("engine") or {}
    row: dict[str, Any] = {
        "requests_ok": section.get("requests_ok"),
        "requests_failed": section.get("requests_failed"),
        "requests_retried": section.get("requests_retried"),
        "request_throughput": record.throughput(),
        "served_model": server.get("model"),
        "engine": " ".join(str(engine.get(k)) for k in ("name", "version") if engine.get(k))
        or server.get("server_header"),
        "concurrency": (section.get("load") or {}).get("concurrency"),
        "request_rate": (section.get("load") or {}).get("request_rate"),
    }
    if not m or not m.token_marks_ns:
        return row
    counts = m.tokens_per_sample or [len(marks) for marks in m.token_marks_ns]
    series = {
        "e2e": list(m.samples_ns),
        "ttft": [marks[0] for marks in m.token_marks_ns],
        "tpot": [(e2e - marks[0]) / (n - 1) for e2e, marks, n in zip(m.samples_ns, m.token_marks_ns, counts) if n > 1],
        "itl": [b - a for marks in m.token_marks_ns for a, b in zip(marks, marks[1:])],
    }
    for name, values in series.items():
        ordered = sorted(values)
        for q in percentiles:
            row[f"{name}_{_percentile_key(q)}_ms"] = _ms(nearest_rank(ordered, q / 100)) if ordered else None
    slo = section.get("slo_ms") or {}
    if slo and m.loop_wall_ns:
        good = sum(
            1
            for e2e, marks, n in zip(m.samples_ns, m.token_marks_ns, counts)
            if (not slo.get("ttft") or marks[0] / 1e6 <= slo["ttft"])
            and (not slo.get("e2e") or e2e / 1e6 <= slo["e2e"])
            and (not slo.get("tpot") or n <= 1 or (e2e - marks[0]) / (n - 1) / 1e6 <= slo["tpot"])
        )
        row["goodput_req_per_s"] = good / (m.loop_wall_ns / 1e9)
        row["goodput_fraction"] = good / len(m.samples_ns)
    return row


def _loadgen_fields(record: Record) -> dict[str, Any]:
    """A LoadGen record's figures, every one LoadGen's own (from its detail log), units in the key names."""
    section = record.loadgen
    results = section.get("results") or {}
    scenario = section["scenario"]
    samples_per_query = (section.get("settings") or {}).get("samples_per_query") or 1
    info = LOADGEN_SCENARIOS[scenario]
    rate = results.get(info.rate_key)
    if rate is not None and info.rate_per_query:
        rate *= samples_per_query
    name, key, unit = info.headline
    estimates = (section.get("early_stopping_estimates_ns") or {}).get("latency") or {}
    row: dict[str, Any] = {
        "loadgen_validity": section.get("validity"),
        "loadgen_invalid_reasons": "; ".join(section.get("invalid_reasons") or []) or None,
        "loadgen_metric": name,
        "loadgen_metric_value": results.get(key) / _MS
        if unit == "ns" and results.get(key) is not None
        else results.get(key),
        "loadgen_metric_unit": "ms" if unit == "ns" else unit,
        "loadgen_target_qps": (section.get("settings") or {}).get("target_qps") if scenario == "server" else None,
        "loadgen_queries": results.get("query_count"),
        "p50_ms": _ms(results.get("50.00_percentile_latency_ns")),
        "p90_ms": _ms(results.get("90.00_percentile_latency_ns")),
        "p99_ms": _ms(results.get("99.00_percentile_latency_ns")),
        "mean_ms": _ms(results.get("mean_latency_ns")),
        "p90_early_stopping_ms": _ms(estimates.get("p90")),
        "p99_early_stopping_ms": _ms(estimates.get("p99")),
        "items_per_s": rate,
        "qps_without_loadgen_overhead": results.get("qps_without_loadgen_overhead"),
        "warmup_p50_ms": _ms((section.get("warmup") or {}).get("median_latency_ns")),
        "service_p50_ms": _ms((section.get("sut") or {}).get("service_p50_ns")),
    }
    if section.get("token_latencies"):
        row.update(
            {
                "ttft_p50_ms": _ms(results.get("first_token_50.00_percentile_latency_ns")),
                "ttft_p99_ms": _ms(results.get("first_token_99.00_percentile_latency_ns")),
                "tpot_p50_ms": _ms(results.get("time_per_output_token_50.00_percentile_ns")),
                "tpot_p99_ms": _ms(results.get("time_per_output_token_99.00_percentile_ns")),
                "output_tokens_per_s": results.get("completed_tokens_per_second") or results.get("tokens_per_second"),
            }
        )
    return row


def _loadgen_cell(row: dict[str, Any]) -> str:
    if not row.get("loadgen_validity"):
        return ""
    value = row.get("loadgen_metric_value")
    unit = " ms" if row["loadgen_metric_unit"] == "ms" else ""
    metric = f"{row['loadgen_metric']} {number(value)}{unit}"
    if row.get("loadgen_target_qps") is not None:
        metric += f" at {number(float(row['loadgen_target_qps']))} qps"
    reasons = f" ({row['loadgen_invalid_reasons']})" if row.get("loadgen_invalid_reasons") else ""
    return f"{row['loadgen_validity']}{reasons}: {metric}"


def _simulated_fields(record: Record) -> dict[str, Any]:
    """A simulated record's estimate (never called a measurement: *estimate*_ms, band, not a CI). Serving
    projections add their per-chip rates, chips and chosen parallelism."""
    sim = record.simulation
    est = sim.get("estimate") or {}
    band = est.get("band") or {}
    validation = sim.get("host_validation") or {}
    serving = sim.get("serving") or {}

    def ms_of(seconds: float | None) -> float | None:
        return _ms(seconds * 1e9) if seconds is not None else None

    row = {
        "profile": sim["profile"]["key"],
        "estimate_ms": ms_of(est.get("latency_s")),
        "estimate_low_ms": ms_of(band.get("low_s")),
        "estimate_high_ms": ms_of(band.get("high_s")),
        "items_per_s": est.get("items_per_s"),
        "ttft_p50_ms": ms_of(est.get("ttft_s")),
        "tpot_p50_ms": ms_of(est.get("tpot_s")),
        "output_tokens_per_s": est.get("output_tokens_per_s"),
        "host_validation_error": validation.get("error"),
        "host_measured_ms": ms_of(validation.get("measured_p50_s")),
        "host_predicted_ms": ms_of(validation.get("predicted_s")),
        "assumed_figures": ",".join(sim.get("assumed_figures") or []) or None,
        "cost_model_version": sim.get("cost_model_version"),
    }
    if serving:
        parallel = serving.get("parallelism") or {}
        row.update(
            {
                "projection": "serving",
                "chips": serving.get("chips"),
                "parallelism": ",".join(f"{k}={v}" for k, v in parallel.items()) or None,
                "batch_per_chip": serving.get("batch_per_chip"),
                "prefill_tokens_per_s_per_chip": serving.get("prefill_tokens_per_s_per_chip"),
                "output_tokens_per_s_low": est.get("output_tokens_per_s_low"),
                "output_tokens_per_s_high": est.get("output_tokens_per_s_high"),
            }
        )
    return row


def _extra_intervals(record: Record, latency) -> dict[str, Any]:
    """p90/p99 intervals, MLPerf early-stopping bounds, the throughput interval and drift, for the flat row."""
    from bench.core.stats import early_stopping_upper_bound

    ordered = sorted(record.measurement.samples_ns)
    extra: dict[str, Any] = {}
    for name, ci in (("p90", latency.p90_ci), ("p99", latency.p99_ci)):
        extra[f"{name}_ci_low_ms"], extra[f"{name}_ci_high_ms"] = (_ms(ci[0]), _ms(ci[1])) if ci else (None, None)
    for name, q in (("p90", 0.9), ("p99", 0.99)):
        bound = early_stopping_upper_bound(ordered, q)
        extra[f"{name}_early_stopping_ms"] = _ms(bound[0]) if bound else None
    interval = record.throughput_interval()
    extra["items_per_s_ci_low"], extra["items_per_s_ci_high"] = interval if interval else (None, None)
    drift = record.drift()
    extra["drift_ratio"] = drift["ratio"] if drift else None
    extra["drifted"] = drift["drifted"] if drift else None
    return extra


#: A measured cell whose median's 95% interval is wider than +-10% is flagged "imprecise": its p50 is a rough figure.
IMPRECISE_HALFWIDTH = 0.10


def _status(row: dict[str, Any]) -> str:
    flags = [
        flag
        for flag, on in (
            ("simulated", row["simulated"]),
            ("not converged", row.get("converged") is False),
            ("imprecise", (row.get("p50_ci_halfwidth_rel") or 0) > IMPRECISE_HALFWIDTH),
            ("drift", row.get("drifted")),
            ("contended", row.get("contended")),
        )
        if on
    ]
    return row["status"] + (f" ({', '.join(flags)})" if flags else "")


def batch_text(row: dict[str, Any]) -> str:
    """The batch a cell ran: the spec's, or for a simulated serving cell whose batch the serving model searched,
    "searched: N/chip" (the decode batch per chip it found; `-O fixed_batch=true` keeps --batch-size)."""
    if row.get("projection") == "serving" and "fixed_batch=True" not in (row.get("options") or ""):
        found = row.get("batch_per_chip")
        return f"searched: {number(found)}/chip" if found else "searched"
    return str(row["batch_size"])


TABLE_COLUMNS: list[tuple[str, Any]] = [
    ("model", lambda r: r["model"]),
    ("backend", lambda r: r["backend"]),
    ("prec", lambda r: r["precision"]),
    ("batch", batch_text),
    ("seq", lambda r: r["seq_len"] or ""),
    ("new", lambda r: r["new_tokens"] or ""),
    ("opts", lambda r: r["options"]),
    ("engine", lambda r: r.get("engine") or ""),  # a serving engine's name and version (shown where known)
    (
        "scenario",
        lambda r: (
            ""
            if r.get("scenario", "latency") == "latency"
            else r["scenario"] + (f" {r['load']}" if r.get("load") else "")
        ),
    ),
    ("status", _status),
    ("LoadGen result", _loadgen_cell),
    ("n", lambda r: r.get("iterations", "")),
    ("p50 ms [95% CI]", lambda r: median_with_ci(r)),
    ("p90 ms", lambda r: number(r.get("p90_ms"))),
    ("p99 ms", lambda r: number(r.get("p99_ms"))),
    ("items/s", lambda r: number(r.get("items_per_s"))),
    ("TTFT ms", lambda r: number(r.get("ttft_p50_ms"))),
    ("TPOT ms", lambda r: number(r.get("tpot_p50_ms"))),
    ("tok/s", lambda r: number(r.get("output_tokens_per_s"))),
    ("GFLOP/s", lambda r: number(r.get("achieved_gflops_per_s"))),
    (
        "sim host err",
        lambda r: f"{r['host_validation_error']:+.0%}" if r.get("host_validation_error") is not None else "",
    ),
    ("top-1 / cos vs fp32", lambda r: accuracy_cell(r)),
    ("peak RSS MiB", lambda r: number(r.get("peak_rss_mib"), 4)),
]


def median_with_ci(row: dict[str, Any]) -> str:
    """A cell's latency as every table shows it: `p50 [CI]` measured, `~estimate band [low, high]` simulated."""
    if row.get("estimate_ms") is not None:  # simulated: an estimate and its band, never a CI
        low, high = row.get("estimate_low_ms"), row.get("estimate_high_ms")
        band = (
            f" band [{number(low) if low is not None else '-'}, {number(high) if high is not None else '-'}]"
            if low is not None or high is not None
            else " (no band)"
        )
        return f"~{number(row['estimate_ms'])}{band}"
    if row.get("p50_ms") is None:
        return ""
    text = number(row["p50_ms"])
    if row.get("p50_ci_low_ms") is not None:
        text += f" [{number(row['p50_ci_low_ms'])}, {number(row['p50_ci_high_ms'])}]"
    return text
