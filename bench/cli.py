"""The `bench` command line. Argument parsing only: the work is done by plan, runner, store and render.

Exit status: 0 success; 1 a cell failed (its record says why); 2 bad input (one line on stderr, nothing run,
nothing written); 130 interrupted (finished cells are kept; rerun with --resume).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import signal
import sys
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn, Sequence

from bench import __version__
from bench.errors import UsageError, invalid_value
from bench.spec import (
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

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE, EXIT_STORE_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

DEFAULT_RESULTS_ROOT = Path("results")
#: Cells a sweep may plan without --yes (a larger one is almost always a typo in a value list).
MAX_CELLS = 2_000


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -------------------------------------------------------------------------------------------------------
# bench list


def _size(count: float) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e9 else f"{count / 1e6:.1f}M"


def _workload_rows() -> list[dict[str, Any]]:
    from models.catalogue import WORKLOADS
    from models.facts import describe

    rows = []
    for w in WORKLOADS.values():
        facts = describe(w)
        rows.append({
            "name": w.name, "aliases": list(w.aliases), "task": w.task, "family": w.family,
            "max_positions": w.max_positions, "image_size": w.image_size,
            "default_new_tokens": w.default_new_tokens, "tiny_of": w.tiny_of, "mixture_of_experts": w.is_moe,
            "parameters": facts.total_parameters, "active_parameters": facts.active_parameters,
            "active_parameters_with_embedding": facts.active_parameters_with_embedding,
            "published_parameters": w.published_parameters, "published_active_parameters": w.published_active,
            "weight_bytes": facts.weight_bytes, "memory_needed_bytes": facts.memory_needed_bytes,
            "fits_here": facts.fits_here, "machine_memory_bytes": facts.machine_memory_bytes,
            "weights_package": w.weights_package, "description": w.description, "source": w.source,
        })
    return rows


def _cmd_list(args: argparse.Namespace) -> int:
    from backends.registry import backend_class, backend_names

    workloads = _workload_rows()
    backends = []
    for name in backend_names():
        cls = backend_class(name)
        availability = cls.probe()
        backends.append({
            "name": name, "available": availability.available, "reason": availability.reason,
            "variants": {label: {"available": v.available, "reason": v.reason} for label, v in cls.variants().items()},
            "precisions": list(cls.capabilities.precisions), "options": list(cls.capabilities.options),
            "simulated": cls.capabilities.simulated, "summary": cls.summary,
        })
    from backends.profiles import load_profiles

    profiles = [p.to_dict() for p in load_profiles().values()]
    extras = _extras()
    if args.format == "json":
        print(json.dumps({"workloads": workloads, "backends": backends, "profiles": profiles, "extras": extras},
                         indent=2))
        return EXIT_OK
    gib = 1 << 30
    print(f"Workloads (memory here: {workloads[0]['machine_memory_bytes'] / gib:.0f} GiB; 'fits' = estimated "
          "need <= that, fp32/bf16):")
    print(f"  {'name':<34} {'task':<14} {'params':>8} {'active':>8} {'bf16 GiB':>9} {'fits':<8} description")
    for w in workloads:
        alias = f" (alias {', '.join(w['aliases'])})" if w["aliases"] else ""
        fits = "/".join("yes" if w["fits_here"][p] else "no" for p in ("fp32", "bf16"))
        print(f"  {w['name']:<34} {w['task']:<14} {_size(w['parameters']):>8} {_size(w['active_parameters']):>8} "
              f"{w['weight_bytes']['bf16'] / gib:>9.2f} {fits:<8} {w['description']}{alias}")
    print("\nBackends:")
    for b in backends:
        state = "available" if b["available"] else f"unavailable: {b['reason']}"
        print(f"  {b['name']:<12} {b['summary']}\n  {'':<12} {state}; precisions {','.join(b['precisions'])}; "
              f"options {','.join(b['options']) or '-'}")
        for label, v in b["variants"].items():
            print(f"  {'':<12}   {label}: {'available' if v['available'] else 'unavailable: ' + str(v['reason'])}")
    print("\nOptional extras:")
    for name, extra in extras.items():
        state = "available" if extra["available"] else f"unavailable: {extra['reason']}"
        print(f"  {name:<12} {extra['summary']}\n  {'':<12} {state}")
    print("\nDevice profiles for simulation (backends/profiles.toml; --backend simulated --profile NAME; "
          "status: OFF vendor, 3P third party, DER derived, UNV unverified, ASSUMED):")
    print(f"  {'name':<14} {'bf16 TFLOPS':>12} {'int8 TOPS':>10} {'memory GB':>10} {'TB/s':>6} {'TDP W':>6} "
          f"{'price USD':>10} {'scale-up GB/s x chips':>22}  device")
    for p in profiles:
        peak = p["peak_tflops"]
        price = p["price_usd"]["value"]
        print(f"  {p['key']:<14} {peak['bf16']['value']:>7g} {peak['bf16']['status']:<4} "
              f"{peak['int8']['value']:>6g} {peak['int8']['status']:<3} {p['memory_gb']['value']:>10g} "
              f"{p['bandwidth_tbs']['value']:>6g} {p['tdp_w']['value']:>6g} "
              f"{'-' if price is None else format(price, ',.0f'):>10} {_link(p):>22}  {p['name']}")
    return EXIT_OK


def _link(profile: dict[str, Any]) -> str:
    """Scale-up bandwidth per direction x domain size, for `bench list` ("-" without interconnect figures)."""
    link = profile.get("interconnect")
    if not link:
        return "-"
    return f"{link['scaleup_gbs']['value']:g} x {link['scaleup_domain']['value']:g}"


def _extras() -> dict[str, dict[str, Any]]:
    """The optional extras and whether they can be used here (import checks only)."""
    from bench.loadgen import loadgen_unavailable_reason
    from bench.ray_executor import ray_unavailable_reason

    found = {}
    for name, summary, reason in (
            ("loadgen", "MLPerf LoadGen scenarios (--scenario single-stream|multi-stream|server|offline)",
             loadgen_unavailable_reason()),
            ("ray", "the Ray executor (--executor ray)", ray_unavailable_reason())):
        found[name] = {"available": reason is None, "reason": reason, "summary": summary}
    return found


# -------------------------------------------------------------------------------------------------------
# bench run

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


def _number(flag: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        expected = "a whole number" if kind is int else "a number of seconds"
        raise invalid_value(flag, raw, expected) from None


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
    from bench.spec import LoadGenSettings

    values = dict(base)
    for name, (flag, kind) in _LOADGEN_FLAGS.items():
        raw = getattr(args, "lg_" + name)
        if raw is not None:
            values[name] = _number(flag, raw, kind)
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
                message = flag + message[len(name):]
        raise UsageError(message) from None
    return values


def _measure_settings(args: argparse.Namespace, base: MeasureSettings) -> MeasureSettings:
    values = base.to_dict()
    values["loadgen"] = _loadgen_settings(args, values["loadgen"])
    for name, flag in _MEASURE_FLAGS.items():
        raw = getattr(args, name)
        if raw is not None:
            values[name] = _number(flag, raw, int if name.endswith(("iterations", "window")) else float)
    try:
        return MeasureSettings(**values)
    except UsageError as exc:
        message = str(exc)
        for name, flag in _MEASURE_FLAGS.items():
            if message.startswith(name + ":"):
                message = flag + message[len(name):]
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
    for key, flag in (("batch_size", "--batch-size"), ("seq_len", "--seq-len"), ("new_tokens", "--new-tokens"),
                      ("threads", "--threads")):
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


_LOAD_FLAGS = {"target_qps": "--target-qps", "latency_ms": "--latency-bound", "ttft_ms": "--ttft-bound",
               "tpot_ms": "--tpot-bound"}


def _load_flags(args: argparse.Namespace) -> dict[str, list[Any]]:
    """Server parameters from the command line: numbers > 0 (target_qps also "max"), comma lists allowed."""
    from bench.spec import SEARCH_QPS, parse_option_value

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
    from bench.spec import sweep_from_mapping

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
                matrix_from_mapping(_with_flags(_matrix_as_mapping(m), flags), where="command line") for m in sweep.matrices
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
        "model": list(matrix.models), "backend": list(matrix.backends), "precision": list(matrix.precisions),
        "batch_size": list(matrix.batch_sizes), "seq_len": list(matrix.seq_lens),
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
    return DEFAULT_RESULTS_ROOT / _timestamp()


def checked_dir(flag: str, raw: str) -> Path:
    """A directory path given by the user: not empty, no component longer than the filesystem allows."""
    if not raw.strip():
        raise UsageError(f"{flag}: '' is not allowed; expected a directory path")
    path = Path(raw)
    too_long = next((part for part in path.parts if len(part.encode()) > 255), None)
    if too_long is not None:
        raise UsageError(f"{flag}: a path component of {len(too_long.encode())} bytes is not allowed; expected at "
                         "most 255 per component")
    return path


def fresh_store(out: Path):
    """A run store for a new run: refused with one line if the directory already holds records."""
    from bench.store import RunStore

    store = RunStore(out)
    if store.exists() and store.read(warn=False).records:
        raise UsageError(f"--out: {str(out)!r} already holds records; choose another directory")
    store.prepare()
    return store


def checked_output_file(flag: str, raw: str | os.PathLike) -> Path:
    """An output file path, checked before any work: not a run's records.jsonl, not a directory, writable."""
    from bench.store import refuse_records_path

    path = checked_dir(flag, str(raw))
    refuse_records_path(path, flag)
    if path.is_dir():
        raise UsageError(f"{flag}: {str(path)!r} is a directory; expected a file path")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag}: {str(path)!r} cannot be written: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag}: {str(path)!r} cannot be written: permission denied")
    return path


def _timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


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
    from bench.ray_executor import RayExecutor

    retries = 1 if args.ray_retries is None else _number("--ray-retries", args.ray_retries, int)
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
    from bench.hostload import busy_host_warning

    warning = busy_host_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


def _run_planned(args: argparse.Namespace, sweep: Sweep, executor) -> int:
    from bench.plan import plan_sweep
    from bench.store import RunStore

    plan = plan_sweep(sweep, remote_devices=executor.cluster_devices() if executor else frozenset(),
                      max_cells=None if args.yes else MAX_CELLS)
    if not plan.cells and plan.left_out:
        raise UsageError(f"no cells left to run: {plan.left_out[0][1]}")
    for name, reason in plan.skipped_backends.items():
        print(f"note: backend {name} left out: {reason}", file=sys.stderr)
    for (backend, reason), count in _left_out_summary(plan).items():
        print(f"note: {count} cell(s) left out on backend {backend}: {reason}", file=sys.stderr)
    for reason, count in Counter(plan.unavailable.values()).items():
        print(f"note: {count} cell(s) unavailable here, recorded as such: {reason}", file=sys.stderr)
    if not plan.cells:
        raise UsageError("backend: no requested backend is available here (see `bench list`)")
    out = _output_dir(args)
    store = RunStore(out)
    if store.exists() and not args.resume:
        count = len(store.read(warn=False).records)
        if count:
            raise UsageError(f"--out: {str(out)!r} already holds {count} records; pass --resume to complete that run,"
                             " or choose another directory")
    store.prepare()
    with store.lock():
        return _run_locked(args, plan, sweep, executor, store, out)


def _estimate_text(plan, settings: MeasureSettings) -> str:
    """At most how long the plan takes: per measured cell its warm-up and timed-loop limits plus start-up."""
    from backends.registry import backend_class

    measured = sum(1 for spec in plan.runnable if not backend_class(spec.backend).capabilities.simulated)
    simulated = len(plan.runnable) - measured
    seconds = measured * (settings.warmup_max_time_s + settings.max_time_s + 10) + simulated * 10
    return f"at most ~{seconds / 3600:.1f} h" if seconds >= 3600 else f"at most ~{seconds / 60:.0f} min"


def _run_locked(args: argparse.Namespace, plan, sweep: Sweep, executor, store, out: Path) -> int:
    from bench.render import render
    from bench.runner import Progress, run_sweep

    if not args.out:
        _point_latest(out)
    print(f"{len(plan.cells)} cells ({_estimate_text(plan, sweep.measure)}) -> {out}/records.jsonl", file=sys.stderr)
    _warn_if_busy()
    os.environ["BENCH_RUN_DIR"] = str(out.resolve())  # simulated cells of this run share host validations there
    progress = Progress(len(plan.cells), enabled=not args.quiet)
    try:
        with _sigterm_as_interrupt():
            result = run_sweep(plan.cells, sweep.measure, store, executor=executor, resume=args.resume,
                               progress=progress, unavailable=plan.unavailable)
    except KeyboardInterrupt:
        kept = len(store.read(warn=False).records)
        print(f"\ninterrupted: {kept} records kept in {out}; rerun with --resume to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # the disk filled (ENOSPC) or the directory went away while appending
        kept = len(store.read(warn=False).records) if store.exists() else 0
        print(f"\nbench run: error: cannot append to {store.path}: {exc.strerror or exc}; {kept} records kept; "
              "free space and rerun with --resume to finish", file=sys.stderr)
        return EXIT_STORE_FAILED
    if result.skipped:
        print(f"resume: {result.skipped} cells already ok in {out}, not rerun", file=sys.stderr)
    planned = {spec.key for spec in plan.cells}
    shown = [r for r in store.latest(warn=False) if r.spec.key in planned]
    print(render(shown, "table"), end="")
    print(f"records: {store.path}", file=sys.stderr)
    if not plan.runnable:
        reason = next(iter(plan.unavailable.values()))
        raise UsageError(f"backend: nothing requested can run here ({reason}); unavailable records written to {out}")
    return EXIT_FAILED_CELLS if result.failed else EXIT_OK


def _left_out_summary(plan) -> Counter:
    return Counter((spec.backend, reason) for spec, reason in plan.left_out)


# -------------------------------------------------------------------------------------------------------
# bench show


def _cmd_show(args: argparse.Namespace) -> int:
    from bench.render import render
    from bench.store import read_run_dirs

    result = read_run_dirs(args.run_dirs)
    for message in result.skipped:
        print(f"warning: {message}", file=sys.stderr)
    if args.format == "gains":
        from bench.techniques import render_gains, technique_gains

        measured = [r for r in result.records if not r.simulated]
        gains = technique_gains(measured)
        if not gains:
            raise UsageError("--format gains: no workload in these runs has a cpu fp32 eager (baseline) ok record")
        sys.stdout.write(render_gains(gains))
        return EXIT_OK
    sys.stdout.write(render(result.records, args.format))
    return EXIT_OK


# -------------------------------------------------------------------------------------------------------
# bench compare / bench noise


def _run_dirs(field: str, value: str) -> list[str]:
    dirs = [part.strip() for part in value.split(",") if part.strip()]
    if not dirs:
        raise invalid_value(field, value, "one or more run directories, comma-separated")
    return dirs


def _refuse_future_schema(field: str, skipped: list[str]) -> None:
    """A command must not silently leave out records it cannot read because they are newer than this code."""
    unknown = [m for m in skipped if "is newer than this catchup-bench reads" in m]
    if unknown:
        where, _, what = unknown[0].partition(": skipped ")
        raise UsageError(f"{field}: {where}: {what.partition(': ')[2]}")


def _records_of(field: str, dirs: list[str]):
    from bench.store import read_run_dirs

    try:
        result = read_run_dirs(dirs)
    except UsageError as exc:
        raise UsageError(str(exc).replace("RUN_DIR", field, 1)) from None
    _refuse_future_schema(field, result.skipped)
    for message in result.skipped:
        print(f"warning: {message}", file=sys.stderr)
    return result.records


def _cmd_compare(args: argparse.Namespace) -> int:
    from bench.compare import compare_records, read_noise
    from bench.render import render_comparison

    base_dirs, current_dirs = _run_dirs("BASELINE", args.baseline), _run_dirs("CURRENT", args.current)
    min_effect = _number("--min-effect", args.min_effect, float)
    alpha = _number("--alpha", args.alpha, float)
    comparison = compare_records(
        _records_of("BASELINE", base_dirs), _records_of("CURRENT", current_dirs), min_effect=min_effect,
        alpha=alpha, noise=read_noise(base_dirs[0]), allow_env_mismatch=args.allow_env_mismatch,
    )
    sys.stdout.write(render_comparison(comparison, args.format))
    if not comparison.cells:  # a gate that compared nothing has not passed
        raise UsageError("CURRENT: no cell was compared (none is ok on both sides with samples); a comparison of "
                         "nothing is not a pass")
    return EXIT_FAILED_CELLS if comparison.regressions else EXIT_OK


def _cmd_noise(args: argparse.Namespace) -> int:
    from bench.compare import NOISE_FILE, noise_floors

    if len(args.run_dirs) < 2:
        raise UsageError(f"RUN_DIR: {len(args.run_dirs)} given; a noise floor needs at least 2 runs of the same code")
    runs = [_records_of("RUN_DIR", [d]) for d in args.run_dirs]
    floors = noise_floors(runs)
    target = checked_output_file("--write", args.write) if args.write is not None else \
        Path(args.run_dirs[0]) / NOISE_FILE
    try:
        target.write_text(json.dumps({"runs": args.run_dirs, "noise_floors": floors}, indent=2) + "\n")
    except OSError as exc:
        raise UsageError(f"--write: {str(target)!r} cannot be written: {exc.strerror or exc}") from None
    for key, floor in floors.items():
        label = next(r.spec.label for r in runs[0] if r.spec.key == key)
        print(f"{label}: A/A noise floor {floor:.2%} (gate uses >= {3 * floor:.1%})")
    print(f"written: {target}")
    return EXIT_OK


# -------------------------------------------------------------------------------------------------------
# bench selfcheck


def _cmd_selfcheck(args: argparse.Namespace) -> int:
    from bench.selfcheck import format_selfcheck, run_selfcheck

    json_out = checked_output_file("--json", args.json) if args.json is not None else None  # before the run
    model = parse_name_list("--model", [args.model])[0]
    batch = parse_int_list("--batch-size", [args.batch_size])[0]
    seq = parse_int_list("--seq-len", [args.seq_len])[0]
    blocks = parse_int_list("--blocks", [args.blocks])[0]
    block = parse_int_list("--block", [args.block])[0]
    tolerance = _number("--tolerance", args.tolerance, float)
    if not tolerance > 0:
        raise invalid_value("--tolerance", args.tolerance, "a fraction > 0, e.g. 0.03")
    result = run_selfcheck(model, batch, seq, blocks=blocks, block=block, tolerance=tolerance,
                           spinning_parent=args.spinning_parent)
    print(format_selfcheck(result))
    if json_out:
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return EXIT_OK if result.within_tolerance else EXIT_FAILED_CELLS


# -------------------------------------------------------------------------------------------------------
# parser


# -------------------------------------------------------------------------------------------------------
# bench report


def _cmd_report(args: argparse.Namespace) -> int:
    from bench.store import read_run_dirs

    out = checked_output_file("--out", args.out) if args.out is not None else None  # before any work
    result = read_run_dirs(args.run_dirs)
    _refuse_future_schema("RUN_DIR", result.skipped)
    for message in result.skipped:
        print(f"warning: {message}", file=sys.stderr)
    out = out or checked_output_file("--out", Path(args.run_dirs[0]) / f"report.{_REPORT_SUFFIX[args.format]}")
    if args.format in ("csv", "parquet"):
        _export_table(result.records, out, args.format)
    else:
        from bench.report import build_report, render_html, render_markdown

        report = build_report(result.records, frontier=args.frontier, constrained=args.constrained,
                              reference=args.reference)
        if args.format == "html":
            out.write_text(render_html(report), encoding="utf-8")
        else:
            figures = out.with_name(out.stem + "_files")
            out.write_text(render_markdown(report, figures, figures.name), encoding="utf-8")
    print(f"report: {out}", file=sys.stderr)
    return EXIT_OK


_REPORT_SUFFIX = {"html": "html", "md": "md", "csv": "csv", "parquet": "parquet"}


def _export_table(records, out: Path, fmt: str) -> None:
    """Flattened records (one row per cell, the columns of `bench show --format csv`) through pandas."""
    import pandas as pd

    from bench.render import summary_row

    frame = pd.DataFrame([summary_row(r) for r in records])
    if fmt == "csv":
        frame.to_csv(out, index=False)
        return
    try:
        frame.to_parquet(out, index=False)
    except ImportError as exc:
        raise UsageError(f"--format: 'parquet' needs pyarrow ({exc.__class__.__name__}); pip install pyarrow, "
                         "or use csv") from None


# -------------------------------------------------------------------------------------------------------
# bench simulate --validate

#: Catalogue entries that run on a 2-core, 24 GiB machine in a few minutes: the validation set.
VALIDATION_SUMMARY_VERSION = 2
VALIDATION_MODELS = ("bert-base-uncased", "all-minilm-l6-v2", "resnet-50", "vit-base-patch16-224", "gpt2",
                     "qwen2.5-0.5b", "llama-3.2-1b")


def _cmd_simulate(args: argparse.Namespace) -> int:
    from backends.calibrate import host_profile
    from backends.simulated import validation_summary_path
    from bench.plan import plan_sweep
    from bench.runner import Progress, run_sweep
    from bench.simvalidate import fit_host_factors, median_abs_error, render_validation, validation_rows
    from bench.spec import Matrix
    from bench.store import RunStore, read_run_dirs

    from bench import simulate_cmd
    from models.catalogue import get_workload

    if args.validate_serving:
        return simulate_cmd.run_serving_validation(args)
    if args.validate_host:
        out = Path(args.out) if args.out else DEFAULT_RESULTS_ROOT / ("validate-host-" + _timestamp())
        return simulate_cmd.run_host_validation(args, args.from_runs, out)
    if args.profile or (args.model and not args.validate):
        return simulate_cmd.run_projection(args)
    if not args.validate and not args.from_runs:
        raise UsageError("bench simulate: nothing to do; give --model M --profile P (serving projection), "
                         "--validate-serving, --validate-host, --validate (trace projection) or --from RUN_DIR")
    if args.from_runs:
        records = read_run_dirs(args.from_runs).records
    else:
        models = parse_name_list("--model", args.model) if args.model else VALIDATION_MODELS
        precisions = parse_name_list("--precision", args.precision) if args.precision else ("fp32",)
        matrix = Matrix(models=tuple(models), backends=("simulated",), precisions=tuple(precisions),
                        batch_sizes=(1,), seq_lens=(128,), new_tokens=(8,),
                        options=((("profile", "h100"), ("projection", "trace")),))
        settings = MeasureSettings(ci_target=0.03, max_time_s=10.0, warmup_max_time_s=10.0)
        plan = plan_sweep(Sweep((matrix,), settings))
        out = checked_dir("--out", args.out) if args.out is not None else \
            DEFAULT_RESULTS_ROOT / ("validate-" + _timestamp())
        store = fresh_store(out)
        with store.lock():
            print(f"{len(plan.cells)} cells -> {out}/records.jsonl", file=sys.stderr)
            run_sweep(plan.runnable, settings, store, progress=Progress(len(plan.runnable)))
        records = store.latest(warn=False)
    rows = validation_rows(records)
    if not rows:
        raise UsageError("bench simulate: no simulated record with a host validation in these runs")
    fit = fit_host_factors(rows) if not args.no_fit else None
    print(render_validation(rows, fit), end="")
    if args.from_runs:  # reading never writes: the stored summary comes only from a measured --validate
        return EXIT_OK
    models_run = sorted({r.record.spec.workload for r in rows})
    if {get_workload(m).name for m in VALIDATION_MODELS} - set(models_run):
        print("summary not stored: a subset of the validation set (the stored band comes from the whole set)",
              file=sys.stderr)
        return EXIT_OK
    host = host_profile()
    summary = {"version": VALIDATION_SUMMARY_VERSION, "median_abs_error": median_abs_error([r.error for r in rows]),
               "cells": len(rows), "models": models_run, "host_key": host["key"],
               "fit": {k: v for k, v in (fit or {}).items() if k != "errors"} or None}
    path = validation_summary_path(host["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, path)
    print(f"summary (used as the band of meta-device estimates on this host): {path}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bench",
        description="catchup-bench: measure inference latency and throughput on CPUs, GPUs and NPUs.",
        epilog="Exit status: 0 ok, 1 a cell failed, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"catchup-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p_list = sub.add_parser("list", help="workloads and backends (with availability here)")
    p_list.add_argument("--format", choices=("table", "json"), default="table")
    p_list.set_defaults(func=_cmd_list)

    p_run = sub.add_parser(
        "run", help="run a sweep (default: the default suite into results/<timestamp>/)",
        description="Run the product of the given values, one isolated worker process per cell. Each of "
        "--model/--backend/--precision/--batch-size/--seq-len/--new-tokens/--threads may repeat or take a comma "
        "list. With neither SWEEP nor --model, runs the default suite. Flags given with SWEEP replace those "
        "keys in every matrix of the file.",
    )
    p_run.add_argument("sweep", nargs="?", metavar="SWEEP.toml", help="sweep file (see README: Sweep files)")
    p_run.add_argument("--model", "-m", action="append", help="workload name or alias (see `bench list`)")
    p_run.add_argument("--backend", "-b", action="append",
                       help=f"backend name (see `bench list`), or {ALL_BACKENDS!r} for every available measured one (default: cpu)")
    p_run.add_argument("--precision", "-p", action="append", help=f"one of {', '.join(PRECISIONS)} (default: fp32)")
    p_run.add_argument("--batch-size", action="append", dest="batch_size", help="sequences per call (default: 1)")
    p_run.add_argument("--seq-len", action="append", dest="seq_len", help="input tokens per sequence (default: 128)")
    p_run.add_argument("--new-tokens", action="append", dest="new_tokens",
                       help="generated tokens per sequence, generation workloads only (default: the workload's)")
    p_run.add_argument("--threads", action="append", help="CPU threads (backend option; default: all usable CPUs)")
    p_run.add_argument("--option", "-O", action="append", metavar="KEY=V[,V...]",
                       help="backend option, repeatable; several values make a sweep axis, e.g. -O compile=none,default"
                       " -O provider=cpu (see `bench list` for each backend's options)")
    p_run.add_argument("--profile", action="append", metavar="NAME",
                       help="device profile for simulated backends (same as -O profile=NAME; see `bench list`)")
    p_run.add_argument("--scenario", action="append", metavar="NAME",
                       help="how load is offered: latency (the timed loop, default) or an MLPerf LoadGen scenario: "
                       "single-stream, multi-stream, server, offline (needs catchup-bench[loadgen]); comma list sweeps")
    p_run.add_argument("--weights", metavar="DIR",
                       help="real weights: a local directory with config.json and *.safetensors (never pickle)")
    p_run.add_argument("--out", "-o", help="run directory (default: results/<timestamp>/)")
    p_run.add_argument("--resume", action="store_true", help="skip cells already ok in --out; rerun the rest")
    p_run.add_argument("--yes", action="store_true",
                       help="run a sweep of more than 2,000 cells (refused without it; the count and a time estimate "
                            "are printed first)")
    p_run.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p_run.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: one isolated worker process per cell, one cell at a time (default); ray: each "
                       "cell a Ray task on a cluster, records streamed back here (needs catchup-bench[ray])")
    p_run.add_argument("--ray-address", metavar="ADDR",
                       help="Ray cluster to join, e.g. ray://head:10001 or auto (default: start a local instance)")
    p_run.add_argument("--ray-retries", metavar="N",
                       help="times Ray reruns a cell whose worker or node died before it is recorded failed (default 1)")
    measure = p_run.add_argument_group(
        "measurement", "Warm-up: >= 3 calls and 1 s, then windows of 5 calls until two medians in a row move < 2%% "
        "(at most 20 s). Timed loop: >= 10 calls and 2 s and the median's 95%% interval within +-1%%, at most "
        "10000 calls or 60 s. Worker timeout 900 s.")
    measure.add_argument("--warmup-iterations", metavar="N")
    measure.add_argument("--warmup-time", metavar="SECONDS", dest="warmup_time_s")
    measure.add_argument("--warmup-window", metavar="N", help="calls per stability window (0: no stability rule)")
    measure.add_argument("--warmup-max-time", metavar="SECONDS", dest="warmup_max_time_s")
    measure.add_argument("--min-iterations", metavar="N")
    measure.add_argument("--min-time", metavar="SECONDS", dest="min_time_s")
    measure.add_argument("--ci-target", metavar="FRACTION", dest="ci_target",
                         help="stop once the median's 95%% interval is within +-FRACTION (default 0.01; 0: off)")
    measure.add_argument("--max-iterations", metavar="N")
    measure.add_argument("--max-time", metavar="SECONDS", dest="max_time_s")
    measure.add_argument("--timeout", metavar="SECONDS", dest="timeout_s",
                         help="kill a cell's worker after this long (build + measure)")
    lg_group = p_run.add_argument_group(
        "LoadGen scenarios", "Server parameters are part of the cell (sweep axes); the --lg-* settings say how long "
        "each scenario runs. Quick defaults: at least 5 s and the queries early stopping needs (single-stream 64, "
        "multi-stream and server 662, offline 1 query), at most 300 s. --lg-official: MLPerf's rules (600 s; 1024 / "
        "270336 / 270336 / 1 queries). Batch size: single-stream 1; multi-stream = samples per query (MLPerf: 8); "
        "offline and server: the most samples run as one batch.")
    lg_group.add_argument("--target-qps", action="append", dest="target_qps", metavar="QPS",
                          help="server: Poisson arrival rate, or 'max' to search for the highest valid rate")
    lg_group.add_argument("--latency-bound", action="append", dest="latency_ms", metavar="MS",
                          help="server: p99 latency bound in ms (default 100)")
    lg_group.add_argument("--ttft-bound", action="append", dest="ttft_ms", metavar="MS",
                          help="server, LMs: p99 time-to-first-token bound in ms (default 2000, MLPerf Llama 2 70B)")
    lg_group.add_argument("--tpot-bound", action="append", dest="tpot_ms", metavar="MS",
                          help="server, LMs: p99 time-per-output-token bound in ms (default 200, MLPerf Llama 2 70B)")
    lg_group.add_argument("--lg-min-duration", dest="lg_min_duration_s", metavar="SECONDS", help="default 5")
    lg_group.add_argument("--lg-min-queries", dest="lg_min_queries", metavar="N",
                          help="default: the scenario's early-stopping minimum (above)")
    lg_group.add_argument("--lg-max-duration", dest="lg_max_duration_s", metavar="SECONDS",
                          help="default 300; 0: no limit")
    lg_group.add_argument("--lg-expected-latency", dest="lg_expected_latency_ms", metavar="MS",
                          help="latency LoadGen plans with (default: the warm-up's median call latency)")
    lg_group.add_argument("--lg-seed", dest="lg_seed", metavar="N", help="LoadGen's qsl, sample and schedule seeds")
    lg_group.add_argument("--lg-search-steps", dest="lg_search_steps", metavar="N",
                          help="server --target-qps max: bisection runs after the first (default 5)")
    lg_group.add_argument("--lg-official", action="store_true", help="MLPerf's run length rules (long)")
    lg_group.add_argument("--lg-no-accuracy", action="store_true",
                          help="skip the AccuracyOnly run that feeds the accuracy guard")
    p_run.set_defaults(func=_cmd_run)

    p_show = sub.add_parser("show", help="print the records of one or more run directories")
    p_show.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p_show.add_argument("--format", "-f", choices=("table", "csv", "json", "md", "gains"), default="table",
                        help="gains: speed-up of each technique against cpu fp32 eager with a 95%% interval, "
                        "beside its deviation from the fp32 reference (Markdown)")
    p_show.set_defaults(func=_cmd_show)

    p_cmp = sub.add_parser(
        "compare", help="compare two runs cell by cell; exit 1 on a regression",
        description="Pairs cells by spec; per cell the ratio of median latencies (current / baseline) with a "
        "bootstrap 95%% interval, a Mann-Whitney U test (Holm-corrected over cells) and a verdict: regression, "
        "improvement, no change, or inconclusive, against a minimum effect (or 3x the cell's A/A noise floor from "
        "BASELINE/noise.json, see `bench noise`). BASELINE and CURRENT are run directories; a comma-separated "
        "list pools each cell's samples over the runs (e.g. interleaved rounds).",
    )
    p_cmp.add_argument("baseline", metavar="BASELINE")
    p_cmp.add_argument("current", metavar="CURRENT")
    p_cmp.add_argument("--min-effect", default="0.05", help="smallest slowdown that counts (default 0.05 = 5%%)")
    p_cmp.add_argument("--alpha", default="0.01", help="significance level after Holm correction (default 0.01)")
    p_cmp.add_argument("--allow-env-mismatch", action="store_true",
                       help="compare even if the environment fingerprints differ (they are listed)")
    p_cmp.add_argument("--format", "-f", choices=("table", "md", "json"), default="table")
    p_cmp.set_defaults(func=_cmd_compare)

    p_noise = sub.add_parser(
        "noise", help="per-cell A/A noise floors from repeated runs of the same code",
        description="From two or more runs of the same code and sweep, the spread of each cell's log-median "
        "between runs; written to noise.json in the first RUN_DIR (or --write), where `bench compare` reads it "
        "when that directory is the baseline.",
    )
    p_noise.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p_noise.add_argument("--write", metavar="PATH", help="where to write (default: RUN_DIR[0]/noise.json)")
    p_noise.set_defaults(func=_cmd_noise)

    p_rep = sub.add_parser(
        "report", help="a report (HTML or Markdown, with charts and the catch-up estimate) or a flat export",
        description="Reads the latest record per cell of each RUN_DIR and writes one report: html (a single "
        "self-contained file), md (GitHub Markdown with its images in a folder beside it), or csv / parquet "
        "(one row per cell). The catch-up estimate compares --constrained with --frontier: a profile key for "
        "simulated devices, or a substring of a measured device (e.g. 'cpu', 'H100').",
    )
    p_rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p_rep.add_argument("--out", "-o", metavar="PATH", help="output file (default RUN_DIR[0]/report.FORMAT)")
    p_rep.add_argument("--format", "-f", choices=("html", "md", "csv", "parquet"), default="html")
    p_rep.add_argument("--frontier", default="h100", help="frontier device (default h100)")
    p_rep.add_argument("--constrained", default="ascend-910b2", help="constrained device (default ascend-910b2)")
    p_rep.add_argument("--reference", default="bf16", help="reference technique: a precision (default bf16)")
    p_rep.set_defaults(func=_cmd_report)

    p_sim = sub.add_parser(
        "simulate", help="project LLM serving on a cluster, and validate the projections (simulated figures)",
        description="With --model M --profile P: the serving model's projection of M on --chips chips of P -- "
        "the parallelism and batch with the most decode output tokens/s per chip within --tpot-slo, and the most "
        "prefill input tokens/s per chip within --ttft-slo, with TPOT, TTFT, per chip / cluster / W / $, MFU, "
        "MBU, where a step's time goes, memory per chip and low/high figures (exit 1 when nothing fits). "
        "--validate-serving predicts the published serving results in backends/projection/published_serving.toml "
        "(fitting only on the rows marked fit); --validate-host does the same against LMs measured here, "
        "leave-one-model-out. --validate runs the trace projection's validation set (" + ", ".join(VALIDATION_MODELS)
        + "; b1, 128 tokens, 8 new tokens) as simulated cells, each measured here and predicted with the host's "
        "calibrated profile; --from tabulates existing runs instead (with --validate-host: measured runs).",
        epilog="Example: bench simulate --model deepseek-r1 --profile ascend-910c --chips 32 --precision int8 "
        "--input-tokens 4096 --output-tokens 1024 --tpot-slo 50 --format json",
    )
    p_sim.add_argument("--validate", action="store_true", help="run the trace projection's validation set now")
    p_sim.add_argument("--from", dest="from_runs", nargs="+", metavar="RUN_DIR", help="tabulate these runs instead")
    p_sim.add_argument("--model", "-m", action="append", help="the model to project, or the validation models")
    p_sim.add_argument("--precision", "-p", action="append",
                       help="projection: bf16 (default), fp16, fp8, int8 (W8A8), int4 (weight-only), fp32; "
                            "--validate: fp32 and/or bf16")
    p_sim.add_argument("--out", "-o", help="run directory for --validate / --validate-host measurements")
    p_sim.add_argument("--no-fit", action="store_true", help="--validate: skip the efficiency-factor fit")
    from bench.simulate_cmd import add_serving_arguments

    add_serving_arguments(p_sim)
    p_sim.set_defaults(func=_cmd_simulate)

    p_self = sub.add_parser(
        "selfcheck", help="compare the harness's timing with a bare perf_counter_ns loop",
        description="In one isolated worker (started and awaited as `bench run` does), alternates blocks of the "
        "same model call timed by the harness loop and by a bare perf_counter_ns loop; prints both medians, "
        "their ratio, the per-call difference, the harness loop's fixed cost, and the parent's CPU time while "
        "it waited. Exit status 1 if |ratio - 1| exceeds --tolerance.",
    )
    p_self.add_argument("--model", default="bert-base-uncased", help="workload (default bert-base-uncased)")
    p_self.add_argument("--batch-size", default="1", help="default 1")
    p_self.add_argument("--seq-len", default="128", help="default 128")
    p_self.add_argument("--blocks", default="40", help="blocks per side (default 40)")
    p_self.add_argument("--block", default="2", help="calls per block (default 2)")
    p_self.add_argument("--tolerance", default="0.03", help="allowed |ratio - 1| (default 0.03)")
    p_self.add_argument("--spinning-parent", action="store_true",
                        help="also run once with a parent that polls in a tight loop, to show its cost")
    p_self.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    p_self.set_defaults(func=_cmd_selfcheck)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `bench show DIR | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
