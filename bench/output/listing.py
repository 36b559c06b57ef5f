"""`bench list` as text: workloads with their size and whether they fit here, backends with availability,
optional extras, and device profiles with the status of their headline figures."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["render_listing"]


def _size(count: float) -> str:
    return f"{count / 1e9:.2f}B" if count >= 1e9 else f"{count / 1e6:.1f}M"


def _link(profile: dict[str, Any]) -> str:
    """Scale-up bandwidth per direction x domain size, for `bench list` ("-" without interconnect figures)."""
    link = profile.get("interconnect")
    if not link:
        return "-"
    return f"{link['scaleup_gbs']['value']:g} x {link['scaleup_domain']['value']:g}"


def render_listing(
    workloads: Sequence[dict[str, Any]],
    backends: Sequence[dict[str, Any]],
    profiles: Sequence[dict[str, Any]],
    extras: dict[str, dict[str, Any]],
) -> str:
    """The four lists as `bench list` prints them."""
    parts = [_workloads(workloads), _backends(backends), _extras(extras), _profiles(profiles)]
    return "\n".join(parts) + "\n"


_GIB = 1 << 30


def _workloads(workloads: Sequence[dict[str, Any]]) -> str:
    lines: list[str] = []
    gib = _GIB
    lines.append(
        f"Workloads (memory here: {workloads[0]['machine_memory_bytes'] / gib:.0f} GiB; 'fits' = estimated "
        "need <= that, fp32/bf16):"
    )
    lines.append(f"  {'name':<34} {'task':<14} {'params':>8} {'active':>8} {'bf16 GiB':>9} {'fits':<8} description")
    for w in workloads:
        alias = f" (alias {', '.join(w['aliases'])})" if w["aliases"] else ""
        fits = "/".join("yes" if w["fits_here"][p] else "no" for p in ("fp32", "bf16"))
        lines.append(
            f"  {w['name']:<34} {w['task']:<14} {_size(w['parameters']):>8} {_size(w['active_parameters']):>8} "
            f"{w['weight_bytes']['bf16'] / gib:>9.2f} {fits:<8} {w['description']}{alias}"
        )
    return "\n".join(lines)


def _backends(backends: Sequence[dict[str, Any]]) -> str:
    lines = ["\nBackends:"]
    for b in backends:
        state = "available" if b["available"] else f"unavailable: {b['reason']}"
        lines.append(
            f"  {b['name']:<12} {b['summary']}\n  {'':<12} {state}; precisions {','.join(b['precisions'])}; "
            f"options {','.join(b['options']) or '-'}"
        )
        for label, v in b["variants"].items():
            lines.append(
                f"  {'':<12}   {label}: {'available' if v['available'] else 'unavailable: ' + str(v['reason'])}"
            )
    return "\n".join(lines)


def _extras(extras: dict[str, dict[str, Any]]) -> str:
    lines = ["\nOptional extras:"]
    for name, extra in extras.items():
        state = "available" if extra["available"] else f"unavailable: {extra['reason']}"
        lines.append(f"  {name:<12} {extra['summary']}\n  {'':<12} {state}")
    return "\n".join(lines)


def _profiles(profiles: Sequence[dict[str, Any]]) -> str:
    lines: list[str] = []
    lines.append(
        "\nDevice profiles for simulation (bench/projection/profiles.toml; --backend simulated --profile NAME; "
        "status: OFF vendor, 3P third party, DER derived, UNV unverified, ASSUMED):"
    )
    lines.append(
        f"  {'name':<14} {'bf16 TFLOPS':>12} {'int8 TOPS':>10} {'memory GB':>10} {'TB/s':>6} {'TDP W':>6} "
        f"{'price USD':>10} {'scale-up GB/s x chips':>22}  device"
    )
    for p in profiles:
        peak = p["peak_tflops"]
        price = p["price_usd"]["value"]
        lines.append(
            f"  {p['key']:<14} {peak['bf16']['value']:>7g} {peak['bf16']['status']:<4} "
            f"{peak['int8']['value']:>6g} {peak['int8']['status']:<3} {p['memory_gb']['value']:>10g} "
            f"{p['bandwidth_tbs']['value']:>6g} {p['tdp_w']['value']:>6g} "
            f"{'-' if price is None else format(price, ',.0f'):>10} {_link(p):>22}  {p['name']}"
        )
    return "\n".join(lines)
