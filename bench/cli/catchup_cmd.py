"""`bench catchup SCENARIO`: the catch-up of a named scenario with both sides at their best (bench.analysis.gap),
SIMULATED; `--trajectory` over chip generations; `--list` the scenarios."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.cli.common import EXIT_OK
from bench.core.errors import UsageError


def _list(path: Path | None, fmt: str) -> int:
    from bench.analysis.gap.scenario import load_scenarios

    scenarios = load_scenarios(path)
    if fmt == "json":
        print(json.dumps([{"name": n, "title": s.title} for n, s in scenarios.items()], indent=1))
    else:
        for name, s in scenarios.items():
            print(f"{name:<32} {s.title}")
    return EXIT_OK


def _trajectory(scenario, fmt: str) -> int:
    from bench.analysis.gap.trajectory import gap_over_time, trajectory
    from bench.output.catchup import render_trajectory

    points = trajectory(scenario)
    gaps = gap_over_time(points)
    if fmt == "json":
        print(json.dumps({"simulated": True, "scenario": scenario.name, "trajectory": points, "gap_over_time": gaps},
                         indent=1))  # fmt: skip
    else:
        sys.stdout.write(render_trajectory(points, gaps, markdown=fmt == "md"))
    return EXIT_OK


def _measured_software(scenario, args: argparse.Namespace):
    """The scenario with its software lever on one side measured: the engine factor of RUN_DIR
    (bench.analysis.engines.software_lever) in place of the modelled engine difference."""
    from bench.analysis.engines import software_lever
    from bench.runs.store import read_run_dirs

    engines = None
    if args.software_engines:
        engines = tuple(name.strip() for name in args.software_engines.split(","))
        if len(engines) != 2 or not all(engines) or engines[0] == engines[1]:
            raise UsageError(
                f"--software-engines: {args.software_engines!r} is not allowed; expected BEST,REFERENCE (two "
                "different names)"
            )
    records = read_run_dirs([args.software_from], "--software-from").records
    lever = software_lever(records, engines, where=args.software_from)
    factor = lever.factor
    print(
        f"software lever ({args.software_side}) measured in {args.software_from}: {lever.best_engine} / "
        f"{lever.reference_engine} = {factor.value:.3g}x [{factor.low:.3g}, {factor.high:.3g}] "
        f"(concurrency {dict(lever.load)['concurrency']}, measured/measured)",
        file=sys.stderr,
    )
    return scenario.with_measured_software(args.software_side, factor.value, factor.low, factor.high)


def _cmd_catchup(args: argparse.Namespace) -> int:
    from bench.analysis.gap.scenario import get_scenario

    path = Path(args.scenarios) if args.scenarios else None
    if args.list:
        return _list(path, args.format)
    if not args.scenario:
        from bench.analysis.gap.scenario import SCENARIOS_FILE
        from bench.core.tomlfile import read_toml

        names = ", ".join(read_toml(path or SCENARIOS_FILE, "scenarios file"))
        raise UsageError(f"SCENARIO: missing; expected one of {names} (bench catchup --list)")
    scenario = get_scenario(args.scenario, path)
    if args.software_engines and not args.software_from:
        raise UsageError("--software-engines: given without --software-from; expected --software-from RUN_DIR too")
    if args.software_from:
        scenario = _measured_software(scenario, args)
    if args.trajectory:
        return _trajectory(scenario, args.format)
    from bench.analysis.gap.analysis import analyse
    from bench.output.catchup import render_catchup

    result = analyse(scenario, stability=not args.no_stability).to_dict()
    if args.format == "json":
        print(json.dumps(result, indent=1))
    else:
        sys.stdout.write(render_catchup(result, markdown=args.format == "md"))
    return EXIT_OK


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    p = sub.add_parser(
        "catchup",
        help="catch-up of a named scenario (simulated): the gap with both sides at their best, levers, stability",
        description="Projects a scenario of bench/suites/scenarios.toml with the serving model: the gap with both "
        "sides at their best and at the common reference (with bands), each lever's order-free (Shapley) factor "
        "on each side, the hardware gap's split, the chips that match the frontier, and whether the conclusions "
        "hold over the scenario's declared ranges (docs/CATCHUP.md). Every figure is SIMULATED.",
        epilog="Examples: bench catchup ascend-910c-vs-h100 --format md; bench catchup --trajectory ascend-910c-vs-h100",
    )
    p.add_argument("scenario", nargs="?", metavar="SCENARIO", help="a scenario name (see --list)")
    p.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--trajectory", action="store_true", help="the scenario's workload on each chip generation")
    p.add_argument("--no-stability", action="store_true", help="skip the sweep over the scenario's ranges")
    p.add_argument("--scenarios", metavar="FILE", help="another scenarios file (default bench/suites/scenarios.toml)")
    p.add_argument(
        "--software-from",
        metavar="RUN_DIR",
        help="the software lever measured: the engine factor of runs there that differ only in engine",
    )
    p.add_argument("--software-side", choices=("constrained", "frontier"), default="constrained")
    p.add_argument("--software-engines", metavar="BEST,REFERENCE", help="the two engines (default: fastest, slowest)")
    p.add_argument("--format", "-f", choices=("table", "md", "json"), default="table")
    p.set_defaults(func=_cmd_catchup)
