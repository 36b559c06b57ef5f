"""The PyTorch adapters, over a `DeviceRuntime`: `cpu` (host CPU) and `cuda` (NVIDIA GPU).

`TorchBackend` holds everything torch-specific that does not depend on the device: precision -> dtype, the
techniques applied to the built model, inference mode. The device-specific part is the runtime
(backends/runtime.py); an Ascend NPU adapter is the same class over `NpuRuntime`.

Techniques (all part of the spec, so a sweep over techniques is an ordinary sweep):
  precision bf16/fp16    the model is built at that dtype (weights and activations)
  precision int8 (CPU)   dynamic quantization of every nn.Linear: int8 weights, activations quantized per call
                         (option `quantizer`: "torch.ao", the default, or "torchao" when installed; see below)
  option compile         torch.compile with the given mode ("default", "reduce-overhead", "max-autotune");
                         the first call (compilation) runs in prepare, outside timing, and its time is recorded
  option attn            transformers' attention implementation ("eager", "sdpa", "flash_attention_2")
  option graphs (CUDA)   capture the call in a CUDA graph and time its replay (fixed-shape workloads only)
  option threads (CPU)   intra-op threads

Why torch.ao for int8 on the CPU. torch.ao.quantization is deprecated in favour of torchao, but on this
project's CPU (2-core AMD EPYC, torch 2.13) torch.ao's dynamic int8 Linear (fbgemm/x86 kernels) ran bert-base
b1 s128 in 54 ms against torchao's Int8DynamicActivationInt8WeightConfig in eager mode at 100 ms (fp32: 175 ms),
because torchao's CPU path expects torch.compile to fuse it. So torch.ao is the default while torch ships it;
`quantizer=torchao` selects torchao, and a torch without torch.ao makes int8 cells `unavailable` with the reason.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, ClassVar, ContextManager

from backends.base import Availability, Capabilities, MeasuredBackend, OptionSpec, PreparedCall, Telemetry
from backends.runtime import CpuRuntime, CudaRuntime, DeviceRuntime
from bench.core.environment import max_threads

if TYPE_CHECKING:
    from bench.core.spec import BenchmarkSpec
    from models.base import Workload

__all__ = ["TorchBackend", "TorchCpuBackend", "TorchCudaBackend", "torch_dtype", "COMPILE_MODES", "ATTN_OPTION"]

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
QUANTIZERS = ("torch.ao", "torchao")

_COMPILE = OptionSpec(str, "torch.compile mode (none: eager)", choices=COMPILE_MODES, default="none")
#: transformers' attention implementations every torch device has (CUDA adds flash_attention_2)
ATTN_OPTION = OptionSpec(str, "attention implementation (default: transformers' choice)", choices=("eager", "sdpa"))


def torch_dtype(precision: str):
    """The dtype a model is built at: int8 models are built at fp32 and then quantized."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}[precision]


def _quantizer_missing(quantizer: str) -> str | None:
    """Why int8 dynamic quantization with `quantizer` cannot run here, or None."""
    import importlib.util
    from pathlib import Path

    if quantizer == "torchao":
        if importlib.util.find_spec("torchao") is None:
            return "quantizer torchao: torchao is not installed; pip install torchao"
        return None
    found = importlib.util.find_spec("torch")  # the package's location only: torch itself is not imported
    if found is None or not found.origin or not (Path(found.origin).parent / "ao" / "quantization").is_dir():
        return "quantizer torch.ao: this torch no longer ships torch.ao.quantization; use quantizer=torchao"
    return None


def quantize_int8_dynamic(model, quantizer: str):
    """Dynamic int8 quantization of every nn.Linear, in place; returns the model to call."""
    import torch

    if quantizer == "torchao":
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(model, Int8DynamicActivationInt8WeightConfig())
        return model
    with warnings.catch_warnings():  # its deprecation notice would otherwise print once per worker
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


class TorchBackend(MeasuredBackend):
    """PyTorch on one device runtime; subclasses declare the device, precisions and options."""

    runtime: DeviceRuntime
    libraries: ClassVar[tuple[str, ...]] = ("torch", "transformers", "safetensors", "torchao", "nvidia-ml-py")

    def __init__(self, spec: "BenchmarkSpec", runtime: DeviceRuntime) -> None:
        self.spec = spec
        self.runtime = runtime

    @classmethod
    def availability(cls, spec: "BenchmarkSpec") -> Availability:
        found = cls.probe()
        if found.available and spec.precision == "int8":
            missing = _quantizer_missing(str(spec.option("quantizer", "torch.ao")))
            if missing:
                return Availability(False, missing)
        return found

    @classmethod
    def variants(cls) -> dict[str, Availability]:
        if "quantizer" not in cls.capabilities.options or not cls.probe().available:
            return {}
        out = {}
        for quantizer in QUANTIZERS:
            missing = _quantizer_missing(quantizer)
            out[f"quantizer={quantizer}"] = Availability(missing is None, missing)
        return out

    @classmethod
    def validate_spec(cls, spec: "BenchmarkSpec", workload: "Workload | None" = None) -> None:
        super().validate_spec(spec, workload)
        from bench.core.errors import UsageError

        if spec.option("graphs") and workload is not None and workload.generates:
            raise UsageError(
                f"options.graphs: CUDA graphs need a fixed-shape call; {workload.name} generates "
                "(its KV cache grows each step); allowed for encode and classify-image workloads"
            )

    @classmethod
    def canonical(cls, spec: "BenchmarkSpec") -> "BenchmarkSpec":
        """As Backend.canonical, and `quantizer` is dropped from cells that are not int8 (it does not apply), so
        a sweep over precisions with quantizer=torchao has one fp32 cell, not a second copy."""
        from dataclasses import replace

        spec = super().canonical(spec)
        if spec.precision != "int8" and spec.option("quantizer") is not None:
            spec = replace(spec, options=tuple((k, v) for k, v in spec.options if k != "quantizer"))
        return spec

    @classmethod
    def build_precision(cls, spec: "BenchmarkSpec") -> str:
        return "fp32" if spec.precision == "int8" else spec.precision

    def _transform(self, spec: "BenchmarkSpec") -> Callable[[Any], Any] | None:
        steps: list[Callable[[Any], Any]] = []
        if spec.precision == "int8":
            quantizer = str(spec.option("quantizer", "torch.ao"))
            steps.append(lambda model: quantize_int8_dynamic(model, quantizer))
        mode = spec.option("compile", "none")
        if mode != "none":
            import torch

            steps.append(lambda model: torch.compile(model, mode=None if mode == "default" else mode))
        if not steps:
            return None

        def transform(model):
            for step in steps:
                model = step(model)
            return model

        return transform

    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> PreparedCall:

        prepared = workload.prepare(
            dtype=torch_dtype(spec.precision),
            device=self.runtime.device,
            spec=spec,
            attn_implementation=spec.option("attn"),
            transform=self._transform(spec),
        )
        facts = prepared.facts
        facts["technique"] = self.technique(spec)
        if spec.precision == "int8":
            facts["quantization"] = (
                f"dynamic int8 ({spec.option('quantizer', 'torch.ao')}): nn.Linear weights "
                "int8, activations quantized per call; other layers (embeddings, norms, "
                "convolutions) stay fp32"
            )
            prepared.uncountable = "quantized kernels are not seen by FlopCounterMode"
        mode = spec.option("compile", "none")
        if mode != "none":
            facts["compile"] = {"mode": mode, "first_call_s": self._first_call(prepared)}
            prepared.uncountable = "compiled kernels are not seen by FlopCounterMode"
        return prepared

    def _first_call(self, prepared: PreparedCall) -> float:
        """Run the first call (compilation happens here, outside timing); its duration in seconds."""
        from bench.core.calls import make_stamp

        with self.execution_context():
            began = time.perf_counter()
            prepared.call(make_stamp(self.synchronize))
            self.synchronize()
            return round(time.perf_counter() - began, 3)

    @staticmethod
    def technique(spec: "BenchmarkSpec") -> str:
        """A short human label of the technique, e.g. "torch bf16 + compile(default)"."""
        parts = [f"torch {spec.precision}"]
        if spec.option("compile", "none") != "none":
            parts.append(f"compile({spec.option('compile')})")
        if spec.option("graphs"):
            parts.append("cuda graphs")
        if spec.option("attn"):
            parts.append(f"attn={spec.option('attn')}")
        return " + ".join(parts)

    def synchronize(self) -> None:
        self.runtime.synchronize()

    def event_timer(self) -> Any:
        return self.runtime.event_timer()

    def execution_context(self) -> ContextManager[Any]:
        import torch

        return torch.inference_mode()

    def reset_memory_stats(self) -> None:
        self.runtime.reset_memory_stats()

    def memory_stats(self) -> dict[str, Any]:
        return self.runtime.memory_stats()

    def available_memory_bytes(self) -> int | None:
        return self.runtime.available_memory_bytes()

    def device_info(self) -> dict[str, Any]:
        return self.runtime.device_info()


class TorchCpuBackend(TorchBackend):
    """The host CPU. Intra-op threads are set explicitly (option `threads`, default: every CPU this process may
    use); inter-op threads are 1 (a single model call has no independent ops to overlap); both are recorded."""

    name: ClassVar[str] = "cpu"
    summary: ClassVar[str] = "PyTorch on the host CPU (eager, torch.compile, int8 dynamic quantization)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("fp32", "bf16", "int8"),
        reference=True,
        reference_neutral_options=("threads",),
        options={
            "threads": OptionSpec(int, "intra-op threads (default: all usable CPUs)", minimum=1, maximum=max_threads),
            "compile": _COMPILE,
            "attn": ATTN_OPTION,
            "quantizer": OptionSpec(str, "int8 dynamic quantization library", choices=QUANTIZERS, default="torch.ao"),
        },
    )

    @classmethod
    def probe(cls) -> Availability:
        """torch installed (from its metadata: nothing imported, so `bench list` stays fast; a torch that is
        installed but broken fails its cells with the import error, recorded)."""
        reason = torch_missing_reason()
        return Availability(reason is None, reason)

    @classmethod
    def threads_for(cls, spec: "BenchmarkSpec") -> int:
        from bench.core.environment import usable_cpu_count

        return int(spec.option("threads") or usable_cpu_count())

    @classmethod
    def worker_environment(cls, spec: "BenchmarkSpec") -> dict[str, str]:
        threads = str(cls.threads_for(spec))
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

    def __init__(self, spec: "BenchmarkSpec") -> None:
        import torch

        super().__init__(spec, CpuRuntime())
        torch.set_num_threads(self.threads_for(spec))
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set once in this process (only possible outside a fresh worker)
            pass

    def thread_info(self) -> dict[str, Any]:
        import os

        import torch

        return {
            "torch_intra_op": torch.get_num_threads(),
            "torch_inter_op": torch.get_num_interop_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        }


def torch_missing_reason() -> str | None:
    """Why torch is not there (from installed metadata, without importing it), or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("torch")
    except PackageNotFoundError:
        return "torch is not installed"
    return None


def cuda_unavailable_reason() -> str | None:
    """Why torch cannot drive an NVIDIA GPU here, or None. Cheap answers first (torch's metadata says a CPU-only
    build; no NVIDIA driver on this host), so no torch import is needed to say no on a machine without a GPU."""
    import os
    from importlib.metadata import version

    missing = torch_missing_reason()
    if missing:
        return missing
    if "+cpu" in version("torch"):
        return f"torch {version('torch')} is a CPU-only build (no CUDA)"
    if not os.path.exists("/proc/driver/nvidia/version") and os.path.exists("/proc"):
        return "no NVIDIA driver on this host (/proc/driver/nvidia is missing)"
    try:
        import torch
    except Exception as exc:
        return f"torch cannot be imported: {exc}"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (no CUDA)"
    try:
        if not torch.cuda.is_available() or torch.cuda.device_count() < 1:
            return "no CUDA device visible (torch.cuda.is_available() is False)"
    except Exception as exc:  # a driver mismatch raises here
        return f"CUDA unusable: {type(exc).__name__}: {exc}"
    return None


class TorchCudaBackend(TorchBackend):
    """An NVIDIA GPU (device 0) through torch.cuda: CUDA-event timing beside the wall clock, torch.cuda peak
    memory, and NVML telemetry (power, energy, clocks, temperature, throttle reasons) when nvidia-ml-py is
    installed."""

    name: ClassVar[str] = "cuda"
    summary: ClassVar[str] = "PyTorch on an NVIDIA GPU (eager, torch.compile, CUDA graphs; NVML energy)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("fp32", "bf16", "fp16"),
        device_memory=True,
        device="gpu",
        device_timer=True,
        telemetry=True,
        options={
            "compile": _COMPILE,
            "attn": OptionSpec(
                str,
                "attention implementation (default: transformers' choice)",
                choices=("eager", "sdpa", "flash_attention_2"),
            ),
            "graphs": OptionSpec(bool, "capture the call in a CUDA graph (fixed-shape workloads)", default=False),
        },
    )

    @classmethod
    def probe(cls) -> Availability:
        reason = cuda_unavailable_reason()
        return Availability(reason is None, reason)

    def __init__(self, spec: "BenchmarkSpec") -> None:
        import torch

        super().__init__(spec, CudaRuntime())
        # fp32 matmuls in full fp32 (not TF32), so "fp32" means what it says; recorded in the facts
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> PreparedCall:
        prepared = super().prepare(workload, spec)
        prepared.facts["tf32"] = False
        if spec.option("graphs"):
            capture_cuda_graph(prepared)
            prepared.uncountable = "a CUDA graph replay is not seen by FlopCounterMode"
        return prepared

    def telemetry(self) -> Telemetry:
        from backends.nvml import NvmlTelemetry

        return NvmlTelemetry(self.runtime.index)


def capture_cuda_graph(prepared: PreparedCall, warmup_calls: int = 3) -> None:
    """Replace `prepared.call` by the replay of a CUDA graph of it (warm-up on a side stream, then capture)."""
    import torch

    def no_stamp() -> int:
        raise RuntimeError("a call captured in a CUDA graph must not read the clock (generation cannot be captured)")

    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup_calls):
                prepared.call(no_stamp)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            prepared.call(no_stamp)
    torch.cuda.synchronize()

    def replay(stamp):
        graph.replay()
        return None

    prepared.call = replay
    prepared.take = None  # a captured graph has a fixed batch
    prepared.facts["cuda_graph"] = True
