"""One serving projection: a model on N chips of a device, served by an engine, at a precision, under latency
bounds -- the chosen configuration of each serving mode the engine runs (disaggregated decode and prefill, and
colocated), its figures per chip, per cluster, per watt and per dollar, where a step's time goes, and low/high
figures from the efficiency factors' and the engine factor's ranges. Simulated, and labelled so in every output.

The headline is the query's mode: colocated output tokens/s per chip (with its TTFT and TPOT) where the engine
serves prefill and decode on the same chips, disaggregated decode output tokens/s per decode chip otherwise.
`project()` is what `bench simulate --model ... --profile ...` prints and what `--backend simulated` records for
generative workloads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from bench.projection.arch import Arch
from bench.projection.deployment import Device, Parallel, Precision
from bench.projection.efficiency import Efficiency
from bench.projection.memory import weight_bytes_per_chip
from bench.projection.query import MAX_CHIPS, Resolved, ServingQuery, arch_of_model, resolve
from bench.projection.search import (
    ColocatedPoint,
    DecodePoint,
    PrefillPoint,
    search_colocated,
    search_decode,
    search_prefill,
)

__all__ = [
    "ServingQuery",
    "Projection",
    "project",
    "check",
    "resolve",
    "served_rate",
    "arch_of_model",
    "MAX_CHIPS",
    "SERVING_MODEL_VERSION",
]

#: The serving model's version in every projection (and in simulated records' `cost_model_version`).
SERVING_MODEL_VERSION = 2


@dataclass
class Points:
    """The operating points of one projection: disaggregated decode and prefill, colocated."""

    decode: DecodePoint | None = None
    prefill: PrefillPoint | None = None
    colocated: ColocatedPoint | None = None


@dataclass
class Projection:
    query: ServingQuery
    resolved: Resolved
    points: Points
    fits: bool
    note: str
    low: dict[str, Any] = field(default_factory=dict)
    high: dict[str, Any] = field(default_factory=dict)
    assumed: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    announced: list[str] = field(default_factory=list)

    @property
    def arch(self) -> Arch:
        return self.resolved.deployment.arch

    @property
    def device(self) -> Device:
        return self.resolved.deployment.device

    @property
    def precision(self) -> Precision:
        return self.resolved.deployment.precision

    @property
    def efficiency(self) -> Efficiency:
        return self.resolved.deployment.efficiency

    @property
    def decode(self) -> DecodePoint | None:
        return self.points.decode

    @property
    def prefill(self) -> PrefillPoint | None:
        return self.points.prefill

    @property
    def colocated(self) -> ColocatedPoint | None:
        return self.points.colocated

    def headline(self) -> dict[str, Any]:
        q = self.query
        return headline_of(self.points, self.resolved.mode, q.input_tokens, q.output_tokens)

    def to_dict(self) -> dict[str, Any]:
        from bench.projection.summary import projection_dict

        return projection_dict(self)


def served_rate(points: Points, mode: str, input_tokens: int, output_tokens: int) -> float | None:
    """Output tokens/s per chip of the whole deployment, prefill included: the colocated rate, or for
    disaggregated serving the decode and prefill instances in the ratio that keeps them balanced --
    1 / (1/decode + (input/output)/prefill), each phase's tokens/s per chip of that phase."""
    d, p, c = points.decode, points.prefill, points.colocated
    if mode == "colocated":
        return c.tokens_per_s_per_chip if c else None
    if not d or not p or not d.tokens_per_s_per_chip or not p.tokens_per_s_per_chip:
        return None
    return 1.0 / (1.0 / d.tokens_per_s_per_chip + (input_tokens / output_tokens) / p.tokens_per_s_per_chip)


def headline_of(points: Points, mode: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """The figures every output leads with: output tokens/s per chip in the query's mode (per decode chip when
    disaggregated), the same with the prefill chips counted (`served_...`), and each phase's."""
    d, p, c = points.decode, points.prefill, points.colocated
    headline = c.tokens_per_s_per_chip if mode == "colocated" and c else (d.tokens_per_s_per_chip if d else None)
    return {
        "output_tokens_per_s_per_chip": headline,
        "served_output_tokens_per_s_per_chip": served_rate(points, mode, input_tokens, output_tokens),
        "decode_tokens_per_s_per_chip": d.tokens_per_s_per_chip if d else None,
        "prefill_tokens_per_s_per_chip": p.tokens_per_s_per_chip if p else None,
        "colocated_tokens_per_s_per_chip": c.tokens_per_s_per_chip if c else None,
        "tpot_ms": (c.tpot_s if mode == "colocated" and c else d.tpot_s if d else math.nan) * 1e3
        if (c and mode == "colocated") or d
        else None,
        "ttft_ms": (c.ttft_s if mode == "colocated" and c else p.ttft_s if p else math.nan) * 1e3
        if (c and mode == "colocated") or p
        else None,
    }


def check(query: ServingQuery) -> None:
    """Everything about `query` that can be refused without projecting it (bench.projection.query.resolve)."""
    resolve(query)


def _search(query: ServingQuery, resolved: Resolved) -> Points:
    dep, caps, mode = resolved.deployment, resolved.deployment.caps, resolved.mode
    tpot = query.tpot_slo_ms / 1e3 if query.tpot_slo_ms else None
    ttft = query.ttft_slo_ms / 1e3 if query.ttft_slo_ms else None
    chips, i, o, par = query.chips, query.input_tokens, query.output_tokens, resolved.parallel
    points = Points()
    every_mode = caps is None and query.mode is None  # --search any without a mode: both modes, for comparison
    if mode == "disaggregated" or every_mode or (caps is not None and caps.disaggregated):
        points.decode = search_decode(dep, chips, i, o, tpot, query.batch_size, par)
        prefill_dep = replace(dep, options=replace(dep.options, speculation=None))
        points.prefill = search_prefill(prefill_dep, chips, i, ttft, None, par)
    if mode == "colocated" or every_mode or (caps is not None and caps.colocated):
        points.colocated = search_colocated(dep, chips, i, o, tpot, ttft, query.batch_size, par)
    return points


def project(
    query: ServingQuery,
    efficiency: Efficiency | None = None,
    bands: bool = True,
    device: Device | None = None,
    engine_factors: Mapping[str, float] | None = None,
    end: str = "central",
) -> Projection:
    """The serving projection of `query`. `device` replaces the profile's chip (a hybrid of two profiles, for the
    catch-up's hardware split); `efficiency` replaces the device kind's silicon factors; `engine_factors` replaces
    the engine's factors (kernels, overheads); `end` takes every factor at an end of its range ("low", "high")."""
    resolved = resolve(query, efficiency, device, end=end, engine_factors=engine_factors)
    points = _search(query, resolved)
    fits, note = _fit_note(query, resolved, points)
    proj = Projection(query, resolved, points, fits, note)
    profile = resolved.deployment.device.profile
    if profile is not None:
        proj.assumed = profile.figures_with_status("ASSUMED")
        proj.unverified = profile.figures_with_status("UNV")
        proj.announced = profile.figures_with_status("ANNOUNCED")
    if bands and fits:
        for end in ("low", "high"):
            at_end = resolve(query, efficiency, device, end=end)
            setattr(
                proj, end, headline_of(_search(query, at_end), resolved.mode, query.input_tokens, query.output_tokens)
            )
    return proj


def _fit_note(query: ServingQuery, resolved: Resolved, points: Points) -> tuple[bool, str]:
    headline = headline_of(points, resolved.mode, query.input_tokens, query.output_tokens)[
        "output_tokens_per_s_per_chip"
    ]
    if headline is not None:
        return True, "fits"
    dep = resolved.deployment
    arch, precision, device = dep.arch, dep.precision, dep.device
    usable = device.memory_bytes * dep.efficiency.memory_usable  # the weights alone against the whole budget
    total_weights = weight_bytes_per_chip(arch, precision, Parallel())
    spread = weight_bytes_per_chip(arch, precision, Parallel(tp=query.chips, ep=query.chips if arch.moe_layers else 1))
    gb = 1e9
    if spread > usable:
        needed = math.ceil(total_weights / usable)
        return False, (
            f"does not fit: {arch.name} weights at {precision.weights} are {total_weights / gb:,.0f} GB; "
            f"spread over {query.chips} chip(s) that is {spread / gb:,.1f} GB per chip, more than the "
            f"{usable / gb:,.1f} GB usable of {device.key}'s {device.memory_bytes / gb:g} GB; at least "
            f"{needed} chips are needed for the weights alone, more for the KV cache"
        )
    bounds = ", ".join(f"{k} <= {v:g} ms" for k, v in (("TPOT", query.tpot_slo_ms), ("TTFT", query.ttft_slo_ms)) if v)
    return False, (
        f"no {resolved.mode} configuration of engine {resolved.engine.key} on {query.chips} chip(s) of {device.key} "
        "fits memory" + (f" and meets {bounds}" if bounds else "") + " (a single request's KV cache and activations "
        "may not fit beside the weights, or the bound is below the fastest step)"
    )
