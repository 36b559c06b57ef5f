"""Published quality scores of catalogue models (quality.toml), and "at equal quality" between two models.

A score is a benchmark result as a publisher reported it, with its setting, source and date. Two models are at
equal or better quality when they share at least `MIN_SHARED` benchmarks and the candidate is on none of them
worse than the reference by more than `tolerance` points (default `DEFAULT_TOLERANCE`). Settings differ between
publishers (CoT or not, EM or pass@1), so the comparison is a screen, not a ranking; the report shows the scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import UsageError
from bench.core.tomlfile import read_toml

__all__ = ["Score", "scores_of", "equal_or_better", "QUALITY_FILE", "DEFAULT_TOLERANCE", "MIN_SHARED"]

QUALITY_FILE = Path(__file__).with_name("quality.toml")
#: Points a candidate may trail the reference by on a shared benchmark and still count as equal quality.
DEFAULT_TOLERANCE = 1.0
#: Shared benchmarks needed before two models are compared at all.
MIN_SHARED = 2


@dataclass(frozen=True)
class Score:
    model: str
    benchmark: str
    value: float
    setting: str
    source: str
    date: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


_CACHE: dict[str, list[Score]] = {}


def _load(path: Path = QUALITY_FILE) -> list[Score]:
    if str(path) not in _CACHE:
        data = read_toml(path, "quality file")
        scores = []
        for i, row in enumerate(data.get("score", [])):
            try:
                scores.append(
                    Score(
                        str(row["model"]),
                        str(row["benchmark"]),
                        float(row["value"]),
                        str(row["setting"]),
                        str(row["source"]),
                        str(row["date"]),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise UsageError(f"{path.name}: score {i + 1}: {exc!r} is missing or malformed") from None
        _CACHE[str(path)] = scores
    return _CACHE[str(path)]


def scores_of(model: str) -> dict[str, Score]:
    """Benchmark -> score for a model as released (its catalogue name or an alias)."""
    return {s.benchmark: s for s in _load() if s.model == model}


def equal_or_better(candidate: str, reference: str, tolerance: float = DEFAULT_TOLERANCE) -> tuple[bool | None, str]:
    """Whether `candidate` is at equal or better quality than `reference` (None: too few shared benchmarks), and
    a sentence that says on which benchmarks."""
    mine, theirs = scores_of(candidate), scores_of(reference)
    shared = sorted(set(mine) & set(theirs))
    if len(shared) < MIN_SHARED:
        return None, f"{candidate} and {reference} share {len(shared)} published benchmark(s); need {MIN_SHARED}"
    worse = [b for b in shared if mine[b].value < theirs[b].value - tolerance]
    detail = ", ".join(f"{b} {mine[b].value:g} vs {theirs[b].value:g}" for b in shared)
    if worse:
        return False, f"{candidate} trails {reference} on {', '.join(worse)} ({detail})"
    return (
        True,
        f"{candidate} is at equal or better quality than {reference} ({detail}; tolerance {tolerance:g} points)",
    )
