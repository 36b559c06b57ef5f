"""The serving model against every published row (bench.projection.published): each predicted with the committed
factors (or a fresh fit), error = predicted / published - 1; per row and per group (dense/MoE x GPU/NPU x
engine) the median |ln(predicted/published)|, the worst row, and how often the published figure lies inside the
projection's [low, high] (every factor at the ends of its range). Every fitted factor is reported with where it
sits in its range; one within EDGE_SHARE of an end is flagged as pinned. `write_fit` commits a fit and the
held-out error it gives (validation.toml).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from bench.projection.efficiency import Efficiency, load_efficiency
from bench.projection.fit import committed_fit, fit, write_factors
from bench.projection.published import VALIDATION_FILE, PublishedSet, Row, kind_of, load_published, predict

__all__ = ["Validation", "validate", "write_fit", "EDGE_SHARE"]

#: A fitted factor within this share of its range's width from an end is reported as pinned there.
EDGE_SHARE = 0.02


def _group(row: Row) -> str:
    from bench.projection.query import arch_of_model

    moe = "moe" if arch_of_model(row.model).moe_layers else "dense"
    return f"{moe} {kind_of(row)} {row.engine}"


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
    kind = kind_of(row)
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
    """Commit a fit: its factors into efficiency.toml and engines.toml, and the held-out error it gives into
    validation.toml."""
    write_factors(fitted)
    _write_validation(VALIDATION_FILE, validate().summary())


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
