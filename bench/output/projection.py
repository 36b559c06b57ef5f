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


def _phase_rows(r: Mapping[str, Any], phase_key: str, headline: str, latency: str) -> list[str]:
    """The column of one phase (decode or prefill) of a projection's dict."""
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
        f"{figure(phase[latency])} ms",
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


def render_projection(r: Mapping[str, Any], markdown: bool = False) -> str:
    """One projection (`Projection.to_dict()`): heading, SIMULATED label, one column per phase, flagged figures."""
    lines = [
        _heading(r),
        "SIMULATED: analytical serving model, not a measurement. Low/high: every efficiency factor at "
        "the pessimistic/optimistic end of its sourced range.",
        f"fits: {'yes' if r['fits'] else 'no'}" + ("" if r["fits"] else f" -- {r['note']}"),
        "",
    ]
    decode = _phase_rows(r, "decode", "decode_tokens_per_s_per_chip", "tpot_ms")
    prefill = _phase_rows(r, "prefill", "prefill_tokens_per_s_per_chip", "ttft_ms")
    headers = ["", "decode (output tokens)", "prefill (input tokens)"]
    rows = list(zip(_PHASE_LABELS, decode, prefill))
    table = markdown_table(headers, rows) if markdown else text_table(headers, rows)
    lines.append(table.rstrip("\n"))
    if r["assumed_figures"]:
        lines.append(f"ASSUMED profile figures: {', '.join(r['assumed_figures'])}")
    if r["unverified_figures"]:
        lines.append(f"UNV (unverified) profile figures: {', '.join(r['unverified_figures'])}")
    if r["per_1000_usd"] is None:
        lines.append(f"per $: no sourced price for {r['profile']} (set price_usd in $CATCHUP_BENCH_PROFILES)")
    return "\n".join(lines) + "\n"


def _error(value: float | None) -> str:
    return "no fit" if value is None else f"{'+' if value >= 0 else ''}{number(100 * value)}%"


def render_serving_validation(data: Mapping[str, Any]) -> str:
    """`--validate-serving`: every published row with its prediction, band and error, then the summary."""
    headers = ["row", "use", "model", "device x chips", "precision", "phase", "bound", "published"]
    headers += ["predicted [low, high]", "error"]
    rows = [
        [
            r["id"],
            r["use"],
            r["model"],
            f"{r['profile']} x {r['chips']}",
            r["precision"],
            r["phase"],
            f"TPOT {figure(r['tpot_slo_ms'])} ms" if r["tpot_slo_ms"] else "-",
            figure(r["published"]),
            f"{figure(r['predicted'])} [{figure(r['low'])}, {figure(r['high'])}]",
            _error(r["error"]),
        ]
        for r in data["rows"]
    ]
    s = data["summary"]
    fitted = "; ".join(
        f"{kind}: " + ", ".join(f"{k} {figure(v)}" for k, v in values.items())
        for kind, values in data["fitted"].items()
    )
    held = s["held_out_rows"]
    lines = [
        markdown_table(headers, rows).rstrip("\n"),
        "",
        f"fitted on the fit rows (inside the sourced ranges): {fitted or 'nothing'}",
        f"median |error|: fit rows {_percent(s['median_abs_error_fit'])}, held-out rows "
        f"{_percent(s['median_abs_error_held_out'])} ({held} rows); worst held-out ratio "
        f"{figure(s['held_out_worst_ratio'])}x; within 2x: {s['held_out_within_2x']} of {held}; published figure "
        f"inside [low, high]: {s['held_out_inside_low_high']} of {held}",
        f"({figure(data['elapsed_s'])} s; units: tokens/s per chip; simulated figures)",
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
