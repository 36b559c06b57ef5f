"""Simulated devices. Two projections, chosen per cell by the option `projection`:

- `serving` (the default for generate workloads): the analytical serving model (bench/projection): the model
  on `chips` chips of the profile, batched to the TPOT/TTFT bounds, with parallelism and collectives; the cell's
  seq_len is the prompt, new_tokens the output length. No host run; figures per chip, labelled simulated.
- `trace` (the default for other workloads, and "what this exact eager code costs"): a call traced on this host
  (or on the meta device), projected onto a device profile, as follows.

The trace path is `backends.trace_projection`; the serving path is the projection layer's one entry point for
backends, `bench.projection.cell_projection`. No sample distribution is invented: a simulated record has no `measurement`, only `simulation` (and the host's
own measured median, inside `simulation.host_validation`). Outputs for the accuracy guard come from the host run
when it ran at the spec's precision.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from backends.base import Availability, Capabilities, OptionSpec, SimulationBackend, SimulationContext, SimulationResult
from bench.core.errors import UsageError
from bench.projection import cell_projection, get_profile, load_profiles

if TYPE_CHECKING:
    from bench.core.settings import MeasureSettings
    from bench.core.spec import BenchmarkSpec
    from models.base import Workload

__all__ = ["SimulatedBackend", "SimulationResult", "SERVING_OPTIONS", "SIMULATED_SETTINGS", "projection_of"]


#: Options of the serving projection (shared by every simulated backend).
SERVING_OPTIONS = {
    "projection": OptionSpec(
        str,
        "serving (analytical serving model; default for generate workloads) or trace "
        "(this host's eager call projected; default otherwise)",
        choices=("serving", "trace"),
    ),
    "chips": OptionSpec(int, "serving: chips in the deployment", minimum=1, default=1),
    "tpot_slo_ms": OptionSpec(float, "serving: TPOT bound in ms (decode batch searched up to it)", minimum=1e-3),
    "ttft_slo_ms": OptionSpec(float, "serving: TTFT bound in ms", minimum=1e-3),
    "parallel": OptionSpec(str, "serving: fixed split, e.g. tp=8,ep=32 (default: searched)"),
    "mtp_acceptance": OptionSpec(float, "serving: multi-token prediction with this acceptance rate", minimum=0.0),
    "overlap": OptionSpec(bool, "serving: two-micro-batch overlap on/off (default: searched)"),
    "kv_precision": OptionSpec(str, "serving: KV-cache precision", choices=("bf16", "fp16", "fp8", "int8", "fp32")),
    "engine": OptionSpec(str, "serving: engine (bench list shows them; default: the best published stack)"),
    "serving_mode": OptionSpec(
        str,
        "serving: prefill and decode on the same chips or on separate instances (default: colocated where "
        "the engine runs it)",
        choices=("colocated", "disaggregated"),
    ),
    "spec_tokens": OptionSpec(int, "serving: speculative decoding with K draft tokens per step", minimum=1),
    "acceptance_length": OptionSpec(float, "serving: tokens emitted per target step (1 <= L <= K + 1)", minimum=1.0),
    "spec_method": OptionSpec(str, "serving: drafter", choices=("mtp", "eagle3", "draft")),
    "draft_model": OptionSpec(str, "serving: with spec_method=draft, the catalogue model that drafts"),
    "search": OptionSpec(
        str,
        "serving: engine (only configurations the engine runs) or any (every split; a what-if)",
        choices=("engine", "any"),
        default="engine",
    ),
    "fixed_batch": OptionSpec(
        bool, "serving: use --batch-size as the decode batch per replica instead of searching it", default=False
    ),
}
#: Options of a simulated cell that say where and how it is projected, not which technique it compares.
SIMULATED_SETTINGS = ("profile", "projection", "parallel", "fixed_batch", "search")


def serving_fields(spec: "BenchmarkSpec", workload: "Workload", profile_key: str) -> dict[str, Any]:
    """What a serving cell asks the projection for: seq_len is the prompt, new_tokens the output length."""
    return {
        "model": workload.name,
        "profile": profile_key,
        "precision": spec.precision,
        "input_tokens": int(spec.seq_len or 1),
        "output_tokens": int(spec.new_tokens or workload.default_new_tokens or 1),
        "batch_size": spec.batch_size,
        **{k: v for k, v in spec.options if k in SERVING_OPTIONS and k != "projection"},
    }


def projection_of(spec: "BenchmarkSpec", workload: "Workload | None") -> str:
    """Which projection a simulated cell uses: the option, else serving for generate workloads."""
    chosen = spec.option("projection", None)
    if chosen:
        return str(chosen)
    return "serving" if workload is not None and workload.generates else "trace"


class SimulatedBackend(SimulationBackend):
    name: ClassVar[str] = "simulated"
    libraries: ClassVar[tuple[str, ...]] = ("torch", "transformers")
    in_wildcard: ClassVar[bool] = False  # needs --profile; `ascend` (below) is the wildcard's simulated device
    summary: ClassVar[str] = "any device profile, projected from a call traced on this host (labelled simulated)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("fp32", "bf16", "fp16", "int8", "fp8", "int4"),
        kind="simulated",
        loadgen=False,
        reference_neutral_options=SIMULATED_SETTINGS,
        options={
            "profile": OptionSpec(str, "device profile (bench list shows them; --profile NAME)"),
            "mode": OptionSpec(
                str,
                "trace projection: execution mode the overheads assume",
                choices=("eager", "graph"),
                default="eager",
            ),
            **SERVING_OPTIONS,
        },
    )

    @classmethod
    def probe(cls) -> Availability:
        import importlib.util

        if importlib.util.find_spec("torch") is None:  # found, not imported: probing stays cheap
            return Availability(False, "torch is not installed (needed to trace)")
        return Availability(True)

    @classmethod
    def profile_key(cls, spec: "BenchmarkSpec") -> str | None:
        return spec.option("profile", cls.capabilities.options["profile"].default)

    @classmethod
    def validate_spec(cls, spec: "BenchmarkSpec", workload: "Workload | None" = None) -> None:
        super().validate_spec(spec, workload)
        key = cls.profile_key(spec)
        if key is None:
            raise UsageError(
                f"options.profile: missing; backend {cls.name} needs --profile NAME, one of "
                f"{', '.join(load_profiles())}"
            )
        get_profile(str(key))
        if workload is None:
            return
        if projection_of(spec, workload) == "serving":
            if not workload.generates:
                raise UsageError(
                    f"options.projection: 'serving' is not allowed for {workload.name} (not a generate "
                    "workload); expected trace"
                )
            cell_projection(serving_fields(spec, workload, str(key)))
        else:
            serving_only = [k for k, _ in spec.options if k in SERVING_OPTIONS and k not in ("projection",)]
            if spec.precision in ("fp8", "int4") or serving_only:
                what = (
                    f"precision {spec.precision}" if spec.precision in ("fp8", "int4") else f"options.{serving_only[0]}"
                )
                raise UsageError(
                    f"{what}: not allowed with the trace projection (it traces this host's eager "
                    "call); expected -O projection=serving on a generate workload"
                )

    @classmethod
    def worker_environment(cls, spec: "BenchmarkSpec") -> dict[str, str]:
        from bench.core.environment import usable_cpu_count

        threads = str(usable_cpu_count())
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

    def __init__(self, spec: "BenchmarkSpec") -> None:
        self.spec = spec
        self.profile = get_profile(str(self.profile_key(spec)))
        self.mode = str(spec.option("mode", "eager"))  # torch (trace path only) is imported when it is needed

    def device_info(self) -> dict[str, Any]:
        from backends.runtime import CpuRuntime

        return {
            "type": "simulated",
            "name": f"{self.profile.name} (simulated)",
            "profile": self.profile.key,
            "driver": None,
            "host": CpuRuntime().device_info(),
        }

    def thread_info(self) -> dict[str, Any]:
        from bench.core.environment import usable_cpu_count

        # what the trace path sets before it builds anything (the serving path runs no torch at all)
        return {"torch_intra_op": usable_cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}

    # -- simulation ------------------------------------------------------------------------------------------

    def simulate(
        self,
        workload: "Workload",
        spec: "BenchmarkSpec",
        settings: "MeasureSettings",
        context: SimulationContext,
    ) -> SimulationResult:
        if projection_of(spec, workload) == "serving":
            return self._simulate_serving(workload, spec)
        from backends.trace_projection import simulate_trace

        return simulate_trace(self.profile, self.mode, workload, spec, settings, context)

    def _simulate_serving(self, workload: "Workload", spec: "BenchmarkSpec") -> SimulationResult:
        """The serving model's projection (no host run, no weights)."""
        cell = cell_projection(serving_fields(spec, workload, self.profile.key)).run()
        simulation = cell["simulation"]
        facts = {
            "class": None,
            "parameters": cell["parameters"],
            "dtype": spec.precision,
            "technique": f"simulated {self.profile.key} {spec.precision} serving on "
            f"{simulation['serving']['chips']} chip(s)",
        }
        work = {
            "flops_per_call": None,
            "flops_per_call_analytic": None,
            "min_bytes_per_call": None,
            "flop_counter": "not counted: analytical serving model (per-step FLOPs in simulation.serving)",
        }
        note = "serving projection: no outputs to compare"
        return SimulationResult(simulation, facts, work, None, note, cell["not_projected"])
