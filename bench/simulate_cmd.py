"""`bench simulate`: the serving projection of one model on a cluster, and the serving model's two validations
(against published results; against this host, leave-one-model-out). Parsing and printing only; the model is
backends.projection.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from bench.errors import UsageError

__all__ = ["add_serving_arguments", "run_projection", "run_serving_validation", "run_host_validation",
           "render_projection"]


def add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("serving projection (--model M --profile P)")
    g.add_argument("--profile", help="device profile (see `bench list`), e.g. ascend-910c, h100, h800, h20")
    g.add_argument("--chips", default="1", help="chips in the deployment (default 1)")
    g.add_argument("--kv-precision", help="KV-cache precision (default bf16; fp32/fp16 with those precisions)")
    g.add_argument("--input-tokens", default="1024", help="prompt length (default 1024)")
    g.add_argument("--output-tokens", default="256", help="output tokens per request (default 256)")
    g.add_argument("--tpot-slo", metavar="MS", help="TPOT bound in ms: the decode batch is searched up to it")
    g.add_argument("--ttft-slo", metavar="MS", help="TTFT bound in ms for the prefill batch")
    g.add_argument("--batch-size", help="fix the decode batch per replica instead of searching it")
    g.add_argument("--parallel", help="fix the split, e.g. tp=8,ep=32 (default: searched over TP/PP/EP)")
    g.add_argument("--mtp-acceptance", metavar="A",
                   help="multi-token prediction: one draft token accepted at rate A (e.g. 0.85)")
    g.add_argument("--overlap", choices=("on", "off"), help="two-micro-batch overlap (default: searched)")
    g.add_argument("--format", choices=("table", "json", "md"), default="table")
    v = parser.add_argument_group("serving-model validation")
    v.add_argument("--validate-serving", action="store_true",
                   help="fit on the published rows marked fit, predict every row, print errors (< 30 s)")
    v.add_argument("--write-fit", action="store_true",
                   help="with --validate-serving: write the fitted factors into backends/projection/efficiency.toml")
    v.add_argument("--validate-host", action="store_true",
                   help="measure the catalogue LMs here (or tabulate --from runs) and predict each with factors "
                        "fitted on the others (leave-one-model-out)")


def _number(name: str, raw: str | None, kind: type, minimum: float) -> Any:
    if raw is None:
        return None
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise UsageError(f"{name}: {raw!r} is not allowed; expected {what} >= {minimum:g}") from None
    if isinstance(value, float) and not math.isfinite(value) or value < minimum:
        raise UsageError(f"{name}: {raw!r} is not allowed; expected a finite number >= {minimum:g}")
    return value


def _query(args: argparse.Namespace):
    from backends.projection.project import ServingQuery

    models = args.model or []
    if len(models) != 1 or "," in models[0]:
        raise UsageError(f"--model: {','.join(models) or 'none'} is not allowed; a projection takes one model")
    precisions = args.precision or ["bf16"]
    if len(precisions) != 1 or "," in precisions[0]:
        raise UsageError(f"--precision: {','.join(precisions)} is not allowed; a projection takes one precision")
    if not args.profile:
        raise UsageError("--profile: missing; a projection needs a device profile (see `bench list`)")
    return ServingQuery(
        model=models[0], profile=args.profile, chips=_number("--chips", args.chips, int, 1),
        precision=precisions[0], kv_precision=args.kv_precision,
        input_tokens=_number("--input-tokens", args.input_tokens, int, 1),
        output_tokens=_number("--output-tokens", args.output_tokens, int, 1),
        tpot_slo_ms=_number("--tpot-slo", args.tpot_slo, float, 1e-6),
        ttft_slo_ms=_number("--ttft-slo", args.ttft_slo, float, 1e-6),
        batch_size=_number("--batch-size", args.batch_size, int, 1), parallel=args.parallel,
        mtp_acceptance=_number("--mtp-acceptance", args.mtp_acceptance, float, 0.0),
        overlap=None if args.overlap is None else args.overlap == "on")


def run_projection(args: argparse.Namespace) -> int:
    from backends.projection.project import project

    result = project(_query(args)).to_dict()
    if args.format == "json":
        print(json.dumps(result, indent=1))
    else:
        print(render_projection(result, markdown=args.format == "md"), end="")
    return 0 if result["fits"] else 1


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def _par(p: dict[str, int] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in p.items()) if p else "-"


def _phase_rows(phase: dict[str, Any] | None, rate_key: str, low: dict, high: dict, latency: str,
                per_watt: dict | None, per_k: dict | None, headline_key: str) -> list[str]:
    if phase is None:
        return ["-"] * 10
    band = f" [{_fmt(low.get(headline_key))}, {_fmt(high.get(headline_key))}]" if low else ""
    mem = phase["memory"]
    b = phase["breakdown"]
    return [
        _par(phase["parallelism"]),
        {True: "on", False: "off", None: "-"}[phase.get("overlap")],
        _fmt(phase.get("batch_per_replica", phase.get("prompts_per_replica"))),
        f"{_fmt(phase[latency])} ms",
        f"{_fmt(phase['tokens_per_s_per_chip'])}{band}",
        _fmt(phase["tokens_per_s_cluster"]),
        f"{_fmt((per_watt or {}).get(headline_key))} / {_fmt((per_k or {}).get(headline_key))}",
        f"{phase['mfu']:.2f} / {phase['mbu']:.2f}",
        f"compute {b['compute_ms']:.2f}, memory {b['memory_ms']:.2f}, comm {b['communication_ms']:.2f} "
        f"(+{b['communication_hidden_ms']:.2f} hidden), overhead {b['overhead_ms']:.2f} ms",
        f"{mem['weights_gb']:.1f} + KV {mem['kv_cache_gb']:.1f} + act {mem['activations_gb']:.1f} = "
        f"{mem['total_gb']:.1f} of {mem['usable_gb']:.1f} GB",
    ]


def render_projection(r: dict[str, Any], markdown: bool = False) -> str:
    p = r["precision"]
    head = (f"{r['model']} on {r['chips']} x {r['profile']}, {p['weights']} weights / {p['compute']} compute / "
            f"{p['kv_cache']} KV cache, {r['input_tokens']:,} in / {r['output_tokens']:,} out"
            + (f", TPOT <= {r['tpot_slo_ms']:g} ms" if r["tpot_slo_ms"] else "")
            + (f", TTFT <= {r['ttft_slo_ms']:g} ms" if r["ttft_slo_ms"] else "")
            + (f", MTP acceptance {r['mtp_acceptance']:g}" if r["mtp_acceptance"] is not None else ""))
    lines = [head, "SIMULATED: analytical serving model, not a measurement. Low/high: every efficiency factor at "
             "the pessimistic/optimistic end of its sourced range.", f"fits: {'yes' if r['fits'] else 'no'}"
             + ("" if r["fits"] else f" -- {r['note']}")]
    labels = ["parallelism", "micro-batch overlap", "batch per replica", "TPOT / TTFT", "tokens/s per chip [low, high]",
              "tokens/s cluster", "tokens/s per W / per $1k", "MFU / MBU", "step time", "memory per chip"]
    decode = _phase_rows(r["decode"], "tokens_per_s_per_chip", r["low"], r["high"], "tpot_ms", r["per_watt"],
                         r["per_1000_usd"], "decode_tokens_per_s_per_chip")
    prefill = _phase_rows(r["prefill"], "tokens_per_s_per_chip", r["low"], r["high"], "ttft_ms", r["per_watt"],
                          r["per_1000_usd"], "prefill_tokens_per_s_per_chip")
    if markdown:
        lines += ["", "| | decode (output tokens) | prefill (input tokens) |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in zip(labels, decode, prefill)]
    else:
        width = max(len(x) for x in labels)
        dwidth = max(len(x) for x in decode + ["decode (output tokens)"])
        lines += ["", f"{'':<{width}}  {'decode (output tokens)':<{dwidth}}  prefill (input tokens)"]
        lines += [f"{a:<{width}}  {b:<{dwidth}}  {c}" for a, b, c in zip(labels, decode, prefill)]
    if r["assumed_figures"]:
        lines.append(f"ASSUMED profile figures: {', '.join(r['assumed_figures'])}")
    if r["unverified_figures"]:
        lines.append(f"UNV (unverified) profile figures: {', '.join(r['unverified_figures'])}")
    if r["per_1000_usd"] is None:
        lines.append(f"per $: no sourced price for {r['profile']} (set price_usd in $CATCHUP_BENCH_PROFILES)")
    return "\n".join(lines) + "\n"


# -- validations -----------------------------------------------------------------------------------------------

def run_serving_validation(args: argparse.Namespace) -> int:
    import time

    from backends.projection.published import load_published, validate, write_fit

    began = time.perf_counter()
    published = load_published()
    result = validate(published)
    elapsed = time.perf_counter() - began
    if args.write_fit:
        write_fit(result.fitted, published.for_fitting())
        print("fitted factors written to backends/projection/efficiency.toml", file=sys.stderr)
    data = result.to_dict()
    data["elapsed_s"] = elapsed
    if args.format == "json":
        print(json.dumps(data, indent=1))
    else:
        print(render_serving_validation(data), end="")
    return 0


def render_serving_validation(data: dict[str, Any]) -> str:
    lines = ["| row | use | model | device x chips | precision | phase | bound | published | predicted [low, high] "
             "| error |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        bound = f"TPOT {r['tpot_slo_ms']:g} ms" if r["tpot_slo_ms"] else "-"
        band = f"[{_fmt(r['low'])}, {_fmt(r['high'])}]"
        error = f"{100 * r['error']:+.0f}%" if r["error"] is not None else "no fit"
        lines.append(f"| {r['id']} | {r['use']} | {r['model']} | {r['profile']} x {r['chips']} | {r['precision']} "
                     f"| {r['phase']} | {bound} | {_fmt(r['published'])} | {_fmt(r['predicted'])} {band} | {error} |")
    s = data["summary"]
    fitted = "; ".join(f"{kind}: " + ", ".join(f"{k} {v:g}" for k, v in values.items())
                       for kind, values in data["fitted"].items())
    lines += ["", f"fitted on the fit rows (inside the sourced ranges): {fitted or 'nothing'}",
              f"median |error|: fit rows {100 * (s['median_abs_error_fit'] or 0):.1f}%, held-out rows "
              f"{100 * (s['median_abs_error_held_out'] or 0):.1f}% ({s['held_out_rows']} rows); worst held-out "
              f"ratio {s['held_out_worst_ratio']:.2f}x; within 2x: {s['held_out_within_2x']} of "
              f"{s['held_out_rows']}; published figure inside [low, high]: {s['held_out_inside_low_high']} of "
              f"{s['held_out_rows']}",
              f"({data['elapsed_s']:.1f} s; units: tokens/s per chip; simulated figures)"]
    return "\n".join(lines) + "\n"


def run_host_validation(args: argparse.Namespace, run_dirs: Sequence[str] | None, out: Path | None) -> int:
    import psutil

    from backends.calibrate import host_profile
    from backends.projection.hostcheck import host_device, leave_one_model_out, rows_from_records, summarize
    from bench.store import read_run_dirs

    if run_dirs:
        records = read_run_dirs(run_dirs).records
    else:
        records = _measure_host(args, out)
    rows = rows_from_records(records)
    if len({r.model for r in rows}) < 2:
        raise UsageError("--validate-host: needs measured cpu generation cells (new_tokens >= 2, no options) of at "
                         f"least two models; found {len({r.model for r in rows})}")
    device = host_device(host_profile(), psutil.virtual_memory().total)
    results = leave_one_model_out(rows, device)
    data = {"rows": results, "summary": summarize(results),
            "host": {"peak_flops": dict(device.peak_flops), "bandwidth_bytes_s": device.bandwidth_bytes_s}}
    if args.format == "json":
        print(json.dumps(data, indent=1))
    else:
        print(render_host_validation(data), end="")
    return 0


def _measure_host(args: argparse.Namespace, out: Path | None) -> list:
    from backends.projection.hostcheck import VALIDATION_MODELS
    from bench.plan import plan_sweep
    from bench.runner import Progress, run_sweep
    from bench.spec import Matrix, MeasureSettings, Sweep, parse_name_list
    from bench.cli import fresh_store

    models = parse_name_list("--model", args.model) if args.model else VALIDATION_MODELS
    precisions = parse_name_list("--precision", args.precision) if args.precision else ("fp32", "bf16")
    matrix = Matrix(models=tuple(models), backends=("cpu",), precisions=tuple(precisions), batch_sizes=(1, 4),
                    seq_lens=(128,), new_tokens=(16,))
    settings = MeasureSettings(ci_target=0.03, max_time_s=12.0, warmup_max_time_s=8.0)
    plan = plan_sweep(Sweep((matrix,), settings))
    store = fresh_store(out)
    with store.lock():
        print(f"{len(plan.runnable)} cells -> {out}/records.jsonl", file=sys.stderr)
        run_sweep(plan.runnable, settings, store, progress=Progress(len(plan.runnable)))
    return store.latest(warn=False)


def render_host_validation(data: dict[str, Any]) -> str:
    lines = ["| model (left out) | precision | batch | prompt | TTFT measured ms | predicted | error | TPOT measured ms "
             "| predicted | error |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        lines.append(f"| {r['model']} | {r['precision']} | {r['batch']} | {r['seq_len']} | "
                     f"{1e3 * r['ttft_measured_s']:.1f} | {1e3 * r['ttft_predicted_s']:.1f} | "
                     f"{100 * r['ttft_error']:+.0f}% | {1e3 * r['tpot_measured_s']:.1f} | "
                     f"{1e3 * r['tpot_predicted_s']:.1f} | {100 * r['tpot_error']:+.0f}% |")
    s = data["summary"]
    lines += ["", f"leave-one-model-out median |error| {100 * s['median_abs_error']:.1f}% over "
              f"{s['predictions']} predictions (TTFT {100 * s['median_abs_error_ttft']:.1f}%, TPOT "
              f"{100 * s['median_abs_error_tpot']:.1f}%); worst {100 * s['max_abs_error']:.0f}%"]
    return "\n".join(lines) + "\n"
