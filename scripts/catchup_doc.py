"""Regenerate the figures block of docs/CATCHUP.md (between its `catchup:begin` and `catchup:end` markers) and the
trajectory chart beside it, from the shipped scenarios (SIMULATED, with the serving model as committed).

    .venv/bin/python scripts/catchup_doc.py

`make bench` runs it. For each scenario: the gap with both sides at their best with its band, the hardware gap,
what the levers do to it, chips to match and the settings at which a conclusion flips; the time each analysis and
its stability sweep took on this machine (the speed targets: a scenario in < 5 s, a sweep in < 60 s).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DOC = ROOT / "docs" / "CATCHUP.md"
FIGURES = ROOT / "docs" / "catchup_files"
BEGIN, END = "<!-- catchup:begin (scripts/catchup_doc.py writes this block) -->", "<!-- catchup:end -->"
TRAJECTORY_SCENARIO = "ascend-910c-vs-h100"


def _scenario_rows() -> tuple[list[list[str]], list[str]]:
    from bench.analysis.gap.analysis import analyse
    from bench.analysis.gap.scenario import load_scenarios
    from bench.analysis.gap.stability import flips_of, sweep
    from bench.output.catchup import band_text
    from bench.output.format import number

    rows, flips = [], []
    for name, scenario in load_scenarios().items():
        began = time.perf_counter()
        a = analyse(scenario, stability=False)
        analysed = time.perf_counter() - began
        a.stability = sweep(scenario, a)
        a.flips = flips_of(a.gap_at_best.value, a.hardware_gap.value, a.stability)
        swept = time.perf_counter() - began - analysed
        d = a.to_dict()
        match = d["chips_to_match"]
        rows.append([
            name, band_text(d["gap_at_best"]), band_text(d["hardware_gap"]),
            f"{number(d['gap_closed'])}x" if d["gap_closed"] else "-",
            band_text(d["catch_up_from_reference"]),
            f"{match['chips']} (memory min {match['memory_min_chips']}) for {scenario.frontier.chips}",
            f"{len(d['flips'])} of {len(d['stability'])}", f"{analysed:.1f} s / {swept:.1f} s",
        ])  # fmt: skip
        flips += [f"- `{name}`: {f['setting']} = {f['value']}: {f['conclusion']}" for f in d["flips"]]
    return rows, flips


def _trajectory() -> tuple[list[list[str]], Path | None]:
    from bench.analysis.gap.scenario import get_scenario
    from bench.analysis.gap.trajectory import gap_over_time, trajectory
    from bench.output.figures import trajectory_chart
    from bench.output.format import number

    scenario = get_scenario(TRAJECTORY_SCENARIO)
    points = trajectory(scenario)
    gaps = gap_over_time(points)
    chart = trajectory_chart(scenario.title, points, gaps)
    path = None
    if chart:
        FIGURES.mkdir(parents=True, exist_ok=True)
        path = FIGURES / f"trajectory-{TRAJECTORY_SCENARIO}.png"
        path.write_bytes(chart)
    rows = [[g["date"], g["frontier"] or "-", g["constrained"] or "-", f"{number(g['gap'])}x" if g["gap"] else "-",
             "ANNOUNCED" if g["announced"] else ""] for g in gaps]  # fmt: skip
    return rows, path


def block() -> str:
    from bench.output.format import markdown_table
    from bench.projection.published import held_out_error

    rows, flips = _scenario_rows()
    gaps, chart = _trajectory()
    headers = ["scenario", "gap at best [band]", "hardware gap [band]", "closed by levers", "catch-up from the "
               "frontier's reference", "chips to match", "flips", "analysis / sweep time"]  # fmt: skip
    parts = [
        BEGIN,
        f"All SIMULATED (serving model as committed; bands widened by its held-out error, "
        f"{100 * held_out_error():.1f}%). Gap = frontier / constrained output tokens/s per chip, prefill included.",
        "",
        markdown_table(headers, rows),
        "Settings at which a conclusion flips:",
        "",
        *(flips or ["- none"]),
        "",
        f"Trajectory of `{TRAJECTORY_SCENARIO}` (`bench catchup --trajectory {TRAJECTORY_SCENARIO}`): the gap between "
        "the best chip each side had shipped (or announced) by each date.",
        "",
        markdown_table(["from", "frontier", "constrained", "gap", ""], gaps),
    ]
    if chart:
        parts += [f"![Trajectory over chip generations](catchup_files/{chart.name})", ""]
    parts.append(END)
    return "\n".join(parts)


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    text = DOC.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"docs/CATCHUP.md: the markers {BEGIN!r} and {END!r} are missing", file=sys.stderr)
        return 2
    fresh = block()
    current = text[text.index(BEGIN) : text.index(END) + len(END)]
    DOC.write_text(text.replace(current, fresh), encoding="utf-8")
    print("docs/CATCHUP.md: figures block regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
