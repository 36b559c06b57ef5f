"""`bench show`: the records of run directories as a table, CSV, JSON, JSON Lines, SQL, Markdown or gains."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli.common import EXIT_OK
from bench.core.errors import UsageError, invalid_value

FORMATS = ("table", "csv", "json", "jsonl", "md", "sqlite", "gains")


def parse_percentiles(raw: str | None) -> tuple[float, ...]:
    """--percentiles "50,90,99.9": each in (0, 100], at most 10."""
    from bench.output.render import DEFAULT_PERCENTILES

    if raw is None:
        return DEFAULT_PERCENTILES
    values = []
    for part in (p.strip() for p in raw.split(",")):
        try:
            value = float(part)
        except ValueError:
            raise invalid_value("--percentiles", part, "numbers in (0, 100], comma-separated, e.g. 50,90,99") from None
        if not 0 < value <= 100:
            raise invalid_value("--percentiles", part, "numbers in (0, 100], comma-separated, e.g. 50,90,99")
        values.append(value)
    if not values or len(values) > 10:
        raise invalid_value("--percentiles", raw, "1 to 10 numbers in (0, 100]")
    return tuple(values)


def _cmd_show(args: argparse.Namespace) -> int:
    from bench.output.render import render, render_sql
    from bench.runs.store import read_run_dirs

    percentiles = parse_percentiles(args.percentiles)
    result = read_run_dirs(args.run_dirs)
    for message in result.skipped:
        print(f"warning: {message}", file=sys.stderr)
    if args.format == "gains":
        from bench.analysis.techniques import technique_gains
        from bench.output.analyses import render_gains

        measured = [r for r in result.records if not r.simulated]
        gains = technique_gains(measured)
        if not gains:
            raise UsageError("--format gains: no workload in these runs has a cpu fp32 eager (baseline) ok record")
        sys.stdout.write(render_gains(gains))
        return EXIT_OK
    if args.format == "sqlite":
        runs = [(Path(d).resolve().name, read_run_dirs([d]).records) for d in args.run_dirs]
        sys.stdout.write(render_sql(runs, percentiles))
        return EXIT_OK
    sys.stdout.write(render(result.records, args.format, percentiles))
    return EXIT_OK


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    p_show = sub.add_parser(
        "show",
        help="print the records of one or more run directories",
        epilog="Example: bench show results/latest --format sqlite | sqlite3 runs.db",
    )
    p_show.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p_show.add_argument(
        "--format",
        "-f",
        choices=FORMATS,
        default="table",
        help="jsonl: one JSON object per cell; sqlite: SQL statements, a table per run (pipe into sqlite3); "
        "gains: speed-up of each technique against cpu fp32 eager with a 95%% interval, beside its deviation "
        "from the fp32 reference (Markdown)",
    )
    p_show.add_argument(
        "--percentiles",
        metavar="LIST",
        help="percentiles of TTFT, TPOT, ITL and end-to-end latency for serving-engine cells (default 50,90,99)",
    )
    p_show.set_defaults(func=_cmd_show)
