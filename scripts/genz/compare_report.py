"""The tables scripts/genz/compare.py prints: one line per row, and the summaries (per group for GenZ and the
project's serving model, the rows that differ only in engine, GenZ's reasons counted)."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict

GROUPS = ("dense gpu", "dense npu", "moe gpu", "moe npu")
USES = ("fit", "held_out")
TOOLS = (("genz", "GenZ"), ("ours", "ours"))
#: Reason fragments -> the category GenZ's unpredicted rows are counted under.
REASON_KINDS = (
    ("speculative", "speculative decoding / MTP / EAGLE (no draft-head model)"),
    ("MLA", "MLA attention (DeepSeek-V3/R1)"),
    ("attention data-parallel", "attention-DP with EP"),
    ("TPOT", "TPOT bound not met at batch 1"),
    ("fit memory", "does not fit memory"),
    ("divisible by EP", "experts not divisible by EP"),
)


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def abs_ln(entry: dict, tool: str) -> float | None:
    value, published = entry.get(tool), entry.get("published")
    return abs(math.log(value / published)) if value and published else None


def _median(errors: list[float]) -> str:
    if not errors:
        return "n/a"
    m = statistics.median(errors)
    return f"{m:.3f} (x{math.exp(m):.2f})"


def stats(entries: list[dict], tool: str) -> dict:
    errors = [e for e in (abs_ln(x, tool) for x in entries) if e is not None]
    return {
        "predicted": len(errors),
        "median": _median(errors),
        "within_2x": sum(1 for e in errors if e <= math.log(2)),
    }


def table_text(results: dict[str, dict]) -> str:
    header = ("row", "use", "engine", "published", "phase/unit", "figure", "GenZ", "ours", "GenZ/pub", "ours/pub")
    header += ("batch", "GenZ reason / notes")
    lines = [header]
    for rid, r in results.items():
        extra = r["reason"] if r["reason"] else "; ".join(r["notes"])
        if r["genz"] is not None and r.get("tpot_ms") is not None:
            extra = f"TPOT {r['tpot_ms']:.1f} ms" + ("; " + extra if extra else "")
        if r["ours"] is None and r.get("ours_reason"):
            extra += f" [ours: {r['ours_reason']}]"
        lines.append(
            (
                rid,
                str(r["use"]),
                str(r["engine"]),
                r["published_on"],
                f"{r['phase']}/{r['unit']}",
                _fmt(r["published"]),
                _fmt(r["genz"]),
                _fmt(r["ours"]),
                _fmt(r["genz_ratio"], 3),
                _fmt(r["ours_ratio"], 3),
                str(r["batch"]) if r["batch"] else "-",
                extra,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    right = {5, 6, 7, 8, 9, 10}
    out = []
    for line in lines:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells) + "  " + line[-1])
    return "\n".join(out)


def _summary_line(name: str, use: str, entries: list[dict]) -> str:
    g, o = stats(entries, "genz"), stats(entries, "ours")
    return (
        f"| {name} | {use} | {len(entries)} | {g['predicted']} | {o['predicted']} | {g['median']} | {o['median']} "
        f"| {g['within_2x']} | {o['within_2x']} |"
    )


def summary_table(results: dict[str, dict]) -> str:
    """Markdown: per group and use, then overall per use and in all."""
    entries = list(results.values())
    lines = [
        "| group | use | rows | GenZ predicted | ours predicted | GenZ median abs ln (ratio) "
        "| ours median abs ln (ratio) | GenZ within 2x | ours within 2x |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups = list(GROUPS) + sorted({e["group"] for e in entries} - set(GROUPS))
    for group in groups:
        for use in USES:
            chosen = [e for e in entries if e["group"] == group and e["use"] == use]
            if chosen:
                lines.append(_summary_line(group, use, chosen))
    for use in USES:
        lines.append(_summary_line("**all**", use, [e for e in entries if e["use"] == use]))
    lines.append(_summary_line("**all**", "fit + held_out", entries))
    return "\n".join(lines)


def both_predicted_text(results: dict[str, dict]) -> str:
    """The medians over the rows both tools predicted (the like-for-like comparison)."""
    out = []
    for use in (*USES, "fit + held_out"):
        chosen = [e for e in results.values() if (use not in USES or e["use"] == use) and e["genz"] and e["ours"]]
        g, o = stats(chosen, "genz"), stats(chosen, "ours")
        out.append(
            f"  {use}: {len(chosen)} rows; GenZ median |ln| {g['median']}, within 2x {g['within_2x']}; "
            f"ours {o['median']}, within 2x {o['within_2x']}"
        )
    return "on the rows both predicted:\n" + "\n".join(out)


def _setup_key(r: dict) -> tuple:
    """Rows alike but for engine: same model, device, chips, precision, phase, unit, bounds and caps, lengths
    within about 10% (log buckets)."""
    s = r["setup"]
    lengths = tuple(round(10 * math.log(max(1, int(s.get(k, 1))))) for k in ("input_tokens", "output_tokens"))
    fixed = (r["model"], r["profile"], r["chips"], s.get("precision"), r["phase"], r["unit"], s.get("concurrency"))
    return fixed + lengths


def engine_text(results: dict[str, dict]) -> str:
    sets: dict[tuple, list[tuple[str, dict]]] = defaultdict(list)
    for rid, r in results.items():
        sets[_setup_key(r)].append((rid, r))
    lines = [
        "engines: GenZ has no notion of a serving engine -- it predicts the same figure for every engine on the "
        "same hardware and setup. Rows alike but for engine (lengths within ~10%):"
    ]
    for key, members in sets.items():
        if len({r["engine"] for _, r in members}) < 2:
            continue
        pub = [r["published"] for _, r in members]
        genz = [r["genz"] for _, r in members if r["genz"]]
        ours = [r["ours"] for _, r in members if r["ours"]]
        spread = ", ".join(f"{r['engine']} {_fmt(r['published'])}" for _, r in members)
        lines.append(
            f"  {key[0]} on {key[2]} x {key[1]} {key[3]} {key[4]}/{key[5]} conc {key[6]}: published {spread} "
            f"(max/min {max(pub) / min(pub):.2f}); GenZ "
            + (f"{_fmt(min(genz))}..{_fmt(max(genz))}" if genz else "-")
            + "; ours "
            + (f"{_fmt(min(ours))}..{_fmt(max(ours))}" if ours else "-")
        )
    return "\n".join(lines)


def reasons_text(results: dict[str, dict]) -> str:
    """GenZ's unpredicted rows counted by reason (a row with several reasons counts under each)."""
    missing = [r for r in results.values() if r["genz"] is None]
    counts: Counter[str] = Counter()
    for r in missing:
        kinds = {
            next((k for frag, k in REASON_KINDS if frag in part), part.split(":")[0])
            for part in str(r["reason"]).split("; ")
        }
        counts.update(kinds)
    lines = [f"GenZ did not predict {len(missing)} of {len(results)} rows; reasons (a row counts under each of its):"]
    lines += [f"  {n:3d}  {kind}" for kind, n in counts.most_common()]
    return "\n".join(lines)


def report_text(results: dict[str, dict], approximate: bool, version: str, ours_note: str | None) -> str:
    entries = list(results.values())
    g_all, o_all = stats(entries, "genz"), stats(entries, "ours")
    parts = [
        f"GenZ {version}: predicted {g_all['predicted']} of {len(entries)} rows, median |ln(GenZ/published)| = "
        f"{g_all['median']}; ours (bench.projection.published.predict): predicted {o_all['predicted']}, median "
        f"{o_all['median']}",
    ]
    if approximate:
        exact = [e for e in entries if not any(n.startswith("approx:") for n in e["notes"])]
        parts.append(
            f"  GenZ over the {stats(exact, 'genz')['predicted']} rows without approximations: "
            f"{stats(exact, 'genz')['median']}"
        )
    if ours_note:
        parts.append(f"note: {ours_note}")
    parts += ["", summary_table(results), "", both_predicted_text(results), "", engine_text(results), ""]
    parts.append(reasons_text(results))
    return "\n".join(parts)
