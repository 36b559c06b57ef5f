"""The report's catch-up parts: the summary (at most five sentences and one headline chart), each scenario's
sections (headline, levers, hardware split, chips to match, stability with its tornado chart; the trajectory over
chip generations for the first scenario) and the appendix (every device and system figure with its status and
source, the ASSUMED/UNV/ANNOUNCED lists, engine and efficiency factors, the cost rule, validation errors).
Everything is rendered from the analyses' dicts with bench.output.catchup, so the summary's figures are the
tables' figures.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from bench.core.record import Record
from bench.output.catchup import (
    HEADLINE_HEADERS,
    LEVER_HEADERS,
    STABILITY_HEADERS,
    headline_rows,
    lever_rows,
    stability_rows,
    summary_sentences,
)
from bench.output.format import number
from bench.output.report_model import Section, Table, draw

__all__ = ["summary_section", "scenario_sections", "appendix_section"]

_FLAGS = ("ASSUMED", "UNV", "ANNOUNCED")


def _records_sentence(results: Sequence[Any], frontier: str, constrained: str) -> str | None:
    """One sentence on the catch-up computed from this run's records (measured or simulated cells)."""
    complete = [c for c in results if c.complete and c.hardware_gap() is not None]
    if not complete:
        return None
    gaps = [c.hardware_gap() for c in complete]
    measured = sum(1 for c in complete for p in (c.frontier_reference, c.constrained_reference) if not p.simulated)
    low, high = min(g.value for g in gaps), max(g.value for g in gaps)
    return (f"From this run's cells ({len(complete)} workload(s), {measured} of {2 * len(complete)} reference "
            f"figures measured, the rest simulated), the {frontier} / {constrained} gap at the reference technique "
            f"ranges from {number(low)}x to {number(high)}x (section 'Catch-up estimate').")  # fmt: skip


def summary_section(analyses: Sequence[Mapping[str, Any]], results: Sequence[Any], frontier: str,
                    constrained: str) -> Section | None:  # fmt: skip
    """At most five sentences: the first scenario's headline, hardware gap and levers, stability and flagged
    figures, and one on this run's own cells; the first scenario's headline chart."""
    sentences: list[str] = []
    figure = None
    if analyses:
        first = analyses[0]
        s1, s2, _, s4, s5 = summary_sentences(first)
        sentences = [s1, s2, s4]
        records = _records_sentence(results, frontier, constrained)
        sentences += [records] if records else []
        more = f" {len(analyses) - 1} more scenario(s) follow." if len(analyses) > 1 else ""
        sentences.append(s5 + more)
        figure = draw("gap_chart", first["scenario"]["title"], _gap_bars(first))
    else:
        records = _records_sentence(results, frontier, constrained)
        if not records:
            return None
        sentences = [records, "Intervals of simulated figures are bands from the model's ranges and validation "
                     "error, not confidence intervals; ASSUMED and UNV figures are listed in the appendix."]  # fmt: skip
    return Section("Summary", " ".join(sentences[:5]), figure=figure, figure_name="summary-gap.png",
                   figure_alt="The gap with both sides at their best against the hardware gap, per chip, per watt "
                   "and per dollar, frontier over constrained on a log axis")  # fmt: skip


def _gap_bars(d: Mapping[str, Any]) -> list[dict[str, Any]]:
    bars = [("hardware gap (reference)", d["hardware_gap"], "#9e9e9e"), ("gap at best", d["gap_at_best"], "#4c78a8"),
            ("gap at best per system", d["per_system"] if d["scenario"]["frontier"]["system"] else None, "#76b7b2"),
            ("gap at best per watt", d["per_watt"], "#59a14f"), ("gap at best per dollar", d["per_dollar"], "#f58518")]  # fmt: skip
    return [{"label": label, "color": color, **band} for label, band, color in bars if band and band["value"]]


def _headline_section(d: Mapping[str, Any]) -> Section:
    s = d["scenario"]
    notes = [f"{role}: {a['note']}" for role, a in d["attribution"].items() if a["note"]]
    split = d["hardware_split"]
    match = d["chips_to_match"]
    tables = [
        Table("Headline", HEADLINE_HEADERS, headline_rows(d)),
        Table("Levers, reference -> best (output tokens/s per chip factors on each side)", LEVER_HEADERS,
              lever_rows(d), "; ".join(notes) or "Order-free: Shapley values; each side's factors multiply to its "
              "best / reference exactly."),
        Table(f"Hardware gap split ({split['method']}; constrained / frontier at the reference)", ["part", "factor"],
              [[k, f"x{number(v)}"] for k, v in (split["factors"] or {}).items()], split["note"]),
    ]  # fmt: skip
    return Section(
        f"Catch-up scenario: {s['name']}",
        " ".join(summary_sentences(d)),
        tables,
        figure=draw("gap_chart", s["title"], _gap_bars(d)),
        figure_name=f"gap-{s['name']}.png",
        figure_alt=f"Scenario {s['name']}: gap at best against the hardware gap, log axis, with bands",
        bullets=[f"Chips to match: {match['chips'] or '-'} (memory minimum {match['memory_min_chips']}; "
                 f"{match['mode'] or '-'}). {match['note']}", f"Quality: {d['quality']}."],
    )  # fmt: skip


def _stability_section(d: Mapping[str, Any]) -> Section:
    s = d["scenario"]
    flips = [f"{f['setting']} = {f['value']}: {f['conclusion']}" for f in d["flips"]]
    return Section(
        f"Stability: {s['name']}",
        "Each setting the scenario declares, one at a time, and the efficiency factors' ends; a conclusion that flips "
        "is listed below the table (SIMULATED).",
        [Table("", STABILITY_HEADERS, stability_rows(d))],
        figure=draw("tornado_chart", s["title"], d["gap_at_best"]["value"], d["stability"]),
        figure_name=f"tornado-{s['name']}.png",
        figure_alt=f"Scenario {s['name']}: gap at best at each setting swept, log axis",
        bullets=flips or ["No conclusion flips over the declared ranges."],
    )


def _trajectory_section(scenario_name: str) -> Section | None:
    from bench.analysis.gap.scenario import get_scenario
    from bench.analysis.gap.trajectory import gap_over_time, trajectory

    scenario = get_scenario(scenario_name)
    points = trajectory(scenario)
    gaps = gap_over_time(points)
    rows = [[p["side"], p["device"], p["date"] or "-", p["status"], p["precision"] or "-", p["engine"] or "-",
             number(p["tokens_per_s_per_chip"], missing="-"), number(p["tokens_per_s_per_system"], missing="-"),
             p["note"]] for p in points]  # fmt: skip
    return Section(
        f"Trajectory over chip generations: {scenario_name}",
        "The scenario's workload on each generation of both sides at its best (SIMULATED; ANNOUNCED chips from "
        "vendor announcements, not shipping parts).",
        [
            Table(
                "",
                [
                    "side",
                    "device",
                    "released",
                    "status",
                    "precision",
                    "engine",
                    "tokens/s per chip",
                    "tokens/s per system",
                    "note",
                ],
                rows,
            )
        ],  # fmt: skip
        figure=draw("trajectory_chart", scenario.title, points, gaps),
        figure_name=f"trajectory-{scenario_name}.png",
        figure_alt=f"Per-chip throughput of each generation over release date, and the gap over time ({scenario_name})",
    )


def scenario_sections(d: Mapping[str, Any], first: bool = False) -> list[Section]:
    """The scenario's headline and stability sections; the trajectory too for the report's first scenario."""
    sections = [_headline_section(d), _stability_section(d)]
    if first:
        sections.append(_trajectory_section(d["scenario"]["name"]))
    return sections


# -- appendix -----------------------------------------------------------------------------------------------------


def _device_rows(keys: Sequence[str]) -> list[list[str]]:
    from bench.projection.profiles import get_profile

    rows = []
    for key in keys:
        p = get_profile(key)
        named = [("memory_gb", p.memory_gb), ("bandwidth_tbs", p.bandwidth_tbs), ("tdp_w", p.tdp_w),
                 ("price_usd", p.price_usd)]  # fmt: skip
        named += [(f"peak_tflops.{k}", v) for k, v in p.peak_tflops.items()]
        named += [(f"interconnect.{k}", v) for k, v in (p.interconnect or {}).items()]
        rows += [[key, name, number(f.value, missing="-"), f.status, f.source] for name, f in named]
        if p.released:
            rows.append([key, "released", p.released.date, p.released.status, p.released.source])
    return rows


def _system_rows(analyses: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    from bench.projection.systems import cost_rule, get_system

    keys = sorted({side["system"] for d in analyses for side in (d["scenario"]["frontier"], d["scenario"]["constrained"])
                   if side["system"]})  # fmt: skip
    rows = []
    for key in keys:
        system = get_system(key)
        for name in ("chips_figure", "power_w", "price_usd"):
            f = getattr(system, name)
            rows.append([key, name.replace("_figure", ""), number(f.value, missing="-"), f.status, f.source])
    if keys:
        rule = cost_rule()
        for name in ("amortization_years", "usd_per_kwh"):
            f = getattr(rule, name)
            rows.append(["cost rule", name, number(f.value), f.status, f.source])
    return rows


def _engine_rows(analyses: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    from bench.projection.engines import get_engine

    keys = sorted({entry["engine"] for d in analyses for side in d["software"].values() for entry in side.values()})
    rows = []
    for key in keys:
        engine = get_engine(key)
        for name, f in engine.factors.items():
            rows.append([key, name, number(f.central), f"[{number(f.low)}, {number(f.high)}]",
                         "fitted" if f.fitted is not None else f.status, f.source])  # fmt: skip
    return rows


def _factor_rows(kinds: Sequence[str]) -> list[list[str]]:
    from bench.projection.efficiency import load_efficiency

    rows = []
    for kind in kinds:
        eff = load_efficiency(kind)
        for name, f in eff.factors.items():
            rows.append([kind, name, number(eff.values[name]), f"[{number(f.low)}, {number(f.high)}]", f.status,
                         f.source])  # fmt: skip
    return rows


def _validation_rows(records: Sequence[Record], analyses: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    errors = {d["validation_median_abs_error"] for d in analyses} - {None}
    errors |= {(r.estimate() or {}).get("validation_error") for r in records if r.simulated} - {None}
    rows = [["serving model", "held-out median |error| on published serving results", f"{100 * e:.1f}%",
             "bench/projection/published_serving.toml (bench simulate --validate-serving)"] for e in sorted(errors)]  # fmt: skip
    for r in records:
        v = (r.simulation or {}).get("host_validation") or {}
        if r.simulated and v.get("error") is not None:
            rows.append([f"trace projection: {r.spec.label}", "this cell's host validation (predicted / measured - 1)",
                         f"{100 * v['error']:+.1f}%", "measured on this host"])  # fmt: skip
    return rows


def appendix_section(records: Sequence[Record], analyses: Sequence[Mapping[str, Any]]) -> Section:
    """Every device, system and engine figure used (value, status, source), the flagged lists, the validation."""
    from bench.projection.profiles import get_profile

    keys = sorted({r.simulation["profile"]["key"] for r in records if r.simulated and (r.simulation or {}).get(
        "profile")} | {side["profile"] for d in analyses for side in (d["scenario"]["frontier"],
                                                                      d["scenario"]["constrained"])})  # fmt: skip
    kinds = sorted({get_profile(k).kind for k in keys} & {"gpu", "npu", "cpu"})
    flagged = [[d["scenario"]["name"], ", ".join(d["flagged_figures"]) or "none"] for d in analyses]
    tables = [Table("Device figures", ["device", "figure", "value", "status", "source"], _device_rows(keys),
                    "Status: OFF vendor, 3P third party, DER derived, UNV unverified, ASSUMED, ANNOUNCED (not "
                    "shipping when published).")]  # fmt: skip
    optional = [
        ("ASSUMED, UNV and ANNOUNCED figures in each scenario", ["scenario", "figures"], flagged),
        ("Systems and the cost rule", ["system", "figure", "value", "status", "source"], _system_rows(analyses)),
        ("Engine factors (the software lever)", ["engine", "factor", "value", "range", "status", "source"],
         _engine_rows(analyses)),
        ("Efficiency factors of the serving model", ["kind", "factor", "value", "range", "status", "source"],
         _factor_rows(kinds)),
        ("Validation errors", ["path", "what", "error", "source"], _validation_rows(records, analyses)),
    ]  # fmt: skip
    tables += [Table(title, headers, rows) for title, headers, rows in optional if rows]
    return Section("Appendix: figures, assumptions and validation", "", tables)
