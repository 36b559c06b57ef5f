"""The public Python API: the same work as the command line, for notebooks and scripts.

    import bench
    records = bench.run({"model": ["gpt2-tiny"], "backend": ["cpu"], "batch_size": [1, 4]}, out="results/nb")
    frame = bench.load("results/nb")          # pandas DataFrame, the columns of `bench show --format csv`
    verdict = bench.compare("results/base", "results/nb")
    bench.report("results/nb", out="results/nb/report.html")

Every function validates its input like the CLI does and raises `bench.UsageError` (one line: field, value,
what is allowed) on bad input. Runs take the same run lock as `bench run` and append to the run directory's
records.jsonl, so a run started here can be shown, compared and resumed from the command line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from bench.core.errors import UsageError
from bench.core.settings import MeasureSettings
from bench.core.spec import BenchmarkSpec
from bench.core.sweep import Matrix, Sweep, matrix_from_mapping, sweep_from_mapping

if TYPE_CHECKING:
    import pandas

    from bench.analysis.compare import Comparison
    from bench.core.record import Record

__all__ = ["run", "records", "load", "compare", "report"]

PathLike = str | os.PathLike


def _dirs(run_dirs: PathLike | Iterable[PathLike]) -> list[str]:
    """Run directories as paths; a one-line UsageError for anything that is not a path or a list of paths."""
    if isinstance(run_dirs, (str, os.PathLike)):
        given = [run_dirs]
    elif isinstance(run_dirs, Iterable) and not isinstance(run_dirs, (bytes, Mapping)):
        given = list(run_dirs)
    else:
        given = [run_dirs]
    bad = [d for d in given if not isinstance(d, (str, os.PathLike)) or not os.fspath(d).strip()]
    if bad or not given:
        shown = repr(bad[0]) if bad else "an empty list"
        raise UsageError(f"run_dirs: {shown} is not allowed; expected a run directory path or a list of them")
    return [os.fspath(d) for d in given]


def _as_sweep(what: Any, settings: MeasureSettings | None) -> Sweep:
    """A Sweep from a BenchmarkSpec, a Matrix, a Sweep, or a mapping in the sweep file's vocabulary (a whole
    file's tables with "matrix", or one matrix's keys)."""
    if isinstance(what, Sweep):
        return Sweep(what.matrices, settings or what.measure)
    if isinstance(what, Matrix):
        return Sweep((what,), settings or MeasureSettings())
    if isinstance(what, BenchmarkSpec):
        matrix = Matrix(
            models=(what.workload,),
            backends=(what.backend,),
            precisions=(what.precision,),
            batch_sizes=(what.batch_size,),
            seq_lens=(what.seq_len,),
            new_tokens=(what.new_tokens,),
            options=(what.options,),
            scenarios=(what.scenario,),
            loads=(what.load,),
            weights=what.weights,
        )
        return Sweep((matrix,), settings or MeasureSettings())
    if isinstance(what, Mapping):
        if "matrix" in what:
            sweep = sweep_from_mapping(what, where="bench.runs")
            return Sweep(sweep.matrices, settings or sweep.measure)
        return Sweep((matrix_from_mapping(what, where="bench.runs"),), settings or MeasureSettings())
    raise UsageError(
        f"bench.run: {type(what).__name__} is not allowed; expected a BenchmarkSpec, Matrix, Sweep or "
        "a mapping of sweep keys"
    )


def run(
    what: Any,
    out: PathLike,
    settings: MeasureSettings | None = None,
    resume: bool = False,
    progress: bool = False,
    executor: Any = None,
    max_cells: int | None = 2_000,
) -> list["Record"]:
    """Plan and run a spec, matrix, sweep or sweep mapping into the run directory `out`; the records written.

    Cells that cannot run here are recorded `unavailable` with the reason, as `bench run` does; `out` must be new
    (or `resume=True` to finish a run). `executor`: where cells run (default: one isolated worker process per
    cell, as `bench run`; `bench.runs.runner.InProcessExecutor()` runs them in this process). A sweep of more
    than `max_cells` cells is refused (None: no limit), as `bench run` refuses it without --yes."""
    from bench.output.progress import Progress
    from bench.runs.session import run_into

    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out).strip():
        raise UsageError(f"bench.run: out: {out!r} is not allowed; expected a directory path")
    if settings is not None and not isinstance(settings, MeasureSettings):
        raise UsageError(
            f"bench.run: settings: {type(settings).__name__} is not allowed; expected bench.MeasureSettings or None"
        )
    sweep = _as_sweep(what, settings)
    shown = Progress(0, enabled=progress)
    try:
        done = run_into(
            sweep,
            out,
            executor,
            resume=resume,
            progress=shown,
            max_cells=max_cells,
            before=lambda plan, store: setattr(shown, "total", len(plan.cells)),
        )
    except UsageError as exc:
        raise UsageError(f"bench.run: {exc}") from None
    return done.result.records


def records(run_dirs: PathLike | Iterable[PathLike]) -> list["Record"]:
    """The latest record of each cell in the run directories, in order (unreadable lines are skipped)."""
    from bench.runs.store import read_run_dirs

    return read_run_dirs(_dirs(run_dirs)).records


def load(run_dirs: PathLike | Iterable[PathLike]) -> "pandas.DataFrame":
    """One row per cell (latest record) of the run directories: the columns of `bench show --format csv`
    (docs/METRICS.md), milliseconds for latencies, the cell's p50 as every other output shows it."""
    import pandas as pd

    from bench.output.render import summary_row

    return pd.DataFrame([summary_row(r) for r in records(run_dirs)])


def compare(
    baseline: PathLike | Sequence[PathLike],
    current: PathLike | Sequence[PathLike],
    min_effect: float = 0.05,
    alpha: float = 0.01,
    allow_env_mismatch: bool = False,
) -> "Comparison":
    """`bench compare` as a value: per cell the ratio of medians with its interval, test and verdict
    (`.regressions` lists the cells that got slower beyond the minimum effect)."""
    from bench.analysis.compare import compare_records, read_noise

    base_dirs = _dirs(baseline)
    return compare_records(
        records(base_dirs),
        records(current),
        min_effect=min_effect,
        alpha=alpha,
        noise=read_noise(base_dirs[0]),
        allow_env_mismatch=allow_env_mismatch,
    )


def report(
    run_dirs: PathLike | Iterable[PathLike],
    out: PathLike,
    frontier: str = "h100",
    constrained: str = "ascend-910b2",
    reference: str = "bf16",
) -> Path:
    """Write the report of the run directories to `out`: .html (one self-contained file) or .md (images in a
    folder beside it); returns the path written."""
    from bench.output.report import build_report, render_html, render_markdown

    path = Path(out)
    if path.suffix not in (".html", ".md"):
        raise UsageError(f"out: {os.fspath(out)!r} is not allowed; expected a path ending in .html or .md")
    from bench.core.outfile import write_output
    from bench.runs.store import RECORDS_FILE, refuse_records_path

    refuse_records_path(path, "out")
    dirs = _dirs(run_dirs)
    built = build_report(records(dirs), frontier=frontier, constrained=constrained, reference=reference)
    protect = [Path(d) / RECORDS_FILE for d in dirs]
    if path.suffix == ".html":
        return write_output(path, render_html(built), "out", protect)
    figures = path.with_name(path.stem + "_files")
    return write_output(path, render_markdown(built, figures, figures.name), "out", protect)
