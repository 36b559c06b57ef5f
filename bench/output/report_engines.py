"""The report's "Engine factors" section: the software lever measured on one host (bench.analysis.engines).

One row per group of serving-engine cells that differ only in engine: model and lengths, load, every engine with
its output tokens/s (fastest first), and the factor of the fastest over the slowest with its 95% interval
(measured/measured). The section says how to use a factor in a catch-up scenario (`bench catchup SCENARIO
--software-from RUN_DIR`); absent when no such group exists.
"""

from __future__ import annotations

from typing import Sequence

from bench.analysis.engines import engine_factors, engine_of
from bench.core.record import Record
from bench.output.format import number
from bench.output.report_model import Section, Table

__all__ = ["engine_section"]


def _row(factor) -> list[str]:
    model, batch, seq, new = factor.shape[:4]
    load = dict(factor.load)
    rate = f", {load['request_rate']:g}/s" if load.get("request_rate") else ""
    interval = (
        f" [{number(factor.factor.low)}, {number(factor.factor.high)}]"
        if factor.factor.low is not None
        else " (no interval)"
    )
    return [
        f"{model} s={seq} new={new}",
        f"c={load['concurrency']}{rate}, {load['requests']} requests",
        f"{factor.best_engine} / {factor.reference_engine}",
        f"{number(factor.best.value)} / {number(factor.reference.value)}",
        f"{number(factor.factor.value)}x{interval}",
        ", ".join(factor.engines),
    ]


def engine_section(records: Sequence[Record]) -> Section | None:
    """The section (module docstring), or None."""
    factors = engine_factors(records)
    if not factors:
        return None
    engines = sorted({e for e in (engine_of(r) for r in records if r.serving) if e})
    headers = ["model", "load", "best / reference", "output tok/s", "factor [95% CI]", "engines, fastest first"]
    return Section(
        "Engine factors (the software lever, measured)",
        f"Serving engines measured on this host over the same API, model and load ({', '.join(engines)}): output "
        "tokens/s of the fastest engine over the slowest, measured/measured, intervals of two independent "
        "measurements. `bench catchup SCENARIO --software-from RUN_DIR` uses the factor at the highest "
        "concurrency in place of the scenario's modelled engine difference.",
        [Table("", headers, [_row(f) for f in factors])],
    )
