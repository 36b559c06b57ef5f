"""A projection as plain data (`Projection.to_dict()`): what `bench simulate --format json` prints and simulated
serving cells record under `simulation.serving`. Every key is documented in docs/SERVING.md."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["projection_dict"]


def _per(headline: dict[str, Any], figure: float | None) -> dict[str, Any] | None:
    if not figure or math.isnan(figure):
        return None
    return {k: (v / figure if v is not None else None) for k, v in headline.items() if "per_s" in k}


def _utilisation(step) -> tuple[float, float]:
    return step.flops / step.time_s / step.peak_flops, step.bytes / step.time_s / step.bandwidth


def _common(point, chips: int) -> dict[str, Any]:
    mfu, mbu = _utilisation(point.step)
    return {
        "parallelism": point.parallel.to_dict(),
        "overlap": point.options.overlap,
        "tokens_per_s_per_chip": point.tokens_per_s_per_chip,
        "tokens_per_s_cluster": point.tokens_per_s_per_chip * chips,
        "step_ms": point.step.time_s * 1e3,
        "mfu": mfu,
        "mbu": mbu,
        "breakdown": point.step.breakdown(),
        "memory": point.memory.to_dict(),
    }


def _decode(d, chips: int) -> dict[str, Any]:
    return {**_common(d, chips), "batch_per_replica": d.batch, "batch_per_chip": d.batch_per_chip,
            "tpot_ms": d.tpot_s * 1e3}  # fmt: skip


def _prefill(p, chips: int) -> dict[str, Any]:
    return {**_common(p, chips), "prompts_per_replica": p.batch, "ttft_ms": p.ttft_s * 1e3}


def _colocated(c, chips: int) -> dict[str, Any]:
    return {
        **_common(c, chips),
        "output_tokens_per_s_per_chip": c.tokens_per_s_per_chip,
        "batch_per_replica": c.batch,
        "batch_per_chip": c.batch_per_chip,
        "prefill_tokens_per_step": c.prefill_tokens_per_step,
        "tpot_ms": c.tpot_s * 1e3,
        "ttft_ms": c.ttft_s * 1e3,
    }


def _engine(proj) -> dict[str, Any]:
    resolved = proj.resolved
    engine, dep = resolved.engine, resolved.deployment
    from bench.projection.engines import ENGINE_FACTORS, engine_factor

    return {
        "key": engine.key,
        "name": engine.name,
        "version": engine.version,
        "reference": engine.reference,
        **{name: engine_factor(engine, name) for name in ENGINE_FACTORS},
        "factors": {name: engine.factors[name].to_dict() for name in ENGINE_FACTORS},
        "max_batch": engine.max_batch,
        "chunk_tokens": engine.chunk_tokens,
        "search": proj.query.search,
        "capabilities": dep.caps.to_dict() if dep.caps is not None else "unconstrained (--search any: a what-if)",
    }


def projection_dict(proj) -> dict[str, Any]:
    """The projection's figures and provenance (module docstring)."""
    from bench.projection.project import SERVING_MODEL_VERSION

    q, d, p, c = proj.query, proj.decode, proj.prefill, proj.colocated
    dep, mode = proj.resolved.deployment, proj.resolved.mode
    headline = proj.headline()
    lead = (c if mode == "colocated" else d) or d or c
    spec = dep.options.speculation
    out: dict[str, Any] = {
        "simulated": True,
        "model": q.model,
        "architecture": proj.arch.name,
        "family": proj.resolved.family,
        "profile": proj.device.key,
        "chips": q.chips,
        "engine": _engine(proj),
        "mode": mode,
        "precision": proj.precision.to_dict(),
        "input_tokens": q.input_tokens,
        "output_tokens": q.output_tokens,
        "tpot_slo_ms": q.tpot_slo_ms,
        "ttft_slo_ms": q.ttft_slo_ms,
        "fits": proj.fits,
        "note": proj.note,
        **headline,
        "batch_per_chip": lead.batch_per_chip if lead is not None and hasattr(lead, "batch_per_chip") else None,
        "parallelism": lead.parallel.to_dict() if lead else None,
        "breakdown": lead.step.breakdown() if lead else None,
        "decode": _decode(d, q.chips) if d else None,
        "prefill": _prefill(p, q.chips) if p else None,
        "colocated": _colocated(c, q.chips) if c else None,
        "speculation": spec.to_dict() if spec else None,
        "mtp_acceptance": q.mtp_acceptance,
        "overlap": lead.options.overlap_for(proj.arch, lead.parallel) if lead else None,
        "low": proj.low,
        "high": proj.high,
        "per_watt": _per(headline, proj.device.tdp_w),
        "per_1000_usd": _per(headline, proj.device.price_usd / 1e3 if proj.device.price_usd else None),
        "assumed_figures": proj.assumed,
        "unverified_figures": proj.unverified,
        "announced_figures": proj.announced,
        "efficiency": proj.efficiency.to_dict(),
        "serving_model_version": SERVING_MODEL_VERSION,
        "method": "analytical serving model (bench/projection); simulated, not measured",
    }
    return out
