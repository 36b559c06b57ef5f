"""The trajectory over chip generations: a scenario's workload on each generation of both sides, each at its best
(the best published stack of its kind, its best precision among the side's, fp8, int8 and bf16, the serving
model's best configuration, the side's chips), dated by release (ANNOUNCED for a chip not yet shipping), and the
gap over time between the best chip each side had shipped (or announced) by each date. SIMULATED.

A chip whose precision the kind's engines do not run (an announced NPU's fp8) is projected with every
configuration the model can express (`--search any`) and says so.
"""

from __future__ import annotations

from typing import Any

from bench.core.errors import UsageError

__all__ = ["trajectory", "gap_over_time", "DEFAULT_GENERATIONS"]

#: Generations by side when the scenario names none: NVIDIA's datacenter line; Huawei's Ascend line; the export
#: variants where the constrained side is an NVIDIA chip.
DEFAULT_GENERATIONS = {
    "gpu": ("a100", "h100", "h200", "b200", "gb200", "b300", "gb300", "rubin"),
    "npu": ("ascend-910", "ascend-910b2", "ascend-910c", "ascend-950pr", "ascend-950dt", "ascend-960", "ascend-970"),
    "gpu-constrained": ("a800", "h800", "h20"),
}


def _generations(scenario, role: str) -> tuple[str, ...]:
    from bench.projection.profiles import get_profile

    side = scenario.side(role)
    if side.generations:
        return side.generations
    kind = get_profile(side.profile).kind
    return DEFAULT_GENERATIONS["gpu-constrained" if role == "constrained" and kind == "gpu" else kind]


def _precision(profile, preferred: str) -> str | None:
    for precision in (preferred, "fp8", "int8", "bf16"):
        if profile.has(precision):
            return precision
    return None


def _point(scenario, role: str, key: str) -> dict[str, Any]:
    from dataclasses import replace

    from bench.analysis.gap.configs import levers_of, query_of, serve
    from bench.projection.profiles import get_profile

    profile = get_profile(key, field=f"generations.{role}")
    side = scenario.side(role)
    precision = _precision(profile, side.precision)
    released = profile.released
    point = {"side": role, "device": key, "name": profile.name, "date": released.date if released else None,
             "year": released.year if released else None, "status": released.status if released else "undated",
             "precision": precision, "chips": side.chips, "search": "engine", "engine": None,
             "tokens_per_s_per_chip": None, "tokens_per_s_per_system": None, "note": ""}  # fmt: skip
    if precision is None:
        point["note"] = "no precision the serving model runs"
        return point
    moved = replace(scenario, **{role: replace(side, profile=key, precision=precision, engine=None)})
    query = query_of(moved, moved.side(role), frozenset(levers_of(moved)))
    try:
        served = serve(query)
    except UsageError:
        query = replace(query, search="any")
        point["search"] = "any"
        point["note"] = "what-if: no engine of its kind runs this precision; every configuration searched"
        served = serve(query)
    point["engine"] = query.engine
    if served is None:
        point["note"] = (point["note"] + "; " if point["note"] else "") + "no configuration fits"
        return point
    point.update(tokens_per_s_per_chip=served.rate, tokens_per_s_per_system=served.rate * side.chips)
    return point


def trajectory(scenario) -> list[dict[str, Any]]:
    """[{side, device, date, status, tokens_per_s_per_chip, tokens_per_s_per_system, ...}] in release order."""
    points = [
        _point(scenario, role, key) for role in ("frontier", "constrained") for key in _generations(scenario, role)
    ]
    return sorted(points, key=lambda p: (p["side"] != "frontier", p["year"] or 0))


def gap_over_time(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At each release date: the best per-chip rate each side had by then, and their ratio (frontier / constrained)."""
    dates = sorted({p["year"] for p in points if p["year"] is not None})
    out = []
    for year in dates:
        best = {}
        for role in ("frontier", "constrained"):
            rates = [p for p in points if p["side"] == role and p["year"] is not None and p["year"] <= year
                     and p["tokens_per_s_per_chip"]]  # fmt: skip
            best[role] = max(rates, key=lambda p: p["tokens_per_s_per_chip"], default=None)
        f, c = best["frontier"], best["constrained"]
        date = next(p["date"] for p in points if p["year"] == year)
        out.append({"year": year, "date": date, "frontier": f and f["device"], "constrained": c and c["device"],
                    "gap": f["tokens_per_s_per_chip"] / c["tokens_per_s_per_chip"] if f and c else None,
                    "announced": any(p and p["status"] == "ANNOUNCED" for p in (f, c))})  # fmt: skip
    return out
