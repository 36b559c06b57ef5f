"""The software lever measured: engine factors from runs that differ only in the serving engine.

Two records are "the same but for the engine" when they are serving-engine cells (a `serving` section) of the same
workload shape (model, batch, prompt and output lengths: `shape_of`) and the same load (`LOAD_KEYS`: concurrency,
Poisson rate, request count, API, ignore_eos, prompt method); the endpoint, the served name, `extra_body`,
tokenizer and the engine itself may differ. The engine of a record is the name its probe found
(`serving.server.engine_identity.name`: /v1/models, /props, /version, the Server header or `-O engine_name`).

Engine factor of a group = output tokens/s of the better engine / output tokens/s of the reference engine, with
the interval of `bench.analysis.catchup.ratio` for two independent measurements ([low_a / high_b, high_a / low_b];
each throughput interval from batch means of the request times, 2 x BATCHES = 40 requests at least). Without
names, the better engine is the fastest in the group and the reference the slowest; with `best` and `reference`
both must be in the group. Where several records of one engine are in a group, the last one counts.

`software_lever` picks the factor a catch-up scenario takes (`bench catchup --software-from RUN_DIR`): the group
with the highest concurrency (serving at load is what a scenario projects), ties to the higher request rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from bench.analysis.catchup import Point, Ratio, metric_of, ratio
from bench.core.errors import UsageError
from bench.core.record import Record
from bench.core.vocabulary import shape_of

__all__ = ["EngineFactor", "engine_of", "engine_factors", "software_lever", "LOAD_KEYS"]

#: The options that make two loads the same load (with their defaults where a spec leaves one out).
LOAD_KEYS = {"concurrency": 1, "request_rate": 0.0, "requests": 32, "api": "completions", "ignore_eos": True,
             "prompts": "auto"}  # fmt: skip


@dataclass(frozen=True)
class EngineFactor:
    """One group of records differing only in engine: the better engine over the reference one."""

    shape: tuple
    load: tuple[tuple[str, Any], ...]
    best: Point
    reference: Point
    factor: Ratio
    engines: tuple[str, ...]  # every engine of the group, fastest first

    @property
    def best_engine(self) -> str:
        return engine_of(self.best.record) or "?"

    @property
    def reference_engine(self) -> str:
        return engine_of(self.reference.record) or "?"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.shape[0],
            "load": dict(self.load),
            "best": self.best_engine,
            "reference": self.reference_engine,
            "best_output_tokens_per_s": self.best.value,
            "reference_output_tokens_per_s": self.reference.value,
            "factor": self.factor.value,
            "low": self.factor.low,
            "high": self.factor.high,
            "kind": self.factor.kind,
            "engines": list(self.engines),
        }


def engine_of(record: Record) -> str | None:
    """The engine's name as its probe found it; the /v1/models engine or the Server header for older records."""
    server = (record.serving or {}).get("server") or {}
    for found in (server.get("engine_identity"), server.get("engine")):
        if isinstance(found, dict) and found.get("name"):
            return str(found["name"])
    return server.get("server_header") or None


def _load(record: Record) -> tuple[tuple[str, Any], ...]:
    return tuple((k, record.spec.option(k, default)) for k, default in LOAD_KEYS.items())


def _groups(records: Sequence[Record]) -> dict[tuple, dict[str, Point]]:
    groups: dict[tuple, dict[str, Point]] = {}
    for record in records:
        engine = engine_of(record) if record.serving and record.status == "ok" else None
        point = metric_of(record) if engine else None
        if point is not None:
            groups.setdefault((shape_of(record.spec), _load(record)), {})[engine] = point
    return groups


def engine_factors(records: Sequence[Record], best: str | None = None, reference: str | None = None) -> list[EngineFactor]:  # fmt: skip
    """An EngineFactor for every group with two engines or more (module docstring)."""
    factors = []
    for (shape, load), points in _groups(records).items():
        if len(points) < 2:
            continue
        ranked = sorted(points.items(), key=lambda item: -item[1].value)
        if best is not None or reference is not None:
            if best not in points or reference not in points:
                continue
            top, bottom = points[best], points[reference]
        else:
            top, bottom = ranked[0][1], ranked[-1][1]
        names = tuple(name for name, _ in ranked)
        factors.append(EngineFactor(shape, load, top, bottom, ratio(top, bottom), names))
    return factors


def software_lever(records: Sequence[Record], engines: tuple[str, str] | None = None, where: str = "RUN_DIR") -> EngineFactor:  # fmt: skip
    """The engine factor a catch-up scenario takes (module docstring); a one-line UsageError when the records
    hold no pair of runs differing only in engine, an engine named is not in them, or the factor has no
    interval."""
    known = sorted({e for e in (engine_of(r) for r in records if r.serving) if e})
    if engines is not None:
        if len(set(engines)) != 2:
            raise UsageError(
                f"--software-engines: {','.join(engines)!r} is not allowed; expected two different engines"
            )
        unknown = [name for name in engines if name not in known]
        if unknown:
            raise UsageError(
                f"--software-engines: {unknown[0]!r} is not allowed; expected engines in {where}: "
                f"{', '.join(known) or 'none'}"
            )
    factors = engine_factors(records, *(engines or (None, None)))
    if not factors:
        raise UsageError(
            f"--software-from: {where} has no pair of runs differing only in engine (same model, lengths and load; "
            f"engines found: {', '.join(known) or 'none'}); expected runs of two engines or more"
        )
    chosen = max(factors, key=lambda f: (dict(f.load)["concurrency"], dict(f.load)["request_rate"] or 0.0))
    if chosen.factor.low is None or chosen.factor.high is None:
        raise UsageError(
            f"--software-from: the factor {chosen.best_engine}/{chosen.reference_engine} in {where} has no interval; "
            "expected runs of 40 requests or more (-O requests=40)"
        )
    return chosen
