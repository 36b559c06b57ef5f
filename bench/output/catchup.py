"""Text and Markdown of a catch-up analysis (`bench catchup NAME`, the report's scenario sections) and of the
trajectory (`bench catchup --trajectory NAME`). Everything is rendered from the analysis's dict
(`CatchUpAnalysis.to_dict()`), so the summary's figures are the tables' figures; every output says SIMULATED.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Mapping, Sequence

from bench.output.format import markdown_table, number, text_table

__all__ = [
    "summary_sentences",
    "render_catchup",
    "render_trajectory",
    "band_text",
    "headline_rows",
    "lever_rows",
    "stability_rows",
    "HEADLINE_HEADERS",
    "LEVER_HEADERS",
    "STABILITY_HEADERS",
]

figure = partial(number, missing="-")
HEADLINE_HEADERS = ["figure", "value [low, high]", "what it compares"]
LEVER_HEADERS = ["lever", "frontier", "constrained", "constrained / frontier"]
STABILITY_HEADERS = ["setting", "value", "gap at best", "hardware gap", "note"]


def band_text(band: Mapping[str, Any] | None) -> str:
    """ "1.23x [0.80, 2.10]"; an open end where a side has no configuration at that end."""
    if not band or band.get("value") is None:
        return "no configuration"
    low, high = band.get("low"), band.get("high")
    return f"{figure(band['value'])}x [{figure(low) if low else 'open'}, {figure(high) if high else 'open'}]"


def _sides(d: Mapping[str, Any]) -> tuple[str, str]:
    s = d["scenario"]
    f, c = s["frontier"], s["constrained"]
    return (f["system"] or f["profile"]), (c["system"] or c["profile"])


def headline_rows(d: Mapping[str, Any]) -> list[list[str]]:
    f, c = _sides(d)
    rows = [
        ["gap at best", band_text(d["gap_at_best"]), f"one {f} chip over one {c} chip, both sides at their best"],
        ["hardware gap", band_text(d["hardware_gap"]), "the same at the common reference (dense model, 16-bit, basic "
         "serving, each side's open engine)"],
        ["gap closed by the levers", f"{figure(d['gap_closed'])}x" if d["gap_closed"] else "-", "hardware gap / gap at best (> 1: the levers help "
         f"{c} more)"],
        ["catch-up from the frontier's reference", band_text(d["catch_up_from_reference"]),
         f"{c} at its best over {f} at its reference (credits {c} with levers {f} has too)"],
    ]  # fmt: skip
    if d["scenario"]["frontier"]["system"]:
        rows.append(["gap per system", band_text(d["per_system"]), f"one {f} over one {c}, whole systems"])
    if d["per_watt"]:
        rows.append(["gap per watt", band_text(d["per_watt"]), _power_what(d)])
    if d["per_dollar"]:
        rows.append(["gap per dollar", band_text(d["per_dollar"]), "prices: " + "; ".join(
            f"{p['what']} ({p['status']})" for p in d["price"].values())])  # fmt: skip
    costs = d["cost_per_million_tokens"]
    if any(costs.values()):
        rows.append(["$ per million output tokens", " / ".join(f"{role} {'$' + figure(v) if v else '-'}" for role, v in
                     costs.items()), "price over the amortization plus power x electricity (ASSUMED rule)"])  # fmt: skip
    return rows


def _power_what(d: Mapping[str, Any]) -> str:
    return "power: " + "; ".join(f"{p['what']} ({p['status']})" for p in d["power"].values())


def lever_rows(d: Mapping[str, Any]) -> list[list[str]]:
    """One row per lever: its factor on each side and what it does to the gap (constrained / frontier)."""
    f, c = d["attribution"]["frontier"]["factors"] or {}, d["attribution"]["constrained"]["factors"] or {}
    rows = []
    for lever in d["levers"]:
        a, b = f.get(lever), c.get(lever)
        rows.append([lever, f"x{figure(a)}" if a else "-", f"x{figure(b)}" if b else "-",
                     f"{figure(b / a)}x" if a and b else "-"])  # fmt: skip
    if "architecture" not in d["levers"]:
        rows.append(["architecture", "left out", "left out", d["quality"]])
    return rows


def _split_rows(d: Mapping[str, Any]) -> list[list[str]]:
    split = d["hardware_split"]
    return [[part, f"x{figure(v)}"] for part, v in (split["factors"] or {}).items()]


def stability_rows(d: Mapping[str, Any]) -> list[list[str]]:
    return [[r["setting"], str(r["value"]), f"{figure(r['gap_at_best'])}x" if r["gap_at_best"] else "-",
             f"{figure(r['hardware_gap'])}x" if r["hardware_gap"] else "-", r["note"]] for r in d["stability"]]  # fmt: skip


def _largest_difference(d: Mapping[str, Any]) -> tuple[str, float, float] | None:
    f, c = d["attribution"]["frontier"]["factors"], d["attribution"]["constrained"]["factors"]
    if not f or not c:
        return None
    lever = max(d["levers"], key=lambda k: abs(math.log(c[k] / f[k])))
    return lever, f[lever], c[lever]


def _flip_sentence(d: Mapping[str, Any]) -> str:
    settings = len(d["stability"])
    if not d["flips"]:
        return f"These conclusions hold at every one of the {settings} settings swept (ranges and factor ends)."
    flips = "; ".join(f"{x['setting']} {x['value']}: {x['conclusion']}" for x in d["flips"][:4])
    more = f" and {len(d['flips']) - 4} more" if len(d["flips"]) > 4 else ""
    return f"A conclusion flips at {len(d['flips'])} of {settings} settings swept ({flips}{more})."


def summary_sentences(d: Mapping[str, Any]) -> list[str]:
    """At most five sentences with the headline figures, each as the tables print it."""
    f, c = _sides(d)
    best = d["configurations"]
    fr, cr = best["frontier"]["best"], best["constrained"]["best"]
    gap = d["gap_at_best"]
    first = (f"SIMULATED ({d['scenario']['title']}): with both sides at their best, one {f} chip serves "
             f"{band_text(gap)} the output tokens/s of one {c} chip ({figure(fr and fr['rate'])} vs "
             f"{figure(cr and cr['rate'])}, prefill included).")  # fmt: skip
    if d["hardware_gap"]["value"] is None:
        second = ("At the common reference (dense model, 16-bit, basic serving, open engines) a side has no "
                  "configuration within the bound, so the hardware gap is not defined here.")  # fmt: skip
    else:
        verb = "close" if d["gap_closed"] > 1.05 else "widen" if d["gap_closed"] < 1 / 1.05 else "keep"
        second = f"At the common reference the hardware gap is {band_text(d['hardware_gap'])}: the levers {verb} it"
        largest = _largest_difference(d)
        second += (f", most through {largest[0]} (x{figure(largest[2])} for {c}, x{figure(largest[1])} for {f})."
                   if largest else ".")  # fmt: skip
    match = d["chips_to_match"]
    frontier_chips = d["scenario"]["frontier"]["chips"]
    third = (f"{match['chips']} {d['scenario']['constrained']['profile']} chips (memory minimum "
             f"{match['memory_min_chips']}) serve what {frontier_chips} {d['scenario']['frontier']['profile']} "
             "chips serve at their best." if match["chips"] else f"Chips to match: {match['note']}.")  # fmt: skip
    flagged = len(d["flagged_figures"])
    error = d["validation_median_abs_error"]
    fifth = (f"{flagged} figure(s) are ASSUMED, UNV or ANNOUNCED (appendix); bands are the factors' sourced ranges "
             f"widened by the serving model's held-out error ({figure(100 * error) if error else '-'}%), not "
             "confidence intervals.")  # fmt: skip
    return [first, second, third, _flip_sentence(d), fifth]


def _table(markdown: bool, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return (markdown_table if markdown else text_table)(headers, rows).rstrip("\n")


def render_catchup(d: Mapping[str, Any], markdown: bool = False) -> str:
    """Summary, headline, levers, hardware split, chips to match and stability of one analysis."""
    f, c = _sides(d)
    attribution = d["attribution"]
    notes = [a["note"] for a in (attribution["frontier"], attribution["constrained"], d["hardware_split"]) if a["note"]]
    match = d["chips_to_match"]
    parts = [
        " ".join(summary_sentences(d)),
        _table(markdown, HEADLINE_HEADERS, headline_rows(d)),
        f"Levers, reference -> best, order-free (Shapley) factors of output tokens/s per chip ({f} | {c}):",
        _table(markdown, LEVER_HEADERS, lever_rows(d)),
        *[f"Note: {n}." for n in notes],
        "Hardware gap split (Shapley over the parts swapped one group at a time; constrained / frontier):",
        _table(markdown, ["part", "factor"], _split_rows(d)) if d["hardware_split"]["factors"] else "(not defined)",
        f"Chips to match: {match['chips'] or '-'} (memory minimum {match['memory_min_chips']}; "
        f"{match['mode'] or '-'}, {match['parallelism'] or '-'}) {match['note']}",
        "Stability (one setting at a time; central factors unless the row says an end):",
        _table(markdown, STABILITY_HEADERS, stability_rows(d)),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def render_trajectory(points: Sequence[Mapping[str, Any]], gaps: Sequence[Mapping[str, Any]], markdown=False) -> str:
    """Each generation at its best (SIMULATED), then the gap over time between the best chip of each side."""
    headers = ["side", "device", "released", "status", "precision", "engine", "tokens/s per chip",
               "tokens/s per system", "note"]  # fmt: skip
    rows = [[p["side"], p["device"], p["date"] or "-", p["status"], p["precision"] or "-", p["engine"] or "-",
             figure(p["tokens_per_s_per_chip"]), figure(p["tokens_per_s_per_system"]), p["note"]]
            for p in points]  # fmt: skip
    gap_rows = [[g["date"], g["frontier"] or "-", g["constrained"] or "-",
                 f"{figure(g['gap'])}x" if g["gap"] else "-", "ANNOUNCED" if g["announced"] else ""]
                for g in gaps]  # fmt: skip
    return "\n\n".join([
        "SIMULATED: each generation serving the scenario's workload at its best (serving model; ANNOUNCED chips "
        "from vendor announcements, not shipping parts).",
        _table(markdown, headers, rows),
        "Gap over time (frontier / constrained, best chip each side had by then, per chip):",
        _table(markdown, ["from", "frontier", "constrained", "gap", ""], gap_rows),
    ]) + "\n"  # fmt: skip
