"""`bench list`: workloads, backends, extras and device profiles, with availability here."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench.cli.common import EXIT_OK


def _size(count: float) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e9 else f"{count / 1e6:.1f}M"


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
    from bench.projection.profiles import load_profiles

    profiles = [p.to_dict() for p in load_profiles().values()]
    extras = _extras()
    if args.format == "json":
        print(
            json.dumps({"workloads": workloads, "backends": backends, "profiles": profiles, "extras": extras}, indent=2)
        )
        return EXIT_OK
    gib = 1 << 30
    print(
        f"Workloads (memory here: {workloads[0]['machine_memory_bytes'] / gib:.0f} GiB; 'fits' = estimated "
        "need <= that, fp32/bf16):"
    )
    print(f"  {'name':<34} {'task':<14} {'params':>8} {'active':>8} {'bf16 GiB':>9} {'fits':<8} description")
    for w in workloads:
        alias = f" (alias {', '.join(w['aliases'])})" if w["aliases"] else ""
        fits = "/".join("yes" if w["fits_here"][p] else "no" for p in ("fp32", "bf16"))
        print(
            f"  {w['name']:<34} {w['task']:<14} {_size(w['parameters']):>8} {_size(w['active_parameters']):>8} "
            f"{w['weight_bytes']['bf16'] / gib:>9.2f} {fits:<8} {w['description']}{alias}"
        )
    print("\nBackends:")
    for b in backends:
        state = "available" if b["available"] else f"unavailable: {b['reason']}"
        print(
            f"  {b['name']:<12} {b['summary']}\n  {'':<12} {state}; precisions {','.join(b['precisions'])}; "
            f"options {','.join(b['options']) or '-'}"
        )
        for label, v in b["variants"].items():
            print(f"  {'':<12}   {label}: {'available' if v['available'] else 'unavailable: ' + str(v['reason'])}")
    print("\nOptional extras:")
    for name, extra in extras.items():
        state = "available" if extra["available"] else f"unavailable: {extra['reason']}"
        print(f"  {name:<12} {extra['summary']}\n  {'':<12} {state}")
    print(
        "\nDevice profiles for simulation (bench/projection/profiles.toml; --backend simulated --profile NAME; "
        "status: OFF vendor, 3P third party, DER derived, UNV unverified, ASSUMED):"
    )
    print(
        f"  {'name':<14} {'bf16 TFLOPS':>12} {'int8 TOPS':>10} {'memory GB':>10} {'TB/s':>6} {'TDP W':>6} "
        f"{'price USD':>10} {'scale-up GB/s x chips':>22}  device"
    )
    for p in profiles:
        peak = p["peak_tflops"]
        price = p["price_usd"]["value"]
        print(
            f"  {p['key']:<14} {peak['bf16']['value']:>7g} {peak['bf16']['status']:<4} "
            f"{peak['int8']['value']:>6g} {peak['int8']['status']:<3} {p['memory_gb']['value']:>10g} "
            f"{p['bandwidth_tbs']['value']:>6g} {p['tdp_w']['value']:>6g} "
            f"{'-' if price is None else format(price, ',.0f'):>10} {_link(p):>22}  {p['name']}"
        )
    return EXIT_OK


def _link(profile: dict[str, Any]) -> str:
    """Scale-up bandwidth per direction x domain size, for `bench list` ("-" without interconnect figures)."""
    link = profile.get("interconnect")
    if not link:
        return "-"
    return f"{link['scaleup_gbs']['value']:g} x {link['scaleup_domain']['value']:g}"


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
