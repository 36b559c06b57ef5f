"""The report's charts, as PNG bytes (matplotlib, Agg backend; imported only when a report is drawn).

Every function takes plain data and returns PNG bytes or None when there is nothing to draw. Simulated values are
drawn hatched and labelled "(sim)", so a chart never passes an estimate off as a measurement.
"""

from __future__ import annotations

import io
import textwrap
from typing import Any, Sequence

__all__ = ["catch_up_chart", "latency_distributions", "throughput_by_batch", "roofline_chart", "waterfall_chart"]


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


def waterfall_chart(title: str, start: float, steps: Sequence[dict[str, Any]], end_label: str) -> bytes | None:
    """A catch-up waterfall on a log axis: the start (frontier at its reference, = 1), one floating bar per lever
    from the running product before it to after it (green: helps the constrained side, red: hurts), each with its
    band as an error bar and its factor written beside it, and the end bar (the catch-up ratio). Simulated
    throughout: every bar is hatched."""
    if not steps or not start:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.6))
    level, labels = 1.0, ["start\n(frontier, reference)"]
    ax.bar(0, 1.0, bottom=0, color="#9e9e9e", hatch="//", edgecolor="black", linewidth=0.4)
    for i, step in enumerate(steps, start=1):
        after = level * step["factor"]
        bottom, top = min(level, after), max(level, after)
        color = "#59a14f" if step["factor"] >= 1 else "#e15759"
        ax.bar(i, top - bottom, bottom=bottom, color=color, hatch="//", edgecolor="black", linewidth=0.4)
        low, high = level * step["low"], level * step["high"]
        ax.errorbar(
            i, after, yerr=[[max(after - low, 0)], [max(high - after, 0)]], color="black", capsize=3, linewidth=0.8
        )
        ax.annotate(  # above the bar and its error bar, clear of both
            f"x{step['factor']:.2f}",
            (i, max(top, high)),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=7,
        )
        labels.append(textwrap.fill(step["label"], 24, max_lines=3, placeholder="..."))
        level = after
    ax.bar(len(steps) + 1, level, bottom=0, color="#f28e2b", hatch="//", edgecolor="black", linewidth=0.4)
    ax.annotate(
        f"{level:.2f}",
        (len(steps) + 1, level),
        textcoords="offset points",
        xytext=(0, 4),
        ha="center",
        fontsize=8,
        fontweight="bold",
    )
    labels.append(end_label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("constrained / frontier-reference (log; 1 = parity)")
    ax.set_title(title + " (simulated)", fontsize=9)
    return _png(fig)
