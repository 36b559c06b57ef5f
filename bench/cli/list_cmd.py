"""`bench list`: workloads, backends, extras and device profiles, with availability here."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench.cli.common import EXIT_OK


def _workload_rows() -> list[dict[str, Any]]:
    from models.catalogue import WORKLOADS
    from models.facts import describe

    rows = []
    for w in WORKLOADS.values():
        facts = describe(w)
        rows.append(
            {
                "name": w.name,
                "aliases": list(w.aliases),
                "task": w.task,
                "family": w.family,
                "max_positions": w.max_positions,
                "image_size": w.image_size,
                "default_new_tokens": w.default_new_tokens,
                "tiny_of": w.tiny_of,
                "mixture_of_experts": w.is_moe,
                "parameters": facts.total_parameters,
                "active_parameters": facts.active_parameters,
                "active_parameters_with_embedding": facts.active_parameters_with_embedding,
                "published_parameters": w.published_parameters,
                "published_active_parameters": w.published_active,
                "weight_bytes": facts.weight_bytes,
                "memory_needed_bytes": facts.memory_needed_bytes,
                "fits_here": facts.fits_here,
                "machine_memory_bytes": facts.machine_memory_bytes,
                "weights_package": w.weights_package,
                "description": w.description,
                "source": w.source,
            }
        )
    return rows


def _cmd_list(args: argparse.Namespace) -> int:
    from backends.registry import backend_class, backend_names

    workloads = _workload_rows()
    backends = []
    for name in backend_names():
        cls = backend_class(name)
        availability = cls.probe()
        backends.append(
            {
                "name": name,
                "available": availability.available,
                "reason": availability.reason,
                "variants": {
                    label: {"available": v.available, "reason": v.reason} for label, v in cls.variants().items()
                },
                "precisions": list(cls.capabilities.precisions),
                "options": list(cls.capabilities.options),
                "simulated": cls.capabilities.simulated,
                "summary": cls.summary,
            }
        )
    from bench.projection.engines import engine_factor, load_engines
    from bench.projection.profiles import load_profiles

    profiles = [p.to_dict() for p in load_profiles().values()]
    engines = [{**e.to_dict(), "fitted": {n: engine_factor(e, n) for n in e.factors}} for e in load_engines().values()]
    extras = _extras()
    if args.format == "json":
        listing = {"workloads": workloads, "backends": backends, "profiles": profiles, "engines": engines}
        print(json.dumps({**listing, "extras": extras}, indent=2))
        return EXIT_OK
    from bench.output.listing import render_listing

    print(render_listing(workloads, backends, profiles, extras, engines), end="")
    return EXIT_OK


def _extras() -> dict[str, dict[str, Any]]:
    """The optional extras and whether they can be used here (import checks only)."""
    from bench.measure.loadgen import loadgen_unavailable_reason
    from bench.runs.ray_executor import ray_unavailable_reason

    found = {}
    for name, summary, reason in (
        (
            "loadgen",
            "MLPerf LoadGen scenarios (--scenario single-stream|multi-stream|server|offline)",
            loadgen_unavailable_reason(),
        ),
        ("ray", "the Ray executor (--executor ray)", ray_unavailable_reason()),
    ):
        found[name] = {"available": reason is None, "reason": reason, "summary": summary}
    return found


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    p_list = sub.add_parser("list", help="workloads and backends (with availability here)")
    p_list.add_argument("--format", choices=("table", "json"), default="table")
    p_list.set_defaults(func=_cmd_list)
