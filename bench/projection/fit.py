"""The serving model's fit on the published fit rows (bench.projection.published): an identifiable fit in two
stages, each factor inside its sourced range.

(1) Per device kind, the silicon factors FITTED_SILICON (as many as the rows allow, in that order) on the fit rows
    of the kind's reference engine -- the best published stack -- only.
(2) Per other engine with fit rows, its kernels factor (and its overheads factor with ROWS_FOR_TWO_FACTORS rows or
    more) on its own fit rows, the silicon held at stage 1. An engine without fit rows takes, per factor, the
    geometric mean of the fitted engines of its kind of device (a typical engine there, as far as the rows show).
Each stage minimises the sum of |ln(predicted / published)| (scipy's bounded Powell): an absolute, not squared,
loss, so one badly configured benchmark moves a factor less. `fit()` refuses a held-out row.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence

from bench.core.errors import UsageError
from bench.projection.efficiency import load_efficiency
from bench.projection.published import PublishedSet, Row, engine_of, kind_of, load_published, predict

__all__ = ["fit", "committed_fit", "write_factors", "FITTED_SILICON", "ROWS_FOR_TWO_FACTORS"]

#: The silicon factors the fit chooses per device kind (the rest keep their sourced values).
FITTED_SILICON = ("gemm", "memory", "layer_overhead_us", "grouped_gemm")
#: An engine fits its overheads factor too only with at least this many fit rows (else kernels alone: two factors
#: on one or two rows would fit noise).
ROWS_FOR_TWO_FACTORS = 3


def _log_error(predicted: float | None, figure: float) -> float:
    return math.log(predicted / figure) if predicted else math.log(1e3)


def _fit_silicon(kind: str, rows: Sequence[Row], evaluations: int = 400) -> dict[str, float]:
    """The first len(rows) of FITTED_SILICON (all of them with enough rows) on the reference engine's rows."""
    from scipy.optimize import minimize

    base = load_efficiency(kind)
    names = FITTED_SILICON[: len(rows)]
    factors = [base.factors[k] for k in names]
    bounds = [(math.log(f.low), math.log(f.high)) for f in factors]
    start = [math.log(f.value) for f in factors]

    def loss(x: Sequence[float]) -> float:
        eff = base.with_values(**{k: math.exp(v) for k, v in zip(names, x)})
        return sum(abs(_log_error(predict(r, eff, _NEUTRAL), r.figure)) for r in rows)

    result = minimize(
        loss, start, method="Powell", bounds=bounds, options={"xtol": 1e-3, "ftol": 1e-4, "maxfev": evaluations}
    )
    return {k: round(math.exp(v), 4) for k, v in zip(names, result.x)}


_NEUTRAL = {"kernels": 1.0, "overheads": 1.0}


def _fit_engine(
    engine, rows: Sequence[Row], silicon: Mapping[str, dict[str, float]], evaluations: int = 300
) -> dict[str, float]:
    """The engine's kernels factor (and, with ROWS_FOR_TWO_FACTORS fit rows or more, its overheads factor) on
    its fit rows, the silicon held at its fitted values."""
    from scipy.optimize import minimize

    names = ("kernels", "overheads") if len(rows) >= ROWS_FOR_TWO_FACTORS else ("kernels",)
    effs = {r.id: load_efficiency(kind_of(r)).with_values(**silicon.get(kind_of(r), {})) for r in rows}
    factors = [engine.factors[k] for k in names]
    bounds = [(math.log(f.low), math.log(f.high)) for f in factors]
    start = [math.log(min(max(f.value, f.low), f.high)) for f in factors]

    def loss(x: Sequence[float]) -> float:
        values = {k: math.exp(v) for k, v in zip(names, x)}
        return sum(abs(_log_error(predict(r, effs[r.id], values), r.figure)) for r in rows)

    result = minimize(
        loss, start, method="Powell", bounds=bounds, options={"xtol": 1e-3, "ftol": 1e-4, "maxfev": evaluations}
    )
    return {k: round(math.exp(v), 4) for k, v in zip(names, result.x)}


def fit(
    fit_rows: Sequence[Row], published: PublishedSet | None = None, evaluations: int | None = None
) -> dict[str, dict[str, Any]]:
    """{"silicon": {kind: {factor: value}}, "engines": {engine: {kernels, overheads}}} from `fit_rows` only
    (module docstring). Refuses a held-out row. `evaluations` caps the loss evaluations per minimisation (default
    400 for silicon, 300 per engine)."""
    budget = {} if evaluations is None else {"evaluations": evaluations}
    published = published or load_published()
    if any(not published.is_fit(r) for r in fit_rows):
        raise ValueError("fit() was handed a held-out row")
    silicon: dict[str, dict[str, float]] = {}
    for kind in sorted({kind_of(r) for r in fit_rows}):
        reference = [r for r in fit_rows if kind_of(r) == kind and engine_of(r).reference]
        if reference:
            silicon[kind] = _fit_silicon(kind, reference, **budget)
    engines: dict[str, dict[str, float]] = {}
    for key in sorted({r.engine for r in fit_rows}):
        engine = engine_of(next(r for r in fit_rows if r.engine == key))
        if not engine.reference:
            engines[key] = _fit_engine(engine, [r for r in fit_rows if r.engine == key], silicon, **budget)
    engines.update(_typical_engines(engines))
    return {"silicon": silicon, "engines": engines}


def _typical_engines(fitted: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Engines with no fit rows: each factor the geometric mean of the fitted figures of the other engines of
    the same device kind (a typical engine there, as far as the fit rows show), inside the engine's own range."""
    from bench.projection.engines import load_engines

    out = {}
    for key, engine in load_engines().items():
        if engine.reference or key in fitted:
            continue
        peers = [fitted[k] for k, e in load_engines().items() if k in fitted and e.device_kind == engine.device_kind]
        values = {}
        for name, factor in engine.factors.items():
            seen = [p[name] for p in peers if name in p]
            if seen:
                typical = math.exp(statistics.fmean(math.log(v) for v in seen))
                values[name] = round(min(max(typical, factor.low), factor.high), 4)
        if values:
            out[key] = values
    return out


def committed_fit() -> dict[str, dict[str, Any]]:
    """The fitted values efficiency.toml and engines.toml hold (written by the last `--write-fit`)."""
    from bench.projection.engines import load_engines

    silicon = {}
    for kind in ("gpu", "npu"):
        factors = load_efficiency(kind).factors
        values = {k: factors[k].fitted for k in FITTED_SILICON if factors[k].fitted is not None}
        if values:
            silicon[kind] = values
    engines = {
        key: {name: f.fitted for name, f in e.factors.items() if f.fitted is not None}
        for key, e in load_engines().items()
        if any(f.fitted is not None for f in e.factors.values())
    }
    return {"silicon": silicon, "engines": engines}


def write_factors(fitted: Mapping[str, Any]) -> None:
    """Write `fitted = X` under each fitted factor's table (efficiency.toml, engines.toml), removing stale ones."""
    from bench.projection import efficiency, engines
    from bench.projection.efficiency import EFFICIENCY_FILE
    from bench.projection.engines import ENGINES_FILE

    _write_efficiency_fit(EFFICIENCY_FILE, fitted["silicon"])
    _write_engine_fit(ENGINES_FILE, fitted["engines"])
    efficiency._CACHE.clear()
    engines._CACHE.clear()


def _write_efficiency_fit(path: Path, silicon: Mapping[str, Mapping[str, float]]) -> None:
    import re

    text = re.sub(r"(?m)^fitted = .*\n", "", path.read_text(encoding="utf-8"))
    for kind, values in silicon.items():
        for name, value in values.items():
            header = f"[{kind}.{name}]\n"
            if header not in text:
                raise UsageError(f"{path.name}: no table {header.strip()} to write the fit into")
            end = text.find("\n\n", text.index(header))
            end = len(text.rstrip("\n")) if end < 0 else end
            text = text[:end] + f"\nfitted = {value}" + text[end:]
    path.write_text(text, encoding="utf-8")


def _write_engine_fit(path: Path, engines: Mapping[str, Mapping[str, float]]) -> None:
    import re

    text = re.sub(r", fitted = [0-9.]+ }", " }", path.read_text(encoding="utf-8"))
    for key, values in engines.items():
        start = text.index(f"[{key}]\n")
        for name, value in values.items():
            line_start = text.index(f"factors.{name} = {{", start)
            line_end = text.index("\n", line_start)
            line = text[line_start:line_end]
            text = text[:line_start] + line[: line.rindex(" }")] + f", fitted = {value} }}" + text[line_end:]
    path.write_text(text, encoding="utf-8")
