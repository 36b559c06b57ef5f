"""What a measured cell records besides its timings, found in the worker: whether the model fits the device,
the work per call (counted and analytic FLOPs, minimum bytes) and the deviation from the fp32 CPU reference."""

from __future__ import annotations

from typing import Any

__all__ = ["accuracy", "does_not_fit", "is_reference", "work_per_call"]


def does_not_fit(workload, spec, backend) -> str | None:
    """Why the model cannot fit the device's free memory (checked on the meta device, before building), or None."""
    from models.facts import count_parameters, memory_needed_bytes

    available = backend.available_memory_bytes()
    if available is None:
        return None
    total, _, _ = count_parameters(workload)
    needed = memory_needed_bytes(total, backend.build_precision(spec))
    if needed <= available:
        return None
    gib = 1 << 30
    return (
        f"does not fit: {workload.name} at {spec.precision} needs ~{needed / gib:.1f} GiB "
        f"({total / 1e9:.2f}B parameters + headroom), {available / gib:.1f} GiB free on {spec.backend}"
    )


def work_per_call(workload, spec, prepared, backend) -> dict[str, Any]:
    """FLOPs counted on one extra (untimed) call, the analytic FLOPs and the minimum bytes per call."""
    from bench.core.calls import make_stamp
    from bench.core.vocabulary import DTYPE_BYTES
    from models.facts import count_parameters
    from models.work import Shape, analytic_flops, count_flops, min_bytes

    shape = Shape(spec.batch_size, spec.seq_len, spec.new_tokens)
    total, active, embedding = count_parameters(workload)
    element_bytes = DTYPE_BYTES[spec.precision]
    counted = None if prepared.uncountable else count_flops(prepared.call, make_stamp(backend.synchronize))
    return {
        "flops_per_call": counted,
        "flops_per_call_analytic": analytic_flops(workload.config, shape),
        "min_bytes_per_call": min_bytes(workload.config, shape, total, active, embedding, element_bytes)
        if workload.config["model_type"] != "resnet"
        else None,
        "flop_counter": f"not counted: {prepared.uncountable}"
        if prepared.uncountable
        else "torch.utils.flop_counter.FlopCounterMode (matmul, conv, attention)",
    }


def is_reference(spec, backend_cls) -> bool:
    """Whether this cell *is* the accuracy reference (fp32 eager on the reference runtime): nothing to compare."""
    return backend_cls.is_reference(spec)


def accuracy(workload, spec, backend_cls, output, view=None) -> dict[str, Any] | None:
    """Deviation from the fp32 CPU reference; None for the reference itself or a workload without output.
    `view` selects what is compared from the reference's output (the same view the output went through).

    The reference is a second model in this process, so it is built only when it fits the free memory; if it
    does not, or it fails, the record says why instead of the measurement being lost."""
    import psutil

    from models.accuracy import REFERENCE, deviation, reference_output
    from models.facts import count_parameters, memory_needed_bytes

    if output is None or is_reference(spec, backend_cls):
        return None
    needed = memory_needed_bytes(count_parameters(workload)[0], "fp32")
    free = psutil.virtual_memory().available
    if needed > free:
        return {
            "reference": REFERENCE,
            "skipped": f"the fp32 reference needs ~{needed / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free",
        }
    try:
        reference = reference_output(workload, spec)
        return deviation(output, view(reference) if view else reference, logits=workload.task != "encode")
    except Exception as exc:  # the measurement stands; say why there is no deviation
        return {"reference": REFERENCE, "skipped": f"{type(exc).__name__}: {str(exc)[:200]}"}
