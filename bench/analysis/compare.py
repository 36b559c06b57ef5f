"""Comparing two sets of records cell by cell: ratio of medians with an interval, a test, and a verdict.

Method, per cell (records paired by spec key; samples of one cell pooled across the run directories given
for a side):
- ratio r = median(current) / median(baseline) of per-call latency (> 1 = slower);
- its 95% interval by bootstrap: both sample sets resampled with replacement (seeded, 2,000 times), the 2.5th
  and 97.5th percentiles of the resampled ratios;
- a two-sided Mann-Whitney U test of the two sample sets (latency is skewed and heavy-tailed, so no t-test),
  its p-values corrected over all compared cells with Holm's method;
- the effect that counts, delta = max(min_effect, 3 x the cell's noise floor), where a noise floor is the spread
  of log-ratios between repeated runs of the same code (A/A), stored beside a baseline in noise.json;
- verdict:
    regression    p_holm < alpha and the whole interval above 1 + delta
    improvement   p_holm < alpha and the whole interval below 1 / (1 + delta)
    no change     the whole interval inside [1 / (1 + delta), 1 + delta]
    inconclusive  anything else: the data cannot tell a change of delta from none (more samples, rounds,
                  or a quieter machine would)
Records measured in different environments (fingerprints) are refused unless explicitly allowed; simulated
records are compared only with simulated ones; cells not ok on either side are listed, not compared.
No printing here: `bench.output.render` and the CLI present a `Comparison`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import stats as _sps

from bench.core.errors import UsageError
from bench.core.record import Record
from bench.core.spec import BenchmarkSpec
from bench.core.stats import bootstrap_medians, median

__all__ = [
    "VERDICTS",
    "CellComparison",
    "Comparison",
    "compare_records",
    "holm",
    "noise_floors",
    "NOISE_FILE",
    "DEFAULT_MIN_EFFECT",
    "DEFAULT_ALPHA",
]

VERDICTS = ("regression", "improvement", "no change", "inconclusive")
DEFAULT_MIN_EFFECT = 0.05
DEFAULT_ALPHA = 0.01
BOOTSTRAP_RESAMPLES = 2000
NOISE_FILE = "noise.json"
#: The noise floor counts three times (a cell must move by more than 3 sigma of its A/A spread).
NOISE_MULTIPLIER = 3.0


@dataclass
class CellComparison:
    spec: BenchmarkSpec
    baseline_n: int
    current_n: int
    baseline_median_ns: float
    current_median_ns: float
    ratio: float
    ratio_ci: tuple[float, float]
    p_value: float
    p_holm: float = 1.0
    threshold: float = DEFAULT_MIN_EFFECT
    verdict: str = "inconclusive"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        data["spec_key"] = self.spec.key
        return data


@dataclass
class Comparison:
    cells: list[CellComparison]
    min_effect: float
    alpha: float
    not_compared: list[tuple[BenchmarkSpec, str]] = field(default_factory=list)
    environment_differences: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[CellComparison]:
        return [c for c in self.cells if c.verdict == "regression"]

    def to_dict(self) -> dict:
        return {
            "min_effect": self.min_effect,
            "alpha": self.alpha,
            "cells": [c.to_dict() for c in self.cells],
            "not_compared": [{"spec": s.to_dict(), "reason": r} for s, r in self.not_compared],
            "environment_differences": self.environment_differences,
            "regressions": len(self.regressions),
        }


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [1.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(p_values) - rank) * p_values[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def ratio_interval(baseline: np.ndarray, current: np.ndarray, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    b = bootstrap_medians(baseline, BOOTSTRAP_RESAMPLES, rng)
    c = bootstrap_medians(current, BOOTSTRAP_RESAMPLES, rng)
    low, high = np.percentile(c / b, [2.5, 97.5])
    return float(low), float(high)


def _verdict(ratio_ci: tuple[float, float], p_holm: float, threshold: float, alpha: float) -> str:
    low, high = ratio_ci
    if p_holm < alpha and low > 1 + threshold:
        return "regression"
    if p_holm < alpha and high < 1 / (1 + threshold):
        return "improvement"
    if low >= 1 / (1 + threshold) and high <= 1 + threshold:
        return "no change"
    return "inconclusive"


def compare_cell(spec: BenchmarkSpec, baseline: Sequence[int], current: Sequence[int], seed: int = 0) -> CellComparison:
    b, c = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    p_value = float(_sps.mannwhitneyu(c, b, alternative="two-sided").pvalue)
    return CellComparison(
        spec=spec,
        baseline_n=b.size,
        current_n=c.size,
        baseline_median_ns=median(b),
        current_median_ns=median(c),
        ratio=median(c) / median(b),
        ratio_ci=ratio_interval(b, c, seed),
        p_value=p_value,
    )


def _environment_differences(baseline: Iterable[Record], current: Iterable[Record]) -> list[str]:
    """Top-level environment areas whose content differs between the two sides (fingerprint keys only)."""
    from bench.core.environment import FINGERPRINT_KEYS

    def areas(records: Iterable[Record]) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {key: set() for key in FINGERPRINT_KEYS}
        for record in records:
            for key in FINGERPRINT_KEYS:
                if record.environment:
                    seen[key].add(json.dumps(record.environment.get(key), sort_keys=True, default=str))
        return seen

    before, after = areas(baseline), areas(current)
    return [key for key in FINGERPRINT_KEYS if before[key] and after[key] and before[key] != after[key]]


def _pool(records: Iterable[Record]) -> tuple[dict[str, list[int]], dict[str, Record]]:
    samples: dict[str, list[int]] = {}
    first: dict[str, Record] = {}
    for record in records:
        key = record.spec.key
        first.setdefault(key, record)
        if record.status == "ok" and record.measurement:
            samples.setdefault(key, []).extend(record.measurement.samples_ns)
    return samples, first


def compare_records(
    baseline: Sequence[Record],
    current: Sequence[Record],
    min_effect: float = DEFAULT_MIN_EFFECT,
    alpha: float = DEFAULT_ALPHA,
    noise: dict[str, float] | None = None,
    allow_env_mismatch: bool = False,
) -> Comparison:
    """Pair cells by spec and judge each (see the module docstring). Raises UsageError on an environment
    mismatch unless `allow_env_mismatch`."""
    if not 0 < min_effect < 1:
        raise UsageError(f"--min-effect: {min_effect!r} is not allowed; expected a fraction between 0 and 1")
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha: {alpha!r} is not allowed; expected a probability between 0 and 1")
    ok_base = [r for r in baseline if r.status == "ok"]
    ok_current = [r for r in current if r.status == "ok"]
    differences = _environment_differences(ok_base, ok_current)
    if differences and not allow_env_mismatch:
        raise UsageError(
            f"environment: baseline and current were measured in different environments ({', '.join(differences)}); "
            "pass --allow-env-mismatch to compare anyway"
        )
    base_samples, base_first = _pool(baseline)
    cur_samples, cur_first = _pool(current)
    cells, not_compared = [], []
    for key, record in cur_first.items():
        spec = record.spec
        if key not in base_first:
            not_compared.append((spec, "not in the baseline"))
        elif base_first[key].simulated != record.simulated:
            not_compared.append(
                (spec, "simulated on one side only: simulated records are compared only with simulated ones")
            )
        elif record.simulated:
            not_compared.append(
                (
                    spec,
                    "simulated: an estimate has no samples to test; compare its "
                    "simulation.estimate figures, or measured runs",
                )
            )
        elif key not in base_samples or key not in cur_samples:
            side = "baseline" if key not in base_samples else "current"
            not_compared.append((spec, f"no ok record in the {side}"))
        else:
            cells.append(compare_cell(spec, base_samples[key], cur_samples[key], seed=int(key[:8], 16)))
    not_compared += [(r.spec, "not in the current run") for k, r in base_first.items() if k not in cur_first]
    for cell, adjusted in zip(cells, holm([c.p_value for c in cells])):
        cell.p_holm = adjusted
        floor = (noise or {}).get(cell.spec.key, 0.0)
        cell.threshold = max(min_effect, NOISE_MULTIPLIER * floor)
        cell.verdict = _verdict(cell.ratio_ci, cell.p_holm, cell.threshold, alpha)
    return Comparison(
        cells=cells, min_effect=min_effect, alpha=alpha, not_compared=not_compared, environment_differences=differences
    )


def noise_floors(runs: Sequence[Sequence[Record]]) -> dict[str, float]:
    """Per-cell noise floor from repeated runs of the same code: the standard deviation of the log-ratio of two
    runs' medians, estimated as sqrt(2) x the spread of log medians across runs (1.4826 x MAD from 3 runs on,
    the sample standard deviation for 2)."""
    medians: dict[str, list[float]] = {}
    for run in runs:
        for record in run:
            if record.status == "ok" and record.measurement:
                medians.setdefault(record.spec.key, []).append(math.log(median(record.measurement.samples_ns)))
    floors = {}
    for key, logs in medians.items():
        if len(logs) < 2:
            continue
        arr = np.asarray(logs)
        spread = 1.4826 * float(np.median(np.abs(arr - np.median(arr)))) if arr.size >= 3 else float(arr.std(ddof=1))
        floors[key] = math.sqrt(2) * spread
    return floors


def read_noise(directory: str | Path) -> dict[str, float]:
    path = Path(directory) / NOISE_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v) for k, v in data["noise_floors"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: not a noise file written by `bench noise`: {exc}") from None
