"""`bench report`: the records of one or more runs as a report a person reads, and flat exports.

Building (`build_report`) is separate from rendering (`render_html`, `render_markdown`): the report is plain data
-- sections of tables (lists of rows) and figures (PNG bytes) -- and each renderer is a function of it.

Sections: environments; the catch-up estimate (bench/catchup.py) with its chart; results per workload; latency
distributions; throughput against batch size; roofline; cells that failed or were unavailable, with reasons.
Every figure comes from a record; simulated values are marked "(sim)" in tables and hatched in charts. The HTML
is one self-contained file (images as data: URIs, no scripts, styles inline, every string escaped); the
Markdown references its images in a folder beside it, so it renders on GitHub.
"""

from __future__ import annotations

from typing import Any, Sequence

from bench.analysis.catchup import CatchUp, Ratio, catch_up, deviation_of, metric_of, ratio, technique_of
from bench.core.record import Record
from bench.output.columns import batch_text, median_with_ci, summary_row
from bench.output.format import accuracy_cell, number
from bench.output.report_model import Report, Section, Table, draw
from bench.output.report_render import render_html, render_markdown

__all__ = ["Report", "build_report", "render_html", "render_markdown", "DEFAULT_FRONTIER", "DEFAULT_CONSTRAINED"]

_ = (render_html, render_markdown)  # re-exported: the report's renderers

DEFAULT_FRONTIER = "h100"
DEFAULT_CONSTRAINED = "ascend-910b2"

_COLORS = {"gap": "#9e9e9e", "technique": "#4c78a8", "best": "#f58518"}


def _ratio_text(r: Ratio | None) -> str:
    if r is None:
        return "n/a"
    interval = f" [{number(r.low)}, {number(r.high)}]" if r.low is not None and r.high is not None else " (no interval)"
    return f"{number(r.value)}{interval}"


def _shape_label(shape: tuple) -> str:
    """workload, batch, seq, new tokens, then the serving deployment (chips, TPOT and TTFT bounds) where set."""
    workload, batch, seq, new, *serving = shape
    chips, tpot, ttft = (list(serving) + [None, None, None])[:3]
    return (
        f"{workload} b={batch}"
        + (f" s={seq}" if seq else "")
        + (f" new={new}" if new else "")
        + (f" x{chips} chips" if chips else "")
        + (f" TPOT<={tpot:g}ms" if tpot else "")
        + (f" TTFT<={ttft:g}ms" if ttft else "")
    )


# ---------------------------------------------------------------------------------------------------------
# sections


def _environment_section(records: Sequence[Record]) -> Section:
    seen: dict[str, dict] = {}
    for r in records:
        env = r.environment or {}
        if env.get("fingerprint") and env["fingerprint"] not in seen:
            seen[env["fingerprint"]] = env
    rows = []
    for fingerprint, env in seen.items():
        cpu, device, libs = env.get("cpu", {}), env.get("device", {}), env.get("libraries", {})
        rows.append(
            [
                fingerprint[:12],
                str(device.get("type")),
                str(device.get("name")),
                str(cpu.get("model")),
                str(cpu.get("usable_cores")),
                ", ".join(f"{name} {version}" for name, version in sorted(libs.items()) if version),
                str((env.get("project") or {}).get("git_commit"))[:10],
            ]
        )
    return Section(
        "Environments",
        "Each distinct environment fingerprint among the records (a simulated device's "
        "environment is the host that traced it); libraries are those each backend declares for its fingerprint.",
        [Table("", ["fingerprint", "device type", "device", "host CPU", "usable cores", "libraries", "commit"], rows)],
    )


def _catch_up_rows(results: Sequence[CatchUp]) -> list[list[str]]:
    rows = []
    for c in results:
        gap, cur, res = c.hardware_gap(), c.catch_up_ratio(), c.residual_gap()
        watts, price = c.per(c.tdp_w), c.per(c.price_usd)
        rows.append(
            [_shape_label(c.shape), c.unit, _point_text(c.frontier_reference), _point_text(c.constrained_reference),
             _ratio_text(gap), _ratio_text(cur), _ratio_text(res),
             _ratio_text(watts["hardware_gap"]) if watts["hardware_gap"] else "n/a",
             _ratio_text(watts["catch_up_ratio"]) if watts["catch_up_ratio"] else "n/a",
             _ratio_text(price["catch_up_ratio"]) if price["catch_up_ratio"] else "n/a"]
        )  # fmt: skip
    return rows


def _gain_rows(results: Sequence[CatchUp], measured_records: Sequence[Record]) -> list[list[str]]:
    gains = []
    for c in results:
        best = c.best(c.techniques)
        for point, gain in c.gains():
            eligible, why = c.eligibility(point)
            label = point.technique + (" (best)" if point is best and point is not c.constrained_reference else "")
            gains.append([_shape_label(c.shape), label, _point_text(point), _ratio_text(gain),
                          _deviation_text(point.record, measured_records), "yes" if eligible else f"no: {why}"])  # fmt: skip
    return gains


_CATCH_UP_TEXT = (
    "Metric: throughput (output tokens/s for generation, items/s otherwise). Hardware gap = frontier / constrained "
    "at the reference technique; catch-up ratio = constrained with its best technique / frontier at the reference "
    "(>= 1: efficiency alone closes the gap); residual gap = frontier best / constrained best. Per watt uses each "
    "profile's TDP, per dollar its price (n/a where the profile has none or the device was measured without power "
    "figures). Intervals: measured figures 95% from batch means; simulated figures are bands (not confidence "
    "intervals) from the model's sourced ranges and its validation error, log-symmetric; a ratio of two "
    "projections by one model is taken at matching ends and, across devices, widened by that error; other ratios "
    "combine conservatively. Each input says whether it was measured or simulated."
)


def _catch_up_section(
    results: Sequence[CatchUp], frontier: str, constrained: str, reference: str, measured_records: Sequence[Record]
) -> Section:
    text = (
        f"Frontier device **{frontier}**, constrained device **{constrained}**, reference technique "
        f"**{reference}** (eager, no options). " + _CATCH_UP_TEXT
    )
    missing = [c for c in results if not c.complete]
    note = ("Incomplete (no reference-technique record on one of the devices): "
            + "; ".join(_shape_label(c.shape) for c in missing)) if missing else ""  # fmt: skip
    headers = ["workload", "metric", f"{frontier} ({reference})", f"{constrained} ({reference})",
               "hardware gap [interval]", "catch-up ratio [interval]", "residual gap [interval]", "gap per watt",
               "catch-up per watt", "catch-up per $"]  # fmt: skip
    budget_note = (
        "A technique is best only when its gain interval lies above 1 and its deviation from the fp32 reference is "
        f"within the accuracy budget (cosine >= {results[0].budget.cosine_min:g}, top-1 >= "
        f"{results[0].budget.top1_min:g}); otherwise the reference stays best."
        if results
        else ""
    )
    gain_headers = ["workload", "technique", "throughput", "gain vs reference [interval]", "top-1 / cos vs fp32",
                    "may be best"]  # fmt: skip
    return Section(
        "Catch-up estimate",
        text,
        [
            Table("Gap and catch-up per workload", headers, _catch_up_rows(results), note),
            Table(
                f"Efficiency gain of each technique on {constrained}",
                gain_headers,
                _gain_rows(results, measured_records),
                budget_note,
            ),  # fmt: skip
        ],
        figure=draw("catch_up_chart", [_chart_row(c) for c in results]),
        figure_name="catch-up.png",
        figure_alt="Catch-up chart: per workload, the constrained device's throughput relative to the frontier's "
        "reference, for the reference technique and each technique",
    )


def _deviation_text(record: Record, records: Sequence[Record]) -> str:
    """The technique's deviation from the fp32 reference (`deviation_of`: its own, or for a simulated technique
    the same precision measured on this host for the same shape, said so)."""
    accuracy, source = deviation_of(record, records)
    if accuracy is None:
        return source
    return accuracy_cell(accuracy) + ("" if source == "measured with the cell" else f" ({source})")


def _point_text(point) -> str:
    if point is None:
        return "missing"
    interval = (
        f" [{number(point.low)}, {number(point.high)}]" if point.low is not None and point.high is not None else ""
    )
    return f"{number(point.value)}{interval} ({point.source})"


def _chart_row(c: CatchUp) -> dict[str, Any]:
    bars = []
    if c.frontier_reference is not None:
        best = c.best(c.techniques)
        for p in c.techniques:
            relative = ratio(p, c.frontier_reference)
            color = (
                _COLORS["gap"] if p.technique == c.reference else _COLORS["best"] if p is best else _COLORS["technique"]
            )
            label = f"{p.technique}" + (" = 1 / hardware gap" if p.technique == c.reference else "")
            bars.append(
                {
                    "label": label,
                    "value": relative.value,
                    "low": relative.low,
                    "high": relative.high,
                    "simulated": p.simulated,
                    "color": color,
                }
            )
    return {"label": _shape_label(c.shape), "bars": bars}


def _result_row(r: Record) -> list[str]:
    """One cell of the results tables (measured or simulated)."""
    row = summary_row(r)
    point = metric_of(r)
    memory = row.get("device_peak_mib") or row.get("peak_rss_mib")
    accuracy = (
        f"{row['cosine_similarity']:.5f} / {number(row.get('top1_agreement'))}"
        if row.get("cosine_similarity") is not None
        else row.get("accuracy_skipped") or ""
    )
    return [
        f"{r.spec.backend} / {point.device if point else ''}",
        technique_of(r),
        batch_text(row),
        number(r.spec.seq_len),
        number(r.spec.new_tokens),
        "simulated" if r.simulated else ("measured (contended)" if r.contended() else "measured"),
        median_with_ci(row),
        number(row.get("p90_ms")),
        number(row.get("p99_ms")),
        f"{number(point.value)} {point.unit}" if point else "",
        number(row.get("ttft_p50_ms")),
        number(row.get("tpot_p50_ms")),
        number(memory) if not r.simulated else "",
        number(row.get("energy_per_item_j")),
        accuracy,
    ]


def _results_section(records: Sequence[Record]) -> Section:
    by_workload: dict[str, list[Record]] = {}
    for r in records:
        if r.status == "ok" and not r.loadgen:
            by_workload.setdefault(r.spec.workload, []).append(r)
    tables = []
    headers = [
        "backend / device",
        "technique",
        "batch",
        "seq",
        "new",
        "source",
        "p50 ms [95% CI] / ~estimate",
        "p90 ms",
        "p99 ms",
        "throughput",
        "TTFT ms",
        "TPOT ms",
        "peak memory MiB",
        "energy J/item",
        "accuracy vs fp32 (cos / top-1)",
    ]
    for workload, members in by_workload.items():
        ordered = sorted(members, key=lambda r: (r.spec.backend, technique_of(r), r.spec.batch_size))
        tables.append(Table(workload, headers, [_result_row(r) for r in ordered]))
    return Section(
        "Results per workload",
        "Measured cells: median latency with its 95% distribution-free interval, "
        'p90/p99, throughput with the loop\'s wall time; "contended": other processes used more than a quarter '
        "of a core (or the hypervisor stole > 5%) while it measured. Simulated cells: the estimate with its band "
        "(never a confidence interval), no percentiles.",
        tables,
    )


def _loadgen_section(records: Sequence[Record]) -> Section | None:
    """LoadGen scenario cells: LoadGen's verdict and figures, one table per scenario (None when there are none)."""
    by_scenario: dict[str, list[list[str]]] = {}
    for r in records:
        if r.status != "ok" or not r.loadgen:
            continue
        row = summary_row(r)
        accuracy = (
            f"{row['cosine_similarity']:.5f} / {number(row.get('top1_agreement'))}"
            if row.get("cosine_similarity") is not None
            else ""
        )
        by_scenario.setdefault(r.spec.scenario, []).append(
            [
                r.spec.label,
                row["loadgen_validity"] or "",
                row.get("loadgen_invalid_reasons") or "",
                f"{number(row.get('loadgen_metric_value'))} {row['loadgen_metric_unit']}",
                number(row.get("p50_ms")),
                number(row.get("p90_ms")),
                number(row.get("p99_ms")),
                number(row.get("items_per_s")),
                number(row.get("ttft_p50_ms")),
                number(row.get("tpot_p50_ms")),
                number(row.get("warmup_p50_ms")),
                number(row.get("service_p50_ms")),
                accuracy,
                r.loadgen.get("logs") or "",
            ]
        )
    if not by_scenario:
        return None
    headers = [
        "cell",
        "LoadGen",
        "why INVALID",
        "metric",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "samples/s",
        "TTFT p50 ms",
        "TPOT p50 ms",
        "warm-up p50 ms",
        "service p50 ms",
        "accuracy (cos / top-1)",
        "logs",
    ]
    tables = [Table(scenario, headers, rows) for scenario, rows in by_scenario.items()]
    return Section(
        "LoadGen scenarios",
        "Cells run under MLPerf LoadGen: every figure is LoadGen's own (its detail "
        "log, kept under the run directory). Metric: single-stream p90 latency, multi-stream p99 latency "
        "per query, server completed samples/s at the target rate, offline samples/s. Warm-up p50 is the "
        "same full-batch call timed alone just before the run; service p50 is how long the system under "
        "test took to run a batch during the run (queueing excluded). Service well above warm-up means "
        "the load generator's own threads slowed the model (too few cores for both).",
        tables,
    )


def _distribution_section(records: Sequence[Record]) -> Section:
    groups: dict[str, list[tuple[str, list[float]]]] = {}
    for r in records:
        if r.status == "ok" and r.measurement and not r.simulated:
            label = f"{r.spec.backend} {technique_of(r)} b={r.spec.batch_size}"
            groups.setdefault(r.spec.workload, []).append((label, [s / 1e6 for s in r.measurement.samples_ns]))
    return Section(
        "Latency distributions",
        "Every timed call of each measured cell (box: quartiles; whiskers: "
        "1.5 IQR; points beyond). Simulated cells have no distribution.",
        figure=draw("latency_distributions", list(groups.items())),
        figure_name="latency.png",
        figure_alt="Box plots of per-call latency per cell",
    )


def _batch_section(records: Sequence[Record]) -> Section:
    series: dict[tuple, list[tuple[int, float]]] = {}
    simulated: dict[tuple, bool] = {}
    for r in records:
        point = metric_of(r) if r.status == "ok" else None
        if point is None:
            continue
        key = (r.spec.workload, f"{point.device} {point.technique}")
        items = point.value / (r.spec.new_tokens or 1) if point.unit.startswith("output tokens/s") else point.value
        series.setdefault(key, []).append((r.spec.batch_size, items))
        simulated[key] = point.simulated
    data = [(k[0], k[1], v, simulated[k]) for k, v in series.items()]
    return Section(
        "Throughput against batch size",
        "Items (sequences or images) per second for every device and technique measured at two or more batch sizes.",
        figure=draw("throughput_by_batch", data),
        figure_name="throughput.png",
        figure_alt="Throughput against batch size",
    )


def _roofline_section(records: Sequence[Record]) -> Section:
    points, ceilings, seen = [], [], set()
    for r in records:
        if r.status != "ok" or not r.work:
            continue
        flops, moved, achieved = r.flops_per_call(), (r.work or {}).get("min_bytes_per_call"), r.achieved_flops_per_s()
        if flops and moved and achieved:
            points.append(
                {
                    "intensity": flops / moved,
                    "flops_per_s": achieved,
                    "simulated": r.simulated,
                    "label": f"{r.spec.workload} {technique_of(r)} b={r.spec.batch_size}",
                }
            )
        if r.simulated:
            profile = r.simulation["profile"]
            dtype = "fp32" if r.spec.precision == "fp32" else "bf16"
            key = (profile["key"], dtype)
            if key not in seen:
                seen.add(key)
                ceilings.append(
                    {
                        "label": f"{profile['key']} {dtype} (profile)",
                        "peak_flops": profile["peak_tflops"][dtype]["value"] * 1e12,
                        "bandwidth": profile["bandwidth_tbs"]["value"] * 1e12,
                    }
                )
            host = (r.simulation.get("host_validation") or {}).get("host")
            if host and ("host", dtype) not in seen and dtype in host["peak_flops"]:
                seen.add(("host", dtype))
                ceilings.append(
                    {
                        "label": f"this host {dtype} (calibrated)",
                        "peak_flops": host["peak_flops"][dtype],
                        "bandwidth": host["bandwidth_bytes_s"],
                    }
                )
    return Section(
        "Roofline",
        "Achieved FLOP/s (FLOPs per call / median or estimated latency) against arithmetic "
        "intensity (FLOPs / the minimum bytes a call must move), under each device's ceilings: profile "
        "peaks for simulated devices, the calibrated host for this machine (where a simulated cell "
        "recorded it).",
        figure=draw("roofline_chart", points, ceilings),
        figure_name="roofline.png",
        figure_alt="Roofline chart",
    )


def _not_ok_section(records: Sequence[Record]) -> Section:
    rows = [[r.spec.label, r.status, r.reason or ""] for r in records if r.status != "ok"]
    return Section(
        "Failed and unavailable cells",
        "" if rows else "None: every cell ran.",
        [Table("", ["cell", "status", "reason"], rows)] if rows else [],
    )


def build_report(
    records: Sequence[Record],
    frontier: str = DEFAULT_FRONTIER,
    constrained: str = DEFAULT_CONSTRAINED,
    reference: str = "bf16",
    title: str = "catchup-bench report",
    scenarios: Sequence[Any] = (),
    budget: Any = None,
) -> Report:
    """The report of `records`, opening with the catch-up of each scenario (bench.analysis.gap) where given."""
    from bench.output.report_catchup import appendix_section, scenario_sections, summary_section
    from bench.output.report_engines import engine_section

    results = catch_up(records, frontier, constrained, reference, budget)
    analyses, failures = _analyses(scenarios)
    sections = [
        summary_section(analyses, results, frontier, constrained),
        *failures,
        *[section for a in analyses for section in scenario_sections(a, first=a is analyses[0])],
        _catch_up_section(results, frontier, constrained, reference, records),
        _environment_section(records),
        _results_section(records),
        engine_section(records),
        _loadgen_section(records),
        _distribution_section(records),
        _batch_section(records),
        _roofline_section(records),
        _not_ok_section(records),
        appendix_section(records, analyses),
    ]
    return Report(title, [section for section in sections if section is not None], results)


def _analyses(scenarios: Sequence[Any]) -> tuple[list[dict[str, Any]], list[Section]]:
    """Each scenario's analysis as a dict; a scenario that cannot be projected becomes a section saying why (the
    rest of the report still renders)."""
    from bench.analysis.gap.analysis import analyse
    from bench.core.errors import UsageError

    analyses, failures = [], []
    for scenario in scenarios:
        try:
            analyses.append(analyse(scenario).to_dict())
        except UsageError as exc:
            failures.append(Section(f"Catch-up scenario: {scenario.name}", f"Not projected: {exc}"))
    return analyses, failures
