"""The serving model against published serving results (published_serving.toml), with a split fixed by date.

- The corpus: rows of published figures, each with its setup and source (the file's header says what a row must
  state and how each field is read). Rows published before the file's `[split].fit_published_before` are fit
  rows; the rest are held out. `PublishedSet.for_fitting()` is all the fitting code is handed.
- An identifiable fit, in two stages, each factor inside its sourced range: (1) per device kind, the silicon
  factors FITTED_SILICON (as many as the rows allow, in that order) on the fit rows of the kind's reference
  engine -- the best published stack -- only; (2) per other engine with fit rows,
  its kernels and overheads factors on its own fit rows, the silicon held at stage 1. An engine without fit rows
  takes, per factor, the geometric mean of the other engines' fitted figures on its kind of device (a typical
  engine there, as far as the fit rows show). Each minimises the sum of |ln(predicted / published)| (scipy,
  bounded): an absolute, not squared, loss, so one badly configured benchmark moves a factor less.
- Validation: every row predicted with the committed factors (or a fresh fit), error = predicted / published - 1;
  per row and per group (dense/MoE x GPU/NPU x engine): median |ln(predicted/published)|, the worst row, and how
  often the published figure lies inside the projection's [low, high] (every factor at the ends of its range).
  Every fitted factor is reported with where it sits in its range; one within 2% of an end is flagged.
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from bench.core.errors import UsageError, invalid_value
from bench.core.tomlfile import read_toml
from bench.projection.efficiency import Efficiency, load_efficiency

__all__ = [
    "Row",
    "PublishedSet",
    "load_published",
    "predict",
    "fit",
    "validate",
    "Validation",
    "write_fit",
    "committed_fit",
    "held_out_error",
    "PUBLISHED_FILE",
    "FITTED_SILICON",
]

PUBLISHED_FILE = Path(__file__).with_name("published_serving.toml")
PHASES = ("decode", "prefill", "colocated", "system")
UNITS = ("output", "input", "total")
#: The silicon factors the fit chooses per device kind (the rest keep their sourced values).
FITTED_SILICON = ("gemm", "memory", "layer_overhead_us", "grouped_gemm")
#: A fitted factor within this share of its range's width from an end is reported as pinned there.
EDGE_SHARE = 0.02
#: An engine fits its overheads factor too only with at least this many fit rows (else kernels alone: two factors
#: on one or two rows would fit noise).
ROWS_FOR_TWO_FACTORS = 3


@dataclass(frozen=True)
class Row:
    id: str
    published: str
    source: str
    source_group: str
    engine: str
    model: str
    profile: str
    chips: int
    precision: str
    phase: str
    unit: str
    input_tokens: int
    output_tokens: int
    figure: float
    kv_precision: str | None = None
    parallel: str | None = None
    batch_size: int | None = None
    concurrency: int | None = None
    prefill_chips: int | None = None
    decode_chips: int | None = None
    tpot_slo_ms: float | None = None
    ttft_slo_ms: float | None = None
    bound_note: str | None = None
    spec_method: str | None = None
    spec_tokens: int | None = None
    acceptance_length: float | None = None
    note: str | None = None

    def query(self, chips: int | None = None, parallel: str | None = "row", search: str = "engine"):
        from bench.projection.query import ServingQuery

        return ServingQuery(
            model=self.model,
            profile=self.profile,
            chips=chips or self.chips,
            precision=self.precision,
            kv_precision=self.kv_precision,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            tpot_slo_ms=self.tpot_slo_ms,
            ttft_slo_ms=self.ttft_slo_ms,
            batch_size=self.batch_size,
            parallel=self.parallel if parallel == "row" else parallel,
            engine=self.engine,
            mode="colocated" if self.phase == "colocated" else "disaggregated",
            spec_tokens=self.spec_tokens,
            acceptance_length=self.acceptance_length,
            spec_method=self.spec_method,
            search=search,
        )


@dataclass(frozen=True)
class PublishedSet:
    rows: tuple[Row, ...]
    fit_before: str

    def is_fit(self, row: Row) -> bool:
        return row.published < self.fit_before

    def for_fitting(self) -> tuple[Row, ...]:
        """The rows fitting may read: published before the split date."""
        return tuple(r for r in self.rows if self.is_fit(r))

    def held_out(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if not self.is_fit(r))


def _date(where: str, value: Any) -> str:
    try:
        _dt.date.fromisoformat(str(value))
    except ValueError:
        raise invalid_value(where, value, "a date YYYY-MM-DD") from None
    return str(value)


def _row(data: Any, where: str) -> Row:
    if not isinstance(data, Mapping):
        raise invalid_value(where, data, "a [[row]] table")
    known = {f.name for f in fields(Row)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise invalid_value(f"{where}.{unknown[0]}", unknown[0], sorted(known))
    try:
        row = Row(**data)
    except TypeError as exc:
        raise UsageError(f"{where}: {exc}") from None
    _date(f"{where}.published", row.published)
    if row.phase not in PHASES:
        raise invalid_value(f"{where}.phase", row.phase, PHASES)
    if row.unit not in UNITS:
        raise invalid_value(f"{where}.unit", row.unit, UNITS)
    if isinstance(row.figure, bool) or not isinstance(row.figure, (int, float)) or not row.figure > 0:
        raise invalid_value(f"{where}.figure", row.figure, "a positive number")
    if row.phase == "system" and not (row.prefill_chips and row.decode_chips):
        raise UsageError(f"{where}: a system row needs prefill_chips and decode_chips")
    return row


def load_published(path: Path = PUBLISHED_FILE) -> PublishedSet:
    data = read_toml(path, "published results file")
    split = data.get("split") or {}
    fit_before = _date(f"{Path(path).name}: [split].fit_published_before", split.get("fit_published_before"))
    rows = [
        _row(d, f"{Path(path).name}: row {i + 1} ({d.get('id', '?')})") for i, d in enumerate(data.get("row") or [])
    ]
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise UsageError(f"{Path(path).name}: row ids must be unique")
    return PublishedSet(tuple(rows), fit_before)


# -- prediction --------------------------------------------------------------------------------------------------


def _resolved(row: Row, silicon: Efficiency | None, engine: Mapping[str, float] | None, end: str, **query):
    from bench.projection.query import resolve

    resolved = resolve(row.query(**query), silicon, end=end, engine_factors=engine)
    if row.concurrency:
        dep = resolved.deployment
        replicas = max(
            1, (query.get("chips") or row.chips) // (resolved.parallel.replica_chips if resolved.parallel else 1)
        )
        limit = max(1, math.ceil(row.concurrency / replicas))
        resolved = replace(resolved, deployment=replace(dep, batch_limit=limit))
    return resolved


def _phase_rate(row: Row, phase: str, chips: int, silicon, engine, end: str) -> float | None:
    """Tokens/s per chip of one phase: output for decode and colocated, input for prefill."""
    from bench.projection.search import search_colocated, search_decode, search_prefill

    parallel = "row" if phase == row.phase else None
    resolved = _resolved(row, silicon, engine, end, chips=chips, parallel=parallel)
    dep, par = resolved.deployment, resolved.parallel
    tpot = row.tpot_slo_ms / 1e3 if row.tpot_slo_ms else None
    ttft = row.ttft_slo_ms / 1e3 if row.ttft_slo_ms else None
    i, o = row.input_tokens, row.output_tokens
    if phase == "decode":
        point = search_decode(dep, chips, i, o, tpot, row.batch_size, par)
    elif phase == "prefill":
        dep = replace(dep, options=replace(dep.options, speculation=None))
        point = search_prefill(dep, chips, i, ttft, row.batch_size if row.phase == "prefill" else None, par)
    else:
        point = search_colocated(dep, chips, i, o, tpot, ttft, row.batch_size, par)
    return point.tokens_per_s_per_chip if point else None


def predict(
    row: Row, silicon: Efficiency | None = None, engine: Mapping[str, float] | None = None, end: str = "central"
) -> float | None:
    """The serving model's figure for the row, in its unit (None where nothing fits). `silicon` and `engine` (the
    engine's factors) replace the committed ones (the fit); `end` takes every factor at an end of its range."""
    if row.phase == "system":
        decode = _phase_rate(row, "decode", row.decode_chips, silicon, engine, end)
        prefill = _phase_rate(row, "prefill", row.prefill_chips, silicon, engine, end)
        if not decode or not prefill:
            return None
        output = min(decode * row.decode_chips, prefill * row.prefill_chips * row.output_tokens / row.input_tokens)
        rate = output / (row.decode_chips + row.prefill_chips)
    else:
        rate = _phase_rate(row, row.phase, row.chips, silicon, engine, end)
    if rate is None:
        return None
    if row.unit == "total":
        return rate * (row.input_tokens + row.output_tokens) / row.output_tokens
    return rate


# -- fit ---------------------------------------------------------------------------------------------------------


def _log_error(predicted: float | None, figure: float) -> float:
    return math.log(predicted / figure) if predicted else math.log(1e3)


def _kind(row: Row) -> str:
    from bench.projection.profiles import get_profile

    return get_profile(row.profile).kind


def _engine(row: Row):
    from bench.projection.engines import get_engine

    return get_engine(row.engine)


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
    effs = {r.id: load_efficiency(_kind(r)).with_values(**silicon.get(_kind(r), {})) for r in rows}
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
    for kind in sorted({_kind(r) for r in fit_rows}):
        reference = [r for r in fit_rows if _kind(r) == kind and _engine(r).reference]
        if reference:
            silicon[kind] = _fit_silicon(kind, reference, **budget)
    engines: dict[str, dict[str, float]] = {}
    for key in sorted({r.engine for r in fit_rows}):
        engine = _engine(next(r for r in fit_rows if r.engine == key))
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


# -- validation ---------------------------------------------------------------------------------------------------


def _group(row: Row) -> str:
    from bench.projection.query import arch_of_model

    moe = "moe" if arch_of_model(row.model).moe_layers else "dense"
    return f"{moe} {_kind(row)} {row.engine}"


def _ln(value: float | None) -> float | None:
    return abs(math.log(1 + value)) if value is not None else None


def _stats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    errors = [r["abs_ln_error"] for r in rows if r["abs_ln_error"] is not None]
    worst = max((r for r in rows if r["abs_ln_error"] is not None), key=lambda r: r["abs_ln_error"], default=None)
    return {
        "rows": len(rows),
        "predicted": len(errors),
        "median_abs_ln_error": statistics.median(errors) if errors else None,
        "worst_row": worst["id"] if worst else None,
        "worst_ratio": math.exp(worst["abs_ln_error"]) if worst else None,
        "within_2x": sum(1 for e in errors if e <= math.log(2)),
        "inside_low_high": sum(1 for r in rows if r["inside_band"]),
    }


@dataclass
class Validation:
    rows: list[dict[str, Any]] = field(default_factory=list)
    fitted: dict[str, Any] = field(default_factory=dict)
    factors: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        held = [r for r in self.rows if r["use"] == "held_out"]
        fitted = [r for r in self.rows if r["use"] == "fit"]
        rel = [abs(r["error"]) for r in held if r["error"] is not None]
        return {
            "held_out": _stats(held),
            "fit": _stats(fitted),
            "median_abs_error_held_out": statistics.median(rel) if rel else None,
            "groups_held_out": {
                g: _stats([r for r in held if r["group"] == g]) for g in sorted({r["group"] for r in held})
            },
            "groups_fit": {
                g: _stats([r for r in fitted if r["group"] == g]) for g in sorted({r["group"] for r in fitted})
            },
            "pinned_factors": [f["name"] for f in self.factors if f["pinned"]],
        }

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "fitted": self.fitted, "factors": self.factors, "summary": self.summary()}


def _factor_positions(fitted: Mapping[str, Any]) -> list[dict[str, Any]]:
    from bench.projection.engines import get_engine

    out = []
    for kind, values in fitted["silicon"].items():
        for name, value in values.items():
            f = load_efficiency(kind).factors[name]
            out.append(_position(f"{kind}.{name}", value, f.low, f.high))
    for key, values in fitted["engines"].items():
        for name, value in values.items():
            f = get_engine(key).factors[name]
            out.append(_position(f"engine {key}.{name}", value, f.low, f.high))
    return out


def _position(name: str, value: float, low: float, high: float) -> dict[str, Any]:
    share = (value - low) / (high - low) if high > low else 0.5
    pinned = high > low and (share <= EDGE_SHARE or share >= 1 - EDGE_SHARE)
    return {"name": name, "value": value, "low": low, "high": high, "position": share, "pinned": pinned}


def _factors_for(row: Row, fitted: Mapping[str, Any]) -> tuple[Efficiency, dict[str, float] | None]:
    kind = _kind(row)
    eff = load_efficiency(kind).with_values(**fitted["silicon"].get(kind, {}))
    return eff, fitted["engines"].get(row.engine)


def _row_result(row: Row, published: PublishedSet, fitted: Mapping[str, Any]) -> dict[str, Any]:
    eff, engine = _factors_for(row, fitted)
    predicted = predict(row, eff, engine)
    # at the pessimistic end nothing may meet the bound: that end's figure is 0 tokens/s
    low, high = predict(row, end="low") or 0.0, predict(row, end="high")
    error = predicted / row.figure - 1 if predicted else None
    return {
        "id": row.id,
        "use": "fit" if published.is_fit(row) else "held_out",
        "published_on": row.published,
        "group": _group(row),
        "engine": row.engine,
        "model": row.model,
        "profile": row.profile,
        "chips": row.chips,
        "precision": row.precision,
        "phase": row.phase,
        "unit": row.unit,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "tpot_slo_ms": row.tpot_slo_ms,
        "published": row.figure,
        "predicted": predicted,
        "low": low,
        "high": high,
        "error": error,
        "abs_ln_error": _ln(error),
        "inside_band": bool(high and low <= row.figure <= high),
        "source_group": row.source_group,
        "source": row.source,
        "bound_note": row.bound_note,
    }


def validate(published: PublishedSet | None = None, refit: bool = False) -> Validation:
    """Predict every row with the committed fit (or, with `refit`, a fresh fit on the fit rows); low/high from
    every factor at the ends of its range."""
    published = published or load_published()
    fitted = fit(published.for_fitting(), published) if refit else committed_fit()
    out = Validation(fitted=fitted, factors=_factor_positions(fitted))
    out.rows = [_row_result(row, published, fitted) for row in published.rows]
    return out


def write_fit(fitted: Mapping[str, Any]) -> None:
    """Write `fitted = X` under each fitted factor's table (efficiency.toml, engines.toml), removing stale ones."""
    from bench.projection import efficiency, engines
    from bench.projection.efficiency import EFFICIENCY_FILE
    from bench.projection.engines import ENGINES_FILE

    _write_efficiency_fit(EFFICIENCY_FILE, fitted["silicon"])
    _write_engine_fit(ENGINES_FILE, fitted["engines"])
    efficiency._CACHE.clear()
    engines._CACHE.clear()
    _write_validation(VALIDATION_FILE, validate().summary())


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


VALIDATION_FILE = Path(__file__).with_name("validation.toml")


def _write_validation(path: Path, summary: Mapping[str, Any]) -> None:
    held = summary["held_out"]
    path.write_text(
        "# Written by `bench simulate --validate-serving --refit --write-fit` with the fit it wrote: the serving model's\n"
        "# error on the published rows held out from that fit. Bands of simulated serving figures are widened by it;\n"
        "# a test checks it against a fresh validation of the committed factors.\n"
        f"held_out_median_abs_error = {summary['median_abs_error_held_out']:.6f}\n"
        f"held_out_median_abs_ln_error = {held['median_abs_ln_error']:.6f}\n"
        f"held_out_rows = {held['rows']}\n",
        encoding="utf-8",
    )


def held_out_error() -> float | None:
    """The serving model's median |predicted / published - 1| on the held-out rows with the committed factors (as
    written with the fit in validation.toml): the validation error of the serving path, for its bands."""
    value = read_toml(VALIDATION_FILE, "validation file").get("held_out_median_abs_error")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 100:
        raise invalid_value(f"{VALIDATION_FILE.name}: held_out_median_abs_error", value, "a number from 0 to 100")
    return float(value)
