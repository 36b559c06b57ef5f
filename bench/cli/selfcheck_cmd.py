"""`bench selfcheck`: the harness's timing against a bare loop in one isolated worker."""

from __future__ import annotations

import argparse
import json

from bench.cli.common import (
    EXIT_FAILED_CELLS,
    EXIT_OK,
    checked_output_file,
    parse_number,
)
from bench.core.errors import invalid_value
from bench.core.outfile import write_output
from bench.core.sweep import parse_int_list, parse_name_list


def _cmd_selfcheck(args: argparse.Namespace) -> int:
    from bench.runs.selfcheck import format_selfcheck, run_selfcheck

    json_out = checked_output_file("--json", args.json) if args.json is not None else None  # before the run
    model = parse_name_list("--model", [args.model])[0]
    batch = parse_int_list("--batch-size", [args.batch_size])[0]
    seq = parse_int_list("--seq-len", [args.seq_len])[0]
    blocks = parse_int_list("--blocks", [args.blocks])[0]
    block = parse_int_list("--block", [args.block])[0]
    tolerance = parse_number("--tolerance", args.tolerance, float)
    if not tolerance > 0:
        raise invalid_value("--tolerance", args.tolerance, "a fraction > 0, e.g. 0.03")
    result = run_selfcheck(
        model, batch, seq, blocks=blocks, block=block, tolerance=tolerance, spinning_parent=args.spinning_parent
    )
    print(format_selfcheck(result))
    if json_out:
        write_output(json_out, json.dumps(result.to_dict(), indent=2) + "\n", "--json")
    return EXIT_OK if result.within_tolerance else EXIT_FAILED_CELLS


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    p_self = sub.add_parser(
        "selfcheck",
        help="compare the harness's timing with a bare perf_counter_ns loop",
        description="In one isolated worker (started and awaited as `bench run` does), alternates blocks of the "
        "same model call timed by the harness loop and by a bare perf_counter_ns loop; prints both medians, "
        "their ratio, the per-call difference, the harness loop's fixed cost, and the parent's CPU time while "
        "it waited. Exit status 1 if |ratio - 1| exceeds --tolerance.",
    )
    p_self.add_argument("--model", default="bert-base-uncased", help="workload (default bert-base-uncased)")
    p_self.add_argument("--batch-size", default="1", help="default 1")
    p_self.add_argument("--seq-len", default="128", help="default 128")
    p_self.add_argument("--blocks", default="40", help="blocks per side (default 40)")
    p_self.add_argument("--block", default="2", help="calls per block (default 2)")
    p_self.add_argument("--tolerance", default="0.03", help="allowed |ratio - 1| (default 0.03)")
    p_self.add_argument(
        "--spinning-parent",
        action="store_true",
        help="also run once with a parent that polls in a tight loop, to show its cost",
    )
    p_self.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    p_self.set_defaults(func=_cmd_selfcheck)
