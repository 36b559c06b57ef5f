"""A dispatch-level operator tracer: every aten operator a call runs, with its FLOPs, bytes and dtype, per phase.

`trace_call(prepared)` runs one call of a `PreparedCall` under a TorchDispatchMode. Phases follow the call's own
clock stamps: a generation call stamps after each output token, so phase 0 is the prefill (with the first
token's sampling) and phase k is decode step k; other workloads have one phase. It works on real tensors and on
meta tensors (models too large to run here: shapes propagate, nothing is allocated).

Per operator:
  class  "view" (returns an alias of an input: no kernel, costs nothing), "matmul" (has FLOPs in torch's flop
         counter registry: mm, bmm, addmm, convolution, scaled-dot-product attention), "memory" (every other
         kernel: element-wise, norms, softmax, copies, reductions, embedding lookups)
  flops  from torch.utils.flop_counter's formulas (the same counter as the record's `work`), 0 for other ops
  bytes  every distinct input tensor read once plus every output written once (numel x element size); an
         embedding or index lookup reads only the rows it returns, not its whole table; a mixture-of-experts
         grouped matmul reads only the experts that can have received rows (min(experts, rows) of them)
  dtype  the first floating input's dtype for matmuls, the output's otherwise

Identical operators in a phase are grouped into a digest [(class, dtype, flops, bytes, count), ...], which is
what the cost model reads and what a simulated record keeps.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["OpTracer", "trace_call", "Digest"]

#: (class, dtype, flops, bytes, count)
Digest = list[tuple[str, str, int, int, int]]

_DTYPE_NAMES = {
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.int8: "int8",
    torch.float64: "fp64",
}
_LOOKUPS = {"embedding", "index_select", "index", "gather", "embedding_bag"}


def _dtype_name(dtype: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _is_view(func) -> bool:
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


class OpTracer(TorchDispatchMode):
    """Records one entry per dispatched operator (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        from torch.utils import flop_counter

        from models.work import _register_cpu_attention_formula

        _register_cpu_attention_formula()
        self.registry = flop_counter.flop_registry
        self.phase = 0
        self.ops: list[Counter] = [Counter()]

    def next_phase(self) -> int:
        self.phase += 1
        self.ops.append(Counter())
        return 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func._overloadpacket not in self.registry:
            # composite ops (linear, scaled_dot_product_attention) arrive whole in inference mode: decompose them
            # into the kernels that run, as FlopCounterMode does, so each is seen and costed
            with self:
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = func(*args, **kwargs)
        self.ops[self.phase][self._describe(func, args, kwargs, out)] += 1
        return out

    def _describe(self, func, args, kwargs, out) -> tuple[str, str, int, int]:
        inputs = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if _is_view(func):
            return ("view", _dtype_name(outputs[0].dtype) if outputs else "-", 0, 0)
        packet = func._overloadpacket
        if packet.__name__ == "_grouped_mm" and len(inputs) >= 2 and inputs[1].dim() == 3:
            return self._grouped_mm(inputs, outputs)
        flops = 0
        if packet in self.registry:
            try:
                flops = int(self.registry[packet](*args, **kwargs, out_val=out))
            except Exception:  # a formula that does not accept this overload's arguments
                flops = 0
        written = sum(_nbytes(t) for t in outputs)
        if packet.__name__ in _LOOKUPS:
            read = written + sum(_nbytes(t) for t in inputs if not t.is_floating_point())
        else:
            seen: set[int] = set()
            read = 0
            for t in inputs:
                if id(t) not in seen:
                    seen.add(id(t))
                    read += _nbytes(t)
        floating = [t for t in inputs if t.is_floating_point()]
        if flops > 0:
            return ("matmul", _dtype_name(floating[0].dtype) if floating else "-", flops, read + written)
        dtype = outputs[0].dtype if outputs else (inputs[0].dtype if inputs else torch.float32)
        return ("memory", _dtype_name(dtype), 0, read + written)

    @staticmethod
    def _grouped_mm(inputs, outputs) -> tuple[str, str, int, int]:
        """Mixture-of-experts grouped matmul (no formula in torch's registry): rows (M, K) routed to experts of a
        weight (E, K, N). FLOPs 2 M K N; of the weight, a kernel reads only the experts that received rows: at
        most min(E, M) of E (which ones is data-dependent, unknown on the meta device), so that share is taken."""
        x, w = inputs[0], inputs[1]
        rows, experts = x.shape[0], w.shape[0]
        flops = 2 * rows * w.shape[1] * w.shape[2]
        weight_read = _nbytes(w) * min(experts, rows) // experts
        moved = _nbytes(x) + weight_read + sum(_nbytes(t) for t in outputs) + sum(_nbytes(t) for t in inputs[2:])
        return ("matmul", _dtype_name(x.dtype), flops, moved)

    def digest(self) -> list[Digest]:
        return [[(*key, count) for key, count in phase.items()] for phase in self.ops]


def trace_call(prepared) -> list[Digest]:
    """Trace one call of `prepared`; a digest per phase (prefill, then one per decode step, for generation)."""
    tracer = OpTracer()
    with torch.inference_mode(), tracer:
        prepared.call(tracer.next_phase)
    phases = tracer.digest()
    if len(phases) > 1 and not phases[-1]:  # the stamp after the last token opens an empty phase
        phases = phases[:-1]
    return phases
