"""The serving model against published serving results (published_serving.toml), with an honest split.

- Rows marked `use = "fit"` may choose efficiency factors: per device kind, the GEMM and memory efficiencies
  are picked on a grid inside their sourced ranges to minimise the squared log error on that kind's fit rows
  (ties go to the values nearer the sourced central ones). Kinds without fit rows keep the sourced values.
  `fit()` is handed the fit rows only (`PublishedSet.for_fitting()`); held-out rows never reach it.
- Every row is then predicted with the resulting factors and compared: error = predicted / published - 1.
  The summary gives the median |error| of the fit rows and of the held-out rows, the held-out rows' worst
  ratio, and whether each published figure lies inside the projection's low/high range.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from bench.core.errors import UsageError
from bench.projection.efficiency import EFFICIENCY_FILE, Efficiency, load_efficiency

__all__ = [
    "Row",
    "PublishedSet",
    "load_published",
    "predict",
    "fit",
    "validate",
    "Validation",
    "write_fit",
    "PUBLISHED_FILE",
    "FITTED_FACTORS",
]

PUBLISHED_FILE = Path(__file__).with_name("published_serving.toml")
PHASES = ("decode", "prefill", "aggregated")
USES = ("fit", "held_out")
#: The factors the fit chooses (inside their ranges); the rest keep their sourced values.
FITTED_FACTORS = ("gemm", "memory")
GRID_STEPS = 13


@dataclass(frozen=True)
class Row:
    id: str
    use: str
    source: str
    model: str
    profile: str
    chips: int
    precision: str
    phase: str
    input_tokens: int
    output_tokens: int
    figure: float
    parallel: str | None = None
    tpot_slo_ms: float | None = None
    ttft_slo_ms: float | None = None
    batch_size: int | None = None
    mtp_acceptance: float | None = None
    bound_note: str | None = None

    def query(self):
        from bench.projection.project import ServingQuery

        return ServingQuery(
            model=self.model,
            profile=self.profile,
            chips=self.chips,
            precision=self.precision,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            tpot_slo_ms=self.tpot_slo_ms,
            ttft_slo_ms=self.ttft_slo_ms,
            batch_size=self.batch_size,
            parallel=self.parallel,
            mtp_acceptance=self.mtp_acceptance,
        )


@dataclass(frozen=True)
class PublishedSet:
    rows: tuple[Row, ...]

    def for_fitting(self) -> tuple[Row, ...]:
        """The rows fitting may read: `use = "fit"` only."""
        return tuple(r for r in self.rows if r.use == "fit")

    def held_out(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.use == "held_out")


def _read(path: Path) -> dict[str, Any]:
    from bench.core.tomlfile import read_toml

    return read_toml(path, "published results file")


def load_published(path: Path = PUBLISHED_FILE) -> PublishedSet:
    rows = []
    for i, data in enumerate(_read(path).get("row") or []):
        where = f"{path.name}: row {i + 1} ({data.get('id', '?')})"
        known = {f for f in Row.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{where}: {unknown[0]!r} is not a row field; allowed: {', '.join(sorted(known))}")
        try:
            row = Row(**data)
        except TypeError as exc:
            raise UsageError(f"{where}: {exc}") from None
        if row.use not in USES:
            raise UsageError(f"{where}.use: {row.use!r} is not allowed; expected one of {', '.join(USES)}")
        if row.phase not in PHASES:
            raise UsageError(f"{where}.phase: {row.phase!r} is not allowed; expected one of {', '.join(PHASES)}")
        if not (isinstance(row.figure, (int, float)) and row.figure > 0):
            raise UsageError(f"{where}.figure: {row.figure!r} is not allowed; expected a positive number")
        rows.append(row)
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise UsageError(f"{path.name}: row ids must be unique")
    return PublishedSet(tuple(rows))


def _kind(row: Row) -> str:
    from bench.projection.profiles import get_profile

    return get_profile(row.profile).kind


def predict(row: Row, eff: Efficiency) -> float | None:
    """The serving model's figure for the row (same unit as `row.figure`), or None where nothing fits."""
    from bench.projection.deployment import Deployment, Options
    from bench.projection.project import resolve
    from bench.projection.search import (
        aggregated_tokens_per_s_per_chip,
        decode_point,
        parse_parallel,
        search_decode,
        search_prefill,
    )

    arch, device, precision = resolve(row.query())
    parallel = parse_parallel(row.parallel, arch, row.chips) if row.parallel else None
    dep = Deployment(arch, precision, device, eff, Options(row.mtp_acceptance))
    if row.phase == "decode":
        tpot = row.tpot_slo_ms / 1e3 if row.tpot_slo_ms else None
        point = search_decode(dep, row.chips, row.input_tokens, row.output_tokens, tpot, row.batch_size, parallel)
        return point.tokens_per_s_per_chip if point else None
    if row.phase == "prefill":
        ttft = row.ttft_slo_ms / 1e3 if row.ttft_slo_ms else None
        prefill_dep = Deployment(arch, precision, device, eff, Options())
        point = search_prefill(prefill_dep, row.chips, row.input_tokens, ttft, row.batch_size, parallel)
        return point.tokens_per_s_per_chip if point else None
    if parallel is None or row.batch_size is None:
        raise UsageError(f"row {row.id}: an aggregated row needs parallel and batch_size")
    dep = dep.with_split(parallel)
    if not decode_point(dep, row.batch_size, row.input_tokens, row.output_tokens).fits:
        return None
    return aggregated_tokens_per_s_per_chip(dep, row.batch_size, row.input_tokens, row.output_tokens)


def _log_error(predicted: float | None, figure: float) -> float:
    return math.log(predicted / figure) if predicted else math.log(1e3)


def _grid(low: float, high: float) -> list[float]:
    return [round(low + (high - low) * i / (GRID_STEPS - 1), 4) for i in range(GRID_STEPS)]


def fit(fit_rows: Sequence[Row]) -> dict[str, dict[str, float]]:
    """Per device kind with fit rows: {"gemm": x, "memory": y} minimising the squared log error on those rows,
    each inside its sourced range. Reads nothing but `fit_rows`."""
    if any(r.use != "fit" for r in fit_rows):
        raise ValueError("fit() was handed a held-out row")
    by_kind: dict[str, list[Row]] = {}
    for row in fit_rows:
        by_kind.setdefault(_kind(row), []).append(row)
    result = {}
    for kind, rows in sorted(by_kind.items()):
        base = load_efficiency(kind)
        centre = {k: base.factors[k].value for k in FITTED_FACTORS}
        best: tuple[float, float, dict[str, float]] | None = None
        for gemm in _grid(base.factors["gemm"].low, base.factors["gemm"].high):
            for mem in _grid(base.factors["memory"].low, base.factors["memory"].high):
                eff = base.with_values(gemm=gemm, memory=mem)
                loss = sum(_log_error(predict(r, eff), r.figure) ** 2 for r in rows)
                distance = abs(gemm - centre["gemm"]) + abs(mem - centre["memory"])
                if best is None or (loss, distance) < best[:2]:
                    best = (loss, distance, {"gemm": gemm, "memory": mem})
        result[kind] = best[2]
    return result


def efficiency_for(kind: str, fitted: Mapping[str, Mapping[str, float]] | None = None) -> Efficiency:
    """The factors a projection uses: central values, with `fitted` (or the committed fit) applied."""
    eff = load_efficiency(kind)
    if fitted is not None and kind in fitted:
        eff = eff.with_values(**fitted[kind])
    return eff


@dataclass
class Validation:
    rows: list[dict[str, Any]] = field(default_factory=list)
    fitted: dict[str, dict[str, float]] = field(default_factory=dict)

    def _errors(self, use: str) -> list[float]:
        return [r["error"] for r in self.rows if r["use"] == use and r["error"] is not None]

    def summary(self) -> dict[str, Any]:
        held = self._errors("held_out")
        fitted = self._errors("fit")
        held_rows = [r for r in self.rows if r["use"] == "held_out"]
        return {
            "median_abs_error_fit": statistics.median(abs(e) for e in fitted) if fitted else None,
            "median_abs_error_held_out": statistics.median(abs(e) for e in held) if held else None,
            "held_out_rows": len(held_rows),
            "held_out_worst_ratio": max((max(1 + e, 1 / (1 + e)) for e in held), default=None),
            "held_out_within_2x": sum(1 for e in held if 0.5 <= 1 + e <= 2),
            "held_out_inside_low_high": sum(1 for r in held_rows if r["inside_band"]),
            "held_out_no_prediction": sum(1 for r in held_rows if r["predicted"] is None),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "fitted": self.fitted, "summary": self.summary()}


def validate(
    published: PublishedSet | None = None, fitted: Mapping[str, Mapping[str, float]] | None = None, refit: bool = True
) -> Validation:
    """Fit on the fit rows (unless `refit` is false: then the committed fit in efficiency.toml), then predict
    every row; low/high come from the ends of every factor's range."""
    published = published or load_published()
    fitted = dict(fitted) if fitted is not None else (fit(published.for_fitting()) if refit else committed_fit())
    out = Validation(fitted={k: dict(v) for k, v in fitted.items()})
    for row in published.rows:
        eff = efficiency_for(_kind(row), fitted)
        predicted = predict(row, eff)
        low, high = predict(row, eff.at("low")), predict(row, eff.at("high"))
        error = predicted / row.figure - 1 if predicted else None
        out.rows.append(
            {
                "id": row.id,
                "use": row.use,
                "model": row.model,
                "profile": row.profile,
                "chips": row.chips,
                "precision": row.precision,
                "phase": row.phase,
                "parallel": row.parallel,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "tpot_slo_ms": row.tpot_slo_ms,
                "published": row.figure,
                "predicted": predicted,
                "low": low,
                "high": high,
                "error": error,
                "inside_band": bool(low and high and low <= row.figure <= high),
                "source": row.source,
                "bound_note": row.bound_note,
            }
        )
    return out


def committed_fit(path: Path = EFFICIENCY_FILE) -> dict[str, dict[str, float]]:
    """The fitted values written into efficiency.toml by the last `--write-fit`."""
    out: dict[str, dict[str, float]] = {}
    for kind in ("gpu", "npu", "cpu"):
        eff = load_efficiency(kind, path)
        values = {k: eff.factors[k].fitted for k in FITTED_FACTORS if eff.factors[k].fitted is not None}
        if values:
            out[kind] = values
    return out


def write_fit(fitted: Mapping[str, Mapping[str, float]], fit_rows: Iterable[Row], path: Path = EFFICIENCY_FILE) -> None:
    """Write `fitted = X` and `fit_rows = [...]` under each fitted factor's table in efficiency.toml (and remove
    stale ones), leaving everything else as it is."""
    from bench.projection import efficiency

    rows_by_kind: dict[str, list[str]] = {}
    for row in fit_rows:
        rows_by_kind.setdefault(_kind(row), []).append(row.id)
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(fitted|fit_rows) = .*\n", "", text)
    for kind, values in fitted.items():
        for name, value in values.items():
            header = f"[{kind}.{name}]\n"
            if header not in text:
                raise UsageError(f"{path.name}: no table {header.strip()} to write the fit into")
            start = text.index(header) + len(header)
            end = text.find("\n\n", start)
            end = len(text) if end < 0 else end
            ids = ", ".join(f'"{i}"' for i in rows_by_kind.get(kind, []))
            text = text[:end] + f"\nfitted = {value}\nfit_rows = [{ids}]" + text[end:]
    path.write_text(text, encoding="utf-8")
    efficiency._CACHE.clear()


_HELD_OUT: list[float | None] = []


def held_out_error() -> float | None:
    """The serving model's median |error| on the published results held out from its fit, with the committed
    factors (computed once per process): the validation error of the serving path, for its bands."""
    if not _HELD_OUT:
        _HELD_OUT.append(validate(refit=False).to_dict()["summary"].get("median_abs_error_held_out"))
    return _HELD_OUT[0]
