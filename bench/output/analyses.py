"""Text and Markdown of the analyses: a comparison (`bench compare`), technique gains (`bench show --format
gains`) and the trace projection's validation (`bench simulate --validate`). Plain functions from analysis results to strings; numbers through `bench.output.format.number`.
"""

from __future__ import annotations

import json

from bench.output.format import accuracy_cell, escape_markdown, markdown_table, number, text_table

_MS = 1e6

__all__ = [
    "render_comparison",
    "render_gains",
    "render_validation",
]


_VERDICT_MARK = {
    "regression": "REGRESSION",
    "improvement": "improvement",
    "no change": "no change",
    "inconclusive": "inconclusive",
}


def _comparison_rows(comparison) -> list[list[str]]:
    rows = []
    for cell in comparison.cells:
        rows.append(
            [
                cell.spec.label,
                number(cell.baseline_median_ns / _MS),
                number(cell.current_median_ns / _MS),
                f"{cell.ratio:.3f} [{cell.ratio_ci[0]:.3f}, {cell.ratio_ci[1]:.3f}]",
                f"{cell.p_holm:.2g}",
                f"{cell.threshold:.0%}",
                f"{cell.baseline_n}/{cell.current_n}",
                _VERDICT_MARK[cell.verdict],
            ]
        )
    return rows


_COMPARISON_HEADERS = [
    "cell",
    "baseline p50 ms",
    "current p50 ms",
    "ratio [95% CI]",
    "p (Holm)",
    "min effect",
    "n base/cur",
    "verdict",
]


def _comparison_footer(comparison) -> list[str]:
    lines = [
        f"{len(comparison.regressions)} regression(s) in {len(comparison.cells)} compared cell(s); "
        f"alpha {comparison.alpha}, minimum effect {comparison.min_effect:.0%} (or 3x a cell's noise floor)"
    ]
    if comparison.environment_differences:
        lines.append(
            "environments differ in: "
            + ", ".join(comparison.environment_differences)
            + " (compared because --allow-env-mismatch was given)"
        )
    lines += [f"not compared: {spec.label}: {reason}" for spec, reason in comparison.not_compared]
    return lines


def render_comparison(comparison, fmt: str = "table") -> str:
    """A Comparison as a terminal table, Markdown (for a CI job summary) or JSON."""
    if fmt == "json":
        return json.dumps(comparison.to_dict(), indent=2) + "\n"
    rows = _comparison_rows(comparison)
    footer = _comparison_footer(comparison)
    if fmt == "md":
        return markdown_table(_COMPARISON_HEADERS, rows) + "\n" + "".join(f"- {escape_markdown(x)}\n" for x in footer)
    return text_table(_COMPARISON_HEADERS, rows) + "\n" + "".join(f"{x}\n" for x in footer)


_GAINS_HEADERS = [
    "workload",
    "batch",
    "seq",
    "technique",
    "p50 ms",
    "speed-up vs fp32 eager [95% CI]",
    "top-1 / cos vs fp32",
]


def render_gains(gains) -> str:
    """Technique gains (`bench.analysis.techniques`) as Markdown: median latency, speed-up [95% CI] against fp32
    eager, and the deviation from the fp32 reference beside it."""
    from bench.analysis.techniques import technique_label

    rows = [
        [
            g.spec.workload,
            g.spec.batch_size,
            g.spec.seq_len or "",
            technique_label(g.spec),
            number(g.median_ms),
            f"{g.speedup:.2f} [{g.speedup_ci[0]:.2f}, {g.speedup_ci[1]:.2f}]",
            accuracy_cell(g.accuracy) or "reference",
        ]
        for g in gains
    ]
    return markdown_table(_GAINS_HEADERS, rows)


def render_validation(rows, fit) -> str:
    """The trace projection's validation (`bench.analysis.simvalidate`) as Markdown: predicted vs measured per
    cell, the median |error|, and the fitted factors with their error."""
    from bench.analysis.simvalidate import median_abs_error

    headers = ["model", "prec", "batch", "seq", "new", "host measured p50 ms", "predicted ms", "error"]
    body = []
    for i, row in enumerate(rows):
        spec = row.record.spec
        body.append(
            [
                spec.workload,
                row.record.simulation["host_validation"]["precision"],
                spec.batch_size,
                spec.seq_len or "",
                spec.new_tokens or "",
                number(row.measured_s * 1e3),
                number(row.predicted_s * 1e3),
                f"{row.error:+.1%}",
            ]
            + ([f"{fit['errors'][i]:+.1%}"] if fit else [])
        )
    lines = [markdown_table(headers + (["fitted error"] if fit else []), body).rstrip("\n"), ""]
    mae = median_abs_error([r.error for r in rows])
    lines.append(
        f"Median |error| with the default host model (eta 1, measured overhead): {mae:.1%} over {len(rows)} cells."
        if mae is not None
        else "No validated cells."
    )
    if fit:
        lines.append(
            f"Fitted on these cells (kept apart from the defaults): eta_c {fit['eta_compute']}, "
            f"eta_m {fit['eta_memory']}, overhead x{fit['overhead_multiplier']} -> median |error| "
            f"{fit['median_abs_error']:.1%}."
        )
    return "\n".join(lines) + "\n"
