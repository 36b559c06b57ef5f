"""`bench compare` (the regression gate) and `bench noise` (A/A noise floors)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.cli.common import (
    EXIT_FAILED_CELLS,
    EXIT_OK,
    checked_output_file,
    parse_number,
    records_of,
    run_dirs_of,
)
from bench.core.errors import UsageError
from bench.core.outfile import write_output
from bench.runs.store import RECORDS_FILE


def _cmd_compare(args: argparse.Namespace) -> int:
    from bench.analysis.compare import compare_records, read_noise
    from bench.output.analyses import render_comparison

    base_dirs, current_dirs = run_dirs_of("BASELINE", args.baseline), run_dirs_of("CURRENT", args.current)
    min_effect = parse_number("--min-effect", args.min_effect, float)
    alpha = parse_number("--alpha", args.alpha, float)
    comparison = compare_records(
        records_of("BASELINE", base_dirs),
        records_of("CURRENT", current_dirs),
        min_effect=min_effect,
        alpha=alpha,
        noise=read_noise(base_dirs[0]),
        allow_env_mismatch=args.allow_env_mismatch,
    )
    sys.stdout.write(render_comparison(comparison, args.format))
    if not comparison.cells:  # a gate that compared nothing has not passed
        raise UsageError(
            "CURRENT: no cell was compared (none is ok on both sides with samples); a comparison of "
            "nothing is not a pass"
        )
    return EXIT_FAILED_CELLS if comparison.regressions else EXIT_OK


def _cmd_noise(args: argparse.Namespace) -> int:
    from bench.analysis.compare import NOISE_FILE, noise_floors

    if len(args.run_dirs) < 2:
        raise UsageError(f"RUN_DIR: {len(args.run_dirs)} given; a noise floor needs at least 2 runs of the same code")
    runs = [records_of("RUN_DIR", [d]) for d in args.run_dirs]
    floors = noise_floors(runs)
    target = (
        checked_output_file("--write", args.write) if args.write is not None else Path(args.run_dirs[0]) / NOISE_FILE
    )
    text = json.dumps({"runs": args.run_dirs, "noise_floors": floors}, indent=2) + "\n"
    write_output(target, text, "--write", [Path(d) / RECORDS_FILE for d in args.run_dirs])
    for key, floor in floors.items():
        label = next(r.spec.label for r in runs[0] if r.spec.key == key)
        print(f"{label}: A/A noise floor {floor:.2%} (gate uses >= {3 * floor:.1%})")
    print(f"written: {target}")
    return EXIT_OK


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    p_cmp = sub.add_parser(
        "compare",
        help="compare two runs cell by cell; exit 1 on a regression",
        description="Pairs cells by spec; per cell the ratio of median latencies (current / baseline) with a "
        "bootstrap 95% interval, a Mann-Whitney U test (Holm-corrected over cells) and a verdict: regression, "
        "improvement, no change, or inconclusive, against a minimum effect (or 3x the cell's A/A noise floor from "
        "BASELINE/noise.json, see `bench noise`). BASELINE and CURRENT are run directories; a comma-separated "
        "list pools each cell's samples over the runs (e.g. interleaved rounds).",
    )
    p_cmp.add_argument("baseline", metavar="BASELINE")
    p_cmp.add_argument("current", metavar="CURRENT")
    p_cmp.add_argument("--min-effect", default="0.05", help="smallest slowdown that counts (default 0.05 = 5%%)")
    p_cmp.add_argument("--alpha", default="0.01", help="significance level after Holm correction (default 0.01)")
    p_cmp.add_argument(
        "--allow-env-mismatch",
        action="store_true",
        help="compare even if the environment fingerprints differ (they are listed)",
    )
    p_cmp.add_argument("--format", "-f", choices=("table", "md", "json"), default="table")
    p_cmp.set_defaults(func=_cmd_compare)
    p_noise = sub.add_parser(
        "noise",
        help="per-cell A/A noise floors from repeated runs of the same code",
        description="From two or more runs of the same code and sweep, the spread of each cell's log-median "
        "between runs; written to noise.json in the first RUN_DIR (or --write), where `bench compare` reads it "
        "when that directory is the baseline.",
    )
    p_noise.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p_noise.add_argument("--write", metavar="PATH", help="where to write (default: RUN_DIR[0]/noise.json)")
    p_noise.set_defaults(func=_cmd_noise)
