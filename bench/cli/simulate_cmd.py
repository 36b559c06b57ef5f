"""`bench simulate`: the serving projection of one model on a cluster, and the serving model's two validations
(against published results; against this host, leave-one-model-out). Parsing and printing only; the model is
bench.projection.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from bench.cli.common import (
    DEFAULT_RESULTS_ROOT,
    EXIT_OK,
    checked_dir,
    timestamp,
)
from bench.core.errors import UsageError
from bench.core.settings import MeasureSettings
from bench.core.sweep import Sweep, parse_name_list

__all__ = [
    "add_serving_arguments",
    "run_projection",
    "run_serving_validation",
    "run_host_validation",
]


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
    g.add_argument(
        "--mtp-acceptance", metavar="A", help="multi-token prediction: one draft token accepted at rate A (e.g. 0.85)"
    )
    g.add_argument("--overlap", choices=("on", "off"), help="two-micro-batch overlap (default: searched)")
    g.add_argument(
        "--engine",
        help="serving engine (see `bench list`): trtllm, sglang, vllm, ...; mindie, vllm-ascend, sglang-ascend, "
        "cloudmatrix-infer (default: the best published stack for the device and model family)",
    )
    g.add_argument(
        "--mode",
        choices=("colocated", "disaggregated"),
        help="prefill and decode on the same chips (chunked prefill) or on separate instances (default: "
        "colocated where the engine runs it)",
    )
    g.add_argument("--spec-tokens", metavar="K", help="speculative decoding: K draft tokens per step")
    g.add_argument("--acceptance-length", metavar="L", help="tokens emitted per target step (1 <= L <= K + 1)")
    g.add_argument(
        "--spec-method",
        choices=("mtp", "eagle3", "draft"),
        help="drafter (default: mtp for MLA MoE models, else eagle3)",
    )
    g.add_argument("--draft-model", help="with --spec-method draft: the catalogue model that drafts")
    g.add_argument(
        "--search",
        choices=("engine", "any"),
        default="engine",
        help="engine (default): only configurations the engine runs; any: every split the model can express "
        "(a what-if, labelled so)",
    )
    g.add_argument("--format", choices=("table", "json", "md"), default="table")
    v = parser.add_argument_group("serving-model validation")
    v.add_argument(
        "--validate-serving",
        action="store_true",
        help="predict every published row with the committed factors; errors per row and per group (about 1 s)",
    )
    v.add_argument("--refit", action="store_true", help="with --validate-serving: fit afresh on the fit rows (~10 s)")
    v.add_argument(
        "--write-fit",
        action="store_true",
        help="with --refit: write the fitted factors into bench/projection/efficiency.toml and engines.toml",
    )
    v.add_argument(
        "--validate-host",
        action="store_true",
        help="measure the catalogue LMs here (or tabulate --from runs) and predict each with factors "
        "fitted on the others (leave-one-model-out)",
    )


def _bounded_number(name: str, raw: str | None, kind: type, minimum: float) -> Any:
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
    from bench.projection.project import ServingQuery

    models = args.model or []
    if len(models) != 1 or "," in models[0]:
        raise UsageError(f"--model: {','.join(models) or 'none'} is not allowed; a projection takes one model")
    precisions = args.precision or ["bf16"]
    if len(precisions) != 1 or "," in precisions[0]:
        raise UsageError(f"--precision: {','.join(precisions)} is not allowed; a projection takes one precision")
    if not args.profile:
        raise UsageError("--profile: missing; a projection needs a device profile (see `bench list`)")
    return ServingQuery(
        model=models[0],
        profile=args.profile,
        chips=_bounded_number("--chips", args.chips, int, 1),
        precision=precisions[0],
        kv_precision=args.kv_precision,
        input_tokens=_bounded_number("--input-tokens", args.input_tokens, int, 1),
        output_tokens=_bounded_number("--output-tokens", args.output_tokens, int, 1),
        tpot_slo_ms=_bounded_number("--tpot-slo", args.tpot_slo, float, 1e-6),
        ttft_slo_ms=_bounded_number("--ttft-slo", args.ttft_slo, float, 1e-6),
        batch_size=_bounded_number("--batch-size", args.batch_size, int, 1),
        parallel=args.parallel,
        mtp_acceptance=_bounded_number("--mtp-acceptance", args.mtp_acceptance, float, 0.0),
        overlap=None if args.overlap is None else args.overlap == "on",
        engine=args.engine,
        mode=args.mode,
        spec_tokens=_bounded_number("--spec-tokens", args.spec_tokens, int, 1),
        acceptance_length=_bounded_number("--acceptance-length", args.acceptance_length, float, 0.0),
        spec_method=args.spec_method,
        draft_model=args.draft_model,
        search=args.search,
    )


def run_projection(args: argparse.Namespace) -> int:
    from bench.projection.project import project

    result = project(_query(args)).to_dict()
    if args.format == "json":
        print(json.dumps(result, indent=1))
    else:
        from bench.output.projection import render_projection

        print(render_projection(result, markdown=args.format == "md"), end="")
    return 0 if result["fits"] else 1


# -- validations -----------------------------------------------------------------------------------------------


def run_serving_validation(args: argparse.Namespace) -> int:
    import time

    from bench.projection.published import load_published
    from bench.projection.validation import validate, write_fit

    if args.write_fit and not args.refit:
        raise UsageError("--write-fit: only with --refit (the committed factors are what --validate-serving uses)")
    began = time.perf_counter()
    published = load_published()
    result = validate(published, refit=args.refit)
    elapsed = time.perf_counter() - began
    if args.write_fit:
        write_fit(result.fitted)
        print("fitted factors written to bench/projection/efficiency.toml and engines.toml", file=sys.stderr)
    data = result.to_dict()
    data["elapsed_s"] = elapsed
    if args.format == "json":
        print(json.dumps(data, indent=1))
    else:
        from bench.output.projection import render_serving_validation

        print(render_serving_validation(data), end="")
    return 0


def run_host_validation(args: argparse.Namespace, run_dirs: Sequence[str] | None, out: Path | None) -> int:
    import psutil

    from backends.calibrate import host_profile
    from bench.projection.hostcheck import (
        host_device,
        leave_one_model_out,
        rows_from_records,
        summarize,
    )
    from bench.runs.store import read_run_dirs

    if run_dirs:
        records = read_run_dirs(run_dirs).records
    else:
        records = _measure_host(args, out)
    rows = rows_from_records(records)
    if len({r.model for r in rows}) < 2:
        raise UsageError(
            "--validate-host: needs measured cpu generation cells (new_tokens >= 2, no options) of at "
            f"least two models; found {len({r.model for r in rows})}"
        )
    device = host_device(host_profile(), psutil.virtual_memory().total)
    results = leave_one_model_out(rows, device)
    data = {
        "rows": results,
        "summary": summarize(results),
        "host": {"peak_flops": dict(device.peak_flops), "bandwidth_bytes_s": device.bandwidth_bytes_s},
    }
    if args.format == "json":
        print(json.dumps(data, indent=1))
    else:
        from bench.output.projection import render_host_validation

        print(render_host_validation(data), end="")
    return 0


def _measure_host(args: argparse.Namespace, out: Path) -> list:
    """Measure the host-validation LMs here (b1 and b4, 128-token prompts, 16 new tokens, fp32 and bf16)."""
    from bench.core.sweep import Matrix
    from bench.projection.hostcheck import VALIDATION_MODELS

    models = parse_name_list("--model", args.model) if args.model else VALIDATION_MODELS
    precisions = parse_name_list("--precision", args.precision) if args.precision else ("fp32", "bf16")
    matrix = Matrix(
        models=tuple(models),
        backends=("cpu",),
        precisions=tuple(precisions),
        batch_sizes=(1, 4),
        seq_lens=(128,),
        new_tokens=(16,),
    )
    settings = MeasureSettings(ci_target=0.03, max_time_s=12.0, warmup_max_time_s=8.0)
    return _run_validation_sweep(Sweep((matrix,), settings), out)


def _run_validation_sweep(sweep, out: Path) -> list:
    """Run a validation sweep into a new directory (bench.runs.session.run_into); its latest records."""
    from bench.output.progress import Progress
    from bench.runs.session import run_into

    progress = Progress(0)

    def before(plan, store) -> None:
        progress.total = len(plan.cells)
        print(f"{len(plan.cells)} cells -> {out}/records.jsonl", file=sys.stderr)

    done = run_into(sweep, out, progress=progress, before=before, out_field="--out", resume_hint=None)
    return done.store.latest(warn=False)


def _trace_validation_records(args: argparse.Namespace) -> list:
    """--from: the runs given; else the trace projection's validation set, measured and simulated now."""
    from bench.core.sweep import Matrix
    from bench.runs.store import read_run_dirs
    from models.catalogue import HOST_VALIDATION_MODELS

    if args.from_runs:
        return read_run_dirs(args.from_runs).records
    models = parse_name_list("--model", args.model) if args.model else HOST_VALIDATION_MODELS
    precisions = parse_name_list("--precision", args.precision) if args.precision else ("fp32",)
    matrix = Matrix(
        models=tuple(models),
        backends=("simulated",),
        precisions=tuple(precisions),
        batch_sizes=(1,),
        seq_lens=(128,),
        new_tokens=(8,),
        options=((("profile", "h100"), ("projection", "trace")),),
    )
    settings = MeasureSettings(ci_target=0.03, max_time_s=10.0, warmup_max_time_s=10.0)
    out = checked_dir("--out", args.out) if args.out is not None else DEFAULT_RESULTS_ROOT / ("validate-" + timestamp())
    return _run_validation_sweep(Sweep((matrix,), settings), out)


def run_trace_validation(args: argparse.Namespace) -> int:
    """`--validate` (or `--from`): the trace projection predicted vs measured on this host, a fit of its
    factors, and -- after a measured run of the whole set -- the stored summary that bands meta-device traces."""
    from backends.calibrate import host_profile
    from backends.trace_projection import write_validation_summary
    from bench.analysis.simvalidate import fit_host_factors, median_abs_error, validation_rows
    from bench.output.analyses import render_validation
    from models.catalogue import HOST_VALIDATION_MODELS, get_workload

    rows = validation_rows(_trace_validation_records(args))
    if not rows:
        raise UsageError("bench simulate: no simulated record with a host validation in these runs")
    fit = fit_host_factors(rows) if not args.no_fit else None
    print(render_validation(rows, fit), end="")
    if args.from_runs:  # reading never writes: the stored summary comes only from a measured --validate
        return EXIT_OK
    models_run = sorted({r.record.spec.workload for r in rows})
    if {get_workload(m).name for m in HOST_VALIDATION_MODELS} - set(models_run):
        print(
            "summary not stored: a subset of the validation set (the stored band comes from the whole set)",
            file=sys.stderr,
        )
        return EXIT_OK
    path = write_validation_summary(
        {
            "median_abs_error": median_abs_error([r.error for r in rows]),
            "cells": len(rows),
            "models": models_run,
            "host_key": host_profile()["key"],
            "fit": {k: v for k, v in (fit or {}).items() if k != "errors"} or None,
        }
    )
    print(f"summary (used as the band of meta-device estimates on this host): {path}", file=sys.stderr)
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    if args.validate_serving:
        return run_serving_validation(args)
    if args.validate_host:
        out = Path(args.out) if args.out else DEFAULT_RESULTS_ROOT / ("validate-host-" + timestamp())
        return run_host_validation(args, args.from_runs, out)
    if args.profile or (args.model and not args.validate):
        return run_projection(args)
    if not args.validate and not args.from_runs:
        raise UsageError(
            "bench simulate: nothing to do; give --model M --profile P (serving projection), "
            "--validate-serving, --validate-host, --validate (trace projection) or --from RUN_DIR"
        )
    return run_trace_validation(args)


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    from models.catalogue import HOST_VALIDATION_MODELS

    p_sim = sub.add_parser(
        "simulate",
        help="project LLM serving on a cluster, and validate the projections (simulated figures)",
        description="With --model M --profile P: the serving model's projection of M on --chips chips of P -- "
        "the parallelism and batch with the most decode output tokens/s per chip within --tpot-slo, and the most "
        "prefill input tokens/s per chip within --ttft-slo, with TPOT, TTFT, per chip / cluster / W / $, MFU, "
        "MBU, where a step's time goes, memory per chip and low/high figures (exit 1 when nothing fits). "
        "--validate-serving predicts the published serving results in bench/projection/published_serving.toml "
        "(fitting only on the rows marked fit); --validate-host does the same against LMs measured here, "
        "leave-one-model-out. --validate runs the trace projection's validation set ("
        + ", ".join(HOST_VALIDATION_MODELS)
        + "; b1, 128 tokens, 8 new tokens) as simulated cells, each measured here and predicted with the host's "
        "calibrated profile; --from tabulates existing runs instead (with --validate-host: measured runs).",
        epilog="Example: bench simulate --model deepseek-r1 --profile ascend-910c --chips 32 --precision int8 "
        "--input-tokens 4096 --output-tokens 1024 --tpot-slo 50 --format json",
    )
    p_sim.add_argument("--validate", action="store_true", help="run the trace projection's validation set now")
    p_sim.add_argument("--from", dest="from_runs", nargs="+", metavar="RUN_DIR", help="tabulate these runs instead")
    p_sim.add_argument("--model", "-m", action="append", help="the model to project, or the validation models")
    p_sim.add_argument(
        "--precision",
        "-p",
        action="append",
        help="projection: bf16 (default), fp16, fp8, int8 (W8A8), int4 (weight-only), fp32; "
        "--validate: fp32 and/or bf16",
    )
    p_sim.add_argument("--out", "-o", help="run directory for --validate / --validate-host measurements")
    p_sim.add_argument("--no-fit", action="store_true", help="--validate: skip the efficiency-factor fit")
    add_serving_arguments(p_sim)
    p_sim.set_defaults(func=_cmd_simulate)
