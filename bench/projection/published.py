"""Published serving results (published_serving.toml) and the serving model's prediction of each: rows of
published figures, each with its setup and source (the file's header says what a row must state and how each
field is read), split by date -- rows published before the file's `[split].fit_published_before` are fit rows,
the rest held out (`PublishedSet.for_fitting()` is all the fitting code is handed) -- and `predict(row)`, the
figure the serving model gives for a row in its unit. The fit is in bench.projection.fit, the validation in
bench.projection.validation; `held_out_error()` reads the committed validation error (validation.toml).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from bench.core.errors import UsageError, invalid_value
from bench.core.tomlfile import read_toml
from bench.projection.efficiency import Efficiency

__all__ = [
    "Row",
    "PublishedSet",
    "load_published",
    "predict",
    "kind_of",
    "engine_of",
    "held_out_error",
    "PUBLISHED_FILE",
    "VALIDATION_FILE",
]

PUBLISHED_FILE = Path(__file__).with_name("published_serving.toml")
PHASES = ("decode", "prefill", "colocated", "system")
UNITS = ("output", "input", "total")


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


def kind_of(row: Row) -> str:
    """The device kind (gpu, npu) of the row's profile."""
    from bench.projection.profiles import get_profile

    return get_profile(row.profile).kind


def engine_of(row: Row):
    """The row's engine (bench.projection.engines.Engine)."""
    from bench.projection.engines import get_engine

    return get_engine(row.engine)


VALIDATION_FILE = Path(__file__).with_name("validation.toml")


def held_out_error() -> float | None:
    """The serving model's median |predicted / published - 1| on the held-out rows with the committed factors (as
    written with the fit in validation.toml): the validation error of the serving path, for its bands."""
    value = read_toml(VALIDATION_FILE, "validation file").get("held_out_median_abs_error")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 100:
        raise invalid_value(f"{VALIDATION_FILE.name}: held_out_median_abs_error", value, "a number from 0 to 100")
    return float(value)
