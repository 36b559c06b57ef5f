"""`bench run`: flags and sweep files into a sweep, planned, locked and run into a run directory."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from bench.cli.common import (
    DEFAULT_RESULTS_ROOT,
    EXIT_FAILED_CELLS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STORE_FAILED,
    checked_dir,
    parse_number,
    timestamp,
)
from bench.core.errors import UsageError, invalid_value
from bench.core.spec import (
    ALL_BACKENDS,
    PRECISIONS,
    SCENARIOS,
    MeasureSettings,
    Sweep,
    load_sweep,
    matrix_from_mapping,
    parse_choice_list,
    parse_int_list,
    parse_name_list,
    parse_option_flags,
)

_MEASURE_FLAGS = {
    "warmup_iterations": "--warmup-iterations",
    "warmup_time_s": "--warmup-time",
    "warmup_window": "--warmup-window",
    "warmup_max_time_s": "--warmup-max-time",
    "min_iterations": "--min-iterations",
    "min_time_s": "--min-time",
    "ci_target": "--ci-target",
    "max_iterations": "--max-iterations",
    "max_time_s": "--max-time",
    "timeout_s": "--timeout",
}


_LOADGEN_FLAGS = {
    "min_duration_s": ("--lg-min-duration", float),
    "min_queries": ("--lg-min-queries", int),
    "max_duration_s": ("--lg-max-duration", float),
    "expected_latency_ms": ("--lg-expected-latency", float),
    "seed": ("--lg-seed", int),
    "search_steps": ("--lg-search-steps", int),
}


def _loadgen_settings(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    """The sweep's LoadGen settings with the command line's --lg-* flags applied (messages name the flag)."""
    from bench.core.spec import LoadGenSettings

    values = dict(base)
    for name, (flag, kind) in _LOADGEN_FLAGS.items():
        raw = getattr(args, "lg_" + name)
        if raw is not None:
            values[name] = parse_number(flag, raw, kind)
    if args.lg_official:
        values["official"] = True
    if args.lg_no_accuracy:
        values["accuracy"] = False
    try:
        LoadGenSettings(**values)
    except UsageError as exc:
        message = str(exc)
        for name, (flag, _) in _LOADGEN_FLAGS.items():
            if message.startswith(name + ":"):
                message = flag + message[len(name) :]
        raise UsageError(message) from None
    return values


def _measure_settings(args: argparse.Namespace, base: MeasureSettings) -> MeasureSettings:
    values = base.to_dict()
    values["loadgen"] = _loadgen_settings(args, values["loadgen"])
    for name, flag in _MEASURE_FLAGS.items():
        raw = getattr(args, name)
        if raw is not None:
            values[name] = parse_number(flag, raw, int if name.endswith(("iterations", "window")) else float)
    try:
        return MeasureSettings(**values)
    except UsageError as exc:
        message = str(exc)
        for name, flag in _MEASURE_FLAGS.items():
            if message.startswith(name + ":"):
                message = flag + message[len(name) :]
        raise UsageError(message) from None


def _matrix_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The matrix keys given on the command line, parsed and checked, in the TOML file's vocabulary."""
    given: dict[str, Any] = {}
    if args.model:
        given["model"] = list(parse_name_list("--model", args.model))
    if args.backend:
        given["backend"] = list(parse_name_list("--backend", args.backend))
    if args.precision:
        given["precision"] = list(parse_choice_list("--precision", args.precision, PRECISIONS))
    if args.weights is not None:
        if not args.weights.strip():
            raise UsageError("--weights: '' is not allowed; expected a directory with config.json and *.safetensors")
        given["weights"] = args.weights
    for key, flag in (
        ("batch_size", "--batch-size"),
        ("seq_len", "--seq-len"),
        ("new_tokens", "--new-tokens"),
        ("threads", "--threads"),
    ):
        raw = getattr(args, key)
        if raw:
            given[key] = list(parse_int_list(flag, raw))
    if args.option:
        given["options"] = parse_option_flags("--option", args.option)
        if "threads" in given and "threads" in given["options"]:
            raise UsageError("--threads: given twice (also as -O threads=...); give it once")
    if args.scenario:
        given["scenario"] = list(parse_choice_list("--scenario", args.scenario, SCENARIOS))
    load = _load_flags(args)
    if load:
        given["load"] = load
    if args.profile:
        if "profile" in given.get("options", {}):
            raise UsageError("--profile: given twice (also as -O profile=...); give it once")
        given.setdefault("options", {})["profile"] = list(parse_name_list("--profile", args.profile))
    return given


_LOAD_FLAGS = {
    "target_qps": "--target-qps",
    "latency_ms": "--latency-bound",
    "ttft_ms": "--ttft-bound",
    "tpot_ms": "--tpot-bound",
}


def _load_flags(args: argparse.Namespace) -> dict[str, list[Any]]:
    """Server parameters from the command line: numbers > 0 (target_qps also "max"), comma lists allowed."""
    from bench.core.spec import SEARCH_QPS, parse_option_value

    load: dict[str, list[Any]] = {}
    for key, flag in _LOAD_FLAGS.items():
        raw = getattr(args, key)
        if not raw:
            continue
        values = []
        for text in (part.strip() for item in raw for part in item.split(",")):
            value = parse_option_value(text)
            if key == "target_qps" and value == SEARCH_QPS:
                values.append(value)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                extra = f' or "{SEARCH_QPS}"' if key == "target_qps" else ""
                raise invalid_value(flag, text, f"a number > 0{extra}")
            values.append(value)
        load[key] = values
    return load


def _default_suite() -> Sweep:
    from bench.core.spec import sweep_from_mapping

    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    text = resources.files("bench").joinpath("suites/default.toml").read_text(encoding="utf-8")
    return sweep_from_mapping(tomllib.loads(text), where="default suite")


def _build_sweep(args: argparse.Namespace) -> tuple[Sweep, bool]:
    """The sweep to run and whether it is the default suite."""
    flags = _matrix_flags(args)
    if args.sweep:
        sweep = load_sweep(args.sweep)
        if flags:  # command-line values replace those keys in every matrix of the file
            matrices = tuple(
                matrix_from_mapping(_with_flags(_matrix_as_mapping(m), flags), where="command line")
                for m in sweep.matrices
            )
            sweep = Sweep(matrices, sweep.measure)
        return Sweep(sweep.matrices, _measure_settings(args, sweep.measure)), False
    if not flags:
        suite = _default_suite()
        return Sweep(suite.matrices, _measure_settings(args, suite.measure)), True
    if "model" not in flags:
        raise UsageError("--model: missing; name at least one model (see `bench list`), or give a SWEEP.toml")
    matrix = matrix_from_mapping({"backend": ["cpu"], **flags}, where="command line")
    return Sweep((matrix,), _measure_settings(args, MeasureSettings())), False


def _matrix_as_mapping(matrix) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": list(matrix.models),
        "backend": list(matrix.backends),
        **({"precision": list(matrix.precisions)} if matrix.precisions else {}),
        "batch_size": list(matrix.batch_sizes),
        "seq_len": list(matrix.seq_lens),
    }
    if matrix.weights:
        data["weights"] = matrix.weights
    tokens = [n for n in matrix.new_tokens if n is not None]
    if tokens:
        data["new_tokens"] = tokens
    axes = _axes_of(matrix.options)  # the matrix holds the product of its option axes; recover the axes
    if matrix.scenarios != ("latency",):
        data["scenario"] = list(matrix.scenarios)
    load = _axes_of(matrix.loads)
    if load:
        data["load"] = load
    if "threads" in axes:
        data["threads"] = axes.pop("threads")
    if axes:
        data["options"] = axes
    return data


def _axes_of(sets) -> dict[str, list[Any]]:
    """{key: [values]} from a product of (key, value) sets."""
    axes: dict[str, list[Any]] = {}
    for pairs in sets:
        for key, value in pairs:
            if value not in axes.setdefault(key, []):
                axes[key].append(value)
    return axes


def _with_flags(mapping: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """A sweep file's matrix with the command line's keys replacing its own; options and load merge key by key."""
    merged = {**mapping, **flags}
    for table in ("options", "load"):
        if table in flags:
            merged[table] = {**mapping.get(table, {}), **flags[table]}
    return merged


def _output_dir(args: argparse.Namespace) -> Path:
    if args.out is not None:
        return checked_dir("--out", args.out)
    return DEFAULT_RESULTS_ROOT / timestamp()


def _point_latest(directory: Path) -> None:
    """Best effort: results/latest -> the newest default run directory."""
    link = DEFAULT_RESULTS_ROOT / "latest"
    try:
        if link.is_symlink():
            link.unlink()
        if not link.exists():
            link.symlink_to(directory.name)
    except OSError:
        pass


def _cmd_run(args: argparse.Namespace) -> int:
    sweep, is_default = _build_sweep(args)
    executor = _executor(args)
    try:
        return _run_planned(args, sweep, executor)
    finally:
        if executor is not None:
            executor.close()


def _executor(args: argparse.Namespace):
    """None for the local executor (the default); a connected RayExecutor for --executor ray."""
    if args.executor == "local":
        if args.ray_address or args.ray_retries is not None:
            raise UsageError("--ray-address/--ray-retries: only with --executor ray")
        return None
    from bench.runs.ray_executor import RayExecutor

    retries = 1 if args.ray_retries is None else parse_number("--ray-retries", args.ray_retries, int)
    executor = RayExecutor(address=args.ray_address, retries=retries)
    executor.connect()
    return executor


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a CI job cancelled, `kill`) takes the same path as Ctrl-C: stop, clean up, keep the records."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _warn_if_busy() -> None:
    """One line on stderr when other processes already keep this host's CPUs busy (timings would suffer)."""
    from bench.core.hostload import busy_host_warning

    warning = busy_host_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def _print_plan_notes(plan) -> None:
    for name, reason in plan.skipped_backends.items():
        print(f"note: backend {name} left out: {reason}", file=sys.stderr)
    for (backend, reason), count in _left_out_summary(plan).items():
        print(f"note: {count} cell(s) left out on backend {backend}: {reason}", file=sys.stderr)
    for reason, count in Counter(plan.unavailable.values()).items():
        print(f"note: {count} cell(s) unavailable here, recorded as such: {reason}", file=sys.stderr)


def _run_planned(args: argparse.Namespace, sweep: Sweep, executor) -> int:
    """Plan, run into the output directory (bench.runs.session.run_into), then show what was run."""
    from bench.output.progress import Progress
    from bench.runs.session import MAX_CELLS, run_into
    from bench.runs.store import RunStore

    out = _output_dir(args)

    def before(plan, store) -> None:
        _print_plan_notes(plan)
        if not args.out:
            _point_latest(out)
        print(
            f"{len(plan.cells)} cells ({_estimate_text(plan, sweep.measure)}) -> {out}/records.jsonl", file=sys.stderr
        )
        _warn_if_busy()
        progress.total = len(plan.cells)

    progress = Progress(0, enabled=not args.quiet)
    try:
        with _sigterm_as_interrupt():
            done = run_into(
                sweep,
                out,
                executor,
                resume=args.resume,
                progress=progress,
                max_cells=None if args.yes else MAX_CELLS,
                before=before,
                out_field="--out",
                resume_hint="--resume",
            )
    except KeyboardInterrupt:
        kept = len(RunStore(out).read(warn=False).records)
        print(f"\ninterrupted: {kept} records kept in {out}; rerun with --resume to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # the disk filled (ENOSPC) or the directory went away while appending
        store = RunStore(out)
        kept = len(store.read(warn=False).records) if store.exists() else 0
        print(
            f"\nbench run: error: cannot append to {store.path}: {exc.strerror or exc}; {kept} records kept; "
            "free space and rerun with --resume to finish",
            file=sys.stderr,
        )
        return EXIT_STORE_FAILED
    return _report_run(done, out)


def _estimate_text(plan, settings: MeasureSettings) -> str:
    """At most how long the plan takes: per measured cell its warm-up and timed-loop limits plus start-up."""
    from backends.registry import backend_class

    measured = sum(1 for spec in plan.runnable if not backend_class(spec.backend).capabilities.simulated)
    simulated = len(plan.runnable) - measured
    seconds = measured * (settings.warmup_max_time_s + settings.max_time_s + 10) + simulated * 10
    return f"at most ~{seconds / 3600:.1f} h" if seconds >= 3600 else f"at most ~{seconds / 60:.0f} min"


def _report_run(done, out: Path) -> int:
    """The table of the cells this run planned, where the records and LoadGen logs are, and the exit status."""
    from bench.output.render import render

    plan, result, store = done.plan, done.result, done.store
    if result.skipped:
        print(f"resume: {result.skipped} cells already ok in {out}, not rerun", file=sys.stderr)
    planned = {spec.key for spec in plan.cells}
    shown = [r for r in store.latest(warn=False) if r.spec.key in planned]
    print(render(shown, "table"), end="")
    print(f"records: {store.path}", file=sys.stderr)
    logs = sorted(
        {str(out / r.loadgen["logs"]).rsplit("/", 1)[0] for r in shown if r.loadgen and r.loadgen.get("logs")}
    )
    for directory in logs:
        print(f"LoadGen logs: {directory}", file=sys.stderr)
    if not plan.runnable:
        reason = next(iter(plan.unavailable.values()))
        raise UsageError(f"backend: nothing requested can run here ({reason}); unavailable records written to {out}")
    return EXIT_FAILED_CELLS if result.failed else EXIT_OK


def _left_out_summary(plan) -> Counter:
    return Counter((spec.backend, reason) for spec, reason in plan.left_out)


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    p_run = sub.add_parser(
        "run",
        help="run a sweep (default: the default suite into results/<timestamp>/)",
        description="Run the product of the given values, one isolated worker process per cell. Each of "
        "--model/--backend/--precision/--batch-size/--seq-len/--new-tokens/--threads may repeat or take a comma "
        "list. With neither SWEEP nor --model, runs the default suite. Flags given with SWEEP replace those "
        "keys in every matrix of the file.",
    )
    p_run.add_argument("sweep", nargs="?", metavar="SWEEP.toml", help="sweep file (see docs/CLI.md: Sweep files)")
    p_run.add_argument("--model", "-m", action="append", help="workload name or alias (see `bench list`)")
    p_run.add_argument(
        "--backend",
        "-b",
        action="append",
        help=f"backend name (see `bench list`), or {ALL_BACKENDS!r} for every available measured one (default: cpu)",
    )
    p_run.add_argument("--precision", "-p", action="append", help=f"one of {', '.join(PRECISIONS)} (default: fp32)")
    p_run.add_argument("--batch-size", action="append", dest="batch_size", help="sequences per call (default: 1)")
    p_run.add_argument("--seq-len", action="append", dest="seq_len", help="input tokens per sequence (default: 128)")
    p_run.add_argument(
        "--new-tokens",
        action="append",
        dest="new_tokens",
        help="generated tokens per sequence, generation workloads only (default: the workload's)",
    )
    p_run.add_argument("--threads", action="append", help="CPU threads (backend option; default: all usable CPUs)")
    p_run.add_argument(
        "--option",
        "-O",
        action="append",
        metavar="KEY=V[,V...]",
        help="backend option, repeatable; several values make a sweep axis, e.g. -O compile=none,default"
        " -O provider=cpu (see `bench list` for each backend's options)",
    )
    p_run.add_argument(
        "--profile",
        action="append",
        metavar="NAME",
        help="device profile for simulated backends (same as -O profile=NAME; see `bench list`)",
    )
    p_run.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="how load is offered: latency (the timed loop, default) or an MLPerf LoadGen scenario: "
        "single-stream, multi-stream, server, offline (needs catchup-bench[loadgen]); comma list sweeps",
    )
    p_run.add_argument(
        "--weights",
        metavar="DIR",
        help="real weights: a local directory with config.json and *.safetensors (never pickle)",
    )
    p_run.add_argument("--out", "-o", help="run directory (default: results/<timestamp>/)")
    p_run.add_argument("--resume", action="store_true", help="skip cells already ok in --out; rerun the rest")
    p_run.add_argument(
        "--yes",
        action="store_true",
        help="run a sweep of more than 2,000 cells (refused without it; the count and a time estimate "
        "are printed first)",
    )
    p_run.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p_run.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: one isolated worker process per cell, one cell at a time (default); ray: each "
        "cell a Ray task on a cluster, records streamed back here (needs catchup-bench[ray])",
    )
    p_run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join, e.g. ray://head:10001 or auto (default: start a local instance)",
    )
    p_run.add_argument(
        "--ray-retries",
        metavar="N",
        help="times Ray reruns a cell whose worker or node died before it is recorded failed (default 1)",
    )
    measure = p_run.add_argument_group(
        "measurement",
        "Warm-up: >= 3 calls and 1 s, then windows of 5 calls until two medians in a row move < 2% "
        "(at most 20 s). Timed loop: >= 10 calls and 2 s and the median's 95% interval within +-1%, at most "
        "10000 calls or 60 s. Worker timeout 900 s.",
    )
    measure.add_argument("--warmup-iterations", metavar="N")
    measure.add_argument("--warmup-time", metavar="SECONDS", dest="warmup_time_s")
    measure.add_argument("--warmup-window", metavar="N", help="calls per stability window (0: no stability rule)")
    measure.add_argument("--warmup-max-time", metavar="SECONDS", dest="warmup_max_time_s")
    measure.add_argument("--min-iterations", metavar="N")
    measure.add_argument("--min-time", metavar="SECONDS", dest="min_time_s")
    measure.add_argument(
        "--ci-target",
        metavar="FRACTION",
        dest="ci_target",
        help="stop once the median's 95%% interval is within +-FRACTION (default 0.01; 0: off)",
    )
    measure.add_argument("--max-iterations", metavar="N")
    measure.add_argument("--max-time", metavar="SECONDS", dest="max_time_s")
    measure.add_argument(
        "--timeout", metavar="SECONDS", dest="timeout_s", help="kill a cell's worker after this long (build + measure)"
    )
    lg_group = p_run.add_argument_group(
        "LoadGen scenarios",
        "Server parameters are part of the cell (sweep axes); the --lg-* settings say how long "
        "each scenario runs. Quick defaults: at least 5 s and the queries early stopping needs (single-stream 64, "
        "multi-stream and server 662, offline 1 query), at most 300 s. --lg-official: MLPerf's rules (600 s; 1024 / "
        "270336 / 270336 / 1 queries). Batch size: single-stream 1; multi-stream = samples per query (MLPerf: 8); "
        "offline and server: the most samples run as one batch.",
    )
    lg_group.add_argument(
        "--target-qps",
        action="append",
        dest="target_qps",
        metavar="QPS",
        help="server: Poisson arrival rate, or 'max' to search for the highest valid rate",
    )
    lg_group.add_argument(
        "--latency-bound",
        action="append",
        dest="latency_ms",
        metavar="MS",
        help="server: p99 latency bound in ms (default 100)",
    )
    lg_group.add_argument(
        "--ttft-bound",
        action="append",
        dest="ttft_ms",
        metavar="MS",
        help="server, LMs: p99 time-to-first-token bound in ms (default 2000, MLPerf Llama 2 70B)",
    )
    lg_group.add_argument(
        "--tpot-bound",
        action="append",
        dest="tpot_ms",
        metavar="MS",
        help="server, LMs: p99 time-per-output-token bound in ms (default 200, MLPerf Llama 2 70B)",
    )
    lg_group.add_argument("--lg-min-duration", dest="lg_min_duration_s", metavar="SECONDS", help="default 5")
    lg_group.add_argument(
        "--lg-min-queries",
        dest="lg_min_queries",
        metavar="N",
        help="default: the scenario's early-stopping minimum (above)",
    )
    lg_group.add_argument(
        "--lg-max-duration", dest="lg_max_duration_s", metavar="SECONDS", help="default 300; 0: no limit"
    )
    lg_group.add_argument(
        "--lg-expected-latency",
        dest="lg_expected_latency_ms",
        metavar="MS",
        help="latency LoadGen plans with (default: the warm-up's median call latency)",
    )
    lg_group.add_argument("--lg-seed", dest="lg_seed", metavar="N", help="LoadGen's qsl, sample and schedule seeds")
    lg_group.add_argument(
        "--lg-search-steps",
        dest="lg_search_steps",
        metavar="N",
        help="server --target-qps max: bisection runs after the first (default 5)",
    )
    lg_group.add_argument("--lg-official", action="store_true", help="MLPerf's run length rules (long)")
    lg_group.add_argument(
        "--lg-no-accuracy", action="store_true", help="skip the AccuracyOnly run that feeds the accuracy guard"
    )
    p_run.set_defaults(func=_cmd_run)
