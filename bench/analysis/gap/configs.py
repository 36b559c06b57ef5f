"""One side's configuration with a subset of the levers applied, and what it serves (SIMULATED, bench.projection).

Levers (each from the side's reference state to its best):
  software      the reference engine (the open, general engine of the device kind: vLLM, vLLM-Ascend) -> the
                side's best engine (the best published stack for the model family unless the scenario names one)
  precision     the reference precision -> the side's best precision
  architecture  the dense reference model -> the scenario's model, only at equal or better published quality
                (models/quality.toml); otherwise the lever is left out and says why
  serving       basic serving -> the engine's best: basic is one colocated instance, TP within a scale-up domain
                (at most 8), PP across, no expert or attention data parallelism, no speculative decoding, no
                micro-batch overlap (engine-neutral, so searched with `--search any`; `basic_parallel`); best is every
                configuration the engine runs, in each mode it runs (colocated, disaggregated), multi-token
                prediction at the scenario's acceptance where the engine and model have it

The metric: output tokens/s per chip of the whole deployment, prefill included (`served_rate`), within the TPOT
bound; None where nothing fits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Iterable

from bench.core.errors import UsageError

__all__ = ["LEVERS", "Served", "levers_of", "query_of", "serve", "serve_side", "check_scenario", "subsets"]

LEVERS = ("software", "precision", "architecture", "serving")


@dataclass(frozen=True)
class Served:
    """What one configuration serves: tokens/s per chip (prefill included) and how."""

    rate: float
    mode: str
    engine: str
    precision: str
    model: str
    chips: int
    parallelism: dict[str, int] | None
    batch_per_chip: float | None
    tpot_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def levers_of(scenario) -> tuple[str, ...]:
    """The levers of a scenario: architecture only where the model is of equal or better published quality."""
    from models.quality import equal_or_better

    same, _ = equal_or_better(scenario.model, scenario.reference_model)
    return LEVERS if same else tuple(lever for lever in LEVERS if lever != "architecture")


def subsets(levers: Iterable[str]) -> list[frozenset[str]]:
    levers = tuple(levers)
    return [frozenset(c) for n in range(len(levers) + 1) for c in combinations(levers, n)]


def _best_engine(side, model: str) -> str:
    from bench.projection.engines import default_engine, family_of, get_engine
    from bench.projection.profiles import get_profile
    from bench.projection.query import arch_of_model

    family = family_of(arch_of_model(model))
    if side.engine and get_engine(side.engine).serves(family):
        return side.engine
    return default_engine(get_profile(side.profile).kind, family).key


def query_of(scenario, side, applied: frozenset[str], mode: str | None = None, chips: int | None = None):
    """The ServingQuery of `side` with the levers in `applied` at their best and the others at reference."""
    from bench.projection.project import ServingQuery

    model = scenario.model if "architecture" in applied else scenario.reference_model
    chips = chips or side.chips
    best_serving = "serving" in applied
    engine = _best_engine(side, model) if "software" in applied else side.reference_engine
    precision = side.precision if "precision" in applied else scenario.reference_precision
    return ServingQuery(
        model=model,
        profile=side.profile,
        chips=chips,
        precision=precision,
        input_tokens=scenario.input_tokens,
        output_tokens=scenario.output_tokens,
        tpot_slo_ms=scenario.tpot_slo_ms,
        engine=engine,
        mode=mode if best_serving else "colocated",
        parallel=None if best_serving else basic_parallel(model, precision, side.profile, chips),
        mtp_acceptance=scenario.mtp_acceptance if best_serving and _runs_mtp(engine, model) else None,
        overlap=None if best_serving else False,
        search="engine" if best_serving else "any",
    )


#: Basic serving keeps at most this share of a chip's usable memory for weights (the rest for the KV cache).
BASIC_WEIGHT_SHARE = 0.6


def basic_parallel(model: str, precision: str, profile: str, chips: int) -> str:
    """Basic serving's split: TP over min(8, chips, scale-up domain) chips, doubled inside the scale-up domain while
    the weights exceed BASIC_WEIGHT_SHARE of usable memory; then the fewest pipeline stages (a power of two) that
    hold them; replicas (data parallel) on the remaining chips."""
    from bench.projection.deployment import Parallel, Precision
    from bench.projection.efficiency import load_efficiency
    from bench.projection.memory import weight_bytes_per_chip
    from bench.projection.profiles import get_profile
    from bench.projection.query import arch_of_model

    prof = get_profile(profile)
    domain = int(prof.interconnect["scaleup_domain"].value) if prof.interconnect else 1
    arch, prec = arch_of_model(model), Precision.named(precision)
    usable = prof.memory_bytes * load_efficiency(prof.kind).memory_usable * BASIC_WEIGHT_SHARE

    def too_big(tp: int, pp: int) -> bool:
        return weight_bytes_per_chip(arch, prec, Parallel(tp=tp, pp=pp)) > usable

    tp = max(1, min(8, chips, domain))
    while chips % tp:
        tp //= 2
    while too_big(tp, 1) and 2 * tp <= min(domain, arch.heads) and chips % (2 * tp) == 0:
        tp *= 2
    pp = 1
    while (chips // tp) % (2 * pp) == 0 and too_big(tp, pp):
        pp *= 2
    return f"tp={tp},pp={pp}"


def _runs_mtp(engine_key: str, model: str) -> bool:
    from bench.projection.engines import family_of, get_engine
    from bench.projection.query import arch_of_model

    arch = arch_of_model(model)
    engine = get_engine(engine_key)
    family = family_of(arch)
    return bool(arch.mtp_layers) and engine.serves(family) and "mtp" in engine.capabilities(family).spec


def _modes(query) -> tuple[str, ...]:
    """The modes a best-serving query is projected in: each one its engine runs."""
    if query.parallel is not None:
        return ("colocated",)
    from bench.projection.engines import family_of, get_engine
    from bench.projection.query import arch_of_model

    caps = get_engine(query.engine).capabilities(family_of(arch_of_model(query.model)))
    return tuple(m for m in ("colocated", "disaggregated") if getattr(caps, m))


def _served(query, end: str, device=None, efficiency=None, engine_factors=None) -> Served | None:
    """One projection (it searches every mode the engine runs), read in each of those modes; the best one."""
    from dataclasses import replace

    from bench.projection.project import project, served_rate

    modes = _modes(query)
    q = replace(query, mode=modes[0])
    proj = project(q, efficiency, bands=False, device=device, engine_factors=engine_factors, end=end)
    best: Served | None = None
    for mode in modes:
        rate = served_rate(proj.points, mode, q.input_tokens, q.output_tokens)
        if rate and (best is None or rate > best.rate):
            lead = proj.colocated if mode == "colocated" else proj.decode
            best = Served(rate, mode, proj.resolved.engine.key, q.precision, q.model, q.chips,
                          lead.parallel.to_dict(), getattr(lead, "batch_per_chip", None),
                          lead.tpot_s * 1e3)  # fmt: skip
    return best


@functools.lru_cache(maxsize=4096)
def _served_cached(query, end: str) -> Served | None:
    return _served(query, end)


def serve(query, end: str = "central", device=None, efficiency=None, engine_factors=None) -> Served | None:
    """What `query` serves at an end of the factors' ranges (the best of the modes its engine runs). Plain
    queries are remembered for the process (the stability sweep and the attribution share many)."""
    if device is None and efficiency is None and engine_factors is None:
        return _served_cached(query, end)
    return _served(query, end, device, efficiency, engine_factors)


def check_scenario(scenario) -> None:
    """Resolve every configuration the analysis projects (each lever subset of each side): a name, precision or
    engine rule that fails is one line before anything is projected."""
    from bench.projection.project import resolve

    for role in ("frontier", "constrained"):
        side = scenario.side(role)
        for applied in subsets(levers_of(scenario)):
            query = query_of(scenario, side, applied)
            try:
                resolve(query)
            except UsageError as exc:
                what = "+".join(sorted(applied)) or "none"
                raise UsageError(f"{role} ({side.profile}, levers {what}): {exc}") from None


def serve_side(scenario, side, applied: frozenset[str], end: str = "central", chips: int | None = None):
    """What `side` serves with the levers in `applied`. Where the scenario carries a measured software factor for
    the side (`Scenario.measured_software`, from runs that differ only in engine), the software lever is that
    factor on the reference engine's projection instead of the engines' modelled difference."""
    measured = dict(scenario.measured_software).get(side.role)
    if measured is None or "software" not in applied:
        return serve(query_of(scenario, side, applied, chips=chips), end)
    base = serve(query_of(scenario, side, applied - {"software"}, chips=chips), end)
    factor = {"central": measured[0], "low": measured[1], "high": measured[2]}[end]
    from dataclasses import replace

    return replace(base, rate=base.rate * factor) if base else None
