"""Text and Markdown of the serving model's outputs: one projection (`bench simulate --model M --profile P`), its
validation against published results (`--validate-serving`) and against this host (`--validate-host`).
Every figure goes through `bench.output.format.number`; every output says it is simulated.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Mapping, Sequence

from bench.output.format import markdown_table, number, text_table

__all__ = ["render_projection", "render_serving_validation", "render_host_validation"]

#: Figures in projection tables: the one number formatter, "-" where a figure is missing.
figure = partial(number, missing="-")

_PHASE_LABELS = (
    "parallelism",
    "micro-batch overlap",
    "batch per replica",
    "TPOT / TTFT",
    "tokens/s per chip [low, high]",
    "tokens/s cluster",
    "tokens/s per W / per $1k",
    "MFU / MBU",
    "step time",
    "memory per chip",
)


def _split(p: Mapping[str, int] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in p.items()) if p else "-"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{number(100 * value)}%"


def _breakdown(b: Mapping[str, float]) -> str:
    return (
        f"compute {figure(b['compute_ms'])}, memory {figure(b['memory_ms'])}, comm {figure(b['communication_ms'])} "
        f"(+{figure(b['communication_hidden_ms'])} hidden), overhead {figure(b['overhead_ms'])} ms"
    )


def _memory(m: Mapping[str, float]) -> str:
    return (
        f"{figure(m['weights_gb'])} + KV {figure(m['kv_cache_gb'])} + act {figure(m['activations_gb'])} = "
        f"{figure(m['total_gb'])} of {figure(m['usable_gb'])} GB"
    )


def _latency(phase: Mapping[str, Any], latency: str) -> str:
    if latency == "both":
        return f"{figure(phase['tpot_ms'])} / {figure(phase['ttft_ms'])} ms"
    return f"{figure(phase[latency])} ms"


def _phase_rows(r: Mapping[str, Any], phase_key: str, headline: str, latency: str) -> list[str]:
    """The column of one phase (decode, prefill or colocated) of a projection's dict."""
    phase = r[phase_key]
    if phase is None:
        return ["-"] * len(_PHASE_LABELS)
    low, high = r["low"] or {}, r["high"] or {}
    band = f" [{figure(low.get(headline))}, {figure(high.get(headline))}]" if low else ""
    per_watt, per_k = r["per_watt"] or {}, r["per_1000_usd"] or {}
    return [
        _split(phase["parallelism"]),
        {True: "on", False: "off", None: "-"}[phase.get("overlap")],
        figure(phase.get("batch_per_replica", phase.get("prompts_per_replica"))),
        _latency(phase, latency),
        f"{figure(phase['tokens_per_s_per_chip'])}{band}",
        figure(phase["tokens_per_s_cluster"]),
        f"{figure(per_watt.get(headline))} / {figure(per_k.get(headline))}",
        f"{figure(phase['mfu'])} / {figure(phase['mbu'])}",
        _breakdown(phase["breakdown"]),
        _memory(phase["memory"]),
    ]


def _heading(r: Mapping[str, Any]) -> str:
    p = r["precision"]
    return (
        f"{r['model']} on {r['chips']} x {r['profile']}, {p['weights']} weights / {p['compute']} compute / "
        f"{p['kv_cache']} KV cache, {figure(r['input_tokens'])} in / {figure(r['output_tokens'])} out"
        + (f", TPOT <= {figure(r['tpot_slo_ms'])} ms" if r["tpot_slo_ms"] else "")
        + (f", TTFT <= {figure(r['ttft_slo_ms'])} ms" if r["ttft_slo_ms"] else "")
        + (f", MTP acceptance {figure(r['mtp_acceptance'])}" if r["mtp_acceptance"] is not None else "")
    )


def _engine_line(r: Mapping[str, Any]) -> str:
    e, spec = r["engine"], r.get("speculation")
    searched = "" if e["search"] == "engine" else " -- --search any: every split, not only the engine's (a what-if)"
    drafting = ""
    if spec:
        drafting = f"; speculative decoding {spec.get('method')} K={spec.get('tokens')}"
        drafting += f", acceptance length {figure(spec.get('acceptance_length'))}"
    return f"engine: {e['name']} {e['version']} ({e['key']}), {r['mode']}{drafting}{searched}"


def _end(value: float | None) -> str:
    """One end of the band; where no configuration fits at that end of the factors' ranges, it says so."""
    return figure(value) if value else "nothing fits"


def _headline_line(r: Mapping[str, Any]) -> str:
    key = "output_tokens_per_s_per_chip"
    low, high = (r["low"] or {}).get(key), (r["high"] or {}).get(key)
    return (
        f"headline ({r['mode']}): {figure(r[key])} output tokens/s per chip [low {_end(low)}, high "
        f"{_end(high)}], TPOT {figure(r['tpot_ms'])} ms, TTFT {figure(r['ttft_ms'])} ms"
    )


def render_projection(r: Mapping[str, Any], markdown: bool = False) -> str:
    """One projection (`Projection.to_dict()`): heading, SIMULATED label, one column per phase, flagged figures."""
    lines = [
        _heading(r),
        "SIMULATED: analytical serving model, not a measurement. Low/high: every efficiency factor at "
        "the pessimistic/optimistic end of its sourced range.",
        _engine_line(r),
        f"fits: {'yes' if r['fits'] else 'no'}" + ("" if r["fits"] else f" -- {r['note']}"),
        _headline_line(r),
        "",
    ]
    columns = [
        ("colocated (output tokens)", _phase_rows(r, "colocated", "colocated_tokens_per_s_per_chip", "both")),
        ("disaggregated decode (output tokens)", _phase_rows(r, "decode", "decode_tokens_per_s_per_chip", "tpot_ms")),
        ("disaggregated prefill (input tokens)", _phase_rows(r, "prefill", "prefill_tokens_per_s_per_chip", "ttft_ms")),
    ]
    columns = [(h, c) for h, c in columns if any(v != "-" for v in c)] or columns[1:]
    headers = [""] + [h for h, _ in columns]
    rows = list(zip(_PHASE_LABELS, *(c for _, c in columns)))
    table = markdown_table(headers, rows) if markdown else text_table(headers, rows)
    lines.append(table.rstrip("\n"))
    if r["assumed_figures"]:
        lines.append(f"ASSUMED profile figures: {', '.join(r['assumed_figures'])}")
    if r["unverified_figures"]:
        lines.append(f"UNV (unverified) profile figures: {', '.join(r['unverified_figures'])}")
    if r.get("announced_figures"):
        lines.append(
            f"ANNOUNCED (a chip not shipping when published) profile figures: {', '.join(r['announced_figures'])}"
        )
    if r["per_1000_usd"] is None:
        lines.append(f"per $: no sourced price for {r['profile']} (set price_usd in $CATCHUP_BENCH_PROFILES)")
    return "\n".join(lines) + "\n"


def _error(value: float | None) -> str:
    return "no fit" if value is None else f"{'+' if value >= 0 else ''}{number(100 * value)}%"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{number(value)}x"


def _group_rows(groups: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [
            name,
            g["rows"],
            figure(g["median_abs_ln_error"]),
            f"{g['worst_row'] or '-'} ({_ratio(g['worst_ratio'])})",
            f"{g['within_2x']} of {g['predicted']}",
            f"{g['inside_low_high']} of {g['rows']}",
        ]
        for name, g in groups.items()
    ]


def _validation_rows(data: Mapping[str, Any]) -> list[list[Any]]:
    return [
        [
            r["id"],
            r["use"],
            r["published_on"],
            r["engine"],
            r["model"],
            f"{r['profile']} x {r['chips']}",
            r["precision"],
            f"{r['phase']} ({r['unit']})",
            f"TPOT {figure(r['tpot_slo_ms'])} ms" if r["tpot_slo_ms"] else "-",
            figure(r["published"]),
            f"{figure(r['predicted'])} [{figure(r['low'])}, {figure(r['high'])}]",
            _error(r["error"]),
        ]
        for r in data["rows"]
    ]


def render_serving_validation(data: Mapping[str, Any]) -> str:
    """`--validate-serving`: every published row with its prediction, band and error; the error per group
    (dense/MoE x GPU/NPU x engine) of the held-out and the fit rows; every fitted factor and where it sits in its
    range; the summary."""
    headers = ["row", "use", "published on", "engine", "model", "device x chips", "precision", "phase (unit)"]
    headers += ["bound", "published", "predicted [low, high]", "error"]
    group_headers = ["group", "rows", "median |ln error|", "worst row", "within 2x", "inside [low, high]"]
    factor_rows = [
        [f["name"], figure(f["value"]), f"[{figure(f['low'])}, {figure(f['high'])}]", f"{figure(100 * f['position'])}%",
         "PINNED at an end" if f["pinned"] else ""]
        for f in data["factors"]
    ]  # fmt: skip
    s = data["summary"]
    held, fit = s["held_out"], s["fit"]
    lines = [
        "SIMULATED: the serving model's predictions of published serving results (tokens/s per chip).",
        "",
        markdown_table(headers, _validation_rows(data)).rstrip("\n"),
        "",
        "Held-out rows by group:",
        markdown_table(group_headers, _group_rows(s["groups_held_out"])).rstrip("\n"),
        "",
        "Fit rows by group:",
        markdown_table(group_headers, _group_rows(s["groups_fit"])).rstrip("\n"),
        "",
        "Fitted factors (inside their sourced ranges; position 0% = low end, 100% = high end):",
        markdown_table(["factor", "fitted", "range", "position", ""], factor_rows).rstrip("\n"),
        "",
        f"held-out: {held['rows']} rows, median |ln(predicted/published)| {figure(held['median_abs_ln_error'])} "
        f"(median |error| {_percent(s['median_abs_error_held_out'])}); worst {held['worst_row']} "
        f"{_ratio(held['worst_ratio'])}; within 2x: {held['within_2x']} of {held['predicted']} predicted; published "
        f"figure inside [low, high]: {held['inside_low_high']} of {held['rows']}",
        f"fit: {fit['rows']} rows, median |ln| {figure(fit['median_abs_ln_error'])}; pinned factors: "
        f"{', '.join(s['pinned_factors']) or 'none'}",
        f"({figure(data['elapsed_s'])} s)",
    ]
    return "\n".join(lines) + "\n"


def render_host_validation(data: Mapping[str, Any]) -> str:
    """`--validate-host`: measured vs predicted TTFT and TPOT per left-out model, then the median error."""
    headers = ["model (left out)", "precision", "batch", "prompt", "TTFT measured ms", "predicted", "error"]
    headers += ["TPOT measured ms", "predicted", "error"]
    rows: Sequence[list[Any]] = [
        [
            r["model"],
            r["precision"],
            r["batch"],
            r["seq_len"],
            figure(1e3 * r["ttft_measured_s"]),
            figure(1e3 * r["ttft_predicted_s"]),
            _error(r["ttft_error"]),
            figure(1e3 * r["tpot_measured_s"]),
            figure(1e3 * r["tpot_predicted_s"]),
            _error(r["tpot_error"]),
        ]
        for r in data["rows"]
    ]
    s = data["summary"]
    lines = [
        markdown_table(headers, rows).rstrip("\n"),
        "",
        f"leave-one-model-out median |error| {_percent(s['median_abs_error'])} over {s['predictions']} predictions "
        f"(TTFT {_percent(s['median_abs_error_ttft'])}, TPOT {_percent(s['median_abs_error_tpot'])}); worst "
        f"{_percent(s['max_abs_error'])}",
    ]
    return "\n".join(lines) + "\n"
