"""The report's charts, as PNG bytes (matplotlib, Agg backend; imported only when a report is drawn).

Every function takes plain data and returns PNG bytes or None when there is nothing to draw. Simulated values are
drawn hatched and labelled "(sim)", so a chart never passes an estimate off as a measurement.
"""

from __future__ import annotations

import io
import textwrap
from typing import Any, Sequence

__all__ = [
    "catch_up_chart",
    "latency_distributions",
    "throughput_by_batch",
    "roofline_chart",
    "gap_chart",
    "tornado_chart",
    "trajectory_chart",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    _plt().close(fig)
    return buffer.getvalue()


def catch_up_chart(rows: Sequence[dict[str, Any]]) -> bytes | None:
    """Per workload: the constrained device's throughput relative to the frontier's reference (1 = parity), for
    its reference technique (the hardware gap, as 1 / gap) and each technique; intervals as error bars."""
    rows = [r for r in rows if r["bars"]]
    if not rows:
        return None
    plt = _plt()
    height = sum(len(r["bars"]) for r in rows) * 0.32 + len(rows) * 0.6 + 0.8
    fig, ax = plt.subplots(figsize=(8, max(2.5, height)))
    y, ticks, labels = 0.0, [], []
    for row in rows:
        for bar in row["bars"]:
            low, high = bar.get("low"), bar.get("high")
            err = [[bar["value"] - low], [high - bar["value"]]] if low is not None and high is not None else None
            ax.barh(
                y,
                bar["value"],
                height=0.34,
                xerr=err,
                color=bar["color"],
                hatch="//" if bar["simulated"] else None,
                edgecolor="black",
                linewidth=0.4,
                capsize=2,
            )
            ticks.append(y)
            labels.append(f"{row['label']}: {bar['label']}{' (sim)' if bar['simulated'] else ''}")
            y += 0.4
        y += 0.5
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("throughput relative to the frontier device's reference technique (1 = parity; log)")
    ax.set_title("Catch-up: how much of the hardware gap each technique closes", fontsize=9)
    return _png(fig)


def latency_distributions(groups: Sequence[tuple[str, list[tuple[str, list[float]]]]]) -> bytes | None:
    """Box plots of per-call latency (ms) per cell, one panel per workload (measured cells only)."""
    groups = [(name, cells) for name, cells in groups if cells]
    if not groups:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, 1.2 + 0.45 * sum(len(c) for _, c in groups)), squeeze=False)
    for ax, (name, cells) in zip(axes[:, 0], groups):
        data = [samples for _, samples in cells]
        try:  # matplotlib >= 3.10 names it orientation; older releases know only vert
            ax.boxplot(data, orientation="horizontal", showfliers=True, flierprops={"markersize": 2})
        except TypeError:
            ax.boxplot(data, vert=False, showfliers=True, flierprops={"markersize": 2})
        ax.set_yticks(range(1, len(cells) + 1), [label for label, _ in cells], fontsize=7)
        ax.set_xscale("log")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("latency per call, ms (log)", fontsize=7)
    fig.tight_layout()
    return _png(fig)


def throughput_by_batch(series: Sequence[tuple[str, str, list[tuple[int, float]], bool]]) -> bytes | None:
    """Throughput against batch size: (workload, label, [(batch, value)], simulated) series with two or more points."""
    series = [s for s in series if len(s[2]) >= 2]
    if not series:
        return None
    plt = _plt()
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.get_cmap("tab10").colors[:8]  # at most 8 colours; markers tell more series apart
    markers = ("o", "s", "^", "D", "v", "P", "X", "*")
    batches: set[int] = set()
    for i, (workload, label, points, simulated) in enumerate(series):
        xs, ys = zip(*sorted(points))
        batches.update(xs)
        ax.plot(
            xs,
            ys,
            color=colors[i % len(colors)],
            marker=markers[(i // len(colors)) % len(markers)],
            linestyle="--" if simulated else "-",
            label=f"{workload} {label}{' (sim)' if simulated else ''}",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(batches))
    ax.xaxis.set_major_formatter(ScalarFormatter())  # batch sizes as numbers, not powers of two
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("items/s")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("Throughput against batch size", fontsize=9)
    return _png(fig)


def roofline_chart(points: Sequence[dict[str, Any]], ceilings: Sequence[dict[str, Any]]) -> bytes | None:
    """Achieved FLOP/s against arithmetic intensity (FLOPs / minimum bytes per call), with each device's compute
    and bandwidth ceilings: min(peak, intensity x bandwidth)."""
    points = [p for p in points if p["intensity"] and p["flops_per_s"]]
    if not points:
        return None
    plt = _plt()
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.logspace(-1, 4, 200)
    for c in ceilings:
        ax.plot(xs, np.minimum(c["peak_flops"], xs * c["bandwidth"]), linewidth=1, label=f"ceiling: {c['label']}")
    for p in points:
        ax.scatter(p["intensity"], p["flops_per_s"], marker="^" if p["simulated"] else "o", s=18)
        if not p["simulated"]:  # label the measured points; simulated ones are many and sit in clusters
            ax.annotate(p["label"], (p["intensity"], p["flops_per_s"]), fontsize=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity, FLOP per minimum byte moved")
    ax.set_ylabel("achieved FLOP/s")
    from matplotlib.lines import Line2D

    handles = ax.get_legend_handles_labels()[0] + [
        Line2D([], [], marker="o", linestyle="", color="gray", label="measured cell"),
        Line2D([], [], marker="^", linestyle="", color="gray", label="simulated cell"),
    ]
    ax.legend(handles=handles, fontsize=6, loc="upper left")
    ax.set_title("Roofline (circles measured, triangles simulated)", fontsize=9)
    return _png(fig)


def _log_ticks(ax, axis: str = "x") -> None:
    """Readable log axis: plain numbers (0.5, 1, 2, 5) rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def gap_chart(title: str, bars: Sequence[dict[str, Any]]) -> bytes | None:
    """The catch-up headline: one horizontal bar per figure (hardware gap, gap at best, per watt, per dollar), each
    frontier / constrained with its band as an error bar, on a log axis with parity (1) marked. Simulated: hatched."""
    bars = [b for b in bars if b.get("value")]
    if not bars:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(bars) + 1.3))
    for i, bar in enumerate(bars):
        value, low, high = bar["value"], bar.get("low") or bar["value"], bar.get("high") or bar["value"]
        ax.barh(i, value, color=bar.get("color", "#4c78a8"), hatch="//", edgecolor="black", linewidth=0.4)
        ax.errorbar(value, i, xerr=[[max(value - low, 0)], [max(high - value, 0)]], color="black", capsize=3,
                    linewidth=0.8)  # fmt: skip
        ax.annotate(f"{value:.2f}x", (max(value, high), i), textcoords="offset points", xytext=(4, -3), fontsize=7)
    ax.set_yticks(range(len(bars)))
    ax.set_yticklabels([b["label"] for b in bars], fontsize=8)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    _log_ticks(ax)
    ax.invert_yaxis()
    ax.set_xlabel("frontier / constrained (log; 1 = parity, > 1 the frontier serves more)", fontsize=8)
    ax.set_title(textwrap.fill(title + " (simulated)", 90), fontsize=9)
    return _png(fig)


def tornado_chart(title: str, base: float, rows: Sequence[dict[str, Any]]) -> bytes | None:
    """The stability sweep: for each setting swept, a bar from the scenario's gap at best to the gap at that
    setting (log axis), settings with no configuration left out; parity and the scenario's value marked."""
    rows = [r for r in rows if r.get("gap_at_best")]
    if not rows or not base:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.3))
    for i, row in enumerate(rows):
        gap = row["gap_at_best"]
        color = "#e15759" if (gap > 1) != (base > 1) else "#4c78a8"
        ax.barh(i, gap - base, left=base, color=color, hatch="//", edgecolor="black", linewidth=0.4)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['setting']} = {r['value']}" for r in rows], fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(base, color="#f58518", linewidth=1.2, linestyle="--")
    ax.set_xscale("log")
    _log_ticks(ax)
    ax.invert_yaxis()
    ax.set_xlabel("gap at best, frontier / constrained (log; dashed: the scenario's setting; red: leader flips)",
                  fontsize=8)  # fmt: skip
    ax.set_title(textwrap.fill(title + " (simulated)", 90), fontsize=9)
    return _png(fig)


def trajectory_chart(title: str, points: Sequence[dict[str, Any]], gaps: Sequence[dict[str, Any]]) -> bytes | None:
    """Per-chip throughput of each generation over its release date (log axis; hollow markers: ANNOUNCED), and the
    gap over time between the best chip each side had by then."""
    drawn = [p for p in points if p.get("tokens_per_s_per_chip") and p.get("year")]
    if not drawn:
        return None
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(2, 1))
    for side, color in (("frontier", "#4c78a8"), ("constrained", "#f58518")):
        mine = sorted((p for p in drawn if p["side"] == side), key=lambda p: p["year"])
        top.plot([p["year"] for p in mine], [p["tokens_per_s_per_chip"] for p in mine], color=color, linewidth=0.8)
        for p in mine:
            announced = p["status"] == "ANNOUNCED"
            top.scatter(p["year"], p["tokens_per_s_per_chip"], color="white" if announced else color,
                        edgecolor=color, zorder=3, s=28)  # fmt: skip
            top.annotate(p["device"], (p["year"], p["tokens_per_s_per_chip"]), textcoords="offset points",
                         xytext=(3, 3), fontsize=6)  # fmt: skip
        top.plot([], [], color=color, label=side)
    top.set_yscale("log")
    _log_ticks(top, "y")
    top.set_ylabel("output tokens/s per chip (log)", fontsize=8)
    top.legend(fontsize=7)
    series = [g for g in gaps if g.get("gap")]
    bottom.step([g["year"] for g in series], [g["gap"] for g in series], where="post", color="black", linewidth=1)
    bottom.axhline(1.0, color="gray", linewidth=0.6)
    bottom.set_yscale("log")
    _log_ticks(bottom, "y")
    bottom.set_ylabel("gap (frontier /\nconstrained, log)", fontsize=8)
    bottom.set_xlabel("release date (hollow: ANNOUNCED, not shipping)", fontsize=8)
    top.set_title(textwrap.fill(title + " (simulated)", 90), fontsize=9)
    return _png(fig)
