"""Shared test helpers. Tests use tiny variants of real architectures through the real code paths; the only
fakes are a seeded clock (statistics/measurement) and stand-ins for devices absent here, each named as such."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600, prefix: list[str] | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m bench ARGS` as a user would, from a checkout (PYTHONPATH=root), capturing output.
    `prefix` runs it under another command (e.g. taskset)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env.pop(("BENCH_FAULT_INJECT"), None)
    full_env.update(env or {})
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


#: Short measurement settings for tests: enough samples for a median interval, little wall time.
QUICK = [
    "--warmup-iterations",
    "2",
    "--warmup-time",
    "0",
    "--warmup-window",
    "0",
    "--min-iterations",
    "8",
    "--min-time",
    "0.2",
    "--ci-target",
    "0",
]


@pytest.fixture(scope="session")
def quick_args() -> list[str]:
    return list(QUICK)


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` or `npu` skip, with the probe's reason, where that device is absent."""
    reasons: dict[str, str | None] = {}
    for item in items:
        for marker in ("cuda", "npu"):
            if marker not in item.keywords:
                continue
            if marker not in reasons:
                reasons[marker] = _device_missing(marker)
            if reasons[marker]:
                item.add_marker(pytest.mark.skip(reason=f"needs {marker}: {reasons[marker]}"))


def _device_missing(marker: str) -> str | None:
    if marker == "cuda":
        from backends.torch_backend import cuda_unavailable_reason

        return cuda_unavailable_reason()
    try:
        import torch
        import torch_npu  # noqa: F401

        return None if torch.npu.is_available() else "torch.npu.is_available() is False"
    except Exception as exc:
        return f"torch_npu cannot be imported ({type(exc).__name__})"


#: The same short settings as QUICK, for library calls.
def quick_settings(**overrides):
    from bench.core.settings import MeasureSettings

    values = dict(
        warmup_iterations=2, warmup_time_s=0.0, warmup_window=0, min_iterations=8, min_time_s=0.2, ci_target=0.0
    )
    values.update(overrides)
    return MeasureSettings(**values)


def run_here(sweep_toml: str, out: Path, cache: Path | None = None, resume: bool = False, **settings):
    """Run a sweep (TOML text, as a sweep file) with the library in this process (InProcessExecutor): what a cell
    records without a worker's start-up. Tests of isolation, crashes and the CLI itself use `run_cli`."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    import bench
    from bench.core.sweep import sweep_from_mapping
    from bench.runs.runner import InProcessExecutor

    sweep = sweep_from_mapping(tomllib.loads(sweep_toml), where="test sweep")
    previous = os.environ.get("CATCHUP_BENCH_CACHE")
    if cache is not None:
        os.environ["CATCHUP_BENCH_CACHE"] = str(cache)
    try:
        measure = None if "[measure" in sweep_toml and not settings else quick_settings(**settings)  # the file's own
        return bench.run(sweep, out=out, settings=measure, executor=InProcessExecutor(), resume=resume)
    finally:
        if cache is not None:
            if previous is None:
                os.environ.pop("CATCHUP_BENCH_CACHE", None)
            else:
                os.environ["CATCHUP_BENCH_CACHE"] = previous


def cli_here(*args: str) -> tuple[int, str, str]:
    """`bench ARGS` in this process (bench.cli.main): for commands whose subprocess start-up adds nothing to what a
    test checks (reading, listing); (exit status, stdout, stderr)."""
    import contextlib
    import io

    from bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as exc:  # argparse's own errors and --help
            status = exc.code if isinstance(exc.code, int) else 2
    return status, out.getvalue(), err.getvalue()


def cli_result(*args: str):
    """`cli_here` shaped like `run_cli`'s CompletedProcess (returncode, stdout, stderr)."""
    import types

    status, stdout, stderr = cli_here(*args)
    return types.SimpleNamespace(returncode=status, stdout=stdout, stderr=stderr)
