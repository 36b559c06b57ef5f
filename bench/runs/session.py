"""Running a sweep into a run directory: the one path the CLI (`bench run`, `bench simulate --validate` and
`--validate-host`) and the Python API (`bench.run`) take.

plan (registry checks, cells unavailable here) -> refuse an `out` that already holds records unless resuming ->
create the directory -> take the run lock -> write an `unavailable` record for each cell that cannot run here
and run the others (`run_sweep`) -> release the lock. Nothing is created when planning refuses the sweep.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.core.errors import UsageError
from bench.core.sweep import Sweep
from bench.runs.plan import Plan, plan_sweep
from bench.runs.runner import Executor, SweepProgress, SweepResult, run_sweep
from bench.runs.store import RunStore

__all__ = ["RunInto", "run_into", "MAX_CELLS"]

#: Cells a sweep may plan without an explicit yes (`bench run --yes`, `bench.run(..., max_cells=None)`): a larger
#: one is almost always a typo in a value list.
MAX_CELLS = 2_000


@dataclass
class RunInto:
    """What `run_into` did: the plan, the sweep's result and the store the records are in."""

    plan: Plan
    result: SweepResult
    store: RunStore


def _checked_plan(sweep: Sweep, executor: Executor | None, max_cells: int | None) -> Plan:
    remote = executor.cluster_devices() if executor is not None else frozenset()
    plan = plan_sweep(sweep, remote_devices=remote, max_cells=max_cells)
    if not plan.cells and plan.left_out:
        raise UsageError(f"no cells left to run: {plan.left_out[0][1]}")
    if not plan.cells:
        raise UsageError("backend: no requested backend is available here (see `bench list`)")
    return plan


def _fresh_or_resumed(out: Path, resume: bool, out_field: str, resume_hint: str | None) -> RunStore:
    store = RunStore(out)
    if store.exists() and not resume:
        count = len(store.read(warn=False).records)
        if count and resume_hint is None:
            raise UsageError(f"{out_field}: {os.fspath(out)!r} already holds records; choose another directory")
        if count:
            raise UsageError(
                f"{out_field}: {os.fspath(out)!r} already holds {count} records; pass {resume_hint} to complete "
                "that run, or choose another directory"
            )
    store.prepare()
    return store


def run_into(
    sweep: Sweep,
    out: str | os.PathLike,
    executor: Executor | None = None,
    *,
    resume: bool = False,
    progress: SweepProgress | None = None,
    max_cells: int | None = MAX_CELLS,
    before: Callable[[Plan, RunStore], None] | None = None,
    out_field: str = "out",
    resume_hint: str | None = "resume=True",
) -> RunInto:
    """Plan `sweep` and run it into `out` (module docstring). `before(plan, store)` runs under the lock just
    before the first cell (the CLI prints the plan's notes there); `out_field` and `resume_hint` name the
    caller's own argument and flag in the one-line refusal of a directory that already holds records (None: the
    caller cannot resume, and the refusal only asks for another directory)."""
    plan = _checked_plan(sweep, executor, max_cells)
    store = _fresh_or_resumed(Path(out), resume, out_field, resume_hint)
    with store.lock():
        if before is not None:
            before(plan, store)
        result = run_sweep(
            plan.cells,
            sweep.measure,
            store,
            executor=executor,
            resume=resume,
            progress=progress,
            unavailable=plan.unavailable,
            secrets=plan.secrets,
        )
    return RunInto(plan, result, store)
