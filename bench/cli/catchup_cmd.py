"""`bench catchup SCENARIO`: the catch-up waterfall of a named scenario (bench.analysis.waterfall), SIMULATED."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.cli.common import EXIT_OK
from bench.core.errors import UsageError


def _cmd_catchup(args: argparse.Namespace) -> int:
    from bench.analysis.waterfall import get_scenario, load_scenarios, waterfall
    from bench.output.analyses import render_waterfall

    path = Path(args.scenarios) if args.scenarios else None
    if args.list or not args.scenario:
        scenarios = load_scenarios(path)
        if not args.scenario and not args.list:
            raise UsageError(f"SCENARIO: missing; expected one of {', '.join(scenarios)} (bench catchup --list)")
        if args.format == "json":
            print(json.dumps([{"name": name, "title": s.title} for name, s in scenarios.items()], indent=1))
            return EXIT_OK
        for name, s in scenarios.items():
            print(f"{name:<24} {s.title}")
        return EXIT_OK
    result = waterfall(get_scenario(args.scenario, path))
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=1))
    else:
        sys.stdout.write(render_waterfall(result, markdown=args.format == "md"))
    return EXIT_OK


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    p = sub.add_parser(
        "catchup",
        help="the catch-up waterfall of a named scenario (simulated): gap and factor per lever",
        description="Projects a scenario of bench/suites/scenarios.toml with the serving model at the efficiency "
        "factors' central values and both ends of their ranges, and decomposes the ratio of the constrained "
        "device at its best to the frontier device at its reference configuration into hardware (compute, "
        "bandwidth, capacity, interconnect, chip efficiency), software, precision, model architecture at equal "
        "published quality, and serving-system factors, each with its band and status (docs/CATCHUP.md).",
        epilog="Example: bench catchup h20-vs-h100 --format md",
    )
    p.add_argument("scenario", nargs="?", metavar="SCENARIO", help="a scenario name (see --list)")
    p.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--scenarios", metavar="FILE", help="another scenarios file (default bench/suites/scenarios.toml)")
    p.add_argument("--format", "-f", choices=("table", "md", "json"), default="table")
    p.set_defaults(func=_cmd_catchup)
