"""`bench report`: the HTML/Markdown report with the catch-up estimate, or a flat CSV/parquet export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli.common import EXIT_OK, checked_output_file, refuse_future_schema
from bench.core.errors import UsageError, invalid_value
from bench.core.outfile import write_output
from bench.runs.store import RECORDS_FILE


def parse_budget(raw: str | None):
    """--accuracy-budget "cos=0.99,top1=0.95" -> AccuracyBudget (each in [0, 1])."""
    from bench.analysis.catchup import AccuracyBudget

    if raw is None:
        return AccuracyBudget()
    values = {}
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        key, _, value = part.partition("=")
        names = {"cos": "cosine_min", "top1": "top1_min"}
        if key not in names:
            raise invalid_value("--accuracy-budget", part, "cos=F and/or top1=F, e.g. cos=0.99,top1=0.95")
        try:
            number = float(value)
        except ValueError:
            raise invalid_value(f"--accuracy-budget {key}", value, "a number in [0, 1]") from None
        if not 0 <= number <= 1:
            raise invalid_value(f"--accuracy-budget {key}", value, "a number in [0, 1]")
        values[names[key]] = number
    return AccuracyBudget(**values)


def _cmd_report(args: argparse.Namespace) -> int:
    from bench.analysis.gap.scenario import get_scenario
    from bench.runs.store import read_run_dirs

    out = checked_output_file("--out", args.out) if args.out is not None else None  # before any work
    budget = parse_budget(args.accuracy_budget)
    scenarios = [get_scenario(name) for name in args.scenario or []]
    result = read_run_dirs(args.run_dirs)
    refuse_future_schema("RUN_DIR", result.skipped)
    for message in result.skipped:
        print(f"warning: {message}", file=sys.stderr)
    out = out or checked_output_file("--out", Path(args.run_dirs[0]) / f"report.{_REPORT_SUFFIX[args.format]}")
    protect = [Path(d) / RECORDS_FILE for d in args.run_dirs]
    if args.format in ("csv", "parquet"):
        write_output(out, _export_table(result.records, args.format), "--out", protect)
    else:
        from bench.output.report import build_report, render_html, render_markdown

        report = build_report(
            result.records,
            frontier=args.frontier,
            constrained=args.constrained,
            reference=args.reference,
            scenarios=scenarios,
            budget=budget,
        )
        if args.format == "html":
            write_output(out, render_html(report), "--out", protect)
        else:
            figures = out.with_name(out.stem + "_files")
            write_output(out, render_markdown(report, figures, figures.name), "--out", protect)
    print(f"report: {out}", file=sys.stderr)
    return EXIT_OK


_REPORT_SUFFIX = {"html": "html", "md": "md", "csv": "csv", "parquet": "parquet"}


def _export_table(records, fmt: str) -> bytes:
    """Flattened records (one row per cell, the columns of `bench show --format csv`) through pandas, as bytes
    (written by `write_output`, never by pandas itself)."""
    import io

    import pandas as pd

    from bench.output.render import summary_row

    frame = pd.DataFrame([summary_row(r) for r in records])
    if fmt == "csv":
        return frame.to_csv(index=False).encode("utf-8")
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    except ImportError as exc:
        raise UsageError(
            f"--format: 'parquet' needs pyarrow ({exc.__class__.__name__}); pip install 'catchup-bench[parquet]', or use csv"
        ) from None


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    p_rep = sub.add_parser(
        "report",
        help="a report (HTML or Markdown, with charts and the catch-up estimate) or a flat export",
        description="Reads the latest record per cell of each RUN_DIR and writes one report: html (a single "
        "self-contained file), md (GitHub Markdown with its images in a folder beside it), or csv / parquet "
        "(one row per cell). The catch-up estimate compares --constrained with --frontier: a profile key for "
        "simulated devices, or a substring of a measured device (e.g. 'cpu', 'H100').",
    )
    p_rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p_rep.add_argument("--out", "-o", metavar="PATH", help="output file (default RUN_DIR[0]/report.FORMAT)")
    p_rep.add_argument("--format", "-f", choices=("html", "md", "csv", "parquet"), default="html")
    p_rep.add_argument("--frontier", default="h100", help="frontier device (default h100)")
    p_rep.add_argument("--constrained", default="ascend-910b2", help="constrained device (default ascend-910b2)")
    p_rep.add_argument("--reference", default="bf16", help="reference technique: a precision (default bf16)")
    p_rep.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="add the catch-up of a scenario of bench/suites/scenarios.toml (simulated; see bench catchup "
        "--list); repeatable",
    )
    p_rep.add_argument(
        "--accuracy-budget",
        metavar="cos=F,top1=F",
        help="deviation from the fp32 reference a technique may cost and still be called best (default "
        "cos=0.99,top1=0.95)",
    )
    p_rep.set_defaults(func=_cmd_report)
