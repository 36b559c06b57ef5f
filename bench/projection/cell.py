"""A simulated serving cell: what `bench run --backend simulated -O projection=serving` records.

`cell_projection(fields)` is the one entry point backends use (the import contract in pyproject.toml allows
`backends.simulated` to import this package's public API and nothing else of it). It validates the cell's
deployment at construction -- model, profile, precision, chips, split, bounds; one-line errors naming the field
-- and `run()` projects it: the `simulation` section of the record, the parameter count and, when nothing fits,
why (the record is then `unavailable`).

The record's `estimate` holds per-chip rates with low/high (the efficiency factors' ranges, widened
log-symmetrically by the serving model's held-out error on published results) and one request's latency
(TTFT + (output - 1) x TPOT), so latency columns have a figure; `per_chip` marks the rates as per chip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from bench.core.stats import log_symmetric_factor

__all__ = ["CellProjection", "cell_projection", "SERVING_CELL_OPTIONS"]

#: The spec options of a serving cell and the ServingQuery field each one sets (the rest come from the spec).
SERVING_CELL_OPTIONS = {
    "chips": "chips",
    "kv_precision": "kv_precision",
    "tpot_slo_ms": "tpot_slo_ms",
    "ttft_slo_ms": "ttft_slo_ms",
    "parallel": "parallel",
    "mtp_acceptance": "mtp_acceptance",
    "overlap": "overlap",
    "engine": "engine",
    "serving_mode": "mode",
    "spec_tokens": "spec_tokens",
    "acceptance_length": "acceptance_length",
    "spec_method": "spec_method",
    "draft_model": "draft_model",
    "search": "search",
    "fixed_batch": "fixed_batch",
}


@dataclass(frozen=True)
class CellProjection:
    """A validated serving deployment of one simulated cell."""

    query: Any  # bench.projection.project.ServingQuery

    def run(self) -> dict[str, Any]:
        """{"simulation": section, "parameters": N, "not_projected": reason or None}."""
        from bench.projection.project import project

        projection = project(self.query)
        serving = projection.to_dict()
        missing = serving["note"] if projection.headline()["output_tokens_per_s_per_chip"] is None else None
        simulation = {
            "profile": projection.device.profile.to_dict(),
            "projection": "serving",
            "fits_device_memory": serving["fits"],
            "memory_note": serving["note"],
            "assumed_figures": serving["assumed_figures"],
            "unverified_figures": serving["unverified_figures"],
            "announced_figures": serving["announced_figures"],
            "cost_model_version": f"serving-{serving['serving_model_version']}",
            "cost_model": serving["method"],
            "mode": "serving",
            "efficiency": serving["efficiency"],
            "estimate": serving_estimate(serving),
            "serving": serving,
            "host_validation": {
                "skipped": "the serving model is validated against published results and this "
                "host by `bench simulate --validate-serving` / `--validate-host`"
            },
            "traced_on": None,
        }
        return {"simulation": simulation, "parameters": projection.arch.total_params, "not_projected": missing}


def cell_projection(fields: Mapping[str, Any]) -> CellProjection:
    """The serving deployment a simulated cell asks for, validated (`fields`: model, profile, precision,
    input_tokens, output_tokens, batch_size and the SERVING_CELL_OPTIONS the cell sets)."""
    from bench.projection.project import ServingQuery, check

    options = {field: fields[k] for k, field in SERVING_CELL_OPTIONS.items() if fields.get(k) is not None}
    fixed = options.pop("fixed_batch", False)
    query = ServingQuery(
        model=fields["model"],
        profile=fields["profile"],
        precision=fields["precision"],
        input_tokens=int(fields["input_tokens"]),
        output_tokens=int(fields["output_tokens"]),
        batch_size=int(fields["batch_size"]) if fixed else None,
        **options,
    )
    check(query)
    return CellProjection(query)


def serving_estimate(serving: Mapping[str, Any]) -> dict[str, Any]:
    """The record's `estimate` of a serving projection (module docstring)."""
    from bench.projection.published import held_out_error

    out_tokens = serving["output_tokens"]
    ttft, tpot = serving["ttft_ms"], serving["tpot_ms"]
    rate = serving["output_tokens_per_s_per_chip"]
    if ttft is None or tpot is None or not rate:
        return {"latency_s": None, "per_chip": True, "new_tokens": out_tokens, "band": None}

    def latency(h: Mapping[str, Any]) -> float | None:
        if h.get("ttft_ms") is None or h.get("tpot_ms") is None:
            return None
        return (h["ttft_ms"] + (out_tokens - 1) * h["tpot_ms"]) / 1e3

    low, high = serving.get("low") or {}, serving.get("high") or {}
    error = held_out_error()
    widen = log_symmetric_factor(error) if error is not None else 1.0
    rate_low, rate_high = low.get("output_tokens_per_s_per_chip"), high.get("output_tokens_per_s_per_chip")
    return {
        "latency_s": latency(serving),
        "ttft_s": ttft / 1e3,
        "tpot_s": tpot / 1e3,
        "new_tokens": out_tokens,
        "per_chip": True,
        "chips": serving["chips"],
        "output_tokens_per_s": rate,
        # at the pessimistic end nothing may meet the bounds: that end's rate is 0
        "output_tokens_per_s_low": rate_low / widen if rate_low else 0.0,
        "output_tokens_per_s_high": rate_high * widen if rate_high else None,
        "validation_error": error,
        "items_per_s": rate / out_tokens,
        "prefill_tokens_per_s": serving["prefill_tokens_per_s_per_chip"],
        "band": {
            "relative": error,
            "factor": widen,
            "low_s": latency(high) / widen if latency(high) else None,
            "high_s": latency(low) * widen if latency(low) else None,
            "from": "the efficiency factors' ranges (low = every factor at its pessimistic end), widened "
            "log-symmetrically by the serving model's held-out median error on published results",
        },
    }
