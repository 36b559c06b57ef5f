"""The PyTorch eager adapter, over a `DeviceRuntime`.

`TorchBackend` holds everything torch-specific that does not depend on the device: precision -> dtype, building
the workload on the device, inference mode. `TorchCpuBackend` ("cpu") adds the CPU's thread settings: the number
of intra-op threads is set explicitly (option `threads`, default: every CPU this process may use), inter-op
threads are set to 1 (a single model call has no independent ops to overlap), and both are recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, ContextManager

from backends.base import Availability, Backend, Capabilities, OptionSpec, PreparedCall
from backends.runtime import CpuRuntime, DeviceRuntime

if TYPE_CHECKING:
    from bench.spec import BenchmarkSpec
    from models.base import Workload

__all__ = ["TorchBackend", "TorchCpuBackend", "torch_dtype"]


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class TorchBackend(Backend):
    """PyTorch eager on one device runtime."""

    runtime: DeviceRuntime

    def __init__(self, spec: "BenchmarkSpec", runtime: DeviceRuntime) -> None:
        self.spec = spec
        self.runtime = runtime

    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> PreparedCall:
        return workload.prepare(dtype=torch_dtype(spec.precision), device=self.runtime.device, spec=spec)

    def synchronize(self) -> None:
        self.runtime.synchronize()

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
    name: ClassVar[str] = "cpu"
    summary: ClassVar[str] = "PyTorch eager on the host CPU"
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("fp32", "bf16"),
        reference=True,
        options={"threads": OptionSpec(int, "intra-op threads (default: all usable CPUs)", minimum=1)},
    )

    @classmethod
    def probe(cls) -> Availability:
        try:
            import torch  # noqa: F401
        except Exception as exc:  # a broken torch install can raise more than ImportError
            return Availability(False, f"torch cannot be imported: {exc}")
        return Availability(True)

    @classmethod
    def threads_for(cls, spec: "BenchmarkSpec") -> int:
        from bench.environment import usable_cpu_count

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
