"""Efficiency factors of the serving model (efficiency.toml): per device kind, the fraction of peak each class
of work reaches with the kind's reference engine, fixed costs per layer, per step and per all-to-all, and usable
memory; and, for every kind alike ([common]), expert-load imbalance with and without load balancing -- each with
a range, a status and a source, and optionally a value fitted on the published rows the split rule assigns to
fitting. An engine's kernels factor (engines.toml) scales GEMM, attention and memory efficiency.

`Efficiency.at("low")` / `at("high")` give the pessimistic / optimistic ends of every range (low efficiency,
high overheads and imbalance), which projections carry into their low/high figures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from bench.core.errors import UsageError

__all__ = ["Factor", "Efficiency", "load_efficiency", "parse_factor", "FACTORS", "EFFICIENCY_FILE"]

EFFICIENCY_FILE = Path(__file__).with_name("efficiency.toml")
FACTORS = (
    "gemm",
    "gemm_half_rows",
    "grouped_gemm_half_rows",
    "grouped_gemm",
    "attention",
    "memory",
    "collective",
    "a2a_overhead_us",
    "layer_overhead_us",
    "step_overhead_ms",
    "moe_imbalance",
    "moe_imbalance_eplb",
    "memory_usable",
)
#: Factors where a larger value makes a projection slower (the pessimistic end is `high`, not `low`).
COSTS = (
    "gemm_half_rows",
    "grouped_gemm_half_rows",
    "a2a_overhead_us",
    "layer_overhead_us",
    "step_overhead_ms",
    "moe_imbalance",
    "moe_imbalance_eplb",
)
#: Efficiencies an engine's kernels factor scales (each stays below CEILING of peak).
KERNEL_FACTORS = ("gemm", "attention", "memory")
#: Fixed costs an engine's overheads factor scales.
OVERHEAD_FACTORS = ("layer_overhead_us", "step_overhead_ms")
CEILING = 0.98


@dataclass(frozen=True)
class Factor:
    value: float
    low: float
    high: float
    status: str
    source: str
    fitted: float | None = None
    fit_rows: tuple[str, ...] = ()

    @property
    def central(self) -> float:
        return self.fitted if self.fitted is not None else self.value

    def to_dict(self) -> dict[str, Any]:
        out = {"value": self.value, "low": self.low, "high": self.high, "status": self.status, "source": self.source}
        if self.fitted is not None:
            out.update(fitted=self.fitted, fit_rows=list(self.fit_rows))
        return out


@dataclass(frozen=True)
class Efficiency:
    """One device kind's factors, resolved to single numbers for a projection (`values`), with their sources."""

    kind: str
    factors: Mapping[str, Factor]
    values: Mapping[str, float]
    end: str = "central"

    def __post_init__(self) -> None:
        # each factor also an attribute of its own (eff.gemm), found without __getattr__: a search reads them
        # millions of times; names that are already attributes of the class stay reachable through `values`
        for name, value in self.values.items():
            if not hasattr(type(self), name) and name not in ("kind", "factors", "values", "end"):
                object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> float:
        values = self.__dict__.get("values") or {}
        if name in values:
            return values[name]
        raise AttributeError(name)

    def at(self, end: str) -> "Efficiency":
        """Every factor at the pessimistic ("low") or optimistic ("high") end of its range, or "central"."""
        if end == "central":
            values = {k: f.central for k, f in self.factors.items()}
        elif end in ("low", "high"):
            pessimistic = end == "low"
            values = {k: (f.high if (k in COSTS) == pessimistic else f.low) for k, f in self.factors.items()}
        else:
            raise ValueError(end)
        return replace(self, values=values, end=end)

    def gemm_at(self, rows: float) -> float:
        """GEMM efficiency for a matmul with `rows` rows (tokens): gemm x rows / (rows + gemm_half_rows) -- small
        matmuls fill a fraction of the matrix units' tiles; at gemm_half_rows rows they reach half of `gemm`."""
        return self.gemm * rows / (rows + self.gemm_half_rows) if rows > 0 else self.gemm

    def grouped_gemm_at(self, rows_per_expert: float) -> float:
        """Efficiency of the experts' grouped GEMM with `rows_per_expert` tokens per expert: gemm x grouped_gemm
        x r / (r + grouped_gemm_half_rows) -- many small matmuls (routing, permutation, per-expert scheduling)
        reach `grouped_gemm` of a dense GEMM's efficiency at best, and their tiles fill as tokens per expert
        grow."""
        r = max(rows_per_expert, 0.0)
        best = self.gemm * self.grouped_gemm
        return best * r / (r + self.grouped_gemm_half_rows) if r > 0 else best

    def with_engine(self, kernels: float, overheads: float = 1.0) -> "Efficiency":
        """These factors under an engine whose kernels reach `kernels` x the reference stack's efficiency
        (GEMM, attention, memory; capped at CEILING of peak) and whose fixed costs per layer and per step are
        `overheads` x the reference stack's (graphs, fused kernels, the scheduler)."""
        if kernels == 1.0 and overheads == 1.0:
            return self
        values = {k: min(CEILING, self.values[k] * kernels) for k in KERNEL_FACTORS}
        values.update({k: self.values[k] * overheads for k in OVERHEAD_FACTORS})
        return self.with_values(**values)

    def with_values(self, **values: float) -> "Efficiency":
        return replace(self, values={**self.values, **values})

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "end": self.end,
            "values": dict(self.values),
            "factors": {k: f.to_dict() for k, f in self.factors.items()},
        }


def _read(path: Path) -> dict[str, Any]:
    from bench.core.tomlfile import read_toml

    return read_toml(path, "efficiency file")


def parse_factor(data: Any, where: str) -> Factor:
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: missing or not a table")
    for key in ("value", "low", "high", "status", "source"):
        if key not in data:
            raise UsageError(f"{where}.{key}: missing; a factor needs value, low, high, status, source")
    value, low, high = (data[k] for k in ("value", "low", "high"))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in (value, low, high)):
        raise UsageError(f"{where}: value, low and high must be positive numbers; got {value!r}, {low!r}, {high!r}")
    if not low <= value <= high:
        raise UsageError(f"{where}: value {value} is outside its range [{low}, {high}]")
    fitted = data.get("fitted")
    if fitted is not None and not low <= fitted <= high:
        raise UsageError(f"{where}.fitted: {fitted} is outside the range [{low}, {high}]")
    return Factor(
        float(value),
        float(low),
        float(high),
        str(data["status"]),
        str(data["source"]),
        float(fitted) if fitted is not None else None,
        tuple(data.get("fit_rows") or ()),
    )


_CACHE: dict[str, dict[str, dict[str, Factor]]] = {}


def _tables(path: Path) -> dict[str, dict[str, Factor]]:
    """Per device kind, every factor: the kind's own table over the [common] one (factors of the workload, not
    the silicon: the same figures for every kind)."""
    raw = _read(path)
    common = raw.pop("common", {})
    if not isinstance(common, dict):
        raise UsageError(f"{path.name}: [common]: not a table of factors")
    out = {}
    for kind, table in raw.items():
        if not isinstance(table, dict):
            raise UsageError(f"{path.name}: [{kind}]: not a table of factors")
        merged = {**common, **table}
        where = {f: f"{path.name}: [{kind if f in table else 'common'}.{f}]" for f in FACTORS}
        out[kind] = {f: parse_factor(merged.get(f), where[f]) for f in FACTORS}
    return out


def load_efficiency(kind: str, path: Path = EFFICIENCY_FILE) -> Efficiency:
    """The factors for a device kind ("gpu", "npu", "cpu") at their central values."""
    key = str(path)
    if key not in _CACHE:
        _CACHE[key] = _tables(path)
    table = _CACHE[key]
    if kind not in table:
        raise UsageError(f"efficiency: no factors for device kind {kind!r}; allowed: {', '.join(table)}")
    return Efficiency(kind, table[kind], {}).at("central")
