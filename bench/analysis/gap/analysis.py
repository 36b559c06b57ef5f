"""The catch-up of one scenario, both sides at their best (SIMULATED with the serving model).

Headline figures (each a Band: central value and [low, high]):
  gap_at_best              frontier at its best / constrained at its best, output tokens/s per chip (prefill
                           included) within the TPOT bound; > 1: the frontier serves more per chip
  hardware_gap             the same ratio with both sides at the reference configuration (dense reference model,
                           reference precision, basic serving, each side's reference engine)
  catch_up_from_reference  constrained at its best / frontier at its reference: what "catch-up" meant before; it
                           credits the constrained side with levers the frontier has too, so it is secondary
  gap_closed               hardware_gap / gap_at_best: > 1 where the levers help the constrained side more
Per system: gap_at_best x frontier chips / constrained chips (the two deployments' output). Per watt and per
dollar: gap_at_best x the constrained side's power (price) per chip over the frontier's -- chip TDP for chip
scenarios, system power at the wall for system scenarios -- where both figures are sourced.

Bands (never confidence intervals): the ratio at the efficiency factors' pessimistic and optimistic ends (both sides
at the same end: one model, correlated), widened log-symmetrically by the serving model's held-out error on
published results (x/÷ exp(sqrt(2) |ln(1 + e)|)). An end at which a side has no configuration is named in
`ends_without_configuration`.

Attribution: Shapley factors of the levers on each side (bench.analysis.gap.attribution), and of the hardware
parts in the hardware gap. Chips to match: the smallest constrained deployment (at least the memory minimum,
at the per-chip rate of that scale, same bounds) serving what the frontier deployment at its best serves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.analysis.gap.attribution import hardware_shapley, side_shapley
from bench.analysis.gap.configs import Served, levers_of, query_of, serve_side
from bench.core.errors import UsageError
from bench.core.stats import log_symmetric_factor

__all__ = ["Band", "CatchUpAnalysis", "analyse", "ratio_band", "ENDS"]

ENDS = ("central", "low", "high")


@dataclass(frozen=True)
class Band:
    value: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def scaled(self, k: float | None) -> "Band | None":
        if k is None or self.value is None:
            return None
        return Band(self.value * k, _mul(self.low, k), _mul(self.high, k))


def _mul(x: float | None, k: float) -> float | None:
    return None if x is None else x * k


def ratio_band(num: dict[str, Served | None], den: dict[str, Served | None], error: float | None) -> Band:
    """num / den at the central end, with [low, high] over the ends where both exist, widened by `error`."""
    values = {e: num[e].rate / den[e].rate for e in ENDS if num.get(e) and den.get(e)}
    if "central" not in values:
        return Band(None, None, None)
    widen = log_symmetric_factor(error, 2) if error is not None else 1.0
    return Band(values["central"], min(values.values()) / widen, max(values.values()) * widen)


@dataclass
class CatchUpAnalysis:
    scenario: Any
    served: dict[str, dict[str, dict[str, Served | None]]]  # side -> "reference"/"best" -> end -> Served
    gap_at_best: Band
    hardware_gap: Band
    catch_up_from_reference: Band
    gap_closed: float | None
    shapley: dict[str, dict[str, Any]]  # side -> {method, factors, note} (attribution.attribute)
    hardware_split: dict[str, Any]
    levers: tuple[str, ...]
    chips_to_match: dict[str, Any]
    per_system: Band | None
    per_watt: Band | None
    per_dollar: Band | None
    power: dict[str, dict[str, Any]]
    price: dict[str, dict[str, Any]]
    cost_per_million_tokens: dict[str, float | None]
    validation_error: float | None
    quality: str
    software: dict[str, dict[str, Any]]
    flagged: list[str] = field(default_factory=list)
    ends_without_configuration: list[str] = field(default_factory=list)
    stability: list[dict[str, Any]] = field(default_factory=list)
    flips: list[dict[str, Any]] = field(default_factory=list)

    def rate(self, role: str, state: str, end: str = "central") -> float | None:
        served = self.served[role][state][end]
        return served.rate if served else None

    def to_dict(self) -> dict[str, Any]:
        """`bench catchup NAME --format json` (docs/CATCHUP.md documents every key)."""
        s = self.scenario
        return {
            "simulated": True,
            "scenario": s.to_dict(),
            "metric": "output tokens/s per chip, prefill chips included, within the TPOT bound",
            "gap_at_best": self.gap_at_best.to_dict(),
            "hardware_gap": self.hardware_gap.to_dict(),
            "catch_up_from_reference": self.catch_up_from_reference.to_dict(),
            "gap_closed": self.gap_closed,
            "per_system": _maybe(self.per_system),
            "per_watt": _maybe(self.per_watt),
            "per_dollar": _maybe(self.per_dollar),
            "levers": list(self.levers),
            "shapley": {role: a["factors"] for role, a in self.shapley.items()},
            "attribution": self.shapley,
            "hardware_split": self.hardware_split,
            "chips_to_match": self.chips_to_match,
            "configurations": {
                role: {
                    state: (
                        self.served[role][state]["central"].to_dict() if self.served[role][state]["central"] else None
                    )
                    for state in ("reference", "best")
                }
                for role in ("frontier", "constrained")
            },  # fmt: skip
            "software": self.software,
            "power": self.power,
            "price": self.price,
            "cost_per_million_tokens": self.cost_per_million_tokens,
            "stability": self.stability,
            "flips": self.flips,
            "quality": self.quality,
            "validation_median_abs_error": self.validation_error,
            "flagged_figures": self.flagged,
            "ends_without_configuration": self.ends_without_configuration,
        }


def _served_ends(scenario, role: str, applied: frozenset[str]) -> dict[str, Served | None]:
    side = scenario.side(role)
    return {end: serve_side(scenario, side, applied, end) for end in ENDS}


def _power_and_price(scenario) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Power and price of each side's deployment: the system's figures, or chip TDP and price x chips."""
    from bench.projection.profiles import get_profile
    from bench.projection.systems import get_system

    power, price = {}, {}
    for role in ("frontier", "constrained"):
        side = scenario.side(role)
        if side.system:
            system = get_system(side.system)
            power[role] = {"w": system.power(), "status": system.power_w.status, "what": f"{system.key} at the wall"}
            price[role] = {"usd": system.price(), "status": system.price_usd.status, "what": system.key}
            continue
        profile = get_profile(side.profile)
        tdp, cost = profile.tdp_w.value, profile.price_usd.value
        power[role] = {"w": None if math.isnan(tdp) else tdp * side.chips, "status": profile.tdp_w.status,
                       "what": f"{side.chips} x {profile.key} TDP (chips only, not the system at the wall)"}  # fmt: skip
        price[role] = {"usd": None if math.isnan(cost) else cost * side.chips, "status": profile.price_usd.status,
                       "what": f"{side.chips} x {profile.key} price (chips only)"}  # fmt: skip
    return power, price


def _memory_minimum(scenario, side) -> int:
    """The fewest chips whose usable memory holds the best configuration's weights."""
    from bench.projection.deployment import Parallel
    from bench.projection.memory import weight_bytes_per_chip
    from bench.projection.project import resolve

    query = query_of(scenario, side, frozenset(levers_of(scenario)))
    dep = resolve(query).deployment
    weights = weight_bytes_per_chip(dep.arch, dep.precision, Parallel())
    usable = dep.device.memory_bytes * dep.efficiency.memory_usable
    return max(1, math.ceil(weights / usable))


def chips_to_match(scenario, frontier_best: Served | None) -> dict[str, Any]:
    """The smallest constrained deployment serving what the frontier at its best serves (module docstring):
    chips from the memory minimum upward in steps of one 8-chip node (and the powers of two below 8), doubling to
    bracket the target and bisecting inside the bracket; the per-chip rate is that of each scale."""
    from bench.projection.project import MAX_CHIPS

    side = scenario.constrained
    minimum = _memory_minimum(scenario, side)
    out: dict[str, Any] = {"chips": None, "memory_min_chips": minimum, "parallelism": None, "mode": None,
                           "target_tokens_per_s": None, "note": ""}  # fmt: skip
    if frontier_best is None:
        out["note"] = "the frontier has no configuration at its best"
        return out
    target = frontier_best.rate * scenario.frontier.chips
    out["target_tokens_per_s"] = target
    ladder = sorted({n for n in (1, 2, 4) if n >= minimum} | {8 * k for k in range(max(1, math.ceil(minimum / 8)),
                                                                                      MAX_CHIPS // 8 + 1)})  # fmt: skip
    applied = frozenset(levers_of(scenario))

    def served_at(n: int) -> Served | None:
        return serve_side(scenario, side, applied, chips=n)

    def enough(n: int) -> bool:
        s = served_at(n)
        return bool(s and s.rate * n >= target)

    hi_index = 0
    while hi_index < len(ladder) and not enough(ladder[hi_index]):
        hi_index = 2 * hi_index + 1 if hi_index else 1
    if hi_index >= len(ladder):
        if not enough(ladder[-1]):
            out["note"] = f"no constrained deployment up to {ladder[-1]} chips serves the frontier's output"
            return out
        hi_index = len(ladder) - 1
    lo_index = (hi_index - 1) // 2 if hi_index else -1
    while hi_index - lo_index > 1:
        mid = (lo_index + hi_index) // 2
        if enough(ladder[mid]):
            hi_index = mid
        else:
            lo_index = mid
    chips = ladder[hi_index]
    s = served_at(chips)
    out.update(chips=chips, parallelism=s.parallelism, mode=s.mode, tokens_per_s_per_chip=s.rate)
    return out


def _software(scenario, levers) -> dict[str, dict[str, Any]]:
    from bench.projection.engines import get_engine

    out = {}
    for role in ("frontier", "constrained"):
        side = scenario.side(role)
        best = query_of(scenario, side, frozenset(levers)).engine
        entries = {}
        for label, key in (("reference", side.reference_engine), ("best", best)):
            engine = get_engine(key)
            kernels = engine.factors["kernels"]
            status = "fitted" if kernels.fitted is not None else ("reference stack" if engine.reference else
                                                                   f"{kernels.status} (no fit rows)")  # fmt: skip
            entries[label] = {"engine": key, "name": engine.name, "status": status}
        out[role] = entries
    return out


def analyse(scenario, validation_error: float | None = None, stability: bool = True) -> CatchUpAnalysis:
    """Every headline figure, attribution and chips-to-match of `scenario` (module docstring), and with
    `stability` the sweep over its declared ranges and the settings at which a conclusion flips."""
    from models.quality import equal_or_better

    if validation_error is None:
        from bench.projection.published import held_out_error

        validation_error = held_out_error()
    levers = levers_of(scenario)
    served = {
        role: {"reference": _served_ends(scenario, role, frozenset()),
               "best": _served_ends(scenario, role, frozenset(levers))}
        for role in ("frontier", "constrained")
    }  # fmt: skip
    f, c = served["frontier"], served["constrained"]
    gap = ratio_band(f["best"], c["best"], validation_error)
    hardware = ratio_band(f["reference"], c["reference"], validation_error)
    catch_up = ratio_band(c["best"], f["reference"], validation_error)
    if gap.value is None:
        raise UsageError(
            f"scenario {scenario.name}: tpot_slo_ms = {scenario.tpot_slo_ms:g} with chips = {scenario.frontier.chips}: "
            "no configuration of a side at its best fits; expected a larger tpot_slo_ms or more chips"
        )
    power, price = _power_and_price(scenario)
    analysis = CatchUpAnalysis(
        scenario=scenario, served=served, gap_at_best=gap, hardware_gap=hardware, catch_up_from_reference=catch_up,
        gap_closed=hardware.value / gap.value if hardware.value else None,
        shapley={role: side_shapley(scenario, role, levers) for role in ("frontier", "constrained")},
        hardware_split=hardware_shapley(scenario), levers=levers,
        chips_to_match=chips_to_match(scenario, f["best"]["central"]),
        per_system=gap.scaled(scenario.frontier.chips / scenario.constrained.chips),
        per_watt=gap.scaled(_per_chip_ratio(scenario, power, "w")),
        per_dollar=gap.scaled(_per_chip_ratio(scenario, price, "usd")),
        power=power, price=price, cost_per_million_tokens=_costs(scenario, served, power, price),
        validation_error=validation_error, quality=equal_or_better(scenario.model, scenario.reference_model)[1],
        software=_software(scenario, levers),
    )  # fmt: skip
    analysis.flagged = flagged_figures(scenario)
    analysis.ends_without_configuration = [
        f"{role} {state} at the {end} end"
        for role in served for state in served[role] for end in ENDS if served[role][state][end] is None
    ]  # fmt: skip
    if stability:
        from bench.analysis.gap.stability import flips_of, sweep

        analysis.stability = sweep(scenario, analysis)
        analysis.flips = flips_of(gap.value, hardware.value, analysis.stability)
    return analysis


def _maybe(band: Band | None) -> dict[str, float | None] | None:
    return band.to_dict() if band else None


def _per_chip_ratio(scenario, figures, key: str) -> float | None:
    """Constrained over frontier per-chip power (or price): what turns the per-chip gap into a per-watt one."""
    c, f = figures["constrained"][key], figures["frontier"][key]
    if not c or not f:
        return None
    return (c / scenario.constrained.chips) / (f / scenario.frontier.chips)


def _costs(scenario, served, power, price) -> dict[str, float | None]:
    from bench.projection.systems import cost_rule

    rule = cost_rule()
    out = {}
    for role in ("frontier", "constrained"):
        best = served[role]["best"]["central"]
        tokens = best.rate * scenario.side(role).chips if best else 0.0
        out[role] = rule.usd_per_million_tokens(price[role]["usd"], power[role]["w"], tokens)
    return out


def flagged_figures(scenario) -> list[str]:
    """Every ASSUMED, UNV or ANNOUNCED figure of the two sides' profiles (and systems) that enters the figures."""
    from bench.projection.profiles import get_profile
    from bench.projection.systems import get_system

    out = []
    for role in ("frontier", "constrained"):
        side = scenario.side(role)
        profile = get_profile(side.profile)
        out += [f"{profile.key} {name}" for name in profile.figures_with_status("ASSUMED", "UNV", "ANNOUNCED")]
        if side.system:
            system = get_system(side.system)
            out += [f"{system.key} {name}" for name in ("power_w", "price_usd")
                    if getattr(system, name).status in ("ASSUMED", "UNV", "ANNOUNCED")]  # fmt: skip
    return out
