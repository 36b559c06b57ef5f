"""The `bench` command line: one module per command (`*_cmd.py`), each adding its parser with `register(sub)` and
doing its work through the layers below (run, analysis, output). Argument parsing and messages live here.

Exit status: 0 success; 1 a cell failed (its record says why); 2 bad input (one line on stderr, nothing run,
nothing written); 3 the run directory could not be written mid-run; 130 interrupted (finished cells are kept;
rerun with --resume).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from bench.cli import (
    catchup_cmd,
    compare_cmd,
    list_cmd,
    report_cmd,
    run_cmd,
    selfcheck_cmd,
    serve_cmd,
    show_cmd,
    simulate_cmd,
)
from bench.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Parser
from bench.core import __version__
from bench.core.errors import UsageError

__all__ = ["build_parser", "main"]

COMMANDS = (list_cmd, run_cmd, show_cmd, compare_cmd, report_cmd, catchup_cmd, simulate_cmd, serve_cmd, selfcheck_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bench",
        description="catchup-bench: measure inference latency and throughput on CPUs, GPUs and NPUs.",
        epilog="Exit status: 0 ok, 1 a cell failed, 2 bad input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"catchup-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `bench show DIR | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
