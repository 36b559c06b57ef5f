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
    engines: Sequence[dict[str, Any]] = (),
) -> str:
    """The five lists as `bench list` prints them."""
    parts = [_workloads(workloads), _backends(backends), _extras(extras), _profiles(profiles), _engines(engines)]
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
        "status: OFF vendor, 3P third party, DER derived, UNV unverified, ASSUMED, ANNOUNCED: not yet shipping):"
    )
    lines.append(
        f"  {'name':<14} {'bf16 TFLOPS':>12} {'int8 TOPS':>10} {'memory GB':>10} {'TB/s':>6} {'TDP W':>6} "
        f"{'price USD':>10} {'scale-up GB/s x chips':>22}  device"
    )
    for p in profiles:
        lines.append(_profile_line(p))
    return "\n".join(lines)


def _peak(p: dict[str, Any], dtype: str, width: int) -> str:
    figure = p["peak_tflops"].get(dtype)
    return f"{'-':>{width}} {'':<3}" if figure is None else f"{figure['value']:>{width}g} {figure['status']:<3}"


def _value(figure: dict[str, Any], spec: str = "g") -> str:
    return "-" if figure["value"] is None else format(figure["value"], spec)


def _profile_line(p: dict[str, Any]) -> str:
    released = p.get("released")
    when = f"  {released['date']}{' ANNOUNCED' if released['status'] == 'ANNOUNCED' else ''}" if released else ""
    return (
        f"  {p['key']:<14} {_peak(p, 'bf16', 7)} {_peak(p, 'int8', 6)} {_value(p['memory_gb']):>10} "
        f"{_value(p['bandwidth_tbs']):>6} {_value(p['tdp_w']):>6} {_value(p['price_usd'], ',.0f'):>10} "
        f"{_link(p):>22}  {p['name']}{when}"
    )


def _engines(engines: Sequence[dict[str, Any]]) -> str:
    if not engines:
        return ""
    lines = [
        "\nServing engines of the serving model (bench/projection/engines.toml; bench simulate --engine NAME, "
        "-O engine=NAME; kernels: x the reference stack's efficiency, overheads: x its fixed costs):",
        f"  {'name':<18} {'device':<6} {'kernels':>8} {'overheads':>9}  {'families':<24} modes",
    ]
    for e in engines:
        fitted = e["fitted"]
        families = e["families"].values()
        modes = [m for m in ("colocated", "disaggregated") if any(f[m] for f in families)]
        reference = " (reference)" if e["reference"] else ""
        lines.append(
            f"  {e['key']:<18} {e['device_kind']:<6} {fitted['kernels']:>8.3g} {fitted.get('overheads', 1.0):>9.3g}  "
            f"{','.join(e['families']):<24} {'+'.join(modes)}  {e['name']} {e['version']}{reference}"
        )
    return "\n".join(lines)
