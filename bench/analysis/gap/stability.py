"""Whether a scenario's conclusions hold over its declared ranges (`ranges` in scenarios.toml).

One setting at a time (a tornado, not a grid): each declared value of chips, TPOT bound, prompt or output length,
or a side's engine replaces the scenario's, and the gap with both sides at their best and the hardware gap are
projected again (central factors). The efficiency factors' ends enter as two more rows. A setting at which a side
has no configuration is reported with the reason, never aborts the sweep.

A conclusion flips where, at some setting, (a) the side that leads at best changes, or (b) whether the levers
close, keep or widen the gap changes (gap_at_best against the hardware gap). Both read with a tolerance of
EVEN = 5%: within it the sides are even and the gap is kept -- closer than the serving model can tell apart.
"""

from __future__ import annotations

import math
from typing import Any

from bench.analysis.gap.configs import levers_of, serve_side
from bench.core.errors import UsageError

__all__ = ["sweep", "flips_of", "leader", "trend", "EVEN"]


def _gaps(scenario, end: str = "central") -> tuple[float | None, float | None, str]:
    rates = {}
    for role in ("frontier", "constrained"):
        side = scenario.side(role)
        for state, applied in (("reference", frozenset()), ("best", frozenset(levers_of(scenario)))):
            try:
                served = serve_side(scenario, side, applied, end)
            except UsageError as exc:
                return None, None, str(exc)
            rates[role, state] = served.rate if served else None
    missing = [f"{role} {state}" for (role, state), rate in rates.items() if rate is None]
    best = rates["frontier", "best"] / rates["constrained", "best"] if rates["constrained", "best"] and rates[
        "frontier", "best"] else None  # fmt: skip
    hardware = rates["frontier", "reference"] / rates["constrained", "reference"] if rates[
        "constrained", "reference"] and rates["frontier", "reference"] else None  # fmt: skip
    note = f"no configuration fits: {', '.join(missing)}" if missing else ""
    return best, hardware, note


def sweep(scenario, analysis) -> list[dict[str, Any]]:
    """[{setting, value, gap_at_best, hardware_gap, note}] over the declared ranges and the factors' ends."""
    rows = []
    for key, values in scenario.ranges:
        for value in values:
            if value == scenario.setting(key):
                continue
            try:
                changed = scenario.with_setting(key, value)
                best, hardware, note = _gaps(changed)
            except UsageError as exc:
                best, hardware, note = None, None, str(exc)
            rows.append({"setting": key, "value": value, "gap_at_best": best, "hardware_gap": hardware, "note": note})
    for end in ("low", "high"):
        f, c = analysis.rate("frontier", "best", end), analysis.rate("constrained", "best", end)
        fr, cr = analysis.rate("frontier", "reference", end), analysis.rate("constrained", "reference", end)
        rows.append({
            "setting": "efficiency factors", "value": f"{end} end",
            "gap_at_best": f / c if f and c else None, "hardware_gap": fr / cr if fr and cr else None,
            "note": "" if f and c else "a side has no configuration at this end",
        })  # fmt: skip
    return rows


#: Ratios within this factor of 1 read as even (module docstring).
EVEN = 1.05


def leader(gap: float | None) -> str | None:
    """frontier, constrained or even (within EVEN) at best."""
    if gap is None:
        return None
    return "frontier" if gap > EVEN else "constrained" if gap < 1 / EVEN else "even"


def trend(gap: float | None, hardware: float | None) -> str | None:
    """Whether the levers close, keep or widen the hardware gap (within EVEN: keep)."""
    if gap is None or hardware is None:
        return None
    closed = hardware / gap
    return "close" if closed > EVEN else "widen" if closed < 1 / EVEN else "keep"


def flips_of(base_gap: float, base_hardware: float | None, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows at which a conclusion differs from the scenario's own setting (module docstring)."""
    out = []
    base_leader, base_trend = leader(base_gap), trend(base_gap, base_hardware)
    for row in rows:
        gap, hardware = row["gap_at_best"], row["hardware_gap"]
        if gap is None:
            continue
        if leader(gap) != base_leader:
            who = "neither side leads" if leader(gap) == "even" else f"the {leader(gap)} side leads"
            out.append({**row, "conclusion": f"{who} at best (gap {gap:.2f}, ln {math.log(gap):+.2f})"})
        now = trend(gap, hardware)
        if now is not None and base_trend is not None and now != base_trend:
            out.append({**row, "conclusion": f"the levers {now} the gap ({hardware:.2f} -> {gap:.2f})"})
    return out
