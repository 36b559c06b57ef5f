"""`bench run`: flags and sweep files into a sweep, planned, locked and run into a run directory."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections import Counter
from pathlib import Path

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
from bench.cli.run_sweep_args import build_sweep
from bench.core.errors import UsageError
from bench.core.settings import MeasureSettings
from bench.core.spec import ALL_BACKENDS, PRECISIONS
from bench.core.sweep import (
    Sweep,
)


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
    sweep, is_default = build_sweep(args)
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
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
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


def _duration(seconds: float) -> str:
    return f"~{seconds / 3600:.1f} h" if seconds >= 3600 else f"~{seconds / 60:.0f} min"


def _estimate_text(plan, settings: MeasureSettings) -> str:
    """How long the plan takes: at most, per measured cell, its warm-up and timed-loop limits plus start-up; a
    remote cell (a serving engine's load) takes as long as its requests do, at least `Backend.least_seconds`."""
    from backends.registry import backend_class

    kinds = [backend_class(spec.backend).capabilities for spec in plan.runnable]
    remote = [spec for spec, caps in zip(plan.runnable, kinds) if caps.remote]
    measured = sum(1 for caps in kinds if not caps.simulated and not caps.remote)
    simulated = sum(1 for caps in kinds if caps.simulated)
    seconds = measured * (settings.warmup_max_time_s + settings.max_time_s + 10) + simulated * 10
    text = f"at most {_duration(seconds)}"
    if remote:
        least = sum(backend_class(spec.backend).least_seconds(spec) for spec in remote)
        text += f" + {len(remote)} remote cell(s) that take as long as their requests do"
        text += f" (at least {_duration(least)} at their request rates)" if least >= 60 else ""
    return text


def _report_run(done, out: Path) -> int:
    """The table of the cells this run planned, where the records and LoadGen logs are, and the exit status."""
    from bench.output.failures import render_failures
    from bench.output.render import render

    plan, result, store = done.plan, done.result, done.store
    if result.skipped:
        print(f"resume: {result.skipped} cells already ok in {out}, not rerun", file=sys.stderr)
    planned = {spec.key for spec in plan.cells}
    shown = [r for r in store.latest(warn=False) if r.spec.key in planned]
    print(render(shown, "table"), end="")
    failures = render_failures(shown)
    if failures:
        print(failures, end="" if failures.endswith("\n") else "\n", file=sys.stderr)
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
    _add_cell_arguments(p_run)
    _add_run_arguments(p_run)
    _add_measure_arguments(p_run)
    _add_loadgen_arguments(p_run)
    p_run.set_defaults(func=_cmd_run)


def _add_cell_arguments(p_run) -> None:
    """What the sweep's cells are: models, backends, precisions, shapes, options, scenario, weights."""
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


def _add_run_arguments(p_run) -> None:
    """Where records go and how cells are run: --out, --resume, --yes, --quiet, the executor."""
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


def _add_measure_arguments(p_run) -> None:
    """The measurement protocol's settings (warm-up, stopping rule, timeout)."""
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


def _add_loadgen_arguments(p_run) -> None:
    """LoadGen server parameters (cell axes) and run-length settings."""
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
    _add_loadgen_run_length(lg_group)


def _add_loadgen_run_length(lg_group) -> None:
    """How long each LoadGen scenario runs (not part of the cell)."""
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
