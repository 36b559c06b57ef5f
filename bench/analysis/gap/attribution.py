"""Order-free attribution of a ratio to its levers: Shapley values on the log of the rate.

For players N and a value v(S) (the rate with the players in S applied), each player's share is the average over
every order of applying them of its marginal log-gain:
    phi_i = sum over S in N minus {i} of |S|! (n - |S| - 1)! / n! x (ln v(S + i) - ln v(S)).
The shares add up exactly: sum phi_i = ln v(N) - ln v(empty), so the factors exp(phi_i) multiply to the total
(`check_efficiency` asserts it to 1e-9). A share is undefined where some v(S) has no configuration (nothing fits,
e.g. the MoE model at 16-bit on too few chips): the attribution then falls back to the levers in their listed
order (order-dependent, and labelled so), naming the subset that failed.

The hardware split swaps the frontier chip's figures for the constrained chip's one group at a time on the
reference configuration: compute peaks, memory bandwidth, memory capacity, interconnect, the silicon efficiency of
its kind of chip (the fitted factors of the kind's best stack), the reference engine of its kind (vLLM ->
vLLM-Ascend: software maturity at the reference), and for systems of different sizes the chips per system.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, Sequence

from bench.analysis.gap.configs import query_of, serve, serve_side, subsets

__all__ = ["shapley", "side_shapley", "hardware_shapley", "attribute", "HARDWARE_PARTS", "check_efficiency"]

HARDWARE_PARTS = (
    "compute peaks",
    "memory bandwidth",
    "memory capacity",
    "interconnect",
    "silicon efficiency",
    "reference engine",
    "chips per system",
)


class Undefined(Exception):
    """A subset of players with no value (no configuration fits): the attribution is undefined."""

    def __init__(self, subset: frozenset[str]):
        super().__init__(
            f"with {', '.join(sorted(subset))} applied" if subset else "at the reference (no lever applied)"
        )
        self.subset = subset


def shapley(players: Sequence[str], value: Callable[[frozenset[str]], float | None]) -> dict[str, float] | None:
    """{player: factor} (exp of the Shapley share of ln value) or None where some subset has no value."""
    try:
        return _shapley(players, value)
    except Undefined:
        return None


def _logs(players: Sequence[str], value: Callable[[frozenset[str]], float | None]) -> dict[frozenset[str], float]:
    logs: dict[frozenset[str], float] = {}
    for s in subsets(players):
        v = value(s)
        if not v or v <= 0:
            raise Undefined(s)
        logs[s] = math.log(v)
    return logs


def _shapley(players: Sequence[str], value: Callable[[frozenset[str]], float | None]) -> dict[str, float]:
    n = len(players)
    logs = _logs(players, value)
    shares = {}
    for p in players:
        total = 0.0
        for s in logs:
            if p in s:
                continue
            weight = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
            total += weight * (logs[s | {p}] - logs[s])
        shares[p] = math.exp(total)
    return shares


def _sequential(players: Sequence[str], value: Callable[[frozenset[str]], float | None]) -> dict[str, float] | None:
    """Each player's factor applied in the given order (order-dependent), or None where a step has no value."""
    applied: frozenset[str] = frozenset()
    before = value(applied)
    out = {}
    for p in players:
        after = value(applied | {p})
        if not before or not after:
            return None
        out[p], before, applied = after / before, after, applied | {p}
    return out


def attribute(players: Sequence[str], value: Callable[[frozenset[str]], float | None]) -> dict[str, Any]:
    """{"method": "shapley", "factors"} where every subset has a value; otherwise {"method": "sequential"} in the
    players' order with the subset that made Shapley undefined named in "note" (factors None if a step fails)."""
    try:
        return {"method": "shapley", "factors": _shapley(players, value), "note": ""}
    except Undefined as exc:
        factors = _sequential(players, value)
        note = f"Shapley undefined: no configuration {exc}"
        note += ("; factors in the order " + " -> ".join(players)) if factors else "; no ordered path either"
        return {"method": "sequential" if factors else "none", "factors": factors, "note": note}


def check_efficiency(factors: Mapping[str, float], total: float, tolerance: float = 1e-9) -> bool:
    """Whether the factors multiply to the total (in logs, to `tolerance`)."""
    return abs(sum(math.log(f) for f in factors.values()) - math.log(total)) <= tolerance


def side_shapley(scenario, role: str, levers: Sequence[str], end: str = "central") -> dict[str, Any]:
    """Each lever's factor on one side, from its reference configuration to its best (`attribute`)."""
    side = scenario.side(role)

    def value(applied: frozenset[str]) -> float | None:
        served = serve_side(scenario, side, applied, end)
        return served.rate if served else None

    return attribute(levers, value)


def _hybrid(scenario, parts: frozenset[str], end: str) -> float | None:
    """The frontier's reference configuration with the constrained chip's figures in `parts`."""
    from bench.projection.deployment import Device
    from bench.projection.efficiency import load_efficiency
    from bench.projection.engines import ENGINE_FACTORS, engine_factor, get_engine
    from bench.projection.profiles import get_profile

    f_side, c_side = scenario.frontier, scenario.constrained
    if parts >= _parts_of(scenario):
        served = serve_side(scenario, c_side, frozenset(), end)
        return served.rate if served else None
    front = Device.of_profile(get_profile(f_side.profile))
    cons = Device.of_profile(get_profile(c_side.profile))
    changes = {}
    if "compute peaks" in parts:
        changes["peak_flops"] = cons.peak_flops
    if "memory bandwidth" in parts:
        changes["bandwidth_bytes_s"] = cons.bandwidth_bytes_s
    if "memory capacity" in parts:
        changes["memory_bytes"] = cons.memory_bytes
    if "interconnect" in parts:
        changes["profile"] = cons.profile
    device = dataclasses.replace(front, **changes)
    kind = cons.kind if "silicon efficiency" in parts else front.kind
    factors = None
    if "reference engine" in parts:
        engine = get_engine(c_side.reference_engine)
        factors = {k: engine_factor(engine, k, end) for k in ENGINE_FACTORS}
    chips = c_side.chips if "chips per system" in parts else f_side.chips
    query = query_of(scenario, f_side, frozenset(), chips=chips)
    served = serve(query, end, device=device, efficiency=load_efficiency(kind), engine_factors=factors)
    return served.rate if served else None


def _parts_of(scenario) -> frozenset[str]:
    parts = set(HARDWARE_PARTS)
    if scenario.frontier.chips == scenario.constrained.chips:
        parts.discard("chips per system")
    return frozenset(parts)


def hardware_shapley(scenario, end: str = "central") -> dict[str, Any]:
    """Each part's factor in constrained / frontier at the reference configuration (module docstring)."""
    players = [p for p in HARDWARE_PARTS if p in _parts_of(scenario)]
    return attribute(players, lambda parts: _hybrid(scenario, parts, end))
