"""Rendering records: plain functions from records to text. No statistics are computed here beyond unit
conversion; everything comes from `Record.latency()`, `Record.throughput()` and `Record.generation()`.

Columns (times in milliseconds):
  p50 [95% CI]   median latency per call and its distribution-free 95% interval (blank when n < 6)
  p90, p99       nearest-rank percentiles of per-call latency
  items/s        batch x iterations / timed-loop wall time
  TTFT, TPOT     generation only: medians of time to first token and time per output token
  tok/s          generation only: output tokens / timed-loop wall time
  GFLOP/s        counted FLOPs per call / median latency
  top-1 / cos    accuracy guard against the fp32 CPU reference: top-1 agreement of logits (- for encoders) and
                 cosine similarity of the outputs; blank for the reference itself
  peak RSS       peak resident memory of the worker process (build included), MiB
  scenario       a LoadGen scenario (blank: the latency loop); for those cells every figure is LoadGen's own:
                 p50/p90/p99 of its per-sample (per-query for multi-stream) latencies, items/s its samples per
                 second (with LoadGen's overhead), TTFT/TPOT its token latencies, and "LoadGen result" its
                 VALID/INVALID verdict, why, and the scenario's metric
A simulated record is marked "(simulated)" in every format; a loop that stopped before its precision target
"(not converged)"; a run whose first and last thirds differ "(drift)".
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

from bench.record import Record

__all__ = ["summary_row", "render", "FORMATS"]

FORMATS = ("table", "csv", "json", "md")

_MS = 1e6
_MIB = 1024 * 1024


def _ms(value: float | None) -> float | None:
    return None if value is None else value / _MS


def summary_row(record: Record) -> dict[str, Any]:
    """One flat row of derived figures for a record (units in the key names)."""
    spec = record.spec
    row: dict[str, Any] = {
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
    latency = record.latency()
    if latency:
        row.update({
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
        })
        row.update(_extra_intervals(record, latency))
    if record.simulation:
        row.update(_simulated_fields(record))
    if record.loadgen:
        row.update(_loadgen_fields(record))
    generation = record.generation()
    if generation:
        row.update({
            "ttft_p50_ms": _ms(generation.ttft.p50),
            "ttft_p90_ms": _ms(generation.ttft.p90),
            "tpot_p50_ms": _ms(generation.tpot.p50) if generation.tpot else None,
            "itl_p50_ms": _ms(generation.itl.p50) if generation.itl else None,
            "itl_p99_ms": _ms(generation.itl.p99) if generation.itl else None,
            "output_tokens_per_s": generation.output_tokens_per_s,
        })
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


#: Each LoadGen scenario's headline metric: (name, results key, unit).
_LOADGEN_METRIC = {
    "single-stream": ("p90 latency", "90.00_percentile_latency_ns", "ns"),
    "multi-stream": ("p99 latency per query", "99.00_percentile_latency_ns", "ns"),
    "server": ("completed samples/s", "completed_samples_per_sec", "1/s"),
    "offline": ("samples/s", "samples_per_second", "1/s"),
}


def _loadgen_fields(record: Record) -> dict[str, Any]:
    """A LoadGen record's figures, every one LoadGen's own (from its detail log), units in the key names."""
    section = record.loadgen
    results = section.get("results") or {}
    scenario = section["scenario"]
    samples_per_query = (section.get("settings") or {}).get("samples_per_query") or 1
    rate = {"single-stream": results.get("qps_with_loadgen_overhead"),
            "multi-stream": results.get("qps_with_loadgen_overhead"),
            "server": results.get("completed_samples_per_sec"),
            "offline": results.get("samples_per_second")}[scenario]
    if rate is not None and scenario in ("single-stream", "multi-stream"):
        rate *= samples_per_query
    name, key, unit = _LOADGEN_METRIC[scenario]
    estimates = (section.get("early_stopping_estimates_ns") or {}).get("latency") or {}
    row: dict[str, Any] = {
        "loadgen_validity": section.get("validity"),
        "loadgen_invalid_reasons": "; ".join(section.get("invalid_reasons") or []) or None,
        "loadgen_metric": name,
        "loadgen_metric_value": results.get(key) / _MS if unit == "ns" and results.get(key) is not None
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
        row.update({
            "ttft_p50_ms": _ms(results.get("first_token_50.00_percentile_latency_ns")),
            "ttft_p99_ms": _ms(results.get("first_token_99.00_percentile_latency_ns")),
            "tpot_p50_ms": _ms(results.get("time_per_output_token_50.00_percentile_ns")),
            "tpot_p99_ms": _ms(results.get("time_per_output_token_99.00_percentile_ns")),
            "output_tokens_per_s": results.get("completed_tokens_per_second") or results.get("tokens_per_second"),
        })
    return row


def _loadgen_cell(row: dict[str, Any]) -> str:
    if not row.get("loadgen_validity"):
        return ""
    value = row.get("loadgen_metric_value")
    unit = " ms" if row["loadgen_metric_unit"] == "ms" else ""
    metric = f"{row['loadgen_metric']} {_fmt(value)}{unit}"
    if row.get("loadgen_target_qps") is not None:
        metric += f" at {_fmt(float(row['loadgen_target_qps']))} qps"
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
        row.update({
            "projection": "serving", "chips": serving.get("chips"),
            "parallelism": ",".join(f"{k}={v}" for k, v in parallel.items()) or None,
            "batch_per_chip": serving.get("batch_per_chip"),
            "prefill_tokens_per_s_per_chip": serving.get("prefill_tokens_per_s_per_chip"),
            "output_tokens_per_s_low": est.get("output_tokens_per_s_low"),
            "output_tokens_per_s_high": est.get("output_tokens_per_s_high"),
        })
    return row


def _extra_intervals(record: Record, latency) -> dict[str, Any]:
    """p90/p99 intervals, MLPerf early-stopping bounds, the throughput interval and drift, for the flat row."""
    from bench.stats import early_stopping_upper_bound

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


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if magnitude < 1 else f"{value:.{max(1, digits - len(str(int(magnitude))))}f}"
    return str(value)


def _status(row: dict[str, Any]) -> str:
    flags = [flag for flag, on in (("simulated", row["simulated"]), ("not converged", row.get("converged") is False),
                                   ("drift", row.get("drifted")), ("contended", row.get("contended"))) if on]
    return row["status"] + (f" ({', '.join(flags)})" if flags else "")


_TABLE_COLUMNS: list[tuple[str, Any]] = [
    ("model", lambda r: r["model"]),
    ("backend", lambda r: r["backend"]),
    ("prec", lambda r: r["precision"]),
    ("batch", lambda r: r["batch_size"]),
    ("seq", lambda r: r["seq_len"] or ""),
    ("new", lambda r: r["new_tokens"] or ""),
    ("opts", lambda r: r["options"]),
    ("scenario", lambda r: "" if r.get("scenario", "latency") == "latency" else
     r["scenario"] + (f" {r['load']}" if r.get("load") else "")),
    ("status", _status),
    ("LoadGen result", _loadgen_cell),
    ("n", lambda r: r.get("iterations", "")),
    ("p50 ms [95% CI]", lambda r: median_with_ci(r)),
    ("p90 ms", lambda r: _fmt(r.get("p90_ms"))),
    ("p99 ms", lambda r: _fmt(r.get("p99_ms"))),
    ("items/s", lambda r: _fmt(r.get("items_per_s"))),
    ("TTFT ms", lambda r: _fmt(r.get("ttft_p50_ms"))),
    ("TPOT ms", lambda r: _fmt(r.get("tpot_p50_ms"))),
    ("tok/s", lambda r: _fmt(r.get("output_tokens_per_s"))),
    ("GFLOP/s", lambda r: _fmt(r.get("achieved_gflops_per_s"))),
    ("sim host err", lambda r: f"{r['host_validation_error']:+.0%}" if r.get("host_validation_error") is not None
     else ""),
    ("top-1 / cos vs fp32", lambda r: _accuracy_cell(r)),
    ("peak RSS MiB", lambda r: _fmt(r.get("peak_rss_mib"), 4)),
]


def _accuracy_cell(row: dict[str, Any]) -> str:
    if row.get("cosine_similarity") is None:
        return ""
    top1 = f"{row['top1_agreement']:.3f}" if row.get("top1_agreement") is not None else "-"
    return f"{top1} / {row['cosine_similarity']:.5f}"


def median_with_ci(row: dict[str, Any]) -> str:
    """A cell's latency as every table shows it: `p50 [CI]` measured, `~estimate band [low, high]` simulated."""
    if row.get("estimate_ms") is not None:  # simulated: an estimate and its band, never a CI
        low, high = row.get("estimate_low_ms"), row.get("estimate_high_ms")
        band = (f" band [{_fmt(low) if low is not None else '-'}, {_fmt(high) if high is not None else '-'}]"
                if low is not None or high is not None else " (no band)")
        return f"~{_fmt(row['estimate_ms'])}{band}"
    if row.get("p50_ms") is None:
        return ""
    text = _fmt(row["p50_ms"])
    if row.get("p50_ci_low_ms") is not None:
        text += f" [{_fmt(row['p50_ci_low_ms'])}, {_fmt(row['p50_ci_high_ms'])}]"
    return text


def _cells(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    used = [(name, get) for name, get in _TABLE_COLUMNS if any(str(get(r)) != "" for r in rows) or name == "model"]
    return [name for name, _ in used], [[str(get(r)) for _, get in used] for r in rows]


def _reasons(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [f"{r['model']} {r['backend']} {r['precision']} b={r['batch_size']}"
            + (f" s={r['seq_len']}" if r["seq_len"] else "") + f": {r['status']}: {r['reason']}"
            for r in rows if r["status"] != "ok"]


def render_table(rows: Sequence[dict[str, Any]]) -> str:
    headers, body = _cells(rows)
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in body]
    reasons = _reasons(rows)
    if reasons:
        lines += ["", "Not ok:"] + [f"  {r}" for r in reasons]
    return "\n".join(lines) + "\n"


def render_markdown(rows: Sequence[dict[str, Any]]) -> str:
    headers, body = _cells(rows)
    escape = lambda text: text.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in line) + " |" for line in body]
    reasons = _reasons(rows)
    if reasons:
        lines += ["", "**Not ok:**", ""] + [f"- {escape(r)}" for r in reasons]
    return "\n".join(lines) + "\n"


def render_csv(rows: Sequence[dict[str, Any]]) -> str:
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def render_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2) + "\n"


_RENDERERS = {"table": render_table, "csv": render_csv, "json": render_json, "md": render_markdown}


def render(records: Sequence[Record], fmt: str = "table") -> str:
    """Records in one of FORMATS."""
    return _RENDERERS[fmt]([summary_row(r) for r in records])


# ---------------------------------------------------------------------------------------------------------
# comparisons (bench compare)

_VERDICT_MARK = {"regression": "REGRESSION", "improvement": "improvement", "no change": "no change",
                 "inconclusive": "inconclusive"}


def _comparison_rows(comparison) -> list[list[str]]:
    rows = []
    for cell in comparison.cells:
        rows.append([
            cell.spec.label, f"{cell.baseline_median_ns / _MS:.4g}", f"{cell.current_median_ns / _MS:.4g}",
            f"{cell.ratio:.3f} [{cell.ratio_ci[0]:.3f}, {cell.ratio_ci[1]:.3f}]", f"{cell.p_holm:.2g}",
            f"{cell.threshold:.0%}", f"{cell.baseline_n}/{cell.current_n}", _VERDICT_MARK[cell.verdict],
        ])
    return rows


_COMPARISON_HEADERS = ["cell", "baseline p50 ms", "current p50 ms", "ratio [95% CI]", "p (Holm)", "min effect",
                       "n base/cur", "verdict"]


def _comparison_footer(comparison) -> list[str]:
    lines = [f"{len(comparison.regressions)} regression(s) in {len(comparison.cells)} compared cell(s); "
             f"alpha {comparison.alpha}, minimum effect {comparison.min_effect:.0%} (or 3x a cell's noise floor)"]
    if comparison.environment_differences:
        lines.append("environments differ in: " + ", ".join(comparison.environment_differences)
                     + " (compared because --allow-env-mismatch was given)")
    lines += [f"not compared: {spec.label}: {reason}" for spec, reason in comparison.not_compared]
    return lines


def render_comparison(comparison, fmt: str = "table") -> str:
    """A Comparison as a terminal table, Markdown (for a CI job summary) or JSON."""
    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2) + "\n"
    rows = _comparison_rows(comparison)
    if fmt == "md":
        lines = ["| " + " | ".join(_COMPARISON_HEADERS) + " |", "|" + "|".join("---" for _ in _COMPARISON_HEADERS) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines + [""] + [f"- {line}" for line in _comparison_footer(comparison)]) + "\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(_COMPARISON_HEADERS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_COMPARISON_HEADERS, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines + [""] + _comparison_footer(comparison)) + "\n"
