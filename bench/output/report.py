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

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bench.analysis.catchup import CatchUp, Ratio, catch_up, deviation_of, metric_of, ratio, technique_of
from bench.core.record import Record
from bench.output.analyses import WATERFALL_HEADERS, waterfall_rows
from bench.output.columns import median_with_ci, summary_row
from bench.output.format import accuracy_cell, number

__all__ = ["Report", "build_report", "render_html", "render_markdown", "DEFAULT_FRONTIER", "DEFAULT_CONSTRAINED"]

DEFAULT_FRONTIER = "h100"
DEFAULT_CONSTRAINED = "ascend-910b2"

_COLORS = {"gap": "#9e9e9e", "technique": "#4c78a8", "best": "#f58518"}


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figure: bytes | None = None
    figure_name: str | None = None
    figure_alt: str = ""
    bullets: list[str] = field(default_factory=list)


@dataclass
class Report:
    title: str
    sections: list[Section]
    catch_ups: list[CatchUp]


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


def _catch_up_section(
    results: Sequence[CatchUp], frontier: str, constrained: str, reference: str, measured_records: Sequence[Record]
) -> Section:
    rows, chart_rows = [], []
    for c in results:
        gap, cur, res = c.hardware_gap(), c.catch_up_ratio(), c.residual_gap()
        watts, price = c.per(c.tdp_w), c.per(c.price_usd)
        rows.append(
            [
                _shape_label(c.shape),
                c.unit,
                _point_text(c.frontier_reference),
                _point_text(c.constrained_reference),
                _ratio_text(gap),
                _ratio_text(cur),
                _ratio_text(res),
                _ratio_text(watts["hardware_gap"]) if watts["hardware_gap"] else "n/a",
                _ratio_text(watts["catch_up_ratio"]) if watts["catch_up_ratio"] else "n/a",
                _ratio_text(price["catch_up_ratio"]) if price["catch_up_ratio"] else "n/a",
            ]
        )
        chart_rows.append(_chart_row(c))
    gains = []
    for c in results:
        best = c.best(c.techniques)
        for point, gain in c.gains():
            deviation = _deviation_text(point.record, measured_records)
            eligible, why = c.eligibility(point)
            gains.append(
                [
                    _shape_label(c.shape),
                    point.technique + (" (best)" if point is best and point is not c.constrained_reference else ""),
                    _point_text(point),
                    _ratio_text(gain),
                    deviation,
                    "yes" if eligible else f"no: {why}",
                ]
            )
    text = (
        f"Frontier device **{frontier}**, constrained device **{constrained}**, reference technique "
        f"**{reference}** (eager, no options). Metric: throughput (output tokens/s for generation, items/s "
        "otherwise). Hardware gap = frontier / constrained at the reference technique; catch-up ratio = "
        "constrained with its best technique / frontier at the reference (>= 1: efficiency alone closes the "
        "gap); residual gap = frontier best / constrained best. Per watt uses each profile's TDP, per dollar its "
        "price (n/a where the profile has none or the device was measured without power figures). Intervals: "
        "measured figures 95% from batch means; simulated figures are bands (not confidence intervals) from the "
        "model's sourced ranges and its validation error, log-symmetric; a ratio of two projections by one model "
        "is taken at matching ends and, across devices, widened by that error; other ratios combine "
        "conservatively. Each input says whether it was measured or simulated."
    )
    missing = [c for c in results if not c.complete]
    note = ""
    if missing:
        note = "Incomplete (no reference-technique record on one of the devices): " + "; ".join(
            _shape_label(c.shape) for c in missing
        )
    return Section(
        "Catch-up estimate",
        text,
        [
            Table(
                "Gap and catch-up per workload",
                [
                    "workload",
                    "metric",
                    f"{frontier} ({reference})",
                    f"{constrained} ({reference})",
                    "hardware gap [interval]",
                    "catch-up ratio [interval]",
                    "residual gap [interval]",
                    "gap per watt",
                    "catch-up per watt",
                    "catch-up per $",
                ],
                rows,
                note,
            ),
            Table(
                f"Efficiency gain of each technique on {constrained}",
                [
                    "workload",
                    "technique",
                    "throughput",
                    "gain vs reference [interval]",
                    "top-1 / cos vs fp32",
                    "may be best",
                ],
                gains,
                "A technique is best only when its gain interval lies above 1 and its deviation from the fp32 "
                f"reference is within the accuracy budget (cosine >= {results[0].budget.cosine_min:g}, top-1 >= "
                f"{results[0].budget.top1_min:g}); otherwise the reference stays best."
                if results
                else "",
            ),
        ],
        figure=_figure("catch_up_chart", chart_rows),
        figure_name="catch-up.png",
        figure_alt="Catch-up chart: per workload, the constrained device's throughput relative to the frontier's "
        "reference, for the reference technique and each technique",
    )


def _summary_section(results: Sequence[CatchUp], waterfalls: Sequence[Any], frontier: str, constrained: str) -> Section:
    """Plain sentences with the headline figures and their status, fit to quote; they restate the tables."""
    bullets = []
    for w in waterfalls:
        bullets += w.summary()
    for c in results:
        gap, cur = c.hardware_gap(), c.catch_up_ratio()
        if gap is None or cur is None:
            continue
        best = c.best(c.techniques)
        lever = (
            f"the best technique within the accuracy budget is {best.technique}"
            if best is not c.constrained_reference
            else "no technique beat the reference within the accuracy budget with a gain interval above 1"
        )
        flagged = sorted(
            {
                f
                for p in (c.frontier_reference, c.constrained_reference)
                if p and p.simulated
                for f in _flagged_figures(p.record)
            }
        )
        bullets.append(
            f"{_shape_label(c.shape)} ({gap.kind}): hardware gap {frontier} / {constrained} {_ratio_text(gap)}; "
            f"{lever}; catch-up ratio {_ratio_text(cur)}"
            + (f"; ASSUMED/UNV figures used: {', '.join(flagged)}" if flagged else "")
            + "."
        )
    if not bullets:
        return None
    return Section(
        "Summary",
        "Every figure below is restated from the tables of this report; intervals of "
        "simulated figures are bands from the model's ranges and validation error, not confidence "
        "intervals.",
        bullets=bullets,
    )


def _flagged_figures(record: Record) -> list[str]:
    profile = (record.simulation or {}).get("profile") or {}
    found = []
    for name, figure in profile.items():
        if isinstance(figure, dict) and figure.get("status") in ("ASSUMED", "UNV"):
            found.append(f"{profile.get('key')} {name} ({figure['status']})")
        elif isinstance(figure, dict):
            found += [
                f"{profile.get('key')} {name}.{k} ({v['status']})"
                for k, v in figure.items()
                if isinstance(v, dict) and v.get("status") in ("ASSUMED", "UNV")
            ]
    return found


def _scenario_section(w) -> Section:
    s = w.scenario
    chart = _figure(
        "waterfall_chart",
        s.title,
        w.start["central"],
        [{"label": f"{st.lever}: {st.detail}", "factor": st.factor, "low": st.low, "high": st.high} for st in w.steps],
        "end: catch-up ratio",
    )
    extra = [f"Quality: {w.quality}."]
    extra.append(
        f"Chips to match: {w.chips_to_match[0]:.1f} [{w.chips_to_match[1]:.1f}, {w.chips_to_match[2]:.1f}] "
        f"{s.constrained} chips at their best for {s.chips} {s.frontier} chips at the reference."
    )
    if w.per_dollar:
        extra.append(f"Per dollar: x{w.per_dollar[0]:.2f} [{w.per_dollar[1]:.2f}, {w.per_dollar[2]:.2f}].")
    return Section(
        f"Catch-up scenario: {s.name}",
        "SIMULATED with the serving model (decode output tokens/s per chip within the TPOT bound). The factors "
        "multiply from the frontier device at its reference configuration to the constrained device at its best, "
        "in the order shown (docs/CATCHUP.md).",
        [
            Table(
                "Waterfall",
                WATERFALL_HEADERS,
                waterfall_rows(w),
            )
        ],
        figure=chart,
        figure_name=f"waterfall-{s.name}.png",
        figure_alt=f"Catch-up waterfall of scenario {s.name}: one bar per lever on a log axis",
        bullets=extra,
    )


def _appendix_section(records: Sequence[Record], waterfalls: Sequence[Any]) -> Section:
    """Every device figure used (value, status, source), every assumption, and the validation errors."""
    from bench.projection.efficiency import load_efficiency
    from bench.projection.profiles import get_profile

    keys = sorted(
        {r.simulation["profile"]["key"] for r in records if r.simulated and r.simulation}
        | {k for w in waterfalls for k in (w.scenario.frontier, w.scenario.constrained)}
    )
    figures = []
    for key in keys:
        profile = get_profile(key)
        named = [
            ("memory_gb", profile.memory_gb),
            ("bandwidth_tbs", profile.bandwidth_tbs),
            ("tdp_w", profile.tdp_w),
            ("price_usd", profile.price_usd),
        ]
        named += [(f"peak_tflops.{k}", v) for k, v in profile.peak_tflops.items()]
        named += [(f"interconnect.{k}", v) for k, v in (profile.interconnect or {}).items()]
        figures += [[key, name, number(fig.value), fig.status, fig.source] for name, fig in named]
    kinds = sorted({get_profile(k).kind for k in keys} & {"gpu", "npu", "cpu"})
    factors = []
    for kind in kinds:
        eff = load_efficiency(kind)
        for name, f in eff.factors.items():
            factors.append(
                [kind, name, number(eff.values[name]), f"[{number(f.low)}, {number(f.high)}]", f.status, f.source]
            )
    assumptions = [
        [
            w.scenario.name,
            "software maturity",
            f"x{w.scenario.software['value']:g} [{w.scenario.software['low']:g}, {w.scenario.software['high']:g}]",
            str(w.scenario.software.get("status")),
            str(w.scenario.software.get("source")),
        ]
        for w in waterfalls
    ]
    validation = []
    errors = {w.validation_error for w in waterfalls if w.validation_error is not None}
    errors |= {(r.estimate() or {}).get("validation_error") for r in records if r.simulated} - {None}
    for error in sorted(errors):
        validation.append(
            [
                "serving model",
                "held-out median |error| on published serving results",
                f"{100 * error:.1f}%",
                "bench/projection/published_serving.toml",
            ]
        )
    host = [
        r for r in records if r.simulated and (r.simulation or {}).get("host_validation", {}).get("error") is not None
    ]
    for r in host:
        v = r.simulation["host_validation"]
        validation.append(
            [
                f"trace projection: {r.spec.label}",
                "this cell's host validation (predicted / measured - 1)",
                f"{100 * v['error']:+.1f}%",
                "measured on this host",
            ]
        )
    tables = [
        Table(
            "Device figures",
            ["device", "figure", "value", "status", "source"],
            figures,
            "Status: OFF vendor, 3P third party, DER derived, UNV unverified, ASSUMED.",
        )
    ]
    if factors:
        tables.append(
            Table(
                "Efficiency factors of the serving model",
                ["kind", "factor", "value", "range", "status", "source"],
                factors,
            )
        )
    if assumptions:
        tables.append(
            Table("Scenario assumptions", ["scenario", "assumption", "value [range]", "status", "source"], assumptions)
        )
    if validation:
        tables.append(Table("Validation errors", ["path", "what", "error", "source"], validation))
    return Section("Appendix: figures, assumptions and validation", "", tables)


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
        rows = []
        for r in sorted(members, key=lambda r: (r.spec.backend, technique_of(r), r.spec.batch_size)):
            row = summary_row(r)
            point = metric_of(r)
            latency = median_with_ci(row)
            memory = row.get("device_peak_mib") or row.get("peak_rss_mib")
            accuracy = (
                f"{row['cosine_similarity']:.5f} / {number(row.get('top1_agreement'))}"
                if row.get("cosine_similarity") is not None
                else row.get("accuracy_skipped") or ""
            )
            rows.append(
                [
                    f"{r.spec.backend} / {metric_of(r).device if point else ''}",
                    technique_of(r),
                    str(r.spec.batch_size),
                    number(r.spec.seq_len),
                    number(r.spec.new_tokens),
                    "simulated" if r.simulated else ("measured (contended)" if r.contended() else "measured"),
                    latency,
                    number(row.get("p90_ms")),
                    number(row.get("p99_ms")),
                    f"{number(point.value)} {point.unit}" if point else "",
                    number(row.get("ttft_p50_ms")),
                    number(row.get("tpot_p50_ms")),
                    number(memory) if not r.simulated else "",
                    number(row.get("energy_per_item_j")),
                    accuracy,
                ]
            )
        tables.append(Table(workload, headers, rows))
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
        figure=_figure("latency_distributions", list(groups.items())),
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
        figure=_figure("throughput_by_batch", data),
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
        figure=_figure("roofline_chart", points, ceilings),
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


def _figure(name: str, *args: Any) -> bytes | None:
    from bench.output import figures

    return getattr(figures, name)(*args)


def build_report(
    records: Sequence[Record],
    frontier: str = DEFAULT_FRONTIER,
    constrained: str = DEFAULT_CONSTRAINED,
    reference: str = "bf16",
    title: str = "catchup-bench report",
    scenarios: Sequence[Any] = (),
    budget: Any = None,
) -> Report:
    """The report of `records`, with the waterfall of each scenario (bench.analysis.waterfall.Scenario) first."""
    from bench.analysis.waterfall import waterfall

    results = catch_up(records, frontier, constrained, reference, budget)
    waterfalls = [waterfall(s) for s in scenarios]
    sections = [
        _summary_section(results, waterfalls, frontier, constrained),
        *[_scenario_section(w) for w in waterfalls],
        _catch_up_section(results, frontier, constrained, reference, records),
        _environment_section(records),
        _results_section(records),
        _loadgen_section(records),
        _distribution_section(records),
        _batch_section(records),
        _roofline_section(records),
        _not_ok_section(records),
        _appendix_section(records, waterfalls),
    ]
    return Report(title, [section for section in sections if section is not None], results)


# ---------------------------------------------------------------------------------------------------------
# renderers

_CSS = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}table{border-collapse:collapse;"
    "font-size:12px;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%}p.note{color:#666;font-size:12px}"
)


def render_html(report: Report) -> str:
    """One self-contained HTML file: inline style, images as data: URIs, no scripts, every string escaped."""
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(report.title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{e(report.title)}</h1>"
    ]
    for section in report.sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        if section.text:
            parts.append(f"<p>{_bold_html(e(section.text))}</p>")
        if section.bullets:
            parts.append("<ul>" + "".join(f"<li>{e(b)}</li>" for b in section.bullets) + "</ul>")
        if section.figure:
            data = base64.b64encode(section.figure).decode()
            parts.append(f"<img alt='{e(section.figure_alt)}' src='data:image/png;base64,{data}'>")
        for table in section.tables:
            if table.title:
                parts.append(f"<h3>{e(table.title)}</h3>")
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in table.headers) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table.rows]
            parts.append("</table>")
            if table.note:
                parts.append(f"<p class='note'>{e(table.note)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _bold_html(text: str) -> str:
    pieces = text.split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(pieces))


def render_markdown(report: Report, figures_dir: Path, link_prefix: str) -> str:
    """GitHub Markdown; each figure is written as PNG into `figures_dir` and linked as `link_prefix/NAME`. Every
    string is HTML-escaped (GitHub renders inline HTML, and record strings -- reasons, names -- are input)."""

    def text(value: object) -> str:
        return html.escape(str(value), quote=False)

    def esc(value: object) -> str:
        return text(value).replace("|", "\\|").replace("\n", " ")

    lines = [f"# {text(report.title)}", ""]
    for section in report.sections:
        lines += [f"## {text(section.title)}", ""]
        if section.text:
            lines += [text(section.text), ""]
        if section.bullets:
            lines += [f"- {text(b)}" for b in section.bullets] + [""]
        if section.figure and section.figure_name:
            figures_dir.mkdir(parents=True, exist_ok=True)
            from bench.core.outfile import write_output  # never through a symlink or onto a run's records

            write_output(figures_dir / section.figure_name, section.figure, "--out")
            lines += [f"![{section.figure_alt}]({link_prefix}/{section.figure_name})", ""]
        for table in section.tables:
            if table.title:
                lines += [f"### {esc(table.title)}", ""]
            lines.append("| " + " | ".join(esc(h) for h in table.headers) + " |")
            lines.append("|" + "---|" * len(table.headers))
            lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in table.rows]
            lines.append("")
            if table.note:
                lines += [f"_{esc(table.note)}_", ""]
    return "\n".join(lines) + "\n"
