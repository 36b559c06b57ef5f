"""One vocabulary for what several layers name: data types, device kinds, a workload's shape, a technique.

- Data types: `DTYPE_BYTES` is bytes per element of each precision a spec, a profile or the serving model names
  (int4 is half a byte: packed weights). `PRECISIONS` lists them in that order.
- Device kinds: a chip is a `cpu`, a `gpu` or an `npu`. Profiles, efficiency factors, what a cell occupies while
  it runs (`Capabilities.device`) and the executors' resources all use these three words; a cell that measures a
  server elsewhere occupies nothing here (`remote`).
- Shape: what must be equal for two cells to be compared as the same work -- the workload, batch size, sequence
  length, new tokens, and the `SHAPE_OPTIONS` where a cell sets them (a serving deployment's chips and latency
  bounds). The weights are not part of the shape (they change outputs, not work).
- Technique: what is being compared on one shape -- precision plus the options a backend declares as
  techniques (quantizer, compile, graphs); not settings (threads, a profile: `reference_neutral_options`) and
  not shape options.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from bench.core.spec import BenchmarkSpec

__all__ = ["DTYPE_BYTES", "PRECISIONS", "DEVICE_KINDS", "OCCUPANCIES", "SHAPE_OPTIONS", "shape_of", "technique_of"]

DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}
PRECISIONS: tuple[str, ...] = tuple(DTYPE_BYTES)
DEVICE_KINDS: tuple[str, ...] = ("cpu", "gpu", "npu")
#: What a cell can occupy while it runs: a device of one of the kinds, or nothing here (a remote server).
OCCUPANCIES: tuple[str, ...] = (*DEVICE_KINDS, "remote")


#: Options that are part of a cell's work wherever a backend has them: a serving deployment's size and bounds.
SHAPE_OPTIONS: tuple[str, ...] = ("chips", "tpot_slo_ms", "ttft_slo_ms")


def shape_of(spec: "BenchmarkSpec") -> tuple[Any, ...]:
    """The work a cell does, as a hashable key: workload, batch, sequence length, new tokens, then the values
    of SHAPE_OPTIONS (None where the spec leaves one unset)."""
    return (
        spec.workload,
        spec.batch_size,
        spec.seq_len,
        spec.new_tokens,
        *(spec.option(k, None) for k in SHAPE_OPTIONS),
    )


def technique_of(spec: "BenchmarkSpec", technique_options: Iterable[tuple[str, Any]]) -> str:
    """A technique's name: the precision, then `key=value` for each technique option, in the spec's order."""
    return " ".join([spec.precision, *(f"{k}={v}" for k, v in technique_options)])
